//! `wasmig`: a thin command line over the `wasmig` library.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};
use wasmig::planner::Problem;
use wasmig::{
    Compiler, Direction, DownOptions, Finding, Host, LedgerEntry, Limits, Outcome, PluginAccess,
    PluginStatus, RunReport, UpOptions,
};

#[cfg(feature = "mimalloc")]
mod allocator;

/// mimalloc for Rust's allocations; `main` gives it to SQLite too (see `allocator`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run plugins' database migrations as sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "wasmig", version)]
struct Cli {
    /// Directory whose *.wasm files are the plugins.
    #[arg(long, global = true, env = "WASMIG_PLUGINS", default_value = "plugins")]
    plugins: PathBuf,

    /// SQLite database file (created if missing).
    #[arg(long, global = true, env = "WASMIG_DB", default_value = "wasmig.db")]
    db: PathBuf,

    /// Policy file: read grants and limits [default: ./wasmig.toml if it exists].
    #[arg(long, global = true, env = "WASMIG_CONFIG")]
    config: Option<PathBuf>,

    /// Wall-clock time one migration step may take, e.g. 30s or 2m (overrides the policy).
    #[arg(long, global = true, env = "WASMIG_DEADLINE")]
    deadline: Option<String>,

    /// How long to wait for another runner holding the database, e.g. 60s.
    #[arg(
        long,
        global = true,
        env = "WASMIG_LOCK_TIMEOUT",
        default_value = "60s"
    )]
    lock_timeout: String,

    /// Where compiled plugins are cached [default: $XDG_CACHE_HOME/wasmig or ~/.cache/wasmig].
    #[arg(long, global = true, env = "WASMIG_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile every plugin on every run; do not read or write the compile cache.
    #[arg(long, global = true)]
    no_cache: bool,

    /// Which compiler turns plugins into native code: auto (Winch for a plugin not in the
    /// compile cache, Cranelift's code once `wasmig compile` cached it), cranelift, winch.
    #[arg(long, global = true, env = "WASMIG_COMPILER", value_enum, default_value_t = CompilerArg::Auto)]
    compiler: CompilerArg,

    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations: of every plugin, or of PLUGIN[@VERSION] and its dependencies.
    Up {
        /// Only this plugin (and what it depends on), optionally up to a step version.
        target: Option<String>,
        /// Run the steps in a transaction that is rolled back; report what they would do.
        #[arg(long)]
        dry_run: bool,
        /// Apply even though an applied migration changed since (recorded in the history).
        #[arg(long)]
        allow_drift: bool,
        /// Apply even though a plugin file is older than what is applied (recorded).
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// What `up` would do: runs it in a transaction that is rolled back.
    Plan {
        /// Only this plugin (and what it depends on), optionally up to a step version.
        target: Option<String>,
    },
    /// Roll a plugin back with its down steps, newest first.
    Down {
        /// The plugin.
        plugin: String,
        /// Roll back every applied step above this version.
        #[arg(long, conflicts_with = "steps", required_unless_present = "steps")]
        to: Option<semver::Version>,
        /// Roll back the newest N applied steps.
        #[arg(long)]
        steps: Option<usize>,
        /// First roll back, entirely, the applied plugins that depend on what goes.
        #[arg(long)]
        cascade: bool,
        /// Run the steps in a transaction that is rolled back; report what they would do.
        #[arg(long)]
        dry_run: bool,
    },
    /// Roll back every applied step of a plugin.
    Uninstall {
        /// The plugin.
        plugin: String,
        /// First roll back, entirely, the applied plugins that depend on it.
        #[arg(long)]
        cascade: bool,
        /// Run the steps in a transaction that is rolled back; report what they would do.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show every plugin: its file, version, applied version and pending steps.
    Status,
    /// Report drift, downgrades, missing files and gaps; exits non-zero if there are any.
    Validate,
    /// Show what each plugin may touch (its namespace and read grants) and the limits.
    Policy,
    /// Load one plugin file (compile cache included) and show its manifest, imports and
    /// load and instantiation times. Runs no migration.
    Inspect {
        /// The .wasm file.
        file: PathBuf,
    },
    /// Compile every plugin file with the optimizing compiler into the compile cache
    /// (deploy-time precompilation). Runs no plugin code; touches no database.
    Compile,
    /// Show every recorded attempt, oldest first.
    History {
        /// Only this plugin.
        plugin: Option<String>,
    },
}

fn main() -> ExitCode {
    #[cfg(feature = "mimalloc")]
    if let Err(code) = allocator::route_sqlite() {
        eprintln!("error: cannot give SQLite its allocator (SQLite error {code})");
        return ExitCode::FAILURE;
    }
    #[cfg(not(feature = "mimalloc"))]
    one_malloc_arena();
    // Before any thread uses SQLite: its memory during a step is bounded, and past a step's
    // deadline its allocations fail.
    if let Err(code) = wasmig::sqlite_memory::install() {
        eprintln!("error: cannot bound SQLite's memory (SQLite error {code})");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// Without mimalloc (built with `--no-default-features`): glibc gives each thread that
/// allocates its own malloc arena, and memory freed in one is reused only there. A run's
/// manifests are made on the compile threads and freed on the run's thread as plugins finish,
/// while SQLite's schema grows on the run's thread: with arenas per thread, peak RSS grew by a
/// few KB per plugin that SQLite could not reuse (44 MB instead of 36 MB at 1,000 plugins). One arena lets every thread reuse what any thread freed; small
/// allocations still come from each thread's cache without taking the arena's lock.
#[cfg(not(feature = "mimalloc"))]
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes the allocator's parameters; called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        // Each step's end is printed on stdout; its log line would say it twice.
        0 => "warn,wasmig=info,wasmig::step=off",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A step SQLite does not let go of past its deadline: the process ends, so the step's
/// transaction is rolled back by SQLite's journal and the database's lock is free again, and
/// the next run records the failure.
fn abandon_step(overrun: &wasmig::Overrun) {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    eprintln!("error: {overrun}; wasmig stops, and SQLite rolls the step back");
    if let Err(e) = overrun.record_for_next_run() {
        eprintln!("error: cannot keep the step's failure for the ledger: {e}");
    }
    std::process::exit(EXIT_ABANDONED);
}

/// The exit status when a step had to be abandoned inside SQLite.
const EXIT_ABANDONED: i32 = 3;

async fn run(cli: Cli) -> Result<ExitCode> {
    let mut builder = Host::builder().plugins_dir(&cli.plugins).database(&cli.db);
    let default_policy = PathBuf::from("wasmig.toml");
    match &cli.config {
        Some(path) => builder = builder.policy_file(path)?,
        None if default_policy.is_file() => builder = builder.policy_file(&default_policy)?,
        None => {}
    }
    if let Some(d) = &cli.deadline {
        let mut limits = builder.current_limits().clone();
        limits.deadline =
            wasmig::policy::parse_duration(d).map_err(|e| anyhow::anyhow!("--deadline: {e}"))?;
        builder = builder.limits(limits);
    }
    let lock_timeout = wasmig::policy::parse_duration(&cli.lock_timeout)
        .map_err(|e| anyhow::anyhow!("--lock-timeout: {e}"))?;
    if cli.no_cache {
        builder = builder.cache_dir(None);
    } else if let Some(dir) = &cli.cache_dir {
        builder = builder.cache_dir(Some(dir.clone()));
    }
    let host = builder
        .lock_timeout(lock_timeout)
        .compiler(match cli.compiler {
            CompilerArg::Auto => Compiler::Auto,
            CompilerArg::Cranelift => Compiler::Cranelift,
            CompilerArg::Winch => Compiler::Winch,
        })
        .on_overrun(abandon_step)
        .build()?;
    match cli.command {
        Command::Up {
            target,
            dry_run,
            allow_drift,
            allow_downgrade,
        } => {
            let mut options = parse_target(target.as_deref())?;
            options.dry_run = dry_run;
            options.allow_drift = allow_drift;
            options.allow_downgrade = allow_downgrade;
            if dry_run {
                return print_run(&host.up(options).await?, cli.json);
            }
            let mut out = Progress::new(cli.json, Direction::Up);
            let result = host.up_with(options, &mut |step| out.step(step)).await;
            return out.finish(result);
        }
        Command::Plan { target } => {
            let mut options = parse_target(target.as_deref())?;
            options.dry_run = true;
            let report = host.up(options).await?;
            return print_run(&report, cli.json);
        }
        Command::Down {
            plugin,
            to,
            steps,
            cascade,
            dry_run,
        } => {
            let options = DownOptions {
                plugin,
                to,
                steps,
                cascade,
                dry_run,
            };
            return down(&host, options, cli.json).await;
        }
        Command::Uninstall {
            plugin,
            cascade,
            dry_run,
        } => {
            let options = DownOptions {
                plugin,
                cascade,
                dry_run,
                ..DownOptions::default()
            };
            return down(&host, options, cli.json).await;
        }
        Command::Validate => {
            let findings = host.validate().await?;
            print_findings(&findings, cli.json)?;
            if !findings.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Status => {
            let rows = host.status().await?;
            print_status(&rows, cli.json)?;
            if rows
                .iter()
                .any(|r| r.problem.is_some() && r.file.is_some() && r.name.is_none())
            {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Inspect { file } => {
            let inspection = host.inspect(&file).await?;
            print_inspection(&inspection, cli.json)?;
        }
        Command::Compile => {
            let rows = host.compile().await?;
            print_compiled(&rows, cli.json)?;
            if rows.iter().any(|r| r.error.is_some()) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Policy => {
            let (rows, limits) = host.access().await?;
            print_policy(&rows, &limits, cli.json)?;
        }
        Command::History { plugin } => {
            let rows = host.history(plugin.as_deref()).await?;
            print_history(&rows, cli.json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_target(target: Option<&str>) -> Result<UpOptions> {
    let Some(target) = target else {
        return Ok(UpOptions::default());
    };
    let (plugin, version) = match target.split_once('@') {
        Some((p, v)) => {
            let v = semver::Version::parse(v)
                .with_context(|| format!("{target}: {v:?} is not a semver version"))?;
            (p, Some(v))
        }
        None => (target, None),
    };
    if plugin.is_empty() {
        bail!("{target}: the plugin name is missing");
    }
    Ok(UpOptions {
        plugin: Some(plugin.to_string()),
        to_version: version,
        ..UpOptions::default()
    })
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    t
}

fn json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `down` and `uninstall`: a dry run prints its report at the end, a real run each step as
/// it ends.
async fn down(host: &Host, options: DownOptions, as_json: bool) -> Result<ExitCode> {
    if options.dry_run {
        return print_run(&host.down(options).await?, as_json);
    }
    let mut out = Progress::new(as_json, Direction::Down);
    let result = host.down_with(options, &mut |step| out.step(step)).await;
    out.finish(result)
}

/// Prints a real run as it goes, one line (or one JSON array element) per step as the step
/// ends, so a run over thousands of plugins shows progress and holds no table of them. The
/// JSON document has the shape of [`RunReport`]'s; when the run stops with an error after
/// some steps, it ends with an `"error"` field, and the error also goes to stderr.
struct Progress {
    json: bool,
    direction: Direction,
    started: bool,
    ran: usize,
}

impl Progress {
    fn new(json: bool, direction: Direction) -> Self {
        Progress {
            json,
            direction,
            started: false,
            ran: 0,
        }
    }

    fn step(&mut self, step: wasmig::StepReport) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if self.json {
            let prefix = if self.started {
                ","
            } else {
                "{\n  \"dry_run\": false,\n  \"steps\": ["
            };
            let body = serde_json::to_string_pretty(&step).unwrap_or_default();
            let _ = write!(out, "{prefix}\n    {}", body.replace('\n', "\n    "));
        } else {
            if !self.started {
                let _ = writeln!(
                    out,
                    "{:<9}  {:<9}  {:<24} {:<10} {:>8} {:>10}  DESCRIPTION",
                    "OUTCOME", "DIRECTION", "PLUGIN", "VERSION", "ROWS", "DURATION"
                );
            }
            let _ = writeln!(
                out,
                "{:<9}  {:<9}  {:<24} {:<10} {:>8} {:>10}  {}",
                step.outcome.as_str(),
                step.direction.as_str(),
                step.plugin,
                step.version,
                step.rows_changed,
                duration(step.duration_us),
                step.description
            );
            if let Some(e) = &step.error {
                let _ = writeln!(out, "  error: {e}");
            }
        }
        let _ = out.flush();
        self.started = true;
        self.ran += 1;
    }

    /// Ends the output with the run's outcome; an error is returned (and printed by `main`)
    /// after the JSON document is closed.
    fn finish(self, result: wasmig::Result<RunReport>) -> Result<ExitCode> {
        let rest = match &result {
            _ if !self.json => None,
            Ok(report) => Some(serde_json::to_value(report)?),
            Err(e) if self.started => {
                Some(serde_json::json!({ "ran": self.ran, "error": describe_wasmig(e) }))
            }
            // Nothing printed yet: the error alone, as for any other command.
            Err(_) => None,
        };
        if let Some(mut rest) = rest {
            let fields = rest.as_object_mut().expect("a report is an object");
            fields.remove("steps");
            fields.remove("dry_run");
            let mut text = if self.started {
                "\n  ],".to_string()
            } else {
                "{\n  \"dry_run\": false,\n  \"steps\": [],".to_string()
            };
            for (i, (key, value)) in fields.iter().enumerate() {
                let value = serde_json::to_string_pretty(value)?.replace('\n', "\n  ");
                let comma = if i + 1 < fields.len() { "," } else { "" };
                text.push_str(&format!(
                    "\n  {}: {value}{comma}",
                    serde_json::to_string(key)?
                ));
            }
            println!("{text}\n}}");
        }
        let report = result?;
        if !self.json {
            if report.ran == 0 {
                println!("Nothing to do.");
            } else {
                let verb = match self.direction {
                    Direction::Up => "Applied",
                    Direction::Down => "Rolled back",
                };
                println!("{verb} {} step(s).", report.ran);
            }
            print_not_run(&report);
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print_not_run(report: &RunReport) {
    if !report.not_run.is_empty() {
        let list: Vec<String> = report
            .not_run
            .iter()
            .map(|s| format!("{} {}", s.plugin, s.version))
            .collect();
        println!("Not run: {}", list.join(", "));
    }
}

/// Prints a run (or a dry run); a failed step in a dry run makes the exit code non-zero.
fn print_run(report: &RunReport, as_json: bool) -> Result<ExitCode> {
    let code = if report.failure().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if as_json {
        json(report)?;
        return Ok(code);
    }
    if report.steps.is_empty() {
        println!("Nothing to do.");
        return Ok(code);
    }
    let outcome = |s: &wasmig::StepReport| match (report.dry_run, s.outcome) {
        (true, Outcome::Succeeded) => "would succeed".to_string(),
        (true, Outcome::Failed) => "would fail".to_string(),
        (false, o) => o.as_str().to_string(),
    };
    let mut t = table(&[
        "PLUGIN",
        "VERSION",
        "DIRECTION",
        "DESCRIPTION",
        "OUTCOME",
        "ROWS",
        "DURATION",
    ]);
    for s in &report.steps {
        t.add_row(vec![
            s.plugin.clone(),
            s.version.clone(),
            s.direction.as_str().to_string(),
            s.description.clone(),
            outcome(s),
            s.rows_changed.to_string(),
            duration(s.duration_us),
        ]);
    }
    println!("{t}");
    if report.dry_run {
        for s in &report.steps {
            println!("\n{} {} {}:", s.plugin, s.version, s.direction.as_str());
            for c in &s.schema_changes {
                println!("  {c}");
            }
            for stmt in &s.statements {
                println!(
                    "  > {}",
                    stmt.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
            if let Some(e) = &s.error {
                println!("  error: {e}");
            }
        }
        println!("\nDry run: everything was rolled back; the database is unchanged.");
    } else {
        let verb = match report.steps[0].direction {
            Direction::Up => "Applied",
            Direction::Down => "Rolled back",
        };
        println!("{verb} {} step(s).", report.steps.len());
    }
    print_not_run(report);
    Ok(code)
}

fn print_findings(findings: &[Finding], as_json: bool) -> Result<()> {
    if as_json {
        return json(&findings);
    }
    if findings.is_empty() {
        println!("Valid: every applied migration matches its plugin file.");
        return Ok(());
    }
    let mut t = table(&["PLUGIN", "PROBLEM", "DETAILS"]);
    for f in findings {
        t.add_row(vec![
            f.plugin.clone(),
            serde_json::to_value(f.kind)?
                .as_str()
                .unwrap_or_default()
                .to_string(),
            f.message.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn print_status(rows: &[PluginStatus], as_json: bool) -> Result<()> {
    if as_json {
        return json(&rows);
    }
    if rows.is_empty() {
        println!("No plugins: the plugins directory has no *.wasm files.");
        return Ok(());
    }
    let dash = || "-".to_string();
    let mut t = table(&["PLUGIN", "FILE", "VERSION", "APPLIED", "PENDING", "PROBLEM"]);
    for r in rows {
        t.add_row(vec![
            r.name.clone().unwrap_or_else(dash),
            r.file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(dash),
            r.plugin_version.clone().unwrap_or_else(dash),
            r.applied_version.clone().unwrap_or_else(dash),
            r.pending.to_string(),
            r.problem.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CompilerArg {
    Auto,
    Cranelift,
    Winch,
}

fn print_compiled(rows: &[wasmig::Compiled], as_json: bool) -> Result<()> {
    if as_json {
        return json(&rows);
    }
    let mut t = table(&["file", "compiler", "time", "result"]);
    for r in rows {
        t.add_row(vec![
            r.file.display().to_string(),
            r.compiler.map_or("-", Compiler::as_str).to_string(),
            format!("{:.1} ms", r.compile_us as f64 / 1e3),
            match (&r.error, r.from_cache) {
                (Some(e), _) => e.clone(),
                (None, _) if r.declared_sql_only => {
                    "SQL steps declared as data: never compiled".to_string()
                }
                (None, true) => "already in the compile cache".to_string(),
                (None, false) => "compiled and cached".to_string(),
            },
        ]);
    }
    println!("{t}");
    Ok(())
}

fn print_inspection(i: &wasmig::Inspection, as_json: bool) -> Result<()> {
    if as_json {
        return json(i);
    }
    let m = &i.manifest;
    println!("{} {} — {}", m.name, m.version, m.description);
    println!("file:        {} ({} bytes)", i.file.display(), i.size);
    println!("sha256:      {}", i.sha256);
    println!(
        "load:        {:.2} ms ({})",
        i.load_us as f64 / 1e3,
        if i.from_cache {
            format!("{} code from the compile cache", i.compiler.as_str())
        } else {
            format!("compiled with {}", i.compiler.as_str())
        }
    );
    println!("instantiate: {:.3} ms", i.instantiate_us as f64 / 1e3);
    println!(
        "declared:    {}",
        if i.declared {
            "yes: its manifest and SQL steps are data, run without compiling it"
        } else {
            "no: its manifest and steps come from its code"
        }
    );
    for difference in &i.code_disagrees {
        println!("warning:     its code's manifest() disagrees with its declaration: {difference}");
    }
    let deps: Vec<String> = m
        .depends_on
        .iter()
        .map(|d| format!("{} {}", d.name, d.requirement))
        .collect();
    println!(
        "depends on:  {}",
        if deps.is_empty() {
            "-".into()
        } else {
            deps.join(", ")
        }
    );
    println!(
        "reads:       {}",
        if m.reads.is_empty() {
            "-".into()
        } else {
            m.reads.join(", ")
        }
    );
    println!("imports:     {}", i.imports.join(", "));
    let mut t = table(&["MIGRATION", "DESCRIPTION", "REVERSIBLE", "CHECKSUM"]);
    for step in &m.migrations {
        t.add_row(vec![
            step.version.to_string(),
            step.description.clone(),
            if step.reversible { "yes" } else { "no" }.to_string(),
            step.checksum.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn print_policy(rows: &[PluginAccess], limits: &Limits, as_json: bool) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "plugins": rows, "limits": limits }));
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut t = table(&[
        "PLUGIN",
        "OWNS (READ/WRITE)",
        "MAY READ",
        "REFUSED: NOT GRANTED",
    ]);
    for r in rows {
        t.add_row(vec![
            r.plugin.clone(),
            r.namespace.clone(),
            list(&r.reads_granted),
            list(&r.reads_missing),
        ]);
    }
    println!("{t}");
    println!(
        "Limits per step: deadline {}, memory {} MiB, query result {} MiB, database growth {} MiB, \
         temporary storage {} MiB, log {} KiB, wasm stack {} KiB.",
        humantime::format_duration(limits.deadline),
        limits.max_memory >> 20,
        limits.max_result_bytes >> 20,
        limits.max_growth_bytes >> 20,
        limits.max_temp_bytes >> 20,
        limits.max_log_bytes >> 10,
        limits.max_stack >> 10
    );
    Ok(())
}

fn print_history(rows: &[LedgerEntry], as_json: bool) -> Result<()> {
    if as_json {
        return json(&rows);
    }
    if rows.is_empty() {
        println!("No history: nothing has run on this database yet.");
        return Ok(());
    }
    let mut t = table(&[
        "ID",
        "TIME",
        "PLUGIN",
        "VERSION",
        "DIRECTION",
        "OUTCOME",
        "DURATION",
        "ERROR",
    ]);
    for e in rows {
        let at = UNIX_EPOCH + Duration::from_millis(e.started_at_ms.max(0) as u64);
        t.add_row(vec![
            e.id.to_string(),
            humantime::format_rfc3339_seconds(at).to_string(),
            e.plugin.clone(),
            e.version.clone(),
            e.direction.as_str().to_string(),
            e.outcome.as_str().to_string(),
            duration(e.duration_us),
            e.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn duration(us: i64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else {
        format!("{:.1} ms", us as f64 / 1e3)
    }
}

/// An error as the command line says it: the library's sentence, and what to do about it
/// here (the flag that overrides a refusal, the policy lines to add).
fn describe(e: &anyhow::Error) -> String {
    match e.downcast_ref::<wasmig::Error>() {
        // Alone, not under a context of the command line's.
        Some(w) if e.chain().count() == 1 => describe_wasmig(w),
        _ => format!("{e:#}"),
    }
}

fn describe_wasmig(e: &wasmig::Error) -> String {
    match e {
        wasmig::Error::PlanProblems(problems) => {
            let mut text = "cannot plan the migration:".to_string();
            for p in problems {
                text.push_str("\n  - ");
                text.push_str(&describe_problem(p));
            }
            text
        }
        wasmig::Error::Locked { .. } => format!("{e} (--lock-timeout)"),
        _ => e.to_string(),
    }
}

fn describe_problem(p: &Problem) -> String {
    let hint = match p {
        Problem::Drift { .. } => {
            " (check with `wasmig validate`; pass --allow-drift to apply anyway)".to_string()
        }
        Problem::Downgrade { .. } => {
            " (check with `wasmig validate`; pass --allow-downgrade to apply anyway)".to_string()
        }
        Problem::RefusedGrant { plugin, reads, .. } => {
            let quoted: Vec<String> = reads.iter().map(|r| format!("{r:?}")).collect();
            format!(
                "; to grant it, add to wasmig.toml:\n\n    [plugins.{plugin}]\n    reads = [{}]\n",
                quoted.join(", ")
            )
        }
        Problem::DependentWouldBreak {
            plugin, dependent, ..
        } => format!(" (--cascade rolls {dependent} back entirely before {plugin})"),
        _ => String::new(),
    };
    format!("{p}{hint}")
}
