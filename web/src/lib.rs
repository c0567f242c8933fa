//! wasmig's web page: the state of every plugin's migrations, for operators.
//!
//! [`router`] gives an [`axum::Router`] over a [`wasmig::Host`]: an overview of every plugin,
//! a page per plugin (its steps, history with the SQL each step ran, the objects it owns, what
//! it may read, its dependencies and dependents), the plan with a dry-run button, and a JSON
//! API with the data of the command line's `--json` (`/api/status`, `/api/plugins/NAME`,
//! `/api/history`, `/api/plan`). `wasmig serve` serves it; a server that embeds wasmig can
//! mount it under its own routes.
//!
//! Everything a plugin provides (names, descriptions, errors, its SQL) is hostile input:
//! pages are rendered on the server from templates that escape every value, and the pages'
//! policy allows no inline script. With a token ([`Options::token`]), every request for data
//! must carry it in the `x-wasmig-token` header (compared in constant time); a header, not a
//! cookie, so another site cannot make a browser send it. Without one, requests must name a
//! loopback host (a page of another site that resolves its own name to 127.0.0.1 is
//! refused). Requests another site's page makes are refused by what the browser says of them
//! (`Sec-Fetch-Site`, `Origin`), and every `POST` needs the `x-wasmig-request` header, which
//! no page of another site can send without a CORS permission this server never gives.
//! Applying from the page is off unless [`Options::allow_apply`], which needs a token. The
//! page reads the database without writing to it; on SQLite a dry run runs on a copy of the
//! database ([`wasmig::Host::snapshot`]), one at a time.

mod views;

/// The axum this router is made with, for a server that mounts it.
pub use axum;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use wasmig::{Host, UpOptions};

/// The header that carries the access token.
pub const TOKEN_HEADER: &str = "x-wasmig-token";

/// The header every `POST` must carry (any value): a page of another site cannot send it.
pub const REQUEST_HEADER: &str = "x-wasmig-request";

/// How the page is served.
#[derive(Debug, Clone)]
pub struct Options {
    /// The token every request for data must carry (`x-wasmig-token`); `None`: no token,
    /// and requests must name a loopback host.
    pub token: Option<String>,
    /// Whether the page may apply pending steps (`POST /api/apply`); needs a token.
    pub allow_apply: bool,
    /// How long one request may take before it is answered with an error.
    pub request_timeout: Duration,
    /// How many requests may read the database at once; others wait their turn.
    pub max_concurrent: usize,
    /// How many connections are served at once; more are closed at once.
    pub max_connections: usize,
    /// How many of those one client address may hold.
    pub max_connections_per_client: usize,
    /// How long one connection is served at most (the page opens another).
    pub connection_lifetime: Duration,
    /// How long a client may take to send a request's headers (also how long an idle
    /// connection is kept).
    pub header_timeout: Duration,
    /// How long `/api/head` waits for the ledger to change before it answers anyway.
    pub long_poll: Duration,
    /// Where the router is mounted (`/migrations` for `Router::nest("/migrations", …)`;
    /// empty at the root): the page's links and requests start with it.
    pub base_path: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token: None,
            allow_apply: false,
            request_timeout: Duration::from_secs(120),
            max_concurrent: 4,
            max_connections: 256,
            max_connections_per_client: 32,
            connection_lifetime: Duration::from_secs(600),
            header_timeout: Duration::from_secs(10),
            long_poll: Duration::from_secs(20),
            base_path: String::new(),
        }
    }
}

