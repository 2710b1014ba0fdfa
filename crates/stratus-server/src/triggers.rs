//! Event sources of deployed functions, from their `serverless.yml` `events`:
//! schedules (each firing is an asynchronous invocation with the EventBridge
//! Scheduled Event payload, or the `input`/`inputPath` the event asks for), HTTP
//! routes for the gateway (`gateway.rs`) and SQS pollers (`esm.rs`), all reloaded
//! together after each deployment.
//!
//! The deployment stores each function's events (`function_events` in the state
//! database); [`Triggers`] keeps the enabled schedules in memory and a task fires them.
//! Rates are anchored at the deployment that created them (as EventBridge anchors a
//! rule at its creation); missed firings while the server was down are not caught up
//! (EventBridge does not either). The firing decision is a pure function of the
//! schedules and two instants ([`due`]), so it is tested with a fake clock.

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};
use stratus_manifest::model::{Event, ScheduleEvent};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::async_queue::AsyncQueue;
use crate::model::new_uuid;
use crate::registry::Registry;
use crate::store::Stores;

/// One enabled schedule expression of a function.
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    /// The deployed function.
    pub function: String,
    /// Rule name (`{function}-rule-{n}` unless `name:`).
    pub rule: String,
    /// The expression as written.
    pub expression: String,
    parsed: stratus_schedule::Schedule,
    /// When the schedule was deployed (rates count from here).
    pub anchor: OffsetDateTime,
    input: Option<Value>,
    input_path: Option<String>,
}

impl ScheduleEntry {
    /// The next firing strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        self.parsed.next_after(after, self.anchor)
    }
}

/// Turns a function's stored events into schedule entries. Invalid expressions were
/// rejected at deploy time; here they are skipped.
pub fn schedules_of(
    function: &str,
    events: &[Event],
    anchor: OffsetDateTime,
) -> Vec<ScheduleEntry> {
    let mut out = Vec::new();
    let mut n = 0;
    for ev in events {
        let Event::Schedule(ScheduleEvent {
            rate,
            enabled,
            input,
            input_path,
            name,
        }) = ev
        else {
            continue;
        };
        for expression in rate {
            n += 1;
            if !*enabled {
                continue;
            }
            let Ok(parsed) = stratus_schedule::parse(expression) else {
                continue;
            };
            out.push(ScheduleEntry {
                function: function.to_string(),
                rule: name
                    .clone()
                    .unwrap_or_else(|| format!("{function}-rule-{n}")),
                expression: expression.clone(),
                parsed,
                anchor,
                input: input.clone(),
                input_path: input_path.clone(),
            });
        }
    }
    out
}

/// Checks every schedule expression of `events`, for deployments.
pub fn validate(events: &[Event]) -> Result<(), String> {
    for ev in events {
        if let Event::Schedule(s) = ev {
            for e in &s.rate {
                stratus_schedule::parse(e).map_err(|err| err.to_string())?;
            }
        }
    }
    Ok(())
}

/// The firings due in `(from, to]`: each schedule's firing times in that window.
pub fn due(
    entries: &[ScheduleEntry],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<(usize, OffsetDateTime)> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let mut t = from;
        while let Some(next) = e.next_after(t) {
            if next > to {
                break;
            }
            out.push((i, next));
            t = next;
            if out.len() > 10_000 {
                return out;
            }
        }
    }
    out.sort_by_key(|(_, t)| *t);
    out
}

/// The payload of one firing.
pub fn payload(e: &ScheduleEntry, at: OffsetDateTime, account: &str, region: &str) -> Value {
    if let Some(input) = &e.input {
        return match input {
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| input.clone()),
            other => other.clone(),
        };
    }
    let event = json!({
        "version": "0",
        "id": new_uuid(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": stratus_schedule::format_time(at),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{account}:rule/{}", e.rule)],
        "detail": {},
    });
    match &e.input_path {
        Some(path) => select_path(&event, path),
        None => event,
    }
}

/// A JSONPath of the simple `$.a.b` form EventBridge input paths use.
fn select_path(v: &Value, path: &str) -> Value {
    let mut cur = v;
    for part in path
        .trim_start_matches('$')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        match cur.get(part) {
            Some(next) => cur = next,
            None => return Value::Null,
        }
    }
    cur.clone()
}

/// The live schedules and the task that fires them.
#[derive(Debug, Clone)]
pub struct Triggers {
    entries: Arc<Mutex<Vec<ScheduleEntry>>>,
    changed: Arc<Notify>,
    /// HTTP routes for the gateway.
    pub routes: crate::gateway::Routes,
    /// SQS event source mappings.
    mappings: crate::esm::Mappings,
    queues: Arc<stratus_queue::Queues>,
    scheduler: stratus_scheduler::Scheduler,
    /// Where the declared events and mappings are read from.
    stores: Stores,
}

impl Triggers {
    /// Loads every function's schedules and starts firing them.
    pub fn start(
        registry: Arc<Registry>,
        stores: Stores,
        events: AsyncQueue,
        queues: Arc<stratus_queue::Queues>,
        scheduler: stratus_scheduler::Scheduler,
    ) -> Self {
        let t = Self {
            entries: Arc::default(),
            changed: Arc::new(Notify::new()),
            routes: Default::default(),
            mappings: Default::default(),
            queues,
            scheduler,
            stores,
        };
        t.reload(&registry);
        tokio::spawn(run(t.clone(), registry, events));
        t
    }

