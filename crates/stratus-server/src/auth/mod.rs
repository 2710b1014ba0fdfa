//! Authentication of the API listener with AWS Signature Version 4.
//!
//! - [`Auth`]: the server's keys (loaded from the `access_keys` table and kept in
//!   memory, so verifying a request never touches the database), temporary session
//!   credentials, and the cache of derived signing keys.
//! - [`Principal`]: who a verified request acts for; the middleware puts it in the
//!   request's extensions.
//! - [`Auth::authorize`]: the authorization check (`stratus-iam`: the request's
//!   actions and resources against the principal's policies), once per request.
//! - [`SessionIssuer`]: each execution environment's temporary credentials, scoped
//!   to its function's execution-role policy and revoked when it ends.
//! - `middleware`: verification of every request and the AWS error shapes of each API.
//! - `routes`: `/stratus/v1/keys…`, the control API for keys.
//! - `ui`: the web dashboard's sign-in and session cookie.
//! - first start: an admin key and `{data-dir}/credentials` ([`Auth::open`]).
//!
//! `GET /stratus/v1/health` stays open (a load balancer's check reveals nothing but
//! "ok" and counters); the HTTP gateway is not an AWS API and is never signed.

mod cluster;
mod middleware;
mod routes;
mod ui;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::request::Parts;
use parking_lot::RwLock;
use stratus_auth::{Session, Sessions, SigningKeyCache};

use crate::store::keys::{KeyStore, SqliteKeyStore, StoredKey};
use crate::store::StoreError;

pub use middleware::layer;
pub(crate) use ui::strip_session_cookie;

/// The policy of the first admin key (and of every request under `--no-auth`).
pub const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// The name of the admin key's policy.
pub const ADMIN_POLICY_NAME: &str = "AdministratorAccess";

/// Who a verified request acts for.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The access key id that signed the request (empty under `--no-auth`).
    pub access_key_id: String,
    /// The user name (a session's owner for temporary credentials).
    pub name: String,
    /// `arn:aws:iam::{account}:user/{name}`, or the session's ARN.
    pub arn: String,
    /// The policy documents (JSON text) that apply.
    pub policies: Arc<Vec<String>>,
    /// The same documents, parsed once (when the key is loaded or changed) for
    /// [`Auth::authorize`].
    pub parsed: Arc<Vec<stratus_iam::Policy>>,
    /// Whether these are temporary session credentials.
    pub session: bool,
}

/// Parses policy documents for evaluation. Documents are checked when they are
/// attached (keys) or deployed (execution roles), so one that does not parse here is
/// skipped with a warning: it can only narrow what the principal may do (a policy
/// that is not there allows nothing).
fn parse_policies(owner: &str, docs: &[String]) -> Arc<Vec<stratus_iam::Policy>> {
    let parsed = docs
        .iter()
        .filter_map(|d| match stratus_iam::Policy::parse(d) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(%owner, error = %e, "a stored policy does not parse; it is ignored");
                None
            }
        })
        .collect();
    Arc::new(parsed)
}

/// Gives each execution environment its own session credentials (`ASIA…` + token),
/// carrying its function's execution-role policy (none: the function may call
/// nothing, as in AWS), revoked when the environment ends.
#[derive(Debug)]
pub struct SessionIssuer(pub Arc<Auth>);

impl stratus_scheduler::CredentialIssuer for SessionIssuer {
    fn issue(
        &self,
        spec: &stratus_scheduler::FunctionSpec,
        _env_id: u64,
    ) -> Result<stratus_scheduler::EnvCredentials, String> {
        let policies = spec
            .role_policy
            .as_deref()
            .map(|p| vec![p.to_string()])
            .unwrap_or_default();
        let session = self.0.issue_session(&spec.function_name, policies, None);
        let c = &session.credentials;
        let id = c.access_key_id.clone();
        let auth = self.0.clone();
        Ok(stratus_scheduler::EnvCredentials {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            session_token: c.session_token.clone().unwrap_or_default(),
            guard: stratus_scheduler::Revocation::new(move || {
                auth.revoke_session(&id);
            }),
        })
    }
}

