use super::support::*;
use daygle::archive::ledger;

#[tokio::test]
async fn a_first_sync_archives_every_folder_except_trash_with_search_and_attachments() {
    let env = env().await;
    env.dovecot.add_user("alice", "alice-pw");
    env.dovecot
        .write_messages("alice", "INBOX", &messages("inbox", 30), NEW);
    env.dovecot
        .write_messages("alice", "Archive/2024", &messages("archive", 12), NEW);
    env.dovecot
        .write_messages("alice", "Trash", &messages("trash", 5), NEW);
    env.dovecot
        .write_messages("alice", "INBOX", &[with_attachment("att")], NEW);
    let account = env
        .account_with(env.imap_settings("Alice", "alice"), "alice-pw")
        .await;

    let outcome = env.sync(&account).await.expect("sync");

    assert_eq!(outcome.archived, 43);
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
    assert_eq!(
        env.archived(account.id, "Archive/2024").await,
        env.server("alice", "Archive/2024").await
    );
    assert!(
        env.archived(account.id, "Trash").await.is_empty(),
        "Trash is left out"
    );
    let hits = env
        .count("SELECT count(*) FROM messages WHERE search @@ to_tsquery('simple', 'quarterly')")
        .await;
    assert_eq!(hits, 42);
    let attachments = env
        .count("SELECT count(*) FROM attachments WHERE filename = 'invoice-2024.pdf' AND content_type = 'application/pdf'")
        .await;
    assert_eq!(attachments, 1);
    let by_name = env
        .count("SELECT count(*) FROM messages WHERE search @@ to_tsquery('simple', 'invoice') AND has_attachments")
        .await;
    assert_eq!(by_name, 1);
    let unseen_kept = env
        .count("SELECT count(*) FROM messages WHERE scan_status = 'not_scanned'")
        .await;
    assert_eq!(unseen_kept, 43);
    let coverage = ledger::coverage(&env.pool, account.id)
        .await
        .expect("coverage");
    assert!(
        coverage.iter().all(|f| f.percent() == Some(100.0)),
        "{coverage:?}"
    );
}

#[tokio::test]
async fn an_incremental_sync_fetches_only_new_mail_and_never_marks_it_seen() {
    let env = env().await;
    let account = env.account("Alice", "alice").await;
    env.dovecot
        .write_messages("alice", "INBOX", &messages("first", 10), NEW);
    assert_eq!(env.sync(&account).await.expect("sync").archived, 10);

    let second = env.sync(&account).await.expect("second sync");
    assert_eq!(
        (second.fetched, second.archived),
        (0, 0),
        "nothing new, nothing fetched"
    );

    for i in 0..3 {
        let raw = String::from_utf8(message("later", i)).expect("utf8");
        let mut s = env.session("alice").await;
        s.append("INBOX", None, None, raw.as_bytes())
            .await
            .expect("append unseen");
        let _ = s.logout().await;
    }
    let third = env.sync(&account).await.expect("third sync");
    assert_eq!((third.fetched, third.archived), (3, 3));
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );

    let mut s = env.session("alice").await;
    s.examine("INBOX").await.expect("examine");
    let unseen = s.uid_search("UNSEEN").await.expect("search");
    assert_eq!(unseen.len(), 3, "archiving must not set \\Seen");
}

#[tokio::test]
async fn a_second_account_holding_the_same_messages_adds_no_new_blobs() {
    let env = env().await;
    let same = messages("shared", 15);
    env.dovecot.add_user("alice", "alice-pw");
    env.dovecot.add_user("bob", "bob-pw");
    env.dovecot.write_messages("alice", "INBOX", &same, NEW);
    env.dovecot.write_messages("bob", "INBOX", &same, NEW);
    let alice = env
        .account_with(env.imap_settings("Alice", "alice"), "alice-pw")
        .await;
    let bob = env
        .account_with(env.imap_settings("Bob", "bob"), "bob-pw")
        .await;

    env.sync(&alice).await.expect("alice");
    let blobs_before = env.count("SELECT count(*) FROM blobs").await;
    env.sync(&bob).await.expect("bob");

    assert_eq!(blobs_before, 15);
    assert_eq!(env.count("SELECT count(*) FROM blobs").await, 15);
    assert_eq!(env.count("SELECT count(*) FROM messages").await, 30);
}

