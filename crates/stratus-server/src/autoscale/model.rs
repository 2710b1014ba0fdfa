//! What the autoscaler stores and the API shows: scalable targets, target tracking
//! policies, scheduled actions and scaling activities. Times are epoch seconds (the
//! JSON protocol's timestamps).

use serde::{Deserialize, Serialize};

use super::tracking::{Statistic, Tracking};

/// The one namespace and dimension served.
pub const NAMESPACE: &str = "lambda";
/// The one scalable dimension served.
pub const DIMENSION: &str = "lambda:function:ProvisionedConcurrency";
/// The predefined metric of a Lambda target tracking policy.
pub const PREDEFINED_METRIC: &str = "LambdaProvisionedConcurrencyUtilization";

/// A scalable target: one function qualifier's provisioned concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// `function:NAME:QUALIFIER`.
    pub resource_id: String,
    /// The function name.
    pub function: String,
    /// Alias or version.
    pub qualifier: String,
    /// Lowest capacity.
    pub min: u32,
    /// Highest capacity.
    pub max: u32,
    /// Registered at (epoch seconds).
    pub created: f64,
    /// Id in the target's ARN.
    pub id: String,
    /// SuspendedState: dynamic scale-in, dynamic scale-out, scheduled.
    pub suspended: (bool, bool, bool),
}

/// A target tracking policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// PolicyName.
    pub name: String,
    /// Its target's ResourceId.
    pub resource_id: String,
    /// TargetValue.
    pub target_value: f64,
    /// ScaleOutCooldown, seconds.
    pub scale_out_cooldown: u32,
    /// ScaleInCooldown, seconds.
    pub scale_in_cooldown: u32,
    /// DisableScaleIn.
    pub disable_scale_in: bool,
    /// The datapoints' statistic.
    pub statistic: Statistic,
    /// The metric specification as given (Predefined or Customized), echoed back.
    pub metric_spec: serde_json::Value,
    /// Whether the spec is `PredefinedMetricSpecification` (else Customized).
    pub predefined: bool,
    /// Id in the policy's and its alarms' names.
    pub id: String,
    /// Created at (epoch seconds).
    pub created: f64,
}

impl Policy {
    /// The settings the decision maths reads.
    pub fn tracking(&self) -> Tracking {
        Tracking {
            target_value: self.target_value,
            scale_out_cooldown: std::time::Duration::from_secs(u64::from(self.scale_out_cooldown)),
            scale_in_cooldown: std::time::Duration::from_secs(u64::from(self.scale_in_cooldown)),
            disable_scale_in: self.disable_scale_in,
        }
    }

    /// The name of one of the policy's alarms (`AlarmHigh`/`AlarmLow`).
    pub fn alarm_name(&self, which: &str) -> String {
        format!("TargetTracking-{}-{which}-{}", self.resource_id, self.id)
    }
}

/// A scheduled action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scheduled {
    /// ScheduledActionName.
    pub name: String,
    /// Its target's ResourceId.
    pub resource_id: String,
    /// `at(...)`, `rate(...)` or `cron(...)`.
    pub schedule: String,
    /// IANA zone name (UTC when absent).
    pub timezone: Option<String>,
    /// StartTime (epoch seconds).
    pub start: Option<f64>,
    /// EndTime (epoch seconds).
    pub end: Option<f64>,
    /// ScalableTargetAction.MinCapacity.
    pub min: Option<u32>,
    /// ScalableTargetAction.MaxCapacity.
    pub max: Option<u32>,
    /// Id in the action's ARN.
    pub id: String,
    /// Created at (epoch seconds); rates count from here (or StartTime).
    pub created: f64,
}

/// One scaling activity: a decision and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// ActivityId (a UUID).
    pub id: String,
    /// ResourceId of the target.
    pub resource_id: String,
    /// What was done (`Setting desired concurrency to 5.`).
    pub description: String,
    /// Why.
    pub cause: String,
    /// Started (epoch seconds, on the autoscaler's clock).
    pub start: f64,
    /// Ended.
    pub end: f64,
    /// `Successful` or `Failed`.
    pub status: String,
    /// Why it failed, when it did.
    pub status_message: Option<String>,
    /// The datapoint that drove it (target tracking only).
    pub metric: Option<f64>,
    /// Capacity before.
    pub from: u32,
    /// Capacity after (or asked for, when it failed).
    pub to: u32,
}

/// Parses `function:NAME:QUALIFIER` into (name, qualifier).
pub fn parse_resource_id(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("function:")?;
    let (name, q) = rest.split_once(':')?;
    (stratus_rules::is_function_name(name) && stratus_rules::is_qualifier(q) && !q.is_empty())
        .then_some((name, q))
}

/// Seconds since the epoch of `t`, with fractions.
pub fn epoch(t: time::OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// The instant of epoch seconds `s` (`None` when out of range).
pub fn from_epoch(s: f64) -> Option<time::OffsetDateTime> {
    if !s.is_finite() {
        return None;
    }
    time::OffsetDateTime::from_unix_timestamp_nanos((s * 1e9) as i128).ok()
}
