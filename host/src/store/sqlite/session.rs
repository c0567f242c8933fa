//! The plugin's SQL session: the connection scoped to one plugin and bounded for its step,
//! and the plugin's statements, prepared under its authorizer scope and step-keyed cache.

use super::*;

/// Statements a plugin may never run, by first keyword, with the reason.
pub(super) const DENIED_STATEMENTS: &[(&str, &str)] = &[
    (
        "VACUUM",
        "VACUUM is not available to plugins (VACUUM INTO would write a file)",
    ),
    ("EXPLAIN", EXPLAIN_DENIED),
];

/// Why EXPLAIN is refused: by its keyword here, and by what SQLite compiled in the shadow.
pub(super) const EXPLAIN_DENIED: &str = "EXPLAIN is not available to plugins (its output names \
     the database's pages and the indexes the application put on the plugin's tables)";

/// Why a step whose transaction SQLite rolled back by itself runs no more SQL, and fails.
const TRANSACTION_ENDED: &str = "SQLite rolled the step's transaction back after an error \
     of the plugin's statement (a quota or the memory bound reached, a write interrupted, or \
     a conflict resolved by ROLLBACK): nothing the step did is kept, and it runs no more SQL";

/// `no such table: X` for a table outside the scope's reach becomes the scope's denial of
/// `X`, word for word what the authorizer says of an existing one; so does `index X already
/// exists` (and the like) for a name outside the namespace.
pub(super) fn uniform_message(scope: &Scope, message: &str) -> String {
    if let Some((kind, name)) = message
        .strip_suffix(" already exists")
        .and_then(|m| m.split_once(' '))
        && ["table", "index", "trigger", "view"].contains(&kind)
        && !scope.owns(name)
    {
        return scope.outside(kind, name);
    }
    // SQLite checks every object of the schema when a table or column is renamed or
    // dropped, and names the first that no longer compiles: one outside the namespace (an
    // application's broken view) is not the plugin's to learn of by name.
    if let Some(rest) = message.strip_prefix("error in ")
        && let Some((kind, rest)) = rest.split_once(' ')
        && ["table", "index", "trigger", "view"].contains(&kind)
    {
        let name = rest
            .split([':', ' '])
            .next()
            .unwrap_or_default()
            .trim_matches('"');
        if !scope.owns(name) {
            return format!(
                "an object outside plugin {}'s namespace does not compile with this change",
                scope.plugin
            );
        }
    }
    if let Some(name) = message.strip_prefix("no such table: ") {
        let name = ["main.", "temp."]
            .iter()
            .find_map(|s| name.strip_prefix(s))
            .unwrap_or(name);
        if !scope.may_read(name) {
            return scope.outside("table", name);
        }
    }
    message.to_string()
}

