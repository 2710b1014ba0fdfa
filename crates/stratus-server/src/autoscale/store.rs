//! The autoscaler's tables: scalable targets, policies, scheduled actions and the
//! scaling activities, each row the model type as JSON. [`AutoscaleStore`] is one
//! of two backends, settled in one `match` per method:
//!
//! - a single node's state database (`state.db`), on a connection of its own (WAL
//!   mode, so it does not contend with the function store's); the tables are
//!   created here (`CREATE TABLE IF NOT EXISTS` is the migration);
//! - a cluster's PostgreSQL database ([`super::postgres::PgAutoscale`], migration
//!   `V36__autoscale.sql`), whose writes notify the other nodes, and which records
//!   each run of a scheduled action under the leader's epoch.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection};

use super::model::{Activity, Policy, Scheduled, Target};
use super::postgres::PgAutoscale;
use crate::cluster::leader::Firing;
use crate::store::{PgDatabase, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS autoscale_targets (
    resource_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS autoscale_policies (
    resource_id TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (resource_id, name)
);
CREATE TABLE IF NOT EXISTS autoscale_scheduled (
    resource_id TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (resource_id, name)
);
CREATE TABLE IF NOT EXISTS autoscale_activities (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_id TEXT NOT NULL,
    body TEXT NOT NULL
);
";

/// Activities kept per target; older ones are dropped as new ones come.
pub(super) const ACTIVITIES_KEPT: i64 = 1000;

/// Everything stored, as [`AutoscaleStore::load`] returns it.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Scalable targets.
    pub targets: Vec<Target>,
    /// Policies.
    pub policies: Vec<Policy>,
    /// Scheduled actions.
    pub scheduled: Vec<Scheduled>,
}

/// The autoscaler's tables: a single node's, or the cluster's.
#[derive(Debug)]
pub enum AutoscaleStore {
    /// `state.db`.
    Sqlite(SqliteAutoscale),
    /// The cluster database.
    Postgres(PgAutoscale),
}

/// The autoscaler's tables in `state.db`.
#[derive(Debug)]
pub struct SqliteAutoscale {
    conn: Mutex<Connection>,
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|source| StoreError::Decode { what, source })
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl AutoscaleStore {
    /// Opens the tables in `dir/state.db`, creating them if needed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        SqliteAutoscale::open(dir).map(Self::Sqlite)
    }

    /// The cluster's tables in `db`.
    pub fn postgres(db: PgDatabase) -> Self {
        Self::Postgres(PgAutoscale::new(db))
    }

    /// Whether the tables are the cluster's.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Every target, policy and scheduled action.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        match self {
            Self::Sqlite(s) => s.load(),
            Self::Postgres(p) => p.load(),
        }
    }

    /// Inserts or replaces a target.
    pub fn put_target(&self, t: &Target) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_target(t),
            Self::Postgres(p) => p.put_target(t),
        }
    }

    /// Deletes a target with its policies and scheduled actions (activities stay,
    /// as AAS keeps them), atomically.
    pub fn delete_target(&self, resource_id: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_target(resource_id),
            Self::Postgres(p) => p.delete_target(resource_id),
        }
    }

    /// Inserts or replaces a policy.
    pub fn put_policy(&self, p: &Policy) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_policy(p),
            Self::Postgres(pg) => pg.put_policy(p),
        }
    }

    /// Deletes a policy.
    pub fn delete_policy(&self, resource_id: &str, name: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_policy(resource_id, name),
            Self::Postgres(p) => p.delete_policy(resource_id, name),
        }
    }

    /// Inserts or replaces a scheduled action.
    pub fn put_scheduled(&self, a: &Scheduled) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.put_scheduled(a),
            Self::Postgres(p) => p.put_scheduled(a),
        }
    }

    /// Deletes a scheduled action.
    pub fn delete_scheduled(&self, resource_id: &str, name: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.delete_scheduled(resource_id, name),
            Self::Postgres(p) => p.delete_scheduled(resource_id, name),
        }
    }

    /// Records an activity, dropping the target's oldest beyond what is kept.
    pub fn add_activity(&self, a: &Activity) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.add_activity(a),
            Self::Postgres(p) => p.add_activity(a),
        }
    }

    /// Activities, newest first: of one target, or of targets whose ResourceId
    /// starts with `prefix` (`function:NAME:`), or all; at most `limit`.
    pub fn activities(
        &self,
        resource_id: Option<&str>,
        prefix: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        match self {
            Self::Sqlite(s) => s.activities(resource_id, prefix, limit),
            Self::Postgres(p) => p.activities(resource_id, prefix, limit),
        }
    }

    /// Records the run of scheduled action `name` of `resource_id` due at `due_ms`
    /// by the leader of `epoch` (see [`PgAutoscale::record_firing`]). A single node
    /// (no epoch, or `state.db`) records nothing: its only loop runs it.
    pub fn record_firing(
        &self,
        epoch: Option<i64>,
        resource_id: &str,
        name: &str,
        due_ms: i64,
    ) -> Result<Firing, StoreError> {
        match (self, epoch) {
            (Self::Postgres(p), Some(e)) => p.record_firing(e, resource_id, name, due_ms),
            _ => Ok(Firing::Recorded),
        }
    }
}

