//! Queue lifecycle: CreateQueue (idempotent only with matching attributes),
//! DeleteQueue, ListQueues, existence, PurgeQueue, Get/SetQueueAttributes and the
//! message counts ([`Depth`]) those report.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};

use crate::attributes::{self, QueueConfig};
use crate::error::QueueError;

use super::redrive::check_redrive_target;
use super::retention::expire;
use super::tags::validate_tags;
use super::{config_json, load_queue, load_queue_opt, Backend, Identity, QueueRow, Queues};

/// Message counts of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Can be received now (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and not yet deleted or visible again
    /// (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Sent with a delay that has not passed (`ApproximateNumberOfMessagesDelayed`).
    pub delayed: u64,
}

impl Queues {
    /// Creates a queue, or returns the URL of an existing one whose attributes
    /// match those given (else [`QueueError::QueueNameExists`]).
    pub async fn create_queue(
        &self,
        name: &str,
        attributes: &HashMap<String, String>,
        tags: &HashMap<String, String>,
    ) -> Result<String, QueueError> {
        let config = QueueConfig::for_create(attributes)?;
        attributes::validate_queue_name(name, config.fifo)?;
        validate_tags(tags)?;
        let tags_json = serde_json::to_string(tags).unwrap_or_else(|_| "{}".into());
        let (identity, clock, owned) =
            (self.identity.clone(), self.clock.clone(), name.to_string());
        let keys: Vec<String> = attributes.keys().cloned().collect();
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => {
                let now = clock.now_ms();
                pg.create_queue(&identity, name, &config, &keys, &tags_json, now)
                    .await?;
                return Ok(self.url(name));
            }
        };
        store
            .run(move |c| {
                if let Some(existing) = load_queue_opt(c, &owned)? {
                    return create_conflict(&owned, &existing.config, keys, &config);
                }
                if let Some(policy) = &config.redrive {
                    check_redrive_target(c, &identity, &owned, config.fifo, policy)?;
                }
                let now = clock.now_ms();
                c.execute(
                    "INSERT INTO queues (name, config, tags, created_ms, modified_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![owned, config_json(&config)?, tags_json, now],
                )?;
                Ok(())
            })
            .await?;
        Ok(self.url(name))
    }

    /// Deletes a queue and its messages.
    pub async fn delete_queue(&self, name: &str) -> Result<(), QueueError> {
        let owned = name.to_string();
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => {
                pg.delete_queue(name).await?;
                if let Some(n) = self.waiters.lock().remove(name) {
                    n.notify_waiters();
                }
                return Ok(());
            }
        };
        store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                c.execute("DELETE FROM messages WHERE queue_id = ?1", [q.id])?;
                c.execute("DELETE FROM dedup WHERE queue_id = ?1", [q.id])?;
                c.execute("DELETE FROM queues WHERE id = ?1", [q.id])?;
                Ok::<_, QueueError>(())
            })
            .await?;
        if let Some(n) = self.waiters.lock().remove(name) {
            n.notify_waiters();
        }
        Ok(())
    }

    /// Whether a queue exists.
    pub async fn exists(&self, name: &str) -> Result<bool, QueueError> {
        let owned = name.to_string();
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |c| Ok::<_, QueueError>(load_queue_opt(c, &owned)?.is_some()))
                    .await
            }
            Backend::Postgres(pg) => Ok(pg.load_queue_opt(&owned).await?.is_some()),
        }
    }

    /// Names of the queues whose names start with `prefix`, sorted.
    pub async fn list_queues(&self, prefix: Option<&str>) -> Result<Vec<String>, QueueError> {
        let prefix = prefix.unwrap_or_default().to_string();
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => return pg.list_queues(&prefix).await,
        };
        store
            .run(move |c| {
                let names: Vec<String> = c
                    .prepare_cached("SELECT name FROM queues WHERE name >= ?1 ORDER BY name")?
                    .query_map([&prefix], |r| r.get::<_, String>(0))?
                    .collect::<Result<_, _>>()?;
                Ok::<_, QueueError>(
                    names
                        .into_iter()
                        .take_while(|n| n.starts_with(&prefix))
                        .collect(),
                )
            })
            .await
    }

    /// Queue attributes by name (`All` for every one). Unknown names are
    /// [`QueueError::InvalidAttributeName`]; names the queue does not have (a
    /// redrive policy it has none of) are left out.
    pub async fn get_attributes(
        &self,
        name: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, String>, QueueError> {
        if let Some(bad) = names.iter().find(|n| !attributes::is_known(n)) {
            return Err(QueueError::InvalidAttributeName { name: bad.clone() });
        }
        let all = names.iter().any(|n| n == "All");
        let names = names.to_vec();
        let (owned, clock) = (name.to_string(), self.clock.clone());
        let (q, depth) = match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |c| {
                        let q = load_queue(c, &owned)?;
                        let depth = depth_of(c, &q, clock.now_ms())?;
                        Ok::<_, QueueError>((q, depth))
                    })
                    .await?
            }
            Backend::Postgres(pg) => pg.queue_and_depth(&owned, clock.now_ms()).await?,
        };
        Ok(attributes_of(&q, depth, &self.identity, &names, all))
    }

    /// Sets queue attributes (all or none).
    pub async fn set_attributes(
        &self,
        name: &str,
        attributes: &HashMap<String, String>,
    ) -> Result<(), QueueError> {
        let attributes = attributes.clone();
        let (owned, identity, clock) =
            (name.to_string(), self.identity.clone(), self.clock.clone());
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => {
                pg.set_attributes(&identity, name, &attributes, clock.now_ms())
                    .await?;
                self.wake(name);
                return Ok(());
            }
        };
        store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let mut config = q.config.clone();
                config.apply(&attributes, false)?;
                if let Some(policy) = &config.redrive {
                    if config.redrive != q.config.redrive {
                        check_redrive_target(c, &identity, &owned, config.fifo, policy)?;
                    }
                }
                c.execute(
                    "UPDATE queues SET config = ?2, modified_ms = ?3 WHERE id = ?1",
                    params![q.id, config_json(&config)?, clock.now_ms()],
                )?;
                Ok::<_, QueueError>(())
            })
            .await?;
        // A shorter retention or a new redrive may change what a long poll sees.
        self.wake(name);
        Ok(())
    }

    /// Deletes every message of a queue.
    pub async fn purge(&self, queue: &str) -> Result<u64, QueueError> {
        let owned = queue.to_string();
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => return pg.purge(queue).await,
        };
        store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let n = c.execute("DELETE FROM messages WHERE queue_id = ?1", [q.id])?;
                Ok::<_, QueueError>(n as u64)
            })
            .await
    }

    /// Message counts: visible, in flight, delayed.
    pub async fn depth(&self, queue: &str) -> Result<Depth, QueueError> {
        let (owned, clock) = (queue.to_string(), self.clock.clone());
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |c| {
                        let q = load_queue(c, &owned)?;
                        depth_of(c, &q, clock.now_ms())
                    })
                    .await
            }
            Backend::Postgres(pg) => Ok(pg.queue_and_depth(&owned, clock.now_ms()).await?.1),
        }
    }
}

