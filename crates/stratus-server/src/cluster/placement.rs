//! Placement: which node keeps which provisioned environments, and which nodes
//! have warm environments to route an invocation to (docs/cluster.md, "Placement
//! and failover").
//!
//! - **Membership** comes from the `nodes` table: every [`HEARTBEAT`] this node
//!   reads every row ([`spawn`]); the live nodes are those whose heartbeat is
//!   younger than `DEAD_AFTER` (by the database's clock), plus this node itself
//!   (alive by definition: when cut off from the database it keeps its share, and
//!   the others take it over too, so a partition over-provisions rather than
//!   under-provisions). Until the first read, this node keeps no share.
//! - **The split** of a pool's `P` provisioned environments over the `n` live nodes
//!   is computed by every node alone from the same inputs (the sorted ids, the
//!   function and version): each node gets `P / n`, and the `P % n` extra ones go to
//!   the nodes ranked highest for that function by rendezvous hashing. When the
//!   membership changes every node recomputes its share, and the scheduler starts
//!   or stops environments to meet it ([`Scheduler::rebalance_provisioned`]).
//! - **What the others have**: each node publishes, in its heartbeat's `info`, its
//!   idle and provisioned environments per pool ([`PoolInfo`]). They give the
//!   cluster-wide figures of `GetProvisionedConcurrencyConfig`
//!   ([`Placement::alive_elsewhere`]) and the routing candidates
//!   ([`Placement::candidates`]): live nodes with an idle environment of the pool,
//!   by rendezvous rank (so a function's calls gather on the same nodes), spilling
//!   to the next when one is busy.
//!
//! The hash is FNV-1a with a 64-bit finalizer: stable across processes, versions
//! and architectures (the standard library's hashers promise none of that). It
//! spreads names; it is not a security boundary.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use stratus_scheduler::{FunctionSpec, Scheduler};
use tokio::sync::watch;

use super::nodes::{self, HEARTBEAT};

/// One pool's environments on a node, as published in its heartbeat. The pool key
/// is written with `/` for its NUL separators (PostgreSQL's `jsonb` takes no NUL;
/// neither names, versions nor revision ids contain `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolInfo {
    /// `{function}/{version}/{revision}`.
    pub key: String,
    /// Idle (warm, free) environments.
    pub idle: u32,
    /// Provisioned environments alive.
    pub provisioned: u32,
    /// Idle provisioned environments (of `idle`; the autoscaler's utilization).
    /// Absent from an older node's heartbeat: `idle` is used then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_provisioned: Option<u32>,
}

/// The published form of a pool key.
pub(crate) fn wire_key(pool_key: &str) -> String {
    pool_key.replace('\0', "/")
}

/// A pool key from its published form.
pub(crate) fn pool_key(wire: &str) -> String {
    wire.replace('/', "\0")
}

/// This node's pools, as it publishes them.
pub(crate) fn local_pools(scheduler: &Scheduler) -> Vec<PoolInfo> {
    scheduler
        .pool_loads()
        .into_iter()
        .map(|l| PoolInfo {
            key: wire_key(&l.pool_key),
            idle: l.idle,
            provisioned: l.provisioned,
            idle_provisioned: Some(l.idle_provisioned),
        })
        .collect()
}

/// Another live node, as its last heartbeat showed it.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) id: String,
    /// Where its API is reached (`HOST:PORT`).
    pub(crate) address: String,
    /// Pool key → (idle, provisioned alive).
    pools: HashMap<String, (u32, u32)>,
    /// Pool key → idle provisioned environments (where the heartbeat had them).
    idle_provisioned: HashMap<String, u32>,
}

/// The membership as last read.
#[derive(Debug, Default)]
struct View {
    /// Whether the `nodes` table was read at least once.
    known: bool,
    /// Every live node's id, this one's included, sorted.
    ids: Vec<String>,
    /// The live nodes other than this one.
    peers: Vec<Peer>,
}

/// The cluster's placement of provisioned environments and routing candidates,
/// shared by the scheduler (as its [`stratus_scheduler::Placement`]) and the
/// invoke router.
#[derive(Debug)]
pub struct Placement {
    me: String,
    view: RwLock<Arc<View>>,
}

impl Placement {
    /// The placement of node `me`, membership not read yet.
    pub fn new(me: &str) -> Arc<Self> {
        Arc::new(Self {
            me: me.to_string(),
            view: RwLock::new(Arc::new(View::default())),
        })
    }

    fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// Installs a membership read; returns whether the set of live nodes changed
    /// (or this was the first read).
    fn install(&self, peers: Vec<Peer>) -> bool {
        let mut ids: Vec<String> = peers.iter().map(|p| p.id.clone()).collect();
        ids.push(self.me.clone());
        ids.sort();
        ids.dedup();
        let mut view = self.view.write();
        let changed = !view.known || view.ids != ids;
        *view = Arc::new(View {
            known: true,
            ids,
            peers,
        });
        changed
    }

