use super::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn delete_after_archive_removes_only_committed_verified_old_enough_messages() {
    let env = env_with(|s| s.storage.max_message_bytes = 4096).await;
    let account = env.account("Alice", "alice").await;
    let old = messages("old", 6);
    env.dovecot.write_messages("alice", "INBOX", &old, OLD);
    env.dovecot
        .write_messages("alice", "INBOX", &messages("new", 3), NEW);
    let mut big = message("old-big", 0);
    big.extend(std::iter::repeat_n(b'z', 8000));
    env.dovecot.write_messages("alice", "INBOX", &[big], OLD);

    // First pass archives without deleting; then one archived copy is damaged.
    env.sync(&account).await.expect("archive");
    let damaged = hex::encode(daygle::archive::blobs::sha256(&crlf(&old[0])));
    let done = sqlx::query("UPDATE blobs SET zstd = $2 WHERE sha256 = $1")
        .bind(hex::decode(&damaged).expect("hex"))
        .bind(zstd::bulk::compress(b"not the message", 3).expect("zstd"))
        .execute(&env.pool)
        .await
        .expect("damage a blob");
    assert_eq!(done.rows_affected(), 1);
    sqlx::query("UPDATE accounts SET delete_after_days = 7 WHERE id = $1")
        .bind(account.id)
        .execute(&env.pool)
        .await
        .expect("enable delete");
    let account = env.reload(account.id).await;

    let outcome = env.sync(&account).await.expect("sync with delete");

    assert_eq!(outcome.deleted, 5, "5 old, archived, verified messages");
    let left = env.server("alice", "INBOX").await;
    assert_eq!(
        left.len(),
        5,
        "3 new + 1 damaged copy + 1 never archived (too big)"
    );
    assert!(
        left.values().any(|h| *h == damaged),
        "the damaged copy stays on the server"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM messages").await,
        9,
        "the archive keeps everything"
    );
    assert_eq!(
        env.count("SELECT deleted_from_server FROM sync_state WHERE folder = 'INBOX'")
            .await,
        5
    );
}

/// Dovecot serves bare LF as CRLF: the archived bytes are the CRLF form.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    text.into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_after_archive_leaves_held_mail_on_the_server_until_the_hold_is_released() {
    use daygle::retention::holds;
    let env = env().await;
    let account = env.account("Alice", "alice").await;
    env.dovecot
        .write_messages("alice", "INBOX", &messages("keep", 4), OLD);
    env.sync(&account).await.expect("archive");
    let actor = daygle::audit::Actor::cli();
    let hold = holds::place(
        &env.pool,
        &actor,
        &daygle::auth::Grants::All,
        &holds::HoldInput {
            name: "lawsuit".into(),
            reason: "case 42".into(),
            account_ids: vec![account.id],
            query: Some("from:sender1@example.org".into()),
            ..Default::default()
        },
    )
    .await
    .expect("hold");
    sqlx::query("UPDATE accounts SET delete_after_days = 7 WHERE id = $1")
        .bind(account.id)
        .execute(&env.pool)
        .await
        .expect("enable delete");
    let account = env.reload(account.id).await;

    let outcome = env.sync(&account).await.expect("sync with delete");
    assert_eq!(outcome.deleted, 3, "the held message stays on the server");
    assert_eq!(env.server("alice", "INBOX").await.len(), 1);

    holds::release(
        &env.pool,
        &actor,
        &daygle::auth::Grants::All,
        hold,
        "settled",
    )
    .await
    .expect("release");
    let outcome = env.sync(&account).await.expect("sync after release");
    assert_eq!(outcome.deleted, 1);
    assert!(env.server("alice", "INBOX").await.is_empty());
    assert_eq!(
        env.count("SELECT messages FROM deletion_stats WHERE cause = 'server'")
            .await,
        4
    );
}
