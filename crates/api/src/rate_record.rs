//! The record of sampled packet rates, as the control API pages it out
//! (`traffic-record`): blocks of one VM's per-step mean rates, in order of
//! (start, VM), for `vmpowerctl traffic export`.

use serde::{Deserialize, Serialize};

/// The most blocks one page holds (about 60 × 500 rates, a few hundred kB
/// of JSON).
pub const PAGE_BLOCKS: usize = 500;

/// Where a page starts: after this block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCursor {
    /// The block's start, unix ms.
    pub start_ms: u64,
    /// The block's VM.
    pub vm: String,
}

/// One VM's rates over consecutive steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateBlock {
    /// The VM.
    pub vm: String,
    /// The first step's start, unix ms.
    pub start_ms: u64,
    /// The step, ms.
    pub step_ms: u32,
    /// Mean packets/s of each step; `null` where nothing was measured
    /// (the daemon was down, the policy's counters were missing).
    pub rates: Vec<Option<f32>>,
}

/// The answer to `traffic-record`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatePage {
    /// The blocks, in order of (start, VM).
    pub blocks: Vec<RateBlock>,
    /// Where the next page starts; `null` on the last page.
    pub next: Option<RateCursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_a_pinned_json_shape() {
        let page = RatePage {
            blocks: vec![RateBlock {
                vm: "vm-a".into(),
                start_ms: 60_000,
                step_ms: 1000,
                rates: vec![Some(1.5), None],
            }],
            next: Some(RateCursor {
                start_ms: 60_000,
                vm: "vm-a".into(),
            }),
        };
        let text = serde_json::to_string(&page).unwrap();
        assert_eq!(
            text,
            r#"{"blocks":[{"vm":"vm-a","start_ms":60000,"step_ms":1000,"rates":[1.5,null]}],"next":{"start_ms":60000,"vm":"vm-a"}}"#
        );
        assert_eq!(serde_json::from_str::<RatePage>(&text).unwrap(), page);
    }
}
