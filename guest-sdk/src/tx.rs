//! The step's transaction as a plugin sees it: [`Tx`] and its bulk loads, [`Batch`].

use crate::__bindings::wasmig::plugin::sql as wit_sql;
use crate::*;
use std::cell::Cell;
use std::rc::Rc;

/// The transaction of the step that is running.
///
/// Every call goes to the host, which runs it inside the step's transaction with the plugin's
/// permissions. A plugin cannot commit or roll back: returning `Ok` from the migration commits
/// the step, returning an error rolls it back.
pub struct Tx {
    pub(crate) _private: (),
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
    pub(crate) statement: &'t str,
    pub(crate) width: usize,
    /// The buffered rows' values, packed as `execute-batch-packed` takes them.
    pub(crate) packed: Vec<u8>,
    /// How many values `packed` holds.
    pub(crate) values: usize,
    /// Some rows were sent to run on the host's worker.
    pub(crate) sent: bool,
    /// Rows changed by the rows sent so far (shared with `SENDING` while the host may still
    /// be running some).
    pub(crate) changed: Rc<Cell<u64>>,
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