#[tokio::test]
async fn a_uidvalidity_reset_rescans_the_folder_without_duplicating_it() {
    let env = env().await;
    let account = env.account("Alice", "alice").await;
    env.dovecot
        .write_messages("alice", "INBOX", &messages("uv", 8), NEW);
    env.sync(&account).await.expect("first sync");

    env.dovecot.set_uidvalidity("alice", "INBOX", 4242);
    env.dovecot
        .write_messages("alice", "INBOX", &messages("after-reset", 2), NEW);
    let outcome = env.sync(&account).await.expect("sync after reset");

    assert_eq!(outcome.fetched, 10, "the folder is fetched again");
    assert_eq!(outcome.archived, 2, "only the new messages are new rows");
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
    assert_eq!(
        env.count("SELECT count(*) FROM messages WHERE uidvalidity <> 4242")
            .await,
        0
    );
    assert_eq!(env.count("SELECT count(*) FROM blobs").await, 10);
}

#[tokio::test]
async fn a_uidvalidity_reset_rebinds_every_copy_of_content_the_folder_holds_twice() {
    let env = env().await;
    let account = env.account("Alice", "alice").await;
    let twice = message("twice", 0);
    env.dovecot.write_messages(
        "alice",
        "INBOX",
        &[twice.clone(), message("once", 1), twice.clone()],
        NEW,
    );
    env.sync(&account).await.expect("first sync");
    let ids_before = env.count("SELECT sum(id)::bigint FROM messages").await;
    assert_eq!(env.count("SELECT count(*) FROM messages").await, 3);

    env.dovecot.set_uidvalidity("alice", "INBOX", 4242);
    let outcome = env.sync(&account).await.expect("sync after reset");

    assert_eq!(outcome.fetched, 3);
    assert_eq!(
        outcome.archived, 0,
        "both copies are re-bound, none stored again"
    );
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
    assert_eq!(env.count("SELECT count(*) FROM messages").await, 3);
    assert_eq!(
        env.count("SELECT count(*) FROM messages WHERE uidvalidity <> 4242")
            .await,
        0,
        "no copy is left behind under the old UIDVALIDITY"
    );
    assert_eq!(
        env.count("SELECT sum(id)::bigint FROM messages").await,
        ids_before,
        "the same rows, moved"
    );
}

#[tokio::test]
async fn an_oversize_message_is_skipped_in_the_ledger_with_its_size() {
    let env = env_with(|s| s.storage.max_message_bytes = 4096).await;
    let account = env.account("Alice", "alice").await;
    let mut big = message("big", 0);
    big.extend(std::iter::repeat_n(b'x', 10_000));
    big.extend(b"\r\n");
    env.dovecot.write_messages(
        "alice",
        "INBOX",
        &[message("small", 1), big.clone(), message("small", 2)],
        NEW,
    );

    let outcome = env.sync(&account).await.expect("sync");

    assert_eq!((outcome.archived, outcome.skipped), (2, 1));
    let entries = ledger::entries(&env.pool, account.id)
        .await
        .expect("ledger");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, "skipped");
    assert!(
        entries[0].reason.contains("max_message_bytes"),
        "{}",
        entries[0].reason
    );
    assert!(entries[0].size.unwrap_or(0) > 10_000);
    let coverage = ledger::coverage(&env.pool, account.id)
        .await
        .expect("coverage");
    assert_eq!(
        (
            coverage[0].archived,
            coverage[0].skipped,
            coverage[0].server_messages
        ),
        (2, 1, Some(3))
    );
    let again = env.sync(&account).await.expect("again");
    assert_eq!(
        (again.fetched, again.skipped),
        (0, 0),
        "a skipped message is not fetched again"
    );
}

#[tokio::test]
async fn a_wrong_password_is_reported_in_plain_words_and_recorded_on_the_worker() {
    let env = env().await;
    env.dovecot.add_user("alice", "alice-pw");
    let account = env
        .account_with(env.imap_settings("Alice", "alice"), "not-the-password")
        .await;

    let err = env
        .sync(&account)
        .await
        .expect_err("login must fail")
        .to_string();
    assert!(err.contains("refused the login for alice"), "{err}");
    assert!(err.contains("check the user name and password"), "{err}");
    assert!(
        !err.contains("not-the-password"),
        "the password never appears in errors"
    );

    let runs = daygle::ingest::scheduler::sync_accounts(
        &env.pool,
        &env.settings,
        &env.keys.sealing,
        vec![account.clone()],
    )
    .await;
    assert!(matches!(
        runs[0].result,
        daygle::ingest::scheduler::RunResult::Failed(_)
    ));
    let worker = daygle::ingest::workers::get(
        &env.pool,
        &daygle::ingest::workers::sync_worker_name(account.id),
    )
    .await
    .expect("worker")
    .expect("worker row");
    assert_eq!(worker.state.as_str(), "backoff");
    assert!(
        worker
            .last_error
            .unwrap_or_default()
            .contains("refused the login")
    );
    assert!(worker.next_run_at.is_some());
}