    /// Re-reads the schedules after a deployment.
    pub fn reload(&self, registry: &Arc<Registry>) {
        let mut all = Vec::new();
        for (function, events, created_ms) in self
            .stores
            .mappings
            .all_function_events()
            .unwrap_or_default()
        {
            let anchor = OffsetDateTime::from_unix_timestamp_nanos(created_ms as i128 * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            all.extend(schedules_of(&function, &events, anchor));
        }
        *self.entries.lock() = all;
        self.changed.notify_one();
        self.routes.reload(registry, &self.stores);
        self.mappings
            .reload(registry, &self.stores, &self.queues, &self.scheduler);
    }

    /// The schedules of `function` with their next firing.
    pub fn next_firings(&self, function: &str) -> Vec<(String, Option<OffsetDateTime>)> {
        let now = OffsetDateTime::now_utc();
        self.entries
            .lock()
            .iter()
            .filter(|e| e.function == function)
            .map(|e| (e.expression.clone(), e.next_after(now)))
            .collect()
    }
}

async fn run(t: Triggers, registry: Arc<Registry>, events: AsyncQueue) {
    let mut last = OffsetDateTime::now_utc();
    loop {
        let now = OffsetDateTime::now_utc();
        let entries = t.entries.lock().clone();
        for (i, at) in due(&entries, last, now) {
            let e = &entries[i];
            let body = payload(
                e,
                at,
                &registry.identity.account_id,
                &registry.identity.region,
            );
            if let Err(err) = events
                .enqueue(
                    new_uuid(),
                    e.function.clone(),
                    None,
                    bytes::Bytes::from(body.to_string()),
                )
                .await
            {
                tracing::error!(error = %err, rule = %e.rule, "cannot fire a schedule");
            }
        }
        last = now;
        let next = entries.iter().filter_map(|e| e.next_after(now)).min();
        let wait = next
            .map(|n| {
                (n - OffsetDateTime::now_utc())
                    .clamp(time::Duration::ZERO, time::Duration::seconds(60))
            })
            .unwrap_or(time::Duration::seconds(60));
        let wait = std::time::Duration::from_millis(wait.whole_milliseconds().max(0) as u64 + 5);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = t.changed.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn entry(expr: &str, anchor: OffsetDateTime, input: Option<Value>) -> ScheduleEntry {
        let ev = Event::Schedule(ScheduleEvent {
            rate: vec![expr.into()],
            enabled: true,
            input,
            input_path: None,
            name: None,
        });
        schedules_of("fn", &[ev], anchor).remove(0)
    }

    #[test]
    fn firings_follow_a_fake_clock() {
        let anchor = datetime!(2026-01-01 00:00:00 UTC);
        let entries = vec![
            entry("rate(5 minutes)", anchor, None),
            entry("cron(0 12 * * ? *)", anchor, None),
        ];
        let fired = due(
            &entries,
            datetime!(2026-01-01 11:50:00 UTC),
            datetime!(2026-01-01 12:06:00 UTC),
        );
        let times: Vec<(usize, u8, u8)> = fired
            .iter()
            .map(|(i, t)| (*i, t.hour(), t.minute()))
            .collect();
        assert_eq!(times, [(0, 11, 55), (0, 12, 0), (1, 12, 0), (0, 12, 5)]);
        assert!(due(
            &entries,
            datetime!(2026-01-01 12:06:00 UTC),
            datetime!(2026-01-01 12:06:59 UTC)
        )
        .is_empty());
        // A disabled schedule never fires.
        let off = Event::Schedule(ScheduleEvent {
            rate: vec!["rate(1 minute)".into()],
            enabled: false,
            input: None,
            input_path: None,
            name: None,
        });
        assert!(schedules_of("fn", &[off], anchor).is_empty());
    }

    #[test]
    fn payloads() {
        let e = entry("rate(1 minute)", datetime!(2026-01-01 00:00:00 UTC), None);
        let p = payload(
            &e,
            datetime!(2026-01-01 00:01:00 UTC),
            "000000000000",
            "us-east-1",
        );
        assert_eq!(p["detail-type"], "Scheduled Event");
        assert_eq!(p["source"], "aws.events");
        assert_eq!(p["time"], "2026-01-01T00:01:00Z");
        assert_eq!(
            p["resources"][0],
            "arn:aws:events:us-east-1:000000000000:rule/fn-rule-1"
        );
        let with_input = entry(
            "rate(1 minute)",
            datetime!(2026-01-01 00:00:00 UTC),
            Some(json!({"k": 1})),
        );
        assert_eq!(
            payload(&with_input, datetime!(2026-01-01 00:01:00 UTC), "a", "r"),
            json!({"k": 1})
        );
        assert_eq!(select_path(&p, "$.detail-type"), "Scheduled Event");
    }
}
#[cfg(test)]
mod decode_tests {
    #[test]
    fn stored_events_decode() {
        let s = r#"[{"schedule":{"rate":["rate(1 minute)"],"enabled":true,"input":null,"input_path":null,"name":null}}]"#;
        let v: Vec<stratus_manifest::model::Event> = serde_json::from_str(s).unwrap();
        assert_eq!(v.len(), 1);
    }
}
