//! Concurrency settings: reserved concurrency (Put/Get/DeleteFunctionConcurrency)
//! and provisioned concurrency configs (Put/Get/DeleteProvisionedConcurrencyConfig),
//! checked against each other and the account's unreserved minimum as Lambda does,
//! and handed to the scheduler, which keeps the pools.

use std::sync::Arc;

use stratus_scheduler::{FunctionSpec, ProvisionedStatus};

use super::aliases::qualifier_spec;
use super::{parse_function_ref, FnEntry, Registry};
use crate::error::ApiError;
use crate::model::lambda_time_now;

const UNPUBLISHED: &str =
    "Provisioned Concurrency Configs cannot be applied to unpublished function versions.";

fn no_config(entry: &FnEntry, q: &str) -> ApiError {
    ApiError::no_provisioned(format!(
        "No Provisioned Concurrency Config found for this function: {}:{q}",
        entry.latest.config.function_arn
    ))
}

/// A pool's provisioned floor, computed on an entry before it is installed and
/// handed to the scheduler after.
pub(super) struct Floor {
    spec: Arc<FunctionSpec>,
    total: u32,
}

impl Registry {
    /// The floor `spec`'s pool should keep under `entry`'s configs.
    pub(super) fn floor_of(&self, entry: &FnEntry, spec: Arc<FunctionSpec>) -> Floor {
        let total = self.provisioned_on_pool(entry, &spec.pool_key);
        Floor { spec, total }
    }

    /// Hands floors to the scheduler, once the entry they were computed on is
    /// installed (so traffic and warm environments agree on the version).
    pub(super) fn set_floors(&self, floors: impl IntoIterator<Item = Floor>) {
        for f in floors {
            self.scheduler.set_provisioned(&f.spec, f.total);
        }
    }

    /// Sum of provisioned configs that land on `pool_key` (a version and its aliases).
    pub(super) fn provisioned_on_pool(&self, entry: &FnEntry, pool_key: &str) -> u32 {
        entry
            .provisioned
            .iter()
            .filter(|(q, _)| qualifier_spec(entry, q).is_ok_and(|s| &*s.pool_key == pool_key))
            .map(|(_, (n, _))| n)
            .sum()
    }

