//! Explicit little-endian reads and writes at fixed offsets, and the
//! `vm_name` field rules shared by every record.
//!
//! Callers check a record's length before using these helpers, so an offset
//! outside the slice is a bug in this crate (the offsets are constants), not
//! a property of the input. No unsafe, no transmute.

use crate::VmName;

use super::offsets::header;

/// Reads `N` bytes at `off`.
fn array<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[off..off + N]);
    out
}

/// Reads a little-endian u64 at `off`.
pub(crate) fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(array(buf, off))
}

/// Reads a little-endian u16 at `off`.
pub(crate) fn u16_at(buf: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(array(buf, off))
}

/// Reads a little-endian u32 at `off`.
pub(crate) fn u32_at(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(array(buf, off))
}

/// Reads a little-endian i32 at `off`.
pub(crate) fn i32_at(buf: &[u8], off: usize) -> i32 {
    i32::from_le_bytes(array(buf, off))
}

/// Writes a little-endian u64 at `off`.
pub(crate) fn put_u64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Writes a little-endian u16 at `off`.
pub(crate) fn put_u16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes a little-endian u32 at `off`.
pub(crate) fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes a little-endian i32 at `off`.
pub(crate) fn put_i32(buf: &mut [u8], off: usize, v: i32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Why a `vm_name` field could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameFault {
    /// No NUL within the 32 bytes.
    NotTerminated,
    /// The bytes before the first NUL are not UTF-8; valid up to this index.
    NotUtf8(usize),
}

/// Reads the `vm_name` field: the bytes before the first NUL within its 32
/// bytes, which must be UTF-8. Bytes after the first NUL are ignored.
pub(crate) fn read_name(buf: &[u8]) -> Result<VmName, NameFault> {
    let field = &buf[header::VM_NAME..header::VM_NAME + header::VM_NAME_LEN];
    let end = field
        .iter()
        .position(|b| *b == 0)
        .ok_or(NameFault::NotTerminated)?;
    let name =
        std::str::from_utf8(&field[..end]).map_err(|e| NameFault::NotUtf8(e.valid_up_to()))?;
    // At most 31 bytes and NUL-free by construction, so `new` accepts it.
    VmName::new(name).map_err(|_| NameFault::NotTerminated)
}

/// Writes `name` NUL-padded into the `vm_name` field.
pub(crate) fn put_name(buf: &mut [u8], name: &VmName) {
    let field = &mut buf[header::VM_NAME..header::VM_NAME + header::VM_NAME_LEN];
    field.fill(0);
    let bytes = name.as_str().as_bytes();
    field[..bytes.len()].copy_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_little_endian() {
        let buf = [1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(u64_at(&buf, 0), 0x0807_0605_0403_0201);
        assert_eq!(u32_at(&buf, 4), 0x0807_0605);
        assert_eq!(i32_at(&buf, 8), -1);
    }

    #[test]
    fn writes_are_little_endian() {
        let mut buf = [0u8; 16];
        put_u64(&mut buf, 0, 0x0807_0605_0403_0201);
        put_u32(&mut buf, 8, 0x0c0b_0a09);
        put_i32(&mut buf, 12, -2);
        assert_eq!(
            buf,
            [
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xfe, 0xff, 0xff, 0xff
            ]
        );
    }

    #[test]
    fn name_stops_at_first_nul_and_ignores_the_rest() {
        let mut buf = [0u8; 48];
        buf[16..19].copy_from_slice(b"vm1");
        buf[20..24].copy_from_slice(&[0xff, 0xfe, 0x80, 0x01]);
        assert_eq!(
            read_name(&buf).map(|n| n.as_str().to_owned()),
            Ok("vm1".to_owned())
        );
    }

    #[test]
    fn name_faults() {
        let mut buf = [b'a'; 48];
        assert_eq!(read_name(&buf), Err(NameFault::NotTerminated));
        buf[16] = b'o';
        buf[17] = 0xc3;
        buf[18] = 0;
        assert_eq!(read_name(&buf), Err(NameFault::NotUtf8(1)));
    }

    #[test]
    fn name_of_31_bytes_fits() {
        let mut buf = [b'x'; 48];
        buf[47] = 0;
        let name = read_name(&buf).expect("31 bytes + NUL");
        assert_eq!(name.as_str().len(), 31);
        let mut out = [0xaau8; 48];
        put_name(&mut out, &name);
        assert_eq!(&out[16..48], &buf[16..48]);
    }
}
