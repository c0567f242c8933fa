//! The host's tables in the target database: the ledger, the applied state, stored
//! components and manifests, and their version.

use super::*;

/// The host's tables. Their names start with `_`, which no plugin namespace does.
pub(super) const HOST_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _wasmig_ledger (
    id               INTEGER PRIMARY KEY,
    plugin           TEXT NOT NULL,
    plugin_version   TEXT NOT NULL,
    version          TEXT NOT NULL,
    description      TEXT NOT NULL,
    direction        TEXT NOT NULL CHECK (direction IN ('up', 'down')),
    outcome          TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    error            TEXT,
    started_at_ms    INTEGER NOT NULL,
    duration_us      INTEGER NOT NULL,
    checksum         TEXT NOT NULL,
    component_sha256 TEXT NOT NULL,
    wasmig_version   TEXT NOT NULL,
    statements       TEXT NOT NULL,
    note             TEXT,
    applied_by       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS _wasmig_ledger_by_plugin ON _wasmig_ledger (plugin, id);
CREATE TABLE IF NOT EXISTS _wasmig_applied (
    plugin           TEXT NOT NULL,
    version          TEXT NOT NULL,
    checksum         TEXT NOT NULL,
    component_sha256 TEXT NOT NULL,
    plugin_version   TEXT NOT NULL,
    applied_at_ms    INTEGER NOT NULL,
    ledger_id        INTEGER NOT NULL REFERENCES _wasmig_ledger (id),
    PRIMARY KEY (plugin, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _wasmig_component (
    sha256 TEXT PRIMARY KEY,
    bytes  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS _wasmig_manifest (
    sha256   TEXT PRIMARY KEY,
    manifest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _wasmig_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO _wasmig_meta (key, value) VALUES ('schema_version', '3');
";

/// The version of the host's tables this wasmig writes (`_wasmig_meta.schema_version`).
pub(super) const HOST_SCHEMA_VERSION: i64 = 3;

/// From version 1: components and manifests were `WITHOUT ROWID` tables, which keep each
/// blob in the primary key's b-tree, so every lookup by SHA-256 read whole components from
/// disk. As rowid tables, the key's index holds only the SHA-256.
pub(super) const HOST_SCHEMA_1_TO_2: &str = "
CREATE TABLE _wasmig_component_v2 (
    sha256 TEXT PRIMARY KEY,
    bytes  BLOB NOT NULL
);
INSERT INTO _wasmig_component_v2 (sha256, bytes) SELECT sha256, bytes FROM _wasmig_component;
DROP TABLE _wasmig_component;
ALTER TABLE _wasmig_component_v2 RENAME TO _wasmig_component;
CREATE TABLE _wasmig_manifest_v2 (
    sha256   TEXT PRIMARY KEY,
    manifest TEXT NOT NULL
);
INSERT INTO _wasmig_manifest_v2 (sha256, manifest) SELECT sha256, manifest FROM _wasmig_manifest;
DROP TABLE _wasmig_manifest;
ALTER TABLE _wasmig_manifest_v2 RENAME TO _wasmig_manifest;
UPDATE _wasmig_meta SET value = '2' WHERE key = 'schema_version';
";

/// From version 2: the ledger says who ran each step.
pub(super) const HOST_SCHEMA_2_TO_3: &str = "
ALTER TABLE _wasmig_ledger ADD COLUMN applied_by TEXT NOT NULL DEFAULT '';
UPDATE _wasmig_meta SET value = '3' WHERE key = 'schema_version';
";

impl SqliteBackend {
    /// With a rollback journal in `DELETE` mode (SQLite's default), every transaction
    /// creates, syncs the directory for, and deletes the journal file; a run commits once per
    /// step. `TRUNCATE` keeps the file and empties it instead: the same durability, fewer
    /// filesystem operations. Only this connection's mode changes (rollback journal modes are
    /// not stored in the file), and a WAL database is left alone.
    pub(super) fn truncate_journal(&mut self) -> Result<()> {
        let e = |e| db_error(&self.path, "cannot read the journal mode", e);
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(e)?;
        if mode.eq_ignore_ascii_case("delete") {
            let now: String = self
                .conn
                .query_row("PRAGMA journal_mode = TRUNCATE", [], |r| r.get(0))
                .map_err(e)?;
            self.truncating = now.eq_ignore_ascii_case("truncate");
        }
        Ok(())
    }

    /// The version of the host's tables (0: none yet); a database written by a newer wasmig
    /// is refused rather than misread.
    pub(crate) fn host_schema_version(&mut self) -> Result<i64> {
        if !self.has_host_tables()? {
            return Ok(0);
        }
        let version: String = self
            .conn
            .query_row(
                "SELECT value FROM _wasmig_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.error("cannot read the version of wasmig's tables", e))?;
        match version.parse::<i64>() {
            Ok(v) if (1..=HOST_SCHEMA_VERSION).contains(&v) => Ok(v),
            _ => Err(Error::Database {
                path: self.path.clone(),
                message: format!(
                    "wasmig's tables are at version {version}, which this wasmig {} does not \
                     know (it writes version {HOST_SCHEMA_VERSION}): the database was written \
                     by a newer wasmig; run that one",
                    env!("CARGO_PKG_VERSION")
                ),
            }),
        }
    }

    pub(super) fn prepare_host_tables(&mut self) -> Result<()> {
        if self.host_schema_version()? == HOST_SCHEMA_VERSION {
            return Ok(());
        }
        // Inside an open transaction (a dry run), the tables go away with it.
        let own = !self.in_transaction;
        if own {
            self.begin()?;
        }
        // Another runner may have created or upgraded them while this one waited.
        let created = match self.host_schema_version() {
            Ok(0) => self.conn.execute_batch(HOST_SCHEMA),
            Ok(1) => {
                tracing::info!(database = %self.path.display(), "upgrading wasmig's tables to version 3");
                self.conn
                    .execute_batch(HOST_SCHEMA_1_TO_2)
                    .and_then(|()| self.conn.execute_batch(HOST_SCHEMA_2_TO_3))
            }
            Ok(2) => {
                tracing::info!(database = %self.path.display(), "upgrading wasmig's tables to version 3");
                self.conn.execute_batch(HOST_SCHEMA_2_TO_3)
            }
            Ok(_) => Ok(()),
            Err(e) => {
                if own {
                    let _ = self.rollback();
                }
                return Err(e);
            }
        };
        match created {
            Ok(()) if own => self.commit(),
            Ok(()) => Ok(()),
            Err(e) => {
                if own {
                    self.rollback()?;
                }
                Err(self.error("cannot create wasmig's tables", e))
            }
        }
    }

    pub(super) fn has_host_tables(&mut self) -> Result<bool> {
        if self.host_tables {
            return Ok(true);
        }
        self.host_tables = self
            .conn
            .query_row(
                "SELECT count(*) = 3 FROM sqlite_schema WHERE type = 'table'
                 AND name IN ('_wasmig_ledger', '_wasmig_applied', '_wasmig_meta')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| db_error(&self.path, "cannot read the schema", e))?;
        Ok(self.host_tables)
    }

    pub(super) fn load_state(&mut self) -> Result<State> {
        if !self.has_host_tables()? {
            return Ok(State::default());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT plugin, version, checksum, component_sha256, plugin_version, applied_at_ms
                 FROM _wasmig_applied",
            )
            .map_err(|e| self.error("cannot read the applied state", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_error(&self.path, "cannot read the applied state", e))?;
        let mut state = State::default();
        for (plugin, version, checksum, component_sha256, plugin_version, applied_at_ms) in rows {
            let parse = |v: &str| {
                semver::Version::parse(v).map_err(|e| Error::Database {
                    path: self.path.clone(),
                    message: format!("corrupt applied state for plugin {plugin}: {v:?}: {e}"),
                })
            };
            let version = parse(&version)?;
            let step = AppliedStep {
                version: version.clone(),
                checksum,
                component_sha256,
                plugin_version: parse(&plugin_version)?,
                applied_at_ms,
            };
            state
                .applied
                .entry(plugin.clone())
                .or_default()
                .insert(version, step);
        }
        Ok(state)
    }

    pub(super) fn is_applied(&mut self, plugin: &str, version: &semver::Version) -> Result<bool> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM _wasmig_applied WHERE plugin = ?1 AND version = ?2)",
            )
            .and_then(|mut s| s.query_row(params![plugin, version.to_string()], |r| r.get(0)))
            .map_err(|e| db_error(&self.path, "cannot read the applied state", e))
    }

    pub(super) fn record(&mut self, e: &LedgerEntry) -> Result<()> {
        let statements = serde_json::to_string(&e.statements).expect("strings serialize");
        self.conn
            .prepare_cached(
                "INSERT INTO _wasmig_ledger (plugin, plugin_version, version, description,
                     direction, outcome, error, started_at_ms, duration_us, checksum,
                     component_sha256, wasmig_version, statements, note, applied_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    e.plugin,
                    e.plugin_version,
                    e.version,
                    e.description,
                    e.direction.as_str(),
                    e.outcome.as_str(),
                    e.error,
                    e.started_at_ms,
                    e.duration_us,
                    e.checksum,
                    e.component_sha256,
                    e.wasmig_version,
                    statements,
                    e.note,
                    e.applied_by
                ])
            })
            .map_err(|err| self.error("cannot write the ledger", err))?;
        let ledger_id = self.conn.last_insert_rowid();
        if e.outcome == Outcome::Succeeded {
            let changed = match e.direction {
                Direction::Up => self
                    .conn
                    .prepare_cached(
                        "INSERT INTO _wasmig_applied (plugin, version, checksum, component_sha256,
                         plugin_version, applied_at_ms, ledger_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            e.plugin,
                            e.version,
                            e.checksum,
                            e.component_sha256,
                            e.plugin_version,
                            e.started_at_ms,
                            ledger_id
                        ])
                    }),
                Direction::Down => self
                    .conn
                    .prepare_cached(
                        "DELETE FROM _wasmig_applied WHERE plugin = ?1 AND version = ?2",
                    )
                    .and_then(|mut s| s.execute(params![e.plugin, e.version])),
            }
            .map_err(|err| self.error("cannot update the applied state", err))?;
            if changed != 1 {
                return Err(Error::Database {
                    path: self.path.clone(),
                    message: format!(
                        "applied state of plugin {} step {} is not what the ledger expects",
                        e.plugin, e.version
                    ),
                });
            }
        }
        Ok(())
    }

    /// See [`crate::store::Backend::describe_data`]: the rows of the plugin's ordinary
    /// tables (not virtual tables, whose shadow tables hold their index, not rows of
    /// their own), each stored value as SQL's literal of it.
    pub(super) fn describe_data(
        &mut self,
        plugin: &str,
        max_bytes: usize,
    ) -> Result<Option<Vec<String>>> {
        use crate::store::{ROW_IN_FULL, abbreviated, described_row, held_bytes};
        use rusqlite::types::ValueRef;
        let ns = crate::manifest::namespace(plugin);
        let conn = &self.conn;
        let fail = |e: rusqlite::Error| self.error("cannot describe the plugin's rows", e);
        let tables: Vec<String> = conn
            .prepare(
                "SELECT name FROM pragma_table_list
                  WHERE schema = 'main' AND type = 'table'
                    AND substr(lower(name), 1, length(?1)) = ?1
                  ORDER BY name",
            )
            .and_then(|mut s| s.query_map([&ns], |r| r.get(0))?.collect())
            .map_err(fail)?;
        let mut lines = Vec::new();
        let mut held = 0;
        // What SQLite hands over of the values: a column added with a default is not stored
        // in the rows made before it, and is read (and hashed) in full for each of them.
        let mut read = 0usize;
        let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        for table in &tables {
            // The stored columns: a VIRTUAL generated column is computed from them as it is
            // read, by an expression of the plugin's, here on the host's connection outside
            // any step's bounds, and compares nothing they do not.
            let columns: Vec<String> = conn
                .prepare("SELECT name FROM pragma_table_xinfo(?1, 'main') WHERE hidden <> 2 ORDER BY cid")
                .and_then(|mut s| s.query_map([table], |r| r.get::<_, String>(0))?.collect())
                .map_err(fail)?;
            let columns: Vec<String> = columns.iter().map(|c| quoted(c)).collect();
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {} FROM main.{}",
                    columns.join(", "),
                    quoted(table)
                ))
                .map_err(fail)?;
            let width = statement.column_count();
            let mut rows = statement.query([]).map_err(fail)?;
            while let Some(row) = rows.next().map_err(fail)? {
                if lines.len() == crate::store::MAX_DESCRIBED_ROWS {
                    return Err(Error::Database {
                        path: self.path.clone(),
                        message: format!(
                            "plugin {plugin} has more than {} rows: too many to compare",
                            crate::store::MAX_DESCRIBED_ROWS
                        ),
                    });
                }
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    let value = row.get_ref(i).map_err(fail)?;
                    if let ValueRef::Text(b) | ValueRef::Blob(b) = value {
                        read += b.len();
                        if read > crate::store::MAX_DESCRIBED_READ {
                            return Ok(None);
                        }
                    }
                    values.push(match value {
                        ValueRef::Null => "NULL".to_string(),
                        ValueRef::Integer(n) => n.to_string(),
                        ValueRef::Real(x) => format!("{x:?}"),
                        // A long value is described without being copied as text whole.
                        ValueRef::Text(t) if t.len() > ROW_IN_FULL => {
                            let start = String::from_utf8_lossy(&t[..ROW_IN_FULL]);
                            abbreviated(&format!("'{}", start.replace('\'', "''")), t, "'")
                        }
                        ValueRef::Text(t) => {
                            format!("'{}'", String::from_utf8_lossy(t).replace('\'', "''"))
                        }
                        ValueRef::Blob(b) if b.len() > ROW_IN_FULL / 2 => {
                            let start = hex::encode(&b[..ROW_IN_FULL / 2]);
                            abbreviated(&format!("x'{start}"), b, "'")
                        }
                        ValueRef::Blob(b) => format!("x'{}'", hex::encode(b)),
                    });
                }
                let line = described_row(format!("row {table} ({})", values.join(", ")));
                held += held_bytes(&line);
                if held > max_bytes {
                    return Ok(None);
                }
                lines.push(line);
            }
        }
        lines.sort();
        Ok(Some(lines))
    }

    /// See [`crate::store::Backend::describe_schema`]: tables by their columns
    /// (`table_xinfo`), indexes by their columns (`index_xinfo`, the constraints' own
    /// included), views and triggers by their SQL with spacing and quoting normalised.
    pub(super) fn describe_schema(&mut self, plugin: &str) -> Result<Vec<String>> {
        let ns = crate::manifest::namespace(plugin);
        let conn = &self.conn;
        let fail = |e: rusqlite::Error| self.error("cannot describe the plugin's schema", e);
        let objects: Vec<(String, String, String, Option<String>)> = conn
            .prepare(
                "SELECT type, name, tbl_name, sql FROM main.sqlite_schema
                  WHERE substr(lower(name), 1, length(?1)) = ?1
                     OR (type = 'index' AND substr(lower(tbl_name), 1, length(?1)) = ?1)
                  ORDER BY name",
            )
            .and_then(|mut s| {
                s.query_map([&ns], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(fail)?;
        // SQL as SQLite keeps it may differ in spacing and quoting after a rename and back.
        let normal = |sql: &str| {
            sql.replace(['"', '`', '[', ']'], "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_lowercase()
        };
        let mut lines = Vec::new();
        for (kind, name, table, sql) in &objects {
            match kind.as_str() {
                "table" => {
                    let sql = sql.as_deref().unwrap_or_default();
                    if sql.to_ascii_lowercase().starts_with("create virtual table") {
                        lines.push(format!("virtual table {name}: {}", normal(sql)));
                        continue;
                    }
                    lines.push(format!("table {name}"));
                    let columns: Vec<String> = conn
                        .prepare("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1)")
                        .and_then(|mut s| {
                            s.query_map([name], |r| {
                                let (column, ty, notnull, default, pk, hidden): (
                                    String,
                                    String,
                                    bool,
                                    Option<String>,
                                    i64,
                                    i64,
                                ) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
                                let mut line = format!("column {name}.{column} {ty}");
                                if notnull {
                                    line.push_str(" not null");
                                }
                                if let Some(d) = default {
                                    line.push_str(&format!(" default {d}"));
                                }
                                if pk > 0 {
                                    line.push_str(&format!(" primary key {pk}"));
                                }
                                if hidden > 0 {
                                    line.push_str(" generated");
                                }
                                Ok(line)
                            })?
                            .collect()
                        })
                        .map_err(fail)?;
                    lines.extend(columns);
                    let indexes: Vec<(String, bool, String, bool)> = conn
                        .prepare(
                            "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)",
                        )
                        .and_then(|mut s| {
                            s.query_map([name], |r| {
                                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                            })?
                            .collect()
                        })
                        .map_err(fail)?;
                    for (index, unique, origin, partial) in indexes {
                        let keys: Vec<String> = conn
                            .prepare(
                                "SELECT coalesce(name, '<expression>') || CASE desc WHEN 1 THEN ' desc' ELSE '' END
                                   FROM pragma_index_xinfo(?1) WHERE key ORDER BY seqno",
                            )
                            .and_then(|mut s| s.query_map([&index], |r| r.get(0))?.collect())
                            .map_err(fail)?;
                        // The constraints' own indexes are named by SQLite in the order they
                        // were made: described by what they index, not by name.
                        let label = if origin == "c" {
                            format!("index {index}")
                        } else {
                            format!(
                                "{} index",
                                if origin == "pk" {
                                    "primary key"
                                } else {
                                    "unique"
                                }
                            )
                        };
                        lines.push(format!(
                            "{label} on {name} ({}){}{}",
                            keys.join(", "),
                            if unique { " unique" } else { "" },
                            if partial { " partial" } else { "" },
                        ));
                    }
                    let keys: Vec<String> = conn
                        .prepare(
                            "SELECT \"table\", group_concat(\"from\" || '->' || coalesce(\"to\", ''), ', '),
                                    on_update, on_delete
                               FROM pragma_foreign_key_list(?1) GROUP BY id ORDER BY id",
                        )
                        .and_then(|mut s| {
                            s.query_map([name], |r| {
                                Ok(format!(
                                    "foreign key {name} -> {} ({}) on update {} on delete {}",
                                    r.get::<_, String>(0)?,
                                    r.get::<_, String>(1)?,
                                    r.get::<_, String>(2)?,
                                    r.get::<_, String>(3)?
                                ))
                            })?
                            .collect()
                        })
                        .map_err(fail)?;
                    lines.extend(keys);
                }
                // Indexes come with their tables (an index on another plugin's table is
                // not the plugin's to have).
                "index" => {}
                other => lines.push(format!(
                    "{other} {name} on {table}: {}",
                    normal(sql.as_deref().unwrap_or_default())
                )),
            }
        }
        lines.sort();
        Ok(lines)
    }

    pub(super) fn ledger(&mut self, query: &crate::LedgerQuery) -> Result<Vec<LedgerEntry>> {
        if !self.has_host_tables()? {
            return Ok(Vec::new());
        }
        let statements = if query.without_statements {
            "'[]'"
        } else {
            "statements"
        };
        let clause = query.clause("_wasmig_ledger", false);
        // Before version 3 the ledger had no `applied_by` (the next run adds it).
        let applied_by = if self.host_schema_version()? >= 3 {
            "applied_by"
        } else {
            "''"
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, plugin, plugin_version, version, description, direction, outcome,
                        error, started_at_ms, duration_us, checksum, component_sha256,
                        wasmig_version, {statements}, note, {applied_by}
                 FROM _wasmig_ledger{clause}"
            ))
            .map_err(|e| self.error("cannot read the ledger", e))?;
        let rows = stmt
            .query_map(params![query.plugin, query.before], |r| {
                let direction: String = r.get(5)?;
                let outcome: String = r.get(6)?;
                let statements: String = r.get(13)?;
                Ok(LedgerEntry {
                    id: r.get(0)?,
                    plugin: r.get(1)?,
                    plugin_version: r.get(2)?,
                    version: r.get(3)?,
                    description: r.get(4)?,
                    direction: if direction == "down" {
                        Direction::Down
                    } else {
                        Direction::Up
                    },
                    outcome: if outcome == "succeeded" {
                        Outcome::Succeeded
                    } else {
                        Outcome::Failed
                    },
                    error: r.get(7)?,
                    started_at_ms: r.get(8)?,
                    duration_us: r.get(9)?,
                    checksum: r.get(10)?,
                    component_sha256: r.get(11)?,
                    wasmig_version: r.get(12)?,
                    statements: serde_json::from_str(&statements).unwrap_or_default(),
                    note: r.get(14)?,
                    applied_by: r.get(15)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_error(&self.path, "cannot read the ledger", e))?;
        // Read newest first (so a limit keeps the newest), given oldest first.
        let mut rows = rows;
        rows.reverse();
        Ok(rows)
    }

    pub(super) fn store_component(
        &mut self,
        sha256: &str,
        bytes: &[u8],
        manifest: &crate::Manifest,
    ) -> Result<()> {
        let e = |e| db_error(&self.path, "cannot store the plugin's component", e);
        let stored: bool = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM _wasmig_component WHERE sha256 = ?1)")
            .and_then(|mut s| s.query_row([sha256], |r| r.get(0)))
            .map_err(e)?;
        if !stored {
            let json = serde_json::to_string(manifest).expect("manifests serialize");
            self.conn
                .execute(
                    "INSERT INTO _wasmig_component (sha256, bytes) VALUES (?1, ?2)",
                    params![sha256, bytes],
                )
                .map_err(e)?;
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO _wasmig_manifest (sha256, manifest) VALUES (?1, ?2)",
                    params![sha256, json],
                )
                .map_err(e)?;
        }
        Ok(())
    }

    pub(super) fn load_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT bytes FROM _wasmig_component WHERE sha256 = ?1",
                [sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error("cannot read a stored component", e))
    }

    pub(super) fn stored_manifests(
        &mut self,
        sha256s: Option<&[String]>,
    ) -> Result<std::collections::BTreeMap<String, crate::Manifest>> {
        if !self.has_host_tables()? {
            return Ok(Default::default());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sha256, manifest FROM _wasmig_manifest")
            .map_err(|e| self.error("cannot read stored manifests", e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_error(&self.path, "cannot read stored manifests", e))?;
        let wanted: Option<std::collections::BTreeSet<&String>> =
            sha256s.map(|s| s.iter().collect());
        let mut out = std::collections::BTreeMap::new();
        for (sha, json) in rows {
            if wanted.as_ref().is_some_and(|w| !w.contains(&sha)) {
                continue;
            }
            let manifest = serde_json::from_str(&json).map_err(|e| Error::Database {
                path: self.path.clone(),
                message: format!("stored manifest of component {sha} is corrupt: {e}"),
            })?;
            out.insert(sha, manifest);
        }
        Ok(out)
    }

    pub(super) fn record_abandoned(&mut self) -> Result<()> {
        let path = watchdog::abandoned_path(&self.path);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(Error::Io {
                    what: "abandoned steps' record",
                    path,
                    source,
                });
            }
        };
        let entries: Vec<LedgerEntry> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Database {
                path: path.clone(),
                message: format!("cannot read the abandoned steps to record: {e}"),
            })?;
        self.begin()?;
        for entry in &entries {
            if let Err(e) = self.record(entry) {
                let _ = self.rollback();
                return Err(e);
            }
        }
        self.commit()?;
        tracing::warn!(
            database = %self.path.display(),
            "recorded {} step(s) that a host abandoned past their deadline",
            entries.len()
        );
        std::fs::remove_file(&path).map_err(|source| Error::Io {
            what: "abandoned steps' record",
            path,
            source,
        })
    }
}
