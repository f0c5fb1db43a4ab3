//! Structured logging: human-readable by default, JSON lines with `--log-format json`; recent
//! events also go to the in-memory [`crate::logbook`] for `/logs`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
pub fn init(format: &str, level: &str) {
    // sqlx reports harmless server NOTICEs (e.g. "relation already exists") at info, and each
    // broken pooled connection it throws away while the database restarts at info or warn:
    // the supervisor reports the outage once instead.
    let level = if level.contains("sqlx") {
        level.to_string()
    } else {
        format!("{level},sqlx::postgres::notice=warn,sqlx_core::pool=error")
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(crate::logbook::Capture);
    // A second init (tests start several apps) keeps the first subscriber.
    let _ = if format == "json" {
        registry.with(fmt.json().flatten_event(true)).try_init()
    } else {
        registry.with(fmt).try_init()
    };
}

/// Runs CPU-heavy work off the async threads, inside the caller's span.
pub fn spawn_blocking_in_span<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
