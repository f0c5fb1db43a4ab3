//! `/logs`: the application's recent log events for administrators (issue #17), filtered by
//! level, source, account and words, and as CSV. What is kept and what is never kept is
//! decided in [`crate::logbook`].

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::Query;
use serde::Deserialize;
use tracing::Level;

use crate::error::Result;
use crate::logbook::{self, LogEvent, LogFilter};
use crate::web::http::download;
use crate::web::http::extract::{CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;

/// The most events one page shows (the CSV has every kept event that matches).
const PAGE_LIMIT: usize = 500;

pub fn area() -> Area {
    Area::new().get("/logs", page)
}

#[derive(Debug, Default, Deserialize)]
struct LogParams {
    #[serde(default)]
    level: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    format: String,
}

impl LogParams {
    fn filter(&self, limit: usize) -> LogFilter {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        LogFilter {
            min_level: match self.level.as_str() {
                "error" => Some(Level::ERROR),
                "warn" => Some(Level::WARN),
                _ => None,
            },
            source: some(&self.source),
            account: some(&self.account),
            text: some(&self.q),
            limit,
        }
    }

    fn csv_link(&self) -> String {
        let enc = crate::render::html::percent_encode;
        format!(
            "/logs?level={}&source={}&account={}&q={}&format=csv",
            enc(&self.level),
            enc(&self.source),
            enc(&self.account),
            enc(&self.q)
        )
    }
}

struct Row {
    at: String,
    level: &'static str,
    source: &'static str,
    account: String,
    /// The account, percent-encoded for its filter link.
    account_query: String,
    message: String,
    fields: String,
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn row(user: &CurrentUser, e: LogEvent) -> Row {
    Row {
        at: user.format_time(e.at),
        level: level_name(e.level),
        source: e.source(),
        account_query: crate::render::html::percent_encode(e.account.as_deref().unwrap_or("")),
        account: e.account.unwrap_or_default(),
        message: e.message,
        fields: e.fields,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "logs/page.html")]
struct LogsPage {
    page: PageContext,
    params: LogParams,
    rows: Vec<Row>,
    sources: &'static [&'static str],
    capacity: usize,
    csv_link: String,
}

async fn page(
    user: Require<perm::ManageSettings>,
    Query(params): Query<LogParams>,
) -> Result<Response> {
    if params.format == "csv" {
        return csv(&user, &params);
    }
    let rows = logbook::recent(&params.filter(PAGE_LIMIT))
        .into_iter()
        .map(|e| row(&user, e))
        .collect();
    Ok(LogsPage {
        page: PageContext::for_user("Logs", "/logs", &user),
        csv_link: params.csv_link(),
        params,
        rows,
        sources: logbook::SOURCES,
        capacity: logbook::CAPACITY,
    }
    .into_response())
}

fn csv(user: &CurrentUser, params: &LogParams) -> Result<Response> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>, record: &[&str]| {
        out.write_record(record)
            .map_err(|e| crate::error::Error::context("write the log CSV", e))
    };
    write(
        &mut out,
        &["time", "level", "source", "account", "message", "fields"],
    )?;
    for e in logbook::recent(&params.filter(logbook::CAPACITY)) {
        let r = row(user, e);
        write(
            &mut out,
            &[&r.at, r.level, r.source, &r.account, &r.message, &r.fields],
        )?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| crate::error::Error::context("finish the log CSV", e.into_error()))?;
    Ok(download::attachment(
        "daygle-logs.csv",
        "text/csv; charset=utf-8",
        bytes,
    ))
}
