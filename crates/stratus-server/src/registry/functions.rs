//! Functions: CreateFunction, GetFunction(Configuration), ListFunctions,
//! DeleteFunction, UpdateFunctionCode, UpdateFunctionConfiguration, PublishVersion
//! (with Lambda's de-duplication of unchanged versions) and ListVersionsByFunction.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::tags::{check_tag_count, check_tags};
use super::{
    parse_function_ref, CodeInput, FnEntry, FunctionInput, FunctionView, Registry,
    REVISION_MISMATCH,
};
use crate::error::ApiError;
use crate::model::{
    lambda_time_now, new_uuid, EphemeralStorage, FunctionConfiguration, TracingConfig,
};
use crate::store::{StoredFunction, StoredVersion};

impl Registry {
    /// CreateFunction.
    pub fn create(&self, input: FunctionInput) -> Result<FunctionConfiguration, ApiError> {
        let raw_name = input.function_name.clone().unwrap_or_default();
        let (name, qualifier) = parse_function_ref(&raw_name)?;
        if qualifier.is_some() {
            return Err(ApiError::invalid(
                "FunctionName must not include a qualifier when creating a function",
            ));
        }
        if input.package_type.as_deref().is_some_and(|p| p != "Zip") {
            return Err(ApiError::invalid(
                "Only PackageType Zip is supported by Stratus",
            ));
        }
        let runtime = input
            .runtime
            .clone()
            .ok_or_else(|| ApiError::invalid("Runtime is required for .zip file functions"))?;
        let handler = input.handler.clone().unwrap_or_default();
        let memory = input.memory_size.unwrap_or(128);
        let timeout = input.timeout.unwrap_or(3);
        let storage = input
            .ephemeral_storage
            .as_ref()
            .map(|s| s.size as i64)
            .unwrap_or(512);
        super::check_settings(
            &runtime,
            &handler,
            memory,
            timeout,
            input.environment.as_ref(),
            storage,
        )?;
        self.runtimes
            .interpreters()
            .check(&runtime)
            .map_err(ApiError::invalid)?;
        if input.layers.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(ApiError::invalid("Layers are not supported yet by Stratus"));
        }
        let tags = input.tags.clone().unwrap_or_default();
        check_tags(&tags)?;
        check_tag_count(&self.identity.function_arn(&name), tags.len())?;
        let code = input.code.clone().unwrap_or_default();
        let exists = || ApiError::conflict(format!("Function already exist: {name}"));
        if self.fns.read().contains_key(&name) {
            return Err(exists());
        }
        // Storing and unpacking the code is the slow part: done before the writer lock.
        let (code_hex, code_size, code_b64) = self.store_code(&code)?;
        let config = FunctionConfiguration {
            function_arn: self.identity.function_arn(&name),
            function_name: name.clone(),
            runtime,
            role: input.role.clone().unwrap_or_default(),
            handler,
            code_size,
            description: input.description.clone().unwrap_or_default(),
            timeout: timeout as u32,
            memory_size: memory as u32,
            last_modified: lambda_time_now(),
            code_sha256: code_b64,
            version: "$LATEST".into(),
            environment: input
                .environment
                .clone()
                .filter(|e| !e.variables.is_empty()),
            tracing_config: TracingConfig {
                mode: "PassThrough".into(),
            },
            revision_id: new_uuid(),
            state: "Active".into(),
            last_update_status: "Successful".into(),
            package_type: "Zip".into(),
            architectures: input
                .architectures
                .clone()
                .unwrap_or_else(|| vec!["x86_64".into()]),
            ephemeral_storage: EphemeralStorage {
                size: storage as u32,
            },
            dead_letter_config: input
                .dead_letter_config
                .clone()
                .filter(|d| d.target_arn.is_some()),
            role_policy: input.role_policy.clone().flatten(),
            egress: input.egress.unwrap_or(false),
            kms_key_arn: super::validate::check_kms_key_arn(input.kms_key_arn.as_deref())?,
        };
        let entry = FnEntry {
            latest: self.version_entry(config.clone(), code_hex),
            versions: Arc::default(),
            aliases: BTreeMap::new(),
            version_counter: 0,
            reserved: None,
            provisioned: BTreeMap::new(),
            tags,
        };
        {
            let _writer = self.writer.lock();
            if self.fns.read().contains_key(&name) {
                return Err(exists());
            }
            self.store.create_function(&entry.stored(), &entry.tags)?;
            self.event_configs.invalidate(&name);
            self.install(&name, entry);
        }
        if input.publish.unwrap_or(false) {
            self.publish(&name, None, Preconditions::default())?;
        }
        Ok(config)
    }

    /// GetFunction's parts: configuration (of the qualifier) and reserved concurrency.
    pub fn get(
        &self,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<(FunctionConfiguration, Option<u32>), ApiError> {
        let v = self.describe(raw, qualifier)?;
        Ok((v.config, v.reserved))
    }

    /// GetFunction: the qualifier's configuration and code, the function's reserved
    /// concurrency and tags.
    pub fn describe(&self, raw: &str, qualifier: Option<&str>) -> Result<FunctionView, ApiError> {
        let (name, q) = parse_function_ref(raw)?;
        let q = qualifier.map(str::to_string).or(q);
        self.read(&name, |entry| {
            let v = super::aliases::qualifier_entry(entry, q.as_deref())
                .ok_or_else(|| self.not_found(&name, q.as_deref()))?;
            Ok(FunctionView {
                config: v.config.clone(),
                code_hex: v.code_hex.clone(),
                reserved: entry.reserved,
                tags: entry.tags.clone(),
            })
        })?
    }

    /// ListFunctions (`$LATEST` of each).
    pub fn list(&self) -> Vec<FunctionConfiguration> {
        let fns = self.fns.read();
        let mut out: Vec<_> = fns.values().map(|e| e.latest.config.clone()).collect();
        drop(fns);
        out.sort_by(|a, b| a.function_name.cmp(&b.function_name));
        out
    }

    /// DeleteFunction (whole function, or one published version).
    pub fn delete(&self, raw: &str, qualifier: Option<&str>) -> Result<(), ApiError> {
        let (name, q) = parse_function_ref(raw)?;
        let q = qualifier.map(str::to_string).or(q);
        let (_writer, mut entry) = self.begin(&name)?;
        match q.as_deref() {
            None | Some("$LATEST") => {
                self.store.delete_function(&name)?;
                self.event_configs.invalidate(&name);
                let removed = self.fns.write().remove(&name);
                drop(removed);
                // Its reservation, counters and scaling bucket go too: names are
                // caller-chosen, so nothing kept per name may outlive the function.
                self.scheduler.forget(&name);
                self.scheduler.retire(&format!("{name}\0"));
                Ok(())
            }
            Some(v) => {
                let n: u64 = v.parse().map_err(|_| ApiError::invalid(format!("Deletion of aliases is not supported by DeleteFunction: use DeleteAlias for {v}")))?;
                if let Some(alias) = entry.aliases.values().find(|a| {
                    a.function_version == v
                        || a.routing_config
                            .as_ref()
                            .is_some_and(|r| r.additional_version_weights.contains_key(v))
                }) {
                    return Err(ApiError::conflict(format!(
                        "Unable to delete version because the following aliases reference it: [{}]",
                        alias.name
                    )));
                }
                let removed = Arc::make_mut(&mut entry.versions)
                    .remove(&n)
                    .ok_or_else(|| self.not_found(&name, Some(v)))?;
                entry.provisioned.remove(v);
                self.store.delete_version(&name, v)?;
                self.install(&name, entry);
                if let Ok(spec) = &removed.spec {
                    self.scheduler.retire(&spec.pool_key);
                }
                Ok(())
            }
        }
    }

    /// UpdateFunctionCode.
    pub fn update_code(
        &self,
        raw: &str,
        code: CodeInput,
    ) -> Result<FunctionConfiguration, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        self.read(&name, |_| ())?;
        let (code_hex, code_size, code_b64) = self.store_code(&code)?;
        let config = self.modify_latest(&name, code.revision_id.as_deref(), |c, hex| {
            c.code_size = code_size;
            c.code_sha256 = code_b64.clone();
            *hex = code_hex.clone();
            Ok(())
        })?;
        if code.publish.unwrap_or(false) {
            self.publish(&name, None, Preconditions::default())?;
        }
        Ok(config)
    }

    /// UpdateFunctionConfiguration.
    pub fn update_configuration(
        &self,
        raw: &str,
        input: FunctionInput,
    ) -> Result<FunctionConfiguration, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        self.modify_latest(&name, input.revision_id.as_deref(), |c, _| {
            let runtime = input.runtime.clone().unwrap_or_else(|| c.runtime.clone());
            let handler = input.handler.clone().unwrap_or_else(|| c.handler.clone());
            let memory = input.memory_size.unwrap_or(c.memory_size as i64);
            let timeout = input.timeout.unwrap_or(c.timeout as i64);
            let storage = input
                .ephemeral_storage
                .as_ref()
                .map(|s| s.size)
                .unwrap_or(c.ephemeral_storage.size) as i64;
            let environment = input.environment.clone().or_else(|| c.environment.clone());
            let kms_key_arn = match input.kms_key_arn.as_deref() {
                Some(arn) => super::validate::check_kms_key_arn(Some(arn))?,
                None => c.kms_key_arn.clone(),
            };
            super::check_settings(
                &runtime,
                &handler,
                memory,
                timeout,
                environment.as_ref(),
                storage,
            )?;
            if input.runtime.is_some() {
                self.runtimes
                    .interpreters()
                    .check(&runtime)
                    .map_err(ApiError::invalid)?;
            }
            c.runtime = runtime;
            c.handler = handler;
            c.memory_size = memory as u32;
            c.timeout = timeout as u32;
            c.ephemeral_storage.size = storage as u32;
            c.environment = environment.filter(|e| !e.variables.is_empty());
            c.kms_key_arn = kms_key_arn;
            if let Some(d) = &input.description {
                c.description = d.clone();
            }
            if let Some(r) = &input.role {
                c.role = r.clone();
            }
            if let Some(p) = &input.role_policy {
                c.role_policy = p.clone();
            }
            if let Some(e) = input.egress {
                c.egress = e;
            }
            if let Some(d) = &input.dead_letter_config {
                c.dead_letter_config = Some(d.clone())
                    .filter(|d| d.target_arn.as_deref().is_some_and(|t| !t.is_empty()));
            }
            Ok(())
        })
    }

    /// Changes `$LATEST` (configuration and code hash) and gives it a new revision;
    /// its old environments are retired.
    fn modify_latest(
        &self,
        name: &str,
        revision: Option<&str>,
        change: impl FnOnce(&mut FunctionConfiguration, &mut String) -> Result<(), ApiError>,
    ) -> Result<FunctionConfiguration, ApiError> {
        let (writer, mut entry) = self.begin(name)?;
        if revision.is_some_and(|r| r != entry.latest.config.revision_id) {
            return Err(ApiError::precondition(REVISION_MISMATCH));
        }
        // What the change is based on: the store writes only while it is still
        // the stored revision (another node may have changed it since).
        let base = entry.latest.config.revision_id.clone();
        let mut config = entry.latest.config.clone();
        let mut hex = entry.latest.code_hex.clone();
        change(&mut config, &mut hex)?;
        config.last_modified = lambda_time_now();
        config.revision_id = new_uuid();
        let old_key = entry.latest.spec.as_ref().ok().map(|s| s.pool_key.clone());
        entry.latest = self.version_entry(config.clone(), hex);
        if let Err(e) = self.store.put_function(&entry.stored(), &base) {
            return Err(self.refused(name, writer, e, revision.is_some()));
        }
        self.install(name, entry);
        if let Some(key) = old_key {
            self.scheduler.retire(&key);
        }
        Ok(config)
    }

    /// PublishVersion: snapshots `$LATEST` unless it is unchanged since the last
    /// published version, in which case that version is returned (as Lambda does).
    /// The caller's `CodeSha256` and `RevisionId` are checked against `$LATEST`
    /// under the writer lock, and the store records the version only while
    /// `$LATEST` is still the revision snapshotted.
    pub fn publish(
        &self,
        raw: &str,
        description: Option<String>,
        pre: Preconditions,
    ) -> Result<FunctionConfiguration, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let (writer, mut entry) = self.begin(&name)?;
        let latest = &entry.latest.config;
        if let Some(c) = pre
            .code_sha256
            .as_ref()
            .filter(|c| **c != latest.code_sha256)
        {
            return Err(ApiError::precondition(format!(
                "CodeSHA256 ({c}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                latest.code_sha256
            )));
        }
        if pre
            .revision_id
            .as_ref()
            .is_some_and(|r| *r != latest.revision_id)
        {
            return Err(ApiError::precondition(REVISION_MISMATCH));
        }
        let base = latest.revision_id.clone();
        if let Some((_, last)) = entry.versions.iter().next_back() {
            if same_content(&last.config, &entry.latest.config)
                && last.code_hex == entry.latest.code_hex
            {
                return Ok(last.config.clone());
            }
        }
        let n = entry.version_counter + 1;
        let mut config = entry.latest.config.clone();
        config.version = n.to_string();
        config.function_arn = format!("{}:{n}", self.identity.function_arn(&name));
        config.revision_id = new_uuid();
        config.last_modified = lambda_time_now();
        if let Some(d) = description {
            config.description = d;
        }
        entry.version_counter = n;
        let version = StoredVersion {
            config: config.clone(),
            code_hex: entry.latest.code_hex.clone(),
        };
        let stored: StoredFunction = entry.stored();
        if let Err(e) = self.store.put_version(&stored, &version, &base) {
            return Err(self.refused(&name, writer, e, pre.revision_id.is_some()));
        }
        let ve = self.version_entry(config.clone(), version.code_hex);
        Arc::make_mut(&mut entry.versions).insert(n, Arc::new(ve));
        self.install(&name, entry);
        Ok(config)
    }

    /// ListVersionsByFunction: `$LATEST` then each version.
    pub fn versions(&self, raw: &str) -> Result<Vec<FunctionConfiguration>, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        self.read(&name, |entry| {
            let mut out = vec![entry.latest.config.clone()];
            out.extend(entry.versions.values().map(|v| v.config.clone()));
            out
        })
    }
}

/// What PublishVersion's caller expects of `$LATEST` (each checked if given).
#[derive(Debug, Default, Clone)]
pub struct Preconditions {
    /// `CodeSha256`: the code `$LATEST` must have.
    pub code_sha256: Option<String>,
    /// `RevisionId`: the revision `$LATEST` must have.
    pub revision_id: Option<String>,
}

/// Whether two configurations differ only in what each version has of its own
/// (number, ARN, revision, time, description): publishing would change nothing.
fn same_content(a: &FunctionConfiguration, b: &FunctionConfiguration) -> bool {
    let strip = |c: &FunctionConfiguration| {
        let mut c = c.clone();
        c.version = String::new();
        c.function_arn = String::new();
        c.revision_id = String::new();
        c.last_modified = String::new();
        c.description = String::new();
        c
    };
    strip(a) == strip(b)
}
