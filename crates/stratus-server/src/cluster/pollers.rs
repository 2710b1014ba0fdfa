//! Which node polls which SQS event source mapping. With the queues in
//! PostgreSQL every node could poll every queue; instead each mapping is polled
//! by one node, chosen by rendezvous hashing of the mapping's key over the ids of
//! the healthy nodes (the `nodes` table): every node computes the same owner from
//! the same list with no coordination, and when a node joins or dies only the
//! mappings it gains or owned move.
//!
//! [`spawn`] reads the healthy nodes every [`MEMBERSHIP_POLL`] and hands a changed
//! list to the pollers (`esm::Mappings::set_members`), which stop the mappings
//! this node no longer owns and start the ones it now owns. A dead node's
//! mappings move once its heartbeat is older than `DEAD_AFTER` (5 s), plus at
//! most one poll of the list. While the list is changing two nodes may both poll
//! a queue for a moment (or none): that only costs what SQS's own at-least-once
//! delivery allows, since a received message stays hidden from every other
//! receiver (`FOR UPDATE SKIP LOCKED`, visibility timeout). When the list cannot
//! be read (PostgreSQL unreachable) the node keeps polling what it owned.

use std::time::Duration;

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::esm::Mappings;

/// How often the healthy nodes are read.
pub(crate) const MEMBERSHIP_POLL: Duration = Duration::from_secs(1);

/// The node among `nodes` that polls the mapping `key`: the highest
/// SHA-256(node, key) (ties, which need a hash collision, by node id).
pub(crate) fn owner<'a>(key: &str, nodes: &'a [String]) -> Option<&'a str> {
    nodes
        .iter()
        .map(|n| {
            let mut h = Sha256::new();
            h.update(n.as_bytes());
            h.update([0]);
            h.update(key.as_bytes());
            let d = h.finalize();
            let mut score = [0u8; 8];
            score.copy_from_slice(&d[..8]);
            (u64::from_be_bytes(score), n)
        })
        .max()
        .map(|(_, n)| n.as_str())
}

/// Keeps the pollers' view of the healthy nodes current until `stop` turns true.
pub(crate) fn spawn(
    pool: Pool,
    me: String,
    mappings: Mappings,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MEMBERSHIP_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<Vec<String>> = None;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match super::nodes::list(&pool).await {
                Ok(nodes) => {
                    failing = false;
                    let healthy: Vec<String> = nodes
                        .into_iter()
                        .filter(|n| n.health == "healthy")
                        .map(|n| n.id)
                        .collect();
                    if last.as_ref() != Some(&healthy) {
                        tracing::info!(nodes = ?healthy, "sqs pollers: healthy nodes changed; sharing the mappings out again");
                        mappings.set_members(&me, healthy.clone());
                        last = Some(healthy);
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "sqs pollers: cannot read the cluster's nodes; keeping the mappings this node polls");
                }
                Err(_) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn mappings_spread_and_only_a_dead_nodes_share_moves() {
        let keys: Vec<String> = (0..300).map(|i| format!("fn{i}\0arn:q{i}")).collect();
        let three = ids(3);
        let before: Vec<&str> = keys.iter().map(|k| owner(k, &three).unwrap()).collect();
        for n in &three {
            let share = before.iter().filter(|o| **o == n.as_str()).count();
            assert!((60..=140).contains(&share), "{n} owns {share} of 300");
        }
        // n2 dies: its mappings go to the others, nothing else moves.
        let two = vec!["n1".to_string(), "n3".to_string()];
        for (k, was) in keys.iter().zip(&before) {
            let now = owner(k, &two).unwrap();
            if *was != "n2" {
                assert_eq!(now, *was, "{k:?} moved though its node lives");
            }
        }
        // The order of the list does not matter.
        let reversed: Vec<String> = three.iter().rev().cloned().collect();
        for k in &keys {
            assert_eq!(owner(k, &three), owner(k, &reversed));
        }
        assert_eq!(owner("k", &[]), None);
    }
}
