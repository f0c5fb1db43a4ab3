//! What people and probes see of a database outage and of the processes sharing the database
//! (issue #16). The outage itself (SIGKILL of a real cluster) is tested in the ingest suite;
//! here the app is told the database is down, as its supervisor would.

use crate::common::{TestApp, spawn_app_with};

async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
    })
    .await
}

#[tokio::test]
async fn while_the_database_is_down_pages_and_readyz_answer_503_at_once_and_recover() {
    let app = app().await;
    let admin = app.set_up_admin().await;
    assert_eq!(app.page(&admin, "/").await.0, 200);

    app.db_health
        .mark_down("the private PostgreSQL server (pid 4711) exited");
    app.db_health.attempt("restarting it (attempt 1)");
    let res = admin.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    let body = res.text().await.unwrap();
    assert!(
        body.contains("The database has been unavailable since"),
        "{body}"
    );
    assert!(
        !body.contains("4711"),
        "the public page names no cause: {body}"
    );
    let (status, body) = app.page(&admin, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("exited; restarting it (attempt 1)"), "{body}");
    assert_eq!(
        app.page(&admin, "/healthz").await.0,
        200,
        "the process lives"
    );

    let outage = app.db_health.mark_up().expect("an outage ended");
    assert_eq!(
        outage.detail,
        "the private PostgreSQL server (pid 4711) exited"
    );
    assert_eq!(app.page(&admin, "/").await.0, 200);
    assert_eq!(app.page(&admin, "/readyz").await.0, 200);
}

#[tokio::test]
async fn the_dashboard_lists_recent_outages_and_workers_shows_the_processes() {
    let app = app().await;
    let admin = app.set_up_admin().await;
    sqlx::query(
        "INSERT INTO database_outages (process, started_at, ended_at, detail)
         VALUES ('db-host:4242', now() - interval '10 minutes', now() - interval '10 minutes' + interval '5.2 seconds',
                 'the private PostgreSQL server (pid 99) exited'),
                ('old-host:1', now() - interval '3 days', now() - interval '3 days', 'long ago')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (status, html) = app.page(&admin, "/").await;
    assert_eq!(status, 200);
    let line = html
        .split("db-outage")
        .nth(1)
        .expect("an outage line")
        .split("</li>")
        .next()
        .unwrap();
    assert!(line.contains("for 5.2 s"), "{line}");
    assert!(line.contains("(pid 99) exited"), "{line}");
    assert!(line.contains("db-host:4242"), "{line}");
    assert!(!html.contains("long ago"), "only the last day");

    // This process registered itself and, as the only worker, became the leader.
    let me: (String, i32) = sqlx::query_as("SELECT hostname, pid FROM processes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut html = String::new();
    for _ in 0..50 {
        html = app.page(&admin, "/workers").await.1;
        if html.contains("<span class=\"status ok\">leader</span>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let row = html
        .split("class=\"process\"")
        .nth(1)
        .expect("a process row")
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains(&format!("{}:{}", me.0, me.1)), "{row}");
    assert!(row.contains("<td>all</td>"), "{row}");
    assert!(row.contains("alive"), "{row}");
    assert!(row.contains("leader"), "{row}");
}
