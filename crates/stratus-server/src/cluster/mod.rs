//! Cluster mode: several nodes sharing PostgreSQL (see `docs/cluster.md`).

pub mod grants;
