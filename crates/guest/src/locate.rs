//! Finding the virtio-serial port of a power channel inside the guest.
//!
//! ## Behavior
//! For channel `N` the port is named `virtio.serial.port.poweragent.N`.
//! 1. `<dev>/virtio-ports/<name>`, the link udev makes, is used if it exists.
//! 2. Otherwise (no udev, e.g. a minimal initramfs) every
//!    `<sys>/class/virtio-ports/<vportXpY>/name` is read, in sorted order,
//!    and the first whose content is `<name>` gives `<dev>/<vportXpY>`.
//! 3. Otherwise [`ChannelError::NoSuchPort`] lists both places.
//!
//! Both roots are parameters ([`PortRoots`]), so tests use temp dirs; this
//! module never opens the port, it only names it.

use std::path::{Path, PathBuf};

use crate::error::ChannelError;

/// The name QEMU/libvirt give the port of power channel `index`.
pub fn port_name(index: u32) -> String {
    format!("virtio.serial.port.poweragent.{index}")
}

/// Where the guest's device and sysfs trees are (`/dev` and `/sys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRoots {
    /// The device directory (`/dev`).
    pub dev: PathBuf,
    /// The sysfs root (`/sys`).
    pub sys: PathBuf,
}

impl Default for PortRoots {
    fn default() -> Self {
        PortRoots {
            dev: PathBuf::from("/dev"),
            sys: PathBuf::from("/sys"),
        }
    }
}

/// The path of the port of channel `index`, by the udev link or by
/// `/sys/class/virtio-ports/*/name`.
pub fn find_port(index: u32, roots: &PortRoots) -> Result<PathBuf, ChannelError> {
    let name = port_name(index);
    let link = roots.dev.join("virtio-ports").join(&name);
    if link.exists() {
        return Ok(link);
    }
    let class = roots.sys.join("class/virtio-ports");
    if let Some(device) = device_named(&class, &name) {
        return Ok(roots.dev.join(device));
    }
    Err(ChannelError::NoSuchPort {
        index,
        looked_at: vec![link, class.join("*/name")],
    })
}

/// The `vportXpY` entry of `class` whose `name` file holds `name`.
fn device_named(class: &Path, name: &str) -> Option<String> {
    let mut entries: Vec<_> = std::fs::read_dir(class)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    entries.sort();
    entries.into_iter().find_map(|device| {
        let content = std::fs::read_to_string(class.join(&device).join("name")).ok()?;
        (content.trim_end_matches(['\n', '\0']) == name)
            .then(|| device.to_string_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> (tempfile::TempDir, PortRoots) {
        let dir = tempfile::tempdir().unwrap();
        let roots = PortRoots {
            dev: dir.path().join("dev"),
            sys: dir.path().join("sys"),
        };
        std::fs::create_dir_all(&roots.dev).unwrap();
        (dir, roots)
    }

    fn sys_port(roots: &PortRoots, device: &str, name: &str) {
        let d = roots.sys.join("class/virtio-ports").join(device);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
    }

    #[test]
    fn udev_link_wins() {
        let (_dir, roots) = roots();
        let links = roots.dev.join("virtio-ports");
        std::fs::create_dir_all(&links).unwrap();
        std::fs::write(links.join(port_name(2)), "").unwrap();
        sys_port(&roots, "vport0p1", &port_name(2));
        assert_eq!(find_port(2, &roots).unwrap(), links.join(port_name(2)));
    }

    #[test]
    fn sysfs_name_is_the_fallback() {
        let (_dir, roots) = roots();
        sys_port(&roots, "vport0p0", "org.qemu.guest_agent.0");
        sys_port(&roots, "vport0p1", &port_name(0));
        sys_port(&roots, "vport0p2", &port_name(1));
        assert_eq!(find_port(1, &roots).unwrap(), roots.dev.join("vport0p2"));
        assert_eq!(find_port(0, &roots).unwrap(), roots.dev.join("vport0p1"));
    }

    #[test]
    fn missing_port_names_both_places() {
        let (_dir, roots) = roots();
        sys_port(&roots, "vport0p1", &port_name(10));
        let err = find_port(1, &roots).unwrap_err();
        let ChannelError::NoSuchPort { index, looked_at } = &err else {
            panic!("{err}")
        };
        assert_eq!(*index, 1);
        assert_eq!(looked_at.len(), 2);
        assert!(err.to_string().contains("poweragent.1"), "{err}");
    }
}
