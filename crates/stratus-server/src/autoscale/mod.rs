//! Provisioned-concurrency autoscaling: Application Auto Scaling for the `lambda`
//! namespace, run inside the server.
//!
//! **Targets.** A scalable target is one function qualifier (`function:NAME:ALIAS`
//! or `function:NAME:VERSION`, dimension `lambda:function:ProvisionedConcurrency`)
//! with a MinCapacity and MaxCapacity. Its *current* capacity is not kept here: it
//! is the provisioned concurrency config of that qualifier in the registry, so a
//! PutProvisionedConcurrencyConfig made by hand and the autoscaler's own moves are
//! one number. Registering (or changing min/max) clamps the current capacity into
//! [min, max] at once, as AAS does.
//!
//! **Policies.** Target tracking on ProvisionedConcurrencyUtilization (predefined
//! `LambdaProvisionedConcurrencyUtilization`, or a customized spec of that metric
//! whose statistic is used); the alarms and the maths live in [`tracking`]. Several
//! policies on one target: the largest scale-out wins, and a scale-in happens only
//! when every policy asks for one (the largest of their capacities).
//!
//! **Scheduled actions.** `at()`, `rate()` or `cron()` in a time zone, within
//! StartTime/EndTime (`stratus_schedule::zoned`); when one runs it sets the target's min and/or
//! max, and the current capacity is clamped into the new range.
//!
//! **The metric.** Every tick (5 s of autoscaler time) the [`UtilizationSource`]
//! is sampled for each target that has a policy — busy provisioned environments
//! over provisioned environments of the qualifier's pool, from the scheduler
//! ([`SchedulerSource`]) — and the samples are rolled up per clock minute
//! ([`tracking::MinuteSeries`]). The source is a trait so the general metrics store
//! can feed it later.
//!
//! **The decision loop.** One task: sleep a tick on the [`Clock`], then on a
//! blocking thread run due scheduled actions, sample, and when a minute completed
//! evaluate the policies. Acting is the registry's PutProvisionedConcurrencyConfig
//! (0 deletes the config), so the scheduler's floor follows; every change — and every
//! failure to change — is a scaling [`model::Activity`], stored and listed newest
//! first.
//!
//! **The clock.** Every time decision reads the injected [`Clock`]: the system
//! clock in production, an [`AcceleratedClock`] in tests and `stratus bench`.
//!
//! State (targets, policies, schedules, minute series, cooldowns) sits behind one
//! lock and is written through to [`store::AutoscaleStore`] (SQLite, surviving
//! restarts); series and cooldowns start afresh after a restart.
//!
//! **In a cluster** the store is the cluster's PostgreSQL ([`postgres`]): a write
//! through any node notifies the others, which re-read the tables
//! ([`Autoscaler::reload`]), so every node's API answers the same. Only the leader
//! (`cluster/leader.rs`) runs the loop's decisions; a follower's tick does nothing.
//! A node that becomes leader re-reads the tables with fresh series and cooldowns
//! (as after a restart) and looks back [`HANDOVER_LOOKBACK`] for scheduled
//! occurrences; each run of a scheduled action is recorded under the leader's
//! epoch first ([`store::AutoscaleStore::record_firing`]), so an occurrence runs
//! once cluster-wide. Utilization is the cluster's ([`cluster::ClusterSource`]).

mod clock;
pub mod cluster;
mod deployed;
pub mod model;
pub mod postgres;
pub mod store;
pub mod tracking;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use stratus_schedule::zoned as scheduled;
use stratus_scheduler::Scheduler;
use time::OffsetDateTime;

pub use clock::{AcceleratedClock, Clock, SystemClock};
use model::{epoch, from_epoch, Activity, Policy, Scheduled, Target};
use store::AutoscaleStore;
use tracking::{Alarm, Cooldowns, MinuteSeries};

use crate::cluster::leader::Firing;
use crate::registry::Registry;
use crate::store::StoreError;

/// How often the loop samples and decides, in autoscaler time.
pub const TICK: Duration = Duration::from_secs(5);

/// How far back (real time) a new leader looks for scheduled occurrences that
/// no leader ran during the hand-over.
pub const HANDOVER_LOOKBACK: Duration = Duration::from_secs(10);

/// Activities the dashboard shows at most.
pub const DASHBOARD_ACTIVITIES: usize = 50;

/// Where ProvisionedConcurrencyUtilization comes from.
pub trait UtilizationSource: Send + Sync + std::fmt::Debug {
    /// The utilization (0..=1) of `function:qualifier`'s provisioned environments
    /// now; `None` when it has none alive (no datapoint).
    fn utilization(&self, function: &str, qualifier: &str) -> Option<f64>;
}

/// Utilization read from the scheduler's pools.
#[derive(Debug)]
pub struct SchedulerSource {
    registry: Arc<Registry>,
    scheduler: Scheduler,
}

impl SchedulerSource {
    /// Reads `scheduler`'s pools, finding a qualifier's pool through `registry`.
    pub fn new(registry: Arc<Registry>, scheduler: Scheduler) -> Self {
        Self {
            registry,
            scheduler,
        }
    }
}

