//! The launch message a parked keeper reads once it is handed an environment:
//! program, arguments, environment, working directory and the mount plan, encoded
//! by the server into one buffer and decoded by the child *without allocating*
//! (C strings are borrowed from the buffer; pointer arrays are fixed-size).
//!
//! Layout (little-endian): `program\0 cwd\0 u32 argc (arg\0)* u32 envc (K=V\0)*
//! root\0 put_old\0 u32 opc (op)*`, each op a tag byte and its fields.

use std::ffi::{CStr, CString};

use super::mounts::{Op, Plan};

/// Most arguments and environment entries one launch may carry.
pub(crate) const MAX_ARGS: usize = 256;
/// See [`MAX_ARGS`].
pub(crate) const MAX_ENV: usize = 4096;
/// Largest encoded message.
pub(crate) const MAX_BYTES: usize = 1 << 20;

const T_MKDIR: u8 = 1;
const T_TMPFS: u8 = 2;
const T_BIND_DIR: u8 = 3;
const T_BIND_FILE: u8 = 4;
const T_SYMLINK: u8 = 5;
const T_PROC: u8 = 6;

/// Encodes a launch.
pub(crate) fn encode(
    program: &CStr,
    cwd: &CStr,
    args: &[CString],
    env: &[CString],
    plan: &Plan,
) -> Result<Vec<u8>, String> {
    if args.len() > MAX_ARGS || env.len() > MAX_ENV {
        return Err(format!(
            "at most {MAX_ARGS} arguments and {MAX_ENV} environment variables"
        ));
    }
    let mut b = Vec::new();
    let s = |b: &mut Vec<u8>, c: &CStr| b.extend_from_slice(c.to_bytes_with_nul());
    let n = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
    s(&mut b, program);
    s(&mut b, cwd);
    n(&mut b, args.len() as u32);
    for a in args {
        s(&mut b, a);
    }
    n(&mut b, env.len() as u32);
    for e in env {
        s(&mut b, e);
    }
    s(&mut b, &plan.root);
    s(&mut b, &plan.put_old);
    n(&mut b, plan.ops.len() as u32);
    for op in &plan.ops {
        match op {
            Op::Mkdir(p) => {
                b.push(T_MKDIR);
                s(&mut b, p);
            }
            Op::Tmpfs {
                target,
                options,
                flags,
            } => {
                b.push(T_TMPFS);
                s(&mut b, target);
                s(&mut b, options);
                // c_ulong is u64 or u32 by target; the message always carries u64.
                #[allow(clippy::useless_conversion)]
                let flags = u64::from(*flags);
                b.extend_from_slice(&flags.to_le_bytes());
            }
            Op::BindDir {
                source,
                target,
                read_only,
            } => {
                b.push(T_BIND_DIR);
                s(&mut b, source);
                s(&mut b, target);
                b.push(u8::from(*read_only));
            }
            Op::BindFile { source, target } => {
                b.push(T_BIND_FILE);
                s(&mut b, source);
                s(&mut b, target);
            }
            Op::Symlink { link, to } => {
                b.push(T_SYMLINK);
                s(&mut b, link);
                s(&mut b, to);
            }
            Op::Proc(p) => {
                b.push(T_PROC);
                s(&mut b, p);
            }
        }
    }
    if b.len() > MAX_BYTES {
        return Err(format!("the launch is larger than {MAX_BYTES} bytes"));
    }
    Ok(b)
}

