//! The archive accounts a reader may see, always filtered through their `Grants`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};

use crate::auth::grants::visible_account;
use crate::auth::{VisibleAccount, visible_accounts};
use crate::error::{Error, Result};
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

#[derive(Template, WebTemplate)]
#[template(path = "archives/show.html")]
struct ShowPage {
    page: PageContext,
    account: VisibleAccount,
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
    Ok(ShowPage {
        page: PageContext::for_user(account.name.clone(), "/archives", &user),
        account,
    })
}
