//! `strongroom envelope encrypt|decrypt`: files and pipes of any size in the envelope format
//! (`docs/envelope-format.md`), with the data key from a Strongroom key. The server only ever
//! sees the 32-byte data key, never the data.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Map, Value, json};
use strongroom_client::{B64, Client, Method};
use strongroom_crypto::envelope::{self, Header, WrappedKey};
use strongroom_crypto::{EncryptionContext, KeyMaterial};

use crate::output::{self, Format};

/// Members whose wrapped keys this release can unwrap: Strongroom keys.
const STRONGROOM_MEMBER: &str = "strongroom:";

#[derive(Debug, clap::Subcommand)]
pub(crate) enum EnvelopeCmd {
    /// Encrypt a file or stream of any size: a fresh data key from --key seals it in
    /// chunks; the envelope carries the data key wrapped by that key. Constant memory.
    Encrypt {
        /// The key that wraps the data key: <key ring>/<key>, alias/<alias> or an id.
        #[arg(long)]
        key: String,
        /// Encryption context pair (repeatable) as key=value; authenticated with the data
        /// and bound to the wrapped key. Stored in the envelope (it is not secret).
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
        /// Plaintext bytes per chunk (16 B to 16 MiB).
        #[arg(long, default_value_t = envelope::DEFAULT_CHUNK_SIZE)]
        chunk_size: u32,
        /// The input (`-` for stdin).
        #[arg(long = "in", value_name = "FILE")]
        in_path: PathBuf,
        /// The envelope to write (`-` for stdout); refused if it exists.
        #[arg(long = "out", value_name = "FILE")]
        out_path: PathBuf,
    },
    /// Decrypt an envelope. Each chunk is written only once it authenticated; with --out
    /// FILE the plaintext goes to a temporary file renamed into place only when the whole
    /// envelope verified, so a changed or truncated envelope leaves nothing behind.
    Decrypt {
        /// The envelope (`-` for stdin).
        #[arg(long = "in", value_name = "FILE")]
        in_path: PathBuf,
        /// Where to write the plaintext (`-` for stdout: chunks before a failure are then
        /// already written, and the exit code says it failed); refused if it exists.
        #[arg(long = "out", value_name = "FILE")]
        out_path: PathBuf,
    },
}

fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn open_input(p: &Path) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    if is_dash(p) {
        return Ok((Box::new(std::io::stdin().lock()), None));
    }
    let f = std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(std::io::BufReader::with_capacity(1 << 20, f)), len))
}

/// A new output file, written under a temporary name beside it and renamed into place by
/// [`Output::finish`]; removed if dropped unfinished.
struct Output {
    target: PathBuf,
    tmp: Option<PathBuf>,
    w: Box<dyn Write>,
}

