//! A permission is a ceiling: someone who manages retention for one archive (a custom role with
//! `manage_retention` and no `all_accounts`) cannot reach any other archive's mail through a
//! policy, the preview, the purge or a hold.

use super::support::*;
use daygle::error::Error;
use daygle::retention::{Plan, holds, policies, preview, purge};

fn policy(name: &str, accounts: &[i64]) -> policies::PolicyInput {
    policies::PolicyInput {
        name: name.into(),
        account_ids: accounts.to_vec(),
        keep_days: 30,
        age_basis: "message".into(),
        enabled: true,
        ..Default::default()
    }
}

fn hold(name: &str, accounts: &[i64], query: Option<&str>) -> holds::HoldInput {
    holds::HoldInput {
        name: name.into(),
        reason: "case 7".into(),
        account_ids: accounts.to_vec(),
        query: query.map(str::to_string),
        ..Default::default()
    }
}

fn is_refused(e: &Error) -> bool {
    matches!(
        e,
        Error::Forbidden | Error::NotFound | Error::Invalid { .. }
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn one_archive_retention_manager_cannot_scope_policies_beyond_their_grants() {
    let env = env().await;
    let own = env.account("Own").await;
    let foreign = env.account("Foreign").await;
    let mine = Grants::Accounts(vec![own]);

    for input in [
        policy("everything", &[]),
        policy("theirs", &[foreign]),
        policy("both", &[own, foreign]),
    ] {
        let e = policies::save(&env.pool, &actor(), &mine, None, &input)
            .await
            .expect_err(&input.name);
        assert!(is_refused(&e), "{}: {e:?}", input.name);
    }
    assert_eq!(
        env.count("SELECT count(*) FROM retention_policies").await,
        0
    );

    let id = policies::save(&env.pool, &actor(), &mine, None, &policy("ours", &[own]))
        .await
        .expect("a policy on the granted archive");
    // Widening it afterwards is refused the same way.
    let e = policies::save(
        &env.pool,
        &actor(),
        &mine,
        Some(id),
        &policy("ours", &[own, foreign]),
    )
    .await
    .expect_err("widening");
    assert!(is_refused(&e), "{e:?}");
    assert_eq!(
        env.count("SELECT count(*) FROM retention_policy_accounts")
            .await,
        1
    );

    // An administrator's policies: the installation-wide one and one on the foreign archive
    // are out of the one-archive manager's reach; the foreign one is not even listed.
    let wide = policies::save(
        &env.pool,
        &actor(),
        &Grants::All,
        None,
        &policy("wide", &[]),
    )
    .await
    .expect("admin policy");
    let other = policies::save(
        &env.pool,
        &actor(),
        &Grants::All,
        None,
        &policy("other", &[foreign]),
    )
    .await
    .expect("admin policy");
    let listed: Vec<String> = policies::list(&env.pool, &mine)
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(listed, vec!["ours", "wide"]);
    for id in [wide, other] {
        let e = policies::remove(&env.pool, &actor(), &mine, id)
            .await
            .expect_err("remove out of reach");
        assert!(is_refused(&e), "{e:?}");
        let e = policies::save(
            &env.pool,
            &actor(),
            &mine,
            Some(id),
            &policy("mine now", &[own]),
        )
        .await
        .expect_err("edit out of reach");
        assert!(is_refused(&e), "{e:?}");
    }
    assert_eq!(
        env.count("SELECT count(*) FROM retention_policies").await,
        3
    );
    policies::remove(&env.pool, &actor(), &mine, id)
        .await
        .expect("remove own policy");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_archive_retention_manager_previews_and_purges_only_their_archive() {
    let env = env().await;
    let own = env.account("Own").await;
    let foreign = env.account("Foreign").await;
    let mine = Grants::Accounts(vec![own]);
    let old = |subject| Msg {
        subject,
        from: "a@example.org",
        to: "b@example.org",
        age_days: 400,
    };
    let own_old = env
        .store(own, "INBOX", 1, &old("own quarterly report"))
        .await;
    let foreign_old = env.store(foreign, "INBOX", 1, &old("secret merger")).await;
    policies::save(
        &env.pool,
        &actor(),
        &Grants::All,
        None,
        &policy("a month everywhere", &[]),
    )
    .await
    .expect("admin policy");

    let plan = Plan::current(&env.pool, &mine).await.expect("plan");
    let p = preview::preview(&env.pool, &plan, 20)
        .await
        .expect("preview");
    assert_eq!(p.messages(), 1);
    assert!(p.rows.iter().all(|r| r.account_id == own), "{:?}", p.rows);
    let subjects: Vec<_> = p
        .sample
        .iter()
        .map(|s| s.subject.clone().unwrap_or_default())
        .collect();
    assert_eq!(subjects, vec!["own quarterly report"]);
    assert_eq!(env.matching(&plan).await, vec![own_old]);

    let report = purge::purge(
        &env.pool,
        &actor(),
        &plan,
        Some(&plan.fingerprint()),
        10,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("purge");
    assert_eq!(report.messages, 1);
    assert_eq!(
        env.ids().await,
        vec![foreign_old],
        "the foreign archive's mail stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_archive_retention_manager_cannot_place_or_release_holds_beyond_their_grants() {
    let env = env().await;
    let own = env.account("Own").await;
    let foreign = env.account("Foreign").await;
    let mine = Grants::Accounts(vec![own]);
    let m = Msg {
        subject: "contract",
        from: "a@example.org",
        to: "b@example.org",
        age_days: 3,
    };
    env.store(own, "INBOX", 1, &m).await;
    let foreign_msg = env.store(foreign, "INBOX", 1, &m).await;

    for input in [
        hold("all mail", &[], None),
        hold("query only", &[], Some("subject:contract")),
        hold("theirs", &[foreign], None),
        hold("both", &[own, foreign], Some("subject:contract")),
    ] {
        let e = holds::place(&env.pool, &actor(), &mine, &input)
            .await
            .expect_err(&input.name);
        assert!(is_refused(&e), "{}: {e:?}", input.name);
    }
    assert_eq!(env.count("SELECT count(*) FROM legal_holds").await, 0);
    let ours = holds::place(
        &env.pool,
        &actor(),
        &mine,
        &hold("ours", &[own], Some("subject:contract")),
    )
    .await
    .expect("hold on the granted archive");
    let mut conn = env.pool.acquire().await.unwrap();
    assert_eq!(
        holds::count_held_by(&mut conn, &mine, ours).await.unwrap(),
        1
    );
    drop(conn);

    let wide = holds::place(&env.pool, &actor(), &Grants::All, &hold("wide", &[], None))
        .await
        .expect("admin hold");
    let theirs = holds::place(
        &env.pool,
        &actor(),
        &Grants::All,
        &hold("theirs", &[foreign], None),
    )
    .await
    .expect("admin hold");
    let (picked, _) = holds::hold_messages(
        &env.pool,
        &actor(),
        &Grants::All,
        "picked",
        "case 8",
        &[foreign_msg],
    )
    .await
    .expect("admin picks");
    let mut conn = env.pool.acquire().await.unwrap();
    let listed: Vec<String> = holds::list(&mut *conn, &mine)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&"wide".to_string()) && listed.contains(&"ours".to_string()));
    assert_eq!(
        holds::count_held_by(&mut conn, &mine, wide).await.unwrap(),
        1
    );
    drop(conn);
    for id in [wide, theirs, picked] {
        let e = holds::release(&env.pool, &actor(), &mine, id, "done")
            .await
            .expect_err("release out of reach");
        assert!(is_refused(&e), "{e:?}");
    }
    assert_eq!(
        env.count("SELECT count(*) FROM legal_holds WHERE released_at IS NULL")
            .await,
        4
    );
    holds::release(&env.pool, &actor(), &mine, ours, "settled")
        .await
        .expect("release own hold");
}
