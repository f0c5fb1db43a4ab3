//! The `/reports` numbers (issue #17): archive volume per month, verdicts per month, storage by
//! account, top correspondents, user activity and the access review. Every query that reads
//! mail is filtered by the reader's grants in SQL.

use sqlx::PgPool;

use crate::auth::Grants;
use crate::error::Result;

/// Months counted back from the current one (this month included).
pub const MONTHS: i32 = 12;
/// Users without a sign-in for this many days are flagged in the access review.
pub const STALE_DAYS: i64 = 90;

/// Messages and bytes archived in one month, account and folder.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VolumeRow {
    /// `2026-11`, in the reader's time zone.
    pub month: String,
    pub account: String,
    pub folder: String,
    pub messages: i64,
    pub bytes: i64,
}

pub async fn volume(pool: &PgPool, grants: &Grants, tz: &str) -> Result<Vec<VolumeRow>> {
    // Since the first instant of the month `MONTHS - 1` months before this one, in `tz`.
    Ok(sqlx::query_as!(
        VolumeRow,
        r#"SELECT to_char(m.archived_at AT TIME ZONE $1, 'YYYY-MM') AS "month!",
                a.name::text AS "account!", m.folder, count(*) AS "messages!",
                coalesce(sum(m.size), 0)::bigint AS "bytes!"
         FROM messages m JOIN accounts a ON a.id = m.account_id
         WHERE m.archived_at >= (date_trunc('month', now() AT TIME ZONE $1)
                                 - make_interval(months => $2 - 1)) AT TIME ZONE $1
           AND ($3::bigint[] IS NULL OR m.account_id = ANY($3))
         GROUP BY 1, 2, 3 ORDER BY 1 DESC, 2, 3"#,
        tz,
        MONTHS,
        grants.as_ids() as Option<&[i64]>,
    )
    .fetch_all(pool)
    .await?)
}

/// Scan verdicts of the mail archived in one month (quarantined mail counted apart).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VerdictRow {
    pub month: String,
    pub verdict: String,
    pub messages: i64,
}

pub async fn verdicts(pool: &PgPool, grants: &Grants, tz: &str) -> Result<Vec<VerdictRow>> {
    // The same months as [`volume`]; quarantined mail has no `messages` row yet.
    Ok(sqlx::query_as!(
        VerdictRow,
        r#"SELECT to_char(t.at AT TIME ZONE $1, 'YYYY-MM') AS "month!", t.verdict AS "verdict!",
                count(*) AS "messages!"
         FROM (SELECT archived_at AS at, scan_status AS verdict, account_id FROM messages
               UNION ALL
               SELECT created_at, 'quarantined', account_id FROM quarantine) t
         WHERE t.at >= (date_trunc('month', now() AT TIME ZONE $1)
                        - make_interval(months => $2 - 1)) AT TIME ZONE $1
           AND ($3::bigint[] IS NULL OR t.account_id = ANY($3))
         GROUP BY 1, 2 ORDER BY 1 DESC, 2"#,
        tz,
        MONTHS,
        grants.as_ids() as Option<&[i64]>,
    )
    .fetch_all(pool)
    .await?)
}

/// What one account takes: its messages as received, and the compressed blobs it references,
/// each counted once for the account (another account may share them).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StorageRow {
    pub account: String,
    pub messages: i64,
    pub received_bytes: i64,
    pub stored_bytes: i64,
}

/// Per account, plus the total over those accounts with each shared blob counted once.
pub async fn storage(pool: &PgPool, grants: &Grants) -> Result<(Vec<StorageRow>, i64)> {
    let rows = sqlx::query_as!(
        StorageRow,
        r#"SELECT a.name::text AS "account!",
                (SELECT count(*) FROM messages m WHERE m.account_id = a.id) AS "messages!",
                (SELECT coalesce(sum(m.size), 0)::bigint FROM messages m WHERE m.account_id = a.id)
                  AS "received_bytes!",
                (SELECT coalesce(sum(octet_length(b.zstd)), 0)::bigint FROM blobs b
                  WHERE b.sha256 IN (SELECT m.blob_sha256 FROM messages m WHERE m.account_id = a.id))
                  AS "stored_bytes!"
         FROM accounts a WHERE ($1::bigint[] IS NULL OR a.id = ANY($1)) ORDER BY a.name"#,
        grants.as_ids() as Option<&[i64]>,
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(octet_length(b.zstd)), 0)::bigint AS "total!" FROM blobs b
         WHERE b.sha256 IN (SELECT m.blob_sha256 FROM messages m
                            WHERE $1::bigint[] IS NULL OR m.account_id = ANY($1))"#,
        grants.as_ids() as Option<&[i64]>,
    )
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// An address with the mail it sent or received in one archive.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Correspondent {
    pub address: String,
    pub messages: i64,
    pub bytes: i64,
}

