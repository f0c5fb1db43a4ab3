//! `/quarantine` in the web UI, as administrators, auditors and readers see it.

use base64::prelude::*;
use daygle::config::{Secret, Settings};
use daygle::scan::quarantine;
use daygle::scan::{MessageFacts, Source};
use daygle::secrets::SealingKeys;

use super::samples;
use crate::common::auth::{PASSWORD, csrf_from};
use crate::common::clamd::Clamd;
use crate::common::{TestApp, spawn_app_with};

const KEY: [u8; 32] = [9u8; 32];

fn configure(s: &mut Settings, clamd: Option<&Clamd>) {
    s.security.login_rate_per_minute = 10_000;
    s.security.sealing_key = Secret::new(BASE64_STANDARD.encode(KEY));
    if let Some(clamd) = clamd {
        s.clamav = clamd.settings();
    }
}

async fn app_with(clamd: Option<&Clamd>) -> TestApp {
    spawn_app_with(|s| configure(s, clamd)).await
}

/// Quarantines `raw` for `account` the way ingest would, sealed with the app's key.
async fn hold(app: &TestApp, account: i64, uid: i64, raw: &[u8], virus: &str) -> uuid::Uuid {
    let facts = MessageFacts::from_raw(raw).at(account, "INBOX", 1, uid);
    let mut conn = app.pool.acquire().await.unwrap();
    quarantine::put(
        &mut conn,
        &SealingKeys::new(&KEY),
        &facts,
        raw,
        virus,
        Source::Ingest,
        30,
    )
    .await
    .unwrap()
    .unwrap()
}

