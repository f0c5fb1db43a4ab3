//! Deleting and holding hand-picked mail from the message list or page: `POST /messages/delete`
//! and `POST /messages/hold` first show a confirmation (how many, how many are held), then call
//! the domain; `/deletions` lists requests and lets a second person approve or reject them
//! (`retention.require_approval`). The domain checks grants, holds and the four-eyes rule in
//! its SQL and writes the audit rows.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::Redirect;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::retention::holds;
use crate::retention::requests::{self, Kind, NewRequest, Outcome, RequestRow};
use crate::web::http::extract::{CsrfForm, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

pub fn area() -> Area {
    Area::new()
        .post("/messages/delete", delete_selected)
        .post("/messages/hold", hold_selected)
        .get("/messages/delete-results", super::delete_results::confirm)
        .post("/messages/delete-results", super::delete_results::delete)
        .get("/deletions", list)
        .post("/deletions/{id}/approve", approve)
        .post("/deletions/{id}/reject", reject)
}

/// The most messages one selection may carry (a page of the list holds at most 200).
const MAX_SELECTED: usize = 1_000;

#[derive(Debug, Deserialize)]
struct SelectionForm {
    #[serde(default)]
    id: Vec<i64>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    name: String,
    /// "yes" once the confirmation page was submitted.
    #[serde(default)]
    confirm: String,
}

impl SelectionForm {
    fn ids(&self) -> Result<&[i64]> {
        if self.id.is_empty() {
            return Err(Error::invalid("id", "select at least one message"));
        }
        if self.id.len() > MAX_SELECTED {
            return Err(Error::invalid(
                "id",
                format!("select at most {MAX_SELECTED} messages at a time"),
            ));
        }
        Ok(&self.id)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "deletion/confirm.html")]
struct ConfirmPage {
    page: PageContext,
    /// "delete" or "hold".
    action: &'static str,
    ids: Vec<i64>,
    /// Of the selection, how many the user may reach, and how many of those are held.
    messages: i64,
    held: i64,
    require_approval: bool,
    holds: Vec<String>,
    problem: String,
}

/// `POST /messages/delete`: the confirmation page, then (with `confirm=yes` and a reason) the
/// deletion or, under the four-eyes rule, the request.
async fn delete_selected(
    State(state): State<AppState>,
    user: Require<perm::DeleteMail>,
    CsrfForm(form): CsrfForm<SelectionForm>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let ids = form.ids()?;
    let require_approval = state.settings.retention.require_approval;
    if form.confirm != "yes" || form.reason.trim().is_empty() {
        let (messages, held) = requests::count_selection(&state.pool, &user.grants, ids).await?;
        return Ok(ConfirmPage {
            page: PageContext::for_user("Delete messages", "/messages", &user),
            action: "delete",
            ids: ids.to_vec(),
            messages,
            held,
            require_approval,
            holds: Vec::new(),
            problem: if form.confirm == "yes" {
                "Give a reason: it is kept in the audit log and the deletion record.".into()
            } else {
                String::new()
            },
        }
        .into_response());
    }
    let done = requests::request(
        &state.pool,
        &user.actor,
        &user.grants,
        &NewRequest {
            kind: Kind::Manual,
            ids,
            reason: &form.reason,
            query: None,
            addresses: &[],
        },
        require_approval,
    )
    .await?;
    let notice = match done.outcome {
        Outcome::Pending => "requested",
        Outcome::Done(_) => "done",
    };
    Ok(Redirect::to(&format!("/deletions?{notice}={}", done.id)).into_response())
}

/// `POST /messages/hold`: the confirmation page (hold name and reason), then the hold.
async fn hold_selected(
    State(state): State<AppState>,
    user: Require<perm::ManageRetention>,
    CsrfForm(form): CsrfForm<SelectionForm>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let ids = form.ids()?;
    if form.confirm != "yes" || form.name.trim().is_empty() || form.reason.trim().is_empty() {
        let (messages, held) = requests::count_selection(&state.pool, &user.grants, ids).await?;
        let holds = holds::list(&state.pool, &user.grants)
            .await?
            .into_iter()
            .filter(|h| h.is_active() && h.kind == "messages")
            .map(|h| h.name)
            .collect();
        return Ok(ConfirmPage {
            page: PageContext::for_user("Hold messages", "/messages", &user),
            action: "hold",
            ids: ids.to_vec(),
            messages,
            held,
            require_approval: false,
            holds,
            problem: if form.confirm == "yes" {
                "Give the hold a name and a reason.".into()
            } else {
                String::new()
            },
        }
        .into_response());
    }
    holds::hold_messages(
        &state.pool,
        &user.actor,
        &user.grants,
        &form.name,
        &form.reason,
        ids,
    )
    .await?;
    Ok(Redirect::to("/holds").into_response())
}

struct RequestLine {
    r: RequestRow,
    requested: String,
    decided: String,
    /// The viewer may approve: pending, not their own.
    can_decide: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "deletion/list.html")]
struct ListPage {
    page: PageContext,
    requests: Vec<RequestLine>,
    require_approval: bool,
    notice: String,
}

#[derive(Debug, Default, Deserialize)]
struct ListParams {
    requested: Option<i64>,
    done: Option<i64>,
    approved: Option<i64>,
    rejected: Option<i64>,
}

/// `GET /deletions`: pending requests first (approve or reject), then what was deleted.
async fn list(
    State(state): State<AppState>,
    user: Require<perm::DeleteMail>,
    axum_extra::extract::Query(params): axum_extra::extract::Query<ListParams>,
) -> Result<ListPage> {
    let rows = requests::list(&state.pool, &user.grants, 100).await?;
    let notice = match (
        params.requested,
        params.done,
        params.approved,
        params.rejected,
    ) {
        (Some(id), ..) => format!(
            "Deletion request {id} is waiting for a second person holding \"Delete mail\" to approve it. Nothing has been deleted yet."
        ),
        (_, Some(id), ..) => format!("Deletion {id} is done."),
        (_, _, Some(id), _) => format!("You approved request {id}; its messages are deleted."),
        (_, _, _, Some(id)) => format!("You rejected request {id}; nothing was deleted."),
        _ => String::new(),
    };
    let requests = rows
        .into_iter()
        .map(|r| RequestLine {
            requested: user.format_time(r.requested_at),
            decided: user.format_when(r.decided_at),
            can_decide: r.state == "pending"
                && r.requested_by_id != Some(user.id)
                && r.requested_by != user.username,
            r,
        })
        .collect();
    Ok(ListPage {
        page: PageContext::for_user("Deletions", "/deletions", &user),
        requests,
        require_approval: state.settings.retention.require_approval,
        notice,
    })
}

async fn approve(
    State(state): State<AppState>,
    user: Require<perm::DeleteMail>,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<crate::web::http::extract::NoFields>,
) -> Result<Redirect> {
    requests::approve(&state.pool, &user.actor, &user.grants, id).await?;
    Ok(Redirect::to(&format!("/deletions?approved={id}")))
}

#[derive(Debug, Deserialize)]
struct RejectForm {
    #[serde(default)]
    reason: String,
}

async fn reject(
    State(state): State<AppState>,
    user: Require<perm::DeleteMail>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<RejectForm>,
) -> Result<Redirect> {
    requests::reject(&state.pool, &user.actor, &user.grants, id, &form.reason).await?;
    Ok(Redirect::to(&format!("/deletions?rejected={id}")))
}
