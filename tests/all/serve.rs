//! `wasmig serve`: the JSON API against a real server (the real binary on a free port) over a
//! database migrated by the real binary; the token, the loopback rule, and a client that
//! never finishes its request.

use crate::scripted::scripted;
use crate::support::{Env, artifacts};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

/// `wasmig serve` running over an environment's plugins and database, stopped when dropped.
pub(crate) struct Served {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) address: String,
    /// The token it printed, if it has one.
    pub(crate) token: Option<String>,
}

impl Served {
    pub(crate) fn start(env: &Env, args: &[&str]) -> Served {
        Self::start_on(env, "127.0.0.1:0", args)
    }

    /// [`Served::start`] listening on `listen`.
    pub(crate) fn start_on(env: &Env, listen: &str, args: &[&str]) -> Served {
        let mut child = env
            .command()
            .args(["serve", "--listen", listen])
            .args(args)
            .env_remove("WASMIG_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("wasmig serves http://")
            .unwrap_or_else(|| panic!("the server's first line: {line:?}"));
        let url = url.split(' ').next().unwrap_or_default();
        let (address, printed) = match url.split_once("/#token=") {
            Some((address, token)) => (address.to_string(), Some(token.to_string())),
            None => (url.trim_end_matches('/').to_string(), None),
        };
        // A token given on the command line is not printed.
        let given = args
            .iter()
            .position(|a| *a == "--token")
            .map(|i| args[i + 1].to_string());
        assert!(
            printed.is_none() || given.is_none(),
            "a given token was printed: {line}"
        );
        let token = printed.or(given);
        Served {
            child,
            address,
            token,
        }
    }

    /// One request; the headers are `name: value` lines. The server's own token is sent
    /// unless `headers` has one.
    pub(crate) fn request(&self, method: &str, path: &str, headers: &[&str]) -> Response {
        let mut all: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        if !headers.iter().any(|h| h.starts_with("x-wasmig-token"))
            && let Some(t) = &self.token
        {
            all.push(format!("x-wasmig-token: {t}"));
        }
        if !headers
            .iter()
            .any(|h| h.to_lowercase().starts_with("host:"))
        {
            all.push(format!("Host: {}", self.address));
        }
        // What the page sends with every request.
        all.push("x-wasmig-request: 1".to_string());
        http(&self.address, method, path, &all)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub(crate) fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[])
    }

    /// `GET path` as JSON, which must be answered with 200.
    pub(crate) fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
    }

    /// The server's peak resident memory so far (`VmHWM`), in KiB.
    pub(crate) fn peak_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 request on its own connection.
