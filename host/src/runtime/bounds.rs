//! What one plugin's store may hold: its linear memories, its tables, and what wasmtime keeps
//! in the host for each of its instances, counted together.
//!
//! wasmtime's `StoreLimits` bounds each memory and each table on its own, and a component
//! may hold several of each: sixteen memories of the step's 256 MiB would be 4 GiB. The
//! bound that matters to the host is the sum, so the limiter counts every byte of linear
//! memory and every table element the store creates or grows, whichever instance holds it.
//! Each core instance also holds, in the host's memory, slots that follow its module's
//! sections (a reference per function that can be referenced, a copy of each passive element
//! segment, its globals): [`instance_state`] bounds them from the file, and that bound counts
//! against the plugin's memory limit before anything is instantiated.

use wasmtime::ResourceLimiter;

/// Table elements one store may hold in all (a plugin's function tables hold hundreds).
const TABLE_ELEMENTS: usize = 100_000;

/// Core instances one store may hold (a plugin built from Rust makes a handful).
const INSTANCES: usize = 64;

/// The limiter of one call's store.
pub(crate) struct StoreBounds {
    /// Linear memory the store may hold in all, in bytes, the instances' state included.
    memory_limit: usize,
    /// What the store's instances hold in the host beyond memories and tables, at most.
    instance_state: usize,
    /// Linear memory the store holds, in bytes, all its memories together, and
    /// `instance_state`.
    memory: usize,
    /// Table elements the store holds, all its tables together.
    elements: usize,
    /// Whether the limiter has refused something (memory, table elements, the instances'
    /// state): a store made ahead within a smaller limit is made again within the whole one.
    refused: bool,
}

impl StoreBounds {
    pub(crate) fn new(memory_limit: usize, instance_state: usize) -> Self {
        StoreBounds {
            memory_limit,
            instance_state,
            memory: instance_state,
            elements: 0,
            refused: false,
        }
    }

    /// Whether the limiter has refused anything to this store.
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    /// Raises (or lowers) the limit, for a store made ahead of its call within a smaller one.
    pub(crate) fn set_memory_limit(&mut self, memory_limit: usize) {
        self.memory_limit = memory_limit;
    }

    /// Whether the plugin's instances may be made at all: what they hold in the host beyond
    /// their memories must fit in the memory limit before any of them exists (an instance
    /// without a memory never asks the limiter).
    pub(crate) fn check_instance_state(&mut self) -> Result<(), String> {
        if self.instance_state > self.memory_limit {
            self.refused = true;
            return Err(format!(
                "exceeded its memory limit of {} MiB: the instances of its core modules \
                 would hold up to {} MiB in the host (a slot for each function that can be \
                 referenced, each passive element, each global)",
                self.memory_limit >> 20,
                self.instance_state.div_ceil(1 << 20)
            ));
        }
        Ok(())
    }
}

/// What one instance of a core module holds in the host beyond its memories and tables, at
/// most, from the module's sections: wasmtime lays out, per instance, a slot for each
/// import, each global, each function that can be referenced (exported, imported, named by
/// an element segment or a constant expression), each data segment, each memory and table,
/// and a copy of each passive element segment (its header and its elements); 16 to 64 bytes
/// each.
#[derive(Default)]
pub(crate) struct ModuleState {
    imports: u64,
    globals: u64,
    referenced: u64,
    passive: u64,
    element_segments: u64,
    segments: u64,
    definitions: u64,
}

impl ModuleState {
    /// The bytes one instance of the module holds, at most.
    pub(crate) fn bytes(&self) -> u64 {
        // A function import is an import slot and a function reference; a global may hold
        // a function reference; a passive element is a 16-byte value and a reference.
        1024 + 64 * self.imports
            + 48 * self.globals
            + 32 * self.referenced
            + 16 * self.passive
            + 64 * self.element_segments
            + 16 * self.segments
            + 64 * self.definitions
    }

