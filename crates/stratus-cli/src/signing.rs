//! Signing the CLI's requests with AWS Signature Version 4, with credentials found
//! the way the AWS SDKs find them:
//!
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. the profile `AWS_PROFILE` (else `default`) of the shared credentials file,
//!    `AWS_SHARED_CREDENTIALS_FILE` (else `~/.aws/credentials`);
//! 3. then, for a server run from here with no set-up, the credentials file the
//!    server wrote in its data dir: `$STRATUS_DATA_DIR/credentials`,
//!    `./.stratus/credentials` (`stratus server`'s default data dir) or
//!    `./.stratus/data/credentials` (`stratus dev`'s).
//!
//! The region signed for is `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's
//! `region` (the server writes its own there), else `us-east-1`. The credentials
//! file is INI; its few rules are parsed here ([`parse_ini`]) rather than with a
//! crate, since only `[section]` and `key = value` lines matter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderValue, Uri};
pub use stratus_auth::Credentials;

/// The server refused the request as unauthenticated; the text says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAuthenticated(pub String);

/// Credentials and where they came from, or where they were looked for.
#[derive(Debug, Clone)]
pub struct Signer {
    creds: Option<Credentials>,
    region: String,
    /// Where the credentials came from, or (when none) every place looked at.
    source: String,
}

impl Signer {
    /// Signs with `creds` for `region`.
    pub fn with(creds: Credentials, region: &str, source: &str) -> Self {
        Self {
            creds: Some(creds),
            region: region.to_string(),
            source: source.to_string(),
        }
    }

    /// Sends requests unsigned (a server run with `--no-auth`).
    pub fn unsigned() -> Self {
        Self {
            creds: None,
            region: "us-east-1".into(),
            source: "no credentials".into(),
        }
    }

    /// Credentials from the environment, as the AWS SDKs find them (see the module
    /// doc); unsigned when there are none.
    pub fn from_environment() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let env_region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            let creds = Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: env("AWS_SESSION_TOKEN"),
            };
            let region = env_region.unwrap_or_else(|| "us-east-1".into());
            return Self::with(creds, &region, "the environment (AWS_ACCESS_KEY_ID)");
        }
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let shared = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws").join("credentials")));
        let mut looked = vec!["AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_string()];
        let mut candidates: Vec<(PathBuf, String)> = Vec::new();
        if let Some(p) = shared {
            candidates.push((p, profile.clone()));
        }
        if let Some(d) = env("STRATUS_DATA_DIR") {
            candidates.push((Path::new(&d).join("credentials"), "default".into()));
        }
        candidates.push((PathBuf::from(".stratus/credentials"), "default".into()));
        candidates.push((PathBuf::from(".stratus/data/credentials"), "default".into()));
        for (path, profile) in candidates {
            looked.push(format!("{} [{profile}]", path.display()));
            match load_profile(&path, &profile) {
                Ok(Some((creds, region))) => {
                    let region = env_region
                        .clone()
                        .or(region)
                        .unwrap_or_else(|| "us-east-1".into());
                    let source = format!("{} [{profile}]", path.display());
                    return Self::with(creds, &region, &source);
                }
                Ok(None) => {}
                Err(e) => {
                    // A file that exists but cannot be used is worth a word; the next
                    // place may still have credentials.
                    eprintln!("warning: {e}");
                }
            }
        }
        Self {
            creds: None,
            region: env_region.unwrap_or_else(|| "us-east-1".into()),
            source: looked.join(", "),
        }
    }

    /// For a server embedded in this process (`dev`, `demo`, `invoke local`):
    /// temporary admin credentials issued by the server itself, so no set-up is
    /// needed; unsigned when the server runs with `--no-auth`.
    pub fn for_embedded(server: &stratus_server::RunningServer) -> Self {
        let auth = server.auth();
        if !auth.enabled() {
            return Self::unsigned();
        }
        let s = auth.issue_session(
            "stratus-cli",
            vec![stratus_server::auth::ADMIN_POLICY.to_string()],
            None,
        );
        Self::with(
            s.credentials.clone(),
            auth.region(),
            "the server embedded in this command",
        )
    }

    /// Whether requests will be signed.
    pub fn has_credentials(&self) -> bool {
        self.creds.is_some()
    }

    /// The access key id requests are signed with.
    pub fn access_key_id(&self) -> Option<&str> {
        self.creds.as_ref().map(|c| c.access_key_id.as_str())
    }

    /// Signs a request about to be sent to `uri` (sets `Host` unless set, the `X-Amz-*`
    /// headers and `Authorization`). SQS requests (`X-Amz-Target: AmazonSQS.*`) are
    /// signed for `sqs`, Application Auto Scaling ones (`AnyScaleFrontendService.*`)
    /// for `application-autoscaling`, CloudWatch Logs (`Logs_20140328.*`) for `logs`,
    /// CloudWatch (`GraniteServiceVersion20100801.*`) for `monitoring`, everything
    /// else for `lambda`.
    pub fn sign(&self, method: &str, uri: &Uri, headers: &mut HeaderMap, body: &[u8]) {
        let Some(creds) = &self.creds else { return };
        // A Host the caller set is the one sent, so it is the one signed.
        if !headers.contains_key(http::header::HOST) {
            if let Some(host) = uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                headers.insert(http::header::HOST, host);
            }
        }
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let service = if target.starts_with("AmazonSQS.") {
            "sqs"
        } else if target.starts_with("AnyScaleFrontendService.") {
            "application-autoscaling"
        } else if target.starts_with("Logs_20140328.") {
            "logs"
        } else if target.starts_with("GraniteServiceVersion20100801.") {
            "monitoring"
        } else {
            "lambda"
        };
        stratus_auth::sign::sign_request(
            creds,
            &self.region,
            service,
            method,
            uri.path(),
            uri.query(),
            headers,
            body,
            time::OffsetDateTime::now_utc(),
        );
    }

    /// A clearer error for a reply that says the request was not authenticated:
    /// no credentials found, or a key the server does not know.
    pub fn explain(&self, endpoint: &str, status: u16, error_type: Option<&str>) -> Option<String> {
        if status != 403 && status != 400 {
            return None;
        }
        match (error_type?, &self.creds) {
            ("MissingAuthenticationTokenException", None) => Some(format!(
                "the Stratus server at {endpoint} requires signed requests, and no AWS credentials were found (looked at: {}). Use the credentials file the server wrote on its first start: export AWS_SHARED_CREDENTIALS_FILE={{data-dir}}/credentials",
                self.source
            )),
            ("UnrecognizedClientException", Some(c)) => Some(format!(
                "the Stratus server at {endpoint} does not know the access key {} (from {}): The security token included in the request is invalid.",
                c.access_key_id, self.source
            )),
            _ => None,
        }
    }
}

