//! Write [wasmig](https://github.com/wasmig/wasmig) migration plugins in Rust.
//!
//! A plugin is a WebAssembly component that declares its name, version, dependencies and
//! migrations. wasmig loads it, orders it among the other plugins, and runs each pending
//! migration in its own transaction, in a sandbox whose only power is SQL on the plugin's own
//! tables. A plugin named `notes` owns every table, index, view and trigger whose name starts
//! with `notes__` (hyphens in the name become underscores: `knowledge-base` owns
//! `knowledge_base__*`).
//!
//! A plugin declares itself with [`plugin!`], in its `src/lib.rs`:
//!
//! ```ignore
//! wasmig_guest::plugin! {
//!     description: "Notes attached to accounts",
//!     depends_on: ["accounts" = "^0.2"],
//!     migrations: "migrations",
//! }
//! ```
//!
//! Its steps live in the crate's `migrations/` folder, embedded when the plugin compiles:
//! `0.1.0-create-notes.up.sql` with its `0.1.0-create-notes.down.sql` for SQL steps (wasmig
//! runs their SQL as data, without compiling the plugin), and `0.2.0-add-slugs.rs` for a step
//! written in Rust, which receives the step's transaction:
//!
//! ```
//! // migrations/0.2.0-add-slugs.rs
//! use wasmig_guest::{Result, Tx};
//!
//! /// Stands for this code in the step's checksum: change it when what the code does changes.
//! pub const REVISION: &str = "1";
//!
//! pub fn up(tx: &Tx) -> Result<()> {
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
//! ```
//!
//! `wasmig new NAME` makes such a crate, `wasmig add DESCRIPTION` its next step, and
//! `wasmig test` checks that every down step undoes its up step.
//!
//! `plugin!` writes a `const` [`StaticPlugin`], which a plugin may also write by hand
//! (exported with [`export_static_plugin!`]); a plugin whose steps are only known at run
//! time builds a [`Plugin`] instead (exported with [`export_plugin!`]). The checksums of the
//! three are the same, so a plugin can move between them.
#![deny(missing_docs)]

mod declaration;
mod error;
mod plugin;
mod tx;
mod value;

pub use declaration::{SECTION, StaticMigration, StaticPlugin};

pub use error::{Error, Result};
pub use plugin::{Migration, Plugin, StepFn};
pub use tx::{Batch, Tx};
pub use value::{FromValue, Row, Rows, Value};
/// Declares and exports the plugin of this crate: its migrations folder, embedded at compile
/// time, and its code steps.
///
/// ```ignore
/// wasmig_guest::plugin! {
///     // Every key is optional. `name` and `version` default to the crate's, `description`
///     // to the crate's description.
///     description: "Notes attached to accounts",
///     depends_on: ["accounts" = "^0.2"],
///     reads: ["accounts"],
///     // `<version>-<slug>.up.sql` and its optional `<version>-<slug>.down.sql`, relative
///     // to the crate's directory. The slug, hyphens as spaces, is the step's description.
///     migrations: "migrations",
///     // Code steps, beside the SQL steps, ordered with them by version. `revision` (default
///     // "1") stands for the code in the checksum: change it when the code's effect changes.
///     code: [
///         code("0.3.0", "add slugs", up = backfill),
///         code("0.4.0", "split names", up = split, down = join, revision = "2"),
///     ],
/// }
/// ```
///
/// It defines `PLUGIN` (a [`StaticPlugin`]) and `CHECKSUMS` (each step's version and
/// checksum, computed when the plugin compiled) and exports the plugin as
/// [`export_static_plugin!`] does: the SQL travels as data, and the host runs it without
/// compiling the plugin.
///
/// Every mistake is a compile error that names the file: a name that is not
/// `<version>-<slug>.up.sql` or `.down.sql`, a version that is not semantic, two steps with
/// one version, a down file without its up file, a step newer than the plugin's version, a
/// plugin name wasmig would refuse.
pub use wasmig_guest_macros::plugin;

use std::cell::{Cell, RefCell};
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

use __bindings::wasmig::plugin::{log as wit_log, types as wit_types};

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
