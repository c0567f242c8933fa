//! The shadow schema: an empty in-memory database that holds only what the running plugin may
//! reach (its own objects, and those of the namespaces it was granted to read), where each of
//! its statements is compiled before the database itself sees it.
//!
//! SQLite resolves a statement's names before it asks the authorizer, and not every name it
//! resolves reaches the authorizer: a subquery it never generates code for, a table read
//! without a column, a CTE that hides a table of the same name. Whether a name outside the
//! plugin's reach exists must not change what the plugin is told. In the shadow no such object
//! exists, so what SQLite answers there (`no such table`, `no such column`, or a compiled
//! statement) depends only on what the plugin may reach; a statement the shadow refuses never
//! reaches the database. The shadow is built from the plugin's reach alone, and changes only
//! by the plugin's own DDL, which the authorizer has already held to its namespace.

use super::*;
use rusqlite::ffi;
use std::ffi::{CStr, c_char, c_int};

pub(super) struct Shadow {
    conn: Connection,
    /// The scope it was built for: the plugin's prefix and its granted prefixes.
    own: String,
    reads: Vec<String>,
    /// The database's `schema_version`s (main, temp) at which the shadow holds the plugin's
    /// reach as the database does; `None`: it may not.
    versions: Option<[i64; 2]>,
}

/// A statement compiled in the shadow, finalized when dropped.
struct Compiled(*mut ffi::sqlite3_stmt);

impl Drop for Compiled {
    fn drop(&mut self) {
        // SAFETY: a statement of the shadow's connection, which outlives it; finalized once.
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

impl Shadow {
    /// Whether the shadow holds nothing but its schema, as it must: in each of its two
    /// databases, the pages of `sqlite_schema` and a root page for each table and index,
    /// with room for what SQLite's own virtual tables write when they are made (an rtree's
    /// root node, fts5's configuration). Rows a statement left there would take more.
    pub(super) fn holds_only_schema(&self) -> bool {
        ["main", "temp"].iter().all(|schema| {
            let read = |sql: String| {
                self.conn
                    .query_row(&sql, [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                    .ok()
            };
            let pages = read(format!(
                "SELECT page_count, 0 FROM pragma_page_count('{schema}')"
            ));
            let objects = read(format!(
                "SELECT count(*), coalesce(sum(length(sql)), 0) FROM {schema}.sqlite_schema"
            ));
            match (pages, objects) {
                (Some((pages, _)), Some((count, sql_bytes))) => {
                    pages <= 16 + 2 * count + sql_bytes / 512
                }
                _ => false,
            }
        })
    }

    /// Compiles the first statement of `sql`: whether there was one (not only comments), and
    /// the bytes of `sql` it took.
    fn compile(&self, sql: &str) -> rusqlite::Result<(bool, usize)> {
        let len = c_int::try_from(sql.len()).map_err(|_| {
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None)
        })?;
        let mut stmt = std::ptr::null_mut();
        let mut tail: *const c_char = std::ptr::null();
        // SAFETY: the connection is open and used by this thread only; `sql` outlives the
        // call, and `len` is its length in bytes.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.conn.handle(),
                sql.as_ptr().cast(),
                len,
                0,
                &mut stmt,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: as above; the message is copied before the connection is used again.
            let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.conn.handle())) }
                .to_string_lossy()
                .into_owned();
            return Err(rusqlite::Error::SqliteFailure(
                ffi::Error::new(rc),
                Some(message),
            ));
        }
        let compiled = (!stmt.is_null()).then_some(Compiled(stmt));
        // Decided on what SQLite compiled, whatever the text put before it: EXPLAIN's rows
        // name the database's pages and the indexes the application put on the plugin's
        // tables.
        // SAFETY: a statement of this connection, not yet finalized.
        if compiled
            .as_ref()
            .is_some_and(|c| unsafe { ffi::sqlite3_stmt_isexplain(c.0) } != 0)
        {
            return Err(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_AUTH),
                Some(EXPLAIN_DENIED.to_string()),
            ));
        }
        let used = if tail.is_null() {
            sql.len()
        } else {
            (tail as usize)
                .saturating_sub(sql.as_ptr() as usize)
                .min(sql.len())
        };
        Ok((compiled.is_some(), used))
    }

    fn is_for(&self, scope: &Scope) -> bool {
        self.own == scope.own && self.reads == scope.reads
    }
}

