//! What one plugin may touch on SQLite, by name: its namespace's prefix, and the prefixes of
//! the namespaces it was granted to read. The authorizer and the schema check decide by it.

use crate::manifest::namespace;
use crate::store::PluginAccess;

/// What one plugin may touch.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// The plugin's name.
    pub plugin: String,
    /// Its own prefix, lowercase (`notes__`).
    pub own: String,
    /// Prefixes of namespaces it was granted read access to.
    pub reads: Vec<String>,
    /// A stored table or view is named like one of the table functions a plugin may read
    /// (the application's), so a read of that name may be a read of it: the table functions
    /// are refused. Set by the SQLite backend; other backends leave it false.
    pub table_functions_shadowed: bool,
    /// What is compiled is an object the step leaves behind (a trigger, a view, a column's
    /// default), which runs later on the connection of whoever uses it: functions that read
    /// that connection's state are refused.
    pub stored: bool,
}

impl Scope {
    pub(crate) fn of(access: &PluginAccess) -> Self {
        Scope::new(&access.plugin, &access.reads)
    }

    pub(crate) fn new(plugin: &str, granted_reads: &[String]) -> Self {
        Scope {
            plugin: plugin.to_string(),
            own: namespace(plugin),
            reads: granted_reads.iter().map(|p| namespace(p)).collect(),
            table_functions_shadowed: false,
            stored: false,
        }
    }

    /// The same plugin without its read grants: what a trigger or view it leaves behind may
    /// reach. Such an object runs later with the rights of whoever fires it, so a grant for
    /// the plugin's steps does not stretch into it.
    pub(crate) fn without_reads(&self) -> Self {
        Scope {
            reads: Vec::new(),
            ..self.clone()
        }
    }

    /// The one answer for a name the plugin may not use, whether the object exists or not, so
    /// that the error tells nothing about other namespaces.
    pub(crate) fn outside(&self, kind: &str, name: &str) -> String {
        format!(
            "{kind} {name:?} is outside plugin {}'s namespace or does not exist (its objects are \
             named {}*; another plugin's tables are readable only with a grant)",
            self.plugin, self.own
        )
    }

    pub(crate) fn owns(&self, object: &str) -> bool {
        starts_with_ignore_case(object, &self.own)
    }

    /// An index of the plugin's: one it named, or one SQLite made for a `UNIQUE` or
    /// `PRIMARY KEY` constraint of its table (`sqlite_autoindex_<table>_<n>`).
    pub(crate) fn owns_index(&self, index: &str) -> bool {
        const AUTO: &str = "sqlite_autoindex_";
        self.owns(index)
            || (starts_with_ignore_case(index, AUTO)
                && index.is_char_boundary(AUTO.len())
                && self.owns(&index[AUTO.len()..]))
    }

    pub(crate) fn may_read(&self, table: &str) -> bool {
        self.owns(table) || self.reads.iter().any(|r| starts_with_ignore_case(table, r))
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() > prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}
