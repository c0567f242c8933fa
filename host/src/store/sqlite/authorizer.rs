//! The SQLite authorizer that confines a plugin's statements to its own namespace.
//!
//! SQLite calls it for every table, column, index, trigger, view, pragma and function a
//! statement touches, while the statement is prepared. Default deny: an action is allowed
//! only when a rule below says so. It is the first wall; the schema check after each step
//! (`schema_check.rs`) is the second.

use super::Scope;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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
    // Compared as bytes: a name may cut a multi-byte character at any of these lengths.
    let (index, prefix, table) = (index.as_bytes(), b"sqlite_autoindex_", table.as_bytes());
    index.len() > prefix.len() + table.len()
        && index[..prefix.len()].eq_ignore_ascii_case(prefix)
        && index[prefix.len()..prefix.len() + table.len()].eq_ignore_ascii_case(table)
}

/// Read-only pragmas that report on one table or index; allowed on the plugin's own objects.
const PRAGMA_ALLOW_LIST: &[&str] = &[
    "table_info",
    "table_xinfo",
    // Not `table_list`: even of one table, SQLite works out the columns of every view of the
    // database to answer it, which takes time that tells how many the application has.
    // Not `index_list`: it lists the indexes the application put on the plugin's table too.
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    // Of one table: its rows against its constraints (SQLite's ADD COLUMN runs it).
    "quick_check",
];

/// Table-valued functions that read nothing but their arguments. Every other eponymous
/// virtual table (`pragma_*`, `dbstat`, `sqlite_dbpage`, …) reads the database's metadata or
/// pages, and is refused like any table outside the namespace.
const TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree"];

/// Virtual table modules a plugin may create tables with. Each keeps its data in shadow
/// tables named after the virtual table (so inside the namespace) and reads nothing else,
/// except an `fts5` table's external content, which the schema check requires to be the
/// plugin's own table. Every other module is refused by name: a module decides what its
/// table reads (`sqlite_dbpage` under any name reads every page of the file).
pub(crate) const VTAB_MODULES: &[&str] = &["fts5", "rtree", "rtree_i32"];

/// Read-only pragmas that SQLite's own allowed modules run internally on the plugin's
/// behalf (`rtree` asks the page size when it creates a table, `fts5` the data version
/// before it reads its index); they report nothing about any object.
const INTERNAL_PRAGMAS: &[&str] = &["page_size", "data_version"];

/// The SQL aggregate that scans a schema table for the schema check. Registered on the host's
/// connection only for direct use (`SQLITE_DIRECTONLY`: no trigger or view can call it) and
/// denied to plugins by the authorizer.
pub(crate) const SCAN_FUNCTION: &str = "wasmig_schema_scan";

