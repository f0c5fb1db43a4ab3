//! `/api/v1/messages…`: search (the list page's query language, filters and keyset paging),
//! one message's metadata, its original, its attachments and its conversation. Each calls
//! what the web pages call and writes the same audit rows.

use axum::extract::{MatchedPath, Path, State};
use axum::response::Response;
use axum_extra::extract::Query;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use super::{audit_read, json};
use crate::archive::listing::{Cursor, MessageSummary};
use crate::archive::reading;
use crate::archive::threads;
use crate::audit::{Action, AuditEvent, Target};
use crate::error::{Error, Result};
use crate::web::http::extract::{Require, perm};
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;
use crate::web::pages::message_list::{ListParams, cursor_context, search_page};
use crate::web::pages::message_view;

/// The routes of messages in the API.
pub fn area() -> Area {
    Area::new()
        .get("/api/v1/messages", search)
        .get("/api/v1/messages/{id}", metadata)
        .get("/api/v1/messages/{id}/raw", raw)
        .get("/api/v1/messages/{id}/attachments/{n}", attachment)
        .get("/api/v1/messages/{id}/thread", thread)
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Search parameters: the same as the web list's query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Search text in the query language (see the search help page).
    #[serde(default)]
    pub q: String,
    /// Archive account id.
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub folder: String,
    /// First day, YYYY-MM-DD (UTC).
    #[serde(default)]
    pub from: String,
    /// Last day, YYYY-MM-DD (UTC), inclusive.
    #[serde(default)]
    pub to: String,
    /// `1`: only messages with attachments.
    #[serde(default)]
    pub attachments: String,
    /// Scan verdict: clean, infected, pending, too_large, …
    #[serde(default)]
    pub verdict: String,
    /// `newest` (default) or `relevance`.
    #[serde(default)]
    pub sort: String,
    /// The `next` cursor of the previous page.
    #[serde(default)]
    pub after: String,
    /// Messages per page, 1–500 (default: the user's page size).
    pub limit: Option<i64>,
}

impl SearchParams {
    fn list_params(&self) -> ListParams {
        ListParams {
            q: self.q.clone(),
            account: self.account.clone(),
            folder: self.folder.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            attachments: self.attachments.clone(),
            verdict: self.verdict.clone(),
            sort: self.sort.clone(),
            after: self.after.clone(),
            format: String::new(),
        }
    }
}

/// One message in a list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageItem {
    pub id: i64,
    pub account_id: i64,
    pub account: String,
    pub folder: String,
    /// RFC 3339.
    pub date: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub snippet: Option<String>,
    pub attachments: i32,
    pub size: i64,
    pub verdict: String,
    pub virus: Option<String>,
    /// Labels (Gmail), by the names the UI's tags show.
    #[serde(default)]
    pub labels: Vec<String>,
}

impl From<MessageSummary> for MessageItem {
    fn from(m: MessageSummary) -> Self {
        MessageItem {
            id: m.id,
            account_id: m.account_id,
            account: m.account_name,
            folder: m.folder,
            date: rfc3339(m.sort_date),
            from: m.from_addr,
            to: m.to_addrs,
            subject: m.subject,
            snippet: m.snippet,
            attachments: m.attachment_count,
            size: m.size,
            verdict: m.scan_status.as_str().to_string(),
            virus: m.virus_name,
            labels: m.labels,
        }
    }
}

/// A page of search results.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchPage {
    pub items: Vec<MessageItem>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
    /// Matches, counted up to `count_cap`.
    pub count: i64,
    pub count_cap: i64,
}

/// Search messages (or list them, without `q`), newest first or by relevance.
#[utoipa::path(get, path = "/api/v1/messages", tag = "mail", params(SearchParams),
    security(("token" = ["mail:read"])),
    responses((status = 200, body = SearchPage), (status = 422, body = super::problem::Problem)))]
pub async fn search(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    Query(params): Query<SearchParams>,
) -> Result<Response> {
    let list = params.list_params();
    let parsed = list.parse();
    if let Some(problem) = &parsed.problem {
        return Err(Error::invalid("q", problem.clone()));
    }
    // Cursors are signed for this user and this search, exactly as the list page signs them.
    let context = cursor_context(user.id, &list.to_query_string());
    let cursor = Cursor::verify(&params.after, &state.keys.session, &context);
    if !params.after.is_empty() && cursor.is_none() {
        return Err(Error::invalid(
            "after",
            "not a cursor from a previous page of this search",
        ));
    }
    let limit = params
        .limit
        .unwrap_or(i64::from(user.page_size))
        .clamp(1, 500);
    let (page, count) = search_page(&state.pool, &user.grants, &parsed, cursor, limit).await?;
    let event = AuditEvent::by(&user.actor, Action::MailSearch)
        .reach(&user.grants)
        .details(serde_json::json!({
            "query": params.q,
            "filters": list.to_query_string(),
            "after": params.after,
        }));
    state.audit.record(event).await?;
    Ok(json(&SearchPage {
        items: page.items.into_iter().map(MessageItem::from).collect(),
        next: page.next.map(|c| c.sign(&state.keys.session, &context)),
        count: count.min(crate::web::pages::message_list::COUNT_CAP),
        count_cap: crate::web::pages::message_list::COUNT_CAP,
    }))
}

