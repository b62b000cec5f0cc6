//! The one `ioctl` netlab needs: `TUNSETIFF`, attaching an open
//! `/dev/net/tun` to an existing tap as its queue (what QEMU does with a
//! guest NIC's tap). Kept apart because it is `unsafe`.

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::fs::{File, OpenOptions};
use std::io;

use rustix::ioctl::{Opcode, Updater, ioctl, opcode};

/// `IFF_TAP`: an Ethernet (layer 2) device.
const IFF_TAP: u16 = 0x0002;
/// `IFF_NO_PI`: frames without the 4-byte packet information header.
const IFF_NO_PI: u16 = 0x1000;
/// `TUNSETIFF = _IOW('T', 202, int)`.
const TUNSETIFF: Opcode = opcode::write::<c_int>(b'T', 202);
/// `IFNAMSIZ`.
const IFNAMSIZ: usize = 16;

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags at
/// the start of the 24-byte union.
#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: u16,
    _pad: [u8; 22],
}

/// Opens `/dev/net/tun` and attaches it to tap `name` (which must exist
/// and be a tap): reads then return the frames the host sends into it.
pub(crate) fn attach_tap(name: &str) -> io::Result<File> {
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not an interface name"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads (and writes the name back into) a `struct
    // ifreq`, 40 bytes, of which `IfReq` has the layout and size; `req`
    // is a live, exclusively borrowed value for the whole call.
    unsafe {
        let call = Updater::<TUNSETIFF, IfReq>::new(&mut req);
        ioctl(&file, call)?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_layout_and_names_are_checked() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::offset_of!(IfReq, flags), 16);
        assert_eq!(TUNSETIFF, 0x4004_54ca);
        for bad in ["", "a-name-of-16-chr", "a\0b"] {
            let e = attach_tap(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
