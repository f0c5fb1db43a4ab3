use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::support::*;
use crate::common::daygle_bin;

fn daygle(env: &Env, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(daygle_bin())
        .current_dir(env.data_dir.path())
        .env("DAYGLE__DATABASE__URL", &env.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", env.data_dir.path())
        .env("DAYGLE__LOGGING__LEVEL", "warn")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run daygle");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_adds_syncs_lists_and_removes_an_account_from_the_command_line() {
    let env = env().await;
    env.dovecot.add_user("alice", "alice-pw");
    env.dovecot
        .write_messages("alice", "INBOX", &messages("cli", 7), NEW);
    let port = env.dovecot.port.to_string();

    let add = tokio::task::block_in_place(|| {
        daygle(
            &env,
            &[
                "account",
                "add",
                "--name",
                "Alice",
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--tls",
                "none",
                "--username",
                "alice",
            ],
            "alice-pw\n",
        )
    });
    assert!(add.status.success(), "{}", text(&add));
    assert!(!text(&add).contains("alice-pw"));

    let list = tokio::task::block_in_place(|| daygle(&env, &["account", "list"], ""));
    assert!(text(&list).contains("never synced"), "{}", text(&list));

    let sync = tokio::task::block_in_place(|| daygle(&env, &["sync", "--once"], ""));
    assert!(sync.status.success(), "{}", text(&sync));
    assert!(
        text(&sync).contains("virus scanning: off ([clamav] enabled = false)"),
        "{}",
        text(&sync)
    );
    assert!(
        text(&sync).contains("Alice: 7 new messages archived"),
        "{}",
        text(&sync)
    );

    let list = tokio::task::block_in_place(|| daygle(&env, &["account", "list"], ""));
    let shown = text(&list);
    assert!(
        shown.contains("100.0%") && shown.contains("ok, last sync"),
        "{shown}"
    );

    let refuse = tokio::task::block_in_place(|| daygle(&env, &["account", "remove", "Alice"], ""));
    assert!(!refuse.status.success());
    assert!(
        text(&refuse).contains("deletes its 7 archived messages"),
        "{}",
        text(&refuse)
    );
    assert_eq!(env.count("SELECT count(*) FROM messages").await, 7);

    let remove =
        tokio::task::block_in_place(|| daygle(&env, &["account", "remove", "Alice", "--yes"], ""));
    assert!(remove.status.success(), "{}", text(&remove));
    assert_eq!(env.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM blobs").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_once_exits_non_zero_when_an_account_fails() {
    let env = env().await;
    env.dovecot.add_user("alice", "alice-pw");
    env.account_with(env.imap_settings("Wrong", "alice"), "wrong-pw")
        .await;

    let sync = tokio::task::block_in_place(|| daygle(&env, &["sync", "--once"], ""));

    assert!(!sync.status.success());
    assert!(
        text(&sync).contains("Wrong: sync failed"),
        "{}",
        text(&sync)
    );
    assert!(
        text(&sync).contains("check the user name and password"),
        "{}",
        text(&sync)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_from_the_command_line_prints_a_report() {
    let env = env().await;
    let dir = tempfile::tempdir().expect("dir");
    for i in 0..4 {
        std::fs::write(
            dir.path().join(format!("{i}.eml")),
            message("cli-import", i),
        )
        .expect("write");
    }
    std::fs::write(dir.path().join("dup.eml"), message("cli-import", 0)).expect("write");
    let path = dir.path().display().to_string();

    let out = tokio::task::block_in_place(|| {
        daygle(&env, &["import", "--account", "Archive 2019", &path], "")
    });

    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("imported 4 messages into Archive 2019 (1 duplicates"),
        "{}",
        text(&out)
    );
}
