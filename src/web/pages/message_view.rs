//! One message: its page, its sanitised body (in a sandboxed frame), the original, attachments
//! and inline images. Every read is audited, and every lookup goes through the reader's grants:
//! a message they may not see is "not found", exactly like one that does not exist.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::Query;
use serde::Deserialize;

use crate::archive::listing::Listing;
use crate::archive::reading::{self, MessageRow, Part, Rendered, safe_filename};
use crate::archive::threads::{self, ThreadEntry};
use crate::audit::{Action, AuditEvent, Target};
use crate::auth::Permission;
use crate::error::{Error, Result};
use crate::render::format;
use crate::render::html::{HtmlOptions, sanitize_email_html};
use crate::render::text::text_to_html;
use crate::scan::ScanStatus;
use crate::web::http::download;
use crate::web::http::extract::{CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;
use crate::web::pages::message_list::ListParams;

/// The body frame may show inline styles and this archive's images, nothing else; no script,
/// no forms, no plugins, and links open outside. Remote images only on request.
const BODY_CSP: &str = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; \
    frame-ancestors 'self'; form-action 'none'; base-uri 'none'; \
    sandbox allow-popups allow-popups-to-escape-sandbox";
const BODY_CSP_REMOTE: &str = "default-src 'none'; img-src 'self' data: https: http:; \
    style-src 'unsafe-inline'; frame-ancestors 'self'; form-action 'none'; base-uri 'none'; \
    sandbox allow-popups allow-popups-to-escape-sandbox";
/// The routes of one message: view, raw download, attachments, inline parts.
pub fn area() -> Area {
    Area::new()
        .get("/messages/{id}", view)
        .get("/messages/{id}/body", body)
        .get("/messages/{id}/raw", raw)
        .get("/messages/{id}/attachments/{n}", attachment)
        .get("/messages/{id}/cid/{cid}", inline_part)
}

pub(crate) async fn find(state: &AppState, user: &CurrentUser, id: i64) -> Result<MessageRow> {
    reading::find(&state.pool, &user.grants, id)
        .await?
        .ok_or(Error::NotFound)
}

pub(crate) async fn audit(
    state: &AppState,
    user: &CurrentUser,
    action: Action,
    row: &MessageRow,
) -> Result<()> {
    let event = AuditEvent::by(&user.actor, action)
        .target(Target::Message(row.id))
        .details(serde_json::json!({ "account": row.account_name, "sha256": row.sha256_hex() }));
    state.audit.record(event).await.map(|_| ())
}

struct AttachmentView {
    index: usize,
    name: String,
    content_type: String,
    size: String,
    /// How reading its text for search went ("" until the background stage looked).
    text_note: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "messages/view.html")]
struct ViewPage {
    page: PageContext,
    m: MessageRow,
    date: String,
    verdict_label: String,
    archived_from: String,
    attachments: Vec<AttachmentView>,
    headers: Vec<(String, String)>,
    has_html: bool,
    text_html: String,
    remote_images_blocked: usize,
    remote: bool,
    thread: Vec<(ThreadEntry, String)>,
    can_download_attachments: bool,
    can_export: bool,
    can_delete: bool,
    can_hold: bool,
    /// Under a legal hold (badge; deletion would keep it).
    held: bool,
    /// Labels (Gmail) as tags, each with the search for its mail.
    labels: Vec<(String, Option<String>)>,
    search: SearchContext,
}

#[derive(Debug, Default, Deserialize)]
struct BodyParams {
    #[serde(default)]
    remote: String,
}

#[derive(Debug, Default, Deserialize)]
struct ViewParams {
    #[serde(default)]
    remote: String,
    /// The list page's query string the reader came from (see `ListParams::back_param`).
    #[serde(default)]
    back: String,
}

/// The search a message was opened from: the link back to it, and the newer and older
/// results beside this message (within the reader's grants, like the list itself).
struct SearchContext {
    back_link: String,
    /// `?back=…`, kept on the previous/next links so the way back survives stepping.
    back_param: String,
    newer: Option<i64>,
    older: Option<i64>,
}

