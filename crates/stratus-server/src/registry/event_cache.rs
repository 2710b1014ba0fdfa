//! The event-invoke configs in memory: the async queue reads a function's config on
//! every event delivery, which in cluster mode would be a PostgreSQL round trip.
//!
//! Design: one map, function → its configs by qualifier, filled on the first read of
//! a function (all its qualifiers in one store read) and then served from memory.
//! Every change drops the function's entry — a write through this node
//! (Put/Update/DeleteFunctionEventInvokeConfig, DeleteFunction, CreateFunction), a
//! change another node made (the change feed's `function` notification, on which
//! the registry re-reads the function and fills the entry again at once, so the
//! next delivery reads nothing), and a full reload. A read that raced with a change
//! does not install what it read: a generation counter, bumped by each change, must
//! be the same before and after the store read.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::model::EventInvokeConfig;
use crate::store::StoreError;

/// A function's configs, by qualifier.
pub(crate) type Configs = Arc<HashMap<String, EventInvokeConfig>>;

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    by_function: HashMap<String, Configs>,
}

/// The cache. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct EventConfigCache {
    inner: Mutex<Inner>,
}

impl EventConfigCache {
    /// `name`'s configs, read with `load` (every qualifier's) when not cached.
    pub(crate) fn get(
        &self,
        name: &str,
        load: impl FnOnce() -> Result<Vec<(String, EventInvokeConfig)>, StoreError>,
    ) -> Result<Configs, StoreError> {
        let generation = {
            let inner = self.inner.lock();
            if let Some(c) = inner.by_function.get(name) {
                return Ok(c.clone());
            }
            inner.generation
        };
        let configs: Configs = Arc::new(load()?.into_iter().collect());
        let mut inner = self.inner.lock();
        if inner.generation == generation {
            inner.by_function.insert(name.to_string(), configs.clone());
        }
        Ok(configs)
    }

    /// Drops `name`'s entry: it changed.
    pub(crate) fn invalidate(&self, name: &str) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        inner.by_function.remove(name);
    }

    /// Drops every entry (a full reload).
    pub(crate) fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        inner.by_function.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(retries: i64) -> EventInvokeConfig {
        EventInvokeConfig {
            maximum_retry_attempts: Some(retries),
            ..Default::default()
        }
    }

    #[test]
    fn reads_once_until_invalidated() {
        let cache = EventConfigCache::default();
        let mut reads = 0;
        for _ in 0..3 {
            let c = cache
                .get("f", || {
                    reads += 1;
                    Ok(vec![("$LATEST".into(), cfg(1))])
                })
                .unwrap();
            assert_eq!(c["$LATEST"].maximum_retry_attempts, Some(1));
        }
        assert_eq!(reads, 1, "served from memory after the first read");
        cache.invalidate("f");
        let c = cache
            .get("f", || Ok(vec![("$LATEST".into(), cfg(0))]))
            .unwrap();
        assert_eq!(c["$LATEST"].maximum_retry_attempts, Some(0));
        cache.clear();
        assert!(cache.get("f", || Ok(Vec::new())).unwrap().is_empty());
    }

    #[test]
    fn a_read_that_raced_with_a_change_is_not_kept() {
        let cache = EventConfigCache::default();
        // The store read returns the old config, but a change lands meanwhile.
        let stale = cache
            .get("f", || {
                cache.invalidate("f");
                Ok(vec![("$LATEST".into(), cfg(2))])
            })
            .unwrap();
        assert_eq!(stale["$LATEST"].maximum_retry_attempts, Some(2));
        let fresh = cache
            .get("f", || Ok(vec![("$LATEST".into(), cfg(0))]))
            .unwrap();
        assert_eq!(fresh["$LATEST"].maximum_retry_attempts, Some(0));
    }
}
