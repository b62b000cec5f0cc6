//! The answers about channels: `add-channels`, `reconnect-channels` and
//! `set-channel-status`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The answer to [`crate::CtlRequest::AddChannels`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelsAdded {
    /// Sockets the daemon now connects to.
    pub connected: Vec<PathBuf>,
    /// Sockets already connected, left alone.
    pub already_connected: Vec<PathBuf>,
}

/// The answer to [`crate::CtlRequest::ReconnectChannels`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelsReconnected {
    /// Sockets whose connection is made anew.
    pub reconnected: Vec<PathBuf>,
}

/// The answer to [`crate::CtlRequest::SetChannelStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatusSet {
    /// The channel numbers set.
    pub channels: Vec<u32>,
    /// Enabled or not, now.
    pub enabled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::pin;

    #[test]
    fn channel_answers_keep_their_wire_form() {
        pin(
            &ChannelsAdded {
                connected: vec!["/c/vm1.1".into()],
                already_connected: vec!["/c/vm1.0".into()],
            },
            r#"{"already_connected":["/c/vm1.0"],"connected":["/c/vm1.1"]}"#,
        );
        pin(
            &ChannelsReconnected {
                reconnected: vec!["/c/vm1.0".into(), "/c/vm1.1".into()],
            },
            r#"{"reconnected":["/c/vm1.0","/c/vm1.1"]}"#,
        );
        pin(
            &ChannelStatusSet {
                channels: vec![0, 2],
                enabled: false,
            },
            r#"{"channels":[0,2],"enabled":false}"#,
        );
    }
}
