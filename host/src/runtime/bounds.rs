//! What one plugin's store may hold: its linear memories and tables counted together.
//!
//! wasmtime's `StoreLimits` bounds each memory and each table on its own, and a component
//! may hold several of each: sixteen memories of the step's 256 MiB would be 4 GiB. The
//! bound that matters to the host is the sum, so the limiter counts every byte of linear
//! memory and every table element the store creates or grows, whichever instance holds it.

use wasmtime::ResourceLimiter;

/// Table elements one store may hold in all (a plugin's function tables hold hundreds).
const TABLE_ELEMENTS: usize = 100_000;

/// The limiter of one call's store.
pub(crate) struct StoreBounds {
    /// Linear memory the store may hold in all, in bytes.
    memory_limit: usize,
    /// Linear memory the store holds, in bytes, all its memories together.
    memory: usize,
    /// Table elements the store holds, all its tables together.
    elements: usize,
}

impl StoreBounds {
    pub(crate) fn new(memory_limit: usize) -> Self {
        StoreBounds {
            memory_limit,
            memory: 0,
            elements: 0,
        }
    }
}

impl ResourceLimiter for StoreBounds {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A memory's own maximum is wasmtime's to enforce (then `memory_grow_failed`).
        let total = (self.memory - current.min(self.memory)).saturating_add(desired);
        if total > self.memory_limit {
            // "growing memory" is what `describe_trap` reads as the memory limit.
            wasmtime::bail!("growing memory to {total} bytes in all the plugin's memories");
        }
        self.memory = total;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("growing memory failed"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.elements - current.min(self.elements)).saturating_add(desired);
        if total > TABLE_ELEMENTS {
            wasmtime::bail!(
                "growing tables to {total} elements in all, past the {TABLE_ELEMENTS} a plugin \
                 may hold"
            );
        }
        self.elements = total;
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("growing a table failed"))
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_count_together() {
        let mut b = StoreBounds::new(100);
        assert!(b.memory_growing(0, 60, None).unwrap());
        assert!(b.memory_growing(60, 70, None).unwrap());
        // A second memory: 70 + 40 is past 100.
        assert!(b.memory_growing(0, 40, None).is_err());
        assert!(b.memory_growing(0, 30, None).unwrap());
        assert!(b.memory_growing(70, 71, None).is_err());
        assert!(b.table_growing(0, TABLE_ELEMENTS, None).unwrap());
        assert!(b.table_growing(0, 1, None).is_err());
    }
}