/// The top senders and recipients of archive `account_id` by message count; empty when the
/// grants do not cover it (checked in the query).
pub async fn correspondents(
    pool: &PgPool,
    grants: &Grants,
    account_id: i64,
    limit: i64,
) -> Result<(Vec<Correspondent>, Vec<Correspondent>)> {
    let grants = grants.as_ids();
    let senders = sqlx::query_as!(
        Correspondent,
        r#"SELECT lower(coalesce(substring(from_addr from '<([^>]+)>'), trim(from_addr))) AS "address!",
                count(*) AS "messages!", coalesce(sum(size), 0)::bigint AS "bytes!"
         FROM messages
         WHERE account_id = $1 AND ($2::bigint[] IS NULL OR account_id = ANY($2))
           AND coalesce(trim(from_addr), '') <> ''
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3"#,
        account_id,
        grants as Option<&[i64]>,
        limit,
    )
    .fetch_all(pool)
    .await?;
    // One row per address in `To` (a comma-separated list as stored).
    let recipients = sqlx::query_as!(
        Correspondent,
        r#"SELECT r.address AS "address!", count(*) AS "messages!",
                coalesce(sum(r.size), 0)::bigint AS "bytes!"
         FROM (SELECT lower(coalesce(substring(x from '<([^>]+)>'), trim(x))) AS address, m.size
               FROM messages m, regexp_split_to_table(coalesce(m.to_addrs, ''), ',') AS x
               WHERE m.account_id = $1 AND ($2::bigint[] IS NULL OR m.account_id = ANY($2))) r
         WHERE r.address <> ''
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3"#,
        account_id,
        grants as Option<&[i64]>,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok((senders, recipients))
}

/// What one user did in the last `days` days, from the audit log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActivityRow {
    pub username: String,
    pub sign_ins: i64,
    pub failed_sign_ins: i64,
    pub searches: i64,
    pub reads: i64,
    pub exports: i64,
    pub downloads: i64,
}

pub async fn activity(pool: &PgPool, days: i32) -> Result<Vec<ActivityRow>> {
    Ok(sqlx::query_as!(
        ActivityRow,
        r#"SELECT u.username::text AS "username!",
                count(*) FILTER (WHERE l.action = 'login.success') AS "sign_ins!",
                count(*) FILTER (WHERE l.action = 'login.failure') AS "failed_sign_ins!",
                count(*) FILTER (WHERE l.action = 'mail.search') AS "searches!",
                count(*) FILTER (WHERE l.action = 'mail.view') AS "reads!",
                count(*) FILTER (WHERE l.action = 'mail.export') AS "exports!",
                count(*) FILTER (WHERE l.action IN ('mail.download', 'mail.attachment')) AS "downloads!"
         FROM users u
         LEFT JOIN audit_log l ON l.user_id = u.id AND l.at >= now() - make_interval(days => $1)
         GROUP BY u.id, u.username ORDER BY u.username"#,
        days,
    )
    .fetch_all(pool)
    .await?)
}

/// One user in the access review.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccessRow {
    pub username: String,
    pub enabled: bool,
    pub roles: Vec<String>,
    /// True when a role gives every archive.
    pub all_archives: bool,
    pub archives: Vec<String>,
    pub last_sign_in: Option<time::OffsetDateTime>,
    pub created_at: time::OffsetDateTime,
}

impl AccessRow {
    /// "never signed in", "no sign-in for 90+ days" or "" — what a reviewer should look at.
    pub fn flag(&self, now: time::OffsetDateTime) -> &'static str {
        match self.last_sign_in {
            None if self.enabled => "never signed in",
            Some(t) if self.enabled && now - t > time::Duration::days(STALE_DAYS) => "stale",
            _ => "",
        }
    }
}

pub async fn access_review(pool: &PgPool) -> Result<Vec<AccessRow>> {
    Ok(sqlx::query_as!(
        AccessRow,
        r#"SELECT u.username::text AS "username!", u.enabled,
                coalesce(array(SELECT r.name::text FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                               WHERE ur.user_id = u.id ORDER BY r.name), '{}') AS "roles!",
                exists(SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                       WHERE ur.user_id = u.id AND r.all_accounts) AS "all_archives!",
                coalesce(array(SELECT a.name::text FROM user_accounts ua JOIN accounts a ON a.id = ua.account_id
                               WHERE ua.user_id = u.id ORDER BY a.name), '{}') AS "archives!",
                greatest(u.last_login_at,
                         (SELECT max(l.at) FROM audit_log l WHERE l.user_id = u.id
                            AND l.action IN ('login.success', 'setup.first_admin'))) AS last_sign_in,
                u.created_at
         FROM users u ORDER BY u.username"#,
    )
    .fetch_all(pool)
    .await?)
}
