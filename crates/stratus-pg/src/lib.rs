//! PostgreSQL plumbing shared by everything Stratus keeps in PostgreSQL: the
//! cluster's state (`stratus-server`'s `cluster::pg`) and the SQS queues
//! (`stratus-queue`'s `postgres`). Each of those owns its schema, its migration
//! history table and its error type; what they share lives here:
//!
//! - [`pool`]: a `deadpool-postgres` pool over `tokio-postgres` with the timeouts
//!   every Stratus pool uses (5 s to connect, 10 s to wait for or create a
//!   connection), not yet connected.
//! - [`migrate`]: runs a crate's embedded `refinery` migrations under a session
//!   advisory lock, so nodes that start together migrate one at a time; a
//!   connection that cannot release the lock is not handed back to the pool.
//! - [`redact`] and [`chain`]: the words of errors (a URL without its password; an
//!   error with its causes, where tokio-postgres keeps the server's message).
//!
//! Errors are returned as text (`String`) for the caller to put in its own error
//! type with the redacted URL.

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::NoTls;

/// `url` with its password replaced by `***`, for messages and logs: works for
/// URLs (`postgres://user:pw@host/db`) and key-value strings (`password=pw`).
pub fn redact(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                );
            }
        }
        return url.to_string();
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error and its causes, `: `-separated (tokio-postgres keeps the cause, such
/// as "Connection refused" or the server's message, out of its own text).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = cause.source();
    }
    text
}

/// Why a pool gave no connection, in words.
pub fn pool_reason(e: PoolError) -> String {
    match e {
        PoolError::Backend(e) => chain(&e),
        other => chain(&other),
    }
}

/// The connection settings of `url`, with a 5 s connect timeout and
/// `application_name` unless the URL sets them.
pub fn config(url: &str, application_name: &str) -> Result<tokio_postgres::Config, String> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| chain(&e))?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(5));
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name(application_name);
    }
    Ok(cfg)
}

/// A pool of at most `max_size` connections with these settings. Nothing connects
/// until a connection is asked for; must be used inside a Tokio runtime.
pub fn pool(cfg: tokio_postgres::Config, max_size: usize) -> Result<Pool, String> {
    let manager = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| e.to_string())
}

/// Runs `runner`'s migrations not yet recorded in `table`, holding the session
/// advisory lock `lock` meanwhile. Returns what was applied.
pub async fn migrate(
    pool: &Pool,
    mut runner: refinery::Runner,
    table: &str,
    lock: i64,
) -> Result<refinery::Report, String> {
    let mut client = pool.get().await.map_err(pool_reason)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&lock])
        .await
        .map_err(|e| chain(&e))?;
    let ran = runner
        .set_migration_table_name(table)
        .run_async(&mut **client)
        .await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&lock])
        .await;
    if unlocked.is_err() {
        // The lock is the session's: a connection that cannot unlock must not go
        // back to the pool holding it.
        let _ = Object::take(client);
    }
    ran.map_err(|e| chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_messages() {
        assert_eq!(
            redact("postgres://stratus:s3cret@db.local:5432/state?sslmode=disable"),
            "postgres://stratus:***@db.local:5432/state?sslmode=disable"
        );
        assert_eq!(redact("postgresql://a:b:c@h/d"), "postgresql://a:***@h/d");
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(
            redact("host=h user=u password=s3cret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
    }

    #[test]
    fn a_bad_url_says_why_and_sets_defaults_otherwise() {
        assert!(config("postgres://h:notaport/d", "x").is_err());
        let cfg = config("postgres://u@h/d", "stratus-test").unwrap();
        assert_eq!(cfg.get_application_name(), Some("stratus-test"));
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(5)));
        let cfg = config(
            "postgres://u@h/d?application_name=mine&connect_timeout=2",
            "x",
        )
        .unwrap();
        assert_eq!(cfg.get_application_name(), Some("mine"));
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(2)));
    }
}
