//! Liveness and readiness probes.

use super::routes::Area;
use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;

use super::client;
use super::state::AppState;
use crate::db;

/// The routes of `/healthz`, `/readyz` and `/metrics`.
pub fn area() -> Area {
    Area::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", super::metrics::render)
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// Longest wait for the database's answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    database: Check,
    migrations: Check,
    /// Present when scanning is on. Reported, not required: without clamd the UI still
    /// serves and ingest holds mail until it is back.
    #[serde(skip_serializing_if = "Option::is_none")]
    clamav: Option<ClamavCheck>,
}

#[derive(Serialize)]
struct ClamavCheck {
    reachable: bool,
    address: String,
    /// clamd's VERSION line when reachable, else why not.
    detail: String,
}

#[derive(Serialize)]
struct Check {
    ok: bool,
    detail: String,
}

/// Ready when the database answers and its schema matches this binary's migrations. The
/// details (error text, clamd's address and version) are for the operator only (loopback, or
/// the metrics token); everyone else sees the verdicts.
async fn readyz(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let operator = client::is_operator(
        peer.ip(),
        &headers,
        &state.trusted_proxies,
        state.settings.server.metrics_token.expose(),
    );
    let health = state.db_health.status();
    let probe = tokio::time::timeout(
        PROBE_TIMEOUT,
        sqlx::query_scalar!("SELECT 1 AS one").fetch_one(&state.pool),
    );
    let database = match health.down_since {
        // The supervisor knows: answer at once rather than wait for the pool.
        Some(since) => Check {
            ok: false,
            detail: format!("down since {since}: {}", health.detail),
        },
        None => match probe.await {
            Ok(Ok(_)) => Check {
                ok: true,
                detail: "reachable".into(),
            },
            Ok(Err(e)) => Check {
                ok: false,
                detail: format!("unreachable: {e}"),
            },
            Err(_) => Check {
                ok: false,
                detail: format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
            },
        },
    };
    let migrations = if database.ok {
        match db::migration_status(&state.pool).await {
            Ok(s) if s.is_current() => Check {
                ok: true,
                detail: format!("{} of {} applied", s.applied, s.expected),
            },
            Ok(s) => Check {
                ok: false,
                detail: format!(
                    "pending {:?}, unknown {:?}; run `daygle migrate`",
                    s.pending, s.unknown
                ),
            },
            Err(e) => Check {
                ok: false,
                detail: e.to_string(),
            },
        }
    } else {
        Check {
            ok: false,
            detail: "database unreachable".into(),
        }
    };
    let clamav = match &state.scanner {
        Some(scanner) => Some(match scanner.version().await {
            Ok(version) => ClamavCheck {
                reachable: true,
                address: scanner.transport().to_string(),
                detail: version,
            },
            Err(e) => ClamavCheck {
                reachable: false,
                address: e.address.clone(),
                detail: e.reason,
            },
        }),
        None => None,
    };
    let ready = database.ok && migrations.ok;
    let (mut database, mut migrations, mut clamav) = (database, migrations, clamav);
    if !operator {
        for check in [&mut database, &mut migrations] {
            check.detail = if check.ok { "ok" } else { "failing" }.into();
        }
        if let Some(c) = clamav.as_mut() {
            c.address = String::new();
            c.detail = if c.reachable { "ok" } else { "unreachable" }.into();
        }
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Readiness {
            status: if ready { "ready" } else { "not ready" },
            database,
            migrations,
            clamav,
        }),
    )
}
