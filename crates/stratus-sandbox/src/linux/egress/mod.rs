//! Routed egress: an environment allowed to reach the outside gets its own network
//! namespace exactly like an isolated one (only its loopback listeners for the
//! Runtime API and the Stratus API) **plus** a veth pair to the host: `eth0` inside
//! with the slot's address and a default route, `stx{i}` on the host. The host
//! forwards and masquerades the pool, and a firewall table of the server's own
//! drops whatever an environment sends to the host itself or to another
//! environment (see `rules`).
//!
//! Host set-up runs once, when the linux driver starts: `net.ipv4.ip_forward=1` and
//! the table (`nft -f -`; stale tables of dead servers are removed). Per
//! environment, [`Egress::attach`] takes a slot of the pool and makes the links over
//! netlink; the returned [`Lease`] deletes the host-side veth (and with it the
//! pair) and frees the slot when dropped, whatever ended the environment.

pub(crate) mod link;
pub(crate) mod pool;
pub(crate) mod rules;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::net::NetNs;
use link::Rtnl;
use pool::{AddrPool, Ipv4Cidr, Slot};

/// The environment-side interface name.
const ENV_IF: &str = "eth0";

/// How an egress function's environments reach the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EgressMode {
    /// Their own namespace with a veth pair, NAT, and the host firewalled off.
    #[default]
    Routed,
    /// The host's network namespace (everything the host reaches, its loopback
    /// ports included).
    Host,
}

/// Settings of egress under the linux driver.
#[derive(Debug, Clone)]
pub struct EgressOptions {
    /// Routed or host.
    pub mode: EgressMode,
    /// The address pool of routed egress (a /30 per environment).
    pub pool: Ipv4Cidr,
}

impl Default for EgressOptions {
    fn default() -> Self {
        Self {
            mode: EgressMode::Routed,
            pool: Ipv4Cidr::DEFAULT,
        }
    }
}

/// Errors of routed egress.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// Every slot of the pool is taken.
    #[error("the egress address pool {pool} is exhausted (all {slots} of its /30 slots are held by running environments with egress); give the server a larger --egress-pool")]
    Exhausted { pool: Ipv4Cidr, slots: u32 },
    /// A netlink step failed.
    #[error("cannot {step} for egress: {source}")]
    Link {
        step: String,
        source: std::io::Error,
    },
    /// Routed egress could not be set up at server start.
    #[error("egress is unavailable on this server: {0} (start the server with --egress-mode host to give egress functions the host's network instead)")]
    Unavailable(String),
}

/// Routed egress of one driver: its pool and firewall table.
#[derive(Debug)]
pub(crate) struct Egress {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pool: Mutex<AddrPool>,
    table: String,
    /// What the start-up found worth telling (the DNS resolver).
    warnings: Vec<String>,
}

/// Tables made by this process, so two drivers in one process get two names.
static TABLES: AtomicU32 = AtomicU32::new(0);

impl Egress {
    /// Host set-up: forwarding on, stale tables of dead servers removed, this
    /// driver's table installed.
    pub(crate) fn setup(pool: Ipv4Cidr) -> Result<Self, String> {
        let nft = crate::which("nft").ok_or(
            "the `nft` program (package nftables) is not installed, so the firewall that \
             hides the host from egress environments cannot be set up",
        )?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| format!("cannot enable IPv4 forwarding (net.ipv4.ip_forward): {e}"))?;
        if let Ok(listing) = run_nft(&nft, &["list", "tables"], None) {
            for stale in rules::stale_tables(&listing, |pid| {
                std::path::Path::new(&format!("/proc/{pid}")).exists()
            }) {
                let _ = run_nft(&nft, &["-f", "-"], Some(&rules::delete(&stale)));
            }
        }
        let table = rules::table_name(std::process::id(), TABLES.fetch_add(1, Ordering::Relaxed));
        run_nft(&nft, &["-f", "-"], Some(&rules::ruleset(&table, pool)))
            .map_err(|e| format!("cannot install the egress firewall (nft): {e}"))?;
        let mut warnings = Vec::new();
        if let Some(w) =
            resolver_warning(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        {
            warnings.push(w);
        }
        Ok(Self {
            shared: Arc::new(Shared {
                pool: Mutex::new(AddrPool::new(pool)),
                table,
                warnings,
            }),
        })
    }

    /// The pool's network.
    pub(crate) fn pool(&self) -> Ipv4Cidr {
        self.shared.pool.lock().cidr()
    }

    /// Warnings found at set-up.
    pub(crate) fn warnings(&self) -> &[String] {
        &self.shared.warnings
    }

    /// Slots in use now.
    pub(crate) fn in_use(&self) -> u32 {
        self.shared.pool.lock().in_use()
    }

