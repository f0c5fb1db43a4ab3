//! `daygle verify archive` finds damage and names the message, account and folder.

use daygle::config::SecuritySettings;
use daygle::scan::facts::{MessageFacts, Source};
use daygle::scan::quarantine;
use daygle::secrets::Keys;

use super::support::{Archive, archive_with_mail, damage, outcome, run};

async fn quarantine_one(a: &Archive) {
    let keys = Keys::load(&SecuritySettings::default(), &a.app.data_path()).expect("keys");
    let raw = b"From: x@example.org\r\nSubject: infected\r\n\r\nX5O!P%@AP\r\n";
    let facts = MessageFacts {
        account_id: Some(a.sales),
        folder: "INBOX".into(),
        uidvalidity: Some(1),
        uid: Some(99),
        ..MessageFacts::from_raw(raw)
    };
    let mut conn = a.app.pool.acquire().await.unwrap();
    quarantine::put(
        &mut conn,
        &keys.sealing,
        &facts,
        raw,
        "Eicar-Test",
        Source::Ingest,
        0,
    )
    .await
    .expect("quarantine")
    .expect("new entry");
}

#[tokio::test]
async fn verify_archive_passes_an_intact_archive_and_records_the_run() {
    let a = archive_with_mail().await;
    quarantine_one(&a).await;
    let (code, out) = outcome(&run(&a.app, &["verify", "archive"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("checked 4 messages, 4 blobs"), "{out}");
    assert!(out.contains("and 1 quarantined messages"), "{out}");
    assert!(out.contains("archive intact"), "{out}");
    let recorded: (String, i64, i64, bool) = sqlx::query_as(
        "SELECT trigger, messages_checked, problem_count, finished_at IS NOT NULL FROM verify_runs",
    )
    .fetch_one(&a.app.pool)
    .await
    .unwrap();
    assert_eq!(recorded, ("cli".into(), 4, 0, true));
}

#[tokio::test]
async fn verify_names_the_message_whose_blob_has_a_flipped_byte() {
    let a = archive_with_mail().await;
    let victim = a.sales_ids[1];
    damage(
        &a.app,
        &format!(
            "UPDATE blobs SET zstd = set_byte(zstd, length(zstd) / 2, get_byte(zstd, length(zstd) / 2) # 1)
             WHERE sha256 = (SELECT blob_sha256 FROM messages WHERE id = {victim})"
        ),
    )
    .await;
    let (code, out) = outcome(&run(&a.app, &["verify", "archive"]));
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("message {victim} ")))
        .unwrap_or_else(|| panic!("message {victim} is named: {out}"));
    assert!(
        line.contains("account \"sales\" folder \"INBOX\": corrupt blob"),
        "{line}"
    );
    assert!(out.contains("archive has 1 problem(s)"), "{out}");
}

#[tokio::test]
async fn verify_names_the_message_whose_blob_is_missing() {
    let a = archive_with_mail().await;
    let victim = a.board_ids[0];
    damage(
        &a.app,
        &format!("DELETE FROM blobs WHERE sha256 = (SELECT blob_sha256 FROM messages WHERE id = {victim})"),
    )
    .await;
    let (code, out) = outcome(&run(&a.app, &["verify", "archive"]));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "message {victim} account \"board\" folder \"INBOX\": missing blob: points at blob"
        ))),
        "{out}"
    );
    assert!(out.contains("checked 4 messages, 3 blobs"), "{out}");
}

#[tokio::test]
async fn verify_names_rows_that_point_nowhere() {
    let a = archive_with_mail().await;
    let (pointing, with_attachment) = (a.sales_ids[0], a.sales_ids[1]);
    damage(
        &a.app,
        &format!(
            "UPDATE messages SET blob_sha256 = decode(repeat('ab', 32), 'hex') WHERE id = {pointing};
             DELETE FROM messages WHERE id = {with_attachment};"
        ),
    )
    .await;
    let (code, out) = outcome(&run(&a.app, &["verify", "archive"]));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "message {pointing} account \"sales\" folder \"INBOX\": missing blob: points at blob abababababab, which is not stored"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "message {with_attachment}: dangling row: attachment row"
        )),
        "the orphaned attachment row names its message: {out}"
    );
    // The blob the deleted message used is stored but no longer referenced: not a problem.
    assert!(out.contains("archive has 2 problem(s)"), "{out}");
}

#[tokio::test]
async fn verify_reports_attachment_rows_ledger_gaps_and_unopenable_quarantine() {
    let a = archive_with_mail().await;
    quarantine_one(&a).await;
    let (plain, lunch) = (a.sales_ids[0], a.sales_ids[2]);
    damage(
        &a.app,
        &format!(
            "INSERT INTO attachments (message_id, part_index, filename, content_type, size)
               VALUES ({plain}, 1, 'ghost.pdf', 'application/pdf', 10);
             UPDATE messages SET attachment_count = 1 WHERE id = {plain};
             UPDATE sync_state SET last_uid = 2 WHERE account_id = {sales};
             UPDATE quarantine SET wrapped_key = 'enc:v1:00000000:AAAA';",
            sales = a.sales
        ),
    )
    .await;
    let (code, out) = outcome(&run(&a.app, &["verify", "archive"]));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("message {plain} account \"sales\" folder \"INBOX\": attachments differ: the message holds 0 attachment(s) [] but the archive lists 1 [ghost.pdf (10 bytes)]")),
        "{out}"
    );
    assert!(
        out.contains(&format!("message {lunch} account \"sales\" folder \"INBOX\": ledger: UID 3 is archived beyond the folder's sync position (last UID 2)")),
        "{out}"
    );
    assert!(
        out.contains("account \"sales\" folder \"INBOX\": quarantine: quarantine entry"),
        "{out}"
    );
    assert!(out.contains("archive has 3 problem(s)"), "{out}");
}

