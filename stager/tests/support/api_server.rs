//! The resin API's v2 endpoints balenahup's 1.x -> 2.x script uses, served over real TLS on
//! 127.0.0.1 (port 0) by a certificate of the test CA: a device (`GET/PATCH /v2/device(ID)`)
//! and supervisor releases (`GET /v2/supervisor_release?$filter=...`), the key checked as
//! the `apikey` parameter. Every request is recorded (method, path, decoded query, body).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::test_ca::ServerIdentity;

/// What the API knows.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub api_key: String,
    pub device_id: u64,
    pub supervisor_version: Option<String>,
    pub supervisor_release: Option<u64>,
    /// (device type, version as `vX.Y.Z`, id)
    pub releases: Vec<(String, String, u64)>,
    /// Answer every request with this status (e.g. 503), when set.
    pub fail_with: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    /// The query as sent, before decoding.
    pub raw_query: String,
    pub body: String,
    pub status: u16,
}

pub struct ApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<ApiState>>,
    requests: Arc<Mutex<Vec<ApiRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    pub fn start(identity: ServerIdentity, state: ApiState) -> ApiServer {
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(identity.chain, identity.key)
            .expect("server TLS config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(state));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, requests, stop) =
                (Arc::clone(&state), Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let Ok(connection) = ServerConnection::new(Arc::clone(&config)) else {
                        continue;
                    };
                    let mut tls = StreamOwned::new(connection, stream);
                    if serve_one(&mut tls, &state, &requests).is_ok() {
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                    let _ = tls.sock.shutdown(Shutdown::Both);
                }
            })
        };
        ApiServer { addr, state, requests, stop, thread: Some(thread) }
    }

    /// The endpoint for config.json's `apiEndpoint`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn state(&self) -> ApiState {
        self.state.lock().expect("state").clone()
    }

    pub fn set_failing(&self, status: Option<u16>) {
        self.state.lock().expect("state").fail_with = status;
    }

    pub fn requests(&self) -> Vec<ApiRequest> {
        self.requests.lock().expect("requests").clone()
    }

    /// The PATCH bodies received, in order.
    pub fn patches(&self) -> Vec<String> {
        self.requests().into_iter().filter(|r| r.method == "PATCH").map(|r| r.body).collect()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_one(
    stream: &mut (impl Read + Write),
    state: &Mutex<ApiState>,
    requests: &Mutex<Vec<ApiRequest>>,
) -> io::Result<()> {
    let mut reader = BufReader::new(&mut *stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    drop(reader);
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default();
    let url = reqwest::Url::parse(&format!("http://api{target}"))
        .map_err(|e| io::Error::other(e.to_string()))?;
    let path = url.path().to_string();
    let query: HashMap<String, String> =
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let raw_query = url.query().unwrap_or_default().to_string();
    let body = String::from_utf8_lossy(&body).into_owned();
    let (status, answer) = answer(&method, &path, &query, &body, &mut state.lock().expect("state"));
    requests.lock().expect("requests").push(ApiRequest {
        method,
        path,
        query,
        raw_query,
        body,
        status,
    });
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(answer.as_bytes())?;
    stream.flush()
}

fn quoted_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let rest = &text[start..];
    Some(&rest[..rest.find('\'')?])
}

fn answer(
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    body: &str,
    state: &mut ApiState,
) -> (u16, String) {
    if let Some(status) = state.fail_with {
        return (status, "{}".into());
    }
    if query.get("apikey") != Some(&state.api_key) {
        return (401, "Unauthorized".into());
    }
    let device_path = format!("/v2/device({})", state.device_id);
    match (method, path) {
        ("GET", p) if p == device_path => {
            let release = state.supervisor_release.map(|id| serde_json::json!({ "__deferred": { "uri": format!("/v2/supervisor_release({id})") }, "__id": id }));
            let d = serde_json::json!({ "d": [{ "id": state.device_id, "supervisor_version": state.supervisor_version, "supervisor_release": release }] });
            (200, d.to_string())
        }
        ("GET", p) if p.starts_with("/v2/device(") => (200, r#"{"d":[]}"#.into()),
        ("GET", "/v2/supervisor_release") => {
            let filter = query.get("$filter").cloned().unwrap_or_default();
            let (Some(device_type), Some(version)) = (
                quoted_after(&filter, "device_type eq '"),
                quoted_after(&filter, "supervisor_version eq '"),
            ) else {
                return (400, "bad filter".into());
            };
            let found: Vec<serde_json::Value> = state
                .releases
                .iter()
                .filter(|(t, v, _)| t == device_type && v == version)
                .map(|(_, v, id)| serde_json::json!({ "id": id, "image_name": format!("resin/i386-supervisor:{v}") }))
                .collect();
            (200, serde_json::json!({ "d": found }).to_string())
        }
        ("PATCH", p) if p == device_path => {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
                return (400, "bad body".into());
            };
            match value.get("supervisor_release") {
                Some(serde_json::Value::Null) => state.supervisor_release = None,
                Some(v) => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
                    Some(id) => state.supervisor_release = Some(id),
                    None => return (400, "bad release".into()),
                },
                None => return (400, "no supervisor_release".into()),
            }
            (200, "OK".into())
        }
        _ => (404, "not found".into()),
    }
}
