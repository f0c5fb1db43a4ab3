use std::time::{Duration, Instant};

use super::support::*;
use crate::common::{dovecot::Dovecot, spawn_app_with};
use daygle::ingest::{accounts, workers};
use daygle::secrets::Keys;

#[tokio::test]
async fn serve_syncs_due_accounts_in_the_background_and_reports_worker_status() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .expect("dovecot");
    dovecot.add_user("alice", "alice-pw");
    dovecot.write_messages("alice", "INBOX", &messages("serve", 5), NEW);
    let app = spawn_app_with(|s| s.sync.connect_timeout_secs = 10).await;
    let keys = Keys::load(&Default::default(), app.data_dir.path()).expect("the app's keys");
    let settings = accounts::ImapSettings {
        name: "Alice".into(),
        host: "127.0.0.1".into(),
        port: dovecot.port,
        tls: accounts::TlsMode::None,
        username: "alice".into(),
        folders_include: vec![],
        folders_exclude: vec![],
        poll_interval_secs: 60,
        delete_after_days: None,
        expunge: true,
        pinned_cert_sha256: None,
    };
    let mut tx = app.pool.begin().await.expect("tx");
    let id = accounts::create_imap(&mut tx, &keys.sealing, &settings, "alice-pw")
        .await
        .expect("account");
    tx.commit().await.expect("commit");

    let started = Instant::now();
    let worker = loop {
        let w = workers::get(&app.pool, &workers::sync_worker_name(id))
            .await
            .expect("status");
        if let Some(w) = w.filter(|w| w.last_success_at.is_some()) {
            break w;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no background sync within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_eq!(worker.state.as_str(), "idle");
    assert_eq!(worker.messages_archived, 5);
    assert!(worker.next_run_at.is_some());
    let archived: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(archived, 5);
    app.stop().await;
}
