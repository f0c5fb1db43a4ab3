//! `daygle import` scans like the sync does: verdicts stored, infected mail quarantined, and
//! nothing stored unscanned while clamd is down.

use super::samples;
use crate::common::clamd::Clamd;
use crate::common::process::daygle;
use crate::common::{TestApp, spawn_app};

fn import(app: &TestApp, clamd: &Clamd, dir: &std::path::Path) -> (bool, String) {
    let out = daygle(&app.data_path())
        .args(["import", "--account", "imported"])
        .arg(dir)
        .env("DAYGLE__DATABASE__URL", &app.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", app.data_path())
        .env("DAYGLE__CLAMAV__ENABLED", "true")
        .env("DAYGLE__CLAMAV__ADDRESS", clamd.tcp_address())
        .env("DAYGLE__CLAMAV__TIMEOUT_SECS", "3")
        .output()
        .expect("run daygle import");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn verdicts(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT scan_status FROM messages ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn imported_mail_is_scanned_and_infected_mail_is_quarantined() {
    let mut clamd = Clamd::spawn();
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("1-clean.eml"), samples::clean()).unwrap();
    std::fs::write(
        dir.path().join("2-virus.eml"),
        samples::eicar_base64_attachment(),
    )
    .unwrap();
    let (ok, out) = import(&app, &clamd, dir.path());
    assert!(ok, "{out}");
    assert_eq!(verdicts(&app).await, ["clean"], "{out}");
    let quarantined: i64 = sqlx::query_scalar("SELECT count(*) FROM quarantine")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(quarantined, 1);

    // clamd down: the import stops with an error and stores nothing unscanned.
    let later = tempfile::tempdir().unwrap();
    std::fs::write(later.path().join("3-clean.eml"), samples::clean()).unwrap();
    clamd.stop();
    let (ok, out) = import(&app, &clamd, later.path());
    assert!(!ok, "import succeeded without a scanner: {out}");
    assert_eq!(
        verdicts(&app).await,
        ["clean"],
        "a message was stored unscanned"
    );

    // Back up: the re-run archives it, scanned.
    clamd.start();
    let (ok, out) = import(&app, &clamd, later.path());
    assert!(ok, "{out}");
    assert_eq!(verdicts(&app).await, ["clean", "clean"]);
}

/// The settings page stores runtime settings in the database; the command-line import (and
/// `sync --once`, through the same `live_settings`) must use them, not only the file (#17).
#[tokio::test]
async fn the_command_line_uses_the_quarantine_expiry_set_on_the_settings_page() {
    let clamd = Clamd::spawn();
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO settings (key, value, updated_by) \
         VALUES ('clamav.quarantine_expiry_days', '\"3\"', 'admin')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("virus.eml"),
        samples::eicar_base64_attachment(),
    )
    .unwrap();
    let (ok, out) = import(&app, &clamd, dir.path());
    assert!(ok, "{out}");
    let days: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - created_at)::float8 / 86400 FROM quarantine",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        (days - 3.0).abs() < 0.01,
        "expires after {days} days, not 3"
    );
}
