//! The archive accounts a reader may see, always filtered through their `Grants`: each with
//! its folders and counts, every folder a link into the search.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};

use crate::archive::folders;
use crate::auth::grants::visible_account;
use crate::auth::{VisibleAccount, visible_accounts};
use crate::error::{Error, Result};
use crate::render::format;
use crate::web::http::extract::{Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// The routes of the archives overview.
pub fn area() -> Area {
    Area::new()
        .get("/archives", list)
        .get("/archives/{id}", show)
}

#[derive(Template, WebTemplate)]
#[template(path = "archives/list.html")]
struct ListPage {
    page: PageContext,
    accounts: Vec<VisibleAccount>,
}

async fn list(State(state): State<AppState>, user: Require<perm::ViewMail>) -> Result<ListPage> {
    Ok(ListPage {
        accounts: visible_accounts(&state.pool, &user.grants).await?,
        page: PageContext::for_user("Archives", "/archives", &user),
    })
}

/// One folder line: its name, count, newest message and the search that lists it.
struct FolderLine {
    name: String,
    messages: String,
    newest: String,
    search: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "archives/show.html")]
struct ShowPage {
    page: PageContext,
    account: VisibleAccount,
    folders: Vec<FolderLine>,
    total: String,
    /// Administrators manage the account (sync, settings) on its account page.
    can_manage: bool,
}

/// 404 for accounts that do not exist *and* for ones not granted: no probing.
async fn show(
    State(state): State<AppState>,
    user: Require<perm::ViewMail>,
    Path(id): Path<i64>,
) -> Result<ShowPage> {
    let account = visible_account(&state.pool, &user.grants, id)
        .await?
        .ok_or(Error::NotFound)?;
    let counts = folders::of_account(&state.pool, &user.grants, id).await?;
    let total: i64 = counts.iter().map(|f| f.messages).sum();
    let folders = counts
        .into_iter()
        .map(|f| FolderLine {
            search: format!(
                "/messages?account={id}&folder={}",
                crate::render::html::percent_encode(&f.folder)
            ),
            messages: format::count(f.messages),
            newest: user.format_when(f.newest),
            name: f.folder,
        })
        .collect();
    Ok(ShowPage {
        page: PageContext::for_user(account.name.clone(), "/archives", &user),
        can_manage: user.can(crate::auth::Permission::ManageAccounts),
        total: format!(
            "{} {}",
            format::count(total),
            if total == 1 { "message" } else { "messages" }
        ),
        folders,
        account,
    })
}
