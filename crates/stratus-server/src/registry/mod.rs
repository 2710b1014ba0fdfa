//! The live function registry: every function's `$LATEST`, published versions,
//! aliases and concurrency settings, in memory, written through to a
//! [`FunctionStore`]. It validates management requests the way Lambda does, builds
//! each version's [`FunctionSpec`] once, and resolves `(name, qualifier)` for the
//! invocation path without touching the database.
//!
//! One file per concern:
//! - [`names`]: function names, qualifiers and ARNs ([`Identity`], [`parse_function_ref`],
//!   [`parse_tag_arn`]).
//! - [`validate`]: CreateFunction's setting checks, on the rules of `stratus-rules`.
//! - [`launch`]: a version's [`FunctionSpec`] (program, arguments, environment).
//! - [`blobs`]: where code packages are kept (node-local, and a shared store).
//! - [`code`]: code packages in the blob store, unpacked once.
//! - `refresh`: installing what another node of a cluster changed.
//! - [`functions`]: create, read, update, publish, delete.
//! - [`aliases`]: aliases, weighted routing and the invoke path's [`Registry::resolve`].
//! - [`concurrency`]: reserved and provisioned concurrency.
//! - [`tags`]: function tags.
//! - [`event_config`]: asynchronous invocation settings.
//!
//! # Locking
//! The invoke path takes the read lock of `fns` and nothing else. Every change takes
//! the `writer` mutex (so changes are serialized and none is lost), copies the
//! function's entry, validates and changes the copy, writes it to the store — with
//! no lock on `fns` held — and only then installs the copy under a write lock held
//! for one map insert. A slow database therefore delays other management calls, never
//! an invocation; and the in-memory state never shows a change the store refused.

mod aliases;
pub mod blobs;
mod code;
mod concurrency;
mod event_cache;
mod event_config;
mod functions;
mod launch;
mod names;
mod refresh;
pub mod s3;
mod tags;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};
use stratus_scheduler::{FunctionSpec, Scheduler};

use crate::error::ApiError;
use crate::model::{AliasConfiguration, Environment, EphemeralStorage, FunctionConfiguration};
use crate::runtimes::Runtimes;
use crate::store::{FunctionStore, StoreError};

/// Lambda's message for a RevisionId that is not the latest.
pub(crate) const REVISION_MISMATCH: &str = "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id";

pub use code::MAX_ZIP_BYTES;
pub use event_config::EventInvokeSettings;
pub use functions::Preconditions;
pub use names::{parse_function_ref, parse_tag_arn, Identity, TagArn};
pub use tags::{check_tag_count, check_tag_key, check_tags, MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE};
pub use validate::check_settings;

#[derive(Debug, Clone)]
struct VersionEntry {
    config: FunctionConfiguration,
    code_hex: String,
    spec: Result<Arc<FunctionSpec>, String>,
    invoked_arn: Arc<str>,
}

/// One function. Cloned by every change (see the module docs), so the version
/// table is shared: a change that does not publish or delete a version costs O(1)
/// in versions, and one that does copies a table of pointers.
#[derive(Debug, Clone)]
struct FnEntry {
    latest: VersionEntry,
    versions: Arc<BTreeMap<u64, Arc<VersionEntry>>>,
    aliases: BTreeMap<String, AliasConfiguration>,
    version_counter: u64,
    reserved: Option<u32>,
    /// Qualifier → (requested, last modified).
    provisioned: BTreeMap<String, (u32, String)>,
    /// The function's tags (function-level: versions and aliases have none).
    tags: BTreeMap<String, String>,
}

impl FnEntry {
    /// The stored form of `$LATEST` and the function-level settings.
    fn stored(&self) -> crate::store::StoredFunction {
        crate::store::StoredFunction {
            config: self.latest.config.clone(),
            code_hex: self.latest.code_hex.clone(),
            version_counter: self.version_counter,
            reserved: self.reserved,
        }
    }
}

/// What the invocation path needs after resolving a name and qualifier.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// How to start (or find the pool of) the resolved version.
    pub spec: Arc<FunctionSpec>,
    /// The version that runs (`$LATEST` or a number).
    pub executed_version: Arc<str>,
    /// The ARN the caller invoked (qualified as it was).
    pub invoked_arn: Arc<str>,
}

/// The fields of CreateFunction and UpdateFunctionConfiguration we honour.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct FunctionInput {
    pub function_name: Option<String>,
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<Environment>,
    pub architectures: Option<Vec<String>>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    pub code: Option<CodeInput>,
    pub publish: Option<bool>,
    pub package_type: Option<String>,
    pub revision_id: Option<String>,
    pub layers: Option<Vec<String>>,
    pub dead_letter_config: Option<crate::model::DeadLetterConfig>,
    /// `KMSKeyArn`: shown in the configuration (`""` clears it); Stratus seals
    /// environments with its own keys whatever it names.
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    /// CreateFunction only: the new function's tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// The execution role's policy (`Some(None)` clears it). Only deployments set it;
    /// the Lambda API has no such field.
    #[serde(skip)]
    pub role_policy: Option<Option<String>>,
    /// Whether the function may reach the outside (`StratusEgress`). Only
    /// deployments set it (serverless.yml `custom.stratus.egress`).
    #[serde(skip)]
    pub egress: Option<bool>,
}

