//! `sqlite_schema`'s b-tree, page by page. The per-step schema check digests every row of
//! the schema table; most of those rows sit on leaf pages the step did not touch. Reading the
//! tree's pages (through the `sqlite_dbpage` virtual table, which sees the open transaction's
//! own changes) tells which leaves changed: a leaf whose bytes, and whose rows' overflow
//! pages, are what they were holds the very rows it held, so their digest can be reused.
//!
//! The walk reads the tree's shape (page types, child pointers, cell sizes, rowids, overflow
//! chains); the records of a leaf that changed are decoded from its page by
//! [`leaf_records`] and [`columns`]. Anything that does not look like a table b-tree ends the
//! walk with `None`, and the caller falls back to reading every row through SQLite.

use std::hash::{BuildHasher, Hasher};

/// One leaf page of the schema table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// Its page number.
    pub page: u32,
    /// Keyed digest of the part of the leaf that holds its rows: header, cell pointers and cell
    /// content (not the unused gap, nor page 1's database header).
    pub bytes: u64,
    /// Keyed digest of its rows' overflow pages, in order; 0 when it has none. The same
    /// `bytes` and `overflow`: the same rows.
    pub overflow: u64,
    /// Its rows' overflow chains: first page, number of pages.
    pub chains: Vec<(u32, u32)>,
    /// The lowest and highest rowid of its cells; `None` for an empty leaf.
    pub rowids: Option<(i64, i64)>,
    /// How many rows it holds.
    pub cells: u64,
}

/// What an earlier walk found on a leaf with the same `bytes`: its cells are the same, so
/// their rowids are, and their overflow chains start on the same pages and are as long; only
/// the overflow pages' content is left to compare (by the caller, with [`Leaf::overflow`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownLeaf<'a> {
    pub chains: &'a [(u32, u32)],
    pub rowids: Option<(i64, i64)>,
}

/// Key of the content digest: random per process, so no plugin can aim for a collision (the
/// same 64-bit keyed hashing the schema check's row digest relies on).
#[derive(Debug, Default)]
pub(crate) struct PageKeys(foldhash::quality::RandomState);

/// Buffers a walk reads pages into, kept from walk to walk: a walk reads every page of the
/// schema table, and allocating for each would leave the heap fragmented among SQLite's
/// long-lived schema objects.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    page: Vec<u8>,
    overflow: Vec<u8>,
    seen: foldhash::HashSet<u32>,
}

/// Reads one page of main through `sqlite_dbpage`, which sees the open transaction's pages.
pub(crate) const READ_PAGE: &str = "SELECT data FROM sqlite_dbpage('main') WHERE pgno = ?1";

/// Runs [`READ_PAGE`] into `buf`; `false` when there is no such page.
pub(crate) fn read_page(
    stmt: &mut rusqlite::Statement<'_>,
    pgno: u32,
    buf: &mut Vec<u8>,
) -> rusqlite::Result<bool> {
    let mut rows = stmt.query([pgno])?;
    let Some(row) = rows.next()? else {
        return Ok(false);
    };
    buf.clear();
    buf.extend_from_slice(row.get_ref(0)?.as_blob()?);
    Ok(true)
}

