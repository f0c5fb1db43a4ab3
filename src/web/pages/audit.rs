//! `/audit`: the audit log for Administrators and Auditors, filtered, paged by id, and as CSV.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::audit::query::{self, Filter};
use crate::error::{Error, Result};
use crate::web::http::extract::{Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

const CSV_LIMIT: i64 = 100_000;

/// The routes of the audit log page and its CSV export.
pub fn area() -> Area {
    Area::new().get("/audit", list).get("/audit.csv", csv)
}

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub action: String,
    /// YYYY-MM-DD, inclusive.
    #[serde(default)]
    pub from: String,
    /// YYYY-MM-DD, inclusive.
    #[serde(default)]
    pub to: String,
    pub before: Option<i64>,
}

fn parse_day(field: &str, s: &str) -> Result<Option<OffsetDateTime>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, format)
        .map_err(|_| Error::invalid(field, "must be a date like 2026-11-23"))?;
    Ok(Some(date.midnight().assume_utc()))
}

impl Params {
    pub(crate) fn filter(&self) -> Result<Filter> {
        let nonempty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        Ok(Filter {
            username: nonempty(&self.user),
            action: nonempty(&self.action),
            from: parse_day("from", &self.from)?,
            until: parse_day("to", &self.to)?.map(|d| d + time::Duration::days(1)),
            before_id: self.before,
        })
    }

    fn query_string(&self) -> String {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        format!(
            "user={}&action={}&from={}&to={}",
            enc(&self.user),
            enc(&self.action),
            enc(&self.from),
            enc(&self.to)
        )
    }
}

struct EntryView {
    id: i64,
    at: String,
    username: String,
    ip: String,
    action: String,
    target: String,
    details: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
struct AuditPage {
    page: PageContext,
    entries: Vec<EntryView>,
    user: String,
    action: String,
    from: String,
    to: String,
    query: String,
    next_before: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    viewer: Require<perm::ViewAudit>,
    Query(p): Query<Params>,
) -> Result<AuditPage> {
    let limit = i64::from(viewer.page_size);
    let scope = query::Scope::of(&viewer.grants, viewer.id);
    let rows = query::list(&state.pool, &scope, &p.filter()?, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next_before = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(AuditPage {
        page: PageContext::for_user("Audit log", "/audit", &viewer),
        entries: rows
            .into_iter()
            .map(|r| EntryView {
                id: r.id,
                at: viewer.format_time(r.at),
                username: r.username,
                ip: r.ip,
                action: r.action,
                target: r.target,
                details: if r.details.as_object().is_some_and(|o| o.is_empty()) {
                    String::new()
                } else {
                    r.details.to_string()
                },
            })
            .collect(),
        query: p.query_string(),
        user: p.user,
        action: p.action,
        from: p.from,
        to: p.to,
        next_before,
    })
}

async fn csv(
    State(state): State<AppState>,
    viewer: Require<perm::ViewAudit>,
    Query(p): Query<Params>,
) -> Result<Response> {
    let scope = query::Scope::of(&viewer.grants, viewer.id);
    let rows = query::list(&state.pool, &scope, &p.filter()?, CSV_LIMIT).await?;
    let body = query::csv(&rows)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"daygle-audit.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}
