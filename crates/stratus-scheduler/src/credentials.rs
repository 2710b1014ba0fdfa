//! Per-environment credentials: the hook through which the server gives each
//! execution environment its own temporary credentials (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), scoped to the function's execution
//! role, valid while the environment lives and revoked when it ends.
//!
//! The scheduler knows nothing of keys or policies: the server implements
//! [`CredentialIssuer`] and sets it with [`crate::Scheduler::set_credential_issuer`].
//! Without an issuer, environments get the variables the server put in the
//! [`FunctionSpec`]'s environment.

use std::fmt;
use std::sync::Arc;

use crate::{FunctionSpec, Inner};

/// Issues credentials to environments. Called once per environment, before its
/// process starts; an error fails that start (nothing runs without its
/// credentials). It runs on the cold-start path of an async worker: it must not
/// block (keep session keys in memory, persist them elsewhere if at all).
pub trait CredentialIssuer: Send + Sync + fmt::Debug {
    /// Credentials for environment `env_id` of `spec` (whose `role_policy` says what
    /// they may do).
    fn issue(&self, spec: &FunctionSpec, env_id: u64) -> Result<EnvCredentials, String>;
}

/// One environment's credentials, and what revokes them.
#[derive(Debug)]
pub struct EnvCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: String,
    /// Revokes the credentials when dropped; the environment holds it for its life.
    pub guard: Revocation,
}

impl EnvCredentials {
    /// The environment variables, in the order the SDKs document them.
    pub fn vars(&self) -> [(&'static str, &str); 3] {
        [
            ("AWS_ACCESS_KEY_ID", &self.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &self.secret_access_key),
            ("AWS_SESSION_TOKEN", &self.session_token),
        ]
    }
}

/// Runs its action once, when dropped (or on [`Revocation::revoke`]).
pub struct Revocation(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Revocation {
    /// A revocation that runs `f`.
    pub fn new(f: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(f)))
    }

    /// Revokes now.
    pub fn revoke(mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl Drop for Revocation {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Revocation(pending)"
        } else {
            "Revocation(done)"
        })
    }
}

/// An environment's variables, in order.
pub(crate) type EnvVars = Vec<(String, String)>;

/// The environment variables of environment `env_id` of `spec`: the spec's own, with
/// the issuer's credentials in place of any credential variables there, and the
/// revocation the environment keeps.
pub(crate) fn environment(
    inner: &Arc<Inner>,
    spec: &FunctionSpec,
    env_id: u64,
) -> Result<(EnvVars, Option<Revocation>), String> {
    let mut env = spec.env.clone();
    let issuer = inner.credentials.read().clone();
    let Some(issuer) = issuer else {
        return Ok((env, None));
    };
    let creds = issuer
        .issue(spec, env_id)
        .map_err(|e| format!("cannot issue credentials: {e}"))?;
    let vars = creds.vars();
    env.retain(|(k, _)| !vars.iter().any(|(v, _)| v == k));
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Ok((env, Some(creds.guard)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn a_revocation_runs_once() {
        let n = Arc::new(AtomicU32::new(0));
        let c = n.clone();
        let r = Revocation::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        r.revoke();
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let c = n.clone();
        drop(Revocation::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }
}