pub(crate) fn http(address: &str, method: &str, path: &str, headers: &[String]) -> Response {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if method == "POST" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // The head, then as many bytes as it announces (a server may keep the connection).
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut lines = head.lines();
    let status = lines
        .next()
        .expect("an HTTP answer")
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let named = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut raw = Vec::new();
    match named("content-length").and_then(|l| l.parse::<usize>().ok()) {
        Some(length) => {
            raw.resize(length, 0);
            reader.read_exact(&mut raw).unwrap();
        }
        None => {
            reader.read_to_end(&mut raw).unwrap();
        }
    }
    let body = String::from_utf8_lossy(&raw).into_owned();
    let body = if named("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        unchunk(&body)
    } else {
        body
    };
    Response {
        status,
        headers,
        body,
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// `accounts` and `notes` applied by the real binary.
pub(crate) fn migrated() -> Env {
    migrated_in(Env::new())
}

fn migrated_in(env: Env) -> Env {
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    env.ok(&["up"]);
    env
}

#[test]
fn the_api_gives_what_the_command_line_gives() {
    api_gives_what_the_command_line_gives(migrated());
}

#[test]
fn the_api_gives_what_the_command_line_gives_on_postgres() {
    api_gives_what_the_command_line_gives(migrated_in(Env::postgres()));
}

fn api_gives_what_the_command_line_gives(env: Env) {
    let served = Served::start(&env, &[]);
    assert_eq!(served.token, None, "no token on loopback by default");
    assert_eq!(served.json("/api/status"), env.json(&["status"]));
    assert_eq!(served.json("/api/history"), env.json(&["history"]));
    assert_eq!(
        served.json("/api/history?plugin=notes"),
        env.json(&["history", "notes"])
    );
    assert_eq!(served.json("/api/plan"), env.json(&["plan"]));

    let notes = served.json("/api/plugins/notes");
    assert_eq!(notes["name"], "notes");
    assert_eq!(notes["status"]["applied_version"], "0.3.0");
    let states: Vec<&str> = notes["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["applied", "applied", "applied"], "{notes:#}");
    assert_eq!(
        notes["depends_on"],
        serde_json::json!([["accounts", "^0.2"]])
    );
    let accounts = served.json("/api/plugins/accounts");
    assert_eq!(accounts["dependents"], serde_json::json!(["notes"]));
    let objects: Vec<&str> = notes["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert!(objects.contains(&"table notes__note"), "{objects:?}");
    // The audit trail: the SQL each step ran.
    let statements = notes["history"][2]["statements"].to_string();
    assert!(statements.contains("CREATE TABLE notes__note"), "{notes:#}");

    // Who applied each step, and when.
    let by = notes["steps"][0]["last"]["applied_by"].as_str().unwrap();
    assert!(by.contains('@'), "{notes:#}");
    let fragment = served.get("/fragments/plugins/notes").body;
    assert!(
        fragment.contains(&format!("<span class=\"who\">{by}</span>")),
        "{fragment}"
    );

    // The newest rows of a long history, oldest first, and the page before them.
    let newest = served.json("/api/history?limit=2");
    let ids: Vec<i64> = newest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 5]);
    let before = served.json("/api/history?limit=2&before=4");
    assert_eq!(before[0]["id"], 2);
    assert_eq!(before[1]["id"], 3);

    let missing = served.get("/api/plugins/nobody");
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("no plugin named nobody"),
        "{}",
        missing.body
    );
    let head = served.json("/api/head");
    assert_eq!(head["head"], 5, "five steps in the ledger");
}

#[test]
fn the_overview_and_the_plan_name_drift_and_refused_reads() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    env.ok(&["up"]);
    env.add(artifacts::ACCOUNTS_DRIFTED, "accounts.wasm");
    env.add(artifacts::REPORTING, "reporting.wasm");
    let served = Served::start(&env, &[]);
    let overview = served.get("/fragments/overview").body;
    assert!(
        overview.contains("plugin accounts migration 0.1.0 changed since it was applied"),
        "{overview}"
    );
    assert!(
        overview.contains("asks to read accounts (not granted in the policy)"),
        "{overview}"
    );
    let plan = served.get("/fragments/plan").body;
    assert!(plan.contains("reporting: asks to read accounts"), "{plan}");
    assert!(plan.contains("<code>0.1.0</code> count users"), "{plan}");
    let accounts = served.json("/api/plugins/accounts");
    let problems = accounts["problems"].to_string();
    assert!(
        problems.contains("changed since it was applied"),
        "{accounts:#}"
    );
}

#[test]
fn a_plan_from_the_page_is_a_dry_run_that_changes_nothing() {
    let env = scripted();
    env.script("victim", "0.2.0", "CREATE TABLE victim__planned (x)", None);
    let before = env.dump();
    let served = Served::start(&env, &["--lock-timeout", "1s"]);
    // The application holds the write lock: the page's dry run runs on a copy, and
    // neither takes nor waits for it.
    let app = env.conn();
    app.execute_batch("BEGIN IMMEDIATE").unwrap();
    let plan = served.json("/api/plan");
    app.execute_batch("ROLLBACK").unwrap();
    assert_eq!(plan["dry_run"], true);
    let step = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["plugin"] == "victim" && s["version"] == "0.2.0")
        .unwrap_or_else(|| panic!("{plan:#}"));
    assert_eq!(step["outcome"], "succeeded", "{plan:#}");
    assert!(
        step["statements"]
            .to_string()
            .contains("CREATE TABLE victim__planned"),
        "{plan:#}"
    );
    let fragment = served.request("POST", "/fragments/dry-run", &[]);
    assert_eq!(fragment.status, 200);
    assert!(fragment.body.contains("would succeed"), "{}", fragment.body);
    assert_eq!(env.dump(), before, "the dry run changed nothing");
    // Applying is off without --allow-apply.
    let apply = served.request("POST", "/api/apply", &[]);
    assert_eq!(apply.status, 403, "{}", apply.body);
    assert_eq!(env.dump(), before);
}

