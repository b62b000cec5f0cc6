//! Parsing and validating the lists a policy is made of — vCPU lists
//! (`1,3,5-7`), hour sets (`3-5,11`), MAC lists — from text or from the
//! arrays of a policy file, with errors that point at the bad element.
//!
//! ## Behavior
//! - Elements are separated by `,` (spaces around them are ignored); a
//!   number element is `N` or an inclusive range `A-B` with `A <= B`.
//!   Positions in errors count elements from 1.
//! - vCPUs are 0..=7 (DPDK's `MAX_VCPU_PER_VM` is 8 and the host's reply
//!   lists have 8 slots), at most 8 of them, none twice.
//! - Hours are 0..=23 and form a set (repeats are harmless). A set of
//!   exactly {0} is refused: the binary layout pads with zeros, so a lone
//!   hour 0 would read back as "no hours" (PROTOCOL.md).
//! - MACs are `xx:xx:xx:xx:xx:xx`, at most 10, none twice.
//!
//! Nothing here does I/O; everything is checked before anything is sent.

use vmpower_proto::{HourSet, MacAddr, MacList, VcpuList};

/// The highest vCPU a policy can name.
pub const MAX_POLICY_VCPU: i64 = 7;

/// Why a list is invalid; `list` names the option or key, `position` the
/// element (from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// An element that is not `N` or `A-B`.
    #[error("{list}: element {position} ({element:?}) is not a number or a range A-B")]
    NotANumber {
        /// Option or key.
        list: String,
        /// Element position, from 1.
        position: usize,
        /// The element as written.
        element: String,
    },
    /// An element with nothing in it (`1,,2`).
    #[error("{list}: element {position} is empty")]
    Empty {
        /// Option or key.
        list: String,
        /// Element position, from 1.
        position: usize,
    },
    /// A number outside its range.
    #[error("{list}: element {position} ({element:?}): {what} {value} is outside 0-{max}")]
    OutOfRange {
        /// Option or key.
        list: String,
        /// Element position, from 1.
        position: usize,
        /// The element as written.
        element: String,
        /// `vCPU` or `hour`.
        what: &'static str,
        /// The bad value.
        value: i64,
        /// The highest allowed value.
        max: i64,
    },
    /// A range whose end is below its start.
    #[error("{list}: element {position} ({element:?}): the range runs backwards")]
    Backwards {
        /// Option or key.
        list: String,
        /// Element position, from 1.
        position: usize,
        /// The element as written.
        element: String,
    },
    /// A vCPU or MAC given twice.
    #[error("{list}: element {position} ({element:?}) repeats an earlier entry")]
    Duplicate {
        /// Option or key.
        list: String,
        /// Element position, from 1.
        position: usize,
        /// The element as written.
        element: String,
    },
    /// More entries than the protocol carries.
    #[error("{list}: element {position} ({element:?}) goes past the limit of {max} entries")]
    TooMany {
        /// Option or key.
        list: String,
        /// Element position, from 1.
        position: usize,
        /// The element as written.
        element: String,
        /// The limit.
        max: usize,
    },
    /// Not a MAC address.
    #[error("{list}: element {position} ({element:?}) is not a MAC address (xx:xx:xx:xx:xx:xx)")]
    BadMac {
        /// Option or key.
        list: String,
        /// Element position, from 1.
        position: usize,
        /// The element as written.
        element: String,
    },
    /// The hour set {0}, which the binary layout cannot carry.
    #[error(
        "{list}: a lone hour 0 cannot be sent (the zero-padded array reads as no hours); add another hour"
    )]
    LoneHourZero {
        /// Option or key.
        list: String,
    },
}

/// One element: its position, its text and the numbers it stands for.
struct Element {
    position: usize,
    text: String,
    values: Vec<i64>,
}

/// Splits `text` into elements and expands ranges, checking each number
/// against 0..=`max`.
fn elements(
    list: &str,
    text: &str,
    what: &'static str,
    max: i64,
) -> Result<Vec<Element>, SpecError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, raw) in text.split(',').enumerate() {
        let position = i + 1;
        let element = raw.trim();
        if element.is_empty() {
            return Err(SpecError::Empty {
                list: list.to_owned(),
                position,
            });
        }
        let not_number = || SpecError::NotANumber {
            list: list.to_owned(),
            position,
            element: element.to_owned(),
        };
        let number = |s: &str| s.trim().parse::<i64>().map_err(|_| not_number());
        let (lo, hi) = match element.split_once('-') {
            Some((a, b)) if !a.trim().is_empty() => (number(a)?, number(b)?),
            _ => {
                let n = number(element)?;
                (n, n)
            }
        };
        for value in [lo, hi] {
            check_range(list, position, element, what, value, max)?;
        }
        if hi < lo {
            return Err(SpecError::Backwards {
                list: list.to_owned(),
                position,
                element: element.to_owned(),
            });
        }
        out.push(Element {
            position,
            text: element.to_owned(),
            values: (lo..=hi).collect(),
        });
    }
    Ok(out)
}

