//! A replay server for providers no emulator can stand in for (Google Cloud KMS, Azure Key
//! Vault): it answers a fixed, ordered list of exchanges written from the providers'
//! published API references, and checks each request Strongroom sends (method, path,
//! headers, body) before answering. Plain HTTP on loopback, one request per connection.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the replay server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query, e.g. `/keys/dk?api-version=7.5`.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as an `application/x-www-form-urlencoded` form.
    pub fn form(&self) -> BTreeMap<String, String> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks a request; `Err` says what differs from the reference.
pub type Check = Box<dyn Fn(&Recorded) -> Result<(), String> + Send + Sync>;

/// One expected request and the answer to it.
pub struct Exchange {
    /// What it is, for messages (e.g. `cryptoKeys.encrypt`).
    pub what: String,
    method: String,
    path: String,
    checks: Vec<Check>,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Exchange {
    /// Expects `method path` (path with its query, exactly) and answers `status` with a JSON
    /// `body`.
    pub fn new(what: &str, method: &str, path: &str, status: u16, body: serde_json::Value) -> Self {
        Self {
            what: what.into(),
            method: method.into(),
            path: path.into(),
            checks: Vec::new(),
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: if body.is_null() {
                String::new()
            } else {
                body.to_string()
            },
        }
    }

    /// Also checks the request with `f`.
    pub fn expect(
        mut self,
        f: impl Fn(&Recorded) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.checks.push(Box::new(f));
        self
    }

    /// Expects header `name` to be `value` exactly.
    pub fn with_header(self, name: &str, value: &str) -> Self {
        let (n, v) = (name.to_string(), value.to_string());
        self.expect(move |r| match r.header(&n) {
            Some(got) if got == v => Ok(()),
            got => Err(format!("header {n}: expected {v:?}, got {got:?}")),
        })
    }

    /// Expects the JSON body to be exactly `want`.
    pub fn with_json(self, want: serde_json::Value) -> Self {
        self.expect(move |r| {
            let got = r.json();
            if got == want {
                Ok(())
            } else {
                Err(format!("body: expected {want}, got {got}"))
            }
        })
    }

    /// Adds a response header.
    pub fn answer_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

struct State {
    queue: VecDeque<Exchange>,
    errors: Vec<String>,
    served: Vec<String>,
}

/// A running replay server; stops on drop.
pub struct Replay {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

fn read_request(s: &mut TcpStream) -> std::io::Result<Recorded> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Recorded {
        method,
        path,
        headers,
        body,
    })
}

impl Replay {
    /// Serves `exchanges` in order.
    pub fn start(exchanges: Vec<Exchange>) -> Replay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let url = format!(
            "http://{}",
            l.local_addr().unwrap_or_else(|e| panic!("addr: {e}"))
        );
        let state = Arc::new(Mutex::new(State {
            queue: exchanges.into(),
            errors: Vec::new(),
            served: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let Ok(req) = read_request(&mut s) else {
                    continue;
                };
                let mut g = st.lock().unwrap_or_else(|p| p.into_inner());
                let (status, headers, body) = match g.queue.pop_front() {
                    None => {
                        g.errors
                            .push(format!("unexpected request {} {}", req.method, req.path));
                        (599, vec![], "no exchange left".to_string())
                    }
                    Some(ex) => {
                        let mut problems = Vec::new();
                        if ex.method != req.method || ex.path != req.path {
                            problems.push(format!(
                                "expected {} {}, got {} {}",
                                ex.method, ex.path, req.method, req.path
                            ));
                        }
                        for c in &ex.checks {
                            if let Err(e) = c(&req) {
                                problems.push(e);
                            }
                        }
                        if problems.is_empty() {
                            g.served.push(ex.what.clone());
                            (ex.status, ex.headers, ex.body)
                        } else {
                            g.errors
                                .push(format!("{}: {}", ex.what, problems.join("; ")));
                            (
                                599,
                                vec![],
                                "request differs from the reference".to_string(),
                            )
                        }
                    }
                };
                drop(g);
                let mut resp = format!(
                    "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                resp.push_str(&body);
                let _ = s.write_all(resp.as_bytes());
            }
        });
        Replay { url, state, stop }
    }

    /// Adds exchanges after the ones queued.
    pub fn push(&self, ex: Exchange) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queue
            .push_back(ex);
    }

    /// Panics unless every exchange was served and every request matched its reference.
    pub fn finish(&self) {
        let g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        assert!(g.errors.is_empty(), "requests differ: {:#?}", g.errors);
        let left: Vec<&str> = g.queue.iter().map(|e| e.what.as_str()).collect();
        assert!(
            left.is_empty(),
            "exchanges never requested: {left:?} (served: {:?})",
            g.served
        );
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}