impl UtilizationSource for SchedulerSource {
    fn utilization(&self, function: &str, qualifier: &str) -> Option<f64> {
        let resolved = self.registry.resolve(function, Some(qualifier)).ok()?;
        let (busy, alive) = self.scheduler.provisioned_usage(&resolved.spec.pool_key)?;
        Some(f64::from(busy) / f64::from(alive))
    }
}

/// Application Auto Scaling's errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AasError {
    /// Bad input.
    #[error("{0}")]
    Validation(String),
    /// No such target, policy or scheduled action.
    #[error("{0}")]
    NotFound(String),
    /// The store failed.
    #[error("{0}")]
    Internal(String),
}

impl AasError {
    /// The error's `__type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Validation(_) => "ValidationException",
            Self::NotFound(_) => "ObjectNotFoundException",
            Self::Internal(_) => "InternalServiceException",
        }
    }
}

impl From<StoreError> for AasError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// A scheduled action with its parsed schedule and next run.
#[derive(Debug, Clone)]
struct LiveScheduled {
    action: Scheduled,
    when: scheduled::When,
    next: Option<OffsetDateTime>,
}

/// One target and everything the loop keeps about it.
#[derive(Debug)]
struct Live {
    target: Target,
    policies: BTreeMap<String, Policy>,
    scheduled: BTreeMap<String, LiveScheduled>,
    series: MinuteSeries,
    cooldowns: Cooldowns,
}

/// A target as the dashboard and `stratus info` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetView {
    /// `function:NAME:ALIAS`.
    #[serde(rename = "resourceId")]
    pub resource_id: String,
    /// NAME.
    pub function: String,
    /// ALIAS (or version).
    pub qualifier: String,
    /// MinCapacity.
    pub min: u32,
    /// MaxCapacity.
    pub max: u32,
    /// Provisioned concurrency now.
    pub current: u32,
    /// The first target tracking policy's target value.
    #[serde(rename = "targetValue")]
    pub target_value: Option<f64>,
    /// Scheduled actions.
    #[serde(rename = "scheduledActions")]
    pub scheduled_actions: Vec<ScheduledView>,
}

/// A scheduled action as the dashboard shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduledView {
    /// ScheduledActionName.
    pub name: String,
    /// Its schedule expression.
    pub schedule: String,
    /// Its zone (`UTC` when none was given).
    pub timezone: String,
    /// MinCapacity it sets.
    pub min: Option<u32>,
    /// MaxCapacity it sets.
    pub max: Option<u32>,
}

/// An activity as the dashboard shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActivityView {
    /// RFC 3339 start time.
    pub time: String,
    /// `function:NAME:ALIAS`.
    #[serde(rename = "resourceId")]
    pub resource_id: String,
    /// The datapoint that drove it.
    #[serde(rename = "metricValue")]
    pub metric_value: Option<f64>,
    /// Capacity before.
    pub from: u32,
    /// Capacity after.
    pub to: u32,
    /// What was done.
    pub description: String,
    /// Why.
    pub cause: String,
    /// `Successful` or `Failed`.
    pub status: String,
}

/// `GET /stratus/v1/autoscaling`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Overview {
    /// Targets.
    pub targets: Vec<TargetView>,
    /// Activities, newest first.
    pub activities: Vec<ActivityView>,
}

/// RFC 3339 of epoch seconds.
pub fn rfc3339(s: f64) -> String {
    from_epoch(s)
        .and_then(|t| {
            t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
        })
        .unwrap_or_default()
}

impl From<&Activity> for ActivityView {
    fn from(a: &Activity) -> Self {
        Self {
            time: rfc3339(a.start),
            resource_id: a.resource_id.clone(),
            metric_value: a.metric,
            from: a.from,
            to: a.to,
            description: a.description.clone(),
            cause: a.cause.clone(),
            status: a.status.clone(),
        }
    }
}

/// The inputs of RegisterScalableTarget.
#[derive(Debug, Clone, Default)]
pub struct RegisterInput {
    /// ResourceId.
    pub resource_id: String,
    /// MinCapacity.
    pub min: Option<i64>,
    /// MaxCapacity.
    pub max: Option<i64>,
    /// SuspendedState, when given.
    pub suspended: Option<(Option<bool>, Option<bool>, Option<bool>)>,
}

/// The inputs of PutScalingPolicy (a target tracking policy).
#[derive(Debug, Clone)]
pub struct PolicyInput {
    /// PolicyName.
    pub name: String,
    /// ResourceId.
    pub resource_id: String,
    /// TargetValue.
    pub target_value: f64,
    /// ScaleOutCooldown.
    pub scale_out_cooldown: Option<i64>,
    /// ScaleInCooldown.
    pub scale_in_cooldown: Option<i64>,
    /// DisableScaleIn.
    pub disable_scale_in: bool,
    /// The statistic of the datapoints.
    pub statistic: tracking::Statistic,
    /// The metric spec as given.
    pub metric_spec: serde_json::Value,
    /// Predefined (else customized).
    pub predefined: bool,
}

