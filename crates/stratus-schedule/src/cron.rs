//! `cron(...)` expressions: the six fields, and the next minute they all match.

use std::fmt;

use time::{Date, Duration, Month, OffsetDateTime, UtcOffset};

use crate::ScheduleError;

const FIRST_YEAR: u16 = 1970;
/// The last year a cron expression can name, and so where every search stops.
const LAST_YEAR: u16 = 2199;

/// One of the six fields of a cron expression, named as error messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    /// Minutes, 0-59.
    Minutes,
    /// Hours, 0-23.
    Hours,
    /// Day-of-month, 1-31.
    DayOfMonth,
    /// Month, 1-12 or JAN-DEC.
    Month,
    /// Day-of-week, 1-7 (1 = Sunday) or SUN-SAT.
    DayOfWeek,
    /// Year, 1970-2199.
    Year,
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Minutes => "minutes",
            Self::Hours => "hours",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
            Self::Year => "year",
        })
    }
}

/// A parsed `cron(Minutes Hours Day-of-month Month Day-of-week Year)` expression,
/// evaluated in UTC.
///
/// Field syntax follows the EventBridge table ("Schedule expressions for rules"):
///
/// | Field        | Values          | Wildcards         |
/// |--------------|-----------------|-------------------|
/// | Minutes      | 0-59            | `, - * /`         |
/// | Hours        | 0-23            | `, - * /`         |
/// | Day-of-month | 1-31            | `, - * ? / L W`   |
/// | Month        | 1-12 or JAN-DEC | `, - * /`         |
/// | Day-of-week  | 1-7 or SUN-SAT  | `, - * ? L #`     |
/// | Year         | 1970-2199       | `, - * /`         |
///
/// `?` means "any" and exactly one of day-of-month and day-of-week must be `?`.
/// `L` is the last day of the month (day-of-month) or `6L` the last Friday
/// (day-of-week); `LW` the last weekday; `15W` the weekday nearest the 15th within
/// the month; `2#3` the third Monday. Names are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: ValueSet,
    hours: ValueSet,
    days: DaySpec,
    months: ValueSet,
    years: ValueSet,
}

/// Which days of a month fire. Exactly one of day-of-month and day-of-week is `?`,
/// so the other one alone decides, and one enum holds either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaySpec {
    /// Day-of-month values (`*`, lists, ranges, steps).
    MonthDays(ValueSet),
    /// `L`: the last day of the month.
    LastDay,
    /// `LW`: the last weekday (Monday-Friday) of the month.
    LastWeekday,
    /// `15W`: the weekday nearest the given day, without leaving the month.
    NearestWeekday(u8),
    /// Day-of-week values, 1 = Sunday … 7 = Saturday.
    WeekDays(ValueSet),
    /// `6L`: the last given weekday of the month.
    LastOfWeekday(u8),
    /// `2#3`: the nth given weekday of the month.
    NthWeekday { weekday: u8, nth: u8 },
}

/// A set of field values, as bits offset from the field's minimum. 256 bits cover
/// the widest field (years 1970-2199).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ValueSet {
    min: u16,
    words: [u64; 4],
}

impl ValueSet {
    fn empty(min: u16) -> Self {
        Self { min, words: [0; 4] }
    }

    fn insert(&mut self, value: u16) {
        let index = usize::from(value - self.min);
        self.words[index / 64] |= 1 << (index % 64);
    }

    fn contains(&self, value: u16) -> bool {
        self.first_at_or_after(value) == Some(value)
    }

    /// The smallest member that is `>= value`.
    fn first_at_or_after(&self, value: u16) -> Option<u16> {
        let start = usize::from(value.saturating_sub(self.min));
        let mut word = start / 64;
        let mut bits = *self.words.get(word)? & (u64::MAX << (start % 64));
        loop {
            if bits != 0 {
                let index = word * 64 + bits.trailing_zeros() as usize;
                return u16::try_from(index).ok().map(|i| self.min + i);
            }
            word += 1;
            bits = *self.words.get(word)?;
        }
    }
}