    /// PutFunctionConcurrency.
    pub fn put_reserved(&self, raw: &str, n: i64) -> Result<u32, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        if n < 0 {
            return Err(ApiError::validation(
                &n.to_string(),
                "reservedConcurrentExecutions",
                "Member must have value greater than or equal to 0",
            ));
        }
        let n = u32::try_from(n).map_err(|_| {
            ApiError::validation(
                &n.to_string(),
                "reservedConcurrentExecutions",
                &format!("Member must have value less than or equal to {}", u32::MAX),
            )
        })?;
        let (writer, mut entry) = self.begin(&name)?;
        let available = self.scheduler.unreserved_available(&name);
        if n > available {
            return Err(ApiError::invalid(format!(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{}].",
                self.scheduler.settings().unreserved_minimum
            )));
        }
        let provisioned: u32 = entry.provisioned.values().map(|(p, _)| p).sum();
        if provisioned > n {
            return Err(ApiError::invalid(format!(
                "ReservedConcurrentExecutions {n} should be greater than or equal to the total provisioned concurrency of the function ({provisioned})"
            )));
        }
        entry.reserved = Some(n);
        let base = entry.latest.config.revision_id.clone();
        if let Err(e) = self.store.put_function(&entry.stored(), &base) {
            return Err(self.refused(&name, writer, e, false));
        }
        self.install(&name, entry);
        self.scheduler.set_reserved(&name, Some(n));
        Ok(n)
    }

    /// GetFunctionConcurrency.
    pub fn get_reserved(&self, raw: &str) -> Result<Option<u32>, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        self.read(&name, |e| e.reserved)
    }

    /// DeleteFunctionConcurrency.
    pub fn delete_reserved(&self, raw: &str) -> Result<(), ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let (writer, mut entry) = self.begin(&name)?;
        entry.reserved = None;
        let base = entry.latest.config.revision_id.clone();
        if let Err(e) = self.store.put_function(&entry.stored(), &base) {
            return Err(self.refused(&name, writer, e, false));
        }
        self.install(&name, entry);
        self.scheduler.set_reserved(&name, None);
        Ok(())
    }

    /// PutProvisionedConcurrencyConfig.
    pub fn put_provisioned(
        &self,
        raw: &str,
        qualifier: Option<&str>,
        n: i64,
    ) -> Result<(ProvisionedStatus, String), ApiError> {
        self.put_provisioned_replacing(raw, qualifier, n, None)
    }

    /// PutProvisionedConcurrencyConfig during a deployment that moves the floor from
    /// `replacing` to `qualifier`: both exist until the new one is READY, so the old
    /// one is not counted against reserved concurrency meanwhile.
    pub fn put_provisioned_replacing(
        &self,
        raw: &str,
        qualifier: Option<&str>,
        n: i64,
        replacing: Option<&str>,
    ) -> Result<(ProvisionedStatus, String), ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let q = qualifier.ok_or_else(|| ApiError::invalid("Qualifier is required: provisioned concurrency applies to a published version or an alias"))?;
        if q == "$LATEST" {
            return Err(ApiError::invalid(UNPUBLISHED));
        }
        let n = u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::validation(
                &n.to_string(),
                "provisionedConcurrentExecutions",
                if n < 1 {
                    "Member must have value greater than or equal to 1"
                } else {
                    "Member must have value less than or equal to 4294967295"
                },
            )
        })?;
        let (_writer, mut entry) = self.begin(&name)?;
        let spec = qualifier_spec(&entry, q)?;
        if entry
            .aliases
            .get(q)
            .is_some_and(|a| a.function_version == "$LATEST")
        {
            return Err(ApiError::invalid(UNPUBLISHED));
        }
        let others: u64 = entry
            .provisioned
            .iter()
            .filter(|(k, _)| k.as_str() != q && Some(k.as_str()) != replacing)
            .map(|(_, (p, _))| u64::from(*p))
            .sum();
        let wanted = others + u64::from(n);
        if let Some(r) = entry.reserved {
            if wanted > u64::from(r) {
                return Err(ApiError::invalid(format!(
                    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function ({r})"
                )));
            }
        } else if wanted > u64::from(self.scheduler.unreserved_available(&name)) {
            return Err(ApiError::invalid(format!(
                "Requested Provisioned Concurrency ({n}) would leave less than the account's minimum unreserved concurrency of {}",
                self.scheduler.settings().unreserved_minimum
            )));
        }
        let modified = lambda_time_now();
        self.store.put_provisioned(&name, q, Some((n, &modified)))?;
        entry
            .provisioned
            .insert(q.to_string(), (n, modified.clone()));
        let floor = self.floor_of(&entry, spec.clone());
        self.install(&name, entry);
        self.set_floors([floor]);
        Ok((self.provisioned_view(&spec, n), modified))
    }

    /// The status of `n` provisioned environments requested on `spec`'s pool (a pool
    /// may serve several configs: a version and its aliases).
    fn provisioned_view(&self, spec: &FunctionSpec, n: u32) -> ProvisionedStatus {
        let status =
            self.scheduler
                .provisioned_status(&spec.pool_key)
                .unwrap_or(ProvisionedStatus {
                    requested: n,
                    available: 0,
                    status: "IN_PROGRESS",
                    reason: None,
                });
        ProvisionedStatus {
            requested: n,
            available: status.available.min(n),
            ..status
        }
    }

    /// GetProvisionedConcurrencyConfig.
    pub fn get_provisioned(
        &self,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<(ProvisionedStatus, String), ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let q = qualifier.ok_or_else(|| ApiError::invalid("Qualifier is required"))?;
        let (n, modified, spec) = self.read(&name, |entry| {
            let (n, modified) = entry
                .provisioned
                .get(q)
                .cloned()
                .ok_or_else(|| no_config(entry, q))?;
            Ok::<_, ApiError>((n, modified, qualifier_spec(entry, q)?))
        })??;
        Ok((self.provisioned_view(&spec, n), modified))
    }

    /// DeleteProvisionedConcurrencyConfig.
    pub fn delete_provisioned(&self, raw: &str, qualifier: Option<&str>) -> Result<(), ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let q = qualifier.ok_or_else(|| ApiError::invalid("Qualifier is required"))?;
        let (_writer, mut entry) = self.begin(&name)?;
        if entry.provisioned.remove(q).is_none() {
            return Err(no_config(&entry, q));
        }
        self.store.put_provisioned(&name, q, None)?;
        let floor = qualifier_spec(&entry, q)
            .ok()
            .map(|spec| self.floor_of(&entry, spec));
        self.install(&name, entry);
        self.set_floors(floor);
        Ok(())
    }
}
