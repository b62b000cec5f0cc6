//! A pseudo-terminal as the port: the path the library opens is a
//! character device, as the guest's `/dev/vportXpY` is (not a socket), so
//! this covers the open-read-write-poll path a real guest uses. The test
//! plays the host on the pty's master side.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
use vmpower_guest::{Channel, ChannelConfig, ChannelError};
use vmpower_proto::layout::{decode_request, encode_verdict};
use vmpower_proto::{Layout, RequestBody, ScalingUnit, Verdict};

/// A pty in raw mode (bytes pass unchanged): the master, the slave's path,
/// and an open slave descriptor that keeps the raw settings alive.
fn raw_pty() -> (File, PathBuf, File) {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let path = PathBuf::from(name.to_str().unwrap());
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut termios = tcgetattr(&slave).unwrap();
    termios.make_raw();
    tcsetattr(&slave, OptionalActions::Now, &termios).unwrap();
    (File::from(master), path, slave)
}

#[test]
fn requests_and_verdicts_cross_a_character_device() {
    let (mut master, path, _slave) = raw_pty();
    let layout = Layout::Dpdk1711;
    let host = std::thread::spawn(move || {
        let mut record = vec![0u8; layout.record_len()];
        master.read_exact(&mut record).unwrap();
        let connect = decode_request(&record, layout).unwrap();
        master.read_exact(&mut record).unwrap();
        let power = decode_request(&record, layout).unwrap();
        let ack = encode_verdict(&record, layout, Verdict::Ack).unwrap();
        master.write_all(ack.as_slice()).unwrap();
        (connect.body, power.body, master)
    });
    // This host plays DPDK's (it reads CONNECT then the request): DPDK's
    // contract.
    let config = ChannelConfig {
        layout,
        timeout: Duration::from_secs(10),
        native: None,
        ..ChannelConfig::default()
    };
    let mut channel = Channel::open_path(&path, 5, config).unwrap();
    channel.set_cpu_freq(1, ScalingUnit::ScaleDown).unwrap();
    let (connect, power, master) = host.join().unwrap();
    assert_eq!(connect, RequestBody::Connect { resource_id: 5 });
    assert!(matches!(
        power,
        RequestBody::Power {
            resource_id: 1,
            unit: ScalingUnit::ScaleDown,
            ..
        }
    ));

    // The host stays silent: a bounded wait, then HostSilent.
    let quick = ChannelConfig {
        timeout: Duration::from_millis(100),
        ..config
    };
    channel = Channel::open_path(&path, 5, quick).unwrap();
    let err = channel.set_cpu_freq(0, ScalingUnit::ScaleUp).unwrap_err();
    assert!(matches!(err, ChannelError::HostSilent { .. }), "{err}");
    drop(master);
}
