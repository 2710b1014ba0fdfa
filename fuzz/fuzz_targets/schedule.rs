//! `schedule:` expressions (`rate(…)`, `cron(…)`) → `stratus_schedule::parse`, then
//! the next firings from a few instants, the last near the end of the search range.
//! Parsing must refuse with a reason, never panic; firings must move forward.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stratus_fuzz::text;
use time::macros::datetime;

fuzz_target!(|data: &[u8]| {
    let Some(expr) = text(data) else { return };
    let schedule = match stratus_schedule::parse(expr) {
        Ok(s) => s,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let anchor = datetime!(2024-02-29 12:34:56 UTC);
    for after in [
        datetime!(2024-02-29 12:34:56 UTC),
        datetime!(1970-01-01 00:00:00 UTC),
        datetime!(2199-12-31 23:59:00 UTC),
    ] {
        let times = schedule.upcoming(after, anchor, 4);
        let mut previous = after;
        for t in times {
            assert!(t > previous, "{expr}: {t} after {previous}");
            let _ = stratus_schedule::format_time(t);
            previous = t;
        }
    }
});