/// A borrowed op, as the child applies it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpRef<'a> {
    Mkdir(&'a CStr),
    Tmpfs {
        target: &'a CStr,
        options: &'a CStr,
        flags: libc::c_ulong,
    },
    BindDir {
        source: &'a CStr,
        target: &'a CStr,
        read_only: bool,
    },
    BindFile {
        source: &'a CStr,
        target: &'a CStr,
    },
    Symlink {
        link: &'a CStr,
        to: &'a CStr,
    },
    Proc(&'a CStr),
}

/// Reads a message without allocating. Every read is bounds-checked; a malformed
/// message (which only the server itself can send) yields `None`.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn cstr(&mut self) -> Option<&'a CStr> {
        let rest = self.buf.get(self.pos..)?;
        let c = CStr::from_bytes_until_nul(rest).ok()?;
        self.pos += c.to_bytes_with_nul().len();
        Some(c)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let b = self.buf.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.buf.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }

    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub(crate) fn op(&mut self) -> Option<OpRef<'a>> {
        Some(match self.u8()? {
            T_MKDIR => OpRef::Mkdir(self.cstr()?),
            T_TMPFS => OpRef::Tmpfs {
                target: self.cstr()?,
                options: self.cstr()?,
                #[allow(clippy::useless_conversion)]
                flags: libc::c_ulong::try_from(self.u64()?).ok()?,
            },
            T_BIND_DIR => OpRef::BindDir {
                source: self.cstr()?,
                target: self.cstr()?,
                read_only: self.u8()? != 0,
            },
            T_BIND_FILE => OpRef::BindFile {
                source: self.cstr()?,
                target: self.cstr()?,
            },
            T_SYMLINK => OpRef::Symlink {
                link: self.cstr()?,
                to: self.cstr()?,
            },
            T_PROC => OpRef::Proc(self.cstr()?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn round_trip() {
        let plan = Plan {
            root: c("/r"),
            put_old: c("/r/.old"),
            ops: vec![
                Op::Mkdir(c("/r/usr")),
                Op::Tmpfs {
                    target: c("/r/tmp"),
                    options: c("size=1m"),
                    flags: libc::MS_NOSUID,
                },
                Op::BindDir {
                    source: c("/usr"),
                    target: c("/r/usr"),
                    read_only: true,
                },
                Op::BindFile {
                    source: c("/dev/null"),
                    target: c("/r/dev/null"),
                },
                Op::Symlink {
                    link: c("/r/bin"),
                    to: c("usr/bin"),
                },
                Op::Proc(c("/r/proc")),
            ],
        };
        let b = encode(
            &c("/bin/sh"),
            &c("/var/task"),
            &[c("/bin/sh"), c("-c"), c("true")],
            &[c("A=1"), c("B=")],
            &plan,
        )
        .unwrap();
        let mut r = Reader::new(&b);
        assert_eq!(r.cstr().unwrap(), c"/bin/sh");
        assert_eq!(r.cstr().unwrap(), c"/var/task");
        assert_eq!(r.u32(), Some(3));
        for want in [c"/bin/sh", c"-c", c"true"] {
            assert_eq!(r.cstr().unwrap(), want);
        }
        assert_eq!(r.u32(), Some(2));
        assert_eq!(r.cstr().unwrap(), c"A=1");
        assert_eq!(r.cstr().unwrap(), c"B=");
        assert_eq!(r.cstr().unwrap(), c"/r");
        assert_eq!(r.cstr().unwrap(), c"/r/.old");
        assert_eq!(r.u32(), Some(6));
        assert_eq!(r.op(), Some(OpRef::Mkdir(c"/r/usr")));
        assert_eq!(
            r.op(),
            Some(OpRef::Tmpfs {
                target: c"/r/tmp",
                options: c"size=1m",
                flags: libc::MS_NOSUID
            })
        );
        assert_eq!(
            r.op(),
            Some(OpRef::BindDir {
                source: c"/usr",
                target: c"/r/usr",
                read_only: true
            })
        );
        assert!(matches!(r.op(), Some(OpRef::BindFile { .. })));
        assert!(matches!(r.op(), Some(OpRef::Symlink { .. })));
        assert_eq!(r.op(), Some(OpRef::Proc(c"/r/proc")));
        assert_eq!(r.op(), None, "end of message");
        // Truncated messages are refused, not read past.
        let mut r = Reader::new(&b[..5]);
        assert!(r.cstr().is_none());
        let too_many: Vec<CString> = (0..MAX_ARGS + 1).map(|_| c("x")).collect();
        assert!(encode(&c("/p"), &c("/"), &too_many, &[], &plan).is_err());
    }
}
