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
//!
//! What a function writes is rate-limited per environment ([`LOG_RATE_BYTES_PER_SEC`]
//! sustained, [`LOG_BURST_BYTES`] at once), because storing a line costs the server
//! far more CPU than writing it costs the function, outside every environment's
//! quota: an unlimited flood slowed every other function. Beyond the limit whole
//! lines are dropped (never cut), counted, and reported in one line
//! `[stratus] N log lines dropped (B bytes): ...` when the environment is back under
//! the limit, at the end of the invocation, or when it exits. While dropping, the
//! reader passes over the pipe only every [`DROP_PAUSE`]: in between a flooding
//! function blocks in `write` on the full pipe, costing nobody anything.

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
/// Output an environment may write, sustained (stdout and stderr together).
pub(crate) const LOG_RATE_BYTES_PER_SEC: u64 = 1024 * 1024;
/// Output an environment may write at once: enough for a maximum-size (6 MB)
/// payload printed whole.
pub(crate) const LOG_BURST_BYTES: u64 = 6 * 1024 * 1024;
/// Once dropping, lines are stored again when this much of the burst is back, so
/// a steady flood gives one marker line every few seconds, not one per pass.
const LOG_RESUME_BYTES: u64 = LOG_BURST_BYTES / 2;
/// Pause between passes over the pipes while output is being dropped.
const DROP_PAUSE: Duration = Duration::from_millis(10);

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

    /// Counts `lines` the capture dropped itself (over the per-environment rate
    /// limit); their marker line was already written to the stream.
    fn dropped(&self, lines: u64) {
        let _ = lines;
    }
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
    /// The head of the current line was dropped: drop up to its newline too.
    resync: bool,
}

