//! The SQLite authorizer that confines a plugin's statements to its own namespace.
//!
//! SQLite calls it for every table, column, index, trigger, view, pragma and function a
//! statement touches, while the statement is prepared. Default deny: an action is allowed
//! only when a rule below says so. It is the first wall; the schema check after each step
//! (`sqlite.rs`) is the second.

use crate::manifest::namespace;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What one plugin may touch.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// The plugin's name.
    pub plugin: String,
    /// Its own prefix, lowercase (`notes__`).
    pub own: String,
    /// Prefixes of namespaces it was granted read access to.
    pub reads: Vec<String>,
}

impl Scope {
    pub(crate) fn new(plugin: &str, granted_reads: &[String]) -> Self {
        Scope {
            plugin: plugin.to_string(),
            own: namespace(plugin),
            reads: granted_reads.iter().map(|p| namespace(p)).collect(),
        }
    }

    pub(crate) fn owns(&self, object: &str) -> bool {
        starts_with_ignore_case(object, &self.own)
    }

    fn may_read(&self, table: &str) -> bool {
        self.owns(table) || self.reads.iter().any(|r| starts_with_ignore_case(table, r))
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() > prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// SQLite's schema tables. CREATE, DROP and ALTER write them as part of a statement that is
/// itself authorized; direct writes are refused by SQLite (defensive mode, no
/// `writable_schema`).
fn is_schema_table(table: &str) -> bool {
    [
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    ]
    .iter()
    .any(|t| eq(t, table))
}

/// SQLite names the index behind a UNIQUE or PRIMARY KEY constraint
/// `sqlite_autoindex_<table>_<n>`; it belongs to the table's owner.
pub(crate) fn is_autoindex_of(index: &str, table: &str) -> bool {
    let prefix = "sqlite_autoindex_";
    index.len() > prefix.len() + table.len()
        && eq(&index[..prefix.len()], prefix)
        && eq(&index[prefix.len()..prefix.len() + table.len()], table)
}

/// Read-only pragmas that report on one table or index; allowed on the plugin's own objects.
const PRAGMA_ALLOW_LIST: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
];

/// Table-valued functions that read nothing but their arguments.
const TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree"];

/// Functions a plugin may never call.
const FUNCTION_DENY_LIST: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    // The host's own schema scan (store/sqlite.rs).
    super::sqlite::SCAN_FUNCTION,
];

/// What the statement being prepared has done so far; reset before each prepare and step.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    /// The reason for the first denial, read back when the statement fails.
    pub denial: Option<String>,
    ddl: Ddl,
}

#[derive(Debug, Default, PartialEq)]
enum Ddl {
    #[default]
    None,
    Create,
    AlterOrDrop,
}

impl AuthState {
    /// Forgets what the previous statement did.
    pub(crate) fn reset(&mut self) {
        *self = AuthState::default();
    }
}

/// The authorizer's state, shared between the callback and the connection's owner.
#[derive(Debug, Default)]
pub(crate) struct SharedAuth {
    state: Mutex<AuthState>,
    /// Set whenever the state is handed out: a reset with nothing handed out since the last
    /// one (the usual case, a cached statement run again) costs one atomic load, not a lock.
    touched: AtomicBool,
    /// The plugin whose statements are being prepared; `None`: the host's own.
    scope: Mutex<Option<Arc<Scope>>>,
}

impl SharedAuth {
    /// The state, to read or change.
    pub(crate) fn lock(&self) -> MutexGuard<'_, AuthState> {
        self.touched.store(true, Ordering::Relaxed);
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Scopes the statements prepared from now on to one plugin (`None`: the host).
    pub(crate) fn set_scope(&self, scope: Option<Scope>) {
        *self.scope.lock().unwrap_or_else(|p| p.into_inner()) = scope.map(Arc::new);
        self.reset();
    }

