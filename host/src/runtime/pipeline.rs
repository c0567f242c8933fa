//! Batches that run on another thread while the plugin builds its next rows
//! (`send-batch-packed`, `finish-batches`): a bulk load's two halves, the plugin's code and
//! SQLite, overlap on two cores instead of taking turns on one.
//!
//! The step's backend goes to the worker with each batch and comes back when the batch is
//! done. Every other use of the backend settles the batch in flight first
//! ([`Pipeline::settle`]), so nothing else runs while it does, and batches run in the order
//! they were sent.

use super::batch::{MAX_BATCH_VALUES, run_batch, unpack};
use crate::store::{Backend, SqlError};
use std::sync::mpsc;

/// One batch for the worker: the step's backend and a copy of the plugin's packed values.
struct Job {
    backend: Box<dyn Backend>,
    statement: String,
    width: usize,
    bytes: Vec<u8>,
}

/// A batch done: the backend back, the bytes' buffer to reuse, and what the batch did.
struct Done {
    backend: Box<dyn Backend>,
    bytes: Vec<u8>,
    result: Result<u64, SqlError>,
}

/// A step's batch worker: one thread, started by the step's first `send-batch-packed`, ended
/// when the step's store drops it.
pub(crate) struct Pipeline {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Done>,
    /// A batch is running: the backend is with the worker.
    running: bool,
    /// Rows changed by the batches settled since the last `finish-batches` or error.
    changed: u64,
    /// The buffer of the last batch's bytes, to copy the next one into.
    spare: Vec<u8>,
    /// The error of a batch that ran in place ([`Pipeline::ran_here`]), not yet reported.
    failed: Option<SqlError>,
}

/// The most bytes of values a batch is copied for to run on the worker; a larger one (rows of
/// large blobs: the SDK sends about 1 MiB at a time) runs in place, before its call returns,
/// without a copy.
pub(crate) const MAX_COPIED_BYTES: usize = 16 << 20;

impl Pipeline {
    pub(crate) fn start() -> Result<Self, SqlError> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (outbox, done) = mpsc::channel::<Done>();
        std::thread::Builder::new()
            .name("wasmig-batch".into())
            .spawn(move || {
                for mut job in inbox {
                    // A panic must not lose the step's backend (its open transaction).
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let mut values = Vec::new();
                        unpack(&job.bytes, &mut values, MAX_BATCH_VALUES).and_then(|()| {
                            let (b, s) = (&mut *job.backend, &job.statement);
                            run_batch(b, s, job.width, &values, "send-batch-packed")
                        })
                    }))
                    .unwrap_or_else(|_| {
                        Err(SqlError::Other("wasmig's batch worker panicked".into()))
                    });
                    let done = Done {
                        backend: job.backend,
                        bytes: job.bytes,
                        result,
                    };
                    if outbox.send(done).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| SqlError::Other(format!("cannot start the batch worker: {e}")))?;
        Ok(Pipeline {
            jobs,
            done,
            running: false,
            changed: 0,
            spare: Vec::new(),
            failed: None,
        })
    }

    /// A buffer to copy the next batch's bytes into (empty).
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.spare);
        bytes.clear();
        bytes
    }

    /// Starts a batch. The pipeline must be settled (no batch running).
    pub(crate) fn send(
        &mut self,
        backend: Box<dyn Backend>,
        statement: String,
        width: usize,
        bytes: Vec<u8>,
    ) {
        assert!(
            !self.running,
            "a batch is sent only once the one before is settled"
        );
        let job = Job {
            backend,
            statement,
            width,
            bytes,
        };
        // The worker lives as long as `self` (it ends when `jobs` is dropped).
        self.jobs.send(job).expect("the batch worker is running");
        self.running = true;
    }

    /// Records what a batch run in place did, as if it had run on the worker: its error is
    /// reported by the next call, like any batch's.
    pub(crate) fn ran_here(&mut self, result: Result<u64, SqlError>) {
        self.count(result);
    }

    /// Waits for the batch in flight, if any, and puts its backend back in `backend`; the
    /// error of a batch not yet reported (the rows batches changed are added to the count
    /// `finish-batches` returns).
    pub(crate) fn settle(&mut self, backend: &mut Option<Box<dyn Backend>>) -> Option<SqlError> {
        if self.running {
            self.running = false;
            let done = self
                .done
                .recv()
                .expect("the batch worker hands back every job");
            self.spare = done.bytes;
            *backend = Some(done.backend);
            self.count(done.result);
        }
        self.failed.take()
    }

    fn count(&mut self, result: Result<u64, SqlError>) {
        match result {
            Ok(n) => self.changed += n,
            Err(e) => {
                self.changed = 0;
                self.failed = Some(e);
            }
        }
    }

    /// The rows changed by the batches settled since the last call (or error).
    pub(crate) fn take_changed(&mut self) -> u64 {
        std::mem::take(&mut self.changed)
    }
}
