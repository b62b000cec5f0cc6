//! The channel directory: QEMU's virtio-serial sockets (`<vm>.<n>`) and
//! DPDK's JSON FIFOs (`fifo<N>`), watched with inotify, each served by its
//! own task; the sockets' tasks run on the channel thread ([`thread`]).

pub mod conn;
pub mod fifo;
pub mod outbox;
pub mod spin;
pub mod thread;
pub mod watch;

use std::path::Path;

/// What a file in the channel directory is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelName {
    /// `<vm>.<n>`: a VM's virtio-serial port.
    Guest {
        /// The VM.
        vm: String,
        /// The channel number.
        index: u32,
    },
    /// `fifo<N>`: DPDK's JSON FIFO for host CPU N.
    Fifo(u32),
}

impl ChannelName {
    /// Parses a file name; `None` for names that are neither.
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(Ok(n)) = name.strip_prefix("fifo").map(str::parse) {
            return Some(ChannelName::Fifo(n));
        }
        let (vm, index) = name.rsplit_once('.')?;
        if vm.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(ChannelName::Guest {
            vm: vm.to_owned(),
            index: index.parse().ok()?,
        })
    }

    /// Parses the file name of a path.
    pub fn of_path(path: &Path) -> Option<Self> {
        path.file_name()?.to_str().and_then(Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let g = |vm: &str, index| {
            Some(ChannelName::Guest {
                vm: vm.into(),
                index,
            })
        };
        assert_eq!(ChannelName::parse("vm1.0"), g("vm1", 0));
        assert_eq!(ChannelName::parse("ubuntu.vm.12"), g("ubuntu.vm", 12));
        assert_eq!(ChannelName::parse("fifo3"), Some(ChannelName::Fifo(3)));
        assert_eq!(ChannelName::parse("fifox.1"), g("fifox", 1));
        for bad in ["vm1", ".0", "vm1.", "vm1.-1", "vm1.0x", "vm1.99999999999"] {
            assert_eq!(ChannelName::parse(bad), None, "{bad}");
        }
    }
}
