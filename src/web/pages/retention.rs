//! `/retention` (policies, preview, Purge now, deletion statistics) and `/holds` (legal holds).
//! Parse, call `retention::…`, render; every change is audited by the domain function.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::auth::{VisibleAccount, visible_accounts};
use crate::error::{Error, Result};
use crate::render::format;
use crate::retention::{Plan, holds, policies, preview, purge, stats};
use crate::web::http::extract::{Confirmed, CsrfForm, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

pub fn area() -> Area {
    Area::new()
        .get("/retention", page)
        .post("/retention/policies", add_policy)
        .get("/retention/policies/{id}", edit_policy)
        .post("/retention/policies/{id}", save_policy)
        .post("/retention/policies/{id}/delete", remove_policy)
        .post("/retention/purge", purge_now)
        .get("/retention/stats.csv", stats_csv)
        .get("/holds", holds_page)
        .post("/holds", place_hold)
        .post("/holds/{id}/release", release_hold)
}

struct PreviewLine {
    row: preview::PreviewRow,
    size: String,
    freed: String,
    oldest: String,
    newest: String,
}

struct SampleLine {
    s: preview::SampleMessage,
    date: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "retention/page.html")]
struct RetentionPage {
    page: PageContext,
    /// Whose grants the page was made for (which policies they may edit).
    grants: crate::auth::Grants,
    policies: Vec<policies::Policy>,
    accounts: Vec<VisibleAccount>,
    lines: Vec<PreviewLine>,
    sample: Vec<SampleLine>,
    total_messages: i64,
    total_size: String,
    total_freed: String,
    held: i64,
    as_of: i64,
    max_id: i64,
    fingerprint: String,
    stats: Vec<stats::StatRow>,
    /// The reader's time zone, in which the statistics' months are cut.
    timezone: String,
    done: Option<String>,
}

fn when(user: &crate::web::http::extract::CurrentUser, t: Option<OffsetDateTime>) -> String {
    user.format_when(t)
}

async fn render_page(
    state: &AppState,
    user: &Require<perm::ManageRetention>,
    done: Option<String>,
) -> Result<RetentionPage> {
    let policies = policies::list(&state.pool, &user.grants).await?;
    let plan = Plan::current(&state.pool, &user.grants).await?;
    let p = preview::preview(&state.pool, &plan, 20).await?;
    let lines = p
        .rows
        .iter()
        .cloned()
        .map(|row| PreviewLine {
            size: format::size(row.bytes.max(0) as u64),
            freed: format::size(row.freed_bytes.max(0) as u64),
            oldest: when(user, row.oldest),
            newest: when(user, row.newest),
            row,
        })
        .collect();
    let sample = p
        .sample
        .iter()
        .cloned()
        .map(|s| SampleLine {
            date: user.format_time(s.sort_date),
            s,
        })
        .collect();
    Ok(RetentionPage {
        page: PageContext::for_user("Retention", "/retention", user),
        grants: user.grants.clone(),
        policies,
        accounts: visible_accounts(&state.pool, &user.grants).await?,
        lines,
        sample,
        total_messages: p.messages(),
        total_size: format::size(p.bytes().max(0) as u64),
        total_freed: format::size(p.freed_bytes().max(0) as u64),
        held: p.held(),
        as_of: (p.as_of.unix_timestamp_nanos() / 1000) as i64,
        max_id: p.max_id,
        fingerprint: p.fingerprint,
        stats: stats::by_account_month(&state.pool, &user.grants, &user.timezone).await?,
        timezone: user.timezone.clone(),
        done,
    })
}

async fn page(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
) -> Result<RetentionPage> {
    render_page(&state, &user, None).await
}

#[derive(Deserialize)]
struct PolicyForm {
    name: String,
    keep_days: String,
    #[serde(default)]
    account: Vec<i64>,
    #[serde(default)]
    folder: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    age_basis: String,
    /// The edit form's checkbox ("yes" when ticked); the add form has none (enabled).
    #[serde(default)]
    enabled: Option<String>,
}

impl PolicyForm {
    fn input(self) -> Result<policies::PolicyInput> {
        let keep_days = self
            .keep_days
            .trim()
            .parse()
            .map_err(|_| Error::invalid("keep_days", "must be a whole number of days"))?;
        Ok(policies::PolicyInput {
            name: self.name,
            account_ids: self.account,
            folder_pattern: Some(self.folder),
            query: Some(self.query),
            keep_days,
            age_basis: if self.age_basis.is_empty() {
                "message".into()
            } else {
                self.age_basis
            },
            enabled: self.enabled.is_none_or(|e| e == "yes"),
        })
    }
}

async fn add_policy(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
    CsrfForm(form): CsrfForm<PolicyForm>,
) -> Result<Redirect> {
    let input = form.input()?;
    policies::save(&state.pool, &user.actor, &user.grants, None, &input).await?;
    Ok(Redirect::to("/retention"))
}

