//! Cluster mode (issue 11, `docs/cluster.md`): several `stratus server` processes
//! sharing state in PostgreSQL. This module holds what connects a node to the
//! cluster's engines: [`pg`], the PostgreSQL pool, migrations and change
//! notifications; [`grants`], cluster-wide concurrency leased in batches.

pub mod grants;
pub mod pg;
