//! BRANCH_RATIO: per physical CPU, branch misses over branches in each
//! sampling interval. A busy-polling core idles at a very low ratio and
//! rises when it processes packets.
//!
//! ## Behavior
//! Fast up, slow down: a sample above the threshold → max at once; min
//! only when the last [`BranchState::SAMPLES_DOWN`] samples are all at or
//! below it; otherwise the level stays.

use std::collections::VecDeque;

use vmpower_types::levels::Level;

/// DPDK's default threshold.
pub const DEFAULT_THRESHOLD: f64 = 0.01;

/// Recent samples of one pCPU.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BranchState {
    recent: VecDeque<f64>,
    level: Option<Level>,
}

impl BranchState {
    /// How many consecutive low samples it takes to go down.
    pub const SAMPLES_DOWN: usize = 3;

    /// Feeds one ratio; returns the level in force.
    pub fn update(&mut self, threshold: f64, ratio: f64) -> Option<Level> {
        if self.recent.len() == Self::SAMPLES_DOWN {
            self.recent.pop_front();
        }
        self.recent.push_back(ratio);
        if ratio > threshold {
            self.level = Some(Level::Max);
        } else if self.recent.len() == Self::SAMPLES_DOWN
            && self.recent.iter().all(|r| *r <= threshold)
        {
            self.level = Some(Level::Min);
        }
        self.level
    }

    /// The level in force, if any sample decided one.
    pub fn level(&self) -> Option<Level> {
        self.level
    }

    /// The latest ratio.
    pub fn last(&self) -> Option<f64> {
        self.recent.back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_up_slow_down() {
        let mut s = BranchState::default();
        assert_eq!(
            s.update(0.01, 0.001),
            None,
            "one low sample decides nothing"
        );
        assert_eq!(s.update(0.01, 0.05), Some(Level::Max));
        assert_eq!(s.update(0.01, 0.001), Some(Level::Max));
        assert_eq!(s.update(0.01, 0.001), Some(Level::Max));
        assert_eq!(s.update(0.01, 0.01), Some(Level::Min), "three at or below");
        assert_eq!(s.update(0.01, 0.02), Some(Level::Max));
        assert_eq!(s.last(), Some(0.02));
    }
}
