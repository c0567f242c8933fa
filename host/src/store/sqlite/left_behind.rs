//! What a step leaves in the plugin's namespace must not act later with anyone else's
//! rights. Triggers, views and virtual tables run with the rights of whoever uses them (the
//! application, with full access, on its own connection), and SQLite resolves the names in
//! them only when they run; foreign keys make SQLite read and guard the referenced table. So
//! after every step that changed the namespace, before its commit:
//!
//! - every trigger and view of the namespace, and every statement that writes a table the
//!   step created or changed (which compiles its columns' defaults), must compile with the
//!   plugin's scope **without its read grants**, both with wasmig's connection settings and with SQLite's defaults (the
//!   application's); any error is a refusal, so no object may name anything that does not
//!   exist yet, or that only the application's settings would let it reach;
//! - a virtual table's module must be on the allow-list, and an `fts5` table's external
//!   content must be the plugin's own table;
//! - a foreign key may reference only the plugin's own tables.

use super::Scope;
use super::SqliteBackend;
use super::authorizer::{BUILD_FUNCTIONS, CONNECTION_FUNCTIONS, VOLATILE_FUNCTIONS, VTAB_MODULES};
use super::schema_check::SchemaObject;
use super::sql_text::{self, Token};
use rusqlite::config::DbConfig;

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl SqliteBackend {
    /// Checks what a step that changed the namespace leaves behind (see the module's doc);
    /// `Err`: why the step must be rolled back.
    pub(super) fn check_left_behind(
        &mut self,
        scope: &Scope,
        owned: &[SchemaObject],
        changed: &[(&str, &SchemaObject)],
    ) -> Result<(), String> {
        for (what, o) in changed {
            if *what != "dropped" {
                ends_where_it_seems(o)?;
                plain_name(o)?;
            }
        }
        let mut definition = scope.without_reads();
        definition.stored = true;
        for (what, o) in changed {
            if *what == "dropped" || o.schema != "main" || !scope.owns(&o.name) {
                continue;
            }
            if o.kind == "index"
                && let Some(probe) = index_probe(o)
            {
                self.probe_definition(&definition, o, &probe)?;
            }
        }
        let mut objects: Vec<&SchemaObject> = owned
            .iter()
            .filter(|o| o.kind == "trigger" || o.kind == "view")
            .collect();
        for (what, o) in changed {
            if *what != "dropped" && o.kind == "table" {
                let is_virtual = self.check_table(scope, o)?;
                // A module's own storage, which it alone writes, holds no expression.
                if !is_virtual && o.schema == "main" && scope.owns(&o.name) && !self.is_shadow(o)? {
                    self.check_constraint_calls(scope, o)?;
                }
                // A column's DEFAULT is compiled only when a row is inserted, then with the
                // rights of whoever inserts: the probes compile it now. A virtual table's
                // shadow tables are the module's, and `sqlite_sequence` is SQLite's.
                if !is_virtual && scope.owns(&o.name) && !self.is_shadow(o)? {
                    objects.push(o);
                } else if !is_virtual
                    && scope.owns(&o.name)
                    && o.sql.as_deref().is_some_and(sql_text::has_expressions)
                {
                    // A shadow table by its name that a module did not make (made before
                    // the virtual table, under a name the module leaves unused): the module's
                    // own hold no expression, and this one is compiled like any table.
                    objects.push(o);
                }
            }
        }
        if objects.is_empty() {
            return Ok(());
        }
        // Compiled now, `FROM json_each` reads the table function; once a table of that name
        // exists (an application's), it reads that table, with the rights of whoever fires
        // the trigger or reads the view.
        for o in objects.iter().filter(|o| o.kind != "table") {
            if let Some(name) = o.sql.as_deref().and_then(sql_text::bare_table_function) {
                return Err(format!(
                    "{} {:?} reads {name} without arguments, which would read a table named \
                     {name} once one exists; a trigger or view calls it with its arguments, \
                     {name}(…)",
                    o.kind, o.name
                ));
            }
        }
        // A trigger's program is known by its name alone in SQLite's listing (see
        // `compiles_trigger`): a TEMP trigger named like one of main would answer for it.
        let mut triggers = std::collections::HashSet::new();
        for o in owned.iter().filter(|o| o.kind == "trigger") {
            if !triggers.insert(o.name.to_ascii_lowercase()) {
                return Err(format!(
                    "two triggers are named {:?} (one in TEMP); a plugin's triggers have names \
                     of their own",
                    o.name
                ));
            }
        }
        let mut reach = scope.without_reads();
        reach.table_functions_shadowed = self.table_functions_shadowed();
        reach.stored = true;
        for o in &objects {
            self.probe(&reach, o, "wasmig's")?;
        }
        self.with_default_settings(|backend| {
            objects
                .iter()
                .try_for_each(|o| backend.probe(&reach, o, "SQLite's default"))
        })?;
        // The application's connections resolve every view and trigger under their own
        // limits whenever they rename or drop a column or rename a table (SQLite checks the
        // whole schema then): a view of more columns than their `column` limit, which they
        // read with the schema, makes each of those fail.
        if let Some(limits) = self.application_limits {
            self.with_limits(&limits, |backend| {
                objects
                    .iter()
                    .try_for_each(|o| backend.compiles_within_limits(o))
            })?;
        }
        Ok(())
    }

    /// Whether the statements that read a view or fire a trigger ([`Self::probes_with`],
    /// which the checks above have held to the plugin's scope) compile under the
    /// connection's limits. A table's own definition was read under them already.
    fn compiles_within_limits(&self, object: &SchemaObject) -> Result<(), String> {
        if object.kind == "table" {
            return Ok(());
        }
        for probe in self.probes_with(object, true)? {
            if let Err(e) = self.conn.prepare(&probe) {
                return Err(format!(
                    "{} {:?} is past the limits the application's connections set ([sqlite] \
                     application_limits): SQLite says \"{}\" when it compiles what uses it, \
                     as those connections do whenever they rename or drop a column or rename \
                     a table",
                    object.kind,
                    object.name,
                    match &e {
                        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
                        other => other.to_string(),
                    }
                ));
            }
        }
        Ok(())
    }

    /// Runs `f` with the connection's limits lowered to `limits`, then puts them back.
    fn with_limits(
        &mut self,
        limits: &crate::policy::ApplicationLimits,
        f: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let fail = |e: rusqlite::Error| format!("cannot set the connection's limits: {e}");
        let mut was = Vec::new();
        let mut lowered = Ok(());
        for (key, value) in limits.set() {
            if let Some(limit) = super::load_limits::limit_of(key) {
                // `set_limit` returns the limit as it was.
                match self.conn.set_limit(limit, value) {
                    Ok(before) => was.push((limit, before)),
                    Err(e) => {
                        lowered = Err(fail(e));
                        break;
                    }
                }
            }
        }
        let result = lowered.and_then(|()| f(self));
        // Put back whatever was lowered, whatever happened.
        for (limit, value) in was {
            self.conn.set_limit(limit, value).map_err(fail)?;
        }
        result
    }

    /// Compiles `probe`, an index's definition made again under another name (see
    /// [`index_probe`]), under `scope`: SQLite resolves the functions of an index's
    /// expressions only when it creates it, then under the plugin's step's rules, which are
    /// not those of what it leaves behind.
    fn probe_definition(
        &self,
        scope: &Scope,
        object: &SchemaObject,
        probe: &str,
    ) -> Result<(), String> {
        self.auth.set_scope(Some(scope.clone()));
        let compiled = self.conn.prepare(probe).map(drop);
        let denial = self.take_denial();
        self.auth.set_scope(None);
        compiled.map_err(|e| {
            let reason = denial.unwrap_or_else(|| super::uniform_message(scope, &e.to_string()));
            format!(
                "{} {:?} does not compile as plugin {}'s own definition: {reason}; its \
                 expressions may call only functions that give the same answer on any \
                 connection",
                object.kind, object.name, scope.plugin
            )
        })
    }

    /// Refuses a table whose CHECK constraints, generated columns or indexes call a function
    /// on [`CONNECTION_FUNCTIONS`], [`VOLATILE_FUNCTIONS`] or [`BUILD_FUNCTIONS`], as SQLite's
    /// program of an insert into it says (see [`SqliteBackend::constraint_calls`]).
    fn check_constraint_calls(&self, scope: &Scope, table: &SchemaObject) -> Result<(), String> {
        let calls = self.constraint_calls(scope, &table.name)?;
        let called = |f: &&str| {
            calls.iter().any(|call| {
                call.split('(')
                    .next()
                    .is_some_and(|name| name.eq_ignore_ascii_case(f))
            })
        };
        let same = "a CHECK constraint may call only functions that give the same answer on \
                    any connection, each time";
        let reason = CONNECTION_FUNCTIONS
            .iter()
            .chain(VOLATILE_FUNCTIONS)
            .find(|f| called(f))
            .map(|f| {
                (
                    f,
                    "gives another answer on another connection or at another call",
                    same,
                )
            })
            .or_else(|| {
                (BUILD_FUNCTIONS.iter().find(|f| called(f))).map(|f| {
                    (
                        f,
                        "is in only some builds of SQLite (the application's may lack it)",
                        "its constraints, generated columns and indexes may call only \
                         functions every build of SQLite has",
                    )
                })
            });
        match reason {
            Some((function, why, rule)) => Err(format!(
                "table {:?}'s constraints call {function}(), which {why}, and SQLite evaluates \
                 a table's constraints again whenever it checks the table; {rule}",
                table.name
            )),
            None => Ok(()),
        }
    }

    /// A table the step created or changed: a virtual table's module and options, a plain
    /// table's foreign keys. `Ok(true)`: the table is virtual.
    fn check_table(&self, scope: &Scope, table: &SchemaObject) -> Result<bool, String> {
        let sql = table.sql.as_deref().unwrap_or_default();
        let mut t = sql_text::Tokens::new(sql);
        if t.next().is_some_and(|w| w.is_word("create"))
            && t.next().is_some_and(|w| w.is_word("virtual"))
        {
            return check_virtual_table(scope, &table.name, sql).map(|()| true);
        }
        let references: Vec<String> = self
            .conn
            .prepare_cached("SELECT \"table\" FROM pragma_foreign_key_list(?1, ?2)")
            .and_then(|mut s| {
                s.query_map([&table.name, &table.schema], |r| r.get::<_, String>(0))?
                    .collect()
            })
            .map_err(|e| format!("cannot read the foreign keys of {}: {e}", table.name))?;
        match references.iter().find(|r| !scope.owns(r)) {
            Some(other) => Err(format!(
                "table {:?} has a foreign key to {other:?}, which is outside plugin {}'s \
                 namespace: a foreign key may reference only the plugin's own tables (it \
                 would make SQLite read and guard another plugin's table on its behalf)",
                table.name, scope.plugin
            )),
            None => Ok(false),
        }
    }

    /// Prepares, without running, statements that fire the trigger or read the view: SQLite
    /// compiles trigger bodies and view selects into them, under the scope's authorizer.
    fn probe(&self, scope: &Scope, object: &SchemaObject, settings: &str) -> Result<(), String> {
        let probes = self.probes(object)?;
        self.auth.set_scope(Some(scope.clone()));
        let trigger = object.kind == "trigger";
        let mut compiled = !trigger;
        let mut verdict = Ok(());
        for probe in &probes {
            self.auth.reset();
            // Compiled in the shadow first: what it answers is the same whatever the database
            // holds outside the scope's reach.
            if let Err(e) = self
                .shadow_compile(scope, probe)
                .and_then(|_| {
                    // A trigger not yet seen is compiled once, listed: the listing is the
                    // same program, authorized the same way.
                    if trigger && !compiled {
                        compiled = self.compiles_trigger(probe, &object.name)?;
                    } else {
                        self.conn.prepare(probe)?;
                    }
                    Ok(())
                })
                .and_then(|_| self.check_reads(scope))
            {
                // One wording whether the authorizer denied a name or SQLite found none, and
                // whatever SQLite said of a table it found (`no such column`): an object
                // outside the namespace and a missing one read alike.
                let function = self.auth.lock().denied_function;
                let denial = self.take_denial();
                let outside = object
                    .sql
                    .as_deref()
                    .and_then(|sql| self.foreign_name(scope, sql));
                let reason = match (outside, denial) {
                    // A function refused is named as such (`sqlite_version` is not a table).
                    (_, Some(denial)) if function => denial,
                    (Some(name), _) => scope.outside("table", &name),
                    (None, Some(denial)) => denial,
                    (None, None) => super::uniform_message(scope, &e.to_string()),
                };
                verdict = Err(format!(
                    "{} {:?} does not compile as plugin {}'s own object with {settings} \
                     connection settings: {reason}; a trigger or view may use only objects of \
                     the plugin's namespace that exist",
                    object.kind, object.name, scope.plugin,
                ));
                break;
            }
        }
        self.auth.set_scope(None);
        if verdict.is_ok() && !compiled {
            // Checked on what SQLite reports, not on what the host read in the trigger's
            // text: a trigger none of the statements that write its table makes SQLite
            // compile (an `UPDATE OF` list naming no column that can be set) went unchecked.
            verdict = Err(format!(
                "trigger {:?} is not compiled by any statement that writes its table, so the \
                 host cannot check what it does; a trigger's UPDATE OF list names columns of \
                 its table",
                object.name
            ));
        }
        verdict
    }

    /// Whether `probe` makes SQLite compile the program of the trigger `name`, as its
    /// program listing says (the listing names each trigger's program; a CTE or a view named
    /// like the trigger does not appear there, as it would among the authorizer's reports).
    fn compiles_trigger(&self, probe: &str, name: &str) -> rusqlite::Result<bool> {
        let start = format!("-- TRIGGER {name}");
        let mut listing = self.conn.prepare(&format!("EXPLAIN {probe}"))?;
        let mut rows = listing.query([])?;
        while let Some(row) = rows.next()? {
            if row.get_ref(1)?.as_str_or_null()? == Some("Init")
                && row.get_ref(5)?.as_str_or_null()? == Some(start.as_str())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The statements that compile `object`: a select of the view, the statement of each
    /// event that fires the trigger, or each statement that writes the table.
    fn probes(&self, object: &SchemaObject) -> Result<Vec<String>, String> {
        self.probes_with(object, false)
    }

    /// [`Self::probes`], with each column an `UPDATE` sets in a statement of its own when
    /// `one_column_each`: short statements, each within the limits an application sets on
    /// the length of a statement and on the columns it sets, which the one that sets every
    /// column need not be.
    fn probes_with(
        &self,
        object: &SchemaObject,
        one_column_each: bool,
    ) -> Result<Vec<String>, String> {
        if object.kind == "view" {
            return Ok(vec![format!(
                "SELECT * FROM {}.{}",
                quote(&object.schema),
                quote(&object.name)
            )]);
        }
        // A TEMP trigger may sit on a table of main: name the table unqualified (TEMP first,
        // then main, as SQLite resolves the trigger's own table).
        let target = if object.schema == "temp" {
            quote(&object.table)
        } else {
            format!("{}.{}", quote(&object.schema), quote(&object.table))
        };
        let sql = match object.kind.as_str() {
            "trigger" => object.sql.as_deref().unwrap_or_default(),
            _ => "",
        };
        let event = sql_text::Tokens::new(sql)
            .skip_while(|t| !t.is_word("trigger"))
            .find_map(|t| {
                ["insert", "delete", "update"]
                    .into_iter()
                    .find(|e| t.is_word(e))
            });
        // A TEMP object's table: found as SQLite finds it, TEMP first.
        let columns: Vec<String> = if object.schema == "temp" {
            self.columns(
                "SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0",
                &[&object.table],
            )
        } else {
            self.columns(
                "SELECT name FROM pragma_table_xinfo(?1, ?2) WHERE hidden = 0",
                &[&object.table, &object.schema],
            )
        }
        .map_err(|e| format!("cannot inspect {}: {e}", object.table))?;
        // `UPDATE OF rowid` fires only when the rowid is set under that very name, `oid` and
        // `_rowid_` alike, on a table that has one and no column of that name.
        let with_rowid = match (object.kind.as_str(), object.sql.as_deref()) {
            // A table's own definition, as the schema scan read it: no second read of the
            // schema table, which has no index on the name.
            ("table", Some(sql)) => has_rowid(sql),
            _ => self.table_has_rowid(&object.table, &object.schema)?,
        };
        let aliases = ["rowid", "oid", "_rowid_"]
            .into_iter()
            .filter(|a| with_rowid && !columns.iter().any(|c| c.eq_ignore_ascii_case(a)));
        let sets: Vec<String> = columns
            .iter()
            .map(|c| quote(c))
            .chain(aliases.map(str::to_string))
            .map(|c| format!("{c} = {c}"))
            .collect();
        let update: Vec<String> = if sets.is_empty() {
            Vec::new()
        } else if one_column_each {
            sets.iter()
                .map(|set| format!("UPDATE {target} SET {set}"))
                .collect()
        } else {
            vec![format!("UPDATE {target} SET {}", sets.join(", "))]
        };
        let insert = format!("INSERT INTO {target} DEFAULT VALUES");
        let delete = format!("DELETE FROM {target}");
        Ok(match event {
            Some("insert") => vec![insert],
            Some("delete") => vec![delete],
            Some(_) => update,
            // Not read as a trigger: every statement that could fire it.
            None => [insert, delete].into_iter().chain(update).collect(),
        })
    }

    /// The `CREATE` statement of the table `name` of `schema`, if it has one (not a view's).
    /// Read from the schema table, not `pragma_table_list`, which first works out the columns
    /// of every view of the database, in time that grows with the square of their number.
    fn table_sql(&self, name: &str, schema: &str) -> Result<Option<String>, String> {
        self.conn
            .prepare_cached(&format!(
                "SELECT sql FROM {}.sqlite_schema WHERE type = 'table' AND name = ?1 \
                 COLLATE NOCASE",
                quote(schema)
            ))
            .and_then(|mut s| {
                s.query_map([name], |r| r.get::<_, Option<String>>(0))?
                    .next()
                    .transpose()
            })
            .map(Option::flatten)
            .map_err(|e| format!("cannot inspect {name}: {e}"))
    }

    /// Whether the table is a virtual table's own storage (a shadow table), as SQLite tells
    /// one: its name is a virtual table's of the same schema, `_`, and a suffix that table's
    /// module names as its own (fts5's and rtree's, the only modules a plugin may use).
    fn is_shadow(&self, table: &SchemaObject) -> Result<bool, String> {
        const FTS5: &[&str] = &["config", "content", "data", "docsize", "idx"];
        const RTREE: &[&str] = &["node", "parent", "rowid"];
        let Some((owner, suffix)) = table.name.rsplit_once('_') else {
            return Ok(false);
        };
        let named = |own: &[&str]| own.iter().any(|s| s.eq_ignore_ascii_case(suffix));
        // The schema table has no index on the name: it is read only for a name a module's
        // storage could have.
        if !named(FTS5) && !named(RTREE) {
            return Ok(false);
        }
        let module = self
            .table_sql(owner, &table.schema)?
            .filter(|sql| sql_text::is_virtual_table(sql))
            .and_then(|sql| sql_text::virtual_table(&sql))
            .map(|(module, _)| module.to_ascii_lowercase());
        Ok(match module.as_deref() {
            Some("fts5") => named(FTS5),
            Some("rtree" | "rtree_i32") => named(RTREE),
            _ => false,
        })
    }

    /// Whether the table a trigger of `schema` is on has a rowid: a table, not virtual, not
    /// declared `WITHOUT ROWID`. A TEMP trigger's table is TEMP's if TEMP has one of that
    /// name, else main's, as SQLite resolves it.
    fn table_has_rowid(&self, table: &str, schema: &str) -> Result<bool, String> {
        let mut sql = self.table_sql(table, schema)?;
        if sql.is_none() && schema == "temp" {
            sql = self.table_sql(table, "main")?;
        }
        Ok(sql.is_some_and(|sql| has_rowid(&sql)))
    }

    fn columns(&self, sql: &str, params: &[&String]) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(0)
        })?;
        rows.collect()
    }

    /// Runs `f` with the connection settings wasmig changes set to SQLite's defaults, as the
    /// application's connection has them (functions that are not innocuous allowed in the
    /// schema, no defensive mode, double-quoted strings), then sets them back.
    fn with_default_settings(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let set = |b: &Self, defaults: bool| {
            b.conn
                .set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, defaults)
                .and_then(|_| {
                    b.conn
                        .set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, !defaults)
                })
                .and_then(|_| {
                    b.conn
                        .set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, defaults)
                })
                .and_then(|_| {
                    b.conn
                        .set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, defaults)
                })
                .map(drop)
                .map_err(|e| format!("cannot switch the connection's settings: {e}"))
        };
        set(self, true)?;
        let result = f(self);
        set(self, false)?;
        result
    }
}

