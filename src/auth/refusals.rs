//! Sign-in attempts refused by the per-address rate limit, counted in memory and written to the
//! audit log as one `login.rate_limited` row per address (IPv4, or IPv6 /64) per minute with the
//! count, instead of one permanent row per refused request. An outsider hammering the sign-in
//! form therefore adds at most one row a minute per address they control.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::{self, Action, Actor, AuditEvent};
use crate::error::Result;

/// Addresses tracked between flushes; refusals from further addresses are counted together
/// under one row (so a flood from millions of addresses cannot grow this map without bound).
const MAX_ADDRESSES: usize = 10_000;
const OVERFLOW: &str = "(other addresses)";

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    first: OffsetDateTime,
    last: OffsetDateTime,
    /// The first refused request's user agent, as a sample.
    user_agent: String,
}

/// Refusals since the last flush, by limit key (the address or /64 the limit counts under).
#[derive(Debug, Default)]
pub struct Refusals {
    tallies: Mutex<HashMap<String, Tally>>,
}

impl Refusals {
    /// Counts one refused attempt from `actor`, whose limit key is `key`.
    pub fn note(&self, key: &str, actor: &Actor) {
        let now = OffsetDateTime::now_utc();
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        let key = if tallies.len() >= MAX_ADDRESSES && !tallies.contains_key(key) {
            OVERFLOW
        } else {
            key
        };
        tallies
            .entry(key.to_string())
            .and_modify(|t| {
                t.count += 1;
                t.last = now;
            })
            .or_insert_with(|| Tally {
                count: 1,
                first: now,
                last: now,
                user_agent: actor.user_agent.clone(),
            });
    }

    /// Writes one audit row per address counted since the last flush (in one transaction) and
    /// starts counting afresh. Returns how many rows it wrote. Call it every minute and at
    /// shutdown.
    pub async fn flush(&self, pool: &PgPool) -> Result<usize> {
        let taken: Vec<(String, Tally)> = {
            let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
            let mut taken: Vec<_> = tallies.drain().collect();
            taken.sort_by_key(|(_, t)| t.first);
            taken
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let mut tx = pool.begin().await?;
        for (key, t) in &taken {
            let actor = Actor {
                user_id: None,
                username: String::new(),
                ip: key.clone(),
                user_agent: t.user_agent.clone(),
                api_token: None,
            };
            let when = |at: OffsetDateTime| at.format(&Rfc3339).unwrap_or_default();
            audit::record(
                &mut tx,
                &AuditEvent::by(&actor, Action::LoginRateLimited).details(json!({
                    "refused": t.count,
                    "first": when(t.first),
                    "last": when(t.last),
                })),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(taken.len())
    }
}
