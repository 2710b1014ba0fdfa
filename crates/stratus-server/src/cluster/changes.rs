//! The change feed. Every write to the cluster's store commits together with
//! `pg_notify('stratus_changes', '{"node":…,"kind":…,"name":…}')`; each node keeps a
//! connection of its own that `LISTEN`s on that channel and installs what other
//! nodes wrote ([`Applier`]): a function is re-read and installed in the registry
//! as a local write would be; a service or mapping change reloads the event sources;
//! a key change reloads the keys.
//!
//! Notifications are not stored: one sent while the connection was down is lost.
//! So every time the connection is (re)established, after its `LISTEN` took effect,
//! the node re-reads everything; a lost notification costs a reload, never a stale
//! registry.

use std::collections::BTreeSet;
use std::future::poll_fn;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use super::pg::{redact, Change, ChangeKind, CHANGES_CHANNEL};
use crate::auth::Auth;
use crate::registry::Registry;
use crate::triggers::Triggers;

/// What the feed installs changes into: this node's live state.
#[derive(Debug, Clone)]
pub(crate) struct Applier {
    /// Functions.
    pub(crate) registry: Arc<Registry>,
    /// Schedules, HTTP routes and queue pollers.
    pub(crate) triggers: Triggers,
    /// Access keys.
    pub(crate) auth: Arc<Auth>,
    /// Autoscaling targets, policies and scheduled actions.
    pub(crate) autoscaler: crate::autoscale::Autoscaler,
}

impl Applier {
    /// Installs a batch of changes (blocking: it reads the store). Each function is
    /// re-read once however many notifications name it.
    fn apply(&self, me: &str, batch: &[Change]) {
        let mut functions = BTreeSet::new();
        let (mut triggers, mut keys, mut autoscale) = (false, false, false);
        for c in batch.iter().filter(|c| c.node != me) {
            match c.kind {
                ChangeKind::Function => {
                    functions.insert(c.name.as_str());
                }
                ChangeKind::Service | ChangeKind::Mappings => triggers = true,
                ChangeKind::Keys => keys = true,
                ChangeKind::Autoscale => autoscale = true,
            }
        }
        for name in &functions {
            if let Err(e) = self.registry.refresh_function(name) {
                tracing::warn!(function = %name, error = %e, "cannot install a function another node changed; it is re-read when the change feed reconnects");
            }
        }
        // A deleted function's event sources go with it; a deployed one's come.
        if triggers || !functions.is_empty() {
            let _ = self.triggers.reload(&self.registry);
        }
        if keys {
            if let Err(e) = self.auth.reload_keys() {
                tracing::warn!(error = %e, "cannot reload the access keys another node changed");
            }
        }
        if autoscale {
            if let Err(e) = self.autoscaler.reload() {
                tracing::warn!(error = %e, "cannot re-read the autoscaling targets another node changed; they are re-read when the change feed reconnects");
            }
        }
    }

    /// Re-reads everything (blocking).
    fn reload_all(&self) {
        if let Err(e) = self.registry.refresh_all() {
            tracing::warn!(error = %e, "cannot re-read the functions from the cluster database");
        }
        let _ = self.triggers.reload(&self.registry);
        if let Err(e) = self.auth.reload_keys() {
            tracing::warn!(error = %e, "cannot re-read the access keys from the cluster database");
        }
        if let Err(e) = self.autoscaler.reload() {
            tracing::warn!(error = %e, "cannot re-read the autoscaling targets from the cluster database");
        }
    }
}

/// Listens for changes until `stop` turns true, reconnecting (and re-reading
/// everything) whenever the connection is lost.
pub(crate) fn spawn_listener(
    url: String,
    me: String,
    applier: Applier,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let session = session(&url, &me, &applier, &mut stop);
            match session.await {
                Ok(()) => return,
                Err(Lost::BeforeListening(e)) => {
                    tracing::warn!(url = %redact(&url), error = %e, retry_in = ?backoff, "cannot listen for cluster changes");
                }
                Err(Lost::AfterListening(e)) => {
                    backoff = Duration::from_millis(200);
                    tracing::warn!(url = %redact(&url), error = %e, "lost the cluster change feed; reconnecting, then re-reading everything");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
}

/// Why a session ended.
#[derive(Debug)]
enum Lost {
    BeforeListening(String),
    AfterListening(String),
}

/// One connection: LISTEN, re-read everything, then install changes as they come.
async fn session(
    url: &str,
    me: &str,
    applier: &Applier,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Lost> {
    let mut cfg =
        tokio_postgres::Config::from_str(url).map_err(|e| Lost::BeforeListening(e.to_string()))?;
    // A silent partition is noticed within about half a minute, not two hours.
    cfg.keepalives_idle(Duration::from_secs(10));
    cfg.connect_timeout(Duration::from_secs(5));
    // `client` lives as long as the session: dropping it would close the connection.
    let (client, mut conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| Lost::BeforeListening(e.to_string()))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        return "the listener stopped".to_string();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "the connection closed".to_string(),
            }
        }
    });
    if let Err(e) = client
        .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
        .await
    {
        driver.abort();
        return Err(Lost::BeforeListening(e.to_string()));
    }
    tracing::debug!("listening for cluster changes");
    // Whatever was written before the LISTEN took effect is read now.
    let a = applier.clone();
    let _ = tokio::task::spawn_blocking(move || a.reload_all()).await;
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = stop.wait_for(|s| *s) => {
                driver.abort();
                return Ok(());
            }
        };
        let Some(first) = first else {
            let why = driver.await.unwrap_or_else(|e| e.to_string());
            return Err(Lost::AfterListening(why));
        };
        // Everything queued meanwhile is installed in the same batch.
        let mut payloads = vec![first];
        while let Ok(p) = rx.try_recv() {
            payloads.push(p);
        }
        let mut batch: Vec<Change> = payloads
            .iter()
            .filter_map(|p| match serde_json::from_str::<Change>(p) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(payload = %p, error = %e, "ignoring a malformed cluster change notification");
                    None
                }
            })
            .collect();
        batch.dedup();
        let (a, me) = (applier.clone(), me.to_string());
        let _ = tokio::task::spawn_blocking(move || a.apply(&me, &batch)).await;
    }
}