#[tokio::test]
async fn verify_can_check_one_account_or_a_sample() {
    let a = archive_with_mail().await;
    let victim = a.board_ids[0];
    damage(
        &a.app,
        &format!("DELETE FROM blobs WHERE sha256 = (SELECT blob_sha256 FROM messages WHERE id = {victim})"),
    )
    .await;
    let (code, out) = outcome(&run(&a.app, &["verify", "archive", "--account", "sales"]));
    assert_eq!(code, Some(0), "the damage is in another account: {out}");
    assert!(out.contains("checked 3 messages, 3 blobs"), "{out}");
    let (code, out) = outcome(&run(&a.app, &["verify", "archive", "--account", "board"]));
    assert_eq!(code, Some(1), "{out}");
    // A sample still runs the row checks over everything, so the missing blob is found.
    let (code, out) = outcome(&run(&a.app, &["verify", "archive", "--sample", "0.01"]));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("a 0.01% sample"), "{out}");
    let (code, out) = outcome(&run(&a.app, &["verify", "archive", "--sample", "0"]));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--sample must be"), "{out}");
}

#[tokio::test]
async fn serve_runs_a_scheduled_verify_once_per_period_and_records_it() {
    use daygle::verify::{runs, schedule};
    let a = archive_with_mail().await;
    let keys = Keys::load(&SecuritySettings::default(), &a.app.data_path()).expect("keys");
    let day = std::time::Duration::from_secs(86_400);
    assert!(schedule::run_if_due(&a.app.pool, &keys, day).await.unwrap());
    assert!(
        !schedule::run_if_due(&a.app.pool, &keys, day).await.unwrap(),
        "not due again within the period"
    );
    let recent = runs::recent(&a.app.pool, 10).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].trigger, "schedule");
    assert_eq!(recent[0].messages_checked, 4);
    assert!(recent[0].passed(), "{:?}", recent[0]);
}

/// An administrator sees the last run on /verify (when, how much, each problem with a link to
/// the message), a failed run raises an alert, and a clean run afterwards resolves it. A user
/// who reads one archive sees only that archive's problems.
#[tokio::test]
async fn the_verify_page_shows_the_last_run_and_a_failed_run_raises_an_alert() {
    use daygle::notify::evaluator::Evaluator;

    let a = archive_with_mail().await;
    let admin = a.app.set_up_admin().await;
    let (_, empty) = a.app.page(&admin, "/verify").await;
    assert!(empty.contains("has not been verified yet"), "{empty}");

    let victim = a.sales_ids[1];
    let flip = |on: &str| {
        format!(
            "UPDATE blobs SET zstd = set_byte(zstd, length(zstd) / 2, get_byte(zstd, length(zstd) / 2) # 1)
             WHERE sha256 = (SELECT blob_sha256 FROM messages WHERE id = {on})"
        )
    };
    damage(&a.app, &flip(&victim.to_string())).await;
    let (code, out) = outcome(&run(&a.app, &["verify", "archive"]));
    assert_eq!(code, Some(1), "{out}");

    let (status, html) = a.app.page(&admin, "/verify").await;
    assert_eq!(status, 200);
    assert!(html.contains("1 problem"), "{html}");
    assert!(html.contains("4 messages"), "{html}");
    assert!(
        html.contains(&format!("<a href=\"/messages/{victim}\">{victim}</a>"))
            && html.contains("sales / INBOX")
            && html.contains("corrupt blob"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/verify\""),
        "the navigation links the page"
    );

    // A reader of the board archive only, with the workers permission, sees no sales problem.
    sqlx::query("INSERT INTO roles (name, permissions) VALUES ('Watcher', ARRAY['view_workers'])")
        .execute(&a.app.pool)
        .await
        .unwrap();
    let board: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE name = 'board'")
        .fetch_one(&a.app.pool)
        .await
        .unwrap();
    a.app.create_user("watcher", "Watcher", &[board]).await;
    let watcher = a
        .app
        .sign_in("watcher", crate::common::auth::PASSWORD)
        .await;
    let (_, theirs) = a.app.page(&watcher, "/verify").await;
    assert!(
        theirs.contains("1 problem") && !theirs.contains("sales / INBOX"),
        "{theirs}"
    );
    assert!(theirs.contains("1 more problem(s) concern archives you cannot read"));

    let eval = Evaluator {
        pool: a.app.pool.clone(),
        scanner: None,
        data_dir: a.app.data_path(),
        smtp: daygle::notify::evaluator::Smtp::Fixed(None),
        public_url: "https://archive.example.org".into(),
    };
    eval.run_once().await.unwrap();
    let open: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT severity, title, link FROM alerts WHERE trigger = 'verify_failed' AND resolved_at IS NULL",
    )
    .fetch_all(&a.app.pool)
    .await
    .unwrap();
    assert_eq!(
        open,
        vec![(
            "critical".to_string(),
            "Archive verification found 1 problem(s)".to_string(),
            "/verify".to_string()
        )]
    );

    // Repaired (the flip undone): the next run passes and the alert resolves.
    damage(&a.app, &flip(&victim.to_string())).await;
    let (code, out) = outcome(&run(&a.app, &["verify", "archive"]));
    assert_eq!(code, Some(0), "{out}");
    eval.run_once().await.unwrap();
    let still_open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alerts WHERE trigger = 'verify_failed' AND resolved_at IS NULL",
    )
    .fetch_one(&a.app.pool)
    .await
    .unwrap();
    assert_eq!(still_open, 0);
    let (_, html) = a.app.page(&admin, "/verify").await;
    assert!(
        html.contains("passed") && html.contains("Earlier runs"),
        "{html}"
    );
}
