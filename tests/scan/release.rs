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
async fn a_message_held_twice_across_a_uidvalidity_change_is_archived_once_whichever_is_released_first()
 {
    for newest_first in [false, true] {
        let clamd = Clamd::spawn();
        let env = env(&clamd).await;
        let (account, infected) = held_after_first_sync(&env).await;

        // After the reset the resync detects the message again and holds it at its new place.
        env.dovecot.set_uidvalidity("alice", "INBOX", RESET as u32);
        let resync = env.sync(&account).await.expect("sync after the reset");
        assert_eq!(resync.quarantined, 1);
        let held = entries(&env).await;
        assert_eq!(held.len(), 2, "{held:?}");
        assert_ne!(held[0].1, RESET);
        assert_eq!(held[1].1, RESET);

        let order = if newest_first {
            [held[1].0, held[0].0]
        } else {
            [held[0].0, held[1].0]
        };
        release_anyway(&env, order[0]).await;
        assert_eq!(
            copies(&env, &account, &infected).await.len(),
            1,
            "the first release archives the message (newest first: {newest_first})"
        );
        release_anyway(&env, order[1]).await;

        assert_eq!(
            copies(&env, &account, &infected).await,
            vec![(RESET, 2)],
            "one copy, at the folder's current place (newest first: {newest_first})"
        );
        assert_eq!(
            env.archived(account.id, "INBOX").await,
            env.server("alice", "INBOX").await
        );
        let again = env.sync(&account).await.expect("next sync");
        assert_eq!((again.archived, again.quarantined), (0, 0));
        assert_eq!(copies(&env, &account, &infected).await.len(), 1);
    }
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
