//! `/alerts`: what is wrong now (open alerts, most severe first) and what was wrong lately,
//! with who acknowledged what.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::Permission;
use crate::error::{Error, Result};
use crate::notify::alerts::{self, Alert};
use crate::notify::{Severity, Trigger};
use crate::web::http::extract::{CsrfForm, CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

pub fn area() -> Area {
    Area::new()
        .get("/alerts", list)
        .post("/alerts/{id}/acknowledge", acknowledge)
}

struct AlertRow {
    id: i64,
    critical: bool,
    severity: &'static str,
    trigger: String,
    title: String,
    detail: String,
    link: String,
    opened: String,
    last_seen: String,
    seen_count: i32,
    resolved: String,
    acknowledged: String,
    email: String,
}

fn row(user: &CurrentUser, a: Alert) -> AlertRow {
    let email = match (&a.emailed_at, &a.email_error) {
        (Some(t), _) => format!("sent {}", user.format_time(*t)),
        (None, Some(e)) => format!("not sent: {e}"),
        (None, None) => String::new(),
    };
    AlertRow {
        id: a.id,
        critical: a.severity == Severity::Critical,
        severity: a.severity.as_str(),
        trigger: Trigger::parse(&a.trigger)
            .map(|t| t.label().to_owned())
            .unwrap_or(a.trigger),
        opened: user.format_time(a.opened_at),
        last_seen: user.format_time(a.last_seen_at),
        seen_count: a.seen_count,
        resolved: user.format_when(a.resolved_at),
        acknowledged: match (&a.acknowledged_by, a.acknowledged_at) {
            (Some(by), Some(at)) => format!("{by}, {}", user.format_time(at)),
            _ => String::new(),
        },
        email,
        title: a.title,
        detail: a.detail,
        link: a.link,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "alerts/list.html")]
struct ListPage {
    page: PageContext,
    open: Vec<AlertRow>,
    resolved: Vec<AlertRow>,
    can_acknowledge: bool,
    notice: &'static str,
    timezone: String,
}

#[derive(Deserialize)]
struct Done {
    #[serde(default)]
    done: String,
}

async fn list(
    State(state): State<AppState>,
    user: Require<perm::ViewWorkers>,
    Query(done): Query<Done>,
) -> Result<ListPage> {
    let (open, resolved) = alerts::list(&state.pool, 50).await?;
    Ok(ListPage {
        page: PageContext::for_user("Alerts", "/alerts", &user),
        open: open.into_iter().map(|a| row(&user, a)).collect(),
        resolved: resolved.into_iter().map(|a| row(&user, a)).collect(),
        can_acknowledge: user.can(Permission::ManageSettings),
        notice: match done.done.as_str() {
            "acknowledged" => {
                "Alert acknowledged. It stays in the list until its condition clears."
            }
            _ => "",
        },
        timezone: user.timezone.clone(),
    })
}

#[derive(Deserialize)]
struct EmptyForm {}

async fn acknowledge(
    State(state): State<AppState>,
    user: Require<perm::ManageSettings>,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response> {
    if !alerts::acknowledge(&state.pool, &user.actor, id).await? {
        return Err(Error::NotFound);
    }
    Ok(Redirect::to("/alerts?done=acknowledged").into_response())
}