/// The database header's page size and usable size (the page less the bytes reserved at its
/// end), and whether its text is UTF-8; `None` when page 1 does not read as one.
fn geometry<E>(
    read: &mut ReadPage<'_, E>,
    buf: &mut Vec<u8>,
) -> Result<Option<(usize, usize, bool)>, E> {
    if !read(1, buf)? || buf.len() < 100 {
        return Ok(None);
    }
    let page_size = match u16::from_be_bytes([buf[16], buf[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    let usable = page_size - usize::from(buf[20]);
    if buf.len() != page_size || usable < 480 {
        return Ok(None);
    }
    Ok(Some((page_size, usable, be32(buf, 56) == Some(1))))
}

/// Reads one page of the database into the buffer; `false` when there is no such page.
pub(crate) type ReadPage<'a, E> = dyn FnMut(u32, &mut Vec<u8>) -> Result<bool, E> + 'a;

/// The leaf pages of the table b-tree rooted at page 1 (`sqlite_schema`), in tree order.
/// `known` answers, for a leaf's `bytes` digest, what an earlier walk found on such a leaf:
/// its cells are then not parsed again. `Ok(None)`: the pages do not read as a table b-tree
/// (a page reached twice, a page of another kind, a cell or chain out of bounds, rowids out
/// of order); read the rows instead.
pub(crate) fn schema_leaves<'m, E>(
    read: &mut ReadPage<'_, E>,
    keys: &PageKeys,
    known: &dyn Fn(u64) -> Option<KnownLeaf<'m>>,
    buffers: &mut Buffers,
) -> Result<Option<Vec<Leaf>>, E> {
    let Buffers {
        page: buf,
        overflow,
        seen,
    } = buffers;
    seen.clear();
    let Some((page_size, usable, _)) = geometry(read, buf)? else {
        return Ok(None);
    };
    let mut walk = Walk {
        read,
        keys,
        page_size,
        usable,
        seen,
        overflow,
    };
    let mut leaves: Vec<Leaf> = Vec::new();
    let mut stack = vec![1u32];
    let mut highest: Option<i64> = None;
    while let Some(pgno) = stack.pop() {
        // Page 1 is still in `buf` from reading the header (it is the first page walked).
        if !walk.seen.insert(pgno)
            || (pgno != 1 && !(walk.read)(pgno, buf)?)
            || buf.len() != page_size
        {
            return Ok(None);
        }
        let header = if pgno == 1 { 100 } else { 0 };
        let Some(page) = BtreePage::parse(buf, header, usable) else {
            return Ok(None);
        };
        if !page.leaf {
            // Children right to left, so the leftmost is walked first.
            stack.push(page.right);
            for i in (0..page.cells).rev() {
                let Some(child) = page.child(buf, i) else {
                    return Ok(None);
                };
                stack.push(child);
            }
            continue;
        }
        let mut digest = keys.0.build_hasher();
        digest.write(&buf[header..page.pointers + 2 * page.cells]);
        digest.write(&buf[page.content..usable]);
        let bytes = digest.finish();
        let leaf = match known(bytes) {
            // The same bytes, the same cells: rowids and where each chain starts and how long
            // it is are known; the chains' pages are read again (their content may differ).
            Some(k) => {
                let Some(overflow) = walk.chains(k.chains)? else {
                    return Ok(None);
                };
                Leaf {
                    page: pgno,
                    bytes,
                    overflow,
                    chains: k.chains.to_vec(),
                    rowids: k.rowids,
                    cells: page.cells as u64,
                }
            }
            None => {
                let mut rowids: Option<(i64, i64)> = None;
                let mut chains = Vec::new();
                for i in 0..page.cells {
                    let Some(cell) = page.leaf_cell(buf, i) else {
                        return Ok(None);
                    };
                    // Rowids rise from cell to cell.
                    if rowids.is_some_and(|(_, hi)| cell.rowid <= hi) {
                        return Ok(None);
                    }
                    rowids = Some((rowids.map_or(cell.rowid, |(lo, _)| lo), cell.rowid));
                    if cell.overflow_pages > 0 {
                        chains.push((cell.overflow, cell.overflow_pages));
                    }
                }
                let Some(overflow) = walk.chains(&chains)? else {
                    return Ok(None);
                };
                Leaf {
                    page: pgno,
                    bytes,
                    overflow,
                    chains,
                    rowids,
                    cells: page.cells as u64,
                }
            }
        };
        // And from leaf to leaf.
        if let Some((lo, hi)) = leaf.rowids {
            if highest.is_some_and(|h| lo <= h) {
                return Ok(None);
            }
            highest = Some(hi);
        }
        leaves.push(leaf);
    }
    Ok(Some(leaves))
}

/// The state of one walk.
struct Walk<'r, 'a, 'k, E> {
    read: &'r mut ReadPage<'a, E>,
    keys: &'k PageKeys,
    page_size: usize,
    usable: usize,
    /// Every page reached so far: a page reached twice is not a tree.
    seen: &'r mut foldhash::HashSet<u32>,
    overflow: &'r mut Vec<u8>,
}

impl<E> Walk<'_, '_, '_, E> {
    /// Reads overflow chains, one page after another; their digest (0 for none), or `None`
    /// when a chain breaks off or reaches a page twice.
    fn chains(&mut self, chains: &[(u32, u32)]) -> Result<Option<u64>, E> {
        if chains.is_empty() {
            return Ok(Some(0));
        }
        let mut digest = self.keys.0.build_hasher();
        for &(first, pages) in chains {
            let mut next = first;
            for _ in 0..pages {
                if next == 0
                    || !self.seen.insert(next)
                    || !(self.read)(next, self.overflow)?
                    || self.overflow.len() != self.page_size
                {
                    return Ok(None);
                }
                digest.write(&self.overflow[..self.usable]);
                let o = &self.overflow;
                next = u32::from_be_bytes([o[0], o[1], o[2], o[3]]);
            }
        }
        Ok(Some(digest.finish()))
    }
}

