//! Schedules of Application Auto Scaling's scheduled actions: `at(yyyy-mm-ddThh:mm:ss)`
//! (once), `rate(...)` and `cron(...)` (this crate's EventBridge language), read in
//! an IANA time zone (`jiff`'s bundled tz database) and bounded by StartTime/EndTime.
//! Used by the server's autoscaler and to check `concurrencyAutoscaling` in
//! serverless.yml.
//!
//! A cron is matched against the wall-clock time of its zone: the next matching
//! local minute is found by `stratus-schedule` on local civil time, then turned back
//! into an instant (a local time skipped by a DST change runs at the first instant
//! after the gap, as jiff's "compatible" rule has it).

use crate::Schedule;
use jiff::tz::TimeZone;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// A parsed schedule with its zone.
#[derive(Debug, Clone)]
pub struct When {
    expr: Expr,
    tz: TimeZone,
}

#[derive(Debug, Clone)]
enum Expr {
    At(jiff::civil::DateTime),
    Every(Schedule),
}

/// Parses a ScheduledAction's `Schedule` and `Timezone` (default UTC). The error
/// says what is wrong, for a ValidationException.
pub fn parse(schedule: &str, timezone: Option<&str>) -> Result<When, String> {
    let tz = match timezone {
        None => TimeZone::UTC,
        Some(name) => TimeZone::get(name)
            .map_err(|_| format!("Time zone {name} is not a valid IANA time zone name"))?,
    };
    let s = schedule.trim();
    let expr = if let Some(inner) = s.strip_prefix("at(").and_then(|r| r.strip_suffix(')')) {
        let dt: jiff::civil::DateTime = inner.trim().parse().map_err(|_| {
            format!("Invalid schedule {s}: at() takes a date and time as yyyy-mm-ddThh:mm:ss")
        })?;
        Expr::At(dt)
    } else if s.starts_with("rate(") || s.starts_with("cron(") {
        Expr::Every(crate::parse(s).map_err(|e| format!("Invalid schedule {e}"))?)
    } else {
        return Err(format!(
            "Invalid schedule {s}: expected at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(fields)"
        ));
    };
    Ok(When { expr, tz })
}

fn to_jiff(t: OffsetDateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_second(t.unix_timestamp()).ok()
}

fn from_jiff(t: jiff::Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.as_second()).ok()
}

/// `t` as wall-clock time of `tz`, carried in an OffsetDateTime at UTC (the form
/// the cron matcher reads).
fn local(t: OffsetDateTime, tz: &TimeZone) -> Option<OffsetDateTime> {
    let dt = to_jiff(t)?.to_zoned(tz.clone()).datetime();
    let date = time::Date::from_calendar_date(
        i32::from(dt.year()),
        time::Month::try_from(u8::try_from(dt.month()).ok()?).ok()?,
        u8::try_from(dt.day()).ok()?,
    )
    .ok()?;
    let tod = time::Time::from_hms(
        u8::try_from(dt.hour()).ok()?,
        u8::try_from(dt.minute()).ok()?,
        u8::try_from(dt.second()).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, tod).assume_offset(UtcOffset::UTC))
}

/// Wall-clock time (as [`local`] makes it) of `tz` back to an instant.
fn unlocal(l: OffsetDateTime, tz: &TimeZone) -> Option<OffsetDateTime> {
    let dt = jiff::civil::DateTime::new(
        i16::try_from(l.year()).ok()?,
        i8::try_from(u8::from(l.month())).ok()?,
        i8::try_from(l.day()).ok()?,
        i8::try_from(l.hour()).ok()?,
        i8::try_from(l.minute()).ok()?,
        i8::try_from(l.second()).ok()?,
        0,
    )
    .ok()?;
    from_jiff(dt.to_zoned(tz.clone()).ok()?.timestamp())
}

