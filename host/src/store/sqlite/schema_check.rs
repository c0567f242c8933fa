//! The schema check around a step: the mark before it, and after it the comparison that
//! every object the step created, changed or dropped is the plugin's, reading only the pages
//! of `sqlite_schema` the step changed (see `schema_pages`).

use super::*;

/// The schema before a step, as one plugin sees it.
#[derive(Debug, Clone)]
pub(crate) struct SchemaMark {
    /// `PRAGMA schema_version` of main and temp: unchanged means no DDL ran there.
    pub versions: [i64; 2],
    /// Order-independent digest (sum of row hashes, row count) of the objects that are not
    /// the plugin's, in main and in temp.
    pub foreign: [(u64, u64); 2],
    /// The plugin's own objects, sorted.
    pub owned: Vec<SchemaObject>,
}

/// One schema object, as `sqlite_schema` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SchemaObject {
    /// `main` or `temp`.
    pub schema: String,
    /// `table`, `index`, `view` or `trigger`.
    pub kind: String,
    pub name: String,
    pub table: String,
    pub sql: Option<String>,
}

/// A scan of the schema stopped because the plugin's own objects (their names and
/// definitions, main and TEMP) passed the bytes the host copies for it: how many it had seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PastCap(pub u64);

/// What the scan of main's schema by its pages found.
pub(super) enum PageScan {
    /// This SQLite cannot read the pages, or they do not read as expected: read every row.
    Unavailable,
    Scanned(LeafPart),
    PastCap(PastCap),
}

impl SqliteBackend {
    /// The most bytes of the running plugin's own objects (names and definitions, main and
    /// TEMP) the host copies when it reads its schema during and after a step: three times
    /// the larger of its quota of definitions and what it held at the step's mark (a plugin
    /// past a quota lowered since must be able to shrink). Three: SQLite's table
    /// rebuild holds a table's old and new definitions at once, and a TEMP copy of it made
    /// from a select as a backup. `None` before a plugin's step has run on this connection.
    pub(super) fn scan_cap(&self) -> Option<u64> {
        self.step_schema_quota
            .map(|quota| quota.max(self.marked_bytes).saturating_mul(3))
    }

    /// Why the host stopped reading a plugin's objects, for its errors.
    pub(super) fn past_cap_text(&self) -> String {
        format!(
            "past the {} KiB of them the host reads for a step (max_schema in [limits] is {} \
             KiB)",
            self.scan_cap().unwrap_or(0) / 1024,
            self.step_schema_quota.unwrap_or(0) / 1024
        )
    }

    /// Runs `check` (the schema check's compiling of what a step leaves behind, which the
    /// plugin's objects can make as slow as they like) on the step's clock: the progress
    /// handler, which SQLite also calls while it generates code, and the watchdog. Past the
    /// deadline the check fails, and so does the step.
    pub(super) fn on_step_clock(
        &mut self,
        check: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let (result, late) = self.clocked(check)?;
        let memory = self.step_memory;
        match result {
            Err(_) if late => Err(
                "the step was still being checked at its deadline: its triggers and views take \
                 too long to compile"
                    .to_string(),
            ),
            Err(e) if e.contains("out of memory") => Err(format!(
                "its triggers and views need more than the {} MiB of SQLite's memory a step \
                 may use to compile ({e})",
                memory.unwrap_or(0) >> 20
            )),
            other => other,
        }
    }

