//! Releasing quarantined mail of a folder whose UIDVALIDITY changed since it was held:
//! Dovecot → pipeline → clamd → quarantine → release, against real PostgreSQL. The archive
//! must end up with each message once, at the folder's current UIDVALIDITY when the resync
//! saw it there — never a second copy, never none.

use std::time::Duration;

use daygle::audit::Actor;
use daygle::auth::Grants;
use daygle::ingest::accounts::Account;
use daygle::ingest::release::{self, ReleaseRequest};
use daygle::scan::Scanner;
use daygle::scan::quarantine::IfStillInfected;
use uuid::Uuid;

use super::samples;
use crate::common::clamd::Clamd;
use crate::ingest_support::{Env, env_with};

const NEW: Duration = Duration::from_secs(60);
const RESET: i64 = 4242;

async fn env(clamd: &Clamd) -> Env {
    env_with(|settings| {
        settings.clamav = clamd.settings();
        settings.clamav.action = "quarantine".into();
    })
    .await
}

/// Two clean messages around an infected one, synced once: the infected one is held.
async fn held_after_first_sync(env: &Env) -> (Account, Vec<u8>) {
    let infected = samples::eicar_base64_attachment();
    env.dovecot.write_messages(
        "alice",
        "INBOX",
        &[samples::clean(), infected.clone(), samples::clean()],
        NEW,
    );
    let account = env.account("alice", "alice").await;
    let first = env.sync(&account).await.expect("first sync");
    assert_eq!((first.archived, first.quarantined), (2, 1));
    (account, infected)
}

/// The administrator releases an entry as a false positive (clamd still detects EICAR).
async fn release_anyway(env: &Env, id: Uuid) {
    let scanner = Scanner::new(&env.settings.clamav);
    release::release(
        &env.pool,
        &env.keys.sealing,
        Some(&scanner),
        3,
        &Actor::cli(),
        &Grants::All,
        ReleaseRequest {
            id,
            reason: "a test file, not a virus",
            if_infected: IfStillInfected::ReleaseAnyway,
        },
    )
    .await
    .expect("release");
}

async fn entries(env: &Env) -> Vec<(Uuid, i64)> {
    sqlx::query_as("SELECT id, uidvalidity FROM quarantine ORDER BY created_at, id")
        .fetch_all(&env.pool)
        .await
        .unwrap()
}

