//! Display formatting shared by every page: times in the reader's zone and format, sizes in
//! human units. Pure functions; the web layer calls them through `CurrentUser`.

use time::OffsetDateTime;

/// Shown where a time is missing (never ran, never synced).
pub const NO_TIME: &str = "—";

/// Formats `t` in `timezone` (an IANA name; UTC when unknown) with a strftime `format`.
pub fn time_in_zone(t: OffsetDateTime, timezone: &str, format: &str) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(t.unix_timestamp()) else {
        return t.to_string();
    };
    let tz = jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::fmt::strtime::format(format, &ts.to_zoned(tz)).unwrap_or_else(|_| ts.to_string())
}

/// The zone [`time_in_zone`] really uses for `timezone`: its IANA name, or UTC when unknown.
pub fn zone_name(timezone: &str) -> String {
    match jiff::tz::TimeZone::get(timezone) {
        Ok(_) => timezone.to_string(),
        Err(_) => "UTC".to_string(),
    }
}

/// A byte count as people read it: "512 bytes", "12 KB", "3.4 MB".
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 40 => format!("{:.1} TB", b as f64 / (1u64 << 40) as f64),
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1024 * 1024 => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// How far `t` is from `now` in words: "in 4 min", "in 35 s", "3 min ago", "now".
pub fn relative(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (t - now).whole_seconds();
    let n = secs.unsigned_abs();
    let span = match n {
        0..=4 => return "now".into(),
        5..=59 => format!("{n} s"),
        60..=3599 => format!("{} min", n / 60),
        3600..=86_399 => match (n % 3600) / 60 {
            0 => format!("{} h", n / 3600),
            m => format!("{} h {m} min", n / 3600),
        },
        _ => format!("{} days", n / 86_400),
    };
    if secs > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A count with thousands separated: "12,345".
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::from(if n < 0 { "-" } else { "" });
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_as_people_say_them() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let at = |s: i64| relative(now + time::Duration::seconds(s), now);
        assert_eq!(at(0), "now");
        assert_eq!(at(35), "in 35 s");
        assert_eq!(at(4 * 60 + 10), "in 4 min");
        assert_eq!(at(-180), "3 min ago");
        assert_eq!(at(2 * 3600 + 300), "in 2 h 5 min");
        assert_eq!(at(3 * 86_400), "in 3 days");
    }

    #[test]
    fn times_follow_the_readers_zone_and_fall_back_to_utc() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(
            time_in_zone(t, "Europe/Berlin", "%Y-%m-%d %H:%M"),
            "2023-11-14 23:13"
        );
        assert_eq!(time_in_zone(t, "Nowhere/Else", "%H:%M %Z"), "22:13 UTC");
    }

    #[test]
    fn sizes_use_the_largest_fitting_unit() {
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(12 * 1024), "12 KB");
        assert_eq!(size(3_565_158), "3.4 MB");
        assert_eq!(size(5 << 30), "5.0 GB");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-1000), "-1,000");
    }
}
