//! The live function registry: every function's `$LATEST`, published versions,
//! aliases and concurrency settings, in memory behind one lock and written through
//! to the [`Store`]. It validates management requests the way Lambda does, builds
//! each version's [`FunctionSpec`] once, and resolves `(name, qualifier)` for the
//! invocation path without touching the database.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use parking_lot::RwLock;
use stratus_package::{BlobStore, Limits};
use stratus_scheduler::{FunctionSpec, ProvisionedStatus, Scheduler};

use crate::error::ApiError;
use crate::model::{
    lambda_time_now, new_uuid, AliasConfiguration, Environment, EphemeralStorage,
    FunctionConfiguration, RoutingConfig, TracingConfig,
};
use crate::runtimes::{Runtimes, SUPPORTED};
use crate::store::{Store, StoredFunction, StoredVersion};

/// Largest zipped upload (50 MB), as Lambda.
pub const MAX_ZIP_BYTES: usize = 50 * 1024 * 1024;
/// Environment variables' total size limit (4 KB).
pub const MAX_ENV_BYTES: usize = 4096;

/// Where and as whom this server runs.
#[derive(Debug, Clone)]
pub struct Identity {
    pub region: String,
    pub account_id: String,
    /// `AWS_ENDPOINT_URL` given to function code.
    pub endpoint_url: String,
    /// The HTTP gateway's base URL, when it runs.
    pub gateway_url: Option<String>,
}

impl Identity {
    /// `arn:aws:lambda:{region}:{account}:function:{name}`.
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account_id
        )
    }
}

#[derive(Debug, Clone)]
struct VersionEntry {
    config: FunctionConfiguration,
    code_hex: String,
    spec: Result<Arc<FunctionSpec>, String>,
    invoked_arn: Arc<str>,
}

#[derive(Debug, Clone)]
struct FnEntry {
    latest: VersionEntry,
    versions: BTreeMap<u64, VersionEntry>,
    aliases: BTreeMap<String, AliasConfiguration>,
    version_counter: u64,
    reserved: Option<u32>,
    /// Qualifier → (requested, last modified).
    provisioned: BTreeMap<String, (u32, String)>,
    /// The function's tags (function-level: versions and aliases have none).
    tags: BTreeMap<String, String>,
}

/// What the invocation path needs after resolving a name and qualifier.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub spec: Arc<FunctionSpec>,
    pub executed_version: Arc<str>,
    pub invoked_arn: Arc<str>,
}

/// The fields of CreateFunction and UpdateFunctionConfiguration we honour.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
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
    /// CreateFunction only: the new function's tags.
    pub tags: Option<BTreeMap<String, String>>,
}

/// `Code` of CreateFunction / the body of UpdateFunctionCode.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
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
    pub reserved: Option<u32>,
    /// The function's tags.
    pub tags: BTreeMap<String, String>,
}

/// A read-only view of one function, for deployments.
#[derive(Debug, Clone)]
pub struct FunctionSnapshot {
    pub latest: FunctionConfiguration,
    pub code_hex: String,
    /// The newest published version, with its code hash.
    pub last_version: Option<(FunctionConfiguration, String)>,
    pub aliases: BTreeMap<String, AliasConfiguration>,
    pub reserved: Option<u32>,
    /// Qualifier → requested provisioned concurrency.
    pub provisioned: BTreeMap<String, u32>,
    pub tags: BTreeMap<String, String>,
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    fns: RwLock<HashMap<String, FnEntry>>,
    store: Store,
    blobs: BlobStore,
    code_root: PathBuf,
    runtimes: Runtimes,
    pub(crate) identity: Identity,
    scheduler: Scheduler,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_qualifier(q: &str) -> bool {
    q == "$LATEST"
        || (!q.is_empty()
            && q.len() <= 128
            && q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

const NAME_PATTERN: &str = "Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

/// Splits every FunctionName form Lambda accepts (`name`, `name:qualifier`,
/// `account:function:name[:qualifier]`, full ARN) into name and qualifier.
pub fn parse_function_ref(raw: &str) -> Result<(String, Option<String>), ApiError> {
    let bad = || ApiError::validation(raw, "functionName", NAME_PATTERN);
    if raw.is_empty() || raw.len() > 170 {
        return Err(bad());
    }
    let parts: Vec<&str> = raw.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        [_account, "function", name] => (*name, None),
        [_account, "function", name, q] => (*name, Some(*q)),
        ["arn", _, "lambda", _region, _account, "function", name] => (*name, None),
        ["arn", _, "lambda", _region, _account, "function", name, q] => (*name, Some(*q)),
        _ => return Err(bad()),
    };
    if !valid_name(name) || qualifier.is_some_and(|q| !valid_qualifier(q)) {
        return Err(bad());
    }
    Ok((name.to_string(), qualifier.map(str::to_string)))
}

/// Most tags a function may have, as Lambda.
pub const MAX_TAGS: usize = 50;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY: usize = 128;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE: usize = 256;

const TAG_ARN_PATTERN: &str = "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}(-gov)?-[a-z]+-\\d{1}:\\d{12}:function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

/// A function ARN as the tagging operations take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagArn {
    pub region: String,
    pub account: String,
    pub name: String,
    pub qualifier: Option<String>,
}

/// Parses the ARN of TagResource, UntagResource and ListTags: a full function ARN
/// (Lambda's pattern), possibly qualified. Anything else is a `ValidationException`.
pub fn parse_tag_arn(raw: &str) -> Result<TagArn, ApiError> {
    let bad = || ApiError::validation(raw, "resource", TAG_ARN_PATTERN);
    let parts: Vec<&str> = raw.split(':').collect();
    let (partition, region, account, name, qualifier) = match parts.as_slice() {
        ["arn", p, "lambda", r, a, "function", n] => (*p, *r, *a, *n, None),
        ["arn", p, "lambda", r, a, "function", n, q] => (*p, *r, *a, *n, Some(*q)),
        _ => return Err(bad()),
    };
    let partition_ok = partition.is_empty()
        || partition
            .strip_prefix("aws")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'));
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let qualifier_ok = qualifier.is_none_or(|q| {
        q == "$LATEST"
            || (!q.is_empty()
                && q.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    });
    if !(partition_ok && valid_region(region) && account_ok && name_ok && qualifier_ok) {
        return Err(bad());
    }
    Ok(TagArn {
        region: region.to_string(),
        account: account.to_string(),
        name: name.to_string(),
        qualifier: qualifier.map(str::to_string),
    })
}

/// `[a-z]{2}(-gov)?-[a-z]+-\d`, e.g. `us-east-1`, `us-gov-west-1`.
fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let (head, middle, digit) = match parts.as_slice() {
        [h, m, d] => (*h, *m, *d),
        [h, "gov", m, d] => (*h, *m, *d),
        _ => return false,
    };
    head.len() == 2
        && lower(head)
        && lower(middle)
        && digit.len() == 1
        && digit.bytes().all(|b| b.is_ascii_digit())
}

/// Checks one tag key: 1–128 characters, not starting with the reserved `aws:`.
pub fn check_tag_key(key: &str) -> Result<(), ApiError> {
    let n = key.chars().count();
    if n == 0 || n > MAX_TAG_KEY {
        return Err(ApiError::validation(
            key,
            "tags",
            &format!("Map keys must satisfy constraint: [Member must have length less than or equal to {MAX_TAG_KEY}, Member must have length greater than or equal to 1] (this key has {n} characters)"),
        ));
    }
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(ApiError::invalid(format!(
            "Tag key '{key}' is not allowed: keys starting with 'aws:' are reserved for AWS use"
        )));
    }
    Ok(())
}

