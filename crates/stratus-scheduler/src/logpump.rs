//! Log capture for one environment, in order: START, what the function wrote, END,
//! REPORT.
//!
//! One [`Capture`] per environment holds its output pipes and line buffers behind a
//! mutex. A reader task wakes only when the function writes; the invocation path
//! itself emits START and END/REPORT by locking the capture, draining whatever is
//! already in the pipes (reading the descriptor directly, not trusting cached
//! readiness: a runtime writes its output before it posts the response, so that
//! output is in the pipe by then) and appending its own lines. That keeps the warm
//! path free of task wake-ups for logging.
//!
//! Lines go to the [`LogSink`] in one batch per wake-up or invocation; the sink must
//! not block (the server's sink drops and counts lines when its buffer is full).

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::Rng;
use std::sync::Weak;
use stratus_sandbox::{Killer, OutputPipe};

/// Longest stored line; longer output is split (CloudWatch's event limit is 256 KB).
const MAX_LINE: usize = 256 * 1024;
/// Size of the log tail returned with `X-Amz-Log-Type: Tail`.
const TAIL_BYTES: usize = 4096;
/// How often Max Memory Used is re-read from `/proc` (it is a high-water mark).
const MEMORY_REFRESH: Duration = Duration::from_millis(100);

/// One log line with its time (epoch milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Epoch milliseconds.
    pub ts_ms: i64,
    /// The line, without its newline.
    pub message: String,
}

/// Where log lines go. Must return quickly and never block.
pub trait LogSink: Send + Sync + std::fmt::Debug {
    /// Appends lines to `stream` of `group`.
    fn write(&self, group: &Arc<str>, stream: &Arc<str>, lines: Vec<LogLine>);
}

/// The figures for END and REPORT.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) request_id: Arc<str>,
    pub(crate) duration: Duration,
    pub(crate) memory_mb: u32,
    pub(crate) init: Option<Duration>,
    /// A line written before END (the timeout message).
    pub(crate) prelude: Option<String>,
    /// `timeout` or `error` when the environment did not survive the invocation.
    pub(crate) status: Option<(&'static str, Option<String>)>,
}

