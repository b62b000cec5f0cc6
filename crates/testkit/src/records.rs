//! Guest records as a guest writes them, and the verdicts the daemon
//! answers, for tests that speak the channel's bytes themselves.

#[cfg(feature = "daemon")]
use tokio::io::{AsyncReadExt, AsyncWriteExt};
#[cfg(feature = "daemon")]
use tokio::net::UnixStream;
use vmpower_proto::layout::encode_request_record;
use vmpower_proto::{CoreType, Layout, Request, RequestBody, ScalingUnit, VmName};
#[cfg(feature = "daemon")]
use vmpower_proto::{Verdict, layout::decode_verdict};

#[cfg(feature = "daemon")]
use crate::wait::WAIT;

/// A record of `body` named for `vm` (empty: no name), in the current
/// layout.
pub fn named(vm: &str, body: RequestBody) -> Vec<u8> {
    let req = Request {
        vm_name: VmName::new(vm).unwrap(),
        body,
    };
    encode_request_record(&req, Layout::Current)
        .unwrap()
        .as_slice()
        .to_vec()
}

/// A record of `body` in the current layout, with no name.
pub fn record(body: RequestBody) -> Vec<u8> {
    named("", body)
}

/// A CPU_POWER record in the current layout.
pub fn power(vcpu: u64, unit: ScalingUnit) -> Vec<u8> {
    record(RequestBody::Power {
        resource_id: vcpu,
        core_type: CoreType::Virtual,
        unit,
    })
}

#[cfg(feature = "daemon")]
/// Asks for the native reply contract (HELLO) and waits for its ACK: the
/// daemon then answers every record, removal included.
pub async fn native(guest: &mut UnixStream) {
    let hello = record(RequestBody::Hello { version: 1 });
    assert_eq!(call(guest, &hello).await, Verdict::Ack);
}

#[cfg(feature = "daemon")]
/// Sends a record and reads the ACK/NACK.
pub async fn call(guest: &mut UnixStream, record: &[u8]) -> Verdict {
    guest.write_all(record).await.unwrap();
    read_verdict(guest, record.len()).await
}

#[cfg(feature = "daemon")]
/// Reads the verdict of a record of `len` bytes (456: DPDK 17.11's
/// layout, else the current one).
pub async fn read_verdict(guest: &mut UnixStream, len: usize) -> Verdict {
    let mut reply = vec![0u8; len];
    tokio::time::timeout(WAIT, guest.read_exact(&mut reply))
        .await
        .expect("no reply in time")
        .unwrap();
    let layout = if len == 456 {
        Layout::Dpdk1711
    } else {
        Layout::Current
    };
    decode_verdict(&reply, layout).unwrap().verdict
}
