//! wasmig against its baselines, side by side in one run:
//!
//!     cargo bench -p wasmig-cli --bench compare            # 5 runs per figure
//!     cargo bench -p wasmig-cli --bench compare -- --quick # 3 runs, fewer plugins
//!
//! Every figure is the median of several runs. Ratios compare wasmig with native rusqlite in
//! this process (the physical limit) or with refinery applying the same SQL natively (a peer;
//! built as its own workspace in benches/refinery-baseline, compared as whole runs). The
//! table goes to stdout, in the format of docs/performance.md's table.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wasmig::Compiler;
use wasmig_test_artifacts as artifacts;

const WASMIG: &str = env!("CARGO_BIN_EXE_wasmig");
const PLACEHOLDER: &[u8] = b"zbenchplaceholdr";

struct Row {
    work: String,
    baseline: String,
    wasmig: String,
    ratio: Option<f64>,
    target: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ms(d: f64) -> String {
    if d >= 1000.0 {
        format!("{:.2} s", d / 1000.0)
    } else if d >= 10.0 {
        format!("{d:.0} ms")
    } else {
        format!("{d:.2} ms")
    }
}

fn host(plugins: &Path, db: &Path, cache: Option<&Path>) -> wasmig::Host {
    host_with(plugins, db, cache, Compiler::Auto)
}

fn host_with(plugins: &Path, db: &Path, cache: Option<&Path>, compiler: Compiler) -> wasmig::Host {
    wasmig::Host::builder()
        .plugins_dir(plugins)
        .database(db)
        .cache_dir(cache.map(Path::to_path_buf))
        .compiler(compiler)
        .build()
        .unwrap()
}

/// A directory with plugins/ and a cache/ under a fresh temporary directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        Scratch { dir }
    }
    fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    fn db(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Copies of a template plugin with distinct names (`p000000000000001`, …), patched
/// everywhere the placeholder appears in the compiled component (once in a template that
/// builds its SQL at run time; in every statement of a declared one): one build, `n`
/// distinct plugins.
fn generate(template: &str, n: usize, into: &Path) {
    let bytes = std::fs::read(template).unwrap();
    let at: Vec<usize> = bytes
        .windows(PLACEHOLDER.len())
        .enumerate()
        .filter(|(_, w)| *w == PLACEHOLDER)
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty(), "the placeholder name is in {template}");
    for i in 1..=n {
        let mut copy = bytes.clone();
        let name = format!("p{i:015}");
        for &at in &at {
            copy[at..at + PLACEHOLDER.len()].copy_from_slice(name.as_bytes());
        }
        std::fs::write(into.join(format!("{name}.wasm")), copy).unwrap();
    }
}

/// Runs the wasmig binary; returns wall time and peak RSS (VmHWM, polled while it runs).
fn run_wasmig(args: &[&str], plugins: &Path, db: &Path, cache: Option<&Path>) -> (f64, u64) {
    let (elapsed, peak, err) = run_wasmig_to_end(args, plugins, db, cache);
    if let Some(err) = err {
        panic!("wasmig {args:?} failed: {err}");
    }
    (elapsed, peak)
}

/// [`run_wasmig`] for a run that may fail: wall time, peak RSS, and its stderr if it failed.
fn run_wasmig_to_end(
    args: &[&str],
    plugins: &Path,
    db: &Path,
    cache: Option<&Path>,
) -> (f64, u64, Option<String>) {
    let mut cmd = Command::new(WASMIG);
    cmd.arg("--plugins").arg(plugins).arg("--db").arg(db);
    match cache {
        Some(c) => cmd.arg("--cache-dir").arg(c),
        None => cmd.arg("--no-cache"),
    };
    cmd.args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(line) = s.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kib = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(peak_kib);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    let err = (!status.success()).then(|| {
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        err
    });
    (elapsed, peak_kib, err)
}

// --- boundary -----------------------------------------------------------------------------

const INSERT: &str = "INSERT INTO bench__item (id, name, qty, price) VALUES (?1, ?2, ?3, ?4)";

