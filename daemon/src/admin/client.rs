//! The admin API client `pinwheelctl` uses: connect to the socket, send one
//! request line, read one response line, with a timeout.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{AdminRequest, AdminResponse};

/// Why a call failed before the daemon could answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon listens on the socket.
    #[error("cannot reach pinwheeld at {path}: {source} (is the daemon running? `systemctl status pinwheeld`)")]
    Connect {
        /// Socket path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The exchange failed midway.
    #[error("admin socket {path}: {source}")]
    Io {
        /// Socket path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The daemon's answer was not understood.
    #[error("unexpected answer from pinwheeld: {0}")]
    Protocol(String),
}

/// Sends `request` to the daemon at `socket` and returns its response.
/// Waits at most `timeout` for the answer.
pub fn call(
    socket: &Path,
    request: &AdminRequest,
    timeout: Duration,
) -> Result<AdminResponse, ClientError> {
    let path = socket.display().to_string();
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: path.clone(),
        source,
    })?;
    let io = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line =
        serde_json::to_string(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(io)?;
    if answer.is_empty() {
        return Err(ClientError::Protocol(
            "the daemon closed the connection".into(),
        ));
    }
    serde_json::from_str(&answer).map_err(|e| ClientError::Protocol(e.to_string()))
}
