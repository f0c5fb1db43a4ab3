//! Layout facts on every page at desktop (1366 px) and phone (390 px) width, with a screenshot
//! of each in `test-artifacts/layout-*.png`. Written after the desktop layout lost all form
//! and button styles to an unclosed `@media` block while the tests only looked at phones
//! (issue #17).

use serde_json::Value;

use super::driver::{self, Browser, Driver};
use crate::common::TestApp;
use crate::common::auth::{ADMIN, PASSWORD, spawn_auth_app};
use crate::common::mail::{Mail, archive, build};

/// Returns the layout problems of the page in the browser, as sentences.
const LAYOUT_FACTS: &str = r#"
const problems = [];
const root = document.documentElement;
if (root.scrollWidth > root.clientWidth + 1)
  problems.push(`the page is ${root.scrollWidth}px wide in a ${root.clientWidth}px window`);
const visible = el => el.offsetParent !== null && el.getClientRects().length > 0;
const fields = 'label input:not([type=checkbox]):not([type=radio]):not([type=hidden]), label select, label textarea';
for (const input of document.querySelectorAll(fields)) {
  if (!visible(input)) continue;
  const label = input.closest('label');
  const text = [...label.childNodes].find(n => n.nodeType === 3 && n.textContent.trim());
  if (!text) continue;
  const range = document.createRange();
  range.selectNodeContents(text);
  if (input.getBoundingClientRect().top < range.getBoundingClientRect().bottom - 2)
    problems.push(`"${text.textContent.trim()}": the field is beside its label, not below it`);
}
for (const button of document.querySelectorAll('main button, main .button')) {
  if (!visible(button) || button.classList.contains('link-button')) continue;
  const s = getComputedStyle(button);
  const name = button.textContent.trim();
  if (parseFloat(s.paddingLeft) < 4 || parseFloat(s.borderTopLeftRadius) < 2)
    problems.push(`button "${name}" is unstyled`);
  if ((button.classList.contains('primary') || button.classList.contains('button'))
      && (s.backgroundColor === 'rgba(0, 0, 0, 0)' || s.backgroundColor === s.color))
    problems.push(`primary button "${name}" has no colour`);
}
const navItems = [...document.querySelectorAll('header nav > ul > li')];
if (root.clientWidth >= 1000 && navItems.length
    && new Set(navItems.map(li => Math.round(li.getBoundingClientRect().top))).size > 1)
  problems.push(`the navigation needs ${new Set(navItems.map(li => Math.round(li.getBoundingClientRect().top))).size} rows`);
for (const list of document.querySelectorAll('header nav > ul, header nav details[open] > ul'))
  if (list.scrollWidth > list.clientWidth + 1 && visible(list))
    problems.push(`a navigation list is ${list.scrollWidth}px wide in ${list.clientWidth}px: ${list.textContent.trim().replace(/\s+/g, ' ')}`);
for (const check of document.querySelectorAll('label input[type=checkbox]')) {
  if (!visible(check)) continue;
  const label = check.closest('label');
  const l = label.getBoundingClientRect(), c = check.getBoundingClientRect();
  if (c.bottom < l.top || c.top > l.bottom)
    problems.push(`a checkbox sits outside its label "${label.textContent.trim()}"`);
}
return problems;
"#;

