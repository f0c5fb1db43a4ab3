//! The quarantine and the rejection record, against real PostgreSQL (and clamd for release).

use daygle::error::Error;
use daygle::scan::quarantine::{self, Filter, IfStillInfected};
use daygle::scan::{MessageFacts, Scanner, Source, Verdict, rejections};
use daygle::secrets::SealingKeys;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use super::samples;
use crate::common::clamd::Clamd;
use crate::common::pg;

fn keys() -> SealingKeys {
    SealingKeys::new(&[42u8; 32])
}

async fn account(pool: &PgPool, name: &str) -> i64 {
    sqlx::query_scalar("INSERT INTO accounts (name, kind) VALUES ($1, 'imap') RETURNING id")
        .bind(name)
        .fetch_one(pool)
        .await
        .expect("insert account")
}

/// Quarantines `raw` as if found at `uid` in alice's INBOX.
async fn hold(pool: &PgPool, account_id: i64, uid: i64, raw: &[u8], virus: &str) -> uuid::Uuid {
    let facts = MessageFacts::from_raw(raw).at(account_id, "INBOX", 1, uid);
    let mut conn = pool.acquire().await.unwrap();
    quarantine::put(&mut conn, &keys(), &facts, raw, virus, Source::Ingest, 30)
        .await
        .expect("quarantine")
        .expect("a new entry")
}

