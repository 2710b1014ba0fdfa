//! CreateFunction's and UpdateFunctionConfiguration's checks of a function's
//! settings, with Lambda's error types and texts. The rules (runtimes, limits,
//! reserved names) are `stratus-rules`', shared with the manifest.

use stratus_rules::{EPHEMERAL_STORAGE_MB, MAX_ENV_BYTES, MEMORY_MB, TIMEOUT_S};

use crate::error::ApiError;
use crate::model::Environment;

/// Validates function settings the way CreateFunction does.
pub fn check_settings(
    runtime: &str,
    handler: &str,
    memory: i64,
    timeout: i64,
    env: Option<&Environment>,
    storage: i64,
) -> Result<(), ApiError> {
    // Deprecated IDs are refused or mapped by the server's `--legacy-runtimes`
    // (`crate::interpreters`), after these checks.
    if !stratus_rules::is_supported_runtime(runtime)
        && stratus_rules::legacy_runtime(runtime).is_none()
        && stratus_rules::runtime_alias(runtime).is_none()
    {
        return Err(ApiError::invalid(format!(
            "The runtime parameter of {runtime} is not supported. Supported runtimes: {}",
            stratus_rules::RUNTIMES.join(", ")
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
    check_range(memory, &MEMORY_MB, "memorySize")?;
    check_range(timeout, &TIMEOUT_S, "timeout")?;
    // Lambda names the bound that was crossed, as for memory and timeout.
    check_range(storage, &EPHEMERAL_STORAGE_MB, "ephemeralStorage.size")?;
    if let Some(env) = env {
        let vars = &env.variables;
        if stratus_rules::env_bytes(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            > MAX_ENV_BYTES
        {
            return Err(ApiError::invalid(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {}",
                serde_json::to_string(vars).unwrap_or_default()
            )));
        }
        for key in vars.keys() {
            if !stratus_rules::is_env_name(key) {
                return Err(ApiError::invalid(format!("Environment variable name '{key}' is invalid: names start with a letter and contain only letters, digits and '_'")));
            }
            if stratus_rules::is_reserved_env_var(key) {
                return Err(ApiError::invalid(format!("Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {key}")));
            }
        }
    }
    Ok(())
}

/// `value` within `range`, else Lambda's ValidationException for `field`.
fn check_range(
    value: i64,
    range: &std::ops::RangeInclusive<i64>,
    field: &str,
) -> Result<(), ApiError> {
    let (text, bound) = if value < *range.start() {
        ("greater", range.start())
    } else if value > *range.end() {
        ("less", range.end())
    } else {
        return Ok(());
    };
    Err(ApiError::validation(
        &value.to_string(),
        field,
        &format!("Member must have value {text} than or equal to {bound}"),
    ))
}

/// `KMSKeyArn` as Lambda constrains it (an ARN, or empty to clear); `None` when
/// unset. Stratus only shows it: environments are sealed with the server's keys.
pub(crate) fn check_kms_key_arn(arn: Option<&str>) -> Result<Option<String>, ApiError> {
    match arn {
        None | Some("") => Ok(None),
        Some(a) => {
            let mut parts = a.splitn(4, ':');
            let ok = parts.next() == Some("arn")
                && parts.next().is_some_and(|p| p.starts_with("aws"))
                && parts.next().is_some_and(|s| !s.is_empty())
                && parts.next().is_some();
            if ok {
                Ok(Some(a.to_string()))
            } else {
                Err(ApiError::validation(
                    a,
                    "kMSKeyArn",
                    "Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:[a-z0-9-.]+:.*)|()",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation_messages() {
        let v = |rt: &str, h: &str, m: i64, t: i64| check_settings(rt, h, m, t, None, 512);
        assert!(v("nodejs20.x", "index.handler", 128, 3).is_ok());
        assert!(v("provided.al2023", "", 128, 3).is_ok());
        assert!(v("dotnet8", "x", 128, 3)
            .unwrap_err()
            .message
            .contains("dotnet8 is not supported"));
        // Deprecated IDs pass here: the server's `--legacy-runtimes` decides.
        assert!(v("java8", "x", 128, 3).is_ok());
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
        let e = check_settings("python3.12", "a.b", 128, 3, Some(&big), 512).unwrap_err();
        assert!(e.message.contains("exceeded the 4KB limit"));
        let mut reserved = Environment::default();
        reserved.variables.insert("AWS_REGION".into(), "x".into());
        assert!(
            check_settings("python3.12", "a.b", 128, 3, Some(&reserved), 512)
                .unwrap_err()
                .message
                .contains("reserved keys")
        );
    }

    #[test]
    fn kms_key_arns_are_arns_or_empty() {
        assert_eq!(check_kms_key_arn(None).unwrap(), None);
        assert_eq!(check_kms_key_arn(Some("")).unwrap(), None);
        let arn = "arn:aws:kms:us-east-1:000000000000:key/k";
        assert_eq!(check_kms_key_arn(Some(arn)).unwrap().as_deref(), Some(arn));
        let err = check_kms_key_arn(Some("key/k")).unwrap_err();
        assert!(err.message.contains("kMSKeyArn"), "{}", err.message);
    }
}