fn check_range(
    list: &str,
    position: usize,
    element: &str,
    what: &'static str,
    value: i64,
    max: i64,
) -> Result<(), SpecError> {
    if (0..=max).contains(&value) {
        return Ok(());
    }
    Err(SpecError::OutOfRange {
        list: list.to_owned(),
        position,
        element: element.to_owned(),
        what,
        value,
        max,
    })
}

/// Parses a vCPU list such as `1,3,5-7`.
pub fn parse_vcpu_list(list: &str, text: &str) -> Result<VcpuList, SpecError> {
    vcpus_from(list, elements(list, text, "vCPU", MAX_POLICY_VCPU)?)
}

/// Validates the vCPU array of a policy file.
pub fn vcpu_list_from_items(list: &str, items: &[i64]) -> Result<VcpuList, SpecError> {
    vcpus_from(
        list,
        items_as_elements(list, items, "vCPU", MAX_POLICY_VCPU)?,
    )
}

fn vcpus_from(list: &str, elements: Vec<Element>) -> Result<VcpuList, SpecError> {
    let mut ids: Vec<u8> = Vec::new();
    for element in elements {
        for value in element.values {
            let id = u8::try_from(value).expect("checked to be 0..=7");
            let fault = if ids.contains(&id) {
                Some(SpecError::Duplicate {
                    list: list.to_owned(),
                    position: element.position,
                    element: element.text.clone(),
                })
            } else if ids.len() == VcpuList::CAPACITY {
                Some(SpecError::TooMany {
                    list: list.to_owned(),
                    position: element.position,
                    element: element.text.clone(),
                    max: VcpuList::CAPACITY,
                })
            } else {
                None
            };
            if let Some(fault) = fault {
                return Err(fault);
            }
            ids.push(id);
        }
    }
    Ok(VcpuList::from_slice(&ids).expect("at most 8 checked above"))
}

/// Parses an hour set such as `3-5,11`.
pub fn parse_hours(list: &str, text: &str) -> Result<HourSet, SpecError> {
    hours_from(list, elements(list, text, "hour", 23)?)
}

/// Validates an hour array of a policy file.
pub fn hours_from_items(list: &str, items: &[i64]) -> Result<HourSet, SpecError> {
    hours_from(list, items_as_elements(list, items, "hour", 23)?)
}

fn hours_from(list: &str, elements: Vec<Element>) -> Result<HourSet, SpecError> {
    let mut set = HourSet::EMPTY;
    for value in elements.into_iter().flat_map(|e| e.values) {
        let hour = u8::try_from(value).expect("checked to be 0..=23");
        set.insert(hour).expect("checked to be 0..=23");
    }
    if set.len() == 1 && set.contains(0) {
        return Err(SpecError::LoneHourZero {
            list: list.to_owned(),
        });
    }
    Ok(set)
}

/// Number items of a file array, checked one by one.
fn items_as_elements(
    list: &str,
    items: &[i64],
    what: &'static str,
    max: i64,
) -> Result<Vec<Element>, SpecError> {
    items
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let text = value.to_string();
            check_range(list, i + 1, &text, what, *value, max)?;
            Ok(Element {
                position: i + 1,
                text,
                values: vec![*value],
            })
        })
        .collect()
}

/// Parses a MAC list such as `52:54:00:12:34:56,52:54:00:12:34:57`.
pub fn parse_mac_list(list: &str, text: &str) -> Result<MacList, SpecError> {
    if text.trim().is_empty() {
        return Ok(MacList::default());
    }
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    mac_list_from_items(list, &items)
}

