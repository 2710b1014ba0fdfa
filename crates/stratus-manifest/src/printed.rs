//! The configuration as `serverless print` (Serverless Framework v3) shows it:
//! the file as written, variables resolved (as v3 does: not in keys, and in
//! the `params` of every stage), key order kept, plus the few settings v3
//! fills in while it loads a service. Built from the tree that
//! [`crate::vars`] resolved (positions and order intact), never from the typed
//! schema or the [`crate::Service`] model, so a service Stratus could not run
//! (a Java runtime, a container image, a setting outside Stratus's limits)
//! still prints; only what v3 itself refuses stops it.
//!
//! What v3 adds or changes, in the order it does it (so that key order comes
//! out the same):
//!
//! 1. `provider: aws` (a string) becomes `provider: {name: aws}`;
//!    `provider.stage` is set to `dev` when absent or null (it is *not* the
//!    `--stage` option);
//! 2. with the AWS provider: `provider.region` becomes `--region`, else the
//!    written region, else `us-east-1`; `provider.versionFunctions` defaults
//!    to `true`;
//! 3. `functions` and `resources` written as lists of maps are merged into one
//!    map; a function that is null is dropped; each function gets `events: []`
//!    when it has none and `name: <service>-<stage>-<key>` (stage: `--stage`,
//!    else `provider.stage`) when it has none;
//! 4. schema validation converts values to the type v3's schema declares
//!    (`timeout: '10'` → `10`, an environment value `2` → `'2'`, `rate:
//!    rate(1 hour)` → `[rate(1 hour)]`, an IAM `Action: x` → `[x]`, …) — done
//!    here for the settings listed in [`coerce_service`] — and moves every key
//!    whose value is null to the end of its map;
//! 5. with the AWS provider: `package.artifactsS3KeyDirname` is added when
//!    `package` is written, and `provider.deploymentBucket: {name, …}` becomes
//!    `deploymentBucket: <name>` plus `deploymentBucketObject: {…}`.
//!
//! [`select`] then applies `--path` and `--transform` with v3's semantics and
//! error texts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Diagnostics, Severity};
use crate::error::ManifestError;
use crate::spanned::{self, Entry, Node, Span, Value};
use crate::{vars, Options};

/// A configuration ready to print.
#[derive(Debug, Clone)]
pub struct Printed {
    /// The configuration as v3 prints it (spans are where each value was
    /// written; values v3 adds carry their parent's span).
    pub config: Node,
    /// Warnings from variable resolution (defaults used for sources Stratus
    /// does not read).
    pub warnings: Vec<Diagnostic>,
    /// The configuration file read.
    pub config_file: PathBuf,
    /// The service directory.
    pub service_dir: PathBuf,
}

/// Loads the service at `path_or_dir` (a file, or a directory holding
/// `serverless.yml`/`.yaml`/`.json`) for printing.
pub fn load_printed(path_or_dir: &Path, opts: &Options) -> Result<Printed, ManifestError> {
    let source = crate::read_config(path_or_dir)?;
    let (config, warnings) = printed_str(
        &source.text,
        source.display,
        source.is_json,
        &source.service_dir,
        opts,
    )?;
    Ok(Printed {
        config,
        warnings,
        config_file: source.config_file,
        service_dir: source.service_dir,
    })
}

/// [`load_printed`] from text: `file` names the file in positions, `file(…)`
/// paths start at `service_dir`.
pub fn printed_str(
    text: &str,
    file: Arc<str>,
    is_json: bool,
    service_dir: &Path,
    opts: &Options,
) -> Result<(Node, Vec<Diagnostic>), ManifestError> {
    let root = if is_json {
        spanned::parse_json(text, file.clone())?
    } else {
        spanned::parse_yaml_with(text, file.clone(), true)?
    };
    // v3 leaves `${…}` in keys as written and resolves every stage's params.
    let resolved = vars::resolve_with(root, service_dir, opts, true)?;
    let config = normalize(resolved.root, &file, opts)?;
    Ok((config, resolved.warnings))
}

fn fail(span: &Span, path: &str, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(Diagnostics(vec![Diagnostic::new(
        Severity::Error,
        span.clone(),
        path,
        message,
    )]))
}

/// Applies v3's loading steps (see the module documentation) to a resolved
/// configuration. `file` is the configuration file's name, for v3's messages.
pub(crate) fn normalize(mut root: Node, file: &str, opts: &Options) -> Result<Node, ManifestError> {
    if !matches!(root.value, Value::Map(_)) {
        return Err(fail(
            &root.span,
            "",
            format!(
                "the configuration must be a map of settings, found {}",
                root.kind()
            ),
        ));
    }
    let root_span = root.span.clone();

    // v3 reads the provider's name before anything else.
    let provider_name = match root.get("provider").map(|p| (p, &p.value)) {
        Some((p, Value::Map(_))) => p.get("name").and_then(js_string_scalar),
        Some((p, _)) => js_string_scalar(p),
        None => None,
    };
    let Some(provider_name) = provider_name else {
        let span = root.get("provider").map_or(&root_span, |p| &p.span);
        return Err(fail(
            span,
            "provider.name",
            "Invalid service configuration: \"provider.name\" property is missing",
        ));
    };
    let is_aws = provider_name == "aws";

    // 1. provider as an object, with a stage.
    if let Some(slot) = get_mut(&mut root, "provider") {
        if !matches!(slot.value, Value::Map(_)) {
            let span = slot.span.clone();
            let name = std::mem::replace(slot, Node::new(span.clone(), Value::Null));
            *slot = Node::new(
                span.clone(),
                Value::Map(vec![Entry {
                    key: "name".into(),
                    key_span: span,
                    value: name,
                }]),
            );
        }
        if slot.get("stage").is_none_or(is_null) {
            set(slot, "stage", Value::String("dev".into()));
        }
    }
    let provider_stage = root
        .get("provider")
        .and_then(|p| p.get("stage"))
        .map(js_string)
        .unwrap_or_else(|| "dev".into());

    // 2. the AWS provider's region and function versioning.
    if is_aws {
        if let Some(provider) = get_mut(&mut root, "provider") {
            let region = opts
                .region
                .clone()
                .filter(|r| !r.is_empty())
                .map(Value::String)
                .or_else(|| {
                    provider
                        .get("region")
                        .filter(|r| is_truthy(r))
                        .map(|r| r.value.clone())
                })
                .unwrap_or_else(|| Value::String("us-east-1".into()));
            set(provider, "region", region);
            if provider.get("versionFunctions").is_none_or(is_null) {
                set(provider, "versionFunctions", Value::Bool(true));
            }
        }
    }

    // Checks v3 makes while it loads the service.
    match root.get("service") {
        Some(s) if matches!(s.value, Value::Map(_) | Value::Seq(_)) => {
            return Err(fail(
                &s.span,
                "service",
                "Object notation for \"service\" property is not supported. Set \"service\" property directly with service name.",
            ));
        }
        Some(s) if is_truthy(s) => {}
        other => {
            let span = other.map_or(&root_span, |s| &s.span);
            return Err(fail(
                span,
                "service",
                format!("\"service\" property is missing in {file}"),
            ));
        }
    }
    let service_name = root.get("service").map(js_string).unwrap_or_default();
    if let Some(fv) = root.get("frameworkVersion").filter(|v| is_truthy(v)) {
        let strict = root.get("configValidationMode").and_then(Node::as_str) == Some("error");
        check_framework_version(fv, file, strict)?;
    }

    // 3. functions and resources merged from lists; function names and events.
    for key in ["resources", "functions"] {
        if let Some(slot) = get_mut(&mut root, key) {
            merge_list(slot, key)?;
        }
    }
    let stage_for_names = opts
        .stage
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or(provider_stage);
    if let Some(functions) = get_mut(&mut root, "functions") {
        name_functions(functions, &service_name, &stage_for_names)?;
    }

    // 4. schema validation: type coercion, then nulls moved last.
    coerce_service(&mut root);
    if is_aws && root.get("configValidationMode").and_then(Node::as_str) == Some("error") {
        schema_errors(&root)?;
    }
    nulls_last(&mut root);

    // 5. the AWS plugins' `initialize` steps.
    if is_aws {
        let prefix = root
            .get("provider")
            .and_then(|p| p.get("deploymentPrefix"))
            .filter(|p| !is_null(p))
            .map_or_else(|| "serverless".to_string(), js_string);
        let stage = opts
            .stage
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                root.get("provider")
                    .and_then(|p| p.get("stage"))
                    .filter(|s| is_truthy(s))
                    .map(js_string)
            })
            .unwrap_or_else(|| "dev".into());
        if let Some(package) = get_mut(&mut root, "package") {
            if is_truthy(package) && matches!(package.value, Value::Map(_)) {
                set(
                    package,
                    "artifactsS3KeyDirname",
                    Value::String(format!("{prefix}/{service_name}/{stage}/code-artifacts")),
                );
            }
        }
        if let Some(provider) = get_mut(&mut root, "provider") {
            split_deployment_bucket(provider);
        }
    }
    js_key_order(&mut root);
    Ok(root)
}

