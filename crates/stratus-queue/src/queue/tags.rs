//! Queue tags: TagQueue, UntagQueue and ListQueueTags, and the limits on them.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use crate::error::QueueError;

use super::{load_queue, Backend, Queues};

/// Most tags on a queue.
pub const MAX_TAGS: usize = 50;

impl Queues {
    /// Adds or replaces tags.
    pub async fn tag(&self, queue: &str, tags: &HashMap<String, String>) -> Result<(), QueueError> {
        validate_tags(tags)?;
        let (owned, tags) = (queue.to_string(), tags.clone());
        self.update_tags(owned, move |current| {
            current.extend(tags);
            validate_tags(current)
        })
        .await
    }

    /// Removes tags.
    pub async fn untag(&self, queue: &str, keys: &[String]) -> Result<(), QueueError> {
        let (owned, keys) = (queue.to_string(), keys.to_vec());
        self.update_tags(owned, move |current| {
            for k in &keys {
                current.remove(k);
            }
            Ok(())
        })
        .await
    }

    /// The queue's tags.
    pub async fn tags(&self, queue: &str) -> Result<HashMap<String, String>, QueueError> {
        let owned = queue.to_string();
        match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |c| {
                        let q = load_queue(c, &owned)?;
                        read_tags(c, q.id)
                    })
                    .await
            }
            Backend::Postgres(pg) => Ok(parse_tags(&pg.tags(&owned).await?.1)),
        }
    }

    async fn update_tags(
        &self,
        queue: String,
        f: impl FnOnce(&mut HashMap<String, String>) -> Result<(), QueueError> + Send + 'static,
    ) -> Result<(), QueueError> {
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => return pg.update_tags(&queue, f).await,
        };
        store
            .run(move |c| {
                let q = load_queue(c, &queue)?;
                let mut tags = read_tags(c, q.id)?;
                f(&mut tags)?;
                let text = serde_json::to_string(&tags).unwrap_or_else(|_| "{}".into());
                c.execute(
                    "UPDATE queues SET tags = ?2 WHERE id = ?1",
                    params![q.id, text],
                )?;
                Ok::<_, QueueError>(())
            })
            .await
    }
}

fn read_tags(c: &Connection, id: i64) -> Result<HashMap<String, String>, QueueError> {
    let text: String = c.query_row("SELECT tags FROM queues WHERE id = ?1", [id], |r| r.get(0))?;
    Ok(parse_tags(&text))
}

/// Tags as stored (a JSON object).
pub(crate) fn parse_tags(text: &str) -> HashMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(super) fn validate_tags(tags: &HashMap<String, String>) -> Result<(), QueueError> {
    if tags.len() > MAX_TAGS {
        return Err(QueueError::InvalidParameters {
            reason: format!("A queue can have at most {MAX_TAGS} tags."),
        });
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(QueueError::param(
                "TagKey",
                k,
                "Tag keys are 1 to 128 characters.",
            ));
        }
        if v.chars().count() > 256 {
            return Err(QueueError::param(
                "TagValue",
                v,
                "Tag values are at most 256 characters.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::test_support::*;

    async fn tags(f: Fixture) {
        f.q.create_queue("q", &HashMap::new(), &attrs(&[("team", "a")]))
            .await
            .unwrap();
        f.q.tag("q", &attrs(&[("env", "dev")])).await.unwrap();
        f.q.untag("q", &["team".to_string()]).await.unwrap();
        assert_eq!(f.q.tags("q").await.unwrap(), attrs(&[("env", "dev")]));
    }

    on_both_backends!(
        manual tags,
    );
}
