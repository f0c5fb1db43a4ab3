use std::collections::BTreeSet;

use super::fixtures::world;

async fn stored_hashes(pool: &sqlx::PgPool, account: i64) -> BTreeSet<String> {
    sqlx::query_scalar::<_, Vec<u8>>("SELECT blob_sha256 FROM messages WHERE account_id = $1")
        .bind(account)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(hex::encode)
        .collect()
}

async fn reimport(
    w: &super::fixtures::World,
    path: &std::path::Path,
    name: &str,
) -> BTreeSet<String> {
    let out = crate::common::process::daygle(w.app.data_dir.path())
        .args(["import", "--account", name])
        .arg(path)
        .env("DAYGLE__DATABASE__URL", &w.app.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", w.app.data_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let account: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE name = $1")
        .bind(name)
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    stored_hashes(&w.app.pool, account).await
}

#[tokio::test]
async fn exported_zip_and_mbox_reimport_to_the_same_sha256_set() {
    let w = world().await;
    let original = stored_hashes(&w.app.pool, w.sales).await;
    let dir = tempfile::tempdir().unwrap();
    for format in ["zip", "mbox"] {
        let res = w
            .admin
            .get(w.app.url(&format!(
                "/messages/export?format={format}&account={}",
                w.sales
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains(&format!(".{format}"))
        );
        let bytes = res.bytes().await.unwrap();
        let target = if format == "zip" {
            // Unpack the .eml files; the manifest lists the same hashes.
            let unpacked = dir.path().join("unzipped");
            std::fs::create_dir_all(&unpacked).unwrap();
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
            let mut manifest = BTreeSet::new();
            for i in 0..zip.len() {
                let mut entry = zip.by_index(i).unwrap();
                let name = entry.name().unwrap().to_string();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                if name == "manifest.csv" {
                    for line in String::from_utf8(data).unwrap().lines().skip(1) {
                        manifest.insert(line.split(',').nth(1).unwrap().to_string());
                    }
                } else {
                    std::fs::write(unpacked.join(&name), data).unwrap();
                }
            }
            assert_eq!(
                manifest, original,
                "manifest.csv lists every exported message's SHA-256"
            );
            unpacked
        } else {
            let path = dir.path().join("export.mbox");
            std::fs::write(&path, &bytes).unwrap();
            path
        };
        let reimported = reimport(&w, &target, &format!("reimport-{format}")).await;
        assert_eq!(reimported, original, "{format} export did not round-trip");
    }
    let exports: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'mail.export' AND details->>'filters' LIKE 'account=%'",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(exports, 2, "each export is audited with its query");
}

#[tokio::test]
async fn the_export_command_writes_a_search_or_an_account_to_a_file() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        crate::common::process::daygle(w.app.data_dir.path())
            .arg("export")
            .args(args)
            .env("DAYGLE__DATABASE__URL", &w.app.database_url)
            .env("DAYGLE__STORAGE__DATA_DIR", w.app.data_dir.path())
            .output()
            .unwrap()
    };
    let zip_path = dir.path().join("sales.zip");
    let out = run(&[
        "--account",
        "sales",
        "--format",
        "zip",
        "--output",
        zip_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exported 4 messages"));
    let zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    assert_eq!(
        zip.len(),
        7,
        "four .eml files, manifest.csv, SHA256SUMS and export.json"
    );

    let mbox_path = dir.path().join("invoice.mbox");
    let out = run(&[
        "--query",
        "invoice",
        "--format",
        "mbox",
        "--output",
        mbox_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&mbox_path).unwrap();
    assert_eq!(
        text.matches("\nFrom ").count() + usize::from(text.starts_with("From ")),
        3 + 1,
        "three messages and the manifest message"
    );

    // An existing file is never overwritten, and a bad query is explained.
    let out = run(&["--format", "mbox", "--output", mbox_path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must not exist"));
    let out = run(&[
        "--query",
        "before:soon",
        "--format",
        "mbox",
        "--output",
        "/tmp/never.mbox",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
    let cli_exports: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'mail.export'")
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(cli_exports, 2);
}

fn zip_entries(bytes: Vec<u8>) -> (Vec<String>, String) {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names = Vec::new();
    let mut manifest = String::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        if name == "manifest.csv" {
            std::io::Read::read_to_string(&mut entry, &mut manifest).unwrap();
        } else if name.ends_with(".eml") {
            names.push(name);
        }
    }
    (names, manifest)
}

/// One rule wherever the bytes of mail flagged infected, or not scanned yet, leave the
/// server: the original, attachments and exports are for `manage_quarantine` only; exports
/// leave such mail out and their manifest says so.
#[tokio::test]
async fn infected_and_unscanned_mail_leaves_only_for_quarantine_managers() {
    let w = world().await;
    let (figures, news) = (w.sales_ids[2], w.sales_ids[3]);
    for (id, status) in [(figures, "infected"), (news, "pending")] {
        sqlx::query("UPDATE messages SET scan_status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&w.app.pool)
            .await
            .unwrap();
    }
    for id in [figures, news] {
        let raw = format!("/messages/{id}/raw");
        assert_eq!(w.app.page(&w.reader, &raw).await.0, 403, "{raw}");
        assert_eq!(w.app.page(&w.admin, &raw).await.0, 200, "{raw}");
        let (_, page) = w.app.page(&w.reader, &format!("/messages/{id}")).await;
        assert!(!page.contains(&raw), "no download link for the reader");
    }
    let (_, page) = w.app.page(&w.reader, &format!("/messages/{news}")).await;
    assert!(page.contains("Not scanned yet"), "{page}");

    w.app.create_user("auditor", "Auditor", &[]).await;
    let auditor = w
        .app
        .sign_in("auditor", crate::common::auth::PASSWORD)
        .await;
    let url = w
        .app
        .url(&format!("/messages/export?format=zip&account={}", w.sales));
    let bytes = auditor
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (names, manifest) = zip_entries(bytes.to_vec());
    assert_eq!(names.len(), 2, "only the clean messages: {names:?}");
    assert_eq!(
        manifest
            .matches("withheld, needs the manage_quarantine permission")
            .count(),
        2,
        "{manifest}"
    );
    assert!(manifest.contains("\"infected: withheld") && manifest.contains("\"pending: withheld"));
    let bytes = w
        .admin
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        zip_entries(bytes.to_vec()).0.len(),
        4,
        "administrators get all"
    );

    let dir = tempfile::tempdir().unwrap();
    let export = |name: &str, extra: &[&str]| {
        let path = dir.path().join(name);
        let out = crate::common::process::daygle(w.app.data_dir.path())
            .args([
                "export",
                "--account",
                "sales",
                "--format",
                "zip",
                "--output",
            ])
            .arg(&path)
            .args(extra)
            .env("DAYGLE__DATABASE__URL", &w.app.database_url)
            .env("DAYGLE__STORAGE__DATA_DIR", w.app.data_dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            zip_entries(std::fs::read(&path).unwrap()).0.len(),
        )
    };
    let (said, n) = export("plain.zip", &[]);
    assert!(
        said.contains("left out 2 infected or not yet scanned"),
        "{said}"
    );
    assert_eq!(n, 2);
    let (_, n) = export("all.zip", &["--include-infected"]);
    assert_eq!(n, 4);
}
