//! PostgreSQL for tests: `DATABASE_URL` when set, else one throwaway cluster per test binary
//! (started with the same code that runs the archiver's private cluster). Every test gets a
//! fresh database.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use daygle::db::{self, Cluster};
use sqlx::postgres::PgConnectOptions;

struct Server {
    /// `postgres://…/` without a database name.
    base_url: String,
    admin: PgConnectOptions,
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let admin: PgConnectOptions = url.parse().expect("DATABASE_URL is a PostgreSQL URL");
            let base = url
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .expect("URL has a path");
            Server {
                base_url: base,
                admin,
            }
        }
        _ => throwaway_cluster(),
    })
}

/// Starts a cluster in a temp dir and a watchdog that stops it and removes the dir when this
/// test process exits, however it exits.
fn throwaway_cluster() -> Server {
    let dir = tempfile::Builder::new()
        .prefix("daygle-test-pg-")
        .tempdir()
        .expect("temp dir")
        .keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root = dir.join("pg");
    let cluster = Cluster::new(&root, "", "postgres").expect("PostgreSQL binaries for tests");
    cluster.init().expect("initdb");
    // Durability is pointless for throwaway data; these make tests several times faster.
    let conf = cluster.data_dir().join("postgresql.auto.conf");
    std::fs::write(
        &conf,
        "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n",
    )
    .expect("write test settings");
    cluster.start().expect("start test PostgreSQL");
    spawn_watchdog(&dir, &cluster.data_dir());
    let socket = cluster.root().display().to_string();
    Server {
        base_url: format!("postgres://{}@localhost", db::cluster::SUPERUSER) + "/?host=" + &socket,
        admin: cluster.connect_options("postgres"),
    }
}

fn spawn_watchdog(dir: &std::path::Path, data: &std::path::Path) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         kill -INT $(head -1 '{data}/postmaster.pid') 2>/dev/null; sleep 3; rm -rf '{dir}'",
        pid = std::process::id(),
        data = data.display(),
        dir = dir.display(),
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // Outlives this process by design: it is what cleans up after it.
    #[allow(clippy::zombie_processes)]
    let _watchdog = cmd.spawn().expect("start watchdog");
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let server = server();
    let name = format!("daygle_test_{}", uuid::Uuid::new_v4().simple());
    db::create_database_if_missing(&server.admin, &name)
        .await
        .expect("create test database");
    database_url(server, &name)
}

/// A pool on the database at `url`, with every migration applied.
pub async fn migrated_pool(url: &str) -> sqlx::PgPool {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("connect to the test database");
    db::migrate(&pool).await.expect("migrations apply");
    pool
}

/// A pool on a fresh database with every migration applied.
pub async fn migrated_database() -> sqlx::PgPool {
    migrated_pool(&fresh_database().await).await
}

fn database_url(server: &Server, name: &str) -> String {
    match server.base_url.split_once("/?") {
        Some((base, query)) => format!("{base}/{name}?{query}"),
        None => format!("{}/{name}", server.base_url),
    }
}

/// Connection options for the server's maintenance database (to create or inspect databases).
pub fn admin_options() -> PgConnectOptions {
    server().admin.clone()
}

/// True when tests run on their own cluster rather than `DATABASE_URL`.
pub fn uses_throwaway_cluster() -> bool {
    std::env::var("DATABASE_URL")
        .map(|u| u.trim().is_empty())
        .unwrap_or(true)
}
