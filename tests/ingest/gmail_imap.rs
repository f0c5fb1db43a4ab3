//! Gmail over IMAP (`X-GM-EXT-1`) against a scripted Gmail IMAP server: one message however
//! many labels, its labels as tags, `label:` search, label changes followed.

use super::support::{Env, env, imap_account, message};
use crate::common::gmail_imap::{ALL_MAIL, FakeGmailImap, GmailMessage};
use daygle::archive::labels;
use daygle::ingest::accounts::{self, Account, ImapOptions};

/// Tags of the archived message with this Message-ID tag.
async fn tags(env: &Env, id: i64) -> Vec<String> {
    let mut conn = env.pool.acquire().await.expect("conn");
    labels::of_message(&mut conn, id).await.expect("tags")
}

async fn message_id(env: &Env, account: &Account, subject: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT id FROM messages WHERE account_id = $1 AND subject = $2 AND folder = $3",
    )
    .bind(account.id)
    .bind(subject)
    .bind(ALL_MAIL)
    .fetch_one(&env.pool)
    .await
    .expect("one archived copy in All Mail")
}

async fn following(env: &Env, account: Account) -> Account {
    let mut tx = env.pool.begin().await.expect("tx");
    let options = ImapOptions {
        idle: Some(false),
        follow_flags: true,
    };
    accounts::set_imap_options(&mut tx, account.id, options)
        .await
        .expect("options");
    tx.commit().await.expect("commit");
    env.reload(account.id).await
}

#[tokio::test]
async fn a_gmail_message_with_many_labels_is_archived_once_with_all_of_them_and_changes_follow() {
    let env = env().await;
    let gmail = FakeGmailImap::start(vec![
        GmailMessage {
            msgid: 1_500_000_000_000_000_001,
            raw: message("gm", 1),
            labels: vec!["\\Inbox".into(), "\\Important".into(), "Work".into()],
        },
        GmailMessage {
            msgid: 1_500_000_000_000_000_002,
            raw: message("gm", 2),
            labels: vec!["Client Projects".into(), "Projekt &AOQ-".into()],
        },
    ])
    .await;
    let account = env
        .account_with(imap_account("Gmail", gmail.port, "alice"), "pw")
        .await;
    let account = following(&env, account).await;

    let first = env.sync(&account).await.expect("first sync");
    assert_eq!((first.folders, first.archived), (1, 2), "{first:?}");
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM messages WHERE account_id = {}",
            account.id
        ))
        .await,
        2,
        "each Gmail message once, although INBOX and each label list it too"
    );
    let examined: Vec<String> = gmail
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("EXAMINE"))
        .collect();
    assert_eq!(examined, [format!("EXAMINE \"{ALL_MAIL}\"")]);
    let one = message_id(&env, &account, "gm message 1").await;
    let two = message_id(&env, &account, "gm message 2").await;
    assert_eq!(tags(&env, one).await, ["Inbox", "Important", "Work"]);
    assert_eq!(tags(&env, two).await, ["Client Projects", "Projekt ä"]);
    assert_eq!(env.search("label:work").await, [one]);
    assert_eq!(env.search("label:Inbox").await, [one]);
    assert_eq!(env.search("label:\"client projects\"").await, [two]);
    assert_eq!(env.search("label:\"Projekt ä\"").await, [two]);

    let second = env.sync(&account).await.expect("second sync");
    assert_eq!(
        (second.fetched, second.archived, second.flags_changed),
        (0, 0, 0),
        "{second:?}"
    );

    gmail.relabel(1_500_000_000_000_000_001, &["\\Inbox", "Receipts"]);
    let third = env.sync(&account).await.expect("third sync");
    assert_eq!((third.archived, third.flags_changed), (0, 1), "{third:?}");
    assert_eq!(tags(&env, one).await, ["Inbox", "Receipts"]);
    assert!(env.search("label:work").await.is_empty());
    assert_eq!(env.search("label:receipts").await, [one]);
    assert_eq!(
        env.search("label:\"client projects\"").await,
        [two],
        "names of labels no longer on this message are kept"
    );
}

#[tokio::test]
async fn folder_patterns_still_decide_and_accounts_with_folder_history_are_not_switched() {
    let env = env().await;
    let gmail = FakeGmailImap::start(vec![GmailMessage {
        msgid: 42,
        raw: message("pf", 1),
        labels: vec!["\\Inbox".into(), "Work".into()],
    }])
    .await;
    // Patterns that leave All Mail out: folder by folder, as before.
    let mut only_inbox = imap_account("Inbox only", gmail.port, "bob");
    only_inbox.folders_include = vec!["INBOX".into()];
    let only_inbox = env.account_with(only_inbox, "pw").await;
    let pass = env.sync(&only_inbox).await.expect("sync");
    assert_eq!((pass.folders, pass.archived), (1, 1), "{pass:?}");
    let folders: Vec<String> =
        sqlx::query_scalar("SELECT folder FROM messages WHERE account_id = $1")
            .bind(only_inbox.id)
            .fetch_all(&env.pool)
            .await
            .expect("folders");
    assert_eq!(folders, ["INBOX"]);

    // Widening the patterns later does not switch an account that archives per folder.
    sqlx::query("UPDATE accounts SET folders_include = '{}' WHERE id = $1")
        .bind(only_inbox.id)
        .execute(&env.pool)
        .await
        .expect("widen");
    let widened = env.reload(only_inbox.id).await;
    let pass = env.sync(&widened).await.expect("sync");
    assert_eq!(pass.folders, 3, "INBOX, All Mail and Work: {pass:?}");
}