pub(super) struct Param<'a>(&'a crate::store::ValueRef<'a>);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use crate::store::ValueRef as P;
        Ok(ToSqlOutput::Borrowed(match *self.0 {
            P::Null => ValueRef::Null,
            P::Integer(i) => ValueRef::Integer(i),
            P::Real(r) => ValueRef::Real(r),
            P::Text(t) => ValueRef::Text(t.as_bytes()),
            P::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Whether `name` is shaped like a name of a plugin's namespace (`x__y`), of the host's
/// (`_wasmig_*`) or of SQLite's (`sqlite_*`): outside the running plugin's reach whether or
/// not such an object exists, unless the scope may read it.
fn foreign_shaped(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("_wasmig_")
        || lower.starts_with("sqlite_")
        || lower.find("__").is_some_and(|i| {
            i > 0
                && lower[..i]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

pub(super) fn bind(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: &[crate::store::ValueRef<'_>],
) -> rusqlite::Result<()> {
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    for (i, p) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, Param(p))?;
    }
    Ok(())
}

pub(super) fn read_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl SqliteBackend {
    /// The statement cache key of a plugin's statement: the statement behind a comment that
    /// names this step. The host's statements never start with it, and a statement cached in
    /// an earlier step (another plugin's, authorized for its scope) is never found again; it
    /// ages out of the cache.
    pub(super) fn plugin_key(&self, statement: &str) -> std::cell::Ref<'_, String> {
        {
            let mut key = self.key.borrow_mut();
            key.truncate(self.key_prefix_len.get());
            key.push_str(statement);
        }
        self.key.borrow()
    }

    /// Starts new cache keys for the plugin's statements: none prepared under the earlier
    /// ones is found again.
    pub(super) fn new_statement_keys(&self) {
        self.step_serial.set(self.step_serial.get() + 1);
        let prefix = format!("/* wasmig step {} */ ", self.step_serial.get());
        self.key_prefix_len.set(prefix.len());
        *self.key.borrow_mut() = prefix;
    }

    /// A plugin statement from the statement cache (or freshly prepared), to keep in
    /// [`SqliteBackend::held`].
    pub(super) fn hold(&self, statement: &str) -> rusqlite::Result<HeldStatement> {
        let stmt = self.prepare_plugin(statement)?;
        // SAFETY: the statement borrows `*self.conn`, which is boxed (it stays put when the
        // backend moves) and is never replaced. The result goes only into `self.held`, which
        // is private and dropped before the connection (in `leave_plugin`, `enter_plugin` and
        // `Drop`), and every use reborrows it from `self` for less than `self`'s lifetime.
        let stmt = unsafe {
            std::mem::transmute::<rusqlite::CachedStatement<'_>, rusqlite::CachedStatement<'static>>(
                stmt,
            )
        };
        Ok(HeldStatement {
            text: statement.to_string(),
            stmt,
        })
    }

    /// A plugin statement from the statement cache, or compiled in the shadow and prepared
    /// (and authorized) for the running step; one that reads a stored object outside the
    /// plugin's reach is discarded, never cached.
    pub(super) fn prepare_plugin(
        &self,
        statement: &str,
    ) -> rusqlite::Result<rusqlite::CachedStatement<'_>> {
        if let Some((scope, _)) = &self.plugin {
            self.shadow_check(scope, statement)?;
        }
        let stmt = self.conn.prepare_cached(&self.plugin_key(statement))?;
        match self
            .plugin
            .as_ref()
            .map(|(scope, _)| self.check_reads(scope))
        {
            Some(Err(e)) => {
                stmt.discard();
                Err(e)
            }
            _ => Ok(stmt),
        }
    }

    /// The second half of the authorizer's check of the statement just prepared under
    /// `scope` (which the authorizer still applies): a name it read without reading a column
    /// must not be a table, view or table function outside the scope's reach. The statement
    /// compiled in the shadow, so such a name is one of its CTEs, or a table function (which
    /// the shadow has too): the shadow tells which, the same whatever the database holds.
    pub(super) fn check_reads(&self, scope: &Scope) -> rusqlite::Result<()> {
        // Both taken before the host reads anything (which resets the authorizer's state).
        let (checked, names) = {
            let mut state = self.auth.lock();
            (
                std::mem::take(&mut state.rows_checked),
                std::mem::take(&mut state.unresolved),
            )
        };
        if let Some(why) = self.generated_in_row_check(scope, checked) {
            let mut state = self.auth.lock();
            state.denial = Some(why);
            state.denied_function = false;
            drop(state);
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_AUTH),
                None,
            ));
        }
        if names.is_empty() {
            return Ok(());
        }
        // A name shaped like another namespace's (or the host's, or SQLite's) is refused
        // whether or not a table has it: a CTE of that name must not tell which do.
        let stored = names
            .into_iter()
            .find(|name| !scope.may_read(name) && (foreign_shaped(name) || self.in_shadow(name)));
        match stored {
            None => Ok(()),
            Some(name) => {
                let mut state = self.auth.lock();
                state.denial = Some(scope.outside("table", &name));
                state.denied_function = false;
                drop(state);
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_AUTH),
                    None,
                ))
            }
        }
    }

    /// Why the statement just prepared is refused, if the query SQLite makes to check a
    /// table's rows against a constraint that `ALTER TABLE` adds (`ADD CHECK`, `SET NOT
    /// NULL`) reads a virtual generated column of the plugin's: SQLite compiles that query
    /// with its built-in functions in place of wasmig's bounded ones, the column's expression
    /// included, which the authorizer is not asked about (it was authorized when the column
    /// was made). A stored generated column was computed when its row was written.
    fn generated_in_row_check(
        &self,
        scope: &Scope,
        read: Vec<(Option<String>, String, String)>,
    ) -> Option<String> {
        if read.is_empty() {
            return None;
        }
        // Each table in the schema SQLite named (a name alone would find a TEMP table of the
        // same name first); in both when it named none.
        let mut tables: Vec<(&str, &str)> = read
            .iter()
            .flat_map(|(schema, table, _)| {
                let schemas: &[&str] = match schema.as_deref() {
                    Some(s) if s.eq_ignore_ascii_case("temp") => &["temp"],
                    Some(_) => &["main"],
                    None => &["main", "temp"],
                };
                schemas.iter().map(move |s| (*s, table.as_str()))
            })
            .collect();
        tables.sort_unstable();
        tables.dedup();
        let generated: Vec<(String, String)> = self.as_host(scope, || {
            let mut generated = Vec::new();
            for (schema, table) in tables {
                // Unreadable: refused, never passed.
                let columns = self
                    .conn
                    .prepare_cached("SELECT name FROM pragma_table_xinfo(?1, ?2) WHERE hidden = 2")
                    .and_then(|mut s| {
                        s.query_map([table, schema], |r| r.get::<_, String>(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    });
                match columns {
                    Ok(columns) => {
                        generated.extend(columns.into_iter().map(|c| (table.to_string(), c)))
                    }
                    Err(_) => generated.push((table.to_string(), String::new())),
                }
            }
            generated
        });
        read.iter().find_map(|(_, table, column)| {
            generated
                .iter()
                .find(|(t, c)| {
                    t.eq_ignore_ascii_case(table)
                        && (c.is_empty() || c.eq_ignore_ascii_case(column))
                })
                .map(|(_, c)| {
                    if c.is_empty() {
                        return format!(
                            "the host cannot read which columns of {table} are generated, \
                             which the query that checks its rows against a constraint ALTER \
                             TABLE adds would compute with SQLite's built-in functions"
                        );
                    }
                    format!(
                        "column {column} of {table} is generated: SQLite computes it with its own \
                         built-in functions in the query that checks the table's rows against a \
                         constraint ALTER TABLE adds, not with wasmig's bounded ones; make the \
                         table again with the constraint instead (create it, copy the rows, \
                         drop the old table, rename)"
                    )
                })
        })
    }

    /// Maps a SQLite error for the plugin, with the authorizer's reason when it denied. Any
    /// other error of a statement in `sql` that names something outside the plugin's reach
    /// (`no such table`, `views may not be indexed`, `cannot drop PRIMARY KEY column`, …)
    /// becomes the denial of that name: what the plugin learns is the same whether the object
    /// exists or not, and whatever kind of object it is.
    pub(super) fn plugin_error(&self, e: rusqlite::Error, sql: &str) -> SqlError {
        if let Some(reason) = self.take_denial() {
            // The authorizer names what SQLite asked about, which may be behind what the plugin
            // named (the table under a view, an fts5 table's shadow table): the denial names
            // the plugin's own word instead.
            if let Some((scope, _)) = &self.plugin
                && let Some(named) = reason
                    .split_once(" is outside plugin ")
                    .and_then(|(denied, _)| denied.split_once(' '))
                    .map(|(_, name)| name.trim_matches('"'))
                && !sql_text::Tokens::new(sql).any(|t| {
                    matches!(t, Token::Word(w) | Token::Quoted(w) | Token::Text(w)
                        if w.eq_ignore_ascii_case(named))
                })
            {
                // A name the plugin did not write is one SQLite found behind what it named
                // (an application's trigger on its table, an fts5 table's shadow tables):
                // the denial names the plugin's own word instead, or none.
                return SqlError::AccessDenied(match self.foreign_name(scope, sql) {
                    Some(name) => scope.outside("table", &name),
                    None => format!(
                        "the statement reaches an object outside plugin {}'s namespace",
                        scope.plugin
                    ),
                });
            }
            return SqlError::AccessDenied(reason);
        }
        let error = self.sqlite_error(e);
        if let (Some((scope, _)), SqlError::Syntax(message) | SqlError::Other(message)) =
            (&self.plugin, &error)
        {
            let uniform = uniform_message(scope, message);
            if uniform != *message {
                return SqlError::AccessDenied(uniform);
            }
            if let Some(name) = self.foreign_name(scope, sql) {
                return SqlError::AccessDenied(scope.outside("table", &name));
            }
        }
        error
    }

    /// A SQLite error as the plugin's typed error.
    pub(super) fn sqlite_error(&self, e: rusqlite::Error) -> SqlError {
        // Past the deadline every allocation fails and the watchdog interrupts, so the error
        // SQLite reports is whichever the statement met first (an error whose message could
        // not be allocated reads "SQL logic error"): the deadline is the cause.
        if self
            .plugin
            .as_ref()
            .is_some_and(|(_, l)| Instant::now() >= l.deadline)
        {
            return SqlError::Limit(
                "the statement was still running at the step's deadline".into(),
            );
        }
        let message = e.to_string();
        // A trigger's `RAISE(ABORT, '…')` (or FAIL): the text is the trigger's to choose, and
        // must not pass for one of the host's verdicts.
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER
        {
            return SqlError::Constraint(format!("RAISE in a trigger: {message}"));
        }
        match e.sqlite_error_code() {
            Some(ErrorCode::AuthorizationForStatementDenied) => SqlError::AccessDenied(message),
            Some(ErrorCode::ConstraintViolation) => SqlError::Constraint(message),
            Some(ErrorCode::TooBig) => SqlError::Limit(message),
            Some(ErrorCode::OperationInterrupted) => SqlError::Limit(
                "the statement was still running at the step's deadline".to_string(),
            ),
            Some(ErrorCode::OutOfMemory) => SqlError::Limit(format!(
                "the statement needed more than the {} MiB of SQLite's memory a step may use",
                self.max_result_bytes() >> 20
            )),
            Some(ErrorCode::DiskFull) if self.temp_vfs.quota.exceeded() => {
                SqlError::Limit(format!(
                    "the step's temporary storage (TEMP tables, sorts and materialized \
                     subqueries that spill from memory) passed its quota of {} MiB",
                    self.plugin
                        .as_ref()
                        .map_or(0, |(_, l)| l.max_temp_bytes >> 20)
                ))
            }
            Some(ErrorCode::DiskFull) => SqlError::Limit(format!(
                "the step grew the database past its quota of {} MiB",
                self.plugin
                    .as_ref()
                    .map_or(0, |(_, l)| l.max_growth_bytes >> 20)
            )),
            Some(ErrorCode::Unknown) => SqlError::Syntax(message),
            _ => match e {
                rusqlite::Error::MultipleStatement => SqlError::Syntax(
                    "execute and query take one statement; use execute-script for several"
                        .to_string(),
                ),
                rusqlite::Error::ExecuteReturnedResults => SqlError::Syntax(
                    "the statement returns rows; use query instead of execute".to_string(),
                ),
                rusqlite::Error::InvalidParameterCount(given, expected) => SqlError::Syntax(
                    format!("the statement takes {expected} parameters, {given} given"),
                ),
                _ => SqlError::Other(message),
            },
        }
    }

    /// A name `sql` uses that is outside the scope's reach by its shape: another namespace's
    /// (or the host's, or SQLite's). Decided on the text alone, so the same whatever the
    /// database holds.
    pub(super) fn foreign_name(&self, scope: &Scope, sql: &str) -> Option<String> {
        sql_text::Tokens::new(sql).find_map(|t| {
            let name = match t {
                // A string literal too: `rtreecheck('x')`, `pragma_table_info('x')`.
                Token::Word(w) | Token::Quoted(w) | Token::Text(w) => w,
                _ => return None,
            };
            if scope.may_read(&name) {
                return None;
            }
            foreign_shaped(&name).then_some(name)
        })
    }

    /// Whether a stored table is named like one of the table functions plugins may read
    /// (`json_each`, `json_tree`): a read of that name would read the table. Two hash
    /// lookups; a view of that name needs none (reading a view is authorized on the tables it
    /// reads).
    pub(super) fn table_functions_shadowed(&self) -> bool {
        ["json_each", "json_tree"]
            .into_iter()
            .any(|t| self.conn.table_exists(None, t).unwrap_or(true))
    }

    /// Refuses a statement of `sql` (one statement or a script) that names an object outside
    /// the namespace where SQLite looks it up before it asks the authorizer (see
    /// [`sql_text::named_objects`]): checked on the names as written, before SQLite sees them,
    /// so the answer is the same whether the object exists or not.
    pub(super) fn ddl_denial(&self, sql: &str) -> Option<SqlError> {
        let (scope, _) = self.plugin.as_ref()?;
        sql_text::find_in_statements(sql, |statement| {
            sql_text::named_objects(statement)
                .into_iter()
                .find(|(kind, name)| {
                    !if *kind == "table or index" {
                        scope.owns_index(name)
                    } else {
                        scope.owns(name)
                    }
                })
        })
        .map(|(kind, name)| {
            SqlError::AccessDenied(if name.is_empty() {
                format!(
                    "REINDEX and ANALYZE take a table or index of plugin {}'s own",
                    scope.plugin
                )
            } else {
                scope.outside(kind, &name)
            })
        })
    }

    /// Compiles the views the plugin's statements created since the last look, under its
    /// scope, before its next statement is prepared; one that reads outside the plugin's
    /// reach is dropped and that statement refused. SQLite works a view's columns out with
    /// the authorizer switched off when a statement writes to the view (through an `INSTEAD
    /// OF` trigger) or a pragma reads it: a view over another namespace's table, left in
    /// place until the step's end, would tell that table's columns meanwhile. A name of the
    /// plugin's own that does not exist yet is no reach outside: such a view is compiled
    /// again after each change of the schema, and when the step ends.
    pub(super) fn check_new_views(&self, scope: &Scope) -> Result<(), SqlError> {
        let (mut views, fts5, fts5_renamed) = self.auth.take_created();
        self.check_new_fts5(scope, fts5)?;
        if fts5_renamed {
            self.learn_fts5_names(scope)?;
        }
        let waiting = !self.pending_views.borrow().0.is_empty();
        if views.is_empty() && !waiting {
            return Ok(());
        }
        // A view that named a table of the plugin's not made yet is compiled again once the
        // schema has changed (that table may be there now, and the view read outside).
        self.auth.set_scope(None);
        let versions = self.schema_versions().ok();
        self.auth.set_scope(Some(scope.clone()));
        let mut still = Vec::new();
        {
            let mut pending = self.pending_views.borrow_mut();
            if pending.1 != versions {
                views.append(&mut pending.0);
            } else {
                still.append(&mut pending.0);
            }
        }
        let result = self.compile_new_views(scope, views, &mut still);
        *self.pending_views.borrow_mut() = (still, versions);
        result
    }

    /// Checks the options of the fts5 tables the plugin's statements created since the last
    /// look, as SQLite stored their declaration, before anything reads them; one that takes
    /// its content from outside the namespace is dropped and that statement refused. fts5
    /// looks its content table up only when a statement first reads the table, on the
    /// connection itself: what it answered then would tell whether such a table exists.
    fn check_new_fts5(&self, scope: &Scope, tables: Vec<(String, String)>) -> Result<(), SqlError> {
        for (schema, name) in tables {
            self.auth.set_scope(None);
            let declared = self.declaration(&schema, "table", &name);
            let refused = declared
                .and_then(|sql| super::left_behind::check_virtual_table(scope, &name, &sql).err());
            let dropped = match refused {
                Some(_) => self.conn.execute_batch(&format!(
                    "DROP TABLE IF EXISTS \"{}\".\"{}\"",
                    schema.replace('"', "\"\""),
                    name.replace('"', "\"\"")
                )),
                None => Ok(()),
            };
            self.auth.set_scope(Some(scope.clone()));
            if let Some(why) = refused {
                return Err(SqlError::AccessDenied(match dropped {
                    Ok(()) => format!("{why}; it was dropped"),
                    Err(e) => self.stop_step(format!(
                        "{why}; it could not be dropped ({})",
                        self.why_not_dropped(&e)
                    )),
                }));
            }
        }
        Ok(())
    }

    /// Tells the authorizer the names of the plugin's fts5 tables as the schema now holds
    /// them, after one of its statements renamed one.
    fn learn_fts5_names(&self, scope: &Scope) -> Result<(), SqlError> {
        self.auth.set_scope(None);
        let names = (|| -> rusqlite::Result<Vec<String>> {
            let mut names = Vec::new();
            for schema in ["main", "temp"] {
                let mut stmt = self.conn.prepare(&format!(
                    "SELECT name, sql FROM {schema}.sqlite_schema \
                     WHERE type = 'table' AND sql IS NOT NULL"
                ))?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let name: String = row.get(0)?;
                    let sql: String = row.get(1)?;
                    if scope.owns(&name) && super::schema_check::is_fts5(&sql) {
                        names.push(name);
                    }
                }
            }
            Ok(names)
        })();
        self.auth.set_scope(Some(scope.clone()));
        let names = names.map_err(|e| self.plugin_error(e, "-- the plugin's fts5 tables"))?;
        self.auth.add_fts5(names);
        Ok(())
    }

    /// The `CREATE` statement SQLite keeps for the object `name` of `kind` in `schema`, read
    /// with the host's rights (the caller lifts the scope).
    fn declaration(&self, schema: &str, kind: &str, name: &str) -> Option<String> {
        self.conn
            .query_row(
                &format!(
                    "SELECT sql FROM \"{}\".sqlite_schema WHERE type = ?1 AND name = ?2",
                    schema.replace('"', "\"\"")
                ),
                [kind, name],
                |r| r.get(0),
            )
            .ok()
    }

    /// Why dropping an object the step may not keep failed: past the step's deadline SQLite
    /// can allocate nothing (`sqlite_memory::stop`), and its "out of memory" would mislead.
    fn why_not_dropped(&self, e: &rusqlite::Error) -> String {
        if self.deadline.passed() {
            format!("the step's deadline had passed, after which SQLite can allocate nothing: {e}")
        } else {
            e.to_string()
        }
    }

    /// Records that the step cannot go on, for `why`: every later statement of the step is
    /// refused with it.
    fn stop_step(&self, why: String) -> String {
        *self.stuck.borrow_mut() = Some(format!("the step cannot go on: {why}"));
        why
    }

    /// Compiles `views` for [`SqliteBackend::check_new_views`]; those that name a table of
    /// the plugin's not made yet go to `waiting`.
    fn compile_new_views(
        &self,
        scope: &Scope,
        views: Vec<(String, String)>,
        waiting: &mut Vec<(String, String)>,
    ) -> Result<(), SqlError> {
        let mut views = views.into_iter();
        while let Some((schema, name)) = views.next() {
            let target = format!(
                "\"{}\".\"{}\"",
                schema.replace('"', "\"\""),
                name.replace('"', "\"\"")
            );
            self.auth.reset();
            let probe = format!("SELECT * FROM {target}");
            let compiled = self
                .shadow_compile(scope, &probe)
                .and_then(|_| self.conn.prepare(&probe))
                .and_then(|_| self.check_reads(scope));
            let Err(e) = compiled else { continue };
            let forward = self.auth.lock().denial.is_none()
                && e.to_string()
                    .strip_prefix("no such table: ")
                    .map(|n| n.trim_start_matches("main.").trim_start_matches("temp."))
                    .is_some_and(|n| scope.owns(n));
            if e.to_string()
                .contains(&format!("no such table: {schema}.{name}"))
            {
                continue;
            }
            if forward {
                if !waiting.contains(&(schema.clone(), name.clone())) {
                    waiting.push((schema, name));
                }
                continue;
            }
            self.auth.set_scope(None);
            let sql = self.declaration(&schema, "view", &name);
            self.auth.set_scope(Some(scope.clone()));
            // Whatever SQLite said of a table it found (`no such column`), a view naming
            // anything outside reads as one naming a missing table.
            let error = match sql.and_then(|sql| self.foreign_name(scope, &sql)) {
                Some(outside) => {
                    self.auth.reset();
                    SqlError::AccessDenied(scope.outside("table", &outside))
                }
                None => self.plugin_error(e, &probe),
            };
            self.auth.set_scope(None);
            let dropped = self
                .conn
                .execute_batch(&format!("DROP VIEW IF EXISTS {target}"));
            self.auth.set_scope(Some(scope.clone()));
            // The views not compiled yet are compiled before the statement after this one
            // (dropping this view changed the schema).
            waiting.extend(views);
            if let Err(e) = dropped {
                let why = format!(
                    "view {name:?} does not compile as plugin {}'s own object and could not \
                     be dropped ({})",
                    scope.plugin,
                    self.why_not_dropped(&e)
                );
                return Err(SqlError::AccessDenied(self.stop_step(why)));
            }
            let (SqlError::AccessDenied(why)
            | SqlError::Constraint(why)
            | SqlError::Syntax(why)
            | SqlError::Limit(why)
            | SqlError::Other(why)) = error;
            return Err(SqlError::AccessDenied(format!(
                "view {name:?} does not compile as plugin {}'s own object: {why}; it was \
                 dropped",
                scope.plugin
            )));
        }
        Ok(())
    }

    /// Checks that a plugin step is running and the statement is not denied outright, and
    /// forgets what the authorizer saw of the previous statement. `true`: the statement is
    /// the one the previous call ran (a loop).
    pub(super) fn plugin_guard(&mut self, statement: &str) -> Result<bool, SqlError> {
        let Some((scope, _)) = self.plugin.as_ref().filter(|_| self.in_transaction) else {
            return Err(SqlError::AccessDenied(
                "SQL is only available while a migration step runs".to_string(),
            ));
        };
        if let Some(why) = self.stuck.borrow().as_ref() {
            return Err(SqlError::AccessDenied(why.clone()));
        }
        // SQLite rolls a transaction back by itself after some errors (a database or
        // temporary storage full, out of memory, an interrupted write), and the connection
        // is then in autocommit mode: a statement run now would be committed at once,
        // outside the step and its checks.
        if self.conn.is_autocommit() {
            let why = TRANSACTION_ENDED.to_string();
            *self.stuck.borrow_mut() = Some(why.clone());
            return Err(SqlError::AccessDenied(why));
        }
        self.check_new_views(scope)?;
        // A loop runs one statement many times: checked once.
        let repeated = statement == self.last_allowed;
        if !repeated {
            if let Some(denied) = self.statement_denial(statement) {
                return Err(denied);
            }
            self.last_allowed.clear();
            self.last_allowed.push_str(statement);
            self.watchdog.statement(statement);
        }
        self.reset_auth();
        Ok(repeated)
    }

    /// Why a statement (or a script: each statement of a script is checked again on the text
    /// SQLite takes for it) is refused outright, before SQLite sees it.
    fn statement_denial(&self, statement: &str) -> Option<SqlError> {
        let keyword = first_keyword(statement);
        if let Some((_, why)) = DENIED_STATEMENTS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&keyword))
        {
            return Some(SqlError::AccessDenied(why.to_string()));
        }
        if let Some(denied) = self.ddl_denial(statement) {
            return Some(denied);
        }
        // Compiled without arguments, they read a table or view of their name when the
        // application has one, where the shadow has the function.
        sql_text::bare_table_function(statement).map(|name| {
            SqlError::AccessDenied(format!(
                "{name} without arguments would read a table or view named {name}; call it \
                 with its arguments, {name}(…)"
            ))
        })
    }

    /// Why the authorizer refused the last statement, if it did.
    pub(super) fn take_denial(&self) -> Option<String> {
        self.auth.lock().denial.take()
    }

    pub(super) fn reset_auth(&self) {
        self.auth.reset();
    }

    pub(super) fn max_result_bytes(&self) -> usize {
        self.plugin.as_ref().map_or(0, |(_, l)| l.max_result_bytes)
    }

    pub(super) fn enter_plugin(&mut self, mut scope: Scope, limits: SqlLimits) -> Result<()> {
        use rusqlite::limits::Limit;
        self.held = None;
        // A statement counts as a loop's repeat only within its step: the text another
        // step (or plugin) ran last is checked again.
        self.last_allowed.clear();
        self.changes_at_enter = self.conn.total_changes();
        // `last_insert_rowid()` and `changes()` start from nothing in a step: they would tell
        // the host's last write (the previous ledger row's id).
        self.conn
            .prepare_cached("UPDATE _wasmig_ledger SET id = id WHERE 0")
            .and_then(|mut s| s.execute([]))
            .map_err(|e| db_error(&self.path, "cannot scope the connection to the plugin", e))?;
        // SAFETY: the handle is this connection's, used on its own thread.
        unsafe { rusqlite::ffi::sqlite3_set_last_insert_rowid(self.conn.handle(), 0) };
        scope.table_functions_shadowed = self.table_functions_shadowed();
        // A statement prepared under another scope must never be reused under this one: the
        // plugin's statements are cached under keys of this step only (see `plugin_key`).
        self.new_statement_keys();
        let e = |e| db_error(&self.path, "cannot scope the connection to the plugin", e);
        let pages: i64 = self
            .conn
            .prepare_cached("PRAGMA page_count")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(e)?;
        let (page_size, max_pages) = match self.page_limits {
            Some(limits) => limits,
            None => {
                let read = |sql| {
                    self.conn
                        .query_row(sql, [], |r| r.get::<_, i64>(0))
                        .map_err(e)
                };
                let limits = (read("PRAGMA page_size")?, read("PRAGMA max_page_count")?);
                self.page_limits = Some(limits);
                limits
            }
        };
        let quota = pages + (limits.max_growth_bytes as i64 / page_size.max(512)).max(1);
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {quota}"), [], |_| Ok(()))
            .map_err(e)?;
        let sql_len = self
            .conn
            .set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, PLUGIN_MAX_SQL_LENGTH)
            .map_err(e)?;
        // No value of the plugin's longer than the application's connections take: they
        // compute its checks and index expressions again in `integrity_check`, `REINDEX`,
        // `ANALYZE` and a dump's restore, where one past their limit fails the whole run.
        let value_len = self
            .conn
            .set_limit(
                Limit::SQLITE_LIMIT_LENGTH,
                limits
                    .application_limits
                    .and_then(|a| a.length)
                    .map_or(PLUGIN_MAX_VALUE_LENGTH, |length| {
                        length.min(PLUGIN_MAX_VALUE_LENGTH)
                    }),
            )
            .map_err(e)?;
        let like_len = self
            .conn
            .set_limit(
                Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
                PLUGIN_MAX_LIKE_PATTERN_LENGTH,
            )
            .map_err(e)?;
        let function_args = self
            .conn
            .set_limit(Limit::SQLITE_LIMIT_FUNCTION_ARG, PLUGIN_MAX_FUNCTION_ARGS)
            .map_err(e)?;
        self.host_settings = Some(HostSettings {
            sql_len,
            value_len,
            like_len,
            function_args,
            max_pages,
        });
        // Three clocks bound a statement: the progress handler between opcodes, the watchdog's
        // interrupt from another thread, and the functions whose one call can run long.
        let deadline = limits.deadline;
        self.conn
            .progress_handler(10_000, Some(move || Instant::now() >= deadline))
            .map_err(e)?;
        self.deadline.set(Some(deadline));
        self.watchdog.arm(deadline);
        self.temp_vfs.quota.limit(Some(limits.max_temp_bytes));
        // SQLite's own memory, when the process installed the bound (the binary does).
        crate::sqlite_memory::bound(Some(limits.max_result_bytes as u64));
        self.auth.set_scope(Some(scope.clone()));
        self.step_deadline = Some(limits.deadline);
        self.step_memory = Some(limits.max_result_bytes as u64);
        self.step_schema_quota = Some(limits.max_schema_bytes);
        self.application_limits = limits.application_limits;
        self.step_temp_quota = Some(limits.max_temp_bytes);
        self.memory_at_enter = crate::sqlite_memory::held();
        *self.pending_views.borrow_mut() = Default::default();
        *self.stuck.get_mut() = None;
        self.shadow_checked.get_mut().clear();
        self.plugin = Some((scope, limits));
        Ok(())
    }

    pub(super) fn running(&mut self, step: Option<&LedgerEntry>) {
        self.watchdog.running(step.cloned());
    }

    pub(super) fn leave_plugin(&mut self) -> Result<u64> {
        use rusqlite::limits::Limit;
        let ended = self.plugin.is_some() && self.in_transaction && self.conn.is_autocommit();
        let changed = self
            .conn
            .total_changes()
            .saturating_sub(self.changes_at_enter);
        // A deferred foreign key is checked at the commit, after the step's checks and
        // without naming the step; checked here, a violation is the step's own failure, in
        // a dry run too (the key may be the application's, into the plugin's table).
        let violated = self.plugin.is_some() && self.deferred_violations() > 0;
        self.held = None;
        self.plugin = None;
        self.last_allowed.clear();
        // The shadow keeps no rows: one that holds more than its schema (what a step ran
        // there is bounded by the step's memory bound) is made again by the next step, so
        // nothing piles up from step to step.
        if self
            .shadow
            .get_mut()
            .as_ref()
            .is_some_and(|shadow| !shadow.holds_only_schema())
        {
            *self.shadow.get_mut() = None;
        }
        self.watchdog.disarm();
        self.deadline.set(None);
        self.temp_vfs.quota.limit(None);
        crate::sqlite_memory::bound(None);
        self.auth.set_scope(None);
        self.auth.set_views(None, None);
        if crate::sqlite_memory::held() - self.memory_at_enter > super::RETAINED_AFTER_STEP {
            self.conn.flush_prepared_statement_cache();
        }
        let e = |e| db_error(&self.path, "cannot restore the connection", e);
        self.conn
            .progress_handler(0, None::<fn() -> bool>)
            .map_err(e)?;
        if let Some(host) = self.host_settings.take() {
            self.conn
                .set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, host.sql_len)
                .map_err(e)?;
            self.conn
                .set_limit(Limit::SQLITE_LIMIT_LENGTH, host.value_len)
                .map_err(e)?;
            self.conn
                .set_limit(Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, host.like_len)
                .map_err(e)?;
            self.conn
                .set_limit(Limit::SQLITE_LIMIT_FUNCTION_ARG, host.function_args)
                .map_err(e)?;
            self.conn
                .query_row(
                    &format!("PRAGMA max_page_count = {}", host.max_pages),
                    [],
                    |_| Ok(()),
                )
                .map_err(e)?;
        }
        if ended {
            return Err(Error::Database {
                path: self.path.clone(),
                message: TRANSACTION_ENDED.into(),
            });
        }
        if violated {
            return Err(Error::Database {
                path: self.path.clone(),
                message: "the step leaves a deferred foreign key violated (FOREIGN KEY \
                          constraint failed): a row references a row that is not there"
                    .into(),
            });
        }
        Ok(changed)
    }

    /// How many deferred foreign-key violations the connection's transaction holds, as
    /// SQLite counts them for its commit.
    fn deferred_violations(&self) -> i32 {
        let (mut current, mut highest) = (0, 0);
        // SAFETY: the handle is this connection's, open for as long as `self`; the status
        // call reads a counter of it into the two integers.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                self.conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_DEFERRED_FKS,
                &mut current,
                &mut highest,
                0,
            )
        };
        if rc == rusqlite::ffi::SQLITE_OK {
            current
        } else {
            0
        }
    }

    /// What [`SqliteBackend::after_statement`] needs of the database before `statement`
    /// runs. Nothing for a statement run again in a loop: it found the schema as the
    /// statement before it left it, and it changed nothing the first time it ran.
    fn before_statement(&self, repeated: bool) -> Option<[i64; 2]> {
        if repeated {
            return None;
        }
        let (scope, _) = self.plugin.as_ref()?;
        self.versions_before(scope)
    }

    /// Once `statement` ran: when it changed the schema, keeps the shadow in step, and lets
    /// no statement prepared before it run again unchecked (see [`SqliteBackend::mirror`]).
    /// Only a run that succeeded and left the schema as it was makes the next run of the
    /// same text a loop's repeat: a run that failed (on a `random()` value, say) may
    /// succeed the next time and change the schema.
    fn after_statement(&mut self, statement: &str, before: Option<[i64; 2]>, succeeded: bool) {
        let changed = match &self.plugin {
            Some((scope, _)) => self.mirror(scope, statement, before),
            None => false,
        };
        if changed {
            self.held = None;
        }
        if changed || !succeeded {
            self.last_allowed.clear();
        }
    }

    pub(super) fn execute(
        &mut self,
        statement: &str,
        params: &[crate::store::ValueRef<'_>],
    ) -> Result<u64, SqlError> {
        let repeated = self.plugin_guard(statement)?;
        let before = self.before_statement(repeated);
        let result = (|| {
            let held = match self.held.take() {
                Some(held) if held.text == statement => held,
                other => {
                    drop(other); // back to the statement cache
                    self.hold(statement)?
                }
            };
            let stmt = &mut self.held.insert(held).stmt;
            if stmt.column_count() > 0 {
                return Err(rusqlite::Error::ExecuteReturnedResults);
            }
            bind(stmt, params)?;
            self.auth.reset();
            stmt.raw_execute()
        })();
        // The error first: reading the schema's versions resets the authorizer's reason.
        let result = result
            .map(|n| n as u64)
            .map_err(|e| self.plugin_error(e, statement));
        self.after_statement(statement, before, result.is_ok());
        result
    }

    pub(super) fn query(
        &mut self,
        statement: &str,
        params: &[crate::store::ValueRef<'_>],
    ) -> Result<Rows, SqlError> {
        let repeated = self.plugin_guard(statement)?;
        let before = self.before_statement(repeated);
        let max_bytes = self.max_result_bytes();
        let result = (|| {
            let mut stmt = self.prepare_plugin(statement)?;
            bind(&mut stmt, params)?;
            let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
            let n = columns.len();
            let mut rows = Vec::new();
            // What the host holds, counted as it is held: each row is a vector (its handle in
            // the result, its own allocation) of `n` values, and each text or blob its own
            // allocation. One-integer rows cost about nine times their eight bytes.
            let row_bytes = std::mem::size_of::<Vec<Value>>()
                + ALLOCATION_OVERHEAD
                + n * std::mem::size_of::<Value>();
            let mut bytes = 0usize;
            self.reset_auth();
            let mut cursor = stmt.raw_query();
            while let Some(row) = cursor.next()? {
                let mut values = Vec::with_capacity(n);
                bytes += row_bytes;
                for i in 0..n {
                    let v = read_value(row.get_ref(i)?);
                    bytes += match &v {
                        Value::Text(t) => t.len() + ALLOCATION_OVERHEAD,
                        Value::Blob(b) => b.len() + ALLOCATION_OVERHEAD,
                        _ => 0,
                    };
                    values.push(v);
                }
                if bytes > max_bytes {
                    return Ok(Err(SqlError::Limit(format!(
                        "the query's result is larger than the {} MiB a query may return; \
                         read it in pages (LIMIT/OFFSET or keyset)",
                        max_bytes >> 20
                    ))));
                }
                rows.push(values);
            }
            Ok(Ok(Rows { columns, rows }))
        })();
        let result = result.map_err(|e| self.plugin_error(e, statement));
        self.after_statement(statement, before, matches!(result, Ok(Ok(_))));
        result?
    }

    pub(super) fn execute_many(
        &mut self,
        statement: &str,
        rows: &[&[crate::store::ValueRef<'_>]],
    ) -> Result<u64, SqlError> {
        let repeated = self.plugin_guard(statement)?;
        let before = self.before_statement(repeated);
        let result = (|| {
            let mut stmt = self.prepare_plugin(statement)?;
            if stmt.column_count() > 0 {
                return Err(rusqlite::Error::ExecuteReturnedResults);
            }
            let mut changed = 0u64;
            for row in rows {
                bind(&mut stmt, row)?;
                self.reset_auth();
                changed += stmt.raw_execute()? as u64;
            }
            Ok(changed)
        })();
        let result = result.map_err(|e| self.plugin_error(e, statement));
        self.after_statement(statement, before, result.is_ok());
        result
    }

    pub(super) fn execute_script(
        &mut self,
        script: &str,
        ran: &mut dyn FnMut(crate::store::ScriptStep<'_>),
    ) -> Result<(), SqlError> {
        self.plugin_guard(script)?;
        let Some((scope, _)) = self.plugin.clone() else {
            return Ok(());
        };
        let mut rest = script;
        let mut changed = false;
        let result = (|| {
            loop {
                if let Err(e) = self.check_new_views(&scope) {
                    return Ok(Err(e));
                }
                if rest.is_empty() {
                    break;
                }
                self.reset_auth();
                // Each statement compiles in the shadow first, which also finds where it ends.
                let (found, used) = match self.shadow_compile(&scope, rest) {
                    Ok(compiled) => compiled,
                    Err(e) => {
                        refused(ran, first_statement(rest));
                        return Err(e);
                    }
                };
                if used == 0 {
                    // SQLite reads no further than a NUL byte.
                    return Ok(Err(SqlError::Syntax(
                        "the script holds a NUL byte, where SQLite would stop reading it"
                            .to_string(),
                    )));
                }
                let text = &rest[..used];
                rest = &rest[used..];
                if !found {
                    continue;
                }
                // The checks on the text SQLite takes for this statement: the script's own
                // tokens may have been read differently.
                if let Some(denied) = self.statement_denial(text) {
                    refused(ran, text);
                    return Ok(Err(denied));
                }
                let prepared = self
                    .conn
                    .prepare(text)
                    .and_then(|stmt| self.check_reads(&scope).map(|()| stmt));
                let mut stmt = match prepared {
                    Ok(stmt) => stmt,
                    Err(e) => {
                        refused(ran, text);
                        return Err(e);
                    }
                };
                ran(crate::store::ScriptStep::Ran(
                    &stmt.expanded_sql().unwrap_or_default(),
                ));
                let before = self.versions_before(&scope);
                // A script may contain statements that return rows; run them to completion.
                // One that fails is undone whole (SQLite's statement journal), unless it
                // changed rows that stand (`OR FAIL`, a trigger's `RAISE(FAIL)`).
                self.reset_auth();
                let changes = self.conn.total_changes();
                let mut rows = stmt.raw_query();
                loop {
                    match rows.next() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            drop(rows);
                            drop(stmt);
                            let whole = self.conn.total_changes() == changes;
                            ran(crate::store::ScriptStep::Failed { whole });
                            return Err(e);
                        }
                    }
                }
                drop(rows);
                drop(stmt);
                changed |= self.mirror(&scope, text, before);
            }
            Ok(Ok(()))
        })();
        if changed {
            self.held = None;
        }
        // Each of a script's statements is checked and mirrored on its own: the same text
        // run next through `execute` is no loop's repeat.
        self.last_allowed.clear();
        result.map_err(|e| self.plugin_error(e, script))?
    }
}

/// Tells the audit trail that a script's statement was refused before it ran.
fn refused(ran: &mut dyn FnMut(crate::store::ScriptStep<'_>), statement: &str) {
    ran(crate::store::ScriptStep::Ran(statement));
    ran(crate::store::ScriptStep::Failed { whole: true });
}

/// The first statement of `sql` where SQLite's tokenizer ends it (`sqlite3_complete`), looked
/// for in its first 4 KiB; those 4 KiB when it ends further on. For the audit trail, when
/// the statement was refused before SQLite said where it ends.
fn first_statement(sql: &str) -> &str {
    const LOOKED_AT: usize = 4 << 10;
    let mut end = sql.len().min(LOOKED_AT);
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    for (at, _) in sql[..end].match_indices(';') {
        let Ok(prefix) = std::ffi::CString::new(&sql[..=at]) else {
            break;
        };
        // SAFETY: a NUL-terminated string, read by SQLite's tokenizer only.
        if unsafe { rusqlite::ffi::sqlite3_complete(prefix.as_ptr()) } == 1 {
            return &sql[..=at];
        }
    }
    &sql[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_statement_of_a_script_is_read_to_where_sqlite_ends_it() {
        assert_eq!(
            first_statement("SELECT ';' FROM t; SELECT 2"),
            "SELECT ';' FROM t;"
        );
        assert_eq!(
            first_statement(
                "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END; SELECT 3"
            ),
            "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;"
        );
        assert_eq!(first_statement("SELECT 1"), "SELECT 1");
        let long = format!("SELECT '{}'; SELECT 2", "é".repeat(3000));
        let first = first_statement(&long);
        assert!(first.len() <= 4096 && long.starts_with(first));
    }

    #[test]
    fn a_foreign_object_that_a_rename_breaks_is_not_named() {
        let scope = Scope::new("attacker", &[]);
        let told = uniform_message(
            &scope,
            "error in view app_secret_report: no such table: main.app_orders",
        );
        assert!(!told.contains("app_"), "{told}");
        let told = uniform_message(
            &scope,
            "error in trigger app_copy after rename: no such column: password_hash",
        );
        assert!(
            !told.contains("app_") && !told.contains("password"),
            "{told}"
        );
        // The plugin's own objects are named.
        let own = "error in view attacker__v: no such column: x";
        assert_eq!(uniform_message(&scope, own), own);
    }
}
