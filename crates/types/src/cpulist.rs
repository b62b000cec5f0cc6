//! The kernel's CPU list syntax (`0-3,5,7-9`), as found in
//! `devices/system/cpu/online`, `thread_siblings_list` and the like.
//!
//! Parsing yields a sorted set of [`CpuId`]; formatting folds runs back into
//! ranges, so `format_cpu_list(&parse_cpu_list(s)?)` is canonical.
//!
//! ## Behavior
//! - Surrounding whitespace and the trailing newline are ignored; an empty
//!   list (as `offline` reads on a host with every CPU online) is valid.
//! - A CPU number above [`MAX_CPU_ID`] is refused, so a corrupt file cannot
//!   make the parser allocate a huge set.
//! - This module does no I/O.
//!
//! The space-separated lists of `affected_cpus`/`related_cpus` are a
//! different syntax; see [`parse_cpu_words`].

use std::collections::BTreeSet;

use crate::cpu::CpuId;

/// The highest CPU number accepted (the kernel's `NR_CPUS` ceiling is 8192;
/// this leaves room without letting garbage allocate gigabytes).
pub const MAX_CPU_ID: u32 = 65_535;

/// Why a CPU list could not be parsed. Every variant carries the whole text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    /// A part is not a number or a `a-b` range.
    #[error("CPU list {text:?}: {part:?} is not a CPU number or range")]
    Syntax {
        /// The whole list.
        text: String,
        /// The offending part.
        part: String,
    },
    /// A range whose start is above its end, e.g. `5-3`.
    #[error("CPU list {text:?}: range {start}-{end} is reversed")]
    Reversed {
        /// The whole list.
        text: String,
        /// Start of the range.
        start: u32,
        /// End of the range.
        end: u32,
    },
    /// A CPU number above [`MAX_CPU_ID`].
    #[error("CPU list {text:?}: CPU {value} is above the limit {MAX_CPU_ID}")]
    TooLarge {
        /// The whole list.
        text: String,
        /// The offending number.
        value: u32,
    },
}

/// Parses `0-3,5,7-9` (whitespace and a trailing newline allowed).
pub fn parse_cpu_list(text: &str) -> Result<BTreeSet<CpuId>, CpuListError> {
    let mut cpus = BTreeSet::new();
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(cpus);
    }
    for part in trimmed.split(',') {
        let part = part.trim();
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (parse_one(text, part, a)?, parse_one(text, part, b)?),
            None => {
                let n = parse_one(text, part, part)?;
                (n, n)
            }
        };
        if start > end {
            return Err(CpuListError::Reversed {
                text: text.to_owned(),
                start,
                end,
            });
        }
        cpus.extend((start..=end).map(CpuId));
    }
    Ok(cpus)
}

/// Parses a space-separated list such as `affected_cpus` (`0 1 2 3`).
pub fn parse_cpu_words(text: &str) -> Result<BTreeSet<CpuId>, CpuListError> {
    text.split_whitespace()
        .map(|word| parse_one(text, word, word).map(CpuId))
        .collect()
}

fn parse_one(text: &str, part: &str, number: &str) -> Result<u32, CpuListError> {
    let number = number.trim();
    let syntax = || CpuListError::Syntax {
        text: text.to_owned(),
        part: part.to_owned(),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let value = number.parse::<u32>().map_err(|_| CpuListError::TooLarge {
        text: text.to_owned(),
        value: u32::MAX,
    })?;
    if value > MAX_CPU_ID {
        return Err(CpuListError::TooLarge {
            text: text.to_owned(),
            value,
        });
    }
    Ok(value)
}

/// Formats CPUs in the kernel's range syntax, e.g. `0-3,5,7-9` (no newline).
pub fn format_cpu_list<'a>(cpus: impl IntoIterator<Item = &'a CpuId>) -> String {
    let sorted: BTreeSet<u32> = cpus.into_iter().map(|c| c.0).collect();
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    for n in sorted {
        run = match run {
            Some((start, end)) if end.checked_add(1) == Some(n) => Some((start, n)),
            Some(done) => {
                parts.push(format_run(done));
                Some((n, n))
            }
            None => Some((n, n)),
        };
    }
    if let Some(done) = run {
        parts.push(format_run(done));
    }
    parts.join(",")
}

/// Formats CPUs space-separated, as `affected_cpus` shows them (no newline).
pub fn format_cpu_words<'a>(cpus: impl IntoIterator<Item = &'a CpuId>) -> String {
    let sorted: BTreeSet<u32> = cpus.into_iter().map(|c| c.0).collect();
    sorted
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn format_run((start, end): (u32, u32)) -> String {
    if start == end {
        start.to_string()
    } else {
        format!("{start}-{end}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(list: &[u32]) -> BTreeSet<CpuId> {
        list.iter().copied().map(CpuId).collect()
    }

    #[test]
    fn parses_ranges_singles_and_newline() {
        assert_eq!(
            parse_cpu_list("0-3,5,7-9\n").unwrap(),
            ids(&[0, 1, 2, 3, 5, 7, 8, 9])
        );
        assert_eq!(parse_cpu_list("4").unwrap(), ids(&[4]));
        assert_eq!(parse_cpu_list("2-2").unwrap(), ids(&[2]));
    }

    #[test]
    fn empty_and_newline_only_are_empty_sets() {
        assert!(parse_cpu_list("").unwrap().is_empty());
        assert!(parse_cpu_list("\n").unwrap().is_empty());
    }

    #[test]
    fn reversed_range_is_refused_with_text() {
        let err = parse_cpu_list("0,5-3").unwrap_err();
        assert_eq!(
            err,
            CpuListError::Reversed {
                text: "0,5-3".into(),
                start: 5,
                end: 3
            }
        );
    }

    #[test]
    fn garbage_is_a_syntax_error_naming_the_part() {
        for bad in ["x", "0-", "-3", "1,,2", "1-2-3", "0x1", "+1", "1 2"] {
            let err = parse_cpu_list(bad).unwrap_err();
            assert!(matches!(err, CpuListError::Syntax { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn huge_numbers_are_refused() {
        let err = parse_cpu_list("0-4294967295").unwrap_err();
        assert!(matches!(err, CpuListError::TooLarge { .. }), "{err:?}");
        let err = parse_cpu_list("99999999999999999999").unwrap_err();
        assert!(matches!(err, CpuListError::TooLarge { .. }), "{err:?}");
        assert!(parse_cpu_list(&MAX_CPU_ID.to_string()).is_ok());
    }

    #[test]
    fn formats_runs_as_ranges() {
        assert_eq!(
            format_cpu_list(&ids(&[0, 1, 2, 3, 5, 7, 8, 9])),
            "0-3,5,7-9"
        );
        assert_eq!(format_cpu_list(&ids(&[])), "");
        assert_eq!(format_cpu_list(&ids(&[6])), "6");
    }

    #[test]
    fn words_parse_and_format() {
        assert_eq!(parse_cpu_words("0 1 2 3\n").unwrap(), ids(&[0, 1, 2, 3]));
        assert!(parse_cpu_words("0 x").is_err());
        assert_eq!(format_cpu_words(&ids(&[3, 1])), "1 3");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn format_then_parse_round_trips(set in proptest::collection::btree_set(0u32..200, 0..40)) {
            let cpus: BTreeSet<CpuId> = set.into_iter().map(CpuId).collect();
            let text = format_cpu_list(&cpus);
            prop_assert_eq!(parse_cpu_list(&text).unwrap(), cpus);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = parse_cpu_list(&text);
        }
    }
}
