//! Spotting native code in a package that cannot run where the function runs.
//!
//! A package built on a Mac or on an x86_64 laptop for an arm64 function may carry native
//! modules (`.node` addons, Python extension `.so` files, shared libraries) that fail only
//! when the function is invoked. [`check_native`] looks at every file's first bytes and
//! reads the fixed-offset header fields that say what a binary is for:
//!
//! * ELF (`\x7fELF`): class (32/64-bit) at byte 4, data encoding at 5, OS ABI at 7 and
//!   `e_machine` at 18. Fine when 64-bit little-endian, for the target's machine
//!   (62 = x86_64, 183 = aarch64), with OS ABI System V or GNU/Linux.
//! * Mach-O (`feedface`/`feedfacf` either byte order, and universal `cafebabe`): always
//!   macOS, so always a warning; the CPU types are named in it. A `cafebabe` file with
//!   more than 30 architectures is a Java class file, not Mach-O.
//! * PE (`MZ` with a `PE\0\0` signature at the offset stored at 0x3c): always Windows.
//!
//! Files named `*.dylib`, `*.dll` or `*.pyd` whose header is not recognized are still
//! reported, by name. Python wheels' `*.dist-info/WHEEL` files are read too: a wheel none
//! of whose `Tag:` lines names a platform that loads on Linux for the target architecture
//! (`any`, `linux_<arch>`, `manylinux*_<arch>`) is reported; `musllinux` wheels are
//! reported because Lambda's Linux uses glibc.
//!
//! These are warnings, never errors: a package may legitimately ship binaries it never
//! loads, typically prebuilt addons for every platform of which only the Linux one is
//! used. [`NativeWarning::compatible_sibling`] flags that case.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::selection::SelectedFile;

/// Bytes read from the start of every file.
const HEADER_LEN: u64 = 64;
/// Largest `WHEEL` metadata file read.
const MAX_WHEEL_LEN: u64 = 64 * 1024;
/// More architectures than this in a `cafebabe` header means a Java class file.
const MAX_FAT_ARCHS: u32 = 30;
/// Largest PE header offset (`e_lfanew`) followed.
const MAX_PE_OFFSET: u32 = 1 << 20;

/// ELF machine numbers.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The platform a function runs on: Linux on one of Lambda's two architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Linux on x86_64 (Lambda's `x86_64`).
    LinuxX86_64,
    /// Linux on 64-bit ARM (Lambda's `arm64`).
    LinuxAarch64,
}

impl Target {
    /// The architecture as Linux and Python platform tags name it: `x86_64` or `aarch64`.
    pub const fn arch(self) -> &'static str {
        match self {
            Self::LinuxX86_64 => "x86_64",
            Self::LinuxAarch64 => "aarch64",
        }
    }

    /// The architecture as Lambda names it: `x86_64` or `arm64`.
    pub const fn lambda_architecture(self) -> &'static str {
        match self {
            Self::LinuxX86_64 => "x86_64",
            Self::LinuxAarch64 => "arm64",
        }
    }

    /// Parses a Lambda architecture (`x86_64`, `arm64`; `aarch64` and `amd64` are
    /// accepted too).
    pub fn from_lambda_architecture(arch: &str) -> Option<Self> {
        match arch {
            "x86_64" | "amd64" => Some(Self::LinuxX86_64),
            "arm64" | "aarch64" => Some(Self::LinuxAarch64),
            _ => None,
        }
    }

    /// The target matching the machine this code runs on, if it is one of the two.
    pub fn host() -> Option<Self> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        Self::from_lambda_architecture(std::env::consts::ARCH)
    }

    /// The pip platform tag for binary wheels that load on Lambda: `manylinux2014_<arch>`
    /// (glibc 2.17, older than every Lambda runtime's).
    pub fn manylinux_platform(self) -> String {
        format!("manylinux2014_{}", self.arch())
    }

    /// The ELF `e_machine` value of this target.
    const fn elf_machine(self) -> u16 {
        match self {
            Self::LinuxX86_64 => EM_X86_64,
            Self::LinuxAarch64 => EM_AARCH64,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linux {}", self.arch())
    }
}

/// An executable file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryFormat {
    /// ELF (Linux and other Unixes).
    Elf,
    /// Mach-O (macOS).
    MachO,
    /// PE/COFF (Windows).
    Pe,
}

impl fmt::Display for BinaryFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Elf => "ELF",
            Self::MachO => "Mach-O",
            Self::Pe => "PE",
        })
    }
}

