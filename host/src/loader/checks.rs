//! What a component must be before anything of it runs: a component (not a core module),
//! importing only allow-listed interfaces, exporting wasmig's `plugin`; and its declaration
//! section, when it carries one.

use crate::declaration::Declaration;
use crate::runtime::PLUGIN_EXPORT;
use crate::runtime::bounds::ModuleState;

/// Interfaces a plugin may import: ours, and the WASI interfaces that wasm32-wasip2 std links
/// (granted nothing: no preopened directories, no environment, no network).
pub(super) const IMPORT_ALLOW_LIST: &[&str] = &[
    "wasmig:plugin/types@0.1.0",
    "wasmig:plugin/sql@0.1.0",
    "wasmig:plugin/log@0.1.0",
    "wasi:io/error@",
    "wasi:io/poll@",
    "wasi:io/streams@",
    "wasi:cli/environment@",
    "wasi:cli/exit@",
    "wasi:cli/stdin@",
    "wasi:cli/stdout@",
    "wasi:cli/stderr@",
    "wasi:cli/terminal-input@",
    "wasi:cli/terminal-output@",
    "wasi:cli/terminal-stdin@",
    "wasi:cli/terminal-stdout@",
    "wasi:cli/terminal-stderr@",
    "wasi:clocks/monotonic-clock@",
    "wasi:clocks/wall-clock@",
    "wasi:random/random@",
    "wasi:random/insecure@",
    "wasi:random/insecure-seed@",
    "wasi:filesystem/types@",
    "wasi:filesystem/preopens@",
];

/// Tells apart "not WebAssembly", "a core module" and "a component" before compiling, so the
/// error says what the file is.
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err("not a WebAssembly file (no \\0asm header)".to_string());
    }
    match &bytes[4..8] {
        // Core module, version 1.
        [1, 0, 0, 0] => Err(
            "a core WebAssembly module, not a component: build the plugin for wasm32-wasip2, or \
             for wasm32-unknown-unknown with the linker wasm-component-ld (or wrap it with \
             `wasm-tools component new`)"
                .to_string(),
        ),
        // Component layer.
        [_, _, 1, 0] => Ok(()),
        _ => Err("unknown WebAssembly binary version".to_string()),
    }
}

/// The most functions a plugin's core modules may define in all, and the most bytes of code
/// they may hold: compiling costs memory and time in proportion (a few kilobytes of the
/// compiler's memory per function, tens of bytes per byte of code), and a plugin file is
/// compiled by every command that lists it the first time. A plugin built from Rust has a
/// few thousand functions in a megabyte or two.
pub(crate) const MAX_FUNCTIONS: u64 = 50_000;
pub(crate) const MAX_CODE_BYTES: u64 = 6 << 20;

/// The most `canon` definitions a component may make: each is compiled to a trampoline of
/// its own (about 15 KB of the compiler's memory each), and a plugin makes tens.
pub(crate) const MAX_CANON: u64 = 5_000;

/// The most imports a plugin's core modules may declare in all: each instance of a module
/// holds a slot per import in the host's memory, and the store allows 64 instances (a plugin
/// built from Rust imports tens of functions).
pub(crate) const MAX_IMPORTS: u64 = 10_000;

/// The most globals a plugin's core modules may define in all: each instance holds its
/// globals in the host's memory (16 bytes each), and the store allows 64 instances (a
/// plugin built from Rust defines a few). What instances hold is also counted against the
/// plugin's memory limit (`runtime::bounds`); this count keeps that figure small before
/// anything compiles.
pub(crate) const MAX_GLOBALS: u64 = 10_000;

/// The most component instances a plugin's component may make, nested ones included: each
/// takes state of its own in the store (a handle table, its flags), and nesting multiplies
/// them (a component that instantiates ten of one that instantiates ten…), so a small file
/// could make millions. A plugin built from Rust makes two or three.
pub(crate) const MAX_COMPONENT_INSTANCES: u64 = 1_000;

/// The most resource types a plugin's component may define, those of each instance of its
/// nested components included (each instance defines its own): wasmtime keeps a record of
/// each in the loaded component and in every store, and a definition takes three bytes of
/// the file. A plugin built from Rust defines a handful.
pub(crate) const MAX_RESOURCE_TYPES: u64 = 10_000;

/// The most locals a plugin's functions may declare in all (a declaration of thousands takes
/// a few bytes, and each is a slot the compiled code sets up), and the deepest its blocks may
/// nest in one function (the compiler holds a frame per level, and a level takes two bytes
/// of code).
pub(crate) const MAX_LOCALS: u64 = 1_000_000;
pub(crate) const MAX_NESTING: usize = 10_000;

