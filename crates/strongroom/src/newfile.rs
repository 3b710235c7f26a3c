//! New output files, written safely: under a temporary name beside the target (mode 0600),
//! synced, then linked into place only if the target still does not exist — so an output is
//! either complete or absent, and nothing is ever overwritten. Backups, audit timelines and
//! envelope plaintexts all go through here.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A file being written; [`NewFile::finish`] puts it in place. Dropped unfinished (an error
/// on the way), the temporary file is removed and the target never appears.
pub(crate) struct NewFile {
    target: PathBuf,
    tmp: Option<PathBuf>,
    w: Option<std::io::BufWriter<std::fs::File>>,
    /// Where writes go after `finish` took the file (never, in practice).
    sink: std::io::Sink,
}

impl NewFile {
    /// Starts `path`; refused if it exists.
    pub(crate) fn create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            bail!("{} exists; choose a new file", path.display());
        }
        let name = path
            .file_name()
            .with_context(|| format!("{} is not a file name", path.display()))?;
        let tmp = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            // Backups, plaintexts and audit timelines: readable by their owner only.
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let f = opts
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Self {
            target: path.to_path_buf(),
            tmp: Some(tmp),
            w: Some(std::io::BufWriter::with_capacity(1 << 20, f)),
            sink: std::io::sink(),
        })
    }

    /// The writer.
    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        match &mut self.w {
            Some(w) => w,
            None => &mut self.sink,
        }
    }

    /// Syncs the file and links it into place (failing if the target appeared meanwhile).
    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        let (Some(tmp), Some(w)) = (self.tmp.take(), self.w.take()) else {
            bail!("internal: file finished twice");
        };
        let done = (|| -> std::io::Result<()> {
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            drop(f);
            std::fs::hard_link(&tmp, &self.target)?;
            std::fs::remove_file(&tmp)?;
            if let Some(dir) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write {}", self.target.display()));
        }
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Writes `bytes` as the new file `path`.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = NewFile::create(path)?;
    f.writer()
        .write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.finish()
}
