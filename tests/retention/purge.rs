use std::collections::BTreeSet;

use super::support::*;
use daygle::retention::{holds, preview};

#[tokio::test(flavor = "multi_thread")]
async fn the_preview_equals_the_purge_message_for_message_with_overlapping_policies() {
    let env = env().await;
    let (a, b) = (env.account("Alpha").await, env.account("Beta").await);
    // (account, folder, age in days, subject)
    let corpus: Vec<(i64, &str, i64, &str)> = vec![
        (a, "INBOX", 10, "fresh"),
        (a, "INBOX", 200, "half year"),
        (a, "INBOX", 3000, "ancient"),
        (a, "Legal/Cases", 200, "case file"),
        (a, "Legal/Cases", 3000, "old case file"),
        (b, "INBOX", 10, "fresh"),
        (b, "INBOX", 200, "half year"),
        (b, "INBOX", 3000, "ancient"),
        (b, "Legal/Cases", 200, "case file"),
        (b, "Legal/Cases", 400, "older case file"),
        (b, "Newsletters", 40, "weekly news"),
        (b, "Newsletters", 200, "weekly news"),
        (a, "INBOX", 3000, "contract signed"),
    ];
    let mut ids = Vec::new();
    for (i, (account, folder, age, subject)) in corpus.iter().enumerate() {
        let m = Msg {
            subject,
            from: "x@example.org",
            to: "y@example.org",
            age_days: *age,
        };
        ids.push(env.store(*account, folder, i as i64 + 1, &m).await);
    }
    // The same content in Beta (purged) and in Gamma (no policy): its blob frees nothing.
    let gamma = env.account("Gamma").await;
    let shared = raw(
        &Msg {
            subject: "shared newsletter",
            from: "x@example.org",
            to: "y@example.org",
            age_days: 3000,
        },
        "shared-1",
    );
    let beta_copy = env.store_raw(b, "INBOX", 100, vec![shared.clone()]).await[0];
    env.store_raw(gamma, "INBOX", 1, vec![shared]).await;
    // 7 years for Alpha; 90 days for Beta; 365 days for Legal/* everywhere (longest wins).
    env.policy("alpha seven years", 2555, &[a], None, None)
        .await;
    env.policy("beta 90 days", 90, &[b], None, None).await;
    env.policy("legal one year", 365, &[], Some("Legal/*"), None)
        .await;
    env.hold("contracts", &[a], Some("subject:contract")).await;

    let plan = env.plan().await;
    let expected: BTreeSet<i64> = [
        ids[2],  // Alpha ancient: past 7 years
        ids[4],  // Alpha old case file: past 7 years and past 1 year
        ids[6],  // Beta half year: past 90 days
        ids[7],  // Beta ancient
        ids[9],  // Beta older case file: 400 days > 365
        ids[11], // Beta newsletter 200 days (the 40-day one stays)
        beta_copy,
    ]
    .into_iter()
    .collect();
    let shown: BTreeSet<i64> = env.matching(&plan).await.into_iter().collect();
    assert_eq!(
        shown, expected,
        "Beta's 200-day case file is kept by the 1-year policy; the held contract stays"
    );

    let p = preview::preview(&env.pool, &plan, 50)
        .await
        .expect("preview");
    assert_eq!(p.messages() as usize, expected.len());
    assert_eq!(p.held(), 1, "the contract is past 7 years but held");
    let sample: BTreeSet<i64> = p.sample.iter().map(|s| s.id).collect();
    assert_eq!(sample, expected, "the sample lists the messages");
    assert!(p.freed_bytes() > 0 && p.freed_bytes() <= p.bytes());
    let beta_rows: i64 = p
        .rows
        .iter()
        .filter(|r| r.account_name == "Beta")
        .map(|r| r.messages)
        .sum();
    assert_eq!(beta_rows, 5);

    let before: BTreeSet<i64> = env.ids().await.into_iter().collect();
    let report = env.purge(&plan).await;
    let after: BTreeSet<i64> = env.ids().await.into_iter().collect();
    let gone: BTreeSet<i64> = before.difference(&after).copied().collect();
    assert_eq!(
        gone, expected,
        "the purge deleted exactly what the preview showed"
    );
    assert_eq!(report.messages as usize, expected.len());
    assert_eq!(
        report.collected.bytes,
        p.freed_bytes(),
        "the storage freed is what the preview said (the shared blob frees nothing)"
    );
    assert_eq!(report.collected.blobs as usize, expected.len() - 1);
    assert!(report.batches >= 1);
    assert_eq!(
        env.count("SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_sha256 = b.sha256)").await,
        0,
        "no blob is left without a message"
    );
    assert_eq!(
        env.count("SELECT coalesce(sum(messages), 0)::bigint FROM deletion_stats WHERE cause = 'retention'").await,
        expected.len() as i64
    );
    let actions = env.audit_actions().await;
    for a in [
        "retention.policy_create",
        "hold.place",
        "retention.purge_batch",
        "retention.purge",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
    // A second run finds nothing more.
    let again = env.plan().await;
    assert!(env.matching(&again).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_beats_retention_holds_later_mail_and_its_release_makes_it_purgeable() {
    let env = env().await;
    let (a, b) = (env.account("Held").await, env.account("Free").await);
    let old = |s| Msg {
        subject: s,
        from: "x@example.org",
        to: "y@example.org",
        age_days: 400,
    };
    let held_early = env.store(a, "INBOX", 1, &old("before the hold")).await;
    let free = env.store(b, "INBOX", 1, &old("not held")).await;
    env.policy("one year", 365, &[], None, None).await;
    let hold = env.hold("lawsuit", &[a], None).await;
    // Mail that arrives after the hold and matches its scope is held too.
    let held_late = env
        .store(a, "INBOX", 2, &old("arrived after the hold"))
        .await;

    let plan = env.plan().await;
    assert_eq!(env.matching(&plan).await, vec![free]);
    let held_now = holds::held_among(&env.pool, &[held_early, held_late, free])
        .await
        .expect("held");
    assert!(
        held_now.contains(&held_early)
            && held_now.contains(&held_late)
            && !held_now.contains(&free)
    );
    env.purge(&plan).await;
    let left = env.ids().await;
    assert_eq!(left, vec![held_early, held_late]);

    holds::release(&env.pool, &actor(), &Grants::All, hold, "")
        .await
        .expect_err("a reason is required");
    holds::release(&env.pool, &actor(), &Grants::All, hold, "case closed")
        .await
        .expect("release");
    let plan = env.plan().await;
    assert_eq!(env.matching(&plan).await, vec![held_early, held_late]);
    env.purge(&plan).await;
    assert!(env.ids().await.is_empty());
    assert!(
        env.audit_actions()
            .await
            .contains(&"hold.release".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_refuses_a_preview_made_with_other_policies_and_skips_mail_archived_after_it() {
    let env = env().await;
    let a = env.account("A").await;
    let old = |s| Msg {
        subject: s,
        from: "x@example.org",
        to: "y@example.org",
        age_days: 400,
    };
    let first = env.store(a, "INBOX", 1, &old("first")).await;
    let id = env.policy("one year", 365, &[], None, None).await;
    let plan = env.plan().await;
    let late = env
        .store(a, "INBOX", 2, &old("archived after the preview"))
        .await;
    env.purge(&plan).await;
    assert_eq!(
        env.ids().await,
        vec![late],
        "the purge deleted what the preview showed, no more"
    );

    let stale = env.plan().await;
    daygle::retention::policies::save(
        &env.pool,
        &actor(),
        &Grants::All,
        Some(id),
        &daygle::retention::policies::PolicyInput {
            name: "one year".into(),
            keep_days: 3650,
            age_basis: "message".into(),
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .expect("update policy");
    let now = daygle::retention::Plan::at(&env.pool, &Grants::All, stale.as_of, stale.max_id)
        .await
        .expect("plan");
    let refused = daygle::retention::purge::purge(
        &env.pool,
        &actor(),
        &now,
        Some(&stale.fingerprint()),
        10,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    assert!(refused.is_err(), "policies changed since the preview");
    assert_eq!(env.ids().await, vec![late]);
    let _ = first;
}