/// The options of fts5 (3.54), by their full names.
const FTS5_OPTIONS: &[&str] = &[
    "prefix",
    "tokenize",
    "content",
    "contentless_delete",
    "contentless_unindexed",
    "content_rowid",
    "columnsize",
    "locale",
    "detail",
    "tokendata",
];

/// A virtual table's module must be on the allow-list, and its options may name only the
/// plugin's own tables.
pub(super) fn check_virtual_table(scope: &Scope, name: &str, sql: &str) -> Result<(), String> {
    let unreadable = || {
        format!(
            "virtual table {name:?}: cannot read its declaration, so cannot check what it \
             reads: {sql}"
        )
    };
    let (module, args) = sql_text::virtual_table(sql).ok_or_else(unreadable)?;
    if !VTAB_MODULES.iter().any(|m| m.eq_ignore_ascii_case(&module)) {
        return Err(format!(
            "virtual table {name:?} uses module {module:?}, which is not available to \
             plugins (allowed: {})",
            VTAB_MODULES.join(", ")
        ));
    }
    if !module.eq_ignore_ascii_case("fts5") {
        return Ok(());
    }
    for arg in &args {
        if !arg.contains(&Token::Punct('=')) {
            continue;
        }
        let (key, value) = sql_text::option(arg).ok_or_else(unreadable)?;
        // fts5 takes any prefix of an option's name (`c=` is `content=`): only options
        // spelled out in full are accepted, so the check below sees every `content`.
        if !FTS5_OPTIONS.contains(&key.as_str()) {
            return Err(format!(
                "virtual table {name:?}: fts5 option {key:?} is not one wasmig reads; spell \
                 the option out in full (one of: {})",
                FTS5_OPTIONS.join(", ")
            ));
        }
        if key == "content" && !value.is_empty() && !scope.owns(&value) {
            return Err(format!(
                "virtual table {name:?} takes its content from {value:?}, which is outside \
                 plugin {}'s namespace: an fts5 table's external content must be the \
                 plugin's own table",
                scope.plugin
            ));
        }
    }
    Ok(())
}

