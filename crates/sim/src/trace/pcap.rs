//! Rates from packet captures: each capture is one VM's received traffic;
//! its packets are counted per step from their timestamps (the first
//! packet starts step 0), and a step's count divided by the step is its
//! rate. Read with the `pcap-file` crate: classic pcap and pcapng
//! (enhanced and simple packet blocks).
//!
//! ## Limitations
//! pcapng timestamps are taken at the format's default resolution
//! (microseconds), as `pcap-file` 2 reads them; a capture written with
//! another `if_tsresol` is misread. Only the count matters, not what the
//! packets hold. Captures are aligned at their own first packet.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

use super::{Trace, TraceError};

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be opened or read.
    #[error("cannot read {0}")]
    Io(String, #[source] std::io::Error),
    /// Neither pcap nor pcapng, or damaged.
    #[error("{0} is not a readable capture")]
    Format(String, #[source] pcap_file::PcapError),
    /// The rates do not make a trace.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// The timestamps of every packet in a capture (pcap or pcapng).
pub fn timestamps(what: &str, bytes: &[u8]) -> Result<Vec<Duration>, PcapError> {
    let pcapng = bytes.get(..4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a]);
    let fmt = |e| PcapError::Format(what.to_owned(), e);
    let mut out = Vec::new();
    if pcapng {
        let mut reader = PcapNgReader::new(bytes).map_err(fmt)?;
        while let Some(block) = reader.next_block() {
            match block.map_err(fmt)? {
                Block::EnhancedPacket(p) => out.push(p.timestamp),
                // A simple packet block has no timestamp: counted at the
                // last one seen.
                Block::SimplePacket(_) => out.push(out.last().copied().unwrap_or_default()),
                _ => {}
            }
        }
    } else {
        let mut reader = PcapReader::new(bytes).map_err(fmt)?;
        while let Some(p) = reader.next_packet() {
            out.push(p.map_err(fmt)?.timestamp);
        }
    }
    Ok(out)
}

/// Packets per second in each step of `step`, from the first timestamp.
pub fn rates(stamps: &[Duration], step: Duration) -> Vec<f64> {
    let Some(first) = stamps.iter().min().copied() else {
        return Vec::new();
    };
    let step_ns = step.as_nanos().max(1);
    let mut counts: Vec<f64> = Vec::new();
    for t in stamps {
        let i =
            usize::try_from((t.saturating_sub(first)).as_nanos() / step_ns).unwrap_or(usize::MAX);
        if i >= counts.len() {
            counts.resize(i + 1, 0.0);
        }
        counts[i] += 1.0;
    }
    let secs = step.as_secs_f64();
    counts.into_iter().map(|c| c / secs).collect()
}

/// A trace of one VM per capture, named after the file's stem; shorter
/// captures are padded with zero rates.
pub fn read(paths: &[impl AsRef<Path>], step: Duration) -> Result<Trace, PcapError> {
    let mut vms = Vec::new();
    let mut series = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let what = path.display().to_string();
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| PcapError::Io(what.clone(), e))?;
        series.push(rates(&timestamps(&what, &bytes)?, step));
        vms.push(
            path.file_stem()
                .map_or_else(|| what.clone(), |s| s.to_string_lossy().into_owned()),
        );
    }
    let len = series.iter().map(Vec::len).max().unwrap_or(0);
    for s in &mut series {
        s.resize(len, 0.0);
    }
    Ok(Trace::new(step, vms, series)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::{PcapPacket, PcapWriter};

    fn capture(stamps_us: &[u64]) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for us in stamps_us {
            let data = [0u8; 60];
            w.write_packet(&PcapPacket::new(Duration::from_micros(*us), 60, &data))
                .unwrap();
        }
        w.into_writer()
    }

    #[test]
    fn counts_packets_per_step_from_the_first() {
        // 3 packets in the first 10 ms, none in the next, 1 in the third.
        let bytes = capture(&[1_000_000, 1_004_000, 1_009_999, 1_020_000]);
        let stamps = timestamps("t", &bytes).unwrap();
        assert_eq!(stamps.len(), 4);
        let r = rates(&stamps, Duration::from_millis(10));
        assert_eq!(r, vec![300.0, 0.0, 100.0]);
    }

    #[test]
    fn files_become_vms_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("vmA.pcap");
        let b = dir.path().join("vmB.pcap");
        std::fs::write(&a, capture(&[0, 15_000])).unwrap();
        std::fs::write(&b, capture(&[5_000])).unwrap();
        let t = read(&[&a, &b], Duration::from_millis(10)).unwrap();
        assert_eq!(t.vms, vec!["vmA", "vmB"]);
        assert_eq!(t.rates, vec![vec![100.0, 100.0], vec![100.0, 0.0]]);
        let bad = dir.path().join("bad.pcap");
        std::fs::write(&bad, b"not a capture at all").unwrap();
        assert!(matches!(
            read(&[&bad], Duration::from_millis(10)),
            Err(PcapError::Format(..))
        ));
    }
}
