//! A small, honest HTTP/1.1 file server on 127.0.0.1 (port 0), over rustls or plain TCP.
//!
//! One connection at a time, one request per connection (`Connection: close`), with
//! `Content-Length`, `Range: bytes=N-` → 206 + `Content-Range`, 416 past the end, 404 for
//! unknown paths. A route can misbehave on purpose: ignore `Range` (answer 200), or cut
//! the connection mid-body (no TLS close_notify, just a closed socket).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::test_ca::ServerIdentity;

/// Where a route stops sending its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Never,
    /// The first response of the route sends this many body bytes, then the connection closes.
    FirstResponseAfter(usize),
    /// Every response stops at this absolute offset of the file (a file that can never complete).
    AlwaysAtOffset(u64),
    /// The first response sends this many body bytes, then goes silent for [`STALL`]
    /// before closing (a link that hangs rather than breaks).
    StallFirstResponseAfter(usize),
}

/// How long a stalling response stays silent.
pub const STALL: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone)]
pub struct Route {
    pub body: Vec<u8>,
    pub ignore_range: bool,
    pub cut: Cut,
    /// The first `.0` requests are answered with status `.1` and an empty body.
    pub fail_first: (usize, u16),
    /// Answer every request with `302 Found` to this location.
    pub redirect_to: Option<String>,
}

impl Route {
    pub fn file(body: impl Into<Vec<u8>>) -> Self {
        Route {
            body: body.into(),
            ignore_range: false,
            cut: Cut::Never,
            fail_first: (0, 200),
            redirect_to: None,
        }
    }

    pub fn redirect(location: impl Into<String>) -> Self {
        Route { redirect_to: Some(location.into()), ..Route::file(Vec::new()) }
    }

    pub fn failing_first(mut self, count: usize, status: u16) -> Self {
        self.fail_first = (count, status);
        self
    }

    pub fn ignoring_range(mut self) -> Self {
        self.ignore_range = true;
        self
    }

    pub fn cut(mut self, cut: Cut) -> Self {
        self.cut = cut;
        self
    }
}

/// One request as the server saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
    pub body_bytes_sent: usize,
}

pub struct TestServer {
    addr: SocketAddr,
    scheme: &'static str,
    served: Arc<Mutex<Vec<Served>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct RouteState {
    route: Route,
    responses: usize,
}

enum Ending {
    Complete,
    Cut,
}

impl TestServer {
    /// HTTPS with the given certificate chain.
    pub fn https(identity: ServerIdentity, routes: Vec<(&str, Route)>) -> Self {
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(identity.chain, identity.key)
            .expect("server TLS config");
        Self::start("https", Some(Arc::new(config)), routes)
    }

    /// Plain HTTP (for the allow-plain-http path).
    pub fn http(routes: Vec<(&str, Route)>) -> Self {
        Self::start("http", None, routes)
    }

    fn start(
        scheme: &'static str,
        tls: Option<Arc<ServerConfig>>,
        routes: Vec<(&str, Route)>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let routes: HashMap<String, RouteState> = routes
            .into_iter()
            .map(|(path, route)| (path.to_owned(), RouteState { route, responses: 0 }))
            .collect();
        let served = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let served = Arc::clone(&served);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || accept_loop(listener, tls, routes, served, stop))
        };
        TestServer { addr, scheme, served, stop, thread: Some(thread) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// Every request answered so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.served.lock().expect("served log").clone()
    }

    /// The requests answered for `path`.
    pub fn served_for(&self, path: &str) -> Vec<Served> {
        self.served().into_iter().filter(|served| served.path == path).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    mut routes: HashMap<String, RouteState>,
    served: Arc<Mutex<Vec<Served>>>,
    stop: Arc<AtomicBool>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        match &tls {
            Some(config) => {
                let Ok(connection) = ServerConnection::new(Arc::clone(config)) else {
                    continue;
                };
                let mut tls_stream = StreamOwned::new(connection, stream);
                if let Ok(Ending::Complete) = serve_one(&mut tls_stream, &mut routes, &served) {
                    tls_stream.conn.send_close_notify();
                    let _ = tls_stream.flush();
                }
                let _ = tls_stream.sock.shutdown(Shutdown::Both);
            }
            None => {
                let mut plain = stream;
                let _ = serve_one(&mut plain, &mut routes, &served);
                let _ = plain.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Reads one request head and answers it.
fn serve_one(
    stream: &mut (impl Read + Write),
    routes: &mut HashMap<String, RouteState>,
    served: &Mutex<Vec<Served>>,
) -> io::Result<Ending> {
    let head = read_head(stream)?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, path) =
        (parts.next().unwrap_or_default(), parts.next().unwrap_or_default().to_owned());
    let range = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("range"))
        .map(|(_, value)| value.trim().to_owned());
    if method != "GET" {
        return respond(stream, served, path, range, 405, &[], b"", 0);
    }
    let Some(state) = routes.get_mut(&path) else {
        return respond(stream, served, path, range, 404, &[], b"not found\n", usize::MAX);
    };
    state.responses += 1;
    if let Some(location) = &state.route.redirect_to {
        let headers = [format!("Location: {location}")];
        return respond(stream, served, path, range, 302, &headers, b"", 0);
    }
    let (failing, fail_status) = state.route.fail_first;
    if state.responses <= failing {
        return respond(stream, served, path, range, fail_status, &[], b"", 0);
    }
    let body = &state.route.body;
    let len = body.len() as u64;
    let requested_start = range
        .as_deref()
        .and_then(|value| value.strip_prefix("bytes="))
        .and_then(|value| value.strip_suffix('-'))
        .and_then(|value| value.parse::<u64>().ok())
        .filter(|_| !state.route.ignore_range);
    let (status, start, extra) = match requested_start {
        Some(start) if start < len => {
            (206, start, vec![format!("Content-Range: bytes {start}-{}/{len}", len - 1)])
        }
        Some(_) => (416, len, vec![format!("Content-Range: bytes */{len}")]),
        None => (200, 0, Vec::new()),
    };
    let slice = &body[start as usize..];
    let send = match state.route.cut {
        Cut::FirstResponseAfter(count) | Cut::StallFirstResponseAfter(count)
            if state.responses == 1 =>
        {
            count.min(slice.len())
        }
        Cut::AlwaysAtOffset(offset) => (offset.saturating_sub(start) as usize).min(slice.len()),
        _ => slice.len(),
    };
    let mut headers = extra;
    if !state.route.ignore_range {
        headers.push("Accept-Ranges: bytes".to_owned());
    }
    let slice = slice.to_vec();
    let ending = respond(stream, served, path, range, status, &headers, &slice, send)?;
    if matches!(state.route.cut, Cut::StallFirstResponseAfter(_)) && state.responses == 1 {
        std::thread::sleep(STALL);
    }
    Ok(ending)
}

#[allow(clippy::too_many_arguments)]
fn respond(
    stream: &mut (impl Read + Write),
    served: &Mutex<Vec<Served>>,
    path: String,
    range: Option<String>,
    status: u16,
    headers: &[String],
    body: &[u8],
    send: usize,
) -> io::Result<Ending> {
    let send = send.min(body.len());
    served.lock().expect("served log").push(Served { path, range, status, body_bytes_sent: send });
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        503 => "Service Unavailable",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Other",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body[..send])?;
    stream.flush()?;
    Ok(if send == body.len() { Ending::Complete } else { Ending::Cut })
}

fn read_head(stream: &mut impl Read) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too long"));
        }
        match stream.read(&mut byte)? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before the request head ended",
                ))
            }
            _ => head.push(byte[0]),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
