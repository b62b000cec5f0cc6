//! The hostile guest's raw payloads, written by `vmpower-e2e payloads DIR`
//! and packed into the initramfs (`/payloads`): bytes a misbehaving guest
//! writes straight into its power port, bypassing vmpower-guest's checks.
//!
//! - `garbage.bin`: 4,640 pseudo-random bytes (ten records' worth).
//! - `physical.bin`: one CPU_POWER SCALE_MAX for *host* CPU 1
//!   (`core_type` physical), which a VM may not ask for by default.
//! - `flood.bin`: [`FLOOD_RECORDS`] valid CPU_POWER requests for vCPU 0,
//!   alternating up and down: far beyond the daemon's rate limit.

use std::fs;
use std::path::Path;

use anyhow::Context;
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{CoreType, Layout, Request, RequestBody, ScalingUnit, VmName};

/// Records in `flood.bin`.
pub const FLOOD_RECORDS: u64 = 3_000;

fn power(resource_id: u64, core_type: CoreType, unit: ScalingUnit) -> anyhow::Result<Vec<u8>> {
    let request = Request {
        vm_name: VmName::default(),
        body: RequestBody::Power {
            resource_id,
            core_type,
            unit,
        },
    };
    let record = encode_request_record(&request, Layout::Current)
        .map_err(|e| anyhow::anyhow!("encoding {request:?}: {e}"))?;
    Ok(record.as_slice().to_vec())
}

/// Deterministic pseudo-random bytes (xorshift64): the run is repeatable.
pub fn garbage(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Writes the payload files into `dir` (created).
pub fn write_all(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write("garbage.bin", &garbage(4_640))?;
    write(
        "physical.bin",
        &power(1, CoreType::Physical, ScalingUnit::ScaleMax)?,
    )?;
    let mut flood = Vec::new();
    for i in 0..FLOOD_RECORDS {
        let unit = if i % 2 == 0 {
            ScalingUnit::ScaleUp
        } else {
            ScalingUnit::ScaleDown
        };
        flood.extend_from_slice(&power(0, CoreType::Virtual, unit)?);
    }
    write("flood.bin", &flood)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_whole_records() {
        let dir = std::env::temp_dir().join(format!("vmpower-e2e-payloads-{}", std::process::id()));
        write_all(&dir).unwrap();
        let flood = fs::read(dir.join("flood.bin")).unwrap();
        assert_eq!(flood.len(), 464 * usize::try_from(FLOOD_RECORDS).unwrap());
        let physical = fs::read(dir.join("physical.bin")).unwrap();
        assert_eq!(physical.len(), 464);
        // core_type (offset 444) is physical, resource_id (offset 0) is 1.
        assert_eq!(physical[444], 1);
        assert_eq!(physical[0], 1);
        assert_ne!(garbage(64), vec![0u8; 64]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
