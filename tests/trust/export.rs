//! Exports a third party can check: `daygle verify export` (and `sha256sum -c` on an extracted
//! zip) catch an altered, a missing and an added message in both formats.

use std::io::{Read, Write};
use std::path::Path;

use super::support::{archive_with_mail, outcome, run};

fn check(app: &crate::common::TestApp, file: &Path) -> (Option<i32>, String) {
    outcome(&run(
        app,
        &["verify", "export", &file.display().to_string()],
    ))
}

/// Copies a zip entry by entry, letting `edit` change, drop (None) or keep each file, then
/// appending `extra`.
fn rewrite_zip(
    from: &Path,
    to: &Path,
    edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: (&str, &[u8]),
) {
    let mut src = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for i in 0..src.len() {
        let mut f = src.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        if let Some(data) = edit(&name, data) {
            out.start_file(name.as_str(), options).unwrap();
            out.write_all(&data).unwrap();
        }
    }
    out.start_file(extra.0, options).unwrap();
    out.write_all(extra.1).unwrap();
    out.finish().unwrap();
}

#[tokio::test]
async fn verify_export_catches_altered_missing_and_added_messages_in_a_zip() {
    let a = archive_with_mail().await;
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("export.zip");
    let (code, out) = outcome(&run(
        &a.app,
        &[
            "export",
            "--format",
            "zip",
            "--output",
            &zip_path.display().to_string(),
        ],
    ));
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check(&a.app, &zip_path);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("all 4 messages match the manifest"), "{out}");
    assert!(out.contains("export of 4 messages by cli:"), "{out}");
    let seq: i64 = sqlx::query_scalar("SELECT max(id) FROM audit_log WHERE action = 'mail.export'")
        .fetch_one(&a.app.pool)
        .await
        .unwrap();
    assert!(out.contains(&format!("audit entry {seq})")), "{out}");

    // `sha256sum -c` works on the extracted zip.
    let extracted = dir.path().join("x");
    zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap())
        .unwrap()
        .extract(&extracted)
        .unwrap();
    let sums = std::process::Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&extracted)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    let manifest = std::fs::read_to_string(extracted.join("manifest.csv")).unwrap();
    assert!(manifest.contains("\"sales\",\"INBOX\",2,"), "{manifest}");
    assert!(manifest.contains("figures@example.org"), "{manifest}");

    let names: Vec<String> = {
        let z = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
        z.file_names()
            .filter_map(|n| n.ok().map(|n| n.to_string()))
            .filter(|n| n.ends_with(".eml"))
            .collect()
    };
    let (altered, dropped) = (names[0].clone(), names[1].clone());
    std::fs::write(
        extracted.join(&altered),
        b"Subject: forged\r\n\r\nnot the original\r\n",
    )
    .unwrap();
    let sums = std::process::Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&extracted)
        .output()
        .unwrap();
    assert!(
        !sums.status.success(),
        "sha256sum -c notices the changed file"
    );

    let tampered = dir.path().join("tampered.zip");
    rewrite_zip(
        &zip_path,
        &tampered,
        |name, data| {
            if name == dropped {
                None
            } else if name == altered {
                let mut d = data;
                d.extend_from_slice(b"\r\nP.S. added later\r\n");
                Some(d)
            } else {
                Some(data)
            }
        },
        (
            "slipped-in.eml",
            b"Message-ID: <intruder@example.org>\r\nSubject: hi\r\n\r\nx\r\n",
        ),
    );
    let (code, out) = check(&a.app, &tampered);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("altered: {altered} no longer matches")),
        "{out}"
    );
    assert!(out.contains(&format!("missing: {dropped} ")), "{out}");
    assert!(
        out.contains(
            "added: slipped-in.eml (Message-ID intruder@example.org) is not in the manifest"
        ),
        "{out}"
    );
    assert!(out.contains("3 problem(s)"), "{out}");
}

#[tokio::test]
async fn verify_export_catches_altered_missing_and_added_messages_in_an_mbox() {
    let a = archive_with_mail().await;
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("export.mbox");
    let (code, out) = outcome(&run(
        &a.app,
        &[
            "export",
            "--format",
            "mbox",
            "--output",
            &mbox.display().to_string(),
        ],
    ));
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check(&a.app, &mbox);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("all 4 messages match the manifest"), "{out}");

    // Importing the export brings back the 4 messages, not the manifest message.
    let (code, out) = outcome(&run(
        &a.app,
        &["import", "--account", "again", &mbox.display().to_string()],
    ));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("imported 4 messages"), "{out}");

    let text = std::fs::read(&mbox).unwrap();
    let text = String::from_utf8(text).unwrap();
    // Alter the Lunch message, drop the Board minutes, add a message before the manifest.
    let altered = text.replacen("Subject: Lunch", "Subject: Brunch", 1);
    let starts: Vec<usize> = altered
        .match_indices("\nFrom ")
        .map(|(i, _)| i + 1)
        .collect();
    let board = altered.find("Subject: Board minutes").unwrap();
    let board_start = starts
        .iter()
        .rev()
        .find(|&&s| s < board)
        .copied()
        .unwrap_or(0);
    let board_end = starts.iter().find(|&&s| s > board).copied().unwrap();
    let without_board = format!("{}{}", &altered[..board_start], &altered[board_end..]);
    let manifest_at = without_board
        .find("From MAILER-DAEMON Thu Jan  1 00:00:00 1970")
        .unwrap();
    let tampered = format!(
        "{}From intruder@example.org Mon Jan  1 00:00:00 2024\nMessage-ID: <intruder@example.org>\nSubject: hi\n\nx\n\n{}",
        &without_board[..manifest_at],
        &without_board[manifest_at..]
    );
    let path = dir.path().join("tampered.mbox");
    std::fs::write(&path, tampered).unwrap();
    let (code, out) = check(&a.app, &path);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("(Message-ID lunch@example.org) no longer matches its SHA-256"),
        "{out}"
    );
    assert!(out.contains("Message-ID minutes@example.org, subject \"Board minutes\") is in the manifest but not in the export"), "{out}");
    assert!(
        out.contains("added: 4 (Message-ID intruder@example.org)"),
        "{out}"
    );
    assert!(out.contains("3 problem(s)"), "{out}");
}

/// A failed export leaves nothing under the chosen name (nor a temporary file), so the retry
/// with the same name works (the walk of issue #17).
#[tokio::test]
async fn a_failed_export_leaves_no_file_and_the_retry_succeeds() {
    let a = archive_with_mail().await;
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("mail.mbox");
    let out_arg = out_path.display().to_string();
    let (code, out) = outcome(&run(
        &a.app,
        &[
            "export",
            "--format",
            "mbox",
            "--account",
            "nosuch",
            "--output",
            &out_arg,
        ],
    ));
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("no account named nosuch"), "{out}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let (code, out) = outcome(&run(
        &a.app,
        &["export", "--format", "mbox", "--output", &out_arg],
    ));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("exported 4 messages"), "{out}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the export: {left:?}");
}