impl When {
    /// The first time after `after` the action runs, within [start, end]; `anchor`
    /// is when a rate started counting (the action's creation or StartTime).
    pub fn next_after(
        &self,
        after: OffsetDateTime,
        anchor: OffsetDateTime,
        start: Option<OffsetDateTime>,
        end: Option<OffsetDateTime>,
    ) -> Option<OffsetDateTime> {
        // Fire times before StartTime are skipped: search from just before it.
        let from = match start {
            Some(s) if s > after => s - time::Duration::SECOND,
            _ => after,
        };
        let next = match &self.expr {
            Expr::At(dt) => {
                let at = from_jiff(dt.to_zoned(self.tz.clone()).ok()?.timestamp())?;
                (at > from).then_some(at)?
            }
            Expr::Every(s @ Schedule::Rate { .. }) => s.next_after(from, anchor)?,
            Expr::Every(s @ Schedule::Cron(_)) => {
                let mut cursor = local(from, &self.tz)?;
                // A local time repeated by a DST change may map to an instant not
                // after `from`: look further.
                let mut found = None;
                for _ in 0..4 {
                    let l = s.next_after(cursor, anchor)?;
                    let t = unlocal(l, &self.tz)?;
                    if t > from {
                        found = Some(t);
                        break;
                    }
                    cursor = l;
                }
                found?
            }
        };
        match end {
            Some(e) if next > e => None,
            _ => Some(next),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn at_runs_once_in_its_zone() {
        let w = parse("at(2026-03-01T09:30:00)", Some("Europe/Paris"))
            .unwrap_or_else(|e| panic!("{e}"));
        let before = datetime!(2026-03-01 00:00 UTC);
        // 09:30 in Paris (UTC+1 in March before DST) is 08:30 UTC.
        assert_eq!(
            w.next_after(before, before, None, None),
            Some(datetime!(2026-03-01 08:30 UTC))
        );
        assert_eq!(
            w.next_after(datetime!(2026-03-01 08:30 UTC), before, None, None),
            None
        );
    }

    #[test]
    fn cron_follows_local_time_across_dst() {
        let w =
            parse("cron(0 9 * * ? *)", Some("America/New_York")).unwrap_or_else(|e| panic!("{e}"));
        let a = datetime!(2026-03-07 00:00 UTC);
        // EST (UTC-5) on the 7th, EDT (UTC-4) from the 8th.
        assert_eq!(
            w.next_after(a, a, None, None),
            Some(datetime!(2026-03-07 14:00 UTC))
        );
        let b = datetime!(2026-03-08 12:00 UTC);
        assert_eq!(
            w.next_after(b, a, None, None),
            Some(datetime!(2026-03-08 13:00 UTC))
        );
    }

    #[test]
    fn start_and_end_bound_the_fires() {
        let w = parse("rate(1 hour)", None).unwrap_or_else(|e| panic!("{e}"));
        let anchor = datetime!(2026-01-01 00:00 UTC);
        let start = datetime!(2026-01-01 05:30 UTC);
        assert_eq!(
            w.next_after(anchor, anchor, Some(start), None),
            Some(datetime!(2026-01-01 06:00 UTC))
        );
        let end = datetime!(2026-01-01 05:59 UTC);
        assert_eq!(w.next_after(anchor, anchor, Some(start), Some(end)), None);
    }

    #[test]
    fn bad_schedules_and_zones_say_what_is_wrong() {
        let e = parse("at(tomorrow)", None).err().unwrap_or_default();
        assert!(e.contains("yyyy-mm-ddThh:mm:ss"), "{e}");
        let e = parse("cron(0 9 * * * *)", None).err().unwrap_or_default();
        assert!(e.starts_with("Invalid schedule"), "{e}");
        let e = parse("every day", None).err().unwrap_or_default();
        assert!(e.contains("expected at("), "{e}");
        let e = parse("rate(5 minutes)", Some("Mars/Olympus"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("Mars/Olympus"), "{e}");
    }
}
