//! `functions.<name>.concurrencyAutoscaling:` — provisioned-concurrency autoscaling
//! with the syntax of the `serverless-provisioned-concurrency-autoscaling` plugin,
//! built into Stratus (no `plugins:` entry needed):
//!
//! ```yaml
//! provisionedConcurrency: 1
//! concurrencyAutoscaling: true          # or a map:
//! concurrencyAutoscaling:
//!   enabled: true                       # required in the map form, as in the plugin
//!   alias: provisioned                  # default `provisioned`
//!   minimum: 1                          # default 1
//!   maximum: 10                         # default 10
//!   usage: 0.75                         # target utilization, default 0.75
//!   scaleInCooldown: 120                # seconds, default 120
//!   scaleOutCooldown: 0                 # seconds, default 0
//!   customMetric:                       # the alarms' statistic: Maximum when
//!     statistic: maximum                #   customMetric is given, else Average
//!   scheduledActions:
//!     - name: morning                   # required
//!       schedule: cron(0 8 ? * MON-FRI *)   # or rate(...) or at(yyyy-mm-ddThh:mm:ss); required
//!       timezone: Europe/Paris          # IANA name, default UTC
//!       startTime: '2030-01-01T00:00:00Z'   # optional, UTC
//!       endTime: '2030-12-31T00:00:00Z'     # optional, UTC
//!       action: {minimum: 5, maximum: 20}   # at least one; required
//! ```
//!
//! As with the plugin, autoscaling applies only to a function with
//! `provisionedConcurrency` above 0, and a minimum or maximum of 0 (or absent) takes
//! the default.

use serde::{Deserialize, Serialize};

use crate::spanned::{Node, Value};

use super::reader::{boolean, non_empty_string, whole, Checker, Fields, Range};

/// The alias the plugin (and Stratus's `provisionedConcurrency`) scales.
pub(super) const DEFAULT_ALIAS: &str = "provisioned";

/// Resolved `concurrencyAutoscaling` of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcurrencyAutoscaling {
    /// The alias scaled (`function:NAME:ALIAS`).
    pub alias: String,
    /// MinCapacity.
    pub minimum: u32,
    /// MaxCapacity.
    pub maximum: u32,
    /// Target utilization (TargetValue).
    pub usage: f64,
    /// ScaleInCooldown, seconds.
    pub scale_in_cooldown: u32,
    /// ScaleOutCooldown, seconds.
    pub scale_out_cooldown: u32,
    /// The statistic of a customized metric (`Maximum`, …); `None`: the predefined
    /// metric (Average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    /// Scheduled actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduled_actions: Vec<ScheduledScaling>,
}

/// One `scheduledActions` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledScaling {
    /// ScheduledActionName.
    pub name: String,
    /// `at(...)`, `rate(...)` or `cron(...)`.
    pub schedule: String,
    /// IANA time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// StartTime, `yyyy-mm-ddThh:mm:ssZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// EndTime, `yyyy-mm-ddThh:mm:ssZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// MinCapacity it sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<u32>,
    /// MaxCapacity it sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<u32>,
}