/// Functions a plugin may call: SQLite's built-ins that compute from their arguments alone
/// (wasmig replaces the ones that scan a pattern with versions on the step's clock, see
/// `store/sqlite/bounded_functions.rs`), and the functions `fts5` queries use. Any other
/// function is refused by name, so a function that a newer SQLite or an extension adds is
/// unavailable until it is listed here (a test lists every function the connection knows and
/// fails on one that is in neither list).
///
/// Left out on purpose: `load_extension`, `fts3_tokenizer` (loads code), `sqlite_log` (writes
/// to the application's log), `total_changes` (counts every other plugin's writes on the
/// connection), `rtreecheck` (takes a table's name as text, so it tells whether another
/// plugin's table exists), `rtreenode` and `rtreedepth` (diagnostics), `fts5` (hands out a
/// pointer), fts5's auxiliary functions `snippet()`, `highlight()` and `bm25()` (one call
/// walks the row's matches once per phrase of the query, or, for `snippet()`, scores a
/// window around each match against every other: on a document of many matches it costs
/// their square, in one opcode, out of the step clock's reach; a view or trigger cannot
/// call them either, as an fts5 auxiliary function is not innocuous), `fts5_source_id`
/// (which build of fts5 runs it: SQLite takes it for deterministic and lets an index or a
/// generated column store it, which the application's SQLite would then compute otherwise),
/// the FTS3 functions (FTS3 tables cannot be created), and wasmig's own functions.
pub(crate) const FUNCTION_ALLOW_LIST: &[&str] = &[
    // Core scalar functions.
    "abs",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "if",
    "ifnull",
    "iif",
    "instr",
    "last_insert_rowid",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "soundex",
    "sqlite_compileoption_get",
    "sqlite_compileoption_used",
    "sqlite_source_id",
    "sqlite_version",
    "substr",
    "substring",
    "subtype",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unistr",
    "unistr_quote",
    "unlikely",
    "upper",
    "zeroblob",
    // Date and time.
    "current_date",
    "current_time",
    "current_timestamp",
    "date",
    "datetime",
    "julianday",
    "strftime",
    "time",
    "timediff",
    "unixepoch",
    // Aggregates and window functions.
    "avg",
    "count",
    "cume_dist",
    "dense_rank",
    "first_value",
    "group_concat",
    "lag",
    "last_value",
    "lead",
    "nth_value",
    "ntile",
    "percent_rank",
    "rank",
    "row_number",
    "string_agg",
    "sum",
    "total",
    // JSON.
    "->",
    "->>",
    "json",
    "json_array",
    "json_array_insert",
    "json_array_length",
    "json_error_position",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_pretty",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_type",
    "json_valid",
    "jsonb",
    "jsonb_array",
    "jsonb_array_insert",
    "jsonb_extract",
    "jsonb_group_array",
    "jsonb_group_object",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_patch",
    "jsonb_remove",
    "jsonb_replace",
    "jsonb_set",
    // Internal: SQLite's ALTER TABLE runs these on the schema (and `sqlite_fail` on the
    // table's rows, for a new constraint); SQL cannot call them.
    "sqlite_add_constraint",
    "sqlite_drop_column",
    "sqlite_drop_constraint",
    "sqlite_fail",
    "sqlite_find_constraint",
    "sqlite_rename_column",
    "sqlite_rename_quotefix",
    "sqlite_rename_table",
    "sqlite_rename_test",
    // fts5: `x MATCH y` calls `match`, which the fts5 table overloads.
    "match",
    "fts5_get_locale",
    "fts5_insttoken",
    "fts5_locale",
];

/// Functions on [`FUNCTION_ALLOW_LIST`] that read the state of the connection that calls
/// them, or what the application's SQLite is: a plugin's statements may call them (the
/// connection is the host's), but not a trigger, view or default it leaves behind, which runs
/// later on the application's connection and would record how many rows its last statement
/// changed, its last rowid, or its SQLite build into the plugin's tables.
pub(crate) const CONNECTION_FUNCTIONS: &[&str] = &[
    "changes",
    "last_insert_rowid",
    "sqlite_compileoption_get",
    "sqlite_compileoption_used",
    "sqlite_source_id",
    "sqlite_version",
];

/// Functions on [`FUNCTION_ALLOW_LIST`] that SQLite compiles in only when built with an
/// option (`soundex`: `SQLITE_SOUNDEX`; fts5's scalar functions: `SQLITE_ENABLE_FTS5`), so
/// the application's SQLite of the same version may lack them: a plugin's statements may
/// call them, but nothing it leaves behind, and above all no CHECK constraint, generated
/// column or index, which the application's `integrity_check` and `VACUUM` evaluate again
/// and fail on, for every plugin's data. (The JSON functions are in every build but one made
/// with `SQLITE_OMIT_JSON`, which a plugin's fts5 or JSON columns would not survive either.)
pub(crate) const BUILD_FUNCTIONS: &[&str] = &["soundex", "fts5_insttoken", "fts5_locale"];

/// Functions on [`FUNCTION_ALLOW_LIST`] that give another answer at each call, or as time
/// passes: a plugin's statements, triggers, views and defaults may call them (a default
/// `randomblob(16)` is a key, one of `CURRENT_TIMESTAMP` a time), but not a table's CHECK
/// constraint, which SQLite evaluates again whenever it checks the table (SQLite itself
/// refuses them in generated columns and indexes, and the date functions' `'now'` in a
/// CHECK, but takes `CURRENT_TIMESTAMP` there): the same rows would pass at one check and
/// fail at the next, an `integrity_check` would report the database as damaged, and a
/// restore from a dump would lose rows.
pub(crate) const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "randomblob",
    "current_date",
    "current_time",
    "current_timestamp",
];

