//! Aliases and routing: Create/Get/List/Update/DeleteAlias with weighted routing
//! (`RoutingConfig.AdditionalVersionWeights`), how a qualifier resolves to a version,
//! and [`Registry::resolve`], the invoke path's only call into the registry.

use std::sync::Arc;

use stratus_scheduler::FunctionSpec;

use super::{parse_function_ref, FnEntry, Registry, Resolved, VersionEntry, REVISION_MISMATCH};
use crate::error::ApiError;
use crate::model::{new_uuid, AliasConfiguration, RoutingConfig};

const ALIAS_PATTERN: &str =
    "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)";

/// The version entry a qualifier names (`None` and `$LATEST` are `$LATEST`; an alias
/// is its primary version).
pub(super) fn qualifier_entry<'a>(entry: &'a FnEntry, q: Option<&str>) -> Option<&'a VersionEntry> {
    match q {
        None | Some("$LATEST") => Some(&entry.latest),
        Some(q) => match q.parse::<u64>() {
            Ok(n) => entry.versions.get(&n).map(Arc::as_ref),
            Err(_) => {
                let a = entry.aliases.get(q)?;
                qualifier_entry(entry, Some(&a.function_version))
            }
        },
    }
}

/// The spec of the version a qualifier names.
pub(super) fn qualifier_spec(entry: &FnEntry, q: &str) -> Result<Arc<FunctionSpec>, ApiError> {
    let v = qualifier_entry(entry, Some(q)).ok_or_else(|| {
        ApiError::not_found(format!(
            "Function not found: {}:{q}",
            entry.latest.config.function_arn
        ))
    })?;
    v.spec.clone().map_err(ApiError::runtime)
}

/// An alias's target: an existing version, and at most one other published version
/// with a weight in [0, 1].
fn check_alias_target(
    entry: &FnEntry,
    version: &str,
    routing: Option<&RoutingConfig>,
) -> Result<(), ApiError> {
    let exists = |v: &str| {
        v == "$LATEST"
            || v.parse::<u64>()
                .ok()
                .is_some_and(|n| entry.versions.contains_key(&n))
    };
    if !exists(version) {
        return Err(ApiError::not_found(format!(
            "Function not found: {}:{version}",
            entry.latest.config.function_arn
        )));
    }
    if let Some(r) = routing {
        if r.additional_version_weights.len() > 1 {
            return Err(ApiError::invalid(
                "RoutingConfig supports at most one additional version",
            ));
        }
        for (v, w) in &r.additional_version_weights {
            if v == "$LATEST" || v == version || !exists(v) {
                return Err(ApiError::invalid(format!("Invalid additional version {v}: it must be a published version other than the alias's primary version")));
            }
            if !(0.0..=1.0).contains(w) {
                return Err(ApiError::validation(
                    &w.to_string(),
                    "routingConfig.additionalVersionWeights",
                    "Member must have value between 0.0 and 1.0",
                ));
            }
        }
    }
    Ok(())
}

fn alias_not_found(entry: &FnEntry, alias: &str) -> ApiError {
    ApiError::not_found(format!(
        "Cannot find alias arn: {}:{alias}",
        entry.latest.config.function_arn
    ))
}

