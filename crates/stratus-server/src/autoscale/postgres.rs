//! The autoscaler's tables in the cluster's PostgreSQL database (migration
//! `V36__autoscale.sql`): the same rows as the single node's `state.db` (the model
//! types as JSON), so every node's Application Auto Scaling API answers the same.
//!
//! - Every write to targets, policies and scheduled actions is one transaction that
//!   also sends `pg_notify('stratus_changes', {"kind":"autoscale",…})`; the other
//!   nodes then re-read the three tables ([`super::Autoscaler::reload`], from the
//!   change feed in `cluster/changes.rs`).
//! - Activities are appended without a notification: every node reads them from
//!   the table when asked.
//! - [`PgAutoscale::record_firing`] is the fence of a scheduled action's run: in one
//!   transaction it checks that the caller's epoch is still the leader's
//!   (`cluster_leader … FOR SHARE`, ordered with a new leader's increment) and
//!   inserts `(resource_id, name, due_ms)` into `autoscale_firings`; an occurrence is
//!   therefore run once cluster-wide, never by a deposed leader.
//!
//! Blocking methods, like the other stores: they wait on the database through
//! [`PgDatabase::run`] (callers are blocking threads or API handlers that step
//! aside).

use super::model::{Activity, Policy, Scheduled, Target};
use super::store::{decode, encode, Loaded, ACTIVITIES_KEPT};
use crate::cluster::leader::Firing;
use crate::cluster::pg::{self, ChangeKind, PgError};
use crate::store::{PgDatabase, StoreError};

/// The autoscaler's tables in the cluster database.
#[derive(Debug)]
pub struct PgAutoscale {
    db: PgDatabase,
}

impl PgAutoscale {
    /// The tables of `db` (migrated when it was opened).
    pub fn new(db: PgDatabase) -> Self {
        Self { db }
    }