    /// Runs `work` on the step's clock and within its memory (see [`Self::on_step_clock`]),
    /// and says whether the deadline had passed when it ended. `Err`: the clock could not be
    /// set, and `work` did not run.
    pub(super) fn clocked<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> T,
    ) -> Result<(T, bool), String> {
        let Some(deadline) = self.step_deadline else {
            return Ok((work(self), false));
        };
        // SQLite checks the watchdog's interrupt at every progress point whatever the
        // handler; the handler is the bound without the watchdog's thread. Called at every
        // progress point (some are far apart while SQLite generates code), it reads the clock
        // at every 64th: a clock read per opcode would be a large share of a small step's
        // checks.
        let mut calls = 0u32;
        let set = self.conn.progress_handler(
            1,
            Some(move || {
                calls = calls.wrapping_add(1);
                calls.is_multiple_of(64) && Instant::now() >= deadline
            }),
        );
        if let Err(e) = set {
            return Err(format!("cannot bound the schema check: {e}"));
        }
        self.watchdog.arm(deadline);
        // Compiling what the step left (a view over views over views) is SQLite's memory
        // spent for the plugin: bounded as its statements were.
        crate::sqlite_memory::bound(self.step_memory);
        let result = work(self);
        crate::sqlite_memory::bound(None);
        self.watchdog.disarm();
        let _ = self.conn.progress_handler(0, None::<fn() -> bool>);
        Ok((result, Instant::now() >= deadline))
    }

    pub(super) fn release_mark(&mut self) -> Result<()> {
        self.conn
            .execute_batch("RELEASE wasmig_step")
            .map_err(|e| self.error("cannot release the step's mark", e))
    }

    pub(super) fn schema_versions(&self) -> Result<[i64; 2]> {
        let read = |sql| {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
                .map_err(|e| self.error("cannot read the schema version", e))
        };
        Ok([
            read("PRAGMA main.schema_version")?,
            read("PRAGMA temp.schema_version")?,
        ])
    }

    /// Every schema object of main and temp, sorted (for naming what changed).
    pub(super) fn schema_objects(&self) -> Result<Vec<SchemaObject>> {
        let mut objects = Vec::new();
        self.each_schema_row(|schema, row| {
            objects.push(SchemaObject {
                schema: schema.to_string(),
                kind: text(row, 0),
                name: text(row, 1),
                table: text(row, 2),
                sql: row.get(3)?,
            });
            Ok(())
        })?;
        objects.sort();
        Ok(objects)
    }

    /// One pass over the schema: the plugin's own objects in full, everything else as an
    /// order-independent keyed digest (rows are hashed in place, not copied out). A schema
    /// whose `schema_version` is still the one in `reuse` is taken from there, not read again
    /// (a step's DDL rarely touches temp); main is read page by page where SQLite allows it
    /// (see [`Self::scan_main_by_pages`]). `Ok(Err)`: the plugin's own objects passed `cap`
    /// bytes (see [`owned_bytes`]), and the scan stopped copying them there.
    pub(super) fn scan_schema(
        &mut self,
        scope: &Scope,
        versions: [i64; 2],
        reuse: Option<&SchemaMark>,
        cap: Option<u64>,
    ) -> Result<std::result::Result<SchemaMark, PastCap>> {
        self.scan_schema_within(scope, versions, reuse, cap.unwrap_or(u64::MAX))
    }

    fn scan_schema_within(
        &mut self,
        scope: &Scope,
        versions: [i64; 2],
        reuse: Option<&SchemaMark>,
        cap: u64,
    ) -> Result<std::result::Result<SchemaMark, PastCap>> {
        let mut owned = Vec::new();
        let mut foreign = [(0u64, 0u64); 2];
        let mut seen = 0u64;
        for (i, schema) in ["main", "temp"].into_iter().enumerate() {
            if let Some(mark) = reuse
                && mark.versions[i] == versions[i]
            {
                foreign[i] = mark.foreign[i];
                let from = owned.len();
                owned.extend(mark.owned.iter().filter(|o| o.schema == schema).cloned());
                seen += owned_bytes(&owned[from..]);
                if seen > cap {
                    return Ok(Err(PastCap(seen)));
                }
                continue;
            }
            if i == 0 {
                match self.scan_main_by_pages(scope, cap)? {
                    PageScan::PastCap(past) => return Ok(Err(past)),
                    PageScan::Scanned(part) => {
                        if cfg!(debug_assertions) {
                            // Every debug build (the whole test suite) checks the page walk
                            // against reading every row.
                            let mut full = self.scan_rows(scope, schema, None, u64::MAX)?;
                            let mut pages = part.owned.clone();
                            full.owned.sort();
                            pages.sort();
                            assert_eq!(
                                (part.foreign, pages),
                                ((full.sum, full.count), full.owned),
                                "the page-by-page schema scan disagrees with reading every row"
                            );
                        }
                        foreign[i] = part.foreign;
                        seen += owned_bytes(&part.owned);
                        owned.extend(part.owned);
                        continue;
                    }
                    PageScan::Unavailable => {}
                }
            }
            let out = self.scan_rows(scope, schema, None, cap.saturating_sub(seen))?;
            seen += out.owned_bytes;
            if out.past_cap || seen > cap {
                return Ok(Err(PastCap(seen)));
            }
            foreign[i] = (out.sum, out.count);
            owned.extend(out.owned);
        }
        owned.sort();
        Ok(Ok(SchemaMark {
            versions,
            foreign,
            owned,
        }))
    }

    /// Runs the scan aggregate over one schema table, or over the rows of one rowid range of
    /// it, copying at most `cap` bytes of the scope's own rows (see [`ScanOut::cap`];
    /// `u64::MAX`: no bound).
    pub(super) fn scan_rows(
        &self,
        scope: &Scope,
        schema: &str,
        rowids: Option<(i64, i64)>,
        cap: u64,
    ) -> Result<ScanOut> {
        // One pass inside SQLite: rows are filtered and hashed by the aggregate, without
        // crossing back into Rust once per row.
        self.scan_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let scan = format!(
            "SELECT {SCAN_FUNCTION}(?1, '{schema}', type, name, tbl_name, sql) \
             FROM {schema}.sqlite_schema"
        );
        use std::sync::atomic::Ordering;
        self.scan_room.store(cap, Ordering::Relaxed);
        let scanned = match rowids {
            None => self
                .conn
                .prepare_cached(&scan)
                .and_then(|mut stmt| stmt.query_row([&scope.own], |_| Ok(()))),
            Some((lo, hi)) => self
                .conn
                .prepare_cached(&format!("{scan} WHERE rowid BETWEEN ?2 AND ?3"))
                .and_then(|mut stmt| stmt.query_row(params![&scope.own, lo, hi], |_| Ok(()))),
        };
        self.scan_room.store(u64::MAX, Ordering::Relaxed);
        scanned.map_err(|e| self.error("cannot read the schema", e))?;
        Ok(self
            .scan_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default())
    }

    /// Reads the rows of one leaf page of main's schema table from the page itself (and its
    /// overflow pages), as the scan aggregate would see them. `None`: read them through SQLite
    /// (the database's text is not UTF-8, or a record does not decode).
    pub(super) fn scan_leaf(&self, scope: &Scope, page: u32, cap: u64) -> Result<Option<ScanOut>> {
        let e = |e| db_error(&self.path, "cannot read the schema's pages", e);
        let mut stmt = self.conn.prepare_cached(READ_PAGE).map_err(e)?;
        let mut read = |pgno: u32, buf: &mut Vec<u8>| read_page(&mut stmt, pgno, buf);
        let Some(records) =
            schema_pages::leaf_records(&mut read, page, &mut self.page_buffers.borrow_mut())
                .map_err(e)?
        else {
            return Ok(None);
        };
        let mut out = ScanOut {
            own: scope.own.as_bytes().to_vec(),
            schema: "main".to_string(),
            cap: (cap != u64::MAX).then_some(cap),
            ..ScanOut::default()
        };
        fn text<'a>(v: Stored<'a>) -> &'a [u8] {
            match v {
                Stored::Text(t) => t,
                _ => &[],
            }
        }
        for record in &records {
            // type, name, tbl_name, rootpage, sql
            let Some([kind, name, table, _, sql]) = schema_pages::columns::<5>(record) else {
                return Ok(None);
            };
            let sql = match sql {
                Stored::Text(t) => Some(t),
                _ => None,
            };
            out.fold(&self.row_keys, text(kind), text(name), text(table), sql);
        }
        Ok(Some(out))
    }

    /// Scans main's schema table by its leaf pages: a leaf whose content an earlier scan saw
    /// is taken from the memo (for another plugin too, when the leaf holds none of this
    /// plugin's rows), and only the rows of the other leaves are read, from the page (through
    /// SQL, by rowid range, when the page does not decode). A step's DDL changes one leaf or a
    /// few of dozens. `Unavailable` (read every row instead) when this SQLite
    /// lacks `sqlite_dbpage`, or when the pages do not read as a table b-tree whose leaves hold
    /// the rows SQLite reads from them; `PastCap` once the scope's own rows pass `cap` bytes.
    pub(super) fn scan_main_by_pages(&mut self, scope: &Scope, cap: u64) -> Result<PageScan> {
        if self.dbpage.is_none() {
            let available = self.conn.prepare_cached(READ_PAGE).is_ok();
            if !available {
                tracing::debug!(
                    "no sqlite_dbpage in this SQLite: the schema check reads every row"
                );
            }
            self.dbpage = Some(available);
        }
        if self.dbpage == Some(false) {
            return Ok(PageScan::Unavailable);
        }
        let mut memo = self.page_memo.take().unwrap_or_default();
        let e = |e| db_error(&self.path, "cannot read the schema's pages", e);
        let mut stmt = self.conn.prepare_cached(READ_PAGE).map_err(e)?;
        let mut read = |pgno: u32, buf: &mut Vec<u8>| read_page(&mut stmt, pgno, buf);
        let known = |bytes: u64| {
            memo.get(&bytes).map(|part| schema_pages::KnownLeaf {
                chains: &part.chains,
                rowids: part.rowids,
            })
        };
        let leaves = schema_pages::schema_leaves(
            &mut read,
            &self.page_keys,
            &known,
            &mut self.page_buffers.borrow_mut(),
        );
        drop(stmt);
        let Some(leaves) = leaves.map_err(e)? else {
            tracing::debug!("sqlite_schema's pages do not read as a b-tree: reading every row");
            return Ok(PageScan::Unavailable);
        };
        // Namespaces are lowercase (manifest::validate_name); the memo compares bytes.
        let own = scope.own.to_ascii_lowercase();
        let mut total = LeafPart::default();
        let mut seen = 0u64;
        let mut next = PageMemo::with_capacity_and_hasher(leaves.len(), Default::default());
        for leaf in leaves {
            let known = memo
                .remove(&leaf.bytes)
                .filter(|part| part.overflow == leaf.overflow)
                .and_then(|mut part| part.respan(&own).then_some(part));
            let part = match (known, leaf.rowids) {
                (Some(part), _) => part,
                (None, None) => LeafPart {
                    own: own.clone(),
                    ..LeafPart::default()
                },
                (None, Some(range)) => {
                    let room = cap.saturating_sub(seen);
                    let out = match self.scan_leaf(scope, leaf.page, room)? {
                        Some(out) => out,
                        None => self.scan_rows(scope, "main", Some(range), room)?,
                    };
                    if out.past_cap {
                        // The memo is dropped: the next scan reads every leaf again.
                        return Ok(PageScan::PastCap(PastCap(seen + out.owned_bytes)));
                    }
                    let part = LeafPart {
                        overflow: leaf.overflow,
                        chains: leaf.chains,
                        rowids: leaf.rowids,
                        ..LeafPart::from_scan(&own, out)
                    };
                    if part.all.1 != leaf.cells {
                        tracing::debug!(
                            page = leaf.page,
                            "a leaf's rows do not match its cells: reading every row"
                        );
                        return Ok(PageScan::Unavailable);
                    }
                    part
                }
            };
            seen += owned_bytes(&part.owned);
            if seen > cap {
                return Ok(PageScan::PastCap(PastCap(seen)));
            }
            total.foreign.0 = total.foreign.0.wrapping_add(part.foreign.0);
            total.foreign.1 += part.foreign.1;
            total.owned.extend(part.owned.iter().cloned());
            next.insert(leaf.bytes, part);
        }
        self.page_memo = Some(next);
        Ok(PageScan::Scanned(total))
    }

    pub(super) fn each_schema_row(
        &self,
        mut f: impl FnMut(&str, &rusqlite::Row<'_>) -> rusqlite::Result<()>,
    ) -> Result<()> {
        for schema in ["main", "temp"] {
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT type, name, tbl_name, sql FROM {schema}.sqlite_schema"
                ))
                .map_err(|e| self.error("cannot read the schema", e))?;
            let mut rows = stmt
                .query([])
                .map_err(|e| self.error("cannot read the schema", e))?;
            while let Some(row) = rows
                .next()
                .map_err(|e| db_error(&self.path, "cannot read the schema", e))?
            {
                f(schema, row).map_err(|e| db_error(&self.path, "cannot read the schema", e))?;
            }
        }
        Ok(())
    }

    pub(super) fn mark_schema(&mut self, scope: &Scope) -> Result<SchemaMark> {
        // A scan of another step (the schema versions of a rolled-back one come again).
        self.after_step = None;
        let versions = self.schema_versions()?;
        // The previous step's check already scanned this very schema for this plugin.
        // Not capped: what the plugin holds before a step was accepted by the checks after
        // an earlier one (and a step that makes it smaller must be able to run).
        let mark = match self.last_mark.take() {
            Some((own, mark)) if own == scope.own && mark.versions == versions => mark,
            _ => match self.scan_schema(scope, versions, None, None)? {
                Ok(mark) => mark,
                Err(PastCap(_)) => {
                    return Err(Error::Engine(
                        "a schema scan without a cap stopped at one".into(),
                    ));
                }
            },
        };
        self.marked_bytes = owned_bytes(&mark.owned);
        // The shadow is made from this when the step's first statement needs it.
        if !self.shadow_in_sync(scope, mark.versions) {
            *self.shadow_source.get_mut() =
                Some((scope.own.clone(), mark.versions, mark.owned.clone()));
        }
        // Lets a failed check look at the schema as it was, to name what changed.
        self.conn
            .execute_batch("SAVEPOINT wasmig_step")
            .map_err(|e| self.error("cannot mark the step", e))?;
        self.auth.set_views(
            mark.owned
                .iter()
                .filter(|o| o.kind == "view")
                .map(|o| o.name.clone()),
            mark.owned
                .iter()
                .filter(|o| o.kind == "table" && o.sql.as_deref().is_some_and(is_fts5))
                .map(|o| o.name.clone()),
        );
        Ok(mark)
    }

    /// The schema after the plugin's step (its DDL ran: `versions` differ from the mark's),
    /// read on the step's clock and within its memory, copying at most
    /// [`Self::scan_cap`] bytes of the plugin's own objects. `Ok(Err)`: why the step is
    /// refused (past that cap, or past its deadline).
    pub(super) fn scan_after_step(
        &mut self,
        scope: &Scope,
        versions: [i64; 2],
        before: &SchemaMark,
    ) -> Result<std::result::Result<SchemaMark, String>> {
        let cap = self.scan_cap();
        let clocked =
            self.clocked(|backend| backend.scan_schema(scope, versions, Some(before), cap));
        let (scanned, late) = match clocked {
            Ok(done) => done,
            Err(e) => return Ok(Err(e)),
        };
        match scanned {
            Ok(Ok(mark)) => Ok(Ok(mark)),
            Ok(Err(PastCap(bytes))) => Ok(Err(format!(
                "the step left plugin {}'s objects (main and TEMP) with more than {} KiB of \
                 names and definitions, {}",
                scope.plugin,
                bytes / 1024,
                self.past_cap_text()
            ))),
            Err(_) if late => Ok(Err(
                "the step was still being checked at its deadline: reading what it left in \
                 the schema took too long"
                    .to_string(),
            )),
            Err(e) => Err(e),
        }
    }

    pub(super) fn verify_step(&mut self, scope: &Scope, before: &SchemaMark) -> Result<StepCheck> {
        let unchanged = StepCheck {
            verdict: Ok(()),
            changes: Vec::new(),
        };
        let versions = self.schema_versions()?;
        if versions == before.versions {
            self.release_mark()?;
            self.last_mark = Some((scope.own.clone(), before.clone()));
            return Ok(unchanged);
        }
        // The destructive gate may have read it already, at these versions.
        let scanned = match self.after_step.take() {
            Some((at, scanned)) if at == versions => scanned,
            _ => match self.scan_after_step(scope, versions, before)? {
                Ok(scanned) => scanned,
                Err(refusal) => {
                    return Ok(StepCheck {
                        verdict: Err(refusal),
                        changes: Vec::new(),
                    });
                }
            },
        };
        if scanned.foreign != before.foreign {
            // Something outside the plugin changed: find what, by comparing everything with
            // the schema at the mark. The step is rolled back either way.
            let after = self.schema_objects()?;
            self.conn
                .execute_batch("ROLLBACK TO wasmig_step")
                .map_err(|e| self.error("cannot look back at the schema", e))?;
            let was = self.schema_objects()?;
            let reason = diff(&was, &after)
                .into_iter()
                .find(|(_, o)| !owned_by(scope, o))
                .map(|(what, o)| {
                    format!(
                        "the step {what} {} {:?} (on {:?}), which is outside plugin {}'s \
                         namespace (its objects are named {}*)",
                        o.kind, o.name, o.table, scope.plugin, scope.own
                    )
                })
                .unwrap_or_else(|| {
                    format!(
                        "the step changed the schema outside plugin {}'s namespace",
                        scope.plugin
                    )
                });
            return Ok(StepCheck {
                verdict: Err(reason),
                changes: Vec::new(),
            });
        }
        let changed = diff(&before.owned, &scanned.owned);
        let changes = changed
            .iter()
            .map(|(what, o)| {
                let temp = if o.schema == "temp" { "temp " } else { "" };
                format!("{what} {temp}{} {}", o.kind, o.name)
            })
            .collect();
        if !changed.is_empty()
            && let Err(reason) = self
                .check_load_limits(scope, &scanned.owned, &changed)
                .and_then(|()| {
                    self.on_step_clock(|backend| {
                        backend.check_left_behind(scope, &scanned.owned, &changed)
                    })
                })
                .and_then(|()| self.check_schema_size(scope, &scanned.owned))
                .and_then(|()| {
                    self.on_step_clock(|backend| backend.check_rename_cost(scope, &scanned.owned))
                })
        {
            return Ok(StepCheck {
                verdict: Err(reason),
                changes,
            });
        }
        // Nothing TEMP survives the step: drop triggers and views first, then tables. SQLite's
        // own `sqlite_sequence`, made for a TEMP table with AUTOINCREMENT, cannot be dropped:
        // its rows are deleted instead, so that the next plugin finds it empty.
        let (internal, mut temp): (Vec<&SchemaObject>, Vec<&SchemaObject>) = scanned
            .owned
            .iter()
            .filter(|o| o.schema == "temp" && o.kind != "index")
            .partition(|o| o.name.eq_ignore_ascii_case("sqlite_sequence"));
        let dropped_temp = !temp.is_empty();
        temp.sort_by_key(|o| if o.kind == "table" { 1 } else { 0 });
        let mut drops: Vec<String> = temp
            .iter()
            .map(|o| {
                format!(
                    "DROP {} IF EXISTS temp.\"{}\"",
                    o.kind.to_uppercase(),
                    o.name.replace('"', "\"\"")
                )
            })
            .collect();
        if !internal.is_empty() {
            drops.push("DELETE FROM temp.sqlite_sequence".to_string());
        }
        if let Err(reason) = self.drop_temp(&drops) {
            return Ok(StepCheck {
                verdict: Err(reason),
                changes,
            });
        }
        self.release_mark()?;
        if !dropped_temp {
            self.last_mark = Some((scope.own.clone(), scanned));
        }
        Ok(StepCheck {
            verdict: Ok(()),
            changes,
        })
    }
}