    /// Gives the environment in `netns` its veth pair, addresses and default route.
    pub(crate) fn attach(&self, netns: &NetNs) -> Result<Lease, EgressError> {
        let step = |step: &str| {
            let step = step.to_string();
            move |source| EgressError::Link { step, source }
        };
        let mut host = Rtnl::open().map_err(step("open a netlink socket"))?;
        // A name taken by another server's environment (or another driver of this
        // process): skip that slot, and put it back at the end of the queue.
        let mut skipped = Vec::new();
        let result = loop {
            let slot = {
                let mut pool = self.shared.pool.lock();
                match pool.allocate() {
                    Some(s) => s,
                    None => {
                        break Err(EgressError::Exhausted {
                            pool: pool.cidr(),
                            slots: pool.cidr().slots(),
                        })
                    }
                }
            };
            match host.create_veth(&slot.veth(), ENV_IF, netns.raw_fd()) {
                Ok(()) => break Ok(slot),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => skipped.push(slot.index),
                Err(e) => {
                    self.shared.pool.lock().free(slot.index);
                    break Err(step(&format!("create veth {}", slot.veth()))(e));
                }
            }
        };
        {
            let mut pool = self.shared.pool.lock();
            for i in skipped {
                pool.free(i);
            }
        }
        let slot = result?;
        // From here the lease owns the slot: an error drops it, which deletes the pair.
        let lease = Lease {
            shared: self.shared.clone(),
            slot,
        };
        let veth = slot.veth();
        let index = host.index(&veth).map_err(step(&format!("find {veth}")))?;
        host.add_address(index, slot.host, Slot::PREFIX)
            .map_err(step(&format!("address {veth}")))?;
        host.up(index).map_err(step(&format!("bring {veth} up")))?;
        in_namespace(netns, move || {
            let mut env = Rtnl::open().map_err(step("open a netlink socket in the namespace"))?;
            let index = env.index(ENV_IF).map_err(step("find eth0"))?;
            env.add_address(index, slot.env, Slot::PREFIX)
                .map_err(step("address eth0"))?;
            env.up(index).map_err(step("bring eth0 up"))?;
            env.default_route(slot.host)
                .map_err(step("add the default route"))
        })?;
        Ok(lease)
    }

    /// Removes the firewall table (clean shutdown).
    pub(crate) fn teardown(&self) {
        if let Some(nft) = crate::which("nft") {
            if let Err(e) = run_nft(&nft, &["-f", "-"], Some(&rules::delete(&self.shared.table))) {
                tracing::warn!(
                    "cannot remove the egress firewall table {}: {e}",
                    self.shared.table
                );
            }
        }
    }
}

/// One environment's slot; dropping it deletes the host-side veth (the kernel
/// deletes its peer) and frees the slot.
#[derive(Debug)]
pub(crate) struct Lease {
    shared: Arc<Shared>,
    slot: Slot,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let veth = self.slot.veth();
        match Rtnl::open().and_then(|mut s| s.delete(&veth)) {
            Ok(()) => self.shared.pool.lock().free(self.slot.index),
            // The name may still exist: keep the slot out of the pool rather than
            // hand out an address and name in use.
            Err(e) => tracing::warn!("cannot delete the egress veth {veth}: {e}"),
        }
    }
}

/// Runs `f` on a short-lived thread inside `netns` (`setns` affects only the
/// calling thread).
fn in_namespace<T: Send>(
    netns: &NetNs,
    f: impl FnOnce() -> Result<T, EgressError> + Send,
) -> Result<T, EgressError> {
    let fd = netns.raw_fd();
    let enter = |source| EgressError::Link {
        step: "enter the environment's network namespace".into(),
        source,
    };
    // The descriptor outlives the thread: `netns` is borrowed until `join` returns.
    std::thread::scope(|s| {
        s.spawn(move || {
            super::net::enter(fd).map_err(enter)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(EgressError::Link {
                step: "configure the namespace".into(),
                source: std::io::Error::other("the thread panicked"),
            })
        })
    })
}

/// Runs `nft` with `args`, feeding `stdin`; its stdout, or its stderr as the error.
fn run_nft(nft: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(nft)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", nft.display()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write to nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "nft {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A warning when `/etc/resolv.conf` (which environments read) names only
/// resolvers on a loopback address, unreachable from an environment's namespace.
pub(crate) fn resolver_warning(resolv_conf: &str) -> Option<String> {
    let servers: Vec<&str> = resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(str::trim)
        .collect();
    let loopback: Vec<&str> = servers
        .iter()
        .copied()
        .filter(|s| {
            s.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        })
        .collect();
    if servers.is_empty() {
        return Some(
            "/etc/resolv.conf names no nameserver: egress functions cannot resolve host names"
                .into(),
        );
    }
    (loopback.len() == servers.len()).then(|| {
        format!(
            "/etc/resolv.conf names only loopback resolvers ({}), which egress environments \
             (in their own network namespace) cannot reach: their DNS lookups will fail. \
             Point /etc/resolv.conf at a resolver on a routable address (e.g. systemd-resolved's \
             upstream list in /run/systemd/resolve/resolv.conf).",
            loopback.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_are_called_out() {
        let w = resolver_warning("# x\nnameserver 127.0.0.53\noptions edns0\n").unwrap();
        assert!(w.contains("only loopback resolvers (127.0.0.53)"), "{w}");
        assert!(resolver_warning("nameserver ::1\n").is_some());
        assert!(resolver_warning("").unwrap().contains("no nameserver"));
        assert_eq!(resolver_warning("nameserver 10.0.0.2\n"), None);
        // One reachable resolver is enough.
        assert_eq!(
            resolver_warning("nameserver 127.0.0.1\nnameserver 1.1.1.1\n"),
            None
        );
    }

    #[test]
    fn the_errors_say_what_to_do() {
        let e = EgressError::Exhausted {
            pool: "10.0.0.0/28".parse().unwrap(),
            slots: 4,
        };
        assert_eq!(e.to_string(), "the egress address pool 10.0.0.0/28 is exhausted (all 4 of its /30 slots are held by running environments with egress); give the server a larger --egress-pool");
        let e = EgressError::Unavailable("nft is missing".into());
        assert!(e.to_string().contains("--egress-mode host"), "{e}");
    }
}
