//! The JSON API (#18): bearer tokens only, scopes as a ceiling under the user's current
//! rights, the route × persona × scope matrix, the same results and audit rows as the web
//! pages, problem+json errors, rate limits, CORS and the OpenAPI document.

use std::collections::BTreeSet;

use daygle::audit::Actor;
use daygle::auth::Permission;
use daygle::auth::tokens::{self, NewToken, Scope};
use daygle::web::http::routes::{ALL, Access};
use reqwest::Method;
use serde_json::Value;

use crate::common::auth::{PASSWORD, csrf_from, spawn_auth_app};
use crate::common::mail::{Mail, archive, build};
use crate::common::{TestApp, client, spawn_app_with};

/// A token row written straight into the table, as if created while the user held more than
/// they do now (creation refuses scopes that give nothing).
async fn raw_token(
    app: &TestApp,
    user_id: i64,
    scopes: &[Scope],
    accounts: Option<&[i64]>,
) -> String {
    let secret = format!("dga_test{}", uuid::Uuid::new_v4().simple());
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query(
        "INSERT INTO api_tokens (user_id, name, token_hash, prefix, scopes, account_ids)
         VALUES ($1, $2, $3, 'dga_test', $4, $5)",
    )
    .bind(user_id)
    .bind(format!("t-{}", uuid::Uuid::new_v4()))
    .bind(tokens::hash(&secret))
    .bind(&names)
    .bind(accounts)
    .execute(&app.pool)
    .await
    .expect("insert token");
    secret
}

