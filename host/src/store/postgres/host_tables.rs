//! The host's tables on PostgreSQL: applied state, ledger, stored components and
//! manifests, read and written on the host role's session (a successful step's row on the
//! plugin's, through `wasmig.record_step`).

use super::*;

/// Writes a step's ledger row from the plugin's session, spending the step's token.
pub(super) const RECORD_STEP: &str = "SELECT wasmig.record_step($1, $2, $3, $4, $5, $6::bigint, \
     $7::bigint, $8, $9, $10, $11, $12::text, $13)";

impl PgBackend {
    pub(super) fn load_state(&mut self) -> Result<State> {
        if !self.has_host_tables()? {
            return Ok(State::default());
        }
        let rows = self.host_run(
            "cannot read the applied state",
            "SELECT plugin, version, checksum, component_sha256, plugin_version, applied_at_ms
               FROM wasmig.applied",
            vec![],
        )?;
        let mut state = State::default();
        for r in rows {
            let plugin = Self::text(&r[0]);
            let parse = |v: &str| {
                semver::Version::parse(v).map_err(|e| {
                    self.error(
                        "corrupt applied state",
                        format!("plugin {plugin}: {v:?}: {e}"),
                    )
                })
            };
            let version = parse(&Self::text(&r[1]))?;
            let step = AppliedStep {
                version: version.clone(),
                checksum: Self::text(&r[2]),
                component_sha256: Self::text(&r[3]),
                plugin_version: parse(&Self::text(&r[4]))?,
                applied_at_ms: Self::int(&r[5]),
            };
            state
                .applied
                .entry(plugin)
                .or_default()
                .insert(version, step);
        }
        Ok(state)
    }

    pub(super) fn is_applied(&mut self, plugin: &str, version: &semver::Version) -> Result<bool> {
        self.revive()?;
        // The step's transaction holds the lock: the host's session, which commits nothing
        // meanwhile, sees every step other runners committed before it was taken. The
        // guard's inputs come in the same round trip: no runner sets a plugin up without the
        // same lock, so they hold until the step ends (a role's settings changed by hand
        // meanwhile make the guard refuse the step).
        if matches!(&self.open, Open::Step { plugin: running, .. } if running == plugin) {
            let (applied, inputs) = self.guard_inputs(plugin, &version.to_string())?;
            self.step_inputs = Some((plugin.to_string(), inputs));
            return Ok(applied);
        }
        let rows = self.host_run(
            "cannot read the applied state",
            "SELECT EXISTS (SELECT 1 FROM wasmig.applied WHERE plugin = $1 AND version = $2)",
            vec![
                Param::Text(plugin.to_string()),
                Param::Text(version.to_string()),
            ],
        )?;
        Ok(rows.first().is_some_and(|r| r[0] == Value::Integer(1)))
    }