/// What one field accepts.
#[derive(Debug)]
struct FieldSpec {
    field: CronField,
    min: u16,
    max: u16,
    /// Names for `min`, `min + 1`, …, matched case-insensitively.
    names: &'static [&'static str],
    /// Completes "`token` …" when a token is neither a number nor a name.
    not_a_value: &'static str,
}

const MINUTES: FieldSpec = FieldSpec {
    field: CronField::Minutes,
    min: 0,
    max: 59,
    names: &[],
    not_a_value: "is not a number",
};
const HOURS: FieldSpec = FieldSpec {
    field: CronField::Hours,
    min: 0,
    max: 23,
    names: &[],
    not_a_value: "is not a number",
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    field: CronField::DayOfMonth,
    min: 1,
    max: 31,
    names: &[],
    not_a_value: "is not a number",
};
const MONTH: FieldSpec = FieldSpec {
    field: CronField::Month,
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    not_a_value: "is not a month (1-12 or JAN-DEC)",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    field: CronField::DayOfWeek,
    min: 1,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    not_a_value: "is not a day of the week (1-7 or SUN-SAT)",
};
const YEAR: FieldSpec = FieldSpec {
    field: CronField::Year,
    min: FIRST_YEAR,
    max: LAST_YEAR,
    names: &[],
    not_a_value: "is not a number",
};

impl Cron {
    /// Parses the text between `cron(` and `)`; `expr` is the whole expression,
    /// quoted in errors.
    pub(crate) fn parse(expr: &str, inner: &str) -> Result<Self, ScheduleError> {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        let [minutes, hours, day_of_month, month, day_of_week, year] = fields[..] else {
            return Err(ScheduleError::CronFieldCount {
                expr: expr.to_owned(),
                found: fields.len(),
            });
        };
        let at = |field: CronField| {
            move |problem: String| ScheduleError::CronField {
                expr: expr.to_owned(),
                field,
                problem,
            }
        };
        let minutes = parse_plain(minutes, &MINUTES).map_err(at(CronField::Minutes))?;
        let hours = parse_plain(hours, &HOURS).map_err(at(CronField::Hours))?;
        let day_of_month = parse_day_of_month(day_of_month).map_err(at(CronField::DayOfMonth))?;
        let months = parse_plain(month, &MONTH).map_err(at(CronField::Month))?;
        let day_of_week = parse_day_of_week(day_of_week).map_err(at(CronField::DayOfWeek))?;
        let years = parse_plain(year, &YEAR).map_err(at(CronField::Year))?;
        let days = match (day_of_month, day_of_week) {
            (Some(_), Some(_)) => {
                return Err(ScheduleError::BothDays {
                    expr: expr.to_owned(),
                })
            }
            (None, None) => {
                return Err(ScheduleError::NeitherDay {
                    expr: expr.to_owned(),
                })
            }
            (Some(days), None) | (None, Some(days)) => days,
        };
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            years,
        })
    }

    /// The first whole minute strictly after `after` that matches every field, in
    /// UTC; `None` when there is none up to the end of 2199.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let start = after
            .checked_to_offset(UtcOffset::UTC)?
            .truncate_to_minute()
            .checked_add(Duration::MINUTE)?;
        let from = (start.day(), start.hour(), start.minute());
        let (start_year, start_month) = (start.year(), u8::from(start.month()));
        let first_year = start_year.clamp(i32::from(FIRST_YEAR), i32::from(LAST_YEAR) + 1);
        // Each loop jumps straight to the next allowed value of its field; a field
        // restarts at its minimum once a larger field has moved past the start.
        let mut year = self
            .years
            .first_at_or_after(u16::try_from(first_year).ok()?);
        while let Some(y) = year {
            let in_start_year = i32::from(y) == start_year;
            let mut month =
                self.months
                    .first_at_or_after(if in_start_year { start_month.into() } else { 1 });
            while let Some(m) = month {
                let in_start_month = in_start_year && m == u16::from(start_month);
                if let Some(found) = self.first_in_month(y, m, in_start_month.then_some(from)) {
                    return Some(found);
                }
                month = self.months.first_at_or_after(m + 1);
            }
            year = self.years.first_at_or_after(y + 1);
        }
        None
    }

    /// The first matching minute in one month, at or after `from` (day, hour,
    /// minute) when given.
    fn first_in_month(
        &self,
        year: u16,
        month: u16,
        from: Option<(u8, u8, u8)>,
    ) -> Option<OffsetDateTime> {
        let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
        let year = i32::from(year);
        let days = self.days.matching_days(year, month);
        let (from_day, from_hour, from_minute) = from.unwrap_or((1, 0, 0));
        let mut day = next_day(days, from_day);
        while let Some(d) = day {
            let on_start_day = from.is_some() && d == from_day;
            let mut hour =
                self.hours
                    .first_at_or_after(if on_start_day { from_hour.into() } else { 0 });
            while let Some(h) = hour {
                let in_start_hour = on_start_day && h == u16::from(from_hour);
                let minute = self.minutes.first_at_or_after(if in_start_hour {
                    from_minute.into()
                } else {
                    0
                });
                if let Some(minute) = minute {
                    let time = Date::from_calendar_date(year, month, d)
                        .ok()?
                        .with_hms(u8::try_from(h).ok()?, u8::try_from(minute).ok()?, 0)
                        .ok()?;
                    return Some(time.assume_utc());
                }
                hour = self.hours.first_at_or_after(h + 1);
            }
            day = next_day(days, d + 1);
        }
        None
    }
}

