//! Typed reads of single sysfs files: a frequency, a 0/1 flag, a CPU list,
//! an id that may be `-1`, a word list. Every parse failure is a
//! [`SysfsError::Parse`] naming the file (under the root) and its content.
//!
//! Optional variants return `Ok(None)` when the file does not exist and an
//! error for any other failure: a missing feature is normal, a broken file
//! is not.

use std::collections::BTreeSet;
use std::path::Path;

use crate::cpulist::{parse_cpu_list, parse_cpu_words};
use crate::sysfs::{SysfsError, SysfsIo};
use crate::types::{CpuId, Khz};

/// Reads a file, trimmed of surrounding whitespace.
pub fn text(io: &dyn SysfsIo, rel: &Path) -> Result<String, SysfsError> {
    io.read(rel).map(|s| s.trim().to_owned())
}

/// Like [`text`], `None` when the file does not exist.
pub fn text_opt(io: &dyn SysfsIo, rel: &Path) -> Result<Option<String>, SysfsError> {
    match text(io, rel) {
        Ok(s) => Ok(Some(s)),
        Err(SysfsError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_error(io: &dyn SysfsIo, rel: &Path, content: &str, expected: &'static str) -> SysfsError {
    SysfsError::Parse {
        path: io.root().join(rel),
        content: content.to_owned(),
        expected,
    }
}

/// Parses `content` of `rel` as kHz.
pub fn parse_khz(io: &dyn SysfsIo, rel: &Path, content: &str) -> Result<Khz, SysfsError> {
    content
        .parse::<u32>()
        .map(Khz)
        .map_err(|_| parse_error(io, rel, content, "a frequency in kHz"))
}

/// Reads a frequency in kHz.
pub fn khz(io: &dyn SysfsIo, rel: &Path) -> Result<Khz, SysfsError> {
    let content = text(io, rel)?;
    parse_khz(io, rel, &content)
}

/// Reads a frequency in kHz, `None` when the file does not exist.
pub fn khz_opt(io: &dyn SysfsIo, rel: &Path) -> Result<Option<Khz>, SysfsError> {
    text_opt(io, rel)?
        .map(|content| parse_khz(io, rel, &content))
        .transpose()
}

/// Reads an unsigned number, `None` when the file does not exist.
pub fn number_opt(io: &dyn SysfsIo, rel: &Path) -> Result<Option<u32>, SysfsError> {
    text_opt(io, rel)?
        .map(|content| {
            content
                .parse::<u32>()
                .map_err(|_| parse_error(io, rel, &content, "an unsigned number"))
        })
        .transpose()
}

/// Reads a topology id; `None` when absent or `-1` (unknown to firmware).
pub fn id_opt(io: &dyn SysfsIo, rel: &Path) -> Result<Option<u32>, SysfsError> {
    match text_opt(io, rel)? {
        None => Ok(None),
        Some(content) if content == "-1" => Ok(None),
        Some(content) => content
            .parse::<u32>()
            .map(Some)
            .map_err(|_| parse_error(io, rel, &content, "a topology id")),
    }
}

/// Reads a `0`/`1` flag, `None` when the file does not exist.
pub fn flag_opt(io: &dyn SysfsIo, rel: &Path) -> Result<Option<bool>, SysfsError> {
    match text_opt(io, rel)?.as_deref() {
        None => Ok(None),
        Some("0") => Ok(Some(false)),
        Some("1") => Ok(Some(true)),
        Some(other) => Err(parse_error(io, rel, other, "0 or 1")),
    }
}

/// Reads a range-syntax CPU list (`0-3,5`).
pub fn cpu_list(io: &dyn SysfsIo, rel: &Path) -> Result<BTreeSet<CpuId>, SysfsError> {
    let content = text(io, rel)?;
    parse_cpu_list(&content).map_err(|_| parse_error(io, rel, &content, "a CPU list such as 0-3,5"))
}

/// Reads a space-separated CPU list (`affected_cpus`).
pub fn cpu_words(io: &dyn SysfsIo, rel: &Path) -> Result<BTreeSet<CpuId>, SysfsError> {
    let content = text(io, rel)?;
    parse_cpu_words(&content)
        .map_err(|_| parse_error(io, rel, &content, "space-separated CPU numbers"))
}

/// Reads a range-syntax CPU list, empty when the file does not exist.
pub fn cpu_list_or_empty(io: &dyn SysfsIo, rel: &Path) -> Result<BTreeSet<CpuId>, SysfsError> {
    match cpu_list(io, rel) {
        Err(SysfsError::NotFound { .. }) => Ok(BTreeSet::new()),
        other => other,
    }
}

/// Reads a whitespace-separated list of words.
pub fn words(io: &dyn SysfsIo, rel: &Path) -> Result<Vec<String>, SysfsError> {
    Ok(text(io, rel)?
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// Reads a list of frequencies, sorted highest first without duplicates
/// (some drivers list them lowest first). `None` when absent or empty.
pub fn table_opt(io: &dyn SysfsIo, rel: &Path) -> Result<Option<Vec<Khz>>, SysfsError> {
    let Some(content) = text_opt(io, rel)? else {
        return Ok(None);
    };
    let mut table = content
        .split_whitespace()
        .map(|word| parse_khz(io, rel, word))
        .collect::<Result<Vec<_>, _>>()?;
    table.sort_unstable_by(|a, b| b.cmp(a));
    table.dedup();
    Ok(Some(table).filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::Sysfs;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Sysfs) {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let io = Sysfs::new(dir.path());
        (dir, io)
    }

    #[test]
    fn numbers_flags_and_ids() {
        let (_d, io) = tree(&[
            ("f", "2300000\n"),
            ("flag", "1\n"),
            ("bad_flag", "2\n"),
            ("id", "-1\n"),
            ("id2", "3\n"),
        ]);
        assert_eq!(khz(&io, Path::new("f")).unwrap(), Khz(2_300_000));
        assert_eq!(flag_opt(&io, Path::new("flag")).unwrap(), Some(true));
        assert_eq!(flag_opt(&io, Path::new("missing")).unwrap(), None);
        let err = flag_opt(&io, Path::new("bad_flag")).unwrap_err();
        assert!(matches!(err, SysfsError::Parse { ref content, .. } if content == "2"));
        assert_eq!(id_opt(&io, Path::new("id")).unwrap(), None);
        assert_eq!(id_opt(&io, Path::new("id2")).unwrap(), Some(3));
        assert_eq!(khz_opt(&io, Path::new("missing")).unwrap(), None);
    }

    #[test]
    fn parse_errors_name_the_file_under_the_root() {
        let (dir, io) = tree(&[("cpu/f", "12abc\n")]);
        let err = khz(&io, Path::new("cpu/f")).unwrap_err();
        assert_eq!(err.path(), dir.path().join("cpu/f"));
        assert!(err.to_string().contains("12abc"), "{err}");
    }

    #[test]
    fn tables_sort_highest_first_and_empty_is_none() {
        let (_d, io) = tree(&[("t", "800000 1000000 1000000 900000 \n"), ("e", " \n")]);
        let table = table_opt(&io, Path::new("t")).unwrap().unwrap();
        assert_eq!(table, vec![Khz(1_000_000), Khz(900_000), Khz(800_000)]);
        assert_eq!(table_opt(&io, Path::new("e")).unwrap(), None);
        assert_eq!(table_opt(&io, Path::new("missing")).unwrap(), None);
    }

    #[test]
    fn cpu_lists_in_both_syntaxes() {
        let (_d, io) = tree(&[("l", "0-2,4\n"), ("w", "1 3\n"), ("bad", "3-1\n")]);
        assert_eq!(cpu_list(&io, Path::new("l")).unwrap().len(), 4);
        assert_eq!(cpu_words(&io, Path::new("w")).unwrap().len(), 2);
        assert!(matches!(
            cpu_list(&io, Path::new("bad")),
            Err(SysfsError::Parse { .. })
        ));
        assert!(
            cpu_list_or_empty(&io, Path::new("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
