//! The Lambda API's resource shapes, with AWS's field names, as stored and returned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `Environment` in a function configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    /// Variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// `EphemeralStorage`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    /// Size in MB.
    pub size: u32,
}

/// `TracingConfig`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TracingConfig {
    /// `PassThrough` or `Active`.
    pub mode: String,
}

/// `FunctionConfiguration` as GetFunctionConfiguration returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)] // Lambda's API shape: each field is as the Lambda API reference documents it
pub struct FunctionConfiguration {
    pub function_name: String,
    pub function_arn: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub code_size: u64,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub last_modified: String,
    pub code_sha256: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    pub tracing_config: TracingConfig,
    pub revision_id: String,
    pub state: String,
    pub last_update_status: String,
    pub package_type: String,
    pub architectures: Vec<String>,
    pub ephemeral_storage: EphemeralStorage,
    /// Where events that failed asynchronous invocation go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_config: Option<DeadLetterConfig>,
    /// Stratus: the execution role's policy document (JSON, checked with
    /// `stratus_iam::Policy::parse` when deployed). Part of the version's
    /// configuration, so each version runs with the policy it was deployed with.
    #[serde(
        default,
        rename = "StratusRolePolicy",
        skip_serializing_if = "Option::is_none"
    )]
    pub role_policy: Option<String>,
    /// The KMS key named for the environment (`kmsKeyArn`), shown as Lambda shows
    /// it. Stratus seals environments with its own keys whatever this names.
    #[serde(rename = "KMSKeyArn", default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    /// Stratus: whether the function's environments may reach the network outside
    /// them (serverless.yml `custom.stratus.egress`): `Network::Egress`, a routed
    /// veth behind NAT (or the host's network under `--egress-mode host`). Shown
    /// only when on; absent in configurations stored before it existed, which
    /// therefore stay isolated.
    #[serde(
        default,
        rename = "StratusEgress",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub egress: bool,
}

/// `DeadLetterConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct DeadLetterConfig {
    /// ARN of the target (a function on this server; queues arrive later).
    #[serde(default)]
    pub target_arn: Option<String>,
}

/// `FunctionEventInvokeConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)] // Lambda's API shape: each field is as the Lambda API reference documents it
pub struct EventInvokeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_event_age_in_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_config: Option<DestinationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<f64>,
}

/// `DestinationConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)] // Lambda's API shape: each field is as the Lambda API reference documents it
pub struct DestinationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
}

/// One destination.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)] // Lambda's API shape: each field is as the Lambda API reference documents it
pub struct Destination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// `AliasRoutingConfiguration`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingConfig {
    /// Version → weight (0.0–1.0) of traffic it receives.
    #[serde(default)]
    pub additional_version_weights: BTreeMap<String, f64>,
}

/// `AliasConfiguration`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)] // Lambda's API shape: each field is as the Lambda API reference documents it
pub struct AliasConfiguration {
    pub alias_arn: String,
    pub name: String,
    pub function_version: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_config: Option<RoutingConfig>,
    pub revision_id: String,
}

/// Lambda's timestamp format: `2024-01-02T03:04:05.678+0000`.
pub fn lambda_time_now() -> String {
    let d = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    )
}

/// The alias that serves provisioned environments (as the Serverless Framework names it).
pub const PROVISIONED_ALIAS: &str = "provisioned";

/// A random id in UUID v4 text form (request ids, revision ids).
pub fn new_uuid() -> String {
    stratus_rules::uuid_v4()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = new_uuid();
        let parts: Vec<_> = u.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&u[14..15], "4");
        assert_ne!(new_uuid(), u);
    }

    #[test]
    fn time_shape() {
        let t = lambda_time_now();
        assert_eq!(t.len(), "2024-01-02T03:04:05.678+0000".len());
        assert!(t.ends_with("+0000"));
    }
}
