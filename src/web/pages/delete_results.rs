//! "Delete all results" of a search in the message list: `GET /messages/delete-results?q=…`
//! shows what would go (count, size, held, oldest and newest) and pins the result set; the
//! form posts the pin back and `retention::bulk::delete` — the same use case as
//! `daygle delete --query` — deletes exactly those, or files the request under the four-eyes
//! rule. Grants, holds and the pin are checked in the domain's SQL.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::Query;
use serde::Deserialize;

use super::message_list::ListParams;
use crate::error::{Error, Result};
use crate::render::format;
use crate::retention::bulk::{self, Pin, Preview, Search};
use crate::retention::requests::Outcome;
use crate::web::http::extract::{CsrfForm, CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "deletion/results.html")]
pub(super) struct ConfirmPage {
    page: PageContext,
    params: ListParams,
    /// The search in words, as the audit log and the deletion record keep it.
    described: String,
    messages: i64,
    held: i64,
    deletable: i64,
    size: String,
    oldest: String,
    newest: String,
    pin: Pin,
    require_approval: bool,
    problem: String,
}

/// The search and its filters in words: "invoice (folder INBOX, to 2020-12-31)".
fn describe(p: &ListParams) -> String {
    let filters: Vec<String> = [
        ("account", &p.account),
        ("folder", &p.folder),
        ("from", &p.from),
        ("to", &p.to),
        ("attachments", &p.attachments),
        ("scan", &p.verdict),
    ]
    .iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .map(|(k, v)| format!("{k} {}", v.trim()))
    .collect();
    if filters.is_empty() {
        p.q.trim().to_string()
    } else {
        format!("{} ({})", p.q.trim(), filters.join(", "))
    }
}

async fn confirm_page(
    state: &AppState,
    user: &CurrentUser,
    params: ListParams,
    problem: String,
) -> Result<ConfirmPage> {
    let parsed = params.parse();
    if let Some(problem) = parsed.problem {
        return Err(Error::invalid("q", problem));
    }
    let described = describe(&params);
    let search = Search {
        query: &parsed.query,
        filters: &parsed.filters,
        text: &described,
    };
    if parsed.query.is_empty() {
        return Err(Error::invalid(
            "q",
            "search for something first (to delete everything, use a retention policy)",
        ));
    }
    let preview: Preview = bulk::preview(&state.pool, &user.grants, &search).await?;
    let s = &preview.summary;
    Ok(ConfirmPage {
        page: PageContext::for_user("Delete search results", "/messages", user),
        deletable: preview.deletable(),
        messages: s.messages,
        held: s.held,
        size: format::size(s.bytes.max(0) as u64),
        oldest: user.format_when(s.oldest),
        newest: user.format_when(s.newest),
        pin: preview.pin,
        require_approval: state.settings.retention.require_approval,
        described,
        params,
        problem,
    })
}

/// `GET /messages/delete-results?q=…`: the confirmation (nothing changes yet).
pub(super) async fn confirm(
    State(state): State<AppState>,
    user: Require<perm::DeleteMail>,
    Query(params): Query<ListParams>,
) -> Result<ConfirmPage> {
    confirm_page(&state, &user, params, String::new()).await
}

#[derive(Debug, Deserialize)]
pub(super) struct DeleteForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    folder: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    attachments: String,
    #[serde(default)]
    verdict: String,
    max_id: i64,
    fingerprint: String,
    #[serde(default)]
    reason: String,
}

/// `POST /messages/delete-results`: deletes (or requests the deletion of) what was previewed.
/// If the results changed meanwhile, or the reason is missing, the confirmation comes back
/// with today's numbers.
pub(super) async fn delete(
    State(state): State<AppState>,
    user: Require<perm::DeleteMail>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Result<Response> {
    let params = ListParams {
        q: form.q,
        account: form.account,
        folder: form.folder,
        from: form.from,
        to: form.to,
        attachments: form.attachments,
        verdict: form.verdict,
        ..ListParams::default()
    };
    if form.reason.trim().is_empty() {
        let problem = "Give a reason: it is kept in the audit log and the deletion record.";
        return Ok(confirm_page(&state, &user, params, problem.into())
            .await?
            .into_response());
    }
    let parsed = params.parse();
    if let Some(problem) = parsed.problem {
        return Err(Error::invalid("q", problem));
    }
    let described = describe(&params);
    let search = Search {
        query: &parsed.query,
        filters: &parsed.filters,
        text: &described,
    };
    let pin = Pin {
        max_id: form.max_id,
        fingerprint: form.fingerprint,
    };
    let done = bulk::delete(
        &state.pool,
        &user.actor,
        &user.grants,
        &search,
        Some(&pin),
        &form.reason,
        state.settings.retention.require_approval,
    )
    .await;
    let done = match done {
        Ok(done) => done,
        Err(Error::Conflict(why)) => {
            let problem = format!("Nothing was deleted: {why}. These are the results now.");
            return Ok(confirm_page(&state, &user, params, problem)
                .await?
                .into_response());
        }
        Err(e) => return Err(e),
    };
    let notice = match done.outcome {
        Outcome::Pending => "requested",
        Outcome::Done(_) => "done",
    };
    Ok(Redirect::to(&format!("/deletions?{notice}={}", done.id)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_is_described_with_its_filters() {
        let p = ListParams {
            q: " invoice ".into(),
            folder: "INBOX".into(),
            to: "2020-12-31".into(),
            ..ListParams::default()
        };
        assert_eq!(describe(&p), "invoice (folder INBOX, to 2020-12-31)");
        let p = ListParams {
            q: "from:a@b".into(),
            ..ListParams::default()
        };
        assert_eq!(describe(&p), "from:a@b");
    }
}