async fn post(
    app: &TestApp,
    c: &reqwest::Client,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let res = app.submit(c, page, action, fields).await;
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

#[tokio::test]
async fn an_administrator_sees_held_mail_with_its_headers_but_never_its_body() {
    let app = app_with(None).await;
    let admin = app.set_up_admin().await;
    let account = app.insert_account("Sales").await;
    let raw = samples::eicar_in_plain_body();
    let id = hold(&app, account, 5, &raw, "Eicar-Test-Signature-Body").await;

    let (status, list) = app.page(&admin, "/quarantine").await;
    assert_eq!(status, 200);
    assert!(list.contains("Eicar-Test-Signature-Body"), "{list}");
    assert!(list.contains("Inline") && list.contains("Sales"), "{list}");
    assert!(
        list.contains("href=\"/quarantine\""),
        "navigation links the quarantine"
    );

    let (status, page) = app.page(&admin, &format!("/quarantine/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Message-ID: &#60;"),
        "headers are shown, escaped: {page}"
    );
    assert!(!page.contains("Here it is"), "the body must never be shown");
    assert!(
        !page.contains("EICAR-STANDARD"),
        "the body must never be shown"
    );
    assert!(page.contains("Re-scan and release") && page.contains("Download original"));
}

#[tokio::test]
async fn the_list_filters_by_virus_and_hides_accounts_a_user_may_not_read() {
    let app = app_with(None).await;
    let admin = app.set_up_admin().await;
    let own = app.insert_account("Own").await;
    let foreign = app.insert_account("Foreign").await;
    hold(
        &app,
        own,
        1,
        &samples::eicar_base64_attachment(),
        "Eicar-Test-Signature",
    )
    .await;
    let theirs = hold(
        &app,
        foreign,
        1,
        &samples::eicar_in_plain_body(),
        "Win.Trojan.Other",
    )
    .await;

    let (_, filtered) = app.page(&admin, "/quarantine?virus=trojan").await;
    assert!(
        filtered.contains("Win.Trojan.Other") && !filtered.contains("Invoice attached"),
        "{filtered}"
    );

    sqlx::query("INSERT INTO roles (name, permissions) VALUES ('Checker', '{view_quarantine}')")
        .execute(&app.pool)
        .await
        .unwrap();
    app.create_user("checker", "Checker", &[own]).await;
    let checker = app.sign_in("checker", PASSWORD).await;
    let (status, list) = app.page(&checker, "/quarantine").await;
    assert_eq!(status, 200);
    assert!(list.contains("Invoice attached"), "{list}");
    assert!(
        !list.contains("Win.Trojan.Other"),
        "foreign account's entry leaked: {list}"
    );
    let (status, _) = app.page(&checker, &format!("/quarantine/{theirs}")).await;
    assert_eq!(status, 404);
    let (_, own_page) = app.page(&checker, "/quarantine").await;
    assert!(!own_page.contains("Re-scan and release"));
}

#[tokio::test]
async fn readers_cannot_see_the_quarantine_and_auditors_cannot_change_it() {
    let app = app_with(None).await;
    app.set_up_admin().await;
    let account = app.insert_account("Sales").await;
    let id = hold(&app, account, 1, &samples::eicar_in_plain_body(), "V").await;
    app.create_user("reader", "Read Only", &[account]).await;
    app.create_user("auditor", "Auditor", &[]).await;
    let reader = app.sign_in("reader", PASSWORD).await;
    assert_eq!(app.page(&reader, "/quarantine").await.0, 403);

    let auditor = app.sign_in("auditor", PASSWORD).await;
    let (status, page) = app.page(&auditor, &format!("/quarantine/{id}")).await;
    assert_eq!(status, 200);
    assert!(!page.contains("Re-scan and release") && !page.contains("Download original"));
    let token = csrf_from(&page);
    for action in ["release", "delete"] {
        let res = auditor
            .post(app.url(&format!("/quarantine/{id}/{action}")))
            .form(&[("csrf_token", token.as_str()), ("reason", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{action}");
    }
    assert_eq!(
        app.page(&auditor, &format!("/quarantine/{id}/download"))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn releasing_rescans_first_needs_a_reason_and_is_audited() {
    let clamd = Clamd::spawn();
    let app = app_with(Some(&clamd)).await;
    let admin = app.set_up_admin().await;
    let account = app.insert_account("Sales").await;
    let false_positive = hold(&app, account, 1, &samples::clean(), "Heuristic.Overeager").await;
    let real = hold(
        &app,
        account,
        2,
        &samples::eicar_base64_attachment(),
        "Eicar-Test-Signature",
    )
    .await;

    let page = format!("/quarantine/{false_positive}");
    let release = format!("{page}/release");
    let (status, _) = post(&app, &admin, &page, &release, &[("reason", " ")]).await;
    assert_eq!(status, 422, "a reason is required");
    let (status, _) = post(
        &app,
        &admin,
        &page,
        &release,
        &[("reason", "sender confirmed")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, shown) = app.page(&admin, &page).await;
    assert!(shown.contains("by admin: sender confirmed"), "{shown}");

    let page = format!("/quarantine/{real}");
    let release = format!("{page}/release");
    let (status, body) = post(&app, &admin, &page, &release, &[("reason", "looks fine")]).await;
    assert_eq!(status, 409);
    // Refused on the message's own page, the typed reason kept (#17 walk: no dead end).
    assert!(
        body.contains("id=\"release-problem\"")
            && body.contains("still finds Eicar-Test-Signature")
            && body.contains("value=\"looks fine\""),
        "{body}"
    );
    let (status, _) = post(
        &app,
        &admin,
        &page,
        &release,
        &[("reason", "test file"), ("anyway", "1")],
    )
    .await;
    assert_eq!(status, 303);

    let archived: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT uid, scan_status, virus_name FROM messages ORDER BY uid")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(archived.len(), 2, "both released messages are archived");
    assert_eq!((archived[0].0, archived[0].1.as_str()), (1, "clean"));
    assert_eq!(
        archived[1].1, "infected",
        "released anyway: archived flagged"
    );
    assert!(
        archived[1]
            .2
            .as_deref()
            .unwrap()
            .starts_with("Eicar-Test-Signature")
    );

    let releases: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'quarantine.release' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(releases.len(), 2);
    assert_eq!(releases[0]["rescan"], "clean");
    assert_eq!(releases[0]["reason"], "sender confirmed");
    assert_eq!(releases[1]["released_anyway"], true);
}

#[tokio::test]
async fn an_administrator_downloads_the_original_as_an_eml_attachment_and_deletes_it_both_audited()
{
    let app = app_with(None).await;
    let admin = app.set_up_admin().await;
    let account = app.insert_account("Sales").await;
    let raw = samples::eicar_base64_attachment();
    let id = hold(&app, account, 1, &raw, "Eicar-Test-Signature").await;

    let res = admin
        .get(app.url(&format!("/quarantine/{id}/download")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        disposition,
        format!(
            "attachment; filename=\"quarantine-{id}.eml\"; filename*=UTF-8''quarantine-{id}.eml"
        )
    );
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.bytes().await.unwrap().as_ref(), raw.as_slice());

    let page = format!("/quarantine/{id}");
    // One click without ticking the box deletes nothing: the page says why (#17 walk).
    let (status, shown) = post(&app, &admin, &page, &format!("{page}/delete"), &[]).await;
    assert_eq!(status, 422);
    assert!(
        shown.contains("id=\"delete-problem\"") && shown.contains("tick the box"),
        "{shown}"
    );
    assert_eq!(app.page(&admin, &page).await.0, 200, "still there");
    let (status, _) = post(
        &app,
        &admin,
        &page,
        &format!("{page}/delete"),
        &[("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(app.page(&admin, &page).await.0, 404);
    let actions = app.audit_actions().await;
    assert!(
        actions.contains(&"quarantine.download".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"quarantine.delete".to_string()),
        "{actions:?}"
    );
}