/// What `concurrencyAutoscaling` says, before `provisionedConcurrency` is looked at:
/// `None` when absent or disabled.
pub(super) fn concurrency_autoscaling(
    c: &mut Checker,
    node: &Node,
    path: &str,
) -> Option<ConcurrencyAutoscaling> {
    let mut out = ConcurrencyAutoscaling {
        alias: DEFAULT_ALIAS.into(),
        minimum: 1,
        maximum: 10,
        usage: 0.75,
        scale_in_cooldown: 120,
        scale_out_cooldown: 0,
        statistic: None,
        scheduled_actions: Vec::new(),
    };
    if let Value::Bool(enabled) = node.value {
        return enabled.then_some(out);
    }
    let mut f = Fields::new(c, node, path, "true, false or a map with `enabled: true`")?;
    let enabled = f
        .get("enabled")
        .and_then(|n| boolean(c, n, &f.path_of("enabled")));
    if let Some(n) = f.get("alias") {
        let p = f.path_of("alias");
        if let Some(a) = non_empty_string(c, n, &p) {
            if a != DEFAULT_ALIAS {
                c.error(
                    &n.span,
                    &p,
                    format!("alias `{a}` does not exist: Stratus points the alias `{DEFAULT_ALIAS}` at the version `provisionedConcurrency` warms, and scales that one"),
                );
            }
        }
    }
    // The plugin treats 0 like an absent value (its defaults are `x || default`).
    let count = |c: &mut Checker, f: &mut Fields<'_>, key: &'static str| {
        let p = f.path_of(key);
        f.get(key)
            .and_then(|n| {
                whole(
                    c,
                    n,
                    &p,
                    "a whole number of environments",
                    Range::at_least(0),
                )
            })
            .filter(|n| *n > 0)
    };
    let minimum = count(c, &mut f, "minimum");
    let maximum = count(c, &mut f, "maximum");
    out.minimum = minimum.unwrap_or(out.minimum);
    out.maximum = maximum.unwrap_or(out.maximum);
    if out.minimum > out.maximum {
        let key = if minimum.is_some() {
            "minimum"
        } else {
            "maximum"
        };
        let span = f.key_span(key).unwrap_or_else(|| node.span.clone());
        c.error(
            &span,
            &f.path_of(key),
            format!(
                "minimum ({}) cannot be greater than maximum ({})",
                out.minimum, out.maximum
            ),
        );
    }
    if let Some(n) = f.get("usage") {
        let p = f.path_of("usage");
        match &n.value {
            Value::Int(i) if *i == 1 => out.usage = 1.0,
            Value::Float(u) if *u > 0.0 && *u <= 1.0 => out.usage = *u,
            // 0 is the plugin's "absent".
            Value::Int(0) => {}
            Value::Float(u) if *u == 0.0 => {}
            _ => c.expected(
                n,
                &p,
                "a target utilization above 0 and at most 1 (0.75 = 75 %)",
            ),
        }
    }
    for (key, slot) in [
        ("scaleInCooldown", &mut out.scale_in_cooldown),
        ("scaleOutCooldown", &mut out.scale_out_cooldown),
    ] {
        let p = f.path_of(key);
        if let Some(v) = f.get(key).and_then(|n| {
            whole(
                c,
                n,
                &p,
                "a whole number of seconds",
                Range::between(0, 31_536_000),
            )
        }) {
            // As in the plugin, 0 takes the default.
            if v > 0 {
                *slot = v;
            }
        }
    }
    if let Some(n) = f.get("customMetric") {
        out.statistic = custom_metric(c, n, &f.path_of("customMetric"));
    }
    if let Some(n) = f.get("scheduledActions") {
        let p = f.path_of("scheduledActions");
        match &n.value {
            Value::Seq(items) if !items.is_empty() => {
                let mut names = std::collections::BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    let ip = format!("{p}[{i}]");
                    if let Some(a) = scheduled_action(c, item, &ip) {
                        if !names.insert(a.name.clone()) {
                            c.error(
                                &item.span,
                                &ip,
                                format!("a second scheduled action named `{}`", a.name),
                            );
                        }
                        out.scheduled_actions.push(a);
                    }
                }
            }
            _ => c.expected(n, &p, "a list of at least one scheduled action"),
        }
    }
    f.finish(c, &[]);
    match enabled {
        Some(true) => Some(out),
        Some(false) => None,
        None => {
            c.warn(
                &node.span,
                path,
                "autoscaling is off: the map form needs `enabled: true`, as in the serverless-provisioned-concurrency-autoscaling plugin",
            );
            None
        }
    }
}

fn custom_metric(c: &mut Checker, node: &Node, path: &str) -> Option<String> {
    let mut f = Fields::new(c, node, path, "a map with `statistic`")?;
    let stat = match f.get("statistic") {
        None => Some("Maximum".to_string()),
        Some(n) => {
            let p = f.path_of("statistic");
            let found = n.as_str().and_then(|s| {
                ["Average", "Maximum", "Minimum", "SampleCount", "Sum"]
                    .into_iter()
                    .find(|k| k.eq_ignore_ascii_case(s))
            });
            if found.is_none() {
                c.expected(
                    n,
                    &p,
                    "`average`, `maximum`, `minimum`, `sampleCount` or `sum`",
                );
            }
            found.map(str::to_string)
        }
    };
    // The plugin builds the rest of the metric itself; other keys are let through.
    f.finish(c, &["dimensions", "metricName", "namespace", "unit"]);
    stat
}

