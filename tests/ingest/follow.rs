//! IMAP closer to real servers, against a real Dovecot: folder names in modified UTF-7, IDLE on
//! INBOX, flag changes followed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::support::{self, Env, env, env_with, message};
use daygle::ingest::accounts::{self, ImapOptions};
use daygle::ingest::imap::utf7;
use daygle::ingest::scheduler::{self, Assignment};

async fn create_folder(env: &Env, user: &str, wire: &str) {
    let mut s = env.session(user).await;
    s.create(wire).await.expect("CREATE");
    let _ = s.logout().await;
}

async fn append(env: &Env, user: &str, wire: &str, raw: &[u8]) {
    let mut s = env.session(user).await;
    s.append(wire, None, None, raw).await.expect("APPEND");
    let _ = s.logout().await;
}

#[tokio::test]
async fn non_ascii_folders_are_archived_under_their_decoded_names_and_found_by_them() {
    let env = env().await;
    let account = env.account("Intl", "intl").await;
    let drafts = utf7::encode("Entwürfe");
    assert_eq!(drafts, "Entw&APw-rfe");
    let taipei = utf7::encode("台北");
    create_folder(&env, "intl", &drafts).await;
    create_folder(&env, "intl", &taipei).await;
    for i in 0..3 {
        append(&env, "intl", &drafts, &message("draft", i)).await;
    }
    append(&env, "intl", &taipei, &message("taipei", 0)).await;

    let first = env.sync(&account).await.expect("sync");
    assert_eq!(first.archived, 4);
    // Byte-exact copies under the names a person reads; nothing under the wire names.
    assert_eq!(
        env.archived(account.id, "Entwürfe").await,
        env.server("intl", &drafts).await
    );
    assert_eq!(
        env.archived(account.id, "台北").await,
        env.server("intl", &taipei).await
    );
    assert_eq!(
        env.count("SELECT count(*) FROM messages WHERE folder LIKE '%&%'")
            .await,
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM sync_state WHERE folder IN ('Entwürfe', '台北')")
            .await,
        2
    );
    assert_eq!(env.search("folder:Entwürfe").await.len(), 3);
    assert_eq!(env.search("folder:台北").await.len(), 1);

    // The next pass finds its position under the decoded name: nothing is fetched again.
    append(&env, "intl", &drafts, &message("draft", 3)).await;
    let second = env.sync(&account).await.expect("second sync");
    assert_eq!((second.archived, second.fetched), (1, 1));
    assert_eq!(env.search("folder:Entwürfe").await.len(), 4);

    // Folder patterns may use the decoded name.
    let mut s = env.imap_settings("Intl", "intl");
    s.folders_exclude.push("Entwürfe".into());
    let mut tx = env.pool.begin().await.expect("tx");
    accounts::update_imap(&mut tx, account.id, &s)
        .await
        .expect("update");
    tx.commit().await.expect("commit");
    append(&env, "intl", &drafts, &message("draft", 4)).await;
    let third = env.sync(&env.reload(account.id).await).await.expect("sync");
    assert_eq!(third.archived, 0, "an excluded folder is not synced");
}

#[tokio::test]
async fn folders_archived_under_wire_names_before_the_upgrade_are_renamed_and_not_fetched_again() {
    let env = env().await;
    let account = env.account("Old", "old").await;
    let drafts = utf7::encode("Entwürfe");
    create_folder(&env, "old", &drafts).await;
    for i in 0..5 {
        append(&env, "old", &drafts, &message("old", i)).await;
    }
    env.sync(&account).await.expect("sync");
    // Rows as the previous version wrote them: folder = the wire name.
    for table in ["messages", "sync_state"] {
        sqlx::query(&format!(
            "UPDATE {table} SET folder = $1 WHERE account_id = $2 AND folder = 'Entwürfe'"
        ))
        .bind(&drafts)
        .bind(account.id)
        .execute(&env.pool)
        .await
        .expect("rewind");
    }
    assert_eq!(env.archived(account.id, &drafts).await.len(), 5);
    // What migration 0750 runs on upgrade.
    sqlx::query("SELECT mutf7_rename_folders()")
        .execute(&env.pool)
        .await
        .expect("rename");
    assert_eq!(env.archived(account.id, &drafts).await.len(), 0);
    assert_eq!(
        env.archived(account.id, "Entwürfe").await,
        env.server("old", &drafts).await
    );
    let again = env.sync(&account).await.expect("sync after upgrade");
    assert_eq!(
        (again.fetched, again.archived),
        (0, 0),
        "the position moved with the rows"
    );
}

