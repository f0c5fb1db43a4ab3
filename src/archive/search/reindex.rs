//! Rebuilding search vectors from the stored raw bytes, with the text of their attachments:
//! for new mail with attachments (archived `search_pending`, searchable at once without the
//! attachment text), after a tokenizer change (the migration that introduces one marks every
//! message `search_pending`) or a change of an account's language. Online and resumable: a batch at a time, each committed on its own;
//! the pending flag is the bookmark, so a stopped run continues where it stopped. Searches
//! keep working meanwhile (old vectors still match the exact words).

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{Language, message_vector};
use crate::archive::attachment_text::{self, Limits, Outcome, PartText};
use crate::archive::blobs;
use crate::archive::parse;
use crate::audit::{self, Action, Actor, AuditEvent, Target};
use crate::error::{Error, Result};

/// Messages rebuilt per statement: small enough that readers never wait long behind one, and
/// that the originals of a batch fit in memory.
pub const BATCH: i64 = 100;
/// Rows flagged per statement when a reindex is scheduled.
const MARK_CHUNK: i64 = 20_000;

/// Which messages: all, or one account's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope {
    pub account_id: Option<i64>,
}

/// How many messages in `scope` still wait for their vector.
pub async fn pending(pool: &PgPool, scope: Scope) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages
           WHERE search_pending AND ($1::bigint IS NULL OR account_id = $1)"#,
        scope.account_id,
    )
    .fetch_one(pool)
    .await?)
}

/// How many messages of the archives `grants` reach still wait for their vector.
pub async fn pending_within(pool: &PgPool, grants: &crate::auth::Grants) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages
           WHERE search_pending AND ($1::bigint[] IS NULL OR account_id = ANY($1))"#,
        grants.as_ids(),
    )
    .fetch_one(pool)
    .await?)
}

/// Flags every message in `scope` for rebuilding, a chunk of ids per statement so no
/// transaction holds many rows. Returns how many were flagged.
pub async fn schedule(pool: &PgPool, scope: Scope) -> Result<u64> {
    let mut after = 0i64;
    let mut flagged = 0;
    loop {
        let chunk = sqlx::query!(
            r#"WITH chunk AS (
                   SELECT id FROM messages
                   WHERE id > $1 AND ($2::bigint IS NULL OR account_id = $2)
                   ORDER BY id LIMIT $3),
               flagged AS (
                   UPDATE messages m SET search_pending = true FROM chunk
                   WHERE m.id = chunk.id AND NOT m.search_pending RETURNING 1)
               SELECT (SELECT max(id) FROM chunk) AS last,
                      (SELECT count(*) FROM flagged) AS "count!""#,
            after,
            scope.account_id,
            MARK_CHUNK,
        )
        .fetch_one(pool)
        .await?;
        let (last, count) = (chunk.last, chunk.count);
        let Some(last) = last else { break };
        flagged += count as u64;
        after = last;
    }
    Ok(flagged)
}

/// Sets an account's stemming language (audited) and schedules its messages for rebuilding.
pub async fn set_language(
    pool: &PgPool,
    actor: &Actor,
    account_id: i64,
    language: Language,
) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let old = sqlx::query_scalar!(
        "UPDATE accounts a SET search_language = $1 FROM accounts old
         WHERE a.id = $2 AND old.id = a.id RETURNING old.search_language",
        language.as_str(),
        account_id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(old) = old else {
        return Err(Error::NotFound);
    };
    let event = AuditEvent::by(actor, Action::AccountSearchLanguage)
        .target(Target::Account(account_id))
        .details(serde_json::json!({ "from": old, "to": language.as_str() }));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    schedule(
        pool,
        Scope {
            account_id: Some(account_id),
        },
    )
    .await
}

/// One message to rebuild: its compressed original and its account's language.
struct Pending {
    id: i64,
    blob_sha256: Vec<u8>,
    size: i64,
    layout: i16,
    zstd: Vec<u8>,
    search_language: String,
}

