//! The `daygle serve` processes sharing one database (`processes`): each registers with its
//! role, beats while it lives, and says goodbye when it stops. Leases name their holder by the
//! process id; `/workers` lists who is alive and what each holds.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};

/// What a `serve` process does (`daygle serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Role {
    /// The web UI and the HTTP API only: no syncing, no background jobs.
    Web,
    /// Syncs accounts and may become the leader; serves only the health endpoints.
    Worker,
    /// Both (the default; a single process does everything).
    #[default]
    All,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Web => "web",
            Role::Worker => "worker",
            Role::All => "all",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "web" => Ok(Role::Web),
            "worker" => Ok(Role::Worker),
            "all" | "" => Ok(Role::All),
            other => Err(Error::invalid(
                "role",
                format!("`{other}` is not web, worker or all"),
            )),
        }
    }

    /// Serves the UI and the API.
    pub fn serves_web(self) -> bool {
        matches!(self, Role::Web | Role::All)
    }

    /// Syncs accounts and may run the once-per-installation jobs.
    pub fn works(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// This process, as the others see it.
#[derive(Debug, Clone)]
pub struct Me {
    pub id: Uuid,
    pub role: Role,
    pub hostname: String,
    pub pid: i32,
}

impl Me {
    pub fn new(role: Role) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        Self {
            id: Uuid::now_v7(),
            role,
            hostname,
            pid: std::process::id() as i32,
        }
    }

    /// `host:pid`, how logs and pages name a process.
    pub fn label(&self) -> String {
        format!("{}:{}", self.hostname, self.pid)
    }

    /// Adds this process to `processes`.
    pub async fn register(&self, pool: &PgPool) -> Result<()> {
        sqlx::query!(
            "INSERT INTO processes (id, hostname, pid, role, version) VALUES ($1, $2, $3, $4, $5)",
            self.id,
            self.hostname,
            self.pid,
            self.role.as_str(),
            env!("CARGO_PKG_VERSION")
        )
        .execute(pool)
        .await?;
        Ok(())
    }

    /// "Still alive". A row removed behind our back (a week-long pause) is added again.
    pub async fn beat(&self, pool: &PgPool) -> Result<()> {
        let updated = sqlx::query!(
            "UPDATE processes SET heartbeat_at = now(), stopped_at = NULL WHERE id = $1",
            self.id
        )
        .execute(pool)
        .await?
        .rows_affected();
        if updated == 0 {
            self.register(pool).await?;
        }
        Ok(())
    }

    /// A graceful stop: gives back every lease at once (others need not wait for expiry).
    pub async fn stopped(&self, pool: &PgPool) -> Result<()> {
        let mut tx = pool.begin().await?;
        super::leases::release_all(&mut tx, self.id).await?;
        sqlx::query!(
            "UPDATE processes SET stopped_at = now() WHERE id = $1",
            self.id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Forgets processes not heard from for a week (run by the leader).
pub async fn forget_old(pool: &PgPool) -> Result<u64> {
    Ok(
        sqlx::query!("DELETE FROM processes WHERE heartbeat_at < now() - interval '7 days'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// One process on `/workers`.
#[derive(Debug, Clone)]
pub struct ProcessRow {
    pub id: Uuid,
    pub hostname: String,
    pub pid: i32,
    pub role: String,
    pub version: String,
    pub started_at: OffsetDateTime,
    pub heartbeat_at: OffsetDateTime,
    pub stopped_at: Option<OffsetDateTime>,
    /// Beat within the lease time and not stopped.
    pub alive: bool,
    pub leader: bool,
    /// Names of the accounts whose lease it holds now.
    pub accounts: Vec<String>,
}

impl ProcessRow {
    pub fn label(&self) -> String {
        format!("{}:{}", self.hostname, self.pid)
    }
}

/// Processes seen in the last day, live ones first, with what each holds of the archives
/// `grants` reach (the processes themselves serve every archive, so each reader sees them).
pub async fn list(
    pool: &PgPool,
    lease_secs: i32,
    grants: &crate::auth::Grants,
) -> Result<Vec<ProcessRow>> {
    Ok(sqlx::query_as!(
        ProcessRow,
        r#"SELECT p.id, p.hostname, p.pid, p.role, p.version, p.started_at, p.heartbeat_at,
                  p.stopped_at,
                  (p.stopped_at IS NULL AND p.heartbeat_at > now() - make_interval(secs => $1))
                    AS "alive!",
                  EXISTS (SELECT 1 FROM leader_lease l WHERE l.holder = p.id AND l.expires_at > now())
                    AS "leader!",
                  array(SELECT a.name::text FROM account_leases al JOIN accounts a ON a.id = al.account_id
                        WHERE al.holder = p.id AND al.expires_at > now()
                          AND ($2::bigint[] IS NULL OR a.id = ANY($2)) ORDER BY a.name)
                    AS "accounts!: Vec<String>"
           FROM processes p
           WHERE p.heartbeat_at > now() - interval '1 day'
           ORDER BY (p.stopped_at IS NULL AND p.heartbeat_at > now() - make_interval(secs => $1)) DESC,
                    p.started_at DESC"#,
        f64::from(lease_secs),
        grants.as_ids(),
    )
    .fetch_all(pool)
    .await?)
}