/// (uidvalidity, uid) of every archived copy of `raw` in the account's INBOX.
async fn copies(env: &Env, account: &Account, raw: &[u8]) -> Vec<(i64, i64)> {
    sqlx::query_as(
        "SELECT uidvalidity, uid FROM messages
         WHERE account_id = $1 AND folder = 'INBOX' AND blob_sha256 = $2 ORDER BY id",
    )
    .bind(account.id)
    .bind(daygle::archive::blobs::sha256(raw).as_slice())
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn releasing_a_message_the_resync_already_archived_adds_no_second_copy() {
    let clamd = Clamd::spawn();
    let mut env = env(&clamd).await;
    let (account, infected) = held_after_first_sync(&env).await;
    let (held, _) = entries(&env).await[0];

    // The server rebuilt the folder; meanwhile the operator switched infected mail to `flag`,
    // so the resync archives the message itself, flagged, under the new UIDVALIDITY.
    env.dovecot.set_uidvalidity("alice", "INBOX", RESET as u32);
    env.settings.clamav.action = "flag".into();
    env.sync(&account).await.expect("sync after the reset");
    assert_eq!(copies(&env, &account, &infected).await, vec![(RESET, 2)]);

    release_anyway(&env, held).await;

    assert_eq!(
        copies(&env, &account, &infected).await,
        vec![(RESET, 2)],
        "the release adds no second copy of what the resync archived"
    );
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
    let again = env.sync(&account).await.expect("next sync");
    assert_eq!(again.archived, 0);
    assert_eq!(copies(&env, &account, &infected).await, vec![(RESET, 2)]);
}

#[tokio::test]
async fn a_held_message_follows_a_uidvalidity_change_and_is_held_once() {
    let clamd = Clamd::spawn();
    let env = env(&clamd).await;
    let (account, infected) = held_after_first_sync(&env).await;
    let (held, _) = entries(&env).await[0];

    // After the reset the resync detects the message again: the entry moves with it.
    env.dovecot.set_uidvalidity("alice", "INBOX", RESET as u32);
    let resync = env.sync(&account).await.expect("sync after the reset");
    assert_eq!((resync.archived, resync.quarantined), (0, 0));
    assert_eq!(
        entries(&env).await,
        vec![(held, RESET)],
        "one entry, the same one, at the folder's new UIDVALIDITY"
    );

    release_anyway(&env, held).await;
    assert_eq!(copies(&env, &account, &infected).await, vec![(RESET, 2)]);
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
    let again = env.sync(&account).await.expect("next sync");
    assert_eq!((again.archived, again.quarantined), (0, 0));
    assert_eq!(copies(&env, &account, &infected).await.len(), 1);
}

#[tokio::test]
async fn a_released_message_under_legal_hold_keeps_its_state_across_a_uidvalidity_change() {
    let clamd = Clamd::spawn();
    let env = env(&clamd).await;
    let (account, infected) = held_after_first_sync(&env).await;
    let (held, _) = entries(&env).await[0];
    release_anyway(&env, held).await;
    let (id, status): (i64, String) =
        sqlx::query_as("SELECT id, scan_status FROM messages WHERE blob_sha256 = $1")
            .bind(daygle::archive::blobs::sha256(&infected).as_slice())
            .fetch_one(&env.pool)
            .await
            .unwrap();
    sqlx::query(
        "WITH h AS (INSERT INTO legal_holds (name, reason, kind, created_by)
                    VALUES ('Case 7', 'litigation', 'messages', 'test') RETURNING id)
         INSERT INTO legal_hold_messages (hold_id, message_id) SELECT id, $1 FROM h",
    )
    .bind(id)
    .execute(&env.pool)
    .await
    .unwrap();

    // The server rebuilt the folder; clamd still detects the released message.
    env.dovecot.set_uidvalidity("alice", "INBOX", RESET as u32);
    let resync = env.sync(&account).await.expect("sync after the reset");

    assert_eq!(
        (resync.archived, resync.quarantined),
        (0, 0),
        "nothing stored or quarantined again"
    );
    assert_eq!(copies(&env, &account, &infected).await, vec![(RESET, 2)]);
    let (id_after, status_after, holds): (i64, String, i64) = sqlx::query_as(
        "SELECT m.id, m.scan_status, (SELECT count(*) FROM legal_hold_messages h
                                      WHERE h.message_id = m.id)
         FROM messages m WHERE m.blob_sha256 = $1",
    )
    .bind(daygle::archive::blobs::sha256(&infected).as_slice())
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((id_after, status_after, holds), (id, status, 1));
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM quarantine WHERE released_at IS NULL")
            .fetch_one(&env.pool)
            .await
            .unwrap(),
        0,
        "not quarantined again"
    );
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
}

#[tokio::test]
async fn a_release_before_the_resync_is_moved_to_the_new_place_not_stored_again() {
    let clamd = Clamd::spawn();
    let mut env = env(&clamd).await;
    let (account, infected) = held_after_first_sync(&env).await;
    let (held, _) = entries(&env).await[0];

    // Released while the server already has a new UIDVALIDITY the archive has not seen yet.
    env.dovecot.set_uidvalidity("alice", "INBOX", RESET as u32);
    release_anyway(&env, held).await;
    assert_eq!(copies(&env, &account, &infected).await.len(), 1);

    env.settings.clamav.action = "flag".into();
    env.sync(&account).await.expect("sync after the reset");

    assert_eq!(
        copies(&env, &account, &infected).await,
        vec![(RESET, 2)],
        "the released copy follows the folder to its new UIDVALIDITY"
    );
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
}
