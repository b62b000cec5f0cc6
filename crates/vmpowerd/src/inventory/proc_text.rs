//! The text formats of the /proc files the inventory reads, parsed
//! without I/O: `cmdline`, QEMU's `-name` option, vCPU thread names,
//! `fd` link targets and `net/unix`.
//!
//! ## Behavior
//! - Every parser takes raw bytes (proc files need not be UTF-8) and returns
//!   `None` or skips a line rather than fail on text it does not recognise;
//!   no parser panics on any input.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use vmpower_engine::Vcpu;

/// Splits `/proc/PID/cmdline` at NULs (a trailing NUL ends the last arg).
pub fn split_cmdline(raw: &[u8]) -> Vec<Vec<u8>> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect()
}

/// The guest name in a QEMU command line's `-name` (or `--name`) option:
/// `vm0`, `vm0,debug-threads=on`, `guest=vm0,debug-threads=on`; QEMU's `,,`
/// stands for a comma in the name.
pub fn qemu_name(args: &[Vec<u8>]) -> Option<String> {
    let pos = args
        .iter()
        .position(|a| a.as_slice() == b"-name" || a.as_slice() == b"--name")?;
    let value = std::str::from_utf8(args.get(pos + 1)?).ok()?;
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                current.push(',');
            } else {
                parts.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    let mut name = None;
    for (i, part) in parts.iter().enumerate() {
        if let Some(n) = part.strip_prefix("guest=") {
            name = Some(n.to_owned());
        } else if i == 0 && !part.contains('=') {
            name = Some(part.clone());
        }
    }
    name.filter(|n| !n.is_empty())
}

/// The vCPU number in a thread name `CPU <n>/KVM` or `CPU <n>/TCG`.
pub fn vcpu_of_comm(comm: &[u8]) -> Option<Vcpu> {
    let comm = comm.strip_suffix(b"\n").unwrap_or(comm);
    let rest = comm.strip_prefix(b"CPU ")?;
    let digits = rest
        .strip_suffix(b"/KVM")
        .or_else(|| rest.strip_suffix(b"/TCG"))?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The inode in an fd link target `socket:[N]`.
pub fn socket_inode(link: &OsStr) -> Option<u64> {
    let inner = link
        .as_bytes()
        .strip_prefix(b"socket:[")?
        .strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// The `(inode, path)` of each path-bound socket in `net/unix` (the header
/// line, unbound and malformed lines are skipped; abstract names start with
/// `@`). The path is the rest of the line after the seventh field, so a path
/// with spaces survives.
pub fn parse_net_unix(raw: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    raw.split(|b| *b == b'\n').filter_map(|line| {
        let mut rest = line;
        let mut inode = None;
        for field in 0..7 {
            let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
            rest = &rest[start..];
            let end = rest
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(rest.len());
            if field == 6 {
                inode = std::str::from_utf8(&rest[..end]).ok()?.parse().ok();
            }
            rest = &rest[end..];
        }
        let path = rest.strip_prefix(b" ")?;
        let path = path.strip_suffix(b"\r").unwrap_or(path);
        (!path.is_empty()).then_some((inode?, path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn cmdline_splits_at_nuls() {
        assert_eq!(
            split_cmdline(b"qemu\0-name\0vm0\0"),
            args(&["qemu", "-name", "vm0"])
        );
        assert_eq!(split_cmdline(b"a\0\0b"), args(&["a", "", "b"]));
        assert!(split_cmdline(b"").is_empty());
    }

    #[test]
    fn name_forms() {
        let q = |v: &str| qemu_name(&args(&["qemu-system-x86_64", "-m", "256", "-name", v]));
        assert_eq!(q("vm0").as_deref(), Some("vm0"));
        assert_eq!(q("vm0,debug-threads=on").as_deref(), Some("vm0"));
        assert_eq!(q("guest=vm0,debug-threads=on").as_deref(), Some("vm0"));
        assert_eq!(q("debug-threads=on,guest=vm1").as_deref(), Some("vm1"));
        assert_eq!(q("a,,b,debug-threads=on").as_deref(), Some("a,b"));
        assert_eq!(q("debug-threads=on"), None);
        assert_eq!(q(""), None);
        assert_eq!(
            qemu_name(&args(&["qemu", "--name", "x"])).as_deref(),
            Some("x")
        );
        assert_eq!(qemu_name(&args(&["qemu", "-name"])), None);
        assert_eq!(qemu_name(&args(&["qemu", "vm0"])), None);
    }

    #[test]
    fn comm_forms() {
        assert_eq!(vcpu_of_comm(b"CPU 0/KVM\n"), Some(0));
        assert_eq!(vcpu_of_comm(b"CPU 12/TCG\n"), Some(12));
        assert_eq!(vcpu_of_comm(b"CPU 3/KVM"), Some(3));
        assert_eq!(vcpu_of_comm(b"CPU /KVM\n"), None);
        assert_eq!(vcpu_of_comm(b"CPU -1/KVM\n"), None);
        assert_eq!(vcpu_of_comm(b"qemu-system-x86\n"), None);
        assert_eq!(vcpu_of_comm(b"CPU 0/HVF\n"), None);
    }

    #[test]
    fn socket_links_and_net_unix() {
        assert_eq!(socket_inode(OsStr::new("socket:[4242]")), Some(4242));
        assert_eq!(socket_inode(OsStr::new("pipe:[4242]")), None);
        assert_eq!(socket_inode(OsStr::new("/dev/null")), None);
        let table = b"Num       RefCount Protocol Flags    Type St Inode Path\n\
0000000000000000: 00000002 00000000 00010000 0001 01 12345 /tmp/ch/vm0.0\n\
0000000000000000: 00000003 00000000 00000000 0001 03  1662\n\
0000000000000000: 00000002 00000000 00010000 0001 01 777 /tmp/a b\n\
0000000000000000: 00000002 00000000 00010000 0001 01 88 @abstract\n\
garbage\n";
        let got: Vec<(u64, &[u8])> = parse_net_unix(table).collect();
        assert_eq!(
            got,
            vec![
                (12345, &b"/tmp/ch/vm0.0"[..]),
                (777, &b"/tmp/a b"[..]),
                (88, &b"@abstract"[..])
            ]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let args = split_cmdline(&raw);
            let _ = qemu_name(&args);
            let _ = vcpu_of_comm(&raw);
            let _ = socket_inode(OsStr::from_bytes(&raw));
            let _ = parse_net_unix(&raw).count();
        }

        #[test]
        fn every_name_form_gives_the_name_back(name in "[a-z0-9_,=.-]{1,16}", form in 0..3usize) {
            // `guest=` is needed when the name itself has a `=`.
            let escaped = name.replace(',', ",,");
            let value = match form {
                0 if !name.contains('=') => escaped,
                1 if !name.contains('=') => format!("{escaped},debug-threads=on"),
                _ => format!("guest={escaped},debug-threads=on"),
            };
            let cmdline = format!("qemu-system-x86_64\0-name\0{value}\0-smp\02\0");
            let got = qemu_name(&split_cmdline(cmdline.as_bytes()));
            proptest::prop_assert_eq!(got.as_deref(), Some(name.as_str()));
        }
    }
}
