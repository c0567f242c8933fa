//! What the schema check keeps and computes: per leaf page of `sqlite_schema`, the plugin's
//! own rows in full and a keyed, order-independent digest of every other row; the SQL
//! aggregate that folds rows into it; and the comparison of two lists of objects.

use super::*;

/// What the last scan of main's schema table found on each of its leaf pages, keyed by the
/// digest of the leaf's bytes (`schema_pages::Leaf::bytes`): a leaf with the same bytes and
/// overflow pages holds the same rows, whatever its page number and whatever happened in
/// between (a rollback included).
pub(super) type PageMemo = foldhash::HashMap<u64, LeafPart>;

/// One leaf's share of a schema scan.
#[derive(Debug, Clone, Default)]
pub(super) struct LeafPart {
    /// The leaf's shape, for the next walk (see `schema_pages::KnownLeaf`).
    pub(super) overflow: u64,
    pub(super) chains: Vec<(u32, u32)>,
    pub(super) rowids: Option<(i64, i64)>,
    /// Digest and number of every row on the leaf.
    pub(super) all: (u64, u64),
    /// The lowest and highest `tbl_name` there (lowercase), and whether `sqlite_sequence` is
    /// there (every plugin's).
    pub(super) tables: Option<(Vec<u8>, Vec<u8>)>,
    pub(super) sequence: bool,
    /// The namespace the split below is for, and the split: the digest of the rows that are
    /// not its own, and its own rows.
    pub(super) own: String,
    pub(super) foreign: (u64, u64),
    pub(super) owned: Vec<SchemaObject>,
}

impl LeafPart {
    pub(super) fn from_scan(own: &str, out: ScanOut) -> LeafPart {
        LeafPart {
            overflow: 0,
            chains: Vec::new(),
            rowids: None,
            all: (out.all_sum, out.count + out.owned.len() as u64),
            tables: out.tables,
            sequence: out.sequence,
            own: own.to_string(),
            foreign: (out.sum, out.count),
            owned: out.owned,
        }
    }

    /// Whether namespace `own` (lowercase) may own a row here: only a row whose `tbl_name`
    /// starts with it can be, and all such names sort between `own` itself and the first name
    /// past its prefix.
    pub(super) fn holds_rows_of(&self, own: &str) -> bool {
        let own = own.as_bytes();
        self.sequence
            || self.tables.as_ref().is_some_and(|(lo, hi)| {
                hi.as_slice() >= own && &lo[..lo.len().min(own.len())] <= own
            })
    }

    /// The split for another namespace, when the leaf holds none of its rows: every row is
    /// foreign to it.
    pub(super) fn respan(&mut self, own: &str) -> bool {
        if self.own == own {
            return true;
        }
        if self.holds_rows_of(own) {
            return false;
        }
        self.own = own.to_string();
        self.foreign = self.all;
        // Not `clear`: the memo keeps every leaf, and a cleared vector keeps its buffer.
        self.owned = Vec::new();
        true
    }
}

pub(super) fn text(row: &rusqlite::Row<'_>, i: usize) -> String {
    row.get(i).unwrap_or_default()
}

/// Objects created, altered or dropped between two sorted lists.
pub(super) fn diff<'a>(
    before: &'a [SchemaObject],
    after: &'a [SchemaObject],
) -> Vec<(&'static str, &'a SchemaObject)> {
    let key = |o: &SchemaObject| {
        (
            o.schema.clone(),
            o.kind.clone(),
            o.name.to_ascii_lowercase(),
        )
    };
    let old: std::collections::BTreeMap<_, _> = before.iter().map(|o| (key(o), o)).collect();
    let new: std::collections::BTreeMap<_, _> = after.iter().map(|o| (key(o), o)).collect();
    let mut changes = Vec::new();
    for (k, o) in &new {
        match old.get(k) {
            None => changes.push(("created", *o)),
            Some(prev) if prev != o => changes.push(("altered", *o)),
            Some(_) => {}
        }
    }
    for (k, o) in &old {
        if !new.contains_key(k) {
            changes.push(("dropped", *o));
        }
    }
    changes
}

pub(super) fn owned_by(scope: &Scope, o: &SchemaObject) -> bool {
    if o.name.eq_ignore_ascii_case("sqlite_sequence") {
        return true;
    }
    let name_ok = scope.owns(&o.name) || (o.kind == "index" && is_autoindex_of(&o.name, &o.table));
    name_ok && scope.owns(&o.table)
}

/// What one scan of a schema table found.
#[derive(Debug, Default)]
pub(super) struct ScanOut {
    /// The scope's namespace prefix and the schema's name: the same for every row, so read
    /// from the first row only.
    pub(super) own: Vec<u8>,
    pub(super) schema: String,
    /// The scope's own objects, in full.
    pub(super) owned: Vec<SchemaObject>,
    /// Order-independent digest (wrapping sum of keyed row hashes) of every other object.
    pub(super) sum: u64,
    pub(super) count: u64,
    /// The same digest over every row, the scope's own included.
    pub(super) all_sum: u64,
    /// The lowest and highest `tbl_name`, lowercase, and whether `sqlite_sequence` is there:
    /// which other namespaces can own rows here (see [`LeafPart::holds_rows_of`]).
    pub(super) tables: Option<(Vec<u8>, Vec<u8>)>,
    pub(super) sequence: bool,
    /// The most bytes of the scope's own rows (see [`owned_bytes`]) the scan copies: past
    /// them it copies no more and sets `past_cap`. `None`: no bound.
    pub(super) cap: Option<u64>,
    /// The bytes of the scope's own rows seen, copied or not.
    pub(super) owned_bytes: u64,
    pub(super) past_cap: bool,
}

