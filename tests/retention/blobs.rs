use super::support::*;
use daygle::archive::blobs;

/// Each round archives content X in the purged account, then purges it while eight batches
/// holding the same X are stored in another account at the same moment. The purge collects
/// X's blob when it sees no message for it; the ingests must never fail or end up without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_collection_never_loses_a_blob_to_a_concurrent_ingest_of_the_same_content() {
    let env = env().await;
    let (purged, ingesting) = (env.account("Purged").await, env.account("Ingesting").await);
    env.policy("purge old", 30, &[purged], None, None).await;
    let rounds = 25;
    let writers = 8;
    for round in 0..rounds {
        let same = raw(
            &Msg {
                subject: "shared",
                from: "x@example.org",
                to: "y@example.org",
                age_days: 400,
            },
            &format!("same-{round}"),
        );
        env.store_raw(purged, "INBOX", round + 1, vec![same.clone()])
            .await;
        let plan = env.plan().await;
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let pool = env.pool.clone();
            let batch = vec![
                same.clone(),
                raw(
                    &Msg {
                        subject: "other",
                        from: "x@example.org",
                        to: "y@example.org",
                        age_days: 1,
                    },
                    &format!("other-{round}-{w}"),
                ),
            ];
            tasks.spawn(async move {
                daygle::ingest::pipeline::store(
                    &pool,
                    3,
                    daygle::ingest::pipeline::Batch {
                        account_id: ingesting,
                        folder: format!("F{w}"),
                        uidvalidity: Some(1),
                        messages: batch
                            .into_iter()
                            .enumerate()
                            .map(|(i, raw)| daygle::ingest::pipeline::Incoming {
                                uid: Some(round * 2 + i as i64 + 1),
                                raw,
                                internal_date: None,
                                flags: Vec::new(),
                            })
                            .collect(),
                        ledger: Vec::new(),
                        advance_to: None,
                    },
                )
                .await
                .map(|s| s.inserted)
            });
        }
        let report = env.purge(&plan).await;
        assert_eq!(
            report.messages, 1,
            "round {round}: the purged account's copy goes"
        );
        while let Some(done) = tasks.join_next().await {
            let inserted = done
                .expect("task")
                .unwrap_or_else(|e| panic!("round {round}: ingest failed: {e}"));
            assert_eq!(inserted, 2);
        }
        let sha = blobs::sha256(&same);
        let mut conn = env.pool.acquire().await.expect("conn");
        let stored = blobs::read_verified(&mut conn, &sha).await.expect("read");
        assert_eq!(
            stored.as_deref(),
            Some(same.as_slice()),
            "round {round}: the shared blob is intact"
        );
    }
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM messages WHERE account_id = {ingesting}"
        ))
        .await,
        rounds * writers * 2
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM messages WHERE account_id = {purged}"
        ))
        .await,
        0
    );
}

/// Two messages (different headers: two blobs) carry the same attachment, which is stored
/// once. Purging one keeps the other byte for byte and the attachment with it; purging the
/// other frees the attachment too.
#[tokio::test(flavor = "multi_thread")]
async fn deleting_one_of_two_messages_that_share_an_attachment_keeps_the_other_intact() {
    let env = env().await;
    let (first, second) = (env.account("First").await, env.account("Second").await);
    let report: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let with = |subject: &str, id: &str| {
        crate::common::mail::build(&crate::common::mail::Mail {
            subject,
            date: days_ago(400),
            message_id: id,
            attachment: Some(("report.pdf", &report)),
            ..Default::default()
        })
    };
    let (a, b) = (with("first copy", "a@test"), with("second copy", "b@test"));
    env.store_raw(first, "INBOX", 1, vec![a.clone()]).await;
    env.store_raw(second, "INBOX", 1, vec![b.clone()]).await;
    assert_eq!(env.count("SELECT count(*) FROM blobs").await, 2);
    assert_eq!(
        env.count("SELECT count(*) FROM parts").await,
        1,
        "stored once"
    );
    assert_eq!(env.count("SELECT count(*) FROM blob_parts").await, 2);

    env.policy("purge first", 30, &[first], None, None).await;
    let plan = env.plan().await;
    assert_eq!(env.purge(&plan).await.messages, 1);
    assert_eq!(
        env.count("SELECT count(*) FROM parts").await,
        1,
        "still shared"
    );
    let mut conn = env.pool.acquire().await.expect("conn");
    let kept = blobs::read_verified(&mut conn, &blobs::sha256(&b))
        .await
        .expect("read");
    assert_eq!(kept.as_deref(), Some(b.as_slice()), "the other is intact");
    drop(conn);

    env.policy("purge second", 30, &[second], None, None).await;
    let plan = env.plan().await;
    assert_eq!(env.purge(&plan).await.messages, 1);
    assert_eq!(env.count("SELECT count(*) FROM blobs").await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM parts").await,
        0,
        "freed with its last message"
    );
}
