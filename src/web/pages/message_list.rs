//! The message list: browsing, the search language, filters, and exports of what was found.

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::Query;
use futures::StreamExt;
use serde::Deserialize;
use time::Date;
use time::macros::format_description;

use crate::archive::export::{self, Format};
use crate::archive::listing::{Cursor, Filters, Listing, MessageSummary, Sort};
use crate::archive::search::{self, Query as SearchQuery};
use crate::audit::{Action, AuditEvent};
use crate::auth::{VisibleAccount, visible_accounts};
use crate::error::{Error, Result};
use crate::web::http::download;
use crate::web::http::extract::{CsrfForm, CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// Counting stops here so the count stays cheap on a huge archive ("10,000+").
pub const COUNT_CAP: i64 = 10_000;
/// The most messages one export of search results may hold.
pub const EXPORT_MAX: i64 = 1_000_000;

/// The routes of the message list, search and bulk export.
pub fn area() -> Area {
    Area::new()
        .get("/messages", list)
        .get("/messages/search-help", help)
        .get("/messages/export", export_results)
        .post("/messages/export", export_selected)
}

/// The list page's query string. Everything is optional; bad values are explained, not fatal.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub folder: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub attachments: String,
    #[serde(default)]
    pub verdict: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub after: String,
    #[serde(default)]
    pub format: String,
}

/// Parsed list parameters, or the message explaining what was wrong.
pub(crate) struct Parsed {
    pub query: SearchQuery,
    pub filters: Filters,
    pub sort: Sort,
    pub problem: Option<String>,
}

fn day(text: &str) -> Option<Date> {
    Date::parse(text.trim(), format_description!("[year]-[month]-[day]")).ok()
}

impl ListParams {
    pub(crate) fn parse(&self) -> Parsed {
        let mut problem = None;
        let query = search::parse(&self.q).unwrap_or_else(|e| {
            problem = Some(format!(
                "Your search could not be read: {e}. See the search help."
            ));
            SearchQuery::default()
        });
        let mut date = |text: &str, label: &str| {
            if text.trim().is_empty() {
                return None;
            }
            let parsed = day(text);
            if parsed.is_none() {
                problem.get_or_insert(format!("The {label} date must look like 2024-01-31."));
            }
            parsed
        };
        let from_day = date(&self.from, "from");
        let to_day = date(&self.to, "to");
        let filters = Filters {
            account_id: self.account.trim().parse().ok(),
            folder: Some(self.folder.trim().to_string()).filter(|f| !f.is_empty()),
            from_day,
            to_day,
            has_attachment: self.attachments == "1" || self.attachments == "on",
            verdict: Some(self.verdict.trim().to_string()).filter(|v| !v.is_empty()),
        };
        let sort = if self.sort == "relevance" {
            Sort::Relevance
        } else {
            Sort::Newest
        };
        Parsed {
            query,
            filters,
            sort,
            problem,
        }
    }