impl SqliteBackend {
    /// Drops the step's TEMP objects (`drops`), with foreign keys not enforced and on the
    /// step's clock, within its memory and its temporary storage quota. Dropping a table
    /// that a foreign key references deletes its rows first when foreign keys are enforced
    /// (wasmig's SQLite enforces them), which scans the child table for each row and runs the
    /// keys' actions (`SET NULL` recomputes stored generated columns): work of the plugin's
    /// choosing, after its step. Only TEMP tables can reference TEMP tables, and all of them
    /// go. `Err`: why the step is refused.
    fn drop_temp(&mut self, drops: &[String]) -> Result<(), String> {
        if drops.is_empty() {
            return Ok(());
        }
        use rusqlite::config::DbConfig;
        // `PRAGMA foreign_keys` is a no-op inside a transaction; the connection's flag is not.
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY, false)
            .map_err(|e| format!("cannot drop the step's TEMP objects: {e}"))?;
        self.temp_vfs.quota.limit(self.step_temp_quota);
        let clocked = self.clocked(|backend| {
            drops
                .iter()
                .try_for_each(|sql| backend.conn.execute_batch(sql))
        });
        self.temp_vfs.quota.limit(None);
        let enforced = self
            .conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY, true);
        let result = match clocked {
            Err(e) => Err(e),
            Ok((Ok(()), _)) => Ok(()),
            Ok((Err(_), true)) => {
                Err("the step was still dropping its TEMP objects at its deadline".to_string())
            }
            Ok((Err(e), false)) => Err(format!("its TEMP objects could not be dropped: {e}")),
        };
        match enforced {
            Ok(true) => result,
            // The connection must not go on without foreign keys: the step is refused (and
            // rolled back) and the connection reports the failure.
            Ok(false) | Err(_) => Err(format!(
                "foreign keys could not be enforced again after dropping the step's TEMP \
                 objects{}",
                enforced.err().map_or(String::new(), |e| format!(": {e}"))
            )),
        }
    }

    /// Refuses a step after which the plugin's objects of the main database take more bytes
    /// of definitions than its quota, more than [`MAX_OBJECTS`], or a table of its has more
    /// than [`MAX_TABLE_INDEXES`]:
    /// every connection to the database (the application's too) parses the whole schema when
    /// it first uses it, at many times the text's size in memory, and keeps it.
    fn check_schema_size(&self, scope: &Scope, owned: &[SchemaObject]) -> Result<(), String> {
        let Some(quota) = self.step_schema_quota else {
            return Ok(());
        };
        let bytes: u64 = owned
            .iter()
            .filter(|o| o.schema == "main")
            .map(|o| o.sql.as_ref().map_or(0, |s| s.len() as u64))
            .sum();
        if bytes > quota {
            return Err(format!(
                "the step left plugin {}'s objects with {} KiB of definitions, past its quota \
                 of {} KiB (max_schema in [limits]): every connection to the database parses \
                 and keeps the whole schema",
                scope.plugin,
                bytes.div_ceil(1024),
                quota / 1024
            ));
        }
        // SQLite finds a schema's tables, views, indexes and triggers in hash tables of at most
        // 64 buckets in a build with SQLite's default soft heap limit (most builds, the
        // application's included) under a hash of the name anyone can compute: a connection
        // parsing N objects whose names share a bucket compares names N² / 2 times (tens of
        // thousands of small views cost every connection seconds).
        // A foreign key is filed so too, by the name of the table it references.
        let main: Vec<&SchemaObject> = owned.iter().filter(|o| o.schema == "main").collect();
        let keys: usize = main
            .iter()
            .filter(|o| o.kind == "table")
            .filter_map(|o| o.sql.as_deref())
            .map(|sql| {
                super::sql_text::Tokens::new(sql)
                    .filter(|t| t.is_word("references"))
                    .count()
            })
            .sum();
        if main.len() + keys > MAX_OBJECTS {
            return Err(format!(
                "the step left plugin {} with {} tables, indexes, views and triggers and {keys} \
                 foreign keys, past {MAX_OBJECTS} in all: every connection to the database \
                 files each of them by a name when it parses the schema, in time that can \
                 grow with the square of their number",
                scope.plugin,
                main.len()
            ));
        }
        // A connection parsing a table's definition compares each of its UNIQUE constraints
        // with the table's indexes before it, in time that grows with the square of their
        // number: thousands of them in a few kilobytes cost every connection seconds.
        let mut indexes: std::collections::BTreeMap<&str, usize> = Default::default();
        for o in owned
            .iter()
            .filter(|o| o.schema == "main" && o.kind == "index")
        {
            *indexes.entry(o.table.as_str()).or_default() += 1;
        }
        if let Some((table, n)) = indexes.into_iter().find(|(_, n)| *n > MAX_TABLE_INDEXES) {
            return Err(format!(
                "the step left plugin {}'s table {table} with {n} indexes (its UNIQUE and \
                 PRIMARY KEY constraints' included), past {MAX_TABLE_INDEXES}: every connection \
                 to the database compares a table's unique constraints with its other indexes \
                 when it parses the schema, in time that grows with the square of their number",
                scope.plugin
            ));
        }
        // A connection parsing a table's definition looks each new column up among those
        // before it, and each name in its checks and generated columns (and in its indexes'
        // expressions) among all of them, one column after another, comparing a one-byte hash
        // of the names that anyone can make collide: a few thousand columns with a check of a
        // few hundred kilobytes cost every connection seconds. Bounded at the worst case,
        // every comparison a comparison of names.
        let lookups = self
            .column_lookups(&main)
            .map_err(|e| format!("cannot count plugin {}'s columns: {e}", scope.plugin))?;
        if lookups > MAX_COLUMN_LOOKUPS {
            return Err(format!(
                "the step left plugin {}'s tables and indexes with {lookups} column look-ups in \
                 their definitions (each table's columns times the columns and names of its \
                 definition and of its indexes'), past {MAX_COLUMN_LOOKUPS}: every connection to \
                 the database looks each name up among the table's columns when it parses the \
                 schema",
                scope.plugin
            ));
        }
        // An AUTOINCREMENT table keeps its counter in `sqlite_sequence`, one table for the
        // whole database without an index: every insert into any AUTOINCREMENT table reads
        // it from its first row to the table's.
        let counters = main
            .iter()
            .filter(|o| o.kind == "table")
            .filter_map(|o| o.sql.as_deref())
            .filter(|sql| super::sql_text::Tokens::new(sql).any(|t| t.is_word("autoincrement")))
            .count();
        if counters > MAX_AUTOINCREMENT_TABLES {
            return Err(format!(
                "the step left plugin {} with {counters} AUTOINCREMENT tables, past \
                 {MAX_AUTOINCREMENT_TABLES}: SQLite keeps their counters in one table of the \
                 database, sqlite_sequence, which every insert into an AUTOINCREMENT table, \
                 anyone's, reads row by row",
                scope.plugin
            ));
        }
        // Every `ALTER TABLE … RENAME`, `RENAME COLUMN` and `DROP COLUMN` in the database,
        // anyone's, parses every definition again in SQLite's rename mode, which keeps a list
        // of the names and literals it has read and walks it for each name it resolves and
        // each node of an expression it sets aside. `check_rename_cost` measures what that
        // costs; this bounds the measurement itself (SQLite does not stop within one
        // definition's parse) at its worst case, each token of a definition a walk of all
        // its names and literals.
        let parse_work = rename_parse_work(&main);
        if parse_work > MAX_RENAME_PARSE_WORK {
            return Err(format!(
                "the step left plugin {}'s definitions with {parse_work} tokens times names and \
                 literals, past {MAX_RENAME_PARSE_WORK}: every ALTER TABLE that renames a table or \
                 renames or drops a column in the database, anyone's, parses them again at up \
                 to that cost",
                scope.plugin
            ));
        }
        Ok(())
    }

    /// Refuses a step after which an `ALTER TABLE … RENAME COLUMN` takes longer than
    /// [`MAX_RENAME_COST`] over the plugin's definitions alone (see
    /// [`SqliteBackend::rename_cost`]). Run on the step's clock, after
    /// [`SqliteBackend::check_schema_size`] has bounded what it can cost.
    fn check_rename_cost(&self, scope: &Scope, owned: &[SchemaObject]) -> Result<(), String> {
        // Tables and indexes alone, whose expressions name only their own table's columns,
        // cost each definition at most what [`rename_parse_work`] counts: below
        // [`MAX_UNMEASURED_WORK`] in all that stays under the bound, and most steps are spared
        // the measurement. A view, whose query SQLite expands into every definition that
        // reads it, and a trigger are always measured.
        let main: Vec<&SchemaObject> = owned.iter().filter(|o| o.schema == "main").collect();
        if main.iter().all(|o| o.kind == "table" || o.kind == "index")
            && rename_parse_work(&main) <= MAX_UNMEASURED_WORK
        {
            return Ok(());
        }
        // A view or a default of a few thousand names, which runs in milliseconds, costs
        // each such ALTER seconds: measured, on what SQLite does, in the thread's CPU time,
        // which other processes taking the cores do not add to. What else runs on the
        // machine still adds (by the caches it shares), so the least of up to three is the
        // verdict: one definition gets the same one from run to run.
        let mut took = self.rename_cost(scope)?;
        for _ in 0..2 {
            if took <= MAX_RENAME_COST {
                break;
            }
            took = took.min(self.rename_cost(scope)?);
        }
        if took > MAX_RENAME_COST {
            return Err(format!(
                "an ALTER TABLE that renames a column took {} ms of CPU time over plugin {}'s \
                 definitions alone, past {} ms: every ALTER TABLE that renames a table or \
                 renames or drops a column in the database, anyone's, parses them again so",
                took.as_millis(),
                scope.plugin,
                MAX_RENAME_COST.as_millis()
            ));
        }
        Ok(())
    }

    /// The column look-ups parsing `objects` takes at worst: for each table, its columns
    /// times its columns and the names its definition and its indexes' definitions hold.
    fn column_lookups(&self, objects: &[&SchemaObject]) -> rusqlite::Result<u64> {
        let mut names: std::collections::BTreeMap<&str, u64> = Default::default();
        for o in objects
            .iter()
            .filter(|o| o.kind == "table" || o.kind == "index")
        {
            // Every token SQLite may take for a name: a string literal is a column's name in
            // a key list (`CREATE INDEX … ('c')`), looked up like any other.
            let words = o.sql.as_deref().map_or(0, |sql| {
                super::sql_text::Tokens::new(sql)
                    .filter(|t| t.name().is_some())
                    .count() as u64
            });
            *names.entry(o.table.as_str()).or_default() += words;
        }
        let mut columns = self.conn.prepare_cached(
            "SELECT count(*), coalesce(sum(length(CAST(name AS BLOB))), 0) \
             FROM pragma_table_xinfo(?1, 'main')",
        )?;
        let mut total: u64 = 0;
        for (table, words) in names {
            let (n, bytes): (i64, i64) =
                columns.query_row([table], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let (n, bytes) = (n.max(0) as u64, bytes.max(0) as u64);
            // A look-up that finds the hash equal compares the names byte by byte: columns
            // whose names are long and alike cost each comparison that much more. Counted in
            // comparisons of names of up to 16 bytes.
            let per_comparison = bytes.div_ceil(n.max(1)).div_ceil(16).max(1);
            total = total.saturating_add(
                n.saturating_mul(n.saturating_add(words))
                    .saturating_mul(per_comparison),
            );
        }
        Ok(total)
    }
}