#[tokio::test]
async fn the_sql_decoder_of_the_migration_agrees_with_the_sync() {
    let env = env().await;
    for wire in [
        "INBOX",
        "Entw&APw-rfe",
        "&U,BTFw-/&ZeVnLIqe-",
        "R&-D",
        "R&D",
        "&AGE-",
        "&AOQ-&APY-",
        "&AOQA-",
        "&A-",
        "&2D3eAA-",
        "&2D0-",
        "a&-&APY-&-",
        "&Jjo!",
        "Entwürfe",
        "Gesendete Objekte",
    ] {
        let sql: String = sqlx::query_scalar("SELECT mutf7_decode($1)")
            .bind(wire)
            .fetch_one(&env.pool)
            .await
            .expect("decode");
        assert_eq!(sql, utf7::display(wire), "{wire}");
    }
}

/// Waits (up to `limit`) until the account has `n` messages in INBOX.
async fn wait_for(env: &Env, account_id: i64, n: usize, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if env.archived(account_id, "INBOX").await.len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn new_mail_arrives_through_idle_long_before_the_next_poll_even_after_the_connection_drops() {
    // IDLE renewed every second, so the test also crosses many re-IDLE rounds.
    let env = env_with(|s| {
        s.sync.idle = true;
        s.sync.idle_renew_secs = 1;
    })
    .await;
    env.dovecot.add_user("watch", "watch-pw");
    let mut s = env.imap_settings("Watched", "watch");
    // A poll far beyond the test: anything archived after the first pass came through IDLE.
    s.poll_interval_secs = 86_400;
    let account = env.account_with(s, "watch-pw").await;
    env.dovecot.write_messages(
        "watch",
        "INBOX",
        &support::messages("before", 2),
        support::OLD,
    );

    let live = Arc::new(daygle::settings::Live::new(env.settings.clone()));
    let keys = Arc::new(
        daygle::secrets::Keys::load(&env.settings.security, env.data_dir.path()).expect("keys"),
    );
    let stop = CancellationToken::new();
    let scheduler = tokio::spawn(scheduler::run_until_stopped(
        env.pool.clone(),
        live,
        keys,
        Assignment::Everything,
        stop.clone(),
    ));
    assert!(
        wait_for(&env, account.id, 2, Duration::from_secs(120)).await,
        "first pass"
    );
    // Let several IDLE rounds pass, then deliver.
    tokio::time::sleep(Duration::from_secs(4)).await;
    append(&env, "watch", "INBOX", &message("idle", 1)).await;
    assert!(
        wait_for(&env, account.id, 3, Duration::from_secs(120)).await,
        "mail delivered while IDLE is archived without waiting for the daily poll"
    );

    // The server drops every session; the watcher comes back and mail keeps arriving.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        env.dovecot.kill_sessions() >= 1,
        "the IDLE session was open"
    );
    append(&env, "watch", "INBOX", &message("idle", 2)).await;
    assert!(
        wait_for(&env, account.id, 4, Duration::from_secs(120)).await,
        "mail delivered around a dropped IDLE connection is archived"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    append(&env, "watch", "INBOX", &message("idle", 3)).await;
    assert!(
        wait_for(&env, account.id, 5, Duration::from_secs(120)).await,
        "IDLE works again after the reconnect"
    );
    stop.cancel();
    scheduler.await.expect("scheduler");
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("watch", "INBOX").await,
        "exactly the server's messages, each once"
    );
    let next: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT next_run_at FROM workers WHERE account_id = $1")
            .bind(account.id)
            .fetch_one(&env.pool)
            .await
            .expect("worker row");
    assert!(
        next.is_some_and(|t| t > time::OffsetDateTime::now_utc() + time::Duration::hours(1)),
        "the next poll is still far away: {next:?}"
    );
}