impl DaySpec {
    /// The days of `month` that fire, as bit `d` for day `d`.
    fn matching_days(self, year: i32, month: Month) -> u32 {
        let last = month.length(year);
        let Ok(first) = Date::from_calendar_date(year, month, 1) else {
            return 0;
        };
        let first_weekday = first.weekday().number_from_sunday();
        // 1 = Sunday … 7 = Saturday, as in the day-of-week field.
        let weekday_of = |day: u8| (first_weekday - 1 + (day - 1)) % 7 + 1;
        let bit = |day: u8| 1u32 << day;
        let days_where = |keep: &dyn Fn(u8) -> bool| {
            (1..=last)
                .filter(|&d| keep(d))
                .fold(0, |mask, d| mask | bit(d))
        };
        match self {
            Self::MonthDays(set) => days_where(&|d| set.contains(d.into())),
            Self::WeekDays(set) => days_where(&|d| set.contains(weekday_of(d).into())),
            Self::LastDay => bit(last),
            Self::LastWeekday => bit(match weekday_of(last) {
                1 => last - 2,
                7 => last - 1,
                _ => last,
            }),
            // A day the month lacks (31W in April) never fires that month.
            Self::NearestWeekday(day) if day > last => 0,
            // The nearest weekday never crosses into another month: a Saturday 1st
            // moves to Monday 3rd, a Sunday last day to Friday.
            Self::NearestWeekday(day) => bit(match weekday_of(day) {
                7 if day == 1 => 3,
                7 => day - 1,
                1 if day == last => day - 2,
                1 => day + 1,
                _ => day,
            }),
            Self::LastOfWeekday(weekday) => bit(last - (weekday_of(last) + 7 - weekday) % 7),
            Self::NthWeekday { weekday, nth } => {
                let day = 1 + (weekday + 7 - first_weekday) % 7 + 7 * (nth - 1);
                if day <= last {
                    bit(day)
                } else {
                    0
                }
            }
        }
    }
}

/// The smallest day in `days` (bit `d` = day `d`) that is `>= from`.
fn next_day(days: u32, from: u8) -> Option<u8> {
    let rest = days.checked_shr(from.into())?.checked_shl(from.into())?;
    (rest != 0).then(|| rest.trailing_zeros() as u8)
}

