//! Counts per time bucket for the charts: mail archived per account, scan verdicts, and the
//! bytes stored. Days are the reader's calendar days (their time zone).

use std::collections::BTreeMap;

use sqlx::PgPool;
use time::{Date, Duration};

use crate::auth::Grants;
use crate::error::Result;

/// The span a chart covers: 30, 90 or 365 days; a year is counted by week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub days: i64,
}

impl Window {
    pub const CHOICES: [i64; 3] = [30, 90, 365];

    /// Any other value falls back to 30 days.
    pub fn parse(days: Option<i64>) -> Self {
        let days = days.filter(|d| Self::CHOICES.contains(d)).unwrap_or(30);
        Self { days }
    }

    pub fn bucket_days(self) -> i64 {
        if self.days > 90 { 7 } else { 1 }
    }

    pub fn buckets(self) -> usize {
        ((self.days + self.bucket_days() - 1) / self.bucket_days()) as usize
    }

    /// The first day shown, when today (in the reader's zone) is `today`.
    pub fn first_day(self, today: Date) -> Date {
        today - Duration::days(self.days - 1)
    }

    /// Each bucket's first day, as `YYYY-MM-DD`.
    pub fn labels(self, today: Date) -> Vec<String> {
        let first = self.first_day(today);
        (0..self.buckets())
            .map(|i| (first + Duration::days(i as i64 * self.bucket_days())).to_string())
            .collect()
    }
}

/// Today's date in `timezone` (IANA name; unknown names count as UTC).
pub fn today_in(timezone: &str) -> Date {
    let tz = jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let d = jiff::Timestamp::now().to_zoned(tz).date();
    time::Month::try_from(d.month() as u8)
        .ok()
        .and_then(|m| Date::from_calendar_date(d.year() as i32, m, d.day() as u8).ok())
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().date())
}

/// Named series, each with one value per bucket of the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    pub series: Vec<(String, Vec<u64>)>,
}

impl Columns {
    fn from_rows(window: Window, rows: Vec<(i32, String, i64)>) -> Self {
        let mut by_name: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (bucket, name, count) in rows {
            let values = by_name
                .entry(name)
                .or_insert_with(|| vec![0; window.buckets()]);
            if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| values.get_mut(b)) {
                *slot += count.max(0) as u64;
            }
        }
        Self {
            series: by_name.into_iter().collect(),
        }
    }

    pub fn total(&self) -> u64 {
        self.series.iter().flat_map(|(_, v)| v).sum()
    }
}

/// The tz name is bound as a parameter: PostgreSQL knows the same IANA names; an unknown one
/// (never stored: profiles validate it) would be an error, so it falls back to UTC here.
fn pg_zone(timezone: &str) -> String {
    if jiff::tz::TimeZone::get(timezone).is_ok() {
        timezone.to_owned()
    } else {
        "UTC".into()
    }
}

/// Messages archived per bucket, one series per account `grants` allows.
pub async fn archived_per_account(
    pool: &PgPool,
    grants: &Grants,
    timezone: &str,
    window: Window,
    today: Date,
) -> Result<Columns> {
    let rows = sqlx::query!(
        r#"SELECT (((m.archived_at AT TIME ZONE $1)::date - $2::date) / $3::int)::int
                    AS "bucket!",
                  a.name, count(*) AS "count!"
           FROM messages m JOIN accounts a ON a.id = m.account_id
           WHERE m.archived_at >= ($2::date::timestamp AT TIME ZONE $1)
             AND ($4::bigint[] IS NULL OR m.account_id = ANY($4))
           GROUP BY 1, 2"#,
        pg_zone(timezone),
        window.first_day(today),
        window.bucket_days() as i32,
        grants.as_ids(),
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.bucket, r.name, r.count))
    .collect();
    Ok(Columns::from_rows(window, rows))
}

/// Scan verdicts of the messages archived per bucket (clean, infected, not scanned, …), plus
/// mail that went straight to the quarantine.
pub async fn verdicts(
    pool: &PgPool,
    timezone: &str,
    window: Window,
    today: Date,
) -> Result<Columns> {
    let rows = sqlx::query!(
        r#"SELECT (((t.at AT TIME ZONE $1)::date - $2::date) / $3::int)::int AS "bucket!",
                  t.verdict AS "verdict!", count(*) AS "count!"
           FROM (SELECT archived_at AS at, scan_status AS verdict FROM messages
                 UNION ALL
                 SELECT created_at, 'quarantined' FROM quarantine) t
           WHERE t.at >= ($2::date::timestamp AT TIME ZONE $1)
           GROUP BY 1, 2"#,
        pg_zone(timezone),
        window.first_day(today),
        window.bucket_days() as i32,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.bucket, verdict_label(&r.verdict).to_owned(), r.count))
    .collect();
    Ok(Columns::from_rows(window, rows))
}

/// How a stored scan status reads on a page.
pub fn verdict_label(status: &str) -> &str {
    match status {
        "clean" => "Clean",
        "infected" => "Infected",
        "quarantined" => "Quarantined",
        "not_scanned" => "Not scanned",
        "pending" => "Waiting for the scanner",
        "too_large" => "Too large to scan",
        "error" => "Scan failed",
        other => other,
    }
}

/// Compressed bytes stored at the end of each bucket (distinct messages, so growth after
/// deduplication).
pub async fn stored_bytes(
    pool: &PgPool,
    timezone: &str,
    window: Window,
    today: Date,
) -> Result<Vec<u64>> {
    let zone = pg_zone(timezone);
    let first = window.first_day(today);
    let before = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(octet_length(zstd)), 0)::bigint AS "bytes!" FROM blobs
           WHERE created_at < ($2::date::timestamp AT TIME ZONE $1)"#,
        zone,
        first,
    )
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query!(
        r#"SELECT (((created_at AT TIME ZONE $1)::date - $2::date) / $3::int)::int AS "bucket!",
                  sum(octet_length(zstd))::bigint AS "bytes!"
           FROM blobs WHERE created_at >= ($2::date::timestamp AT TIME ZONE $1)
           GROUP BY 1"#,
        zone,
        first,
        window.bucket_days() as i32,
    )
    .fetch_all(pool)
    .await?;
    let mut added = vec![0i64; window.buckets()];
    for (bucket, bytes) in rows.into_iter().map(|r| (r.bucket, r.bytes)) {
        if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| added.get_mut(b)) {
            *slot += bytes;
        }
    }
    let mut running = before;
    Ok(added
        .into_iter()
        .map(|b| {
            running += b;
            running.max(0) as u64
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_year_is_counted_in_weeks_and_a_month_in_days() {
        let today = date!(2026 - 11 - 29);
        let month = Window::parse(Some(30));
        assert_eq!(month.buckets(), 30);
        assert_eq!(month.labels(today).first().unwrap(), "2026-10-31");
        assert_eq!(month.labels(today).last().unwrap(), "2026-11-29");
        let year = Window::parse(Some(365));
        assert_eq!(year.buckets(), 53);
        assert_eq!(Window::parse(Some(12)).days, 30);
    }

    #[test]
    fn rows_become_one_series_per_name_with_a_value_per_bucket() {
        let w = Window::parse(Some(30));
        let c = Columns::from_rows(
            w,
            vec![(0, "b".into(), 2), (29, "a".into(), 1), (31, "a".into(), 9)],
        );
        assert_eq!(c.series.len(), 2);
        assert_eq!(c.series[0].0, "a");
        assert_eq!(c.series[0].1[29], 1);
        assert_eq!(c.total(), 3);
    }
}
