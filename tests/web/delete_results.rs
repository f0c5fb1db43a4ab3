//! "Delete all results" of a search in the message list (#10): the confirmation's numbers, the
//! pinned result set (later mail stays, a changed set deletes nothing), held mail, the grants
//! ceiling and the four-eyes rule.

use daygle::audit::Actor;
use daygle::auth::Grants;
use daygle::retention::holds;

use crate::common::TestApp;
use crate::common::auth::{PASSWORD, spawn_auth_app};
use crate::common::mail::{self, Mail};

fn news(subject: &str, id: &str) -> Vec<u8> {
    mail::build(&Mail {
        subject,
        message_id: id,
        ..Mail::default()
    })
}

/// The value of the confirmation form's hidden field `name`.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect(name) + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The text of the element with `id` (up to its first tag).
fn text_of(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = html.find(&marker).expect(id) + marker.len();
    html[start..]
        .split('<')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Posts the confirmation form on `page` with `reason`.
async fn confirm(
    app: &TestApp,
    c: &reqwest::Client,
    page: &str,
    reason: &str,
) -> reqwest::Response {
    let names = [
        "csrf_token",
        "q",
        "account",
        "folder",
        "from",
        "to",
        "attachments",
        "verdict",
        "max_id",
        "fingerprint",
    ];
    let mut form: Vec<(&str, String)> = names.iter().map(|n| (*n, field(page, n))).collect();
    form.push(("reason", reason.to_string()));
    c.post(app.url("/messages/delete-results"))
        .form(&form)
        .send()
        .await
        .expect("POST")
}

async fn ids(app: &TestApp) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM messages ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("ids")
}

#[tokio::test(flavor = "multi_thread")]
async fn all_results_of_a_search_go_exactly_as_previewed_and_held_mail_stays() {
    let app = spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let sales = app.insert_account("Sales").await;
    let found = mail::archive(
        &app,
        sales,
        "INBOX",
        vec![
            news("newsletter one", "n1@x"),
            news("newsletter two", "n2@x"),
            news("newsletter three", "n3@x"),
            news("contract", "c1@x"),
        ],
    )
    .await;
    let contract = found[3];
    holds::hold_messages(
        &app.pool,
        &Actor::cli(),
        &Grants::All,
        "case",
        "keep",
        &[found[1]],
    )
    .await
    .expect("hold");

    let (_, list) = app.page(&admin, "/messages?q=newsletter").await;
    assert!(
        list.contains("href=\"/messages/delete-results?q=newsletter\"")
            && list.contains("Delete all 3 results"),
        "{list}"
    );
    let (_, plain) = app.page(&admin, "/messages").await;
    assert!(
        !plain.contains("id=\"delete-results\""),
        "only a search offers it"
    );

    let (status, page) = app
        .page(&admin, "/messages/delete-results?q=newsletter")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(text_of(&page, "found"), "3");
    assert_eq!(text_of(&page, "held"), "1");
    assert!(page.contains("Delete 2 for good"), "{page}");
    assert!(page.contains("id=\"oldest\"") && page.contains("id=\"newest\""));

    // Mail that matches but arrives after the preview is not part of what was confirmed.
    let later = mail::archive(&app, sales, "Later", vec![news("newsletter four", "n4@x")]).await;

    let res = confirm(&app, &admin, &page, "").await;
    assert_eq!(res.status(), 200);
    let again = res.text().await.unwrap();
    assert!(again.contains("Give a reason"), "{again}");
    assert_eq!(ids(&app).await.len(), 5, "nothing goes without a reason");

    let res = confirm(&app, &admin, &page, "newsletter flood").await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/deletions?done="), "{location}");
    assert_eq!(ids(&app).await, vec![found[1], contract, later[0]]);

    let (_, deletions) = app.page(&admin, &location).await;
    assert!(deletions.contains("search: newsletter"), "{deletions}");
    let details: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'mail.delete_start' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit row");
    assert_eq!(details["query"], "newsletter");
    assert_eq!(details["messages"], 3);
    assert_eq!(details["held"], 1);
    let actions = app.audit_actions().await;
    assert!(actions.iter().any(|a| a == "mail.delete"), "{actions:?}");

    // If the results change between preview and confirmation, nothing is deleted and the
    // page shows the new numbers.
    let (_, page) = app
        .page(&admin, "/messages/delete-results?q=newsletter")
        .await;
    assert_eq!(text_of(&page, "found"), "2");
    sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(later[0])
        .execute(&app.pool)
        .await
        .unwrap();
    let res = confirm(&app, &admin, &page, "again").await;
    assert_eq!(res.status(), 200);
    let changed = res.text().await.unwrap();
    assert!(
        changed.contains("Nothing was deleted: the results of this search changed")
            && changed.contains("id=\"all-held\""),
        "{changed}"
    );
    assert_eq!(ids(&app).await, vec![found[1], contract]);
}

/// A deleter for one archive sees and deletes only that archive's results; with four-eyes on,
/// the deletion is a request and nothing goes; a Read Only user gets neither the action nor
/// the page.
#[tokio::test(flavor = "multi_thread")]
async fn a_one_archive_deleter_reaches_only_its_archive_and_four_eyes_files_a_request() {
    let app = crate::common::spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.retention.require_approval = true;
    })
    .await;
    app.set_up_admin().await;
    let (sales, legal) = (
        app.insert_account("Sales").await,
        app.insert_account("Legal").await,
    );
    let own = mail::archive(&app, sales, "INBOX", vec![news("newsletter", "s1@x")]).await;
    let foreign = mail::archive(&app, legal, "INBOX", vec![news("newsletter", "l1@x")]).await;
    sqlx::query("INSERT INTO roles (name, permissions, all_accounts) VALUES ('Deleter', ARRAY['view_mail', 'delete_mail'], false)")
        .execute(&app.pool)
        .await
        .unwrap();
    app.create_user("deleter", "Deleter", &[sales]).await;
    app.create_user("reader", "Read Only", &[sales, legal])
        .await;
    let deleter = app.sign_in("deleter", PASSWORD).await;
    let reader = app.sign_in("reader", PASSWORD).await;

    let (_, list) = app.page(&reader, "/messages?q=newsletter").await;
    assert!(!list.contains("id=\"delete-results\""), "{list}");
    let (status, _) = app
        .page(&reader, "/messages/delete-results?q=newsletter")
        .await;
    assert_eq!(status, 403);

    let (_, page) = app
        .page(&deleter, "/messages/delete-results?q=newsletter")
        .await;
    assert_eq!(text_of(&page, "found"), "1", "{page}");
    assert!(page.contains("Request deletion of 1"), "{page}");
    let res = confirm(&app, &deleter, &page, "spam").await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/deletions?requested="), "{location}");
    assert_eq!(
        ids(&app).await,
        vec![own[0], foreign[0]],
        "nothing before approval"
    );
    let items: Vec<i64> = sqlx::query_scalar("SELECT message_id FROM deletion_request_items")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(items, own, "the request covers only the deleter's archive");
}