/// The HTTP answer of a denial (with a request id, as every AWS answer has).
fn denied_response(d: stratus_iam::AccessDenied) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut resp = (
        axum::http::StatusCode::from_u16(d.status).unwrap_or(axum::http::StatusCode::FORBIDDEN),
        d.body,
    )
        .into_response();
    let h = resp.headers_mut();
    for (name, value) in d.headers {
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&stratus_rules::uuid_v4()) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// Presigns URLs on this server with the credentials of the request being answered
/// (in the request's extensions after authentication): GetFunction's
/// `Code.Location` is such a URL, valid for 10 minutes as Lambda's is, so a client
/// downloads it with a plain GET.
#[derive(Clone)]
pub struct Presigner {
    auth: Arc<Auth>,
    access_key_id: String,
    session_token: Option<String>,
}

impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presigner")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Presigner {
    /// `url` (absolute, on this server) presigned for GET, valid `expires` seconds;
    /// `None` when the key is gone or the URL is not absolute.
    pub fn presign_get(&self, url: &str, expires: u64) -> Option<String> {
        let uri: axum::http::Uri = url.parse().ok()?;
        let host = uri.authority()?.as_str().to_string();
        let (secret, _) = self
            .auth
            .lookup(&self.access_key_id, self.session_token.as_deref())?;
        let creds = stratus_auth::Credentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: secret,
            session_token: self.session_token.clone(),
        };
        let q = stratus_auth::sign::presign_query(
            &creds,
            &self.auth.region,
            "lambda",
            "GET",
            &host,
            uri.path(),
            uri.query(),
            expires,
            time::OffsetDateTime::now_utc(),
        );
        let base = url.split('?').next().unwrap_or(url);
        Some(format!("{base}?{q}"))
    }
}

/// A key as held in memory.
#[derive(Debug, Clone)]
struct LiveKey {
    stored: StoredKey,
    principal: Principal,
}

/// What the first start created.
#[derive(Debug, Clone)]
pub struct CreatedAdmin {
    /// The new key's id.
    pub access_key_id: String,
    /// Where its credentials were written.
    pub credentials_file: PathBuf,
}