/// Rejects wildcards the field does not take, with the field named in the message.
fn reject_foreign(text: &str, field: CronField) -> Result<(), String> {
    let day_field = matches!(field, CronField::DayOfMonth | CronField::DayOfWeek);
    if text.contains('?') {
        if !day_field {
            return Err("? is only allowed in the day-of-month and day-of-week fields".into());
        }
        if text != "?" {
            return Err(format!("{text}: ? must be used alone"));
        }
    }
    if text.contains('#') && field != CronField::DayOfWeek {
        return Err("# is only allowed in the day-of-week field".into());
    }
    if text.contains('/') && field == CronField::DayOfWeek {
        return Err("steps (/) are not allowed in the day-of-week field".into());
    }
    for item in text.split(',') {
        match marker(&item.to_ascii_uppercase()) {
            Some('L') if !day_field => {
                return Err("L is only allowed in the day-of-month and day-of-week fields".into())
            }
            Some('W') if field != CronField::DayOfMonth => {
                return Err("W is only allowed in the day-of-month field".into())
            }
            _ => {}
        }
    }
    Ok(())
}

/// Recognises an `L` or `W` token (`L`, `L-3`, `LW`, `5L`, `15W`) in an upper-cased
/// list item, so a field that does not take them can say so.
fn marker(item: &str) -> Option<char> {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if item == "L" || item.starts_with("L-") {
        Some('L')
    } else if item == "LW" || item.strip_suffix('W').is_some_and(numeric) {
        Some('W')
    } else if item.strip_suffix('L').is_some_and(numeric) {
        Some('L')
    } else {
        None
    }
}

/// Minutes, hours, month and year: lists of values, ranges and steps only.
fn parse_plain(text: &str, spec: &FieldSpec) -> Result<ValueSet, String> {
    reject_foreign(text, spec.field)?;
    parse_set(text, spec)
}

/// `?`, `L`, `LW`, `15W`, or values; `None` for `?`.
fn parse_day_of_month(text: &str) -> Result<Option<DaySpec>, String> {
    reject_foreign(text, CronField::DayOfMonth)?;
    if text == "?" {
        return Ok(None);
    }
    let upper = text.to_ascii_uppercase();
    reject_special_in_list(text, &['L', 'W'])?;
    if upper == "L" {
        return Ok(Some(DaySpec::LastDay));
    }
    if upper == "LW" {
        return Ok(Some(DaySpec::LastWeekday));
    }
    if upper.starts_with("L-") {
        // Quartz has L-n (n days before the last); EventBridge does not document it.
        return Err(format!(
            "{text} is not supported; use L (last day) or LW (last weekday)"
        ));
    }
    if let Some(day) = upper.strip_suffix('W') {
        if day.is_empty() || !day.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{text} is not valid; W must follow a single day of the month, as in 15W"
            ));
        }
        let day = parse_value(day, &DAY_OF_MONTH)?;
        return Ok(Some(DaySpec::NearestWeekday(
            u8::try_from(day).map_err(|_| format!("{day} is out of range 1-31"))?,
        )));
    }
    if upper.contains('W') {
        return Err(format!(
            "{text} is not valid; W must follow a single day of the month, as in 15W"
        ));
    }
    if upper.contains('L') {
        return Err(format!(
            "{text} is not valid; L must stand alone in this field, as L or LW"
        ));
    }
    parse_set(text, &DAY_OF_MONTH).map(|set| Some(DaySpec::MonthDays(set)))
}