/// Refuses a component whose core modules, used or not, define more than [`MAX_FUNCTIONS`]
/// functions or [`MAX_CODE_BYTES`] of code, or that makes more than [`MAX_CANON`] `canon`
/// definitions, before anything compiles it, from the sections' headers; with `bodies`,
/// also one whose functions declare more than [`MAX_LOCALS`] locals or nest blocks deeper
/// than [`MAX_NESTING`] (read before a compile: a plugin's file is listed by every command,
/// compiled once).
pub(crate) fn check_code_size(bytes: &[u8], bodies: bool) -> Result<(), String> {
    let mut counts = CodeCounts::default();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        counts.add(&payload.map_err(invalid)?, bodies)?;
    }
    Ok(())
}

/// The imports an import section declares, one by one: a group of the compact encoding
/// declares many in one entry of the section's count.
pub(crate) fn count_imports(
    reader: wasmparser::ImportSectionReader<'_>,
) -> Result<u64, wasmparser::BinaryReaderError> {
    let mut n = 0u64;
    for group in reader {
        n += match group? {
            wasmparser::Imports::Single(..) => 1,
            wasmparser::Imports::Compact1 { items, .. } => u64::from(items.count()),
            wasmparser::Imports::Compact2 { names, .. } => u64::from(names.count()),
        };
    }
    Ok(n)
}

fn invalid(e: wasmparser::BinaryReaderError) -> String {
    format!("not a valid WebAssembly component: {e}")
}

/// What [`check_code_size`] counts, payload by payload.
#[derive(Default)]
struct CodeCounts {
    functions: u64,
    code: u64,
    locals: u64,
    canon: u64,
    imports: u64,
    globals: u64,
    instances: ComponentInstances,
}

/// What a component makes when it is instantiated, read as its sections come: component
/// instances, canonical functions, resource types, and what its core instances hold in the
/// host. Each component makes itself and what each of its `instantiate`s makes (wasmtime
/// inlines a nested component's canonical functions into each of its instances, so
/// [`MAX_CANON`] holds for them all, and each instance defines its resource types anew), and
/// each core `instantiate` holds what its module's sections call for ([`ModuleState`]). The
/// count holds because every component and every core module in an index space is known
/// where it is instantiated: one defined in the file, or named by an outer alias or an export
/// of one. One that comes from elsewhere (imported, or taken from an instance's exports) is
/// what its instantiator passes in, which the file could make weigh anything: such
/// components and modules are refused (what a plugin's toolchain makes has none).
#[derive(Default)]
struct ComponentInstances {
    /// One entry per component or module being read.
    open: Vec<Open>,
    /// The most any component read to its end makes, and the most any module's instance
    /// holds: what an index out of range stands for (validation refuses such a file anyway).
    heaviest: Weight,
    heaviest_module: u64,
    /// What the outermost component makes, once read to its end.
    outermost: Option<Weight>,
    /// Whether to read type sections for resource types. Only for a component already
    /// validated: wasmparser reads a type nested in a type by recursion, which only
    /// validation bounds, so a few kilobytes of nested types would overflow the stack of a
    /// reader that runs first.
    types: bool,
}

/// A component or core module being read.
enum Open {
    Component {
        /// What each component of its index space makes.
        components: Vec<Weight>,
        /// What an instance of each core module of its index space holds.
        modules: Vec<u64>,
        /// What it makes so far.
        makes: Weight,
    },
    Module(ModuleState),
}

/// What instantiating a component makes: component instances, canonical functions,
/// resource types, and the bytes its core instances hold in the host.
#[derive(Default, Clone, Copy)]
pub(crate) struct Weight {
    instances: u64,
    pub(crate) canon: u64,
    resources: u64,
    pub(crate) state: u64,
}

impl Weight {
    fn max(self, other: Weight) -> Weight {
        Weight {
            instances: self.instances.max(other.instances),
            canon: self.canon.max(other.canon),
            resources: self.resources.max(other.resources),
            state: self.state.max(other.state),
        }
    }
}

/// What a plugin's component makes when it is instantiated ([`ComponentInstances`]).
pub(crate) fn component_weight(bytes: &[u8]) -> Result<Weight, String> {
    let mut instances = ComponentInstances::default();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        instances.add(&payload.map_err(invalid)?)?;
    }
    Ok(instances.outermost.unwrap_or(instances.heaviest))
}

