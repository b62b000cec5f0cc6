//! Discovery of the host's CPUs, cpufreq drivers, frequency tables,
//! topology, frequency domains and global switches, from a [`SysfsIo`].
//!
//! [`SysfsIo`]: crate::sysfs::SysfsIo

pub mod paths;
