//! The engine and its compile tiers: Winch for a plugin the cache does not hold, Cranelift's
//! code whenever the cache has it, and the compile cache under both.

use super::*;

/// How often the engine's epoch advances; the deadline's resolution.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Which compiler turns plugins into native code.
///
/// Migration code runs once per deploy, so the time to compile a plugin the host has never
/// seen usually outweighs the speed of the code. `Auto` compiles a plugin it has not seen
/// with Winch, wasmtime's baseline compiler (a few times faster to compile), and uses
/// Cranelift's optimized code whenever the compile cache has it: `wasmig compile` (or
/// [`crate::Host::compile`]) puts it there, typically at deploy time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    /// Winch for plugins seen for the first time, Cranelift once precompiled (Cranelift
    /// only where Winch is unavailable: it supports x86-64 only).
    #[default]
    Auto,
    /// Cranelift, wasmtime's optimizing compiler, always.
    Cranelift,
    /// Winch, wasmtime's baseline compiler, always (x86-64 only).
    Winch,
}

impl Compiler {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Compiler::Auto => "auto",
            Compiler::Cranelift => "cranelift",
            Compiler::Winch => "winch",
        }
    }
}

/// Why a plugin is being compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// To run it now: any cached code will do, else the quickest compile.
    Run,
    /// To precompile it: optimized code, from the cache or compiled now.
    Optimize,
}

/// The engine configuration of `compiler`: the host's and the compile child's (an artifact
/// loads only into an engine configured as the one that made it).
pub(super) fn engine_config(compiler: Compiler, max_stack: usize) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(max_stack)
        // No component-model-async bookkeeping on every call: plugins are synchronous.
        .concurrency_support(false)
        // Data segments are copied into each instance, never turned into a memory image at
        // compile time: an image is as large as the range the segments span (two one-byte
        // segments 15 MiB apart: a 15 MiB image), so a small file would make a large
        // artifact for the host to load and cache.
        .memory_init_cow(false)
        // No backtrace is captured at a trap: each frame would copy its function's name
        // from the plugin's name section, which nothing bounds, and errors name the plugin,
        // the step and the trap without it.
        .wasm_backtrace_max_frames(None)
        .strategy(match compiler {
            Compiler::Winch => wasmtime::Strategy::Winch,
            _ => wasmtime::Strategy::Cranelift,
        });
    if compiler == Compiler::Winch {
        // Winch compiles plugins seen for the first time, usually many at once, and the
        // host already compiles one per core (`on_cores`): wasmtime's own threads inside
        // each compile would oversubscribe the cores. One plugin alone compiles more
        // slowly this way. Cranelift, for one large plugin at deploy time, keeps its
        // threads.
        config.parallel_compilation(false);
    }
    config
}

/// The linker of every plugin: WASI (nothing granted) and wasmig's imports.
pub(super) fn plugin_linker(engine: &Engine) -> wasmtime::Result<Linker<StepState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    types::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)?;
    log::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)?;
    sql::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// One compiler's engine, the linker for it, its part of the compile cache, and the thread
/// that advances the engine's epoch.
pub(super) struct Tier {
    compiler: Compiler,
    engine: Engine,
    linker: Linker<StepState>,
    cache: Option<CompileCache>,
    /// Why the cache directory was given but cannot be used.
    cache_error: Option<String>,
    /// Where plugins are compiled: in a child process, or else in this one.
    child: Option<ChildCompiler>,
    /// The compile's memory and deadline, for the child.
    limits: Limits,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Tier {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Tier {
    fn new(
        compiler: Compiler,
        limits: &Limits,
        cache_dir: Option<&Path>,
        child: Option<ChildCompiler>,
    ) -> crate::Result<Self> {
        let engine_error = |e: wasmtime::Error| crate::Error::Engine(format!("{e:#}"));
        let engine =
            Engine::new(&engine_config(compiler, limits.max_stack)).map_err(engine_error)?;
        let linker = plugin_linker(&engine).map_err(engine_error)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, ticking) = (ticker_stop.clone(), engine.weak());
        std::thread::Builder::new()
            .name("wasmig-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticking.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| crate::Error::Engine(format!("cannot start the epoch thread: {e}")))?;

        // One directory for both compilers: an entry's name includes the engine's
        // compatibility hash, which differs between them.
        let (cache, cache_error) = match cache_dir {
            Some(dir) => match CompileCache::new(dir, &engine) {
                Ok(cache) => (Some(cache), None),
                Err(e) => (None, Some(format!("{}: {e}", dir.display()))),
            },
            None => (None, None),
        };
        Ok(Tier {
            compiler,
            engine,
            linker,
            cache,
            cache_error,
            child,
            limits: limits.clone(),
            ticker_stop,
        })
    }

    /// Checks a compiled component's imports and exports and links it.
    fn link(
        &self,
        component: Component,
        from_cache: bool,
        cache_error: Option<String>,
        file: &Path,
        check: InterfaceCheck,
        instance_state: usize,
    ) -> Result<Loaded, String> {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        check(&imports, &|| {
            ty.exports(&self.engine)
                .map(|(n, _)| n.to_string())
                .collect()
        })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("cannot be linked: {e:#}"))?;
        let pre = MigrationPluginPre::new(pre).map_err(|e| {
            format!(
                "does not match the migration-plugin world of {PLUGIN_EXPORT}: {e:#} (was it \
                 built against another version of wasmig's WIT?)"
            )
        })?;
        tracing::debug!(
            file = %file.display(),
            from_cache,
            compiler = ?self.compiler,
            instance_state,
            "loaded plugin"
        );
        Ok(Loaded {
            pre,
            from_cache,
            cache_error,
            compiler: self.compiler,
            imports,
            instance_state,
        })
    }

    fn cached(&self, sha256: &str) -> Option<Component> {
        self.cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, sha256))
    }

    /// Compiles and caches a component (whose header the loader checked), in the child
    /// process when there is one; a cache that cannot be written is only reported.
    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, Option<String>), String> {
        crate::loader::check_code_size(bytes, true)?;
        let Some(child) = &self.child else {
            let component = Component::from_binary(&self.engine, bytes)
                .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
            crate::loader::check_resource_types(bytes)?;
            let cache_error = match &self.cache {
                Some(cache) => cache.put(sha256, &component).err(),
                None => self.cache_error.clone(),
            };
            return Ok((component, cache_error));
        };
        let artifact = child.compile(self.compiler, &self.limits, bytes)?;
        // SAFETY: `Component::deserialize` requires bytes that `precompile_component` of a
        // compatible engine produced: the child is the host's own compiler, configured by
        // `engine_config` as this engine, writing to a pipe only it holds; wasmtime checks
        // the artifact's version and configuration and refuses a mismatch. Plugin-supplied
        // bytes are only ever compiled.
        let component = unsafe { Component::deserialize(&self.engine, &artifact) }
            .map_err(|e| format!("the compiler process's code cannot be loaded: {e:#}"))?;
        let cache_error = match &self.cache {
            Some(cache) => cache.put_artifact(sha256, &artifact).err(),
            None => self.cache_error.clone(),
        };
        Ok((component, cache_error))
    }
}

