//! `wasmig serve` in a real browser: headless Chromium, driven over the DevTools protocol,
//! on pages served by the real binary over databases migrated by the real binary.

use crate::declared::{Decl, SECTION, with_section, without_section};
use crate::scripted::scripted;
use crate::serve::{Served, http, migrated};
use crate::support::{Env, artifacts};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// Headless Chromium with one page, closed when dropped.
struct Chrome {
    child: Child,
    _profile: tempfile::TempDir,
    page: WebSocket<TcpStream>,
    next: u64,
}

impl Chrome {
    fn start() -> Chrome {
        let profile = tempfile::tempdir().unwrap();
        let binary = std::env::var("WASMIG_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("the browser tests need Chromium ({binary}; .ci/run installs it): {e}")
            });
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…" on stderr.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 {
            if let Some(rest) = line.trim().strip_prefix("DevTools listening on ws://") {
                port = rest
                    .split('/')
                    .next()
                    .and_then(|a| a.rsplit_once(':'))
                    .map(|(_, p)| p.to_string());
                break;
            }
            line.clear();
        }
        let port = port.expect("Chromium printed its DevTools address");
        // The rest of its log is read and dropped, so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let address = format!("127.0.0.1:{port}");
        let list = http(&address, "GET", "/json/list", &[format!("Host: {address}")]);
        let targets: Value = serde_json::from_str(&list.body).expect("Chromium's list of targets");
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page")
            .to_string();
        let stream = TcpStream::connect(&address).unwrap();
        let (page, _) =
            tungstenite::client(page.as_str(), stream).unwrap_or_else(|e| panic!("{page:?}: {e}"));
        let mut chrome = Chrome {
            child,
            _profile: profile,
            page,
            next: 0,
        };
        chrome.call("Page.enable", json!({}));
        chrome.call("Runtime.enable", json!({}));
        chrome
    }

    /// One DevTools command and its result (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let message = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::Text(message.to_string().into()))
            .unwrap();
        loop {
            let Message::Text(text) = self.page.read().unwrap() else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == id {
                if !answer["error"].is_null() {
                    panic!("{method}: {}", answer["error"]);
                }
                return answer["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if !result["exceptionDetails"].is_null() {
            panic!("{expression}: {}", result["exceptionDetails"]);
        }
        result["result"]["value"].clone()
    }

    fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for("document.readyState === 'complete'", "the page to load");
    }

    /// Waits until `expression` is true in the page, up to 30 s.
    fn wait_for(&mut self, expression: &str, what: &str) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.eval(&format!("!!({expression})")) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = self.text("body");
        panic!("waited 30 s for {what} ({expression}); the page shows:\n{text}");
    }

    /// The text of the first element matching `selector`.
    fn text(&mut self, selector: &str) -> String {
        let selector = serde_json::to_string(selector).unwrap();
        self.eval(&format!(
            "(document.querySelector({selector}) || {{}}).innerText || ''"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// A PNG of the page as it is, written to `path`.
    fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine;
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// The viewport of a phone (390 × 844 CSS pixels).
    fn phone(&mut self) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
        );
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the browser tests leave their screenshots.
fn output_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser")
}

/// The overview's row for `plugin`: its cells' text by column label.
fn row(chrome: &mut Chrome, plugin: &str) -> Value {
    chrome.eval(&format!(
        "(() => {{
            const link = [...document.querySelectorAll('#plugins td.name a')]
                .find(a => a.textContent === {plugin:?});
            if (!link) return null;
            const cells = {{}};
            for (const td of link.closest('tr').querySelectorAll('td'))
                cells[td.dataset.label] = td.innerText.trim();
            return cells;
        }})()"
    ))
}

#[test]
fn the_overview_shows_each_plugins_versions_and_follows_a_run_as_it_happens() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.ok(&["up"]);
    env.add(artifacts::NOTES, "notes.wasm");
    let served = Served::start(&env, &[]);
    let mut chrome = Chrome::start();
    chrome.open(&served.url("/"));
    chrome.wait_for("document.querySelector('#plugins')", "the plugins' table");
    let accounts = row(&mut chrome, "accounts");
    assert_eq!(accounts["Version"], "0.2.0", "{accounts}");
    assert_eq!(accounts["Applied"], "0.2.0", "{accounts}");
    let notes = row(&mut chrome, "notes");
    assert_eq!(notes["Applied"], "none", "{notes}");
    assert_eq!(notes["Pending"], "3", "{notes}");
    chrome.screenshot(&output_dir().join("overview.png"));
    chrome.phone();
    chrome.screenshot(&output_dir().join("overview-phone.png"));
    // Nothing on a phone is wider than the phone.
    let wide = chrome.eval("document.documentElement.scrollWidth");
    assert!(
        wide.as_i64().unwrap() <= 390,
        "the page is {wide} px wide on a phone"
    );

    // Another runner applies notes: the page shows it without being loaded again.
    chrome.eval("window.sameDocument = true");
    env.ok(&["up"]);
    chrome.wait_for(
        "[...document.querySelectorAll('#plugins td.name a')].some(a => a.textContent === 'notes' \
         && a.closest('tr').querySelector('td.applied').textContent === '0.3.0')",
        "notes applied on the page",
    );
    assert_eq!(chrome.eval("window.sameDocument"), json!(true));
    let notes = row(&mut chrome, "notes");
    assert_eq!(notes["Pending"], "0", "{notes}");
    assert!(
        notes["Last run"].as_str().unwrap().contains("succeeded"),
        "{notes}"
    );
}