/// The inputs of PutScheduledAction.
#[derive(Debug, Clone, Default)]
pub struct ScheduledInput {
    /// ScheduledActionName.
    pub name: String,
    /// ResourceId.
    pub resource_id: String,
    /// Schedule (required when the action is new).
    pub schedule: Option<String>,
    /// Timezone.
    pub timezone: Option<String>,
    /// StartTime (epoch seconds).
    pub start: Option<f64>,
    /// EndTime (epoch seconds).
    pub end: Option<f64>,
    /// MinCapacity.
    pub min: Option<i64>,
    /// MaxCapacity.
    pub max: Option<i64>,
}

/// The autoscaler. Cheap to clone.
#[derive(Clone)]
pub struct Autoscaler {
    inner: Arc<Inner>,
}

struct Inner {
    store: AutoscaleStore,
    registry: Arc<Registry>,
    source: RwLock<Arc<dyn UtilizationSource>>,
    clock: Arc<dyn Clock>,
    state: Mutex<BTreeMap<String, Live>>,
    /// In a cluster: the election's `Some(epoch)` while this node leads.
    leading: Option<tokio::sync::watch::Receiver<Option<i64>>>,
    /// The epoch under which this node last took the state over (`None` while it
    /// follows).
    led: Mutex<Option<i64>>,
}

impl std::fmt::Debug for Autoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoscaler")
            .field("clock", &self.inner.clock)
            .field("targets", &self.inner.state.lock().len())
            .finish()
    }
}

fn no_target(resource_id: &str) -> AasError {
    AasError::NotFound(format!(
        "No scalable target registered for service namespace: {}, resource ID: {resource_id}, scalable dimension: {}",
        model::NAMESPACE,
        model::DIMENSION
    ))
}

fn capacity(v: i64, field: &str) -> Result<u32, AasError> {
    u32::try_from(v).map_err(|_| {
        AasError::Validation(format!(
            "{field} must be a whole number from 0 to {}, not {v}",
            u32::MAX
        ))
    })
}

fn cooldown(v: Option<i64>, field: &str) -> Result<u32, AasError> {
    match v {
        None => Ok(0), // AAS's default for Lambda provisioned concurrency
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|v| *v <= 31_536_000)
            .ok_or_else(|| {
                AasError::Validation(format!(
                    "{field} must be between 0 and 31536000 seconds, not {v}"
                ))
            }),
    }
}

impl Autoscaler {
    /// Opens the autoscaler's tables in `dir` and loads what they hold; acting and
    /// reading current capacity go through `registry`, sampling through `source`,
    /// and every time decision through `clock`.
    pub fn open(
        dir: &Path,
        registry: Arc<Registry>,
        source: Arc<dyn UtilizationSource>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        Self::with_store(AutoscaleStore::open(dir)?, registry, source, clock, None)
    }

