//! Asynchronous invocation settings: Put/Update/Get/Delete/ListFunctionEventInvokeConfig
//! (retry attempts, maximum event age, destinations) and the effective settings the
//! async queue applies to one event.

use super::{parse_function_ref, Registry};
use crate::error::ApiError;
use crate::model::EventInvokeConfig;

/// The settings the async queue applies to one event: the effective event-invoke
/// config with Lambda's defaults, and the dead-letter target.
#[derive(Debug, Clone)]
pub struct EventInvokeSettings {
    /// Retries after the first attempt (0-2; Lambda's default 2).
    pub maximum_retry_attempts: u32,
    /// Longest an event waits for delivery, in seconds (Lambda's default 6 hours).
    pub maximum_event_age_seconds: u32,
    /// Where a successful invocation's record goes (a function or queue ARN).
    pub on_success: Option<String>,
    /// Where a failed event's record goes.
    pub on_failure: Option<String>,
    /// The function's dead-letter queue or function (`DeadLetterConfig.TargetArn`).
    pub dead_letter_target: Option<String>,
}

impl Default for EventInvokeSettings {
    fn default() -> Self {
        Self {
            maximum_retry_attempts: 2,
            maximum_event_age_seconds: 21_600,
            on_success: None,
            on_failure: None,
            dead_letter_target: None,
        }
    }
}

/// The function and qualifier an event-invoke-config call names: `?Qualifier=`, else
/// the one in the name, else `$LATEST`.
fn target(raw: &str, qualifier: Option<&str>) -> Result<(String, String), ApiError> {
    let (name, q) = parse_function_ref(raw)?;
    let q = qualifier
        .map(str::to_string)
        .or(q)
        .unwrap_or_else(|| "$LATEST".into());
    Ok((name, q))
}

impl Registry {
    /// Put/UpdateFunctionEventInvokeConfig: validates and stores (`merge` keeps fields
    /// the request leaves out, as UpdateFunctionEventInvokeConfig does).
    pub fn put_event_invoke_config(
        &self,
        raw: &str,
        qualifier: Option<&str>,
        mut cfg: EventInvokeConfig,
        merge: bool,
    ) -> Result<EventInvokeConfig, ApiError> {
        let (name, q) = target(raw, qualifier)?;
        let _writer = self.writer.lock();
        let arn = self.read(&name, |entry| {
            super::aliases::qualifier_entry(entry, Some(&q))
                .map(|_| entry.latest.config.function_arn.clone())
                .ok_or_else(|| self.not_found(&name, Some(&q)))
        })??;
        if let Some(n) = cfg.maximum_retry_attempts {
            if !(0..=2).contains(&n) {
                return Err(ApiError::validation(
                    &n.to_string(),
                    "maximumRetryAttempts",
                    "Member must have value less than or equal to 2 and greater than or equal to 0",
                ));
            }
        }
        if let Some(n) = cfg.maximum_event_age_in_seconds {
            if !(60..=21_600).contains(&n) {
                return Err(ApiError::validation(&n.to_string(), "maximumEventAgeInSeconds", "Member must have value less than or equal to 21600 and greater than or equal to 60"));
            }
        }
        if merge {
            let old = self.store.event_invoke_config(&name, &q)?.ok_or_else(|| {
                ApiError::not_found(format!(
                    "The function {arn}:{q} doesn't have an EventInvokeConfig"
                ))
            })?;
            cfg.maximum_retry_attempts = cfg.maximum_retry_attempts.or(old.maximum_retry_attempts);
            cfg.maximum_event_age_in_seconds = cfg
                .maximum_event_age_in_seconds
                .or(old.maximum_event_age_in_seconds);
            cfg.destination_config = cfg.destination_config.or(old.destination_config);
        }
        cfg.function_arn = Some(format!("{arn}:{q}"));
        cfg.last_modified = Some(crate::logs::now_ms() as f64 / 1000.0);
        let stored = self.store.put_event_invoke_config(&name, &q, Some(&cfg));
        self.event_configs.invalidate(&name);
        stored?;
        Ok(cfg)
    }

    /// GetFunctionEventInvokeConfig.
    pub fn get_event_invoke_config(
        &self,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<EventInvokeConfig, ApiError> {
        let (name, q) = target(raw, qualifier)?;
        let arn = self.identity.function_arn(&name);
        self.read(&name, |_| ())?;
        self.store.event_invoke_config(&name, &q)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "The function {arn}:{q} doesn't have an EventInvokeConfig"
            ))
        })
    }

    /// DeleteFunctionEventInvokeConfig.
    pub fn delete_event_invoke_config(
        &self,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ApiError> {
        let _writer = self.writer.lock();
        self.get_event_invoke_config(raw, qualifier)?;
        let (name, q) = target(raw, qualifier)?;
        let stored = self.store.put_event_invoke_config(&name, &q, None);
        self.event_configs.invalidate(&name);
        stored?;
        Ok(())
    }

    /// ListFunctionEventInvokeConfigs.
    pub fn list_event_invoke_configs(&self, raw: &str) -> Result<Vec<EventInvokeConfig>, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        self.read(&name, |_| ())?;
        Ok(self.store.event_invoke_configs(&name)?)
    }

    /// Every event-invoke config of `name` by qualifier, from memory (read from the
    /// store when not cached).
    pub(super) fn cached_event_configs(
        &self,
        name: &str,
    ) -> Result<super::event_cache::Configs, crate::store::StoreError> {
        self.event_configs.get(name, || {
            Ok(self
                .store
                .event_invoke_configs(name)?
                .into_iter()
                .filter_map(|c| {
                    // Stored with the ARN of the qualifier it configures.
                    let q = stratus_metrics::qualifier_of(c.function_arn.as_deref()?)?.to_string();
                    Some((q, c))
                })
                .collect())
        })
    }

    /// Retry, age and destination settings for an asynchronous event of `name` invoked
    /// with `qualifier` (the qualifier's config, else `$LATEST`'s, else Lambda's
    /// defaults), plus the function's dead-letter target.
    pub fn event_invoke_settings(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> EventInvokeSettings {
        let mut out = EventInvokeSettings::default();
        let q = qualifier.unwrap_or("$LATEST");
        // From memory (`event_cache.rs`): read from the store once per function and
        // change, not per event.
        let configs = self
            .cached_event_configs(name)
            .inspect_err(|e| {
                // Lambda's defaults apply meanwhile; the event is not lost.
                tracing::error!(
                    function = name,
                    qualifier = q,
                    "cannot read the event invoke config, using the defaults: {e}"
                );
            })
            .unwrap_or_default();
        let cfg = configs.get(q).or_else(|| configs.get("$LATEST")).cloned();
        if let Some(c) = cfg {
            if let Some(n) = c.maximum_retry_attempts {
                out.maximum_retry_attempts = n as u32;
            }
            if let Some(n) = c.maximum_event_age_in_seconds {
                out.maximum_event_age_seconds = n as u32;
            }
            if let Some(d) = c.destination_config {
                out.on_success = d.on_success.and_then(|d| d.destination);
                out.on_failure = d.on_failure.and_then(|d| d.destination);
            }
        }
        out.dead_letter_target = self.fns.read().get(name).and_then(|e| {
            e.latest
                .config
                .dead_letter_config
                .as_ref()
                .and_then(|d| d.target_arn.clone())
        });
        out
    }
}
