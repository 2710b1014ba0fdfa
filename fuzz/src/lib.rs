//! What the fuzz targets share: the few helpers that would otherwise be repeated in
//! each `fuzz_targets/*.rs` file. A target stays one small file that feeds bytes to
//! one parser and checks what must hold whatever the bytes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The input as text, or `None` when it is not UTF-8 (text parsers get only text, as
/// their callers never hand them anything else).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A directory private to this fuzzing process (in memory, `/dev/shm`, where there is
/// one: targets that write files run much faster there). Each target keeps at most
/// one input's files in it at a time; `scripts/fuzz` removes it afterwards.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("stratus-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("scratch dir {dir:?}: {e}"));
        dir
    })
}

/// Splits `data` at the first `\n`: a header line (lossy UTF-8) and the rest. Targets
/// that need a small parameter besides the main input read it from this line.
pub fn first_line(data: &[u8]) -> (String, &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        None => (String::from_utf8_lossy(data).into_owned(), &[]),
    }
}

/// Runs a future to completion on a one-thread runtime made once per process. Its
/// clock is paused and jumps ahead whenever the runtime would wait for a timer, so a
/// long poll or a timeout the input asks for costs no real time.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    }
    RT.with(|rt| rt.block_on(future))
}
