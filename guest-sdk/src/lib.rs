//! Write [wasmig](https://github.com/wasmig/wasmig) migration plugins in Rust.
//!
//! A plugin is a WebAssembly component that declares its name, version, dependencies and
//! migrations. wasmig loads it, orders it among the other plugins, and runs each pending
//! migration in its own transaction, in a sandbox whose only power is SQL on the plugin's own
//! tables. A plugin named `notes` owns every table, index, view and trigger whose name starts
//! with `notes__` (hyphens in the name become underscores: `knowledge-base` owns
//! `knowledge_base__*`).
//!
//! Migrations are either SQL (typically `include_str!` of `.sql` files) or Rust code that
//! receives the step's transaction:
//!
//! ```
//! use wasmig_guest::{Migration, Plugin, Result, Tx};
//!
//! fn backfill(tx: &Tx) -> Result<()> {
//!     let rows = tx.query("SELECT id, title FROM notes__note", &[])?;
//!     for row in &rows {
//!         let id: i64 = row.get("id")?;
//!         let title: String = row.get("title")?;
//!         tx.execute(
//!             "UPDATE notes__note SET slug = ?1 WHERE id = ?2",
//!             wasmig_guest::params![title.to_lowercase().replace(' ', "-"), id],
//!         )?;
//!     }
//!     Ok(())
//! }
//!
//! fn plugin() -> Plugin {
//!     Plugin::new("notes", "0.2.0")
//!         .description("Notes attached to accounts")
//!         .depends_on("accounts", "^0.2")
//!         .migration(
//!             Migration::sql("0.1.0", "create notes", "CREATE TABLE notes__note (id INTEGER PRIMARY KEY, title TEXT)")
//!                 .down_sql("DROP TABLE notes__note"),
//!         )
//!         .migration(Migration::code("0.2.0", "add slugs", "slug-v1", backfill))
//! }
//!
//! // In the plugin crate (built with `cargo build --target wasm32-wasip2 --release`):
//! // wasmig_guest::export_plugin!(plugin);
//! # let p = plugin();
//! # assert_eq!(p.migrations().len(), 2);
//! # assert!(p.migrations()[0].is_reversible());
//! # assert!(!p.migrations()[1].is_reversible());
//! ```
//!
//! A plugin whose definition is known at compile time can be declared as a `const`
//! [`StaticPlugin`] instead, and exported with [`export_static_plugin!`]: the SDK then also
//! writes the declaration into the component as data, and wasmig reads the manifest and runs
//! the SQL steps without compiling the plugin (a plugin of SQL steps only is never compiled
//! or run). Its checksums are the same as the builder's, so a plugin can move between the two.
#![deny(missing_docs)]

mod declaration;
mod value;

pub use declaration::{SECTION, StaticMigration, StaticPlugin};
pub use value::{FromValue, Row, Rows, Value};

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

thread_local! {
    /// The parameters of the `execute` call being made, packed; reused from call to call.
    static PACKED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The count of rows changed of the [`Batch`] whose rows the host may still be running
    /// (`send-batch-packed`): the host's `finish-batches` answers for it.
    static SENDING: RefCell<Option<Rc<Cell<u64>>>> = const { RefCell::new(None) };
}

#[doc(hidden)]
#[allow(missing_docs)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "migration-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_migration_plugin",
        default_bindings_module: "wasmig_guest::__bindings",
        additional_derives: [PartialEq],
        generate_all,
    });
}

use __bindings::wasmig::plugin::{log as wit_log, sql as wit_sql, types as wit_types};

/// The result type of every fallible SDK call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a statement or a migration failed.
///
/// The host sends the first four; a plugin raises its own with [`Error::other`]. Returning
/// any of them from a migration fails the step: the host rolls it back and records the error.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The host refused: the statement touches something outside this plugin's namespace, or
    /// does something no plugin may do. The text names the object or action.
    AccessDenied(String),
    /// A constraint failed (UNIQUE, NOT NULL, CHECK, FOREIGN KEY).
    Constraint(String),
    /// The statement is not valid SQL or names something that does not exist.
    Syntax(String),
    /// A limit was reached (result size, statement length, deadline).
    Limit(String),
    /// Anything else.
    Other(String),
}

