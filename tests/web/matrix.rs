//! The authorisation matrix: every route in `web::http::routes::ALL` × every system role (and
//! anonymous) × own/foreign archive account where the route takes one.

use std::collections::BTreeSet;

use daygle::auth::Permission;
use daygle::web::http::routes::{ALL, Access};
use reqwest::Method;

use crate::common::auth::{PASSWORD, csrf_from, spawn_auth_app};
use crate::common::{TestApp, client};

#[test]
fn every_registered_route_is_in_the_access_table_and_nothing_else_is() {
    let registered: BTreeSet<(String, String)> = daygle::web::registered_routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let listed: BTreeSet<(String, String)> = ALL
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = registered.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "routes without an access rule in web::routes::ALL: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "access rules for routes that do not exist: {stale:?}"
    );
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Persona {
    Anonymous,
    Administrator,
    Auditor,
    ReadOnly,
    /// A custom role holding this one permission and no archive.
    Only(Permission),
}

impl Persona {
    fn has(self, p: Permission) -> bool {
        match self {
            Persona::Anonymous => false,
            Persona::Administrator => true,
            Persona::Auditor => matches!(
                p,
                Permission::ViewDashboard
                    | Permission::ViewMail
                    | Permission::ExportMail
                    | Permission::ViewQuarantine
                    | Permission::ViewAudit
                    | Permission::ViewWorkers
                    | Permission::ViewReports
            ),
            Persona::ReadOnly => matches!(p, Permission::ViewDashboard | Permission::ViewMail),
            Persona::Only(only) => p == only,
        }
    }

    fn sees_every_archive(self) -> bool {
        matches!(self, Persona::Administrator | Persona::Auditor)
    }
}

struct Ids {
    own_account: i64,
    foreign_account: i64,
    victim_user: i64,
    custom_role: i64,
}

fn concrete(path: &str, ids: &Ids, own: bool) -> String {
    let id = if path.starts_with("/archives/") {
        if own {
            ids.own_account
        } else {
            ids.foreign_account
        }
    } else if path.starts_with("/users/") {
        ids.victim_user
    } else {
        ids.custom_role
    };
    path.replace("{*path}", "css/app.css")
        .replace("{id}", &id.to_string())
}

async fn persona_client(
    app: &TestApp,
    persona: Persona,
    username: &str,
) -> (reqwest::Client, String) {
    if persona == Persona::Anonymous {
        let c = client();
        let token = csrf_from(
            &c.get(app.url("/login"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        return (c, token);
    }
    let c = app.sign_in(username, PASSWORD).await;
    let token = csrf_from(
        &c.get(app.url("/profile"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    (c, token)
}

/// Allowed unless refused: 401/403, or a page view sent to the sign-in page. (A POST that
/// is refused gets 401; signing out legitimately redirects to /login.)
fn allowed(method: &Method, status: u16, location: &str) -> bool {
    !(status == 401
        || status == 403
        || (*method == Method::GET && status == 303 && location == "/login"))
}

#[tokio::test]
async fn every_route_allows_exactly_the_roles_that_hold_its_permission() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    for (name, permission) in [
        ("Custom", ""),
        ("Only users", "manage_users"),
        ("Only roles", "manage_roles"),
        ("Only accounts", "manage_accounts"),
        ("Only retention", "manage_retention"),
        ("Only audit", "view_audit"),
        ("Only workers", "view_workers"),
    ] {
        sqlx::query(
            "INSERT INTO roles (name, permissions) VALUES ($1, array_remove(ARRAY[$2], ''))",
        )
        .bind(name)
        .bind(permission)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    app.create_user("users-only", "Only users", &[]).await;
    app.create_user("roles-only", "Only roles", &[]).await;
    app.create_user("accounts-only", "Only accounts", &[]).await;
    let own = app.insert_account("Own mailbox").await;
    let foreign = app.insert_account("Foreign mailbox").await;
    // Manages retention for one archive: the pages open, what they reach is limited by the
    // domain (tests/web/retention.rs and tests/retention/reach.rs).
    app.create_user("retention-only", "Only retention", &[own])
        .await;
    // Audit and workers for one archive: the pages open, their rows are limited to that
    // archive (tests/web/reach.rs).
    app.create_user("audit-only", "Only audit", &[own]).await;
    app.create_user("workers-only", "Only workers", &[own])
        .await;
    app.create_user("auditor", "Auditor", &[]).await;
    app.create_user("reader", "Read Only", &[own]).await;
    // The victim and the custom role hold nothing, so the delegation ceiling (tests/web/
    // delegation.rs) never decides here: this table is about permissions alone.
    let victim = app.create_user("victim", "Custom", &[]).await;
    let custom_role: i64 = sqlx::query_scalar("SELECT id FROM roles WHERE name = 'Custom'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let ids = Ids {
        own_account: own,
        foreign_account: foreign,
        victim_user: victim,
        custom_role,
    };

    let personas = [
        (Persona::Anonymous, ""),
        (Persona::ReadOnly, "reader"),
        (Persona::Auditor, "auditor"),
        (Persona::Only(Permission::ManageUsers), "users-only"),
        (Persona::Only(Permission::ManageRoles), "roles-only"),
        (Persona::Only(Permission::ManageAccounts), "accounts-only"),
        (Persona::Only(Permission::ManageRetention), "retention-only"),
        (Persona::Only(Permission::ViewAudit), "audit-only"),
        (Persona::Only(Permission::ViewWorkers), "workers-only"),
        (Persona::Administrator, "admin"),
    ];
    let mut sessions = Vec::new();
    for &(persona, username) in &personas {
        sessions.push(persona_client(&app, persona, username).await);
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in ALL {
        let variants: &[bool] = if matches!(route.access, Access::Archive(_)) {
            &[true, false]
        } else {
            &[true]
        };
        for &own in variants {
            let path = concrete(route.path, &ids, own);
            for (i, &(persona, username)) in personas.iter().enumerate() {
                // Signing out would end the shared session, so that route gets a fresh one.
                let (c, token) = if route.path == "/logout" {
                    persona_client(&app, persona, username).await
                } else {
                    sessions[i].clone()
                };
                let res = if route.method == Method::GET {
                    c.get(app.url(&path)).send().await.unwrap()
                } else {
                    c.post(app.url(&path))
                        .form(&[("csrf_token", token.as_str())])
                        .send()
                        .await
                        .unwrap()
                };
                let status = res.status().as_u16();
                let location = res
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let expected = match route.access {
                    Access::Public | Access::Anonymous => true,
                    Access::SetupOnly => false,
                    Access::SignedIn => persona != Persona::Anonymous,
                    Access::Permission(p) => persona.has(p),
                    Access::Archive(p) => persona.has(p) && (own || persona.sees_every_archive()),
                    // The JSON API takes bearer tokens only: no session reaches it
                    // (tests/web/api.rs walks these routes with tokens).
                    Access::Token(_) => false,
                };
                let ok = match route.access {
                    // Gone for good once a user exists.
                    Access::SetupOnly => status == 404,
                    // The sign-in steps send you on (e.g. back to /login), they never refuse.
                    Access::Anonymous => status != 401 && status != 403,
                    // A foreign archive is indistinguishable from a missing one.
                    Access::Archive(_) if persona.has(Permission::ViewMail) && !expected => {
                        status == 404
                    }
                    _ => allowed(&route.method, status, &location) == expected,
                };
                checked += 1;
                if !ok {
                    failures.push(format!(
                        "{} {} as {:?}: got {status} {location}, expected {}",
                        route.method,
                        path,
                        persona,
                        if expected { "allowed" } else { "denied" }
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= ALL.len() * personas.len());
}
