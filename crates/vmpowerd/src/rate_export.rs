//! Answers `traffic-record`: one page of the record of sampled packet
//! rates ([`crate::traffic::record`], stored by [`crate::store::rates`]),
//! for `vmpowerctl traffic export`.
//!
//! Only closed blocks are in the store: the open one of each sampled VM
//! (up to 60 steps) is written when it closes or when the daemon stops.

use vmpower_api::rate_record::{PAGE_BLOCKS, RateBlock, RateCursor, RatePage};
use vmpower_api::{CtlError, ErrorKind};

use crate::SharedCore;
use crate::store::rates::RateCursor as StoreCursor;

/// One page of blocks of `vm` (all VMs when `None`) starting in
/// `[since_ms, until_ms)`, after `after`.
pub fn page(
    core: &SharedCore,
    vm: Option<&str>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    after: Option<RateCursor>,
) -> Result<RatePage, CtlError> {
    // SQLite's integers end at i64::MAX: later is simply "no end".
    let sql_max = u64::try_from(i64::MAX).unwrap_or(u64::MAX);
    let since = since_ms.unwrap_or(0).min(sql_max);
    let until = until_ms.unwrap_or(sql_max).min(sql_max);
    if since >= until {
        return Err(CtlError::new(
            ErrorKind::Invalid,
            format!("the time window is empty: since {since} ms is not before until {until} ms"),
        ));
    }
    let cursor = after.map(|c| StoreCursor {
        start_ms: c.start_ms.min(sql_max),
        vm: c.vm,
    });
    let core = crate::lock(core);
    let store = core
        .store
        .as_ref()
        .ok_or_else(|| CtlError::new(ErrorKind::Refused, "no state database"))?;
    let blocks = store
        .rate_blocks(vm, since, until, cursor.as_ref(), PAGE_BLOCKS)
        .map_err(|e| CtlError::new(ErrorKind::Refused, format!("{:#}", anyhow::Error::from(e))))?;
    drop(core);
    let next = (blocks.len() == PAGE_BLOCKS)
        .then(|| blocks.last())
        .flatten()
        .map(|b| RateCursor {
            start_ms: b.start_ms,
            vm: b.vm.to_string(),
        });
    Ok(RatePage {
        blocks: blocks
            .into_iter()
            .map(|b| RateBlock {
                vm: b.vm.to_string(),
                start_ms: b.start_ms,
                step_ms: b.step_ms,
                rates: b
                    .rates
                    .iter()
                    .map(|r| (!r.is_nan()).then_some(*r))
                    .collect(),
            })
            .collect(),
        next,
    })
}
