//! The application's recent log events, kept in memory for `/logs` (issue #17): an operator
//! without shell access sees why an account fails. A tracing layer copies each event at
//! `info` or above into a bounded ring (the oldest go first), with its level, source, the
//! archive account it concerns (from the event or an enclosing span's `account` field) and its
//! fields. Fields whose names suggest a secret or mail content are never kept, and long
//! values are cut, so the page cannot show what the logs must not carry.
//!
//! The ring is per process, like the subscriber it hangs from (tracing's subscriber is global,
//! so this is too): with `serve --role web` and separate workers, each shows its own events.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// How many events the ring keeps.
pub const CAPACITY: usize = 5_000;
/// The longest value kept of one field (an error chain can be long; a body must not fit).
const MAX_VALUE: usize = 600;
/// Field names never kept: secrets, and anything that could hold mail content.
const HIDDEN: &[&str] = &[
    "password",
    "secret",
    "token",
    "key",
    "cookie",
    "body",
    "raw",
    "content",
    "credential",
];

/// One captured event.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub at: OffsetDateTime,
    pub level: Level,
    /// The module that logged it (`daygle::ingest::scheduler`).
    pub target: String,
    /// The archive account it concerns, when the event or its span names one.
    pub account: Option<String>,
    pub message: String,
    /// The other fields as `name=value`, secrets and content left out.
    pub fields: String,
}

impl LogEvent {
    /// The part of the application it comes from, as the page names it.
    pub fn source(&self) -> &'static str {
        source_of(&self.target)
    }
}

/// What the page groups targets into.
pub fn source_of(target: &str) -> &'static str {
    let module = target.strip_prefix("daygle::").unwrap_or(target);
    match module.split("::").next().unwrap_or("") {
        "ingest" => "sync",
        "scan" => "scan",
        "web" => "web",
        "auth" => "auth",
        "notify" => "alerts",
        "retention" => "retention",
        "verify" | "backup" => "verify",
        "db" => "database",
        "settings" | "config" => "settings",
        _ if target.starts_with("daygle") => "app",
        _ => "libraries",
    }
}

/// The sources the page offers as a filter, in order.
pub const SOURCES: &[&str] = &[
    "sync",
    "scan",
    "web",
    "auth",
    "alerts",
    "retention",
    "verify",
    "database",
    "settings",
    "app",
    "libraries",
];

fn ring() -> &'static Mutex<VecDeque<LogEvent>> {
    static RING: OnceLock<Mutex<VecDeque<LogEvent>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(CAPACITY)))
}

fn push(event: LogEvent) {
    let mut ring = ring().lock().unwrap_or_else(|p| p.into_inner());
    if ring.len() >= CAPACITY {
        ring.pop_front();
    }
    ring.push_back(event);
}

/// What to show.
#[derive(Debug, Default, Clone)]
pub struct LogFilter {
    /// The least severe level shown (None: info and above, all that is kept).
    pub min_level: Option<Level>,
    pub source: Option<String>,
    /// Account name, exactly (any case).
    pub account: Option<String>,
    /// Words the message or fields contain (any case).
    pub text: Option<String>,
    pub limit: usize,
}

/// The kept events that match, newest first.
pub fn recent(filter: &LogFilter) -> Vec<LogEvent> {
    let ring = ring().lock().unwrap_or_else(|p| p.into_inner());
    let text = filter.text.as_deref().map(str::to_lowercase);
    ring.iter()
        .rev()
        .filter(|e| filter.min_level.is_none_or(|min| e.level <= min))
        .filter(|e| filter.source.as_deref().is_none_or(|s| e.source() == s))
        .filter(|e| {
            filter.account.as_deref().is_none_or(|a| {
                e.account
                    .as_deref()
                    .is_some_and(|mine| mine.eq_ignore_ascii_case(a))
            })
        })
        .filter(|e| {
            text.as_deref().is_none_or(|t| {
                e.message.to_lowercase().contains(t) || e.fields.to_lowercase().contains(t)
            })
        })
        .take(filter.limit.max(1))
        .cloned()
        .collect()
}

/// The tracing layer that fills the ring; [`crate::telemetry::init`] installs it.
pub struct Capture;

/// An enclosing span's `account` field, kept in its extensions.
struct SpanAccount(String);

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(account), Some(span)) = (fields.account, ctx.span(id)) {
            span.extensions_mut().insert(SpanAccount(account));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > Level::INFO {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let account = fields.account.or_else(|| {
            ctx.event_scope(event)?
                .find_map(|span| span.extensions().get::<SpanAccount>().map(|a| a.0.clone()))
        });
        push(LogEvent {
            at: OffsetDateTime::now_utc(),
            level: *meta.level(),
            target: meta.target().to_string(),
            account,
            message: fields.message,
            fields: fields.rest,
        });
    }
}

/// Collects an event's or span's fields, leaving out the hidden ones.
#[derive(Default)]
struct Fields {
    message: String,
    account: Option<String>,
    rest: String,
}

impl Fields {
    fn keep(&mut self, field: &Field, value: String) {
        let name = field.name();
        let value = cut(value);
        if name == "message" {
            self.message = value;
            return;
        }
        if name == "account" {
            self.account = Some(value.clone());
        }
        if !self.rest.is_empty() {
            self.rest.push(' ');
        }
        let lower = name.to_ascii_lowercase();
        if HIDDEN.iter().any(|h| lower.contains(h)) {
            let _ = write!(self.rest, "{name}=[hidden]");
        } else {
            let _ = write!(self.rest, "{name}={value}");
        }
    }
}

fn cut(mut value: String) -> String {
    if value.len() > MAX_VALUE {
        let mut end = MAX_VALUE;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
        value.push('…');
    }
    value
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.keep(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_keep_their_account_from_the_span_and_never_a_secret() {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("sync", account = "unit-test-account");
            let _entered = span.enter();
            tracing::warn!(
                password = "hunter2",
                folder = "INBOX",
                "unit-test login refused"
            );
            tracing::debug!("unit-test too chatty to keep");
        });
        let found = recent(&LogFilter {
            account: Some("UNIT-TEST-ACCOUNT".into()),
            limit: 10,
            ..LogFilter::default()
        });
        assert_eq!(found.len(), 1, "{found:?}");
        let e = &found[0];
        assert_eq!(e.message, "unit-test login refused");
        assert_eq!(e.level, Level::WARN);
        assert!(e.fields.contains("folder=INBOX"), "{}", e.fields);
        assert!(e.fields.contains("password=[hidden]"), "{}", e.fields);
        assert!(!e.fields.contains("hunter2"), "{}", e.fields);
        let errors_only = recent(&LogFilter {
            min_level: Some(Level::ERROR),
            text: Some("unit-test".into()),
            limit: 10,
            ..LogFilter::default()
        });
        assert!(errors_only.is_empty(), "{errors_only:?}");
    }

    #[test]
    fn sources_group_the_modules() {
        assert_eq!(source_of("daygle::ingest::scheduler"), "sync");
        assert_eq!(source_of("daygle::web::http::error"), "web");
        assert_eq!(source_of("sqlx::query"), "libraries");
    }
}
