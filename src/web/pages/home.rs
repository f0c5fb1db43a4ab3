//! The dashboard, by role. People who look after the archiver (account managers, workers
//! viewers) see health first, then totals and charts; readers see a search box, their
//! archives with counts and recent mail, and nothing about the infrastructure.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::dashboard_charts::{self, Charts};
use crate::auth::Permission;
use crate::error::Result;
use crate::ingest::workers::SyncView;
use crate::render::format;
use crate::reports::health::{self, Health, ScannerState};
use crate::reports::series::{self, Window};
use crate::reports::totals::{self, AccountTotals, RecentMessage, Setup, Storage};
use crate::web::http::extract::{CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// The route of the dashboard.
pub fn area() -> Area {
    Area::new().get("/", dashboard)
}

#[derive(Deserialize, Default)]
struct Params {
    days: Option<i64>,
}

/// Whether this user looks after the archiver rather than only reading it.
fn operates(user: &CurrentUser) -> bool {
    user.can(Permission::ManageAccounts) || user.can(Permission::ViewWorkers)
}

async fn dashboard(
    State(state): State<AppState>,
    user: Require<perm::ViewDashboard>,
    Query(params): Query<Params>,
) -> Result<Response> {
    if operates(&user) {
        Ok(admin(&state, &user, Window::parse(params.days))
            .await?
            .into_response())
    } else {
        Ok(reader(&state, &user).await?.into_response())
    }
}

/// One archive account as a table row, already formatted for the reader.
struct AccountRow {
    id: i64,
    name: String,
    enabled: bool,
    messages: String,
    size: String,
    last_success: String,
    next_run: String,
    failing: bool,
    /// What its sync is doing now (updated in the page by a small script).
    sync: SyncView,
}

fn account_rows(
    user: &CurrentUser,
    accounts: Vec<AccountTotals>,
    views: &[(i64, SyncView)],
) -> Vec<AccountRow> {
    accounts
        .into_iter()
        .map(|a| AccountRow {
            sync: views
                .iter()
                .find(|(id, _)| *id == a.id)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| SyncView {
                    state: "idle",
                    text: "Imported; not synced from a server.".into(),
                    next: String::new(),
                }),
            id: a.id,
            enabled: a.enabled,
            messages: format::count(a.messages),
            size: format::size(a.bytes.max(0) as u64),
            last_success: user.format_when(a.last_success_at),
            next_run: if a.enabled {
                user.format_when(a.next_run_at)
            } else {
                "paused".into()
            },
            failing: a.enabled && a.consecutive_failures > 0,
            name: a.name,
        })
        .collect()
}

struct FailingRow {
    id: i64,
    name: String,
    attempts: i32,
    reason: String,
    since: String,
    last_success: String,
}

/// The scanner's state in one sentence and a status class (ok, warn, bad).
struct ScannerLine {
    class: &'static str,
    text: String,
    detail: String,
}