/// Errors of the key operations.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The key table could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credentials file could not be written.
    #[error("cannot write the credentials file {path}: {source}")]
    CredentialsFile {
        /// The file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// The server's authentication state.
#[derive(Debug)]
pub struct Auth {
    enabled: bool,
    region: String,
    account_id: String,
    store: Arc<dyn KeyStore>,
    keys: RwLock<HashMap<String, LiveKey>>,
    sessions: Sessions,
    /// Each live session's policies, parsed once when it is issued (sessions sign
    /// every call a function makes; nothing is parsed per request).
    session_policies: RwLock<HashMap<String, Arc<Vec<stratus_iam::Policy>>>>,
    cache: SigningKeyCache,
    created_admin: Option<CreatedAdmin>,
    /// The web dashboard's sessions.
    ui: ui::UiSessions,
}

impl Auth {
    /// Opens the key table in `data_dir`'s state database. When it holds no key (the
    /// first start, or every key was deleted) an admin key is created and written to
    /// `{data_dir}/credentials` (mode 0600) in the AWS shared-credentials format.
    /// `enabled: false` is `--no-auth`: every request passes as an admin.
    pub fn open(
        data_dir: &Path,
        region: &str,
        account_id: &str,
        enabled: bool,
        sealer: stratus_seal::Sealer,
    ) -> Result<Self, AuthSetupError> {
        let store: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(data_dir, sealer)?);
        Self::with_store(store, data_dir, region, account_id, enabled)
    }

    /// [`Auth::open`] over a given key store (a cluster's: every node shares the
    /// keys). The first start's admin key is written to `{data_dir}/credentials`
    /// of the node that created it.
    pub fn with_store(
        store: Arc<dyn KeyStore>,
        data_dir: &Path,
        region: &str,
        account_id: &str,
        enabled: bool,
    ) -> Result<Self, AuthSetupError> {
        let mut auth = Self {
            enabled,
            region: region.to_string(),
            account_id: account_id.to_string(),
            store,
            keys: RwLock::new(HashMap::new()),
            sessions: Sessions::new(),
            session_policies: RwLock::new(HashMap::new()),
            cache: SigningKeyCache::new(),
            created_admin: None,
            ui: ui::UiSessions::default(),
        };
        let stored = auth.store.all_keys()?;
        if stored.is_empty() {
            let key = auth.create_key(
                "admin",
                BTreeMap::from([(ADMIN_POLICY_NAME.to_string(), ADMIN_POLICY.to_string())]),
            )?;
            let path = data_dir.join("credentials");
            write_credentials_file(&path, &key.id, &key.secret, region).map_err(|source| {
                AuthSetupError::CredentialsFile {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            auth.created_admin = Some(CreatedAdmin {
                access_key_id: key.id,
                credentials_file: path,
            });
        } else {
            let mut keys = auth.keys.write();
            for k in stored {
                let live = auth.live(k);
                keys.insert(live.stored.id.clone(), live);
            }
        }
        Ok(auth)
    }

    /// Whether requests must be signed (false under `--no-auth`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The admin key created by this start, if it created one.
    pub fn created_admin(&self) -> Option<&CreatedAdmin> {
        self.created_admin.as_ref()
    }

    /// The region credentials must be scoped to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Temporary session credentials (the server hands one to each execution
    /// environment and revokes it when the environment ends).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Issues session credentials for `owner` with `policies`.
    pub fn issue_session(
        &self,
        owner: &str,
        policies: Vec<String>,
        ttl: Option<std::time::Duration>,
    ) -> Arc<Session> {
        let parsed = parse_policies(owner, &policies);
        let session = self.sessions.issue(owner, policies, ttl);
        self.session_policies
            .write()
            .insert(session.credentials.access_key_id.clone(), parsed);
        session
    }

    /// The authorization check, once per request after authentication and before any
    /// handler: the request's IAM actions and resources (`stratus_iam::classify`) must
    /// all be allowed by the principal's policies (explicit Deny wins, default deny).
    /// A denial is the 403 `AccessDeniedException` of the API called. A request that
    /// is no known operation needs `stratus:UnknownOperation` on `*` (an admin's `*`
    /// then reaches the router's own 404; a narrower key is denied).
    pub fn authorize(
        &self,
        principal: &Principal,
        parts: &Parts,
        body: &[u8],
    ) -> Result<(), Box<axum::response::Response>> {
        let scope = stratus_iam::Scope {
            region: &self.region,
            account: &self.account_id,
        };
        let req = stratus_iam::HttpRequest {
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body,
        };
        let requests = stratus_iam::classify(&scope, &req).unwrap_or_else(|_| {
            vec![stratus_iam::Request {
                action: "stratus:UnknownOperation".into(),
                resource: "*".into(),
                protocol: if parts
                    .headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|t| t.starts_with(stratus_iam::AUTOSCALING_TARGET_PREFIX))
                {
                    stratus_iam::Protocol::AutoScaling
                } else if parts.headers.contains_key("x-amz-target") {
                    stratus_iam::Protocol::Sqs
                } else {
                    stratus_iam::Protocol::Lambda
                },
            }]
        });
        match stratus_iam::authorize(&principal.parsed, &requests) {
            Ok(()) => Ok(()),
            Err((request, decision)) => {
                tracing::debug!(principal = %principal.arn, action = %request.action, resource = %request.resource, "access denied");
                Err(Box::new(denied_response(stratus_iam::access_denied(
                    &principal.arn,
                    request,
                    decision,
                ))))
            }
        }
    }

    /// Revokes session credentials.
    pub fn revoke_session(&self, access_key_id: &str) -> bool {
        self.cache.forget(access_key_id);
        self.session_policies.write().remove(access_key_id);
        self.sessions.revoke(access_key_id)
    }

    fn user_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.account_id)
    }

    fn live(&self, stored: StoredKey) -> LiveKey {
        let principal = Principal {
            access_key_id: stored.id.clone(),
            name: stored.name.clone(),
            arn: self.user_arn(&stored.name),
            policies: Arc::new(stored.policies.values().cloned().collect()),
            parsed: parse_policies(
                &stored.id,
                &stored.policies.values().cloned().collect::<Vec<_>>(),
            ),
            session: false,
        };
        LiveKey { stored, principal }
    }

    /// The principal of every request under `--no-auth`.
    fn anonymous(&self) -> Principal {
        Principal {
            access_key_id: String::new(),
            name: "anonymous".into(),
            arn: format!("arn:aws:iam::{}:root", self.account_id),
            policies: Arc::new(vec![ADMIN_POLICY.to_string()]),
            parsed: parse_policies("anonymous", &[ADMIN_POLICY.to_string()]),
            session: false,
        }
    }

    /// The secret and principal of a key id (and, for session credentials, its
    /// token), or `None` when the server does not know them.
    fn lookup(&self, access_key_id: &str, token: Option<&str>) -> Option<(String, Principal)> {
        if let Some(k) = self.keys.read().get(access_key_id) {
            return Some((k.stored.secret.clone(), k.principal.clone()));
        }
        let s = self.sessions.get(access_key_id)?;
        if !s.token_matches(token) {
            return None;
        }
        Some((
            s.credentials.secret_access_key.clone(),
            Principal {
                access_key_id: access_key_id.to_string(),
                name: s.owner.clone(),
                arn: format!(
                    "arn:aws:sts::{}:assumed-role/{}/{}",
                    self.account_id, s.owner, s.owner
                ),
                policies: Arc::new(s.policies.clone()),
                parsed: self
                    .session_policies
                    .read()
                    .get(access_key_id)
                    .cloned()
                    .unwrap_or_else(|| parse_policies(&s.owner, &s.policies)),
                session: true,
            },
        ))
    }

    /// Creates and stores a new key for `name` (blocking: writes the database).
    pub fn create_key(
        &self,
        name: &str,
        policies: BTreeMap<String, String>,
    ) -> Result<StoredKey, StoreError> {
        let now = time::OffsetDateTime::now_utc();
        let key = StoredKey {
            id: stratus_auth::keys::new_access_key_id(),
            name: name.to_string(),
            secret: stratus_auth::keys::new_secret(),
            policies,
            created: now
                .replace_nanosecond(0)
                .unwrap_or(now)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        self.store.put_key(&key)?;
        let live = self.live(key.clone());
        self.keys.write().insert(key.id.clone(), live);
        tracing::info!(access_key_id = %key.id, user = %name, "access key created");
        Ok(key)
    }

    /// Every key (secrets included: callers must not show them).
    pub fn keys(&self) -> Vec<StoredKey> {
        let mut keys: Vec<StoredKey> = self
            .keys
            .read()
            .values()
            .map(|k| k.stored.clone())
            .collect();
        keys.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        keys
    }

    /// Deletes a key (blocking); returns whether it existed.
    pub fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self.store.delete_key(id)?;
        let had = self.keys.write().remove(id).is_some();
        self.cache.forget(id);
        if existed || had {
            tracing::info!(access_key_id = %id, "access key deleted");
        }
        Ok(existed || had)
    }

    /// Sets (`Some`) or removes (`None`) one named policy of a key (blocking).
    /// Returns `Ok(None)` when there is no such key, `Ok(Some(false))` when removing
    /// a policy the key does not have.
    pub fn set_policy(
        &self,
        id: &str,
        name: &str,
        document: Option<&str>,
    ) -> Result<Option<bool>, StoreError> {
        let Some(mut key) = self.keys.read().get(id).map(|k| k.stored.clone()) else {
            return Ok(None);
        };
        let changed = match document {
            Some(d) => {
                key.policies.insert(name.to_string(), d.to_string());
                true
            }
            None => key.policies.remove(name).is_some(),
        };
        if changed {
            self.store.put_key(&key)?;
            let live = self.live(key);
            self.keys.write().insert(id.to_string(), live);
        }
        Ok(Some(changed))
    }
}