impl Output {
    fn create(p: &Path) -> anyhow::Result<Self> {
        if is_dash(p) {
            return Ok(Self {
                target: p.to_path_buf(),
                tmp: None,
                w: Box::new(std::io::stdout().lock()),
            });
        }
        if p.exists() {
            bail!("{} exists; choose a new file", p.display());
        }
        let name = p
            .file_name()
            .with_context(|| format!("{} is not a file name", p.display()))?;
        let tmp = p.with_file_name(format!(".{}.partial", name.to_string_lossy()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let f = opts
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Self {
            target: p.to_path_buf(),
            tmp: Some(tmp),
            w: Box::new(std::io::BufWriter::with_capacity(1 << 20, f)),
        })
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.w.flush().context("cannot write the output")?;
        if let Some(tmp) = self.tmp.take() {
            // The writer is dropped (and the file closed) before the rename.
            let w = std::mem::replace(&mut self.w, Box::new(std::io::sink()));
            drop(w);
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot sync {}", tmp.display()))?;
            if let Err(e) = std::fs::hard_link(&tmp, &self.target) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("cannot create {}", self.target.display()));
            }
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

fn progress_bar(len: Option<u64>, fmt: Format, to_stdout: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if fmt == Format::Json
        || !std::io::stderr().is_terminal()
        || (to_stdout && std::io::stdout().is_terminal())
    {
        return None;
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {bytes}/{total_bytes} {binary_bytes_per_sec} {wide_bar} {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

fn context_of(pairs: &[String]) -> anyhow::Result<(EncryptionContext, Map<String, Value>)> {
    let mut m = std::collections::BTreeMap::new();
    let mut json_pairs = Map::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--context must be key=value, got {p:?}"))?;
        if m.insert(k.to_string(), v.to_string()).is_some() {
            bail!("--context key {k:?} given twice");
        }
        json_pairs.insert(k.to_string(), Value::String(v.to_string()));
    }
    let ctx = EncryptionContext::try_new(m).map_err(|e| anyhow::anyhow!("--context: {e}"))?;
    Ok((ctx, json_pairs))
}

pub(crate) async fn run(c: &Client, fmt: Format, cmd: EnvelopeCmd) -> anyhow::Result<()> {
    match cmd {
        EnvelopeCmd::Encrypt {
            key,
            context,
            chunk_size,
            in_path: input,
            out_path: output,
        } => {
            let (ctx, json_ctx) = context_of(&context)?;
            if !(envelope::MIN_CHUNK_SIZE..=envelope::MAX_CHUNK_SIZE).contains(&chunk_size) {
                bail!("--chunk-size must be 16 to 16777216 bytes");
            }
            let (mut r, len) = open_input(&input)?;
            let out = Output::create(&output)?;
            let v = c
                .call(
                    Method::Post,
                    "/v1/crypto/generate-data-key",
                    Some(
                        &json!({"key": key, "length": envelope::DATA_KEY_LEN, "context": json_ctx}),
                    ),
                )
                .await?;
            let dk = KeyMaterial::new(c.bytes_field(&v, "plaintext")?);
            let wrapped = c.bytes_field(&v, "ciphertext")?;
            let member = format!("{STRONGROOM_MEMBER}{}", v["key"].as_str().unwrap_or(&key));
            let header = Header::new(
                &dk,
                chunk_size,
                ctx,
                vec![WrappedKey {
                    member: member.clone(),
                    wrapped,
                }],
            )?;
            let bar = progress_bar(len, fmt, is_dash(&output));
            let mut out = out;
            let n = tokio::task::block_in_place(|| {
                envelope::encrypt(&dk, &header, &mut r, &mut out.w, |t| {
                    if let Some(b) = &bar {
                        b.set_position(t);
                    }
                })
            })?;
            out.finish()?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            report(
                fmt,
                &output,
                json!({"encrypted": n, "chunk_size": chunk_size, "members": [member], "key_version": v["version"]}),
            );
        }
        EnvelopeCmd::Decrypt {
            in_path: input,
            out_path: output,
        } => {
            let (mut r, len) = open_input(&input)?;
            let header = tokio::task::block_in_place(|| Header::read(&mut r))
                .with_context(|| format!("{}", input.display()))?;
            let json_ctx: Map<String, Value> = header
                .context
                .pairs()
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            // Members in the envelope's order; the first that unwraps its copy wins.
            let mut failures = Vec::new();
            let mut found = None;
            for k in &header.keys {
                if !k.member.starts_with(STRONGROOM_MEMBER) {
                    failures.push(format!(
                        "{}: not a Strongroom key (other providers come with key sets)",
                        k.member
                    ));
                    continue;
                }
                let body = json!({"ciphertext": B64.encode(&k.wrapped), "context": json_ctx});
                match c
                    .call(Method::Post, "/v1/crypto/decrypt", Some(&body))
                    .await
                {
                    Ok(v) => {
                        found = Some((
                            KeyMaterial::new(c.bytes_field(&v, "plaintext")?),
                            k.member.clone(),
                        ));
                        break;
                    }
                    Err(e) => failures.push(format!("{}: {e}", k.member)),
                }
            }
            let Some((dk, member)) = found else {
                bail!(
                    "no member could unwrap the data key: {}",
                    failures.join("; ")
                );
            };
            let mut out = Output::create(&output)?;
            let bar = progress_bar(len, fmt, is_dash(&output));
            let n = tokio::task::block_in_place(|| {
                envelope::decrypt(&dk, &header, &mut r, &mut out.w, |t| {
                    if let Some(b) = &bar {
                        b.set_position(t);
                    }
                })
            })
            .map_err(|e| {
                if is_dash(&output) {
                    anyhow::anyhow!(
                        "{e}; the plaintext written to stdout is incomplete and must not be used"
                    )
                } else {
                    anyhow::anyhow!("{e}; nothing was written")
                }
            })?;
            out.finish()?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            report(fmt, &output, json!({"decrypted": n, "member": member}));
        }
    }
    Ok(())
}

/// A summary on stderr (stdout may be the data), or JSON on stdout when writing to a file.
fn report(fmt: Format, output: &Path, mut v: Value) {
    v["out"] = output.display().to_string().into();
    match (fmt, is_dash(output)) {
        (Format::Json, false) => output::object(fmt, &v),
        (Format::Json, true) => output::warn_line(&v.to_string()),
        (Format::Table, false) => output::line(&summary(&v)),
        (Format::Table, true) => output::warn_line(&summary(&v)),
    }
}

fn summary(v: &Value) -> String {
    match (v.get("encrypted"), v.get("decrypted")) {
        (Some(n), _) => format!(
            "encrypted {n} bytes into {} (wrapped by {})",
            v["out"].as_str().unwrap_or(""),
            v["members"][0].as_str().unwrap_or("")
        ),
        (_, Some(n)) => format!(
            "decrypted {n} bytes into {} (data key from {})",
            v["out"].as_str().unwrap_or(""),
            v["member"].as_str().unwrap_or("")
        ),
        _ => v.to_string(),
    }
}
