use super::support::*;
use crate::common::process::daygle;

fn run(env: &Env, args: &[&str]) -> (bool, String) {
    let out = daygle(env.data_dir.path())
        .env("DAYGLE__DATABASE__URL", &env.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", env.data_dir.path())
        .env("DAYGLE__LOGGING__LEVEL", "warn")
        .args(args)
        .output()
        .expect("run daygle");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_policies_holds_deletion_and_erasure_and_refuses_without_yes() {
    let env = env().await;
    let (a, b) = (env.account("Sales").await, env.account("Legal").await);
    let old = |s, from| Msg {
        subject: s,
        from,
        to: "y@example.org",
        age_days: 800,
    };
    env.store(a, "INBOX", 1, &old("quote", "x@example.org"))
        .await;
    env.store(b, "INBOX", 1, &old("brief", "x@example.org"))
        .await;
    env.store(a, "INBOX", 2, &old("spam offer", "spam@example.org"))
        .await;
    env.store(b, "INBOX", 2, &old("note", "erin@example.org"))
        .await;

    let (ok, out) = run(
        &env,
        &[
            "retention",
            "add",
            "two years",
            "--keep-days",
            "730",
            "--account",
            "Sales",
            "--account",
            "Legal",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = run(&env, &["retention", "list"]);
    assert!(
        ok && out.contains("two years") && out.contains("keep 730 days"),
        "{out}"
    );
    let (ok, out) = run(
        &env,
        &[
            "hold",
            "add",
            "case",
            "--reason",
            "lawsuit 1",
            "--account",
            "Legal",
        ],
    );
    assert!(ok && out.contains("2 messages held now"), "{out}");
    let (ok, out) = run(&env, &["hold", "list"]);
    assert!(
        ok && out.contains("case") && out.contains("lawsuit 1"),
        "{out}"
    );

    let (ok, out) = run(&env, &["retention", "preview"]);
    assert!(
        ok && out.contains("two years\tSales\t2 messages") && out.contains("2 held"),
        "{out}"
    );
    let (ok, out) = run(&env, &["retention", "run"]);
    assert!(!ok && out.contains("--yes"), "{out}");
    assert_eq!(env.ids().await.len(), 4);

    let (ok, out) = run(
        &env,
        &[
            "delete",
            "--query",
            "from:spam@example.org",
            "--reason",
            "junk",
        ],
    );
    assert!(!ok && out.contains("1 messages match"), "{out}");
    let (ok, out) = run(
        &env,
        &[
            "delete",
            "--query",
            "from:spam@example.org",
            "--reason",
            "junk",
            "--yes",
        ],
    );
    assert!(ok && out.contains("deleted 1 messages"), "{out}");
    let (ok, out) = run(
        &env,
        &["erase", "erin@example.org", "--reason", "Art. 17", "--yes"],
    );
    assert!(
        ok && out.contains("erased 0 of 1 messages; 1 held messages kept"),
        "{out}"
    );

    let (ok, out) = run(&env, &["retention", "run", "--yes"]);
    assert!(ok && out.contains("purged 1 messages"), "{out}");
    let (ok, out) = run(&env, &["hold", "release", "case", "--reason", "settled"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&env, &["retention", "run", "--yes"]);
    assert!(ok && out.contains("purged 2 messages"), "{out}");
    assert!(env.ids().await.is_empty());
    let (ok, out) = run(&env, &["retention", "remove", "two years"]);
    assert!(ok, "{out}");
    for cmd in [
        ["retention", "--help"],
        ["hold", "--help"],
        ["delete", "--help"],
        ["erase", "--help"],
    ] {
        let (ok, out) = run(&env, &cmd);
        assert!(ok && out.contains("Usage"), "{out}");
    }
}
