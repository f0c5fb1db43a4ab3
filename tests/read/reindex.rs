//! Reindex: an archive indexed the old way (PostgreSQL's `simple` parser, as before migration
//! 0801) finds everything the new way once its vectors are rebuilt from the originals.

use daygle::archive::search::reindex::{self, Scope};

use super::fixtures::{Mail, archive, build, world};
use super::search::search;

#[tokio::test]
async fn an_old_archive_finds_everything_after_reindex_and_languages_apply() {
    let w = world().await;
    let ids = archive(
        &w.app,
        w.sales,
        "Old",
        vec![
            build(&Mail {
                subject: "Order from scoffman@wellpartner.com",
                body: "Zwei Rechnungen für Herrn Müller.",
                message_id: "old-1@x",
                ..Mail::default()
            }),
            build(&Mail {
                subject: "I-D ACTION:draft-ietf-mboned-mix-00.txt",
                message_id: "old-2@x",
                ..Mail::default()
            }),
        ],
    )
    .await;
    // What migration 0801 finds: vectors of the old configuration, every row flagged.
    sqlx::query(
        "UPDATE messages SET search_pending = true,
             search = setweight(to_tsvector('simple', coalesce(subject, '')), 'A')
                   || setweight(to_tsvector('simple', coalesce(from_addr, '')), 'B')",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(search(&w, &w.admin, "wellpartner").await, Vec::<i64>::new());
    assert_eq!(search(&w, &w.admin, "mboned").await, Vec::<i64>::new());
    // Old vectors still answer exact words while the rebuild is pending.
    assert_eq!(search(&w, &w.admin, "order folder:Old").await, vec![ids[0]]);

    let pending = reindex::pending(&w.app.pool, Scope::default())
        .await
        .unwrap();
    assert_eq!(pending, 7, "every message of the world is flagged");
    let mut seen = Vec::new();
    let done = reindex::run(&w.app.pool, Scope::default(), |n| seen.push(n))
        .await
        .unwrap();
    // serve's background task may take a batch meanwhile; together they do all 7.
    assert!((1..=7).contains(&done), "{done}");
    assert_eq!(seen.last(), Some(&done), "progress reported");
    assert_eq!(
        reindex::pending(&w.app.pool, Scope::default())
            .await
            .unwrap(),
        0
    );
    assert_eq!(search(&w, &w.admin, "wellpartner").await, vec![ids[0]]);
    assert_eq!(search(&w, &w.admin, "mboned").await, vec![ids[1]]);
    assert_eq!(search(&w, &w.admin, "muller").await, vec![ids[0]]);
    // English stems do not join German forms; the account's language changes that.
    assert_eq!(search(&w, &w.admin, "rechnung").await, Vec::<i64>::new());
    let run = |args: &[&str]| {
        let out = crate::common::process::daygle(w.app.data_dir.path())
            .arg("reindex")
            .args(args)
            .env("DAYGLE__DATABASE__URL", &w.app.database_url)
            .env("DAYGLE__STORAGE__DATA_DIR", w.app.data_dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = run(&["--account", "sales", "--language", "klingon"]);
    assert!(
        !ok && text.contains("not one of") && text.contains("german"),
        "{text}"
    );
    let (ok, text) = run(&["--account", "sales", "--language", "german"]);
    assert!(ok, "{text}");
    assert!(text.contains("search language set to german"), "{text}");
    let scope = Scope {
        account_id: Some(w.sales),
    };
    assert_eq!(reindex::pending(&w.app.pool, scope).await.unwrap(), 0);
    assert_eq!(search(&w, &w.admin, "rechnung").await, vec![ids[0]]);
    // Without --account: every message, again.
    let (ok, text) = run(&[]);
    assert!(
        ok && text.contains("rebuilt the search vectors of"),
        "{text}"
    );
    assert!(
        w.app
            .audit_actions()
            .await
            .contains(&"account.search_language".to_string())
    );
    assert!(
        w.app
            .audit_actions()
            .await
            .contains(&"search.reindex".to_string())
    );
}