/// What can go wrong answering a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// wasmig's own error (the database, a plugin file).
    #[error(transparent)]
    Wasmig(#[from] wasmig::Error),
    /// No plugin of that name in the directory or the database.
    #[error("no plugin named {0}")]
    NoPlugin(String),
    /// The request took longer than [`Options::request_timeout`].
    #[error("the request took longer than {0:?}")]
    Timeout(Duration),
    /// Applying from the page is not allowed.
    #[error("applying from the page is off (start the server with --allow-apply)")]
    ApplyOff,
    /// A dry run or a run from the page is going on already.
    #[error("a dry run or a run from this page is going on already; try again when it ends")]
    Busy,
    /// No scratch directory for a dry run's copy of the database.
    #[error("cannot make a scratch directory for the dry run: {0}")]
    Scratch(std::io::Error),
    /// A template failed to render (a bug of this crate's).
    #[error("cannot render the page: {0}")]
    Render(#[from] minijinja::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::NoPlugin(_) => StatusCode::NOT_FOUND,
            // Worth trying again later: the request's time ran out, or a runner holds the
            // database.
            Error::Timeout(_) | Error::Wasmig(wasmig::Error::Locked { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::ApplyOff => StatusCode::FORBIDDEN,
            Error::Busy => StatusCode::TOO_MANY_REQUESTS,
            Error::Wasmig(_) | Error::Render(_) | Error::Scratch(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (
            status,
            axum::Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

struct App {
    host: Host,
    options: Options,
    /// SHA-256 of the token: compared in constant time on a fixed length.
    token_digest: Option<[u8; 32]>,
    templates: minijinja::Environment<'static>,
    /// Host commands running, at most `max_concurrent`; a permit is held until the command
    /// ends, even past the request's timeout.
    permits: Arc<tokio::sync::Semaphore>,
    /// One dry run or run from the page at a time: the permit goes with the run to its end,
    /// even past its request's timeout.
    runs: Arc<tokio::sync::Semaphore>,
    /// The ledger's head as last read, shared by every long poll.
    head: tokio::sync::Mutex<Option<(tokio::time::Instant, i64)>>,
    /// Long polls waiting; more are answered at once.
    polls: tokio::sync::Semaphore,
}

impl App {
    /// Runs one of the host's commands on a blocking thread (the host waits for the
    /// database synchronously), one of at most `max_concurrent` at a time, bounded by the
    /// request timeout.
    async fn run<T, F, Fut>(self: &Arc<Self>, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Host) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>>,
    {
        let limit = self.options.request_timeout;
        let host = self.host.clone();
        let permits = self.permits.clone();
        let task = async move {
            let permit = permits.acquire_owned().await.expect("never closed");
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                handle.block_on(work(host))
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        };
        tokio::time::timeout(limit, task)
            .await
            .map_err(|_| Error::Timeout(limit))?
    }

    /// The ledger's newest row id, read at most about twice a second however many pages
    /// follow it.
    async fn head(self: &Arc<Self>) -> Result<i64, Error> {
        let mut cached = self.head.lock().await;
        if let Some((at, head)) = *cached
            && at.elapsed() < Duration::from_millis(400)
        {
            return Ok(head);
        }
        let head = self
            .run(|host| async move { Ok(host.ledger_head().await?) })
            .await?;
        *cached = Some((tokio::time::Instant::now(), head));
        Ok(head)
    }

    fn render(&self, name: &str, context: impl serde::Serialize) -> Result<Response, Error> {
        let html = self.templates.get_template(name)?.render(context)?;
        Ok(Html(html).into_response())
    }
}

fn templates(base_path: &str) -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.add_global("base", base_path.trim_end_matches('/').to_string());
    // A path segment: everything but letters, digits, `-` and `_` percent-encoded (`/` and
    // `.` too, which `urlencode` keeps).
    env.add_filter("segment", |value: String| -> String {
        value
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect()
    });
    // Every template is `.html`: minijinja escapes every value for HTML unless marked safe
    // (nothing here is).
    for (name, source) in [
        ("shell.html", include_str!("../templates/shell.html")),
        ("macros.html", include_str!("../templates/macros.html")),
        ("overview.html", include_str!("../templates/overview.html")),
        ("plugin.html", include_str!("../templates/plugin.html")),
        ("history.html", include_str!("../templates/history.html")),
        ("plan.html", include_str!("../templates/plan.html")),
        ("report.html", include_str!("../templates/report.html")),
    ] {
        env.add_template(name, source).expect("a valid template");
    }
    env
}

/// The page and its API over `host`.
pub fn router(host: Host, options: Options) -> Router {
    use sha2::Digest;
    let app = Arc::new(App {
        // The page only reads: it leaves recording abandoned steps to runners.
        host: host.observer(),
        token_digest: options
            .token
            .as_ref()
            .map(|t| sha2::Sha256::digest(t.as_bytes()).into()),
        permits: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent.max(1))),
        runs: Arc::new(tokio::sync::Semaphore::new(1)),
        head: tokio::sync::Mutex::new(None),
        polls: tokio::sync::Semaphore::new(64),
        templates: templates(&options.base_path),
        options,
    });
    // Data: behind the token (or the loopback check).
    let data = Router::new()
        .route("/fragments/overview", get(overview_fragment))
        .route("/fragments/plugins/{name}", get(plugin_fragment))
        .route("/fragments/history", get(history_fragment))
        .route("/fragments/plan", get(plan_fragment))
        .route("/fragments/dry-run", post(dry_run_fragment))
        .route("/fragments/apply", post(apply_fragment))
        .route("/api/status", get(api_status))
        .route("/api/plugins/{name}", get(api_plugin))
        .route("/api/history", get(api_history))
        .route("/api/plan", get(api_plan))
        .route("/api/head", get(api_head))
        .route("/api/apply", post(api_apply))
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize))
        .route_layer(middleware::from_fn(same_origin));
    // The page's shell and assets: no data, and what asks for the token.
    Router::new()
        .route("/", get(shell))
        .route("/plugins/{name}", get(shell))
        .route("/history", get(shell))
        .route("/plan", get(shell))
        .route("/assets/app.js", get(script))
        .route("/assets/style.css", get(style))
        .merge(data)
        .layer(middleware::from_fn_with_state(app.clone(), loopback_only))
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

/// Connections held per client address.
type Clients = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// Serves `router` on `listener` until the process ends, each connection in a task of its
/// own: at most [`Options::max_connections`] at once and
/// [`Options::max_connections_per_client`] from one address (more are closed at once), each
/// given [`Options::header_timeout`] to send a request's headers and served for at most
/// [`Options::connection_lifetime`], so a client that never finishes a request, or keeps
/// connections open, holds nothing for long.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    options: &Options,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let connections = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let per_client: Clients = Arc::default();
    let header_timeout = options.header_timeout;
    let lifetime = options.connection_lifetime;
    let most = options.max_connections_per_client.max(1);
    /// One connection of a client address, counted until it ends.
    struct Held(Clients, std::net::IpAddr);
    impl Drop for Held {
        fn drop(&mut self) {
            let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = held.get_mut(&self.1) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&self.1);
                }
            }
        }
    }
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: the next accept may work.
            Err(e) => {
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let held = {
            let mut held = per_client.lock().unwrap_or_else(|e| e.into_inner());
            let n = held.entry(peer.ip()).or_default();
            if *n >= most {
                drop(stream);
                continue;
            }
            *n += 1;
            Held(per_client.clone(), peer.ip())
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _held = held;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(lifetime, connection).await {
                Ok(Err(e)) => tracing::debug!("connection ended: {e}"),
                Ok(Ok(())) => {}
                Err(_) => tracing::debug!("connection closed after {lifetime:?}"),
            }
        });
    }
}