/// What is wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NativeIssue {
    /// A binary for another operating system.
    OtherOs {
        /// Its format.
        format: BinaryFormat,
        /// The operating system (`macOS`, `Windows`, `FreeBSD`, ...).
        os: String,
        /// Its architecture(s), comma-separated.
        arch: String,
    },
    /// A Linux binary for another architecture (or word size or byte order).
    OtherArch {
        /// Its architecture.
        arch: String,
    },
    /// A file whose name says it is a macOS or Windows library, with an unrecognized header.
    ForeignByName {
        /// What the name suggests (`macOS dynamic library`, `Windows DLL`).
        kind: &'static str,
    },
    /// A Python wheel none of whose tags names a platform that loads on the target.
    WheelPlatform {
        /// The wheel's tags (`cp311-cp311-macosx_11_0_arm64`).
        tags: Vec<String>,
    },
    /// The file could not be read.
    Unreadable {
        /// The I/O error.
        error: String,
    },
}

/// A file in a package that will probably not load where the function runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeWarning {
    /// The file's name inside the package.
    pub zip_path: String,
    /// The file on disk.
    pub source: PathBuf,
    /// What is wrong.
    pub issue: NativeIssue,
    /// The platform checked against.
    pub target: Target,
    /// True when the same package (the `node_modules/<name>` directory, or the first path
    /// component) also holds a file of the same name built for the target: prebuilt
    /// binaries for several platforms, of which the right one is probably chosen at run
    /// time. A CLI may show these less loudly.
    pub compatible_sibling: bool,
}

impl fmt::Display for NativeWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = self.target;
        let path = &self.zip_path;
        match &self.issue {
            NativeIssue::OtherOs { format, os, arch } => write!(
                f,
                "{path} is a native binary built for {os} ({format}, {arch}); \
                 it cannot load on {target}"
            )?,
            NativeIssue::OtherArch { arch } => write!(
                f,
                "{path} is a native binary built for linux {arch}; it cannot load on {target}"
            )?,
            NativeIssue::ForeignByName { kind } => write!(
                f,
                "{path} looks like a {kind} by its name; it cannot load on {target}"
            )?,
            NativeIssue::WheelPlatform { tags } => write!(
                f,
                "{path}: the Python package was installed from a wheel built for {} \
                 and will probably not load on {target}; install it for Linux \
                 (pip --platform {} --only-binary=:all:)",
                tags.join(", "),
                target.manylinux_platform()
            )?,
            NativeIssue::Unreadable { error } => {
                write!(f, "{path} could not be checked for native code: {error}")?;
            }
        }
        if self.compatible_sibling {
            write!(f, " (a {target} build of the same file is also present)")?;
        }
        Ok(())
    }
}

/// What a binary header says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BinaryInfo {
    format: BinaryFormat,
    /// `None` when the format does not say (ELF with OS ABI System V or Linux).
    os: Option<String>,
    arch: String,
    /// Whether it loads on the target.
    compatible: bool,
}

/// Checks `files` for native code and Python wheels that will not load on `target`.
///
/// Reads the first bytes of every file (and every `*.dist-info/WHEEL`). Returns one
/// warning per offending file, in the order of `files`.
pub fn check_native(files: &[SelectedFile], target: Target) -> Vec<NativeWarning> {
    let mut warnings = Vec::new();
    // (package root, file name) of binaries that do load on the target.
    let mut compatible: HashSet<(String, String)> = HashSet::new();
    for file in files {
        let issue = if file.zip_path.ends_with(".dist-info/WHEEL") {
            check_wheel(file, target)
        } else {
            match inspect(file, target) {
                Ok(Some(info)) if info.compatible => {
                    compatible.insert(sibling_key(&file.zip_path));
                    None
                }
                Ok(Some(info)) => Some(issue_for(info)),
                Ok(None) => foreign_by_name(&file.zip_path),
                Err(e) => Some(NativeIssue::Unreadable {
                    error: e.to_string(),
                }),
            }
        };
        if let Some(issue) = issue {
            warnings.push(NativeWarning {
                zip_path: file.zip_path.clone(),
                source: file.source.clone(),
                issue,
                target,
                compatible_sibling: false,
            });
        }
    }
    for w in &mut warnings {
        if matches!(
            w.issue,
            NativeIssue::OtherOs { .. } | NativeIssue::OtherArch { .. }
        ) {
            w.compatible_sibling = compatible.contains(&sibling_key(&w.zip_path));
        }
    }
    warnings
}