/// Functions the connection knows that plugins may not call, each for a reason given above
/// [`FUNCTION_ALLOW_LIST`]. Only the test that classifies every function reads this list.
#[cfg(test)]
const FUNCTION_DENY_LIST: &[&str] = &[
    "load_extension",
    "fts3_tokenizer",
    "sqlite_log",
    "total_changes",
    "rtreecheck",
    "rtreenode",
    "rtreedepth",
    "fts5",
    "matchinfo",
    "offsets",
    "optimize",
    "snippet",
    "highlight",
    "bm25",
    "fts5_source_id",
    SCAN_FUNCTION,
];

/// What the statement being prepared has done so far; reset before each prepare and step.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    /// The reason for the first denial, read back when the statement fails.
    pub denial: Option<String>,
    /// Whether that first denial was of a function's call (a name that is not an object's).
    pub denied_function: bool,
    /// Names outside the plugin's reach that the statement reads without reading a column,
    /// unqualified: SQLite reports a CTE and a stored table alike there, so they are allowed
    /// here and checked once the statement is prepared (see `SqliteBackend::check_reads`).
    pub unresolved: Vec<String>,
    ddl: Ddl,
    /// SQLite is compiling its own query that checks the table's rows against a constraint
    /// that `ALTER TABLE … ADD CHECK` adds (the query calls `sqlite_fail`): SQLite compiles
    /// it with its built-in functions in place of any the connection registered.
    checks_rows: bool,
    /// The plugin's columns that query reads, as `(schema, table, column)` (the schema
    /// `None` when SQLite named none): a generated one would be computed there with
    /// SQLite's built-in functions too (see `SqliteBackend::check_reads`).
    pub rows_checked: Vec<(Option<String>, String, String)>,
}

#[derive(Debug, Default, PartialEq, Clone, Copy)]
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
    /// The running plugin's views.
    views: Mutex<Views>,
    /// Its statements created a view since the host last looked (a load, not a lock, for
    /// the usual answer).
    views_created: AtomicBool,
}

/// `(schema, name)` of objects a plugin's statements created.
pub(crate) type Created = Vec<(String, String)>;

/// The running plugin's views, as its statements make them.
#[derive(Debug, Default)]
pub(crate) struct Views {
    /// Lowercase: those there when its step began, and every name its statements created a
    /// view under since.
    known: std::collections::HashSet<String>,
    /// `(schema, name)` of the views its statements created since the host last looked.
    created: Vec<(String, String)>,
    /// Lowercase: its fts5 tables, those there when its step began and those its statements
    /// created since.
    fts5: std::collections::HashSet<String>,
    /// `(schema, name)` of the fts5 tables its statements created since the host last looked.
    created_fts5: Vec<(String, String)>,
    /// One of its fts5 tables was renamed since the host last looked: the host learns the new
    /// name from the schema (SQLite's authorizer does not tell it).
    fts5_renamed: bool,
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

    /// The running plugin's views and fts5 tables when its step begins; emptied when it
    /// ends.
    pub(crate) fn set_views(
        &self,
        views: impl IntoIterator<Item = String>,
        fts5: impl IntoIterator<Item = String>,
    ) {
        let mut state = self.views.lock().unwrap_or_else(|p| p.into_inner());
        state.known.clear();
        state.created.clear();
        state.created_fts5.clear();
        state.fts5_renamed = false;
        state
            .known
            .extend(views.into_iter().map(|v| v.to_ascii_lowercase()));
        state.fts5.clear();
        state
            .fts5
            .extend(fts5.into_iter().map(|t| t.to_ascii_lowercase()));
    }

    /// `(schema, name)` of the views, then of the fts5 tables, the plugin's statements
    /// created since the last call, and whether they renamed one of its fts5 tables.
    pub(crate) fn take_created(&self) -> (Created, Created, bool) {
        // Called before every statement of a plugin's: a plain load first, as in `reset`.
        if !self.views_created.load(Ordering::Relaxed)
            || !self.views_created.swap(false, Ordering::Relaxed)
        {
            return Default::default();
        }
        let mut state = self.views.lock().unwrap_or_else(|p| p.into_inner());
        (
            std::mem::take(&mut state.created),
            std::mem::take(&mut state.created_fts5),
            std::mem::take(&mut state.fts5_renamed),
        )
    }