/// The most column look-ups parsing a plugin's tables and indexes may take at worst (see
/// [`SqliteBackend::check_schema_size`]): a 2,000-column table's own definition is about
/// half of it.
const MAX_COLUMN_LOOKUPS: u64 = 24_000_000;

/// The work a parse of `objects` in SQLite's rename mode may take at worst (see
/// [`SqliteBackend::check_schema_size`]): for each definition, its tokens times the longer
/// of two lists it may walk for each: the names and literals it has read (SQLite keeps one
/// for each name and for each string, blob, real, number with `_` separators, variable and
/// NULL, and searches it for each node of an expression it sets aside), and the bytes of its
/// names (a name SQLite compares with another of the same hash it compares byte by byte).
fn rename_parse_work(objects: &[&SchemaObject]) -> u64 {
    use super::sql_text::Token;
    objects
        .iter()
        .filter_map(|o| o.sql.as_deref())
        .map(|sql| {
            let (mut tokens, mut read, mut name_bytes) = (0u64, 0u64, 0u64);
            for token in super::sql_text::Tokens::new(sql) {
                tokens += 1;
                // SQLite keeps no plain integer (its parser makes those nodes without a token
                // of their own); every other token but punctuation counts, operators and
                // keywords too, which it does not keep either.
                read += u64::from(match &token {
                    Token::Punct(_) => false,
                    Token::Number(n) => !is_integer(n),
                    _ => true,
                });
                name_bytes += token.name().map_or(0, |n| n.len().max(1) as u64);
            }
            tokens.saturating_mul(read.max(name_bytes))
        })
        .fold(0, u64::saturating_add)
}