/// The credentials (and region) of `profile` in the INI file at `path`; `Ok(None)`
/// when the file or the profile does not exist.
pub fn load_profile(
    path: &Path,
    profile: &str,
) -> Result<Option<(Credentials, Option<String>)>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let sections = parse_ini(&text).map_err(|e| format!("{}:{e}", path.display()))?;
    let Some(s) = sections.get(profile) else {
        return Ok(None);
    };
    match (s.get("aws_access_key_id"), s.get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some((
            Credentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: s.get("aws_session_token").cloned(),
            },
            s.get("region").cloned(),
        ))),
        _ => Err(format!(
            "{}: profile [{profile}] has no aws_access_key_id and aws_secret_access_key",
            path.display()
        )),
    }
}

/// Sections of an INI text: `[name]` headers, `key = value` lines (keys
/// lower-cased, both sides trimmed), `#`/`;` comment lines. A value line outside a
/// section, or a line that is none of these, is an error naming its line.
pub fn parse_ini(text: &str) -> Result<HashMap<String, HashMap<String, String>>, String> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(format!("{}: unclosed section header '{line}'", i + 1));
            };
            let name = name.trim().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("{}: expected 'key = value' or '[section]'", i + 1));
        };
        let Some(section) = &current else {
            return Err(format!(
                "{}: '{}' is outside any [section]",
                i + 1,
                k.trim()
            ));
        };
        out.entry(section.clone())
            .or_default()
            .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_and_values() {
        let t = "# comment\n[default]\naws_access_key_id = AKIA1\nAWS_Secret_Access_Key=s=x\n\n; c\n[other]\nregion = eu-west-1\n";
        let s = parse_ini(t).unwrap();
        assert_eq!(s["default"]["aws_access_key_id"], "AKIA1");
        assert_eq!(s["default"]["aws_secret_access_key"], "s=x");
        assert_eq!(s["other"]["region"], "eu-west-1");
        assert!(parse_ini("a = b\n").unwrap_err().starts_with("1:"));
        assert!(parse_ini("[x\n").unwrap_err().contains("unclosed"));
        assert!(parse_ini("[x]\nnonsense\n").unwrap_err().starts_with("2:"));
    }

    #[test]
    fn profiles_load() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("credentials");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = AKIA1\naws_secret_access_key = s\nregion = r\n[p]\naws_access_key_id = AKIA2\n",
        )
        .unwrap();
        let (c, r) = load_profile(&f, "default").unwrap().unwrap();
        assert_eq!(c.access_key_id, "AKIA1");
        assert_eq!(r.as_deref(), Some("r"));
        assert!(load_profile(&f, "missing").unwrap().is_none());
        assert!(load_profile(&f, "p").is_err());
        assert!(load_profile(&dir.path().join("none"), "default")
            .unwrap()
            .is_none());
    }
}
