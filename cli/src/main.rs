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

/// `println!` for people: the text with its control characters escaped (see
/// [`output::shown`]); plugins' and the database's words reach the terminal through it.
macro_rules! say {
    ($($arg:tt)*) => {
        crate::output::print_line(&crate::output::shown(&format!($($arg)*)))
    };
}

/// `eprintln!` for people, as [`say!`].
macro_rules! say_err {
    ($($arg:tt)*) => {
        eprintln!("{}", crate::output::shown(&format!($($arg)*)))
    };
}

#[cfg(feature = "mimalloc")]
mod allocator;
mod args;
mod output;
mod scaffold;

use args::*;
use output::*;

/// mimalloc for Rust's allocations; `main` gives it to SQLite too (see `allocator`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The compile child (see `build_host`): nothing else of the binary runs in it.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == wasmig::compile_child::ARG)
    {
        return ExitCode::from(wasmig::compile_child::main() as u8);
    }
    // Before any thread uses SQLite: SQLite gets the binary's allocator, its memory during a
    // step is bounded, and past a step's deadline its allocations fail.
    #[cfg(feature = "mimalloc")]
    let bounded = allocator::route_sqlite();
    #[cfg(not(feature = "mimalloc"))]
    let bounded = {
        one_malloc_arena();
        wasmig::sqlite_memory::install()
    };
    if let Err(code) = bounded {
        say_err!("error: cannot bound SQLite's memory (SQLite error {code})");
        return ExitCode::FAILURE;
    }
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let mut cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    cli.db_given = matches.value_source("db") == Some(clap::parser::ValueSource::CommandLine);
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            say_err!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            say_err!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// Without mimalloc (built with `--no-default-features`): glibc gives each thread that
/// allocates its own malloc arena, and memory freed in one is reused only there. A run's
/// manifests are made on the compile threads and freed on the run's thread as plugins finish,
/// while SQLite's schema grows on the run's thread: with arenas per thread, peak RSS grows by
/// a few KB per plugin that SQLite cannot reuse. One arena lets every thread reuse what any
/// thread freed; small allocations still come from each thread's cache without taking the
/// arena's lock.
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
        .with_writer(output::LogEvent::new)
        .with_target(false)
        // No colours: the log's writer escapes every control character, ESC included (a
        // field of an event, an object's name, is written as it is).
        .with_ansi(false)
        .init();
}

/// A step SQLite does not let go of past its deadline: the process ends, so the step's
/// transaction is rolled back by SQLite's journal and the database's lock is free again, and
/// the next run records the failure.
fn abandon_step(overrun: &wasmig::Overrun) {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    say_err!("error: {overrun}; wasmig stops, and SQLite rolls the step back");
    if let Err(e) = overrun.record_for_next_run() {
        say_err!("error: cannot keep the step's failure for the ledger: {e}");
    }
    std::process::exit(EXIT_ABANDONED);
}

/// The exit status when a step had to be abandoned inside SQLite.
const EXIT_ABANDONED: i32 = 3;

