//! Compiling a plugin in a child process, bounded by the operating system.
//!
//! The loader's counts (`loader::checks`) refuse the shapes of code known to make wasmtime's
//! compilers take gigabytes, but a compiler's cost has more shapes than any count. In a
//! child process the bound holds whatever the shape: the child limits its own address space
//! and CPU time (`setrlimit`) before it reads the plugin, the parent kills it at the compile
//! deadline, and whatever the compile does to the child (running out of memory, aborting,
//! crashing) ends there. The child writes the compiled artifact to its standard output;
//! a second child loads it as the host will (deserialized and linked) within
//! [`MAX_LOAD_MEMORY`], and then the host loads it with the same engine configuration. A
//! declared plugin, which is not compiled to be listed, is validated by a child the same way.

use super::engine::engine_config;
use super::{Compiler, Limits};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The first argument that makes a program that embeds wasmig the compile child (see
/// [`main`]).
pub const ARG: &str = "__wasmig-compile";

/// Bytes of the child's standard error kept for a message.
const MAX_STDERR: u64 = 16 << 10;

/// The largest compiled artifact the host takes back, which it holds and maps whole: an
/// honest plugin of 6 MiB of code (the most the loader's counts let through) compiles to
/// about 32 MB with Winch, and its data segments (a plugin file has at most 64 MiB) are
/// copied into the artifact as they are.
const MAX_ARTIFACT: u64 = 128 << 20;

/// The address space in which a child must load a compiled plugin as the host loads it
/// (deserialized and linked), the child's own runtime included: what one plugin's code may
/// cost the host. An honest plugin of 6 MiB of code loads in about 100 MB.
const MAX_LOAD_MEMORY: u64 = 512 << 20;

/// The most threads a compile uses (Cranelift compiles functions in parallel).
const MAX_THREADS: u64 = 4;

/// The exit code of a child that reports an error on its standard error (not 1 or 2, which
/// any program uses).
const REPORTED: i32 = 86;

/// What a child that did its work writes first, whatever it did: a program that is not the
/// compile child (it does not run [`main`] for [`ARG`]) cannot pass for one by exiting 0.
const MAGIC: &[u8; 8] = b"wasmigc\x01";

/// A program that runs [`main`] when its first argument is [`ARG`].
#[derive(Debug, Clone)]
pub(crate) struct ChildCompiler {
    pub(crate) program: PathBuf,
    /// Compile children running now: the cores are shared among them.
    pub(crate) running: Arc<AtomicUsize>,
}

/// Counts a running child for as long as it lives.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ChildCompiler {
    /// Compiles `bytes` (a component the loader's checks accepted) in a child process within
    /// `limits`' compile memory and deadline; the artifact `Engine::precompile_component`
    /// made, for the engine of `compiler`.
    pub(crate) fn compile(
        &self,
        compiler: Compiler,
        limits: &Limits,
        bytes: &[u8],
    ) -> Result<Vec<u8>, String> {
        let artifact = self.run(
            &["--compiler", compiler.as_str()],
            ("compiling it", "the compile memory limit"),
            limits,
            bytes,
        )?;
        // What loading the artifact costs the host is not what compiling it cost: a small
        // file can make a large component whose types take far more memory loaded than
        // serialized. A second child loads it as the host will, within the load's bound.
        let load = Limits {
            max_compile_memory: MAX_LOAD_MEMORY,
            ..limits.clone()
        };
        self.run(
            &["--load", compiler.as_str()],
            (
                "loading its compiled code",
                "the most wasmig loads for a plugin",
            ),
            &load,
            &artifact,
        )?;
        Ok(artifact)
    }

    /// Validates `bytes` as compiling them would ([`crate::loader::validate`]) in a child
    /// process within `limits`' compile memory and deadline.
    pub(crate) fn validate(&self, limits: &Limits, bytes: &[u8]) -> Result<(), String> {
        self.run(
            &["--validate", "yes"],
            ("checking it", "the compile memory limit"),
            limits,
            bytes,
        )
        .map(drop)
    }

    /// Runs the child with `mode`'s arguments on `bytes`; what it wrote. `doing` and the
    /// memory limit's name are for messages.
    fn run(
        &self,
        mode: &[&str],
        (doing, limit): (&str, &str),
        limits: &Limits,
        bytes: &[u8],
    ) -> Result<Vec<u8>, String> {
        let deadline = limits.compile_deadline;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let others = self.running.fetch_add(1, Ordering::Relaxed) as u64;
        let running = Running(&self.running);
        // Cranelift compiles a module's functions in parallel; children compiling at the
        // same time (the loader runs one per core) share the cores.
        let threads = (cores / (others + 1)).clamp(1, MAX_THREADS);
        // The CPU limit backs the parent's clock: a compile's threads together may use every
        // core for the whole deadline.
        let cpu_seconds = deadline.as_secs().saturating_add(1).saturating_mul(cores);
        let mut child = Command::new(&self.program)
            .arg(ARG)
            .args(mode)
            .args(["--parent", &std::process::id().to_string()])
            .args(["--max-stack", &limits.max_stack.to_string()])
            .args(["--max-memory", &limits.max_compile_memory.to_string()])
            .args(["--cpu-seconds", &cpu_seconds.to_string()])
            // Nothing of the host's environment reaches the child. What is set instead keeps
            // the address space the child's runtime takes small, since it counts against
            // the compile's: mimalloc (the binary's allocator) would reserve its heap a
            // gigabyte at a time, glibc's malloc 64 MiB per thread, and each of the
            // compiler's threads takes a stack and a heap of its own.
            .env_clear()
            .env("MIMALLOC_ARENA_RESERVE", "0")
            .env("MALLOC_ARENA_MAX", "1")
            .env("RAYON_NUM_THREADS", threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the compiler process {}: {e}",
                    self.program.display()
                )
            })?;
        let watchdog = match Watchdog::start(child.id(), deadline) {
            Ok(watchdog) => watchdog,
            Err(e) => return Err(abandon(&mut child, e)),
        };
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = std::thread::Builder::new()
            .name("wasmig-compile-stderr".into())
            .spawn(move || {
                let mut text = Vec::new();
                let _ = (&mut stderr).take(MAX_STDERR).read_to_end(&mut text);
                // Drain the rest, so that the child never blocks on a full pipe.
                let _ = std::io::copy(&mut stderr, &mut std::io::sink());
                String::from_utf8_lossy(&text).into_owned()
            });
        let stderr = match stderr {
            Ok(thread) => thread,
            Err(e) => {
                watchdog.stop();
                return Err(abandon(&mut child, e));
            }
        };
        // The child reads all of its input before it writes anything: no deadlock. A child
        // that ended early (killed at the deadline) makes the write fail; its status says why.
        let mut stdin = child.stdin.take().expect("piped");
        without_sigpipe(|| {
            let _ = stdin.write_all(bytes);
        });
        drop(stdin);
        let output = read_output(child.stdout.take().expect("piped"), mode[0] == "--compiler");
        if matches!(output, Ok(Output::TooLarge)) {
            let _ = child.kill();
        }
        // The watchdog stops before the child is reaped: until then its pid is its own, and
        // a kill at the deadline cannot reach another process.
        wait_exited(child.id());
        let killed = watchdog.stop();
        let status = child.wait();
        let stderr = stderr.join().unwrap_or_default();
        drop(running);
        let status = status.map_err(|e| format!("cannot wait for the compiler process: {e}"))?;
        use std::os::unix::process::ExitStatusExt;
        if killed && status.signal() == Some(libc::SIGKILL) {
            return Err(format!(
                "{doing} took longer than the compile deadline of {}",
                humantime::format_duration(deadline)
            ));
        }
        match output {
            Ok(Output::TooLarge) => Err(format!(
                "its compiled code is larger than {}, more than wasmig loads",
                size(MAX_ARTIFACT)
            )),
            Ok(Output::Done(artifact)) if status.success() => Ok(artifact),
            Ok(Output::Missing) if status.success() => Err(format!(
                "{} ended without answering as wasmig's compile child: does it run \
                 wasmig::compile_child::main when its first argument is {ARG}?",
                self.program.display()
            )),
            Err(e) if status.success() => {
                Err(format!("cannot read the compiler process's output: {e}"))
            }
            _ => Err(failure(
                status,
                stderr.trim(),
                doing,
                (limit, limits.max_compile_memory),
            )),
        }
    }
}