/// Whether a number token is one SQLite's parser makes a node of without keeping its token:
/// decimal digits, or a hexadecimal number, without `_` separators. A real, and a number with
/// separators (SQLite's `QNUMBER`), are kept.
fn is_integer(number: &str) -> bool {
    let digits = number
        .strip_prefix("0x")
        .or_else(|| number.strip_prefix("0X"))
        .unwrap_or(number);
    !digits.contains('_')
        && (digits.len() < number.len() || number.bytes().all(|b| b.is_ascii_digit()))
}

/// The most work [`rename_parse_work`] may count: a few seconds of SQLite's at worst, the
/// bound on how long measuring [`MAX_RENAME_COST`] can take. A table of 2,000 columns with
/// names of 10 bytes counts about 120,000,000.
const MAX_RENAME_PARSE_WORK: u64 = 1_000_000_000;

/// The most work [`rename_parse_work`] may count for a plugin of tables and indexes only
/// before [`SqliteBackend::check_rename_cost`] measures it: at the few nanoseconds a unit
/// SQLite takes on a definition that expands nothing else, under [`MAX_RENAME_COST`].
const MAX_UNMEASURED_WORK: u64 = 5_000_000;

/// The most CPU time an `ALTER TABLE … RENAME COLUMN` may take over a plugin's definitions
/// alone (see [`SqliteBackend::check_rename_cost`]); honest definitions take a millisecond or
/// two.
/// It is measured with wasmig's own SQLite, which runs this work several times faster than
/// common builds of the same version (the Debian package, a plain `-O2` build): a quarter
/// of the 200 ms that the application's own ALTERs may pay per plugin.
const MAX_RENAME_COST: Duration = Duration::from_millis(50);