    /// The live nodes other than this one that had an idle environment of the pool
    /// `pool_key` at their last heartbeat, best first (rendezvous rank for the
    /// function and version), with that count.
    pub(crate) fn candidates(&self, spec: &FunctionSpec) -> Vec<(Peer, u32)> {
        let view = self.view();
        let wire = wire_key(&spec.pool_key);
        let key = affinity_key(spec);
        let mut out: Vec<(u64, Peer, u32)> = view
            .peers
            .iter()
            .filter_map(|p| {
                let idle = p.pools.get(&wire).map(|(i, _)| *i).unwrap_or(0);
                (idle > 0).then(|| (score(&key, &p.id), p.clone(), idle))
            })
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        out.into_iter().map(|(_, p, idle)| (p, idle)).collect()
    }

    /// The ids of the live nodes (this one included), sorted; empty before the first
    /// read.
    pub fn live_nodes(&self) -> Vec<String> {
        self.view().ids.clone()
    }
}

/// What the split hashes: the function and version (not the revision, so an
/// update of `$LATEST` does not move its environments between nodes).
fn affinity_key(spec: &FunctionSpec) -> String {
    format!("{}\0{}", spec.function_name, spec.version)
}

/// The rendezvous score of `node` for `key` (higher ranks first).
fn score(key: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0xff]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer: FNV alone leaves the high bits of short inputs
    // poorly mixed.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// `node`'s share of `total` environments of the pool hashed by `key`, over the
/// live nodes `ids` (sorted, `node` among them): `total / n`, one more for the
/// `total % n` nodes ranked highest.
fn share(key: &str, ids: &[String], node: &str, total: u32) -> u32 {
    let n = ids.len() as u32;
    if n == 0 {
        return 0;
    }
    let (base, extra) = (total / n, total % n);
    let mut ranked: Vec<(u64, &str)> = ids.iter().map(|id| (score(key, id), id.as_str())).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let rank = ranked
        .iter()
        .position(|(_, id)| *id == node)
        .unwrap_or(usize::MAX) as u64;
    base + u32::from(rank < u64::from(extra))
}

impl Placement {
    /// Provisioned environments of the pool `pool_key` on the other live nodes at
    /// their last heartbeat: (busy, alive). Busy is alive less idle provisioned
    /// (less idle, from a heartbeat without that figure).
    pub fn provisioned_usage_elsewhere(&self, pool_key: &str) -> (u32, u32) {
        let wire = wire_key(pool_key);
        self.view()
            .peers
            .iter()
            .filter_map(|p| {
                let (idle, prov) = p.pools.get(&wire)?;
                let idle = p.idle_provisioned.get(&wire).unwrap_or(idle);
                Some((prov.saturating_sub(*idle), *prov))
            })
            .fold((0, 0), |(busy, alive), (b, a)| (busy + b, alive + a))
    }
}

impl stratus_scheduler::Placement for Placement {
    fn share(&self, spec: &FunctionSpec, total: u32) -> u32 {
        let view = self.view();
        if !view.known {
            // Until this node knows who else is alive it keeps nothing: the
            // membership is read right after the node joins, and then it warms its
            // share.
            return 0;
        }
        share(&affinity_key(spec), &view.ids, &self.me, total)
    }

    fn alive_elsewhere(&self, pool_key: &str) -> u32 {
        let wire = wire_key(pool_key);
        self.view()
            .peers
            .iter()
            .filter_map(|p| p.pools.get(&wire).map(|(_, prov)| *prov))
            .sum()
    }
}

