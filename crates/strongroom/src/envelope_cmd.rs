//! `strongroom envelope encrypt|decrypt`: files and pipes of any size in the envelope format
//! (`docs/envelope-format.md`), with the data key from a Strongroom key. The server only ever
//! sees the 32-byte data key, never the data.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use strongroom_client::Client;
use strongroom_client::envelope::Envelopes;
use strongroom_crypto::EncryptionContext;
use strongroom_crypto::envelope::{self, Header};

use crate::output::{self, Format};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum EnvelopeCmd {
    /// Encrypt a file or stream of any size: a fresh data key from the first --key seals it
    /// in chunks; the envelope carries the data key wrapped by every --key, and any one of
    /// them opens it. Constant memory.
    Encrypt {
        /// A key that wraps the data key (repeatable; decryption tries them in this order):
        /// <key ring>/<key>, alias/<alias>, an id, or key-set:<name> for a key set held by
        /// the server (every member wraps the data key; any one opens it; docs/key-sets.md).
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
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
    /// Replace the wrapped data keys of envelope files with copies wrapped by the given keys
    /// (after a rotation, or to add or remove a key), without touching their bodies. Each
    /// file is rewritten under a temporary name and renamed over the original.
    Rewrap {
        /// A key that wraps the data key from now on (repeatable, in decryption order):
        /// as for encrypt, key-set:<name> re-wraps under the key set's current members.
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// The envelope files.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
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

/// Where output goes: a new file (complete or absent, see `crate::newfile`), or stdout.
enum Output {
    File(crate::newfile::NewFile),
    Stdout(std::io::StdoutLock<'static>),
}

impl Output {
    fn create(p: &Path) -> anyhow::Result<Self> {
        Ok(if is_dash(p) {
            Output::Stdout(std::io::stdout().lock())
        } else {
            Output::File(crate::newfile::NewFile::create(p)?)
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::File(f) => f.writer(),
            Output::Stdout(s) => s,
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::File(f) => f.finish(),
            Output::Stdout(mut s) => s.flush().context("cannot write to stdout"),
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

fn context_of(pairs: &[String]) -> anyhow::Result<EncryptionContext> {
    EncryptionContext::try_new(crate::cli::parse_pairs(pairs, "--context")?)
        .map_err(|e| anyhow::anyhow!("--context: {e}"))
}

pub(crate) async fn run(c: &Client, fmt: Format, cmd: EnvelopeCmd) -> anyhow::Result<()> {
    match cmd {
        EnvelopeCmd::Encrypt {
            keys,
            context,
            chunk_size,
            in_path: input,
            out_path: output,
        } => {
            let ctx = context_of(&context)?;
            if !(envelope::MIN_CHUNK_SIZE..=envelope::MAX_CHUNK_SIZE).contains(&chunk_size) {
                bail!("--chunk-size must be 16 to 16777216 bytes");
            }
            if keys.len() > envelope::MAX_WRAPPED_KEYS {
                bail!("at most {} --key", envelope::MAX_WRAPPED_KEYS);
            }
            let (mut r, len) = open_input(&input)?;
            let out = Output::create(&output)?;
            let env = Envelopes::new(c.clone(), None);
            let (dk, wrapped) = env.data_key(&keys, &ctx, None).await?;
            let members: Vec<String> = wrapped.iter().map(|w| w.member.clone()).collect();
            let header = Header::new(&dk, chunk_size, ctx, wrapped)?;
            let bar = progress_bar(len, fmt, is_dash(&output));
            let mut out = out;
            let n = tokio::task::block_in_place(|| {
                envelope::encrypt(&dk, &header, &mut r, &mut out.writer(), |t| {
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
                json!({"encrypted": n, "chunk_size": chunk_size, "members": members}),
            );
        }
        EnvelopeCmd::Rewrap { keys, files } => {
            if keys.len() > envelope::MAX_WRAPPED_KEYS {
                bail!("at most {} --key", envelope::MAX_WRAPPED_KEYS);
            }
            let mut done = Vec::new();
            for (i, file) in files.iter().enumerate() {
                let members = rewrap(c, &keys, file).await.with_context(|| {
                    format!(
                        "{} (files before it were rewrapped, it and those after were not)",
                        file.display()
                    )
                })?;
                if fmt == Format::Table {
                    output::line(&format!(
                        "[{}/{}] {} now wrapped by {}",
                        i + 1,
                        files.len(),
                        file.display(),
                        members.join(", ")
                    ));
                }
                done.push(json!({"file": file.display().to_string(), "members": members}));
            }
            if fmt == Format::Json {
                output::object(fmt, &json!({"rewrapped": done}));
            }
        }
        EnvelopeCmd::Decrypt {
            in_path: input,
            out_path: output,
        } => {
            let (mut r, len) = open_input(&input)?;
            let header = tokio::task::block_in_place(|| Header::read(&mut r))
                .with_context(|| format!("{}", input.display()))?;
            let (dk, member) = Envelopes::new(c.clone(), None).unwrap(&header).await?;
            let mut out = Output::create(&output)?;
            let bar = progress_bar(len, fmt, is_dash(&output));
            let n = tokio::task::block_in_place(|| {
                envelope::decrypt(&dk, &header, &mut r, &mut out.writer(), |t| {
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

/// Rewrites one envelope with its data key wrapped by `keys`; the body is copied as is.
async fn rewrap(c: &Client, keys: &[String], file: &Path) -> anyhow::Result<Vec<String>> {
    let (mut r, _) = open_input(file)?;
    let mut header = tokio::task::block_in_place(|| Header::read(&mut r))?;
    let env = Envelopes::new(c.clone(), None);
    let (dk, _) = env.unwrap(&header).await?;
    header.keys = env.wrap(&dk, keys, &header.context).await?;
    let members = header.keys.iter().map(|k| k.member.clone()).collect();
    let name = file
        .file_name()
        .with_context(|| format!("{} is not a file name", file.display()))?;
    let tmp = file.with_file_name(format!(".{}.rewrap", name.to_string_lossy()));
    let written = tokio::task::block_in_place(|| -> anyhow::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut w = std::io::BufWriter::new(opts.open(&tmp)?);
        w.write_all(&header.encode()?)?;
        std::io::copy(&mut r, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, file)?;
        Ok(())
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    Ok(members)
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
