//! PostgreSQL for tests: `DATABASE_URL` when set, else one throwaway cluster per test binary
//! (started with the same code that runs the archiver's private cluster). Every test gets a
//! fresh database. On a shared `DATABASE_URL` server the databases are named after the test
//! process (`daygle_test_<pid>_…`) and dropped when it exits, and any left by a process that
//! died before it could clean up are dropped by the next test process: a developer's server
//! does not fill its disk with test databases.

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
            spawn_database_reaper(&url);
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

/// Prefix of every test database; the creating process's id follows it.
const TEST_DATABASE_PREFIX: &str = "daygle_test_";

/// When this process exits, drops the databases it created on the shared server.
fn spawn_database_reaper(url: &str) {
    if Command::new("psql").arg("--version").output().is_err() {
        return; // the sweep in `sweep_orphaned_databases` catches them on the next run
    }
    let pattern = format!("{TEST_DATABASE_PREFIX}{}\\_%", std::process::id());
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         psql -X -q -At -d \"$DAYGLE_REAPER_URL\" -c \"select datname from pg_database where datname like '{pattern}'\" \
         | while read -r db; do psql -X -q -d \"$DAYGLE_REAPER_URL\" -c \"drop database if exists \\\"$db\\\" with (force)\"; done",
        pid = std::process::id(),
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script])
        .env("DAYGLE_REAPER_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // Outlives this process by design: it is what cleans up after it.
    #[allow(clippy::zombie_processes)]
    let _reaper = cmd.spawn().expect("start database reaper");
}

/// Drops test databases whose creating process no longer runs (killed before its reaper ran,
/// or run where `psql` is missing). Runs once per test process.
async fn sweep_orphaned_databases(admin: &PgConnectOptions) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let Ok(pool) = sqlx::PgPool::connect_with(admin.clone()).await else {
                return;
            };
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'daygle\\_test\\_%'",
            )
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
            for name in names {
                let alive = name
                    .strip_prefix(TEST_DATABASE_PREFIX)
                    .and_then(|rest| rest.split('_').next())
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                if !alive {
                    let sql = format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        db::quote_ident(&name)
                    );
                    let _ = sqlx::raw_sql(&sql).execute(&pool).await;
                }
            }
            pool.close().await;
        })
        .await;
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let server = server();
    if !uses_throwaway_cluster() {
        sweep_orphaned_databases(&server.admin).await;
    }
    let name = format!(
        "{TEST_DATABASE_PREFIX}{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
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