/// Writes the AWS shared-credentials file: written beside, made owner-only, then
/// renamed into place, so no reader ever sees it half-written or world-readable.
fn write_credentials_file(
    path: &Path,
    access_key_id: &str,
    secret: &str,
    region: &str,
) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    write!(
        f,
        "# Written by the Stratus server on its first start: its admin access key.\n\
         # Use it with: export AWS_SHARED_CREDENTIALS_FILE={}\n\
         [default]\n\
         aws_access_key_id = {access_key_id}\n\
         aws_secret_access_key = {secret}\n\
         region = {region}\n",
        path.display()
    )?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_an_admin_key_and_later_starts_keep_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let sealer = stratus_seal::Sealer::ephemeral().unwrap();
        let a = Auth::open(
            dir.path(),
            "us-east-1",
            "000000000000",
            true,
            sealer.clone(),
        )
        .unwrap();
        let created = a.created_admin().unwrap().clone();
        let file = std::fs::read_to_string(&created.credentials_file).unwrap();
        assert!(file.contains(&format!("aws_access_key_id = {}", created.access_key_id)));
        assert!(file.contains("[default]") && file.contains("region = us-east-1"));
        let mode = std::fs::metadata(&created.credentials_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(a);
        let b = Auth::open(dir.path(), "us-east-1", "000000000000", true, sealer).unwrap();
        assert!(b.created_admin().is_none());
        let keys = b.keys();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].id, created.access_key_id);
        let (secret, p) = b.lookup(&created.access_key_id, None).unwrap();
        assert!(file.contains(&secret));
        assert_eq!(p.arn, "arn:aws:iam::000000000000:user/admin");
        assert_eq!(p.policies.as_slice(), [ADMIN_POLICY]);
    }

    #[test]
    fn policies_attach_and_detach_and_keys_delete() {
        let dir = tempfile::tempdir().unwrap();
        let a = Auth::open(
            dir.path(),
            "us-east-1",
            "000000000000",
            true,
            stratus_seal::Sealer::ephemeral().unwrap(),
        )
        .unwrap();
        let k = a.create_key("bob", BTreeMap::new()).unwrap();
        assert_eq!(a.set_policy(&k.id, "p", Some("{}")).unwrap(), Some(true));
        assert_eq!(a.lookup(&k.id, None).unwrap().1.policies.len(), 1);
        assert_eq!(a.set_policy(&k.id, "p", None).unwrap(), Some(true));
        assert_eq!(a.set_policy(&k.id, "p", None).unwrap(), Some(false));
        assert_eq!(a.set_policy("AKIANOPE", "p", None).unwrap(), None);
        assert!(a.delete_key(&k.id).unwrap());
        assert!(a.lookup(&k.id, None).is_none());
        assert!(!a.delete_key(&k.id).unwrap());
    }

    #[test]
    fn sessions_need_their_token() {
        let dir = tempfile::tempdir().unwrap();
        let a = Auth::open(
            dir.path(),
            "us-east-1",
            "000000000000",
            true,
            stratus_seal::Sealer::ephemeral().unwrap(),
        )
        .unwrap();
        let s = a.issue_session("fn", vec!["{}".into()], None);
        let id = &s.credentials.access_key_id;
        assert!(a.lookup(id, None).is_none());
        let (_, p) = a
            .lookup(id, s.credentials.session_token.as_deref())
            .unwrap();
        assert!(p.session);
        assert!(a.revoke_session(id));
        assert!(a
            .lookup(id, s.credentials.session_token.as_deref())
            .is_none());
    }
}