/// A column's value as a record stores it: text and blobs as their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    Null,
    Number,
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// The payloads (records) of one leaf's rows, in rowid order, each with its overflow part.
/// `Ok(None)`: the database's text is not UTF-8 (the caller reads the rows through SQLite,
/// which converts), or the page does not read as a table leaf.
pub(crate) fn leaf_records<E>(
    read: &mut ReadPage<'_, E>,
    pgno: u32,
    buffers: &mut Buffers,
) -> Result<Option<Vec<Vec<u8>>>, E> {
    let Buffers {
        page: buf,
        overflow,
        ..
    } = buffers;
    // Text encoding UTF-8: what the scan's aggregate sees.
    let Some((page_size, usable, true)) = geometry(read, buf)? else {
        return Ok(None);
    };
    if pgno != 1 && !read(pgno, buf)? {
        return Ok(None);
    }
    let header = if pgno == 1 { 100 } else { 0 };
    let Some(page) = BtreePage::parse(buf, header, usable).filter(|p| p.leaf) else {
        return Ok(None);
    };
    let mut records = Vec::with_capacity(page.cells);
    for i in 0..page.cells {
        let Some(cell) = page.leaf_cell(buf, i) else {
            return Ok(None);
        };
        let mut record = Vec::with_capacity(cell.payload);
        record.extend_from_slice(&buf[cell.local.clone()]);
        let mut next = cell.overflow;
        for _ in 0..cell.overflow_pages {
            if next == 0 || !read(next, overflow)? || overflow.len() != page_size {
                return Ok(None);
            }
            let take = (cell.payload - record.len()).min(usable - 4);
            record.extend_from_slice(&overflow[4..4 + take]);
            next = u32::from_be_bytes([overflow[0], overflow[1], overflow[2], overflow[3]]);
        }
        if record.len() != cell.payload {
            return Ok(None);
        }
        records.push(record);
    }
    Ok(Some(records))
}

/// The first `N` columns of a record (columns past its end are NULL, as SQLite reads them).
/// `None` when the record's header does not hold together.
pub(crate) fn columns<const N: usize>(record: &[u8]) -> Option<[Stored<'_>; N]> {
    let (header_len, mut at) = varint(record)?;
    let header_len = usize::try_from(header_len).ok()?;
    if header_len > record.len() || at > header_len {
        return None;
    }
    let mut body = header_len;
    let mut out = [Stored::Null; N];
    for slot in out.iter_mut() {
        if at >= header_len {
            break;
        }
        let (serial, n) = varint(&record[at..header_len])?;
        at += n;
        // Serial types: what each column holds and how many bytes of the body it takes.
        let (len, kind) = match serial {
            0 => (0, 0),
            1..=4 => (serial as usize, 1),
            5 => (6, 1),
            6 | 7 => (8, 1),
            8 | 9 => (0, 1),
            10 | 11 => return None,
            n if n % 2 == 0 => (usize::try_from((n - 12) / 2).ok()?, 2),
            n => (usize::try_from((n - 13) / 2).ok()?, 3),
        };
        let bytes = record.get(body..body.checked_add(len)?)?;
        *slot = match kind {
            0 => Stored::Null,
            1 => Stored::Number,
            2 => Stored::Blob(bytes),
            _ => Stored::Text(bytes),
        };
        body += len;
    }
    Some(out)
}

