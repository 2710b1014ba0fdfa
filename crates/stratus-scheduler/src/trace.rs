//! X-Ray trace ids of invocations: `Root=1-{epoch secs, 8 hex}-{24 hex};Parent={16
//! hex};Sampled=0`, generated per invocation or carried over from a caller's
//! `X-Amzn-Trace-Id`, and handed to the runtime as `Lambda-Runtime-Trace-Id` (the
//! runtime clients put it in `_X_AMZN_TRACE_ID`).
//!
//! Generation is on the warm path: the random part comes from the thread's
//! userspace generator (`rand::thread_rng`, seeded once per thread, no system call
//! per id) and the clock from the vDSO.

use std::fmt::Write as _;
use std::sync::Arc;

use rand::Rng as _;

/// A new trace id with a fresh root.
pub fn new_trace_id() -> Arc<str> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut rng = rand::thread_rng();
    let root: u128 = rng.gen::<u128>() >> 32; // 96 bits: 24 hex digits
    let parent: u64 = rng.gen();
    let mut s = String::with_capacity(80);
    let _ = write!(
        s,
        "Root=1-{:08x}-{root:024x};Parent={parent:016x};Sampled=0",
        secs as u32
    );
    Arc::from(s)
}

/// The trace id of an invocation made with `X-Amzn-Trace-Id: header`: the same
/// root (and sampling decision), with a new parent — the invocation's own segment.
/// `None` when the header holds no well-formed root (the caller then starts a
/// trace of its own, as Lambda ignores a malformed header).
pub fn propagate(header: &str) -> Option<Arc<str>> {
    let mut root = None;
    let mut sampled = "0";
    for field in header.split(';') {
        let (k, v) = field.split_once('=')?;
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("root") {
            root = Some(v);
        } else if k.eq_ignore_ascii_case("sampled") && (v == "0" || v == "1") {
            sampled = v;
        }
    }
    let root = root.filter(|r| is_root(r))?;
    let parent: u64 = rand::thread_rng().gen();
    Some(Arc::from(format!(
        "Root={root};Parent={parent:016x};Sampled={sampled}"
    )))
}

/// `1-{8 hex}-{24 hex}`.
fn is_root(r: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut parts = r.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("1"), Some(t), Some(id), None) if hex(t, 8) && hex(id, 24)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn well_formed(id: &str) -> bool {
        let parts: Vec<&str> = id.split(';').collect();
        matches!(parts.as_slice(), [root, parent, sampled]
            if root.strip_prefix("Root=").is_some_and(is_root)
                && parent.strip_prefix("Parent=").is_some_and(|p| p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit()))
                && (*sampled == "Sampled=0" || *sampled == "Sampled=1"))
    }

    #[test]
    fn new_ids_are_well_formed_unique_and_stamped_now() {
        let a = new_trace_id();
        let b = new_trace_id();
        assert!(well_formed(&a), "{a}");
        assert_ne!(a, b);
        let secs = u32::from_str_radix(&a[7..15], 16).unwrap() as u64;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now - secs <= 2, "{a}");
    }

    #[test]
    fn an_incoming_root_is_kept_with_a_new_parent() {
        let root = "1-5759e988-bd862e3fe1be46a994272793";
        let t = propagate(&format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1")).unwrap();
        assert!(t.starts_with(&format!("Root={root};Parent=")), "{t}");
        assert!(t.ends_with(";Sampled=1"), "{t}");
        assert!(!t.contains("53995c3f42cd8ad8"), "{t}");
        assert!(well_formed(&t), "{t}");
        let t = propagate(&format!("Root={root}")).unwrap();
        assert!(t.ends_with(";Sampled=0") && well_formed(&t), "{t}");
        for bad in [
            "",
            "Root=1-xyz-abc",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Parent=53995c3f42cd8ad8",
            "garbage",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
        ] {
            assert_eq!(propagate(bad), None, "{bad}");
        }
    }
}