    fn scope(&self) -> Option<Arc<Scope>> {
        self.scope.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets what the previous statement did.
    pub(crate) fn reset(&self) {
        // A plain load first: the usual answer is no, and it costs no locked instruction.
        if self.touched.load(Ordering::Relaxed) && self.touched.swap(false, Ordering::Relaxed) {
            self.state.lock().unwrap_or_else(|p| p.into_inner()).reset();
        }
    }
}

pub(crate) type SharedAuthState = Arc<SharedAuth>;

/// Builds the connection's authorizer callback. It stays installed for the connection's
/// life (installing or removing one expires every prepared statement, the host's included);
/// what it allows follows [`SharedAuth::set_scope`]: everything for the host, the scope's
/// reach while a plugin step runs.
pub(crate) fn authorizer(
    state: SharedAuthState,
) -> impl for<'r> FnMut(AuthContext<'r>) -> Authorization + Send + 'static {
    move |ctx: AuthContext<'_>| {
        let Some(scope) = state.scope() else {
            return Authorization::Allow;
        };
        let mut st = state.lock();
        match check(&scope, &mut st, &ctx) {
            Ok(()) => Authorization::Allow,
            Err(reason) => {
                st.denial.get_or_insert(reason);
                Authorization::Deny
            }
        }
    }
}

