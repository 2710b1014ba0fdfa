//! EventBridge schedule expressions for Stratus: parsing `rate(...)` and
//! `cron(...)`, and computing when a schedule fires, in UTC.
//!
//! This crate owns the expression language only: what `rate(5 minutes)` or
//! `cron(15 10 ? * 6L *)` means, which expressions AWS rejects (with an error that
//! says what is wrong and where), and the whole-minute instants a schedule fires
//! at. It also builds the `Scheduled Event` payload a rule delivers. Timers and
//! invoking functions belong to the scheduler.
//!
//! ```
//! use stratus_schedule::{format_time, parse};
//! use time::macros::datetime;
//!
//! let schedule = parse("cron(0 9 ? * MON-FRI *)")?;
//! let created = datetime!(2024-01-05 12:00 UTC);
//! let next = schedule.next_after(datetime!(2024-01-05 12:00 UTC), created);
//! assert_eq!(next.map(format_time).as_deref(), Some("2024-01-08T09:00:00Z"));
//! # Ok::<(), stratus_schedule::ScheduleError>(())
//! ```

use std::str::FromStr;

use time::{Duration, OffsetDateTime, UtcOffset};

mod cron;
pub mod zoned;

pub use cron::{Cron, CronField};

/// What the expression should look like, quoted when it looks like neither form.
const EXPECTED_FORMS: &str =
    "rate(value unit) or cron(minutes hours day-of-month month day-of-week year)";

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(value unit)`: fires every `every`, counted from when the rule was
    /// created. [`parse`] always produces a positive whole number of minutes.
    Rate {
        /// The period between fires.
        every: Duration,
    },
    /// `cron(...)`: fires at the minutes matching every field, in UTC.
    Cron(Cron),
}

/// Why a schedule expression was rejected. Every message starts with the
/// expression and says what is wrong with which part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is empty or blank.
    #[error("empty schedule expression; expected {EXPECTED_FORMS}")]
    Empty,
    /// Neither `rate(...)` nor `cron(...)`.
    #[error("{expr}: expected {EXPECTED_FORMS}")]
    Syntax {
        /// The expression, trimmed.
        expr: String,
    },
    /// `rate(...)` without exactly a value and a unit inside.
    #[error("{expr}: expected a value and a unit, as in rate(5 minutes)")]
    RateShape {
        /// The expression, trimmed.
        expr: String,
    },
    /// The rate value is zero, negative, fractional or not a number.
    #[error("{expr}: the value must be a positive whole number")]
    RateValue {
        /// The expression, trimmed.
        expr: String,
    },
    /// The rate period does not fit in a duration.
    #[error("{expr}: the value is too large")]
    RateTooLarge {
        /// The expression, trimmed.
        expr: String,
    },
    /// The rate unit is not minute(s), hour(s) or day(s).
    #[error("{expr}: unknown unit {unit}; expected minute(s), hour(s) or day(s)")]
    RateUnit {
        /// The expression, trimmed.
        expr: String,
        /// The unit as written.
        unit: String,
    },
    /// `rate(1 minutes)`: AWS wants the singular for 1.
    #[error("{expr}: use the singular unit {singular} when the value is 1")]
    RateSingular {
        /// The expression, trimmed.
        expr: String,
        /// The unit to write instead.
        singular: &'static str,
    },
    /// `rate(5 minute)`: AWS wants the plural above 1.
    #[error("{expr}: use the plural unit {plural} when the value is more than 1")]
    RatePlural {
        /// The expression, trimmed.
        expr: String,
        /// The unit to write instead.
        plural: &'static str,
    },
    /// `cron(...)` without exactly six fields.
    #[error("{expr}: expected 6 fields (minutes hours day-of-month month day-of-week year), found {found}")]
    CronFieldCount {
        /// The expression, trimmed.
        expr: String,
        /// How many fields there were.
        found: usize,
    },
    /// One cron field is malformed or out of range.
    #[error("{expr}: {field} field: {problem}")]
    CronField {
        /// The expression, trimmed.
        expr: String,
        /// The field at fault.
        field: CronField,
        /// What is wrong with it.
        problem: String,
    },
    /// Neither day-of-month nor day-of-week is `?`.
    #[error("{expr}: day-of-month and day-of-week cannot both be specified; use ? in one of them")]
    BothDays {
        /// The expression, trimmed.
        expr: String,
    },
    /// Both day-of-month and day-of-week are `?`.
    #[error("{expr}: day-of-month and day-of-week cannot both be ?; specify one of them")]
    NeitherDay {
        /// The expression, trimmed.
        expr: String,
    },
}

/// Parses `rate(value unit)` or `cron(six fields)`; whitespace around the
/// expression is ignored. Accepts what EventBridge documents; [`Cron`] lists the
/// cron fields and wildcards.
pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Err(ScheduleError::Empty);
    }
    if let Some(inner) = inside(expr, "rate(") {
        parse_rate(expr, inner)
    } else if let Some(inner) = inside(expr, "cron(") {
        Cron::parse(expr, inner).map(Schedule::Cron)
    } else {
        Err(ScheduleError::Syntax {
            expr: expr.to_owned(),
        })
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// The text between `prefix` and a final `)`.
fn inside<'a>(expr: &'a str, prefix: &str) -> Option<&'a str> {
    expr.strip_prefix(prefix)?.strip_suffix(')')
}

fn parse_rate(expr: &str, inner: &str) -> Result<Schedule, ScheduleError> {
    let owned = || expr.to_owned();
    let mut words = inner.split_whitespace();
    let (Some(value), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(ScheduleError::RateShape { expr: owned() });
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScheduleError::RateValue { expr: owned() });
    }
    // All digits, so the only way to fail is overflow.
    let value: u64 = value
        .parse()
        .map_err(|_| ScheduleError::RateTooLarge { expr: owned() })?;
    if value == 0 {
        return Err(ScheduleError::RateValue { expr: owned() });
    }
    let (singular, plural, unit_seconds) = match unit {
        "minute" | "minutes" => ("minute", "minutes", 60),
        "hour" | "hours" => ("hour", "hours", 3_600),
        "day" | "days" => ("day", "days", 86_400),
        _ => {
            return Err(ScheduleError::RateUnit {
                expr: owned(),
                unit: unit.to_owned(),
            })
        }
    };
    if value == 1 && unit != singular {
        return Err(ScheduleError::RateSingular {
            expr: owned(),
            singular,
        });
    }
    if value > 1 && unit != plural {
        return Err(ScheduleError::RatePlural {
            expr: owned(),
            plural,
        });
    }
    let seconds = value
        .checked_mul(unit_seconds)
        .and_then(|s| i64::try_from(s).ok())
        .ok_or_else(|| ScheduleError::RateTooLarge { expr: owned() })?;
    Ok(Schedule::Rate {
        every: Duration::seconds(seconds),
    })
}

impl Schedule {
    /// The first fire time strictly after `after`, in UTC.
    ///
    /// A rate fires at `anchor + k * every` for `k = 1, 2, …`, where `anchor` is
    /// when the rule was created, cut to the whole minute (EventBridge starts a
    /// rate when the rule is created). A cron ignores `anchor`. `None` when the
    /// schedule never fires again: a cron whose years have passed (the search ends
    /// with 2199), or a rate whose next time overflows or whose period is not
    /// positive.
    pub fn next_after(
        &self,
        after: OffsetDateTime,
        anchor: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        match self {
            Self::Cron(cron) => cron.next_after(after),
            Self::Rate { every } => next_rate(*every, after, anchor),
        }
    }

    /// Up to `n` consecutive fire times after `after` (fewer when the schedule
    /// ends); see [`Schedule::next_after`].
    pub fn upcoming(
        &self,
        after: OffsetDateTime,
        anchor: OffsetDateTime,
        n: usize,
    ) -> Vec<OffsetDateTime> {
        // `n` is caller-chosen; don't let it size the allocation up front.
        let mut times = Vec::with_capacity(n.min(64));
        let mut cursor = after;
        while times.len() < n {
            let Some(next) = self.next_after(cursor, anchor) else {
                break;
            };
            times.push(next);
            cursor = next;
        }
        times
    }
}

fn next_rate(
    every: Duration,
    after: OffsetDateTime,
    anchor: OffsetDateTime,
) -> Option<OffsetDateTime> {
    if !every.is_positive() {
        return None;
    }
    let anchor = anchor
        .checked_to_offset(UtcOffset::UTC)?
        .truncate_to_minute();
    let period = every.whole_nanoseconds();
    let elapsed = (after - anchor).whole_nanoseconds();
    // Periods elapsed by `after`, plus one; the first fire is one period in.
    let k = if elapsed < 0 { 1 } else { elapsed / period + 1 };
    let offset = k.checked_mul(period)?;
    const NANOS: i128 = 1_000_000_000;
    let offset = Duration::new(
        i64::try_from(offset / NANOS).ok()?,
        i32::try_from(offset % NANOS).ok()?,
    );
    anchor.checked_add(offset)
}

/// Formats an instant the way EventBridge events carry `time`:
/// `2024-01-02T03:04:00Z` (UTC, whole seconds).
pub fn format_time(time: OffsetDateTime) -> String {
    // Converting to UTC only fails within a day of the representable range; the
    // fields are then printed as they are.
    let t = time.checked_to_offset(UtcOffset::UTC).unwrap_or(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The `Scheduled Event` EventBridge delivers to a rule's targets when it fires
/// at `time`.
pub fn scheduled_event(
    rule_arn: &str,
    time: OffsetDateTime,
    account: &str,
    region: &str,
    id: &str,
) -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": format_time(time),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn rates_parse_to_their_period() {
        let cases = [
            ("rate(1 minute)", Duration::minutes(1)),
            ("rate(5 minutes)", Duration::minutes(5)),
            ("rate(1 hour)", Duration::hours(1)),
            ("rate(12 hours)", Duration::hours(12)),
            ("rate(1 day)", Duration::days(1)),
            ("  rate(7 days)\n", Duration::days(7)),
        ];
        for (expr, every) in cases {
            assert_eq!(parse(expr), Ok(Schedule::Rate { every }), "{expr}");
        }
        assert_eq!(
            "rate(2 hours)".parse(),
            Ok(Schedule::Rate {
                every: Duration::hours(2)
            })
        );
    }

    #[test]
    fn a_rate_fires_whole_periods_after_the_rule_was_created() {
        let schedule = parse("rate(5 minutes)").unwrap();
        // Created at 12:00:37: the anchor is cut to 12:00, so fires land on :05, :10, …
        let anchor = datetime!(2024-01-01 12:00:37 UTC);
        let next = |after| schedule.next_after(after, anchor);
        assert_eq!(next(anchor), Some(datetime!(2024-01-01 12:05 UTC)));
        assert_eq!(
            next(datetime!(2024-01-01 12:05 UTC)),
            Some(datetime!(2024-01-01 12:10 UTC))
        );
        assert_eq!(
            next(datetime!(2024-01-01 12:07:30 UTC)),
            Some(datetime!(2024-01-01 12:10 UTC))
        );
        // Before the rule existed, the first fire is still one period after creation.
        assert_eq!(
            next(datetime!(2023-06-01 00:00 UTC)),
            Some(datetime!(2024-01-01 12:05 UTC))
        );
        // Long after: still on the anchor's grid, not the wall clock's.
        assert_eq!(
            next(datetime!(2024-03-01 00:02 UTC)),
            Some(datetime!(2024-03-01 00:05 UTC))
        );
    }

    #[test]
    fn a_rate_anchor_in_another_offset_is_the_same_instant() {
        let schedule = parse("rate(3 hours)").unwrap();
        let anchor = datetime!(2024-01-01 12:00 +02:00);
        let next = schedule.next_after(datetime!(2024-01-01 10:00 UTC), anchor);
        assert_eq!(next, Some(datetime!(2024-01-01 13:00 UTC)));
        assert_eq!(next.map(|t| t.offset()), Some(UtcOffset::UTC));
    }

    #[test]
    fn upcoming_lists_consecutive_fires_and_stops_when_the_schedule_ends() {
        let daily = parse("rate(1 day)").unwrap();
        let anchor = datetime!(2024-02-27 10:30 UTC);
        assert_eq!(
            daily.upcoming(datetime!(2024-02-28 10:30 UTC), anchor, 3),
            [
                datetime!(2024-02-29 10:30 UTC),
                datetime!(2024-03-01 10:30 UTC),
                datetime!(2024-03-02 10:30 UTC),
            ]
        );
        let fifth_friday = parse("cron(0 12 ? * 6#5 *)").unwrap();
        assert_eq!(
            fifth_friday.upcoming(datetime!(2024-01-01 00:00 UTC), anchor, 3),
            [
                datetime!(2024-03-29 12:00 UTC),
                datetime!(2024-05-31 12:00 UTC),
                datetime!(2024-08-30 12:00 UTC),
            ]
        );
        let ending = parse("cron(0 0 1 1 ? 2025-2027)").unwrap();
        assert_eq!(
            ending.upcoming(datetime!(2024-01-01 00:00 UTC), anchor, 10),
            [
                datetime!(2025-01-01 00:00 UTC),
                datetime!(2026-01-01 00:00 UTC),
                datetime!(2027-01-01 00:00 UTC),
            ]
        );
    }

    #[test]
    fn a_rate_with_no_positive_period_never_fires() {
        let now = datetime!(2024-01-01 00:00 UTC);
        for every in [Duration::ZERO, Duration::minutes(-5)] {
            assert_eq!(Schedule::Rate { every }.next_after(now, now), None);
        }
    }

    #[test]
    fn an_empty_expression_says_what_is_expected() {
        for blank in ["", "  \n"] {
            assert_eq!(
                parse(blank).map_err(|e| e.to_string()),
                Err("empty schedule expression; expected rate(value unit) or cron(minutes hours day-of-month month day-of-week year)".to_owned())
            );
        }
    }

    #[test]
    fn invalid_expressions_say_what_is_wrong_and_where() {
        let cases = [
            ("every 5 minutes", "expected rate(value unit) or cron(minutes hours day-of-month month day-of-week year)"),
            ("rate(5 minutes", "expected rate(value unit) or cron(minutes hours day-of-month month day-of-week year)"),
            ("rate(5)", "expected a value and a unit, as in rate(5 minutes)"),
            ("rate(0 minutes)", "the value must be a positive whole number"),
            ("rate(-5 minutes)", "the value must be a positive whole number"),
            ("rate(1.5 hours)", "the value must be a positive whole number"),
            ("rate(99999999999999999999 days)", "the value is too large"),
            ("rate(999999999999999999 days)", "the value is too large"),
            ("rate(5 weeks)", "unknown unit weeks; expected minute(s), hour(s) or day(s)"),
            ("rate(1 minutes)", "use the singular unit minute when the value is 1"),
            ("rate(1 days)", "use the singular unit day when the value is 1"),
            ("rate(5 minute)", "use the plural unit minutes when the value is more than 1"),
            ("rate(2 hour)", "use the plural unit hours when the value is more than 1"),
            ("cron(0 12 * * ?)", "expected 6 fields (minutes hours day-of-month month day-of-week year), found 5"),
            ("cron(0 12 * * * *)", "day-of-month and day-of-week cannot both be specified; use ? in one of them"),
            ("cron(0 12 5 * MON *)", "day-of-month and day-of-week cannot both be specified; use ? in one of them"),
            ("cron(0 12 ? * ? *)", "day-of-month and day-of-week cannot both be ?; specify one of them"),
            ("cron(61 * * * ? *)", "minutes field: 61 is out of range 0-59"),
            ("cron(abc * * * ? *)", "minutes field: abc is not a number"),
            ("cron(1,,2 * * * ? *)", "minutes field: 1,,2 has an empty list item"),
            ("cron(30-10 * * * ? *)", "minutes field: range 30-10 is backwards; write the smaller value first"),
            ("cron(10- * * * ? *)", "minutes field: 10- is an incomplete range"),
            ("cron(0/0 * * * ? *)", "minutes field: step 0 is out of range 1-60"),
            ("cron(5/ * * * ? *)", "minutes field: 5/ is missing the step after /"),
            ("cron(? 0 * * ? *)", "minutes field: ? is only allowed in the day-of-month and day-of-week fields"),
            ("cron(0 24 * * ? *)", "hours field: 24 is out of range 0-23"),
            ("cron(0 L * * ? *)", "hours field: L is only allowed in the day-of-month and day-of-week fields"),
            ("cron(0 0 32 * ? *)", "day-of-month field: 32 is out of range 1-31"),
            ("cron(0 0 0 * ? *)", "day-of-month field: 0 is out of range 1-31"),
            ("cron(0 0 L-3 * ? *)", "day-of-month field: L-3 is not supported; use L (last day) or LW (last weekday)"),
            ("cron(0 0 1-5W * ? *)", "day-of-month field: 1-5W is not valid; W must follow a single day of the month, as in 15W"),
            ("cron(0 0 32W * ? *)", "day-of-month field: 32 is out of range 1-31"),
            ("cron(0 0 L,15 * ? *)", "day-of-month field: L cannot be combined with other values; use it alone"),
            ("cron(0 0 1#2 * ? *)", "day-of-month field: # is only allowed in the day-of-week field"),
            ("cron(0 0 ?,1 * MON *)", "day-of-month field: ?,1: ? must be used alone"),
            ("cron(0 0 ? 13 MON *)", "month field: 13 is out of range 1-12"),
            ("cron(0 0 ? FOO MON *)", "month field: FOO is not a month (1-12 or JAN-DEC)"),
            ("cron(0 0 ? * 0 *)", "day-of-week field: 0 is out of range 1-7"),
            ("cron(0 0 ? * MONDAY *)", "day-of-week field: MONDAY is not a day of the week (1-7 or SUN-SAT)"),
            ("cron(0 0 ? * 2#6 *)", "day-of-week field: occurrence 6 in 2#6 is out of range 1-5"),
            ("cron(0 0 ? * 2#1,3#2 *)", "day-of-week field: 2#1 cannot be combined with other values; use it alone"),
            ("cron(0 0 ? * 6L,2 *)", "day-of-week field: 6L cannot be combined with other values; use it alone"),
            ("cron(0 0 ? * */2 *)", "day-of-week field: steps (/) are not allowed in the day-of-week field"),
            ("cron(0 0 ? * 15W *)", "day-of-week field: W is only allowed in the day-of-month field"),
            ("cron(0 0 * * ? 1969)", "year field: 1969 is out of range 1970-2199"),
            ("cron(0 0 * * ? 2200)", "year field: 2200 is out of range 1970-2199"),
        ];
        let mut failures = Vec::new();
        for (expr, problem) in cases {
            // Every message names the expression first.
            let want = format!("{expr}: {problem}");
            match parse(expr) {
                Err(err) if err.to_string() == want => {}
                Err(err) => failures.push(format!("{expr:?}:\n  got  {err}\n  want {want}")),
                Ok(schedule) => failures.push(format!("{expr:?}: accepted as {schedule:?}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn format_time_is_the_eventbridge_utc_form() {
        assert_eq!(
            format_time(datetime!(2024-01-02 03:04 UTC)),
            "2024-01-02T03:04:00Z"
        );
        assert_eq!(
            format_time(datetime!(2024-01-02 00:30:59.9 +01:00)),
            "2024-01-01T23:30:59Z"
        );
    }

    #[test]
    fn scheduled_event_has_the_eventbridge_shape() {
        let arn = "arn:aws:events:us-east-1:123456789012:rule/nightly";
        let event = scheduled_event(
            arn,
            datetime!(2024-01-02 03:04 UTC),
            "123456789012",
            "us-east-1",
            "89d1a02d-5ec7-412e-82f5-13505f849b41",
        );
        assert_eq!(
            event,
            serde_json::json!({
                "version": "0",
                "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": "123456789012",
                "time": "2024-01-02T03:04:00Z",
                "region": "us-east-1",
                "resources": [arn],
                "detail": {}
            })
        );
    }
}