/// The header of one table b-tree page.
struct BtreePage {
    leaf: bool,
    /// Where the cell pointer array starts.
    pointers: usize,
    /// Where the cell content area starts: every cell lies between it and `usable`.
    content: usize,
    cells: usize,
    /// An interior page's rightmost child.
    right: u32,
    usable: usize,
}

/// One cell of a table leaf page.
struct LeafCell {
    rowid: i64,
    /// The record's whole size, overflow included, and where its first part is on the page.
    payload: usize,
    local: std::ops::Range<usize>,
    /// The first overflow page (0: none) and how many pages the payload's rest takes.
    overflow: u32,
    overflow_pages: u32,
}

impl BtreePage {
    fn parse(buf: &[u8], header: usize, usable: usize) -> Option<BtreePage> {
        let h = buf.get(header..header + 12)?;
        let (leaf, size) = match h[0] {
            0x0D => (true, 8),
            0x05 => (false, 12),
            _ => return None,
        };
        let cells = usize::from(u16::from_be_bytes([h[3], h[4]]));
        let pointers = header + size;
        let content = match u16::from_be_bytes([h[5], h[6]]) {
            0 => 65_536,
            n => usize::from(n),
        };
        if pointers + 2 * cells > content || content > usable {
            return None;
        }
        Some(BtreePage {
            leaf,
            pointers,
            content,
            cells,
            right: if leaf { 0 } else { be32(h, 8)? },
            usable,
        })
    }