/// The per-environment token bucket over the function's own output.
struct Rate {
    tokens: u64,
    last: Instant,
    /// Over the limit: everything read is dropped until `LOG_RESUME_BYTES` are back.
    dropping: bool,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl Rate {
    fn new() -> Self {
        Self {
            tokens: LOG_BURST_BYTES,
            last: Instant::now(),
            dropping: false,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    fn refill(&mut self, now: Instant) {
        let gained = now.saturating_duration_since(self.last).as_micros() as u64
            * LOG_RATE_BYTES_PER_SEC
            / 1_000_000;
        // Time is only consumed in whole bytes, so slow refills still add up.
        if gained > 0 {
            self.tokens = (self.tokens + gained).min(LOG_BURST_BYTES);
            self.last = now;
        }
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

struct Inner {
    sink: Arc<dyn LogSink>,
    group: Arc<str>,
    stream: Arc<str>,
    out: Stream,
    err: Stream,
    pending: Vec<LogLine>,
    tail: Option<String>,
    /// START is out for the current invocation.
    started: bool,
    /// The last invocation END was written for: a hand-over that comes too late
    /// (after a timeout) writes no START for it.
    last_ended: Option<Arc<str>>,
    killer: Killer,
    memory: (u64, Option<Instant>),
    buf: Vec<u8>,
    rate: Rate,
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

    /// Takes `buf[..n]` just read from `which` through the rate limit: whole lines
    /// within it are kept, the rest dropped and counted.
    fn accept(&mut self, which: Which, n: usize) {
        let mut at = 0;
        let Inner {
            out,
            err,
            buf,
            rate,
            ..
        } = self;
        let s = match which {
            Which::Out => out,
            Which::Err => err,
        };
        if s.resync {
            match buf[..n].iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    rate.dropped_lines += 1;
                    rate.dropped_bytes += pos as u64 + 1;
                    s.resync = false;
                    at = pos + 1;
                }
                None => {
                    rate.dropped_bytes += n as u64;
                    return;
                }
            }
        }
        rate.refill(Instant::now());
        if rate.dropping && rate.tokens >= LOG_RESUME_BYTES {
            rate.dropping = false;
        }
        let take = if rate.dropping {
            0
        } else {
            (n - at).min(rate.tokens as usize)
        };
        rate.tokens -= take as u64;
        let rest = &buf[at + take..n];
        if rest.is_empty() {
            if !rate.dropping && (rate.dropped_lines > 0 || rate.dropped_bytes > 0) {
                self.report_dropped();
            }
            self.feed(which, at, n);
            return;
        }
        // Over the limit: the lines completed within `take` are kept; the line in
        // progress after them is dropped whole, with everything in `rest`.
        rate.dropping = true;
        rate.dropped_bytes += rest.len() as u64;
        rate.dropped_lines += newlines(rest);
        s.resync = rest.last() != Some(&b'\n');
        match buf[at..at + take].iter().rposition(|&b| b == b'\n') {
            Some(end) => {
                rate.dropped_bytes += (take - end - 1) as u64;
                self.feed(which, at, at + end + 1);
            }
            None => {
                rate.dropped_bytes += (s.partial.len() + take) as u64;
                s.partial.clear();
            }
        }
    }

    /// Writes the marker for output dropped so far, if any.
    fn report_dropped(&mut self) {
        let (lines, bytes) = (self.rate.dropped_lines, self.rate.dropped_bytes);
        if lines == 0 && bytes == 0 {
            return;
        }
        self.rate.dropped_lines = 0;
        self.rate.dropped_bytes = 0;
        self.push(format!(
            "[stratus] {lines} log lines dropped ({bytes} bytes): the function wrote more than {} KB/s of output (bursts up to {} MB)",
            LOG_RATE_BYTES_PER_SEC / 1024,
            LOG_BURST_BYTES / (1024 * 1024)
        ));
        self.sink.dropped(lines);
    }

    /// Splits `buf[from..to]` of `which` into lines.
    fn feed(&mut self, which: Which, from: usize, to: usize) {
        let mut lines = Vec::new();
        {
            let Inner { out, err, buf, .. } = self;
            let s = match which {
                Which::Out => out,
                Which::Err => err,
            };
            s.partial.extend_from_slice(&buf[from..to]);
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
                    self.accept(which, n);
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
        self.report_dropped();
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
                    resync: false,
                },
                err: Stream {
                    pipe: stderr,
                    partial: Vec::new(),
                    resync: false,
                },
                pending: Vec::new(),
                tail: None,
                started: false,
                last_ended: None,
                killer,
                memory: (0, None),
                buf: vec![0u8; 64 * 1024],
                rate: Rate::new(),
            }),
        });
        for (which, ready) in [Which::Out, Which::Err].into_iter().zip(readiness) {
            if let Some(ready) = ready {
                tokio::spawn(read_loop(Arc::downgrade(&capture), which, ready));
            }
        }
        capture
    }

    /// Starts keeping this invocation's log for the caller (`X-Amz-Log-Type: Tail`);
    /// called before the hand-over.
    pub(crate) fn want_tail(&self) {
        self.inner.lock().tail = Some(String::new());
    }

    /// Emits START, when the runtime fetches the invocation (the link's fetch hook):
    /// an event dispatched here but run elsewhere leaves no START here. Output
    /// written between invocations is not drained first (that would cost two system
    /// calls on every warm invocation); the reader task files it as it arrives.
    pub(crate) fn start_invocation(&self, request_id: &Arc<str>, version: &str) {
        let mut c = self.inner.lock();
        if c.started || c.last_ended.as_ref() == Some(request_id) {
            return;
        }
        c.started = true;
        c.push(format!("START RequestId: {request_id} Version: {version}"));
        c.flush();
    }

    /// Emits the function's remaining output, then END and REPORT (and START first
    /// if the runtime never fetched the invocation: timed out or died before it).
    /// Returns the last 4 KB of this invocation's log when the tail was asked for.
    pub(crate) fn end_invocation(&self, mut report: Report, version: &str) -> Option<String> {
        let mut c = self.inner.lock();
        c.drain();
        if !std::mem::replace(&mut c.started, false) {
            let line = format!("START RequestId: {} Version: {version}", report.request_id);
            c.push(line);
        }
        c.last_ended = Some(report.request_id.clone());
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
        let dropping = {
            let mut c = capture.inner.lock();
            let eof = ready.clear_if_empty(|| c.read_available(which));
            if eof {
                let s = c.stream(which);
                if s.resync {
                    // The line whose head was dropped ends with the stream.
                    s.resync = false;
                    c.rate.dropped_lines += 1;
                }
                let s = c.stream(which);
                if !s.partial.is_empty() {
                    let line = String::from_utf8_lossy(&s.partial).into_owned();
                    s.partial.clear();
                    c.push(line);
                }
                c.report_dropped();
                c.flush();
                return;
            }
            c.flush();
            c.rate.dropping
        };
        drop(capture);
        if dropping {
            // Let the pipe fill: the function waits in `write` instead of the
            // server spending a wake-up on every few kilobytes it drops.
            tokio::time::sleep(DROP_PAUSE).await;
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

    /// Collects what the capture stores and counts.
    #[derive(Debug, Default)]
    struct Collect {
        lines: Mutex<Vec<String>>,
        dropped: std::sync::atomic::AtomicU64,
    }

    impl LogSink for Collect {
        fn write(&self, _: &Arc<str>, _: &Arc<str>, lines: Vec<LogLine>) {
            self.lines
                .lock()
                .extend(lines.into_iter().map(|l| l.message));
        }
        fn dropped(&self, lines: u64) {
            self.dropped
                .fetch_add(lines, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Runs `script` under the process driver with its output captured, until it
    /// exits and both pipes are drained.
    async fn capture_of(script: &str) -> (Arc<Collect>, Duration) {
        let dir = tempfile::tempdir().unwrap();
        let spec = stratus_sandbox::LaunchSpec::new(
            "/bin/sh".into(),
            vec!["-c".into(), script.into()],
            "/".into(),
            dir.path().join("tmp"),
        );
        use stratus_sandbox::Driver as _;
        let t = Instant::now();
        let mut p = stratus_sandbox::ProcessDriver.start(&spec).unwrap();
        let sink = Arc::new(Collect::default());
        let killer = p.killer();
        let capture = Capture::start(
            sink.clone(),
            Arc::from("g"),
            Arc::from("s"),
            p.stdout.take(),
            p.stderr.take(),
            killer,
        );
        p.wait().await.unwrap();
        let elapsed = t.elapsed();
        // The reader tasks hold only a weak reference; wait for them to see the end.
        for _ in 0..500 {
            let done = {
                let c = capture.inner.lock();
                c.out.pipe.is_none() && c.err.pipe.is_none()
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (sink, elapsed)
    }

    fn dropped_in(lines: &[String]) -> u64 {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("[stratus] "))
            .map(|l| l.split(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn output_within_the_burst_is_kept_whole() {
        // 20,000 lines of 100 bytes: 2 MB, within the burst.
        let (sink, _) = capture_of("yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456 | head -n 20000; echo done >&2").await;
        let lines = sink.lines.lock();
        assert_eq!(lines.len(), 20_001, "{:?}", &lines[..3]);
        assert_eq!(dropped_in(&lines), 0);
        assert_eq!(sink.dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_is_cut_to_the_rate_in_whole_lines_and_counted() {
        // 200,000 lines of 100 bytes (20 MB) as fast as `yes` writes them.
        let line = "x".repeat(99);
        let (sink, elapsed) =
            capture_of(&format!("yes {line} | head -n 200000; echo after >&2")).await;
        let lines = sink.lines.lock();
        let kept = lines.iter().filter(|l| **l == line).count() as u64;
        let markers: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("[stratus] "))
            .collect();
        let dropped = dropped_in(&lines);
        // stderr shares the environment's limit: its line may be dropped too.
        let after = lines.iter().filter(|l| *l == "after").count() as u64;
        // No line is cut: every stored line is whole, and every line is either
        // stored or counted once.
        assert_eq!(
            lines.len() as u64,
            kept + markers.len() as u64 + after,
            "unexpected lines: {:?}",
            lines
                .iter()
                .filter(|l| **l != line && !l.starts_with("[stratus] "))
                .take(3)
                .collect::<Vec<_>>()
        );
        assert_eq!(kept + after + dropped, 200_001, "{markers:?}");
        assert_eq!(
            sink.dropped.load(std::sync::atomic::Ordering::Relaxed),
            dropped
        );
        // What is kept fits the burst plus the rate over the run.
        let allowed =
            LOG_BURST_BYTES + (elapsed.as_secs_f64() * LOG_RATE_BYTES_PER_SEC as f64) as u64;
        assert!(kept * 100 <= allowed, "kept {kept} lines in {elapsed:?}");
        assert!(dropped > 100_000, "dropped {dropped} in {elapsed:?}");
        assert!(markers[0].contains("log lines dropped ("), "{markers:?}");
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