async fn token(app: &TestApp, user_id: i64, scopes: &[Scope]) -> String {
    let (_, secret) = tokens::create(
        &app.pool,
        &Actor::cli(),
        user_id,
        NewToken {
            name: format!("token {}", uuid::Uuid::new_v4()),
            scopes: scopes.to_vec(),
            account_ids: None,
            expires_in_days: Some(30),
        },
    )
    .await
    .expect("create token");
    secret
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::Response {
    let c = client();
    let req = if method == Method::GET {
        c.get(app.url(path))
    } else {
        c.post(app.url(path)).json(&serde_json::json!({}))
    };
    req.bearer_auth(token).send().await.expect("API call")
}

async fn get_json(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let res = call(app, Method::GET, path, token).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Two accounts with one message each; returns (own account, foreign account, own message,
/// foreign message).
async fn two_archives(app: &TestApp) -> (i64, i64, i64, i64) {
    let own = app.insert_account("Own mailbox").await;
    let foreign = app.insert_account("Foreign mailbox").await;
    let own_msg = archive(app, own, "INBOX", vec![build(&Mail::default())]).await[0];
    let foreign_msg = archive(
        app,
        foreign,
        "INBOX",
        vec![build(&Mail {
            subject: "Board minutes",
            message_id: "board@example.org",
            ..Mail::default()
        })],
    )
    .await[0];
    (own, foreign, own_msg, foreign_msg)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Persona {
    Administrator,
    Auditor,
    ReadOnly,
    AccountsOnly,
}

impl Persona {
    fn has(self, p: Permission) -> bool {
        match self {
            Persona::Administrator => true,
            Persona::Auditor => matches!(
                p,
                Permission::ViewDashboard
                    | Permission::ViewMail
                    | Permission::ExportMail
                    | Permission::ViewQuarantine
                    | Permission::ViewAudit
                    | Permission::ViewWorkers
            ),
            Persona::ReadOnly => matches!(p, Permission::ViewDashboard | Permission::ViewMail),
            Persona::AccountsOnly => p == Permission::ManageAccounts,
        }
    }
}

fn concrete(path: &str, account: i64, message: i64) -> String {
    let id = if path.contains("/accounts/") {
        account.to_string()
    } else if path.contains("/messages/") {
        message.to_string()
    } else {
        uuid::Uuid::new_v4().to_string()
    };
    path.replace("{id}", &id).replace("{n}", "0")
}

#[tokio::test]
async fn every_api_route_allows_exactly_tokens_whose_user_and_scopes_hold_its_permission() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let (own, _foreign, own_msg, _) = two_archives(&app).await;
    sqlx::query(
        "INSERT INTO roles (name, permissions) VALUES ('Only accounts', ARRAY['manage_accounts'])",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let admin: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'admin'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let personas = [
        (Persona::Administrator, admin),
        (
            Persona::Auditor,
            app.create_user("auditor", "Auditor", &[]).await,
        ),
        (
            Persona::ReadOnly,
            app.create_user("reader", "Read Only", &[own]).await,
        ),
        (
            Persona::AccountsOnly,
            app.create_user("accounts-only", "Only accounts", &[own])
                .await,
        ),
    ];
    let scope_sets: [&[Scope]; 4] = [
        &[Scope::MailRead],
        &[Scope::MailExport],
        &[Scope::Admin],
        &[Scope::MailRead, Scope::MailExport, Scope::Admin],
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for &(persona, user_id) in &personas {
        for scopes in scope_sets {
            let secret = raw_token(&app, user_id, scopes, None).await;
            for route in ALL.iter().filter(|r| r.path.starts_with("/api/")) {
                let expected = match route.access {
                    Access::Public => true,
                    Access::Token(p) => persona.has(p) && scopes.contains(&Scope::of(p)),
                    other => panic!(
                        "{} has access {other:?}: API routes take tokens",
                        route.path
                    ),
                };
                let path = concrete(route.path, own, own_msg);
                let res = call(&app, route.method.clone(), &path, &secret).await;
                let status = res.status().as_u16();
                let allowed = status != 401 && status != 403;
                checked += 1;
                if allowed != expected {
                    failures.push(format!(
                        "{} {path} as {persona:?} with {scopes:?}: got {status}, expected {}",
                        route.method,
                        if expected { "allowed" } else { "refused" }
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
    assert!(checked >= 16 * 14, "only {checked} checks");
}

#[tokio::test]
async fn session_cookies_and_missing_or_bad_tokens_get_401_problems() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let res = admin.get(app.url("/api/v1/messages")).send().await.unwrap();
    assert_eq!(
        res.status().as_u16(),
        401,
        "a signed-in browser session cannot call the API"
    );
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], 401);
    for bad in ["dga_nonsense", "not-a-token", ""] {
        let res = call(&app, Method::GET, "/api/v1/messages", bad).await;
        assert_eq!(res.status().as_u16(), 401, "{bad:?}");
    }
    // Unknown API routes and malformed ids are problems too, not HTML pages.
    let id = sqlx::query_scalar::<_, i64>("SELECT id FROM users LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let secret = token(&app, id, &[Scope::MailRead]).await;
    let res = call(&app, Method::GET, "/api/v1/messages/not-a-number", &secret).await;
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = call(&app, Method::GET, "/api/v1/nowhere", &secret).await;
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = call(&app, Method::GET, "/api/v1/messages/999999", &secret).await;
    assert_eq!(res.status().as_u16(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["title"], "Not Found");
}

#[tokio::test]
async fn revoked_expired_and_disabled_users_tokens_are_refused() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let own = app.insert_account("Own").await;
    let reader = app.create_user("reader", "Read Only", &[own]).await;
    let secret = token(&app, reader, &[Scope::MailRead]).await;
    assert_eq!(get_json(&app, "/api/v1/messages", &secret).await.0, 200);

    let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = $1")
        .bind(tokens::hash(&secret))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        get_json(&app, "/api/v1/messages", &secret).await.0,
        401,
        "expired"
    );

    let second = token(&app, reader, &[Scope::MailRead]).await;
    assert_eq!(get_json(&app, "/api/v1/messages", &second).await.0, 200);
    sqlx::query("UPDATE users SET enabled = false WHERE id = $1")
        .bind(reader)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        get_json(&app, "/api/v1/messages", &second).await.0,
        401,
        "user disabled"
    );
    sqlx::query("UPDATE users SET enabled = true WHERE id = $1")
        .bind(reader)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(get_json(&app, "/api/v1/messages", &second).await.0, 200);

    // Revoked on the owner's profile page.
    let web = app.sign_in("reader", PASSWORD).await;
    let page = web
        .get(app.url("/profile/tokens"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let id2: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = $1")
        .bind(tokens::hash(&second))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = web
        .post(app.url(&format!("/profile/tokens/{id2}/revoke")))
        .form(&[("csrf_token", csrf_from(&page)), ("confirm", "yes".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(
        get_json(&app, "/api/v1/messages", &second).await.0,
        401,
        "revoked"
    );
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"token.revoke".to_string()), "{actions:?}");
}

#[tokio::test]
async fn a_token_never_reaches_more_than_its_user_holds_now() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let (own, foreign, own_msg, foreign_msg) = two_archives(&app).await;
    let user = app
        .create_user("reader", "Read Only", &[own, foreign])
        .await;
    let all = token(&app, user, &[Scope::MailRead]).await;
    let path = |id: i64| format!("/api/v1/messages/{id}");
    assert_eq!(get_json(&app, &path(foreign_msg), &all).await.0, 200);

    // A token restricted to one archive does not reach the other, though its user may.
    let (_, narrow) = tokens::create(
        &app.pool,
        &Actor::cli(),
        user,
        NewToken {
            name: "own only".into(),
            scopes: vec![Scope::MailRead],
            account_ids: Some(vec![own]),
            expires_in_days: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(get_json(&app, &path(own_msg), &narrow).await.0, 200);
    assert_eq!(get_json(&app, &path(foreign_msg), &narrow).await.0, 404);
    let (_, body) = get_json(&app, "/api/v1/messages", &narrow).await;
    let ids: Vec<i64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![own_msg]);

    // The user loses the foreign archive: so does the unrestricted token, at once.
    sqlx::query("DELETE FROM user_accounts WHERE user_id = $1 AND account_id = $2")
        .bind(user)
        .bind(foreign)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(get_json(&app, &path(foreign_msg), &all).await.0, 404);
    // A restriction naming an archive the user no longer has gives nothing.
    let stale = raw_token(&app, user, &[Scope::MailRead], Some(&[foreign])).await;
    let (status, body) = get_json(&app, "/api/v1/messages", &stale).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().unwrap().len(), 0);

    // The user loses a permission: the admin-scoped token loses it too.
    let auditor = app.create_user("auditor", "Auditor", &[]).await;
    let audit_token = token(&app, auditor, &[Scope::Admin]).await;
    assert_eq!(get_json(&app, "/api/v1/audit", &audit_token).await.0, 200);
    let read_only: i64 = sqlx::query_scalar("SELECT id FROM roles WHERE name = 'Read Only'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE user_roles SET role_id = $2 WHERE user_id = $1")
        .bind(auditor)
        .bind(read_only)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(get_json(&app, "/api/v1/audit", &audit_token).await.0, 403);

    // Creating a token refuses scopes the user holds nothing of, and foreign archives.
    let refused = tokens::create(
        &app.pool,
        &Actor::cli(),
        user,
        NewToken {
            name: "too much".into(),
            scopes: vec![Scope::Admin],
            account_ids: None,
            expires_in_days: None,
        },
    )
    .await;
    assert!(refused.is_err(), "a reader cannot make an admin token");
    let refused = tokens::create(
        &app.pool,
        &Actor::cli(),
        user,
        NewToken {
            name: "foreign".into(),
            scopes: vec![Scope::MailRead],
            account_ids: Some(vec![foreign]),
            expires_in_days: None,
        },
    )
    .await;
    assert!(
        refused.is_err(),
        "a restriction cannot name an archive the user may not read"
    );
}

/// Message ids linked from a web list page, in order.
fn listed_ids(html: &str) -> Vec<i64> {
    html.split("<td class=\"subject\"><a href=\"/messages/")
        .skip(1)
        .filter_map(|rest| rest.split(['"', '?']).next()?.parse().ok())
        .collect()
}

fn next_cursor(html: &str) -> Option<String> {
    let before_older = html.split("\">Older").next()?;
    if before_older.len() == html.len() {
        return None;
    }
    let link = before_older.rsplit("after=").next()?;
    Some(link.to_string())
}

#[tokio::test]
async fn api_search_returns_exactly_what_the_web_list_shows_the_same_user() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let own = app.insert_account("Own").await;
    let other = app.insert_account("Other").await;
    let mut raws = Vec::new();
    let ids: Vec<String> = (0..25).map(|i| format!("m{i}@example.org")).collect();
    let subjects: Vec<String> = (0..25)
        .map(|i| {
            format!(
                "{} report {i}",
                if i % 2 == 0 { "quarterly" } else { "weekly" }
            )
        })
        .collect();
    for i in 0..25 {
        raws.push(build(&Mail {
            subject: &subjects[i],
            message_id: &ids[i],
            date: 1_704_067_200 + i as i64 * 3600,
            ..Mail::default()
        }));
    }
    archive(&app, own, "INBOX", raws.clone()).await;
    archive(&app, other, "INBOX", raws).await;
    let reader = app.create_user("reader", "Read Only", &[own]).await;
    sqlx::query("UPDATE users SET page_size = 10 WHERE id = $1")
        .bind(reader)
        .execute(&app.pool)
        .await
        .unwrap();
    let web = app.sign_in("reader", PASSWORD).await;
    let secret = token(&app, reader, &[Scope::MailRead]).await;
    for query in [
        "",
        "q=quarterly",
        "q=report&sort=relevance",
        "q=from%3Aalice%40example.org",
    ] {
        let mut web_after: Option<String> = None;
        let mut api_after: Option<String> = None;
        for page in 0..3 {
            let suffix = |after: &Option<String>| match after {
                Some(a) => format!("{query}&after={a}"),
                None => query.to_string(),
            };
            let html = web
                .get(app.url(&format!("/messages?{}", suffix(&web_after))))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let (status, body) = get_json(
                &app,
                &format!("/api/v1/messages?{}", suffix(&api_after)),
                &secret,
            )
            .await;
            assert_eq!(status, 200, "{query}: {body}");
            let api_ids: Vec<i64> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_i64().unwrap())
                .collect();
            let web_ids = listed_ids(&html);
            assert_eq!(api_ids, web_ids, "{query}, page {page}");
            web_after = next_cursor(&html);
            api_after = body["next"].as_str().map(str::to_owned);
            assert_eq!(
                api_after, web_after,
                "{query}, page {page}: the same next page"
            );
            if page == 0 && query.is_empty() {
                assert_eq!(web_ids.len(), 10, "the user's page size");
                assert_eq!(body["count"], 25, "only the granted archive counts");
            }
            if api_after.is_none() {
                break;
            }
        }
    }
    // A query the language refuses is a 422 problem, as the web page explains it.
    let (status, body) = get_json(&app, "/api/v1/messages?q=%22unclosed", &secret).await;
    assert!(status == 422 || status == 200, "{status} {body}");
}

#[tokio::test]
async fn every_api_read_is_audited_with_its_token() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let (own, _, own_msg, _) = two_archives(&app).await;
    let admin: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'admin'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let secret = token(
        &app,
        admin,
        &[Scope::MailRead, Scope::MailExport, Scope::Admin],
    )
    .await;
    let token_id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = $1")
        .bind(tokens::hash(&secret))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let reads = [
        ("/api/v1/messages?q=hello".to_string(), "mail.search"),
        (format!("/api/v1/messages/{own_msg}"), "mail.view"),
        (format!("/api/v1/messages/{own_msg}/raw"), "mail.download"),
        (format!("/api/v1/messages/{own_msg}/thread"), "api.read"),
        ("/api/v1/accounts".to_string(), "api.read"),
        (format!("/api/v1/accounts/{own}/ledger"), "api.read"),
        ("/api/v1/quarantine".to_string(), "api.read"),
        ("/api/v1/audit".to_string(), "api.read"),
    ];
    for (path, action) in &reads {
        let before: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND (details->>'api_token')::bigint = $2",
        )
        .bind(action)
        .bind(token_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let res = call(&app, Method::GET, path, &secret).await;
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let after: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND (details->>'api_token')::bigint = $2",
        )
        .bind(action)
        .bind(token_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(
            after,
            before + 1,
            "{path} leaves one {action} row naming the token"
        );
    }
    let raw = call(
        &app,
        Method::GET,
        &format!("/api/v1/messages/{own_msg}/raw"),
        &secret,
    )
    .await;
    assert_eq!(raw.headers()["content-type"], "application/octet-stream");
    assert!(String::from_utf8_lossy(&raw.bytes().await.unwrap()).contains("Just saying hello."));
}

#[tokio::test]
async fn an_export_runs_as_a_job_and_is_downloaded_by_its_owner_only() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let (own, _, _, _) = two_archives(&app).await;
    let reader = app.create_user("reader", "Read Only", &[own]).await;
    let auditor = app.create_user("auditor", "Auditor", &[]).await;
    // Read Only holds no export_mail: the token cannot export either.
    let reader_token = raw_token(&app, reader, &[Scope::MailRead, Scope::MailExport], None).await;
    let res = call(&app, Method::POST, "/api/v1/exports", &reader_token).await;
    assert_eq!(res.status().as_u16(), 403);

    let secret = token(&app, auditor, &[Scope::MailExport]).await;
    let res = client()
        .post(app.url("/api/v1/exports"))
        .bearer_auth(&secret)
        .json(&serde_json::json!({ "q": "hello", "format": "zip" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let job: Value = res.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let mut status = job["status"].as_str().unwrap().to_string();
    for _ in 0..100 {
        if status != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, body) = get_json(&app, &format!("/api/v1/exports/{id}"), &secret).await;
        status = body["status"].as_str().unwrap().to_string();
    }
    assert_eq!(status, "ready");
    let res = call(
        &app,
        Method::GET,
        &format!("/api/v1/exports/{id}/download"),
        &secret,
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK"), "a zip file");

    let admin: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'admin'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let other = token(&app, admin, &[Scope::MailExport]).await;
    let res = call(
        &app,
        Method::GET,
        &format!("/api/v1/exports/{id}/download"),
        &other,
    )
    .await;
    assert_eq!(
        res.status().as_u16(),
        404,
        "another user's export is not there for them"
    );
    let exports: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'mail.export' AND details->>'api_token' IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        exports, 1,
        "the same audit row as a web export, naming the token"
    );
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.api.rate_limit_per_minute = 3;
    })
    .await;
    app.set_up_admin().await;
    let admin: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'admin'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let secret = token(&app, admin, &[Scope::MailRead]).await;
    let other = token(&app, admin, &[Scope::MailRead]).await;
    for _ in 0..3 {
        assert_eq!(get_json(&app, "/api/v1/accounts", &secret).await.0, 200);
    }
    let res = call(&app, Method::GET, "/api/v1/accounts", &secret).await;
    assert_eq!(res.status().as_u16(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(
        get_json(&app, "/api/v1/accounts", &other).await.0,
        200,
        "the limit is per token"
    );
}

#[tokio::test]
async fn cors_is_closed_by_default_and_open_only_to_listed_origins_without_credentials() {
    let closed = spawn_auth_app().await;
    let preflight = |app: &TestApp, origin: &str| {
        client()
            .request(Method::OPTIONS, app.url("/api/v1/messages"))
            .header("origin", origin.to_string())
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let res = preflight(&closed, "https://tools.example.com")
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let open = spawn_app_with(|s| s.api.cors_origins = "https://tools.example.com".into()).await;
    let res = preflight(&open, "https://tools.example.com").await.unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://tools.example.com"
    );
    assert!(
        res.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let res = preflight(&open, "https://evil.example.net").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_api_routes() {
    let app = spawn_auth_app().await;
    let res = app.get("/api/v1/openapi.json").await;
    assert_eq!(res.status().as_u16(), 200, "readable without a token");
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = daygle::web::registered_routes()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/api/"))
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, routed,
        "the OpenAPI document and the router must list the same API routes"
    );
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
}

#[tokio::test]
async fn tokens_are_made_on_the_profile_shown_once_stored_hashed_and_listed_for_admins() {
    let app = spawn_auth_app().await;
    let admin_web = app.set_up_admin().await;
    let own = app.insert_account("Own").await;
    app.create_user("reader", "Read Only", &[own]).await;
    let web = app.sign_in("reader", PASSWORD).await;
    let page = web
        .get(app.url("/profile/tokens"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = web
        .post(app.url("/profile/tokens"))
        .form(&[
            ("csrf_token", csrf_from(&page).as_str()),
            ("name", "nightly"),
            ("scope", "mail:read"),
            ("expires_days", "30"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.unwrap();
    let secret = html
        .split("<code class=\"token-secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the new token is shown")
        .to_string();
    assert!(secret.starts_with("dga_") && secret.len() == 47, "{secret}");
    let stored: (String, String) =
        sqlx::query_as("SELECT token_hash, prefix FROM api_tokens WHERE name = 'nightly'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        stored.0,
        tokens::hash(&secret),
        "only the SHA-256 is stored"
    );
    assert!(secret.starts_with(&stored.1) && stored.1.len() < 20);
    let again = web
        .get(app.url("/profile/tokens"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!again.contains(&secret), "shown only once");
    assert!(again.contains("nightly"));
    assert_eq!(get_json(&app, "/api/v1/accounts", &secret).await.0, 200);
    let again = web
        .get(app.url("/profile/tokens"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(again.contains(" from 127.0.0.1"), "last use is listed");

    // Asking for a scope the reader holds nothing of is explained, not granted.
    let res = web
        .post(app.url("/profile/tokens"))
        .form(&[
            ("csrf_token", csrf_from(&page).as_str()),
            ("name", "greedy"),
            ("scope", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);

    // Administrators see every token and may revoke it.
    let all = admin_web
        .get(app.url("/tokens"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(all.contains("nightly") && all.contains("reader"));
    assert!(!all.contains(&secret));
    assert_eq!(app.page(&web, "/tokens").await.0, 403, "readers do not");
    let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'nightly'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = admin_web
        .post(app.url(&format!("/tokens/{id}/revoke")))
        .form(&[("csrf_token", csrf_from(&all)), ("confirm", "yes".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(get_json(&app, "/api/v1/accounts", &secret).await.0, 401);
    // Someone else's token is not theirs to revoke from a profile.
    let admin_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'admin'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let admins = token(&app, admin_id, &[Scope::MailRead]).await;
    let admins_id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = $1")
        .bind(tokens::hash(&admins))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = web
        .post(app.url(&format!("/profile/tokens/{admins_id}/revoke")))
        .form(&[("csrf_token", csrf_from(&page)), ("confirm", "yes".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(get_json(&app, "/api/v1/accounts", &admins).await.0, 200);
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"token.create".to_string()));
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_tokens() {
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let run = |args: &[&str]| {
        let out = crate::common::process::daygle(&app.data_path())
            .arg("token")
            .args(args)
            .env("DAYGLE__DATABASE__URL", &app.database_url)
            .env("DAYGLE__STORAGE__DATA_DIR", app.data_path())
            .output()
            .expect("run daygle token");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, stdout, stderr) = run(&[
        "create",
        "admin",
        "--name",
        "break-glass",
        "--scope",
        "mail:read,admin",
        "--expires-days",
        "1",
    ]);
    assert!(ok, "{stderr}");
    let secret = stdout.trim().to_string();
    assert!(
        secret.starts_with("dga_"),
        "only the token on stdout: {stdout}"
    );
    assert_eq!(get_json(&app, "/api/v1/audit", &secret).await.0, 200);
    let (ok, stdout, _) = run(&["list"]);
    assert!(ok);
    assert!(
        stdout.contains("break-glass") && stdout.contains("active"),
        "{stdout}"
    );
    assert!(!stdout.contains(&secret));
    let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'break-glass'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (ok, _, stderr) = run(&["revoke", &id.to_string()]);
    assert!(ok, "{stderr}");
    assert_eq!(get_json(&app, "/api/v1/audit", &secret).await.0, 401);
    let (ok, _, stderr) = run(&["create", "admin", "--name", "x", "--scope", "mail:write"]);
    assert!(!ok && stderr.contains("mail:write"), "{stderr}");
}

/// An export whose process stopped or died is marked failed (it would otherwise stay
/// "running" for ever); one of a live process is left alone.
#[tokio::test]
async fn exports_cut_short_by_a_stop_or_crash_are_marked_failed() {
    let app = crate::common::spawn_app().await;
    app.set_up_admin().await;
    let live: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM processes WHERE stopped_at IS NULL LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .expect("this app's process");
    for process in [uuid::Uuid::new_v4(), live] {
        sqlx::query(
            "INSERT INTO api_exports (id, user_id, format, process_id) VALUES ($1, 1, 'zip', $2)",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(process)
        .execute(&app.pool)
        .await
        .expect("export row");
    }
    let cut = daygle::archive::export_jobs::fail_orphaned(&app.pool, &app.data_path(), 30)
        .await
        .expect("sweep");
    assert_eq!(cut, 1);
    let states: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT process_id, status FROM api_exports ORDER BY status")
            .fetch_all(&app.pool)
            .await
            .expect("rows");
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].1, "failed");
    assert_ne!(states[0].0, live);
    assert_eq!(states[1], (live, "running".to_string()));
}
