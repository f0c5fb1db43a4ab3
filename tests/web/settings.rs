//! The settings page (issue #17): values stored in the database apply at once, are checked
//! with the config file's own messages, audited with old and new values (secrets masked),
//! and never override what the config file or the environment sets.

use std::io::Write;

use daygle::config::{Origin, load_from};

use crate::common::auth::csrf_from;
use crate::common::smtp::{self, SmtpServer};
use crate::common::{TestApp, spawn_app_with};

/// An app whose config file sets `security.session_absolute_hours` and whose environment sets
/// `sync.default_poll_secs`, read through the real loader.
async fn app_with_file_and_env(ca_file: String) -> (TestApp, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[security]\nsession_absolute_hours = 9").unwrap();
    let env = vec![(
        "DAYGLE__SYNC__DEFAULT_POLL_SECS".to_string(),
        "900".to_string(),
    )];
    let loaded = load_from(Some(file.path()), env, &[]).expect("config loads");
    assert_eq!(
        loaded.origins.get("security.session_absolute_hours"),
        Some(&Origin::File(file.path().display().to_string()))
    );
    assert_eq!(
        loaded.origins.get("sync.default_poll_secs"),
        Some(&Origin::Env("DAYGLE__SYNC__DEFAULT_POLL_SECS".into()))
    );
    assert_eq!(loaded.origins.get("smtp.host"), None);
    let app = spawn_app_with(move |s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
        s.security.session_absolute_hours = loaded.security.session_absolute_hours;
        s.sync.default_poll_secs = loaded.sync.default_poll_secs;
        s.origins = loaded.origins;
        s.smtp.ca_file = ca_file;
    })
    .await;
    (app, file)
}

