use std::collections::BTreeSet;

use super::support::*;
use daygle::audit::Actor;
use daygle::auth::{Grants, manage, users};
use daygle::retention::{erasure, holds, requests};

async fn user(env: &Env, name: &str, role: &str) -> Actor {
    let role_id = users::role_id_by_name(&env.pool, role).await.expect("role");
    let id = manage::create_user(
        &env.pool,
        &Actor::cli(),
        &manage::NewUser {
            username: name,
            email: "",
            password: "a long enough password 123",
            role_ids: &[role_id],
            account_ids: &[],
        },
        12,
    )
    .await
    .expect("create user");
    Actor {
        user_id: Some(id),
        username: name.into(),
        ..Actor::default()
    }
}

fn msg(subject: &str) -> Msg<'_> {
    Msg {
        subject,
        from: "x@example.org",
        to: "y@example.org",
        age_days: 5,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn four_eyes_nothing_is_deleted_before_a_second_person_approves_and_held_mail_stays() {
    let env = env().await;
    let a = env.account("A").await;
    let ids = vec![
        env.store(a, "INBOX", 1, &msg("one")).await,
        env.store(a, "INBOX", 2, &msg("two")).await,
        env.store(a, "INBOX", 3, &msg("three")).await,
    ];
    let keep = env.store(a, "INBOX", 4, &msg("not selected")).await;
    holds::hold_messages(
        &env.pool,
        &actor(),
        &Grants::All,
        "evidence",
        "case 42",
        &[ids[1]],
    )
    .await
    .expect("hold one message");
    let (requester, approver) = (
        user(&env, "rita", "Administrator").await,
        user(&env, "abe", "Administrator").await,
    );
    let reader = user(&env, "rob", "Read Only").await;

    let (count, held) = requests::count_selection(&env.pool, &Grants::All, &ids)
        .await
        .expect("count");
    assert_eq!(
        (count, held),
        (3, 1),
        "the confirmation shows 3 selected, 1 held"
    );
    let new = requests::NewRequest {
        kind: requests::Kind::Manual,
        ids: &ids,
        reason: "GDPR request 7",
        query: None,
        addresses: &[],
    };
    let r = requests::request(&env.pool, &requester, &Grants::All, &new, true)
        .await
        .expect("request");
    assert_eq!(r.outcome, requests::Outcome::Pending);
    assert_eq!(
        env.ids().await.len(),
        4,
        "nothing is deleted before approval"
    );

    requests::approve(&env.pool, &requester, &Grants::All, r.id)
        .await
        .expect_err("the requester cannot approve");
    requests::approve(&env.pool, &reader, &Grants::All, r.id)
        .await
        .expect_err("approving needs delete_mail");
    assert_eq!(env.ids().await.len(), 4);
    let done = requests::approve(&env.pool, &approver, &Grants::All, r.id)
        .await
        .expect("approve");
    assert_eq!((done.deleted, done.kept_held), (2, 1));
    assert_eq!(
        env.ids().await,
        vec![ids[1], keep],
        "the held message and the unselected one stay"
    );
    requests::approve(&env.pool, &approver, &Grants::All, r.id)
        .await
        .expect_err("only once");

    let record = requests::record_items(&env.pool, r.id)
        .await
        .expect("record");
    assert_eq!(record.iter().filter(|i| i.deleted).count(), 2);
    assert!(record.iter().all(|i| i.blob_sha256.len() == 32));
    let actions = env.audit_actions().await;
    for a in [
        "hold.add_messages",
        "mail.delete_request",
        "mail.delete_approve",
        "mail.delete_batch",
        "mail.delete",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
    assert_eq!(
        env.count("SELECT messages FROM deletion_stats WHERE cause = 'manual'")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_request_deletes_nothing() {
    let env = env().await;
    let a = env.account("A").await;
    let id = env.store(a, "INBOX", 1, &msg("one")).await;
    let requester = user(&env, "rita", "Administrator").await;
    let new = requests::NewRequest {
        kind: requests::Kind::Manual,
        ids: &[id],
        reason: "tidy up",
        query: None,
        addresses: &[],
    };
    let r = requests::request(&env.pool, &requester, &Grants::All, &new, true)
        .await
        .expect("request");
    requests::reject(&env.pool, &actor(), &Grants::All, r.id, "no")
        .await
        .expect("reject");
    requests::approve(
        &env.pool,
        &user(&env, "abe", "Administrator").await,
        &Grants::All,
        r.id,
    )
    .await
    .expect_err("a rejected request cannot be approved");
    assert_eq!(env.ids().await, vec![id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn erasure_removes_every_readable_copy_of_an_address_and_nothing_else_and_records_them() {
    let env = env().await;
    let (a, b, c) = (
        env.account("A").await,
        env.account("B").await,
        env.account("C").await,
    );
    let m = |from, to| Msg {
        subject: "hello",
        from,
        to,
        age_days: 3,
    };
    let from_a = env
        .store(a, "INBOX", 1, &m("erin@example.org", "y@example.org"))
        .await;
    let to_b = env
        .store(
            b,
            "INBOX",
            1,
            &m("y@example.org", "Erin <ERIN@example.org>"),
        )
        .await;
    let held_a = env
        .store(a, "INBOX", 2, &m("erin@example.org", "z@example.org"))
        .await;
    let unreadable = env
        .store(c, "INBOX", 1, &m("erin@example.org", "y@example.org"))
        .await;
    let lookalike = env
        .store(
            a,
            "INBOX",
            3,
            &m("verin@example.org", "erin@example.org.evil"),
        )
        .await;
    let other = env
        .store(b, "INBOX", 2, &m("q@example.org", "y@example.org"))
        .await;
    holds::hold_messages(
        &env.pool,
        &actor(),
        &Grants::All,
        "evidence",
        "case",
        &[held_a],
    )
    .await
    .expect("hold");
    let grants = Grants::Accounts(vec![a, b]);
    let addresses = erasure::parse_addresses(&["erin@example.org".into()]).expect("address");
    let found: BTreeSet<i64> = erasure::find(&env.pool, &grants, &addresses)
        .await
        .expect("find")
        .into_iter()
        .collect();
    assert_eq!(found, BTreeSet::from([from_a, to_b, held_a]));

    let export = tempfile::NamedTempFile::new().expect("temp file");
    let file = export.reopen().expect("reopen");
    let erased = erasure::erase(
        &env.pool,
        &actor(),
        &grants,
        &addresses,
        "",
        Some(file.try_clone().expect("clone")),
    )
    .await;
    assert!(erased.is_err(), "a reason is required");
    let erased = erasure::erase(
        &env.pool,
        &actor(),
        &grants,
        &addresses,
        "Art. 17 request",
        Some(file),
    )
    .await
    .expect("erase");
    assert_eq!(erased.found, 3);
    assert_eq!(
        erased.exported.map(|e| e.messages),
        Some(3),
        "everything found is exported, held mail too"
    );
    assert_eq!((erased.executed.deleted, erased.executed.kept_held), (2, 1));
    let left: BTreeSet<i64> = env.ids().await.into_iter().collect();
    assert_eq!(left, BTreeSet::from([held_a, unreadable, lookalike, other]));
    let zip = zip::ZipArchive::new(std::fs::File::open(export.path()).expect("open")).expect("zip");
    assert!(
        zip.file_names()
            .any(|n| n.is_ok_and(|n| n.ends_with("manifest.csv")))
    );

    let record = requests::record_items(&env.pool, erased.request_id)
        .await
        .expect("record");
    let erased_ids: BTreeSet<i64> = record
        .iter()
        .filter(|i| i.deleted)
        .map(|i| i.message_id)
        .collect();
    assert_eq!(erased_ids, BTreeSet::from([from_a, to_b]));
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM deletion_requests")
        .fetch_all(&env.pool)
        .await
        .expect("kinds");
    assert_eq!(kinds, vec!["erasure"]);
    assert!(
        env.audit_actions()
            .await
            .contains(&"mail.erase".to_string())
    );
}
