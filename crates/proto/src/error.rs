//! Errors raised when building model values from out-of-range parts.

/// A value that the protocol's types cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// hour {0} is outside 0..=23
    #[error("hour {0} is outside 0..=23")]
    BadHour(i64),
    /// {0} vCPUs given, at most 8 allowed
    #[error("{0} cores given, at most 8 allowed")]
    TooManyVcpus(usize),
    /// {0} MACs given, at most 10 allowed
    #[error("{0} MAC addresses given, at most 10 allowed")]
    TooManyMacs(usize),
    /// not a MAC address
    #[error("{0:?} is not a MAC address (expected xx:xx:xx:xx:xx:xx)")]
    BadMac(String),
    /// VM name too long
    #[error("VM name {0:?} is longer than 31 bytes")]
    NameTooLong(String),
    /// VM name contains NUL
    #[error("VM name {0:?} contains a NUL byte")]
    NameHasNul(String),
}
