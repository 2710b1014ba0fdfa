//! `stratus-rules` holds Lambda's rules that more than one part of Stratus checks, so
//! each lives once: the manifest (`serverless.yml` validation) and the server (the
//! management API) both call these, and a rule changed here changes for both.
//!
//! - [`RUNTIMES`]: the runtime identifiers Stratus runs.
//! - [`RESERVED_ENV_VARS`], [`MAX_ENV_BYTES`], [`env_bytes`], [`is_env_name`]: what a
//!   function's environment may hold.
//! - [`MEMORY_MB`], [`TIMEOUT_S`], [`EPHEMERAL_STORAGE_MB`]: numeric limits.
//! - [`is_function_name`], [`is_qualifier`], [`is_alias_name`], [`is_region`]: names.
//! - [`uuid_v4`]: request ids, revision ids and mapping UUIDs.
//!
//! Error *texts* stay with their callers: the API answers in Lambda's words, the
//! manifest with file, line and column.

use std::ops::RangeInclusive;

/// Runtime identifiers Stratus runs (CreateFunction's `Runtime`, serverless.yml's
/// `runtime`).
pub const RUNTIMES: &[&str] = &[
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "java17",
    "java21",
    "java25",
    "provided",
    "provided.al2",
    "provided.al2023",
];

/// Runtime IDs AWS Lambda no longer accepts for creating or updating functions,
/// each with the supported ID of the same language that runs it under
/// `stratus server --legacy-runtimes nearest` (`None`: Stratus has no runtime of
/// that language).
pub const LEGACY_RUNTIMES: &[(&str, Option<&str>)] = &[
    ("nodejs12.x", Some("nodejs18.x")),
    ("nodejs14.x", Some("nodejs18.x")),
    ("nodejs16.x", Some("nodejs18.x")),
    ("python3.7", Some("python3.9")),
    ("python3.8", Some("python3.9")),
    ("ruby2.7", Some("ruby3.2")),
    ("java8", Some("java17")),
    ("java11", Some("java17")),
    ("dotnet6", None),
];

/// `Some(nearest supported ID)` when `runtime` is one of [`LEGACY_RUNTIMES`].
pub fn legacy_runtime(runtime: &str) -> Option<Option<&'static str>> {
    LEGACY_RUNTIMES
        .iter()
        .find(|(id, _)| *id == runtime)
        .map(|(_, to)| *to)
}

/// Lambda's CreateFunction/UpdateFunctionConfiguration message for a deprecated
/// runtime (an `InvalidParameterValueException`).
pub fn deprecated_runtime_message(runtime: &str) -> String {
    format!(
        "The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions."
    )
}

/// Runtime IDs AWS Lambda retired that Stratus still accepts because another ID
/// runs the same code unchanged: `go1.x` functions are Go binaries, which
/// `provided.al2` runs once built as `bootstrap` (what AWS's migration guide says to
/// do, and what `stratus deploy` builds). Accepted whatever `--legacy-runtimes`
/// says, with a warning at deploy and in `info`.
pub const RUNTIME_ALIASES: &[(&str, &str)] = &[("go1.x", "provided.al2")];

/// The ID that runs `runtime` when it is one of [`RUNTIME_ALIASES`].
pub fn runtime_alias(runtime: &str) -> Option<&'static str> {
    RUNTIME_ALIASES
        .iter()
        .find(|(id, _)| *id == runtime)
        .map(|(_, to)| *to)
}

/// Whether Stratus runs `runtime`.
pub fn is_supported_runtime(runtime: &str) -> bool {
    RUNTIMES.contains(&runtime)
}

/// Environment variable names Lambda sets itself and refuses from the user
/// (Lambda's "defined runtime environment variables" that are reserved).
pub const RESERVED_ENV_VARS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_REGION",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
    "TZ",
];

/// Whether `name` is reserved by Lambda.
pub fn is_reserved_env_var(name: &str) -> bool {
    RESERVED_ENV_VARS.contains(&name)
}

/// The total size of a function's environment variables may not exceed 4 KB.
pub const MAX_ENV_BYTES: usize = 4096;

/// The size Lambda counts against [`MAX_ENV_BYTES`]: names plus values, in bytes.
pub fn env_bytes<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    vars.into_iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Whether `name` is a valid environment variable name: a letter, then letters,
/// digits and `_`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `MemorySize`, in MB.
pub const MEMORY_MB: RangeInclusive<i64> = 128..=10_240;
/// `Timeout`, in seconds.
pub const TIMEOUT_S: RangeInclusive<i64> = 1..=900;
/// `EphemeralStorage.Size`, in MB.
pub const EPHEMERAL_STORAGE_MB: RangeInclusive<i64> = 512..=10_240;