    /// Adds fts5 tables of the running plugin's, found in the schema after a rename.
    pub(crate) fn add_fts5(&self, names: impl IntoIterator<Item = String>) {
        let mut state = self.views.lock().unwrap_or_else(|p| p.into_inner());
        state
            .fts5
            .extend(names.into_iter().map(|t| t.to_ascii_lowercase()));
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
        let mut views = state.views.lock().unwrap_or_else(|p| p.into_inner());
        let verdict = check(&scope, &mut st, &mut views, &ctx);
        if !views.created.is_empty() || !views.created_fts5.is_empty() || views.fts5_renamed {
            state.views_created.store(true, Ordering::Relaxed);
        }
        match verdict {
            Ok(verdict) => verdict,
            Err(reason) => {
                if st.denial.is_none() {
                    st.denied_function = matches!(ctx.action, AuthAction::Function { .. });
                    st.denial = Some(reason);
                }
                Authorization::Deny
            }
        }
    }
}

fn check(
    scope: &Scope,
    st: &mut AuthState,
    views: &mut Views,
    ctx: &AuthContext<'_>,
) -> Result<Authorization, String> {
    if let AuthAction::Read {
        table_name,
        column_name,
    } = ctx.action
        && is_stat_table(table_name)
        && !column_name.is_empty()
        && bookkeeping(st, ctx) != Ddl::AlterOrDrop
        && !scope.may_read(table_name)
    {
        // `rtree` looks up its row estimate in sqlite_stat1 when it opens its table: it reads
        // NULL, as the plugin itself does (the statistics name every table). DROP and ALTER
        // keep the statistics of the plugin's own tables up to date (below).
        return Ok(Authorization::Ignore);
    }
    check_action(scope, st, views, ctx).map(|()| Authorization::Allow)
}

/// The kind of DDL whose bookkeeping (SQLite's reads and writes of its own tables for a
/// statement already authorized on the plugin's object) the action may be part of. A
/// trigger's program, which SQLite names as the action's accessor, is the plugin's own SQL
/// even where SQLite compiles it into a `DROP` or an `ALTER` (a foreign key's cascade fires
/// the child table's triggers inside `DROP TABLE`): it is part of none.
fn bookkeeping(st: &AuthState, ctx: &AuthContext<'_>) -> Ddl {
    if ctx.accessor.is_some() {
        Ddl::None
    } else {
        st.ddl
    }
}

/// The tables ANALYZE fills; DROP TABLE and DROP INDEX delete their rows for what they drop.
fn is_stat_table(table: &str) -> bool {
    ["sqlite_stat1", "sqlite_stat4"]
        .iter()
        .any(|t| eq(t, table))
}