#[test]
fn a_failed_step_shows_its_error_and_the_plugin_page_its_sql_as_text() {
    let env = scripted();
    // The plugin chooses the error's text and the SQL: both are shown, never run.
    let hostile = "victim__<img src=x onerror=\"window.pwned = 'error'\">";
    env.script(
        "victim",
        "0.2.0",
        &format!(
            "CREATE TABLE victim__ok (x DEFAULT '<script>window.pwned = 1</script>');\n\
             SELECT * FROM \"{}\"",
            hostile.replace('"', "\"\"")
        ),
        None,
    );
    env.fails(&["up", "victim@0.2.0"]);
    let served = Served::start(&env, &[]);
    let mut chrome = Chrome::start();
    chrome.open(&served.url("/"));
    chrome.wait_for("document.querySelector('#plugins')", "the plugins' table");
    let victim = row(&mut chrome, "victim");
    let last = victim["Last run"].as_str().unwrap();
    assert!(last.contains("failed"), "{victim}");
    assert!(last.contains(hostile), "the error as text: {victim}");

    chrome.open(&served.url("/plugins/victim"));
    chrome.wait_for(
        "document.querySelector('.timeline')",
        "the plugin's history",
    );
    chrome.eval("document.querySelectorAll('details.sql').forEach(d => d.open = true)");
    let history = chrome
        .eval("document.querySelector('.timeline').textContent")
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        history.contains("'<script>window.pwned = 1</script>'"),
        "the SQL as text: {history}"
    );
    assert!(
        history.contains("CREATE TABLE victim__ok (x DEFAULT"),
        "{history}"
    );
    assert_eq!(chrome.eval("window.pwned"), Value::Null, "nothing ran");
    assert_eq!(
        chrome.eval("document.querySelectorAll('main script, main img').length"),
        json!(0)
    );
}

#[test]
fn a_hostile_description_is_shown_as_text_and_never_runs() {
    let env = Env::new();
    let description =
        "<script>window.pwned = 'script'</script><img src=x onerror=\"window.pwned = 'img'\">";
    let step = "<b onmouseover=\"window.pwned = 'step'\">bold</b>";
    let mut decl = Decl::described("accounts", "0.1.0", description, step, 1);
    decl.migration("0.1.0", (1, "CREATE TABLE accounts__t (x)"), None);
    let code = without_section(&std::fs::read(artifacts::ACCOUNTS).unwrap(), SECTION);
    env.add_bytes(&with_section(&code, SECTION, &decl.bytes), "accounts.wasm");
    env.ok(&["up"]);
    let served = Served::start(&env, &[]);
    let mut chrome = Chrome::start();
    chrome.open(&served.url("/plugins/accounts"));
    chrome.wait_for(
        "document.querySelector('#plugin-name')",
        "the plugin's page",
    );
    let main = chrome.text("main");
    assert!(main.contains(description), "{main}");
    assert!(main.contains(step), "{main}");
    chrome.eval(
        "document.querySelectorAll('main *').forEach(e => e.dispatchEvent(new MouseEvent('mouseover')))",
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(chrome.eval("window.pwned"), Value::Null, "nothing ran");
    assert_eq!(
        chrome.eval("document.querySelectorAll('main script, main img, main b').length"),
        json!(0)
    );
}

#[test]
fn the_plan_button_shows_a_dry_run_and_changes_nothing_with_the_token_from_the_address() {
    let env = scripted();
    env.script("victim", "0.2.0", "CREATE TABLE victim__planned (x)", None);
    let before = env.dump();
    let served = Served::start(&env, &["--token", "browser-test-token-0123456789"]);
    let mut chrome = Chrome::start();
    // Without the token the page asks for it.
    chrome.open(&served.url("/plan"));
    chrome.wait_for("document.querySelector('form.token')", "the token form");
    // With it in the address's fragment, the page keeps it and drops it from the address.
    chrome.open(&served.url("/plan#token=browser-test-token-0123456789"));
    chrome.wait_for("document.querySelector('#dry-run')", "the dry-run button");
    assert_eq!(chrome.eval("location.hash"), json!(""));
    assert!(
        chrome.text(".pending-steps").contains("victim"),
        "pending steps listed"
    );
    chrome.eval("document.querySelector('#dry-run').click()");
    chrome.wait_for(
        "document.querySelector('#run-report')",
        "the dry run's report",
    );
    let report = chrome.text("#run-report");
    assert!(report.contains("Dry run"), "{report}");
    assert!(report.contains("would succeed"), "{report}");
    assert!(report.contains("victim"), "{report}");
    // The page follows the ledger again once it has the token.
    chrome.wait_for(
        "!document.getElementById('live').classList.contains('off')",
        "the page to follow runs",
    );
    chrome.screenshot(&output_dir().join("plan.png"));
    assert_eq!(env.dump(), before, "the dry run changed nothing");
    assert!(!env.tables().contains(&"victim__planned".to_string()));
}

#[test]
fn the_plugin_page_shows_steps_objects_access_and_dependencies() {
    let env = migrated();
    let served = Served::start(&env, &[]);
    let mut chrome = Chrome::start();
    chrome.open(&served.url("/plugins/notes"));
    chrome.wait_for(
        "document.querySelector('#plugin-name')",
        "the plugin's page",
    );
    let main = chrome.text("main");
    for expected in [
        "Notes attached to accounts",
        "backfill slugs and word counts",
        "table notes__note",
        "notes__*",
        "accounts ^0.2",
    ] {
        assert!(main.contains(expected), "{expected}: {main}");
    }
    chrome.eval("document.querySelectorAll('details.sql').forEach(d => d.open = true)");
    assert!(
        chrome
            .text(".timeline")
            .contains("CREATE TABLE notes__note")
    );
    chrome.screenshot(&output_dir().join("plugin.png"));
}
