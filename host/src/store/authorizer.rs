//! The SQLite authorizer that confines a plugin's statements to its own namespace.
//!
//! SQLite calls it for every table, column, index, trigger, view, pragma and function a
//! statement touches, while the statement is prepared. Default deny: an action is allowed
//! only when a rule below says so.

use crate::manifest::namespace;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use std::sync::{Arc, Mutex};

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

    fn owns(&self, object: &str) -> bool {
        starts_with_ignore_case(object, &self.own)
    }

    fn may_read(&self, table: &str) -> bool {
        self.owns(table) || self.reads.iter().any(|r| starts_with_ignore_case(table, r))
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() > prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// SQLite's own schema tables, written by CREATE/DROP/ALTER as part of a statement that was
/// itself authorized. Direct writes to them are impossible with `writable_schema` off and
/// defensive mode on.
fn is_schema_table(table: &str) -> bool {
    [
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(table))
}

/// SQLite names the index behind a UNIQUE or PRIMARY KEY constraint
/// `sqlite_autoindex_<table>_<n>`; it belongs to the table's owner.
fn is_autoindex_of(index: &str, table: &str) -> bool {
    let prefix = "sqlite_autoindex_";
    index.len() > prefix.len() + table.len()
        && index[..prefix.len()].eq_ignore_ascii_case(prefix)
        && index[prefix.len()..prefix.len() + table.len()].eq_ignore_ascii_case(table)
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

/// Functions a plugin may never call.
const FUNCTION_DENY_LIST: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// The reason for the last denial, read back when the statement fails.
pub(crate) type DenialSlot = Arc<Mutex<Option<String>>>;

/// Builds the authorizer callback for one plugin.
pub(crate) fn authorizer(
    scope: Scope,
    denial: DenialSlot,
) -> impl for<'r> FnMut(AuthContext<'r>) -> Authorization + Send + 'static {
    move |ctx: AuthContext<'_>| match check(&scope, &ctx) {
        Ok(()) => Authorization::Allow,
        Err(reason) => {
            let mut slot = denial.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(reason);
            Authorization::Deny
        }
    }
}

fn check(scope: &Scope, ctx: &AuthContext<'_>) -> Result<(), String> {
    if let Some(db) = ctx.database_name {
        if !db.eq_ignore_ascii_case("main") && !db.eq_ignore_ascii_case("temp") {
            return Err(format!("database {db:?} is not the plugin's database"));
        }
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
        CreateTable { table_name }
        | CreateTempTable { table_name }
        | DropTable { table_name }
        | DropTempTable { table_name }
        | AlterTable { table_name, .. }
        | Analyze { table_name } => own("table", table_name),
        CreateIndex {
            index_name,
            table_name,
        }
        | CreateTempIndex {
            index_name,
            table_name,
        }
        | DropIndex {
            index_name,
            table_name,
        }
        | DropTempIndex {
            index_name,
            table_name,
        } => {
            if !is_autoindex_of(index_name, table_name) {
                own("index", index_name)?;
            }
            own("table", table_name)
        }
        CreateTrigger {
            trigger_name,
            table_name,
        }
        | CreateTempTrigger {
            trigger_name,
            table_name,
        }
        | DropTrigger {
            trigger_name,
            table_name,
        }
        | DropTempTrigger {
            trigger_name,
            table_name,
        } => {
            own("trigger", trigger_name)?;
            own("table", table_name)
        }
        CreateView { view_name }
        | CreateTempView { view_name }
        | DropView { view_name }
        | DropTempView { view_name } => own("view", view_name),
        CreateVtable { table_name, .. } | DropVtable { table_name, .. } => {
            own("virtual table", table_name)
        }
        Reindex { index_name } => own("index", index_name),
        Insert { table_name } | Delete { table_name } | Update { table_name, .. } => {
            if is_schema_table(table_name) {
                Ok(())
            } else {
                own("table", table_name)
            }
        }
        Read { table_name, .. } => {
            if scope.may_read(table_name) || is_schema_table(table_name) {
                Ok(())
            } else {
                Err(format!(
                    "table {table_name:?} is outside plugin {p}'s namespace and no read grant \
                     covers it"
                ))
            }
        }
        Select | Recursive => Ok(()),
        Function { function_name } => {
            if FUNCTION_DENY_LIST
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
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
            let allowed = PRAGMA_ALLOW_LIST
                .iter()
                .any(|a| a.eq_ignore_ascii_case(pragma_name));
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