fn check(scope: &Scope, st: &mut AuthState, ctx: &AuthContext<'_>) -> Result<(), String> {
    // For ALTER TABLE the database is in the action; the fourth argument is the column that
    // DROP COLUMN or RENAME COLUMN names.
    let database = match ctx.action {
        AuthAction::AlterTable { database_name, .. } => Some(database_name),
        _ => ctx.database_name,
    };
    if let Some(db) = database
        && !eq(db, "main")
        && !eq(db, "temp")
    {
        return Err(format!("database {db:?} is not the plugin's database"));
    }
    let p = &scope.plugin;
    let own = |kind: &str, name: &str| -> Result<(), String> {
        if scope.owns(name) {
            Ok(())
        } else {
            Err(format!(
                "{kind} {name:?} is outside plugin {p}'s namespace (its objects are named {}*)",
                scope.own
            ))
        }
    };
    use AuthAction::*;
    match ctx.action {
        CreateTable { table_name } if eq(table_name, "sqlite_sequence") => {
            // Created by SQLite for the first AUTOINCREMENT table; plugins cannot name it.
            st.ddl = Ddl::Create;
            Ok(())
        }
        CreateTable { table_name } | CreateTempTable { table_name } => {
            st.ddl = Ddl::Create;
            own("table", table_name)
        }
        DropTable { table_name } | DropTempTable { table_name } | AlterTable { table_name, .. } => {
            st.ddl = Ddl::AlterOrDrop;
            own("table", table_name)
        }
        Analyze { table_name } => own("table", table_name),
        CreateIndex {
            index_name,
            table_name,
        }
        | CreateTempIndex {
            index_name,
            table_name,
        } => {
            st.ddl = Ddl::Create;
            if !is_autoindex_of(index_name, table_name) {
                own("index", index_name)?;
            }
            own("table", table_name)
        }
        DropIndex {
            index_name,
            table_name,
        }
        | DropTempIndex {
            index_name,
            table_name,
        } => {
            st.ddl = Ddl::AlterOrDrop;
            own("index", index_name)?;
            own("table", table_name)
        }
        CreateTrigger {
            trigger_name,
            table_name,
        }
        | CreateTempTrigger {
            trigger_name,
            table_name,
        } => {
            st.ddl = Ddl::Create;
            own("trigger", trigger_name)?;
            own("table", table_name)
        }
        DropTrigger {
            trigger_name,
            table_name,
        }
        | DropTempTrigger {
            trigger_name,
            table_name,
        } => {
            st.ddl = Ddl::AlterOrDrop;
            own("trigger", trigger_name)?;
            own("table", table_name)
        }
        CreateView { view_name } | CreateTempView { view_name } => {
            st.ddl = Ddl::Create;
            own("view", view_name)
        }
        DropView { view_name } | DropTempView { view_name } => {
            st.ddl = Ddl::AlterOrDrop;
            own("view", view_name)
        }
        CreateVtable { table_name, .. } => {
            st.ddl = Ddl::Create;
            own("virtual table", table_name)
        }
        DropVtable { table_name, .. } => {
            st.ddl = Ddl::AlterOrDrop;
            own("virtual table", table_name)
        }
        Reindex { index_name } => own("index", index_name),
        Insert { table_name } | Delete { table_name } | Update { table_name, .. } => {
            if is_schema_table(table_name) {
                Ok(())
            } else if eq(table_name, "sqlite_sequence") && st.ddl == Ddl::AlterOrDrop {
                // DROP TABLE of an AUTOINCREMENT table removes its counter.
                Ok(())
            } else {
                own("table", table_name)
            }
        }
        Read {
            table_name,
            column_name,
        } => {
            if scope.may_read(table_name) {
                return Ok(());
            }
            if ctx.database_name.is_none() {
                // Not a stored table: a CTE or subquery materialized by the statement itself
                // (stored tables always come with their schema, main or temp).
                return Ok(());
            }
            let internal = is_schema_table(table_name) || eq(table_name, "sqlite_sequence");
            // DROP and ALTER read the schema to find and rewrite what they change; CREATE reads
            // only the new row's ROWID (any other read is a `CREATE … AS SELECT` copying it).
            let ddl_bookkeeping = match st.ddl {
                Ddl::AlterOrDrop => true,
                Ddl::Create => eq(column_name, "ROWID"),
                Ddl::None => false,
            };
            if internal && ddl_bookkeeping {
                return Ok(());
            }
            if table_name.starts_with("pragma_")
                || TABLE_FUNCTIONS.iter().any(|f| eq(f, table_name))
            {
                // The pragma itself is authorized separately.
                return Ok(());
            }
            if internal {
                Err(format!(
                    "{table_name} lists every plugin's schema; a plugin may inspect only its own \
                     tables (PRAGMA table_info(<own table>), CREATE TABLE IF NOT EXISTS)"
                ))
            } else {
                Err(format!(
                    "table {table_name:?} is outside plugin {p}'s namespace and no read grant \
                     covers it"
                ))
            }
        }
        Select | Recursive => Ok(()),
        Function { function_name } => {
            if FUNCTION_DENY_LIST.iter().any(|f| eq(f, function_name)) {
                Err(format!(
                    "function {function_name}() is not available to plugins"
                ))
            } else {
                Ok(())
            }
        }
        Pragma {
            pragma_name,
            pragma_value,
        } => {
            let allowed = PRAGMA_ALLOW_LIST.iter().any(|a| eq(a, pragma_name));
            match pragma_value {
                Some(object) if allowed && scope.owns(unquote(object)) => Ok(()),
                _ => Err(format!(
                    "PRAGMA {pragma_name} is not available to plugins (allowed: {} on the \
                     plugin's own tables)",
                    PRAGMA_ALLOW_LIST.join(", ")
                )),
            }
        }
        Transaction { .. } | Savepoint { .. } => Err(
            "transaction control is the host's: each step runs in one transaction that the \
             host commits or rolls back"
                .to_string(),
        ),
        Attach { .. } => Err("ATTACH is not available to plugins".to_string()),
        Detach { .. } => Err("DETACH is not available to plugins".to_string()),
        other => Err(format!("{other:?} is not available to plugins")),
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    for (open, close) in [('"', '"'), ('\'', '\''), ('`', '`'), ('[', ']')] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            return inner;
        }
    }
    s
}

