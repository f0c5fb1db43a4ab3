use std::path::Path;

use super::support::*;
use daygle::ingest::accounts;
use daygle::ingest::files::{ImportReport, import_paths};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// mbox with 3 messages (one body line escaped as ">From "), a Maildir with a subfolder, a
/// directory of .eml files; two messages appear twice; one empty .eml and one fake mbox.
fn build_tree(root: &Path) {
    let mut mbox = Vec::new();
    for i in 0..3 {
        mbox.extend(b"From sender@example.org Mon Jan  1 10:00:00 2024\n");
        let mut m = String::from_utf8(message("mbox", i))
            .expect("utf8")
            .replace("\r\n", "\n");
        if i == 1 {
            m.push_str(">From the desk of the CEO\n");
        }
        mbox.extend(m.as_bytes());
        mbox.extend(b"\n");
    }
    write(&root.join("old-mail/Inbox.mbox"), &mbox);
    write(&root.join("maildir/cur/1.a:2,S"), &message("maildir", 0));
    write(&root.join("maildir/new/2.b"), &message("maildir", 1));
    write(
        &root.join("maildir/.Projects.2024/cur/3.c:2,"),
        &message("maildir-sub", 0),
    );
    write(&root.join("eml/one.eml"), &message("eml", 0));
    write(&root.join("eml/dup-of-maildir.eml"), &message("maildir", 0));
    write(&root.join("eml/attached.eml"), &with_attachment("eml-att"));
    write(&root.join("eml/empty.eml"), b"");
    write(&root.join("eml/notes.mbox"), b"this is not an mbox\n");
}

async fn import(env: &Env, root: &Path) -> ImportReport {
    let mut conn = env.pool.acquire().await.expect("conn");
    let account = accounts::import_account(&mut conn, "Old mail")
        .await
        .expect("account");
    drop(conn);
    import_paths(
        &env.pool,
        &env.settings,
        &env.keys.sealing,
        &account,
        &[root.to_path_buf()],
        &|_| {},
    )
    .await
    .expect("import")
}

#[tokio::test]
async fn an_import_of_mbox_maildir_and_eml_reports_duplicates_and_broken_files_and_reruns_add_nothing()
 {
    let env = env().await;
    let dir = tempfile::tempdir().expect("dir");
    build_tree(dir.path());

    let first = import(&env, dir.path()).await;

    assert_eq!(first.imported, 8, "{first:?}");
    assert_eq!(first.duplicates, 1, "{first:?}");
    assert_eq!(first.failed.len(), 2, "{first:?}");
    assert!(
        first
            .failed
            .iter()
            .any(|(s, r)| s.ends_with("empty.eml") && r.contains("empty"))
    );
    assert!(
        first
            .failed
            .iter()
            .any(|(s, r)| s.ends_with("notes.mbox") && r.contains("not an mbox"))
    );
    let folders: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT folder FROM messages ORDER BY folder")
            .fetch_all(&env.pool)
            .await
            .expect("folders");
    assert_eq!(folders, ["INBOX", "Inbox", "Projects/2024", "eml"]);
    let unescaped = env
        .count("SELECT count(*) FROM messages WHERE subject = 'mbox message 1'")
        .await;
    assert_eq!(unescaped, 1);
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT blob_sha256 FROM messages WHERE subject = 'mbox message 1'")
            .fetch_all(&env.pool)
            .await
            .expect("sha");
    let sha: [u8; 32] = rows[0].as_slice().try_into().expect("32 bytes");
    let mut conn = env.pool.acquire().await.expect("conn");
    let raw = daygle::archive::blobs::read_verified(&mut conn, &sha)
        .await
        .expect("read")
        .expect("blob");
    let text = String::from_utf8(raw).expect("utf8");
    assert!(
        text.contains("\nFrom the desk of the CEO"),
        "mbox escaping is undone: {text}"
    );
    drop(conn);

    let again = import(&env, dir.path()).await;
    assert_eq!(
        (again.imported, again.duplicates),
        (0, 9),
        "a re-run adds nothing"
    );
    assert_eq!(env.count("SELECT count(*) FROM messages").await, 8);
}
