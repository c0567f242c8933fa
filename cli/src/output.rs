//! What the commands print: tables for people by default, JSON with `--json`, each step as
//! it ends, and errors with what to do about them here.

use super::*;

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    t
}

pub(crate) fn json(value: &impl serde::Serialize) -> Result<()> {
    print_line(&serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Writes `text` and a line break to stdout. Once nobody reads it (a closed pipe, as in
/// `wasmig history | head`) the output is dropped and the command's work goes on: a run
/// still applies and records its steps, and its exit status says how it went.
pub(crate) fn print_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            panic!("cannot write to stdout: {e}")
        }
        _ => {}
    }
}

/// Text as a terminal shows it: a control character (which could clear the screen, retitle
/// the window or draw output of its own) is written as its escape, `\u{1b}`, and so is a
/// character that reorders or hides text (the bidirectional controls, zero-width ones) or
/// breaks a line without being one (U+2028, U+2029); line breaks and tabs stay. Plugins'
/// descriptions and errors, and the database's messages, are such text.
pub(crate) fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A character [`shown`] writes as its escape: a control character, and one that is not
/// drawn or draws nothing a reader sees (Unicode's format characters, category Cf, as of
/// Unicode 15; variation selectors, fillers and joiners, blanks that are not spaces).
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c,
            // Cf
            '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
            | '\u{890}'..='\u{891}' | '\u{8e2}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}'
            | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{110bd}' | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}' | '\u{e0020}'..='\u{e007f}'
            // line and paragraph separators
            | '\u{2028}'..='\u{2029}'
            // joiners, variation selectors, fillers, blanks
            | '\u{34f}' | '\u{115f}'..='\u{1160}' | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}' | '\u{2800}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}'
            | '\u{ffa0}' | '\u{e0100}'..='\u{e01ef}')
}

/// The log's writer: one event, as the formatter wrote it, shown as [`shown`] and
/// [`continued`] show a plugin's words, when the event is done (the formatter writes an event
/// into a writer of its own, then drops it). A plugin's or the database's words reach the
/// log in messages (a step's error, a plugin's own `log` messages, what it printed), where a
/// line break or a character that reorders text could draw a line of wasmig's own; the
/// formatter escapes some of them in an event's message, not in its other fields (the name
/// of a plugin's object). The log has no colours, so that `ESC` is escaped too.
pub(crate) struct LogEvent(Vec<u8>);

impl LogEvent {
    pub(crate) fn new() -> Self {
        LogEvent(Vec::new())
    }
}