/// Whether a statement may change the schema (and is run in the shadow too once it did).
pub(super) fn changes_schema(statement: &str) -> bool {
    let keyword = first_keyword(statement);
    ["CREATE", "DROP", "ALTER"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&keyword))
}

/// The statement that makes `object` again in the shadow. `sqlite_temp_schema` keeps a TEMP
/// object's statement without `TEMP`; an index follows its table there (a TEMP trigger may be
/// on a main table). A main index or trigger is made in main by name: a TEMP table of the
/// same name would take it otherwise.
fn remake(object: &SchemaObject) -> Option<String> {
    let sql = object.sql.as_deref()?;
    if object.schema != "temp" {
        for (from, to) in [
            ("CREATE INDEX ", "CREATE INDEX main."),
            ("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX main."),
            ("CREATE TRIGGER ", "CREATE TRIGGER main."),
        ] {
            if let Some(rest) = sql.strip_prefix(from) {
                return Some(format!("{to}{rest}"));
            }
        }
        return Some(sql.to_string());
    }
    for (from, to) in [
        ("CREATE TABLE ", "CREATE TEMP TABLE "),
        ("CREATE VIEW ", "CREATE TEMP VIEW "),
        ("CREATE TRIGGER ", "CREATE TEMP TRIGGER "),
        ("CREATE VIRTUAL TABLE ", "CREATE VIRTUAL TABLE temp."),
    ] {
        if let Some(rest) = sql.strip_prefix(from) {
            return Some(format!("{to}{rest}"));
        }
    }
    Some(sql.to_string())
}

/// Virtual tables first (each makes its shadow tables, which the schema lists too), then
/// tables, indexes, views and triggers.
fn rank(object: &SchemaObject) -> u8 {
    match object.kind.as_str() {
        "table"
            if object
                .sql
                .as_deref()
                .is_some_and(|s| s.starts_with("CREATE VIRTUAL TABLE")) =>
        {
            0
        }
        "table" => 1,
        "index" => 2,
        "view" => 3,
        _ => 4,
    }
}

impl SqliteBackend {
    /// Whether the shadow holds the scope's reach as the database holds it at `versions`.
    pub(super) fn shadow_in_sync(&self, scope: &Scope, versions: [i64; 2]) -> bool {
        self.shadow
            .borrow()
            .as_ref()
            .is_some_and(|s| s.is_for(scope) && s.versions == Some(versions))
    }

