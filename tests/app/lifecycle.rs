use std::time::Duration;

use crate::common::spawn_app;

#[tokio::test]
async fn graceful_shutdown_stops_accepting_and_returns_cleanly() {
    let app = spawn_app().await;
    let addr = app.addr;
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
    let refused =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "port still accepts connections after shutdown"
    );
}

#[tokio::test]
async fn a_request_in_flight_finishes_during_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /setup HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    // The server has the request; now ask it to stop before reading the answer.
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.shutdown.cancel();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Welcome to Daygle"));
    app.stop().await;
}

#[tokio::test]
async fn migrations_create_the_schema_and_rerun_as_a_no_op() {
    let app = spawn_app().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, daygle::db::MIGRATOR.iter().count());
    daygle::db::migrate(&app.pool)
        .await
        .expect("second run is a no-op");
    let status = daygle::db::migration_status(&app.pool).await.unwrap();
    assert!(status.is_current());
}

#[tokio::test]
async fn the_servers_connections_cancel_runaway_statements_and_idle_transactions() {
    let app = crate::common::spawn_app_with(|s| {
        s.database.statement_timeout_secs = 1;
        s.database.idle_in_transaction_timeout_secs = 7;
    })
    .await;
    let (statement, idle): (String, String) = sqlx::query_as(
        "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((statement.as_str(), idle.as_str()), ("1s", "7s"));
    let err = sqlx::query("SELECT pg_sleep(3)")
        .execute(&app.pool)
        .await
        .expect_err("cancelled after 1 s");
    assert!(err.to_string().contains("statement timeout"), "{err}");
}
