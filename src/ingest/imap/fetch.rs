//! The FETCH side of a folder sync: message sizes first (to plan batches by bytes), then the
//! messages themselves, turned into pipeline input.

use async_imap::types::{Fetch, Flag};
use futures::StreamExt;
use time::OffsetDateTime;

use super::{ImapError, Session, Timeouts, timed};
use crate::ingest::pipeline::Incoming;

/// `UID FETCH set (UID RFC822.SIZE)`: which messages exist and how big they are, so batches
/// can be planned by bytes. `n:*` also returns the last message when it is below n, hence
/// the `above` filter.
pub async fn fetch_sizes(
    session: &mut Session,
    t: Timeouts,
    set: &str,
    above: i64,
) -> Result<Vec<(i64, u64)>, ImapError> {
    let mut sizes: Vec<(i64, u64)> = timed(t.command, "UID FETCH (sizes)", async {
        let mut stream = session.uid_fetch(set, "(UID RFC822.SIZE)").await?;
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let f = item?;
            if let (Some(uid), Some(size)) = (f.uid, f.size) {
                out.push((i64::from(uid), u64::from(size)));
            }
        }
        Ok::<_, async_imap::error::Error>(out)
    })
    .await?;
    sizes.retain(|(uid, _)| *uid > above);
    sizes.sort_unstable();
    sizes.dedup_by_key(|(uid, _)| *uid);
    Ok(sizes)
}

/// Consecutive runs of messages, each at most `max_count` long and `max_bytes` big (a single
/// bigger message goes alone). Messages over `max_size` are never fetched and weigh nothing.
pub fn plan_batches(
    sizes: &[(i64, u64)],
    max_count: usize,
    max_bytes: u64,
    max_size: u64,
) -> Vec<Vec<(i64, u64)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(i64, u64)> = Vec::new();
    let mut bytes = 0u64;
    for &(uid, size) in sizes {
        let weight = if size > max_size { 0 } else { size };
        if !cur.is_empty() && (cur.len() >= max_count || bytes + weight > max_bytes) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        cur.push((uid, size));
        bytes += weight;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What one body FETCH returned.
#[derive(Default)]
pub struct Bodies {
    pub messages: Vec<Incoming>,
    /// Each message's Gmail labels by UID (only when they were asked for).
    pub labels: Vec<(i64, Vec<String>)>,
}

/// The full messages of `set`, read one FETCH item at a time so only the batch is held; with
/// `gmail_labels`, their `X-GM-LABELS` too.
pub async fn fetch_bodies(
    session: &mut Session,
    t: Timeouts,
    set: &str,
    gmail_labels: bool,
) -> Result<Bodies, ImapError> {
    let items = if gmail_labels {
        "(UID RFC822.SIZE INTERNALDATE FLAGS X-GM-LABELS BODY.PEEK[])"
    } else {
        "(UID RFC822.SIZE INTERNALDATE FLAGS BODY.PEEK[])"
    };
    timed(t.command, "UID FETCH (messages)", async {
        let mut stream = session.uid_fetch(set, items).await?;
        let mut out = Bodies::default();
        while let Some(item) = stream.next().await {
            let f = item?;
            if let Some(m) = incoming(&f) {
                if let (true, Some(uid), Some(labels)) =
                    (gmail_labels, m.uid, super::gmail::labels_of(&f))
                {
                    out.labels.push((uid, labels));
                }
                out.messages.push(m);
            }
        }
        Ok::<_, async_imap::error::Error>(out)
    })
    .await
}

fn incoming(f: &Fetch) -> Option<Incoming> {
    let uid = f.uid?;
    let raw = f.body()?.to_vec();
    Some(Incoming {
        uid: Some(i64::from(uid)),
        raw,
        internal_date: f
            .internal_date()
            .and_then(|d| OffsetDateTime::from_unix_timestamp(d.timestamp()).ok()),
        flags: f.flags().filter_map(|fl| flag_text(&fl)).collect(),
    })
}

pub(super) fn flag_text(flag: &Flag<'_>) -> Option<String> {
    Some(match flag {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        // \Recent describes this session, not the message.
        Flag::Recent | Flag::MayCreate => return None,
        Flag::Custom(c) => c.replace([' ', '\0'], ""),
    })
}

/// `1,3,5:9` from a sorted list of UIDs.
pub fn uid_set(uids: &[i64]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_collapse_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
    }

    #[test]
    fn batches_respect_count_bytes_and_let_oversize_weigh_nothing() {
        let sizes = [(1, 10), (2, 10), (3, 1000), (4, 10), (5, 10)];
        let plan = plan_batches(&sizes, 2, 25, 100);
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[1], vec![(3, 1000), (4, 10)]);
        let plan = plan_batches(&[(1, 60), (2, 60)], 10, 50, 100);
        assert_eq!(plan.len(), 2, "a message bigger than a batch goes alone");
    }
}