/// How the native baseline runs its inserts.
#[derive(Clone, Copy)]
enum Native {
    /// `prepare_cached` per row, as a plugin's one call per row does.
    CachedPerRow,
    /// One prepared statement, each row bound as it is made.
    PreparedOnce,
    /// Every row built first (a `Vec` of values per row), then one prepared statement, as a
    /// plugin calling `execute_many` does.
    BuiltFirst,
}

fn native_inserts(n: i64, how: Native) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rusqlite::Connection::open(dir.path().join("n.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE bench__item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL)",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    let started = Instant::now();
    if let Native::BuiltFirst = how {
        use rusqlite::types::Value;
        let rows: Vec<Vec<Value>> = (0..n)
            .map(|i| {
                vec![
                    Value::Integer(i),
                    Value::Text(format!("item-{i}")),
                    Value::Integer(i % 100),
                    Value::Real(i as f64 * 0.5),
                ]
            })
            .collect();
        let mut stmt = tx.prepare(INSERT).unwrap();
        for row in &rows {
            stmt.execute(rusqlite::params_from_iter(row)).unwrap();
        }
    } else if let Native::PreparedOnce = how {
        let mut stmt = tx.prepare(INSERT).unwrap();
        for i in 0..n {
            stmt.execute(rusqlite::params![
                i,
                format!("item-{i}"),
                i % 100,
                i as f64 * 0.5
            ])
            .unwrap();
        }
    } else {
        for i in 0..n {
            tx.prepare_cached(INSERT)
                .unwrap()
                .execute(rusqlite::params![
                    i,
                    format!("item-{i}"),
                    i % 100,
                    i as f64 * 0.5
                ])
                .unwrap();
        }
    }
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    tx.commit().unwrap();
    elapsed
}

/// The duration of the inserting step, as wasmig measured it (instantiate, the plugin's
/// calls, the schema check), with a warm compile cache.
async fn wasmig_inserts(n: i64, mode: &str, cache: &Path, compiler: Compiler) -> f64 {
    let s = Scratch::new();
    std::fs::copy(artifacts::BENCH_ROWS, s.plugins().join("bench.wasm")).unwrap();
    let db = s.db("w.db");
    let h = host_with(&s.plugins(), &db, Some(cache), compiler);
    h.up(wasmig::UpOptions {
        plugin: Some("bench".into()),
        to_version: Some(semver::Version::new(0, 1, 0)),
        ..Default::default()
    })
    .await
    .unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO bench__config VALUES (?1, ?2)",
            rusqlite::params![mode, n],
        )
        .unwrap();
    let report = h.up(wasmig::UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 1);
    assert_eq!(report.steps[0].rows_changed, n as u64);
    report.steps[0].duration_us as f64 / 1e3
}

// --- main -----------------------------------------------------------------------------------

/// The allocator the `wasmig` binary uses, so the in-process figures are the binary's.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "mimalloc")]
#[path = "../src/allocator.rs"]
mod allocator;