#[tokio::test]
async fn implicit_tls_works_with_a_pinned_certificate_and_refuses_an_unknown_one() {
    let env = env().await;
    env.dovecot.add_user("alice", "alice-pw");
    env.dovecot
        .write_messages("alice", "INBOX", &messages("tls", 3), NEW);
    let mut s = env.imap_settings("Pinned", "alice");
    s.port = env.dovecot.tls_port;
    s.tls = daygle::ingest::accounts::TlsMode::Implicit;
    s.host = "localhost".into();
    s.pinned_cert_sha256 = Some(env.dovecot.cert_sha256.clone());
    let pinned = env.account_with(s.clone(), "alice-pw").await;
    assert_eq!(
        env.sync(&pinned).await.expect("pinned TLS sync").archived,
        3
    );

    s.name = "Unpinned".into();
    s.pinned_cert_sha256 = None;
    let unpinned = env.account_with(s, "alice-pw").await;
    let err = env
        .sync(&unpinned)
        .await
        .expect_err("self-signed must be refused")
        .to_string();
    assert!(err.contains("secure connection (TLS)"), "{err}");
}

#[tokio::test]
async fn starttls_with_a_pinned_certificate_logs_in() {
    let env = env().await;
    env.dovecot.add_user("alice", "alice-pw");
    let mut s = env.imap_settings("StartTLS", "alice");
    s.tls = daygle::ingest::accounts::TlsMode::StartTls;
    s.pinned_cert_sha256 = Some(env.dovecot.cert_sha256.clone());
    let account = env.account_with(s, "alice-pw").await;
    let report = daygle::ingest::imap::test_connection(
        &account,
        &account.password(&env.keys.sealing).expect("password"),
        timeouts(),
    )
    .await
    .expect("test connection");
    assert!(
        report
            .folders
            .iter()
            .any(|(f, _, included)| f == "INBOX" && *included)
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_fetch_records_the_error_and_the_next_run_completes() {
    let env = env_with(|s| {
        s.sync.batch_messages = 50;
    })
    .await;
    let account = env.account("Alice", "alice").await;
    let mut big = Vec::new();
    for i in 0..3000 {
        let mut m = message("drop", i);
        m.extend(std::iter::repeat_n(b'y', 2000));
        m.extend(b"\r\n");
        big.push(m);
    }
    env.dovecot.write_messages("alice", "INBOX", &big, NEW);

    let pool = env.pool.clone();
    let task = {
        let settings = env.settings.clone();
        let keys =
            daygle::secrets::Keys::load(&settings.security, env.data_dir.path()).expect("keys");
        let account = account.clone();
        tokio::spawn(async move {
            daygle::ingest::scheduler::sync_one(&pool, &settings, &keys.sealing, account).await
        })
    };
    loop {
        let n = env.count("SELECT count(*) FROM messages").await;
        if n >= 100 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        env.dovecot.kill_sessions() > 0,
        "an IMAP session was running"
    );
    let run = task.await.expect("task");
    assert!(
        matches!(run.result, daygle::ingest::scheduler::RunResult::Failed(_)),
        "{run:?}"
    );
    let committed = env.count("SELECT count(*) FROM messages").await;
    let position: i64 = env
        .count("SELECT last_uid FROM sync_state WHERE folder = 'INBOX'")
        .await;
    let max_uid = env
        .count("SELECT coalesce(max(uid), 0) FROM messages")
        .await;
    assert!(
        committed < 3000,
        "the drop happened mid-sync ({committed} committed)"
    );
    assert_eq!(
        position, max_uid,
        "the position covers exactly the committed mail"
    );
    let worker = daygle::ingest::workers::get(
        &env.pool,
        &daygle::ingest::workers::sync_worker_name(account.id),
    )
    .await
    .expect("worker")
    .expect("row");
    assert!(worker.last_error.is_some());

    env.sync(&account).await.expect("next run");
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
}

#[tokio::test]
async fn connection_tests_explain_dns_and_refused_connections_in_plain_words() {
    let env = env().await;
    let mut s = env.imap_settings("Nowhere", "alice");
    s.host = "no-such-host.invalid".into();
    let nowhere = env.account_with(s, "pw").await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut s = env.imap_settings("Closed", "alice");
    s.port = closed_port;
    let closed = env.account_with(s, "pw").await;

    for (account, words) in [
        (nowhere, "cannot find the server no-such-host.invalid"),
        (closed, "cannot connect to 127.0.0.1"),
    ] {
        let password = account.password(&env.keys.sealing).expect("password");
        let err = daygle::ingest::imap::test_connection(&account, &password, timeouts())
            .await
            .expect_err("must fail")
            .to_string();
        assert!(err.contains(words), "{err}");
    }
}
