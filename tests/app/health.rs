use crate::common::spawn_app;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn readyz_reports_database_and_current_migrations() {
    let app = spawn_app().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(body["migrations"]["ok"], true);
}

#[tokio::test]
async fn readyz_is_unavailable_when_a_migration_is_missing() {
    let app = spawn_app().await;
    // Simulate a database one migration behind this binary.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["migrations"]["ok"], false);
    assert!(
        body["migrations"]["detail"]
            .as_str()
            .unwrap()
            .contains("daygle migrate")
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_show_pool_figures() {
    let app = spawn_app().await;
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no healthz counter in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    // Other tests in this binary share the process-wide recorder, so at least our three.
    assert!(count >= 3.0, "{line}");
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("db_pool_max_connections"));
}

#[tokio::test]
async fn probes_show_details_and_metrics_only_to_the_operator() {
    let app = crate::common::spawn_app_with(|s| {
        // Requests arrive through a proxy on loopback; the client is whoever it forwards.
        s.server.trusted_proxies = "127.0.0.1".into();
        s.server.metrics_token = daygle::config::Secret::new("probe-token-0123456789");
    })
    .await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let get = |path: &str, forwarded: &str, token: Option<&str>| {
        let mut req = app
            .client
            .get(app.url(path))
            .header("x-forwarded-for", forwarded);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send()
    };
    // An outsider learns only the verdicts.
    let res = get("/readyz", "203.0.113.5", None).await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["migrations"]["ok"], false);
    assert_eq!(body["migrations"]["detail"], "failing");
    assert_eq!(body["database"]["detail"], "ok");
    let res = get("/metrics", "203.0.113.5", None).await.unwrap();
    assert_eq!(res.status(), 401);
    let res = get("/metrics", "203.0.113.5", Some("a guess"))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // The operator: with the token, or from loopback.
    let res = get("/readyz", "203.0.113.5", Some("probe-token-0123456789"))
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["migrations"]["detail"]
            .as_str()
            .unwrap()
            .contains("daygle migrate")
    );
    let res = get("/metrics", "203.0.113.5", Some("probe-token-0123456789"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/metrics").await.status(), 200, "loopback");
}
