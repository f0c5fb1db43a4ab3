//! What operators see about the scanner: `/readyz` and `/metrics`.

use crate::common::clamd::Clamd;
use crate::common::{spawn_app, spawn_app_with};

#[tokio::test]
async fn readyz_shows_clamd_reachable_with_its_version_when_scanning_is_on() {
    let clamd = Clamd::spawn();
    let app = spawn_app_with(|s| s.clamav = clamd.settings()).await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["clamav"]["reachable"], true, "{body}");
    assert!(
        body["clamav"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("ClamAV 1."),
        "{body}"
    );
    assert_eq!(
        body["clamav"]["address"],
        format!("tcp://{}", clamd.tcp_address())
    );
}

#[tokio::test]
async fn readyz_reports_clamd_unreachable_but_the_app_stays_ready() {
    let mut clamd = Clamd::spawn();
    let app = spawn_app_with(|s| s.clamav = clamd.settings()).await;
    clamd.stop();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["clamav"]["reachable"], false, "{body}");
    assert!(
        body["clamav"]["detail"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{body}"
    );
}

#[tokio::test]
async fn readyz_has_no_clamav_section_when_scanning_is_off() {
    let app = spawn_app().await;
    let body: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert!(body.get("clamav").is_none(), "{body}");
}

#[tokio::test]
async fn metrics_count_scan_verdicts_by_kind() {
    let clamd = Clamd::spawn();
    let app = spawn_app_with(|s| s.clamav = clamd.settings()).await;
    let scanner = daygle::scan::Scanner::new(&clamd.settings());
    scanner.scan(&super::samples::clean()).await;
    scanner
        .scan(&super::samples::eicar_base64_attachment())
        .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for verdict in ["clean", "infected"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("scan_verdicts_total{{verdict=\"{verdict}\"}}")))
            .unwrap_or_else(|| panic!("no {verdict} counter in:\n{text}"));
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 1.0, "{line}");
    }
    assert!(text.contains("scan_verdicts_total{verdict=\"too_large\"}"));
}