impl Error {
    /// An error raised by the plugin itself.
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other(message.into())
    }

    /// The error's message without its kind.
    pub fn message(&self) -> &str {
        match self {
            Error::AccessDenied(m)
            | Error::Constraint(m)
            | Error::Syntax(m)
            | Error::Limit(m)
            | Error::Other(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Error::AccessDenied(_) => "access denied",
            Error::Constraint(_) => "constraint failed",
            Error::Syntax(_) => "SQL error",
            Error::Limit(_) => "limit reached",
            Error::Other(_) => "error",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for Error {}

impl From<wit_types::Error> for Error {
    fn from(e: wit_types::Error) -> Self {
        match e {
            wit_types::Error::AccessDenied(m) => Error::AccessDenied(m),
            wit_types::Error::Constraint(m) => Error::Constraint(m),
            wit_types::Error::Syntax(m) => Error::Syntax(m),
            wit_types::Error::Limit(m) => Error::Limit(m),
            wit_types::Error::Other(m) => Error::Other(m),
        }
    }
}

impl From<Error> for wit_types::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::AccessDenied(m) => wit_types::Error::AccessDenied(m),
            Error::Constraint(m) => wit_types::Error::Constraint(m),
            Error::Syntax(m) => wit_types::Error::Syntax(m),
            Error::Limit(m) => wit_types::Error::Limit(m),
            Error::Other(m) => wit_types::Error::Other(m),
        }
    }
}

/// The transaction of the step that is running.
///
/// Every call goes to the host, which runs it inside the step's transaction with the plugin's
/// permissions. A plugin cannot commit or roll back: returning `Ok` from the migration commits
/// the step, returning an error rolls it back.
pub struct Tx {
    _private: (),
}

impl Tx {
    /// Runs one statement with positional parameters and returns how many rows it changed.
    pub fn execute(&self, statement: &str, params: &[Value]) -> Result<u64> {
        // Packed into bytes the host reads in place (`execute-packed`): cheaper to build and to
        // cross than a `list<value>`, in a buffer reused from call to call.
        PACKED.with_borrow_mut(|packed| {
            packed.clear();
            for value in params {
                value.pack(packed);
            }
            let changed = wit_sql::execute_packed(statement, packed);
            if packed.capacity() > Batch::CHUNK_BYTES {
                *packed = Vec::new();
            }
            Ok(changed?)
        })
    }

    /// Runs one statement that returns rows.
    pub fn query(&self, statement: &str, params: &[Value]) -> Result<Rows> {
        Ok(Rows::from_wit(wit_sql::query(statement, params)?))
    }

    /// Runs one statement once per parameter list, in order, and returns the total number of
    /// rows changed; stops at the first error. Rows of one width go as a [`Tx::batch`] does
    /// (values packed end to end, a few thousand rows per call to the host); other lists in
    /// one `execute-many` call. For large loads [`Tx::batch`] needs less memory: it does not
    /// hold every row.
    pub fn execute_many(&self, statement: &str, params: &[Vec<Value>]) -> Result<u64> {
        let width = params.first().map_or(0, Vec::len);
        if width == 0 || params.iter().any(|row| row.len() != width) {
            // No rows, rows without parameters, or ragged rows: the host reports what is
            // wrong (an empty list still prepares, so checks, the statement).
            return Ok(wit_sql::execute_many(statement, params)?);
        }
        let mut batch = self.batch(statement);
        for row in params {
            batch.push(row)?;
        }
        batch.finish()
    }

    /// Runs a script of `;`-separated statements without parameters.
    pub fn execute_script(&self, script: &str) -> Result<()> {
        Ok(wit_sql::execute_script(script)?)
    }

    /// Starts a batch: rows for one statement, sent to the host a few thousand at a time
    /// with their values end to end (no list per row). The fastest way to load many rows,
    /// in bounded memory. Call [`Batch::finish`] at the end.
    ///
    /// The host inserts each chunk on another thread while the plugin builds the next one
    /// (a batch of a single chunk runs at `finish`, with nothing to overlap), so an error in
    /// a row (a constraint, say) comes back from a later call: the next
    /// [`Batch::row`] that sends a chunk, [`Batch::finish`], or any other call of the
    /// transaction. Rows after the failed one are not run. A step that returns `Ok` while a
    /// batch it sent failed unreported (a batch dropped without `finish`) fails anyway.
    ///
    /// ```no_run
    /// # use wasmig_guest::{Tx, Result, Value};
    /// fn load(tx: &Tx) -> Result<()> {
    ///     let mut batch = tx.batch("INSERT INTO shop__item (id, name) VALUES (?1, ?2)");
    ///     for i in 0..100_000i64 {
    ///         batch.row([Value::from(i), format!("item-{i}").into()])?;
    ///     }
    ///     batch.finish()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn batch<'t>(&'t self, statement: &'t str) -> Batch<'t> {
        Batch {
            statement,
            width: 0,
            packed: Vec::new(),
            values: 0,
            sent: false,
            changed: Rc::new(Cell::new(0)),
        }
    }
}