async fn search_context(
    state: &AppState,
    user: &CurrentUser,
    back: &str,
    m: &MessageRow,
) -> Result<SearchContext> {
    let params: ListParams = serde_html_form::from_str(back).unwrap_or_default();
    let page = params.page_query_string();
    let parsed = params.parse();
    let (newer, older) = if parsed.problem.is_some() {
        (None, None)
    } else {
        Listing {
            grants: &user.grants,
            query: &parsed.query,
            filters: &parsed.filters,
            sort: parsed.sort,
        }
        .neighbours(&state.pool, m.id, m.sort_date)
        .await?
    };
    Ok(SearchContext {
        back_link: if page.is_empty() {
            "/messages".into()
        } else {
            format!("/messages?{page}")
        },
        back_param: params.back_param(),
        newer,
        older,
    })
}

async fn view(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    Path(id): Path<i64>,
    Query(params): Query<ViewParams>,
) -> Result<ViewPage> {
    let m = find(&state, &user, id).await?;
    let search = search_context(&state, &user, &params.back, &m).await?;
    let original = reading::raw(&state.pool, &m).await?;
    let rendered = reading::render_parts(original, false).await?;
    audit(&state, &user, Action::MailView, &m).await?;
    let remote = params.remote == "1";
    let remote_images_blocked = match (&rendered.html_body, remote) {
        (Some(html), false) => {
            sanitize_email_html(
                html,
                HtmlOptions {
                    message_id: m.id,
                    load_remote_images: false,
                },
            )
            .remote_images_blocked
        }
        _ => 0,
    };
    let thread = threads::conversation(&state.pool, &user.grants, &m)
        .await?
        .into_iter()
        .map(|t| {
            let when = user.format_time(t.sort_date);
            (t, when)
        })
        .collect();
    let Rendered {
        html_body,
        text_body,
        headers,
        attachments,
    } = rendered;
    let notes = if attachments.is_empty() {
        Vec::new()
    } else {
        reading::attachment_notes(&state.pool, m.id).await?
    };
    Ok(ViewPage {
        page: PageContext::for_user(
            m.subject.clone().unwrap_or_else(|| "(no subject)".into()),
            "/messages",
            &user,
        ),
        date: m
            .date
            .map(|d| user.format_time(d))
            .unwrap_or_else(|| format!("{} (no Date header)", user.format_time(m.sort_date))),
        verdict_label: m.scan_status.label(),
        archived_from: format!("{} / {}", m.account_name, m.folder),
        attachments: attachments
            .iter()
            .map(|p| attachment_view(p, &notes))
            .collect(),
        headers,
        has_html: html_body.is_some(),
        text_html: if html_body.is_none() {
            text_to_html(text_body.as_deref().unwrap_or(""))
        } else {
            String::new()
        },
        remote_images_blocked,
        remote,
        thread,
        can_download_attachments: reading::bytes_may_leave(
            m.scan_status,
            user.can(Permission::ManageQuarantine),
        ),
        can_export: user.can(Permission::ExportMail),
        can_delete: user.can(Permission::DeleteMail),
        can_hold: user.can(Permission::ManageRetention),
        held: crate::retention::holds::held_among(&state.pool, &[id])
            .await?
            .contains(&id),
        labels: crate::archive::labels::of_message(&mut *state.pool.acquire().await?, id)
            .await?
            .into_iter()
            .map(|name| {
                let href = label_search(&name);
                (name, href)
            })
            .collect(),
        search,
        m,
    })
}

/// The list of a label's mail: `/messages?q=label:"NAME"`; None for a name the search box
/// cannot quote.
fn label_search(name: &str) -> Option<String> {
    (!name.contains('"')).then(|| {
        format!(
            "/messages?q={}",
            crate::render::html::percent_encode(&format!("label:\"{name}\""))
        )
    })
}

