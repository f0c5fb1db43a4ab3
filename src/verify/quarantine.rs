//! Quarantined messages must still open with the current sealing key (or an older one still
//! configured) and hash to their recorded SHA-256; otherwise they can never be released.

use sqlx::PgPool;
use uuid::Uuid;

use super::archive::Scope;
use super::{Observer, Problem, ProblemKind};
use crate::error::Result;
use crate::scan::quarantine;
use crate::secrets::SealingKeys;

const PAGE: i64 = 500;

/// Returns (entries checked, problems found).
pub(super) async fn check(
    pool: &PgPool,
    keys: &SealingKeys,
    scope: &Scope,
    observer: &dyn Observer,
) -> Result<(u64, u64)> {
    let (mut checked, mut found) = (0u64, 0u64);
    let mut after = Uuid::nil();
    loop {
        let page = sqlx::query!(
            r#"SELECT q.id, a.name AS "account?", q.folder, q.virus_name FROM quarantine q
               LEFT JOIN accounts a ON a.id = q.account_id
               WHERE q.id > $1 AND ($2::bigint IS NULL OR q.account_id = $2)
               ORDER BY q.id LIMIT $3"#,
            after,
            scope.account_id,
            PAGE,
        )
        .fetch_all(pool)
        .await?;
        let Some(last) = page.last() else {
            return Ok((checked, found));
        };
        after = last.id;
        let mut conn = pool.acquire().await?;
        for row in page {
            let (id, account, folder, virus) = (row.id, row.account, row.folder, row.virus_name);
            checked += 1;
            match quarantine::open_raw(&mut *conn, keys, id).await {
                Ok(_) | Err(crate::error::Error::NotFound) => {}
                Err(e) => {
                    found += 1;
                    observer.problem(&Problem {
                        kind: ProblemKind::Quarantine,
                        message_id: None,
                        account,
                        folder: Some(folder),
                        detail: format!("quarantine entry {id} ({virus}) does not open: {e}"),
                    });
                }
            }
        }
    }
}