/// Rows for one statement, sent to the host in chunks; see [`Tx::batch`].
#[must_use = "rows still buffered are only sent by `finish`"]
pub struct Batch<'t> {
    statement: &'t str,
    width: usize,
    /// The buffered rows' values, packed as `execute-batch-packed` takes them.
    packed: Vec<u8>,
    /// How many values `packed` holds.
    values: usize,
    /// Some rows were sent to run on the host's worker.
    sent: bool,
    /// Rows changed by the rows sent so far (shared with `SENDING` while the host may still
    /// be running some).
    changed: Rc<Cell<u64>>,
}

impl Batch<'_> {
    /// How many values are buffered before they go to the host.
    const CHUNK_VALUES: usize = 16 * 1024;
    /// How many bytes of packed values are buffered before they go to the host (for rows
    /// of long text or blobs).
    const CHUNK_BYTES: usize = 1 << 20;

    /// Adds one row. Every row has as many values as the first one.
    pub fn row(&mut self, row: impl IntoIterator<Item = Value>) -> Result<()> {
        self.push(row)
    }

    fn push<V: std::borrow::Borrow<Value>>(
        &mut self,
        row: impl IntoIterator<Item = V>,
    ) -> Result<()> {
        let start = self.packed.len();
        let mut width = 0;
        for value in row {
            value.borrow().pack(&mut self.packed);
            width += 1;
        }
        if self.width == 0 {
            self.width = width;
        }
        if width == 0 {
            return Err(Error::other("a batch row needs at least one value"));
        }
        if width != self.width {
            self.packed.truncate(start);
            return Err(Error::other(format!(
                "a batch row has {width} values; this batch's rows have {}",
                self.width
            )));
        }
        self.values += width;
        if self.values >= Self::CHUNK_VALUES || self.packed.len() >= Self::CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the buffered rows. The host runs them on another thread while the plugin goes
    /// on building the next ones (`send-batch-packed`); what they did comes back later.
    fn flush(&mut self) -> Result<()> {
        if self.values > 0 {
            // Rows another batch sent are counted for it before these go.
            let other = SENDING.with_borrow(|s| s.clone());
            if let Some(other) = other.filter(|o| !Rc::ptr_eq(o, &self.changed)) {
                SENDING.set(None);
                other.set(other.get() + wit_sql::finish_batches()?);
            }
            wit_sql::send_batch_packed(self.statement, self.width as u32, &self.packed)?;
            SENDING.set(Some(self.changed.clone()));
            self.sent = true;
            self.packed.clear();
            self.values = 0;
        }
        Ok(())
    }

    /// Sends the remaining rows, waits for the host to run them all, and returns the total
    /// number of rows changed.
    pub fn finish(mut self) -> Result<u64> {
        if !self.sent {
            // One chunk in all: nothing to overlap with, so it runs before the call returns
            // (no worker thread for the step).
            if self.values > 0 {
                let (statement, width) = (self.statement, self.width as u32);
                let n = wit_sql::execute_batch_packed(statement, width, &self.packed)?;
                self.changed.set(self.changed.get() + n);
            }
            return Ok(self.changed.get());
        }
        self.flush()?;
        let mine =
            SENDING.with_borrow(|s| s.as_ref().is_some_and(|s| Rc::ptr_eq(s, &self.changed)));
        if mine {
            SENDING.set(None);
            self.changed
                .set(self.changed.get() + wit_sql::finish_batches()?);
        }
        Ok(self.changed.get())
    }
}

/// Builds a `&[Value]` parameter list from anything that converts into [`Value`].
///
/// ```
/// let p = wasmig_guest::params![1, "two", 3.0, None::<i64>];
/// assert_eq!(p.len(), 4);
/// assert_eq!(p[1], wasmig_guest::Value::Text("two".into()));
/// ```
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::Value::from($value)),*][..]
    };
}

/// Code that runs as a migration step.
pub type StepFn = fn(&Tx) -> Result<()>;