/// `Code` of CreateFunction / the body of UpdateFunctionCode.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct CodeInput {
    pub zip_file: Option<String>,
    /// Stratus extension: the sha256 (hex) of a package uploaded before with
    /// `PUT /stratus/v1/blobs/{sha256}`, instead of `ZipFile`.
    #[serde(rename = "StratusBlobSha256")]
    pub blob_sha256: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    pub image_uri: Option<String>,
    pub publish: Option<bool>,
    pub revision_id: Option<String>,
}

/// What GetFunction shows of one function and qualifier.
#[derive(Debug, Clone)]
pub struct FunctionView {
    /// The qualifier's configuration.
    pub config: FunctionConfiguration,
    /// sha256 (hex) of the qualifier's code package in the blob store.
    pub code_hex: String,
    /// The function's reserved concurrency.
    pub reserved: Option<u32>,
    /// The function's tags.
    pub tags: BTreeMap<String, String>,
}

/// A read-only view of one function, for deployments.
#[derive(Debug, Clone)]
pub struct FunctionSnapshot {
    /// `$LATEST`.
    pub latest: FunctionConfiguration,
    /// sha256 (hex) of `$LATEST`'s code.
    pub code_hex: String,
    /// The newest published version, with its code hash.
    pub last_version: Option<(FunctionConfiguration, String)>,
    /// Aliases by name.
    pub aliases: BTreeMap<String, AliasConfiguration>,
    /// Reserved concurrency.
    pub reserved: Option<u32>,
    /// Qualifier → requested provisioned concurrency.
    pub provisioned: BTreeMap<String, u32>,
    /// The function's tags.
    pub tags: BTreeMap<String, String>,
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    fns: RwLock<HashMap<String, FnEntry>>,
    /// Serializes changes; see the module docs.
    writer: Mutex<()>,
    store: Arc<dyn FunctionStore>,
    blobs: blobs::Blobs,
    code_root: PathBuf,
    runtimes: Runtimes,
    pub(crate) identity: Identity,
    scheduler: Scheduler,
    /// Event-invoke configs read by the async queue, kept in memory.
    event_configs: event_cache::EventConfigCache,
}

impl Registry {
    /// How this server's environments with egress reach the outside (the sandbox
    /// driver's `egress`: `routed …`, `host`, `unavailable: …`).
    pub(crate) fn egress_mode(&self) -> String {
        self.scheduler.sandbox().egress
    }

    /// Loads every function from the store, builds specs, and re-applies reserved and
    /// provisioned concurrency to the scheduler (which re-warms provisioned pools).
    pub fn open(
        store: Arc<dyn FunctionStore>,
        blobs: blobs::Blobs,
        code_root: PathBuf,
        runtimes: Runtimes,
        identity: Identity,
        scheduler: Scheduler,
    ) -> Result<Self, ApiError> {
        let reg = Self {
            fns: RwLock::new(HashMap::new()),
            writer: Mutex::new(()),
            store,
            blobs,
            code_root,
            runtimes,
            identity,
            scheduler,
            event_configs: Default::default(),
        };
        let loaded = reg.store.load()?;
        let mut tags = reg.store.all_tags()?;
        let mut fns = HashMap::new();
        for l in loaded {
            let name = l.function.config.function_name.clone();
            let entry = reg.entry_from_loaded(l, tags.remove(&name).unwrap_or_default(), None);
            if entry.reserved.is_some() {
                reg.scheduler.set_reserved(&name, entry.reserved);
            }
            for (q, (n, _)) in &entry.provisioned {
                if let Ok(spec) = aliases::qualifier_spec(&entry, q) {
                    reg.scheduler.set_provisioned(&spec, *n);
                }
            }
            fns.insert(name, entry);
        }
        *reg.fns.write() = fns;
        Ok(reg)
    }