/// Kills and reaps a child the host cannot watch; the error for it.
fn abandon(child: &mut std::process::Child, e: std::io::Error) -> String {
    let _ = child.kill();
    let _ = child.wait();
    format!("cannot watch the compiler process: {e}")
}

/// Waits until the child has ended, without reaping it (`waitid` with `WNOWAIT`).
fn wait_exited(pid: u32) {
    loop {
        // SAFETY: waitid writes into the zeroed siginfo it is given; the child is this
        // process's own and not reaped yet.
        let done = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if done == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// What a child wrote.
enum Output {
    /// Not [`MAGIC`] first: whatever ran was not (or not all of) the compile child.
    Missing,
    /// The artifact (empty from a child that only checks).
    Done(Vec<u8>),
    /// An artifact past [`MAX_ARTIFACT`], not read.
    TooLarge,
}

/// Reads a child's output: [`MAGIC`], then, when it compiled, the artifact's length (8
/// bytes, little-endian) and the artifact, read into one allocation of that length.
fn read_output(mut out: impl Read, artifact: bool) -> std::io::Result<Output> {
    let mut magic = [0u8; 8];
    if read_full(&mut out, &mut magic)? < magic.len() || &magic != MAGIC {
        return Ok(Output::Missing);
    }
    if !artifact {
        return Ok(Output::Done(Vec::new()));
    }
    let mut header = [0u8; 8];
    if read_full(&mut out, &mut header)? < header.len() {
        return Ok(Output::Missing);
    }
    let length = u64::from_le_bytes(header);
    if length > MAX_ARTIFACT {
        return Ok(Output::TooLarge);
    }
    let mut artifact = vec![0u8; length as usize];
    out.read_exact(&mut artifact)?;
    Ok(Output::Done(artifact))
}

/// Fills `buf` unless the stream ends first; how much it read.
fn read_full(out: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match out.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Why a compile child failed, from its status and standard error.
fn failure(status: ExitStatus, stderr: &str, doing: &str, (limit, cap): (&str, u64)) -> String {
    use std::os::unix::process::ExitStatusExt;
    // Rust aborts (SIGABRT) when an allocation fails; wasmtime's and the compiler's own
    // mappings fail with ENOMEM, and a thread without room for its stack panics: all the
    // address-space limit, whether the child reported it or not.
    let out_of_memory = stderr.contains("memory allocation of")
        || stderr.contains("Cannot allocate memory")
        || stderr.contains("out of memory")
        || stderr.contains("WouldBlock");
    if out_of_memory {
        return format!("{doing} needed more than {} of memory ({limit})", size(cap));
    }
    if status.code() == Some(REPORTED) && !stderr.is_empty() {
        return stderr.to_string();
    }
    match status.signal() {
        // RLIMIT_CPU's signal (its hard limit, a second later, kills).
        Some(libc::SIGXCPU) => {
            format!("{doing} took more CPU time than the compile deadline allows")
        }
        // Not the host's kill: that is reported as the deadline.
        Some(libc::SIGKILL) => {
            "the compiler process was killed (SIGKILL; the system's out-of-memory killer?)"
                .to_string()
        }
        Some(signal) => format!(
            "the compiler process ended with signal {signal}{}",
            detail(stderr)
        ),
        None => format!("the compiler process failed ({status}){}", detail(stderr)),
    }
}

/// The child's own words: a panic's message is its first lines, not the last.
fn detail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("note: run with"))
        .take(3)
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join(" "))
    }
}

