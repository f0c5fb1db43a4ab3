//! The database: connection pool, embedded migrations, and the private cluster.

pub mod cluster;
pub mod health;
pub mod supervisor;

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::Settings;
use crate::error::{Error, Result};
pub use cluster::{Cluster, ClusterError, Lease, Tenure};
pub use health::DbHealth;
pub use supervisor::{Supervisor, Watch};

/// Migrations are compiled into the binary, so a deployment can never run a mismatched set.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Oldest PostgreSQL we test against and whose features the schema relies on.
const MIN_SERVER_VERSION: i32 = 130000;
pub const EMBEDDED_DATABASE: &str = "daygle";

/// An open database, and the private cluster behind it when there is one. [`Database::close`]
/// closes it in order; a `Database` dropped without it (an early `?`, a panic) still stops a
/// private cluster this process owns, through the lease's `Drop`.
pub struct Database {
    pub pool: PgPool,
    lease: Option<Lease>,
    /// How to open one more connection, for the [`Watch`] that looks at the server.
    options: PgConnectOptions,
}

impl Database {
    /// Connects to `database.url`, or starts (or joins) the private cluster under the data
    /// directory when no URL is configured.
    pub async fn open(settings: &Settings, tenure: Tenure) -> Result<Self> {
        let (options, lease) = if settings.uses_embedded_database() {
            let (options, lease) = start_embedded(settings, tenure).await?;
            (options, Some(lease))
        } else {
            let options =
                PgConnectOptions::from_str(settings.database.url.expose()).map_err(|e| {
                    Error::Invalid {
                        field: "database.url".into(),
                        reason: e.to_string(),
                    }
                })?;
            (options, None)
        };
        let mut options = options
            .application_name("daygle")
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
        if tenure == Tenure::Server {
            let db = &settings.database;
            options = options.options([
                (
                    "statement_timeout",
                    format!("{}s", db.statement_timeout_secs),
                ),
                (
                    "idle_in_transaction_session_timeout",
                    format!("{}s", db.idle_in_transaction_timeout_secs),
                ),
            ]);
        }
        if tenure == Tenure::Command {
            // One attempt, so a command says at once that the server is not there instead of
            // retrying until the pool's timeout.
            let conn = options
                .connect()
                .await
                .map_err(|e| Error::Internal(unreachable_sentence(settings, &options, &e)))?;
            let _ = conn.close().await;
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.database.max_connections)
            .acquire_timeout(Duration::from_secs(settings.database.acquire_timeout_secs))
            .connect_with(options.clone())
            .await
            .map_err(|e| Error::context("connect to PostgreSQL", e))?;
        check_server_version(&pool).await?;
        Ok(Self {
            pool,
            lease,
            options,
        })
    }

    /// Closes after the server went away under us: the pool is dropped without waiting for
    /// its connections' goodbyes (the server cannot hear them), then a private cluster this
    /// process owns is released as usual.
    pub async fn abandon(self) -> Result<()> {
        let _ = tokio::time::timeout(Duration::from_millis(500), self.pool.close()).await;
        if let Some(lease) = self.lease {
            tokio::task::spawn_blocking(move || lease.release())
                .await
                .map_err(|e| Error::context("run the cluster stop task", e))??;
        }
        Ok(())
    }

    /// The private cluster behind this database, when there is one.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.lease.as_ref().map(Lease::cluster)
    }

    /// A watch on the server, apart from the pool (see [`supervisor`]).
    pub fn watch(&self) -> Watch {
        Watch::new(self.options.clone(), self.cluster().cloned())
    }

    /// Closes every connection, then stops the private cluster if this process owns it.
    pub async fn close(self) -> Result<()> {
        self.pool.close().await;
        if let Some(lease) = self.lease {
            tokio::task::spawn_blocking(move || lease.release())
                .await
                .map_err(|e| Error::context("run the cluster stop task", e))??;
        }
        Ok(())
    }
}

/// "PostgreSQL at db:5432 (database.url) is not reachable: connection refused": one sentence.
fn unreachable_sentence(
    settings: &Settings,
    options: &PgConnectOptions,
    e: &sqlx::Error,
) -> String {
    let cause = match e {
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    };
    if settings.uses_embedded_database() {
        format!("the private PostgreSQL cluster does not accept connections: {cause}")
    } else {
        format!(
            "PostgreSQL at {}:{} (database.url) is not reachable: {cause}",
            options.get_host(),
            options.get_port()
        )
    }
}

async fn start_embedded(settings: &Settings, tenure: Tenure) -> Result<(PgConnectOptions, Lease)> {
    let root = embedded_root(&settings.data_dir());
    let db = settings.database.clone();
    let lease = tokio::task::spawn_blocking(move || {
        let cluster = Cluster::new(&root, &db.pg_bin_dir, &db.embedded_user)?;
        cluster.acquire(tenure)
    })
    .await
    .map_err(|e| Error::context("run the cluster start task", e))??;
    let cluster = lease.cluster();
    let admin = cluster.connect_options("postgres");
    cluster::wait_until_accepting(&admin)
        .await
        .map_err(|e| Error::context("connect to the private PostgreSQL cluster", e))?;
    create_database_if_missing(&admin, EMBEDDED_DATABASE).await?;
    Ok((cluster.connect_options(EMBEDDED_DATABASE), lease))
}

