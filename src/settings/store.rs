//! The `settings` table: reading stored values, the audited save, and sealing the secret ones.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgPool};

use super::{FIELDS, Live, effective, field};
use crate::audit::{self, Action, Actor, AuditEvent};
use crate::config::{ConfigErrors, Problem};
use crate::error::{Error, Result};
use crate::secrets::SealingKeys;

fn seal_context(key: &str) -> String {
    format!("settings:{key}")
}

/// One stored value with who changed it last.
#[derive(Debug, Clone)]
pub struct StoredValue {
    pub key: String,
    /// The value's text; a secret's opened plaintext (never shown, only applied).
    pub value: String,
    pub updated_at: time::OffsetDateTime,
    pub updated_by: String,
}

/// Every stored value of a key the catalogue knows. A secret that cannot be opened (wrong
/// key) is left out with a warning rather than stopping everything else.
pub async fn stored(pool: &PgPool, keys: &SealingKeys) -> Result<Vec<StoredValue>> {
    let rows = sqlx::query!(
        r#"SELECT key, value, sealed, updated_at, updated_by FROM settings ORDER BY key"#
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if field(&row.key).is_none() {
            continue;
        }
        let value = match (&row.sealed, &row.value) {
            (Some(sealed), _) => match keys.open(sealed, &seal_context(&row.key)) {
                Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
                Err(e) => {
                    tracing::warn!(key = %row.key, error = %e, "could not open a stored setting; using the configured value");
                    continue;
                }
            },
            (None, serde_json::Value::String(s)) => s.clone(),
            (None, other) => other.to_string(),
        };
        out.push(StoredValue {
            key: row.key,
            value,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        });
    }
    Ok(out)
}

fn pairs(stored: &[StoredValue]) -> Vec<(String, String)> {
    stored
        .iter()
        .map(|s| (s.key.clone(), s.value.clone()))
        .collect()
}

/// Re-reads the stored values into `live`. Values that no longer validate (e.g. a config
/// change made a stored value conflict) are reported in the log and the settings stay as
/// they were.
pub async fn reload(pool: &PgPool, keys: &SealingKeys, live: &Live) -> Result<()> {
    let stored = stored(pool, keys).await?;
    let (settings, problems) = effective(live.base(), &pairs(&stored));
    if problems.is_empty() {
        live.replace(settings);
    } else {
        tracing::warn!(problems = %ConfigErrors(problems), "stored settings are not valid; keeping the previous ones");
    }
    Ok(())
}

/// What [`save`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Saved {
    /// `section.key` of each changed value.
    pub changed: Vec<String>,
}

/// Stores the submitted values of the page's fields (keys absent from `form` are left as
/// they are; an empty secret keeps the stored one), if the result validates, with one audit
/// row listing old and new values (secrets masked). Locked keys are refused. Invalid input
/// is `Error::Config` with every problem, in the config file's words.
pub async fn save(
    pool: &PgPool,
    keys: &SealingKeys,
    live: &Live,
    actor: &Actor,
    form: &BTreeMap<String, String>,
) -> Result<Saved> {
    let stored_now = stored(pool, keys).await?;
    let mut next: BTreeMap<String, String> = pairs(&stored_now).into_iter().collect();
    let current = live.get();
    let mut changes = Vec::new();
    for f in FIELDS {
        let Some(value) = form.get(f.key) else {
            continue;
        };
        if f.is_secret() && value.is_empty() {
            continue;
        }
        let old = f.read(&current);
        let new_text = if f.is_secret() {
            value.clone()
        } else {
            value.trim().to_string()
        };
        // Compare through the settings so "0300" vs "03:00" style noise does not count.
        let mut probe = (*current).clone();
        if f.apply(&mut probe, &new_text).is_ok() && !f.is_secret() && f.read(&probe) == old {
            continue;
        }
        if let Some(origin) = live.base().origins.get(f.key) {
            return Err(Error::Config(ConfigErrors(vec![Problem {
                key: f.key.into(),
                message: format!("is set by {origin} and cannot be changed here"),
            }])));
        }
        next.insert(f.key.to_string(), new_text.clone());
        changes.push((f, old, new_text));
    }
    if changes.is_empty() {
        return Ok(Saved::default());
    }
    let pairs: Vec<(String, String)> = next.into_iter().collect();
    let (proposed, problems) = effective(live.base(), &pairs);
    let ours: Vec<Problem> = problems
        .into_iter()
        .filter(|p| field(&p.key).is_some())
        .collect();
    if !ours.is_empty() {
        return Err(Error::Config(ConfigErrors(ours)));
    }
    let mut tx = pool.begin().await?;
    // A group mapping hands out roles and archives: the delegation ceiling applies to it.
    if changes
        .iter()
        .any(|(f, _, _)| f.key.starts_with("oidc.group_"))
    {
        crate::auth::oidc::mapping::check_may_set(&mut tx, actor, &proposed.oidc).await?;
    }
    let mut details = Vec::new();
    for (f, old, new) in &changes {
        put(&mut tx, keys, f.key, new, f.is_secret(), &actor.username).await?;
        let (old, new) = if f.is_secret() {
            (old.clone(), super::masked(true))
        } else {
            (old.clone(), new.clone())
        };
        details.push(serde_json::json!({ "key": f.key, "old": old, "new": new }));
    }
    audit::record(
        &mut tx,
        &AuditEvent::by(actor, Action::SettingsUpdate)
            .details(serde_json::json!({ "changes": details })),
    )
    .await?;
    tx.commit().await?;
    reload(pool, keys, live).await?;
    Ok(Saved {
        changed: changes.iter().map(|(f, _, _)| f.key.to_string()).collect(),
    })
}

async fn put(
    conn: &mut PgConnection,
    keys: &SealingKeys,
    key: &str,
    value: &str,
    secret: bool,
    by: &str,
) -> Result<()> {
    let (json, sealed) = if secret {
        (
            serde_json::Value::Null,
            Some(keys.seal(value.as_bytes(), &seal_context(key))),
        )
    } else {
        (serde_json::Value::String(value.to_string()), None)
    };
    sqlx::query!(
        "INSERT INTO settings (key, value, sealed, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET value = $2, sealed = $3, updated_by = $4",
        key,
        json,
        sealed,
        by,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Key rotation: re-seals stored secret settings still under an older key.
pub async fn reseal_all(tx: &mut PgConnection, keys: &SealingKeys) -> Result<u64> {
    let rows = sqlx::query!(
        r#"SELECT key, sealed AS "sealed!" FROM settings WHERE sealed IS NOT NULL ORDER BY key FOR UPDATE"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut changed = 0;
    for row in rows {
        if !keys.needs_reseal(&row.sealed) {
            continue;
        }
        let plain = keys
            .open(&row.sealed, &seal_context(&row.key))
            .map_err(|e| Error::context(format!("open the stored setting {}", row.key), e))?;
        sqlx::query!(
            "UPDATE settings SET sealed = $2 WHERE key = $1",
            row.key,
            keys.seal(&plain, &seal_context(&row.key)),
        )
        .execute(&mut *tx)
        .await?;
        changed += 1;
    }
    Ok(changed)
}