async fn run(cli: Cli) -> Result<ExitCode> {
    // Commands on a plugin crate, not on a database.
    match &cli.command {
        Command::New { name, path, sdk } => {
            let written = scaffold::new(name, path.as_deref(), sdk.as_deref())?;
            print_written(&written, cli.json, "created")?;
            if !cli.json {
                say!(
                    "Next: cd {} && cargo build --release (once: rustup target add \
                     wasm32-unknown-unknown); see its README.md.",
                    written.path.display()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Add {
            description,
            template,
            path,
            version,
            table,
            column,
            to,
            column_type,
            key,
        } => {
            let names = scaffold::Names {
                table: table.clone(),
                column: column.clone(),
                to: to.clone(),
                column_type: column_type.clone(),
                key: key.clone(),
            };
            let dir = path.clone().unwrap_or_else(|| PathBuf::from("."));
            let written = scaffold::add(&dir, description, template, &names, version.clone())?;
            print_written(&written, cli.json, "added")?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    if let Command::Test {
        target,
        with,
        require_reversible,
    } = &cli.command
    {
        return test(&cli, target.as_deref(), with, *require_reversible).await;
    }
    let host = build_host(&cli, &cli.plugins, &cli.db)?;
    match cli.command {
        Command::Up {
            target,
            dry_run,
            allow_drift,
            allow_downgrade,
            allow_destructive,
        } => {
            let mut options = parse_target(target.as_deref())?;
            options.dry_run = dry_run;
            options.allow_drift = allow_drift;
            options.allow_downgrade = allow_downgrade;
            options.allow_destructive = allow_destructive;
            if dry_run {
                return print_run(&host.up(options).await?, cli.json);
            }
            let mut out = Progress::new(cli.json, Direction::Up);
            let result = host.up_with(options, &mut |event| out.event(event)).await;
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
            return down(&host, options, cli.json, &mut Vec::new()).await;
        }
        Command::Uninstall {
            plugin,
            cascade,
            dry_run,
        } => {
            let options = DownOptions {
                plugin: plugin.clone(),
                cascade,
                dry_run,
                ..DownOptions::default()
            };
            if dry_run {
                return down(&host, options, cli.json, &mut Vec::new()).await;
            }
            let mut rolled_back = Vec::new();
            let code = down(&host, options, cli.json, &mut rolled_back).await?;
            if code == ExitCode::SUCCESS {
                // The plugin and, with `--cascade`, every plugin whose steps were all rolled
                // back with it.
                let applied: std::collections::BTreeSet<String> = host
                    .status()
                    .await
                    .map(|rows| {
                        rows.into_iter()
                            .filter(|r| r.applied > 0)
                            .filter_map(|r| r.name)
                            .collect()
                    })
                    .unwrap_or_default();
                rolled_back.sort();
                rolled_back.dedup();
                for gone in rolled_back.iter().filter(|p| !applied.contains(*p)) {
                    left_behind(&host, gone, cli.json).await;
                }
            }
            return Ok(code);
        }
        Command::Serve {
            listen,
            token,
            token_file,
            allow_apply,
        } => {
            let token =
                match token_file {
                    Some(file) => Some(std::fs::read_to_string(&file).with_context(|| {
                        format!("cannot read the token file {}", file.display())
                    })?),
                    None => token,
                };
            return serve(host, &listen, token, allow_apply).await;
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
            print_policy(&rows, &limits, host.is_postgres(), cli.json)?;
        }
        Command::History { plugin } => {
            let rows = host.history(plugin.as_deref()).await?;
            print_history(&rows, cli.json)?;
        }
        Command::New { .. } | Command::Add { .. } | Command::Test { .. } => {
            unreachable!("handled before the host")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `down` and `uninstall`: a dry run prints its report at the end, a real run each step as
/// it ends; the plugins of the steps rolled back go into `rolled_back`.
async fn down(
    host: &Host,
    options: DownOptions,
    as_json: bool,
    rolled_back: &mut Vec<String>,
) -> Result<ExitCode> {
    if options.dry_run {
        return print_run(&host.down(options).await?, as_json);
    }
    let mut out = Progress::new(as_json, Direction::Down);
    let result = host
        .down_with(options, &mut |event| {
            if let wasmig::RunEvent::Ended(report) = &event
                && report.error.is_none()
            {
                rolled_back.push(report.plugin.clone());
            }
            out.event(event)
        })
        .await;
    out.finish(result)
}

/// After `uninstall`: what the plugin's down steps left in its namespace. The ledger says no
/// step is applied, so a reinstall runs its first step again into these objects; they are
/// the plugin's data, and wasmig drops nothing a down step did not.
async fn left_behind(host: &Host, plugin: &str, as_json: bool) {
    let objects = match host.objects(plugin).await {
        Ok(objects) => objects,
        Err(e) => {
            say_err!("warning: cannot read what plugin {plugin}'s down steps left: {e}");
            return;
        }
    };
    let named: Vec<String> = objects.iter().filter_map(|line| object_of(line)).collect();
    if named.is_empty() {
        return;
    }
    if as_json {
        say!(
            "{}",
            serde_json::json!({"event": "left_behind", "plugin": plugin, "objects": named})
        );
        return;
    }
    const SHOWN: usize = 10;
    let more = named.len().saturating_sub(SHOWN);
    say_err!(
        "warning: plugin {plugin} has no step applied, but its down steps left objects in its \
         namespace, which stay (drop them by hand, or fix the plugin's down steps before a \
         reinstall): {}{}",
        named[..named.len().min(SHOWN)].join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
}

/// The kind and name of the object a line of [`Host::objects`] describes (`table t`, `index
/// CREATE UNIQUE INDEX i ON …`, `function s.f(integer)`); `None` for a column, a constraint
/// or a key, which belong to their tables.
fn object_of(line: &str) -> Option<String> {
    let mut words = line.split(' ');
    let first = words.next()?;
    let kind = match first {
        "table" | "view" | "index" | "trigger" | "sequence" | "function" | "type" | "operator"
        | "collation" | "statistics" | "conversion" => first.to_string(),
        "virtual" | "materialized" | "foreign" => {
            let second = words.next()?;
            if !matches!(second, "table" | "view") {
                return None;
            }
            format!("{first} {second}")
        }
        "text" => {
            let (search, what) = (words.next()?, words.next()?);
            if search != "search" || !matches!(what, "configuration" | "dictionary") {
                return None;
            }
            format!("text search {what}")
        }
        _ => return None,
    };
    let mut name = words.next()?;
    // PostgreSQL describes an index and a trigger by their definitions.
    if name == "CREATE" {
        name = words
            .by_ref()
            .skip_while(|w| !matches!(*w, "INDEX" | "TRIGGER"))
            .nth(1)?;
    }
    let name = name
        .split('(')
        .next()
        .unwrap_or(name)
        .trim_end_matches([',', ';', ':']);
    Some(format!("{kind} {name}"))
}

/// What `new` or `add` wrote.
fn print_written(written: &scaffold::Written, as_json: bool, verb: &str) -> Result<()> {
    if as_json {
        say!("{}", serde_json::to_string_pretty(written)?);
        return Ok(());
    }
    say!(
        "{verb} plugin {} step {} (its objects are named {}*):",
        written.plugin,
        written.version,
        written.namespace
    );
    for file in &written.files {
        say!("  {}", file.display());
    }
    Ok(())
}

/// The host for `cli`'s options, on `plugins` and `db`.
fn build_host(cli: &Cli, plugins: &std::path::Path, db: &std::path::Path) -> Result<Host> {
    let mut builder = Host::builder().plugins_dir(plugins).database(db);
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
        .retries(cli.retries)
        .compiler(match cli.compiler {
            CompilerArg::Auto => Compiler::Auto,
            CompilerArg::Cranelift => Compiler::Cranelift,
            CompilerArg::Winch => Compiler::Winch,
        })
        .on_overrun(abandon_step)
        // Plugins compile in a child process of this binary, under the compile limits.
        .compile_in_child(own_program()?)
        .build()?;
    Ok(host)
}

/// This program's file, to run as the compile child. On Linux `/proc/self/exe`: the running
/// binary even after a deploy replaced the file (its path then ends in " (deleted)", and the
/// file at the path is another version).
fn own_program() -> Result<PathBuf> {
    if cfg!(target_os = "linux") {
        return Ok(PathBuf::from("/proc/self/exe"));
    }
    std::env::current_exe().context("cannot find this program's own file to compile plugins with")
}

/// `wasmig test`: the plugins to test and what they depend on are copied into a scratch
/// plugins directory, and tested on a scratch SQLite file unless `--db` names a database.
async fn test(
    cli: &Cli,
    target: Option<&std::path::Path>,
    with: &[PathBuf],
    require_reversible: bool,
) -> Result<ExitCode> {
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let plugins = scratch.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    let db = if cli.db_given {
        cli.db.clone()
    } else {
        scratch.path().join("test.db")
    };
    let target = target.unwrap_or(&cli.plugins);
    let wasm_in = |dir: &std::path::Path| -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            // As the catalog lists a plugins directory: regular files only (a link to
            // `/dev/zero` would be read forever).
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        Ok(files)
    };
    // Reads manifests only; runs nothing.
    let reader = build_host(cli, &plugins, &db)?;
    let mut names_of = std::collections::BTreeMap::new();
    let (tested, mut pool): (Vec<PathBuf>, Vec<PathBuf>) = if target.is_dir() {
        (wasm_in(target)?, Vec::new())
    } else {
        let dir = target.parent().unwrap_or(std::path::Path::new("."));
        let siblings = wasm_in(if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        })?;
        (vec![target.to_path_buf()], siblings)
    };
    if tested.is_empty() {
        bail!("no plugin (.wasm file) in {}", target.display());
    }
    pool.extend(with.iter().cloned());
    let mut manifests = std::collections::BTreeMap::new();
    for file in tested.iter().chain(&with.to_vec()) {
        let manifest = reader
            .inspect(file)
            .await
            .with_context(|| format!("cannot read plugin {}", file.display()))?
            .manifest;
        names_of.insert(file.clone(), manifest.name.clone());
        manifests.insert(manifest.name.clone(), (file.clone(), manifest));
    }
    // What the tested plugins depend on, transitively, from the pool.
    let mut wanted: Vec<String> = manifests
        .values()
        .flat_map(|(_, m)| m.depends_on.iter().map(|d| d.name.clone()))
        .collect();
    while let Some(name) = wanted.pop() {
        if manifests.contains_key(&name) {
            continue;
        }
        let mut found = false;
        for file in &pool {
            let Ok(inspection) = reader.inspect(file).await else {
                continue;
            };
            if inspection.manifest.name == name {
                wanted.extend(
                    inspection
                        .manifest
                        .depends_on
                        .iter()
                        .map(|d| d.name.clone()),
                );
                manifests.insert(name.clone(), (file.clone(), inspection.manifest));
                found = true;
                break;
            }
        }
        if !found {
            bail!(
                "a tested plugin depends on {name}, which is not in {} (give its file with --with)",
                target.display()
            );
        }
    }
    for (name, (file, _)) in &manifests {
        std::fs::copy(file, plugins.join(format!("{name}.wasm")))
            .with_context(|| format!("cannot copy {}", file.display()))?;
    }
    let host = build_host(cli, &plugins, &db)?;
    let under_test: Vec<String> = tested
        .iter()
        .filter_map(|f| names_of.get(f).cloned())
        .collect();
    let mut progress = output::TestProgress::new(cli.json);
    let report = host
        .test_with(
            &under_test,
            &wasmig::TestOptions { require_reversible },
            |event| progress.event(event),
        )
        .await;
    progress.finish();
    let report = report?;
    print_test(&report, cli.json)?;
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `wasmig serve`: the page and its API until the process is stopped. A token is required
/// off loopback and to apply; one is generated when none is given.
async fn serve(
    host: Host,
    listen: &str,
    token: Option<String>,
    allow_apply: bool,
) -> Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    // A token given by the operator is never printed; one made here is, once.
    let (token, made) = match token {
        Some(t) if t.trim().len() < 16 => {
            bail!("the token must have at least 16 characters")
        }
        Some(t) => (Some(t.trim().to_string()), false),
        None if allow_apply || !address.ip().is_loopback() => {
            let mut bytes = [0u8; 24];
            getrandom::fill(&mut bytes).context("cannot make a token")?;
            (
                Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
                true,
            )
        }
        None => (None, false),
    };
    let options = wasmig_web::Options {
        token: token.clone(),
        allow_apply,
        ..Default::default()
    };
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        match &token {
            Some(t) if made => writeln!(out, "wasmig serves http://{address}/#token={t}")?,
            Some(_) => writeln!(
                out,
                "wasmig serves http://{address}/ (open it with #token=YOUR-TOKEN at the end)"
            )?,
            None => writeln!(out, "wasmig serves http://{address}/")?,
        }
        out.flush()?;
    }
    wasmig_web::serve(
        listener,
        wasmig_web::router(host, options.clone()),
        &options,
    )
    .await
    .context("the server stopped")?;
    Ok(ExitCode::SUCCESS)
}
