//! End-to-end tests: the real `wasmig` binary and library, real components compiled from
//! `example-plugins/`, a real SQLite file. One file per feature.

mod scripted;
mod support;

mod bad_plugins;
mod batch;
mod browser;
mod compile_cache;
mod concurrency;
mod deadline;
mod declared;
mod destructive;
mod dry_run;
mod end_to_end;
mod escape;
mod foreign_keys;
mod grants;
mod host_tables;
mod hostile;
mod library;
mod limits;
mod metadata;
mod no_wasi;
mod objects_later;
mod postgres;
mod real_sql;
mod record;
mod rollback;
mod scaffold;
mod serve;
mod temp_storage;
mod validate;
mod virtual_tables;
