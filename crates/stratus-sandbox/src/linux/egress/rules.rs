//! The nftables rules of routed egress, as text for `nft -f -` (how CNI plugins and
//! Docker drive the firewall; one transaction per server start, off the hot path).
//!
//! Each server has a table of its own (`inet stratus_<pid>_<n>`): several servers
//! on one host (tests, a cluster on one machine) then never delete each other's
//! rules, and every table matches *all* Stratus veths (`iifname "stx*"`), so one
//! server's rules also guard the others' environments.

use super::pool::{Ipv4Cidr, VETH_PREFIX};

/// Prefix of every Stratus table's name.
pub(crate) const TABLE_PREFIX: &str = "stratus_";

/// The table's name for server process `pid`, driver `n` within it.
pub(crate) fn table_name(pid: u32, n: u32) -> String {
    format!("{TABLE_PREFIX}{pid}_{n}")
}

/// The pid of a Stratus table's server, from its name.
pub(crate) fn table_pid(name: &str) -> Option<u32> {
    name.strip_prefix(TABLE_PREFIX)?
        .split('_')
        .next()?
        .parse()
        .ok()
}

/// The ruleset creating (or atomically replacing) `table` for a pool:
/// - **input**: anything an environment sends to the host itself (any of its
///   addresses, on any port) is dropped: environments use their in-namespace
///   listeners, never a host port;
/// - **forward**: environment to environment dropped; link-local (cloud metadata,
///   169.254.0.0/16) dropped; sources outside the pool dropped; connections *into*
///   an environment only as replies;
/// - **postrouting**: the pool masqueraded behind the host's outgoing address.
pub(crate) fn ruleset(table: &str, pool: Ipv4Cidr) -> String {
    let veths = format!("\"{VETH_PREFIX}*\"");
    format!(
        "add table inet {table}\n\
         delete table inet {table}\n\
         table inet {table} {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tiifname {veths} drop\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tiifname {veths} oifname {veths} drop\n\
         \t\tiifname {veths} ip saddr != {pool} drop\n\
         \t\tiifname {veths} ip daddr 169.254.0.0/16 drop\n\
         \t\tiifname {veths} meta nfproto ipv6 drop\n\
         \t\toifname {veths} ct state established,related accept\n\
         \t\toifname {veths} drop\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {pool} oifname != {veths} masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// Deletes `table` (at clean shutdown, or a dead server's at start).
pub(crate) fn delete(table: &str) -> String {
    format!("delete table inet {table}\n")
}

/// Stratus tables in `nft list tables` output whose server (by pid) is gone,
/// judged by `alive`.
pub(crate) fn stale_tables(listing: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table inet "))
        .filter(|name| table_pid(name).is_some_and(|pid| !alive(pid)))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_drops_host_and_neighbours_and_masquerades_the_pool() {
        let text = ruleset("stratus_42_0", "100.96.0.0/16".parse().unwrap());
        // Replaces a table of the same name in one transaction.
        assert!(text.starts_with(
            "add table inet stratus_42_0\ndelete table inet stratus_42_0\ntable inet stratus_42_0 {"
        ));
        for rule in [
            "type filter hook input priority filter; policy accept;\n\t\tiifname \"stx*\" drop",
            "iifname \"stx*\" oifname \"stx*\" drop",
            "iifname \"stx*\" ip saddr != 100.96.0.0/16 drop",
            "iifname \"stx*\" ip daddr 169.254.0.0/16 drop",
            "oifname \"stx*\" ct state established,related accept\n\t\toifname \"stx*\" drop",
            "type nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr 100.96.0.0/16 oifname != \"stx*\" masquerade",
        ] {
            assert!(text.contains(rule), "missing {rule:?} in\n{text}");
        }
        assert_eq!(delete("stratus_42_0"), "delete table inet stratus_42_0\n");
    }

    #[test]
    fn names_carry_the_pid_and_stale_tables_are_found() {
        assert_eq!(table_name(1234, 2), "stratus_1234_2");
        assert_eq!(table_pid("stratus_1234_2"), Some(1234));
        assert_eq!(table_pid("stratusx"), None);
        let listing = "table inet filter\ntable inet stratus_10_0\ntable ip nat\n\
                       table inet stratus_11_3\ntable inet stratus_oops\n";
        assert_eq!(stale_tables(listing, |pid| pid == 11), ["stratus_10_0"]);
    }
}