    /// Counts what one of the module's sections adds.
    pub(crate) fn add(&mut self, payload: &wasmparser::Payload<'_>) -> Result<(), String> {
        use wasmparser::{ElementItems, ElementKind, Payload};
        let invalid =
            |e: wasmparser::BinaryReaderError| format!("not a valid WebAssembly component: {e}");
        match payload {
            Payload::ImportSection(reader) => {
                self.imports += crate::loader::count_imports(reader.clone()).map_err(invalid)?;
            }
            Payload::GlobalSection(reader) => self.globals += u64::from(reader.count()),
            Payload::ExportSection(reader) => self.referenced += u64::from(reader.count()),
            Payload::DataSection(reader) => self.segments += u64::from(reader.count()),
            Payload::TableSection(reader) => self.definitions += u64::from(reader.count()),
            Payload::MemorySection(reader) => self.definitions += u64::from(reader.count()),
            Payload::TagSection(reader) => self.definitions += u64::from(reader.count()),
            Payload::ElementSection(reader) => {
                self.element_segments += u64::from(reader.count());
                for element in reader.clone() {
                    let element = element.map_err(invalid)?;
                    let items = u64::from(match &element.items {
                        ElementItems::Functions(items) => items.count(),
                        ElementItems::Expressions(_, items) => items.count(),
                    });
                    self.referenced += items;
                    if matches!(element.kind, ElementKind::Passive) {
                        self.passive += items;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What wasmtime makes for a component beyond the core instances it declares: an instance of
/// each module of fused adapters (between nested components), whose functions import a few
/// slots each. Bounded by the canonical functions the component makes, nested instances'
/// included, and by the instances a store allows.
fn adapter_state(canon: u64) -> u64 {
    1024 * canon + 1024 * INSTANCES as u64
}

/// The most a plugin's instances hold in the host beyond their memories and tables: each
/// core instance its component makes, nested components' included, holds what its module's
/// sections call for ([`ModuleState`]), and wasmtime's adapters hold a little more. A plugin
/// built from Rust comes to about a hundred kilobytes.
pub(crate) fn instance_state(bytes: &[u8]) -> Result<usize, String> {
    let weight = crate::loader::component_weight(bytes)?;
    let state = weight.state.saturating_add(adapter_state(weight.canon));
    Ok(usize::try_from(state).unwrap_or(usize::MAX))
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
            self.refused = true;
            // "growing memory" is what `describe_trap` reads as the memory limit.
            let memories = total.saturating_sub(self.instance_state);
            if self.instance_state >= 1 << 20 {
                wasmtime::bail!(
                    "growing memory to {memories} bytes in all the plugin's memories, with up \
                     to {} bytes its instances hold in the host",
                    self.instance_state
                );
            }
            wasmtime::bail!("growing memory to {memories} bytes in all the plugin's memories");
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
            self.refused = true;
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
        INSTANCES
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
        let mut b = StoreBounds::new(100, 0);
        assert!(b.memory_growing(0, 60, None).unwrap());
        assert!(b.memory_growing(60, 70, None).unwrap());
        // A second memory: 70 + 40 is past 100.
        assert!(b.memory_growing(0, 40, None).is_err());
        assert!(b.memory_growing(0, 30, None).unwrap());
        assert!(b.memory_growing(70, 71, None).is_err());
        assert!(b.table_growing(0, TABLE_ELEMENTS, None).unwrap());
        assert!(b.table_growing(0, 1, None).is_err());
    }

    #[test]
    fn instance_state_counts_against_the_memory_limit() {
        let mut b = StoreBounds::new(100, 30);
        assert!(b.check_instance_state().is_ok());
        assert!(b.memory_growing(0, 60, None).unwrap());
        // 30 of the instances' state, 60 of one memory: 20 more is past 100.
        assert!(b.memory_growing(0, 20, None).is_err());
        assert!(b.memory_growing(0, 10, None).unwrap());
        assert!(StoreBounds::new(100, 101).check_instance_state().is_err());
        assert!(b.refused());
    }
}