#[tokio::test]
async fn a_quarantined_message_is_stored_sealed_and_opens_to_the_original_bytes() {
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let raw = samples::eicar_base64_attachment();
    let id = hold(&pool, alice, 7, &raw, "Eicar-Test-Signature").await;

    let stored: Vec<u8> = sqlx::query_scalar("SELECT sealed_raw FROM quarantine WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        !stored.windows(16).any(|w| raw.windows(16).any(|r| r == w)),
        "no 16-byte run of the message may appear in the stored bytes"
    );
    let mut conn = pool.acquire().await.unwrap();
    let entry = quarantine::get(&mut *conn, id).await.unwrap();
    assert_eq!(entry.subject.as_deref(), Some("Invoice attached"));
    assert_eq!(entry.from_addr.as_deref(), Some("alice@example.org"));
    assert_eq!(entry.virus_name, "Eicar-Test-Signature");
    assert_eq!((entry.account_id, entry.uid), (Some(alice), Some(7)));
    let expires = entry.expires_at.expect("an expiry date");
    assert!((expires - entry.created_at - Duration::days(30)).abs() < Duration::minutes(1));
    let opened = quarantine::open_raw(&mut *conn, &keys(), id).await.unwrap();
    assert_eq!(opened.as_slice(), raw.as_slice());
    assert!(
        quarantine::open_raw(&mut *conn, &SealingKeys::new(&[1u8; 32]), id)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sealed_bytes_moved_onto_another_entry_do_not_open() {
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let a = hold(&pool, alice, 1, &samples::eicar_in_plain_body(), "V").await;
    let b = hold(&pool, alice, 2, &samples::eicar_in_plain_body(), "V").await;
    sqlx::query(
        "UPDATE quarantine SET (wrapped_key, sealed_raw) = \
         (SELECT wrapped_key, sealed_raw FROM quarantine WHERE id = $1) WHERE id = $2",
    )
    .bind(a)
    .bind(b)
    .execute(&pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert!(quarantine::open_raw(&mut *conn, &keys(), a).await.is_ok());
    assert!(quarantine::open_raw(&mut *conn, &keys(), b).await.is_err());
}

#[tokio::test]
async fn quarantining_the_same_server_message_twice_keeps_one_entry() {
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let raw = samples::eicar_in_plain_body();
    hold(&pool, alice, 9, &raw, "V").await;
    let facts = MessageFacts::from_raw(&raw).at(alice, "INBOX", 1, 9);
    let mut conn = pool.acquire().await.unwrap();
    let again = quarantine::put(&mut conn, &keys(), &facts, &raw, "V", Source::Ingest, 30)
        .await
        .unwrap();
    assert_eq!(again, None);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM quarantine")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn the_list_filters_by_account_virus_and_text_and_hides_released_entries() {
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let bob = account(&pool, "bob").await;
    hold(
        &pool,
        alice,
        1,
        &samples::eicar_base64_attachment(),
        "Eicar-Test-Signature",
    )
    .await;
    hold(
        &pool,
        alice,
        2,
        &samples::eicar_in_plain_body(),
        "Win.Trojan.Agent",
    )
    .await;
    let bobs = hold(
        &pool,
        bob,
        1,
        &samples::eicar_quoted_printable_part(),
        "Eicar-Test-Signature",
    )
    .await;
    let mut conn = pool.acquire().await.unwrap();
    let ids = |entries: Vec<quarantine::Entry>| {
        entries
            .into_iter()
            .map(|e| e.uid.unwrap())
            .collect::<Vec<_>>()
    };

    let all = quarantine::list(&mut *conn, &Filter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let alices = quarantine::list(
        &mut *conn,
        &Filter {
            account_id: Some(alice),
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(alices), vec![2, 1], "newest first");
    let trojans = quarantine::list(
        &mut *conn,
        &Filter {
            virus: Some("trojan".into()),
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(trojans.len(), 1);
    assert_eq!(trojans[0].virus_name, "Win.Trojan.Agent");
    let quoted = quarantine::list(
        &mut *conn,
        &Filter {
            text: Some("quot".into()),
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(quoted.len(), 1);
    assert_eq!(quoted[0].id, bobs);
    let none = quarantine::list(
        &mut *conn,
        &Filter {
            text: Some("%".into()),
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert!(none.is_empty(), "% is matched literally");

    sqlx::query("UPDATE quarantine SET released_at = now(), released_by = 'admin' WHERE id = $1")
        .bind(bobs)
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        quarantine::list(&mut *conn, &Filter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    let with_released = Filter {
        include_released: true,
        ..Filter::default()
    };
    assert_eq!(
        quarantine::list(&mut *conn, &with_released)
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_false_positive_is_released_after_a_clean_rescan_and_only_once() {
    let clamd = Clamd::spawn();
    let scanner = Scanner::new(&clamd.settings());
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let raw = samples::clean();
    let id = hold(&pool, alice, 3, &raw, "Heuristic.Overeager").await;
    let mut conn = pool.acquire().await.unwrap();

    let err = quarantine::release(
        &mut conn,
        &keys(),
        &scanner,
        id,
        "admin",
        "  ",
        IfStillInfected::Refuse,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "reason"),
        "{err}"
    );

    let released = quarantine::release(
        &mut conn,
        &keys(),
        &scanner,
        id,
        "admin",
        "sender confirmed",
        IfStillInfected::Refuse,
    )
    .await
    .expect("released");
    assert_eq!(released.raw.as_slice(), raw.as_slice());
    assert_eq!(released.verdict, Verdict::Clean);
    assert_eq!(released.entry.released_by.as_deref(), Some("admin"));
    assert_eq!(
        released.entry.release_reason.as_deref(),
        Some("sender confirmed")
    );
    assert!(released.entry.released_at.is_some());

    let again = quarantine::release(
        &mut conn,
        &keys(),
        &scanner,
        id,
        "admin",
        "again",
        IfStillInfected::Refuse,
    )
    .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn a_message_that_is_still_infected_is_released_only_when_the_administrator_insists() {
    let clamd = Clamd::spawn();
    let scanner = Scanner::new(&clamd.settings());
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let id = hold(
        &pool,
        alice,
        4,
        &samples::eicar_base64_attachment(),
        "Eicar-Test-Signature",
    )
    .await;
    let mut conn = pool.acquire().await.unwrap();

    let refused = quarantine::release(
        &mut conn,
        &keys(),
        &scanner,
        id,
        "admin",
        "looks fine",
        IfStillInfected::Refuse,
    )
    .await;
    match refused {
        Err(Error::Conflict(msg)) => {
            assert!(msg.contains("still finds Eicar-Test-Signature"), "{msg}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        quarantine::get(&mut *conn, id)
            .await
            .unwrap()
            .released_at
            .is_none()
    );

    let forced = quarantine::release(
        &mut conn,
        &keys(),
        &scanner,
        id,
        "admin",
        "test file",
        IfStillInfected::ReleaseAnyway,
    )
    .await
    .expect("released anyway");
    assert_eq!(forced.verdict.label(), "infected");
}

#[tokio::test]
async fn nothing_is_released_while_the_scanner_is_down() {
    let mut clamd = Clamd::spawn();
    let scanner = Scanner::new(&clamd.settings());
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let id = hold(&pool, alice, 5, &samples::clean(), "Heuristic.Overeager").await;
    clamd.stop();
    let mut conn = pool.acquire().await.unwrap();
    let result = quarantine::release(
        &mut conn,
        &keys(),
        &scanner,
        id,
        "admin",
        "fine",
        IfStillInfected::ReleaseAnyway,
    )
    .await;
    match result {
        Err(Error::Conflict(msg)) => assert!(msg.contains("could not be re-scanned"), "{msg}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        quarantine::get(&mut *conn, id)
            .await
            .unwrap()
            .released_at
            .is_none()
    );
}

#[tokio::test]
async fn a_deleted_entry_is_gone_for_good() {
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let id = hold(&pool, alice, 6, &samples::eicar_in_plain_body(), "V").await;
    let mut conn = pool.acquire().await.unwrap();
    quarantine::delete(&mut conn, id).await.unwrap();
    assert!(matches!(
        quarantine::get(&mut *conn, id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        quarantine::open_raw(&mut *conn, &keys(), id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        quarantine::delete(&mut conn, id).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn entries_past_their_expiry_are_deleted_and_the_others_kept() {
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let old = hold(&pool, alice, 1, &samples::eicar_in_plain_body(), "V").await;
    let young = hold(&pool, alice, 2, &samples::eicar_in_plain_body(), "V").await;
    let raw = samples::eicar_in_plain_body();
    let facts = MessageFacts::from_raw(&raw).at(alice, "INBOX", 1, 3);
    let mut conn = pool.acquire().await.unwrap();
    let forever = quarantine::put(&mut conn, &keys(), &facts, &raw, "V", Source::Ingest, 0)
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE quarantine SET expires_at = now() - interval '1 day' WHERE id = $1")
        .bind(old)
        .execute(&mut *conn)
        .await
        .unwrap();

    let deleted = quarantine::expire(&mut conn, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(matches!(
        quarantine::get(&mut *conn, old).await,
        Err(Error::NotFound)
    ));
    assert!(quarantine::get(&mut *conn, young).await.is_ok());
    assert!(
        quarantine::get(&mut *conn, forever)
            .await
            .unwrap()
            .expires_at
            .is_none()
    );
    let later = OffsetDateTime::now_utc() + Duration::days(31);
    assert_eq!(
        quarantine::expire(&mut conn, later).await.unwrap(),
        1,
        "only the one with an expiry"
    );
}

#[tokio::test]
async fn a_rejected_message_leaves_a_record_of_its_facts_once_and_never_its_bytes() {
    let pool = pg::migrated_database().await;
    let alice = account(&pool, "alice").await;
    let raw = samples::eicar_base64_attachment();
    let facts = MessageFacts::from_raw(&raw).at(alice, "INBOX", 1, 11);
    let mut conn = pool.acquire().await.unwrap();
    assert!(
        rejections::record(&mut conn, &facts, "Eicar-Test-Signature", Source::Ingest)
            .await
            .unwrap()
    );
    assert!(
        !rejections::record(&mut conn, &facts, "Eicar-Test-Signature", Source::Ingest)
            .await
            .unwrap()
    );
    let recent = rejections::recent(&mut conn, 10).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].sha256, facts.sha256);
    assert_eq!(recent[0].subject.as_deref(), Some("Invoice attached"));
    assert_eq!(recent[0].virus_name, "Eicar-Test-Signature");
    assert_eq!(recent[0].source, "ingest");
}