    /// A function's entry from its stored form. Versions whose configuration and
    /// code equal those of `old` keep `old`'s entries (and so their specs), unless
    /// their spec failed (a package missing then may be there now).
    fn entry_from_loaded(
        &self,
        l: crate::store::LoadedFunction,
        tags: BTreeMap<String, String>,
        old: Option<&FnEntry>,
    ) -> FnEntry {
        let f = l.function;
        let latest = match old {
            Some(o)
                if o.latest.config == f.config
                    && o.latest.code_hex == f.code_hex
                    && o.latest.spec.is_ok() =>
            {
                o.latest.clone()
            }
            _ => self.version_entry(f.config, f.code_hex),
        };
        let versions = l
            .versions
            .into_iter()
            .filter_map(|v| {
                let n = v.config.version.parse::<u64>().ok()?;
                let kept = old
                    .and_then(|o| o.versions.get(&n))
                    .filter(|e| e.config == v.config && e.code_hex == v.code_hex && e.spec.is_ok());
                Some(match kept {
                    Some(e) => (n, e.clone()),
                    None => (n, Arc::new(self.version_entry(v.config, v.code_hex))),
                })
            })
            .collect();
        FnEntry {
            latest,
            versions: Arc::new(versions),
            aliases: l.aliases.into_iter().map(|a| (a.name.clone(), a)).collect(),
            version_counter: f.version_counter,
            reserved: f.reserved,
            provisioned: l
                .provisioned
                .into_iter()
                .map(|(q, n, t)| (q, (n, t)))
                .collect(),
            tags,
        }
    }

    fn version_entry(&self, config: FunctionConfiguration, code_hex: String) -> VersionEntry {
        let spec = self.build_spec(&config, &code_hex).map(Arc::new);
        let invoked_arn = Arc::from(config.function_arn.as_str());
        VersionEntry {
            config,
            code_hex,
            spec,
            invoked_arn,
        }
    }

    fn not_found(&self, name: &str, qualifier: Option<&str>) -> ApiError {
        let arn = self.identity.function_arn(name);
        match qualifier {
            Some(q) => ApiError::not_found(format!("Function not found: {arn}:{q}")),
            None => ApiError::not_found(format!("Function not found: {arn}")),
        }
    }

    /// Runs `f` on function `name`'s entry under the read lock.
    fn read<T>(&self, name: &str, f: impl FnOnce(&FnEntry) -> T) -> Result<T, ApiError> {
        let fns = self.fns.read();
        let entry = fns.get(name).ok_or_else(|| self.not_found(name, None))?;
        Ok(f(entry))
    }

    /// Starts a change of function `name`: the writer lock and a copy of its entry.
    fn begin(&self, name: &str) -> Result<(MutexGuard<'_, ()>, FnEntry), ApiError> {
        let guard = self.writer.lock();
        let entry = self.read(name, FnEntry::clone)?;
        Ok((guard, entry))
    }

    /// The answer to a write the store refused. When another node changed or
    /// deleted the function first (a RevisionId that is no longer the stored one,
    /// a conflict), the writer lock is let go and the function re-read at once
    /// rather than at the change notification, so a retry starts from the latest
    /// state. `client_revision`: the caller named the RevisionId it expected, which
    /// Lambda answers `PreconditionFailedException`; without one the lost race is a
    /// `ResourceConflictException`.
    fn refused(
        &self,
        name: &str,
        writer: MutexGuard<'_, ()>,
        e: StoreError,
        client_revision: bool,
    ) -> ApiError {
        drop(writer);
        let mismatch = matches!(e, StoreError::RevisionMismatch { .. });
        if mismatch || matches!(e, StoreError::Conflict(_)) {
            if let Err(err) = self.refresh_function(name) {
                tracing::warn!(function = name, error = %err.message, "re-reading a function after a refused write");
            }
        }
        if mismatch && client_revision {
            return ApiError::precondition(REVISION_MISMATCH);
        }
        e.into()
    }

    /// Installs a changed entry the store already has. The replaced entry is dropped
    /// after the lock is released.
    fn install(&self, name: &str, entry: FnEntry) {
        let old = self.fns.write().insert(name.to_string(), entry);
        drop(old);
    }

    /// The interpreters, bootstraps and SDKs environments start with.
    pub fn runtimes(&self) -> &Runtimes {
        &self.runtimes
    }

    /// A snapshot of function `name`, if it exists.
    pub fn snapshot(&self, name: &str) -> Option<FunctionSnapshot> {
        self.read(name, |e| FunctionSnapshot {
            latest: e.latest.config.clone(),
            code_hex: e.latest.code_hex.clone(),
            last_version: e
                .versions
                .values()
                .next_back()
                .map(|v| (v.config.clone(), v.code_hex.clone())),
            aliases: e.aliases.clone(),
            reserved: e.reserved,
            provisioned: e
                .provisioned
                .iter()
                .map(|(q, (n, _))| (q.clone(), *n))
                .collect(),
            tags: e.tags.clone(),
        })
        .ok()
    }

    /// (function count, total code size) for GetAccountSettings.
    pub fn usage(&self) -> (usize, u64) {
        let fns = self.fns.read();
        let size = fns
            .values()
            .map(|e| {
                e.latest.config.code_size
                    + e.versions.values().map(|v| v.config.code_size).sum::<u64>()
            })
            .sum();
        (fns.len(), size)
    }
}