    pub(super) fn record(&mut self, e: &LedgerEntry) -> Result<()> {
        let statements = serde_json::to_string(&e.statements).expect("strings serialize");
        if let Open::Step { plugin, token } = &self.open
            && e.outcome == Outcome::Succeeded
        {
            if plugin != &e.plugin {
                return Err(self.error(
                    "cannot write the ledger",
                    format!("a step of {} in plugin {plugin}'s transaction", e.plugin),
                ));
            }
            let params = vec![
                Param::Text(token.clone()),
                Param::Text(e.plugin_version.clone()),
                Param::Text(e.version.clone()),
                Param::Text(e.description.clone()),
                Param::Text(e.direction.as_str().to_string()),
                Param::Integer(e.started_at_ms),
                Param::Integer(e.duration_us),
                Param::Text(e.checksum.clone()),
                Param::Text(e.component_sha256.clone()),
                Param::Text(e.wasmig_version.clone()),
                Param::Text(statements),
                e.note.clone().map_or(Param::Null, Param::Text),
                Param::Text(e.applied_by.clone()),
            ];
            if !self.plugins.contains_key(plugin) {
                return Err(self.error("cannot write the ledger", "the plugin's session has ended"));
            }
            // Written with the commit, in its round trip (see `commit`).
            self.ledger_row = Some(params);
            return Ok(());
        }
        // The host's own transaction: a failure, or a dry run's step.
        let rows = self.host_run(
            "cannot write the ledger",
            "INSERT INTO wasmig.ledger (plugin, plugin_version, version, description,
                 direction, outcome, error, started_at_ms, duration_us, checksum,
                 component_sha256, wasmig_version, statements, note, applied_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7::text, $8::bigint, $9::bigint, $10, $11, $12,
                     $13, $14::text, $15)
             RETURNING id",
            vec![
                Param::Text(e.plugin.clone()),
                Param::Text(e.plugin_version.clone()),
                Param::Text(e.version.clone()),
                Param::Text(e.description.clone()),
                Param::Text(e.direction.as_str().to_string()),
                Param::Text(e.outcome.as_str().to_string()),
                e.error.clone().map_or(Param::Null, Param::Text),
                Param::Integer(e.started_at_ms),
                Param::Integer(e.duration_us),
                Param::Text(e.checksum.clone()),
                Param::Text(e.component_sha256.clone()),
                Param::Text(e.wasmig_version.clone()),
                Param::Text(statements),
                e.note.clone().map_or(Param::Null, Param::Text),
                Param::Text(e.applied_by.clone()),
            ],
        )?;
        if e.outcome == Outcome::Succeeded {
            let id = rows.first().map(|r| Self::int(&r[0])).unwrap_or(0);
            let changed = match e.direction {
                Direction::Up => self.host.run(
                    "INSERT INTO wasmig.applied (plugin, version, checksum, component_sha256,
                         plugin_version, applied_at_ms, ledger_id)
                     VALUES ($1, $2, $3, $4, $5, $6::bigint, $7::bigint)",
                    vec![
                        Param::Text(e.plugin.clone()),
                        Param::Text(e.version.clone()),
                        Param::Text(e.checksum.clone()),
                        Param::Text(e.component_sha256.clone()),
                        Param::Text(e.plugin_version.clone()),
                        Param::Integer(e.started_at_ms),
                        Param::Integer(id),
                    ],
                    None,
                    HOST_MAX_RESULT,
                ),
                Direction::Down => self.host.run(
                    "DELETE FROM wasmig.applied WHERE plugin = $1 AND version = $2",
                    vec![
                        Param::Text(e.plugin.clone()),
                        Param::Text(e.version.clone()),
                    ],
                    None,
                    HOST_MAX_RESULT,
                ),
            }
            .map_err(|err| self.error("cannot update the applied state", err))?;
            if changed.changed != Some(1) {
                return Err(self.error(
                    "cannot update the applied state",
                    format!(
                        "plugin {} step {} is not what the ledger expects",
                        e.plugin, e.version
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn ledger(&mut self, query: &crate::LedgerQuery) -> Result<Vec<LedgerEntry>> {
        if !self.has_host_tables()? {
            return Ok(Vec::new());
        }
        // Version 1's ledger has no `applied_by`.
        let applied_by = if self.host_version >= 2 {
            "applied_by"
        } else {
            "''::text"
        };
        let statements = if query.without_statements {
            "'[]'::text"
        } else {
            "statements"
        };
        let sql = format!(
            "SELECT id, plugin, plugin_version, version, description, direction, outcome,
                    error, started_at_ms, duration_us, checksum, component_sha256,
                    wasmig_version, {statements}, note, {applied_by}
               FROM wasmig.ledger{}",
            query.clause("wasmig.ledger", true)
        );
        let rows = self
            .host
            .run_host(
                &sql,
                vec![
                    query.plugin.clone().map_or(Param::Null, Param::Text),
                    query.before.map_or(Param::Null, Param::Integer),
                ],
            )
            .map_err(|e| self.error("cannot read the ledger", e))?
            .rows;
        // Read newest first (so a limit keeps the newest), given oldest first.
        Ok(rows
            .into_iter()
            .rev()
            .map(|r| LedgerEntry {
                id: Self::int(&r[0]),
                plugin: Self::text(&r[1]),
                plugin_version: Self::text(&r[2]),
                version: Self::text(&r[3]),
                description: Self::text(&r[4]),
                direction: if Self::text(&r[5]) == "down" {
                    Direction::Down
                } else {
                    Direction::Up
                },
                outcome: if Self::text(&r[6]) == "succeeded" {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                },
                error: match &r[7] {
                    Value::Null => None,
                    v => Some(Self::text(v)),
                },
                started_at_ms: Self::int(&r[8]),
                duration_us: Self::int(&r[9]),
                checksum: Self::text(&r[10]),
                component_sha256: Self::text(&r[11]),
                wasmig_version: Self::text(&r[12]),
                statements: serde_json::from_str(&Self::text(&r[13])).unwrap_or_default(),
                note: match &r[14] {
                    Value::Null => None,
                    v => Some(Self::text(v)),
                },
                applied_by: Self::text(&r[15]),
            })
            .collect())
    }

    pub(super) fn store_component(
        &mut self,
        sha256: &str,
        bytes: &[u8],
        manifest: &crate::Manifest,
    ) -> Result<()> {
        let json = serde_json::to_string(manifest).expect("manifests serialize");
        // Content-addressed: storing it before the step commits leaves, at worst, a component
        // no step was applied from.
        self.host_run(
            "cannot store the plugin's component",
            "WITH c AS (INSERT INTO wasmig.component (sha256, bytes) VALUES ($1, $2)
                        ON CONFLICT DO NOTHING)
             INSERT INTO wasmig.manifest (sha256, manifest) VALUES ($1, $3)
             ON CONFLICT (sha256) DO UPDATE SET manifest = EXCLUDED.manifest",
            vec![
                Param::Text(sha256.to_string()),
                Param::Blob(bytes.to_vec()),
                Param::Text(json),
            ],
        )?;
        Ok(())
    }

    pub(super) fn load_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let rows = self.host_run(
            "cannot read a stored component",
            "SELECT bytes FROM wasmig.component WHERE sha256 = $1",
            vec![Param::Text(sha256.to_string())],
        )?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .and_then(|v| match v {
                Value::Blob(b) => Some(b),
                _ => None,
            }))
    }

    pub(super) fn stored_manifests(
        &mut self,
        sha256s: Option<&[String]>,
    ) -> Result<BTreeMap<String, crate::Manifest>> {
        if !self.has_host_tables()? {
            return Ok(BTreeMap::new());
        }
        let rows = self.host_run(
            "cannot read stored manifests",
            "SELECT sha256, manifest FROM wasmig.manifest",
            vec![],
        )?;
        let wanted: Option<BTreeSet<&String>> = sha256s.map(|s| s.iter().collect());
        let mut out = BTreeMap::new();
        for r in rows {
            let sha = Self::text(&r[0]);
            if wanted.as_ref().is_some_and(|w| !w.contains(&sha)) {
                continue;
            }
            let manifest = serde_json::from_str(&Self::text(&r[1])).map_err(|e| {
                self.error(
                    "stored manifest is corrupt",
                    format!("component {sha}: {e}"),
                )
            })?;
            out.insert(sha, manifest);
        }
        Ok(out)
    }
}