impl Runtime {
    pub(crate) fn new(
        limits: Limits,
        cache_dir: Option<&Path>,
        compiler: Compiler,
        child: Option<ChildCompiler>,
    ) -> crate::Result<Self> {
        let winch_here = cfg!(target_arch = "x86_64");
        if compiler == Compiler::Winch && !winch_here {
            return Err(crate::Error::Engine(
                "the Winch compiler supports x86-64 only; use Cranelift".into(),
            ));
        }
        let optimizing = match compiler {
            Compiler::Winch => None,
            _ => Some(Tier::new(
                Compiler::Cranelift,
                &limits,
                cache_dir,
                child.clone(),
            )?),
        };
        let baseline = match compiler {
            Compiler::Cranelift => None,
            _ if !winch_here => None,
            _ => Some(Tier::new(Compiler::Winch, &limits, cache_dir, child)?),
        };
        // Both compilers share the directory: one warning is enough.
        if let Some(e) = [&optimizing, &baseline]
            .into_iter()
            .flatten()
            .find_map(|t| t.cache_error.as_ref())
        {
            tracing::warn!("compile cache disabled: {e}");
        }
        Ok(Runtime {
            optimizing,
            baseline,
            limits,
            validated: Default::default(),
        })
    }

    /// Validates a component as compiling it would ([`crate::loader::validate`]), in the
    /// compile child when there is one; once per content (`sha256` of `bytes`) for the
    /// runtime's life.
    pub(crate) fn validate(&self, bytes: &[u8], sha256: &str) -> Result<(), String> {
        /// A bound on what the record of verdicts holds, whatever a server is shown.
        const REMEMBERED: usize = 10_000;
        let validated = || self.validated.lock().unwrap_or_else(|e| e.into_inner());
        if validated().contains(sha256) {
            return Ok(());
        }
        let tier = self.optimizing.as_ref().or(self.baseline.as_ref());
        match tier.and_then(|t| t.child.as_ref()) {
            Some(child) => child.validate(&self.limits, bytes),
            None => crate::loader::validate(bytes),
        }?;
        let mut validated = validated();
        if validated.len() >= REMEMBERED {
            validated.clear();
        }
        validated.insert(sha256.to_string());
        Ok(())
    }

    /// Compiles a plugin file and checks that it is a migration plugin: a component of the
    /// right world whose imports are all on the allow-list.
    ///
    /// To run, cached code from either compiler is used (the optimizing one's first), else
    /// the quickest compiler compiles it; to optimize, only the optimizing compiler's code
    /// counts (Winch's alone when it is the only compiler). Fresh code is cached.
    pub(crate) fn load(
        &self,
        file: &Path,
        bytes: &[u8],
        sha256: &str,
        purpose: Purpose,
        check: InterfaceCheck,
    ) -> Result<Loaded, String> {
        let (optimizing, baseline) = (self.optimizing.as_ref(), self.baseline.as_ref());
        let compiler = match purpose {
            Purpose::Run => baseline.or(optimizing),
            Purpose::Optimize => optimizing.or(baseline),
        }
        .expect("a runtime has at least one compiler");
        let usable = match purpose {
            Purpose::Run => [optimizing, baseline],
            Purpose::Optimize => [Some(compiler), None],
        };
        let cached = usable
            .into_iter()
            .flatten()
            .find_map(|tier| tier.cached(sha256).map(|c| (tier, c)));
        let from_cache = cached.is_some();
        let (tier, component, cache_error) = match cached {
            Some((tier, component)) => (tier, component, None),
            None => {
                let (component, cache_error) = compiler.compile(bytes, sha256)?;
                (compiler, component, cache_error)
            }
        };
        let instance_state = super::bounds::instance_state(bytes)?;
        tier.link(
            component,
            from_cache,
            cache_error,
            file,
            check,
            instance_state,
        )
    }
}
