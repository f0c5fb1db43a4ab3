//! Alerts (issue #17): every trigger opens an alert once, resolves it when its condition
//! clears, and mails the administrators once, through a real SMTP server on loopback
//! (aiosmtpd with STARTTLS and AUTH).

use daygle::audit::{self, Actor, AuditEvent};
use daygle::config::ClamavSettings;
use daygle::notify::evaluator::{Evaluator, Smtp};
use daygle::notify::mailer::Mailer;
use daygle::notify::triggers::{self, Trigger};
use daygle::scan::Scanner;

use crate::common::TestApp;
use crate::common::auth::csrf_from;
use crate::common::mail::{Mail, archive, build};
use crate::common::smtp::{self, SmtpServer};

fn dead_scanner() -> ClamavSettings {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ClamavSettings {
        enabled: true,
        address: format!("127.0.0.1:{port}"),
        timeout_secs: 2,
        ..ClamavSettings::default()
    }
}

/// The app runs its own evaluator too (first pass after a minute); it sees the same scanner
/// and has no mailer, so the test's passes decide what is mailed.
async fn app(clamav: &ClamavSettings) -> TestApp {
    let clamav = clamav.clone();
    crate::common::spawn_app_with(move |s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
        s.clamav = clamav;
    })
    .await
}

fn evaluator(app: &TestApp, clamav: &ClamavSettings, smtp: Option<&SmtpServer>) -> Evaluator {
    Evaluator {
        pool: app.pool.clone(),
        scanner: Scanner::from_settings(clamav),
        data_dir: app.data_path(),
        smtp: Smtp::Fixed(smtp.and_then(|s| Mailer::from_settings(&s.settings()))),
        public_url: "https://archive.example.org".into(),
    }
}

async fn set_threshold(app: &TestApp, trigger: Trigger, threshold: i64) {
    let mut c = trigger.default_config();
    c.threshold = threshold;
    triggers::save(&app.pool, &c).await.unwrap();
}