/// `CreateQueue` of a queue that exists: fine when every attribute given (and
/// the queue type) matches, else [`QueueError::QueueNameExists`].
pub(crate) fn create_conflict(
    name: &str,
    existing: &QueueConfig,
    mut keys: Vec<String>,
    config: &QueueConfig,
) -> Result<(), QueueError> {
    keys.push("FifoQueue".into());
    match keys.into_iter().find(|k| existing.get(k) != config.get(k)) {
        Some(attribute) => Err(QueueError::QueueNameExists {
            name: name.to_string(),
            attribute,
        }),
        None => Ok(()),
    }
}

/// The attributes `GetQueueAttributes` answers for `names` (every one when `all`).
fn attributes_of(
    q: &QueueRow,
    depth: Depth,
    identity: &Identity,
    names: &[String],
    all: bool,
) -> BTreeMap<String, String> {
    let mut out = if all { q.config.all() } else { BTreeMap::new() };
    let computed = |n: &str| -> Option<String> {
        Some(match n {
            "ApproximateNumberOfMessages" => depth.visible.to_string(),
            "ApproximateNumberOfMessagesNotVisible" => depth.in_flight.to_string(),
            "ApproximateNumberOfMessagesDelayed" => depth.delayed.to_string(),
            "CreatedTimestamp" => (q.created_ms / 1000).to_string(),
            "LastModifiedTimestamp" => (q.modified_ms / 1000).to_string(),
            "QueueArn" => identity.arn(&q.name),
            other => return q.config.get(other),
        })
    };
    let wanted: Vec<&str> = if all {
        attributes::READ_ONLY.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    for n in wanted {
        if let Some(v) = computed(n) {
            out.insert(n.to_string(), v);
        }
    }
    out
}

pub(super) fn depth_of(c: &Connection, q: &QueueRow, now: i64) -> Result<Depth, QueueError> {
    expire(c, q, now)?;
    let (visible, in_flight, delayed) = c
        .prepare_cached(
            "SELECT
                COALESCE(SUM(visible_ms <= ?2), 0),
                COALESCE(SUM(visible_ms > ?2 AND receive_count > 0), 0),
                COALESCE(SUM(visible_ms > ?2 AND receive_count = 0), 0)
             FROM messages WHERE queue_id = ?1",
        )?
        .query_row(params![q.id, now], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
    Ok(Depth {
        visible: visible as u64,
        in_flight: in_flight as u64,
        delayed: delayed as u64,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::super::test_support::*;
    use super::*;
    use crate::message::MessageAttributes;

    async fn create_queue_is_idempotent_only_with_matching_attributes(f: Fixture) {
        let url =
            f.q.create_queue("q", &attrs(&[("VisibilityTimeout", "60")]), &HashMap::new())
                .await
                .unwrap();
        assert_eq!(url, f.q.url("q"));
        let again =
            f.q.create_queue("q", &attrs(&[("VisibilityTimeout", "60")]), &HashMap::new())
                .await
                .unwrap();
        assert_eq!(again, url);
        f.q.create_queue("q", &HashMap::new(), &HashMap::new())
            .await
            .unwrap();
        let e =
            f.q.create_queue("q", &attrs(&[("VisibilityTimeout", "61")]), &HashMap::new())
                .await
                .unwrap_err();
        assert!(
            matches!(&e, QueueError::QueueNameExists { attribute, .. } if attribute == "VisibilityTimeout"),
            "{e}"
        );
        assert!(matches!(
            f.q.create_queue("bad name", &HashMap::new(), &HashMap::new())
                .await,
            Err(QueueError::InvalidParameterValue { .. })
        ));
    }

    async fn attributes_list_and_delete(f: Fixture) {
        create(&f.q, "alpha", &[("DelaySeconds", "3")]).await;
        create(&f.q, "alpine", &[]).await;
        create(&f.q, "beta", &[]).await;
        assert_eq!(
            f.q.list_queues(Some("alp")).await.unwrap(),
            ["alpha", "alpine"]
        );
        assert_eq!(f.q.list_queues(None).await.unwrap().len(), 3);
        let all =
            f.q.get_attributes("alpha", &["All".to_string()])
                .await
                .unwrap();
        assert_eq!(all["DelaySeconds"], "3");
        assert_eq!(all["QueueArn"], f.q.arn("alpha"));
        assert_eq!(all["CreatedTimestamp"], (T0 / 1000).to_string());
        assert_eq!(all["ApproximateNumberOfMessages"], "0");
        assert!(!all.contains_key("RedrivePolicy"));
        f.clock.advance(Duration::from_secs(10));
        f.q.set_attributes("alpha", &attrs(&[("DelaySeconds", "0")]))
            .await
            .unwrap();
        let some =
            f.q.get_attributes(
                "alpha",
                &[
                    "DelaySeconds".to_string(),
                    "LastModifiedTimestamp".to_string(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(some.len(), 2);
        assert_eq!(some["DelaySeconds"], "0");
        assert_eq!(some["LastModifiedTimestamp"], (T0 / 1000 + 10).to_string());
        assert!(matches!(
            f.q.get_attributes("alpha", &["Bogus".to_string()]).await,
            Err(QueueError::InvalidAttributeName { .. })
        ));
        f.q.delete_queue("alpha").await.unwrap();
        assert!(!f.q.exists("alpha").await.unwrap());
        assert!(matches!(
            f.q.send("alpha", "m", MessageAttributes::new(), None).await,
            Err(QueueError::QueueDoesNotExist { .. })
        ));
    }

    async fn purge_deletes_everything(f: Fixture) {
        create(&f.q, "q", &[]).await;
        for i in 0..5 {
            f.q.send("q", format!("m{i}"), MessageAttributes::new(), Some(i * 10))
                .await
                .unwrap();
        }
        f.q.receive("q", 1, None, NOW).await.unwrap();
        assert_eq!(f.q.purge("q").await.unwrap(), 5);
        assert_eq!(f.q.depth("q").await.unwrap(), Depth::default());
    }

    on_both_backends!(
        manual create_queue_is_idempotent_only_with_matching_attributes,
        manual attributes_list_and_delete,
        manual purge_deletes_everything,
    );
}
