//! Log capture for one environment. The pump task owns the environment's stdout and
//! stderr and receives START/END commands from the invocation path, so everything
//! lands in the stream in order: START, what the function wrote, END, REPORT.
//!
//! At END the pump first drains whatever is already in the pipes (reading the
//! descriptor directly, not trusting cached readiness): a runtime writes its output
//! before it posts the response, so that output is in the pipe by then.
//!
//! Lines go to the [`LogSink`] in one batch per wake-up; the sink must not block
//! (the server's sink drops and counts lines when its buffer is full).

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use stratus_sandbox::{Killer, OutputPipe};
use tokio::sync::{mpsc, oneshot};

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

/// What the invocation path tells the pump.
#[derive(Debug)]
pub(crate) enum LogCmd {
    Start {
        request_id: Arc<str>,
        version: Arc<str>,
        tail: bool,
    },
    End(Box<Report>),
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
    pub(crate) tail: Option<oneshot::Sender<String>>,
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

struct Pump {
    sink: Arc<dyn LogSink>,
    group: Arc<str>,
    stream: Arc<str>,
    pending: Vec<LogLine>,
    tail: Option<String>,
    killer: Killer,
    memory: (u64, Option<Instant>),
}

impl Pump {
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

    fn feed(&mut self, s: &mut Stream, data: &[u8]) {
        s.partial.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = s.partial[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let line = String::from_utf8_lossy(&s.partial[start..end]).into_owned();
            self.push(line);
            start = end + 1;
        }
        s.partial.drain(..start);
        while s.partial.len() >= MAX_LINE {
            let rest = s.partial.split_off(MAX_LINE);
            let line = String::from_utf8_lossy(&s.partial).into_owned();
            self.push(line);
            s.partial = rest;
        }
    }

    /// Reads what is in the pipe now (at most 1 MB, so a flooding function cannot
    /// hold the pump), then emits any unterminated line.
    fn drain(&mut self, s: &mut Stream, buf: &mut [u8]) {
        let mut budget: usize = 1024 * 1024;
        while budget > 0 {
            let n = match s.pipe.as_mut().map(|p| p.read_now(buf)) {
                Some(Ok(n)) if n > 0 => n,
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => break,
            };
            budget = budget.saturating_sub(n);
            self.feed(s, &buf[..n]);
        }
        if !s.partial.is_empty() {
            let line = String::from_utf8_lossy(&s.partial).into_owned();
            s.partial.clear();
            self.push(line);
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

async fn read_opt(s: &mut Stream, buf: &mut [u8]) -> io::Result<usize> {
    match &mut s.pipe {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Runs until the command channel closes and both pipes reach end of stream.
pub(crate) async fn run(
    sink: Arc<dyn LogSink>,
    group: Arc<str>,
    stream: Arc<str>,
    stdout: Option<OutputPipe>,
    stderr: Option<OutputPipe>,
    killer: Killer,
    mut cmds: mpsc::UnboundedReceiver<LogCmd>,
) {
    let mut pump = Pump {
        sink,
        group,
        stream,
        pending: Vec::new(),
        tail: None,
        killer,
        memory: (0, None),
    };
    let mut out = Stream {
        pipe: stdout,
        partial: Vec::new(),
    };
    let mut err = Stream {
        pipe: stderr,
        partial: Vec::new(),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut buf_err = vec![0u8; 64 * 1024];
    let mut cmds_open = true;
    while cmds_open || out.pipe.is_some() || err.pipe.is_some() {
        tokio::select! {
            cmd = cmds.recv(), if cmds_open => match cmd {
                None => cmds_open = false,
                Some(LogCmd::Start { request_id, version, tail }) => {
                    pump.drain(&mut out, &mut buf);
                    pump.drain(&mut err, &mut buf);
                    if tail {
                        pump.tail = Some(String::new());
                    }
                    pump.push(format!("START RequestId: {request_id} Version: {version}"));
                }
                Some(LogCmd::End(mut report)) => {
                    pump.drain(&mut out, &mut buf);
                    pump.drain(&mut err, &mut buf);
                    if let Some(line) = report.prelude.take() {
                        pump.push(line);
                    }
                    pump.push(format!("END RequestId: {}", report.request_id));
                    let mem = pump.max_memory_mb();
                    pump.push(report_line(&report, mem));
                    if let (Some(tx), Some(tail)) = (report.tail.take(), pump.tail.take()) {
                        let cut = tail.len().saturating_sub(TAIL_BYTES);
                        let cut = (cut..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(tail.len());
                        let _ = tx.send(tail[cut..].to_string());
                    }
                }
            },
            r = read_opt(&mut out, &mut buf) => match r {
                Ok(0) | Err(_) => { pump.drain(&mut out, &mut buf); out.pipe = None; }
                Ok(n) => pump.feed(&mut out, &buf[..n]),
            },
            r = read_opt(&mut err, &mut buf_err) => match r {
                Ok(0) | Err(_) => { pump.drain(&mut err, &mut buf); err.pipe = None; }
                Ok(n) => pump.feed(&mut err, &buf_err[..n]),
            },
        }
        pump.flush();
    }
    pump.flush();
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
            tail: None,
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