/// Creates `name` through a maintenance connection unless it exists.
pub async fn create_database_if_missing(admin: &PgConnectOptions, name: &str) -> Result<()> {
    let mut conn = admin
        .connect()
        .await
        .map_err(|e| Error::context("connect to the maintenance database", e))?;
    let exists: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
        name
    )
    .fetch_one(&mut conn)
    .await?;
    if !exists {
        // CREATE DATABASE takes no bind parameters; the name is quoted as an identifier.
        let sql = format!("CREATE DATABASE {}", quote_ident(name));
        sqlx::raw_sql(&sql).execute(&mut conn).await?;
    }
    conn.close().await?;
    Ok(())
}

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn check_server_version(pool: &PgPool) -> Result<()> {
    let version: i32 =
        sqlx::query_scalar!(r#"SELECT current_setting('server_version_num')::int AS "version!""#)
            .fetch_one(pool)
            .await?;
    if version < MIN_SERVER_VERSION {
        return Err(Error::Internal(format!(
            "PostgreSQL {} is too old; daygle needs 13 or newer",
            version / 10000
        )));
    }
    Ok(())
}

/// Applies every migration not yet applied.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    // A migration may rewrite a large table: the server's statement limits do not apply.
    let mut conn = pool.acquire().await?;
    sqlx::query!("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("SET idle_in_transaction_session_timeout = 0")
        .execute(&mut *conn)
        .await?;
    let done = MIGRATOR
        .run(&mut *conn)
        .await
        .map_err(|e| Error::context("apply database migrations", e));
    sqlx::query!("RESET statement_timeout")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("RESET idle_in_transaction_session_timeout")
        .execute(&mut *conn)
        .await?;
    done
}

/// How the database's schema compares with the migrations in this binary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    pub expected: usize,
    pub applied: usize,
    pub pending: Vec<i64>,
    /// Versions the database has that this binary does not know (a newer daygle migrated it).
    pub unknown: Vec<i64>,
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty()
    }
}

pub async fn migration_status(pool: &PgPool) -> Result<MigrationStatus> {
    let table_exists: bool = sqlx::query_scalar!(
        r#"SELECT to_regclass('public._sqlx_migrations') IS NOT NULL AS "exists!""#
    )
    .fetch_one(pool)
    .await?;
    let applied: BTreeSet<i64> = if table_exists {
        sqlx::query_scalar!("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect()
    } else {
        BTreeSet::new()
    };
    let expected: BTreeSet<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    Ok(MigrationStatus {
        expected: expected.len(),
        applied: applied.len(),
        pending: expected.difference(&applied).copied().collect(),
        unknown: applied.difference(&expected).copied().collect(),
    })
}

/// The path of the private cluster for `data_dir`.
pub fn embedded_root(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("postgres")
}

/// Opens the database for a CLI command: joins a running private cluster or starts it for the
/// command's duration.
pub async fn open_for_command(settings: &Settings) -> Result<Database> {
    Database::open(settings, Tenure::Command).await
}

/// Advisory-lock class of "a process seals new values under this sealing key".
const SEALING_KEY_LOCK_CLASS: i32 = 0x6467_6b00; // "dgk\0"

fn sealing_key_lock_id(key_id: &str) -> i32 {
    u32::from_str_radix(key_id.get(..8).unwrap_or(key_id), 16).unwrap_or(0) as i32
}

/// Held by a running server for its lifetime: it writes new sealed values under `key_id`.
/// `rotate-key` refuses to retire a key while anyone holds this (a server started during a
/// rotation waits for it to finish). Returns the connection that holds the lock.
pub async fn hold_sealing_key(pool: &PgPool, key_id: &str) -> Result<sqlx::PgConnection> {
    let mut conn = pool.acquire().await?.detach();
    sqlx::query!(
        "SELECT pg_advisory_lock_shared($1, $2)",
        SEALING_KEY_LOCK_CLASS,
        sealing_key_lock_id(key_id)
    )
    .execute(&mut conn)
    .await?;
    Ok(conn)
}

/// Keeps holding the sealing-key lock taken with [`hold_sealing_key`] until shutdown: when its
/// connection dies with the database (a restart), the lock is taken again as soon as the
/// database is back, so `rotate-key` keeps seeing this server.
pub async fn keep_sealing_key(
    pool: PgPool,
    key_id: String,
    held: sqlx::PgConnection,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut conn = Some(held);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.cancelled() => break,
        }
        let alive = match conn.as_mut() {
            Some(c) => c.ping().await.is_ok(),
            None => false,
        };
        if alive {
            continue;
        }
        conn = None;
        if let Ok(Ok(c)) =
            tokio::time::timeout(Duration::from_secs(3), hold_sealing_key(&pool, &key_id)).await
        {
            tracing::info!("holding the sealing-key lock again after the database came back");
            conn = Some(c);
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

/// Takes the sealing-key lock of `key_id` exclusively until the end of the transaction; false
/// when a running server still writes under that key.
pub async fn try_retire_sealing_key(conn: &mut sqlx::PgConnection, key_id: &str) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock($1, $2) AS "locked!""#,
        SEALING_KEY_LOCK_CLASS,
        sealing_key_lock_id(key_id)
    )
    .fetch_one(&mut *conn)
    .await?)
}