/// `?`, `L`, `6L`, `2#3`, or values; `None` for `?`.
fn parse_day_of_week(text: &str) -> Result<Option<DaySpec>, String> {
    reject_foreign(text, CronField::DayOfWeek)?;
    if text == "?" {
        return Ok(None);
    }
    // EventBridge: with `#` the field holds one expression only ("3#1,6#3" is
    // invalid); `L` forms are held to the same rule.
    reject_special_in_list(text, &['L', '#'])?;
    let upper = text.to_ascii_uppercase();
    if upper == "L" {
        // The last day of the week: Saturday.
        let mut saturday = ValueSet::empty(DAY_OF_WEEK.min);
        saturday.insert(7);
        return Ok(Some(DaySpec::WeekDays(saturday)));
    }
    if let Some((day, nth)) = text.split_once('#') {
        let weekday = weekday_value(day)?;
        if nth.is_empty() {
            return Err(format!("{text} is missing the occurrence after #"));
        }
        if !nth.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("occurrence {nth} in {text} is not a number"));
        }
        let nth = match nth.parse::<u8>() {
            Ok(n @ 1..=5) => n,
            _ => return Err(format!("occurrence {nth} in {text} is out of range 1-5")),
        };
        return Ok(Some(DaySpec::NthWeekday { weekday, nth }));
    }
    if upper.len() > 1 && upper.ends_with('L') {
        // The suffix is ASCII, so slicing it off keeps a char boundary.
        let day = &text[..text.len() - 1];
        return Ok(Some(DaySpec::LastOfWeekday(weekday_value(day)?)));
    }
    if upper.contains('L') {
        return Err(format!(
            "{text} is not valid; L must stand alone or follow a day, as in L or 6L"
        ));
    }
    parse_set(text, &DAY_OF_WEEK).map(|set| Some(DaySpec::WeekDays(set)))
}

/// One day of the week (number or name) before `L` or `#`.
fn weekday_value(text: &str) -> Result<u8, String> {
    if text.is_empty() {
        return Err("a day of the week is missing before L or #".into());
    }
    let value = parse_value(text, &DAY_OF_WEEK)?;
    u8::try_from(value).map_err(|_| format!("{text} is out of range 1-7"))
}

/// `L`, `W` and `#` forms must be the whole field, not one item of a list.
fn reject_special_in_list(text: &str, specials: &[char]) -> Result<(), String> {
    if !text.contains(',') {
        return Ok(());
    }
    for item in text.split(',') {
        if item
            .chars()
            .any(|c| specials.contains(&c.to_ascii_uppercase()))
        {
            return Err(format!(
                "{item} cannot be combined with other values; use it alone"
            ));
        }
    }
    Ok(())
}

/// A comma-separated list of `*`, `v`, `a-b`, each optionally with `/step`.
fn parse_set(text: &str, spec: &FieldSpec) -> Result<ValueSet, String> {
    let mut set = ValueSet::empty(spec.min);
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{text} has an empty list item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(parse_step(item, step, spec)?)),
            None => (item, None),
        };
        let (low, high) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((low, high)) = range.split_once('-') {
            if low.is_empty() || high.is_empty() {
                return Err(format!("{range} is an incomplete range"));
            }
            let (low, high) = (parse_value(low, spec)?, parse_value(high, spec)?);
            if low > high {
                return Err(format!(
                    "range {range} is backwards; write the smaller value first"
                ));
            }
            (low, high)
        } else if range.is_empty() {
            return Err(format!("{item} is missing the start value before /"));
        } else {
            let value = parse_value(range, spec)?;
            // `5/15` runs from 5 to the end of the field.
            (value, if step.is_some() { spec.max } else { value })
        };
        for value in (low..=high).step_by(step.unwrap_or(1)) {
            set.insert(value);
        }
    }
    Ok(set)
}

/// The increment after `/`: 1 up to the width of the field.
fn parse_step(item: &str, step: &str, spec: &FieldSpec) -> Result<usize, String> {
    if step.is_empty() {
        return Err(format!("{item} is missing the step after /"));
    }
    if !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("step {step} in {item} is not a number"));
    }
    let width = usize::from(spec.max - spec.min) + 1;
    match step.parse::<usize>() {
        Ok(n) if (1..=width).contains(&n) => Ok(n),
        _ => Err(format!("step {step} is out of range 1-{width}")),
    }
}

/// A single number or name, checked against the field's range.
fn parse_value(token: &str, spec: &FieldSpec) -> Result<u16, String> {
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
        return match token.parse::<u16>() {
            Ok(n) if (spec.min..=spec.max).contains(&n) => Ok(n),
            _ => Err(format!("{token} is out of range {}-{}", spec.min, spec.max)),
        };
    }
    spec.names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(token))
        .and_then(|index| u16::try_from(index).ok())
        .map(|index| spec.min + index)
        .ok_or_else(|| format!("{token} {}", spec.not_a_value))
}