#[derive(Template, WebTemplate)]
#[template(path = "retention/policy.html")]
struct PolicyPage {
    page: PageContext,
    p: policies::Policy,
    accounts: Vec<VisibleAccount>,
}

/// `GET /retention/policies/{id}`: the policy editor (only for policies within the user's reach).
async fn edit_policy(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
    Path(id): Path<i64>,
) -> Result<PolicyPage> {
    let p = policies::get(&state.pool, &user.grants, id).await?;
    if !p.editable_by(&user.grants) {
        return Err(Error::Forbidden);
    }
    Ok(PolicyPage {
        page: PageContext::for_user("Edit retention policy", "/retention", &user),
        accounts: visible_accounts(&state.pool, &user.grants).await?,
        p,
    })
}

async fn save_policy(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<PolicyForm>,
) -> Result<Redirect> {
    let mut form = form;
    // The editor always shows the checkbox: absent means switched off.
    form.enabled = Some(form.enabled.unwrap_or_default());
    let input = form.input()?;
    policies::save(&state.pool, &user.actor, &user.grants, Some(id), &input).await?;
    Ok(Redirect::to("/retention"))
}

async fn remove_policy(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<Confirmed>,
) -> Result<Redirect> {
    form.check()?;
    policies::remove(&state.pool, &user.actor, &user.grants, id).await?;
    Ok(Redirect::to("/retention"))
}

#[derive(Deserialize)]
struct PurgeForm {
    as_of: i64,
    max_id: i64,
    fingerprint: String,
    #[serde(default)]
    confirm: String,
}

async fn purge_now(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
    CsrfForm(form): CsrfForm<PurgeForm>,
) -> Result<RetentionPage> {
    if form.confirm != "yes" {
        return Err(Error::invalid(
            "confirm",
            "tick the box to confirm the purge",
        ));
    }
    let as_of = OffsetDateTime::from_unix_timestamp_nanos(i128::from(form.as_of) * 1000)
        .map_err(|_| Error::invalid("as_of", "is not a time"))?;
    let plan = Plan::at(&state.pool, &user.grants, as_of, form.max_id).await?;
    let report = purge::purge(
        &state.pool,
        &user.actor,
        &plan,
        Some(&form.fingerprint),
        state.settings.retention.batch_size,
        &state.shutdown,
    )
    .await?;
    let done = format!(
        "Purged {} messages ({}); freed {} of storage.",
        report.messages,
        format::size(report.bytes.max(0) as u64),
        format::size(report.collected.bytes.max(0) as u64)
    );
    render_page(&state, &user, Some(done)).await
}

async fn stats_csv(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
) -> Result<Response> {
    let rows = stats::by_account_month(&state.pool, &user.grants, &user.timezone).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"deletion-statistics.csv\"",
            ),
        ],
        stats::to_csv(&rows, &user.timezone),
    )
        .into_response())
}

struct HoldLine {
    h: holds::Hold,
    held: i64,
    created: String,
    released: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "retention/holds.html")]
struct HoldsPage {
    page: PageContext,
    holds: Vec<HoldLine>,
    accounts: Vec<VisibleAccount>,
}

async fn holds_page(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
) -> Result<HoldsPage> {
    let lines = holds::list_with_held(&state.pool, &user.grants)
        .await?
        .into_iter()
        .map(|(h, held)| HoldLine {
            created: user.format_time(h.created_at),
            released: user.format_when(h.released_at),
            held,
            h,
        })
        .collect();
    Ok(HoldsPage {
        page: PageContext::for_user("Legal holds", "/holds", &user),
        holds: lines,
        accounts: visible_accounts(&state.pool, &user.grants).await?,
    })
}

#[derive(Deserialize)]
struct HoldForm {
    name: String,
    reason: String,
    #[serde(default)]
    account: Vec<i64>,
    #[serde(default)]
    query: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

fn day(field: &str, text: &str) -> Result<Option<time::Date>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map(Some)
    .map_err(|_| Error::invalid(field, "must be a date like 2024-01-31"))
}

async fn place_hold(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
    CsrfForm(form): CsrfForm<HoldForm>,
) -> Result<Redirect> {
    let input = holds::HoldInput {
        name: form.name,
        reason: form.reason,
        account_ids: form.account,
        query: Some(form.query),
        date_from: day("from", &form.from)?,
        date_to: day("to", &form.to)?,
    };
    holds::place(&state.pool, &user.actor, &user.grants, &input).await?;
    Ok(Redirect::to("/holds"))
}

#[derive(Deserialize)]
struct ReleaseForm {
    reason: String,
}

async fn release_hold(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<ReleaseForm>,
) -> Result<Redirect> {
    holds::release(&state.pool, &user.actor, &user.grants, id, &form.reason).await?;
    Ok(Redirect::to("/holds"))
}
