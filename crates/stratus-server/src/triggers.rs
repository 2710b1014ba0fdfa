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
//!
//! In a cluster only the leader fires (`cluster::leader`): each firing is first
//! recorded in PostgreSQL under the leader's epoch ([`Leadership::record_firing`]),
//! then enqueued, so a period fires once cluster-wide and a deposed leader fires
//! nothing. A new leader fires the periods of the last [`HANDOVER_LOOKBACK`] that no
//! leader recorded (the hand-over's gap), never older ones. `--schedule-clock-speed`
//! (tests) runs every schedule's time faster from its anchor, the same on every
//! node; 1, the default, is the real clock.
//!
//! A reload reads everything it needs from the store first; if a read fails, the
//! error is logged and returned, and the schedules, routes and pollers in force
//! stay as they were (never emptied by a database error).

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};
use stratus_manifest::model::{Event, ScheduleEvent};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::async_queue::AsyncQueue;
use crate::cluster::leader::{Firing, Leadership};
use crate::model::new_uuid;
use crate::registry::Registry;
use crate::store::{StoreError, Stores};

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

/// A schedule's time at real instant `t`: it runs `speed` times faster than real
/// time from the schedule's anchor (1: real time).
fn schedule_time(e: &ScheduleEntry, t: OffsetDateTime, speed: f64) -> OffsetDateTime {
    if speed == 1.0 {
        return t;
    }
    time::Duration::checked_seconds_f64((t - e.anchor).as_seconds_f64() * speed)
        .and_then(|d| e.anchor.checked_add(d))
        .unwrap_or(t)
}

/// The real instant of schedule time `at` (the inverse of [`schedule_time`]).
fn real_time(e: &ScheduleEntry, at: OffsetDateTime, speed: f64) -> OffsetDateTime {
    if speed == 1.0 {
        return at;
    }
    time::Duration::checked_seconds_f64((at - e.anchor).as_seconds_f64() / speed)
        .and_then(|d| e.anchor.checked_add(d))
        .unwrap_or(at)
}

/// [`due`] with schedule time running at `speed`: the firings (in schedule time)
/// whose real instant is in `(from, to]`, in real order.
pub fn due_at_speed(
    entries: &[ScheduleEntry],
    from: OffsetDateTime,
    to: OffsetDateTime,
    speed: f64,
) -> Vec<(usize, OffsetDateTime)> {
    if speed == 1.0 {
        return due(entries, from, to);
    }
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let window = (schedule_time(e, from, speed), schedule_time(e, to, speed));
        out.extend(
            due(std::slice::from_ref(e), window.0, window.1)
                .into_iter()
                .map(|(_, at)| (i, at)),
        );
    }
    out.sort_by_key(|(i, at)| real_time(&entries[*i], *at, speed));
    out
}

/// The real instant of the next firing after `now`.
fn next_firing(
    entries: &[ScheduleEntry],
    now: OffsetDateTime,
    speed: f64,
) -> Option<OffsetDateTime> {
    entries
        .iter()
        .filter_map(|e| {
            e.next_after(schedule_time(e, now, speed))
                .map(|at| real_time(e, at, speed))
        })
        .min()
}

/// How long to sleep until `next` (at most a minute, so a clock change is caught up
/// with).
fn wait_until(next: Option<OffsetDateTime>) -> std::time::Duration {
    let wait = next
        .map(|n| {
            (n - OffsetDateTime::now_utc()).clamp(time::Duration::ZERO, time::Duration::seconds(60))
        })
        .unwrap_or(time::Duration::seconds(60));
    std::time::Duration::from_millis(wait.whole_milliseconds().max(0) as u64 + 5)
}

/// In a cluster, a new leader fires the periods due this long before it took over
/// that no leader recorded (the gap of a hand-over); older ones are never fired.
pub const HANDOVER_LOOKBACK: time::Duration = time::Duration::seconds(10);

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
    pub(crate) mappings: crate::esm::Mappings,
    queues: Arc<stratus_queue::Queues>,
    scheduler: stratus_scheduler::Scheduler,
    /// Where the declared events and mappings are read from.
    stores: Stores,
}

impl Triggers {
    /// Loads every function's schedules and starts firing them: on this node
    /// alone, or (with `leader`, in a cluster) only while this node leads. Schedule
    /// time runs at `speed` (1: the real clock).
    pub fn start(
        registry: Arc<Registry>,
        stores: Stores,
        events: AsyncQueue,
        queues: Arc<stratus_queue::Queues>,
        scheduler: stratus_scheduler::Scheduler,
        speed: f64,
        leader: Option<Leadership>,
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
        // A failure is logged by reload; the server starts without event sources
        // and the next deployment retries.
        let _ = t.reload(&registry);
        match leader {
            None => tokio::spawn(run(t.clone(), registry, events, speed)),
            Some(leader) => tokio::spawn(run_as_leader(t.clone(), registry, events, speed, leader)),
        };
        t
    }