    /// Runs `statements` (SQL, parameters) in one transaction with a notification
    /// naming `resource_id`.
    fn write(
        &self,
        what: &'static str,
        resource_id: &str,
        statements: &[(&str, Vec<String>)],
    ) -> Result<(), StoreError> {
        self.db.run(|| async {
            let mut c = pg::client(self.db.pool()).await?;
            let tx = c.transaction().await.map_err(PgError::query("begin"))?;
            for (sql, args) in statements {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
                    .iter()
                    .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                tx.execute(*sql, &params)
                    .await
                    .map_err(PgError::query(what))?;
            }
            pg::notify(&tx, self.db.node_id(), ChangeKind::Autoscale, resource_id).await?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }

    /// Every target, policy and scheduled action.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let (targets, policies, scheduled) = self.db.run(|| async {
            let c = pg::client(self.db.pool()).await?;
            let mut out: Vec<Vec<String>> = Vec::new();
            for sql in [
                "SELECT body FROM autoscale_targets ORDER BY resource_id",
                "SELECT body FROM autoscale_policies ORDER BY resource_id, name",
                "SELECT body FROM autoscale_scheduled ORDER BY resource_id, name",
            ] {
                let rows = c
                    .query(sql, &[])
                    .await
                    .map_err(PgError::query("read the autoscaling tables"))?;
                out.push(rows.iter().map(|r| r.get::<_, String>(0)).collect());
            }
            let scheduled = out.pop().unwrap_or_default();
            let policies = out.pop().unwrap_or_default();
            let targets = out.pop().unwrap_or_default();
            Ok((targets, policies, scheduled))
        })?;
        Ok(Loaded {
            targets: targets
                .iter()
                .map(|s| decode("scalable target", s))
                .collect::<Result<_, _>>()?,
            policies: policies
                .iter()
                .map(|s| decode("scaling policy", s))
                .collect::<Result<_, _>>()?,
            scheduled: scheduled
                .iter()
                .map(|s| decode("scheduled action", s))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Inserts or replaces a target.
    pub fn put_target(&self, t: &Target) -> Result<(), StoreError> {
        self.write(
            "store a scalable target",
            &t.resource_id,
            &[(
                "INSERT INTO autoscale_targets (resource_id, body) VALUES ($1, $2) \
                 ON CONFLICT (resource_id) DO UPDATE SET body = EXCLUDED.body",
                vec![t.resource_id.clone(), encode(t)],
            )],
        )
    }

    /// Deletes a target with its policies and scheduled actions, atomically.
    pub fn delete_target(&self, resource_id: &str) -> Result<(), StoreError> {
        let id = vec![resource_id.to_string()];
        self.write(
            "delete a scalable target",
            resource_id,
            &[
                (
                    "DELETE FROM autoscale_targets WHERE resource_id = $1",
                    id.clone(),
                ),
                (
                    "DELETE FROM autoscale_policies WHERE resource_id = $1",
                    id.clone(),
                ),
                ("DELETE FROM autoscale_scheduled WHERE resource_id = $1", id),
            ],
        )
    }

    /// Inserts or replaces a policy.
    pub fn put_policy(&self, p: &Policy) -> Result<(), StoreError> {
        self.write(
            "store a scaling policy",
            &p.resource_id,
            &[(
                "INSERT INTO autoscale_policies (resource_id, name, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (resource_id, name) DO UPDATE SET body = EXCLUDED.body",
                vec![p.resource_id.clone(), p.name.clone(), encode(p)],
            )],
        )
    }

    /// Deletes a policy.
    pub fn delete_policy(&self, resource_id: &str, name: &str) -> Result<(), StoreError> {
        self.write(
            "delete a scaling policy",
            resource_id,
            &[(
                "DELETE FROM autoscale_policies WHERE resource_id = $1 AND name = $2",
                vec![resource_id.to_string(), name.to_string()],
            )],
        )
    }

    /// Inserts or replaces a scheduled action.
    pub fn put_scheduled(&self, s: &Scheduled) -> Result<(), StoreError> {
        self.write(
            "store a scheduled action",
            &s.resource_id,
            &[(
                "INSERT INTO autoscale_scheduled (resource_id, name, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (resource_id, name) DO UPDATE SET body = EXCLUDED.body",
                vec![s.resource_id.clone(), s.name.clone(), encode(s)],
            )],
        )
    }

    /// Deletes a scheduled action.
    pub fn delete_scheduled(&self, resource_id: &str, name: &str) -> Result<(), StoreError> {
        self.write(
            "delete a scheduled action",
            resource_id,
            &[(
                "DELETE FROM autoscale_scheduled WHERE resource_id = $1 AND name = $2",
                vec![resource_id.to_string(), name.to_string()],
            )],
        )
    }

    /// Records an activity, dropping the target's oldest beyond what is kept.
    pub fn add_activity(&self, a: &Activity) -> Result<(), StoreError> {
        let body = encode(a);
        self.db.run(|| async {
            let mut c = pg::client(self.db.pool()).await?;
            let tx = c.transaction().await.map_err(PgError::query("begin"))?;
            tx.execute(
                "INSERT INTO autoscale_activities (resource_id, body) VALUES ($1, $2)",
                &[&a.resource_id, &body],
            )
            .await
            .map_err(PgError::query("store a scaling activity"))?;
            tx.execute(
                "DELETE FROM autoscale_activities WHERE resource_id = $1 AND seq <= \
                 (SELECT seq FROM autoscale_activities WHERE resource_id = $1 \
                  ORDER BY seq DESC LIMIT 1 OFFSET $2)",
                &[&a.resource_id, &ACTIVITIES_KEPT],
            )
            .await
            .map_err(PgError::query("drop old scaling activities"))?;
            tx.commit().await.map_err(PgError::query("commit"))?;
            Ok(())
        })
    }

    /// Activities, newest first: of one target, or of targets whose ResourceId
    /// starts with `prefix`, or all; at most `limit`.
    pub fn activities(
        &self,
        resource_id: Option<&str>,
        prefix: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let bodies: Vec<String> = self.db.run(|| async {
            let c = pg::client(self.db.pool()).await?;
            let rows = c
                .query(
                    "SELECT body FROM autoscale_activities \
                     WHERE ($1::text IS NULL OR resource_id = $1) \
                       AND ($2::text IS NULL OR left(resource_id, length($2)) = $2) \
                     ORDER BY seq DESC LIMIT $3",
                    &[&resource_id, &prefix, &limit],
                )
                .await
                .map_err(PgError::query("read scaling activities"))?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })?;
        bodies
            .iter()
            .map(|s| decode("scaling activity", s))
            .collect()
    }

    /// Records that the leader of `epoch` runs the scheduled action `name` of
    /// `resource_id` for its occurrence due at `due_ms` (epoch ms), if `epoch` is
    /// still the current one and no leader ran that occurrence yet. One
    /// transaction; firings older than a day are pruned in passing.
    pub fn record_firing(
        &self,
        epoch: i64,
        resource_id: &str,
        name: &str,
        due_ms: i64,
    ) -> Result<Firing, StoreError> {
        self.db.run(|| async {
            let mut c = pg::client(self.db.pool()).await?;
            let tx = c
                .transaction()
                .await
                .map_err(PgError::query("begin recording a scheduled action's run"))?;
            // FOR SHARE: a new leader's epoch increment waits until this commits.
            let current: i64 = tx
                .query_one(
                    "SELECT epoch FROM cluster_leader WHERE id = 1 FOR SHARE",
                    &[],
                )
                .await
                .map_err(PgError::query("read the leader's epoch"))?
                .get(0);
            if current != epoch {
                return Ok(Firing::Deposed { current });
            }
            let n = tx
                .execute(
                    "INSERT INTO autoscale_firings (resource_id, name, due_ms, epoch, node) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[&resource_id, &name, &due_ms, &epoch, &self.db.node_id()],
                )
                .await
                .map_err(PgError::query("record a scheduled action's run"))?;
            tx.execute(
                "DELETE FROM autoscale_firings WHERE fired_at < now() - interval '1 day'",
                &[],
            )
            .await
            .map_err(PgError::query("prune old scheduled action runs"))?;
            tx.commit()
                .await
                .map_err(PgError::query("commit a scheduled action's run"))?;
            Ok(if n == 1 {
                Firing::Recorded
            } else {
                Firing::AlreadyFired
            })
        })
    }

    /// When the cluster was created (its first shared data key, epoch ms): the
    /// common origin of accelerated autoscaler clocks, so every node's simulated
    /// time is the same.
    pub fn cluster_created_ms(&self) -> Result<i64, StoreError> {
        self.db.run(|| async {
            let c = pg::client(self.db.pool()).await?;
            let row = c
                .query_one("SELECT min(created_ms) FROM cluster_keys", &[])
                .await
                .map_err(PgError::query("read when the cluster was created"))?;
            Ok(row
                .get::<_, Option<i64>>(0)
                .unwrap_or_else(crate::logs::now_ms))
        })
    }
}

#[cfg(test)]
mod tests {
    //! Against a real PostgreSQL (`stratus_testkit`).
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::autoscale::tracking::Statistic;

    fn target() -> Target {
        Target {
            resource_id: "function:f:live".into(),
            function: "f".into(),
            qualifier: "live".into(),
            min: 1,
            max: 5,
            created: 1.5,
            id: "abc".into(),
            suspended: (false, false, false),
        }
    }

    fn activity(i: u32) -> Activity {
        Activity {
            id: format!("a{i}"),
            resource_id: "function:f:live".into(),
            description: String::new(),
            cause: String::new(),
            start: 0.0,
            end: 0.0,
            status: "Successful".into(),
            status_message: None,
            metric: None,
            from: i,
            to: i + 1,
        }
    }

    #[test]
    fn rows_round_trip_and_activities_outlive_their_target() {
        let url = stratus_testkit::Postgres::shared().database();
        let db = PgDatabase::open(&url, "n1").unwrap();
        let s = PgAutoscale::new(db);
        let t = target();
        let p = Policy {
            name: "p".into(),
            resource_id: t.resource_id.clone(),
            target_value: 0.7,
            scale_out_cooldown: 0,
            scale_in_cooldown: 120,
            disable_scale_in: false,
            statistic: Statistic::Maximum,
            metric_spec: serde_json::json!({"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}),
            predefined: true,
            id: "id".into(),
            created: 2.0,
        };
        s.put_target(&t).unwrap();
        let mut t2 = t.clone();
        t2.max = 7;
        s.put_target(&t2).unwrap();
        s.put_policy(&p).unwrap();
        for i in 0..3 {
            s.add_activity(&activity(i)).unwrap();
        }
        let l = s.load().unwrap();
        assert_eq!(l.targets, vec![t2.clone()]);
        assert_eq!(l.policies, vec![p]);
        let ids = |v: Vec<Activity>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.activities(None, Some("function:f:"), 2).unwrap()),
            ["a2", "a1"]
        );
        assert!(s
            .activities(None, Some("function:g:"), 5)
            .unwrap()
            .is_empty());
        s.delete_target(&t.resource_id).unwrap();
        let l = s.load().unwrap();
        assert!(l.targets.is_empty() && l.policies.is_empty());
        assert_eq!(
            ids(s.activities(Some(&t.resource_id), None, 10).unwrap()),
            ["a2", "a1", "a0"]
        );
    }

    #[test]
    fn an_occurrence_runs_once_and_never_under_a_deposed_epoch() {
        let url = stratus_testkit::Postgres::shared().database();
        let db = PgDatabase::open(&url, "n1").unwrap();
        db.run(|| async {
            let c = pg::client(db.pool()).await?;
            c.execute("UPDATE cluster_leader SET epoch = 5 WHERE id = 1", &[])
                .await
                .map_err(PgError::query("set the epoch"))?;
            Ok(())
        })
        .unwrap();
        let s = PgAutoscale::new(db);
        let rid = "function:f:live";
        assert_eq!(
            s.record_firing(5, rid, "a", 1_000).unwrap(),
            Firing::Recorded
        );
        assert_eq!(
            s.record_firing(5, rid, "a", 1_000).unwrap(),
            Firing::AlreadyFired
        );
        assert_eq!(
            s.record_firing(5, rid, "b", 1_000).unwrap(),
            Firing::Recorded
        );
        assert_eq!(
            s.record_firing(4, rid, "a", 2_000).unwrap(),
            Firing::Deposed { current: 5 }
        );
        // The deposed attempt wrote nothing: the current leader runs it.
        assert_eq!(
            s.record_firing(5, rid, "a", 2_000).unwrap(),
            Firing::Recorded
        );
        assert!(s.cluster_created_ms().unwrap() > 0);
    }
}
