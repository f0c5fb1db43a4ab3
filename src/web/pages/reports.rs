//! `/reports` (permission `view_reports`): monthly archive volume by account and folder,
//! verdicts, storage by account, top correspondents per archive, and — for readers of every
//! archive — user activity and the access review. Each table downloads as CSV.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::{Grants, VisibleAccount, visible_accounts};
use crate::error::{Error, Result};
use crate::render::chart::{self, Series};
use crate::render::{csv as csvfmt, format};
use crate::reports::monthly::{self, MONTHS, STALE_DAYS};
use crate::reports::series::verdict_label;
use crate::web::http::extract::{CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

pub fn area() -> Area {
    Area::new()
        .get("/reports", page)
        .get("/reports/{name}", download)
}

/// A report table, already formatted.
struct Table {
    id: &'static str,
    title: String,
    headers: Vec<&'static str>,
    /// The first cell of each row is its header cell.
    rows: Vec<Vec<String>>,
    /// Cells that are numbers (right-aligned), by column.
    numeric: Vec<bool>,
    note: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "reports/page.html")]
struct ReportsPage {
    page: PageContext,
    charts: Vec<(String, String)>,
    tables: Vec<Table>,
    accounts: Vec<VisibleAccount>,
    account: i64,
    people: bool,
    timezone: String,
}

#[derive(Deserialize, Default)]
struct Params {
    #[serde(default)]
    account: Option<i64>,
}

/// The last `MONTHS` months, oldest first, as `YYYY-MM` in the reader's zone.
fn month_labels(timezone: &str) -> Vec<String> {
    let today = crate::reports::series::today_in(timezone);
    let (mut y, mut m) = (today.year(), u8::from(today.month()) as i32);
    let mut out = Vec::new();
    for _ in 0..MONTHS {
        out.push(format!("{y:04}-{m:02}"));
        m -= 1;
        if m == 0 {
            m = 12;
            y -= 1;
        }
    }
    out.reverse();
    out
}

fn stacked(
    id: &str,
    title: &str,
    labels: &[String],
    points: impl Iterator<Item = (String, String, i64)>,
) -> String {
    let mut series: Vec<Series> = Vec::new();
    for (month, name, n) in points {
        let Some(i) = labels.iter().position(|l| *l == month) else {
            continue;
        };
        let s = match series.iter_mut().position(|s| s.name == name) {
            Some(k) => &mut series[k],
            None => {
                series.push(Series {
                    name,
                    values: vec![0; labels.len()],
                });
                series.last_mut().expect("just pushed")
            }
        };
        s.values[i] += n.max(0) as u64;
    }
    chart::stacked_bars(id, title, labels, &series)
}

