//! The connection file: where the interchange listens and the run's secret key.
//!
//! Written by `strand interchange` into the run directory with mode 0600 and
//! read by clients and launchers. Anyone who can read it can submit work, so a
//! file that group or others can read is refused.

use crate::wire::{Codec, Key, DEFAULT_MAX_FRAME, PROTOCOL_VERSION};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What a client or launcher needs to reach the interchange.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Protocol version of the interchange that wrote it.
    pub protocol_version: u16,
    /// Random id of this run; frames of other runs are refused.
    pub run_id: u64,
    /// Address managers and clients connect to (host name or IP).
    pub address: String,
    /// TCP port for clients.
    pub client_port: u16,
    /// TCP port for managers.
    pub manager_port: u16,
    /// The run's secret key, hex.
    pub key: String,
    /// Largest frame any peer sends or accepts, in bytes (`strand interchange --max-frame-mib`);
    /// one number for every peer, so what one side may send the other accepts.
    #[serde(default = "default_max_frame")]
    pub max_frame: u64,
}

fn default_max_frame() -> u64 {
    DEFAULT_MAX_FRAME as u64
}

/// Why a connection file could not be used.
#[derive(Debug, Error)]
pub enum ConnectionError {
    /// Could not read or write it.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Readable by group or others.
    #[error("{path}: mode {mode:o} lets others read the run's key; expected 0600 (chmod 600 {path})")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// Not the JSON we expect.
    #[error("{path}: not a Strand connection file: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

impl ConnectionInfo {
    /// Endpoint for clients, e.g. `tcp://10.0.0.1:5000`.
    pub fn client_endpoint(&self) -> String {
        format!("tcp://{}:{}", self.address, self.client_port)
    }

    /// Endpoint for managers.
    pub fn manager_endpoint(&self) -> String {
        format!("tcp://{}:{}", self.address, self.manager_port)
    }

    /// The codec for this run.
    pub fn codec(&self) -> Codec {
        // `load` validated the key, so this only fails for hand-built values.
        let key = Key::from_hex(&self.key).unwrap_or(Key([0; 32]));
        Codec::new(key, self.run_id).with_max_frame(usize::try_from(self.max_frame).unwrap_or(usize::MAX))
    }

    /// Write atomically with mode 0600 (created with that mode, never widened).
    pub fn write(&self, path: &Path) -> Result<(), ConnectionError> {
        let io = |source| ConnectionError::Io { path: path.to_path_buf(), source };
        let tmp = path.with_extension("json.tmp");
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    }

    /// Read and check a connection file.
    pub fn load(path: &Path) -> Result<ConnectionInfo, ConnectionError> {
        let io = |source| ConnectionError::Io { path: path.to_path_buf(), source };
        let meta = fs::metadata(path).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConnectionError::Permissions { path: path.to_path_buf(), mode });
        }
        let text = fs::read_to_string(path).map_err(io)?;
        let invalid = |message: String| ConnectionError::Invalid { path: path.to_path_buf(), message };
        let info: ConnectionInfo = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if info.protocol_version != PROTOCOL_VERSION {
            return Err(invalid(format!(
                "written for protocol version {}, this program speaks {}",
                info.protocol_version, PROTOCOL_VERSION
            )));
        }
        if Key::from_hex(&info.key).is_none() {
            return Err(invalid("key is not 64 hex digits".into()));
        }
        Ok(info)
    }
}

/// Which of the interchange's two ROUTER sockets a DEALER connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The clients' (DFKs') socket.
    Client,
    /// The managers' socket.
    Manager,
}

/// A DEALER socket that could not be set up: which step failed, and ZeroMQ's error.
#[derive(Debug, Error)]
#[error("{what}: {source}")]
pub struct DealerError {
    /// The step that failed.
    pub what: &'static str,
    /// ZeroMQ's error.
    pub source: zmq::Error,
}

impl ConnectionInfo {
    /// A DEALER socket whose routing id is `id`, connected to the interchange's `side` socket.
    /// Its queues are unbounded in ZeroMQ (every sender bounds what it has in flight itself);
    /// `linger` is how long unsent frames are kept when it closes.
    pub fn dealer(
        &self,
        ctx: &zmq::Context,
        side: Side,
        id: u64,
        linger: std::time::Duration,
    ) -> Result<zmq::Socket, DealerError> {
        let step = |what| move |source| DealerError { what, source };
        let socket = ctx.socket(zmq::DEALER).map_err(step("create DEALER socket"))?;
        socket.set_identity(&id.to_le_bytes()).map_err(step("set identity"))?;
        socket.set_sndhwm(0).map_err(step("set SNDHWM"))?;
        socket.set_rcvhwm(0).map_err(step("set RCVHWM"))?;
        socket.set_linger(linger.as_millis().min(i32::MAX as u128) as i32).map_err(step("set LINGER"))?;
        let endpoint = match side {
            Side::Client => self.client_endpoint(),
            Side::Manager => self.manager_endpoint(),
        };
        socket.connect(&endpoint).map_err(step("connect to the interchange"))?;
        Ok(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::CONNECTION_FILE;

    fn info() -> ConnectionInfo {
        ConnectionInfo {
            protocol_version: PROTOCOL_VERSION,
            run_id: 5,
            address: "127.0.0.1".into(),
            client_port: 1,
            manager_port: 2,
            key: Key([1; 32]).to_hex(),
            max_frame: 1 << 20,
        }
    }

    #[test]
    fn written_0600_and_loads() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(CONNECTION_FILE);
        info().write(&p).expect("write");
        assert_eq!(fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(ConnectionInfo::load(&p).expect("load"), info());
    }

    #[test]
    fn world_readable_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(CONNECTION_FILE);
        info().write(&p).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = ConnectionInfo::load(&p).unwrap_err();
        assert!(matches!(e, ConnectionError::Permissions { mode: 0o644, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"));
    }

    #[test]
    fn garbage_is_invalid() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(CONNECTION_FILE);
        fs::write(&p, "{not json").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(ConnectionInfo::load(&p), Err(ConnectionError::Invalid { .. })));
    }
}
