//! A blocking client: one request, one response, over the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{CtlRequest, CtlResponse};

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot reach vmpowerd at {path} (is it running, and may you use its socket?)")]
    Connect {
        /// The control socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Sending or receiving failed.
    #[error("talking to vmpowerd at {path} failed")]
    Io {
        /// The control socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The daemon's answer was not understood.
    #[error("vmpowerd sent an answer that is not understood: {0}")]
    BadAnswer(String),
}

/// A connection to the control socket.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the control socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        let io = |source| ClientError::Io {
            path: path.to_owned(),
            source,
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(Client {
            path: path.to_owned(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends one request and reads its answer as `T`, the type the
    /// request is answered with (see [`crate::answers`]; the methods of
    /// [`crate::queries`] pair them for you). An answer not of that type
    /// is [`ClientError::BadAnswer`].
    pub fn ask<T: DeserializeOwned>(
        &mut self,
        request: &CtlRequest,
    ) -> Result<CtlResponse<T>, ClientError> {
        Ok(match self.call(request)? {
            CtlResponse::Ok(value) => CtlResponse::Ok(
                serde_json::from_value(value)
                    .map_err(|e| ClientError::BadAnswer(format!("{e} (for {request:?})")))?,
            ),
            CtlResponse::Error(e) => CtlResponse::Error(e),
        })
    }

    /// Sends one request and waits for its response, its data as the
    /// daemon sent it.
    pub fn call(&mut self, request: &CtlRequest) -> Result<CtlResponse, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_string(request)
            .map_err(|e| ClientError::BadAnswer(format!("cannot encode request: {e}")))?;
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(io)?;
        let mut answer = String::new();
        let n = self.reader.read_line(&mut answer).map_err(io)?;
        if n == 0 {
            return Err(ClientError::BadAnswer(
                "connection closed without an answer".into(),
            ));
        }
        serde_json::from_str(&answer).map_err(|e| ClientError::BadAnswer(format!("{e}: {answer}")))
    }
}