fn size(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Kills a child at its deadline, unless stopped first. The child is not reaped before
/// [`Watchdog::stop`] (the host waits for it to end without reaping it, stops the watchdog,
/// then reaps it), so its pid cannot have been reused when the watchdog kills it.
struct Watchdog {
    state: Arc<(Mutex<WatchState>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

#[derive(Default)]
struct WatchState {
    stopped: bool,
    killed: bool,
}

impl Watchdog {
    fn start(pid: u32, deadline: Duration) -> std::io::Result<Watchdog> {
        let state = Arc::new((Mutex::new(WatchState::default()), Condvar::new()));
        let watched = state.clone();
        let thread = std::thread::Builder::new()
            .name("wasmig-compile-watchdog".into())
            .spawn(move || {
                // A deadline past what the clock can count is none.
                let Some(end) = Instant::now().checked_add(deadline) else {
                    return;
                };
                let (lock, wake) = &*watched;
                let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
                while !s.stopped {
                    let now = Instant::now();
                    if now >= end {
                        // SAFETY: kill(2) with a pid of a child not yet waited for; no memory is
                        // involved.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                        s.killed = true;
                        return;
                    }
                    s = wake
                        .wait_timeout(s, end - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            })?;
        Ok(Watchdog { state, thread })
    }

    /// Stops the watchdog once the child has ended (or was killed); whether it killed it.
    fn stop(self) -> bool {
        let (lock, wake) = &*self.state;
        let killed = {
            let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
            s.stopped = true;
            s.killed
        };
        wake.notify_all();
        let _ = self.thread.join();
        killed
    }
}

/// The compile child: what a program that embeds wasmig runs when its first argument is
/// [`ARG`] (the `wasmig` binary does), and what
/// [`HostBuilder::compile_in_child`](crate::HostBuilder::compile_in_child) starts. It ties
/// itself to the host, limits its own address space and CPU time, reads a component (or an
/// artifact) on its standard input, and compiles, validates or loads it as its arguments
/// say, writing a compiled artifact to its standard output. Returns the process's exit
/// code.
pub fn main() -> i32 {
    match run() {
        Ok(()) => 0,
        Err(e) => {
            let mut e = e;
            e.truncate(e.floor_char_boundary(4096));
            eprintln!("{e}");
            REPORTED
        }
    }
}

fn run() -> Result<(), String> {
    close_inherited_files();
    let mut args = std::env::args_os().skip(2);
    let (mut compiler, mut max_stack, mut max_memory, mut cpu_seconds) = (None, None, None, None);
    let (mut validate, mut load, mut parent) = (false, false, None);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .and_then(|v| v.into_string().ok())
            .ok_or_else(|| format!("compile child: {flag:?} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("compile child: {flag:?} {value:?} is not a number"))
        };
        match flag.to_str() {
            Some("--compiler") => compiler = Some(value.clone()),
            Some("--max-stack") => max_stack = Some(number()?),
            Some("--max-memory") => max_memory = Some(number()?),
            Some("--cpu-seconds") => cpu_seconds = Some(number()?),
            Some("--validate") => validate = true,
            Some("--load") => {
                load = true;
                compiler = Some(value.clone());
            }
            Some("--parent") => parent = Some(number()?),
            _ => return Err(format!("compile child: unknown argument {flag:?}")),
        }
    }
    let missing = |what: &str| format!("compile child: {what} not given");
    let compiler = match compiler.as_deref() {
        Some("winch") => Some(Compiler::Winch),
        Some("cranelift") => Some(Compiler::Cranelift),
        _ if validate => None,
        _ => return Err(missing("--compiler winch|cranelift")),
    };
    end_with_parent(parent.ok_or_else(|| missing("--parent"))?)?;
    limit(libc::RLIMIT_CORE, 0, 0)?;
    let cpu_seconds = cpu_seconds.ok_or_else(|| missing("--cpu-seconds"))?;
    limit(libc::RLIMIT_CPU, cpu_seconds, cpu_seconds.saturating_add(1))?;
    let max_memory = max_memory.ok_or_else(|| missing("--max-memory"))?;
    limit(libc::RLIMIT_AS, max_memory, max_memory)?;
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| format!("compile child: cannot read the component: {e}"))?;
    let Some(compiler) = compiler else {
        crate::loader::validate(&bytes)?;
        return answer(&[]);
    };
    let max_stack = max_stack.ok_or_else(|| missing("--max-stack"))? as usize;
    let engine = wasmtime::Engine::new(&engine_config(compiler, max_stack))
        .map_err(|e| format!("compile child: {e:#}"))?;
    if load {
        // SAFETY: the bytes are the artifact the compile child of this host just made with
        // the same engine configuration (see `Tier::compile`); wasmtime checks its version
        // and configuration. Whether it links is the host's to report: only the memory of
        // getting there matters here.
        let component = unsafe { wasmtime::component::Component::deserialize(&engine, &bytes) }
            .map_err(|e| format!("compile child: {e:#}"))?;
        drop(bytes);
        let linker =
            super::engine::plugin_linker(&engine).map_err(|e| format!("compile child: {e:#}"))?;
        let _ = linker.instantiate_pre(&component);
        return answer(&[]);
    }
    let artifact = engine
        .precompile_component(&bytes)
        .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
    crate::loader::check_resource_types(&bytes)?;
    drop(bytes);
    answer(&artifact)
}

/// Writes [`MAGIC`], then, when there is one, the artifact's length and the artifact.
fn answer(artifact: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(MAGIC)
        .and_then(|()| match artifact {
            [] => Ok(()),
            _ => out
                .write_all(&(artifact.len() as u64).to_le_bytes())
                .and_then(|()| out.write_all(artifact)),
        })
        .and_then(|()| out.flush())
        .map_err(|e| format!("compile child: cannot write its answer: {e}"))
}

/// `setrlimit`'s resource type: glibc's own enum, an `int` elsewhere.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// Sets a resource limit, soft and hard, for this process.
fn limit(resource: Resource, soft: u64, hard: u64) -> Result<(), String> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct passed by reference; nothing else is touched.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(format!(
            "compile child: cannot set a resource limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Runs `write` with `SIGPIPE` blocked in this thread, then takes back a `SIGPIPE` the write
/// raised: a write to a child that has ended fails with `EPIPE` instead of killing the
/// process. Rust programs ignore `SIGPIPE` from their start; a server that embeds the
/// library in a program that does not (a C or Python `main`) keeps its default, which ends
/// the process.
#[cfg(target_os = "linux")]
fn without_sigpipe(write: impl FnOnce()) {
    // SAFETY: each sigset_t is initialized by sigemptyset or filled by the call it is given
    // to; pthread_sigmask changes this thread's mask only, and sigtimedwait takes a pending
    // SIGPIPE (this thread's first, which is the one the write raised) without a handler.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        write();
        // Every pending SIGPIPE is taken: one left pending would be delivered when the mask
        // is restored, and end a program that keeps the default.
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        while libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now) == libc::SIGPIPE {}
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

#[cfg(not(target_os = "linux"))]
fn without_sigpipe(write: impl FnOnce()) {
    write()
}

/// Makes the kernel kill this process when the host that started it ends (a host killed
/// mid-compile leaves no compile running on), and ends now if the host already has. The
/// kernel watches the thread that started the child, which waits for it to end.
#[cfg(target_os = "linux")]
fn end_with_parent(parent: u64) -> Result<(), String> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; no memory is involved.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(format!(
            "compile child: cannot tie itself to the host: {}",
            std::io::Error::last_os_error()
        ));
    }
    // The host may have ended before the line above: then this process has another parent.
    // SAFETY: getppid has no arguments and cannot fail.
    if u64::try_from(unsafe { libc::getppid() }).ok() != Some(parent) {
        return Err("compile child: the host has ended".to_string());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn end_with_parent(_parent: u64) -> Result<(), String> {
    Ok(())
}

/// Closes every file the child inherited but its standard input, output and error: a
/// program that embeds wasmig may hold files without close-on-exec.
#[cfg(target_os = "linux")]
fn close_inherited_files() {
    // SAFETY: close_range closes descriptors from 3 up; nothing of this process uses them
    // yet (this runs first). An old kernel without it returns ENOSYS, which is ignored.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
}

#[cfg(not(target_os = "linux"))]
fn close_inherited_files() {}