fn attachment_view(p: &Part, notes: &[(i32, String)]) -> AttachmentView {
    AttachmentView {
        index: p.index,
        name: safe_filename(p.filename.as_deref(), &format!("attachment-{}", p.index)),
        content_type: p.content_type.clone(),
        size: format::size(p.size as u64),
        text_note: notes
            .iter()
            .find(|(i, _)| *i as usize == p.index)
            .map(|(_, n)| n.clone())
            .unwrap_or_default(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "messages/body.html")]
struct BodyDocument {
    html: String,
}

/// `GET /messages/{id}/body`: the sanitised HTML (or escaped text) as a document of its own,
/// for the sandboxed iframe on the message page.
async fn body(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    Path(id): Path<i64>,
    Query(params): Query<BodyParams>,
) -> Result<Response> {
    let m = find(&state, &user, id).await?;
    // The same one parse per message as its inline images (see `reading::InlineCache`).
    let rendered = state
        .inline_images
        .get_or_load(m.id, reading::raw(&state.pool, &m))
        .await?;
    let remote = params.remote == "1";
    audit(&state, &user, Action::MailBody, &m).await?;
    let html = match (&rendered.html_body, &rendered.text_body) {
        (Some(html), _) => {
            sanitize_email_html(
                html,
                HtmlOptions {
                    message_id: m.id,
                    load_remote_images: remote,
                },
            )
            .html
        }
        (None, text) => format!("<pre>{}</pre>", text_to_html(text.as_deref().unwrap_or(""))),
    };
    let mut response = BodyDocument { html }.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if remote { BODY_CSP_REMOTE } else { BODY_CSP }),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// Bytes of infected or not-yet-scanned mail leave only for `manage_quarantine`.
pub(crate) fn held_back(m: &MessageRow, user: &CurrentUser) -> Result<()> {
    if reading::bytes_may_leave(m.scan_status, user.can(Permission::ManageQuarantine)) {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

/// `GET /messages/{id}/raw`: the original bytes as an .eml download.
pub(crate) async fn raw(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    Path(id): Path<i64>,
) -> Result<Response> {
    let m = find(&state, &user, id).await?;
    held_back(&m, &user)?;
    let bytes = reading::raw(&state.pool, &m).await?;
    audit(&state, &user, Action::MailDownload, &m).await?;
    let subject: String = m
        .subject
        .as_deref()
        .unwrap_or("message")
        .chars()
        .take(80)
        .collect();
    let name = format!("{}.eml", safe_filename(Some(&subject), "message"));
    // Not message/rfc822: a browser (or mail client) must save it, never open it.
    Ok(download::attachment(
        &name,
        "application/octet-stream",
        bytes,
    ))
}

/// `GET /messages/{id}/attachments/{n}`: always a download, never rendered.
pub(crate) async fn attachment(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    Path((id, n)): Path<(i64, usize)>,
) -> Result<Response> {
    let m = find(&state, &user, id).await?;
    held_back(&m, &user)?;
    let p = reading::one_part(reading::raw(&state.pool, &m).await?, n)
        .await?
        .ok_or(Error::NotFound)?;
    let event = AuditEvent::by(&user.actor, Action::MailAttachment)
        .target(Target::Message(m.id))
        .details(serde_json::json!({ "part": n, "name": p.filename, "size": p.size }));
    state.audit.record(event).await?;
    let name = safe_filename(p.filename.as_deref(), &format!("attachment-{n}"));
    Ok(download::attachment(
        &name,
        "application/octet-stream",
        p.bytes,
    ))
}

/// `GET /messages/{id}/cid/{cid}`: an inline image of this message, for its body frame. Only
/// plain raster image types are served; anything else is not found.
async fn inline_part(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    Path((id, cid)): Path<(i64, String)>,
) -> Result<Response> {
    let m = find(&state, &user, id).await?;
    held_back(&m, &user)?;
    // One parse per message for all its images and all readers (see `reading::InlineCache`).
    let images = state
        .inline_images
        .get_or_load(m.id, reading::raw(&state.pool, &m))
        .await?;
    let (content_type, bytes) = images.get(&cid).ok_or(Error::NotFound)?;
    let event = AuditEvent::by(&user.actor, Action::MailInlineImage)
        .target(Target::Message(m.id))
        .details(serde_json::json!({ "cid": cid, "size": bytes.len() }));
    state.audit.record(event).await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        bytes,
    )
        .into_response())
}