impl std::io::Write for LogEvent {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogEvent {
    fn drop(&mut self) {
        use std::io::Write;
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let mut out = String::with_capacity(text.len() + 8);
        for c in body.chars() {
            match c {
                '\n' => out.push_str("\n  │ "),
                c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        out.push_str(end);
        let _ = std::io::stderr().write_all(out.as_bytes());
    }
}

/// Text of a plugin's or the database's, with each of its line breaks followed by a mark,
/// so that no line of it reads as a line of wasmig's own (a step reported as succeeded).
pub(crate) fn continued(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\n') {
        std::borrow::Cow::Owned(text.replace('\n', "\n  │ "))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Prints a real run as it goes, one line per step as the step ends, so a run over thousands
/// of plugins shows progress and holds no table of them. On a terminal a progress bar on
/// stderr shows the steps done of the total, the step running and the time elapsed. With
/// `--json`, one JSON object per line: `planned`, then `started` and `step` for each step,
/// and `finished` (the rest of the run's report) or `error` at the end.
pub(crate) struct Progress {
    json: bool,
    direction: Direction,
    /// Something was printed (the header of the plain lines, or a JSON line).
    started: bool,
    ran: usize,
    bar: Option<indicatif::ProgressBar>,
}

/// One line of `--json` output of a real run.
#[derive(serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line<'a> {
    Planned {
        steps: usize,
    },
    Started {
        plugin: &'a str,
        version: &'a str,
        description: &'a str,
        direction: &'a str,
    },
    Step(&'a wasmig::StepReport),
    Finished {
        ran: usize,
        failed: Option<&'a wasmig::StepReport>,
        not_run: &'a [wasmig::PlannedStep],
        already_done: &'a [wasmig::PlannedStep],
    },
    Error {
        ran: usize,
        error: String,
    },
}

impl Progress {
    pub(crate) fn new(json: bool, direction: Direction) -> Self {
        Progress {
            json,
            direction,
            started: false,
            ran: 0,
            bar: None,
        }
    }

    fn line(&mut self, line: &Line<'_>) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if let Ok(text) = serde_json::to_string(line) {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        self.started = true;
    }

    pub(crate) fn event(&mut self, event: wasmig::RunEvent) {
        use wasmig::RunEvent;
        match event {
            RunEvent::Planned { steps } => {
                if self.json {
                    self.line(&Line::Planned { steps });
                } else if steps > 0 && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    let bar = indicatif::ProgressBar::new(steps as u64);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{elapsed_precise} [{bar:30}] {pos}/{len} steps  {msg}",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    );
                    bar.enable_steady_tick(Duration::from_millis(200));
                    self.bar = Some(bar);
                }
            }
            RunEvent::Started {
                plugin,
                version,
                description,
                direction,
            } => {
                if self.json {
                    self.line(&Line::Started {
                        plugin: &plugin,
                        version: &version,
                        description: &description,
                        direction: direction.as_str(),
                    });
                } else if let Some(bar) = &self.bar {
                    // The bar writes its message to the terminal itself: the plugin's words
                    // go through `shown` here, on one line.
                    bar.set_message(
                        shown(&format!(
                            "{plugin} {version} {}: {}",
                            direction.as_str(),
                            description.replace('\n', " ")
                        ))
                        .into_owned(),
                    );
                }
            }
            RunEvent::Ended(step) => self.step(step),
        }
    }

    fn step(&mut self, step: wasmig::StepReport) {
        self.ran += 1;
        if self.json {
            self.line(&Line::Step(&step));
            return;
        }
        let mut text = String::new();
        if !self.started {
            text.push_str(&format!(
                "{:<9}  {:<9}  {:<24} {:<10} {:>8} {:>10}  DESCRIPTION\n",
                "OUTCOME", "DIRECTION", "PLUGIN", "VERSION", "ROWS", "DURATION"
            ));
        }
        text.push_str(&format!(
            "{:<9}  {:<9}  {:<24} {:<10} {:>8} {:>10}  {}",
            step.outcome.as_str(),
            step.direction.as_str(),
            step.plugin,
            step.version,
            step.rows_changed,
            duration(step.duration_us),
            continued(&step.description)
        ));
        if let Some(e) = &step.error {
            text.push_str(&format!("\n  error: {}", continued(e)));
        }
        self.started = true;
        // Above the bar, which is drawn again below the line.
        let print = || {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", shown(&text));
            let _ = out.flush();
        };
        match &self.bar {
            Some(bar) => {
                bar.suspend(print);
                bar.inc(1);
            }
            None => print(),
        }
    }

    /// Ends the output with the run's outcome; an error is returned (and printed by `main`)
    /// after the JSON lines end with it.
    pub(crate) fn finish(mut self, result: wasmig::Result<RunReport>) -> Result<ExitCode> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.json {
            match &result {
                Ok(report) => self.line(&Line::Finished {
                    ran: report.ran,
                    failed: report.failed.as_ref(),
                    not_run: &report.not_run,
                    already_done: &report.already_done,
                }),
                // Nothing printed yet: the error alone, as for any other command.
                Err(e) if self.started => {
                    let line = Line::Error {
                        ran: self.ran,
                        error: describe_wasmig(e),
                    };
                    self.line(&line);
                }
                Err(_) => {}
            }
        }
        let report = result?;
        if !self.json {
            if report.ran == 0 {
                say!("Nothing to do.");
            } else {
                let verb = match self.direction {
                    Direction::Up => "Applied",
                    Direction::Down => "Rolled back",
                };
                say!("{verb} {} step(s).", report.ran);
            }
            print_not_run(&report);
        }
        Ok(ExitCode::SUCCESS)
    }
}

pub(crate) fn print_not_run(report: &RunReport) {
    if !report.not_run.is_empty() {
        let list: Vec<String> = report
            .not_run
            .iter()
            .map(|s| format!("{} {}", s.plugin, s.version))
            .collect();
        say!("Not run: {}", list.join(", "));
    }
}

/// Prints a run (or a dry run); a failed step in a dry run makes the exit code non-zero.
pub(crate) fn print_run(report: &RunReport, as_json: bool) -> Result<ExitCode> {
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
        say!("Nothing to do.");
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
    say!("{t}");
    if report.dry_run {
        for s in &report.steps {
            say!("\n{} {} {}:", s.plugin, s.version, s.direction.as_str());
            for c in &s.schema_changes {
                say!("  {}", continued(c));
            }
            if !s.destructive.is_empty() {
                say!("  destructive: it {}", continued(&s.destructive.join(", ")));
            }
            for stmt in &s.statements {
                say!(
                    "  > {}",
                    stmt.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
            if let Some(e) = &s.error {
                say!("  error: {}", continued(e));
            }
        }
        say!("\nDry run: every step was rolled back.");
    } else {
        let verb = match report.steps[0].direction {
            Direction::Up => "Applied",
            Direction::Down => "Rolled back",
        };
        say!("{verb} {} step(s).", report.steps.len());
    }
    print_not_run(report);
    Ok(code)
}

pub(crate) fn print_findings(findings: &[Finding], as_json: bool) -> Result<()> {
    if as_json {
        return json(&findings);
    }
    if findings.is_empty() {
        say!("Valid: every applied migration matches its plugin file.");
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
    say!("{t}");
    Ok(())
}

pub(crate) fn print_status(rows: &[PluginStatus], as_json: bool) -> Result<()> {
    if as_json {
        return json(&rows);
    }
    if rows.is_empty() {
        say!("No plugins: the plugins directory has no *.wasm files.");
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
    say!("{t}");
    Ok(())
}

pub(crate) fn print_compiled(rows: &[wasmig::Compiled], as_json: bool) -> Result<()> {
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
    say!("{t}");
    Ok(())
}

pub(crate) fn print_inspection(i: &wasmig::Inspection, as_json: bool) -> Result<()> {
    if as_json {
        return json(i);
    }
    let m = &i.manifest;
    say!("{} {} — {}", m.name, m.version, continued(&m.description));
    say!("file:        {} ({} bytes)", i.file.display(), i.size);
    say!("sha256:      {}", i.sha256);
    say!(
        "load:        {:.2} ms ({})",
        i.load_us as f64 / 1e3,
        if i.from_cache {
            format!("{} code from the compile cache", i.compiler.as_str())
        } else {
            format!("compiled with {}", i.compiler.as_str())
        }
    );
    say!("instantiate: {:.3} ms", i.instantiate_us as f64 / 1e3);
    say!(
        "declared:    {}",
        if i.declared {
            "yes: its manifest and SQL steps are data, run without compiling it"
        } else {
            "no: its manifest and steps come from its code"
        }
    );
    for difference in &i.code_disagrees {
        say!(
            "warning:     its code's manifest() disagrees with its declaration: {}",
            continued(difference)
        );
    }
    let deps: Vec<String> = m
        .depends_on
        .iter()
        .map(|d| format!("{} {}", d.name, d.requirement))
        .collect();
    say!(
        "depends on:  {}",
        if deps.is_empty() {
            "-".into()
        } else {
            deps.join(", ")
        }
    );
    say!(
        "reads:       {}",
        if m.reads.is_empty() {
            "-".into()
        } else {
            m.reads.join(", ")
        }
    );
    say!("imports:     {}", i.imports.join(", "));
    let mut t = table(&["MIGRATION", "DESCRIPTION", "REVERSIBLE", "CHECKSUM"]);
    for step in &m.migrations {
        t.add_row(vec![
            step.version.to_string(),
            step.description.clone(),
            if step.reversible { "yes" } else { "no" }.to_string(),
            step.checksum.clone(),
        ]);
    }
    say!("{t}");
    Ok(())
}

pub(crate) fn print_policy(
    rows: &[PluginAccess],
    limits: &Limits,
    postgres: bool,
    as_json: bool,
) -> Result<()> {
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
    say!("{t}");
    say!(
        "Limits per step: deadline {}, memory {} MiB, query result {} MiB, database growth {}, \
         temporary storage {} MiB, log {} KiB, wasm stack {} KiB.{}",
        humantime::format_duration(limits.deadline),
        limits.max_memory >> 20,
        limits.max_result_bytes >> 20,
        // PostgreSQL has no quota on a schema: the host measures it when the step ends.
        if postgres {
            format!(
                "{} MiB (its schema's size, checked at the step's end)",
                limits.max_growth_bytes >> 20
            )
        } else {
            format!("{} MiB", limits.max_growth_bytes >> 20)
        },
        limits.max_temp_bytes >> 20,
        limits.max_log_bytes >> 10,
        limits.max_stack >> 10,
        if postgres {
            String::new()
        } else {
            format!(
                " Definitions per plugin: {} KiB.",
                limits.max_schema_bytes >> 10
            )
        }
    );
    if let Some(application) = limits.application_limits.filter(|_| !postgres) {
        let set: Vec<String> = application
            .set()
            .map(|(key, value)| format!("{key} {value}"))
            .collect();
        say!(
            "The application's SQLite limits, under which every plugin's definitions must \
             load: {}.",
            set.join(", ")
        );
    }
    say!(
        "Compiling a plugin (in a child process): address space {} MiB, time {}.",
        limits.max_compile_memory >> 20,
        humantime::format_duration(limits.compile_deadline)
    );
    Ok(())
}

pub(crate) fn print_history(rows: &[LedgerEntry], as_json: bool) -> Result<()> {
    if as_json {
        return json(&rows);
    }
    if rows.is_empty() {
        say!("No history: nothing has run on this database yet.");
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
        "BY",
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
            e.applied_by.clone(),
            e.error.clone().unwrap_or_default(),
        ]);
    }
    say!("{t}");
    Ok(())
}

pub(crate) fn duration(us: i64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else {
        format!("{:.1} ms", us as f64 / 1e3)
    }
}

/// An error as the command line says it, in one line: the library's sentence, what to do
/// about it here (the flag that overrides a refusal, the policy lines to add), and its
/// causes, each once (the library's errors already say their cause, the operating system's
/// error of an I/O error for one, which is also their source).
pub(crate) fn describe(e: &anyhow::Error) -> String {
    let (mut text, mut previous) = (String::new(), String::new());
    for (i, cause) in e.chain().enumerate() {
        let own = cause.to_string();
        // A cause its error's message ends with is said already.
        if own.is_empty() || (i > 0 && previous.ends_with(&own)) {
            previous = own;
            continue;
        }
        let part = match cause.downcast_ref::<wasmig::Error>() {
            // At the top, not under a context of the command line's: with its hints.
            Some(w) if i == 0 => describe_wasmig(w),
            _ => own.clone(),
        };
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
        previous = own;
    }
    text
}

pub(crate) fn describe_wasmig(e: &wasmig::Error) -> String {
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
        _ => continued(&e.to_string()).into_owned(),
    }
}

pub(crate) fn describe_problem(p: &Problem) -> String {
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
    format!("{}{hint}", continued(&p.to_string()))
}

/// `wasmig test`'s report: per plugin, per step, the differences found.
pub(crate) fn print_test(report: &wasmig::TestReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(report);
    }
    use wasmig::Check;
    let word = |c: &Check| match c {
        Check::Passed => "ok",
        Check::Failed { .. } => "FAILED",
        Check::Differs { .. } => "DIFFERS",
        Check::Irreversible => "irreversible",
        Check::NotRun => "not run",
    };
    for plugin in &report.plugins {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header([
            "PLUGIN",
            "VERSION",
            "UP",
            "DOWN",
            "AGAIN",
            "COMPARES",
            "DESCRIPTION",
        ]);
        for s in &plugin.steps {
            t.add_row([
                plugin.plugin.as_str(),
                s.version.as_str(),
                word(&s.up),
                word(&s.down),
                word(&s.again),
                if s.checks_data {
                    "schema, rows"
                } else {
                    "schema"
                },
                s.description.as_str(),
            ]);
        }
        say!("{t}");
        for s in &plugin.steps {
            let what = if s.checks_data {
                "the schema and rows"
            } else {
                "the schema"
            };
            for (half, check) in [("up", &s.up), ("down", &s.down), ("again", &s.again)] {
                match check {
                    Check::Failed { error } => {
                        say!(
                            "{} {} {half}: {}",
                            plugin.plugin,
                            s.version,
                            continued(error)
                        )
                    }
                    Check::Differs { differences } => {
                        if half == "down" {
                            say!(
                                "{} {} down does not restore {what} from before its up step \
                                 (- missing, + left over):",
                                plugin.plugin,
                                s.version
                            );
                        } else {
                            say!(
                                "{} {} applied again does not give {what} of the first pass \
                                 (- first pass only, + second pass only):",
                                plugin.plugin,
                                s.version
                            );
                        }
                        for d in differences {
                            say!("  {}", continued(d));
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(e) = &plugin.error {
            say!("{}: {}", plugin.plugin, continued(e));
        }
        say!(
            "{}: {}",
            plugin.plugin,
            if plugin.passed { "passed" } else { "FAILED" }
        );
    }
    Ok(())
}

/// A progress bar for `wasmig test` on a terminal (nothing otherwise: the report follows).
pub(crate) struct TestProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl TestProgress {
    pub(crate) fn new(json: bool) -> Self {
        let bar = (!json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} checks  {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        TestProgress { bar }
    }

    pub(crate) fn event(&mut self, event: wasmig::TestEvent) {
        let Some(bar) = &self.bar else { return };
        match event {
            wasmig::TestEvent::Plugin { plugin, checks } => {
                bar.inc_length(checks as u64);
                bar.set_message(plugin);
            }
            wasmig::TestEvent::Checked {
                plugin,
                version,
                phase,
                ..
            } => {
                bar.inc(1);
                bar.set_message(format!("{plugin} {version} {phase}"));
            }
        }
    }

    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