/// Reads the membership every [`HEARTBEAT`] until `stop` turns true, and
/// rebalances this node's provisioned shares whenever the live nodes change. A
/// failed read keeps the last membership (logged once per outage).
pub(crate) fn spawn(
    pool: deadpool_postgres::Pool,
    placement: Arc<Placement>,
    scheduler: Scheduler,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let rows = match nodes::list(&pool).await {
                Ok(rows) => {
                    failing = false;
                    rows
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot read the cluster's nodes; provisioned shares stay as they are");
                    }
                    failing = true;
                    continue;
                }
            };
            let peers = rows
                .into_iter()
                .filter(|n| n.health == "healthy" && n.id != placement.me)
                .map(|n| Peer {
                    pools: n
                        .info
                        .pools
                        .iter()
                        .map(|p| (p.key.clone(), (p.idle, p.provisioned)))
                        .collect(),
                    idle_provisioned: n
                        .info
                        .pools
                        .iter()
                        .filter_map(|p| Some((p.key.clone(), p.idle_provisioned?)))
                        .collect(),
                    id: n.id,
                    address: n.address,
                })
                .collect();
            if placement.install(peers) {
                tracing::info!(nodes = ?placement.live_nodes(), "cluster membership changed: rebalancing provisioned environments");
                scheduler.rebalance_provisioned();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn every_node_computes_the_same_split_and_it_adds_up() {
        for nodes in 1..=5 {
            let ids = ids(nodes);
            for total in 0..=12u32 {
                for f in ["a", "orders-dev-api\u{0}1", "x\u{0}$LATEST"] {
                    let shares: Vec<u32> = ids.iter().map(|me| share(f, &ids, me, total)).collect();
                    assert_eq!(shares.iter().sum::<u32>(), total, "{f} {total} on {nodes}");
                    let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                    assert!(hi - lo <= 1, "{shares:?}");
                }
            }
        }
        // P=5 on 3 nodes: 2/2/1.
        let ids = ids(3);
        let mut s: Vec<u32> = ids.iter().map(|me| share("f\u{0}1", &ids, me, 5)).collect();
        s.sort();
        assert_eq!(s, vec![1, 2, 2]);
    }

    #[test]
    fn the_extra_slots_of_different_functions_land_on_different_nodes() {
        let ids = ids(3);
        let mut firsts = std::collections::HashSet::new();
        for i in 0..30 {
            let f = format!("fn-{i}\u{0}1");
            let top = ids.iter().find(|me| share(&f, &ids, me, 1) == 1).unwrap();
            firsts.insert(top.clone());
        }
        assert_eq!(firsts.len(), 3, "one node got every function's extra slot");
    }

    #[test]
    fn a_node_leaving_moves_only_its_share() {
        let all = ids(3);
        let two: Vec<String> = all[..2].to_vec();
        for total in [2u32, 3, 5, 9] {
            let after: u32 = two.iter().map(|me| share("f", &two, me, total)).sum();
            assert_eq!(after, total);
        }
    }

    #[test]
    fn pool_keys_survive_the_heartbeat_form() {
        let k = "orders\u{0}$LATEST\u{0}5f0c2a8e-1b2c-4d5e-8f90-0123456789ab";
        assert_eq!(pool_key(&wire_key(k)), k);
        assert!(!wire_key(k).contains('\0'));
    }

    #[test]
    fn before_the_first_read_no_share_is_kept_and_then_the_split_applies() {
        let p = Placement::new("n2");
        let spec = FunctionSpec {
            pool_key: Arc::from("f\u{0}1\u{0}r"),
            function_name: Arc::from("f"),
            version: Arc::from("1"),
            memory_mb: 128,
            timeout: std::time::Duration::from_secs(3),
            program: "/bin/true".into(),
            args: Vec::new(),
            cwd: "/".into(),
            env: Vec::new(),
            log_group: Arc::from("/aws/lambda/f"),
            role_policy: None,
            mounts: Vec::new(),
            tmp_mb: 512,
            network: stratus_scheduler::Network::Egress,
        };
        use stratus_scheduler::Placement as _;
        assert_eq!(p.share(&spec, 5), 0);
        let peer = |id: &str, idle: u32, prov: u32| Peer {
            id: id.into(),
            address: format!("{id}:1"),
            pools: [(wire_key(&spec.pool_key), (idle, prov))]
                .into_iter()
                .collect(),
            idle_provisioned: HashMap::new(),
        };
        assert!(p.install(vec![peer("n1", 0, 2), peer("n3", 1, 1)]));
        assert!(!p.install(vec![peer("n1", 0, 2), peer("n3", 1, 1)]));
        // The autoscaler's utilization elsewhere: n1's two are busy, n3's one idle.
        assert_eq!(p.provisioned_usage_elsewhere(&spec.pool_key), (2, 3));
        // Where the heartbeat tells idle provisioned environments apart, an idle
        // on-demand one does not make a busy provisioned one look free.
        let mut n1 = peer("n1", 1, 2);
        n1.idle_provisioned.insert(wire_key(&spec.pool_key), 0);
        p.install(vec![n1, peer("n3", 1, 1)]);
        assert_eq!(
            p.provisioned_usage_elsewhere(&spec.pool_key),
            (2, 3),
            "n1: 2 busy provisioned (its idle one is on-demand), n3: 1 idle"
        );
        p.install(vec![peer("n1", 0, 2), peer("n3", 1, 1)]);
        let ids = ids(3);
        assert_eq!(p.share(&spec, 5), share("f\u{0}1", &ids, "n2", 5));
        assert_eq!(p.alive_elsewhere(&spec.pool_key), 3);
        let c = p.candidates(&spec);
        assert_eq!(c.len(), 1, "only n3 has an idle environment");
        assert_eq!(c[0].0.id, "n3");
        // n3 gone: the membership changed.
        assert!(p.install(vec![peer("n1", 0, 2)]));
        assert_eq!(p.live_nodes(), vec!["n1".to_string(), "n2".to_string()]);
    }
}