/// Refuses an object whose stored text ends inside a comment (`/* …` left open, or `-- …`):
/// `.dump` and other tools write each definition followed by `;`, which would then be part of
/// the comment, and what follows in the dump (another definition of the plugin's, holding
/// `*/` and SQL in a string) part of this one: restoring the dump would run it, with the
/// restorer's rights. Decided by SQLite's own reading of statement ends (`sqlite3_complete`).
fn ends_where_it_seems(object: &SchemaObject) -> Result<(), String> {
    let Some(sql) = object.sql.as_deref() else {
        return Ok(());
    };
    let complete = std::ffi::CString::new(format!("{sql};"))
        // SAFETY: a NUL-terminated string that lives across the call.
        .map(|text| unsafe { rusqlite::ffi::sqlite3_complete(text.as_ptr()) } == 1)
        .unwrap_or(false);
    if complete {
        Ok(())
    } else {
        Err(format!(
            "{} {:?} ends inside a comment: tools that write the schema out (`.dump`) put \
             `;` after each definition, which would fall inside it and join what follows to \
             this definition; end it with its last token",
            object.kind, object.name
        ))
    }
}

/// An index's definition under a name of the plugin's own that no object has: SQLite
/// resolves its expressions' functions again. `None`: an index SQLite made.
fn index_probe(object: &SchemaObject) -> Option<String> {
    let sql = object.sql.as_deref()?;
    let mut t = sql_text::Tokens::new(sql);
    let mut before = t.offset();
    while let Some(token) = t.next() {
        if token.is_word("on") {
            return Some(format!(
                "CREATE INDEX main.{}{}",
                quote(&format!("{}\u{1}definition", object.name)),
                &sql[before..]
            ));
        }
        before = t.offset();
    }
    None
}

/// Refuses an object whose name is not a plain identifier (letters and digits, any
/// script's, `_`, `$`): tools that write the schema out build SQL around the names
/// SQLite stores, not all of them quoting every character (Python's `iterdump` put a table
/// name inside a string literal, so a `'` in it ended the literal and the rest of the name
/// became SQL of the dump). Checked on the name SQLite stores.
fn plain_name(object: &SchemaObject) -> Result<(), String> {
    match object
        .name
        .chars()
        .find(|&c| !(c.is_alphanumeric() || c == '_' || c == '$'))
    {
        None => Ok(()),
        Some(c) => Err(format!(
            "{} {:?} has {c:?} in its name: a plugin's objects have plain names (letters, \
             digits, `_`, `$`), which tools that write the schema out do not need to quote",
            object.kind, object.name
        )),
    }
}

/// Whether the table `sql` defines has a rowid: a table, not virtual, not `WITHOUT ROWID`.
fn has_rowid(sql: &str) -> bool {
    !sql_text::is_virtual_table(sql) && !sql_text::without_rowid(sql)
}