/// Every table of the page for this reader (the same ones the CSV downloads serve).
async fn tables(
    state: &AppState,
    user: &CurrentUser,
    account: i64,
) -> Result<(Vec<Table>, Vec<(String, String)>)> {
    let tz = &user.timezone;
    let grants: &Grants = &user.grants;
    let volume = monthly::volume(&state.pool, grants, tz).await?;
    let verdicts = monthly::verdicts(&state.pool, grants, tz).await?;
    let labels = month_labels(tz);
    let charts = vec![
        (
            "Messages archived per month, by account".to_string(),
            stacked(
                "chart-monthly",
                "Messages archived per month, by account",
                &labels,
                volume
                    .iter()
                    .map(|r| (r.month.clone(), r.account.clone(), r.messages)),
            ),
        ),
        (
            "Scan verdicts per month".to_string(),
            stacked(
                "chart-verdicts-monthly",
                "Scan verdicts per month",
                &labels,
                verdicts.iter().map(|r| {
                    (
                        r.month.clone(),
                        verdict_label(&r.verdict).to_string(),
                        r.messages,
                    )
                }),
            ),
        ),
    ];
    let mut out = vec![
        Table {
            id: "volume",
            title: format!("Messages and size per account and folder, last {MONTHS} months"),
            headers: vec!["Month", "Account", "Folder", "Messages", "Size"],
            numeric: vec![false, false, false, true, true],
            rows: volume
                .iter()
                .map(|r| {
                    vec![
                        r.month.clone(),
                        r.account.clone(),
                        r.folder.clone(),
                        r.messages.to_string(),
                        r.bytes.to_string(),
                    ]
                })
                .collect(),
            note: "Size in bytes as received; months by arrival in the archive.".into(),
        },
        Table {
            id: "verdicts",
            title: format!("Scan verdicts per month, last {MONTHS} months"),
            headers: vec!["Month", "Verdict", "Messages"],
            numeric: vec![false, false, true],
            rows: verdicts
                .iter()
                .map(|r| {
                    vec![
                        r.month.clone(),
                        verdict_label(&r.verdict).to_string(),
                        r.messages.to_string(),
                    ]
                })
                .collect(),
            note: String::new(),
        },
    ];
    let (storage, total) = monthly::storage(&state.pool, grants).await?;
    out.push(Table {
        id: "storage",
        title: "Storage by account".into(),
        headers: vec!["Account", "Messages", "As received", "Stored (compressed)"],
        numeric: vec![false, true, true, true],
        rows: storage
            .iter()
            .map(|r| {
                vec![
                    r.account.clone(),
                    r.messages.to_string(),
                    format::size(r.received_bytes.max(0) as u64),
                    format::size(r.stored_bytes.max(0) as u64),
                ]
            })
            .collect(),
        note: format!(
            "A message several accounts hold is stored once; each account's row counts it, the total counts it once: {} stored in all.",
            format::size(total.max(0) as u64)
        ),
    });
    if account > 0 {
        let (senders, recipients) =
            monthly::correspondents(&state.pool, grants, account, 20).await?;
        for (id, title, list) in [
            ("senders", "Top senders", senders),
            ("recipients", "Top recipients", recipients),
        ] {
            out.push(Table {
                id,
                title: title.into(),
                headers: vec!["Address", "Messages", "Size"],
                numeric: vec![false, true, true],
                rows: list
                    .iter()
                    .map(|c| {
                        vec![
                            c.address.clone(),
                            c.messages.to_string(),
                            format::size(c.bytes.max(0) as u64),
                        ]
                    })
                    .collect(),
                note: String::new(),
            });
        }
    }
    if grants == &Grants::All {
        let activity = monthly::activity(&state.pool, 30).await?;
        out.push(Table {
            id: "activity",
            title: "User activity, last 30 days".into(),
            headers: vec![
                "User",
                "Sign-ins",
                "Failed sign-ins",
                "Searches",
                "Messages read",
                "Exports",
                "Downloads",
            ],
            numeric: vec![false, true, true, true, true, true, true],
            rows: activity
                .iter()
                .map(|r| {
                    vec![
                        r.username.clone(),
                        r.sign_ins.to_string(),
                        r.failed_sign_ins.to_string(),
                        r.searches.to_string(),
                        r.reads.to_string(),
                        r.exports.to_string(),
                        r.downloads.to_string(),
                    ]
                })
                .collect(),
            note: "Counted from the audit log.".into(),
        });
        let now = time::OffsetDateTime::now_utc();
        let review = monthly::access_review(&state.pool).await?;
        out.push(Table {
            id: "access",
            title: "Access review".into(),
            headers: vec!["User", "Status", "Roles", "Archives they can read", "Last sign-in", "Check"],
            numeric: vec![false; 6],
            rows: review
                .iter()
                .map(|r| {
                    vec![
                        r.username.clone(),
                        if r.enabled { "enabled" } else { "disabled" }.into(),
                        r.roles.join(", "),
                        if r.all_archives {
                            "all archives".into()
                        } else if r.archives.is_empty() {
                            "none".into()
                        } else {
                            r.archives.join(", ")
                        },
                        user.format_when(r.last_sign_in),
                        r.flag(now).into(),
                    ]
                })
                .collect(),
            note: format!(
                "\"stale\": enabled, no sign-in for more than {STALE_DAYS} days; \"never signed in\": enabled and never used. Review both."
            ),
        });
    }
    Ok((out, charts))
}

async fn page(
    State(state): State<AppState>,
    user: Require<perm::ViewReports>,
    Query(params): Query<Params>,
) -> Result<ReportsPage> {
    let accounts = visible_accounts(&state.pool, &user.grants).await?;
    let account = params
        .account
        .filter(|id| accounts.iter().any(|a| a.id == *id))
        .or_else(|| accounts.first().map(|a| a.id))
        .unwrap_or(0);
    let (tables, charts) = tables(&state, &user, account).await?;
    Ok(ReportsPage {
        page: PageContext::for_user("Reports", "/reports", &user),
        charts,
        tables,
        accounts,
        account,
        people: user.grants == Grants::All,
        timezone: user.timezone.clone(),
    })
}

/// `GET /reports/<table>.csv`: one table as CSV (spreadsheet formulas defused).
async fn download(
    State(state): State<AppState>,
    user: Require<perm::ViewReports>,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response> {
    let id = name.strip_suffix(".csv").ok_or(Error::NotFound)?;
    let (tables, _) = tables(&state, &user, params.account.unwrap_or(0)).await?;
    let table = tables
        .into_iter()
        .find(|t| t.id == id)
        .ok_or(Error::NotFound)?;
    let mut w = csvfmt::writer(Vec::new(), true);
    let io = |e| Error::context("write the CSV", e);
    w.write_record(&table.headers).map_err(io)?;
    for row in &table.rows {
        w.write_record(row.iter().map(|c| csvfmt::spreadsheet_safe(c).into_owned()))
            .map_err(io)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| Error::Internal(format!("finish the CSV: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"daygle-{id}.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}