fn check_action(
    scope: &Scope,
    st: &mut AuthState,
    views: &mut Views,
    ctx: &AuthContext<'_>,
) -> Result<(), String> {
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
    let own = |kind: &str, name: &str| -> Result<(), String> {
        if scope.owns(name) {
            Ok(())
        } else {
            Err(scope.outside(kind, name))
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
        AlterTable { table_name, .. } => {
            st.ddl = Ddl::AlterOrDrop;
            if views.fts5.contains(&table_name.to_ascii_lowercase()) {
                // A rename: its `rank` column keeps what it costs under the new name.
                views.fts5_renamed = true;
            }
            own("table", table_name)
        }
        DropTable { table_name } | DropTempTable { table_name } => {
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
            views.known.insert(view_name.to_ascii_lowercase());
            let schema = match ctx.action {
                CreateTempView { .. } => "temp",
                _ => ctx.database_name.unwrap_or("main"),
            };
            views
                .created
                .push((schema.to_string(), view_name.to_string()));
            own("view", view_name)
        }
        DropView { view_name } | DropTempView { view_name } => {
            st.ddl = Ddl::AlterOrDrop;
            own("view", view_name)
        }
        CreateVtable {
            table_name,
            module_name,
        } => {
            st.ddl = Ddl::Create;
            own("virtual table", table_name)?;
            if VTAB_MODULES.iter().any(|m| eq(m, module_name)) {
                if eq(module_name, "fts5") {
                    views.fts5.insert(table_name.to_ascii_lowercase());
                    views.created_fts5.push((
                        ctx.database_name.unwrap_or("main").to_string(),
                        table_name.to_string(),
                    ));
                }
                Ok(())
            } else {
                Err(format!(
                    "virtual table module {module_name:?} is not available to plugins \
                     (allowed: {})",
                    VTAB_MODULES.join(", ")
                ))
            }
        }
        DropVtable { table_name, .. } => {
            st.ddl = Ddl::AlterOrDrop;
            own("virtual table", table_name)
        }
        Reindex { index_name } => {
            if scope.owns_index(index_name) {
                Ok(())
            } else {
                Err(scope.outside("index", index_name))
            }
        }
        Insert { table_name } | Delete { table_name } | Update { table_name, .. } => {
            if is_schema_table(table_name) {
                Ok(())
            } else if (eq(table_name, "sqlite_sequence") || is_stat_table(table_name))
                && bookkeeping(st, ctx) == Ddl::AlterOrDrop
            {
                // DROP TABLE of an AUTOINCREMENT table removes its counter, and DROP or ALTER
                // of an analyzed table its statistics: SQLite's bookkeeping for a statement
                // already authorized on the plugin's own object.
                Ok(())
            } else {
                own("table", table_name)
            }
        }
        Read {
            table_name,
            column_name,
        } if eq(column_name, "rank") && views.fts5.contains(&table_name.to_ascii_lowercase()) => {
            // fts5's `rank` is its ranking function's answer (`bm25()` unless the table says
            // otherwise), as `rank MATCH '…'` configures it: one call walks the row's
            // matches once per phrase of the query, out of the step clock's reach, like the
            // auxiliary functions plugins may not call.
            Err(format!(
                "the rank column of fts5 table {table_name} is its ranking function's answer, \
                 whose one call costs the row's matches times the query's phrases; it is not \
                 available to plugins"
            ))
        }
        Read {
            table_name,
            column_name,
        } => {
            if scope.may_read(table_name) {
                if st.checks_rows && !column_name.is_empty() {
                    st.rows_checked.push((
                        ctx.database_name.map(str::to_string),
                        table_name.to_string(),
                        column_name.to_string(),
                    ));
                }
                return Ok(());
            }
            let table_function = !scope.table_functions_shadowed
                && TABLE_FUNCTIONS.iter().any(|f| eq(f, table_name));
            if ctx.database_name.is_none() {
                // A column of a CTE or subquery materialized by the statement itself: stored
                // tables always come with their schema, main or temp. A read of no column
                // (`count(*)`, `SELECT 1 FROM t`) of an unqualified name comes without a
                // schema whether the name is a CTE or a stored table: the host looks it up
                // once the statement is prepared.
                if column_name.is_empty() && !table_function {
                    st.unresolved.push(table_name.to_string());
                }
                return Ok(());
            }
            let internal = is_schema_table(table_name)
                || eq(table_name, "sqlite_sequence")
                || is_stat_table(table_name);
            // DROP and ALTER read the schema to find and rewrite what they change; CREATE reads
            // only the new row's ROWID (any other read is a `CREATE … AS SELECT` copying it).
            // SQLite's bookkeeping always reads a column; a read of none (`count(*)`) comes
            // without an accessor even inside a trigger when it is a subquery's, and is the
            // plugin's own.
            let ddl_bookkeeping = match bookkeeping(st, ctx) {
                Ddl::AlterOrDrop => !column_name.is_empty(),
                Ddl::Create => eq(column_name, "ROWID"),
                Ddl::None => false,
            };
            if internal && ddl_bookkeeping {
                return Ok(());
            }
            // `ALTER TABLE … ADD COLUMN` with a check, a generated `NOT NULL` or on a STRICT
            // table reads `pragma_quick_check(table)`, as SQLite writes it (an ALTER holds no
            // query of the plugin's); the pragma itself is authorized, with its table, when
            // the statement runs.
            if bookkeeping(st, ctx) == Ddl::AlterOrDrop
                && eq(table_name, "pragma_quick_check")
                && ctx.database_name.is_some_and(|db| eq(db, "main"))
            {
                return Ok(());
            }
            if table_function {
                return Ok(());
            }
            if internal {
                Err(format!(
                    "{table_name} lists every plugin's schema; a plugin may inspect only its own \
                     tables (PRAGMA table_info(<own table>), CREATE TABLE IF NOT EXISTS)"
                ))
            } else {
                Err(scope.outside("table", table_name))
            }
        }
        Select | Recursive => Ok(()),
        Function { function_name } => {
            if eq("sqlite_fail", function_name) {
                st.checks_rows = true;
            }
            if st.checks_rows && super::bounded_functions::replaced(function_name) {
                // SQLite's built-in is the one wasmig replaces: unbounded in time, or
                // answering for a blob what other builds of SQLite contradict (the constraint
                // would stand on rows that the application's `integrity_check` fails).
                return Err(format!(
                    "function {function_name}() in a CHECK constraint that ALTER TABLE adds: \
                     SQLite checks the table's rows with its own {function_name}(), not with \
                     wasmig's bounded one; make the table again with the constraint instead \
                     (create it, copy the rows, drop the old table, rename)"
                ));
            }
            if scope.stored && CONNECTION_FUNCTIONS.iter().any(|f| eq(f, function_name)) {
                Err(format!(
                    "function {function_name}() would read the state of the connection that \
                     uses the object (the application's)"
                ))
            } else if scope.stored && BUILD_FUNCTIONS.iter().any(|f| eq(f, function_name)) {
                Err(format!(
                    "function {function_name}() is in only some builds of SQLite, and the \
                     application's may lack it"
                ))
            } else if FUNCTION_ALLOW_LIST.iter().any(|f| eq(f, function_name)) {
                Ok(())
            } else {
                Err(format!(
                    "function {function_name}() is not available to plugins"
                ))
            }
        }
        Pragma {
            pragma_name,
            pragma_value,
        } => {
            let allowed = PRAGMA_ALLOW_LIST.iter().any(|a| eq(a, pragma_name));
            match pragma_value {
                // SQLite works a view's columns out with the authorizer switched off: a view
                // of the plugin's over another namespace's table would report that table's
                // columns.
                // SQLite passes the name as it looks it up (unquoted, spaces kept): both it
                // and the name with quotes and spaces taken off are checked.
                Some(object)
                    if allowed
                        && (eq(pragma_name, "table_info") || eq(pragma_name, "table_xinfo"))
                        && (views.known.contains(&object.to_ascii_lowercase())
                            || views.known.contains(&unquote(object).to_ascii_lowercase())) =>
                {
                    Err(format!(
                        "PRAGMA {pragma_name} of a view reports its columns without checking \
                         what the view reads; select from the view instead"
                    ))
                }
                Some(object) if allowed && scope.owns(object) && scope.owns(unquote(object)) => {
                    Ok(())
                }
                Some(object)
                    if (eq(pragma_name, "index_info") || eq(pragma_name, "index_xinfo"))
                        && scope.owns_index(object)
                        && scope.owns_index(unquote(object)) =>
                {
                    Ok(())
                }
                None if INTERNAL_PRAGMAS.iter().any(|p| eq(p, pragma_name)) => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoindexes_belong_to_their_table() {
        assert!(is_autoindex_of("sqlite_autoindex_notes__t_1", "notes__t"));
        assert!(!is_autoindex_of(
            "sqlite_autoindex_accounts__t_1",
            "notes__t"
        ));
        assert!(!is_autoindex_of("sqlite_autoindex_notes__t", "notes__t"));
        // A multi-byte character where a prefix would end is no panic.
        assert!(!is_autoindex_of(
            "notes__aaaaaaéxxxxxxxxxxxxxxxxxxxx",
            "notes__t"
        ));
        assert!(!is_autoindex_of("sqlite_autoindex_éé_1", "notes__t"));
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
            "SELECT value FROM json_each('[1,2]')",
            "SELECT count(*) FROM json_each('[1,2]')",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT * FROM c",
            // A read of no column of a CTE: named in the namespace (see below).
            "WITH RECURSIVE notes__c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM notes__c WHERE x < 3) SELECT count(*) FROM notes__c",
            "SELECT count(*) FROM notes__note",
            "CREATE VIRTUAL TABLE notes__fts USING fts5(body, content='notes__note', content_rowid='id');
             INSERT INTO notes__fts (notes__fts) VALUES ('rebuild');
             SELECT rowid FROM notes__fts WHERE notes__fts MATCH 'x'",
            "CREATE VIRTUAL TABLE notes__geo USING rtree(id, minx, maxx);
             INSERT INTO notes__geo VALUES (1, 0, 10); DELETE FROM notes__geo WHERE id = 1;
             SELECT id FROM notes__geo WHERE minx < 5",
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
    fn metadata_outside_the_namespace_is_not_readable() {
        let notes = Scope::new("notes", &[]);
        for sql in [
            // A read of no column, qualified: the row count. (Unqualified, the authorizer
            // cannot tell a CTE from a table: the backend looks the name up, tested end to
            // end in tests/all/metadata.rs.)
            "SELECT count(*) FROM main.accounts__user",
            "SELECT 1 FROM main.accounts__user",
            // Every pragma table function reads metadata of any object it is given.
            "SELECT * FROM pragma_table_info('accounts__user')",
            "SELECT name FROM pragma_table_list",
            "SELECT pgno FROM sqlite_dbpage",
            "SELECT name FROM dbstat",
            "PRAGMA page_size = 8192",
        ] {
            assert!(run(&notes, sql).is_err(), "{sql}");
        }
        let mut shadowed = notes.clone();
        shadowed.table_functions_shadowed = true;
        assert!(run(&shadowed, "SELECT * FROM json_each").is_err());
    }

    #[test]
    fn only_allowed_modules_make_virtual_tables() {
        let notes = Scope::new("notes", &[]);
        for module in [
            "sqlite_dbpage",
            "dbstat",
            "fts4",
            "fts3",
            "fts5vocab",
            "json_each",
        ] {
            let sql = format!("CREATE VIRTUAL TABLE notes__v USING {module}(main)");
            let err = run(&notes, &sql).unwrap_err();
            assert!(
                err.contains("is not available to plugins"),
                "{module}: {err}"
            );
        }
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

    #[test]
    fn only_listed_functions_can_be_called() {
        let notes = Scope::new("notes", &[]);
        for sql in [
            "SELECT rtreecheck('accounts__user')",
            "SELECT total_changes()",
            "SELECT sqlite_log(1, 'x')",
            "SELECT load_extension('x')",
            "SELECT fts3_tokenizer('simple')",
            "CREATE TABLE notes__t (x DEFAULT (sqlite_log(1, 'x'))); INSERT INTO notes__t DEFAULT VALUES",
            "CREATE TABLE notes__t (x, y AS (sqlite_log(1, x)))",
            "CREATE TABLE notes__t (x CHECK (sqlite_log(1, x)))",
            "CREATE TABLE notes__t (x); CREATE INDEX notes__i ON notes__t (sqlite_log(1, x))",
        ] {
            let err = run(&notes, sql).expect_err(sql);
            assert!(err.contains("is not available to plugins"), "{sql}: {err}");
        }
        for sql in [
            "SELECT abs(-1), Upper('x'), json_extract('{\"a\":1}', '$.a'), '[1]' ->> 0",
            "SELECT count(*), group_concat(body) FROM notes__note",
            "SELECT row_number() OVER (ORDER BY id) FROM notes__note",
            "SELECT last_insert_rowid(), changes(), date('now'), printf('%d', 1)",
        ] {
            assert_eq!(run(&notes, sql), Ok(()), "{sql}");
        }
        // Allowed for SQLite's own ALTER TABLE, unknown to SQL.
        let err = run(
            &notes,
            "SELECT sqlite_rename_test('main', 'x', 'table', 0, 0, 0, 0)",
        );
        assert!(err.unwrap_err().contains("no such function"));
    }

    /// Every function the connection knows is either allowed or refused with a reason, so a
    /// function a newer SQLite adds is a decision, not an accident.
    #[test]
    fn every_function_is_classified() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let mut s = c
            .prepare("SELECT DISTINCT name FROM pragma_function_list")
            .unwrap();
        let names: Vec<String> = s
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|n| n.unwrap())
            .collect();
        assert!(names.len() > 100, "{names:?}");
        let unclassified: Vec<&String> = names
            .iter()
            .filter(|n| {
                !FUNCTION_ALLOW_LIST.iter().any(|a| eq(a, n))
                    && !FUNCTION_DENY_LIST.iter().any(|d| eq(d, n))
            })
            .collect();
        assert!(unclassified.is_empty(), "not classified: {unclassified:?}");
        for allowed in FUNCTION_ALLOW_LIST {
            assert!(
                !FUNCTION_DENY_LIST.iter().any(|d| eq(d, allowed)),
                "{allowed} is in both lists"
            );
        }
        for limited in CONNECTION_FUNCTIONS
            .iter()
            .chain(VOLATILE_FUNCTIONS)
            .chain(BUILD_FUNCTIONS)
        {
            assert!(
                FUNCTION_ALLOW_LIST.iter().any(|a| eq(a, limited)),
                "{limited} is limited but not allowed"
            );
        }
    }
}