/// Rebuilds the vectors of up to [`BATCH`] pending messages in `scope`. Returns how many
/// were done; 0 when none is left. A message whose original cannot be read keeps its old
/// vector and is unflagged (logged), so one bad blob never stalls the rest.
pub async fn run_batch(pool: &PgPool, scope: Scope) -> Result<u64> {
    let rows = sqlx::query_as!(
        Pending,
        "SELECT m.id, m.blob_sha256, b.size, b.layout, b.zstd, a.search_language
         FROM messages m
         JOIN blobs b ON b.sha256 = m.blob_sha256
         JOIN accounts a ON a.id = m.account_id
         WHERE m.search_pending AND ($1::bigint IS NULL OR m.account_id = $1)
         ORDER BY m.id LIMIT $2",
        scope.account_id,
        BATCH,
    )
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let skeletons: Vec<Vec<u8>> = rows
        .iter()
        .filter(|r| r.layout == blobs::LAYOUT_SKELETON)
        .map(|r| r.blob_sha256.clone())
        .collect();
    let parts = if skeletons.is_empty() {
        blobs::PartMap::default()
    } else {
        blobs::parts_for(&mut *pool.acquire().await?, &skeletons).await?
    };
    let built = crate::telemetry::spawn_blocking_in_span(move || {
        rows.into_iter()
            .map(|row| rebuild(row, &parts))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| Error::context("run the reindex task", e))?;
    let ids: Vec<i64> = built.iter().map(|r| r.id).collect();
    let mut note_message = Vec::new();
    let mut note_part = Vec::new();
    let mut note_text = Vec::new();
    for r in &built {
        for p in &r.parts {
            note_message.push(r.id);
            note_part.push(p.part_index);
            note_text.push(p.outcome.note());
        }
    }
    let mut converted = Vec::new();
    let vectors: Vec<Option<String>> = built
        .into_iter()
        .map(|r| {
            converted.extend(r.converted);
            r.vector
        })
        .collect();
    let mut tx = pool.begin().await?;
    blobs::convert(&mut tx, &converted).await?;
    // Only rows still pending are written: a concurrent run may have done them already.
    sqlx::query!(
        "UPDATE messages m SET search = coalesce(t.v::tsvector, m.search), search_pending = false
         FROM unnest($1::bigint[], $2::text[]) AS t(id, v)
         WHERE m.id = t.id AND m.search_pending",
        &ids,
        &vectors as _,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE attachments a SET text_note = t.note
         FROM unnest($1::bigint[], $2::int[], $3::text[]) AS t(message_id, part, note)
         WHERE a.message_id = t.message_id AND a.part_index = t.part",
        &note_message,
        &note_part,
        &note_text as _,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}

/// A message's new vector (None when its original cannot be read) and what became of each
/// attachment's text.
struct Rebuilt {
    id: i64,
    vector: Option<String>,
    parts: Vec<PartText>,
    /// A blob stored whole before attachments were stored once: its new form.
    converted: Option<blobs::NewBlob>,
}

fn rebuild(row: Pending, parts: &blobs::PartMap) -> Rebuilt {
    let raw = blobs::decode(&row.blob_sha256, row.size, row.layout, &row.zstd, parts).ok();
    let Some(raw) = raw else {
        tracing::warn!(
            message_id = row.id,
            "reindex: the stored original is unreadable or does not match its SHA-256; old search vector kept"
        );
        return Rebuilt {
            id: row.id,
            vector: None,
            parts: Vec::new(),
            converted: None,
        };
    };
    let language = Language::parse(&row.search_language).unwrap_or(Language::English);
    let parsed = parse::parse(&raw);
    // The original is at hand: an archive from before attachments were stored once converts
    // here, online and resumably (the migration flags its messages with attachments).
    let converted = (row.layout == blobs::LAYOUT_WHOLE)
        .then(|| {
            let sha = <[u8; 32]>::try_from(row.blob_sha256.as_slice()).ok()?;
            blobs::encode(&raw, sha, &parsed.binary_bodies, blobs::CONVERT_ZSTD_LEVEL).ok()
        })
        .flatten();
    let parts = if parsed.attachments.is_empty() {
        Vec::new()
    } else {
        attachment_text::from_message(&raw, &Limits::default())
    };
    let texts: Vec<String> = parts
        .iter()
        .filter_map(|p| match &p.outcome {
            Outcome::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    Rebuilt {
        id: row.id,
        vector: Some(message_vector(&parsed, &texts, language)),
        parts,
        converted,
    }
}

/// Works through every pending message in `scope`, calling `progress` with the running total.
pub async fn run(pool: &PgPool, scope: Scope, mut progress: impl FnMut(u64)) -> Result<u64> {
    let mut done = 0;
    loop {
        let n = run_batch(pool, scope).await?;
        if n == 0 {
            return Ok(done);
        }
        done += n;
        progress(done);
    }
}

/// How often `serve` looks for pending messages when there were none (new mail with
/// attachments gets its attachment text within about this long).
const IDLE_INTERVAL: Duration = Duration::from_secs(10);

/// `serve`'s background reindex: works through pending messages, resting after every batch
/// as long as the batch took, so it uses at most about half of one core and readers' queries
/// never queue behind a long run of its own.
pub async fn background(pool: PgPool, shutdown: CancellationToken) {
    let mut announced = false;
    loop {
        let started = Instant::now();
        let rest = match run_batch(&pool, Scope::default()).await {
            Ok(0) => {
                if announced {
                    tracing::info!("search vectors rebuilt");
                    announced = false;
                }
                IDLE_INTERVAL
            }
            Ok(n) => {
                if !announced {
                    tracing::info!("rebuilding search vectors in the background");
                    announced = true;
                }
                tracing::debug!(rebuilt = n, "reindex batch");
                started.elapsed().max(Duration::from_millis(50))
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "reindex batch failed");
                IDLE_INTERVAL
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(rest) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}