async fn open_alerts(app: &TestApp) -> Vec<(String, String, i32)> {
    sqlx::query_as(
        "SELECT trigger, subject, seen_count FROM alerts WHERE resolved_at IS NULL ORDER BY trigger",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_trigger_opens_once_mails_once_and_resolves_when_the_condition_clears() {
    if !smtp::available() {
        eprintln!("skipped: needs python3-aiosmtpd and openssl (apt-get install python3-aiosmtpd)");
        return;
    }
    let clamav = dead_scanner();
    let app = app(&clamav).await;
    let admin = app.set_up_admin().await; // admin@example.org
    let server = SmtpServer::start();
    let eval = evaluator(&app, &clamav, Some(&server));

    // Every condition at once.
    let failing = app.insert_account("failing@example.org").await;
    let quiet = app.insert_account("quiet@example.org").await;
    sqlx::query(
        "INSERT INTO workers (name, account_id, state, last_error, last_error_at, consecutive_failures, last_success_at)
         VALUES ('sync:account:' || $1, $1, 'backoff', 'LOGIN failed', now(), 3, NULL),
                ('sync:account:' || $2, $2, 'idle', NULL, NULL, 0, now())",
    )
    .bind(failing)
    .bind(quiet)
    .execute(&app.pool)
    .await
    .unwrap();
    archive(&app, quiet, "INBOX", vec![build(&Mail::default())]).await;
    sqlx::query("UPDATE messages SET archived_at = now() - interval '10 days'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO ledger_entries (account_id, folder, uidvalidity, uid, kind, reason)
         VALUES ($1, 'INBOX', 1, 7, 'failed', 'message larger than the batch limit')",
    )
    .bind(failing)
    .execute(&app.pool)
    .await
    .unwrap();
    for _ in 0..3 {
        audit::record_now(
            &app.pool,
            &AuditEvent::by(&Actor::cli(), audit::Action::LoginLockout),
        )
        .await
        .unwrap();
    }
    set_threshold(&app, Trigger::DatabaseSize, 0).await;
    set_threshold(&app, Trigger::DiskSpace, 101).await;

    let first = eval.run_once().await.unwrap();
    let open = open_alerts(&app).await;
    let mut triggers: Vec<&str> = open.iter().map(|(t, _, _)| t.as_str()).collect();
    triggers.dedup();
    assert_eq!(
        triggers,
        [
            "account_quiet",
            "database_size",
            "disk_space",
            "ledger_failures",
            "repeated_lockouts",
            "scanner_unreachable",
            "sync_failing"
        ],
        "{open:?}"
    );
    assert_eq!(
        open.len(),
        7,
        "one alert per condition and subject: {open:?}"
    );
    assert_eq!(first.mailed, 7, "{first:?}");
    let mails = server.wait_for(7);
    assert_eq!(mails.len(), 7);
    for m in &mails {
        assert!(m.starts_with("X-Rcpt: admin@example.org\r\n"), "{m}");
        assert!(m.contains("From: archiver@example.org"), "{m}");
    }
    let sync_mail = mails
        .iter()
        .find(|m| m.contains("Subject: [Daygle] Critical: Sync of failing@example.org is failing"))
        .expect("a mail about the failing account");
    assert!(sync_mail.contains("LOGIN failed"), "{sync_mail}");
    assert!(sync_mail.contains(&format!("https://archive.example.org/accounts/{failing}")));

    // Still true a minute later: no second alert, no second mail.
    let second = eval.run_once().await.unwrap();
    assert_eq!((second.opened, second.mailed), (0, 0), "{second:?}");
    assert!(
        open_alerts(&app)
            .await
            .iter()
            .all(|(_, _, seen)| *seen == 2)
    );
    assert_eq!(server.received().len(), 7);

    // The conditions clear (the scanner stays down): those alerts resolve.
    sqlx::query("UPDATE workers SET consecutive_failures = 0, last_success_at = now()")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET archived_at = now()")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM ledger_entries")
        .execute(&app.pool)
        .await
        .unwrap();
    set_threshold(&app, Trigger::DatabaseSize, 100_000).await;
    set_threshold(&app, Trigger::DiskSpace, 0).await;
    set_threshold(&app, Trigger::RepeatedLockouts, 50).await;
    let third = eval.run_once().await.unwrap();
    assert_eq!(third.resolved, 6, "{third:?}");
    let open = open_alerts(&app).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].0, "scanner_unreachable");

    // The page lists it, the navigation counts it, and an administrator acknowledges it.
    let (status, html) = app.page(&admin, "/alerts").await;
    assert_eq!(status, 200);
    assert!(html.contains("The virus scanner is unreachable"), "{html}");
    assert!(html.contains("class=\"nav-badge\""), "{html}");
    assert!(html.contains("Recently resolved") && html.contains("Sync of failing@example.org"));
    let id: i64 = sqlx::query_scalar("SELECT id FROM alerts WHERE resolved_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = admin
        .post(app.url(&format!("/alerts/{id}/acknowledge")))
        .form(&[("csrf_token", csrf_from(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, html) = app.page(&admin, "/alerts").await;
    assert!(html.contains("Acknowledged by admin"), "{html}");
    assert!(
        app.audit_actions()
            .await
            .contains(&"alert.acknowledge".to_string())
    );
}

#[tokio::test]
async fn a_mail_that_cannot_be_sent_is_recorded_and_tried_again() {
    if !smtp::available() {
        eprintln!("skipped: needs python3-aiosmtpd and openssl (apt-get install python3-aiosmtpd)");
        return;
    }
    let clamav = dead_scanner();
    let app = app(&clamav).await;
    app.set_up_admin().await;
    let server = SmtpServer::start();
    // First the mail server is not there (nothing listens on its port).
    let mut wrong = server.settings();
    wrong.port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut eval = evaluator(&app, &clamav, None);
    eval.smtp = Smtp::Fixed(Mailer::from_settings(&wrong));
    // Only the scanner alert, whatever the test machine's disk looks like.
    set_threshold(&app, Trigger::DiskSpace, 0).await;

    let first = eval.run_once().await.unwrap();
    assert_eq!((first.opened, first.mail_failed), (1, 1), "{first:?}");
    let error: Option<String> = sqlx::query_scalar("SELECT email_error FROM alerts")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(error.unwrap_or_default().contains("SMTP 127.0.0.1"));
    assert!(server.received().is_empty());

    // Once it is reachable, the next pass delivers it (once).
    eval.smtp = Smtp::Fixed(Mailer::from_settings(&server.settings()));
    sqlx::query("UPDATE alerts SET email_claimed_at = NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(eval.run_once().await.unwrap().mailed, 1);
    assert_eq!(server.wait_for(1).len(), 1);
    assert_eq!(eval.run_once().await.unwrap().mailed, 0);
}

#[tokio::test]
async fn readers_neither_see_alerts_nor_their_badge() {
    let clamav = dead_scanner();
    let app = app(&clamav).await;
    app.set_up_admin().await;
    evaluator(&app, &clamav, None).run_once().await.unwrap();
    app.create_user("reader", "Read Only", &[]).await;
    let reader = app.sign_in("reader", crate::common::auth::PASSWORD).await;
    assert_eq!(app.page(&reader, "/alerts").await.0, 403);
    let (_, html) = app.page(&reader, "/").await;
    assert!(
        !html.contains("nav-badge") && !html.contains("/alerts"),
        "{html}"
    );
}

#[tokio::test]
async fn a_token_that_keeps_hitting_its_rate_limit_opens_one_alert_that_resolves_when_it_stops() {
    if !smtp::available() {
        eprintln!("skipped: needs python3-aiosmtpd and openssl (apt-get install python3-aiosmtpd)");
        return;
    }
    let app = crate::common::spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
        s.clamav.enabled = false;
        s.api.rate_limit_per_minute = 2;
    })
    .await;
    let admin = app.set_up_admin().await;
    let server = SmtpServer::start();
    let eval = evaluator(&app, &ClamavSettings::default(), Some(&server));
    // Only this trigger can fire, whatever the test machine's disk looks like.
    set_threshold(&app, Trigger::DiskSpace, 0).await;
    set_threshold(&app, Trigger::ApiRateLimited, 5).await;
    let robot = app.create_user("robot", "Read Only", &[]).await;
    let (token, secret) = daygle::auth::tokens::create(
        &app.pool,
        &Actor::cli(),
        robot,
        daygle::auth::tokens::NewToken {
            name: "nightly export".into(),
            scopes: vec![daygle::auth::tokens::Scope::MailRead],
            account_ids: None,
            expires_in_days: Some(30),
        },
    )
    .await
    .unwrap();
    let api = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let res = api
            .get(app.url("/api/v1/accounts"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429, 429, 429, 429]);
    let (rows, refused): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(refused), 0)::bigint FROM api_token_refusals",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(refused, 6, "every refusal counted");
    assert!(
        rows <= 2,
        "a counter per minute, not a row per request: {rows}"
    );

    let first = eval.run_once().await.unwrap();
    assert_eq!((first.opened, first.mailed), (1, 1), "{first:?}");
    let open = open_alerts(&app).await;
    assert_eq!(
        open,
        [(
            "api_rate_limited".to_string(),
            format!("api_token:{}", token.id),
            1
        )]
    );
    let mails = server.wait_for(1);
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.starts_with("X-Rcpt: admin@example.org\r\n"), "{mail}");
    assert!(mail.contains("keeps hitting its rate limit"), "{mail}");
    assert!(
        mail.contains("nightly export") && mail.contains("robot"),
        "{mail}"
    );
    assert!(mail.contains("6 requests"), "{mail}");
    assert!(
        !mail.contains(&secret[4..]),
        "never the token's secret: {mail}"
    );
    let (_, html) = app.page(&admin, "/alerts").await;
    assert!(html.contains("nightly export"), "{html}");
    assert!(!html.contains(&secret[4..]));

    // Still refused a minute later: the same alert, no second mail.
    api.get(app.url("/api/v1/accounts"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    let second = eval.run_once().await.unwrap();
    assert_eq!((second.opened, second.mailed), (0, 0), "{second:?}");
    assert_eq!(server.received().len(), 1);

    // The script stops: once its refusals are older than the window, the alert resolves.
    sqlx::query("UPDATE api_token_refusals SET minute = minute - interval '16 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    let third = eval.run_once().await.unwrap();
    assert_eq!(third.resolved, 1, "{third:?}");
    assert!(open_alerts(&app).await.is_empty());
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn the_rate_limit_trigger_is_on_the_settings_page_and_can_be_switched_off() {
    let clamav = dead_scanner();
    let app = app(&clamav).await;
    let admin = app.set_up_admin().await;
    let (_, html) = app.page(&admin, "/settings").await;
    assert!(
        html.contains("An API token keeps hitting its rate limit")
            && html.contains("refused requests within 15 minutes")
            && html.contains("name=\"api_rate_limited.threshold\" value=\"10\""),
        "{html}"
    );
    let mut form: Vec<(String, String)> = vec![("csrf_token".into(), csrf_from(&html))];
    for t in Trigger::ALL {
        let c = t.default_config();
        if c.enabled && t != Trigger::ApiRateLimited {
            form.push((format!("{}.enabled", t.key()), "on".into()));
        }
        if c.send_email {
            form.push((format!("{}.send_email", t.key()), "on".into()));
        }
        form.push((format!("{}.threshold", t.key()), c.threshold.to_string()));
    }
    let res = admin
        .post(app.url("/settings/alerts"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let stored = triggers::load_all(&app.pool).await.unwrap();
    let rate = stored
        .iter()
        .find(|c| c.trigger == Trigger::ApiRateLimited)
        .unwrap();
    assert!(
        !rate.enabled && rate.send_email && rate.threshold == 10,
        "{rate:?}"
    );
}
