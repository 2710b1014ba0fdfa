//! The benchmark's no-op `provided` function: a Lambda Runtime API client reduced to
//! what the protocol needs (one keep-alive connection, blocking I/O, no async
//! runtime), answering every event with `null`.
//!
//! `stratus bench` uses it so that the throughput figures measure Stratus rather than
//! the function: the official `lambda_runtime` crate spends about as much CPU per
//! invocation as the whole server does, and on a 2-core machine the function shares
//! the cores with the server and the load generator (see BENCHMARKS.md, which gives
//! figures for both).
//!
//! It speaks the protocol properly: it reads each `/next` response whole (headers and
//! the `Content-Length` body), takes the request id from
//! `Lambda-Runtime-Aws-Request-Id`, posts `null` to `/invocation/{id}/response` and
//! reads the `202` before asking for the next event. Anything unexpected ends the
//! process with a message on stderr, which the server logs and reports.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

/// One parsed response: status, request id header, and how many bytes it took.
struct Head {
    status: u16,
    request_id: Option<String>,
    body_len: usize,
    head_len: usize,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed response from the Runtime API: {e}")),
    };
    let mut head = Head {
        status: resp.code.unwrap_or(0),
        request_id: None,
        body_len: 0,
        head_len,
    };
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            head.body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("bad Content-Length from the Runtime API")?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked responses from the Runtime API are not supported".into());
        } else if h.name.eq_ignore_ascii_case("lambda-runtime-aws-request-id") {
            head.request_id = std::str::from_utf8(h.value).ok().map(str::to_string);
        }
    }
    Ok(Some(head))
}

/// A keep-alive connection to the Runtime API with its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
}

impl Conn {
    /// Reads one whole response, leaving any bytes after it in the buffer.
    fn read_response(&mut self) -> Result<Head, String> {
        loop {
            if let Some(head) = parse_head(&self.buf[..self.filled])? {
                let total = head.head_len + head.body_len;
                while self.filled < total {
                    self.fill()?;
                }
                self.buf.copy_within(total..self.filled, 0);
                self.filled -= total;
                return Ok(head);
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<(), String> {
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        match self.stream.read(&mut self.buf[self.filled..]) {
            Ok(0) => Err("the Runtime API closed the connection".into()),
            Ok(n) => {
                self.filled += n;
                Ok(())
            }
            Err(e) => Err(format!("reading from the Runtime API: {e}")),
        }
    }

    fn send(&mut self, request: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(request)
            .map_err(|e| format!("writing to the Runtime API: {e}"))
    }
}

fn run() -> Result<(), String> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .map_err(|_| "AWS_LAMBDA_RUNTIME_API is not set".to_string())?;
    let stream = TcpStream::connect(&api).map_err(|e| format!("cannot connect to {api}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let mut conn = Conn {
        stream,
        buf: vec![0; 16 * 1024],
        filled: 0,
    };
    let next = format!("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n");
    let mut post = Vec::with_capacity(256);
    loop {
        conn.send(next.as_bytes())?;
        let head = conn.read_response()?;
        if head.status != 200 {
            return Err(format!("/next answered {}", head.status));
        }
        let id = head
            .request_id
            .ok_or("/next answered without Lambda-Runtime-Aws-Request-Id")?;
        post.clear();
        write!(
            post,
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Length: 4\r\n\r\nnull"
        )
        .map_err(|e| e.to_string())?;
        conn.send(&post)?;
        let done = conn.read_response()?;
        if done.status != 202 {
            return Err(format!("/response for {id} answered {}", done.status));
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("noop-bootstrap: {e}");
            ExitCode::FAILURE
        }
    }
}