/// The warning for a binary that does not load on the target.
fn issue_for(info: BinaryInfo) -> NativeIssue {
    match info.os {
        Some(os) => NativeIssue::OtherOs {
            format: info.format,
            os,
            arch: info.arch,
        },
        None => NativeIssue::OtherArch { arch: info.arch },
    }
}

/// A warning based on the file name alone, for names that only other systems use.
fn foreign_by_name(zip_path: &str) -> Option<NativeIssue> {
    let name = zip_path.rsplit('/').next().unwrap_or(zip_path);
    let lower = name.to_ascii_lowercase();
    let kind = if lower.ends_with(".dylib") {
        "macOS dynamic library"
    } else if lower.ends_with(".dll") || lower.ends_with(".pyd") {
        "Windows DLL"
    } else {
        return None;
    };
    Some(NativeIssue::ForeignByName { kind })
}

/// Reads a file's header; `Ok(None)` when it is not a recognized binary.
fn inspect(file: &SelectedFile, target: Target) -> io::Result<Option<BinaryInfo>> {
    let mut f = File::open(&file.source)?;
    let header = read_at(&mut f, 0, HEADER_LEN)?;
    if header.starts_with(b"\x7fELF") {
        return Ok(parse_elf(&header, target));
    }
    if header.starts_with(b"MZ") {
        return parse_pe(&mut f, &header);
    }
    if header.len() >= 8 {
        return parse_macho(&mut f, &header);
    }
    Ok(None)
}

/// Reads up to `len` bytes at `offset` (fewer at end of file).
fn read_at(f: &mut File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

fn u16_at(b: &[u8], at: usize, little: bool) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if little {
        u16::from_le_bytes(bytes)
    } else {
        u16::from_be_bytes(bytes)
    })
}

fn u32_at(b: &[u8], at: usize, little: bool) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(bytes)
    } else {
        u32::from_be_bytes(bytes)
    })
}

/// Parses the ELF identification and `e_machine`.
fn parse_elf(h: &[u8], target: Target) -> Option<BinaryInfo> {
    let class64 = match h.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match h.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let osabi = *h.get(7)?;
    let machine = u16_at(h, 18, little)?;
    let os = match osabi {
        1 => Some("HP-UX"),
        2 => Some("NetBSD"),
        6 => Some("Solaris"),
        7 => Some("AIX"),
        8 => Some("IRIX"),
        9 => Some("FreeBSD"),
        12 => Some("OpenBSD"),
        // 0 (System V) and 3 (GNU/Linux) are what Linux toolchains write; other values
        // are too rare to name and are judged by architecture alone.
        _ => None,
    };
    let mut arch = elf_machine_name(machine);
    if !class64 && matches!(machine, EM_X86_64 | EM_AARCH64) {
        arch.push_str(" (32-bit ABI)");
    }
    if !little {
        arch.push_str(" (big-endian)");
    }
    let compatible = os.is_none() && class64 && little && machine == target.elf_machine();
    Some(BinaryInfo {
        format: BinaryFormat::Elf,
        os: os.map(str::to_owned),
        arch,
        compatible,
    })
}

fn elf_machine_name(machine: u16) -> String {
    match machine {
        2 => "sparc",
        3 => "x86 (32-bit)",
        8 => "mips",
        20 => "powerpc",
        21 => "powerpc64",
        22 => "s390x",
        40 => "arm (32-bit)",
        43 => "sparc64",
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        243 => "riscv",
        258 => "loongarch",
        other => return format!("machine {other}"),
    }
    .to_owned()
}

/// Parses a PE header: `MZ`, then `PE\0\0` and the COFF machine at `e_lfanew`.
fn parse_pe(f: &mut File, h: &[u8]) -> io::Result<Option<BinaryInfo>> {
    let Some(offset) = u32_at(h, 0x3c, true) else {
        return Ok(None);
    };
    if offset > MAX_PE_OFFSET {
        return Ok(None);
    }
    let sig = read_at(f, u64::from(offset), 6)?;
    if sig.len() < 6 || &sig[..4] != b"PE\0\0" {
        return Ok(None);
    }
    let machine = u16_at(&sig, 4, true).unwrap_or(0);
    let arch = match machine {
        0x014c => "x86".to_owned(),
        0x8664 => "x86_64".to_owned(),
        0xaa64 => "arm64".to_owned(),
        0x01c0 | 0x01c4 => "arm".to_owned(),
        0 => "any CPU".to_owned(),
        other => format!("machine {other:#06x}"),
    };
    Ok(Some(BinaryInfo {
        format: BinaryFormat::Pe,
        os: Some("Windows".to_owned()),
        arch,
        compatible: false,
    }))
}