/// A function name: 1–64 of `[a-zA-Z0-9-_]`.
pub fn is_function_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(is_name_byte)
}

/// A qualifier: `$LATEST`, a version number or an alias name (1–128 of
/// `[a-zA-Z0-9-_]`).
pub fn is_qualifier(q: &str) -> bool {
    q == "$LATEST" || (!q.is_empty() && q.len() <= 128 && q.bytes().all(is_name_byte))
}

/// An alias name: a qualifier that is neither `$LATEST` nor all digits (Lambda's
/// `(?!^[0-9]+$)([a-zA-Z0-9-_]+)`).
pub fn is_alias_name(name: &str) -> bool {
    is_qualifier(name) && name != "$LATEST" && !name.bytes().all(|b| b.is_ascii_digit())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// An AWS region name as Lambda's ARN pattern has it: `[a-z]{2}(-gov)?-[a-z]+-\d`,
/// e.g. `us-east-1`, `eu-west-3`, `us-gov-west-1`.
pub fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
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

/// A random (version 4) UUID in its hyphenated lowercase form, as Lambda's request
/// ids, revision ids and event source mapping UUIDs are.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key Lambda's "defined runtime environment variables" table marks
    /// reserved — the credentials, the trace id, the runtime's own settings — and
    /// none it lets functions set (`AWS_LAMBDA_EXEC_WRAPPER`, `LANG`, `PATH`, ...).
    #[test]
    fn reserved_variables_are_lambdas() {
        let documented = [
            "_HANDLER",
            "_X_AMZN_TRACE_ID",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            "AWS_EXECUTION_ENV",
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_INITIALIZATION_TYPE",
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "AWS_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_LAMBDA_RUNTIME_API",
            "LAMBDA_TASK_ROOT",
            "LAMBDA_RUNTIME_DIR",
            "TZ",
        ];
        for key in documented {
            assert!(is_reserved_env_var(key), "{key}");
        }
        assert_eq!(RESERVED_ENV_VARS.len(), documented.len());
        for free in [
            "AWS_LAMBDA_EXEC_WRAPPER",
            "NODE_OPTIONS",
            "LANG",
            "PATH",
            "PYTHONPATH",
        ] {
            assert!(!is_reserved_env_var(free), "{free}");
        }
    }

    #[test]
    fn names_and_qualifiers() {
        assert!(is_function_name("hello-world_2"));
        assert!(is_function_name(&"a".repeat(64)));
        for bad in ["", "has space", "a:b", "é", &"a".repeat(65)] {
            assert!(!is_function_name(bad), "{bad}");
        }
        assert!(is_qualifier("$LATEST") && is_qualifier("7") && is_qualifier("live"));
        assert!(!is_qualifier("") && !is_qualifier("$latest") && !is_qualifier("a.b"));
        assert!(is_alias_name("live") && is_alias_name("v2"));
        assert!(!is_alias_name("2") && !is_alias_name("$LATEST") && !is_alias_name("a b"));
    }

    #[test]
    fn regions() {
        for ok in ["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "useast1",
            "us-east",
            "US-EAST-1",
            "us-east-12",
            "usa-east-1",
            "us-east-1-x",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn environment_rules() {
        assert!(is_env_name("A") && is_env_name("my_var2"));
        assert!(
            !is_env_name("") && !is_env_name("2A") && !is_env_name("A-B") && !is_env_name("_X")
        );
        assert!(is_reserved_env_var("AWS_REGION") && is_reserved_env_var("_X_AMZN_TRACE_ID"));
        assert!(!is_reserved_env_var("AWS_ENDPOINT_URL"));
        assert_eq!(env_bytes([("AB", "cde"), ("F", "")]), 6);
    }

    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert!(a
            .bytes()
            .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn runtimes() {
        assert!(is_supported_runtime("nodejs20.x") && is_supported_runtime("provided.al2023"));
        assert!(is_supported_runtime("java21") && !is_supported_runtime("java8"));
        assert!(!is_supported_runtime("go1.x"));
        assert_eq!(runtime_alias("go1.x"), Some("provided.al2"));
        assert_eq!(runtime_alias("provided.al2"), None);
    }
}