/// One attachment of a message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttachmentInfo {
    /// Use as `{n}` in `/attachments/{n}`.
    pub index: usize,
    pub filename: Option<String>,
    pub content_type: String,
    pub size: usize,
}

/// A message's metadata.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageDetail {
    pub id: i64,
    pub account_id: i64,
    pub account: String,
    pub folder: String,
    pub uid: Option<i64>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    /// The Date header, RFC 3339; absent when the message has none.
    pub date: Option<String>,
    pub sort_date: String,
    pub size: i64,
    /// SHA-256 of the original, hex.
    pub sha256: String,
    pub verdict: String,
    pub virus: Option<String>,
    pub in_reply_to: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
    /// Whether the original and attachments may be downloaded by this token.
    pub downloadable: bool,
}

/// A message's metadata and attachment list (audited like opening it on the web).
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "mail",
    params(("id" = i64, Path, description = "Message id")),
    security(("token" = ["mail:read"])),
    responses((status = 200, body = MessageDetail), (status = 404, body = super::problem::Problem)))]
pub async fn metadata(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    Path(id): Path<i64>,
) -> Result<Response> {
    let m = message_view::find(&state, &user, id).await?;
    let rendered = reading::render_parts(reading::raw(&state.pool, &m).await?, false).await?;
    message_view::audit(&state, &user, Action::MailView, &m).await?;
    let downloadable = message_view::held_back(&m, &user).is_ok();
    Ok(json(&MessageDetail {
        id: m.id,
        account_id: m.account_id,
        sha256: m.sha256_hex(),
        account: m.account_name,
        folder: m.folder,
        uid: m.uid,
        message_id: m.message_id,
        subject: m.subject,
        from: m.from_addr,
        to: m.to_addrs,
        cc: m.cc_addrs,
        date: m.date.map(rfc3339),
        sort_date: rfc3339(m.sort_date),
        size: m.size,
        verdict: m.scan_status.as_str().to_string(),
        virus: m.virus_name,
        in_reply_to: m.in_reply_to,
        attachments: rendered
            .attachments
            .iter()
            .map(|p| AttachmentInfo {
                index: p.index,
                filename: p.filename.clone(),
                content_type: p.content_type.clone(),
                size: p.size,
            })
            .collect(),
        downloadable,
    }))
}

/// The original message (.eml). Infected or unscanned mail only with `manage_quarantine`.
#[utoipa::path(get, path = "/api/v1/messages/{id}/raw", tag = "mail",
    params(("id" = i64, Path, description = "Message id")),
    security(("token" = ["mail:read"])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)))]
pub async fn raw(
    state: State<AppState>,
    user: Require<perm::ViewMail>,
    id: Path<i64>,
) -> Result<Response> {
    message_view::raw(state, user, id).await
}

/// One attachment, as a download.
#[utoipa::path(get, path = "/api/v1/messages/{id}/attachments/{n}", tag = "mail",
    params(("id" = i64, Path, description = "Message id"),
        ("n" = usize, Path, description = "Attachment index from the message's metadata")),
    security(("token" = ["mail:read"])),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)))]
pub async fn attachment(
    state: State<AppState>,
    user: Require<perm::ViewMail>,
    path: Path<(i64, usize)>,
) -> Result<Response> {
    message_view::attachment(state, user, path).await
}

/// A message of a conversation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ThreadItem {
    pub id: i64,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub date: String,
}

/// The conversation a message belongs to, oldest first (only messages this token may read).
#[utoipa::path(get, path = "/api/v1/messages/{id}/thread", tag = "mail",
    params(("id" = i64, Path, description = "Message id")),
    security(("token" = ["mail:read"])),
    responses((status = 200, body = Vec<ThreadItem>), (status = 404, body = super::problem::Problem)))]
pub async fn thread(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    route: MatchedPath,
    Path(id): Path<i64>,
) -> Result<Response> {
    let m = message_view::find(&state, &user, id).await?;
    let items: Vec<ThreadItem> = threads::conversation(&state.pool, &user.grants, &m)
        .await?
        .into_iter()
        .map(|t| ThreadItem {
            id: t.id,
            subject: t.subject,
            from: t.from_addr,
            date: rfc3339(t.sort_date),
        })
        .collect();
    audit_read(
        &state,
        &user,
        &route,
        Target::Message(m.id),
        serde_json::json!({ "messages": items.len() }),
    )
    .await?;
    Ok(json(&items))
}