    fn cell_start(&self, buf: &[u8], i: usize) -> Option<usize> {
        let at = self.pointers + 2 * i;
        let start = usize::from(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]));
        (self.content..self.usable)
            .contains(&start)
            .then_some(start)
    }

    /// An interior cell: the child page left of its key.
    fn child(&self, buf: &[u8], i: usize) -> Option<u32> {
        be32(buf, self.cell_start(buf, i)?)
    }

    /// A leaf cell: payload size, rowid, the payload's first part, then (when the payload
    /// does not fit) the first overflow page. The split follows SQLite's file format.
    fn leaf_cell(&self, buf: &[u8], i: usize) -> Option<LeafCell> {
        let start = self.cell_start(buf, i)?;
        let (payload, n) = varint(buf.get(start..self.usable)?)?;
        let (rowid, m) = varint(buf.get(start + n..self.usable)?)?;
        let payload = usize::try_from(payload).ok()?;
        let u = self.usable;
        let max_local = u - 35;
        let local = if payload <= max_local {
            payload
        } else {
            let min_local = (u - 12) * 32 / 255 - 23;
            let k = min_local + (payload - min_local) % (u - 4);
            if k <= max_local { k } else { min_local }
        };
        let body = start + n + m;
        let end = body.checked_add(local)?;
        let (overflow, overflow_pages) = if payload == local {
            (0, 0)
        } else {
            (
                be32(buf.get(..u)?, end)?,
                u32::try_from((payload - local).div_ceil(u - 4)).ok()?,
            )
        };
        (end <= u).then_some(LeafCell {
            rowid: rowid as i64,
            payload,
            local: body..end,
            overflow,
            overflow_pages,
        })
    }
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// SQLite's variable-length integer: up to 9 bytes, big-endian, 7 bits a byte but the ninth,
/// which gives 8. Returns the value and its length.
fn varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(9) {
        if i == 8 {
            return Some(((value << 8) | u64::from(b), 9));
        }
        value = (value << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn leaves(conn: &Connection, keys: &PageKeys) -> Option<Vec<Leaf>> {
        walk(conn, keys, &[])
    }

    /// A walk that knows the leaves of an earlier one, as the backend's memo does.
    fn walk(conn: &Connection, keys: &PageKeys, earlier: &[Leaf]) -> Option<Vec<Leaf>> {
        let mut stmt = conn.prepare(READ_PAGE).unwrap();
        let mut read = |pgno: u32, buf: &mut Vec<u8>| read_page(&mut stmt, pgno, buf);
        let known = |bytes: u64| {
            earlier
                .iter()
                .find(|l| l.bytes == bytes)
                .map(|l| KnownLeaf {
                    chains: &l.chains,
                    rowids: l.rowids,
                })
        };
        schema_leaves(&mut read, keys, &known, &mut Buffers::default()).unwrap()
    }

    /// Every rowid of `sqlite_schema`, as SQLite reads them.
    fn rowids(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn
            .prepare("SELECT rowid FROM sqlite_schema ORDER BY rowid")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The leaves' cells and rowid ranges must account for exactly SQLite's rows, in order.
    fn assert_matches_rows(conn: &Connection, leaves: &[Leaf]) {
        let rows = rowids(conn);
        let total: u64 = leaves.iter().map(|l| l.cells).sum();
        assert_eq!(total, rows.len() as u64);
        let mut rest = rows.as_slice();
        for leaf in leaves {
            let (now, later) = rest.split_at(leaf.cells as usize);
            assert_eq!(
                leaf.rowids,
                now.first().map(|lo| (*lo, *now.last().unwrap()))
            );
            rest = later;
        }
    }

    #[test]
    fn the_walk_finds_every_row_and_only_changed_leaves_change() {
        let conn = Connection::open_in_memory().unwrap();
        let keys = PageKeys::default();
        // An empty database has no page 1 yet.
        assert_eq!(leaves(&conn, &keys), None);
        conn.execute_batch("CREATE TABLE t0 (x)").unwrap();
        let one = leaves(&conn, &keys).unwrap();
        assert_eq!(one.len(), 1);
        assert_matches_rows(&conn, &one);

        // Enough objects for interior pages, and SQL long enough to overflow (a 3-page and a
        // 1-page overflow chain at the default 4,096-byte page).
        let mut script = String::from("BEGIN;");
        for i in 1..600 {
            script.push_str(&format!(
                "CREATE TABLE t{i} (a INTEGER PRIMARY KEY, b TEXT UNIQUE, c BLOB);"
            ));
        }
        let long: String = (0..1500).map(|i| format!("c{i},")).collect();
        script.push_str(&format!("CREATE TABLE wide ({long} z);"));
        let medium: String = (0..700).map(|i| format!("d{i},")).collect();
        script.push_str(&format!("CREATE TABLE medium ({medium} z);COMMIT;"));
        conn.execute_batch(&script).unwrap();
        let before = leaves(&conn, &keys).unwrap();
        assert!(before.len() > 20, "{} leaves", before.len());
        assert_matches_rows(&conn, &before);

        // Altering one object in the middle changes its leaf and no other.
        conn.execute_batch("ALTER TABLE t300 ADD COLUMN d").unwrap();
        let after = leaves(&conn, &keys).unwrap();
        assert_matches_rows(&conn, &after);
        let changed: Vec<usize> = (0..after.len())
            .filter(|&i| after[i] != before[i])
            .collect();
        assert_eq!(changed.len(), 1, "{changed:?}");

        // A change only in an overflow page: SQLite rewrites a row of the same size in place,
        // so the leaf keeps its bytes; the leaf's digest must still change.
        let rowid: i64 = conn
            .query_row(
                "SELECT rowid FROM sqlite_schema WHERE name = 'wide'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let holding = |l: &[Leaf]| {
            l.iter()
                .find(|l| l.rowids.is_some_and(|(lo, hi)| lo <= rowid && rowid <= hi))
                .cloned()
                .unwrap()
        };
        let page =
            |pgno: u32| -> Vec<u8> { conn.query_row(READ_PAGE, [pgno], |r| r.get(0)).unwrap() };
        let was = holding(&after);
        assert_eq!(was.chains.len(), 1, "{was:?}");
        let bytes = page(was.page);
        let known_before = after.clone();
        let renamed = long.replacen("c1499,", "x1499,", 1);
        conn.execute_batch(&format!(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE TABLE wide ({renamed} z)' WHERE name = 'wide';
             PRAGMA writable_schema = OFF;"
        ))
        .unwrap();
        let after = leaves(&conn, &keys).unwrap();
        assert_matches_rows(&conn, &after);
        let now = holding(&after);
        assert_eq!(now.page, was.page);
        assert_eq!(page(now.page), bytes, "the leaf itself was rewritten");
        assert_eq!(now.bytes, was.bytes);
        assert_ne!(now.overflow, was.overflow);
        // Also when the walk knows the leaf's bytes from before and skips its cells.
        let known = walk(&conn, &keys, &known_before).unwrap();
        assert_eq!(known, after);

        // A walk that knows every leaf finds the same leaves as one that knows none.
        assert_eq!(walk(&conn, &keys, &after).unwrap(), after);

        // Other keys, other digests.
        let other = leaves(&conn, &PageKeys::default()).unwrap();
        assert_ne!(other[0].bytes, after[0].bytes);
    }

    /// Every leaf's records, decoded, are the rows SQLite reads in its rowid range: NULL `sql`
    /// (autoindexes), long `sql` over overflow chains, integers.
    #[test]
    fn records_decode_to_the_rows_sqlite_reads() {
        let conn = Connection::open_in_memory().unwrap();
        let long: String = (0..1500).map(|i| format!("c{i},")).collect();
        let mut script = format!("BEGIN; CREATE TABLE wide ({long} z);");
        for i in 0..300 {
            script.push_str(&format!(
                "CREATE TABLE t{i} (a INTEGER PRIMARY KEY, b TEXT UNIQUE);
                 CREATE INDEX i{i} ON t{i} (b);"
            ));
        }
        script.push_str("CREATE VIEW v AS SELECT 1; COMMIT;");
        conn.execute_batch(&script).unwrap();
        let keys = PageKeys::default();
        let mut stmt = conn.prepare(READ_PAGE).unwrap();
        let mut read = |pgno: u32, buf: &mut Vec<u8>| read_page(&mut stmt, pgno, buf);
        let mut buffers = Buffers::default();
        let leaves = schema_leaves(&mut read, &keys, &|_| None, &mut buffers)
            .unwrap()
            .unwrap();
        let mut rows = 0;
        let mut overflowed = 0;
        for leaf in &leaves {
            let (lo, hi) = leaf.rowids.unwrap();
            let records = leaf_records(&mut read, leaf.page, &mut buffers)
                .unwrap()
                .unwrap();
            let decoded: Vec<_> = records
                .iter()
                .map(|r| {
                    let [kind, name, table, root, sql] = columns::<5>(r).unwrap();
                    let text = |v: Stored<'_>| match v {
                        Stored::Text(t) => Some(String::from_utf8(t.to_vec()).unwrap()),
                        _ => None,
                    };
                    assert_eq!(root, Stored::Number);
                    [text(kind), text(name), text(table), text(sql)]
                })
                .collect();
            let mut stmt = conn
                .prepare(
                    "SELECT type, name, tbl_name, sql FROM sqlite_schema
                     WHERE rowid BETWEEN ?1 AND ?2 ORDER BY rowid",
                )
                .unwrap();
            let expected: Vec<[Option<String>; 4]> = stmt
                .query_map([lo, hi], |r| {
                    Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(decoded, expected, "leaf {}", leaf.page);
            rows += decoded.len();
            overflowed += leaf.chains.len();
        }
        assert_eq!(rows, 1 + 300 * 3 + 1);
        assert_eq!(overflowed, 1);
        // Not a leaf: no records.
        let interior = (1..40)
            .find(|p| {
                !leaves.iter().any(|l| l.page == *p) && {
                    let mut b = Vec::new();
                    read(*p, &mut b).unwrap() && b.get(if *p == 1 { 100 } else { 0 }) == Some(&0x05)
                }
            })
            .unwrap();
        assert_eq!(
            leaf_records(&mut read, interior, &mut buffers).unwrap(),
            None
        );
    }

    #[test]
    fn a_record_with_fewer_columns_reads_null_past_its_end() {
        // Header of 3 bytes: two columns, text of 1 byte ("a") and the integer 1.
        let record = [3u8, 15, 9, b'a'];
        assert_eq!(
            columns::<3>(&record),
            Some([Stored::Text(b"a"), Stored::Number, Stored::Null])
        );
        // Serial types 10 and 11 are reserved; a text longer than the record is not a record.
        assert_eq!(columns::<1>(&[2, 10]), None);
        assert_eq!(columns::<1>(&[2, 21, b'a']), None);
    }

    #[test]
    fn varints_read_as_sqlite_writes_them() {
        assert_eq!(varint(&[0x05]), Some((5, 1)));
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xFF; 9]), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81]), None);
    }
}
