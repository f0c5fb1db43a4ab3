use super::support::*;
use daygle::ingest::accounts;

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut huge_header = b"Subject: huge\r\nX-Long: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'a', 200_000));
    huge_header.extend(b"\r\n\r\nbody\r\n");
    vec![
        ("broken boundary", b"From: a@example.org\r\nSubject: broken\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"NEVER\"\r\n\r\n--OTHER\r\nContent-Type: text/plain\r\n\r\nhello\r\n".to_vec()),
        ("unclosed multipart", b"From: a@example.org\r\nSubject: open\r\nContent-Type: multipart/alternative; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nnever closed\r\n".to_vec()),
        ("bad charset", b"From: a@example.org\r\nSubject: =?x-klingon?Q?qapla?=\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\n\xff\xfe\xfd bytes\r\n".to_vec()),
        ("nul bytes", b"From: a@example.org\r\nSubject: nul\x00here\r\n\r\nbody \x00 with \x00 nuls\r\n".to_vec()),
        ("huge header", huge_header),
        ("no header block", b"just some words and no headers at all".to_vec()),
        ("binary garbage", (0u8..=255).cycle().take(5000).collect()),
    ]
}

#[tokio::test]
async fn malformed_messages_over_imap_are_all_archived_with_their_parse_problems_recorded() {
    let env = env().await;
    let account = env.account("Alice", "alice").await;
    let raw: Vec<Vec<u8>> = corpus().into_iter().map(|(_, m)| m).collect();
    env.dovecot.write_messages("alice", "INBOX", &raw, NEW);

    let outcome = env
        .sync(&account)
        .await
        .expect("sync never fails on bad mail");

    assert_eq!(outcome.archived, raw.len() as u64);
    assert_eq!(
        env.archived(account.id, "INBOX").await,
        env.server("alice", "INBOX").await
    );
    let with_errors = env
        .count("SELECT count(*) FROM messages WHERE parse_error IS NOT NULL")
        .await;
    let clean: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT subject, snippet FROM messages WHERE parse_error IS NULL")
            .fetch_all(&env.pool)
            .await
            .expect("rows");
    assert_eq!(
        with_errors,
        raw.len() as i64,
        "no problem recorded for {clean:?}"
    );
}

#[tokio::test]
async fn malformed_files_keep_their_exact_bytes_including_nuls() {
    let env = env().await;
    let dir = tempfile::tempdir().expect("dir");
    for (i, (_, raw)) in corpus().into_iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.eml")), raw).expect("write");
    }
    let mut conn = env.pool.acquire().await.expect("conn");
    let account = accounts::import_account(&mut conn, "Bad files")
        .await
        .expect("account");
    drop(conn);

    let report = daygle::ingest::files::import_paths(
        &env.pool,
        &env.settings,
        &env.keys.sealing,
        &account,
        &[dir.path().to_path_buf()],
        &|_| {},
    )
    .await
    .expect("import");

    assert_eq!(report.imported, 7);
    let nul = env
        .count("SELECT count(*) FROM messages WHERE parse_error LIKE '%NUL bytes%'")
        .await;
    assert_eq!(nul, 2, "the NUL message and the binary garbage");
    let boundary = env
        .count("SELECT count(*) FROM messages WHERE parse_error LIKE '%boundary%'")
        .await;
    assert_eq!(boundary, 2);
    let expected = daygle::archive::blobs::sha256(&corpus()[3].1);
    let mut conn = env.pool.acquire().await.expect("conn");
    let stored = daygle::archive::blobs::read_verified(&mut conn, &expected)
        .await
        .expect("read")
        .expect("the NUL message is stored as it was");
    assert!(stored.contains(&0));
}
