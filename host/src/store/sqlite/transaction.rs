//! A step's write transaction: `BEGIN IMMEDIATE`, retried with backoff while another
//! runner holds the database, then commit or roll back.

use super::*;

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked)
    )
}

/// A per-process, per-call seed, so that runners started together do not retry in step.
pub(super) fn jitter_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    (nanos ^ ((std::process::id() as u64) << 32)) | 1
}

impl SqliteBackend {
    pub(super) fn begin(&mut self) -> Result<()> {
        // Another runner may hold the write lock: retry with exponential backoff and jitter,
        // up to the lock timeout, then say who is in the way.
        let started = Instant::now();
        let mut backoff = Duration::from_millis(5);
        let mut jitter = jitter_seed();
        self.conn
            .busy_timeout(Duration::ZERO)
            .map_err(|e| self.error("cannot configure the connection", e))?;
        let result = loop {
            match self.conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => break Ok(()),
                Err(e) if is_busy(&e) && started.elapsed() < self.options.lock_timeout => {
                    jitter ^= jitter << 13;
                    jitter ^= jitter >> 7;
                    jitter ^= jitter << 17;
                    let wait = backoff.mul_f64(0.5 + (jitter % 1000) as f64 / 1000.0);
                    let left = self.options.lock_timeout.saturating_sub(started.elapsed());
                    std::thread::sleep(wait.min(left));
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) if is_busy(&e) => {
                    break Err(Error::Locked {
                        path: self.path.clone(),
                        waited: started.elapsed(),
                    });
                }
                Err(e) => break Err(self.error("cannot start a transaction", e)),
            }
        };
        self.conn
            .busy_timeout(self.options.lock_timeout)
            .map_err(|e| self.error("cannot configure the connection", e))?;
        result?;
        self.in_transaction = true;
        Ok(())
    }

    pub(super) fn commit(&mut self) -> Result<()> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| self.error("cannot commit", e))?;
        self.in_transaction = false;
        Ok(())
    }

    pub(super) fn rollback(&mut self) -> Result<()> {
        // Tables created in the rolled-back transaction (a dry run's) are gone again, and so
        // may be the schema the last mark describes.
        self.host_tables = false;
        self.last_mark = None;
        self.after_step = None;
        *self.shadow.get_mut() = None;
        if self.conn.is_autocommit() {
            self.in_transaction = false;
            return Ok(());
        }
        self.conn
            .execute_batch("ROLLBACK")
            .map_err(|e| self.error("cannot roll back", e))?;
        self.in_transaction = false;
        Ok(())
    }
}