    /// Makes the shadow hold the scope's reach as the database holds it now, at `versions`,
    /// from the plugin's objects as the step's mark read them when they are still current.
    /// Called while a statement of the plugin's is prepared, so on the step's clock and
    /// within its memory: a plugin with many objects makes its own steps slower, no one
    /// else's. Runs with the host's rights (the authorizer's scope is the caller's to set).
    pub(super) fn sync_shadow(&self, scope: &Scope, versions: [i64; 2]) -> Result<()> {
        if self.shadow_in_sync(scope, versions) {
            return Ok(());
        }
        let marked = self.shadow_source.borrow_mut().take();
        let owned = match marked {
            Some((own, at, owned)) if own == scope.own && at == versions => owned,
            _ => {
                // Copied up to what the host copies for the plugin at all (see `scan_cap`):
                // a step's DDL can leave definitions of any size up to its database quota.
                let cap = self.scan_cap().unwrap_or(u64::MAX);
                let mut objects = Vec::new();
                for schema in ["main", "temp"] {
                    let room = cap.saturating_sub(owned_bytes(&objects));
                    let out = self.scan_rows(scope, schema, None, room)?;
                    if out.past_cap {
                        return Err(Error::Database {
                            path: self.path.clone(),
                            message: format!(
                                "plugin {}'s objects (main and TEMP) held more than {} KiB \
                                 of names and definitions when its next statement was \
                                 compiled, {}",
                                scope.plugin,
                                (owned_bytes(&objects) + out.owned_bytes) / 1024,
                                self.past_cap_text()
                            ),
                        });
                    }
                    objects.extend(out.owned);
                }
                objects
            }
        };
        let mut objects: Vec<&SchemaObject> = owned.iter().collect();
        let granted;
        if !scope.reads.is_empty() {
            granted = self.schema_objects()?;
            objects.extend(
                granted
                    .iter()
                    .filter(|o| !scope.owns(&o.name) && scope.may_read(&o.name)),
            );
        }
        objects.sort_by_key(|o| rank(o));
        // A TEMP trigger is on the table its name found when it was made, main's or TEMP's,
        // which its definition need not say and the shadow, making it after every table,
        // would find otherwise (TEMP first): with a table of that name in both, statements
        // would compile there without it. Such a pair is refused.
        let table_in = |schema: &str, name: &str| {
            objects.iter().any(|o| {
                o.kind == "table" && o.schema == schema && o.name.eq_ignore_ascii_case(name)
            })
        };
        if let Some(trigger) = objects.iter().find(|o| {
            o.kind == "trigger"
                && o.schema == "temp"
                && table_in("main", &o.table)
                && table_in("temp", &o.table)
        }) {
            return Err(Error::Database {
                path: self.path.clone(),
                message: format!(
                    "TEMP trigger {:?} is on {:?}, the name of both a table and a TEMP table \
                     of plugin {}: which of them it fires on cannot be told from its \
                     definition; give the TEMP table a name of its own",
                    trigger.name, trigger.table, scope.plugin
                ),
            });
        }
        *self.shadow.borrow_mut() = None;
        let e = |e| db_error(&self.path, "cannot build the plugin's shadow schema", e);
        let mut conn = Connection::open_with_flags_and_vfs(
            ":memory:",
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            self.temp_vfs.name(),
        )
        .map_err(e)?;
        configure(&conn, &self.deadline).map_err(e)?;
        plugin_limits(&conn).map_err(e)?;
        // What the plugin's DDL runs in the shadow (`CREATE TABLE … AS SELECT`) keeps to the
        // step's deadline, as in the database.
        let deadline = self.deadline.clone();
        conn.progress_handler(10_000, Some(move || deadline.passed()))
            .map_err(e)?;
        // Made as the database holds them, whatever order made them there: a name that a
        // virtual table made first now reserves for itself (`attacker__f_docsize`, fts5's) is
        // refused in defensive mode, which is back on before anything is compiled here.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, false)
            .map_err(e)?;
        // The names the virtual tables made (their shadow tables), read once they are made.
        let mut made: Option<std::collections::HashSet<String>> = None;
        for object in objects {
            if self.deadline.passed() {
                return Err(Error::Database {
                    path: self.path.clone(),
                    message: "the step's deadline passed while its shadow schema was made"
                        .to_string(),
                });
            }
            if object.name.to_ascii_lowercase().starts_with("sqlite_") {
                continue;
            }
            let Some(sql) = remake(object) else { continue };
            if rank(object) > 0 {
                let made = made.get_or_insert_with(|| {
                    conn.prepare(
                        "SELECT 'main.' || lower(name) FROM main.sqlite_schema \
                         UNION ALL SELECT 'temp.' || lower(name) FROM temp.sqlite_schema",
                    )
                    .and_then(|mut s| {
                        s.query_map([], |r| r.get::<_, String>(0))?
                            .collect::<rusqlite::Result<_>>()
                    })
                    .unwrap_or_default()
                });
                if made.contains(&format!(
                    "{}.{}",
                    object.schema,
                    object.name.to_ascii_lowercase()
                )) {
                    continue;
                }
            }
            // Anything else the shadow cannot make (an object SQLite no longer accepts) is
            // missing there: the plugin's statements that name it are refused, which is safe
            // for a table, an index or another plugin's object. Not for a trigger or view of
            // the plugin's own: statements would compile without the trigger firing, and the
            // checks made in the shadow (what a rename costs and breaks) would not see them.
            if let Err(error) = conn.execute_batch(&sql) {
                if (object.kind == "trigger" || object.kind == "view") && scope.owns(&object.name) {
                    return Err(Error::Database {
                        path: self.path.clone(),
                        message: format!(
                            "{} {:?} of plugin {} cannot be made again from its definition \
                             ({error}), so its statements cannot be checked against it",
                            object.kind, object.name, scope.plugin
                        ),
                    });
                }
                tracing::debug!(
                    plugin = %scope.plugin, object = %object.name, %error,
                    "an object of the plugin's reach cannot be made in its shadow schema"
                );
            }
        }
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(e)?;
        *self.shadow.borrow_mut() = Some(Shadow {
            conn,
            own: scope.own.clone(),
            reads: scope.reads.clone(),
            versions: Some(versions),
        });
        Ok(())
    }

