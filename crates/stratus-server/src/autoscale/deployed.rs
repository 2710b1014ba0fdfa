//! What a deployment does with a function's `concurrencyAutoscaling`: the scalable
//! target `function:NAME:provisioned`, one target tracking policy and the scheduled
//! actions are made exactly what serverless.yml says (through the same calls as the
//! API), and taken away when the key is gone. Only that target is the deployment's:
//! targets registered through the API on other qualifiers are left alone.

use stratus_manifest::schema::ConcurrencyAutoscaling;

use super::model::{epoch, Policy, Scheduled};
use super::tracking::Statistic;
use super::{AasError, Autoscaler, PolicyInput, RegisterInput, ScheduledInput};

/// The alias a deployment scales (where `provisionedConcurrency` is served).
const ALIAS: &str = crate::model::PROVISIONED_ALIAS;

/// The policy a deployment puts on its target.
fn policy_name(function: &str) -> String {
    format!("{function}-concurrency-autoscaling")
}

/// `yyyy-mm-ddThh:mm:ssZ` (checked by the manifest) as epoch seconds.
fn utc(s: &str) -> Result<f64, AasError> {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::PrimitiveDateTime::parse(s, &format)
        .map(|t| epoch(t.assume_utc()))
        .map_err(|_| AasError::Validation(format!("{s} is not a UTC time as yyyy-mm-ddThh:mm:ssZ")))
}

impl Autoscaler {
    /// Makes `function`'s autoscaling what a deployment asks for (`None`: none).
    /// Returns what changed, one line each (empty when nothing did).
    pub fn apply_deployed(
        &self,
        function: &str,
        wanted: Option<&ConcurrencyAutoscaling>,
    ) -> Result<Vec<String>, AasError> {
        let rid = format!("function:{function}:{ALIAS}");
        let existing = self.targets(Some(std::slice::from_ref(&rid)));
        let Some(a) = wanted else {
            if existing.is_empty() {
                return Ok(Vec::new());
            }
            self.deregister(&rid)?;
            return Ok(vec![format!("autoscaling removed ({rid})")]);
        };
        let mut steps = Vec::new();
        if existing
            .first()
            .is_none_or(|t| (t.min, t.max) != (a.minimum, a.maximum))
        {
            self.register(RegisterInput {
                resource_id: rid.clone(),
                min: Some(i64::from(a.minimum)),
                max: Some(i64::from(a.maximum)),
                suspended: None,
            })?;
            steps.push(format!(
                "autoscaling {rid} between {} and {}",
                a.minimum, a.maximum
            ));
        }
        // The policy.
        let name = policy_name(function);
        let statistic = match &a.statistic {
            Some(s) => Statistic::parse(s)
                .ok_or_else(|| AasError::Validation(format!("unknown statistic {s}")))?,
            None => Statistic::Average,
        };
        let predefined = a.statistic.is_none();
        let spec = if predefined {
            serde_json::json!({ "PredefinedMetricType": super::model::PREDEFINED_METRIC })
        } else {
            serde_json::json!({
                "Dimensions": [
                    { "Name": "FunctionName", "Value": function },
                    { "Name": "Resource", "Value": format!("{function}:{ALIAS}") },
                ],
                "MetricName": "ProvisionedConcurrencyUtilization",
                "Namespace": "AWS/Lambda",
                "Statistic": statistic.as_str(),
                "Unit": "Count",
            })
        };
        let policies = self.policies(Some(&rid), None);
        let same = |p: &Policy| {
            p.name == name
                && p.target_value == a.usage
                && p.scale_in_cooldown == a.scale_in_cooldown
                && p.scale_out_cooldown == a.scale_out_cooldown
                && p.statistic == statistic
                && p.predefined == predefined
                && !p.disable_scale_in
        };
        if !policies.iter().any(same) {
            self.put_policy(PolicyInput {
                name: name.clone(),
                resource_id: rid.clone(),
                target_value: a.usage,
                scale_out_cooldown: Some(i64::from(a.scale_out_cooldown)),
                scale_in_cooldown: Some(i64::from(a.scale_in_cooldown)),
                disable_scale_in: false,
                statistic,
                metric_spec: spec,
                predefined,
            })?;
            steps.push(format!(
                "target tracking of ProvisionedConcurrencyUtilization at {} ({})",
                a.usage,
                statistic.as_str()
            ));
        }
        for p in policies.iter().filter(|p| p.name != name) {
            self.delete_policy(&rid, &p.name)?;
            steps.push(format!("scaling policy {} removed", p.name));
        }
        // Scheduled actions.
        let have = self.scheduled(Some(&rid), None);
        for s in &a.scheduled_actions {
            let start = s.start_time.as_deref().map(utc).transpose()?;
            let end = s.end_time.as_deref().map(utc).transpose()?;
            let same = |x: &Scheduled| {
                x.name == s.name
                    && x.schedule == s.schedule
                    && x.timezone == s.timezone
                    && x.start == start
                    && x.end == end
                    && x.min == s.minimum
                    && x.max == s.maximum
            };
            if have.iter().any(same) {
                continue;
            }
            if have.iter().any(|x| x.name == s.name) {
                // Replaced whole: a bound removed from serverless.yml is removed.
                self.delete_scheduled(&rid, &s.name)?;
            }
            self.put_scheduled(ScheduledInput {
                name: s.name.clone(),
                resource_id: rid.clone(),
                schedule: Some(s.schedule.clone()),
                timezone: s.timezone.clone(),
                start,
                end,
                min: s.minimum.map(i64::from),
                max: s.maximum.map(i64::from),
            })?;
            steps.push(format!("scheduled action {} ({})", s.name, s.schedule));
        }
        for x in have
            .iter()
            .filter(|x| !a.scheduled_actions.iter().any(|s| s.name == x.name))
        {
            self.delete_scheduled(&rid, &x.name)?;
            steps.push(format!("scheduled action {} removed", x.name));
        }
        Ok(steps)
    }

    /// Deregisters every target of a deleted function.
    pub fn forget_function(&self, function: &str) {
        let prefix = format!("function:{function}:");
        for t in self.targets(None) {
            if t.resource_id.starts_with(&prefix) {
                if let Err(e) = self.deregister(&t.resource_id) {
                    tracing::warn!(target = %t.resource_id, error = %e, "cannot deregister the scalable target of a deleted function");
                }
            }
        }
    }
}
