//! Deletion statistics are cut into months in the reader's time zone (#10), and the CSV says
//! which zone.

use super::support::*;
use daygle::retention::{Cause, remove, stats};

#[tokio::test(flavor = "multi_thread")]
async fn deletion_statistics_months_follow_the_readers_time_zone() {
    let env = env().await;
    let a = env.account("Sales").await;
    // 23:30 UTC on 31 October 2026 is already 1 November in Berlin and still October in
    // New York; 02:00 UTC on 1 November is still October in New York.
    for (at, messages) in [("2026-10-31 23:30Z", 3i64), ("2026-11-01 02:00Z", 5)] {
        sqlx::query(
            "INSERT INTO deletion_stats (account_id, bucket, cause, messages, bytes)
             VALUES ($1, $2::timestamptz, 'retention', $3, $3 * 100)",
        )
        .bind(a)
        .bind(at)
        .bind(messages)
        .execute(&env.pool)
        .await
        .expect("insert");
    }
    let months = |tz: &'static str| {
        let pool = env.pool.clone();
        async move {
            stats::by_account_month(&pool, &Grants::All, tz)
                .await
                .expect("stats")
                .into_iter()
                .map(|r| (r.month, r.messages))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        months("UTC").await,
        vec![("2026-11".into(), 5), ("2026-10".into(), 3)]
    );
    assert_eq!(months("Europe/Berlin").await, vec![("2026-11".into(), 8)]);
    assert_eq!(
        months("America/New_York").await,
        vec![("2026-10".into(), 8)]
    );

    // What a deletion counts now lands in this month, added up per month however many
    // quarter hours it spans.
    let mut conn = env.pool.acquire().await.expect("conn");
    remove::count(&mut conn, Cause::Manual, [(a, 10), (a, 20)].into_iter())
        .await
        .expect("count");
    remove::count(&mut conn, Cause::Manual, [(a, 30)].into_iter())
        .await
        .expect("count");
    let now = time::OffsetDateTime::now_utc();
    let this_month = format!("{}-{:02}", now.year(), u8::from(now.month()));
    let rows = stats::by_account_month(&env.pool, &Grants::All, "UTC")
        .await
        .expect("stats");
    let manual = rows
        .iter()
        .find(|r| r.cause == "manual")
        .expect("manual row");
    assert_eq!(
        (manual.month.as_str(), manual.messages, manual.bytes),
        (this_month.as_str(), 3, 60)
    );

    let csv = stats::to_csv(&rows, "UTC");
    assert!(
        csv.starts_with("account,month,cause,messages,bytes,time_zone\n"),
        "{csv}"
    );
    assert!(csv.contains("Sales,2026-10,retention,3,300,UTC\n"), "{csv}");
}
