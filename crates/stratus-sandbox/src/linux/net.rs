//! Network namespaces of isolated environments: a fresh namespace with only `lo`
//! up, and the two listeners the environment talks to, bound *inside* it (the
//! Runtime API on 127.0.0.1:9001, the Stratus API on 127.0.0.1:9002). The server
//! serves those sockets from the host, so an environment reaches exactly them and
//! nothing else: not the host's ports, not another environment's Runtime API.
//!
//! The namespace is made on a short-lived thread (`unshare(CLONE_NEWNET)` affects
//! only the calling thread), which returns a descriptor of it for the child to
//! `setns` into, and the listeners.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};

/// The Runtime API address inside an isolated environment.
pub const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";
/// The Stratus API address inside an isolated environment (`AWS_ENDPOINT_URL`).
pub const STRATUS_API_ADDR: &str = "127.0.0.1:9002";

/// A network namespace, held open by its descriptor.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
}

impl NetNs {
    /// The namespace's descriptor (for `setns`).
    pub(crate) fn raw_fd(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }
}

/// Listeners bound inside an environment's namespace, for the server to serve.
#[derive(Debug)]
pub struct NetListeners {
    /// The Runtime API, [`RUNTIME_API_ADDR`].
    pub runtime: TcpListener,
    /// The Stratus API, [`STRATUS_API_ADDR`].
    pub api: TcpListener,
}

/// Makes a namespace and binds the listeners in it.
pub(crate) fn create() -> std::io::Result<(NetNs, NetListeners)> {
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(|| -> std::io::Result<(NetNs, NetListeners)> {
            sys::unshare_net()?;
            sys::loopback_up()?;
            let runtime = TcpListener::bind(RUNTIME_API_ADDR)?;
            let api = TcpListener::bind(STRATUS_API_ADDR)?;
            runtime.set_nonblocking(true)?;
            api.set_nonblocking(true)?;
            let fd = std::fs::File::open("/proc/thread-self/ns/net")?;
            Ok((NetNs { fd: fd.into() }, NetListeners { runtime, api }))
        })?
        .join()
        .map_err(|_| std::io::Error::other("the netns thread panicked"))?
}

/// Moves the calling thread into `netns` (a descriptor of a network namespace).
pub(crate) fn enter(netns: libc::c_int) -> std::io::Result<()> {
    sys::setns_net(netns)
}

#[allow(unsafe_code)]
mod sys {
    use std::io;

    pub(super) fn setns_net(fd: libc::c_int) -> io::Result<()> {
        // SAFETY: setns(2) on a descriptor we hold; it affects only this thread.
        if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(super) fn unshare_net() -> io::Result<()> {
        // SAFETY: unshare(2) with a flag constant; it affects only this thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `ip link set lo up` through SIOCSIFFLAGS.
    pub(super) fn loopback_up() -> io::Result<()> {
        // SAFETY: a plain datagram socket, closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: ifreq is plain old data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own; the
        // flags member of the union is the one these requests use.
        let rc = unsafe {
            if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0 {
                req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                libc::ioctl(sock, libc::SIOCSIFFLAGS, &req)
            } else {
                -1
            }
        };
        let err = io::Error::last_os_error();
        // SAFETY: `sock` is ours.
        unsafe { libc::close(sock) };
        if rc != 0 {
            return Err(err);
        }
        Ok(())
    }
}
