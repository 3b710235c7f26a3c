//! A real PostgreSQL for tests: STRONGROOM_TEST_POSTGRES_URL (a superuser URL, as
//! scripts/test.sh can set), or else a throw-away cluster this test process starts on a
//! loopback port from the installed PostgreSQL (Debian `postgresql`), removed when the
//! process exits. Each test gets a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a panic is a failed test

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

struct Cluster {
    /// `postgres://…@host:port` without a database.
    base: String,
    /// The watcher shell: it stops the server and removes the cluster when its stdin closes,
    /// which happens when this process exits, however it exits.
    _watcher: Option<Mutex<Child>>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

fn bin_dir() -> Option<std::path::PathBuf> {
    let on_path = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    if let Some(p) = on_path {
        return std::path::Path::new(&p).parent().map(|p| p.to_path_buf());
    }
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// A cluster directory initialised by `initdb`, owned by the user PostgreSQL runs as.
struct Initialised {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    /// `runuser -u postgres -- ` when this process is root (PostgreSQL refuses root).
    as_pg: &'static str,
    port: u16,
}

fn initdb() -> Result<Initialised, String> {
    let bin = bin_dir().ok_or(
        "the PostgreSQL store suite needs PostgreSQL: apt-get install postgresql (scripts/test.sh does)",
    )?;
    let dir = tempfile::Builder::new()
        .prefix("strongroom-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let as_pg = if root {
        let ok = Command::new("chown")
            .args(["postgres", &dir.display().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err("cannot hand the cluster directory to the postgres user".into());
        }
        "runuser -u postgres -- "
    } else {
        ""
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let d = dir.display();
    let b = bin.display();
    let init = Command::new("sh")
        .args([
            "-c",
            &format!(
                "{as_pg}{b}/initdb -D {d}/data -U postgres --auth=trust --encoding=UTF8 --locale=C >{d}/initdb.log 2>&1"
            ),
        ])
        .status()
        .map_err(|e| e.to_string())?;
    if !init.success() {
        let log = std::fs::read_to_string(dir.join("initdb.log")).unwrap_or_default();
        return Err(format!("initdb failed: {log}"));
    }
    Ok(Initialised {
        dir,
        bin,
        as_pg,
        port,
    })
}

impl Initialised {
    /// The server's command line (without redirection).
    fn postgres_command(&self) -> String {
        format!(
            "{}{}/postgres -D {}/data -p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.as_pg,
            self.bin.display(),
            self.dir.display(),
            self.port,
            self.dir.display()
        )
    }

    fn pg_ctl(&self, args: &str) -> bool {
        Command::new("sh")
            .args([
                "-c",
                &format!(
                    "{}{}/pg_ctl -D {}/data {args} >>{}/pg_ctl.log 2>&1",
                    self.as_pg,
                    self.bin.display(),
                    self.dir.display(),
                    self.dir.display()
                ),
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn base(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

fn start() -> Result<Cluster, String> {
    if let Ok(url) = std::env::var("STRONGROOM_TEST_POSTGRES_URL") {
        return Ok(Cluster {
            base: url.trim_end_matches('/').to_string(),
            _watcher: None,
        });
    }
    let c = initdb()?;
    let d = c.dir.display();
    let script = format!(
        "{} >{d}/server.log 2>&1 & read _; {}{}/pg_ctl -D {d}/data stop -m immediate -w >/dev/null 2>&1; wait; rm -rf {d}",
        c.postgres_command(),
        c.as_pg,
        c.bin.display()
    );
    let watcher = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    Ok(Cluster {
        base: c.base(),
        _watcher: Some(Mutex::new(watcher)),
    })
}

/// A cluster of one test's own, which it may stop and start (to test outages). Stopped and
/// removed on drop.
pub struct PrivateCluster {
    c: Initialised,
}

impl PrivateCluster {
    /// Initialises and starts a new cluster on a free loopback port.
    pub fn start() -> Self {
        let c = initdb().unwrap_or_else(|e| panic!("{e}"));
        let this = Self { c };
        this.resume();
        this
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: connections drop as in a crash).
    pub fn stop(&self) {
        assert!(
            self.c.pg_ctl("stop -m immediate -w"),
            "pg_ctl stop failed; see {}/pg_ctl.log",
            self.c.dir.display()
        );
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    pub fn resume(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.c.port,
            self.c.dir.display()
        );
        assert!(
            self.c.pg_ctl(&format!(
                "start -w -t 60 -l {}/server.log -o '{opts}'",
                self.c.dir.display()
            )),
            "pg_ctl start failed; see {}/server.log",
            self.c.dir.display()
        );
    }

    /// A new, empty database on this cluster.
    pub async fn fresh_database_url(&self) -> String {
        create_database(&self.c.base()).await
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.c.pg_ctl("stop -m immediate -w");
        let _ = std::fs::remove_dir_all(&self.c.dir);
    }
}

/// The URL of a new, empty database on the test cluster (started on first use).
pub async fn fresh_database_url() -> String {
    let cluster = CLUSTER
        .get_or_init(start)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    create_database(&cluster.base).await
}

async fn create_database(base: &str) -> String {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    // The server may still be starting: retry for a while.
    let admin = format!("{base}/postgres");
    let mut last = String::new();
    for _ in 0..150 {
        match sqlx::postgres::PgPool::connect(&admin).await {
            Ok(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                return format!("{base}/{name}");
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = std::io::stderr().write_all(last.as_bytes());
    panic!("PostgreSQL did not accept connections at {admin}: {last}");
}
