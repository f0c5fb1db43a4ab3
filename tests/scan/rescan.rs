//! Re-scanning archived mail after the signatures change (`daygle rescan`).

use daygle::config::ClamavSettings;
use daygle::scan::rescan::{self, RescanFilter};
use daygle::scan::{ScanStage, Scanner};
use daygle::secrets::SealingKeys;

use super::samples;
use crate::common::clamd::Clamd;
use crate::common::mail::archive;
use crate::common::process::daygle;
use crate::common::{TestApp, spawn_app};

const MARKER: &[u8] = b"DAYGLE-NEW-THREAT-7f3a9c";

/// A clean-looking message that a signature added later will match.
fn later_detected() -> Vec<u8> {
    let mut m = samples::clean();
    m.extend_from_slice(MARKER);
    m.extend_from_slice(b"\r\n");
    m
}

fn rescan_cli(app: &TestApp, clamd: &Clamd, args: &[&str]) -> (bool, String) {
    let out = daygle(&app.data_path())
        .arg("rescan")
        .args(args)
        .env("DAYGLE__DATABASE__URL", &app.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", app.data_path())
        .env("DAYGLE__CLAMAV__ENABLED", "true")
        .env("DAYGLE__CLAMAV__ADDRESS", clamd.tcp_address())
        .output()
        .expect("run daygle rescan");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn statuses(app: &TestApp) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT uid, scan_status FROM messages ORDER BY uid")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn rescan_marks_archived_mail_clean_then_quarantines_what_a_new_signature_detects() {
    let clamd = Clamd::spawn();
    let app = spawn_app().await;
    let account = app.insert_account("Sales").await;
    archive(
        &app,
        account,
        "INBOX",
        vec![samples::clean(), later_detected(), samples::clean()],
    )
    .await;
    assert!(statuses(&app).await.iter().all(|(_, s)| s == "not_scanned"));

    let (ok, out) = rescan_cli(&app, &clamd, &["--account", "Sales"]);
    assert!(ok, "{out}");
    assert!(out.contains("re-scanned 3 of 3 messages: 3 clean"), "{out}");
    assert!(statuses(&app).await.iter().all(|(_, s)| s == "clean"));

    clamd.add_signature("Daygle.Test.NewThreat", MARKER);
    let (ok, out) = rescan_cli(&app, &clamd, &["--since", "2000-01-01"]);
    assert!(ok, "{out}");
    assert!(out.contains("1 newly infected (1 quarantined"), "{out}");
    assert_eq!(
        statuses(&app)
            .await
            .iter()
            .map(|(u, _)| *u)
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    let (uid, virus, source): (i64, String, String) =
        sqlx::query_as("SELECT uid, virus_name, source FROM quarantine")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(uid, 2);
    assert!(virus.starts_with("Daygle.Test.NewThreat"), "{virus}");
    assert_eq!(source, "rescan");
}

#[tokio::test]
async fn rescan_with_flag_marks_newly_detected_mail_infected_and_stops_cleanly_when_clamd_is_gone()
{
    let mut clamd = Clamd::spawn();
    let app = spawn_app().await;
    let account = app.insert_account("Sales").await;
    archive(
        &app,
        account,
        "INBOX",
        vec![later_detected(), samples::clean()],
    )
    .await;
    clamd.add_signature("Daygle.Test.NewThreat", MARKER);
    let settings = ClamavSettings {
        action: "flag".into(),
        ..clamd.settings()
    };
    let stage = ScanStage::new(Scanner::new(&settings), &settings);
    let keys = SealingKeys::new(&[3u8; 32]);
    let report = rescan::run(&app.pool, &stage, &keys, &RescanFilter::default(), |_| {})
        .await
        .unwrap();
    assert_eq!((report.scanned, report.flagged, report.clean), (2, 1, 1));
    let flagged: (String, Option<String>) =
        sqlx::query_as("SELECT scan_status, virus_name FROM messages WHERE uid = 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(flagged.0, "infected");
    assert!(flagged.1.unwrap().starts_with("Daygle.Test.NewThreat"));

    clamd.stop();
    let report = rescan::run(&app.pool, &stage, &keys, &RescanFilter::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.scanned, 0);
    assert!(report.stopped.is_some());
    let (ok, out) = rescan_cli(&app, &clamd, &[]);
    assert!(!ok);
    assert!(out.contains("clamd must be reachable"), "{out}");
    assert_eq!(statuses(&app).await.len(), 2, "nothing was changed");
}
