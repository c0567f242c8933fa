//! `sqlite_schema`'s b-tree, page by page. The per-step schema check digests every row of
//! the schema table; most of those rows sit on leaf pages the step did not touch. Reading the
//! tree's pages (through the `sqlite_dbpage` virtual table, which sees the open transaction's
//! own changes) tells which leaves changed: a leaf whose bytes, and whose rows' overflow
//! pages, are what they were holds the very rows it held, so their digest can be reused.
//!
//! Only the tree's shape is read here (page types, child pointers, cell sizes, rowids); the
//! rows themselves are still read by SQLite, by rowid range, for the leaves that changed.
//! Anything that does not look like a table b-tree ends the walk with `None`, and the caller
//! falls back to reading every row.

use std::hash::{BuildHasher, Hasher};

/// One leaf page of the schema table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// Its page number.
    pub page: u32,
    /// Keyed digest of the part of the leaf that holds its rows (header, cell pointers, cell
    /// content: not the unused gap, nor page 1's database header) and of its rows' overflow
    /// pages: the same content, the same rows.
    pub content: u64,
    /// The lowest and highest rowid of its cells; `None` for an empty leaf.
    pub rowids: Option<(i64, i64)>,
    /// How many rows it holds.
    pub cells: u64,
}

/// Key of the content digest: random per process, so no plugin can aim for a collision (the
/// same 64-bit keyed hashing the schema check's row digest relies on).
#[derive(Debug, Default)]
pub(crate) struct PageKeys(foldhash::quality::RandomState);

/// Reads one page of the database into the buffer; `false` when there is no such page.
pub(crate) type ReadPage<'a, E> = dyn FnMut(u32, &mut Vec<u8>) -> Result<bool, E> + 'a;

/// The leaf pages of the table b-tree rooted at page 1 (`sqlite_schema`), in tree order.
/// `Ok(None)`: the pages do not read as a table b-tree (a page reached twice, a page of another
/// kind, a cell out of bounds, rowids out of order); read the rows instead.
pub(crate) fn schema_leaves<E>(
    read: &mut ReadPage<'_, E>,
    keys: &PageKeys,
) -> Result<Option<Vec<Leaf>>, E> {
    let mut buf = Vec::new();
    let mut overflow = Vec::new();
    if !read(1, &mut buf)? || buf.len() < 100 {
        return Ok(None);
    }
    // The database header: page size (1 means 65,536) and the bytes reserved at each page's
    // end (`usable` is what b-tree pages use).
    let page_size = match u16::from_be_bytes([buf[16], buf[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    let usable = page_size - usize::from(buf[20]);
    if buf.len() != page_size || usable < 480 {
        return Ok(None);
    }
    let mut leaves: Vec<Leaf> = Vec::new();
    let mut stack = vec![1u32];
    let mut seen = foldhash::HashSet::default();
    let mut highest: Option<i64> = None;
    while let Some(pgno) = stack.pop() {
        if !seen.insert(pgno) || !read(pgno, &mut buf)? || buf.len() != page_size {
            return Ok(None);
        }
        let header = if pgno == 1 { 100 } else { 0 };
        let Some(page) = BtreePage::parse(&buf, header, usable) else {
            return Ok(None);
        };
        if page.leaf {
            let mut digest = keys.0.build_hasher();
            digest.write(&buf[header..page.pointers + 2 * page.cells]);
            digest.write(&buf[page.content..usable]);
            let mut rowids: Option<(i64, i64)> = None;
            for i in 0..page.cells {
                let Some(cell) = page.leaf_cell(&buf, i) else {
                    return Ok(None);
                };
                // Rowids rise from cell to cell and from leaf to leaf.
                if highest.is_some_and(|h| cell.rowid <= h) {
                    return Ok(None);
                }
                highest = Some(cell.rowid);
                rowids = Some((rowids.map_or(cell.rowid, |(lo, _)| lo), cell.rowid));
                // The rest of the row's payload, one overflow page after another.
                let mut next = cell.overflow;
                for _ in 0..cell.overflow_pages {
                    if next == 0
                        || !seen.insert(next)
                        || !read(next, &mut overflow)?
                        || overflow.len() != page_size
                    {
                        return Ok(None);
                    }
                    digest.write(&overflow[..usable]);
                    next = u32::from_be_bytes([overflow[0], overflow[1], overflow[2], overflow[3]]);
                }
            }
            leaves.push(Leaf {
                page: pgno,
                content: digest.finish(),
                rowids,
                cells: page.cells as u64,
            });
        } else {
            // Children right to left, so the leftmost is walked first.
            stack.push(page.right);
            for i in (0..page.cells).rev() {
                let Some(child) = page.child(&buf, i) else {
                    return Ok(None);
                };
                stack.push(child);
            }
        }
    }
    Ok(Some(leaves))
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
    /// The first overflow page (0: none) and how many pages the payload's rest takes.
    overflow: u32,
    overflow_pages: usize,
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
        let end = start.checked_add(n + m)?.checked_add(local)?;
        if payload == local {
            return (end <= u).then_some(LeafCell {
                rowid: rowid as i64,
                overflow: 0,
                overflow_pages: 0,
            });
        }
        Some(LeafCell {
            rowid: rowid as i64,
            overflow: be32(buf.get(..u)?, end)?,
            overflow_pages: (payload - local).div_ceil(u - 4),
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
        let mut read = |pgno: u32, buf: &mut Vec<u8>| -> rusqlite::Result<bool> {
            let mut stmt =
                conn.prepare_cached("SELECT data FROM sqlite_dbpage('main') WHERE pgno = ?1")?;
            let mut rows = stmt.query([pgno])?;
            let Some(row) = rows.next()? else {
                return Ok(false);
            };
            buf.clear();
            buf.extend_from_slice(row.get_ref(0)?.as_blob()?);
            Ok(true)
        };
        schema_leaves(&mut read, keys).unwrap()
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
        let page = |pgno: u32| -> Vec<u8> {
            conn.query_row(
                "SELECT data FROM sqlite_dbpage('main') WHERE pgno = ?1",
                [pgno],
                |r| r.get(0),
            )
            .unwrap()
        };
        let was = holding(&after);
        let bytes = page(was.page);
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
        assert_ne!(now.content, was.content);

        // Other keys, other digests.
        let other = leaves(&conn, &PageKeys::default()).unwrap();
        assert_ne!(other[0].content, after[0].content);
    }

    #[test]
    fn varints_read_as_sqlite_writes_them() {
        assert_eq!(varint(&[0x05]), Some((5, 1)));
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xFF; 9]), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81]), None);
    }
}