/// `YYYY/MM/DD/[{version}]{32 hex}`.
pub(crate) fn stream_name(version: &str) -> String {
    let d = time::OffsetDateTime::now_utc();
    let mut rng = rand::thread_rng();
    let mut s = format!(
        "{:04}/{:02}/{:02}/[{version}]",
        d.year(),
        d.month() as u8,
        d.day()
    );
    for _ in 0..16 {
        let _ = write!(s, "{:02x}", rng.gen::<u8>());
    }
    s
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats the REPORT line exactly as Lambda does.
pub(crate) fn report_line(r: &Report, max_memory_mb: u64) -> String {
    let ms = r.duration.as_secs_f64() * 1000.0;
    let billed = (ms.ceil() as u64).max(1);
    let mut line = format!(
        "REPORT RequestId: {}\tDuration: {ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {max_memory_mb} MB\t",
        r.request_id, r.memory_mb
    );
    if let Some(init) = r.init {
        let _ = write!(
            line,
            "Init Duration: {:.2} ms\t",
            init.as_secs_f64() * 1000.0
        );
    }
    if let Some((status, error_type)) = &r.status {
        let _ = write!(line, "Status: {status}\t");
        if let Some(t) = error_type {
            let _ = write!(line, "Error Type: {t}\t");
        }
    }
    line
}

struct Stream {
    pipe: Option<OutputPipe>,
    partial: Vec<u8>,
}

struct Inner {
    sink: Arc<dyn LogSink>,
    group: Arc<str>,
    stream: Arc<str>,
    out: Stream,
    err: Stream,
    pending: Vec<LogLine>,
    tail: Option<String>,
    killer: Killer,
    memory: (u64, Option<Instant>),
    buf: Vec<u8>,
}

/// The log capture of one environment.
pub(crate) struct Capture {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Out,
    Err,
}

impl Inner {
    fn push(&mut self, message: String) {
        if let Some(t) = &mut self.tail {
            t.push_str(&message);
            t.push('\n');
        }
        self.pending.push(LogLine {
            ts_ms: now_ms(),
            message,
        });
    }

    fn stream(&mut self, which: Which) -> &mut Stream {
        match which {
            Which::Out => &mut self.out,
            Which::Err => &mut self.err,
        }
    }

    fn feed(&mut self, which: Which, n: usize) {
        let mut lines = Vec::new();
        {
            let Inner { out, err, buf, .. } = self;
            let s = match which {
                Which::Out => out,
                Which::Err => err,
            };
            s.partial.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(pos) = s.partial[start..].iter().position(|&b| b == b'\n') {
                let end = start + pos;
                lines.push(String::from_utf8_lossy(&s.partial[start..end]).into_owned());
                start = end + 1;
            }
            s.partial.drain(..start);
            while s.partial.len() >= MAX_LINE {
                let rest = s.partial.split_off(MAX_LINE);
                lines.push(String::from_utf8_lossy(&s.partial).into_owned());
                s.partial = rest;
            }
        }
        for line in lines {
            self.push(line);
        }
    }

    /// Reads what is in the pipe now (at most 1 MB, so a flooding function cannot
    /// hold the caller). Returns `Ok(true)` at end of stream.
    fn read_available(&mut self, which: Which) -> io::Result<bool> {
        let mut budget: usize = 1024 * 1024;
        while budget > 0 {
            let Inner { out, err, buf, .. } = self;
            let s = match which {
                Which::Out => out,
                Which::Err => err,
            };
            let Some(pipe) = s.pipe.as_mut() else {
                return Ok(true);
            };
            match pipe.read_now(buf) {
                Ok(0) => {
                    s.pipe = None;
                    return Ok(true);
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.feed(which, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Drains both pipes and emits unterminated lines: everything written so far
    /// belongs before the line about to be added.
    fn drain(&mut self) {
        for which in [Which::Out, Which::Err] {
            let _ = self.read_available(which);
            let s = self.stream(which);
            if !s.partial.is_empty() {
                let line = String::from_utf8_lossy(&s.partial).into_owned();
                s.partial.clear();
                self.push(line);
            }
        }
    }

    fn max_memory_mb(&mut self) -> u64 {
        let stale = self
            .memory
            .1
            .map(|t| t.elapsed() >= MEMORY_REFRESH)
            .unwrap_or(true);
        if stale {
            let bytes = self.killer.max_memory_bytes();
            if bytes > 0 {
                self.memory.0 = self.memory.0.max(bytes.div_ceil(1024 * 1024));
            }
            self.memory.1 = Some(Instant::now());
        }
        self.memory.0
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let lines = std::mem::take(&mut self.pending);
            self.sink.write(&self.group, &self.stream, lines);
        }
    }
}

impl Capture {
    /// Takes over an environment's output pipes and starts the reader task.
    pub(crate) fn start(
        sink: Arc<dyn LogSink>,
        group: Arc<str>,
        stream: Arc<str>,
        stdout: Option<OutputPipe>,
        stderr: Option<OutputPipe>,
        killer: Killer,
    ) -> Arc<Self> {
        let (mut stdout, mut stderr) = (stdout, stderr);
        let readiness = [
            stdout.as_mut().and_then(OutputPipe::take_readiness),
            stderr.as_mut().and_then(OutputPipe::take_readiness),
        ];
        let capture = Arc::new(Self {
            inner: Mutex::new(Inner {
                sink,
                group,
                stream,
                out: Stream {
                    pipe: stdout,
                    partial: Vec::new(),
                },
                err: Stream {
                    pipe: stderr,
                    partial: Vec::new(),
                },
                pending: Vec::new(),
                tail: None,
                killer,
                memory: (0, None),
                buf: vec![0u8; 64 * 1024],
            }),
        });
        for (which, ready) in [Which::Out, Which::Err].into_iter().zip(readiness) {
            if let Some(ready) = ready {
                tokio::spawn(read_loop(Arc::downgrade(&capture), which, ready));
            }
        }
        capture
    }

    /// Emits START. Output written between invocations is not drained first (that
    /// would cost two system calls on every warm invocation); the reader task files it
    /// as it arrives.
    pub(crate) fn start_invocation(&self, request_id: &str, version: &str, tail: bool) {
        let mut c = self.inner.lock();
        if tail {
            c.tail = Some(String::new());
        }
        c.push(format!("START RequestId: {request_id} Version: {version}"));
        c.flush();
    }

    /// Emits the function's remaining output, then END and REPORT. Returns the last
    /// 4 KB of this invocation's log when START asked for the tail.
    pub(crate) fn end_invocation(&self, mut report: Report) -> Option<String> {
        let mut c = self.inner.lock();
        c.drain();
        if let Some(line) = report.prelude.take() {
            c.push(line);
        }
        c.push(format!("END RequestId: {}", report.request_id));
        let mem = c.max_memory_mb();
        c.push(report_line(&report, mem));
        c.flush();
        let tail = c.tail.take()?;
        let cut = tail.len().saturating_sub(TAIL_BYTES);
        let cut = (cut..tail.len())
            .find(|i| tail.is_char_boundary(*i))
            .unwrap_or(tail.len());
        Some(tail[cut..].to_string())
    }
}

/// Waits for output on one pipe and moves it into the capture, until end of stream.
async fn read_loop(capture: Weak<Capture>, which: Which, ready: stratus_sandbox::Readiness) {
    loop {
        if ready.wait().await.is_err() {
            return;
        }
        let Some(capture) = capture.upgrade() else {
            return;
        };
        let mut c = capture.inner.lock();
        let eof = ready.clear_if_empty(|| c.read_available(which));
        c.flush();
        if eof {
            let s = c.stream(which);
            if !s.partial.is_empty() {
                let line = String::from_utf8_lossy(&s.partial).into_owned();
                s.partial.clear();
                c.push(line);
                c.flush();
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_matches_lambda() {
        let r = Report {
            request_id: Arc::from("abc"),
            duration: Duration::from_micros(15_741),
            memory_mb: 128,
            init: Some(Duration::from_micros(130_494)),
            prelude: None,
            status: None,
        };
        assert_eq!(
            report_line(&r, 56),
            "REPORT RequestId: abc\tDuration: 15.74 ms\tBilled Duration: 16 ms\tMemory Size: 128 MB\tMax Memory Used: 56 MB\tInit Duration: 130.49 ms\t"
        );
    }

    #[test]
    fn stream_name_shape() {
        let s = stream_name("$LATEST");
        let (date, rest) = s.split_at(11);
        assert_eq!(date.matches('/').count(), 3);
        assert!(rest.starts_with("[$LATEST]"));
        assert_eq!(rest.len(), "[$LATEST]".len() + 32);
    }
}