/// The first keyword of a statement, skipping white space and comments (as written; compare
/// it ignoring case).
pub(crate) fn first_keyword(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_keyword_skips_comments() {
        assert_eq!(first_keyword("  vacuum into 'x'"), "vacuum");
        assert_eq!(first_keyword("-- hi\n /* there */ Vacuum"), "Vacuum");
        assert_eq!(first_keyword("/* unterminated"), "");
        assert_eq!(first_keyword("SELECT 1"), "SELECT");
    }

    #[test]
    fn autoindexes_belong_to_their_table() {
        assert!(is_autoindex_of("sqlite_autoindex_notes__t_1", "notes__t"));
        assert!(!is_autoindex_of(
            "sqlite_autoindex_accounts__t_1",
            "notes__t"
        ));
        assert!(!is_autoindex_of("sqlite_autoindex_notes__t", "notes__t"));
    }

    fn run(scope: &Scope, sql: &str) -> Result<(), String> {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE accounts__user (id INTEGER PRIMARY KEY, email TEXT);
             CREATE TABLE notes__note (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);",
        )
        .unwrap();
        let state: SharedAuthState = Default::default();
        c.authorizer(Some(authorizer(state.clone()))).unwrap();
        state.set_scope(Some(scope.clone()));
        c.execute_batch(sql)
            .map_err(|e| state.lock().denial.take().unwrap_or_else(|| e.to_string()))
    }

    #[test]
    fn a_plugin_works_in_its_namespace() {
        let notes = Scope::new("notes", &[]);
        for sql in [
            "CREATE TABLE notes__tag (id INTEGER PRIMARY KEY AUTOINCREMENT, t TEXT UNIQUE)",
            "CREATE INDEX notes__by_body ON notes__note (body)",
            "INSERT INTO notes__note (body) VALUES ('x'); UPDATE notes__note SET body = 'y'",
            "DELETE FROM notes__note",
            "ALTER TABLE notes__note ADD COLUMN title TEXT",
            "ALTER TABLE notes__note ADD COLUMN gone TEXT; ALTER TABLE notes__note DROP COLUMN gone",
            "ALTER TABLE notes__note RENAME COLUMN body TO text",
            "ALTER TABLE notes__note RENAME TO notes__renamed",
            "DROP TABLE notes__note",
            "CREATE TABLE notes__copy AS SELECT * FROM notes__note",
            "CREATE VIEW notes__v AS SELECT body FROM notes__note",
            "CREATE TRIGGER notes__trg AFTER INSERT ON notes__note BEGIN SELECT 1; END",
            "CREATE TEMP TABLE notes__scratch (x)",
            "PRAGMA table_info(notes__note)",
            "SELECT * FROM pragma_table_info('notes__note')",
            "SELECT value FROM json_each('[1,2]')",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT * FROM c",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT count(*) FROM c",
        ] {
            assert_eq!(run(&notes, sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn grants_allow_reading_only() {
        let notes = Scope::new("notes", &["accounts".to_string()]);
        assert_eq!(run(&notes, "SELECT email FROM accounts__user"), Ok(()));
        assert!(run(&notes, "DELETE FROM accounts__user").is_err());
        assert!(run(&notes, "UPDATE accounts__user SET email = 'x'").is_err());
        assert!(
            run(
                &Scope::new("notes", &[]),
                "SELECT email FROM accounts__user"
            )
            .is_err()
        );
    }

    #[test]
    fn virtual_tables_follow_the_namespace() {
        let notes = Scope::new("notes", &[]);
        let denied = run(
            &notes,
            "CREATE VIRTUAL TABLE accounts__search USING fts5(body)",
        );
        assert!(
            denied
                .unwrap_err()
                .contains("virtual table \"accounts__search\" is outside")
        );
        assert_eq!(
            run(
                &notes,
                "CREATE VIRTUAL TABLE notes__search USING fts5(body)"
            ),
            Ok(())
        );
    }

    #[test]
    fn the_schema_is_not_readable_outside_ddl() {
        let notes = Scope::new("notes", &[]);
        assert!(run(&notes, "SELECT sql FROM sqlite_schema").is_err());
        assert!(run(&notes, "SELECT * FROM sqlite_sequence").is_err());
        assert!(
            run(
                &notes,
                "CREATE TABLE notes__leak AS SELECT sql FROM sqlite_master"
            )
            .is_err()
        );
        assert!(run(&notes, "DELETE FROM sqlite_sequence").is_err());
    }
}