/// Checks tags as Lambda does: keys 1–128 characters and not `aws:…`, values at most
/// 256 characters. The count is checked on the function's resulting set
/// ([`check_tag_count`]).
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (k, v) in tags {
        check_tag_key(k)?;
        let n = v.chars().count();
        if n > MAX_TAG_VALUE {
            return Err(ApiError::validation(
                v,
                &format!("tags.{k}"),
                &format!("Map values must satisfy constraint: [Member must have length less than or equal to {MAX_TAG_VALUE}] (this value has {n} characters)"),
            ));
        }
    }
    Ok(())
}

/// A function has at most [`MAX_TAGS`] tags.
pub fn check_tag_count(function_arn: &str, n: usize) -> Result<(), ApiError> {
    if n > MAX_TAGS {
        return Err(ApiError::invalid(format!(
            "Too many tags: {function_arn} would have {n} tags; a function can have at most {MAX_TAGS}"
        )));
    }
    Ok(())
}

/// Validates function settings the way CreateFunction does.
pub fn check_settings(
    runtime: &str,
    handler: &str,
    memory: i64,
    timeout: i64,
    env: Option<&Environment>,
    storage: i64,
) -> Result<(), ApiError> {
    validate_settings(runtime, handler, memory, timeout, env, storage)
}

fn validate_settings(
    runtime: &str,
    handler: &str,
    memory: i64,
    timeout: i64,
    env: Option<&Environment>,
    storage: i64,
) -> Result<(), ApiError> {
    if !SUPPORTED.contains(&runtime) {
        return Err(ApiError::invalid(format!(
            "The runtime parameter of {runtime} is not supported. Supported runtimes: {}",
            SUPPORTED.join(", ")
        )));
    }
    if !runtime.starts_with("provided") && handler.is_empty() {
        return Err(ApiError::invalid(format!(
            "The Handler parameter is required for runtime {runtime}"
        )));
    }
    if handler.len() > 128 || handler.chars().any(char::is_whitespace) {
        return Err(ApiError::validation(handler, "handler", "Member must satisfy regular expression pattern: [^\\s]+ and have length less than or equal to 128"));
    }
    if memory < 128 {
        return Err(ApiError::validation(
            &memory.to_string(),
            "memorySize",
            "Member must have value greater than or equal to 128",
        ));
    }
    if memory > 10240 {
        return Err(ApiError::validation(
            &memory.to_string(),
            "memorySize",
            "Member must have value less than or equal to 10240",
        ));
    }
    if timeout < 1 {
        return Err(ApiError::validation(
            &timeout.to_string(),
            "timeout",
            "Member must have value greater than or equal to 1",
        ));
    }
    if timeout > 900 {
        return Err(ApiError::validation(
            &timeout.to_string(),
            "timeout",
            "Member must have value less than or equal to 900",
        ));
    }
    if !(512..=10240).contains(&storage) {
        return Err(ApiError::validation(
            &storage.to_string(),
            "ephemeralStorage.size",
            "Member must have value between 512 and 10240",
        ));
    }
    if let Some(env) = env {
        let size: usize = env.variables.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_ENV_BYTES {
            return Err(ApiError::invalid(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {}",
                serde_json::to_string(&env.variables).unwrap_or_default()
            )));
        }
        for key in env.variables.keys() {
            let ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(ApiError::invalid(format!("Environment variable name '{key}' is invalid: names start with a letter and contain only letters, digits and '_'")));
            }
            const RESERVED: &[&str] = &[
                "AWS_LAMBDA_RUNTIME_API",
                "_HANDLER",
                "LAMBDA_TASK_ROOT",
                "LAMBDA_RUNTIME_DIR",
                "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_LAMBDA_FUNCTION_VERSION",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_EXECUTION_ENV",
                "AWS_LAMBDA_INITIALIZATION_TYPE",
            ];
            if RESERVED.contains(&key.as_str()) {
                return Err(ApiError::invalid(format!("Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {key}")));
            }
        }
    }
    Ok(())
}