    /// The same search as a query string, without the page cursor.
    pub fn to_query_string(&self) -> String {
        let pairs = [
            ("q", &self.q),
            ("account", &self.account),
            ("folder", &self.folder),
            ("from", &self.from),
            ("to", &self.to),
            ("attachments", &self.attachments),
            ("verdict", &self.verdict),
            ("sort", &self.sort),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", crate::render::html::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// This very page of this search as a query string: the search and its page cursor.
    pub fn page_query_string(&self) -> String {
        let search = self.to_query_string();
        match (search.is_empty(), self.after.is_empty()) {
            (_, true) => search,
            (true, false) => format!("after={}", crate::render::html::percent_encode(&self.after)),
            (false, false) => format!(
                "{search}&after={}",
                crate::render::html::percent_encode(&self.after)
            ),
        }
    }

    /// What a message link carries so the message page can lead back to this page of this
    /// search and step to the previous and next result: `?back=<page query string>` (empty
    /// for the plain first page).
    pub fn back_param(&self) -> String {
        let page = self.page_query_string();
        if page.is_empty() {
            page
        } else {
            format!("?back={}", crate::render::html::percent_encode(&page))
        }
    }
}

/// One row as the template shows it.
struct Row {
    id: i64,
    date: String,
    /// No Date header: `date` is the arrival time (marked, so it is not read as the sent date).
    undated: bool,
    from: String,
    to: String,
    subject: String,
    snippet_html: String,
    attachments: i32,
    verdict: String,
    verdict_class: String,
    virus: String,
    place: String,
    /// Under a legal hold (badge).
    held: bool,
    /// Labels (Gmail) as tags.
    labels: Vec<String>,
}

fn row(user: &CurrentUser, m: MessageSummary, query: &SearchQuery) -> Row {
    Row {
        id: m.id,
        date: user.format_time(m.sort_date),
        undated: m.undated,
        from: m.from_addr.unwrap_or_default(),
        to: m.to_addrs.unwrap_or_default(),
        subject: m.subject.unwrap_or_else(|| "(no subject)".into()),
        snippet_html: crate::render::highlight::highlight(
            m.snippet.as_deref().unwrap_or(""),
            query,
        ),
        attachments: m.attachment_count,
        verdict: m.scan_status.label(),
        verdict_class: m.scan_status.css_class(),
        virus: m.virus_name.unwrap_or_default(),
        place: format!("{} / {}", m.account_name, m.folder),
        held: false,
        labels: m.labels,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "messages/list.html")]
struct ListPage {
    page: PageContext,
    params: ListParams,
    accounts: Vec<VisibleAccount>,
    rows: Vec<Row>,
    count_text: String,
    problem: Option<String>,
    next_link: Option<String>,
    first_link: Option<String>,
    can_export: bool,
    can_delete: bool,
    can_hold: bool,
    searching: bool,
    /// Appended to each message link: the way back to this page (see `back_param`).
    back: String,
    /// This page's query string, sent with the selection so a refusal can show it again.
    page_query: String,
    action_problem: String,
    /// "Delete all 12 results" (or "Delete all results" when the count was capped).
    delete_all_text: String,
}

impl ListPage {
    /// Whether rows get a checkbox: some action takes a selection.
    fn can_select(&self) -> bool {
        self.can_export || self.can_delete || self.can_hold
    }
}

async fn list(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    Query(params): Query<ListParams>,
) -> Result<ListPage> {
    list_page(&state, &user, params, String::new()).await
}

/// The list page for `params`; `action_problem` says why an action on the selection did not
/// happen (shown above the list, which stays as it was).
async fn list_page(
    state: &AppState,
    user: &CurrentUser,
    params: ListParams,
    action_problem: String,
) -> Result<ListPage> {
    let parsed = params.parse();
    // Page links are signed for this reader and this search; a made-up or edited `after` is
    // ignored, so it shows the first page — and is audited as a search like any first page.
    let base = params.to_query_string();
    let cursor_context = cursor_context(user.id, &base);
    let cursor = Cursor::verify(&params.after, &state.keys.session, &cursor_context);
    let (rows, next, count_text, delete_all_text) = if parsed.problem.is_some() {
        (Vec::new(), None, String::new(), String::new())
    } else {
        let page_size = i64::from(user.page_size.clamp(10, 200));
        let (page, count) =
            search_page(&state.pool, &user.grants, &parsed, cursor, page_size).await?;
        let noun = if count == 1 { "message" } else { "messages" };
        let delete_all_text = match count {
            1 => "Delete the 1 result".to_string(),
            n if n > COUNT_CAP => "Delete all results".to_string(),
            n => format!("Delete all {} results", crate::render::format::count(n)),
        };
        let count_text = if count > COUNT_CAP {
            format!(
                "More than {} {noun}",
                crate::render::format::count(COUNT_CAP)
            )
        } else {
            format!("{} {noun}", crate::render::format::count(count))
        };
        let ids: Vec<i64> = page.items.iter().map(|m| m.id).collect();
        let held = crate::retention::holds::held_among(&state.pool, &ids).await?;
        let rows = page
            .items
            .into_iter()
            .map(|m| {
                let is_held = held.contains(&m.id);
                Row {
                    held: is_held,
                    ..row(user, m, &parsed.query)
                }
            })
            .collect();
        (rows, page.next, count_text, delete_all_text)
    };
    let searching = !parsed.query.is_empty();
    // A page shown again after a refused action was audited when it was first shown.
    if searching && cursor.is_none() && action_problem.is_empty() {
        let event = AuditEvent::by(&user.actor, Action::MailSearch)
            .reach(&user.grants)
            .details(serde_json::json!({ "query": params.q, "filters": params.to_query_string() }));
        state.audit.record(event).await?;
    }
    Ok(ListPage {
        page: PageContext::for_user("Messages", "/messages", user),
        accounts: visible_accounts(&state.pool, &user.grants).await?,
        next_link: next.map(|c| {
            let signed = c.sign(&state.keys.session, &cursor_context);
            format!("/messages?{base}&after={signed}")
        }),
        first_link: cursor.map(|_| format!("/messages?{base}")),
        can_export: user.can(crate::auth::Permission::ExportMail),
        can_delete: user.can(crate::auth::Permission::DeleteMail),
        can_hold: user.can(crate::auth::Permission::ManageRetention),
        problem: parsed.problem,
        rows,
        count_text,
        back: params.back_param(),
        page_query: params.page_query_string(),
        action_problem,
        params,
        searching,
        delete_all_text,
    })
}

/// What a page cursor is signed for: this reader and this search (the list page and the API
/// sign and check the same way, so each accepts the other's links).
pub(crate) fn cursor_context(user_id: i64, query_string: &str) -> String {
    format!("{user_id}\n{query_string}")
}

/// One page of a list or search and the (capped) number of matches: what the list page shows,
/// and what the API's search returns.
pub(crate) async fn search_page(
    pool: &sqlx::PgPool,
    grants: &crate::auth::Grants,
    parsed: &Parsed,
    cursor: Option<Cursor>,
    page_size: i64,
) -> Result<(crate::archive::listing::Page, i64)> {
    let listing = Listing {
        grants,
        query: &parsed.query,
        filters: &parsed.filters,
        sort: parsed.sort,
    };
    let count = listing.count(pool, COUNT_CAP).await?;
    let page = listing.page_counted(pool, cursor, page_size, count).await?;
    Ok((page, count))
}

#[derive(Template, WebTemplate)]
#[template(path = "messages/help.html")]
struct HelpPage {
    page: PageContext,
}

async fn help(user: Require<perm::ViewMail>) -> HelpPage {
    HelpPage {
        page: PageContext::for_user("Search help", "/messages", &user),
    }
}

/// `GET /messages/export?format=zip&q=…`: every result of the search.
async fn export_results(
    State(state): State<AppState>,
    user: Require<perm::ExportMail>,
    Query(params): Query<ListParams>,
) -> Result<Response> {
    let parsed = params.parse();
    if let Some(problem) = parsed.problem {
        return Err(Error::invalid("q", problem));
    }
    let listing = Listing {
        grants: &user.grants,
        query: &parsed.query,
        filters: &parsed.filters,
        sort: Sort::Newest,
    };
    let ids = listing.all_ids(&state.pool, EXPORT_MAX).await?;
    let details = serde_json::json!({ "query": params.q, "filters": params.to_query_string() });
    stream_export(state, &user, ids, &params.format, details).await
}

#[derive(Debug, Deserialize)]
struct SelectedForm {
    #[serde(default)]
    id: Vec<i64>,
    #[serde(default)]
    format: String,
    /// The list page the form was on (its query string), shown again if nothing was ticked.
    #[serde(default)]
    page: String,
}

/// `POST /messages/export`: the messages ticked in the list.
async fn export_selected(
    State(state): State<AppState>,
    user: Require<perm::ExportMail>,
    CsrfForm(form): CsrfForm<SelectedForm>,
) -> Result<Response> {
    if form.id.is_empty() {
        let params: ListParams = serde_html_form::from_str(&form.page).unwrap_or_default();
        let problem =
            "Nothing was exported: tick the messages to export first, or use “All results”.";
        let page = list_page(&state, &user, params, problem.into()).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let details = serde_json::json!({ "selected": form.id.len() });
    stream_export(state, &user, form.id, &form.format, details).await
}

/// Streams the export to the browser as it is written; the audit row is written first, so an
/// export is never missing from the log even if the download is interrupted.
async fn stream_export(
    state: AppState,
    user: &CurrentUser,
    ids: Vec<i64>,
    format: &str,
    details: serde_json::Value,
) -> Result<Response> {
    let (ids, format, info, held) = begin_export(&state, user, ids, format, details).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(16);
    let writer = ChannelWriter { tx: tx.clone() };
    let grants = user.grants.clone();
    tokio::spawn(async move {
        let done = export::export(
            &state.pool,
            &grants,
            held,
            ids,
            format,
            info,
            writer,
            |_| {},
        )
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %crate::error::chain(&e), "export stopped");
            let _ = tx.send(Err(std::io::Error::other("export stopped"))).await;
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let name = format!("daygle-export.{}", format.extension());
    let mut response = download::attachment(&name, format.content_type(), body);
    *response.status_mut() = StatusCode::OK;
    Ok(response.into_response())
}

/// What every export starts with, on the web and through the API: the ids that will really
/// leave (those the reader may read, checked in the query), the audit row naming them
/// (written first, so an export is never missing from the log even if the download is
/// interrupted), the manifest's facts, and whether held-back mail may go in.
pub(crate) async fn begin_export(
    state: &AppState,
    user: &CurrentUser,
    ids: Vec<i64>,
    format: &str,
    mut details: serde_json::Value,
) -> Result<(Vec<i64>, Format, export::ExportInfo, export::HeldMail)> {
    let format = Format::parse(format).unwrap_or(Format::Zip);
    let ids = export::readable_ids(&state.pool, &user.grants, &ids).await?;
    details["format"] = format.extension().into();
    if let (Some(d), serde_json::Value::Object(listed)) =
        (details.as_object_mut(), export::id_list_details(&ids))
    {
        d.extend(listed);
    }
    let query = match details.get("query").and_then(|q| q.as_str()) {
        Some(q) => format!(
            "{q} {}",
            details
                .get("filters")
                .and_then(|f| f.as_str())
                .unwrap_or("")
        ),
        None => format!("{} selected messages", ids.len()),
    };
    let accounts = crate::archive::messages::accounts_of(&state.pool, &ids).await?;
    let event = AuditEvent::by(&user.actor, Action::MailExport)
        .accounts(accounts)
        .details(details);
    let seq = state.audit.record(event).await?;
    let info = export::ExportInfo::new(&user.actor.username, &query, format.extension(), Some(seq));
    let held = if user.can(crate::auth::Permission::ManageQuarantine) {
        export::HeldMail::Include
    } else {
        export::HeldMail::Withhold
    };
    Ok((ids, format, info, held))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// A blocking `Write` that hands each chunk to the HTTP body; it blocks when the client reads
/// slowly, which is what keeps an export's memory bounded.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
