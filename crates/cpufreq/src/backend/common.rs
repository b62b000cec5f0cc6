//! Reads and writes shared by every mechanism: frequency files, checked
//! writes (write, then read back), and pinned bounds written in an order
//! the kernel accepts.
//!
//! The ordering rule: the kernel refuses `scaling_min_freq` above the
//! current `scaling_max_freq` (and older kernels refuse `scaling_max_freq`
//! below the current `scaling_min_freq`). So when the new minimum is above
//! the current maximum (going up), the maximum is written first; otherwise
//! (going down, or inside the current range) the minimum is written first.
//! Either way every intermediate state has `min <= max`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::discovery::paths;
use crate::sysfs::SysfsIo;
use crate::types::{CpuId, Khz};

use super::BackendError;

/// What `scaling_setspeed` reads under a governor other than `userspace`.
pub const UNSUPPORTED: &str = "<unsupported>";

/// `cpuN/cpufreq/<file>`.
pub(crate) fn file(cpu: CpuId, name: &str) -> PathBuf {
    paths::cpufreq_file(cpu, name)
}

/// Fails with [`BackendError::Offline`] when `cpu` has no `cpufreq/`.
pub(crate) fn ensure_online(io: &dyn SysfsIo, cpu: CpuId) -> Result<(), BackendError> {
    let dir = paths::cpu_dir(cpu).join("cpufreq");
    if io.exists(&dir) {
        Ok(())
    } else {
        Err(BackendError::Offline { cpu, path: dir })
    }
}

/// Reads a file of `cpu`'s cpufreq directory.
pub(crate) fn read(io: &dyn SysfsIo, cpu: CpuId, name: &str) -> Result<String, BackendError> {
    let path = file(cpu, name);
    io.read(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| BackendError::from_sysfs(cpu, e))
}

/// Reads a kHz file; `None` when it reads `<unsupported>`.
pub fn read_khz(io: &dyn SysfsIo, cpu: CpuId, name: &str) -> Result<Option<Khz>, BackendError> {
    let content = read(io, cpu, name)?;
    parse_khz(cpu, &file(cpu, name), &content)
}

/// Parses what a kHz file holds (surrounding whitespace ignored); `None`
/// for `<unsupported>`. No allocation unless it fails.
pub(crate) fn parse_khz_bytes(
    cpu: CpuId,
    path: &Path,
    content: &[u8],
) -> Result<Option<Khz>, BackendError> {
    match std::str::from_utf8(content.trim_ascii()) {
        Ok(text) => parse_khz(cpu, path, text),
        Err(_) => parse_khz(cpu, path, &String::from_utf8_lossy(content)),
    }
}

fn parse_khz(cpu: CpuId, path: &Path, content: &str) -> Result<Option<Khz>, BackendError> {
    if content == UNSUPPORTED {
        return Ok(None);
    }
    content
        .parse::<u32>()
        .map(|v| Some(Khz(v)))
        .map_err(|_| BackendError::Sysfs {
            cpu,
            source: crate::sysfs::SysfsError::Parse {
                path: path.to_owned(),
                content: content.to_owned(),
                expected: "a frequency in kHz",
            },
        })
}

/// Reads a kHz file that must hold a number.
pub(crate) fn read_khz_required(
    io: &dyn SysfsIo,
    cpu: CpuId,
    name: &str,
) -> Result<Khz, BackendError> {
    let path = file(cpu, name);
    read_khz(io, cpu, name)?.ok_or_else(|| BackendError::Sysfs {
        cpu,
        source: crate::sysfs::SysfsError::Parse {
            path,
            content: UNSUPPORTED.to_owned(),
            expected: "a frequency in kHz",
        },
    })
}

/// Writes `value`, then reads it back; a different content fails with
/// [`BackendError::ChangedExternally`].
pub(crate) fn write_checked(
    io: &dyn SysfsIo,
    cpu: CpuId,
    name: &str,
    value: &str,
) -> Result<(), BackendError> {
    let path = file(cpu, name);
    io.write(&path, value)
        .map_err(|e| BackendError::from_sysfs(cpu, e))?;
    let found = read(io, cpu, name)?;
    if found == value {
        Ok(())
    } else {
        Err(BackendError::ChangedExternally {
            cpu,
            path,
            expected: value.to_owned(),
            found,
        })
    }
}

/// Sets `scaling_min_freq`/`scaling_max_freq` of `cpu` to `min`/`max`
/// (`min <= max`), writing only the files that differ, in an order the
/// kernel accepts (module docs). Returns whether anything was written.
pub fn write_bounds_ordered(
    io: &dyn SysfsIo,
    cpu: CpuId,
    min: Khz,
    max: Khz,
) -> Result<bool, BackendError> {
    let cur_min = read_khz_required(io, cpu, "scaling_min_freq")?;
    let cur_max = read_khz_required(io, cpu, "scaling_max_freq")?;
    let writes: [(&str, Khz, Khz); 2] = if min > cur_max {
        [
            ("scaling_max_freq", max, cur_max),
            ("scaling_min_freq", min, cur_min),
        ]
    } else {
        [
            ("scaling_min_freq", min, cur_min),
            ("scaling_max_freq", max, cur_max),
        ]
    };
    let mut written = false;
    for (name, want, cur) in writes {
        if want != cur {
            write_checked(io, cpu, name, &want.0.to_string())?;
            written = true;
        }
    }
    Ok(written)
}

/// What every control keeps of the frequency domain it drives: the sysfs
/// it writes, the CPU it writes through, the domain's CPUs, whether the
/// domain is prepared, and the last frequency it wrote.
pub(crate) struct DomainState {
    pub io: Arc<dyn SysfsIo>,
    pub cpu: CpuId,
    pub domain: Vec<CpuId>,
    pub prepared: bool,
    pub last: Option<Khz>,
}

impl DomainState {
    /// The state of `domain`, written through `cpu` (added to the domain
    /// if missing).
    pub fn new(io: Arc<dyn SysfsIo>, cpu: CpuId, mut domain: Vec<CpuId>) -> Self {
        if !domain.contains(&cpu) {
            domain.push(cpu);
            domain.sort_unstable();
        }
        DomainState {
            io,
            cpu,
            domain,
            prepared: false,
            last: None,
        }
    }
}

impl std::fmt::Debug for DomainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainState")
            .field("root", &self.io.root())
            .field("cpu", &self.cpu)
            .field("domain", &self.domain)
            .field("prepared", &self.prepared)
            .field("last", &self.last)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_tolerates_unsupported_and_names_the_file_on_garbage() {
        let p = file(CpuId(2), "scaling_setspeed");
        assert_eq!(parse_khz(CpuId(2), &p, UNSUPPORTED).unwrap(), None);
        assert_eq!(
            parse_khz(CpuId(2), &p, "2300000").unwrap(),
            Some(Khz(2_300_000))
        );
        let err = parse_khz(CpuId(2), &p, "fast").unwrap_err();
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(
            text.contains("cpu2") && text.contains("scaling_setspeed") && text.contains("fast"),
            "{text}"
        );
    }
}
