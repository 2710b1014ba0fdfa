//! The address pool of routed egress: a private IPv4 range cut into /30 slots, one
//! per environment: the host-side veth (address `.1` of the slot), named `stx` and
//! the slot's network address in hex, and the environment's `eth0` (address `.2`).
//! Naming by address makes a name taken exactly when the address is, also across
//! servers with different pools. Pure bookkeeping, no syscalls.

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Prefix of every host-side veth name, so firewall rules match `iifname "stx*"`.
pub const VETH_PREFIX: &str = "stx";

/// An IPv4 network, `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    base: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The default pool: carrier-grade NAT space (RFC 6598), unlikely to clash with
    /// a LAN or a cloud VPC.
    pub const DEFAULT: Ipv4Cidr = Ipv4Cidr {
        base: Ipv4Addr::new(100, 96, 0, 0),
        prefix: 16,
    };

    /// The network's first address.
    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// How many /30 slots fit (`2^(30 - prefix)`).
    pub fn slots(&self) -> u32 {
        1u32 << (30 - self.prefix)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    /// `100.96.0.0/16`: the prefix 8..=30 (a /30 per environment), no host bits set.
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not an IPv4 network (like 100.96.0.0/16)"))?;
        let base: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` in `{s}` is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| {
                format!("the prefix of `{s}` must be a number from 8 to 30 (a /30 per environment)")
            })?;
        let mask = u32::MAX << (32 - prefix);
        if u32::from(base) & !mask != 0 {
            let net = Ipv4Addr::from(u32::from(base) & mask);
            return Err(format!(
                "`{s}` has host bits set: the network is {net}/{prefix}"
            ));
        }
        Ok(Self { base, prefix })
    }
}

/// One environment's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Index in the pool; names the host-side veth.
    pub(crate) index: u32,
    /// The host end's address (the environment's gateway).
    pub(crate) host: Ipv4Addr,
    /// The environment's address.
    pub(crate) env: Ipv4Addr,
}

impl Slot {
    /// Prefix length of both addresses.
    pub(crate) const PREFIX: u8 = 30;

    /// The host-side veth's name: `stx` and the slot's network address in hex
    /// (`stx64600004` for 100.96.0.4/30; 11 characters, under the kernel's 15).
    pub(crate) fn veth(&self) -> String {
        format!("{VETH_PREFIX}{:08x}", u32::from(self.host) - 1)
    }
}

/// Hands out slots; freed ones are reused oldest first (a just-freed address is the
/// last to come back, so late packets of a dead environment meet no new one).
#[derive(Debug)]
pub(crate) struct AddrPool {
    cidr: Ipv4Cidr,
    /// Slots never handed out start here.
    next: u32,
    free: VecDeque<u32>,
    in_use: u32,
}

impl AddrPool {
    /// An empty pool over `cidr`.
    pub(crate) fn new(cidr: Ipv4Cidr) -> Self {
        Self {
            cidr,
            next: 0,
            free: VecDeque::new(),
            in_use: 0,
        }
    }

    /// The slot at `index`.
    pub(crate) fn slot(&self, index: u32) -> Slot {
        let base = u32::from(self.cidr.base) + index * 4;
        Slot {
            index,
            host: Ipv4Addr::from(base + 1),
            env: Ipv4Addr::from(base + 2),
        }
    }

    /// A free slot, or `None` when every slot is in use.
    pub(crate) fn allocate(&mut self) -> Option<Slot> {
        let index = match self.free.pop_front() {
            Some(i) => i,
            None if self.next < self.cidr.slots() => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.in_use += 1;
        Some(self.slot(index))
    }

    /// Gives `index` back.
    pub(crate) fn free(&mut self, index: u32) {
        debug_assert!(index < self.next && !self.free.contains(&index));
        self.in_use = self.in_use.saturating_sub(1);
        self.free.push_back(index);
    }

    /// Slots handed out and not freed.
    pub(crate) fn in_use(&self) -> u32 {
        self.in_use
    }

    /// The pool's network.
    pub(crate) fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_networks_clearly() {
        let c: Ipv4Cidr = "100.96.0.0/16".parse().unwrap();
        assert_eq!(c, Ipv4Cidr::DEFAULT);
        assert_eq!(c.slots(), 16384);
        assert_eq!(c.to_string(), "100.96.0.0/16");
        assert_eq!("10.0.0.0/30".parse::<Ipv4Cidr>().unwrap().slots(), 1);
        for (bad, says) in [
            ("100.96.0.0", "not an IPv4 network"),
            (
                "100.96.0/16",
                "`100.96.0` in `100.96.0/16` is not an IPv4 address",
            ),
            ("100.96.0.0/31", "from 8 to 30"),
            ("100.96.0.0/x", "from 8 to 30"),
            (
                "100.96.1.0/16",
                "host bits set: the network is 100.96.0.0/16",
            ),
        ] {
            let e = bad.parse::<Ipv4Cidr>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn slots_are_disjoint_30s_named_by_index() {
        let mut p = AddrPool::new("100.96.0.0/16".parse().unwrap());
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_eq!(
            (a.index, a.host, a.env, a.veth().as_str()),
            (
                0,
                Ipv4Addr::new(100, 96, 0, 1),
                Ipv4Addr::new(100, 96, 0, 2),
                "stx64600000"
            )
        );
        assert_eq!(
            (b.host, b.env),
            (Ipv4Addr::new(100, 96, 0, 5), Ipv4Addr::new(100, 96, 0, 6))
        );
        assert_eq!(p.slot(16383).env, Ipv4Addr::new(100, 96, 255, 254));
        assert_eq!(b.veth(), "stx64600004");
        assert_eq!(p.slot(16383).veth(), "stx6460fffc");
    }

    #[test]
    fn exhausts_and_reuses_freed_slots_oldest_first() {
        let mut p = AddrPool::new("10.1.0.0/28".parse().unwrap());
        let got: Vec<u32> = (0..4).map(|_| p.allocate().unwrap().index).collect();
        assert_eq!(got, [0, 1, 2, 3]);
        assert_eq!(p.allocate(), None, "4 slots in a /28");
        assert_eq!(p.in_use(), 4);
        p.free(2);
        p.free(0);
        assert_eq!(p.in_use(), 2);
        assert_eq!(p.allocate().unwrap().index, 2);
        assert_eq!(p.allocate().unwrap().index, 0);
        assert_eq!(p.allocate(), None);
        // Many short lives leak nothing.
        for _ in 0..1000 {
            p.free(1);
            assert_eq!(p.allocate().unwrap().index, 1);
        }
        assert_eq!(p.in_use(), 4);
    }
}