/// What the host counts of the scope's own objects while it reads them: the bytes of their
/// type, names and definition.
pub(super) fn owned_bytes(objects: &[SchemaObject]) -> u64 {
    objects
        .iter()
        .map(|o| {
            (o.kind.len() + o.name.len() + o.table.len() + o.sql.as_ref().map_or(0, String::len))
                as u64
        })
        .sum()
}

/// `wasmig_schema_scan(own, schema, type, name, tbl_name, sql)` over the rows of one schema
/// table: keeps the rows owned by the namespace `own` and digests the others. The result goes
/// to a slot the backend reads right after the statement; the SQL value is 0.
pub(super) struct SchemaScan {
    /// Keys of the digest: random per process, so no plugin can aim for a collision.
    pub(super) keys: foldhash::quality::RandomState,
    pub(super) out: Arc<Mutex<Option<ScanOut>>>,
    /// The scan's [`ScanOut::cap`], set by `SqliteBackend::scan_rows` while it runs the scan
    /// (`u64::MAX`: none).
    pub(super) cap: Arc<std::sync::atomic::AtomicU64>,
}

impl rusqlite::functions::Aggregate<ScanOut, i64> for SchemaScan {
    fn init(&self, ctx: &mut rusqlite::functions::Context<'_>) -> rusqlite::Result<ScanOut> {
        let raw = |i| match ctx.get_raw(i) {
            ValueRef::Text(t) => t,
            _ => &[][..],
        };
        let cap = self.cap.load(std::sync::atomic::Ordering::Relaxed);
        Ok(ScanOut {
            own: raw(0).to_vec(),
            schema: String::from_utf8_lossy(raw(1)).into_owned(),
            cap: (cap != u64::MAX).then_some(cap),
            ..ScanOut::default()
        })
    }

    fn step(
        &self,
        ctx: &mut rusqlite::functions::Context<'_>,
        acc: &mut ScanOut,
    ) -> rusqlite::Result<()> {
        let raw = |i| match ctx.get_raw(i) {
            ValueRef::Text(t) => t,
            _ => &[][..],
        };
        let sql = match ctx.get_raw(5) {
            ValueRef::Text(t) => Some(t),
            _ => None,
        };
        acc.fold(&self.keys, raw(2), raw(3), raw(4), sql);
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut rusqlite::functions::Context<'_>,
        acc: Option<ScanOut>,
    ) -> rusqlite::Result<i64> {
        *self.out.lock().unwrap_or_else(|p| p.into_inner()) = acc;
        Ok(0)
    }
}

impl ScanOut {
    /// Takes one row of a schema table (`type`, `name`, `tbl_name`, `sql`; a value that is not
    /// text counts as empty, and `sql` as NULL): the scope's own rows in full, the others into
    /// the digest.
    pub(super) fn fold(
        &mut self,
        keys: &foldhash::quality::RandomState,
        kind: &[u8],
        name: &[u8],
        table: &[u8],
        sql: Option<&[u8]>,
    ) {
        let row_hash = keys.hash_one((kind, name, table, sql.unwrap_or_default()));
        self.all_sum = self.all_sum.wrapping_add(row_hash);
        self.sequence |= name == b"sqlite_sequence";
        match &mut self.tables {
            None => self.tables = Some((table.to_ascii_lowercase(), table.to_ascii_lowercase())),
            Some((lo, hi)) => {
                if cmp_lowercase(table, lo).is_lt() {
                    *lo = table.to_ascii_lowercase();
                }
                if cmp_lowercase(table, hi).is_gt() {
                    *hi = table.to_ascii_lowercase();
                }
            }
        }
        let own = self.own.as_slice();
        let owns = |s: &[u8]| s.len() > own.len() && s[..own.len()].eq_ignore_ascii_case(own);
        let is_owned = name == b"sqlite_sequence"
            || (owns(table)
                && (owns(name) || (kind == b"index" && name.starts_with(b"sqlite_autoindex_"))));
        if is_owned {
            // A step can leave definitions of any size up to its database quota; the host
            // copies no more of them than it may hold for the plugin.
            self.owned_bytes +=
                (kind.len() + name.len() + table.len() + sql.map_or(0, <[u8]>::len)) as u64;
            if self.past_cap || self.cap.is_some_and(|cap| self.owned_bytes > cap) {
                self.past_cap = true;
                return;
            }
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            self.owned.push(SchemaObject {
                schema: self.schema.clone(),
                kind: text(kind),
                name: text(name),
                table: text(table),
                sql: sql.map(text),
            });
        } else {
            // The schema's name is not hashed: each schema's digest is kept apart.
            self.sum = self.sum.wrapping_add(row_hash);
            self.count += 1;
        }
    }
}

/// Compares `a`, lowercased, with `b` (already lowercase), without allocating.
pub(super) fn cmp_lowercase(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.iter().map(u8::to_ascii_lowercase).cmp(b.iter().copied())
}