#[cfg(test)]
mod tests {
    use time::macros::{datetime, format_description};
    use time::{OffsetDateTime, PrimitiveDateTime};

    use super::*;

    fn cron(expr: &str) -> Cron {
        match crate::parse(expr) {
            Ok(crate::Schedule::Cron(cron)) => cron,
            other => panic!("{expr} did not parse as a cron: {other:?}"),
        }
    }

    /// `2024-01-02 03:04` or `2024-01-02 03:04:05`, in UTC.
    fn utc(text: &str) -> OffsetDateTime {
        let format =
            format_description!("[year]-[month]-[day] [hour]:[minute][optional [:[second]]]");
        PrimitiveDateTime::parse(text, format)
            .unwrap_or_else(|e| panic!("bad test time {text}: {e}"))
            .assume_utc()
    }

    /// (expression, after, expected next fire time), all UTC.
    #[rustfmt::skip]
    const TABLE: &[(&str, &str, Option<&str>)] = &[
        // Plain times, strictly after, rolling over day and year.
        ("cron(0 10 * * ? *)", "2024-01-01 09:00", Some("2024-01-01 10:00")),
        ("cron(0 10 * * ? *)", "2024-01-01 10:00", Some("2024-01-02 10:00")),
        ("cron(15 12 * * ? *)", "2024-12-31 12:15:30", Some("2025-01-01 12:15")),
        ("cron(59 23 31 12 ? *)", "2024-12-31 23:59", Some("2025-12-31 23:59")),
        ("cron(* * * * ? *)", "2024-01-01 00:00:30", Some("2024-01-01 00:01")),
        ("cron(0 8 1 * ? *)", "2024-01-31 23:59", Some("2024-02-01 08:00")),
        // Steps, ranges with steps, lists.
        ("cron(0/15 * * * ? *)", "2024-01-01 00:50", Some("2024-01-01 01:00")),
        ("cron(0/15 * * * ? *)", "2024-01-01 00:14:59", Some("2024-01-01 00:15")),
        ("cron(*/5 8-17 ? * MON-FRI *)", "2024-01-08 17:56", Some("2024-01-09 08:00")),
        ("cron(0/10 * ? * MON-FRI *)", "2024-01-05 23:55", Some("2024-01-08 00:00")),
        ("cron(10-30/5 * * * ? *)", "2024-01-01 00:11", Some("2024-01-01 00:15")),
        ("cron(10-30/5 * * * ? *)", "2024-01-01 00:30", Some("2024-01-01 01:10")),
        ("cron(5,35 6,18 * * ? *)", "2024-01-01 06:35", Some("2024-01-01 18:05")),
        ("cron(0 0 1 JAN-MAR,OCT ? *)", "2024-03-01 00:00", Some("2024-10-01 00:00")),
        ("cron(0 0 1 */4 ? *)", "2024-01-01 00:00", Some("2024-05-01 00:00")),
        ("cron(0 12 * jan,jul ? *)", "2024-01-31 12:00", Some("2024-07-01 12:00")),
        // Month ends and leap years.
        ("cron(0 12 L * ? *)", "2024-02-01 00:00", Some("2024-02-29 12:00")),
        ("cron(0 12 L * ? *)", "2023-02-01 00:00", Some("2023-02-28 12:00")),
        ("cron(0 12 L * ? *)", "2024-04-30 12:00", Some("2024-05-31 12:00")),
        ("cron(0 0 L 2 ? *)", "2024-02-29 00:00", Some("2025-02-28 00:00")),
        ("cron(0 0 29 2 ? *)", "2024-03-01 00:00", Some("2028-02-29 00:00")),
        ("cron(0 0 29 FEB ? *)", "2023-01-01 00:00", Some("2024-02-29 00:00")),
        ("cron(0 0 31 * ? *)", "2024-01-31 00:00", Some("2024-03-31 00:00")),
        ("cron(0 0 31 * ? *)", "2024-05-31 00:00", Some("2024-07-31 00:00")),
        ("cron(0 0 30 * ? *)", "2024-01-30 00:00", Some("2024-03-30 00:00")),
        // LW: the last weekday.
        ("cron(30 9 LW * ? *)", "2024-03-01 00:00", Some("2024-03-29 09:30")),
        ("cron(30 9 LW * ? *)", "2024-08-01 00:00", Some("2024-08-30 09:30")),
        ("cron(30 9 LW * ? *)", "2024-01-01 00:00", Some("2024-01-31 09:30")),
        ("cron(30 9 lw * ? *)", "2024-03-29 09:30", Some("2024-04-30 09:30")),
        // W: nearest weekday, never leaving the month.
        ("cron(0 9 1W * ? *)", "2024-05-02 00:00", Some("2024-06-03 09:00")),
        ("cron(0 9 1W * ? *)", "2024-08-02 00:00", Some("2024-09-02 09:00")),
        ("cron(0 9 31W * ? *)", "2024-03-01 00:00", Some("2024-03-29 09:00")),
        ("cron(0 9 31W * ? *)", "2024-08-01 00:00", Some("2024-08-30 09:00")),
        ("cron(0 9 31W * ? *)", "2024-03-29 09:00", Some("2024-05-31 09:00")),
        ("cron(0 9 15W * ? *)", "2024-06-01 00:00", Some("2024-06-14 09:00")),
        ("cron(0 9 15W * ? *)", "2024-09-01 00:00", Some("2024-09-16 09:00")),
        ("cron(0 9 15w * ? *)", "2024-01-01 00:00", Some("2024-01-15 09:00")),
        ("cron(0 9 30W 2 ? *)", "2024-01-01 00:00", None),
        // Day-of-week: L, #, names, numbers.
        ("cron(15 10 ? * 6L *)", "2024-01-01 00:00", Some("2024-01-26 10:15")),
        ("cron(0 0 ? * 1L *)", "2024-02-01 00:00", Some("2024-02-25 00:00")),
        ("cron(0 0 ? * 7L *)", "2024-08-01 00:00", Some("2024-08-31 00:00")),
        ("cron(0 12 ? * 2#3 *)", "2024-01-01 00:00", Some("2024-01-15 12:00")),
        ("cron(0 9 ? * 2#1 *)", "2024-01-01 09:00", Some("2024-02-05 09:00")),
        ("cron(0 12 ? * 6#5 *)", "2024-01-01 00:00", Some("2024-03-29 12:00")),
        ("cron(0 12 ? * fri#5 *)", "2024-03-29 12:00", Some("2024-05-31 12:00")),
        ("cron(0 0 ? * SUN#5 *)", "2025-01-01 00:00", Some("2025-03-30 00:00")),
        ("cron(0 12 ? * L *)", "2024-01-01 00:00", Some("2024-01-06 12:00")),
        ("cron(0 12 ? * SUN,SAT *)", "2024-01-01 00:00", Some("2024-01-06 12:00")),
        ("cron(0 12 ? * 1,7 *)", "2024-01-06 12:00", Some("2024-01-07 12:00")),
        ("cron(0 12 ? * mon *)", "2024-01-01 12:00", Some("2024-01-08 12:00")),
        ("cron(0 18 ? * MON-FRI *)", "2024-01-05 18:00", Some("2024-01-08 18:00")),
        ("cron(0 12 ? * 2-6 *)", "2024-01-05 12:00", Some("2024-01-08 12:00")),
        // Years: ranges, steps, ends, and the 1970-2199 bounds.
        ("cron(0 0 1 1 ? 2025-2027)", "2024-06-01 00:00", Some("2025-01-01 00:00")),
        ("cron(0 0 1 1 ? 2025-2027)", "2027-01-01 00:00", None),
        ("cron(0 0 1 1 ? 2030/5)", "2031-01-01 00:00", Some("2035-01-01 00:00")),
        ("cron(0 12 ? * 4#1 2024)", "2024-12-04 12:00", None),
        ("cron(0 0 * * ? 2199)", "2199-12-30 23:59", Some("2199-12-31 00:00")),
        ("cron(0 0 * * ? *)", "2199-12-31 00:00", None),
        ("cron(0 0 1 1 ? *)", "1960-06-01 00:00", Some("1970-01-01 00:00")),
    ];

