//! The scan stage inside a real sync: Dovecot → pipeline → clamd → PostgreSQL.

use std::time::Duration;

use super::samples;
use crate::common::clamd::Clamd;
use crate::ingest_support::{Env, env_with};

const NEW: Duration = Duration::from_secs(60);

/// The ingest suite's environment with clamd answering and `action` for infected mail.
async fn env(clamd: &Clamd, action: &str) -> Env {
    env_with(|settings| {
        settings.clamav = clamd.settings();
        settings.clamav.action = action.into();
        // Small batches, so a sync is several transactions.
        settings.sync.batch_messages = 2;
    })
    .await
}

async fn scan_statuses(env: &Env) -> Vec<(i64, String, Option<String>)> {
    sqlx::query_as("SELECT uid, scan_status, virus_name FROM messages ORDER BY uid")
        .fetch_all(&env.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn synced_mail_is_archived_clean_and_the_infected_message_is_quarantined_instead() {
    let clamd = Clamd::spawn();
    let env = env(&clamd, "quarantine").await;
    env.dovecot.write_messages(
        "alice",
        "INBOX",
        &[
            samples::clean(),
            samples::eicar_base64_attachment(),
            samples::clean(),
        ],
        NEW,
    );
    let account = env.account("alice", "alice").await;
    let outcome = env.sync(&account).await.expect("sync");
    assert_eq!((outcome.archived, outcome.quarantined), (2, 1));
    let statuses = scan_statuses(&env).await;
    assert_eq!(statuses.len(), 2);
    assert!(
        statuses.iter().all(|(_, s, v)| s == "clean" && v.is_none()),
        "{statuses:?}"
    );
    let (uid, virus): (i64, String) =
        sqlx::query_as("SELECT uid, virus_name FROM quarantine WHERE account_id = $1")
            .bind(account.id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(virus.starts_with("Eicar-Test-Signature"), "{virus}");
    assert!(
        !statuses.iter().any(|(u, _, _)| *u == uid),
        "the infected copy is not archived"
    );
    let last: i64 = env
        .count("SELECT last_uid FROM sync_state WHERE folder = 'INBOX'")
        .await;
    assert_eq!(last, 3, "the position passes the quarantined message");
    // A second pass adds nothing twice.
    let again = env.sync(&account).await.expect("second sync");
    assert_eq!((again.archived, again.quarantined), (0, 0));
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 1);
}

#[tokio::test]
async fn with_action_flag_infected_mail_is_archived_marked_with_its_virus() {
    let clamd = Clamd::spawn();
    let env = env(&clamd, "flag").await;
    env.dovecot.write_messages(
        "bob",
        "INBOX",
        &[samples::clean(), samples::eicar_in_plain_body()],
        NEW,
    );
    let account = env.account("bob", "bob").await;
    env.sync(&account).await.expect("sync");
    let statuses = scan_statuses(&env).await;
    assert_eq!(statuses[0].1, "clean");
    assert_eq!(statuses[1].1, "infected");
    assert!(
        statuses[1]
            .2
            .as_deref()
            .unwrap()
            .starts_with("Eicar-Test-Signature")
    );
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 0);
}

#[tokio::test]
async fn with_action_reject_only_a_record_of_the_infected_message_is_kept() {
    let clamd = Clamd::spawn();
    let env = env(&clamd, "reject").await;
    env.dovecot.write_messages(
        "carol",
        "INBOX",
        &[samples::eicar_quoted_printable_part()],
        NEW,
    );
    let account = env.account("carol", "carol").await;
    let outcome = env.sync(&account).await.expect("sync");
    assert_eq!((outcome.archived, outcome.rejected), (0, 1));
    assert_eq!(env.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM scan_rejections").await, 1);
}

#[tokio::test]
async fn with_clamd_down_nothing_is_stored_unscanned_and_the_sync_completes_once_it_is_back() {
    let mut clamd = Clamd::spawn();
    let env = env(&clamd, "quarantine").await;
    env.dovecot
        .write_messages("dave", "INBOX", &[samples::clean(), samples::clean()], NEW);
    let account = env.account("dave", "dave").await;
    assert_eq!(env.sync(&account).await.expect("first sync").archived, 2);

    // New mail arrives while the scanner is down.
    env.dovecot.write_messages(
        "dave",
        "INBOX",
        &[
            samples::clean(),
            samples::eicar_base64_attachment(),
            samples::clean(),
        ],
        NEW,
    );
    clamd.stop();
    let err = env.sync(&account).await.expect_err("the sync must stop");
    assert!(
        err.to_string().contains("waiting for virus scanner"),
        "{err}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM messages").await,
        2,
        "nothing new stored"
    );
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 0);
    let last: i64 = env
        .count("SELECT last_uid FROM sync_state WHERE folder = 'INBOX'")
        .await;
    assert_eq!(last, 2, "the position does not pass the unscanned mail");

    clamd.start();
    let outcome = env.sync(&account).await.expect("sync after clamd is back");
    assert_eq!((outcome.archived, outcome.quarantined), (2, 1));
    let statuses = scan_statuses(&env).await;
    assert_eq!(statuses.len(), 4);
    assert!(
        statuses.iter().all(|(_, s, _)| s == "clean"),
        "{statuses:?}"
    );
    let last: i64 = env
        .count("SELECT last_uid FROM sync_state WHERE folder = 'INBOX'")
        .await;
    assert_eq!(last, 5);
}

#[tokio::test]
async fn with_archive_unscanned_mail_is_stored_pending_while_clamd_is_down_and_scanned_when_it_returns()
 {
    let mut clamd = Clamd::spawn();
    let mut env = env(&clamd, "quarantine").await;
    env.settings.clamav.archive_unscanned = true;
    env.dovecot.write_messages(
        "erin",
        "INBOX",
        &[samples::clean(), samples::eicar_base64_attachment()],
        NEW,
    );
    let account = env.account("erin", "erin").await;
    clamd.stop();
    let outcome = env
        .sync(&account)
        .await
        .expect("sync goes on without clamd");
    assert_eq!(outcome.archived, 2);
    let statuses = scan_statuses(&env).await;
    assert!(
        statuses.iter().all(|(_, s, _)| s == "pending"),
        "{statuses:?}"
    );

    clamd.start();
    let stage = daygle::scan::ScanStage::from_settings(&env.settings.clamav).unwrap();
    let filter = daygle::scan::rescan::RescanFilter {
        only_pending: true,
        ..Default::default()
    };
    let report = daygle::scan::rescan::run(&env.pool, &stage, &env.keys.sealing, &filter, |_| {})
        .await
        .unwrap();
    assert_eq!((report.clean, report.quarantined), (1, 1));
    let statuses = scan_statuses(&env).await;
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].1, "clean");
    assert_eq!(env.count("SELECT count(*) FROM quarantine").await, 1);
}