/// Parses a Mach-O header, thin (either byte order) or universal.
fn parse_macho(f: &mut File, h: &[u8]) -> io::Result<Option<BinaryInfo>> {
    let Some(magic) = u32_at(h, 0, false) else {
        return Ok(None);
    };
    let cpus: Vec<u32> = match magic {
        0xfeed_face | 0xfeed_facf => u32_at(h, 4, false).into_iter().collect(),
        0xcefa_edfe | 0xcffa_edfe => u32_at(h, 4, true).into_iter().collect(),
        0xcafe_babe | 0xcafe_babf => {
            let count = u32_at(h, 4, false).unwrap_or(0);
            if count == 0 || count > MAX_FAT_ARCHS {
                return Ok(None);
            }
            let entry = if magic == 0xcafe_babf { 32 } else { 20 };
            let table = read_at(f, 8, u64::from(count) * entry)?;
            (0..count as usize)
                .filter_map(|i| u32_at(&table, i * entry as usize, false))
                .collect()
        }
        _ => return Ok(None),
    };
    let arch = cpus
        .iter()
        .map(|&c| macho_cpu_name(c))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Some(BinaryInfo {
        format: BinaryFormat::MachO,
        os: Some("macOS".to_owned()),
        arch,
        compatible: false,
    }))
}

fn macho_cpu_name(cpu: u32) -> String {
    match cpu {
        7 => "x86".to_owned(),
        0x0100_0007 => "x86_64".to_owned(),
        12 => "arm".to_owned(),
        0x0100_000c => "arm64".to_owned(),
        0x0200_000c => "arm64_32".to_owned(),
        18 => "ppc".to_owned(),
        0x0100_0012 => "ppc64".to_owned(),
        other => format!("cpu type {other:#x}"),
    }
}

/// Checks a wheel's `WHEEL` metadata for a platform tag that loads on the target.
fn check_wheel(file: &SelectedFile, target: Target) -> Option<NativeIssue> {
    let mut text = String::new();
    let read =
        File::open(&file.source).and_then(|f| f.take(MAX_WHEEL_LEN).read_to_string(&mut text));
    if let Err(e) = read {
        return Some(NativeIssue::Unreadable {
            error: e.to_string(),
        });
    }
    let tags: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Tag:"))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if tags.is_empty() || tags.iter().any(|t| tag_loads_on(t, target)) {
        return None;
    }
    Some(NativeIssue::WheelPlatform { tags })
}

/// Whether a wheel tag (`python-abi-platform`, platform possibly `.`-compressed) names a
/// platform that loads on `target`.
fn tag_loads_on(tag: &str, target: Target) -> bool {
    let Some(platforms) = tag.splitn(3, '-').nth(2) else {
        return false;
    };
    let arch_suffix = format!("_{}", target.arch());
    platforms.split('.').any(|p| {
        p == "any"
            || p == format!("linux{arch_suffix}")
            || (p.starts_with("manylinux") && p.ends_with(&arch_suffix))
    })
}