impl From<ScannerState> for ScannerLine {
    fn from(state: ScannerState) -> Self {
        match state {
            ScannerState::Off => ScannerLine {
                class: "warn",
                text: "Virus scanning is off".into(),
                detail: "Mail is archived without a virus scan ([clamav] enabled = false).".into(),
            },
            ScannerState::Reachable { version } => ScannerLine {
                class: "ok",
                text: "Virus scanner reachable".into(),
                detail: version,
            },
            ScannerState::Unreachable { address, reason } => ScannerLine {
                class: "bad",
                text: "Virus scanner unreachable".into(),
                detail: format!(
                    "{address}: {reason}. New mail waits on the mail server until the scanner is back."
                ),
            },
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/admin.html")]
struct AdminDashboard {
    page: PageContext,
    all_good: bool,
    failing: Vec<FailingRow>,
    scanner: ScannerLine,
    show_quarantine: bool,
    /// Administrators read the recent log events (`/logs`).
    show_logs: bool,
    quarantine_waiting: i64,
    ledger_failed: i64,
    open_alerts: i64,
    setup: Setup,
    storage: Storage,
    stored: String,
    logical: String,
    database: String,
    messages: String,
    accounts: Vec<AccountRow>,
    enabled_accounts: usize,
    charts: Charts,
    timezone: String,
    /// Database outages that ended in the last day (the supervisor brought it back).
    db_outages: Vec<OutageLine>,
    /// The account table refreshes its "Now" column from `/workers/status`.
    live_status: bool,
}

struct OutageLine {
    started: String,
    seconds: String,
    detail: String,
    process: String,
}

async fn admin(state: &AppState, user: &CurrentUser, window: Window) -> Result<AdminDashboard> {
    let Health {
        failing,
        scanner,
        quarantine_waiting,
        ledger_failed,
        ..
    } = health::load(&state.pool, state.scanner.as_ref()).await?;
    let all_good = failing.is_empty()
        && !matches!(scanner, ScannerState::Unreachable { .. })
        && ledger_failed == 0;
    let failing = failing
        .into_iter()
        .map(|f| FailingRow {
            id: f.id,
            attempts: f.consecutive_failures,
            reason: f
                .last_error
                .unwrap_or_else(|| "no reason was recorded".into()),
            since: user.format_when(f.failing_since),
            last_success: user.format_when(f.last_success_at),
            name: f.name,
        })
        .collect();
    let storage = totals::storage(&state.pool).await?;
    let accounts = totals::per_account(&state.pool, &user.grants).await?;
    let enabled_accounts = accounts.iter().filter(|a| a.enabled).count();
    let today = series::today_in(&user.timezone);
    let charts = dashboard_charts::load(state, user, window, today).await?;
    Ok(AdminDashboard {
        page: PageContext::for_user("Dashboard", "/", user),
        all_good,
        failing,
        scanner: ScannerLine::from(scanner),
        show_quarantine: user.can(Permission::ViewQuarantine),
        show_logs: user.can(Permission::ManageSettings),
        quarantine_waiting,
        ledger_failed,
        open_alerts: user.open_alerts,
        setup: totals::setup(&state.pool).await?,
        stored: format::size(storage.stored_bytes.max(0) as u64),
        logical: format::size(storage.logical_bytes.max(0) as u64),
        database: format::size(storage.database_bytes.max(0) as u64),
        messages: format::count(storage.messages),
        storage,
        accounts: account_rows(
            user,
            accounts,
            &crate::ingest::workers::sync_views(&state.pool, &user.grants).await?,
        ),
        live_status: user.can(Permission::ViewWorkers),
        enabled_accounts,
        charts,
        timezone: user.timezone.clone(),
        db_outages: crate::db::supervisor::recent_outages(&state.pool, 1)
            .await?
            .into_iter()
            .map(|o| OutageLine {
                started: user.format_when(Some(o.started_at)),
                seconds: format!("{:.1}", (o.ended_at - o.started_at).as_seconds_f64()),
                detail: o.detail,
                process: o.process,
            })
            .collect(),
    })
}

struct RecentRow {
    id: i64,
    subject: String,
    from: String,
    account: String,
    /// Empty for undated mail: the template says so instead of inventing a date.
    date: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/reader.html")]
struct ReaderDashboard {
    page: PageContext,
    can_read_mail: bool,
    accounts: Vec<AccountRow>,
    recent: Vec<RecentRow>,
    timezone: String,
}

async fn reader(state: &AppState, user: &CurrentUser) -> Result<ReaderDashboard> {
    let can_read_mail = user.can(Permission::ViewMail);
    let (accounts, recent) = if can_read_mail {
        (
            totals::per_account(&state.pool, &user.grants).await?,
            totals::recent(&state.pool, &user.grants, 10).await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let recent = recent
        .into_iter()
        .map(|m: RecentMessage| RecentRow {
            id: m.id,
            subject: m
                .subject
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "(no subject)".into()),
            from: m.from_addr.unwrap_or_default(),
            account: m.account_name,
            date: m.date.map(|d| user.format_time(d)).unwrap_or_default(),
        })
        .collect();
    Ok(ReaderDashboard {
        page: PageContext::for_user("Dashboard", "/", user),
        can_read_mail,
        accounts: account_rows(user, accounts, &[]),
        recent,
        timezone: user.timezone.clone(),
    })
}