#[derive(Clone)]
enum Step {
    Sql(String),
    /// The code, and the revision its author declares for the checksum.
    Code(StepFn, String),
}

impl Step {
    fn run(&self, tx: &Tx) -> Result<()> {
        match self {
            Step::Sql(script) => tx.execute_script(script),
            Step::Code(f, _) => f(tx),
        }
    }
}

/// One migration step: a version, what it does going up, and optionally how to undo it.
#[derive(Clone)]
pub struct Migration {
    version: String,
    description: String,
    up: Step,
    down: Option<Step>,
}

impl Migration {
    /// A step that runs a SQL script (`;`-separated statements).
    ///
    /// Its checksum is computed from the script (and the `down` script, if any), so editing
    /// the SQL of an applied step is reported as drift.
    pub fn sql(version: &str, description: &str, up: &str) -> Self {
        Migration {
            version: version.to_string(),
            description: description.to_string(),
            up: Step::Sql(up.to_string()),
            down: None,
        }
    }

    /// A step that runs Rust code.
    ///
    /// Code cannot be fingerprinted reliably, so the step declares a `revision`: change it
    /// whenever the code's effect changes, and wasmig reports the applied step as drifted.
    pub fn code(version: &str, description: &str, revision: &str, up: StepFn) -> Self {
        Migration {
            version: version.to_string(),
            description: description.to_string(),
            up: Step::Code(up, revision.to_string()),
            down: None,
        }
    }

    /// Makes the step reversible with a SQL script.
    pub fn down_sql(mut self, down: &str) -> Self {
        self.down = Some(Step::Sql(down.to_string()));
        self
    }

    /// Makes the step reversible with code; `revision` plays the same role as in
    /// [`Migration::code`].
    pub fn down_code(mut self, revision: &str, down: StepFn) -> Self {
        self.down = Some(Step::Code(down, revision.to_string()));
        self
    }

    /// The step's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the step can be undone.
    pub fn is_reversible(&self) -> bool {
        self.down.is_some()
    }

    /// The step's checksum: `sha256:` and the hex SHA-256 of what the step runs.
    ///
    /// ```
    /// use wasmig_guest::Migration;
    /// let a = Migration::sql("0.1.0", "t", "CREATE TABLE x__t (id INTEGER)");
    /// let b = Migration::sql("0.1.0", "t", "CREATE TABLE x__t (id INTEGER, y TEXT)");
    /// assert_ne!(a.checksum(), b.checksum());
    /// assert!(a.checksum().starts_with("sha256:"));
    /// ```
    pub fn checksum(&self) -> String {
        use wasmig_format::checksum::{Body, step};
        fn body(s: &Step) -> Body<'_> {
            match s {
                Step::Sql(sql) => Body::Sql(sql),
                Step::Code(_, revision) => Body::Code(revision),
            }
        }
        step(body(&self.up), self.down.as_ref().map(body))
    }
}

/// A plugin: its identity, what it depends on, and its migrations.
#[derive(Clone)]
pub struct Plugin {
    name: String,
    version: String,
    description: String,
    depends_on: Vec<(String, String)>,
    reads: Vec<String>,
    migrations: Vec<Migration>,
}

impl Plugin {
    /// A plugin with a name (lowercase words joined by hyphens) and a semver version.
    pub fn new(name: &str, version: &str) -> Self {
        Plugin {
            name: name.to_string(),
            version: version.to_string(),
            description: String::new(),
            depends_on: Vec::new(),
            reads: Vec::new(),
            migrations: Vec::new(),
        }
    }

    /// One line that says what the plugin is.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_string();
        self
    }

    /// Requires `plugin` at a version matching the semver `requirement` (e.g. `^0.2`) to be
    /// migrated before this one.
    pub fn depends_on(mut self, plugin: &str, requirement: &str) -> Self {
        self.depends_on
            .push((plugin.to_string(), requirement.to_string()));
        self
    }

    /// Asks to read `plugin`'s tables. The operator must grant it in the host's policy.
    pub fn reads(mut self, plugin: &str) -> Self {
        self.reads.push(plugin.to_string());
        self
    }

    /// Adds a migration step.
    pub fn migration(mut self, migration: Migration) -> Self {
        self.migrations.push(migration);
        self
    }

    /// The plugin's migrations, in the order they were declared.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    fn find(&self, version: &str) -> Result<&Migration> {
        self.migrations
            .iter()
            .find(|m| m.version == version)
            .ok_or_else(|| Error::other(format!("plugin {} has no migration {version}", self.name)))
    }
}