    /// Re-reads the schedules, HTTP routes and SQS pollers after a deployment.
    /// Everything is read from the store before anything changes: on a
    /// database error the error is logged and returned, and the previous
    /// schedules, routes and pollers stay in force.
    pub fn reload(&self, registry: &Arc<Registry>) -> Result<(), StoreError> {
        self.try_reload(registry).inspect_err(|e| {
            tracing::error!(
                error = %e,
                "event sources not reloaded; the previous schedules, HTTP routes and SQS pollers stay"
            );
        })
    }

    fn try_reload(&self, registry: &Arc<Registry>) -> Result<(), StoreError> {
        let events = self.stores.mappings.all_function_events()?;
        let api_mappings = self.stores.mappings.event_source_mappings()?;
        // The last read; the rest cannot fail.
        self.routes
            .reload(registry, &*self.stores.deployments, &events)?;
        let mut all = Vec::new();
        for (function, events, created_ms) in &events {
            let anchor = OffsetDateTime::from_unix_timestamp_nanos(*created_ms as i128 * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            all.extend(schedules_of(function, events, anchor));
        }
        *self.entries.lock() = all;
        self.changed.notify_one();
        self.mappings.reload(
            registry,
            &events,
            &api_mappings,
            &self.queues,
            &self.scheduler,
        );
        Ok(())
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

async fn run(t: Triggers, registry: Arc<Registry>, events: AsyncQueue, speed: f64) {
    let mut last = OffsetDateTime::now_utc();
    loop {
        let now = OffsetDateTime::now_utc();
        let entries = t.entries.lock().clone();
        for (i, at) in due_at_speed(&entries, last, now, speed) {
            fire(&entries[i], at, &registry, &events, new_uuid()).await;
        }
        last = now;
        let wait = wait_until(next_firing(&entries, now, speed));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = t.changed.notified() => {}
        }
    }
}

/// Enqueues one firing as an asynchronous invocation; whether it was accepted.
async fn fire(
    e: &ScheduleEntry,
    at: OffsetDateTime,
    registry: &Registry,
    events: &AsyncQueue,
    request_id: String,
) -> bool {
    let body = payload(
        e,
        at,
        &registry.identity.account_id,
        &registry.identity.region,
    );
    if let Err(err) = events
        .enqueue(
            request_id,
            e.function.clone(),
            None,
            bytes::Bytes::from(body.to_string()),
        )
        .await
    {
        tracing::error!(error = %err, rule = %e.rule, "cannot fire a schedule");
        return false;
    }
    true
}

fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Firings are re-sent while they are this recent (well within JetStream's
/// 10-minute duplicate window, so an event that did get through is stored once).
const RESEND_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

async fn mark_sent(leader: &Leadership, e: &ScheduleEntry, at: OffsetDateTime) {
    if let Err(err) = leader
        .mark_enqueued(&e.function, &e.rule, epoch_ms(at))
        .await
    {
        // Harmless: a later leader re-sends it under the same request id.
        tracing::warn!(error = %err, rule = %e.rule, "cannot note a schedule firing as sent");
    }
}

/// Sends again, under their recorded request ids, the firings recorded in the
/// last [`RESEND_WITHIN`] and not noted as sent (a leader died between the two, or
/// the queue refused). `false` when some could not be sent (tried again later).
async fn send_unsent(
    leader: &Leadership,
    entries: &[ScheduleEntry],
    registry: &Registry,
    events: &AsyncQueue,
) -> bool {
    let unsent = match leader.unsent(RESEND_WITHIN).await {
        Ok(u) => u,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the schedule firings left unsent");
            return false;
        }
    };
    let mut all = true;
    for u in unsent {
        let Some(e) = entries
            .iter()
            .find(|e| e.function == u.function && e.rule == u.rule)
        else {
            continue; // The schedule is gone.
        };
        let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(u.due_ms as i128 * 1_000_000) else {
            continue;
        };
        if fire(e, at, registry, events, u.request_id).await {
            mark_sent(leader, e, at).await;
        } else {
            all = false;
        }
    }
    all
}

/// The schedule task of a cluster node: idle while another node leads; while this
/// one leads (epoch `e`), each due firing is recorded under `e`, then enqueued.
async fn run_as_leader(
    t: Triggers,
    registry: Arc<Registry>,
    events: AsyncQueue,
    speed: f64,
    leader: Leadership,
) {
    let mut leading = leader.watch();
    loop {
        let epoch = loop {
            if let Some(e) = *leading.borrow_and_update() {
                break e;
            }
            if leading.changed().await.is_err() {
                return;
            }
        };
        let mut last = OffsetDateTime::now_utc() - HANDOVER_LOOKBACK;
        let mut deposed = false;
        // A new leader first sends what an earlier one recorded but may not have sent.
        let mut resend = true;
        while *leading.borrow_and_update() == Some(epoch) {
            let now = OffsetDateTime::now_utc();
            last = last.max(now - HANDOVER_LOOKBACK);
            let entries = t.entries.lock().clone();
            if resend {
                resend = !send_unsent(&leader, &entries, &registry, &events).await;
            }
            let mut retry = resend;
            for (i, at) in due_at_speed(&entries, last, now, speed) {
                let e = &entries[i];
                let request_id = new_uuid();
                match leader
                    .record_firing(epoch, &e.function, &e.rule, epoch_ms(at), &request_id)
                    .await
                {
                    Ok(Firing::Recorded) => {
                        if fire(e, at, &registry, &events, request_id).await {
                            mark_sent(&leader, e, at).await;
                        } else {
                            // Recorded, not sent: sent again (same request id) later.
                            resend = true;
                            retry = true;
                        }
                    }
                    Ok(Firing::AlreadyFired) => {}
                    Ok(Firing::Deposed { current }) => {
                        tracing::info!(
                            epoch,
                            current,
                            "no longer the cluster's leader: schedules are fired by the new one"
                        );
                        deposed = true;
                        break;
                    }
                    Err(err) => {
                        // Tried again (a recorded one is not fired twice) until it
                        // is older than the look-back.
                        tracing::error!(error = %err, rule = %e.rule, "cannot record a schedule firing; retrying");
                        last = real_time(e, at, speed) - time::Duration::milliseconds(1);
                        // A write that timed out may have committed: its row is
                        // then sent from the record.
                        resend = true;
                        retry = true;
                        break;
                    }
                }
            }
            if deposed {
                break;
            }
            let wait = if retry {
                std::time::Duration::from_secs(1)
            } else {
                last = now;
                wait_until(next_firing(&entries, now, speed))
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = t.changed.notified() => {}
                r = leading.changed() => if r.is_err() { return },
            }
        }
        // Deposed: wait until the election says so too.
        while deposed && *leading.borrow_and_update() == Some(epoch) {
            if leading.changed().await.is_err() {
                return;
            }
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
    fn a_faster_schedule_clock_fires_each_period_once_across_windows() {
        let anchor = datetime!(2026-01-01 00:00:00 UTC);
        let entries = vec![entry("rate(1 minute)", anchor, None)];
        // At 30, a minute of schedule time is 2 real seconds from the anchor.
        let fired = due_at_speed(&entries, anchor, anchor + time::Duration::seconds(5), 30.0);
        let minutes: Vec<i64> = fired
            .iter()
            .map(|(_, at)| (*at - anchor).whole_minutes())
            .collect();
        assert_eq!(minutes, [1, 2]);
        assert_eq!(
            next_firing(&entries, anchor + time::Duration::seconds(5), 30.0),
            Some(anchor + time::Duration::seconds(6))
        );
        // Windows cut anywhere (as the task's wake-ups cut them) see every period
        // once.
        let mut all = Vec::new();
        let mut from = anchor;
        for ms in [700, 2_000, 2_001, 5_999, 6_000, 13_333, 20_000] {
            let to = anchor + time::Duration::milliseconds(ms);
            all.extend(
                due_at_speed(&entries, from, to, 30.0)
                    .into_iter()
                    .map(|(_, at)| at),
            );
            from = to;
        }
        let minutes: Vec<i64> = all
            .iter()
            .map(|at| (*at - anchor).whole_minutes())
            .collect();
        assert_eq!(minutes, (1..=10).collect::<Vec<_>>());
        // At 1 it is the real clock: exactly `due`.
        let (a, b) = (anchor, anchor + time::Duration::minutes(3));
        assert_eq!(due_at_speed(&entries, a, b, 1.0), due(&entries, a, b));
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
mod reload_tests {
    //! A reload against a real state database whose reads are made to fail.

    use std::time::Duration;

    use stratus_manifest::model::{HttpApiEvent, SqsEvent};

    use super::*;
    use crate::logs::{LogLimits, LogStore};
    use crate::registry::Identity;
    use crate::runtimes::Runtimes;
    use crate::store::Stores;

    fn must<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A registry over `dir` and an idle [`Triggers`] (no firing task).
    fn setup(dir: &std::path::Path) -> (Arc<Registry>, Triggers) {
        let logs = must(LogStore::open(
            dir,
            LogLimits::for_age(Duration::from_secs(3600)),
        ));
        let scheduler = stratus_scheduler::Scheduler::new(
            stratus_scheduler::Settings::default(),
            Arc::new(stratus_sandbox::ProcessDriver),
            logs,
        );
        let runtimes = must(Runtimes::prepare(&dir.join("runtimes"), None, None));
        let identity = Identity {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            endpoint_url: "http://127.0.0.1:9".into(),
            gateway_url: None,
        };
        let sealer = must(stratus_seal::Sealer::ephemeral());
        let stores = must(Stores::sqlite(dir, sealer.clone()));
        let registry = Arc::new(must(Registry::open(
            stores.functions.clone(),
            crate::registry::blobs::Blobs::local(must(stratus_package::BlobStore::open(
                dir.join("blobs"),
            ))),
            dir.join("code"),
            runtimes,
            identity,
            scheduler.clone(),
        )));
        let queues = must(stratus_queue::Queues::open(
            dir,
            "http://127.0.0.1:9",
            "us-east-1",
            "123456789012",
            sealer,
        ));
        let t = Triggers {
            entries: Arc::default(),
            changed: Arc::new(Notify::new()),
            routes: Default::default(),
            mappings: Default::default(),
            queues,
            scheduler,
            stores,
        };
        (registry, t)
    }

    fn events(queue_arn: &str) -> Vec<Event> {
        vec![
            Event::Schedule(ScheduleEvent {
                rate: vec!["rate(5 minutes)".into()],
                enabled: true,
                input: None,
                input_path: None,
                name: None,
            }),
            Event::HttpApi(HttpApiEvent {
                method: "GET".into(),
                path: "/items".into(),
                cors: None,
            }),
            Event::Sqs(SqsEvent {
                arn: queue_arn.into(),
                batch_size: 10,
                maximum_batching_window: None,
                function_response_type: None,
                enabled: true,
            }),
        ]
    }

    /// (schedules of `f`, routes, running pollers)
    fn tables(t: &Triggers) -> (usize, usize, usize) {
        (
            t.next_firings("f").len(),
            t.routes.list().len(),
            t.mappings.running(),
        )
    }

    fn sql(dir: &std::path::Path, statement: &str) {
        // A second connection, as another process would use.
        let conn = must(rusqlite::Connection::open(dir.join("state.db")));
        must(conn.execute_batch(statement));
    }

    #[tokio::test]
    async fn a_failed_read_keeps_the_schedules_routes_and_pollers() {
        let tmp = must(tempfile::tempdir());
        let dir = tmp.path();
        let (registry, t) = setup(dir);
        let arn = t.queues.arn("jobs");
        must(t.stores.mappings.put_function_events("f", &events(&arn), 0));
        must(t.reload(&registry));
        assert_eq!(tables(&t), (1, 1, 1));

        // The events table is gone: the read fails, nothing is emptied.
        sql(
            dir,
            "ALTER TABLE function_events RENAME TO function_events_away",
        );
        let e = t.reload(&registry).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string().contains("function_events")),
            "{e:?}"
        );
        assert_eq!(tables(&t), (1, 1, 1));

        // Back, with the function's events removed, but the mappings table is
        // broken: still nothing changes, since every read comes first.
        sql(
            dir,
            "ALTER TABLE function_events_away RENAME TO function_events",
        );
        must(t.stores.mappings.put_function_events("f", &[], 1));
        sql(dir, "ALTER TABLE event_source_mappings RENAME TO esm_away");
        assert!(t.reload(&registry).is_err());
        assert_eq!(tables(&t), (1, 1, 1));

        // A stored row that does not decode is an error too, not "no events".
        sql(dir, "ALTER TABLE esm_away RENAME TO event_source_mappings");
        sql(
            dir,
            "INSERT INTO function_events (function_name, events, created_ms) VALUES ('g', 'not json', 0)",
        );
        let e = t.reload(&registry).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string().contains("corrupt")),
            "{e:?}"
        );
        assert_eq!(tables(&t), (1, 1, 1));

        // Once the store reads again, the reload applies: f has no events now.
        sql(dir, "DELETE FROM function_events WHERE function_name = 'g'");
        must(t.reload(&registry));
        assert_eq!(tables(&t), (0, 0, 0));
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