async fn post(
    app: &TestApp,
    c: &reqwest::Client,
    action: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let (_, html) = app.page(c, "/settings").await;
    let token = csrf_from(&html);
    let mut form = fields.to_vec();
    form.push(("csrf_token", &token));
    let res = c.post(app.url(action)).form(&form).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

async fn stored(app: &TestApp) -> Vec<(String, serde_json::Value, Option<String>)> {
    sqlx::query_as("SELECT key, value, sealed FROM settings ORDER BY key")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn settings_apply_at_once_are_audited_and_never_beat_the_config_file() {
    if !smtp::available() {
        eprintln!("skipped: needs python3-aiosmtpd and openssl (apt-get install python3-aiosmtpd)");
        return;
    }
    let server = SmtpServer::start();
    let (app, _file) = app_with_file_and_env(server.ca_file.display().to_string()).await;
    let admin = app.set_up_admin().await;

    // Locked values show where they come from and cannot be edited.
    let (status, html) = app.page(&admin, "/settings").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Set by the environment variable DAYGLE__SYNC__DEFAULT_POLL_SECS"),
        "{html}"
    );
    assert!(html.contains("Set by the config file"), "{html}");
    assert!(
        html.contains("value=\"900\" min=\"0\" inputmode=\"numeric\" disabled"),
        "{html}"
    );
    // Posting one anyway is refused, and nothing is stored.
    let (status, html) = post(
        &app,
        &admin,
        "/settings",
        &[("sync.default_poll_secs", "60")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("is set by the environment variable DAYGLE__SYNC__DEFAULT_POLL_SECS and cannot be changed here"), "{html}");
    assert!(stored(&app).await.is_empty());

    // Mistakes come back beside their fields in the config file's words, with what was typed.
    let (status, html) = post(
        &app,
        &admin,
        "/settings",
        &[
            ("smtp.enabled", "false"),
            ("smtp.enabled", "true"),
            ("smtp.host", "127.0.0.1"),
            ("smtp.from", "nobody"),
            ("security.session_idle_minutes", "0"),
            ("clamav.quarantine_expiry_days", "seven"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("Nothing was saved"), "{html}");
    assert!(
        html.contains("must be an e-mail address when smtp.enabled is true"),
        "{html}"
    );
    assert!(html.contains("must be at least 1"), "{html}");
    assert!(html.contains("`seven` is not a whole number"), "{html}");
    assert!(
        html.contains("value=\"nobody\""),
        "the typed value is kept: {html}"
    );
    assert!(stored(&app).await.is_empty());

    // A valid change is stored (the password sealed), audited and in force at once.
    let port = server.port.to_string();
    let (status, _) = post(
        &app,
        &admin,
        "/settings",
        &[
            ("smtp.enabled", "false"),
            ("smtp.enabled", "true"),
            ("smtp.host", "127.0.0.1"),
            ("smtp.port", &port),
            ("smtp.tls", "starttls"),
            ("smtp.username", smtp::USER),
            ("smtp.password", smtp::PASSWORD),
            ("smtp.from", "archive@example.org"),
            ("clamav.quarantine_expiry_days", "7"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let rows = stored(&app).await;
    let password = rows.iter().find(|r| r.0 == "smtp.password").unwrap();
    assert_eq!(password.1, serde_json::Value::Null);
    assert!(password.2.as_deref().unwrap().starts_with("enc:v1:"));
    let all = format!("{rows:?}");
    assert!(!all.contains(smtp::PASSWORD), "{all}");
    assert!(all.contains("\"7\""), "{all}");
    let details: serde_json::Value =
        sqlx::query_scalar("SELECT details FROM audit_log WHERE action = 'settings.update'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let text = details.to_string();
    assert!(!text.contains(smtp::PASSWORD), "{text}");
    assert!(
        text.contains(r#"{"key":"smtp.password","new":"********","old":"(not set)"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"{"key":"clamav.quarantine_expiry_days","new":"7","old":"30"}"#),
        "{text}"
    );
    let (_, html) = app.page(&admin, "/settings?done=saved").await;
    assert!(html.contains("Settings saved"), "{html}");
    assert!(html.contains("Changed by admin on"), "{html}");
    assert!(!html.contains(smtp::PASSWORD));

    // "Send test e-mail" goes through the real server with the stored settings (STARTTLS, AUTH).
    let (status, _) = post(
        &app,
        &admin,
        "/settings/test-email",
        &[("to", "ops@example.org")],
    )
    .await;
    assert_eq!(status, 303);
    let mail = server.wait_for(1);
    assert!(
        mail[0].contains("ops@example.org") && mail[0].contains("test message"),
        "{}",
        mail[0]
    );
    // A wrong address is said in words, and the typed address stays.
    let (status, html) = post(
        &app,
        &admin,
        "/settings/test-email",
        &[("to", "not-an-address")],
    )
    .await;
    assert_eq!(status, 502);
    assert!(
        html.contains("The test message was not sent: `not-an-address` is not an e-mail address"),
        "{html}"
    );
    assert!(html.contains("value=\"not-an-address\""), "{html}");

    // Alert triggers: a bad threshold is refused beside it; a good change is audited.
    let (status, html) = post(
        &app,
        &admin,
        "/settings/alerts",
        &[
            ("mail_quarantined.enabled", "on"),
            ("mail_quarantined.threshold", "lots"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("Mail is waiting in the quarantine: `lots` is not a whole number"),
        "{html}"
    );
    let mut fields = Vec::new();
    for t in daygle::notify::Trigger::ALL {
        let c = t.default_config();
        if c.enabled {
            fields.push((format!("{}.enabled", t.key()), "on".to_string()));
        }
        if c.send_email {
            fields.push((format!("{}.send_email", t.key()), "on".to_string()));
        }
        fields.push((format!("{}.threshold", t.key()), c.threshold.to_string()));
    }
    fields.push(("mail_quarantined.enabled".into(), "on".into()));
    fields.push((
        "mail_quarantined.recipients".into(),
        "security@example.org".into(),
    ));
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, _) = post(&app, &admin, "/settings/alerts", &borrowed).await;
    assert_eq!(status, 303);
    let configs = daygle::notify::triggers::load_all(&app.pool).await.unwrap();
    let q = configs
        .iter()
        .find(|c| c.trigger == daygle::notify::Trigger::MailQuarantined)
        .unwrap();
    assert!(q.enabled && !q.send_email);
    assert_eq!(q.recipients, vec!["security@example.org".to_string()]);
    let changes: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'settings.alert_triggers'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(changes["changes"].as_array().unwrap().len(), 1, "{changes}");
    assert_eq!(changes["changes"][0]["old"]["enabled"], false);
    assert_eq!(changes["changes"][0]["new"]["enabled"], true);
    let actions = app.audit_actions().await;
    assert!(
        actions.contains(&"settings.test_email".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn only_holders_of_manage_settings_reach_the_settings() {
    let app = spawn_app_with(|s| s.security.login_rate_per_minute = 10_000).await;
    app.set_up_admin().await;
    app.create_user("auditor", "Auditor", &[]).await;
    let auditor = app.sign_in("auditor", crate::common::auth::PASSWORD).await;
    assert_eq!(app.page(&auditor, "/settings").await.0, 403);
    let (_, html) = app.page(&auditor, "/").await;
    assert!(!html.contains("href=\"/settings\""), "{html}");
}