/// uid → sorted flags of the archived copies in INBOX.
async fn archived_flags(env: &Env, account_id: i64) -> Vec<(i64, Vec<String>)> {
    let rows: Vec<(i64, Vec<String>)> = sqlx::query_as(
        "SELECT uid, flags FROM messages WHERE account_id = $1 AND folder = 'INBOX' ORDER BY uid",
    )
    .bind(account_id)
    .fetch_all(&env.pool)
    .await
    .expect("flags");
    rows.into_iter()
        .map(|(u, mut f)| {
            f.sort();
            (u, f)
        })
        .collect()
}

async fn store_flags(env: &Env, user: &str, uid: &str, change: &str) {
    let mut s = env.session(user).await;
    s.select("INBOX").await.expect("select");
    {
        let mut r = s.uid_store(uid, change).await.expect("store");
        while let Some(x) = r.next().await {
            x.expect("store item");
        }
    }
    let _ = s.logout().await;
}

#[tokio::test]
async fn flag_changes_on_the_server_are_followed_only_when_the_account_asks() {
    let env = env().await;
    let following = env.account("Following", "flw").await;
    let ignoring = env.account("Ignoring", "ign").await;
    let mut tx = env.pool.begin().await.expect("tx");
    accounts::set_imap_options(
        &mut tx,
        following.id,
        ImapOptions {
            idle: Some(false),
            follow_flags: true,
        },
    )
    .await
    .expect("options");
    tx.commit().await.expect("commit");
    let following = env.reload(following.id).await;
    for user in ["flw", "ign"] {
        // Written with \Seen (the ":2,S" suffix).
        env.dovecot
            .write_messages(user, "INBOX", &support::messages(user, 3), support::OLD);
    }
    env.sync(&following).await.expect("sync");
    env.sync(&ignoring).await.expect("sync");
    let seen = vec!["\\Seen".to_string()];
    assert!(
        archived_flags(&env, following.id)
            .await
            .iter()
            .all(|(_, f)| *f == seen)
    );

    for user in ["flw", "ign"] {
        store_flags(&env, user, "1", "+FLAGS (\\Flagged $Important)").await;
        store_flags(&env, user, "2", "-FLAGS (\\Seen)").await;
    }
    let pass = env.sync(&following).await.expect("sync");
    assert_eq!(pass.flags_changed, 2);
    assert_eq!(pass.fetched, 0, "no message is fetched again for its flags");
    assert_eq!(
        archived_flags(&env, following.id).await,
        vec![
            (
                1,
                vec![
                    "$Important".to_string(),
                    "\\Flagged".to_string(),
                    "\\Seen".to_string()
                ]
            ),
            (2, vec![]),
            (3, seen.clone()),
        ]
    );
    // Dovecot offers CONDSTORE: the folder's mod-sequence is kept, and a pass with no
    // changes asks for nothing.
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM sync_state WHERE account_id = {} AND flags_modseq IS NOT NULL",
            following.id
        ))
        .await,
        1
    );
    let quiet = env.sync(&following).await.expect("sync");
    assert_eq!(quiet.flags_changed, 0);
    store_flags(&env, "flw", "3", "-FLAGS (\\Seen)").await;
    let again = env.sync(&following).await.expect("sync");
    assert_eq!(again.flags_changed, 1);
    assert_eq!(archived_flags(&env, following.id).await[2], (3, vec![]));

    let pass = env.sync(&ignoring).await.expect("sync");
    assert_eq!(pass.flags_changed, 0);
    assert!(
        archived_flags(&env, ignoring.id)
            .await
            .iter()
            .all(|(_, f)| *f == seen),
        "an account that does not follow flags keeps them as archived"
    );
}
