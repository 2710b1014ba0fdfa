//! Installing what another node of a cluster changed. The store is the truth: the
//! registry re-reads one function (or all of them) and installs it as a local write
//! would have — a new revision or version gets a new pool (its package fetched from
//! the shared code store and unpacked first), the pools of replaced revisions and
//! deleted versions retire, reserved and provisioned concurrency are handed to the
//! scheduler when they changed, and a deleted function is forgotten.
//!
//! Each refresh holds the writer lock while it reads and installs, so it is ordered
//! with this node's own writes (which hold it while they write the store).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use stratus_scheduler::FunctionSpec;

use super::{FnEntry, Registry};
use crate::error::ApiError;
use crate::store::LoadedFunction;

/// Pool key → (spec, provisioned floor) of every version of an entry that can run.
type Floors = HashMap<Arc<str>, (Arc<FunctionSpec>, u32)>;

impl Registry {
    /// Re-reads function `name` from the store and installs it (or forgets it, when
    /// the store no longer has it).
    pub fn refresh_function(&self, name: &str) -> Result<(), ApiError> {
        let _writer = self.writer.lock();
        let loaded = self.store.load_function(name)?;
        let new = match loaded {
            Some(l) => Some((l, self.store.function_tags(name)?)),
            None => None,
        };
        self.apply_loaded(name, new);
        // Its event-invoke configs may be what changed: read again now, so the
        // async queue's next delivery finds them in memory.
        self.event_configs.invalidate(name);
        if self.fns.read().contains_key(name) {
            let _ = self.cached_event_configs(name);
        }
        Ok(())
    }

    /// Re-reads every function from the store and installs the differences (after a
    /// lost change feed, when notifications may have been missed).
    pub fn refresh_all(&self) -> Result<(), ApiError> {
        let _writer = self.writer.lock();
        let loaded = self.store.load()?;
        let mut tags = self.store.all_tags()?;
        let mut seen = HashSet::new();
        for l in loaded {
            let name = l.function.config.function_name.clone();
            let t = tags.remove(&name).unwrap_or_default();
            self.apply_loaded(&name, Some((l, t)));
            seen.insert(name);
        }
        let gone: Vec<String> = self
            .fns
            .read()
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            self.apply_loaded(&name, None);
        }
        self.event_configs.clear();
        Ok(())
    }

    /// Installs `new` as function `name` (`None`: deleted). The writer lock is held.
    fn apply_loaded(&self, name: &str, new: Option<(LoadedFunction, BTreeMap<String, String>)>) {
        let old = self.fns.read().get(name).cloned();
        let Some((loaded, tags)) = new else {
            if old.is_some() {
                let removed = self.fns.write().remove(name);
                drop(removed);
                self.scheduler.forget(name);
                self.scheduler.retire(&format!("{name}\0"));
            }
            return;
        };
        let entry = self.entry_from_loaded(loaded, tags, old.as_ref());
        let old_reserved = old.as_ref().and_then(|o| o.reserved);
        if old_reserved != entry.reserved {
            self.scheduler.set_reserved(name, entry.reserved);
        }
        let before = old.as_ref().map(|o| self.floors(o)).unwrap_or_default();
        let after = self.floors(&entry);
        self.install(name, entry);
        for (key, (spec, n)) in &after {
            let was = before.get(key).map(|(_, m)| *m);
            if was != Some(*n) && (*n > 0 || was.is_some()) {
                self.scheduler.set_provisioned(spec, *n);
            }
        }
        for (key, (spec, n)) in &before {
            if !after.contains_key(key) {
                if *n > 0 {
                    self.scheduler.set_provisioned(spec, 0);
                }
                self.scheduler.retire(key);
            }
        }
    }

    /// Every runnable version's pool and its provisioned floor under `entry`.
    fn floors(&self, entry: &FnEntry) -> Floors {
        std::iter::once(&entry.latest)
            .chain(entry.versions.values().map(Arc::as_ref))
            .filter_map(|v| v.spec.as_ref().ok())
            .map(|spec| {
                let n = self.provisioned_on_pool(entry, &spec.pool_key);
                (spec.pool_key.clone(), (spec.clone(), n))
            })
            .collect()
    }
}
