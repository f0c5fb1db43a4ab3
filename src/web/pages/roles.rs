//! `/roles`: the system roles (read-only) and custom roles built from permissions.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::Permission;
use crate::auth::manage_roles;
use crate::auth::roles::{self, Role, RoleInput};
use crate::error::Result;
use crate::web::http::extract::{Confirmed, CsrfForm, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

/// The routes of the roles pages.
pub fn area() -> Area {
    Area::new()
        .get("/roles", list)
        .get("/roles/new", new_page)
        .post("/roles", create)
        .get("/roles/{id}", edit_page)
        .post("/roles/{id}", update)
        .post("/roles/{id}/delete", delete)
}

type RoleAdmin = Require<perm::ManageRoles>;

#[derive(Template, WebTemplate)]
#[template(path = "roles/list.html")]
struct ListPage {
    page: PageContext,
    roles: Vec<Role>,
}

async fn list(State(state): State<AppState>, user: RoleAdmin) -> Result<ListPage> {
    Ok(ListPage {
        page: PageContext::for_user("Roles", "/roles", &user),
        roles: roles::list(&state.pool).await?,
    })
}

struct PermissionChoice {
    name: &'static str,
    label: &'static str,
    checked: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "roles/form.html")]
struct FormPage {
    page: PageContext,
    id: Option<i64>,
    name: String,
    description: String,
    all_accounts: bool,
    system: bool,
    users: i64,
    permissions: Vec<PermissionChoice>,
}

fn choices(has: impl Fn(Permission) -> bool) -> Vec<PermissionChoice> {
    Permission::ALL
        .into_iter()
        .map(|p| PermissionChoice {
            name: p.as_str(),
            label: p.label(),
            checked: has(p),
        })
        .collect()
}

async fn new_page(user: RoleAdmin) -> FormPage {
    FormPage {
        page: PageContext::for_user("New role", "/roles", &user),
        id: None,
        name: String::new(),
        description: String::new(),
        all_accounts: false,
        system: false,
        users: 0,
        permissions: choices(|p| p == Permission::ViewDashboard),
    }
}

async fn edit_page(
    State(state): State<AppState>,
    user: RoleAdmin,
    Path(id): Path<i64>,
) -> Result<FormPage> {
    let role = roles::get(&state.pool, id).await?;
    Ok(FormPage {
        page: PageContext::for_user(format!("Role {}", role.name), "/roles", &user),
        id: Some(id),
        permissions: choices(|p| role.has(p)),
        name: role.name,
        description: role.description,
        all_accounts: role.all_accounts,
        system: role.system,
        users: role.users,
    })
}

#[derive(Deserialize)]
struct RoleForm {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permission: Vec<String>,
    #[serde(default)]
    all_accounts: Option<String>,
}

impl RoleForm {
    fn input(&self) -> RoleInput {
        RoleInput {
            name: self.name.clone(),
            description: self.description.clone(),
            permissions: self
                .permission
                .iter()
                .filter_map(|p| Permission::parse(p))
                .collect(),
            all_accounts: self.all_accounts.is_some(),
        }
    }
}

async fn create(
    State(state): State<AppState>,
    user: RoleAdmin,
    CsrfForm(form): CsrfForm<RoleForm>,
) -> Result<Response> {
    manage_roles::create_role(&state.pool, &user.actor, &form.input()).await?;
    Ok(Redirect::to("/roles").into_response())
}

async fn update(
    State(state): State<AppState>,
    user: RoleAdmin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<RoleForm>,
) -> Result<Response> {
    manage_roles::update_role(&state.pool, &user.actor, id, &form.input()).await?;
    Ok(Redirect::to("/roles").into_response())
}

async fn delete(
    State(state): State<AppState>,
    user: RoleAdmin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<Confirmed>,
) -> Result<Response> {
    form.check()?;
    manage_roles::delete_role(&state.pool, &user.actor, id).await?;
    Ok(Redirect::to("/roles").into_response())
}
