//! A minimal HTTP/1.1 client for the stack's loopback servers (the control API, the edges):
//! one request per connection, `Connection: close`, no client crate needed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer: status, headers (names lower-cased) and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method target` to `base` (`http://host:port[/prefix]`); `target` is sent as it is
/// (already percent-encoded), after the base's path prefix.
pub fn request(base: &str, method: &str, target: &str, body: Option<&str>) -> Response {
    let rest = base
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{base} is not http://host:port[/path]"));
    let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_end_matches('/');
    let target = if prefix.is_empty() {
        target.to_owned()
    } else {
        format!("/{prefix}{target}")
    };
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("{base}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let payload = body.unwrap_or("");
    let content = match body {
        Some(_) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ),
        None => String::new(),
    };
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\n{content}Connection: close\r\n\r\n{payload}"
    )
    .unwrap_or_else(|e| panic!("{method} {base}{target}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {base}{target}: {e}"));
    parse(&raw).unwrap_or_else(|| {
        panic!(
            "{method} {base}{target}: not an HTTP answer: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line]).unwrap_or("");
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        let tail = &rest[line + 2..];
        if n == 0 || tail.len() < n {
            break;
        }
        out.extend_from_slice(&tail[..n]);
        rest = tail[n..].strip_prefix(b"\r\n").unwrap_or(&tail[n..]);
    }
    out
}