    /// The autoscaler over `store`. `leading` (a cluster's election, `Some(epoch)`
    /// while this node leads) gates the loop's decisions; `None` on a single node.
    pub fn with_store(
        store: AutoscaleStore,
        registry: Arc<Registry>,
        source: Arc<dyn UtilizationSource>,
        clock: Arc<dyn Clock>,
        leading: Option<tokio::sync::watch::Receiver<Option<i64>>>,
    ) -> Result<Self, StoreError> {
        let loaded = store.load()?;
        let now = clock.now();
        let state = assemble(loaded, now, BTreeMap::new());
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                registry,
                source: RwLock::new(source),
                clock,
                state: Mutex::new(state),
                leading,
                led: Mutex::new(None),
            }),
        })
    }

    /// Re-reads the targets, policies and scheduled actions (another node of the
    /// cluster changed them), keeping the series and cooldowns of targets still
    /// there and the next run of scheduled actions that did not change. Blocking.
    pub fn reload(&self) -> Result<(), StoreError> {
        // Under the lock, so a local write (which writes the store under it) is
        // never overwritten by an older read.
        let mut state = self.inner.state.lock();
        let loaded = self.inner.store.load()?;
        let old = std::mem::take(&mut *state);
        *state = assemble(loaded, self.now(), old);
        Ok(())
    }

    /// This node became the leader: the tables are re-read with series and
    /// cooldowns afresh, and scheduled occurrences of the last
    /// [`HANDOVER_LOOKBACK`] (that the previous leader may not have run) are due.
    fn take_over(&self) -> Result<(), StoreError> {
        let mut state = self.inner.state.lock();
        let loaded = self.inner.store.load()?;
        let back = HANDOVER_LOOKBACK.mul_f64(self.inner.clock.speed());
        let since = self.now() - back;
        *state = assemble(loaded, since, BTreeMap::new());
        Ok(())
    }

    /// The epoch the loop decides under: `Ok(None)` on a single node, `Ok(Some)`
    /// while this node leads a cluster (taking the state over when the epoch is
    /// new), `Err(())` while it follows (the tick does nothing).
    fn leading_epoch(&self) -> Result<Option<i64>, ()> {
        let Some(leading) = &self.inner.leading else {
            return Ok(None);
        };
        let epoch = *leading.borrow();
        let mut led = self.inner.led.lock();
        match epoch {
            None => {
                *led = None;
                Err(())
            }
            Some(e) if *led == Some(e) => Ok(Some(e)),
            Some(e) => match self.take_over() {
                Ok(()) => {
                    tracing::info!(epoch = e, "leading: the autoscaler decides on this node");
                    *led = Some(e);
                    Ok(Some(e))
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the autoscaling tables to take over; retried next tick");
                    Err(())
                }
            },
        }
    }

    /// Replaces where utilization is read (the metrics store, once it exists).
    pub fn set_source(&self, source: Arc<dyn UtilizationSource>) {
        *self.inner.source.write() = source;
    }

    /// The autoscaler's time now.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Starts the decision loop; it ends when `scheduler` shuts down.
    pub fn start(&self, scheduler: Scheduler) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.inner.clock.sleep(TICK).await;
                if scheduler.is_shut_down() {
                    break;
                }
                let m = me.clone();
                let _ = tokio::task::spawn_blocking(move || m.tick()).await;
            }
        });
    }

    /// Where the provisioned config that `function:qualifier` scales lives: on the
    /// qualifier itself when it has one; else, for an alias, on the version it
    /// points at when that has one (how `provisionedConcurrency` in serverless.yml
    /// is deployed: the config on the version, the alias `provisioned` on top);
    /// else the qualifier.
    fn config_qualifier(&self, function: &str, qualifier: &str) -> String {
        let reg = &self.inner.registry;
        if reg.get_provisioned(function, Some(qualifier)).is_ok() {
            return qualifier.to_string();
        }
        match reg.get_alias(function, qualifier) {
            Ok(a)
                if reg
                    .get_provisioned(function, Some(&a.function_version))
                    .is_ok() =>
            {
                a.function_version
            }
            _ => qualifier.to_string(),
        }
    }

    /// The provisioned concurrency of `function:qualifier` now (0 when none).
    fn current(&self, function: &str, qualifier: &str) -> u32 {
        let q = self.config_qualifier(function, qualifier);
        self.inner
            .registry
            .get_provisioned(function, Some(&q))
            .map(|(s, _)| s.requested)
            .unwrap_or(0)
    }

    /// Sets the provisioned concurrency of `function:qualifier` to `n`.
    fn set(&self, function: &str, qualifier: &str, n: u32) -> Result<(), String> {
        let qualifier = &self.config_qualifier(function, qualifier);
        let reg = &self.inner.registry;
        if n == 0 {
            return match reg.delete_provisioned(function, Some(qualifier)) {
                Ok(()) => Ok(()),
                Err(e) if e.error_type() == "ProvisionedConcurrencyConfigNotFoundException" => {
                    Ok(())
                }
                Err(e) => Err(e.message),
            };
        }
        reg.put_provisioned(function, Some(qualifier), i64::from(n))
            .map(|_| ())
            .map_err(|e| e.message)
    }

    /// Moves `live`'s capacity from `from` to `to` and records the activity.
    fn act(
        &self,
        live: &mut Live,
        (from, to): (u32, u32),
        cause: String,
        metric: Option<f64>,
    ) -> Activity {
        let start = epoch(self.now());
        let t = &live.target;
        let result = self.set(&t.function, &t.qualifier, to);
        let activity = Activity {
            id: crate::model::new_uuid(),
            resource_id: t.resource_id.clone(),
            description: format!("Setting desired concurrency to {to}."),
            cause,
            start,
            end: epoch(self.now()),
            status: if result.is_ok() {
                "Successful"
            } else {
                "Failed"
            }
            .into(),
            status_message: result
                .err()
                .map(|e| format!("Failed to set provisioned concurrency: {e}")),
            metric,
            from,
            to,
        };
        self.record(&activity);
        activity
    }

    fn record(&self, a: &Activity) {
        if let Err(e) = self.inner.store.add_activity(a) {
            tracing::warn!(error = %e, "cannot store a scaling activity");
        }
        tracing::info!(resource = %a.resource_id, from = a.from, to = a.to, status = %a.status, cause = %a.cause, "scaling activity");
    }

    /// Clamps `live`'s capacity into its range, recording why (`cause`).
    fn clamp(&self, live: &mut Live) {
        let (min, max) = (live.target.min, live.target.max);
        let current = self.current(&live.target.function, &live.target.qualifier);
        let (to, cause) = if current < min {
            (min, format!("minimum capacity was set to {min}"))
        } else if current > max {
            (max, format!("maximum capacity was set to {max}"))
        } else {
            return;
        };
        self.act(live, (current, to), cause, None);
    }

    /// One pass of the loop: due scheduled actions, a sample per tracked target,
    /// and the policies of targets whose minute completed.
    pub fn tick(&self) {
        let Ok(epoch) = self.leading_epoch() else {
            return;
        };
        let now = self.now();
        let source = self.inner.source.read().clone();
        let mut state = self.inner.state.lock();
        let mut deposed = false;
        for live in state.values_mut() {
            if let Err(current) = self.run_scheduled(live, now, epoch) {
                tracing::warn!(
                    current,
                    "deposed while running scheduled actions; the new leader runs them"
                );
                deposed = true;
                break;
            }
            if live.policies.is_empty() {
                continue;
            }
            let sample = source.utilization(&live.target.function, &live.target.qualifier);
            if live.series.add(now, sample) > 0 {
                self.track(live, now);
            }
        }
        drop(state);
        if deposed {
            *self.inner.led.lock() = None;
        }
    }

    /// Runs `live`'s due scheduled actions, each recorded first under `epoch` in a
    /// cluster; `Err(current epoch)` when this node was deposed.
    fn run_scheduled(
        &self,
        live: &mut Live,
        now: OffsetDateTime,
        leader_epoch: Option<i64>,
    ) -> Result<(), i64> {
        if live.target.suspended.2 {
            return Ok(());
        }
        let due: Vec<String> = live
            .scheduled
            .iter()
            .filter(|(_, s)| s.next.is_some_and(|n| n <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for name in due {
            let Some(s) = live.scheduled.get_mut(&name) else {
                continue;
            };
            let due_ms = s
                .next
                .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
            match self.inner.store.record_firing(
                leader_epoch,
                &live.target.resource_id,
                &name,
                due_ms,
            ) {
                Ok(Firing::Recorded) => {}
                Ok(Firing::AlreadyFired) => {
                    s.next = next_run(&s.when, &s.action, now);
                    continue;
                }
                Ok(Firing::Deposed { current }) => return Err(current),
                Err(e) => {
                    // Left due: tried again next tick.
                    tracing::warn!(action = %name, error = %e, "cannot record a scheduled action's run; retried next tick");
                    continue;
                }
            }
            s.next = next_run(&s.when, &s.action, now);
            let action = s.action.clone();
            let before = (live.target.min, live.target.max);
            if let Some(min) = action.min {
                live.target.min = min;
            }
            if let Some(max) = action.max {
                live.target.max = max;
            }
            if live.target.min > live.target.max {
                // An action setting only one bound past the other moves both.
                if action.min.is_some() {
                    live.target.max = live.target.min;
                } else {
                    live.target.min = live.target.max;
                }
            }
            if let Err(e) = self.inner.store.put_target(&live.target) {
                tracing::warn!(error = %e, "cannot store a scalable target");
            }
            let current = self.current(&live.target.function, &live.target.qualifier);
            self.record(&Activity {
                id: crate::model::new_uuid(),
                resource_id: live.target.resource_id.clone(),
                description: format!(
                    "Setting min capacity to {} and max capacity to {}",
                    live.target.min, live.target.max
                ),
                cause: format!("scheduled action name {name} was triggered"),
                start: epoch(now),
                end: epoch(now),
                status: "Successful".into(),
                status_message: None,
                metric: None,
                from: current,
                to: current,
            });
            tracing::debug!(?before, "scheduled action ran");
            self.clamp(live);
        }
        Ok(())
    }

    fn track(&self, live: &mut Live, now: OffsetDateTime) {
        let current = self.current(&live.target.function, &live.target.qualifier);
        let range = (live.target.min, live.target.max);
        let mut out: Option<(tracking::Decision, Policy)> = None;
        let mut ins: Vec<(tracking::Decision, Policy)> = Vec::new();
        let mut all_in = true;
        for p in live.policies.values() {
            let points = live.series.datapoints(p.statistic);
            match tracking::evaluate(&p.tracking(), &points, current, range, now, &live.cooldowns) {
                Some(d) if d.alarm == Alarm::High => {
                    if out.as_ref().is_none_or(|(o, _)| d.to > o.to) {
                        out = Some((d, p.clone()));
                    }
                }
                Some(d) => ins.push((d, p.clone())),
                None => all_in = false,
            }
        }
        let chosen = match out {
            Some(o) if !live.target.suspended.1 => Some(o),
            Some(_) => None,
            None if all_in && !ins.is_empty() && !live.target.suspended.0 => {
                ins.into_iter().max_by_key(|(d, _)| d.to)
            }
            None => None,
        };
        let Some((d, p)) = chosen else {
            return;
        };
        let cause = format!(
            "monitor alarm {} in state ALARM triggered policy {}",
            p.alarm_name(d.alarm.as_str()),
            p.name
        );
        let activity = self.act(live, (d.from, d.to), cause, Some(d.metric));
        if activity.status == "Successful" {
            match d.alarm {
                Alarm::High => {
                    // A scale-out inside the cooldown keeps the cooldown's base.
                    let base = live
                        .cooldowns
                        .scale_out
                        .filter(|(at, _)| {
                            now < *at + Duration::from_secs(u64::from(p.scale_out_cooldown))
                        })
                        .map_or(d.from, |(_, b)| b);
                    live.cooldowns.scale_out = Some((now, base));
                    // A scale-out ends a scale-in cooldown.
                    live.cooldowns.scale_in = None;
                }
                Alarm::Low => live.cooldowns.scale_in = Some(now),
            }
        }
    }

    /// RegisterScalableTarget: creates or updates a target; returns its ARN.
    pub fn register(&self, input: RegisterInput) -> Result<String, AasError> {
        let (function, qualifier) = model::parse_resource_id(&input.resource_id).ok_or_else(|| {
            AasError::Validation(format!(
                "Unsupported resource ID {}: a Lambda resource ID is function:NAME:ALIAS or function:NAME:VERSION",
                input.resource_id
            ))
        })?;
        if qualifier == "$LATEST" {
            return Err(AasError::Validation(
                "Provisioned concurrency cannot be scaled on $LATEST: use an alias or a published version".into(),
            ));
        }
        if let Err(e) = self.inner.registry.resolve(function, Some(qualifier)) {
            return Err(AasError::Validation(format!(
                "Unable to find the Lambda function qualifier {function}:{qualifier}: {}",
                e.message
            )));
        }
        let min = input.min.map(|v| capacity(v, "MinCapacity")).transpose()?;
        let max = input.max.map(|v| capacity(v, "MaxCapacity")).transpose()?;
        let mut state = self.inner.state.lock();
        let now = self.now();
        let existing = state.get(&input.resource_id).map(|l| l.target.clone());
        let mut target = match existing {
            Some(t) => t,
            None => {
                let (Some(min), Some(max)) = (min, max) else {
                    return Err(AasError::Validation(
                        "MinCapacity and MaxCapacity are required when a scalable target is registered for the first time".into(),
                    ));
                };
                Target {
                    resource_id: input.resource_id.clone(),
                    function: function.to_string(),
                    qualifier: qualifier.to_string(),
                    min,
                    max,
                    created: epoch(now),
                    id: crate::model::new_uuid().replace('-', ""),
                    suspended: (false, false, false),
                }
            }
        };
        if let Some(min) = min {
            target.min = min;
        }
        if let Some(max) = max {
            target.max = max;
        }
        if target.min > target.max {
            return Err(AasError::Validation(format!(
                "Minimum capacity ({}) cannot be greater than maximum capacity ({})",
                target.min, target.max
            )));
        }
        if let Some((i, o, s)) = input.suspended {
            let cur = target.suspended;
            target.suspended = (i.unwrap_or(cur.0), o.unwrap_or(cur.1), s.unwrap_or(cur.2));
        }
        self.inner.store.put_target(&target)?;
        let arn = self.target_arn(&target);
        let live = state
            .entry(target.resource_id.clone())
            .or_insert_with(|| Live {
                target: target.clone(),
                policies: BTreeMap::new(),
                scheduled: BTreeMap::new(),
                series: MinuteSeries::default(),
                cooldowns: Cooldowns::default(),
            });
        live.target = target;
        self.clamp(live);
        Ok(arn)
    }

    /// DeregisterScalableTarget: forgets a target with its policies and scheduled
    /// actions; its provisioned concurrency stays as it is.
    pub fn deregister(&self, resource_id: &str) -> Result<(), AasError> {
        let mut state = self.inner.state.lock();
        if !state.contains_key(resource_id) {
            return Err(no_target(resource_id));
        }
        self.inner.store.delete_target(resource_id)?;
        state.remove(resource_id);
        Ok(())
    }

    /// PutScalingPolicy (target tracking): returns the policy ARN and its alarms.
    pub fn put_policy(
        &self,
        input: PolicyInput,
    ) -> Result<(String, Vec<(String, String)>), AasError> {
        if !(input.target_value.is_finite() && input.target_value > 0.0) {
            return Err(AasError::Validation(format!(
                "TargetValue must be a positive number, not {}",
                input.target_value
            )));
        }
        let out = cooldown(input.scale_out_cooldown, "ScaleOutCooldown")?;
        let inn = cooldown(input.scale_in_cooldown, "ScaleInCooldown")?;
        let mut state = self.inner.state.lock();
        let live = state
            .get_mut(&input.resource_id)
            .ok_or_else(|| no_target(&input.resource_id))?;
        let (id, created) = match live.policies.get(&input.name) {
            Some(p) => (p.id.clone(), p.created),
            None => (crate::model::new_uuid(), epoch(self.now())),
        };
        let policy = Policy {
            name: input.name,
            resource_id: input.resource_id,
            target_value: input.target_value,
            scale_out_cooldown: out,
            scale_in_cooldown: inn,
            disable_scale_in: input.disable_scale_in,
            statistic: input.statistic,
            metric_spec: input.metric_spec,
            predefined: input.predefined,
            id,
            created,
        };
        self.inner.store.put_policy(&policy)?;
        let arn = self.policy_arn(&policy);
        let alarms = self.alarms(&policy);
        live.policies.insert(policy.name.clone(), policy);
        Ok((arn, alarms))
    }

    /// DeleteScalingPolicy.
    pub fn delete_policy(&self, resource_id: &str, name: &str) -> Result<(), AasError> {
        let mut state = self.inner.state.lock();
        let found = state
            .get_mut(resource_id)
            .and_then(|l| l.policies.remove(name).map(|_| l));
        let Some(live) = found else {
            return Err(AasError::NotFound(format!(
                "No scaling policy found for service namespace: {}, resource ID: {resource_id}, scalable dimension: {}, policy name: {name}",
                model::NAMESPACE,
                model::DIMENSION
            )));
        };
        if live.policies.is_empty() {
            live.series = MinuteSeries::default();
        }
        self.inner.store.delete_policy(resource_id, name)?;
        Ok(())
    }

    /// PutScheduledAction: creates or updates one.
    pub fn put_scheduled(&self, input: ScheduledInput) -> Result<(), AasError> {
        let mut state = self.inner.state.lock();
        let now = self.now();
        let live = state
            .get_mut(&input.resource_id)
            .ok_or_else(|| no_target(&input.resource_id))?;
        let existing = live.scheduled.get(&input.name).map(|s| s.action.clone());
        let schedule = match (input.schedule, &existing) {
            (Some(s), _) => s,
            (None, Some(e)) => e.schedule.clone(),
            (None, None) => {
                return Err(AasError::Validation(
                    "Schedule is required when a scheduled action is created".into(),
                ))
            }
        };
        let timezone = input
            .timezone
            .or_else(|| existing.as_ref().and_then(|e| e.timezone.clone()));
        let when =
            scheduled::parse(&schedule, timezone.as_deref()).map_err(AasError::Validation)?;
        let min = input.min.map(|v| capacity(v, "MinCapacity")).transpose()?;
        let max = input.max.map(|v| capacity(v, "MaxCapacity")).transpose()?;
        if let (Some(a), Some(b)) = (min, max) {
            if a > b {
                return Err(AasError::Validation(format!(
                    "Minimum capacity ({a}) cannot be greater than maximum capacity ({b})"
                )));
            }
        }
        if let (Some(s), Some(e)) = (input.start, input.end) {
            if s > e {
                return Err(AasError::Validation(
                    "StartTime must be before EndTime".into(),
                ));
            }
        }
        let action = Scheduled {
            name: input.name,
            resource_id: input.resource_id,
            schedule,
            timezone,
            start: input.start,
            end: input.end,
            min: min.or(existing.as_ref().and_then(|e| e.min)),
            max: max.or(existing.as_ref().and_then(|e| e.max)),
            id: existing
                .as_ref()
                .map_or_else(crate::model::new_uuid, |e| e.id.clone()),
            created: existing.as_ref().map_or(epoch(now), |e| e.created),
        };
        self.inner.store.put_scheduled(&action)?;
        let next = next_run(&when, &action, now);
        live.scheduled
            .insert(action.name.clone(), LiveScheduled { action, when, next });
        Ok(())
    }

    /// DeleteScheduledAction.
    pub fn delete_scheduled(&self, resource_id: &str, name: &str) -> Result<(), AasError> {
        let mut state = self.inner.state.lock();
        let found = state
            .get_mut(resource_id)
            .and_then(|l| l.scheduled.remove(name));
        if found.is_none() {
            return Err(AasError::NotFound(format!(
                "No scheduled action found for service namespace: {}, resource ID: {resource_id}, scalable dimension: {}, scheduled action name: {name}",
                model::NAMESPACE,
                model::DIMENSION
            )));
        }
        self.inner.store.delete_scheduled(resource_id, name)?;
        Ok(())
    }

    /// Targets, all or those named.
    pub fn targets(&self, ids: Option<&[String]>) -> Vec<Target> {
        self.inner
            .state
            .lock()
            .values()
            .filter(|l| ids.is_none_or(|ids| ids.contains(&l.target.resource_id)))
            .map(|l| l.target.clone())
            .collect()
    }

    /// Policies, filtered by target and names.
    pub fn policies(&self, resource_id: Option<&str>, names: Option<&[String]>) -> Vec<Policy> {
        self.inner
            .state
            .lock()
            .values()
            .filter(|l| resource_id.is_none_or(|r| r == l.target.resource_id))
            .flat_map(|l| l.policies.values())
            .filter(|p| names.is_none_or(|n| n.contains(&p.name)))
            .cloned()
            .collect()
    }

    /// Scheduled actions, filtered by target and names.
    pub fn scheduled(&self, resource_id: Option<&str>, names: Option<&[String]>) -> Vec<Scheduled> {
        self.inner
            .state
            .lock()
            .values()
            .filter(|l| resource_id.is_none_or(|r| r == l.target.resource_id))
            .flat_map(|l| l.scheduled.values())
            .filter(|s| names.is_none_or(|n| n.contains(&s.action.name)))
            .map(|s| s.action.clone())
            .collect()
    }

    /// Activities, newest first.
    pub fn activities(
        &self,
        resource_id: Option<&str>,
        function: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Activity>, AasError> {
        let prefix = function.map(|f| format!("function:{f}:"));
        Ok(self
            .inner
            .store
            .activities(resource_id, prefix.as_deref(), limit)?)
    }

    /// The dashboard's (and `stratus info`'s) view, of one function or all.
    pub fn overview(&self, function: Option<&str>) -> Result<Overview, AasError> {
        let views: Vec<(Target, Option<f64>, Vec<ScheduledView>)> = {
            let state = self.inner.state.lock();
            state
                .values()
                .filter(|l| function.is_none_or(|f| f == l.target.function))
                .map(|l| {
                    (
                        l.target.clone(),
                        l.policies.values().next().map(|p| p.target_value),
                        l.scheduled
                            .values()
                            .map(|s| ScheduledView {
                                name: s.action.name.clone(),
                                schedule: s.action.schedule.clone(),
                                timezone: s.action.timezone.clone().unwrap_or_else(|| "UTC".into()),
                                min: s.action.min,
                                max: s.action.max,
                            })
                            .collect(),
                    )
                })
                .collect()
        };
        let targets = views
            .into_iter()
            .map(|(t, target_value, scheduled_actions)| TargetView {
                current: self.current(&t.function, &t.qualifier),
                resource_id: t.resource_id,
                function: t.function,
                qualifier: t.qualifier,
                min: t.min,
                max: t.max,
                target_value,
                scheduled_actions,
            })
            .collect();
        let activities = self
            .activities(None, function, DASHBOARD_ACTIVITIES)?
            .iter()
            .map(ActivityView::from)
            .collect();
        Ok(Overview {
            targets,
            activities,
        })
    }

    fn region_account(&self) -> (&str, &str) {
        let id = &self.inner.registry.identity;
        (&id.region, &id.account_id)
    }

    /// A target's ARN.
    pub fn target_arn(&self, t: &Target) -> String {
        let (r, a) = self.region_account();
        format!(
            "arn:aws:application-autoscaling:{r}:{a}:scalable-target/0c{}",
            t.id
        )
    }

    /// The service-linked role AAS names for Lambda targets.
    pub fn role_arn(&self) -> String {
        let (_, a) = self.region_account();
        format!("arn:aws:iam::{a}:role/aws-service-role/lambda.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_LambdaConcurrency")
    }

    /// A policy's ARN.
    pub fn policy_arn(&self, p: &Policy) -> String {
        let (r, a) = self.region_account();
        format!(
            "arn:aws:autoscaling:{r}:{a}:scalingPolicy:{}:resource/lambda/{}:policyName/{}",
            p.id, p.resource_id, p.name
        )
    }

    /// A scheduled action's ARN.
    pub fn scheduled_arn(&self, s: &Scheduled) -> String {
        let (r, a) = self.region_account();
        format!(
            "arn:aws:autoscaling:{r}:{a}:scheduledAction:{}:resource/lambda/{}:scheduledActionName/{}",
            s.id, s.resource_id, s.name
        )
    }

    /// A policy's two alarms: (name, ARN).
    pub fn alarms(&self, p: &Policy) -> Vec<(String, String)> {
        let (r, a) = self.region_account();
        [Alarm::High, Alarm::Low]
            .iter()
            .map(|w| {
                let name = p.alarm_name(w.as_str());
                let arn = format!("arn:aws:cloudwatch:{r}:{a}:alarm:{name}");
                (name, arn)
            })
            .collect()
    }
}

/// The live state of what `loaded` holds at `now`; targets still in `old` keep
/// their series and cooldowns, scheduled actions unchanged there their next run.
fn assemble(
    loaded: store::Loaded,
    now: OffsetDateTime,
    mut old: BTreeMap<String, Live>,
) -> BTreeMap<String, Live> {
    let mut state = BTreeMap::new();
    for target in loaded.targets {
        let (series, cooldowns, previous) = match old.remove(&target.resource_id) {
            Some(l) => (l.series, l.cooldowns, l.scheduled),
            None => Default::default(),
        };
        state.insert(
            target.resource_id.clone(),
            (
                Live {
                    target,
                    policies: BTreeMap::new(),
                    scheduled: BTreeMap::new(),
                    series,
                    cooldowns,
                },
                previous,
            ),
        );
    }
    for p in loaded.policies {
        if let Some((live, _)) = state.get_mut(&p.resource_id) {
            live.policies.insert(p.name.clone(), p);
        }
    }
    for s in loaded.scheduled {
        let Some((live, previous)) = state.get_mut(&s.resource_id) else {
            continue;
        };
        if let Some(p) = previous.remove(&s.name).filter(|p| p.action == s) {
            live.scheduled.insert(s.name.clone(), p);
            continue;
        }
        match scheduled::parse(&s.schedule, s.timezone.as_deref()) {
            Ok(when) => {
                let next = next_run(&when, &s, now);
                live.scheduled.insert(
                    s.name.clone(),
                    LiveScheduled {
                        action: s,
                        when,
                        next,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(action = %s.name, error = %e, "stored scheduled action does not parse; skipped")
            }
        }
    }
    state
        .into_iter()
        .map(|(k, (mut live, _))| {
            if live.policies.is_empty() {
                live.series = MinuteSeries::default();
            }
            (k, live)
        })
        .collect()
}

/// The next run of `s` after `now`.
fn next_run(when: &scheduled::When, s: &Scheduled, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let start = s.start.and_then(from_epoch);
    let end = s.end.and_then(from_epoch);
    let anchor = start.or_else(|| from_epoch(s.created)).unwrap_or(now);
    when.next_after(now, anchor, start, end)
}