/// Writes a message to the host's log, tagged with this plugin's name.
pub mod log {
    use super::wit_log;

    /// Logs at trace level.
    pub fn trace(message: &str) {
        wit_log::write(wit_log::Level::Trace, message);
    }
    /// Logs at debug level.
    pub fn debug(message: &str) {
        wit_log::write(wit_log::Level::Debug, message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        wit_log::write(wit_log::Level::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        wit_log::write(wit_log::Level::Warn, message);
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        wit_log::write(wit_log::Level::Error, message);
    }
}

#[doc(hidden)]
pub mod __private {
    use super::*;
    use crate::__bindings::exports::wasmig::plugin::plugin as wit_plugin;

    pub use crate::declaration::{encode, encoded_len};
    pub use wit_plugin::{Guest, PluginManifest as WitManifest};

    /// Built without WASI (wasm32-unknown-unknown), a plugin has no stderr for a panic's
    /// message: send it through the log import at error level instead, where the host puts
    /// it into the step's failure. Built for wasm32-wasip2, std's own hook writes it to
    /// stderr, which the host captures.
    pub fn report_panics() {
        #[cfg(not(target_os = "wasi"))]
        {
            static HOOK: std::sync::Once = std::sync::Once::new();
            HOOK.call_once(|| {
                std::panic::set_hook(Box::new(|info| {
                    wit_log::write(wit_log::Level::Error, &info.to_string());
                }))
            });
        }
    }

    pub fn manifest(p: &Plugin) -> wit_plugin::PluginManifest {
        report_panics();
        wit_plugin::PluginManifest {
            name: p.name.clone(),
            version: p.version.clone(),
            description: p.description.clone(),
            depends_on: p
                .depends_on
                .iter()
                .map(|(name, requirement)| wit_plugin::Dependency {
                    name: name.clone(),
                    requirement: requirement.clone(),
                })
                .collect(),
            reads: p.reads.clone(),
            migrations: p
                .migrations
                .iter()
                .map(|m| wit_plugin::Migration {
                    version: m.version.clone(),
                    description: m.description.clone(),
                    reversible: m.is_reversible(),
                    checksum: m.checksum(),
                })
                .collect(),
        }
    }

    pub fn up(p: &Plugin, version: &str) -> std::result::Result<(), wit_types::Error> {
        report_panics();
        let tx = Tx { _private: () };
        p.find(version)?.up.run(&tx).map_err(Into::into)
    }

    pub fn down(p: &Plugin, version: &str) -> std::result::Result<(), wit_types::Error> {
        report_panics();
        let tx = Tx { _private: () };
        let m = p.find(version)?;
        match &m.down {
            Some(step) => step.run(&tx).map_err(Into::into),
            None => Err(wit_types::Error::Other(format!(
                "migration {version} of plugin {} is not reversible",
                p.name
            ))),
        }
    }
}

/// Exports a plugin from this crate. Takes a function that returns the [`Plugin`].
///
/// ```no_run
/// fn plugin() -> wasmig_guest::Plugin {
///     wasmig_guest::Plugin::new("notes", "0.1.0")
/// }
/// wasmig_guest::export_plugin!(plugin);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($definition:path) => {
        struct __WasmigPlugin;

        impl __WasmigPlugin {
            fn get() -> &'static $crate::Plugin {
                static PLUGIN: ::std::sync::OnceLock<$crate::Plugin> = ::std::sync::OnceLock::new();
                PLUGIN.get_or_init($definition)
            }
        }

        impl $crate::__private::Guest for __WasmigPlugin {
            fn manifest() -> $crate::__private::WitManifest {
                $crate::__private::manifest(Self::get())
            }
            fn up(
                version: ::std::string::String,
            ) -> ::std::result::Result<(), $crate::__bindings::wasmig::plugin::types::Error> {
                $crate::__private::up(Self::get(), &version)
            }
            fn down(
                version: ::std::string::String,
            ) -> ::std::result::Result<(), $crate::__bindings::wasmig::plugin::types::Error> {
                $crate::__private::down(Self::get(), &version)
            }
        }

        $crate::__bindings::__export_migration_plugin!(__WasmigPlugin with_types_in $crate::__bindings);
    };
}
