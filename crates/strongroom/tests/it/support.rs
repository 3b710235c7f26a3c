//! `TestServer`: the real binary on 127.0.0.1:0, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

pub(crate) const ROOT: &str = "test-root-token-0123456789";
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_strongroom")
}

pub(crate) struct TestServer {
    child: Child,
    pub(crate) addr: String,
    pub(crate) token: String,
    pub(crate) stdout: Arc<Mutex<String>>,
    pub(crate) stderr: Arc<Mutex<String>>,
    http: reqwest::Client,
}

pub(crate) struct Started {
    pub(crate) server: Option<TestServer>,
    pub(crate) exit_status: Option<std::process::ExitStatus>,
    pub(crate) stderr: String,
}

impl TestServer {
    /// `serve --dev` with a known root token.
    pub(crate) fn dev() -> TestServer {
        Self::start(&["--dev"], &[("STRONGROOM_DEV_ROOT_TOKEN", ROOT)])
            .server
            .expect("dev server starts")
    }

    /// `serve --data-dir DIR` plus extra arguments; the root token is read from stdout on
    /// first start, or must be passed by the caller (`with_token`) on later starts.
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Started {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--scheduler-interval")
            .arg("1s")
            .args(args);
        cmd.env_remove("STRONGROOM_DEV_ROOT_TOKEN")
            .env("STRONGROOM_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn strongroom");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<(Option<String>, Option<String>)>();
        {
            let out = child.stdout.take().unwrap();
            let buf = stdout.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut token = None;
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    buf.lock().unwrap().push_str(&format!("{line}\n"));
                    if let Some(t) = line.strip_prefix("Root token: ") {
                        token = Some(t.to_string());
                    }
                    if let Some(a) = line.strip_prefix("strongroom listening on ") {
                        let _ = tx.send((Some(a.to_string()), token.clone()));
                    }
                }
                let _ = tx.send((None, None));
            });
        }
        {
            let err = child.stderr.take().unwrap();
            let buf = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    buf.lock().unwrap().push_str(&format!("{line}\n"));
                }
            });
        }
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((Some(addr), token)) => {
                let token = token.unwrap_or_else(|| {
                    env.iter()
                        .find(|(k, _)| *k == "STRONGROOM_DEV_ROOT_TOKEN")
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default()
                });
                let server = TestServer {
                    child,
                    addr,
                    token,
                    stdout,
                    stderr,
                    http: reqwest::Client::new(),
                };
                Started {
                    server: Some(server),
                    exit_status: None,
                    stderr: String::new(),
                }
            }
            _ => {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut status = None;
                while Instant::now() < deadline {
                    if let Ok(Some(s)) = child.try_wait() {
                        status = Some(s);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if status.is_none() {
                    let _ = child.kill();
                    status = child.wait().ok();
                }
                // Let the stderr reader finish.
                std::thread::sleep(Duration::from_millis(100));
                let e = stderr.lock().unwrap().clone();
                Started {
                    server: None,
                    exit_status: status,
                    stderr: e,
                }
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn with_token(mut self, t: &str) -> Self {
        self.token = t.to_string();
        self
    }

    /// Stops the server abruptly (SIGKILL): acknowledged writes must survive this.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and waits for a clean exit.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A request with the server's token; returns status and JSON body (Null if empty).
    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(Some(&self.token), method, path, body).await
    }

    pub(crate) async fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{}", self.addr, path);
        let mut req = self.http.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body: {text}"))
        };
        (status, v)
    }

    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{}", self.addr, path))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        (status, h, resp.text().await.unwrap())
    }

    pub(crate) async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, body).await;
        assert!((200..300).contains(&s), "{method} {path} → {s} {v}");
        v
    }

    pub(crate) async fn ring(&self, name: &str) {
        self.ok("POST", "/v1/keyrings", Some(json!({"name": name})))
            .await;
    }

    pub(crate) async fn key(&self, path: &str, body: Value) -> Value {
        let (ring, name) = path.split_once('/').unwrap();
        let mut b = body;
        b["name"] = name.into();
        self.ok("POST", &format!("/v1/keyrings/{ring}/keys"), Some(b))
            .await
    }

    pub(crate) async fn encrypt(&self, key: &str, pt: &[u8], ctx: Value) -> String {
        let v = self
            .ok(
                "POST",
                "/v1/crypto/encrypt",
                Some(json!({"key": key, "plaintext": B64.encode(pt), "context": ctx})),
            )
            .await;
        v["ciphertext"].as_str().unwrap().to_string()
    }

    pub(crate) async fn decrypt(&self, ct: &str, ctx: Value) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/crypto/decrypt",
            Some(json!({"ciphertext": ct, "context": ctx})),
        )
        .await
    }

    pub(crate) fn logs(&self) -> String {
        format!(
            "{}{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI against a server; returns (exit code, stdout, stderr).
pub(crate) fn cli(srv: &TestServer, args: &[&str]) -> (i32, String, String) {
    cli_in(srv, args, None)
}

pub(crate) fn cli_in(srv: &TestServer, args: &[&str], dir: Option<&Path>) -> (i32, String, String) {
    cli_as(&srv.addr, &srv.token, args, dir)
}

/// The CLI against `addr` presenting `token`.
pub(crate) fn cli_as(
    addr: &str,
    token: &str,
    args: &[&str],
    dir: Option<&Path>,
) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("STRONGROOM_ADDR", addr)
        .env("STRONGROOM_TOKEN", token)
        .env("RUST_BACKTRACE", "0");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().expect("run cli");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` until it returns true or `secs` pass (for effects of the server's own
/// scheduler, which runs on a 1 s interval in tests).
pub(crate) async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub(crate) fn data_dir_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(data_dir_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