fn main() {
    #[cfg(feature = "mimalloc")]
    allocator::route_sqlite().expect("SQLite is not initialized yet");
    #[cfg(not(feature = "mimalloc"))]
    wasmig::sqlite_memory::install().expect("SQLite is not initialized yet");
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, db] = &args[..]
        && flag == "--sqlite-floor"
    {
        sqlite_floor(Path::new(db));
        return;
    }
    if let [_, flag, db, rows] = &args[..]
        && flag == "--fill-ledger"
    {
        fill_ledger(Path::new(db), rows.parse().unwrap());
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--verbose`: every run's figure, not just the median, on stderr.
    let verbose = args.iter().any(|a| a == "--verbose");
    let runs = if quick { 3 } else { 5 };
    // `--only boundary,noop` runs just those sections: boundary, load, noop, apply, postgres,
    // history, memory.
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    let wants = |section: &str| only.as_ref().is_none_or(|o| o.iter().any(|s| s == section));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shared_cache = Scratch::new();
    let cache = shared_cache.cache();
    let mut rows = Vec::new();
    let progress = |what: &str| eprintln!("… {what}");

    // Boundary: 100,000 parameterized INSERTs, one call per row and one batch call.
    let n = 100_000;
    if wants("boundary") {
        // Precompiled with Cranelift, as `wasmig compile` does at deploy time; the last row
        // runs the code a first-seen plugin gets instead (Winch), for comparison.
        let s = Scratch::new();
        std::fs::copy(artifacts::BENCH_ROWS, s.plugins().join("bench.wasm")).unwrap();
        let compiled = rt
            .block_on(host(&s.plugins(), &s.db("c.db"), Some(&cache)).compile())
            .unwrap();
        assert!(compiled.iter().all(|c| c.error.is_none()));
        rt.block_on(wasmig_inserts(1000, "single", &cache, Compiler::Auto));
        rt.block_on(wasmig_inserts(1000, "single", &cache, Compiler::Winch));
    }
    let modes = [
        (
            "single",
            Native::CachedPerRow,
            1.5,
            Compiler::Auto,
            "100k INSERTs, one import call per row (native: prepare_cached per row)",
        ),
        (
            "batch",
            Native::PreparedOnce,
            1.15,
            Compiler::Auto,
            "100k INSERTs, batch import: Tx::batch, send-batch-packed (native: prepared once)",
        ),
        (
            "many",
            Native::BuiltFirst,
            1.15,
            Compiler::Auto,
            "100k INSERTs, batch import: execute_many, every row built first (native: every row built first, then prepared once)",
        ),
        (
            "single",
            Native::CachedPerRow,
            1.5,
            Compiler::Winch,
            "100k INSERTs, one import call per row, Winch's code (a plugin not precompiled)",
        ),
    ];
    for (mode, how, target, compiler, work) in modes {
        if !wants("boundary") {
            break;
        }
        progress(&format!("boundary, {mode}"));
        let mut native = Vec::new();
        let mut ours = Vec::new();
        // Sub-second figures: warm-up runs first (discarded), then more runs, interleaved, for
        // a steadier median.
        for _ in 0..2 {
            native_inserts(n, how);
            rt.block_on(wasmig_inserts(n, mode, &cache, compiler));
        }
        for _ in 0..runs * 3 {
            native.push(native_inserts(n, how));
            ours.push(rt.block_on(wasmig_inserts(n, mode, &cache, compiler)));
        }
        if verbose {
            eprintln!("  native {native:.1?}\n  wasmig {ours:.1?}");
        }
        let (b, w) = (median(native), median(ours));
        rows.push(Row {
            work: work.into(),
            baseline: ms(b),
            wasmig: ms(w),
            ratio: Some(w / b),
            target: format!("≤ {target}×"),
        });
    }

    // Load: cold compile, then warm (compile cache) load + instantiate.
    if wants("load") {
        progress("load");
        let s = Scratch::new();
        let h = host(&s.plugins(), &s.db("l.db"), Some(&s.cache()));
        let plugin = Path::new(artifacts::NOTES);
        // The wasm32-wasip2 build last: its Winch code stays in the cache for the warm row.
        for (plugin, build) in [
            (Path::new(artifacts::NOTES_NO_WASI), ", built without WASI"),
            (plugin, ""),
        ] {
            let size = std::fs::metadata(plugin).unwrap().len() / 1024;
            for compiler in [Compiler::Cranelift, Compiler::Winch] {
                let mut cold = Vec::new();
                for _ in 0..runs {
                    let _ = std::fs::remove_dir_all(s.cache());
                    let fresh = host_with(&s.plugins(), &s.db("l.db"), Some(&s.cache()), compiler);
                    let i = rt.block_on(fresh.inspect(plugin)).unwrap();
                    assert!(!i.from_cache && i.compiler == compiler);
                    cold.push(i.load_us as f64 / 1e3);
                }
                rows.push(Row {
                    work: format!("cold compile of a {size} KiB plugin{build}, {compiler:?}"),
                    baseline: "—".into(),
                    wasmig: ms(median(cold)),
                    ratio: None,
                    target: "reported".into(),
                });
            }
        }
        // As the binary compiles: in the compile child (a process, an engine, the compile,
        // then a second child that loads the artifact), the host loading it afterwards.
        for compiler in [Compiler::Cranelift, Compiler::Winch] {
            let mut cold = Vec::new();
            for _ in 0..runs {
                let _ = std::fs::remove_dir_all(s.cache());
                let fresh = wasmig::Host::builder()
                    .plugins_dir(s.plugins())
                    .database(s.db("l.db"))
                    .cache_dir(Some(s.cache()))
                    .compiler(compiler)
                    .compile_in_child(WASMIG)
                    .build()
                    .unwrap();
                let i = rt.block_on(fresh.inspect(plugin)).unwrap();
                assert!(!i.from_cache && i.compiler == compiler);
                cold.push(i.load_us as f64 / 1e3);
            }
            let size = std::fs::metadata(plugin).unwrap().len() / 1024;
            rows.push(Row {
                work: format!(
                    "cold compile of a {size} KiB plugin, {compiler:?}, in the compile child \
                     (as the binary compiles)"
                ),
                baseline: "—".into(),
                wasmig: ms(median(cold)),
                ratio: None,
                target: "reported".into(),
            });
        }
        let mut warm = Vec::new();
        for _ in 0..runs * 4 {
            let i = rt.block_on(h.inspect(plugin)).unwrap();
            assert!(i.from_cache);
            warm.push((i.load_us + i.instantiate_us) as f64 / 1e3);
        }
        rows.push(Row {
            work: "warm load (compile cache) + instantiate".into(),
            baseline: "—".into(),
            wasmig: ms(median(warm)),
            ratio: None,
            target: "≤ 2 ms".into(),
        });
    }

    // No-op: N plugins × 20 applied migrations, nothing pending, warm cache.
    let sizes: &[usize] = if quick { &[10, 100] } else { &[10, 100, 1000] };
    let mut memory = Vec::new();
    for &count in sizes {
        if !wants("noop") && !wants("memory") {
            break;
        }
        progress(&format!("no-op and memory, {count} plugins"));
        let s = Scratch::new();
        generate(artifacts::BENCH_TEMPLATE20, count, &s.plugins());
        let db = s.db("noop.db");
        // `validate` compiles the new plugins into the compile cache (to read their
        // manifests); applying them all with that warm cache is the memory figure.
        run_wasmig(&["validate"], &s.plugins(), &db, Some(&cache));
        let (_, peak) = run_wasmig(&["up"], &s.plugins(), &db, Some(&cache));
        // The floor for any tool, as a whole process like wasmig: start, open the database
        // (SQLite parses its whole schema, here 2 objects per migration), read the applied
        // state once, exit.
        let floors: Vec<(f64, u64)> = (0..runs).map(|_| run_floor(&db, count * 20)).collect();
        let floor_peak = floors.iter().map(|f| f.1).max().unwrap_or(0);
        memory.push((count, peak, floor_peak));
        if !wants("noop") {
            continue;
        }
        let floor = median(floors.iter().map(|f| f.0).collect());
        for cmd in ["up", "status"] {
            let times: Vec<f64> = (0..runs)
                .map(|_| run_wasmig(&[cmd], &s.plugins(), &db, Some(&cache)).0)
                .collect();
            let w = median(times);
            rows.push(Row {
                work: format!(
                    "no-op `wasmig {cmd}`: {count} plugins × 20 applied (native process: open + one query)"
                ),
                baseline: ms(floor),
                wasmig: ms(w),
                ratio: Some(w / floor),
                target: if count == 1000 {
                    "≤ 0.5 s".into()
                } else {
                    "linear".into()
                },
            });
        }
    }

    // Apply: 100 plugins × 10 SQL migrations into a fresh database, against refinery.
    if wants("apply") {
        progress("apply, building the refinery baseline");
        let refinery = build_refinery();
        let s = Scratch::new();
        generate(artifacts::BENCH_TEMPLATE10, 100, &s.plugins());
        // The same plugins built for wasm32-unknown-unknown: components without WASI imports.
        let no_wasi = Scratch::new();
        generate(artifacts::BENCH_TEMPLATE10_NO_WASI, 100, &no_wasi.plugins());
        // The same SQL declared as data (`StaticPlugin`): never compiled.
        let declared = Scratch::new();
        generate(artifacts::BENCH_STATIC10, 100, &declared.plugins());
        let mut base = Vec::new();
        let mut cold = Vec::new();
        let mut cold_cranelift = Vec::new();
        let mut warm = Vec::new();
        let mut cold_no_wasi = Vec::new();
        let mut warm_no_wasi = Vec::new();
        let mut cold_declared = Vec::new();
        let mut warm_declared = Vec::new();
        for r in 0..runs {
            progress(&format!("apply, run {}", r + 1));
            let db = s.db(&format!("refinery{r}.db"));
            let started = Instant::now();
            let ok = Command::new(&refinery)
                .arg(&db)
                .args(["100", "10"])
                .status()
                .unwrap();
            assert!(ok.success());
            base.push(started.elapsed().as_secs_f64() * 1e3);
            let _ = std::fs::remove_dir_all(s.cache());
            cold_cranelift.push(
                run_wasmig(
                    &["--compiler", "cranelift", "up"],
                    &s.plugins(),
                    &s.db(&format!("cold-cranelift{r}.db")),
                    Some(&s.cache()),
                )
                .0,
            );
            // Each build: compile cache emptied, then a cold run and a warm one.
            for (set, cold, warm) in [
                (&s, &mut cold, &mut warm),
                (&no_wasi, &mut cold_no_wasi, &mut warm_no_wasi),
                (&declared, &mut cold_declared, &mut warm_declared),
            ] {
                let _ = std::fs::remove_dir_all(set.cache());
                for (into, name) in [(cold, "cold"), (warm, "warm")] {
                    into.push(
                        run_wasmig(
                            &["up"],
                            &set.plugins(),
                            &set.db(&format!("{name}{r}.db")),
                            Some(&set.cache()),
                        )
                        .0,
                    );
                }
            }
        }
        let b = median(base);
        for (label, v, target) in [
            (
                "SQL declared as data, cold compile cache",
                cold_declared,
                1.5,
            ),
            (
                "SQL declared as data, warm compile cache",
                warm_declared,
                1.2,
            ),
            ("SQL from code, cold compile cache", cold, 1.5),
            (
                "SQL from code, cold compile cache, --compiler cranelift",
                cold_cranelift,
                1.5,
            ),
            ("SQL from code, warm compile cache", warm, 1.2),
            (
                "SQL from code built without WASI, cold compile cache",
                cold_no_wasi,
                1.5,
            ),
            (
                "SQL from code built without WASI, warm compile cache",
                warm_no_wasi,
                1.2,
            ),
        ] {
            let w = median(v);
            rows.push(Row {
                work: format!("apply 100 plugins × 10 SQL migrations, {label} (vs refinery)"),
                baseline: ms(b),
                wasmig: ms(w),
                ratio: Some(w / b),
                target: format!("≤ {target}×"),
            });
        }
    }

    // Apply on PostgreSQL: the same 100 plugins × 10 SQL migrations, against refinery on the
    // same server, each side into a fresh database (`WASMIG_TEST_POSTGRES`, the tests' role).
    if wants("postgres") {
        match std::env::var("WASMIG_TEST_POSTGRES") {
            Err(_) => eprintln!(
                "postgres: skipped, WASMIG_TEST_POSTGRES names no server (see .ci/postgres)"
            ),
            Ok(server) => {
                progress("postgres, building the refinery baseline");
                let refinery = build_refinery();
                let declared = Scratch::new();
                generate(artifacts::BENCH_STATIC10, 100, &declared.plugins());
                let code = Scratch::new();
                generate(artifacts::BENCH_TEMPLATE10_NO_WASI, 100, &code.plugins());
                let (mut base, mut wasmig_declared, mut wasmig_code) =
                    (Vec::new(), Vec::new(), Vec::new());
                let (mut floor, mut floor_one_by_one) = (Vec::new(), Vec::new());
                let mut admin = postgres::Client::connect(&server, postgres::NoTls)
                    .expect("WASMIG_TEST_POSTGRES");
                let fresh = |admin: &mut postgres::Client, name: &str| {
                    drop_database(admin, name);
                    admin
                        .batch_execute(&format!("CREATE DATABASE {name}"))
                        .unwrap();
                    let (prefix, _) = server.rsplit_once('/').unwrap();
                    format!("{prefix}/{name}")
                };
                // Warms the compile cache of the code plugins.
                let warm = fresh(&mut admin, "wasmig_bench_warm");
                run_wasmig(
                    &["up"],
                    &code.plugins(),
                    Path::new(&warm),
                    Some(&code.cache()),
                );
                drop_database(&mut admin, "wasmig_bench_warm");
                for r in 0..runs {
                    progress(&format!("postgres, run {}", r + 1));
                    let url = fresh(&mut admin, "wasmig_bench_refinery");
                    let started = Instant::now();
                    let ok = Command::new(&refinery)
                        .arg(&url)
                        .args(["100", "10"])
                        .status()
                        .unwrap();
                    assert!(ok.success());
                    base.push(started.elapsed().as_secs_f64() * 1e3);
                    drop_database(&mut admin, "wasmig_bench_refinery");
                    // The floor of one role and one login per plugin, without refinery and
                    // without checks: what PostgreSQL itself costs for wasmig's isolation.
                    for (mode, into) in [
                        ("--floor", &mut floor),
                        ("--floor-one-by-one", &mut floor_one_by_one),
                    ] {
                        let url = fresh(&mut admin, "wasmig_bench_floor");
                        let started = Instant::now();
                        let ok = Command::new(&refinery)
                            .arg(&url)
                            .args(["100", "10", mode])
                            .status()
                            .unwrap();
                        assert!(ok.success());
                        into.push(started.elapsed().as_secs_f64() * 1e3);
                        drop_database(&mut admin, "wasmig_bench_floor");
                    }
                    for (set, into) in
                        [(&declared, &mut wasmig_declared), (&code, &mut wasmig_code)]
                    {
                        let url = fresh(&mut admin, "wasmig_bench_wasmig");
                        into.push(
                            run_wasmig(
                                &["up"],
                                &set.plugins(),
                                Path::new(&url),
                                Some(&set.cache()),
                            )
                            .0,
                        );
                        drop_database(&mut admin, "wasmig_bench_wasmig");
                    }
                }
                let b = median(base);
                let floor_work = |how: &str| {
                    format!(
                        "floor: the same SQL with one role and one login per plugin and nothing \
                         checked, {how} (vs refinery on PostgreSQL)"
                    )
                };
                let apply_work = |what: &str| {
                    format!(
                        "apply 100 plugins × 10 SQL migrations on PostgreSQL, {what} (vs \
                         refinery on PostgreSQL)"
                    )
                };
                for (work, v, target) in [
                    (floor_work("one round trip per step"), floor, "reported"),
                    (
                        floor_work("each statement a round trip of its own, in a savepoint"),
                        floor_one_by_one,
                        "reported",
                    ),
                    (
                        apply_work("SQL declared as data"),
                        wasmig_declared,
                        "≤ 1.2×",
                    ),
                    (
                        apply_work("SQL from code built without WASI, warm compile cache"),
                        wasmig_code,
                        "≤ 1.2×",
                    ),
                ] {
                    let w = median(v);
                    rows.push(Row {
                        work,
                        baseline: ms(b),
                        wasmig: ms(w),
                        ratio: Some(w / b),
                        target: target.into(),
                    });
                }
            }
        }
    }

    // History scale: one migration with 10 vs 100,000 ledger rows present.
    if wants("history") {
        progress("history scale");
        // A few milliseconds each: many runs, interleaved, so drift affects both sides alike.
        let (mut small, mut large) = (Vec::new(), Vec::new());
        for _ in 0..runs * 3 {
            small.push(rt.block_on(apply_one_with_history(10, &cache)));
            large.push(rt.block_on(apply_one_with_history(100_000, &cache)));
        }
        let times = [median(small), median(large)];
        rows.push(Row {
            work: "apply one migration with 100,000 ledger rows (vs 10 rows)".into(),
            baseline: ms(times[0]),
            wasmig: ms(times[1]),
            ratio: Some(times[1] / times[0]),
            target: "≤ 1.2×".into(),
        });
    }

    // Memory: peak RSS applying N plugins in sequence (fresh database, warm cache), beside a
    // process that only opens the result: SQLite's own memory for that schema.
    for &(count, peak, floor) in &memory {
        if !wants("memory") {
            break;
        }
        rows.push(Row {
            work: format!(
                "peak RSS applying {count} plugins × 20 migrations (native process: open the \
                 result + one query)"
            ),
            baseline: format!("{} MB", floor / 1024),
            wasmig: format!("{} MB", peak / 1024),
            ratio: Some(peak as f64 / floor.max(1) as f64),
            target: "≤ 300 MB, flat".into(),
        });
    }

    // Host memory of one step whose query returns as many small rows as it may: the result
    // cap counts what the host holds, so the step stays within the plugin's memory limit and
    // 64 MiB, whatever SQLite's own size of the rows.
    if wants("memory") {
        progress("memory of a step with a capped query result");
        let s = Scratch::new();
        std::fs::copy(artifacts::HOSTILE, s.plugins().join("evil.wasm")).unwrap();
        let db = s.db("rows.db");
        run_wasmig(&["up", "evil@0.1.0"], &s.plugins(), &db, Some(&cache));
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute(
                "INSERT INTO evil__attack (name) VALUES ('many-small-rows')",
                [],
            )
            .unwrap();
        let peaks: Vec<u64> = (0..runs.min(3))
            .map(|_| {
                let (_, peak, err) = run_wasmig_to_end(&["up"], &s.plugins(), &db, Some(&cache));
                let err = err.expect("the step's query is refused at the cap");
                assert!(err.contains("larger than the 64 MiB"), "{err}");
                peak
            })
            .collect();
        let peak = peaks.into_iter().max().unwrap_or(0);
        rows.push(Row {
            work: "peak RSS of a step whose query returns 8 million one-integer rows, refused at \
                   the 64 MiB result cap (limit: the plugin's 256 MiB memory + 64 MiB)"
                .into(),
            baseline: "320 MB".into(),
            wasmig: format!("{} MB", peak / 1024),
            ratio: Some(peak as f64 / (320.0 * 1024.0)),
            target: "≤ 1×".into(),
        });
    }

    println!("| work | baseline | wasmig | ratio | target |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.work,
            r.baseline,
            r.wasmig,
            r.ratio.map_or("—".to_string(), |x| format!("{x:.2}×")),
            r.target
        );
    }
}

/// Applies `accounts` 0.1.0 with `ledger_rows` earlier attempts already in the ledger; returns
/// the time `up` took (warm compile cache).
async fn apply_one_with_history(ledger_rows: usize, cache: &Path) -> f64 {
    let s = Scratch::new();
    std::fs::copy(artifacts::ACCOUNTS, s.plugins().join("accounts.wasm")).unwrap();
    let db = s.db("h.db");
    let h = host(&s.plugins(), &db, Some(cache));
    // An up that applies nothing still creates the host's tables.
    h.up(wasmig::UpOptions {
        plugin: Some("accounts".into()),
        to_version: Some(semver::Version::new(0, 0, 0)),
        ..Default::default()
    })
    .await
    .unwrap();
    // The fixture is written by another process, then the CPU caches are swept, for both
    // sizes: otherwise the 8 MB of pages the 100,000-row fill writes just before the measured
    // `up` leave its caches colder than the 10-row fill does, which cost it ≈ 0.8 ms of ≈ 4
    // (the same 100,000 inserts into another database before a 10-row run cost it as much;
    // with the sweep the two differ by 1–7 %). The `up` starts cold either way, as at a
    // server's start.
    let status = Command::new(std::env::current_exe().unwrap())
        .arg("--fill-ledger")
        .arg(&db)
        .arg(ledger_rows.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    sweep_caches();
    let started = Instant::now();
    h.up(wasmig::UpOptions {
        plugin: Some("accounts".into()),
        to_version: Some(semver::Version::new(0, 1, 0)),
        ..Default::default()
    })
    .await
    .unwrap();
    started.elapsed().as_secs_f64() * 1e3
}

/// Writes one byte of every cache line of 64 MiB: evicts what the caches held (this machine:
/// 4 MiB of L2; the VM reports a shared 300 MiB L3, of which this evicts what it can).
fn sweep_caches() {
    let mut sweep = vec![0u8; 64 << 20];
    for (i, b) in sweep.iter_mut().enumerate().step_by(64) {
        *b = i as u8;
    }
    std::hint::black_box(&sweep);
}

/// Fills the ledger of `db` with `rows` attempts of other plugins (this executable with
/// `--fill-ledger DB ROWS`).
fn fill_ledger(db: &Path, rows: usize) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO _wasmig_ledger (plugin, plugin_version, version, description,
                     direction, outcome, started_at_ms, duration_us, checksum,
                     component_sha256, wasmig_version, statements)
                 VALUES (?1, '1.0.0', ?2, 'old', 'up', 'succeeded', 0, 1, 'c', 's', '0', '[]')",
            )
            .unwrap();
        for i in 0..rows {
            stmt.execute(rusqlite::params![
                format!("old{}", i % 1000),
                format!("1.{i}.0")
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// The floor process (this executable with `--sqlite-floor DB`): wall time and peak RSS.
fn run_floor(db: &Path, applied: usize) -> (f64, u64) {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("--sqlite-floor")
        .arg(db)
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let (n, peak) = text.trim().split_once(' ').unwrap();
    assert_eq!(n.parse::<usize>().unwrap(), applied);
    (elapsed, peak.parse().unwrap())
}

/// What any tool must do for a no-op: open the database, read the applied state once. Prints
/// the row count and this process's peak RSS in KiB.
fn sqlite_floor(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM _wasmig_applied", [], |r| r.get(0))
        .unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("0");
    println!("{n} {peak}");
}

/// Drops a benchmark database and the plugin roles wasmig made for it.
fn drop_database(admin: &mut postgres::Client, name: &str) {
    // A process that just exited may leave its server sessions for a moment; `FORCE` ends
    // them only for a member of their role, which the floor's roles do not grant.
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let mut tries = 0;
    while let Err(e) = admin.batch_execute(&drop) {
        tries += 1;
        assert!(tries < 100, "cannot drop {name}: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // wasmig's plugin roles and their code roles, and the floor's (`<database>_p…`).
    let roles = admin
        .query(
            "SELECT rolname::text FROM pg_roles \
             WHERE rolname LIKE $1 OR rolname LIKE $2 OR rolname LIKE $3",
            &[
                &format!("wasmig/{name}/%"),
                &format!("wasmig:{name}/%"),
                &format!("{name}\\_p%"),
            ],
        )
        .unwrap();
    for role in roles {
        let role: String = role.get(0);
        admin
            .batch_execute(&format!("DROP ROLE \"{role}\""))
            .unwrap();
    }
}

fn build_refinery() -> PathBuf {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/refinery-baseline/Cargo.toml");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/refinery-baseline");
    // From inside the workspace, so that its .cargo/config.toml (SQLite's build flags) applies
    // to the baseline as well.
    let ok = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap();
    assert!(ok.success(), "building benches/refinery-baseline failed");
    target.join("release/refinery-baseline")
}
