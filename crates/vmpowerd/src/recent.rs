//! The last errors and rejections, for `vmpowerctl status`: a small ring
//! of fixed capacity, newest first when read.
//!
//! ## Behavior
//! - At most [`RECENT_CAPACITY`] entries; the oldest is overwritten.
//! - An entry that repeats the newest one (same VM, kind and label, e.g. a
//!   flooding guest's `rate_limited`) is folded into it: its count grows
//!   and its time and detail are refreshed, so one noisy guest cannot push
//!   every other error out of the ring.
//! - Once the ring is full, recording reuses the overwritten entry's text
//!   buffer: a steady stream of rejections does not allocate.
//!
//! ## Limitations
//! Kept in memory only: a restart forgets it (the log keeps every line).

use std::fmt::{self, Write};

use vmpower_api::answers;
use vmpower_engine::VmId;

/// What kind of error an entry is (rejection or sysfs failure).
pub use vmpower_api::answers::RecentErrorKind as ErrorKind;

/// How many entries the ring keeps.
pub const RECENT_CAPACITY: usize = 32;

/// One recorded error.
#[derive(Debug, Clone)]
pub struct RecentError {
    /// Unix time in milliseconds of the latest occurrence.
    pub at_ms: u64,
    /// The VM concerned, if any.
    pub vm: Option<VmId>,
    /// Rejection or sysfs failure.
    pub kind: ErrorKind,
    /// The stable label (a rejection reason, or `write`/`release`).
    pub label: &'static str,
    /// The message of the latest occurrence.
    pub detail: String,
    /// How many times in a row it happened.
    pub count: u64,
}

/// The ring of recent errors.
#[derive(Debug, Clone, Default)]
pub struct RecentErrors {
    entries: Vec<RecentError>,
    /// Index of the newest entry (meaningful when not empty).
    newest: usize,
}

impl RecentErrors {
    /// Records an error at unix time `at_ms`.
    pub fn push(
        &mut self,
        at_ms: u64,
        vm: Option<&VmId>,
        kind: ErrorKind,
        label: &'static str,
        detail: fmt::Arguments<'_>,
    ) {
        if let Some(last) = self.entries.get_mut(self.newest)
            && last.kind == kind
            && last.label == label
            && last.vm.as_ref() == vm
        {
            last.at_ms = at_ms;
            last.count += 1;
            last.detail.clear();
            let _ = last.detail.write_fmt(detail);
            return;
        }
        if self.entries.len() < RECENT_CAPACITY {
            let mut text = String::new();
            let _ = text.write_fmt(detail);
            self.entries.push(RecentError {
                at_ms,
                vm: vm.cloned(),
                kind,
                label,
                detail: text,
                count: 1,
            });
            self.newest = self.entries.len() - 1;
            return;
        }
        self.newest = (self.newest + 1) % RECENT_CAPACITY;
        let slot = &mut self.entries[self.newest];
        slot.at_ms = at_ms;
        slot.vm = vm.cloned();
        slot.kind = kind;
        slot.label = label;
        slot.detail.clear();
        let _ = slot.detail.write_fmt(detail);
        slot.count = 1;
    }

    /// The entries, newest first, as `status` shows them.
    pub fn answer(&self) -> Vec<answers::RecentError> {
        self.newest_first()
            .map(|e| answers::RecentError {
                at_ms: e.at_ms,
                vm: e.vm.as_ref().map(|v| v.as_str().to_owned()),
                kind: e.kind,
                label: e.label.to_owned(),
                detail: e.detail.clone(),
                count: e.count,
            })
            .collect()
    }

    /// The entries, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &RecentError> {
        let n = self.entries.len();
        (0..n).map(move |i| &self.entries[(self.newest + n - i) % n])
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(r: &RecentErrors) -> Vec<(String, u64)> {
        r.newest_first()
            .map(|e| (e.detail.clone(), e.count))
            .collect()
    }

    #[test]
    fn keeps_the_newest_first_and_drops_the_oldest() {
        let mut r = RecentErrors::default();
        let vm = VmId::new("vm1");
        for i in 0..RECENT_CAPACITY + 3 {
            // Alternating labels: nothing folds.
            let label = if i % 2 == 0 { "a" } else { "b" };
            let at = u64::try_from(i).unwrap();
            r.push(
                at,
                Some(&vm),
                ErrorKind::Rejection,
                label,
                format_args!("e{i}"),
            );
        }
        assert_eq!(r.len(), RECENT_CAPACITY);
        let got = labels(&r);
        assert_eq!(got[0].0, format!("e{}", RECENT_CAPACITY + 2));
        assert_eq!(got[RECENT_CAPACITY - 1].0, "e3");
        let times: Vec<u64> = r.newest_first().map(|e| e.at_ms).collect();
        assert!(times.windows(2).all(|w| w[0] > w[1]), "{times:?}");
    }

    #[test]
    fn repeats_fold_into_the_newest_entry() {
        let mut r = RecentErrors::default();
        let a = VmId::new("a");
        let b = VmId::new("b");
        for _ in 0..5 {
            r.push(
                1,
                Some(&a),
                ErrorKind::Rejection,
                "rate_limited",
                format_args!("x"),
            );
        }
        r.push(
            2,
            Some(&b),
            ErrorKind::Rejection,
            "rate_limited",
            format_args!("y"),
        );
        r.push(3, None, ErrorKind::Sysfs, "write", format_args!("z"));
        r.push(4, None, ErrorKind::Sysfs, "write", format_args!("z2"));
        assert_eq!(
            labels(&r),
            vec![("z2".into(), 2), ("y".into(), 1), ("x".into(), 5)]
        );
        assert_eq!(r.newest_first().next().unwrap().at_ms, 4);
    }

    #[test]
    fn answers_newest_first() {
        let mut r = RecentErrors::default();
        r.push(1, None, ErrorKind::Sysfs, "write", format_args!("first"));
        let vm = VmId::new("vm1");
        r.push(
            2,
            Some(&vm),
            ErrorKind::Sysfs,
            "release",
            format_args!("second"),
        );
        let shown = r.answer();
        assert_eq!(shown[0].detail, "second");
        assert_eq!(shown[0].vm.as_deref(), Some("vm1"));
        assert_eq!(shown[0].kind, ErrorKind::Sysfs);
        assert_eq!(shown[1].label, "write");
        assert_eq!(shown[1].vm, None);
    }
}