#[test]
fn applying_from_the_page_needs_allow_apply_and_the_token() {
    let env = scripted();
    env.script("victim", "0.2.0", "CREATE TABLE victim__applied (x)", None);
    let served = Served::start(&env, &["--allow-apply"]);
    let token = served.token.clone().expect("--allow-apply makes a token");
    assert!(token.len() >= 32, "{token}");
    let refused = served.request("POST", "/api/apply", &["x-wasmig-token: wrong"]);
    assert_eq!(refused.status, 401);
    assert!(!env.tables().contains(&"victim__applied".to_string()));
    let applied = served.request("POST", "/api/apply", &[]);
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert!(env.tables().contains(&"victim__applied".to_string()));
    let ledger = env.ledger();
    assert!(
        ledger.contains(&(
            "victim".into(),
            "0.2.0".into(),
            "up".into(),
            "succeeded".into(),
            None
        )),
        "{ledger:?}"
    );
}

#[test]
fn a_token_is_needed_for_data_and_a_foreign_host_is_refused_without_one() {
    let env = migrated();
    // Without a token: a request naming another host (DNS rebinding) is refused.
    let served = Served::start(&env, &[]);
    let foreign = served.request("GET", "/api/status", &["Host: evil.example:7777"]);
    assert_eq!(foreign.status, 403);
    let page = served.request("GET", "/", &["Host: evil.example"]);
    assert_eq!(page.status, 403);
    let local = served.request("GET", "/api/status", &["Host: localhost:7777"]);
    assert_eq!(local.status, 200);
    drop(served);

    let served = Served::start(&env, &["--token", "a-long-enough-token-for-tests"]);
    assert_eq!(
        served.token.as_deref(),
        Some("a-long-enough-token-for-tests")
    );
    for (header, status) in [
        (None, 401),
        (Some("x-wasmig-token: a-long-enough-token-for-test"), 401),
        (Some("x-wasmig-token: a-long-enough-token-for-tests!"), 401),
        (Some("x-wasmig-token: a-long-enough-token-for-tests"), 200),
    ] {
        let headers: Vec<&str> = match header {
            Some(h) => vec![h],
            // No token header at all (the helper adds the right one otherwise).
            None => vec!["x-wasmig-token-absent: 1"],
        };
        let r = if header.is_none() {
            http(
                &served.address,
                "GET",
                "/api/status",
                &[format!("Host: {}", served.address)],
            )
        } else {
            served.request("GET", "/api/status", &headers)
        };
        assert_eq!(r.status, status, "{header:?}: {}", r.body);
    }
    // A cookie is no token.
    let cookie = http(
        &served.address,
        "GET",
        "/api/status",
        &["Cookie: x-wasmig-token=a-long-enough-token-for-tests".to_string()],
    );
    assert_eq!(cookie.status, 401);
    // The page itself carries no data: it loads, and asks for the token.
    let page = http(&served.address, "GET", "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/app.js"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));

    // Off loopback a token is made when none is given; a short one is refused.
    let out = env.run(&["serve", "--token", "short"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16 characters"));
}

#[test]
fn requests_made_by_another_sites_page_are_refused() {
    let env = scripted();
    env.script("victim", "0.2.0", "CREATE TABLE victim__planned (x)", None);
    let served = Served::start(&env, &[]);
    let host = format!("Host: {}", served.address);
    let origin = format!("Origin: http://{}", served.address);
    let post = |headers: &[&str]| {
        let mut all = vec![host.clone()];
        all.extend(headers.iter().map(|h| h.to_string()));
        http(&served.address, "POST", "/fragments/dry-run", &all).status
    };
    // A form another site submits: no custom header, another origin, cross-site.
    assert_eq!(post(&["Origin: http://evil.example"]), 403);
    assert_eq!(post(&["Sec-Fetch-Site: cross-site"]), 403);
    assert_eq!(post(&[]), 403, "a POST without x-wasmig-request");
    assert_eq!(post(&["Origin: null", "x-wasmig-request: 1"]), 403);
    assert_eq!(post(&[&origin, "x-wasmig-request: 1"]), 200);
    assert_eq!(
        post(&["Sec-Fetch-Site: same-origin", "x-wasmig-request: 1"]),
        200
    );
    // An image or a script tag of another site's page, on a GET that runs a dry run.
    let get = |headers: &[&str]| {
        let mut all = vec![host.clone()];
        all.extend(headers.iter().map(|h| h.to_string()));
        http(&served.address, "GET", "/api/plan", &all).status
    };
    assert_eq!(
        get(&["Sec-Fetch-Site: cross-site", "x-wasmig-request: 1"]),
        403
    );
    assert_eq!(
        get(&["Sec-Fetch-Site: same-site", "x-wasmig-request: 1"]),
        403
    );
    // An image of a browser that says nothing of the site: no custom header either.
    assert_eq!(get(&[]), 403);
    assert_eq!(get(&["x-wasmig-request: 1"]), 200, "curl");
    assert_eq!(get(&["Sec-Fetch-Site: none", "x-wasmig-request: 1"]), 200);
    // A link from another site to the page itself opens it (the page holds no data).
    let shell = http(
        &served.address,
        "GET",
        "/",
        &[host.clone(), "Sec-Fetch-Site: cross-site".to_string()],
    );
    assert_eq!(shell.status, 200);
    // A reverse proxy in front of a server without a token is refused.
    let proxied = served.request("GET", "/api/status", &["X-Forwarded-For: 203.0.113.9"]);
    assert_eq!(proxied.status, 403);
    let page = served.get("/api/status");
    assert_eq!(
        page.header("cross-origin-resource-policy"),
        Some("same-origin")
    );
}

#[test]
fn a_page_shows_a_steps_sql_cut_to_a_size_and_one_client_holds_few_connections() {
    let env = scripted();
    let long = "a".repeat(40_000);
    env.script(
        "victim",
        "0.2.0",
        &format!("CREATE TABLE victim__big (x DEFAULT '{long}')"),
        None,
    );
    env.ok(&["up", "victim@0.2.0"]);
    let served = Served::start(&env, &[]);
    let page = served.get("/fragments/plugins/victim").body;
    // The history (the objects list shows the column's default, as the database does).
    let timeline = &page[page.find(r#"class="timeline""#).unwrap()..];
    assert!(timeline.contains("Cut here"), "the SQL is cut");
    assert!(!timeline.contains(&long), "not shown whole");
    assert!(timeline.contains(&"a".repeat(10_000)), "its start is shown");
    // The API has it whole.
    let history = served.json("/api/history?plugin=victim");
    assert!(history.to_string().contains(&long));

    // One address holds at most 32 connections; more are closed at once. Each held one has
    // been answered and kept open, so the server took all 32 before the 33rd comes.
    let held: Vec<BufReader<TcpStream>> = (0..32)
        .map(|_| {
            let mut s = TcpStream::connect(&served.address).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            s.write_all(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut reader = BufReader::new(s);
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            assert!(status.starts_with("HTTP/1.1 "), "{status:?}");
            reader
        })
        .collect();
    let mut extra = TcpStream::connect(&served.address).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let closed = extra.read_to_end(&mut answer);
    assert!(matches!(closed, Ok(0)), "the 33rd connection: {closed:?}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(served.get("/api/status").status, 200);
}

#[test]
fn a_connection_that_never_sends_its_headers_is_closed() {
    let env = migrated();
    let served = Served::start(&env, &[]);
    let mut stalled = TcpStream::connect(&served.address).unwrap();
    stalled
        .write_all(b"GET /api/status HTTP/1.1\r\nHost: local")
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = Vec::new();
    // The server closes it (after its header timeout, 10 s) rather than waiting forever.
    let read = stalled.read_to_end(&mut answer);
    assert!(read.is_ok(), "the server kept the connection: {read:?}");
}

#[test]
fn listening_off_loopback_makes_a_token() {
    let env = migrated();
    let served = Served::start_on(&env, "0.0.0.0:0", &[]);
    let token = served.token.as_deref().expect("a token, printed");
    assert_eq!(token.len(), 48, "{token}");
}

#[test]
fn a_client_that_never_finishes_its_request_does_not_stall_the_server() {
    let env = migrated();
    let served = Served::start(&env, &[]);
    // Half a request, never finished, on several connections.
    let stalled: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(&served.address).unwrap();
            s.write_all(b"GET /api/status HTTP/1.1\r\nHost: local")
                .unwrap();
            s
        })
        .collect();
    // A long poll waiting for the ledger to move, too.
    let head = served.json("/api/head")["head"].as_i64().unwrap();
    let waiting = {
        let address = served.address.clone();
        std::thread::spawn(move || {
            http(
                &address,
                "GET",
                &format!("/api/head?since={head}"),
                &[format!("Host: {address}")],
            )
        })
    };
    for _ in 0..3 {
        assert_eq!(served.json("/api/status").as_array().unwrap().len(), 2);
    }
    drop(stalled);
    // The long poll answers when a run ends a step.
    env.add(artifacts::REPORTING, "reporting.wasm");
    env.policy("[plugins.reporting]\nreads = [\"accounts\"]\n");
    env.run(&["up", "reporting@0.1.0"]);
    let answered = waiting.join().unwrap();
    assert_eq!(answered.status, 200);
    let moved: serde_json::Value = serde_json::from_str(&answered.body).unwrap();
    assert!(moved["head"].as_i64().unwrap() > head, "{moved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_mounts_the_page_under_its_own_path() {
    use wasmig_web::axum;
    let env = migrated();
    let page = wasmig_web::router(
        env.host(),
        wasmig_web::Options {
            base_path: "/migrations".into(),
            ..Default::default()
        },
    );
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the application" }))
        .nest("/migrations", page);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { wasmig_web::serve(listener, app, &Default::default()).await });
    let answers = tokio::task::spawn_blocking(move || {
        let host = format!("Host: {address}");
        let get = |path: &str| http(&address, "GET", path, std::slice::from_ref(&host));
        (
            get("/"),
            get("/migrations"),
            get("/migrations/fragments/overview"),
            get("/migrations/api/status"),
            get("/migrations/assets/app.js"),
        )
    })
    .await
    .unwrap();
    let (root, shell, overview, status, script) = answers;
    // Attribute values as the browser reads them (the templates escape `/` too).
    let (shell, overview) = (
        shell.body.replace("&#x2f;", "/"),
        overview.body.replace("&#x2f;", "/"),
    );
    assert_eq!(root.body, "the application");
    assert!(shell.contains(r#"data-base="/migrations""#), "{shell}");
    assert!(
        shell.contains(r#"src="/migrations/assets/app.js""#),
        "{shell}"
    );
    assert!(
        overview.contains(r#"href="/migrations/plugins/notes""#),
        "{overview}"
    );
    assert_eq!(status.status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&status.body).unwrap(),
        env.json(&["status"])
    );
    assert_eq!(script.status, 200);
}