    /// Runs `f` on the plugin's shadow schema, brought up to date, in a savepoint rolled
    /// back after it: nothing `f` changes there stays. `Err`: the shadow could not be made;
    /// `Ok(Err)`: what `f` (or the rollback) met.
    fn with_shadow<T>(
        &self,
        scope: &Scope,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> std::result::Result<rusqlite::Result<T>, String> {
        let versions = self
            .schema_versions()
            .map_err(|e| format!("cannot read the schema's version: {e}"))?;
        self.sync_shadow(scope, versions)
            .map_err(|e| format!("cannot make the plugin's shadow schema: {e}"))?;
        let shadow = self.shadow.borrow();
        let Some(shadow) = shadow.as_ref() else {
            return Err("the plugin's shadow schema is missing".to_string());
        };
        let conn = &shadow.conn;
        let done = conn
            .execute_batch("SAVEPOINT wasmig_with_shadow")
            .and_then(|()| f(conn));
        let undone =
            conn.execute_batch("ROLLBACK TO wasmig_with_shadow; RELEASE wasmig_with_shadow");
        Ok(done.and_then(|t| undone.map(|()| t)))
    }

    /// The CPU time SQLite takes to rename a column of a new table in the shadow, over the
    /// plugin's own definitions: every `ALTER TABLE` that renames a table or renames or
    /// drops a column in the database, anyone's, parses every view and trigger (and every
    /// table's expressions) again, in a mode whose cost some definitions make grow with the
    /// square of their size, so this is what the plugin's definitions add to each such ALTER.
    /// The objects of the plugins it may read, which the shadow holds too, are dropped
    /// first: their cost was measured against their own plugin, and is not this one's to
    /// answer for. Run with the host's rights, on the step's clock.
    pub(super) fn rename_cost(&self, scope: &Scope) -> std::result::Result<Duration, String> {
        self.with_shadow(scope, |conn| {
            drop_others(conn, scope)?;
            conn.execute_batch("CREATE TABLE main.wasmig_rename_cost (a, b)")?;
            let (cpu, wall) = (thread_cpu_time(), Instant::now());
            conn.execute_batch("ALTER TABLE main.wasmig_rename_cost RENAME COLUMN a TO c")?;
            Ok(match (cpu, thread_cpu_time()) {
                (Some(started), Some(ended)) => ended.saturating_sub(started),
                _ => wall.elapsed(),
            })
        })?
        .map_err(|e| {
            format!(
                "an ALTER TABLE that renames a column fails over plugin {}'s definitions ({e}); \
                 every such ALTER in the database, anyone's, would",
                scope.plugin
            )
        })
    }

    /// The functions an insert into the plugin's table `table` calls that its columns'
    /// defaults do not: its CHECK constraints' and generated columns', as SQLite compiles
    /// them (see [`insert_calls`]), each as SQLite lists it (`random(0)`). Read on SQLite's
    /// own program, not on the definition's text, in the database itself; in the shadow,
    /// with every trigger dropped there first, when the database cannot compile the insert
    /// (a trigger of the application's on the table that no longer compiles). Run with the
    /// host's rights.
    pub(super) fn constraint_calls(
        &self,
        scope: &Scope,
        table: &str,
    ) -> std::result::Result<Vec<String>, String> {
        let failed = |e: rusqlite::Error| {
            format!("cannot list what table {table:?}'s constraints call: {e}")
        };
        if let Ok(calls) = insert_calls(&self.conn, table) {
            return Ok(calls);
        }
        self.with_shadow(scope, |conn| {
            let triggers: Vec<(String, String)> = conn
                .prepare(
                    "SELECT 'main', name FROM main.sqlite_schema WHERE type = 'trigger' \
                     UNION ALL \
                     SELECT 'temp', name FROM temp.sqlite_schema WHERE type = 'trigger'",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (schema, trigger) in &triggers {
                conn.execute_batch(&format!("DROP TRIGGER {schema}.{}", quote(trigger)))?;
            }
            insert_calls(conn, table)
        })?
        .map_err(failed)
    }

    /// Runs `f` with the host's rights, then scopes the authorizer to `scope` again.
    pub(super) fn as_host<T>(&self, scope: &Scope, f: impl FnOnce() -> T) -> T {
        self.auth.set_scope(None);
        let result = f();
        self.auth.set_scope(Some(scope.clone()));
        result
    }

    /// Compiles the first statement of `sql` (a script's rest) in the shadow, brought up to
    /// date first: whether there was one, and the bytes of `sql` it took.
    pub(super) fn shadow_compile(
        &self,
        scope: &Scope,
        sql: &str,
    ) -> rusqlite::Result<(bool, usize)> {
        let synced = self.as_host(scope, || {
            let versions = self.schema_versions()?;
            self.sync_shadow(scope, versions)
        });
        synced.map_err(|e| rusqlite::Error::UserFunctionError(e.to_string().into()))?;
        let shadow = self.shadow.borrow();
        shadow
            .as_ref()
            .expect("the shadow was just made")
            .compile(sql)
    }

    /// Compiles one statement of the plugin's in the shadow, once per step: the same text
    /// compiles alike until the schema changes, and the database compiles it again then,
    /// under the authorizer. Text after the statement but comments is refused here: the
    /// database would compile it too (to report that there is more than one statement).
    pub(super) fn shadow_check(&self, scope: &Scope, statement: &str) -> rusqlite::Result<()> {
        let key = self.row_keys.hash_one(statement);
        if self.shadow_checked.borrow().contains(&key) {
            return Ok(());
        }
        let (_, mut used) = self.shadow_compile(scope, statement)?;
        while used < statement.len() {
            match self.shadow_compile(scope, &statement[used..]) {
                Ok((false, more)) if more > 0 => used += more,
                _ => return Err(rusqlite::Error::MultipleStatement),
            }
        }
        self.shadow_checked.borrow_mut().insert(key);
        Ok(())
    }

    /// Whether `name` is a table, view or table function in the shadow: for a name the
    /// statement reads without a column, `false` means SQLite found it among the statement's
    /// own CTEs.
    pub(super) fn in_shadow(&self, name: &str) -> bool {
        self.shadow.borrow().as_ref().is_none_or(|shadow| {
            shadow
                .compile(&format!("SELECT 1 FROM \"{}\"", name.replace('"', "\"\"")))
                .is_ok()
        })
    }

    /// The database's schema versions before a plugin statement runs, for
    /// [`SqliteBackend::mirror`].
    pub(super) fn versions_before(&self, scope: &Scope) -> Option<[i64; 2]> {
        self.as_host(scope, || self.schema_versions().ok())
    }

    /// After the database ran `statement` from the schema versions `before`: whether the
    /// schema changed (whatever the statement's text says). When it did, every statement
    /// prepared before it is compiled in the shadow and checked again when next used, under
    /// new cache keys (SQLite would compile it again on its own, and a table or trigger the
    /// change made could bring in a name outside the plugin's reach, unchecked). A statement
    /// that changes the schema runs in the shadow too; a shadow that was not at `before`, or
    /// that the statement fails in, is made again from the database when next needed.
    pub(super) fn mirror(&self, scope: &Scope, statement: &str, before: Option<[i64; 2]>) -> bool {
        let Some(before) = before else { return false };
        let after = self.as_host(scope, || self.schema_versions().ok());
        if after.is_some() && after == Some(before) {
            return false;
        }
        self.shadow_checked.borrow_mut().clear();
        self.new_statement_keys();
        if let Some(shadow) = self
            .shadow
            .borrow_mut()
            .as_mut()
            .filter(|s| s.is_for(scope))
        {
            // A table made from a select holds its rows; the shadow holds none (it is made
            // again, from the table's statement, when next needed).
            let mirrored = shadow.versions == Some(before)
                && changes_schema(statement)
                && !sql_text::creates_table_as_select(statement)
                && shadow.conn.execute_batch(statement).is_ok();
            shadow.versions = if mirrored { after } else { None };
        }
        true
    }
}

/// Makes `c` neither load nor use STAT4 samples. The application's ANALYZE copies up to 24
/// whole keys of each index into `sqlite_stat4`, keys as large as a plugin's index
/// expression makes them, and a connection that uses them loads them all with the schema,
/// before its first statement runs. Call before the connection reads its schema.
pub(crate) fn without_stat4(c: &Connection) {
    let mut off: c_int = 0;
    // SAFETY: the connection is open; GETOPT writes the connection's disabled-optimization
    // mask to the `int` it is given, OPTIMIZATIONS sets it from a `u32` (as C's varargs
    // pass an `int`).
    unsafe {
        ffi::sqlite3_test_control(
            ffi::SQLITE_TESTCTRL_GETOPT,
            c.handle(),
            &mut off as *mut c_int,
        );
        ffi::sqlite3_test_control(
            ffi::SQLITE_TESTCTRL_OPTIMIZATIONS,
            c.handle(),
            (off as u32 | SQLITE_STAT4_OPTIMIZATION) as c_int,
        );
    }
}

/// SQLite's bit for its use of STAT4 samples in `sqlite3_test_control`'s mask of disabled
/// optimizations (`SQLITE_Stat4`, not in SQLite's public header).
const SQLITE_STAT4_OPTIMIZATION: u32 = 0x0000_0800;

/// Settings a connection of the host's keeps for host and plugin statements alike.
pub(super) fn configure(
    c: &Connection,
    deadline: &bounded_functions::Deadline,
) -> rusqlite::Result<()> {
    use rusqlite::config::DbConfig;
    use rusqlite::limits::Limit;
    // No lookaside: every allocation of the connection goes to the allocator, which fails
    // them once a step's deadline has passed (`sqlite_memory::stop`) and counts them. Even a
    // few small slots would let a row of calls that each make a small value run on past the
    // deadline; that is worth the allocation each row's record and values cost instead.
    // SAFETY: the connection is open and has allocated nothing from lookaside yet;
    // SQLITE_DBCONFIG_LOOKASIDE takes a buffer pointer, a slot size and a slot count.
    let rc = unsafe {
        ffi::sqlite3_db_config(
            c.handle(),
            ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            0 as c_int,
            0 as c_int,
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None));
    }
    without_stat4(c);
    // Defensive mode: no writable_schema tricks, no direct shadow-table writes.
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    // Schema-embedded SQL (views, triggers) may not call functions with side effects.
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    // A double-quoted string literal is an error, as SQLite recommends: in a plugin's
    // object, SQLite would rewrite it into a single-quoted one whenever any plugin renames
    // or drops a column (`sqlite_rename_quotefix`), a change outside that plugin's
    // namespace that the schema check refuses, so the other plugin could never migrate.
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    c.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    // The TEMP database gives the pages its dropped tables free back to the file system at
    // each commit: the steps of one run share it, and its file would otherwise stay as large
    // as the largest a step made it, room the temporary-storage quota cannot see.
    c.execute_batch("PRAGMA temp.auto_vacuum = FULL")?;
    // SAFETY: the connection is open and, like every statement on it, used by the thread
    // that holds it.
    unsafe { bounded_functions::register(c.handle(), deadline) }
        .map_err(|rc| rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
}

/// The limits of a plugin's statements (see `enter_plugin`), which the shadow keeps for good.
fn plugin_limits(c: &Connection) -> rusqlite::Result<()> {
    use rusqlite::limits::Limit;
    c.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, PLUGIN_MAX_SQL_LENGTH)?;
    c.set_limit(Limit::SQLITE_LIMIT_LENGTH, PLUGIN_MAX_VALUE_LENGTH)?;
    c.set_limit(
        Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
        PLUGIN_MAX_LIKE_PATTERN_LENGTH,
    )?;
    c.set_limit(Limit::SQLITE_LIMIT_FUNCTION_ARG, PLUGIN_MAX_FUNCTION_ARGS)?;
    Ok(())
}

/// Drops what the shadow holds of the plugins `scope` may read: their triggers and views,
/// then their virtual tables (with the tables they made), then the rest of their tables.
fn drop_others(conn: &Connection, scope: &Scope) -> rusqlite::Result<()> {
    let others = |sql: &str| -> rusqlite::Result<Vec<(String, String)>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|(_, name)| !scope.owns(name))
            .collect())
    };
    for query in [
        "SELECT type, name FROM main.sqlite_schema WHERE type IN ('trigger', 'view')",
        "SELECT type, name FROM main.sqlite_schema \
         WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'",
        "SELECT type, name FROM main.sqlite_schema \
         WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    ] {
        for (kind, name) in others(query)? {
            let name = name.replace('"', "\"\"");
            conn.execute_batch(&format!("DROP {kind} IF EXISTS main.\"{name}\""))?;
        }
    }
    Ok(())
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The functions the program of an insert into `table` that names every column it may
/// (so that no default runs) calls, as `EXPLAIN` lists them: its CHECK constraints' and
/// generated columns' (and its indexes' expressions'). Only the main program's: `EXPLAIN`
/// lists the programs it runs (a trigger's, a foreign key's action, through a conflict
/// resolved by `REPLACE` too) after it, each from address 0, and their calls are not the
/// table's.
fn insert_calls(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let columns: Vec<String> = conn
        .prepare_cached("SELECT name FROM pragma_table_xinfo(?1, 'main') WHERE hidden = 0")?
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        // A table has a column: none found is no table, which lists nothing to refuse.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("no such table: {table}")),
        ));
    }
    let insert = format!(
        "EXPLAIN INSERT INTO main.{} ({}) VALUES ({})",
        quote(table),
        columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        vec!["NULL"; columns.len()].join(", ")
    );
    let mut program = conn.prepare(&insert)?;
    let listed = program
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>("addr")?,
                r.get::<_, String>("opcode")?,
                r.get::<_, Option<String>>("p4")?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let main = listed
        .iter()
        .enumerate()
        .take_while(|(i, (addr, _, _))| *i == 0 || *addr != 0)
        .map(|(_, op)| op);
    Ok(main
        .filter(|(_, opcode, _)| opcode.ends_with("Func") || opcode.starts_with("Function"))
        .filter_map(|(_, _, p4)| p4.clone())
        .collect())
}

/// The CPU time this thread has run: what a measurement of SQLite's work on this thread
/// reads, so that other processes and threads taking the machine's cores do not add to it as
/// they add to the wall clock. `None` where the system cannot tell.
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec for the call to write.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } == 0 {
            return Some(Duration::new(now.tv_sec as u64, now.tv_nsec as u32));
        }
    }
    None
}