    #[test]
    fn next_fire_times_match_the_table() {
        let mut failures = Vec::new();
        for &(expr, after, expected) in TABLE {
            let (after, expected) = (utc(after), expected.map(utc));
            let got = cron(expr).next_after(after);
            if got != expected {
                failures.push(format!(
                    "{expr} after {after}: got {got:?}, want {expected:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_non_utc_instant_is_read_in_utc() {
        // 11:30 at +02:00 is 09:30 UTC, before the 10:00 UTC fire.
        let next = cron("cron(0 10 * * ? *)").next_after(datetime!(2024-01-01 11:30 +02:00));
        assert_eq!(next, Some(datetime!(2024-01-01 10:00 UTC)));
        assert_eq!(next.map(|t| t.offset()), Some(UtcOffset::UTC));
    }

    #[test]
    fn day_names_and_numbers_parse_to_the_same_schedule() {
        assert_eq!(
            cron("cron(0 18 ? * MON-FRI *)"),
            cron("cron(0 18 ? * 2-6 *)")
        );
        assert_eq!(
            cron("cron(0 0 1 jan,Feb,DEC ? *)"),
            cron("cron(0 0 1 1,2,12 ? *)")
        );
    }

    /// Whether `t` (a whole minute) matches, checked field by field.
    fn matches(cron: &Cron, t: OffsetDateTime) -> bool {
        cron.minutes.contains(t.minute().into())
            && cron.hours.contains(t.hour().into())
            && cron.months.contains(u8::from(t.month()).into())
            && u16::try_from(t.year()).is_ok_and(|y| cron.years.contains(y))
            && cron.days.matching_days(t.year(), t.month()) & (1 << t.day()) != 0
    }

    /// The skipping search agrees with stepping one minute at a time.
    #[test]
    fn search_agrees_with_minute_by_minute_scan() {
        let exprs = [
            "cron(*/7 */5 * * ? *)",
            "cron(0,30 9-17 ? * MON-FRI *)",
            "cron(45 23 L * ? *)",
            "cron(0 6 LW * ? *)",
            "cron(10 0 1W * ? *)",
            "cron(59 23 31W * ? *)",
            "cron(0 12 ? * 2#5 *)",
            "cron(5 4 ? * 1L *)",
            "cron(0 0 29-31 * ? *)",
            "cron(20-40/10 22 ? * SAT,SUN *)",
            "cron(0 0 1 1-12/2 ? *)",
        ];
        let starts = [
            datetime!(2023-12-31 23:59:59 UTC),
            datetime!(2024-02-28 23:30 UTC),
            datetime!(2024-02-29 12:00 UTC),
            datetime!(2024-03-31 23:45 UTC),
            datetime!(2024-06-01 00:00 UTC),
            datetime!(2024-11-30 22:20 UTC),
            datetime!(2025-02-28 06:00 UTC),
        ];
        for expr in exprs {
            let cron = cron(expr);
            for after in starts {
                let mut t = after.truncate_to_minute() + Duration::MINUTE;
                let limit = after + Duration::days(100);
                while t < limit && !matches(&cron, t) {
                    t += Duration::MINUTE;
                }
                let scanned = (t < limit).then_some(t);
                assert_eq!(cron.next_after(after), scanned, "{expr} after {after}");
            }
        }
    }

    #[test]
    fn value_set_finds_the_next_member_across_words() {
        let mut years = ValueSet::empty(FIRST_YEAR);
        years.insert(1970);
        years.insert(2100);
        years.insert(LAST_YEAR);
        assert_eq!(years.first_at_or_after(1900), Some(1970));
        assert_eq!(years.first_at_or_after(1971), Some(2100));
        assert_eq!(years.first_at_or_after(2101), Some(LAST_YEAR));
        assert_eq!(years.first_at_or_after(LAST_YEAR + 1), None);
        assert_eq!(years.first_at_or_after(u16::MAX), None);
    }
}