/// Validates the MAC array of a policy file.
pub fn mac_list_from_items<S: AsRef<str>>(list: &str, items: &[S]) -> Result<MacList, SpecError> {
    let mut macs: Vec<MacAddr> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let element = item.as_ref().trim();
        let position = i + 1;
        let at = |make: fn(String, usize, String) -> SpecError| {
            make(list.to_owned(), position, element.to_owned())
        };
        if element.is_empty() {
            return Err(SpecError::Empty {
                list: list.to_owned(),
                position,
            });
        }
        let mac: MacAddr = element.parse().map_err(|_| {
            at(|list, position, element| SpecError::BadMac {
                list,
                position,
                element,
            })
        })?;
        if macs.contains(&mac) {
            return Err(at(|list, position, element| SpecError::Duplicate {
                list,
                position,
                element,
            }));
        }
        if macs.len() == MacList::CAPACITY {
            return Err(SpecError::TooMany {
                list: list.to_owned(),
                position,
                element: element.to_owned(),
                max: MacList::CAPACITY,
            });
        }
        macs.push(mac);
    }
    Ok(MacList::from_slice(&macs).expect("at most 10 checked above"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_lists_with_ranges() {
        let l = parse_vcpu_list("--vcpu-list", "1,3,5-7").unwrap();
        assert_eq!(l.as_slice(), [1, 3, 5, 6, 7]);
        assert!(parse_vcpu_list("--vcpu-list", "").unwrap().is_empty());
        assert_eq!(
            parse_vcpu_list("x", " 0 - 1 , 4").unwrap().as_slice(),
            [0, 1, 4]
        );
    }

    #[test]
    fn vcpu_errors_point_at_the_element() {
        let e = parse_vcpu_list("--vcpu-list", "1,3,9").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--vcpu-list: element 3 (\"9\"): vCPU 9 is outside 0-7"
        );
        let e = parse_vcpu_list("--vcpu-list", "1,5-9").unwrap_err();
        assert!(
            matches!(
                e,
                SpecError::OutOfRange {
                    position: 2,
                    value: 9,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_vcpu_list("l", "1,x").unwrap_err();
        assert!(
            matches!(e, SpecError::NotANumber { position: 2, .. }),
            "{e}"
        );
        let e = parse_vcpu_list("l", "1,,2").unwrap_err();
        assert!(matches!(e, SpecError::Empty { position: 2, .. }), "{e}");
        let e = parse_vcpu_list("l", "0-3,2").unwrap_err();
        assert!(matches!(e, SpecError::Duplicate { position: 2, .. }), "{e}");
        let e = parse_vcpu_list("l", "5-3").unwrap_err();
        assert!(matches!(e, SpecError::Backwards { position: 1, .. }), "{e}");
        let e = parse_vcpu_list("l", "-1").unwrap_err();
        assert!(matches!(e, SpecError::OutOfRange { value: -1, .. }), "{e}");
        let e = vcpu_list_from_items("vcpu-list", &[0, 1, 8]).unwrap_err();
        assert!(
            matches!(
                e,
                SpecError::OutOfRange {
                    position: 3,
                    value: 8,
                    ..
                }
            ),
            "{e}"
        );
        let e = vcpu_list_from_items("vcpu-list", &[2, 2]).unwrap_err();
        assert!(e.to_string().contains("element 2 (\"2\")"), "{e}");
    }

    #[test]
    fn hours() {
        let h = parse_hours("--busy-hours", "3-5,11").unwrap();
        assert_eq!(h.iter().collect::<Vec<_>>(), [3, 4, 5, 11]);
        let e = parse_hours("--busy-hours", "3,24").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--busy-hours: element 2 (\"24\"): hour 24 is outside 0-23"
        );
        assert!(matches!(
            parse_hours("q", "0").unwrap_err(),
            SpecError::LoneHourZero { .. }
        ));
        assert_eq!(parse_hours("q", "0,5").unwrap().len(), 2);
        let e = hours_from_items("busy-hours", &[1, -1]).unwrap_err();
        assert!(
            matches!(
                e,
                SpecError::OutOfRange {
                    position: 2,
                    value: -1,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn macs() {
        let m = parse_mac_list("--mac-list", "52:54:00:12:34:56, 52:54:00:12:34:57").unwrap();
        assert_eq!(m.len(), 2);
        let e = parse_mac_list("--mac-list", "52:54:00:12:34:56,52:54:00:zz:34:57").unwrap_err();
        assert!(matches!(e, SpecError::BadMac { position: 2, .. }), "{e}");
        let e = parse_mac_list("m", "52:54:00:12:34:56,52:54:00:12:34:56").unwrap_err();
        assert!(matches!(e, SpecError::Duplicate { position: 2, .. }), "{e}");
        let eleven: Vec<String> = (0..11).map(|i| format!("02:00:00:00:00:{i:02x}")).collect();
        let e = mac_list_from_items("m", &eleven).unwrap_err();
        assert!(matches!(e, SpecError::TooMany { position: 11, .. }), "{e}");
    }

    #[test]
    fn all_eight_vcpus_fit() {
        assert_eq!(parse_vcpu_list("l", "0-7").unwrap().len(), 8);
        assert_eq!(
            vcpu_list_from_items("l", &[7, 0]).unwrap().as_slice(),
            [7, 0]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn any_text_parses_or_errs_without_panic(text in "[0-9,\\- a-z:]{0,40}") {
            let _ = parse_vcpu_list("l", &text);
            let _ = parse_hours("l", &text);
            let _ = parse_mac_list("l", &text);
        }

        #[test]
        fn written_hour_sets_parse_back(hours in proptest::collection::btree_set(0u8..24, 2..24)) {
            let text: Vec<String> = hours.iter().map(u8::to_string).collect();
            let set = parse_hours("l", &text.join(",")).unwrap();
            proptest::prop_assert_eq!(set.iter().collect::<std::collections::BTreeSet<_>>(), hours);
        }

        #[test]
        fn written_vcpu_lists_parse_back(ids in proptest::sample::subsequence((0u8..8).collect::<Vec<_>>(), 0..=8)) {
            let text: Vec<String> = ids.iter().map(u8::to_string).collect();
            let list = parse_vcpu_list("l", &text.join(",")).unwrap();
            proptest::prop_assert_eq!(list.as_slice(), &ids[..]);
        }
    }
}