/// The most AUTOINCREMENT tables a plugin may have (see
/// [`SqliteBackend::check_schema_size`]).
const MAX_AUTOINCREMENT_TABLES: usize = 100;

/// The most indexes a plugin's table may have (see [`SqliteBackend::check_schema_size`]).
const MAX_TABLE_INDEXES: usize = 64;

/// The most tables, indexes, views, triggers and foreign keys a plugin may have in the main
/// database (see [`SqliteBackend::check_schema_size`]).
const MAX_OBJECTS: usize = 2_000;

/// Whether a table's `CREATE` statement makes an fts5 table (`… USING fts5(…)`).
pub(super) fn is_fts5(sql: &str) -> bool {
    // SQLite takes the module's name quoted as well as bare (`USING "fts5"`).
    super::sql_text::is_virtual_table(sql)
        && super::sql_text::virtual_table(sql).is_some_and(|(m, _)| m.eq_ignore_ascii_case("fts5"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut objects: Vec<SchemaObject>) -> Vec<SchemaObject> {
        objects.sort();
        objects
    }

    /// This build's schema check reads pages (it does not fall back to reading every row), and
    /// what it finds, with leaves taken from the memo across namespaces, is what reading every
    /// row finds.
    #[test]
    fn the_page_walk_agrees_with_reading_every_row_across_namespaces() {
        let options = BackendOptions {
            lock_timeout: Duration::from_secs(1),
            max_temp_bytes: 1 << 20,
            deadline: Duration::from_secs(30),
            on_overrun: None,
        };
        let mut db = SqliteBackend::open(Path::new("unused.db"), options, true).unwrap();
        // Namespaces interleaved on the same leaves, an AUTOINCREMENT table (sqlite_sequence
        // belongs to everyone), enough rows for interior pages.
        let mut script = String::from("BEGIN;");
        for i in 0..400 {
            let ns = ["aa", "bb", "cc"][i % 3];
            script.push_str(&format!(
                "CREATE TABLE {ns}__t{i} (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT UNIQUE);
                 CREATE INDEX {ns}__i{i} ON {ns}__t{i} (v);"
            ));
        }
        // A table whose SQL runs over three overflow pages.
        let columns: String = (0..1500).map(|i| format!("c{i}, ")).collect();
        script.push_str(&format!("CREATE TABLE bb__wide ({columns} z); COMMIT;"));
        db.conn.execute_batch(&script).unwrap();
        let changes = [
            "",
            // The same length: SQLite rewrites the row in place, and only an overflow page
            // changes.
            "ALTER TABLE bb__wide RENAME COLUMN c1499 TO x1499",
            "ALTER TABLE bb__t1 ADD COLUMN w",
            "CREATE TABLE cc__new (x)",
            "",
            "DROP TABLE aa__t0",
            "CREATE TABLE dd__first (x)",
            "DROP INDEX bb__i301",
        ];
        for (step, sql) in changes.iter().enumerate() {
            db.conn.execute_batch(sql).unwrap();
            for ns in ["aa", "bb", "cc", "dd", "zz", "aa"] {
                let scope = Scope::new(ns, &[]);
                let PageScan::Scanned(pages) = db.scan_main_by_pages(&scope, u64::MAX).unwrap()
                else {
                    panic!("the schema check reads pages in this build");
                };
                let full = db.scan_rows(&scope, "main", None, u64::MAX).unwrap();
                assert_eq!(pages.foreign, (full.sum, full.count), "step {step}, {ns}");
                assert_eq!(sorted(pages.owned), sorted(full.owned), "step {step}, {ns}");
            }
        }
        assert!(db.page_memo.as_ref().is_some_and(|m| m.len() > 10));
    }
}
