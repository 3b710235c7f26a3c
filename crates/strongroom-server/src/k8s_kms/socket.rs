//! The plugin's unix socket: created mode 0600 before anyone can reach it, never over a live
//! server's socket, and replacing a stale one a crashed server left behind.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another process answers on the socket.
    #[error("{0}: another server is listening on this socket")]
    Live(PathBuf),
    /// The path exists and is not a socket.
    #[error("{0}: exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// Anything else.
    #[error("{path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Binds a listener at `path`, mode 0600. The socket is bound under a temporary name in the
/// same directory, restricted, then renamed into place, so there is no moment at which it
/// is reachable with wider permissions.
pub fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, SocketError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(SocketError::Live(path.to_path_buf())),
                // Nobody listens: a stale socket from a server that did not shut down.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::warn!(socket = %path.display(), "replacing a stale socket");
                    std::fs::remove_file(path).map_err(io_err(path))?;
                }
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    let name = path
        .file_name()
        .ok_or_else(|| io_err(path)(io::Error::other("not a file path")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(io_err(path))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    listener.set_nonblocking(true).map_err(io_err(path))?;
    tokio::net::UnixListener::from_std(listener).map_err(io_err(path))
}

/// Removes the socket on shutdown (only if it is still a socket).
pub fn remove_socket(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_is_private_refuses_live_and_replaces_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms.sock");
        let listener = bind_socket(&path).unwrap();
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        // Renamed into place, the socket still accepts connections at its final path.
        let client = tokio::net::UnixStream::connect(&path).await;
        assert!(client.is_ok());
        assert!(matches!(bind_socket(&path), Err(SocketError::Live(_))));
        drop(listener);
        // The old listener is gone but its file remains: stale, so it is replaced.
        let again = bind_socket(&path);
        assert!(again.is_ok(), "{:?}", again.err());
        drop(again);
        remove_socket(&path);
        assert!(!path.exists());

        let file = dir.path().join("regular");
        std::fs::write(&file, b"keep me").unwrap();
        assert!(matches!(
            bind_socket(&file),
            Err(SocketError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(&file).ok(), Some(b"keep me".to_vec()));
        // Nothing left behind in the directory but what was there.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("regular")]);
    }
}