/// `yyyy-mm-ddThh:mm:ssZ`, as the plugin's schema requires.
fn is_utc_time(s: &str) -> bool {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::PrimitiveDateTime::parse(s, &format).is_ok()
}

fn scheduled_action(c: &mut Checker, node: &Node, path: &str) -> Option<ScheduledScaling> {
    let mut f = Fields::new(c, node, path, "a map with `name`, `schedule` and `action`")?;
    let name = match f.get("name") {
        Some(n) => non_empty_string(c, n, &f.path_of("name")).filter(|s| {
            let bad = s.starts_with(' ')
                || s.ends_with(' ')
                || s.chars()
                    .any(|ch| ch.is_control() || matches!(ch, ':' | '/' | '|'));
            if bad {
                c.expected(
                    n,
                    &f.path_of("name"),
                    "a name without `:`, `/`, `|` or spaces at either end",
                );
            }
            !bad
        }),
        None => {
            c.error(&node.span, &f.path_of("name"), "missing `name`");
            None
        }
    };
    let timezone = f
        .get("timezone")
        .and_then(|n| non_empty_string(c, n, &f.path_of("timezone")).map(|s| (s, n)));
    let schedule = match f.get("schedule") {
        Some(n) => non_empty_string(c, n, &f.path_of("schedule")).and_then(|s| {
            let tz = timezone.as_ref().map(|(t, _)| t.as_str());
            match stratus_schedule::zoned::parse(&s, tz) {
                Ok(_) => Some(s),
                // A bad zone is reported at the zone.
                Err(e)
                    if tz.is_some_and(|t| e.contains(t))
                        && stratus_schedule::zoned::parse(&s, None).is_ok() =>
                {
                    if let Some((_, tn)) = &timezone {
                        c.error(&tn.span, &f.path_of("timezone"), e);
                    }
                    None
                }
                Err(e) => {
                    c.error(&n.span, &f.path_of("schedule"), e);
                    None
                }
            }
        }),
        None => {
            c.error(
                &node.span,
                &f.path_of("schedule"),
                "missing `schedule` (cron(...), rate(...) or at(yyyy-mm-ddThh:mm:ss))",
            );
            None
        }
    };
    let mut time_of = |key: &'static str| {
        let p = f.path_of(key);
        f.get(key).and_then(|n| {
            let s = non_empty_string(c, n, &p)?;
            if is_utc_time(&s) {
                Some(s)
            } else {
                c.expected(n, &p, "a UTC time as yyyy-mm-ddThh:mm:ssZ");
                None
            }
        })
    };
    let start_time = time_of("startTime");
    let end_time = time_of("endTime");
    let action = match f.get("action") {
        Some(n) => action(c, n, &f.path_of("action")),
        None => {
            c.error(
                &node.span,
                &f.path_of("action"),
                "missing `action` (`minimum` and/or `maximum`)",
            );
            None
        }
    };
    f.finish(c, &[]);
    let (minimum, maximum) = action?;
    Some(ScheduledScaling {
        name: name?,
        schedule: schedule?,
        timezone: timezone.map(|(t, _)| t),
        start_time,
        end_time,
        minimum,
        maximum,
    })
}

fn action(c: &mut Checker, node: &Node, path: &str) -> Option<(Option<u32>, Option<u32>)> {
    let mut f = Fields::new(c, node, path, "a map with `minimum` and/or `maximum`")?;
    let mut get = |key: &'static str| {
        let p = f.path_of(key);
        f.get(key).and_then(|n| {
            whole(
                c,
                n,
                &p,
                "a whole number of environments",
                Range::at_least(0),
            )
        })
    };
    let minimum = get("minimum");
    let maximum = get("maximum");
    f.finish(c, &[]);
    if minimum.is_none() && maximum.is_none() {
        c.error(
            &node.span,
            path,
            "an action sets `minimum`, `maximum` or both",
        );
        return None;
    }
    if let (Some(a), Some(b)) = (minimum, maximum) {
        if a > b {
            c.error(
                &node.span,
                path,
                format!("minimum ({a}) cannot be greater than maximum ({b})"),
            );
            return None;
        }
    }
    Some((minimum, maximum))
}
