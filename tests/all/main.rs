//! End-to-end tests: the real `wasmig` binary and library, real components compiled from
//! `example-plugins/`, a real SQLite file. One file per feature.

mod support;

mod bad_plugins;
mod batch;
mod compile_cache;
mod concurrency;
mod declared;
mod dry_run;
mod end_to_end;
mod escape;
mod grants;
mod host_tables;
mod hostile;
mod library;
mod limits;
mod no_wasi;
mod rollback;
mod validate;