/// Refuses a component that defines more than [`MAX_RESOURCE_TYPES`] resource types, those
/// of each instance of its nested components included. Only for a component that has been
/// validated (compiled): see [`ComponentInstances::types`].
pub(crate) fn check_resource_types(validated: &[u8]) -> Result<(), String> {
    let mut instances = ComponentInstances {
        types: true,
        ..ComponentInstances::default()
    };
    for payload in wasmparser::Parser::new(0).parse_all(validated) {
        instances.add(&payload.map_err(invalid)?)?;
    }
    Ok(())
}

/// The components and core modules of the component `count` levels out from the innermost
/// one being read: what an outer alias names (none for an index out of range).
fn outer(open: &[Open], count: u32) -> (&[Weight], &[u64]) {
    match open
        .len()
        .checked_sub(1 + count as usize)
        .map(|at| &open[at])
    {
        Some(Open::Component {
            components,
            modules,
            ..
        }) => (components, modules),
        _ => (&[], &[]),
    }
}

impl ComponentInstances {
    fn add(&mut self, payload: &wasmparser::Payload<'_>) -> Result<(), String> {
        use wasmparser::{
            ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind,
            ComponentTypeRef, Encoding, Instance, Payload,
        };
        match payload {
            Payload::Version { encoding, .. } => {
                self.open.push(match encoding {
                    Encoding::Component => Open::Component {
                        components: Vec::new(),
                        modules: Vec::new(),
                        makes: Weight {
                            instances: 1,
                            ..Weight::default()
                        },
                    },
                    Encoding::Module => Open::Module(ModuleState::default()),
                });
                return Ok(());
            }
            Payload::End(_) => {
                match self.open.pop() {
                    Some(Open::Component { makes, .. }) => {
                        self.heaviest = self.heaviest.max(makes);
                        match self.open.last_mut() {
                            Some(Open::Component { components, .. }) => components.push(makes),
                            _ => self.outermost = Some(makes),
                        }
                    }
                    Some(Open::Module(module)) => {
                        let bytes = module.bytes();
                        self.heaviest_module = self.heaviest_module.max(bytes);
                        if let Some(Open::Component { modules, .. }) = self.open.last_mut() {
                            modules.push(bytes);
                        }
                    }
                    None => {}
                }
                return Ok(());
            }
            _ => {}
        }
        let (heaviest, heaviest_module) = (self.heaviest, self.heaviest_module);
        let (mut new, mut new_modules) = (Vec::new(), Vec::new());
        let mut instantiated = Vec::new();
        let mut core_instantiated = Vec::new();
        let (mut canon, mut resources) = (0, 0);
        match payload {
            Payload::ComponentCanonicalSection(reader) => canon = u64::from(reader.count()),
            Payload::ComponentTypeSection(reader) if self.types => {
                for ty in reader.clone() {
                    resources += u64::from(matches!(
                        ty.map_err(invalid)?,
                        wasmparser::ComponentType::Resource { .. }
                    ));
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader.clone() {
                    match alias.map_err(invalid)? {
                        ComponentAlias::InstanceExport {
                            kind: ComponentExternalKind::Component | ComponentExternalKind::Module,
                            ..
                        } => {
                            return Err("takes a component or a core module from an instance's \
                                 exports, which wasmig does not instantiate for a plugin"
                                .to_string());
                        }
                        ComponentAlias::Outer {
                            kind: ComponentOuterAliasKind::Component,
                            count,
                            index,
                        } => new.push(
                            (outer(&self.open, count).0.get(index as usize).copied())
                                .unwrap_or(heaviest),
                        ),
                        ComponentAlias::Outer {
                            kind: ComponentOuterAliasKind::CoreModule,
                            count,
                            index,
                        } => new_modules.push(
                            (outer(&self.open, count).1.get(index as usize).copied())
                                .unwrap_or(heaviest_module),
                        ),
                        _ => {}
                    }
                }
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader.clone() {
                    if let ComponentTypeRef::Component(_) | ComponentTypeRef::Module(_) =
                        import.map_err(invalid)?.ty
                    {
                        return Err("imports a component or a core module, which wasmig does \
                             not instantiate for a plugin"
                            .to_string());
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader.clone() {
                    let export = export.map_err(invalid)?;
                    match export.kind {
                        ComponentExternalKind::Component => instantiated.push(Err(export.index)),
                        ComponentExternalKind::Module => core_instantiated.push(Err(export.index)),
                        _ => {}
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader.clone() {
                    if let ComponentInstance::Instantiate {
                        component_index, ..
                    } = instance.map_err(invalid)?
                    {
                        instantiated.push(Ok(component_index));
                    }
                }
            }
            Payload::InstanceSection(reader) => {
                for instance in reader.clone() {
                    if let Instance::Instantiate { module_index, .. } = instance.map_err(invalid)? {
                        core_instantiated.push(Ok(module_index));
                    }
                }
            }
            _ => {
                if let Some(Open::Module(module)) = self.open.last_mut() {
                    module.add(payload)?;
                }
                return Ok(());
            }
        }
        let Some(Open::Component {
            components,
            modules,
            makes,
        }) = self.open.last_mut()
        else {
            return Ok(());
        };
        components.extend(new);
        modules.extend(new_modules);
        makes.canon = makes.canon.saturating_add(canon);
        makes.resources = makes.resources.saturating_add(resources);
        for entry in core_instantiated {
            match entry {
                // An export is a new index for the module it exports.
                Err(index) => {
                    let bytes = modules.get(index as usize).copied();
                    modules.push(bytes.unwrap_or(heaviest_module));
                }
                Ok(index) => {
                    let bytes = modules.get(index as usize).copied();
                    makes.state = makes.state.saturating_add(bytes.unwrap_or(heaviest_module));
                }
            }
        }
        for entry in instantiated {
            match entry {
                // An export is a new index for the component it exports.
                Err(index) => {
                    let weight = components.get(index as usize).copied().unwrap_or(heaviest);
                    components.push(weight);
                }
                Ok(index) => {
                    let weight = components.get(index as usize).copied().unwrap_or(heaviest);
                    makes.instances = makes.instances.saturating_add(weight.instances);
                    makes.canon = makes.canon.saturating_add(weight.canon);
                    makes.resources = makes.resources.saturating_add(weight.resources);
                    makes.state = makes.state.saturating_add(weight.state);
                    if makes.instances > MAX_COMPONENT_INSTANCES {
                        return Err(format!(
                            "makes more than {MAX_COMPONENT_INSTANCES} component instances, \
                             nested ones included, more than wasmig instantiates for a plugin"
                        ));
                    }
                }
            }
        }
        if makes.canon > MAX_CANON {
            return Err(format!(
                "makes more than {MAX_CANON} canonical functions, those of each instance of \
                 its nested components included, more than wasmig compiles for a plugin"
            ));
        }
        if makes.resources > MAX_RESOURCE_TYPES {
            return Err(format!(
                "defines more than {MAX_RESOURCE_TYPES} resource types, those of each instance \
                 of its nested components included, more than wasmig instantiates for a plugin"
            ));
        }
        Ok(())
    }
}

impl CodeCounts {
    fn add(&mut self, payload: &wasmparser::Payload<'_>, bodies: bool) -> Result<(), String> {
        use wasmparser::{Operator, Payload};
        self.instances.add(payload)?;
        match payload {
            Payload::FunctionSection(reader) => self.functions += u64::from(reader.count()),
            Payload::ComponentCanonicalSection(reader) => self.canon += u64::from(reader.count()),
            Payload::ImportSection(reader) => {
                self.imports += count_imports(reader.clone()).map_err(invalid)?;
            }
            Payload::GlobalSection(reader) => self.globals += u64::from(reader.count()),
            Payload::CodeSectionStart { size, .. } => self.code += u64::from(*size),
            Payload::CodeSectionEntry(body) if bodies => {
                for declared in body.get_locals_reader().map_err(invalid)? {
                    self.locals += u64::from(declared.map_err(invalid)?.0);
                }
                if self.locals > MAX_LOCALS {
                    return Err(format!(
                        "declares more than {MAX_LOCALS} locals, more than wasmig compiles for \
                         a plugin"
                    ));
                }
                let (mut reader, mut depth) =
                    (body.get_operators_reader().map_err(invalid)?, 0usize);
                while !reader.eof() {
                    match reader.read().map_err(invalid)? {
                        Operator::Block { .. }
                        | Operator::Loop { .. }
                        | Operator::If { .. }
                        | Operator::Try { .. }
                        | Operator::TryTable { .. } => depth += 1,
                        Operator::End => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    if depth > MAX_NESTING {
                        return Err(format!(
                            "nests blocks more than {MAX_NESTING} deep in a function, more than \
                             wasmig compiles for a plugin"
                        ));
                    }
                }
            }
            _ => {}
        }
        if self.canon > MAX_CANON {
            return Err(format!(
                "makes more than {MAX_CANON} canonical functions, more than wasmig compiles for \
                 a plugin"
            ));
        }
        if self.globals > MAX_GLOBALS {
            return Err(format!(
                "defines more than {MAX_GLOBALS} globals in its core modules, more than wasmig \
                 instantiates for a plugin"
            ));
        }
        if self.imports > MAX_IMPORTS {
            return Err(format!(
                "declares more than {MAX_IMPORTS} imports in its core modules, more than wasmig \
                 instantiates for a plugin"
            ));
        }
        if self.functions > MAX_FUNCTIONS {
            return Err(format!(
                "defines more than {MAX_FUNCTIONS} functions, more than wasmig compiles for a \
                 plugin"
            ));
        }
        if self.code > MAX_CODE_BYTES {
            return Err(format!(
                "holds more than {} MiB of code, more than wasmig compiles for a plugin",
                MAX_CODE_BYTES >> 20
            ));
        }
        Ok(())
    }
}

/// Reads a plugin's declaration (its manifest and SQL as data, see [`crate::declaration`]),
/// without compiling or validating anything; `None` for a plugin without one. The loader
/// validates a declared plugin's component ([`validate`]) before it trusts the declaration,
/// the first time wasmig sees it; running its steps later (the same bytes, by SHA-256) needs
/// only the declaration.
pub(crate) fn read_declaration(bytes: &[u8]) -> Result<Option<Declaration>, String> {
    use wasmparser::{Parser, Payload};

    check_header(bytes)?;
    // One pass: the code's size (see `check_code_size`) and the declaration section.
    let mut counts = CodeCounts::default();
    let mut section = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        counts.add(&payload, false)?;
        if let Payload::CustomSection(reader) = payload
            && reader.name() == crate::declaration::SECTION
        {
            if section.is_some() {
                return Err(format!(
                    "has two {} sections: which one declares the plugin?",
                    crate::declaration::SECTION
                ));
            }
            section = Some(reader.data());
        }
    }
    let Some(section) = section else {
        return Ok(None);
    };
    Declaration::decode(section)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Checks a component as compiling it would, without compiling: the whole component is
/// validated, its imports must be on the allow-list and it must export the plugin interface.
/// Validation's cost follows the component's structure, not only its size (instances of a
/// component type-checked against all of its exports, each): the compile child runs it under
/// its limits.
pub(crate) fn validate(bytes: &[u8]) -> Result<(), String> {
    use wasmparser::{Parser, Payload, ValidPayload, Validator, WasmFeatures};

    // Everything wasmparser knows: what the code may use is the compiler's business when a
    // code step runs; here only the component's shape matters.
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    let mut bodies = Vec::new();
    let (mut depth, mut imports, mut exports) = (0usize, Vec::new(), Vec::new());
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        if let ValidPayload::Func(func, body) = validator.payload(&payload).map_err(invalid)? {
            bodies.push((func, body));
        }
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    imports.push(import.map_err(invalid)?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    exports.push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    let mut allocations = wasmparser::FuncValidatorAllocations::default();
    for (func, body) in bodies {
        let mut v = func.into_validator(allocations);
        v.validate(&body).map_err(invalid)?;
        allocations = v.into_allocations();
    }
    check_interface(imports.iter().map(String::as_str), || exports)
}

/// Refuses a component whose imports are not all on the allow-list, or that does not export
/// the plugin interface (`exports` lists its exports, for the error).
pub(crate) fn check_interface<'a>(
    imports: impl Iterator<Item = &'a str>,
    exports: impl FnOnce() -> Vec<String>,
) -> Result<(), String> {
    let refused: Vec<&str> = imports
        .filter(|name| {
            !IMPORT_ALLOW_LIST
                .iter()
                .any(|allowed| name.starts_with(allowed))
        })
        .collect();
    if !refused.is_empty() {
        return Err(format!(
            "imports {} which wasmig does not grant to plugins (a plugin may import only \
             wasmig:plugin/sql and wasmig:plugin/log, plus the WASI interfaces Rust's std \
             links)",
            refused.join(", ")
        ));
    }
    let exports = exports();
    if !exports.iter().any(|e| e == PLUGIN_EXPORT) {
        return Err(format!(
            "does not export {PLUGIN_EXPORT}: it is not a wasmig migration plugin (it exports \
             {}); build it with the wasmig-guest SDK",
            if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            }
        ));
    }
    Ok(())
}

/// [`check_interface`] in the shape the runtime calls before it links a compiled component.
pub(crate) fn check_component(
    imports: &[String],
    exports: &dyn Fn() -> Vec<String>,
) -> Result<(), String> {
    check_interface(imports.iter().map(String::as_str), exports)
}