impl Registry {
    /// Loads every function from the store, builds specs, and re-applies reserved and
    /// provisioned concurrency to the scheduler (which re-warms provisioned pools).
    pub fn open(
        store: Store,
        blobs: BlobStore,
        code_root: PathBuf,
        runtimes: Runtimes,
        identity: Identity,
        scheduler: Scheduler,
    ) -> Result<Self, ApiError> {
        let reg = Self {
            fns: RwLock::new(HashMap::new()),
            store,
            blobs,
            code_root,
            runtimes,
            identity,
            scheduler,
        };
        let loaded = reg.store.load()?;
        let mut tags = reg.store.all_tags()?;
        let mut fns = reg.fns.write();
        for (f, versions, aliases, provisioned) in loaded {
            let name = f.config.function_name.clone();
            let latest = reg.version_entry(f.config.clone(), f.code_hex.clone());
            let versions = versions
                .into_iter()
                .filter_map(|v| {
                    let n = v.config.version.parse::<u64>().ok()?;
                    Some((n, reg.version_entry(v.config, v.code_hex)))
                })
                .collect();
            let entry = FnEntry {
                latest,
                versions,
                aliases: aliases.into_iter().map(|a| (a.name.clone(), a)).collect(),
                version_counter: f.version_counter,
                reserved: f.reserved,
                provisioned: provisioned
                    .into_iter()
                    .map(|(q, n, t)| (q, (n, t)))
                    .collect(),
                tags: tags.remove(&name).unwrap_or_default(),
            };
            if entry.reserved.is_some() {
                reg.scheduler.set_reserved(&name, entry.reserved);
            }
            for (q, (n, _)) in &entry.provisioned {
                if let Ok(spec) = Self::qualifier_spec(&entry, q) {
                    reg.scheduler.set_provisioned(&spec, *n);
                }
            }
            fns.insert(name, entry);
        }
        drop(fns);
        Ok(reg)
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

    fn build_spec(
        &self,
        c: &FunctionConfiguration,
        code_hex: &str,
    ) -> Result<FunctionSpec, String> {
        let code_dir = self.code_root.join(code_hex);
        if !code_dir.is_dir() {
            let zip = self
                .blobs
                .get(code_hex)
                .map_err(|e| format!("code package missing: {e}"))?;
            stratus_package::unpack_once(&self.code_root, code_hex, &zip, &Limits::default())
                .map_err(|e| format!("cannot unpack code: {e}"))?;
        }
        let (program, args) = self.runtimes.launch(&c.runtime, &code_dir)?;
        let mut path = String::new();
        if let Some(dir) = self.runtimes.interpreter_dir(&c.runtime) {
            path.push_str(&dir.display().to_string());
            path.push(':');
        }
        path.push_str("/usr/local/bin:/usr/bin:/bin:/opt/bin");
        let id = &self.identity;
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), path),
            ("LANG".into(), "en_US.UTF-8".into()),
            ("TZ".into(), ":UTC".into()),
            ("_HANDLER".into(), c.handler.clone()),
            ("LAMBDA_TASK_ROOT".into(), code_dir.display().to_string()),
            (
                "LAMBDA_RUNTIME_DIR".into(),
                self.runtimes.runtime_dir().display().to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), c.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), c.version.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                c.memory_size.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                format!("/aws/lambda/{}", c.function_name),
            ),
            ("AWS_REGION".into(), id.region.clone()),
            ("AWS_DEFAULT_REGION".into(), id.region.clone()),
            (
                "AWS_EXECUTION_ENV".into(),
                format!("AWS_Lambda_{}", c.runtime),
            ),
            ("AWS_ENDPOINT_URL".into(), id.endpoint_url.clone()),
            // Credentials for the AWS SDKs inside the function; the security issue
            // replaces these with per-function scoped credentials.
            ("AWS_ACCESS_KEY_ID".into(), "stratus".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "stratus".into()),
        ];
        if let Some(vars) = &c.environment {
            for (k, v) in &vars.variables {
                env.retain(|(ek, _)| ek != k);
                env.push((k.clone(), v.clone()));
            }
        }
        Ok(FunctionSpec {
            pool_key: Arc::from(format!(
                "{}\0{}\0{}",
                c.function_name, c.version, c.revision_id
            )),
            function_name: Arc::from(c.function_name.as_str()),
            version: Arc::from(c.version.as_str()),
            memory_mb: c.memory_size,
            timeout: Duration::from_secs(c.timeout as u64),
            program,
            args,
            cwd: code_dir,
            env,
            log_group: Arc::from(format!("/aws/lambda/{}", c.function_name)),
        })
    }

    /// Stores uploaded code (base64 `ZipFile`, or a blob uploaded before) and unpacks
    /// it once. Returns (sha256 hex, zipped size, base64 sha256 as Lambda reports it).
    fn store_code(&self, code: &CodeInput) -> Result<(String, u64, String), ApiError> {
        if let Some(hex) = &code.blob_sha256 {
            return self.code_from_blob(hex);
        }
        let Some(zip_b64) = code.zip_file.as_deref() else {
            return Err(ApiError::invalid(
                "Code.ZipFile is required: Stratus stores code itself (S3Bucket/S3Key and ImageUri are not supported)",
            ));
        };
        let zip = base64::engine::general_purpose::STANDARD
            .decode(zip_b64.trim())
            .map_err(|e| ApiError::invalid(format!("Code.ZipFile is not valid base64: {e}")))?;
        let hex = hex::encode(stratus_package::sha256(&zip));
        self.put_blob(&hex, &zip)?;
        self.code_from_blob(&hex)
    }

    /// Stores a code package under its sha256 after checking the hash, the size
    /// limit and that it unpacks safely.
    pub fn put_blob(&self, expected_hex: &str, zip: &[u8]) -> Result<(), ApiError> {
        if zip.len() > MAX_ZIP_BYTES {
            return Err(ApiError::too_large(format!(
                "The zipped package is {} bytes; the limit is {MAX_ZIP_BYTES} bytes",
                zip.len()
            )));
        }
        let hex = hex::encode(stratus_package::sha256(zip));
        if hex != expected_hex {
            return Err(ApiError::invalid(format!(
                "The package's sha256 is {hex}, not {expected_hex}"
            )));
        }
        stratus_package::unpack_once(&self.code_root, &hex, zip, &Limits::default()).map_err(|e| {
            if e.is_user_error() {
                ApiError::invalid(format!("Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"))
            } else {
                ApiError::service(format!("cannot store code: {e}"))
            }
        })?;
        self.blobs
            .put(zip)
            .map_err(|e| ApiError::service(format!("cannot store code: {e}")))?;
        Ok(())
    }

    /// Whether a package with this sha256 is stored.
    pub fn has_blob(&self, hex: &str) -> bool {
        self.blobs.contains(hex)
    }

    /// Opens the stored package with sha256 `hex` for reading, with its size.
    pub fn open_blob(&self, hex: &str) -> Result<(std::fs::File, u64), ApiError> {
        let missing =
            || ApiError::not_found(format!("No code package with sha256 {hex} is stored"));
        let path = self.blobs.path(hex).map_err(|_| {
            ApiError::not_found(format!(
                "No code package '{hex}': a package is named by its sha256, 64 lowercase hex digits"
            ))
        })?;
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => missing(),
            _ => ApiError::service(format!("cannot read code package {hex}: {e}")),
        })?;
        let len = file
            .metadata()
            .map_err(|e| ApiError::service(format!("cannot read code package {hex}: {e}")))?
            .len();
        Ok((file, len))
    }

    fn code_from_blob(&self, hex: &str) -> Result<(String, u64, String), ApiError> {
        if !stratus_package::is_sha256_hex(hex) || !self.blobs.contains(hex) {
            return Err(ApiError::invalid(format!(
                "No code package with sha256 {hex} has been uploaded (PUT /stratus/v1/blobs/{hex} first)"
            )));
        }
        let zip = self
            .blobs
            .get(hex)
            .map_err(|e| ApiError::service(format!("cannot read code: {e}")))?;
        if !self.code_root.join(hex).is_dir() {
            stratus_package::unpack_once(&self.code_root, hex, &zip, &Limits::default()).map_err(
                |e| ApiError::invalid(format!("Could not unzip stored package {hex}: {e}")),
            )?;
        }
        let digest = stratus_package::sha256(&zip);
        Ok((
            hex.to_string(),
            zip.len() as u64,
            base64::engine::general_purpose::STANDARD.encode(digest),
        ))
    }

    fn not_found(&self, name: &str, qualifier: Option<&str>) -> ApiError {
        let arn = self.identity.function_arn(name);
        match qualifier {
            Some(q) => ApiError::not_found(format!("Function not found: {arn}:{q}")),
            None => ApiError::not_found(format!("Function not found: {arn}")),
        }
    }

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
        validate_settings(
            &runtime,
            &handler,
            memory,
            timeout,
            input.environment.as_ref(),
            storage,
        )?;
        if input.layers.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(ApiError::invalid("Layers are not supported yet by Stratus"));
        }
        let tags = input.tags.clone().unwrap_or_default();
        check_tags(&tags)?;
        check_tag_count(&self.identity.function_arn(&name), tags.len())?;
        let code = input.code.clone().unwrap_or_default();
        if self.fns.read().contains_key(&name) {
            return Err(ApiError::conflict(format!(
                "Function already exist: {name}"
            )));
        }
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
        };
        let stored = StoredFunction {
            config: config.clone(),
            code_hex: code_hex.clone(),
            version_counter: 0,
            reserved: None,
        };
        let mut fns = self.fns.write();
        if fns.contains_key(&name) {
            return Err(ApiError::conflict(format!(
                "Function already exist: {name}"
            )));
        }
        self.store.create_function(&stored, &tags)?;
        let entry = FnEntry {
            latest: self.version_entry(config.clone(), code_hex),
            versions: BTreeMap::new(),
            aliases: BTreeMap::new(),
            version_counter: 0,
            reserved: None,
            provisioned: BTreeMap::new(),
            tags,
        };
        fns.insert(name.clone(), entry);
        drop(fns);
        if input.publish.unwrap_or(false) {
            let v = self.publish(&name, None)?;
            let mut latest = config;
            latest.version = "$LATEST".into();
            let _ = v;
            return Ok(latest);
        }
        Ok(config)
    }

    /// GetFunction's parts: configuration (of the qualifier) and reserved concurrency.
    pub fn get(
        &self,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<(FunctionConfiguration, Option<u32>), ApiError> {
        let (name, q) = parse_function_ref(raw)?;
        let q = qualifier.map(str::to_string).or(q);
        let fns = self.fns.read();
        let entry = fns.get(&name).ok_or_else(|| self.not_found(&name, None))?;
        let v = Self::qualifier_entry(entry, q.as_deref())
            .ok_or_else(|| self.not_found(&name, q.as_deref()))?;
        Ok((v.config.clone(), entry.reserved))
    }

    /// GetFunction: the qualifier's configuration and code, the function's reserved
    /// concurrency and tags.
    pub fn describe(&self, raw: &str, qualifier: Option<&str>) -> Result<FunctionView, ApiError> {
        let (name, q) = parse_function_ref(raw)?;
        let q = qualifier.map(str::to_string).or(q);
        let fns = self.fns.read();
        let entry = fns.get(&name).ok_or_else(|| self.not_found(&name, None))?;
        let v = Self::qualifier_entry(entry, q.as_deref())
            .ok_or_else(|| self.not_found(&name, q.as_deref()))?;
        Ok(FunctionView {
            config: v.config.clone(),
            code_hex: v.code_hex.clone(),
            reserved: entry.reserved,
            tags: entry.tags.clone(),
        })
    }

    /// ListTags.
    pub fn list_tags(&self, resource: &str) -> Result<BTreeMap<String, String>, ApiError> {
        let name = self.tag_target(resource)?;
        let fns = self.fns.read();
        let entry = fns.get(&name).ok_or_else(|| self.not_found(&name, None))?;
        Ok(entry.tags.clone())
    }

    /// TagResource: adds `tags` to the function's, replacing values of keys it has.
    pub fn tag_resource(
        &self,
        resource: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let name = self.tag_target(resource)?;
        check_tags(&tags)?;
        self.change_tags(&name, |t| t.extend(tags))
    }

    /// UntagResource: removes `keys` (keys the function lacks are ignored).
    pub fn untag_resource(&self, resource: &str, keys: &[String]) -> Result<(), ApiError> {
        let name = self.tag_target(resource)?;
        if keys.is_empty() {
            return Err(ApiError::validation(
                "null",
                "tagKeys",
                "Member must not be null",
            ));
        }
        for k in keys {
            check_tag_key(k)?;
        }
        self.change_tags(&name, |t| t.retain(|k, _| !keys.contains(k)))
    }

    /// Makes function `name`'s tags exactly `tags` (deployments). Returns whether
    /// they changed.
    pub fn set_tags(&self, name: &str, tags: BTreeMap<String, String>) -> Result<bool, ApiError> {
        check_tags(&tags)?;
        let mut changed = false;
        self.change_tags(name, |t| {
            changed = *t != tags;
            *t = tags;
        })?;
        Ok(changed)
    }

    /// Applies `change` to function `name`'s tags, checks the count, writes through.
    fn change_tags(
        &self,
        name: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<(), ApiError> {
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(name)
            .ok_or_else(|| self.not_found(name, None))?;
        let mut tags = entry.tags.clone();
        change(&mut tags);
        if tags == entry.tags {
            return Ok(());
        }
        check_tag_count(&entry.latest.config.function_arn, tags.len())?;
        self.store.put_tags(name, &tags)?;
        entry.tags = tags;
        Ok(())
    }

    /// The function a tagging ARN names, which must be this server's and unqualified.
    fn tag_target(&self, resource: &str) -> Result<String, ApiError> {
        let arn = parse_tag_arn(resource)?;
        if arn.qualifier.is_some() {
            return Err(ApiError::invalid(format!(
                "Tags apply to functions, not to versions or aliases: use the unqualified ARN {} instead of {resource}",
                self.identity.function_arn(&arn.name)
            )));
        }
        if arn.region != self.identity.region || arn.account != self.identity.account_id {
            return Err(ApiError::not_found(format!(
                "Function not found: {resource} (this server's functions are in region {} and account {})",
                self.identity.region, self.identity.account_id
            )));
        }
        Ok(arn.name)
    }

    /// ListFunctions (`$LATEST` of each).
    pub fn list(&self) -> Vec<FunctionConfiguration> {
        let fns = self.fns.read();
        let mut out: Vec<_> = fns.values().map(|e| e.latest.config.clone()).collect();
        out.sort_by(|a, b| a.function_name.cmp(&b.function_name));
        out
    }

    /// DeleteFunction (whole function, or one published version).
    pub fn delete(&self, raw: &str, qualifier: Option<&str>) -> Result<(), ApiError> {
        let (name, q) = parse_function_ref(raw)?;
        let q = qualifier.map(str::to_string).or(q);
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(&name)
            .ok_or_else(|| self.not_found(&name, None))?;
        match q.as_deref() {
            None | Some("$LATEST") => {
                self.store.delete_function(&name)?;
                fns.remove(&name);
                drop(fns);
                self.scheduler.set_reserved(&name, None);
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
                let removed = entry
                    .versions
                    .remove(&n)
                    .ok_or_else(|| self.not_found(&name, Some(v)))?;
                entry.provisioned.remove(v);
                self.store.delete_version(&name, v)?;
                drop(fns);
                if let Ok(spec) = removed.spec {
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
        if !self.fns.read().contains_key(&name) {
            return Err(self.not_found(&name, None));
        }
        let (code_hex, code_size, code_b64) = self.store_code(&code)?;
        let config = self.modify_latest(&name, code.revision_id.as_deref(), |c, hex| {
            c.code_size = code_size;
            c.code_sha256 = code_b64.clone();
            *hex = code_hex.clone();
            Ok(())
        })?;
        if code.publish.unwrap_or(false) {
            self.publish(&name, None)?;
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
            validate_settings(
                &runtime,
                &handler,
                memory,
                timeout,
                environment.as_ref(),
                storage,
            )?;
            c.runtime = runtime;
            c.handler = handler;
            c.memory_size = memory as u32;
            c.timeout = timeout as u32;
            c.ephemeral_storage.size = storage as u32;
            c.environment = environment.filter(|e| !e.variables.is_empty());
            if let Some(d) = &input.description {
                c.description = d.clone();
            }
            if let Some(r) = &input.role {
                c.role = r.clone();
            }
            if let Some(d) = &input.dead_letter_config {
                c.dead_letter_config = Some(d.clone())
                    .filter(|d| d.target_arn.as_deref().is_some_and(|t| !t.is_empty()));
            }
            Ok(())
        })
    }

    fn modify_latest(
        &self,
        name: &str,
        revision: Option<&str>,
        change: impl FnOnce(&mut FunctionConfiguration, &mut String) -> Result<(), ApiError>,
    ) -> Result<FunctionConfiguration, ApiError> {
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(name)
            .ok_or_else(|| self.not_found(name, None))?;
        if let Some(r) = revision {
            if r != entry.latest.config.revision_id {
                return Err(ApiError::precondition("The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id"));
            }
        }
        let mut config = entry.latest.config.clone();
        let mut hex = entry.latest.code_hex.clone();
        change(&mut config, &mut hex)?;
        config.last_modified = lambda_time_now();
        config.revision_id = new_uuid();
        let stored = StoredFunction {
            config: config.clone(),
            code_hex: hex.clone(),
            version_counter: entry.version_counter,
            reserved: entry.reserved,
        };
        self.store.put_function(&stored)?;
        let old_key = entry.latest.spec.as_ref().ok().map(|s| s.pool_key.clone());
        entry.latest = self.version_entry(config.clone(), hex);
        drop(fns);
        if let Some(key) = old_key {
            self.scheduler.retire(&key);
        }
        Ok(config)
    }

    /// PublishVersion: snapshots `$LATEST` unless it is unchanged since the last
    /// published version, in which case that version is returned (as Lambda does).
    pub fn publish(
        &self,
        raw: &str,
        description: Option<String>,
    ) -> Result<FunctionConfiguration, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(&name)
            .ok_or_else(|| self.not_found(&name, None))?;
        if let Some((_, last)) = entry.versions.iter().next_back() {
            let mut a = last.config.clone();
            let mut b = entry.latest.config.clone();
            for c in [&mut a, &mut b] {
                c.version = String::new();
                c.function_arn = String::new();
                c.revision_id = String::new();
                c.last_modified = String::new();
                c.description = String::new();
            }
            if a == b && last.code_hex == entry.latest.code_hex {
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
        let stored = StoredFunction {
            config: entry.latest.config.clone(),
            code_hex: entry.latest.code_hex.clone(),
            version_counter: n,
            reserved: entry.reserved,
        };
        self.store.put_version(&stored, &version)?;
        let ve = self.version_entry(config.clone(), version.code_hex);
        entry.versions.insert(n, ve);
        Ok(config)
    }

    /// ListVersionsByFunction: `$LATEST` then each version.
    pub fn versions(&self, raw: &str) -> Result<Vec<FunctionConfiguration>, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let fns = self.fns.read();
        let entry = fns.get(&name).ok_or_else(|| self.not_found(&name, None))?;
        let mut out = vec![entry.latest.config.clone()];
        out.extend(entry.versions.values().map(|v| v.config.clone()));
        Ok(out)
    }

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
        if !valid_qualifier(alias)
            || alias == "$LATEST"
            || alias.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ApiError::validation(
                alias,
                "name",
                "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
            ));
        }
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(&name)
            .ok_or_else(|| self.not_found(&name, None))?;
        if entry.aliases.contains_key(alias) {
            return Err(ApiError::conflict(format!(
                "Alias already exists: {}:{alias}",
                entry.latest.config.function_arn
            )));
        }
        Self::check_alias_target(entry, version, routing.as_ref())?;
        let a = AliasConfiguration {
            alias_arn: format!("{}:{alias}", entry.latest.config.function_arn),
            name: alias.to_string(),
            function_version: version.to_string(),
            description: description.unwrap_or_default(),
            routing_config: routing.filter(|r| !r.additional_version_weights.is_empty()),
            revision_id: new_uuid(),
        };
        self.store.put_alias(&name, &a)?;
        entry.aliases.insert(alias.to_string(), a.clone());
        Ok(a)
    }

    /// GetAlias.
    pub fn get_alias(&self, raw: &str, alias: &str) -> Result<AliasConfiguration, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let fns = self.fns.read();
        let entry = fns.get(&name).ok_or_else(|| self.not_found(&name, None))?;
        entry.aliases.get(alias).cloned().ok_or_else(|| {
            ApiError::not_found(format!(
                "Cannot find alias arn: {}:{alias}",
                entry.latest.config.function_arn
            ))
        })
    }

    /// ListAliases.
    pub fn list_aliases(&self, raw: &str) -> Result<Vec<AliasConfiguration>, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let fns = self.fns.read();
        let entry = fns.get(&name).ok_or_else(|| self.not_found(&name, None))?;
        Ok(entry.aliases.values().cloned().collect())
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
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(&name)
            .ok_or_else(|| self.not_found(&name, None))?;
        let arn = entry.latest.config.function_arn.clone();
        let mut a =
            entry.aliases.get(alias).cloned().ok_or_else(|| {
                ApiError::not_found(format!("Cannot find alias arn: {arn}:{alias}"))
            })?;
        if revision.is_some_and(|r| r != a.revision_id) {
            return Err(ApiError::precondition("The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id"));
        }
        let old_spec = Self::qualifier_spec(entry, alias).ok();
        if let Some(v) = version {
            a.function_version = v;
        }
        if let Some(d) = description {
            a.description = d;
        }
        if let Some(r) = routing {
            a.routing_config = Some(r).filter(|r| !r.additional_version_weights.is_empty());
        }
        Self::check_alias_target(entry, &a.function_version, a.routing_config.as_ref())?;
        a.revision_id = new_uuid();
        self.store.put_alias(&name, &a)?;
        entry.aliases.insert(alias.to_string(), a.clone());
        if let Some((n, _)) = entry.provisioned.get(alias).cloned() {
            let new_spec = Self::qualifier_spec(entry, alias)?;
            if old_spec.as_ref().map(|s| &s.pool_key) != Some(&new_spec.pool_key) {
                self.scheduler.set_provisioned(&new_spec, n);
                if let Some(old) = old_spec {
                    self.scheduler
                        .set_provisioned(&old, self.provisioned_on_pool(entry, &old.pool_key));
                }
            }
        }
        Ok(a)
    }

    /// DeleteAlias.
    pub fn delete_alias(&self, raw: &str, alias: &str) -> Result<(), ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(&name)
            .ok_or_else(|| self.not_found(&name, None))?;
        let spec = Self::qualifier_spec(entry, alias).ok();
        if entry.aliases.remove(alias).is_none() {
            return Ok(()); // Lambda answers 204 for a missing alias too
        }
        self.store.delete_alias(&name, alias)?;
        if entry.provisioned.remove(alias).is_some() {
            if let Some(spec) = spec {
                self.scheduler
                    .set_provisioned(&spec, self.provisioned_on_pool(entry, &spec.pool_key));
            }
        }
        Ok(())
    }

    fn qualifier_entry<'a>(entry: &'a FnEntry, q: Option<&str>) -> Option<&'a VersionEntry> {
        match q {
            None | Some("$LATEST") => Some(&entry.latest),
            Some(q) => match q.parse::<u64>() {
                Ok(n) => entry.versions.get(&n),
                Err(_) => {
                    let a = entry.aliases.get(q)?;
                    Self::qualifier_entry(entry, Some(&a.function_version))
                }
            },
        }
    }

    fn qualifier_spec(entry: &FnEntry, q: &str) -> Result<Arc<FunctionSpec>, ApiError> {
        let v = Self::qualifier_entry(entry, Some(q)).ok_or_else(|| {
            ApiError::not_found(format!(
                "Function not found: {}:{q}",
                entry.latest.config.function_arn
            ))
        })?;
        v.spec.clone().map_err(ApiError::runtime)
    }

    /// Sum of provisioned configs that land on `pool_key` (a version and its aliases).
    fn provisioned_on_pool(&self, entry: &FnEntry, pool_key: &str) -> u32 {
        entry
            .provisioned
            .iter()
            .filter(|(q, _)| Self::qualifier_spec(entry, q).is_ok_and(|s| &*s.pool_key == pool_key))
            .map(|(_, (n, _))| n)
            .sum()
    }

    /// Resolves a FunctionName and qualifier for invocation. This is the hot path:
    /// one read lock, no allocation beyond the qualified ARN.
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
        let v = Self::qualifier_entry(entry, version)
            .ok_or_else(|| self.not_found(&name, q.as_deref()))?;
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
        let n = n as u32;
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(&name)
            .ok_or_else(|| self.not_found(&name, None))?;
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
        self.store.put_function(&StoredFunction {
            config: entry.latest.config.clone(),
            code_hex: entry.latest.code_hex.clone(),
            version_counter: entry.version_counter,
            reserved: Some(n),
        })?;
        self.scheduler.set_reserved(&name, Some(n));
        Ok(n)
    }

    /// GetFunctionConcurrency.
    pub fn get_reserved(&self, raw: &str) -> Result<Option<u32>, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let fns = self.fns.read();
        Ok(fns
            .get(&name)
            .ok_or_else(|| self.not_found(&name, None))?
            .reserved)
    }

    /// DeleteFunctionConcurrency.
    pub fn delete_reserved(&self, raw: &str) -> Result<(), ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(&name)
            .ok_or_else(|| self.not_found(&name, None))?;
        entry.reserved = None;
        self.store.put_function(&StoredFunction {
            config: entry.latest.config.clone(),
            code_hex: entry.latest.code_hex.clone(),
            version_counter: entry.version_counter,
            reserved: None,
        })?;
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
            return Err(ApiError::invalid("Provisioned Concurrency Configs cannot be applied to unpublished function versions."));
        }
        if n < 1 {
            return Err(ApiError::validation(
                &n.to_string(),
                "provisionedConcurrentExecutions",
                "Member must have value greater than or equal to 1",
            ));
        }
        let n = n as u32;
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(&name)
            .ok_or_else(|| self.not_found(&name, None))?;
        let spec = Self::qualifier_spec(entry, q)?;
        if entry
            .aliases
            .get(q)
            .is_some_and(|a| a.function_version == "$LATEST")
        {
            return Err(ApiError::invalid("Provisioned Concurrency Configs cannot be applied to unpublished function versions."));
        }
        let others: u32 = entry
            .provisioned
            .iter()
            .filter(|(k, _)| k.as_str() != q && Some(k.as_str()) != replacing)
            .map(|(_, (p, _))| p)
            .sum();
        if let Some(r) = entry.reserved {
            if others + n > r {
                return Err(ApiError::invalid(format!(
                    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function ({r})"
                )));
            }
        } else if others + n > self.scheduler.unreserved_available(&name) {
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
        let total = self.provisioned_on_pool(entry, &spec.pool_key);
        self.scheduler.set_provisioned(&spec, total);
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
        let fns = self.fns.read();
        let entry = fns.get(&name).ok_or_else(|| self.not_found(&name, None))?;
        let (n, modified) = entry.provisioned.get(q).cloned().ok_or_else(|| {
            ApiError::no_provisioned(format!(
                "No Provisioned Concurrency Config found for this function: {}:{q}",
                entry.latest.config.function_arn
            ))
        })?;
        let spec = Self::qualifier_spec(entry, q)?;
        Ok((self.provisioned_view(&spec, n), modified))
    }

    /// DeleteProvisionedConcurrencyConfig.
    pub fn delete_provisioned(&self, raw: &str, qualifier: Option<&str>) -> Result<(), ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        let q = qualifier.ok_or_else(|| ApiError::invalid("Qualifier is required"))?;
        let mut fns = self.fns.write();
        let entry = fns
            .get_mut(&name)
            .ok_or_else(|| self.not_found(&name, None))?;
        if entry.provisioned.remove(q).is_none() {
            return Err(ApiError::no_provisioned(format!(
                "No Provisioned Concurrency Config found for this function: {}:{q}",
                entry.latest.config.function_arn
            )));
        }
        self.store.put_provisioned(&name, q, None)?;
        if let Ok(spec) = Self::qualifier_spec(entry, q) {
            self.scheduler
                .set_provisioned(&spec, self.provisioned_on_pool(entry, &spec.pool_key));
        }
        Ok(())
    }

    /// The (service, stage) that deployed function `name`, if any.
    pub fn owner(&self, name: &str) -> Result<Option<(String, String)>, ApiError> {
        Ok(self.store.owner_of(name)?)
    }

    /// Put/UpdateFunctionEventInvokeConfig: validates and stores (`merge` keeps fields
    /// the request leaves out, as UpdateFunctionEventInvokeConfig does).
    pub fn put_event_invoke_config(
        &self,
        raw: &str,
        qualifier: Option<&str>,
        mut cfg: crate::model::EventInvokeConfig,
        merge: bool,
    ) -> Result<crate::model::EventInvokeConfig, ApiError> {
        let (name, q) = parse_function_ref(raw)?;
        let q = qualifier
            .map(str::to_string)
            .or(q)
            .unwrap_or_else(|| "$LATEST".into());
        let fns = self.fns.read();
        let entry = fns.get(&name).ok_or_else(|| self.not_found(&name, None))?;
        Self::qualifier_entry(entry, Some(&q)).ok_or_else(|| self.not_found(&name, Some(&q)))?;
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
                    "The function {}:{q} doesn't have an EventInvokeConfig",
                    entry.latest.config.function_arn
                ))
            })?;
            cfg.maximum_retry_attempts = cfg.maximum_retry_attempts.or(old.maximum_retry_attempts);
            cfg.maximum_event_age_in_seconds = cfg
                .maximum_event_age_in_seconds
                .or(old.maximum_event_age_in_seconds);
            cfg.destination_config = cfg.destination_config.or(old.destination_config);
        }
        cfg.function_arn = Some(format!("{}:{q}", entry.latest.config.function_arn));
        cfg.last_modified = Some(crate::logs::now_ms() as f64 / 1000.0);
        self.store.put_event_invoke_config(&name, &q, Some(&cfg))?;
        Ok(cfg)
    }

    /// GetFunctionEventInvokeConfig.
    pub fn get_event_invoke_config(
        &self,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<crate::model::EventInvokeConfig, ApiError> {
        let (name, q) = parse_function_ref(raw)?;
        let q = qualifier
            .map(str::to_string)
            .or(q)
            .unwrap_or_else(|| "$LATEST".into());
        let arn = self.identity.function_arn(&name);
        if self.snapshot(&name).is_none() {
            return Err(self.not_found(&name, None));
        }
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
        self.get_event_invoke_config(raw, qualifier)?;
        let (name, q) = parse_function_ref(raw)?;
        let q = qualifier
            .map(str::to_string)
            .or(q)
            .unwrap_or_else(|| "$LATEST".into());
        self.store.put_event_invoke_config(&name, &q, None)?;
        Ok(())
    }

    /// ListFunctionEventInvokeConfigs.
    pub fn list_event_invoke_configs(
        &self,
        raw: &str,
    ) -> Result<Vec<crate::model::EventInvokeConfig>, ApiError> {
        let (name, _) = parse_function_ref(raw)?;
        if self.snapshot(&name).is_none() {
            return Err(self.not_found(&name, None));
        }
        Ok(self.store.event_invoke_configs(&name)?)
    }

    /// Retry, age and destination settings for an asynchronous event of `name` invoked
    /// with `qualifier` (the qualifier's config, else `$LATEST`'s, else Lambda's
    /// defaults), plus the function's dead-letter target.
    pub fn event_invoke_settings(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> crate::async_queue::EventInvokeSettings {
        let mut out = crate::async_queue::EventInvokeSettings::default();
        let q = qualifier.unwrap_or("$LATEST");
        let cfg = self
            .store
            .event_invoke_config(name, q)
            .ok()
            .flatten()
            .or_else(|| {
                self.store
                    .event_invoke_config(name, "$LATEST")
                    .ok()
                    .flatten()
            });
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

    /// The state database (deployments keep their records beside the functions).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A snapshot of function `name`, if it exists.
    pub fn snapshot(&self, name: &str) -> Option<FunctionSnapshot> {
        let fns = self.fns.read();
        let e = fns.get(name)?;
        Some(FunctionSnapshot {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_name_forms() {
        let ok = |s: &str| parse_function_ref(s).unwrap();
        assert_eq!(ok("hello"), ("hello".into(), None));
        assert_eq!(ok("hello:prod"), ("hello".into(), Some("prod".into())));
        assert_eq!(ok("123456789012:function:hello"), ("hello".into(), None));
        assert_eq!(
            ok("123456789012:function:hello:7"),
            ("hello".into(), Some("7".into()))
        );
        assert_eq!(
            ok("arn:aws:lambda:us-east-1:123456789012:function:hello"),
            ("hello".into(), None)
        );
        assert_eq!(
            ok("arn:aws:lambda:us-east-1:123456789012:function:hello:$LATEST"),
            ("hello".into(), Some("$LATEST".into()))
        );
        for bad in [
            "",
            "has space",
            "a:b:c",
            "x".repeat(65).as_str(),
            "arn:aws:lambda:us-east-1:1:layer:x",
            "f:",
        ] {
            let e = parse_function_ref(bad).unwrap_err();
            assert_eq!(e.error_type, "ValidationException", "{bad}");
            assert!(e.message.contains("at 'functionName'"), "{}", e.message);
        }
    }

    #[test]
    fn tag_arns() {
        let arn = parse_tag_arn("arn:aws:lambda:us-east-1:000000000000:function:hello").unwrap();
        assert_eq!(
            arn,
            TagArn {
                region: "us-east-1".into(),
                account: "000000000000".into(),
                name: "hello".into(),
                qualifier: None,
            }
        );
        let q =
            parse_tag_arn("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:$LATEST")
                .unwrap();
        assert_eq!(q.qualifier.as_deref(), Some("$LATEST"));
        assert_eq!(q.region, "us-gov-west-1");
        for bad in [
            "",
            "hello",
            "000000000000:function:hello",
            "arn:aws:lambda:us-east-1:000000000000:function:",
            "arn:aws:lambda:us-east-1:0000:function:hello",
            "arn:aws:lambda:useast1:000000000000:function:hello",
            "arn:aws:lambda:us-east-1:000000000000:layer:hello",
            "arn:aws:s3:us-east-1:000000000000:function:hello",
            "arn:gcp:lambda:us-east-1:000000000000:function:hello",
            "arn:aws:lambda:us-east-1:000000000000:function:he llo",
            "arn:aws:lambda:us-east-1:000000000000:function:hello:1:2",
        ] {
            let e = parse_tag_arn(bad).unwrap_err();
            assert_eq!(e.error_type, "ValidationException", "{bad}");
            assert!(
                e.message.contains(&format!("Value '{bad}' at 'resource'"))
                    && e.message.contains("regular expression pattern: arn:"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn tag_validation() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let long_key = "k".repeat(128);
        let long_value = "v".repeat(256);
        assert!(check_tags(&tags(&[
            ("team", ""),
            (&long_key, &long_value),
            ("awsome", "x"),
            ("ünï", "çödé"),
        ]))
        .is_ok());
        // Lengths count characters, not bytes.
        assert!(check_tags(&tags(&[(&"é".repeat(128), &"é".repeat(256))])).is_ok());

        let e = check_tags(&tags(&[(&"k".repeat(129), "v")])).unwrap_err();
        assert_eq!(e.error_type, "ValidationException");
        assert!(
            e.message.contains("at 'tags'") && e.message.contains("less than or equal to 128"),
            "{}",
            e.message
        );
        let e = check_tags(&tags(&[("", "v")])).unwrap_err();
        assert_eq!(e.error_type, "ValidationException");
        assert!(
            e.message.contains("greater than or equal to 1"),
            "{}",
            e.message
        );

        let e = check_tags(&tags(&[("team", &"v".repeat(257))])).unwrap_err();
        assert_eq!(e.error_type, "ValidationException");
        assert!(
            e.message.contains("at 'tags.team'") && e.message.contains("less than or equal to 256"),
            "{}",
            e.message
        );

        for reserved in ["aws:cloudformation:stack-name", "AWS:x", "aws:"] {
            let e = check_tags(&tags(&[(reserved, "v")])).unwrap_err();
            assert_eq!(e.error_type, "InvalidParameterValueException", "{reserved}");
            assert!(e.message.contains("reserved"), "{}", e.message);
            assert!(e.message.contains(reserved), "{}", e.message);
        }

        assert!(check_tag_count("arn:f", 50).is_ok());
        let e = check_tag_count("arn:f", 51).unwrap_err();
        assert_eq!(e.error_type, "InvalidParameterValueException");
        assert!(
            e.message.contains("51 tags") && e.message.contains("at most 50"),
            "{}",
            e.message
        );
    }

    #[test]
    fn settings_validation_messages() {
        let v = |rt: &str, h: &str, m: i64, t: i64| validate_settings(rt, h, m, t, None, 512);
        assert!(v("nodejs20.x", "index.handler", 128, 3).is_ok());
        assert!(v("provided.al2023", "", 128, 3).is_ok());
        assert!(v("java8", "x", 128, 3)
            .unwrap_err()
            .message
            .contains("java8 is not supported"));
        assert!(v("python3.12", "", 128, 3)
            .unwrap_err()
            .message
            .contains("Handler parameter is required"));
        assert!(v("python3.12", "a.b", 64, 3)
            .unwrap_err()
            .message
            .contains("greater than or equal to 128"));
        assert!(v("python3.12", "a.b", 10241, 3)
            .unwrap_err()
            .message
            .contains("less than or equal to 10240"));
        assert!(v("python3.12", "a.b", 128, 0)
            .unwrap_err()
            .message
            .contains("at 'timeout'"));
        assert!(v("python3.12", "a.b", 128, 901)
            .unwrap_err()
            .message
            .contains("less than or equal to 900"));
        let mut big = Environment::default();
        big.variables.insert("BIG".into(), "x".repeat(5000));
        let e = validate_settings("python3.12", "a.b", 128, 3, Some(&big), 512).unwrap_err();
        assert!(e.message.contains("exceeded the 4KB limit"));
        let mut reserved = Environment::default();
        reserved.variables.insert("AWS_REGION".into(), "x".into());
        assert!(
            validate_settings("python3.12", "a.b", 128, 3, Some(&reserved), 512)
                .unwrap_err()
                .message
                .contains("reserved keys")
        );
    }
}