/// Opens `path`, screenshots it as `layout-<name>-<width>`, and returns its problems.
pub(super) async fn check(
    b: &Browser,
    app: &TestApp,
    path: &str,
    name: &str,
    width: u32,
) -> Vec<String> {
    b.goto(&app.url(path)).await;
    let problems: Value = b.execute(LAYOUT_FACTS).await;
    b.screenshot_full(&format!("layout-{name}-{width}"), width)
        .await;
    problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{path} at {width}px: {}", p.as_str().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn every_page_keeps_its_layout_at_desktop_and_phone_width() {
    if !driver::available() {
        eprintln!(
            "skipped: /usr/bin/chromium and /usr/bin/chromedriver are needed (apt-get install chromium chromium-driver)"
        );
        return;
    }
    // The app's own log events fill /logs; one failure with a long error shows how it wraps.
    daygle::telemetry::init("text", "warn");
    tracing::warn!(
        target: "daygle::ingest::scheduler",
        account = "sales@example.org",
        error = "the server refused the sign-in (AUTHENTICATIONFAILED Authentication failed.): check the user name and password",
        "sync pass failed"
    );
    let app = spawn_auth_app().await;
    let account = app.insert_account("sales@example.org").await;
    let long = "A subject long enough to push the table off the screen when nothing wraps it";
    let ids = archive(
        &app,
        account,
        "INBOX",
        vec![build(&Mail {
            subject: long,
            body: &"Words without an end ".repeat(40),
            attachment: Some(("report.pdf", b"%PDF-1.4")),
            ..Mail::default()
        })],
    )
    .await;
    // Gmail labels as tags beside the subject and on the message page, one of them long.
    sqlx::query("INSERT INTO account_labels (account_id, label_id, name) VALUES ($1, 'Label_1', 'Clients/Northwind Traders/Quarterly reporting 2024'), ($1, 'Label_2', 'Invoices')")
        .bind(account)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET labels = '{INBOX,IMPORTANT,Label_1,Label_2}' WHERE id = $1")
        .bind(ids[0])
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO alerts (trigger, subject, severity, title, detail, link) VALUES ('sync_failing', 'account:1', 'critical', 'Sync of sales@example.org is failing', '3 attempts in a row failed. Last error: LOGIN failed: authentication failed', '/accounts/1'), ('disk_space', '', 'critical', 'Only 3 % disk space left', '8.6 GB free of 252 GB on the disk holding /var/lib/daygle.', '/')").execute(&app.pool).await.unwrap();
    sqlx::query("INSERT INTO alerts (trigger, subject, severity, title, opened_at, resolved_at, acknowledged_at, acknowledged_by) VALUES ('scanner_unreachable', '', 'critical', 'The virus scanner is unreachable', now() - interval '2 hours', now() - interval '1 hour', now() - interval '90 minutes', 'admin')").execute(&app.pool).await.unwrap();
    let chrome = Driver::start().await;
    let b = chrome.browser().await;
    let mut problems = Vec::new();
    for width in [1366, 390] {
        b.set_width(width, 900).await;
        problems.extend(check(&b, &app, "/setup", "setup", width).await);
    }
    app.set_up_admin().await;
    let reader = app.create_user("reader", "Read Only", &[account]).await;
    for width in [1366, 390] {
        b.set_width(width, 900).await;
        problems.extend(check(&b, &app, "/login", "login", width).await);
    }
    b.fill("input[name=username]", ADMIN).await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;
    let role: i64 = sqlx::query_scalar("SELECT id FROM roles WHERE name = 'Read Only'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let actor = daygle::audit::Actor::cli();
    daygle::retention::policies::save(
        &app.pool,
        &actor,
        &daygle::auth::Grants::All,
        None,
        &daygle::retention::policies::PolicyInput {
            name: "thirty days".into(),
            keep_days: 30,
            age_basis: "message".into(),
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    daygle::retention::holds::place(
        &app.pool,
        &actor,
        &daygle::auth::Grants::All,
        &daygle::retention::holds::HoldInput {
            name: "lawsuit".into(),
            reason: "Smith v. Acme".into(),
            query: Some("subject:report".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // A verify run with a problem, and a deletion request waiting for approval.
    sqlx::query(&format!(
        "INSERT INTO verify_runs (trigger, started_at, finished_at, blobs_checked, messages_checked, bytes_checked, problem_count, problems)
         VALUES ('schedule', now() - interval '8 days', now() - interval '8 days' + interval '41 seconds', 1, 1, 5200, 0, '[]'),
                ('cli', now() - interval '1 hour', now() - interval '59 minutes', 1, 1, 5200, 1,
                 '[{{\"kind\": \"corrupt_blob\", \"message_id\": {}, \"account\": \"sales@example.org\", \"folder\": \"INBOX\", \"detail\": \"the stored bytes hash to 5f1c… instead of 9a07…\"}}]')",
        ids[0]
    ))
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("WITH r AS (INSERT INTO deletion_requests (kind, state, reason, requested_by) VALUES ('manual', 'pending', 'Misfiled: belongs to another customer (ticket 4711)', 'reader') RETURNING id)
                 INSERT INTO deletion_request_items (request_id, message_id, account_id, blob_sha256, size)
                 SELECT r.id, m.id, m.account_id, m.blob_sha256, m.size FROM r, messages m")
        .execute(&app.pool)
        .await
        .unwrap();
    // Deletion statistics, so /retention shows the table with its time zone.
    sqlx::query("INSERT INTO deletion_stats (account_id, bucket, cause, messages, bytes) SELECT id, now() - interval '40 days', 'retention', 1204, 48123456 FROM accounts")
        .execute(&app.pool)
        .await
        .unwrap();
    let policy: i64 = sqlx::query_scalar("SELECT id FROM retention_policies")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let pages = [
        ("/", "dashboard".to_string()),
        ("/retention", "retention".into()),
        ("/holds", "holds".into()),
        ("/messages", "messages".into()),
        ("/messages?q=subject", "search".into()),
        (
            "/messages/delete-results?q=subject",
            "delete-results".into(),
        ),
        ("/archives", "archives".into()),
        ("/accounts", "accounts".into()),
        ("/quarantine", "quarantine".into()),
        ("/users", "users".into()),
        ("/users/new", "user-new".into()),
        ("/roles", "roles".into()),
        ("/roles/new", "role-new".into()),
        ("/audit", "audit".into()),
        ("/workers", "workers".into()),
        ("/alerts", "alerts".into()),
        ("/verify", "verify".into()),
        ("/deletions", "deletions".into()),
        ("/settings", "settings".into()),
        ("/reports", "reports".into()),
        ("/profile", "profile".into()),
        ("/logs", "logs".into()),
        ("/profile/tokens", "profile-tokens".into()),
        ("/tokens", "tokens".into()),
    ];
    let numbered = [
        (format!("/messages/{}", ids[0]), "message"),
        (format!("/accounts/{account}"), "account"),
        (format!("/users/{reader}"), "user"),
        (format!("/roles/{role}"), "role"),
        (format!("/retention/policies/{policy}"), "policy"),
        (format!("/archives/{account}"), "archive"),
        ("/messages/search-help".to_string(), "search-help"),
    ];
    // Every page in both themes (the dark one is where contrast slips).
    for (theme, suffix) in [("light", ""), ("dark", "-dark")] {
        sqlx::query("UPDATE users SET theme = $1")
            .bind(theme)
            .execute(&app.pool)
            .await
            .unwrap();
        for width in [1366, 390] {
            b.set_width(width, 900).await;
            for (path, name) in &pages {
                let name = format!("{name}{suffix}");
                problems.extend(check(&b, &app, path, &name, width).await);
            }
            for (path, name) in &numbered {
                let name = format!("{name}{suffix}");
                problems.extend(check(&b, &app, path, &name, width).await);
            }
        }
    }
    for width in [1366, 390] {
        b.set_width(width, 900).await;
        // The confirmations of the list's selection actions (POST pages: reached by clicking).
        for (action, name) in [
            ("/messages/delete", "confirm-delete"),
            ("/messages/hold", "confirm-hold"),
        ] {
            b.goto(&app.url("/messages")).await;
            b.click("td.sel input[type=checkbox]").await;
            b.click(&format!("button[formaction='{action}']")).await;
            b.wait_path(action).await;
            let found: Value = b.execute(LAYOUT_FACTS).await;
            b.screenshot_full(&format!("layout-{name}-{width}"), width)
                .await;
            problems.extend(
                found
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| format!("{action} at {width}px: {}", p.as_str().unwrap_or_default())),
            );
        }
    }
    for width in [1366, 390] {
        b.set_width(width, 900).await;
        problems.extend(open_every_menu(&b, &app, width).await);
    }
    b.close().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Where an open menu's list ends up, and whether its links are there to click.
const OPEN_MENU_FACTS: &str = r#"
const [index] = arguments;
const problems = [];
const menu = document.querySelectorAll('header nav details')[index];
const list = menu.querySelector('ul').getBoundingClientRect();
const root = document.documentElement;
if (!menu.open) problems.push('it did not open');
if (list.left < 0 || list.right > root.clientWidth + 1)
  problems.push(`its list spans ${Math.round(list.left)}..${Math.round(list.right)}px of ${root.clientWidth}px`);
if (root.scrollWidth > root.clientWidth + 1)
  problems.push(`the page is ${root.scrollWidth}px wide in a ${root.clientWidth}px window`);
for (const a of menu.querySelectorAll('a'))
  if (a.getBoundingClientRect().height < 20) problems.push(`"${a.textContent}" is too small to tap`);
const others = [...document.querySelectorAll('header nav details')].filter(d => d !== menu && d.open);
if (others.length) problems.push(`${others.length} other menus stayed open`);
return problems;
"#;

/// Opens each navigation menu of the dashboard in turn (a screenshot of each) and returns
/// what is wrong with it.
async fn open_every_menu(b: &Browser, app: &TestApp, width: u32) -> Vec<String> {
    b.goto(&app.url("/")).await;
    let labels: Value = b
        .execute("return [...document.querySelectorAll('header nav summary')].map(s => s.textContent.trim());")
        .await;
    let labels: Vec<String> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert!(
        labels.len() >= 2,
        "an administrator's navigation has menus: {labels:?}"
    );
    let mut problems = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        b.click(&format!(
            "header nav li.menu:nth-child({}) summary",
            menu_position(b, i).await
        ))
        .await;
        let found: Value = b
            .execute(
                &OPEN_MENU_FACTS
                    .replace("const [index] = arguments;", &format!("const index = {i};")),
            )
            .await;
        b.screenshot(&format!("layout-nav-{}-{width}", label.to_lowercase()))
            .await;
        for p in found.as_array().unwrap() {
            problems.push(format!(
                "menu {label} at {width}px: {}",
                p.as_str().unwrap_or_default()
            ));
        }
    }
    problems
}

/// The 1-based position among the nav's items of the `i`th menu.
async fn menu_position(b: &Browser, i: usize) -> usize {
    let n: Value = b
        .execute(&format!(
            "const li = document.querySelectorAll('header nav li.menu')[{i}]; return [...li.parentElement.children].indexOf(li) + 1;"
        ))
        .await;
    n.as_u64().unwrap() as usize
}