impl SqliteAutoscale {
    /// Opens the tables in `dir/state.db`, creating them if needed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("state.db");
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Every target, policy and scheduled action.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let conn = self.conn.lock();
        let rows = |sql: &str| -> Result<Vec<String>, StoreError> {
            let mut stmt = conn.prepare(sql)?;
            let out = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(out)
        };
        Ok(Loaded {
            targets: rows("SELECT body FROM autoscale_targets")?
                .iter()
                .map(|s| decode("scalable target", s))
                .collect::<Result<_, _>>()?,
            policies: rows("SELECT body FROM autoscale_policies")?
                .iter()
                .map(|s| decode("scaling policy", s))
                .collect::<Result<_, _>>()?,
            scheduled: rows("SELECT body FROM autoscale_scheduled")?
                .iter()
                .map(|s| decode("scheduled action", s))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Inserts or replaces a target.
    pub fn put_target(&self, t: &Target) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "INSERT OR REPLACE INTO autoscale_targets (resource_id, body) VALUES (?1, ?2)",
            params![t.resource_id, encode(t)],
        )?;
        Ok(())
    }

    /// Deletes a target with its policies and scheduled actions (activities stay,
    /// as AAS keeps them), atomically.
    pub fn delete_target(&self, resource_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        for table in [
            "autoscale_targets",
            "autoscale_policies",
            "autoscale_scheduled",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE resource_id = ?1"),
                [resource_id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Inserts or replaces a policy.
    pub fn put_policy(&self, p: &Policy) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "INSERT OR REPLACE INTO autoscale_policies (resource_id, name, body) VALUES (?1, ?2, ?3)",
            params![p.resource_id, p.name, encode(p)],
        )?;
        Ok(())
    }

    /// Deletes a policy.
    pub fn delete_policy(&self, resource_id: &str, name: &str) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "DELETE FROM autoscale_policies WHERE resource_id = ?1 AND name = ?2",
            [resource_id, name],
        )?;
        Ok(())
    }

    /// Inserts or replaces a scheduled action.
    pub fn put_scheduled(&self, s: &Scheduled) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "INSERT OR REPLACE INTO autoscale_scheduled (resource_id, name, body) VALUES (?1, ?2, ?3)",
            params![s.resource_id, s.name, encode(s)],
        )?;
        Ok(())
    }

    /// Deletes a scheduled action.
    pub fn delete_scheduled(&self, resource_id: &str, name: &str) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "DELETE FROM autoscale_scheduled WHERE resource_id = ?1 AND name = ?2",
            [resource_id, name],
        )?;
        Ok(())
    }

    /// Records an activity, dropping the target's oldest beyond what is kept.
    pub fn add_activity(&self, a: &Activity) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        conn.execute(
            "INSERT INTO autoscale_activities (resource_id, body) VALUES (?1, ?2)",
            params![a.resource_id, encode(a)],
        )?;
        conn.execute(
            "DELETE FROM autoscale_activities WHERE resource_id = ?1 AND seq <= \
             (SELECT seq FROM autoscale_activities WHERE resource_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            params![a.resource_id, ACTIVITIES_KEPT],
        )?;
        Ok(())
    }

    /// Activities, newest first: of one target, or of targets whose ResourceId
    /// starts with `prefix` (`function:NAME:`), or all; at most `limit`.
    pub fn activities(
        &self,
        resource_id: Option<&str>,
        prefix: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        let conn = self.conn.lock();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = conn.prepare(
            "SELECT body FROM autoscale_activities \
             WHERE (?1 IS NULL OR resource_id = ?1) AND (?2 IS NULL OR substr(resource_id, 1, length(?2)) = ?2) \
             ORDER BY seq DESC LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![resource_id, prefix, limit], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.iter().map(|s| decode("scaling activity", s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::tracking::Statistic;

    #[test]
    fn rows_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let t = Target {
            resource_id: "function:f:live".into(),
            function: "f".into(),
            qualifier: "live".into(),
            min: 1,
            max: 5,
            created: 1.5,
            id: "abc".into(),
            suspended: (false, false, false),
        };
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
        {
            let s = AutoscaleStore::open(dir.path()).unwrap();
            s.put_target(&t).unwrap();
            s.put_policy(&p).unwrap();
            for i in 0..3 {
                s.add_activity(&Activity {
                    id: format!("a{i}"),
                    resource_id: t.resource_id.clone(),
                    description: String::new(),
                    cause: String::new(),
                    start: 0.0,
                    end: 0.0,
                    status: "Successful".into(),
                    status_message: None,
                    metric: None,
                    from: i,
                    to: i + 1,
                })
                .unwrap();
            }
        }
        let s = AutoscaleStore::open(dir.path()).unwrap();
        let l = s.load().unwrap();
        assert_eq!(l.targets, vec![t.clone()]);
        assert_eq!(l.policies, vec![p]);
        let acts = s.activities(None, Some("function:f:"), 2).unwrap();
        assert_eq!(
            acts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
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
            s.activities(Some(&t.resource_id), None, 10).unwrap().len(),
            3
        );
    }
}