/// Whether `host` (a `Host` header's value) names this machine's loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:7777
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Without a token, only requests that name a loopback host: a site whose name resolves to
/// 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
async fn loopback_only(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if app.options.token.is_none() {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        // A reverse proxy on this machine sends a loopback Host too; what it forwards is
        // not this machine's.
        let forwarded = ["forwarded", "x-forwarded-for", "x-forwarded-host", "via"]
            .iter()
            .any(|h| request.headers().contains_key(*h));
        if forwarded {
            return (
                StatusCode::FORBIDDEN,
                "this server answers requests a proxy forwards only with a token",
            )
                .into_response();
        }
        if !is_loopback_host(host) {
            return (
                StatusCode::FORBIDDEN,
                "this server answers only requests to localhost (give it a token to listen \
                 elsewhere)",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Requests another site's page makes, refused: the browser names them cross-site
/// (`Sec-Fetch-Site`) or gives another origin than the host asked (`Origin`); and a `POST`
/// without [`REQUEST_HEADER`], which such a page cannot add without a CORS permission.
async fn same_origin(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let refuse = |why: &str| {
        (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "error": why })),
        )
            .into_response()
    };
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return refuse("requests from another site's page are refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).map(|h| h.as_bytes());
        let origin_host = origin
            .as_bytes()
            .splitn(2, |&b| b == b':')
            .nth(1)
            .and_then(|rest| rest.strip_prefix(b"//"));
        if origin_host.is_none() || origin_host != host {
            return refuse("requests from another origin are refused");
        }
    }
    // What runs plugin code: every POST, and the plan (a dry run).
    let runs =
        request.method() == axum::http::Method::POST || request.uri().path().ends_with("/api/plan");
    if runs && !headers.contains_key(REQUEST_HEADER) {
        return refuse("a request that runs steps needs the x-wasmig-request header");
    }
    next.run(request).await
}

/// The token, in constant time, when there is one.
async fn authorize(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    use sha2::Digest;
    if let Some(digest) = &app.token_digest {
        let given = request
            .headers()
            .get(TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let given: [u8; 32] = sha2::Sha256::digest(given).into();
        let same: bool = subtle::ConstantTimeEq::ct_eq(&given[..], &digest[..]).into();
        if !same {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({
                    "error": format!("this server needs its token in the {TOKEN_HEADER} header")
                })),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// What every answer carries: no inline script or style, no framing, no sniffing, no
/// caching of data.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn shell(State(app): State<Arc<App>>) -> Result<Response, Error> {
    app.render("shell.html", ())
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/style.css"),
    )
}

async fn overview_fragment(State(app): State<Arc<App>>) -> Result<Response, Error> {
    let overview = app
        .run(|host| async move { views::overview(&host).await })
        .await?;
    app.render(
        "overview.html",
        minijinja::context! { o => overview, allow_apply => app.options.allow_apply },
    )
}

async fn plugin_fragment(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, Error> {
    let page = app
        .run(move |host| async move { views::plugin(&host, &name).await })
        .await?;
    app.render("plugin.html", minijinja::context! { p => page })
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    plugin: Option<String>,
    /// At most this many of the newest rows (up to 10,000).
    limit: Option<usize>,
    /// Only rows older than this id: the page before.
    before: Option<i64>,
}

impl HistoryQuery {
    fn query(&self, default: usize) -> wasmig::LedgerQuery {
        wasmig::LedgerQuery {
            plugin: self.plugin.clone(),
            before: self.before,
            newest: Some(self.limit.unwrap_or(default).clamp(1, 10_000)),
            ..Default::default()
        }
    }
}

async fn history_fragment(
    State(app): State<Arc<App>>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Error> {
    let entries = app
        .run(move |host| async move {
            let rows = host.ledger(&q.query(views::HISTORY_PAGE)).await?;
            Ok(views::entries(rows, views::HISTORY_PAGE))
        })
        .await?;
    app.render(
        "history.html",
        minijinja::context! { entries => entries, page => views::HISTORY_PAGE },
    )
}

async fn plan_fragment(State(app): State<Arc<App>>) -> Result<Response, Error> {
    let plan = app
        .run(|host| async move { views::plan(&host).await })
        .await?;
    app.render(
        "plan.html",
        minijinja::context! { plan => plan, allow_apply => app.options.allow_apply },
    )
}

/// A dry run of every pending step. On SQLite it runs on a copy of the database, so the
/// page never takes (or waits for) the database's write lock; on PostgreSQL it is what
/// `wasmig plan` does there.
async fn dry_run(app: &Arc<App>) -> Result<wasmig::RunReport, Error> {
    let one = app
        .runs
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::Busy)?;
    app.run(|host| async move {
        let _one = one;
        let scratch = tempfile::tempdir().map_err(Error::Scratch)?;
        let copy = host.snapshot(&scratch.path().join("plan.db"))?;
        let options = UpOptions {
            dry_run: true,
            ..Default::default()
        };
        Ok(copy.as_ref().unwrap_or(&host).up(options).await?)
    })
    .await
}

async fn dry_run_fragment(State(app): State<Arc<App>>) -> Result<Response, Error> {
    let report = match dry_run(&app).await {
        Ok(report) => views::report(report),
        Err(Error::Busy) => return Err(Error::Busy),
        Err(e) => views::report_error(e.to_string()),
    };
    app.render("report.html", minijinja::context! { r => report })
}

async fn apply(app: &Arc<App>) -> Result<wasmig::RunReport, Error> {
    if !app.options.allow_apply || app.options.token.is_none() {
        return Err(Error::ApplyOff);
    }
    let one = app
        .runs
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::Busy)?;
    app.run(|host| async move {
        let _one = one;
        Ok(host.up(UpOptions::default()).await?)
    })
    .await
}

async fn apply_fragment(State(app): State<Arc<App>>) -> Result<Response, Error> {
    let report = match apply(&app).await {
        Ok(report) => views::report(report),
        Err(e @ (Error::ApplyOff | Error::Busy)) => return Err(e),
        Err(e) => views::report_error(e.to_string()),
    };
    app.render("report.html", minijinja::context! { r => report })
}

fn json(value: impl serde::Serialize) -> Response {
    axum::Json(value).into_response()
}

async fn api_status(State(app): State<Arc<App>>) -> Result<Response, Error> {
    let rows = app
        .run(|host| async move { Ok(host.status().await?) })
        .await?;
    Ok(json(rows))
}

async fn api_plugin(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, Error> {
    let page = app
        .run(move |host| async move { views::plugin(&host, &name).await })
        .await?;
    Ok(json(page))
}

async fn api_history(
    State(app): State<Arc<App>>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Error> {
    let rows = app
        .run(move |host| async move { Ok(host.ledger(&q.query(views::HISTORY_PAGE)).await?) })
        .await?;
    Ok(json(rows))
}

async fn api_plan(State(app): State<Arc<App>>) -> Result<Response, Error> {
    Ok(json(dry_run(&app).await?))
}

async fn api_apply(State(app): State<Arc<App>>) -> Result<Response, Error> {
    Ok(json(apply(&app).await?))
}

#[derive(serde::Deserialize)]
struct HeadQuery {
    since: Option<i64>,
}

/// The ledger's newest row id; with `since`, answered once it differs (a step ended) or
/// after [`Options::long_poll`]: the page follows a run without asking every second. Past
/// 64 waiting polls, answered at once.
async fn api_head(
    State(app): State<Arc<App>>,
    Query(q): Query<HeadQuery>,
) -> Result<Response, Error> {
    let started = tokio::time::Instant::now();
    let waiting = app.polls.try_acquire();
    loop {
        let head = app.head().await?;
        match q.since {
            Some(since)
                if since == head
                    && waiting.is_ok()
                    && started.elapsed() < app.options.long_poll =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => return Ok(json(serde_json::json!({ "head": head }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn a_name_in_a_link_stays_one_path_segment() {
        let env = super::templates("/base");
        // Named `.html`, as the page's templates are: escaped for HTML too.
        let href = env
            .template_from_named_str(
                "link.html",
                r#"<a href="{{ base }}/plugins/{{ name|segment }}">"#,
            )
            .and_then(|t| t.render(minijinja::context! { name => "../api/plan?x=\"1\"" }))
            .unwrap();
        assert_eq!(
            href,
            r#"<a href="&#x2f;base/plugins/%2E%2E%2Fapi%2Fplan%3Fx%3D%221%22">"#
        );
    }

    #[test]
    fn loopback_hosts_are_told_from_others() {
        for host in [
            "localhost",
            "localhost:7777",
            "127.0.0.1:7777",
            "[::1]:7777",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7777",
            "10.0.0.1:7777",
            "",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