/// JavaScript objects list array-index keys (`0` … `4294967294`, no leading
/// zeros) first, in numeric order, then the others in insertion order.
fn js_key_order(node: &mut Node) {
    fn index(key: &str) -> Option<u32> {
        if key != "0" && (key.starts_with('0') || key.is_empty()) {
            return None;
        }
        if !key.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        key.parse::<u32>().ok().filter(|&i| i != u32::MAX)
    }
    match &mut node.value {
        Value::Map(entries) => {
            entries.iter_mut().for_each(|e| js_key_order(&mut e.value));
            if entries.iter().any(|e| index(&e.key).is_some()) {
                let (mut indexed, named): (Vec<Entry>, Vec<Entry>) = std::mem::take(entries)
                    .into_iter()
                    .partition(|e| index(&e.key).is_some());
                indexed.sort_by_key(|e| index(&e.key));
                indexed.extend(named);
                *entries = indexed;
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(js_key_order),
        _ => {}
    }
}

/// `provider.deploymentBucket: {name: x, …}` → `deploymentBucket: x` and
/// `deploymentBucketObject: {name: x, …}` (null when the map has no name).
fn split_deployment_bucket(provider: &mut Node) {
    let Some(bucket) = provider.get("deploymentBucket") else {
        return;
    };
    if !matches!(bucket.value, Value::Map(_) | Value::Seq(_)) || !is_truthy(bucket) {
        return;
    }
    let object = bucket.clone();
    let name = object
        .get("name")
        .filter(|n| is_truthy(n))
        .map_or(Value::Null, |n| n.value.clone());
    set(provider, "deploymentBucketObject", object.value);
    set(provider, "deploymentBucket", name);
}

/// `functions:`/`resources:` written as a list of maps become one map, merged
/// the way lodash's `merge` does (later maps win, nested maps and lists merge
/// item by item). Null items are skipped; other non-maps are v3's error.
fn merge_list(slot: &mut Node, key: &str) -> Result<(), ManifestError> {
    let Value::Seq(items) = &slot.value else {
        return Ok(());
    };
    let mut merged = Node::new(slot.span.clone(), Value::Map(Vec::new()));
    for item in items {
        match &item.value {
            Value::Null | Value::Bool(false) => {}
            Value::Int(0) => {}
            Value::String(s) if s.is_empty() => {}
            Value::Map(_) | Value::Seq(_) => deep_merge(&mut merged, item),
            _ => {
                return Err(fail(
                    &item.span,
                    key,
                    format!(
                        "Non-object value specified in {key} array: {}",
                        js_string(item)
                    ),
                ))
            }
        }
    }
    *slot = merged;
    Ok(())
}

fn deep_merge(target: &mut Node, source: &Node) {
    match (&mut target.value, &source.value) {
        (Value::Map(entries), Value::Map(src)) => {
            for e in src {
                match entries.iter_mut().find(|t| t.key == e.key) {
                    Some(t) if is_mergeable(&t.value) && is_mergeable(&e.value) => {
                        deep_merge(&mut t.value, &e.value)
                    }
                    Some(t) => t.value = e.value.clone(),
                    None => entries.push(e.clone()),
                }
            }
        }
        (Value::Map(entries), Value::Seq(src)) => {
            for (i, item) in src.iter().enumerate() {
                let key = i.to_string();
                match entries.iter_mut().find(|t| t.key == key) {
                    Some(t) if is_mergeable(&t.value) && is_mergeable(item) => {
                        deep_merge(&mut t.value, item)
                    }
                    Some(t) => t.value = item.clone(),
                    None => entries.push(Entry {
                        key,
                        key_span: item.span.clone(),
                        value: item.clone(),
                    }),
                }
            }
        }
        (Value::Seq(items), Value::Seq(src)) => {
            for (i, item) in src.iter().enumerate() {
                match items.get_mut(i) {
                    Some(t) if is_mergeable(t) && is_mergeable(item) => deep_merge(t, item),
                    Some(t) => *t = item.clone(),
                    None => items.push(item.clone()),
                }
            }
        }
        _ => *target = source.clone(),
    }
}

fn is_mergeable(n: &Node) -> bool {
    matches!(n.value, Value::Map(_) | Value::Seq(_))
}

/// Function names and empty event lists, as v3 sets them before validation.
fn name_functions(functions: &mut Node, service: &str, stage: &str) -> Result<(), ManifestError> {
    let Value::Map(entries) = &mut functions.value else {
        if is_null(functions) {
            return Ok(());
        }
        return Err(fail(
            &functions.span,
            "functions",
            format!(
                "Unexpected \"functions\" configuration: Expected object received: {}",
                inspect(functions)
            ),
        ));
    };
    entries.retain(|e| !is_null(&e.value));
    for e in entries.iter_mut() {
        let path = spanned::join_path("functions", &e.key);
        if !matches!(e.value.value, Value::Map(_) | Value::Seq(_)) {
            return Err(fail(
                &e.value.span,
                &path,
                format!(
                    "Unexpected \"{}\" function configuration: Expected object received {})",
                    e.key,
                    inspect(&e.value)
                ),
            ));
        }
        let f = &mut e.value;
        if f.get("events").is_none_or(|ev| !is_truthy(ev)) {
            set(f, "events", Value::Seq(Vec::new()));
        }
        if f.get("name").is_none_or(|n| !is_truthy(n)) {
            set(
                f,
                "name",
                Value::String(format!("{service}-{stage}-{}", e.key)),
            );
        }
        // v3's event plugins call `events.some(…)` while they initialize, so
        // an event setting that is a map (a scalar becomes a one-item list
        // in validation) stops every command, print included.
        if let Some(events) = f.get("events") {
            if matches!(events.value, Value::Map(_)) {
                return Err(fail(
                    &events.span,
                    &spanned::join_path(&path, "events"),
                    "expected a list of events, found a map (Serverless v3 fails with `events.some is not a function`)",
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// `frameworkVersion`.

/// The Serverless Framework release whose `print` Stratus reproduces.
pub const SERVERLESS_VERSION: (u64, u64, u64) = (3, 40, 0);

/// v3 refuses to load a service whose `frameworkVersion` range (npm semver
/// syntax) it does not satisfy; a range it cannot read is skipped (an error
/// with `configValidationMode: error`).
fn check_framework_version(fv: &Node, file: &str, strict: bool) -> Result<(), ManifestError> {
    let range = js_string(fv);
    let (a, b, c) = SERVERLESS_VERSION;
    let ours = format!("{a}.{b}.{c}");
    match satisfies(&range, SERVERLESS_VERSION) {
        Some(true) => Ok(()),
        _ if range == ours => Ok(()),
        Some(false) => Err(fail(
            &fv.span,
            "frameworkVersion",
            format!("The Serverless version ({ours}) does not satisfy the \"frameworkVersion\" ({range}) in {file}"),
        )),
        None if strict => Err(fail(
            &fv.span,
            "frameworkVersion",
            "Configured \"frameworkVersion\" does not represent a valid semver version range.",
        )),
        None => Ok(()),
    }
}

type Version = (u64, u64, u64);

/// Whether `version` satisfies the npm semver range `range` (`3`, `^3.2`,
/// `~3.1.0`, `>=2 <4`, `3.x`, `1 - 3`, `^2 || ^3`, …); `None` when the range
/// cannot be read. Prerelease tags in the range are ignored.
fn satisfies(range: &str, version: Version) -> Option<bool> {
    let mut any = false;
    for alt in range.split("||") {
        let words: Vec<&str> = alt.split_whitespace().collect();
        let ok = if let [low, "-", high] = words.as_slice() {
            let (l, _) = partial(low)?;
            let (h, hn) = partial(high)?;
            version >= fill(l) && below_or_at(version, h, hn)
        } else {
            let mut ok = true;
            let mut i = 0;
            while i < words.len() {
                // `>= 3` is written with a space sometimes.
                let mut word = words[i].to_string();
                if matches!(word.as_str(), ">=" | "<=" | ">" | "<" | "=" | "^" | "~") {
                    i += 1;
                    word.push_str(words.get(i)?);
                }
                ok &= comparator(&word, version)?;
                i += 1;
            }
            ok
        };
        any |= ok;
    }
    Some(any)
}

/// A partial version (`3`, `3.1`, `3.1.2`, with `x`/`*` wildcards and an
/// optional `v`): the numbers given, and how many.
fn partial(text: &str) -> Option<([u64; 3], usize)> {
    let text = text.trim_start_matches(['v', '=']);
    let text = text.split(['-', '+']).next()?;
    if text.is_empty() || text == "*" || text.eq_ignore_ascii_case("x") {
        return Some(([0; 3], 0));
    }
    let mut parts = [0; 3];
    let mut n = 0;
    for (i, p) in text.split('.').enumerate() {
        if i >= 3 {
            return None;
        }
        if p == "*" || p.eq_ignore_ascii_case("x") {
            break;
        }
        parts[i] = p.parse().ok()?;
        n = i + 1;
    }
    Some((parts, n))
}

fn fill(p: [u64; 3]) -> Version {
    (p[0], p[1], p[2])
}

/// The first version above the partial `p` of `n` numbers (`3` → 4.0.0).
fn next_after(p: [u64; 3], n: usize) -> Version {
    match n {
        0 => (u64::MAX, 0, 0),
        1 => (p[0] + 1, 0, 0),
        2 => (p[0], p[1] + 1, 0),
        _ => (p[0], p[1], p[2] + 1),
    }
}

fn below_or_at(v: Version, p: [u64; 3], n: usize) -> bool {
    if n == 3 {
        v <= fill(p)
    } else {
        v < next_after(p, n)
    }
}

fn comparator(word: &str, v: Version) -> Option<bool> {
    let (op, rest) = [">=", "<=", ">", "<", "^", "~", "="]
        .iter()
        .find_map(|op| word.strip_prefix(op).map(|r| (*op, r)))
        .unwrap_or(("", word));
    let (p, n) = partial(rest)?;
    let low = fill(p);
    Some(match op {
        ">=" => v >= low,
        ">" => v >= next_after(p, n) && (n > 0 || v > low),
        "<=" => below_or_at(v, p, n),
        "<" => n > 0 && v < low,
        "^" => {
            let high = match (p, n) {
                (_, 0) => (u64::MAX, 0, 0),
                ([0, 0, _], 3) => (0, 0, p[2] + 1),
                ([0, _, _], 2..=3) => (0, p[1] + 1, 0),
                _ => (p[0] + 1, 0, 0),
            };
            v >= low && v < high
        }
        "~" => v >= low && v < next_after(p, n.min(2)),
        _ => v >= low && v < next_after(p, n),
    })
}

// ---------------------------------------------------------------------------
// `configValidationMode: error`.

/// Settings v3's schema knows at the top level.
const V3_TOP: &[&str] = &[
    "configValidationMode",
    "console",
    "custom",
    "dashboard",
    "deprecationNotificationMode",
    "disabledDeprecations",
    "frameworkVersion",
    "functions",
    "package",
    "params",
    "plugins",
    "projectDir",
    "provider",
    "service",
    "useDotenv",
    "variablesResolutionMode",
    "resources",
    "layers",
    "org",
    "app",
    "outputs",
];

/// Settings v3's AWS schema knows under `provider`.
const V3_PROVIDER: &[&str] = &[
    "name",
    "alb",
    "apiGateway",
    "apiName",
    "architecture",
    "cfnRole",
    "cloudFront",
    "deploymentBucket",
    "deploymentPrefix",
    "disableRollback",
    "endpointType",
    "environment",
    "eventBridge",
    "httpApi",
    "iam",
    "iamManagedPolicies",
    "iamRoleStatements",
    "ecr",
    "kmsKeyArn",
    "lambdaHashingVersion",
    "layers",
    "logRetentionInDays",
    "logDataProtectionPolicy",
    "logs",
    "memorySize",
    "notificationArns",
    "profile",
    "region",
    "role",
    "rolePermissionsBoundary",
    "rollbackConfiguration",
    "runtime",
    "runtimeManagement",
    "deploymentMethod",
    "s3",
    "stage",
    "stackName",
    "stackParameters",
    "stackPolicy",
    "stackTags",
    "tags",
    "timeout",
    "tracing",
    "vpc",
    "vpcEndpointIds",
    "versionFunctions",
    "websocket",
    "websocketsApiName",
    "kinesis",
    "websocketsApiRouteSelectionExpression",
    "websocketsDescription",
];

/// Settings v3's AWS schema knows on a function.
const V3_FUNCTION: &[&str] = &[
    "name",
    "events",
    "architecture",
    "awsKmsKeyArn",
    "condition",
    "dependsOn",
    "description",
    "destinations",
    "disableLogs",
    "environment",
    "ephemeralStorageSize",
    "fileSystemConfig",
    "handler",
    "image",
    "kmsKeyArn",
    "snapStart",
    "layers",
    "logRetentionInDays",
    "logDataProtectionPolicy",
    "maximumEventAge",
    "maximumRetryAttempts",
    "memorySize",
    "onError",
    "package",
    "provisionedConcurrency",
    "reservedConcurrency",
    "role",
    "runtime",
    "runtimeManagement",
    "tags",
    "timeout",
    "tracing",
    "url",
    "versionFunction",
    "vpc",
    "httpApi",
];

/// Settings v3's schema knows under `package`.
const V3_PACKAGE: &[&str] = &[
    "artifact",
    "exclude",
    "excludeDevDependencies",
    "include",
    "individually",
    "path",
    "patterns",
];

/// The event kinds v3's AWS schema knows.
const V3_EVENTS: &[&str] = &[
    "http",
    "httpApi",
    "websocket",
    "s3",
    "schedule",
    "sns",
    "sqs",
    "stream",
    "kafka",
    "activemq",
    "rabbitmq",
    "msk",
    "alb",
    "alexaSkill",
    "alexaSmartHome",
    "iot",
    "iotFleetProvisioning",
    "cloudwatchEvent",
    "cloudwatchLog",
    "cognitoUserPool",
    "eventBridge",
    "cloudFront",
];

/// With `configValidationMode: error` v3 refuses a configuration its schema
/// rejects. Stratus checks the part of that schema that catches most slips:
/// unknown keys at the top level, in `provider`, `package` and functions,
/// unknown event kinds, and settings typed integer, boolean or list (after the
/// conversions of [`coerce_service`]) holding something else. Messages are
/// v3's (`Configuration error at 'provider.timeout': must be integer`).
fn schema_errors(root: &Node) -> Result<(), ManifestError> {
    let mut errors: Vec<Diagnostic> = Vec::new();
    let unknown =
        |errors: &mut Vec<Diagnostic>, node: &Node, known: &[&str], v3_path: &str, path: &str| {
            for e in node.as_map().unwrap_or_default() {
                if !known.contains(&e.key.as_str()) {
                    errors.push(config_error(
                        &e.key_span,
                        spanned::join_path(path, &e.key),
                        v3_path,
                        &format!("unrecognized property '{}'", e.key),
                    ));
                }
            }
        };
    unknown(&mut errors, root, V3_TOP, "", "");
    if let Some(p) = root.get("provider") {
        unknown(&mut errors, p, V3_PROVIDER, "provider", "provider");
    }
    if let Some(p) = root.get("package") {
        unknown(&mut errors, p, V3_PACKAGE, "package", "package");
    }
    for f in root
        .get("functions")
        .and_then(Node::as_map)
        .unwrap_or_default()
    {
        let path = spanned::join_path("functions", &f.key);
        let v3_path = format!("functions.{}", f.key);
        unknown(&mut errors, &f.value, V3_FUNCTION, &v3_path, &path);
        if let Some(p) = f.value.get("package") {
            unknown(
                &mut errors,
                p,
                V3_PACKAGE,
                &format!("{v3_path}.package"),
                &spanned::join_path(&path, "package"),
            );
        }
        if let Some(Value::Seq(events)) = f.value.get("events").map(|e| &e.value) {
            for (i, ev) in events.iter().enumerate() {
                let kinds = ev.as_map().unwrap_or_default();
                let known = kinds.len() == 1 && V3_EVENTS.contains(&kinds[0].key.as_str());
                if !known {
                    errors.push(config_error(
                        &ev.span,
                        format!("{path}.events[{i}]"),
                        &format!("{v3_path}.events.{i}"),
                        "unsupported function event",
                    ));
                }
            }
        }
    }
    let mut typed = Vec::new();
    wrong_types(root, &Ty::Fields(ROOT), "", "", &mut typed);
    for (span, path, v3_path, what) in typed {
        errors.push(config_error(&span, path, &v3_path, what));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort_by(|a, b| a.span.cmp(&b.span));
        Err(ManifestError::Invalid(Diagnostics(errors)))
    }
}

/// v3's `Configuration error at '<path>': …` at `span`.
fn config_error(span: &Span, path: String, v3_path: &str, what: &str) -> Diagnostic {
    let place = if v3_path.is_empty() {
        "root".to_string()
    } else {
        format!("'{v3_path}'")
    };
    Diagnostic::new(
        Severity::Error,
        span.clone(),
        path,
        format!("Configuration error at {place}: {what}"),
    )
}

/// Settings of `ty` (integer, boolean, list) whose value, once converted, is
/// still of another type: (span, path, v3's path, v3's complaint).
fn wrong_types(
    node: &Node,
    ty: &Ty,
    path: &str,
    v3_path: &str,
    out: &mut Vec<(Span, String, String, &'static str)>,
) {
    if is_null(node) {
        return;
    }
    let mut wrong = |what: &'static str| {
        out.push((
            node.span.clone(),
            path.to_string(),
            v3_path.to_string(),
            what,
        ))
    };
    let child = |key: &str| {
        let v3 = if v3_path.is_empty() {
            key.to_string()
        } else {
            format!("{v3_path}.{key}")
        };
        (spanned::join_path(path, key), v3)
    };
    match ty {
        // Some integers (reserved and provisioned concurrency) may be
        // CloudFormation functions: maps pass.
        Ty::Int if !matches!(node.value, Value::Int(_) | Value::Map(_)) => wrong("must be integer"),
        Ty::Bool if !matches!(node.value, Value::Bool(_)) => wrong("must be boolean"),
        Ty::List(item) => match &node.value {
            Value::Seq(items) => {
                for (i, it) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let v = format!("{v3_path}.{i}");
                    wrong_types(it, item, &p, &v, out);
                }
            }
            _ => wrong("must be array"),
        },
        Ty::Values(value) => {
            for e in node.as_map().unwrap_or_default() {
                let (p, v) = child(&e.key);
                wrong_types(&e.value, value, &p, &v, out);
            }
        }
        Ty::Fields(fields) | Ty::ScalarOr(_, fields) => {
            if let Some(entries) = node.as_map() {
                for e in entries {
                    if let Some((_, t)) = fields.iter().find(|(k, _)| *k == e.key) {
                        let (p, v) = child(&e.key);
                        wrong_types(&e.value, t, &p, &v, out);
                    }
                }
            } else if let Ty::ScalarOr(scalar, _) = ty {
                wrong_types(node, scalar, path, v3_path, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Type coercion (v3 validates with AJV's `coerceTypes: 'array'`).

/// The type v3's schema declares for a setting.
#[derive(Clone, Copy)]
enum Ty {
    /// A string: numbers and booleans become text.
    Str,
    /// An integer: numeric text and booleans become numbers.
    Int,
    /// A boolean: `'true'`/`'false'`, `1`/`0` become booleans.
    Bool,
    /// A list: a scalar becomes a one-item list; items are coerced.
    List(&'static Ty),
    /// A map whose values all have this type.
    Values(&'static Ty),
    /// A map with these settings (others left as written).
    Fields(&'static [(&'static str, Ty)]),
    /// A scalar of this type, or a map with these settings.
    ScalarOr(&'static Ty, &'static [(&'static str, Ty)]),
    /// A string, or a list of strings (a one-item list becomes the string).
    StrOrList,
}

const STR: Ty = Ty::Str;
const STR_LIST: Ty = Ty::List(&STR);

const PACKAGE: &[(&str, Ty)] = &[
    ("patterns", STR_LIST),
    ("include", STR_LIST),
    ("exclude", STR_LIST),
    ("individually", Ty::Bool),
    ("excludeDevDependencies", Ty::Bool),
    ("artifact", Ty::Str),
];

const SCHEDULE: &[(&str, Ty)] = &[
    ("rate", STR_LIST),
    ("enabled", Ty::Bool),
    ("name", Ty::Str),
    ("description", Ty::Str),
    ("inputPath", Ty::Str),
];

const SQS: &[(&str, Ty)] = &[
    ("batchSize", Ty::Int),
    ("maximumBatchingWindow", Ty::Int),
    ("enabled", Ty::Bool),
];

const HTTP: &[(&str, Ty)] = &[
    ("path", Ty::Str),
    ("method", Ty::Str),
    ("private", Ty::Bool),
];

const ALB: &[(&str, Ty)] = &[
    ("priority", Ty::Int),
    (
        "conditions",
        Ty::Fields(&[
            ("path", STR_LIST),
            ("host", STR_LIST),
            ("method", STR_LIST),
            ("ip", STR_LIST),
        ]),
    ),
];

const STREAM: &[(&str, Ty)] = &[
    ("batchSize", Ty::Int),
    ("maximumRetryAttempts", Ty::Int),
    ("parallelizationFactor", Ty::Int),
    ("enabled", Ty::Bool),
];

const EVENT: &[(&str, Ty)] = &[
    ("alb", Ty::Fields(ALB)),
    ("stream", Ty::ScalarOr(&STR, STREAM)),
    ("schedule", Ty::ScalarOr(&STR, SCHEDULE)),
    ("sqs", Ty::ScalarOr(&STR, SQS)),
    ("http", Ty::ScalarOr(&STR, HTTP)),
];

const STATEMENT: &[(&str, Ty)] = &[
    ("Sid", Ty::Str),
    ("Action", STR_LIST),
    ("NotAction", STR_LIST),
];

const STATEMENTS: Ty = Ty::List(&Ty::Fields(STATEMENT));

const IAM: &[(&str, Ty)] = &[(
    "role",
    Ty::Fields(&[("statements", STATEMENTS), ("managedPolicies", STR_LIST)]),
)];

const HTTP_API_CORS: &[(&str, Ty)] = &[
    ("allowedOrigins", STR_LIST),
    ("allowedHeaders", STR_LIST),
    ("allowedMethods", STR_LIST),
    ("exposedResponseHeaders", STR_LIST),
    ("allowCredentials", Ty::Bool),
    ("maxAge", Ty::Int),
];

const AUTHORIZER: &[(&str, Ty)] = &[
    ("audience", Ty::StrOrList),
    ("identitySource", Ty::Str),
    ("issuerUrl", Ty::Str),
];

const HTTP_API: &[(&str, Ty)] = &[
    ("cors", Ty::ScalarOr(&Ty::Bool, HTTP_API_CORS)),
    ("authorizers", Ty::Values(&Ty::Fields(AUTHORIZER))),
];

const FUNCTION: &[(&str, Ty)] = &[
    ("handler", Ty::Str),
    ("name", Ty::Str),
    ("description", Ty::Str),
    ("memorySize", Ty::Int),
    ("timeout", Ty::Int),
    ("ephemeralStorageSize", Ty::Int),
    ("reservedConcurrency", Ty::Int),
    ("provisionedConcurrency", Ty::Int),
    ("maximumRetryAttempts", Ty::Int),
    ("maximumEventAge", Ty::Int),
    ("environment", Ty::Values(&STR)),
    ("tags", Ty::Values(&STR)),
    ("package", Ty::Fields(PACKAGE)),
    ("events", Ty::List(&Ty::Fields(EVENT))),
    ("disableLogs", Ty::Bool),
    ("versionFunction", Ty::Bool),
    ("layers", STR_LIST),
];

const PROVIDER: &[(&str, Ty)] = &[
    ("stage", Ty::Str),
    ("memorySize", Ty::Int),
    ("timeout", Ty::Int),
    ("logRetentionInDays", Ty::Int),
    ("environment", Ty::Values(&STR)),
    ("tags", Ty::Values(&STR)),
    ("stackTags", Ty::Values(&STR)),
    ("versionFunctions", Ty::Bool),
    ("deploymentPrefix", Ty::Str),
    ("disableRollback", Ty::Bool),
    ("layers", STR_LIST),
    ("iam", Ty::Fields(IAM)),
    ("iamRoleStatements", STATEMENTS),
    ("iamManagedPolicies", STR_LIST),
    ("httpApi", Ty::Fields(HTTP_API)),
];

const FUNCTIONS: Ty = Ty::Values(&Ty::Fields(FUNCTION));

const ROOT: &[(&str, Ty)] = &[
    ("provider", Ty::Fields(PROVIDER)),
    ("functions", FUNCTIONS),
    ("package", Ty::Fields(PACKAGE)),
];

/// Converts the settings v3's schema types (memory, timeouts, environment
/// values, tags, packaging patterns, schedule rates, queue batch sizes, …) to
/// that type, as AJV's `coerceTypes: 'array'` does during v3's validation.
/// Nulls are left alone: v3 removes them before validating.
fn coerce_service(root: &mut Node) {
    coerce(root, &Ty::Fields(ROOT));
}

fn coerce(node: &mut Node, ty: &Ty) {
    if is_null(node) {
        return;
    }
    match ty {
        Ty::Str | Ty::Int | Ty::Bool => {
            // A one-item list of a scalar stands for the scalar.
            if let Value::Seq(items) = &node.value {
                if items.len() == 1 && is_scalar(&items[0]) {
                    let item = items[0].value.clone();
                    node.value = item;
                }
            }
            if let Some(v) = coerce_scalar(&node.value, ty) {
                node.value = v;
            }
        }
        Ty::List(item) => {
            if is_scalar(node) {
                let inner = node.clone();
                node.value = Value::Seq(vec![inner]);
            }
            if let Value::Seq(items) = &mut node.value {
                for i in items {
                    coerce(i, item);
                }
            }
        }
        Ty::Values(value) => {
            if let Value::Map(entries) = &mut node.value {
                for e in entries {
                    coerce(&mut e.value, value);
                }
            }
        }
        Ty::Fields(fields) | Ty::ScalarOr(_, fields) => {
            if let Value::Map(entries) = &mut node.value {
                for e in entries {
                    if let Some((_, t)) = fields.iter().find(|(k, _)| *k == e.key) {
                        coerce(&mut e.value, t);
                    }
                }
            } else if let Ty::ScalarOr(scalar, _) = ty {
                coerce(node, scalar);
            }
        }
        Ty::StrOrList => match &node.value {
            Value::Seq(items) if items.len() != 1 || !is_scalar(&items[0]) => {
                coerce(node, &STR_LIST);
            }
            _ => coerce(node, &STR),
        },
    }
}

fn coerce_scalar(v: &Value, ty: &Ty) -> Option<Value> {
    match (ty, v) {
        (Ty::Str, Value::Int(_) | Value::Float(_) | Value::Bool(_)) => {
            Some(Value::String(js_value_string(v)))
        }
        (Ty::Int, Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                return None;
            }
            let f: f64 = t.parse().ok()?;
            (f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15).then_some(Value::Int(f as i64))
        }
        (Ty::Int, Value::Bool(b)) => Some(Value::Int(i64::from(*b))),
        (Ty::Bool, Value::String(s)) if s == "true" => Some(Value::Bool(true)),
        (Ty::Bool, Value::String(s)) if s == "false" => Some(Value::Bool(false)),
        (Ty::Bool, Value::Int(1)) => Some(Value::Bool(true)),
        (Ty::Bool, Value::Int(0)) => Some(Value::Bool(false)),
        _ => None,
    }
}

/// Every key whose value is null moves to the end of its map (v3 removes them
/// for validation and puts them back afterwards). Lists keep their nulls.
/// `.inf` and `.nan`, which print as null, move too (as observed with v3).
fn nulls_last(node: &mut Node) {
    match &mut node.value {
        Value::Map(entries) => {
            for e in entries.iter_mut() {
                nulls_last(&mut e.value);
            }
            let (mut kept, nulls): (Vec<Entry>, Vec<Entry>) = std::mem::take(entries)
                .into_iter()
                .partition(|e| !is_null(&e.value) && !is_non_finite(&e.value));
            kept.extend(nulls);
            *entries = kept;
        }
        Value::Seq(items) => items.iter_mut().for_each(nulls_last),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Small tree helpers.

fn is_null(n: &Node) -> bool {
    matches!(n.value, Value::Null)
}

fn is_non_finite(n: &Node) -> bool {
    matches!(n.value, Value::Float(f) if !f.is_finite())
}

fn is_scalar(n: &Node) -> bool {
    !matches!(n.value, Value::Map(_) | Value::Seq(_) | Value::Null)
}

/// JavaScript truthiness.
fn is_truthy(n: &Node) -> bool {
    match &n.value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0 && !f.is_nan(),
        Value::String(s) => !s.is_empty(),
        Value::Seq(_) | Value::Map(_) => true,
    }
}

fn get_mut<'a>(n: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut n.value {
        Value::Map(entries) => entries
            .iter_mut()
            .find(|e| e.key == key)
            .map(|e| &mut e.value),
        _ => None,
    }
}

/// Sets `key` of the map `n` in place, or appends it (as a JavaScript
/// assignment does). New values carry the map's span.
fn set(n: &mut Node, key: &str, value: Value) {
    let span = n.span.clone();
    if let Value::Map(entries) = &mut n.value {
        match entries.iter_mut().find(|e| e.key == key) {
            Some(e) => e.value.value = value,
            None => entries.push(Entry {
                key: key.into(),
                key_span: span.clone(),
                value: Node::new(span, value),
            }),
        }
    }
}

/// A scalar provider name as v3 accepts it (`ensureString`): text, a number
/// or a boolean.
fn js_string_scalar(n: &Node) -> Option<String> {
    match &n.value {
        Value::String(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => Some(js_string(n)),
        _ => None,
    }
}

/// `String(value)` in JavaScript.
pub(crate) fn js_string(n: &Node) -> String {
    js_value_string(&n.value)
}

fn js_value_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => js_number(*f),
        Value::String(s) => s.clone(),
        Value::Seq(items) => items
            .iter()
            .map(|i| match i.value {
                Value::Null => String::new(),
                _ => js_string(i),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Map(_) => "[object Object]".into(),
    }
}

/// A number as JavaScript writes it: integral values without a fraction,
/// exponents from 1e21 and below 1e-6.
pub fn js_number(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return "0".into();
    }
    let a = f.abs();
    if !(1e-6..1e21).contains(&a) {
        let s = format!("{f:e}");
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        };
    }
    if f.fract() == 0.0 && a >= 9_007_199_254_740_992.0 {
        // Beyond 2^53 JavaScript writes the shortest digits that read back,
        // then zeros: 12345678901234567890 → 12345678901234567000.
        let e = format!("{a:e}");
        let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let exp: usize = exp.parse().unwrap_or(0);
        let sign = if f < 0.0 { "-" } else { "" };
        return format!("{sign}{digits:0<width$}", width = exp + 1);
    }
    if f.fract() == 0.0 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

/// A short rendering of a value for v3's "Expected object received …" texts.
fn inspect(n: &Node) -> String {
    match &n.value {
        Value::String(s) => format!("'{s}'"),
        Value::Seq(_) => "[ … ]".into(),
        _ => js_string(n),
    }
}

// ---------------------------------------------------------------------------
// --path and --transform.

/// Why `--path`/`--transform` could not be applied (v3's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// A step of `--path` leads nowhere, or to a falsy value (v3 treats `0`,
    /// `false`, `''` and null as absent).
    #[error("Path \"{0}\" not found")]
    PathNotFound(String),
    /// `--transform` other than `keys`.
    #[error("Transform can only be \"keys\"")]
    BadTransform,
}

/// Applies `--path a.b.c` (map keys, list indexes) and then `--transform
/// keys` (the keys of a map, the indexes of a list or a string) to `config`.
pub fn select(
    config: &Node,
    path: Option<&str>,
    transform: Option<&str>,
) -> Result<Node, SelectError> {
    let mut node = config.clone();
    if let Some(path) = path {
        for step in path.split('.') {
            let next = step_into(&node, step);
            match next {
                Some(n) if is_truthy(&n) => node = n,
                _ => return Err(SelectError::PathNotFound(path.to_string())),
            }
        }
    }
    if let Some(t) = transform {
        if t != "keys" {
            return Err(SelectError::BadTransform);
        }
        let span = node.span.clone();
        let key = |s: String| Node::new(span.clone(), Value::String(s));
        let keys: Vec<Node> = match &node.value {
            Value::Map(entries) => entries.iter().map(|e| key(e.key.clone())).collect(),
            Value::Seq(items) => (0..items.len()).map(|i| key(i.to_string())).collect(),
            Value::String(s) => (0..s.encode_utf16().count())
                .map(|i| key(i.to_string()))
                .collect(),
            _ => Vec::new(),
        };
        node = Node::new(span, Value::Seq(keys));
    }
    Ok(node)
}

/// `value[step]` in JavaScript, for the values a configuration holds.
fn step_into(node: &Node, step: &str) -> Option<Node> {
    let index = || -> Option<usize> {
        if step == "0" || (!step.starts_with('0') && step.bytes().all(|b| b.is_ascii_digit())) {
            step.parse().ok()
        } else {
            None
        }
    };
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .rev()
            .find(|e| e.key == step)
            .map(|e| e.value.clone()),
        Value::Seq(items) if step == "length" => {
            Some(Node::new(node.span.clone(), Value::Int(items.len() as i64)))
        }
        Value::Seq(items) => items.get(index()?).cloned(),
        Value::String(s) if step == "length" => Some(Node::new(
            node.span.clone(),
            Value::Int(s.encode_utf16().count() as i64),
        )),
        Value::String(s) => {
            let units: Vec<u16> = s.encode_utf16().collect();
            let unit = *units.get(index()?)?;
            Some(Node::new(
                node.span.clone(),
                Value::String(String::from_utf16_lossy(&[unit])),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print_opts(text: &str, opts: &Options) -> Result<serde_json::Value, ManifestError> {
        let (node, _) = printed_str(text, "serverless.yml".into(), false, Path::new("."), opts)?;
        Ok(node.to_json())
    }

    fn print(text: &str) -> serde_json::Value {
        print_opts(text, &Options::default()).unwrap()
    }

    fn keys(n: &Node) -> Vec<&str> {
        n.as_map().unwrap().iter().map(|e| e.key.as_str()).collect()
    }

    fn printed_node(text: &str, opts: &Options) -> Node {
        printed_str(text, "serverless.yml".into(), false, Path::new("."), opts)
            .unwrap()
            .0
    }

    #[test]
    fn v3_additions_come_after_what_is_written() {
        let n = printed_node(
            "service: svc\nprovider:\n  name: aws\n  runtime: java17\n  memorySize: 99999\nfunctions:\n  f:\n    handler: x\n    name: custom\n  g:\n    image: repo/img\n",
            &Options::default(),
        );
        assert_eq!(keys(&n), ["service", "provider", "functions"]);
        let p = n.get("provider").unwrap();
        assert_eq!(
            keys(p),
            [
                "name",
                "runtime",
                "memorySize",
                "stage",
                "region",
                "versionFunctions"
            ]
        );
        let f = n.get("functions").unwrap();
        assert_eq!(keys(f.get("f").unwrap()), ["handler", "name", "events"]);
        assert_eq!(keys(f.get("g").unwrap()), ["image", "events", "name"]);
        assert_eq!(n.to_json()["functions"]["g"]["name"], "svc-dev-g");
        assert_eq!(n.to_json()["functions"]["f"]["name"], "custom");
        assert_eq!(n.to_json()["provider"]["memorySize"], 99999);
    }

    #[test]
    fn stage_option_names_functions_but_leaves_provider_stage() {
        let opts = Options {
            stage: Some("prod".into()),
            region: Some("eu-west-1".into()),
            ..Options::default()
        };
        let v = print_opts(
            "service: svc\nprovider:\n  name: aws\n  region: us-west-2\nfunctions:\n  f:\n    handler: h\n",
            &opts,
        )
        .unwrap();
        assert_eq!(v["provider"]["stage"], "dev");
        assert_eq!(v["provider"]["region"], "eu-west-1");
        assert_eq!(v["functions"]["f"]["name"], "svc-prod-f");
    }

    #[test]
    fn provider_written_as_a_string_becomes_a_map() {
        let v = print("service: svc\nprovider: aws\n");
        assert_eq!(
            v["provider"],
            serde_json::json!({"name": "aws", "stage": "dev", "region": "us-east-1", "versionFunctions": true})
        );
        let v = print("service: svc\nprovider:\n  name: other\n");
        assert_eq!(
            v["provider"],
            serde_json::json!({"name": "other", "stage": "dev"})
        );
    }

    #[test]
    fn v3_load_errors_have_positions() {
        let e = print_opts(
            "service: svc\nprovider:\n  runtime: x\n",
            &Options::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "serverless.yml:3:3: provider.name: Invalid service configuration: \"provider.name\" property is missing"
        );
        let e = print_opts("provider: aws\nservice:\n  name: x\n", &Options::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("serverless.yml:3:3: service: Object notation"),
            "{e}"
        );
        let e = print_opts("provider: aws\n", &Options::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "serverless.yml:1:1: service: \"service\" property is missing in serverless.yml"
        );
        let e = print_opts(
            "service: s\nprovider: aws\nfunctions:\n  f: 3\n",
            &Options::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "serverless.yml:4:6: functions.f: Unexpected \"f\" function configuration: Expected object received 3)"
        );
        let e = print_opts(
            "service: s\nprovider: aws\nfunctions:\n  f:\n    events:\n      http: x\n",
            &Options::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("serverless.yml:6:7: functions.f.events: expected a list"),
            "{e}"
        );
        let e = print_opts(
            "service: s\nconfigValidationMode: error\nprovider: aws\nfunctions:\n  f:\n    evnets: []\n",
            &Options::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "serverless.yml:6:5: functions.f.evnets: Configuration error at 'functions.f': unrecognized property 'evnets'"
        );
        let e = print_opts(
            "service: s\nconfigValidationMode: error\nprovider:\n  name: aws\n  timeout: ten\n  memorySize: '512'\nfunctions:\n  f:\n    events:\n      - htp: x\n      - schedule:\n          rate: rate(1 hour)\n          enabled: maybe\n",
            &Options::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "serverless.yml:5:12: provider.timeout: Configuration error at 'provider.timeout': must be integer\n\
             serverless.yml:10:9: functions.f.events[0]: Configuration error at 'functions.f.events.0': unsupported function event\n\
             serverless.yml:13:20: functions.f.events[1].schedule.enabled: Configuration error at 'functions.f.events.1.schedule.enabled': must be boolean"
        );
    }

    #[test]
    fn schema_types_are_coerced_like_ajv() {
        let v = print(concat!(
            "service: svc\nprovider:\n  name: aws\n  timeout: '10'\n  environment:\n    N: 2\n    B: true\n",
            "  tags:\n    t: 1.5\npackage:\n  patterns: '!x/**'\n  individually: 'true'\n",
            "functions:\n  f:\n    handler: h\n    events:\n      - schedule:\n          rate: rate(1 hour)\n      - sqs:\n          arn: a\n          batchSize: '5'\n",
            "custom:\n  untouched: 2\n",
        ));
        assert_eq!(v["provider"]["timeout"], 10);
        assert_eq!(v["provider"]["environment"]["N"], "2");
        assert_eq!(v["provider"]["environment"]["B"], "true");
        assert_eq!(v["provider"]["tags"]["t"], "1.5");
        assert_eq!(v["package"]["patterns"], serde_json::json!(["!x/**"]));
        assert_eq!(v["package"]["individually"], true);
        assert_eq!(
            v["functions"]["f"]["events"][0]["schedule"]["rate"],
            serde_json::json!(["rate(1 hour)"])
        );
        assert_eq!(v["functions"]["f"]["events"][1]["sqs"]["batchSize"], 5);
        assert_eq!(v["custom"]["untouched"], 2);
        assert_eq!(
            v["package"]["artifactsS3KeyDirname"],
            "serverless/svc/dev/code-artifacts"
        );
    }

    #[test]
    fn null_keys_move_to_the_end_of_their_map() {
        let n = printed_node(
            "service: svc\nprovider:\n  name: aws\n  stage: ~\ncustom:\n  a: null\n  n: .nan\n  b: 1\n  list: [null, 1]\n",
            &Options::default(),
        );
        assert_eq!(keys(n.get("custom").unwrap()), ["b", "list", "a", "n"]);
        assert_eq!(n.to_json()["custom"]["list"], serde_json::json!([null, 1]));
        // A null stage is replaced in place.
        assert_eq!(
            keys(n.get("provider").unwrap()),
            ["name", "stage", "region", "versionFunctions"]
        );
    }

    #[test]
    fn index_keys_come_first_as_in_javascript() {
        let n = printed_node(
            "service: svc\nprovider: aws\ncustom:\n  b: 1\n  10: x\n  2: y\n  '01': z\n  4294967295: w\n",
            &Options::default(),
        );
        assert_eq!(
            keys(n.get("custom").unwrap()),
            ["2", "10", "b", "01", "4294967295"]
        );
    }

    #[test]
    fn function_lists_merge_and_null_functions_drop() {
        let v = print(
            "service: svc\nprovider: aws\nfunctions:\n  - a:\n      handler: x\n  - b:\n      handler: y\n    a:\n      timeout: 3\n",
        );
        assert_eq!(
            v["functions"],
            serde_json::json!({
                "a": {"handler": "x", "timeout": 3, "events": [], "name": "svc-dev-a"},
                "b": {"handler": "y", "events": [], "name": "svc-dev-b"},
            })
        );
        let v =
            print("service: svc\nprovider: aws\nfunctions:\n  gone:\n  kept:\n    handler: h\n");
        assert_eq!(
            v["functions"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["kept"]
        );
    }

    #[test]
    fn deployment_bucket_object_is_split() {
        let v = print("service: svc\nprovider:\n  name: aws\n  deploymentBucket:\n    name: b\n    serverSideEncryption: AES256\n  deploymentPrefix: pre\npackage:\n  individually: true\n");
        assert_eq!(v["provider"]["deploymentBucket"], "b");
        assert_eq!(
            v["provider"]["deploymentBucketObject"],
            serde_json::json!({"name": "b", "serverSideEncryption": "AES256"})
        );
        assert_eq!(
            v["package"]["artifactsS3KeyDirname"],
            "pre/svc/dev/code-artifacts"
        );
    }

    #[test]
    fn select_follows_paths_and_lists_keys() {
        let n = printed_node(
            "service: svc\nprovider: aws\ncustom:\n  list: [a, b]\n  zero: 0\n  word: hi\n",
            &Options::default(),
        );
        let at = |p: &str| select(&n, Some(p), None).map(|n| n.to_json());
        assert_eq!(at("custom.list.1").unwrap(), "b");
        assert_eq!(at("custom.list.length").unwrap(), 2);
        assert_eq!(at("custom.word.0").unwrap(), "h");
        assert_eq!(
            at("custom.zero").unwrap_err().to_string(),
            "Path \"custom.zero\" not found"
        );
        assert!(at("custom.nope").is_err());
        let k = select(&n, Some("custom"), Some("keys")).unwrap();
        assert_eq!(k.to_json(), serde_json::json!(["list", "zero", "word"]));
        let k = select(&n, Some("custom.list"), Some("keys")).unwrap();
        assert_eq!(k.to_json(), serde_json::json!(["0", "1"]));
        assert_eq!(
            select(&n, None, Some("values")).unwrap_err().to_string(),
            "Transform can only be \"keys\""
        );
    }

    #[test]
    fn framework_version_ranges_follow_npm_semver() {
        let v = (3, 40, 0);
        for yes in [
            "3", "^3", "^3.2.0", "3.x", "3.40.0", ">=3", ">= 2.1", "~3.40", "2 - 3", "^2 || ^3",
            ">=2 <4", "*", "<=3", ">2.9", "3.40",
        ] {
            assert_eq!(satisfies(yes, v), Some(true), "{yes}");
        }
        for no in [
            "2", "^4", "4.x", "~3.39.0", "<3", ">3", "^2 || ^4", ">=4 <5", "3.39", "1 - 2",
        ] {
            assert_eq!(satisfies(no, v), Some(false), "{no}");
        }
        assert_eq!(satisfies("three", v), None);
        let e = print_opts(
            "service: s\nframeworkVersion: '4'\nprovider: aws\n",
            &Options::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "serverless.yml:2:19: frameworkVersion: The Serverless version (3.40.0) does not satisfy the \"frameworkVersion\" (4) in serverless.yml");
        assert!(print_opts(
            "service: s\nframeworkVersion: nope\nprovider: aws\n",
            &Options::default()
        )
        .is_ok());
    }

    #[test]
    fn keys_stay_as_written_and_every_stage_params_resolve() {
        let text = "service: svc\nprovider:\n  name: aws\nparams:\n  prod:\n    host: ${self:service}.example.com\ncustom:\n  ${self:service}_KEY: 1\n";
        let v = print(text);
        assert_eq!(v["params"]["prod"]["host"], "svc.example.com");
        assert_eq!(v["custom"]["${self:service}_KEY"], 1);
        // `load` (deploy and the rest) resolves keys and only this stage's params.
        let (service, _) = crate::load_str(
            text,
            "serverless.yml".into(),
            false,
            Path::new("."),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(service.custom["svc_KEY"], 1);
    }

    #[test]
    fn numbers_print_as_javascript_does() {
        assert_eq!(js_number(1.0), "1");
        assert_eq!(js_number(1.5), "1.5");
        assert_eq!(js_number(-0.25), "-0.25");
        assert_eq!(js_number(1e21), "1e+21");
        assert_eq!(js_number(1e-7), "1e-7");
        assert_eq!(js_number(123456789.0), "123456789");
        assert_eq!(js_number(12345678901234567890.0), "12345678901234567000");
        assert_eq!(js_number(-9007199254740993.0), "-9007199254740992");
    }
}