impl Registry {
    /// CreateAlias.
    pub fn create_alias(
        &self,
        raw: &str,
        alias: &str,
        version: &str,
        description: Option<String>,
        routing: Option<RoutingConfig>,
    ) -> Result<AliasConfiguration, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        if !stratus_rules::is_alias_name(alias) {
            return Err(ApiError::validation(alias, "name", ALIAS_PATTERN));
        }
        let (writer, mut entry) = self.begin(&name)?;
        if entry.aliases.contains_key(alias) {
            return Err(ApiError::conflict(format!(
                "Alias already exists: {}:{alias}",
                entry.latest.config.function_arn
            )));
        }
        check_alias_target(&entry, version, routing.as_ref())?;
        let a = AliasConfiguration {
            alias_arn: format!("{}:{alias}", entry.latest.config.function_arn),
            name: alias.to_string(),
            function_version: version.to_string(),
            description: description.unwrap_or_default(),
            routing_config: routing.filter(|r| !r.additional_version_weights.is_empty()),
            revision_id: new_uuid(),
        };
        if let Err(e) = self.store.put_alias(&name, &a, None) {
            return Err(self.refused(&name, writer, e, false));
        }
        entry.aliases.insert(alias.to_string(), a.clone());
        self.install(&name, entry);
        Ok(a)
    }

    /// GetAlias.
    pub fn get_alias(&self, raw: &str, alias: &str) -> Result<AliasConfiguration, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        check_alias_name(alias)?;
        self.read(&name, |entry| {
            entry
                .aliases
                .get(alias)
                .cloned()
                .ok_or_else(|| alias_not_found(entry, alias))
        })?
    }

    /// ListAliases.
    pub fn list_aliases(&self, raw: &str) -> Result<Vec<AliasConfiguration>, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        self.read(&name, |entry| entry.aliases.values().cloned().collect())
    }

    /// UpdateAlias; a provisioned config on the alias moves with it.
    pub fn update_alias(
        &self,
        raw: &str,
        alias: &str,
        version: Option<String>,
        description: Option<String>,
        routing: Option<RoutingConfig>,
        revision: Option<String>,
    ) -> Result<AliasConfiguration, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        check_alias_name(alias)?;
        let (writer, mut entry) = self.begin(&name)?;
        let mut a = entry
            .aliases
            .get(alias)
            .cloned()
            .ok_or_else(|| alias_not_found(&entry, alias))?;
        if revision.as_ref().is_some_and(|r| *r != a.revision_id) {
            return Err(ApiError::precondition(REVISION_MISMATCH));
        }
        let base = a.revision_id.clone();
        let old_spec = qualifier_spec(&entry, alias).ok();
        if let Some(v) = version {
            a.function_version = v;
        }
        if let Some(d) = description {
            a.description = d;
        }
        if let Some(r) = routing {
            a.routing_config = Some(r).filter(|r| !r.additional_version_weights.is_empty());
        }
        check_alias_target(&entry, &a.function_version, a.routing_config.as_ref())?;
        a.revision_id = new_uuid();
        if let Err(e) = self.store.put_alias(&name, &a, Some(&base)) {
            return Err(self.refused(&name, writer, e, revision.is_some()));
        }
        entry.aliases.insert(alias.to_string(), a.clone());
        // The floor moves to the new version's pool (the old pool keeps what its
        // other configs ask for) once the moved alias is visible.
        let mut floors = Vec::new();
        if entry.provisioned.contains_key(alias) {
            let new_spec = qualifier_spec(&entry, alias)?;
            if old_spec.as_ref().map(|s| &s.pool_key) != Some(&new_spec.pool_key) {
                floors.push(self.floor_of(&entry, new_spec));
                floors.extend(old_spec.map(|old| self.floor_of(&entry, old)));
            }
        }
        self.install(&name, entry);
        self.set_floors(floors);
        Ok(a)
    }

    /// DeleteAlias.
    pub fn delete_alias(&self, raw: &str, alias: &str) -> Result<(), ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        check_alias_name(alias)?;
        let (_writer, mut entry) = self.begin(&name)?;
        let spec = qualifier_spec(&entry, alias).ok();
        if entry.aliases.remove(alias).is_none() {
            return Ok(()); // Lambda answers 204 for a missing alias too
        }
        self.store.delete_alias(&name, alias)?;
        let had_floor = entry.provisioned.remove(alias).is_some();
        let floor = spec
            .filter(|_| had_floor)
            .map(|spec| self.floor_of(&entry, spec));
        self.install(&name, entry);
        self.set_floors(floor);
        Ok(())
    }

    /// Resolves a FunctionName and qualifier for invocation. This is the hot path:
    /// one read lock, and no allocation beyond the parsed name and, for a qualified
    /// call, the qualified ARN.
    pub fn resolve(&self, raw: &str, qualifier: Option<&str>) -> Result<Resolved, ApiError> {
        let (name, q) = parse_function_ref(raw)?;
        let q = match (q.as_deref(), qualifier) {
            (Some(a), Some(b)) if a != b => {
                return Err(ApiError::invalid(format!("The derived qualifier from the function name ({a}) does not match the specified qualifier ({b})")))
            }
            (Some(_), _) => q,
            (None, b) => b.map(str::to_string),
        };
        let fns = self.fns.read();
        let entry = fns
            .get(&name)
            .ok_or_else(|| self.not_found(&name, q.as_deref()))?;
        let version = match q.as_deref() {
            Some(alias) if !alias.bytes().all(|b| b.is_ascii_digit()) && alias != "$LATEST" => {
                let a = entry
                    .aliases
                    .get(alias)
                    .ok_or_else(|| self.not_found(&name, Some(alias)))?;
                let mut target = a.function_version.as_str();
                if let Some(r) = &a.routing_config {
                    let roll: f64 = rand::random();
                    let mut acc = 0.0;
                    for (v, w) in &r.additional_version_weights {
                        acc += w;
                        if roll < acc {
                            target = v;
                            break;
                        }
                    }
                }
                Some(target)
            }
            other => other,
        };
        let v =
            qualifier_entry(entry, version).ok_or_else(|| self.not_found(&name, q.as_deref()))?;
        let spec = v.spec.clone().map_err(ApiError::runtime)?;
        let invoked_arn = match q.as_deref() {
            Some(q) => Arc::from(format!("{}:{q}", entry.latest.invoked_arn)),
            None => entry.latest.invoked_arn.clone(),
        };
        Ok(Resolved {
            executed_version: spec.version.clone(),
            spec,
            invoked_arn,
        })
    }
}

/// An alias name from a path: Lambda's pattern, checked before any lookup so `..`,
/// `/` or NUL are refused as invalid rather than reported as missing.
fn check_alias_name(alias: &str) -> Result<(), ApiError> {
    if stratus_rules::is_alias_name(alias) {
        Ok(())
    } else {
        Err(ApiError::validation(alias, "name", ALIAS_PATTERN))
    }
}