/// The package a file belongs to and its file name, to find sibling builds.
fn sibling_key(zip_path: &str) -> (String, String) {
    let parts: Vec<&str> = zip_path.split('/').collect();
    let name = parts.last().copied().unwrap_or_default().to_owned();
    let root = match parts.iter().rposition(|p| *p == "node_modules") {
        Some(i) => {
            let scoped = parts.get(i + 1).is_some_and(|p| p.starts_with('@'));
            let end = (i + if scoped { 3 } else { 2 }).min(parts.len().saturating_sub(1));
            parts[..end].join("/")
        }
        None if parts.len() > 1 => parts[0].to_owned(),
        None => String::new(),
    };
    (root, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    /// A 64-byte ELF header: class, data encoding, OS ABI and machine as given.
    fn elf(class: u8, data: u8, osabi: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        h[6] = 1;
        h[7] = osabi;
        let m = if data == 2 {
            machine.to_be_bytes()
        } else {
            machine.to_le_bytes()
        };
        h[16] = 3; // ET_DYN
        h[18..20].copy_from_slice(&m);
        h
    }

    /// A thin 64-bit little-endian Mach-O header for `cpu`.
    fn macho(cpu: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&0xfeed_facf_u32.to_le_bytes());
        h.extend_from_slice(&cpu.to_le_bytes());
        h.extend_from_slice(&[0u8; 24]);
        h
    }

    /// A universal Mach-O header with the given CPU types.
    fn fat(cpus: &[u32]) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&0xcafe_babe_u32.to_be_bytes());
        h.extend_from_slice(&(cpus.len() as u32).to_be_bytes());
        for (i, c) in cpus.iter().enumerate() {
            h.extend_from_slice(&c.to_be_bytes());
            h.extend_from_slice(&0u32.to_be_bytes());
            h.extend_from_slice(&(4096 * (i as u32 + 1)).to_be_bytes());
            h.extend_from_slice(&100u32.to_be_bytes());
            h.extend_from_slice(&12u32.to_be_bytes());
        }
        h
    }

    /// A minimal PE file: DOS header pointing at a `PE\0\0` signature at 0x80.
    fn pe(machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 0x80];
        h[..2].copy_from_slice(b"MZ");
        h[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        h.extend_from_slice(b"PE\0\0");
        h.extend_from_slice(&machine.to_le_bytes());
        h.extend_from_slice(&[0u8; 18]);
        h
    }

    fn files(root: &Path, entries: &[(&str, Vec<u8>)]) -> Vec<SelectedFile> {
        entries
            .iter()
            .map(|(name, bytes)| {
                let p = root.join(name);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, bytes).unwrap();
                SelectedFile {
                    zip_path: (*name).to_owned(),
                    source: p,
                    executable: false,
                }
            })
            .collect()
    }

    fn summary(w: &[NativeWarning]) -> Vec<(String, String)> {
        w.iter()
            .map(|w| {
                let kind = match &w.issue {
                    NativeIssue::OtherOs { os, arch, .. } => format!("os {os} {arch}"),
                    NativeIssue::OtherArch { arch } => format!("arch {arch}"),
                    NativeIssue::ForeignByName { kind } => format!("name {kind}"),
                    NativeIssue::WheelPlatform { tags } => format!("wheel {}", tags.join(" ")),
                    NativeIssue::Unreadable { .. } => "unreadable".to_owned(),
                };
                (w.zip_path.clone(), kind)
            })
            .collect()
    }

    #[test]
    fn binaries_for_other_platforms_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let fs_ = files(
            dir.path(),
            &[
                ("ok_x86.node", elf(2, 1, 0, EM_X86_64)),
                ("ok_linux_abi.so", elf(2, 1, 3, EM_X86_64)),
                ("arm.so.1.2", elf(2, 1, 0, EM_AARCH64)),
                ("i386.so", elf(1, 1, 0, 3)),
                ("freebsd.so", elf(2, 1, 9, EM_X86_64)),
                ("bigendian.so", elf(2, 2, 0, EM_AARCH64)),
                ("mac.node", macho(0x0100_000c)),
                ("universal.dylib", fat(&[0x0100_0007, 0x0100_000c])),
                ("win.pyd", pe(0x8664)),
                ("bin/no_extension", elf(2, 1, 0, EM_AARCH64)),
                ("fake.dll", b"not really a dll".to_vec()),
                ("README.md", b"MZ but just text".to_vec()),
                ("Main.class", {
                    let mut c = 0xcafe_babe_u32.to_be_bytes().to_vec();
                    c.extend_from_slice(&[0, 0, 0, 52, 0, 0, 0, 0]);
                    c
                }),
                ("empty.so", Vec::new()),
            ],
        );
        let w = check_native(&fs_, Target::LinuxX86_64);
        assert_eq!(
            summary(&w),
            vec![
                ("arm.so.1.2".into(), "arch aarch64".into()),
                ("i386.so".into(), "arch x86 (32-bit)".into()),
                ("freebsd.so".into(), "os FreeBSD x86_64".into()),
                ("bigendian.so".into(), "arch aarch64 (big-endian)".into()),
                ("mac.node".into(), "os macOS arm64".into()),
                ("universal.dylib".into(), "os macOS x86_64, arm64".into()),
                ("win.pyd".into(), "os Windows x86_64".into()),
                ("bin/no_extension".into(), "arch aarch64".into()),
                ("fake.dll".into(), "name Windows DLL".into()),
            ]
        );
        let text = w[4].to_string();
        assert!(
            text.contains("mac.node") && text.contains("macOS") && text.contains("linux x86_64"),
            "{text}"
        );

        // The same files against arm64: now the x86_64 ones are wrong and aarch64 fine.
        let w = check_native(&fs_, Target::LinuxAarch64);
        let names: Vec<_> = summary(&w).into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"ok_x86.node".to_owned()));
        assert!(!names.contains(&"arm.so.1.2".to_owned()));
        assert!(!names.contains(&"bin/no_extension".to_owned()));
    }

    #[test]
    fn wheel_tags() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = |tags: &[&str]| {
            let mut s = "Wheel-Version: 1.0\nGenerator: bdist_wheel (0.41.2)\n".to_owned();
            s.push_str("Root-Is-Purelib: false\n");
            for t in tags {
                s.push_str(&format!("Tag: {t}\n"));
            }
            s.into_bytes()
        };
        let fs_ = files(
            dir.path(),
            &[
                (
                    "six-1.16.0.dist-info/WHEEL",
                    wheel(&["py2-none-any", "py3-none-any"]),
                ),
                (
                    "numpy-1.26.0.dist-info/WHEEL",
                    wheel(&["cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"]),
                ),
                (
                    "pydantic_core-2.0.dist-info/WHEEL",
                    wheel(&["cp311-cp311-macosx_11_0_arm64"]),
                ),
                (
                    "musl-1.0.dist-info/WHEEL",
                    wheel(&["cp311-cp311-musllinux_1_1_x86_64"]),
                ),
                (
                    "local-1.0.dist-info/WHEEL",
                    wheel(&["cp311-cp311-linux_x86_64"]),
                ),
                ("notags-1.0.dist-info/WHEEL", wheel(&[])),
            ],
        );
        let w = check_native(&fs_, Target::LinuxX86_64);
        assert_eq!(
            summary(&w),
            vec![
                (
                    "pydantic_core-2.0.dist-info/WHEEL".into(),
                    "wheel cp311-cp311-macosx_11_0_arm64".into()
                ),
                (
                    "musl-1.0.dist-info/WHEEL".into(),
                    "wheel cp311-cp311-musllinux_1_1_x86_64".into()
                ),
            ]
        );
        assert!(w[0].to_string().contains("--platform manylinux2014_x86_64"));
        let w = check_native(&fs_, Target::LinuxAarch64);
        let names: Vec<_> = summary(&w).into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"numpy-1.26.0.dist-info/WHEEL".to_owned()));
        assert!(names.contains(&"local-1.0.dist-info/WHEEL".to_owned()));
        assert!(!names.contains(&"six-1.16.0.dist-info/WHEEL".to_owned()));
    }

    #[test]
    fn prebuilt_siblings_and_unreadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut fs_ = files(
            dir.path(),
            &[
                (
                    "node_modules/@x/addon/prebuilds/darwin-arm64/addon.node",
                    macho(0x0100_000c),
                ),
                (
                    "node_modules/@x/addon/prebuilds/linux-x64/addon.node",
                    elf(2, 1, 0, EM_X86_64),
                ),
                ("node_modules/other/build/addon.node", macho(0x0100_000c)),
            ],
        );
        fs_.push(SelectedFile {
            zip_path: "gone.so".to_owned(),
            source: dir.path().join("gone.so"),
            executable: false,
        });
        let w = check_native(&fs_, Target::LinuxX86_64);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].compatible_sibling);
        assert!(w[0].to_string().contains("also present"), "{}", w[0]);
        assert!(!w[1].compatible_sibling);
        assert!(matches!(w[2].issue, NativeIssue::Unreadable { .. }));
        assert_eq!(
            sibling_key("node_modules/a/node_modules/b/x/y.node"),
            (
                "node_modules/a/node_modules/b".to_owned(),
                "y.node".to_owned()
            )
        );
        assert_eq!(
            sibling_key("pkg/_ext.so"),
            ("pkg".to_owned(), "_ext.so".to_owned())
        );
    }

    #[test]
    fn targets() {
        assert_eq!(
            Target::from_lambda_architecture("arm64"),
            Some(Target::LinuxAarch64)
        );
        assert_eq!(
            Target::from_lambda_architecture("x86_64"),
            Some(Target::LinuxX86_64)
        );
        assert_eq!(Target::from_lambda_architecture("sparc"), None);
        assert_eq!(Target::LinuxAarch64.lambda_architecture(), "arm64");
        assert_eq!(
            Target::LinuxAarch64.manylinux_platform(),
            "manylinux2014_aarch64"
        );
        assert_eq!(Target::LinuxX86_64.to_string(), "linux x86_64");
    }
}
