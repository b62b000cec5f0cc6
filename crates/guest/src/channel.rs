//! A power channel to the host: open the port, say CONNECT, send requests
//! and policies, and wait (bounded) for the reply that answers them.
//!
//! ## Behavior
//! - One deadline ([`ChannelConfig::timeout`]) covers writing the request
//!   and receiving its answer; nothing blocks past it.
//! - Replies are framed from the stream by their `command` (16 bytes, then
//!   the rest of [`ReplyKind::record_len`](vmpower_proto::layout::ReplyKind::record_len)); partial records survive across
//!   calls, so a timeout never misaligns the stream.
//! - After CONNECT the channel asks for vmpower's native reply contract
//!   (HELLO, [`vmpower_proto::contract`]): NACKs with a reason for every
//!   refusal, an ACK for a removal. A host that does not answer within
//!   [`ChannelConfig::native`] (DPDK's) is spoken to on DPDK's contract: a
//!   removal is sent without waiting, and a refused query is only silence
//!   ([`ChannelError::HostSilent`]).
//! - Which reply answers which request is decided by the rule documented in
//!   [`crate::matching`]: stale replies are skipped, verdicts must echo the
//!   request, list replies must fit the query.
//!
//! ## Limitations
//! One request at a time (`&mut self`); a write that times out halfway
//! leaves a partial record on the host side.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmpower_proto::contract::{Contract, NATIVE_VERSION};
use vmpower_proto::layout::offsets::header;
use vmpower_proto::layout::{RecordBytes, ReplyKind, encode_request_record, peek_reply_kind};
use vmpower_proto::{
    CapsReply, CoreType, FreqListReply, Layout, Policy, QueryKind, Request, RequestBody,
    ScalingUnit, Verdict, VmName,
};

use crate::describe::request_name;
use crate::error::ChannelError;
use crate::locate::{PortRoots, find_port};
use crate::matching::{Expect, Matcher, Received, echoes, wrong_answer};
use crate::port::{Port, Wait};

/// How a channel talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The byte layout the host expects on this channel.
    pub layout: Layout,
    /// How long one request may take, sending and answer together.
    pub timeout: Duration,
    /// The `vm_name` put in every packet (informational for vmpowerd; DPDK's
    /// host looks policies up by it, so use the libvirt domain name there).
    pub vm_name: VmName,
    /// Send CPU_POWER_CONNECT on open, as DPDK's guest library does.
    pub connect: bool,
    /// After CONNECT, ask for vmpower's native reply contract (HELLO) and
    /// wait this long for the answer; `None` (or no answer: DPDK's host)
    /// keeps DPDK's contract ([`vmpower_proto::contract`]).
    pub native: Option<Duration>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            layout: Layout::Current,
            timeout: Duration::from_secs(5),
            vm_name: VmName::default(),
            connect: true,
            native: Some(Duration::from_millis(200)),
        }
    }
}

/// Which vCPUs a query asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryTarget {
    /// One vCPU (QUERY_FREQ / QUERY_CAPS).
    Vcpu(u64),
    /// Every vCPU of the VM (QUERY_FREQ_LIST / QUERY_CAPS_LIST).
    All,
}

/// The host's answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// ACK: the request took effect.
    Ack,
    /// Frequencies per vCPU.
    FreqList(FreqListReply),
    /// Capabilities per vCPU.
    Caps(CapsReply),
}

/// An open power channel. Not thread-safe by design: one request at a time.
#[derive(Debug)]
pub struct Channel {
    port: Port,
    index: u32,
    config: ChannelConfig,
    /// Bytes read from the port and not yet consumed as whole replies.
    inbuf: Vec<u8>,
    /// How many leading bytes of `inbuf` arrived before the current request.
    stale: usize,
    matcher: Matcher,
    /// The reply contract the host answers on.
    contract: Contract,
}

impl Channel {
    /// Opens power channel `index`, found under `roots` (see
    /// [`find_port`]), and says CONNECT if `config.connect`.
    pub fn open(
        index: u32,
        roots: &PortRoots,
        config: ChannelConfig,
    ) -> Result<Self, ChannelError> {
        let path = find_port(index, roots)?;
        let port = Port::open(&path).map_err(|source| ChannelError::Open { path, source })?;
        Channel::start(port, index, config)
    }

    /// Opens the port at `path` (a virtio port, a pty, or a unix socket to
    /// connect to) as channel `index`. A `path` that does not exist is
    /// [`ChannelError::NoSuchPort`] naming it; any other failure to open
    /// it is [`ChannelError::Open`].
    pub fn open_path(path: &Path, index: u32, config: ChannelConfig) -> Result<Self, ChannelError> {
        let port = Port::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ChannelError::NoSuchPort {
                    index,
                    looked_at: vec![path.to_owned()],
                }
            } else {
                ChannelError::Open {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Channel::start(port, index, config)
    }

    /// Uses a connected unix stream as the port (tests, socket pairs).
    pub fn from_stream(
        stream: UnixStream,
        index: u32,
        config: ChannelConfig,
    ) -> Result<Self, ChannelError> {
        let path = PathBuf::from(format!("<stream for channel {index}>"));
        let port = Port::from_file(File::from(OwnedFd::from(stream)), path.clone())
            .map_err(|source| ChannelError::Open { path, source })?;
        Channel::start(port, index, config)
    }

    fn start(port: Port, index: u32, config: ChannelConfig) -> Result<Self, ChannelError> {
        let mut channel = Channel {
            port,
            index,
            config,
            inbuf: Vec::new(),
            stale: 0,
            matcher: Matcher::default(),
            contract: Contract::Dpdk,
        };
        if config.connect {
            channel.send_only(RequestBody::Connect {
                resource_id: u64::from(index),
            })?;
        }
        if let Some(wait) = config.native {
            channel.contract = channel.hello(wait)?;
        }
        Ok(channel)
    }

    /// Asks for the native contract; DPDK's when no ACK echoing the HELLO
    /// comes within `wait` (DPDK's host ignores it; an older vmpowerd NACKs
    /// it).
    fn hello(&mut self, wait: Duration) -> Result<Contract, ChannelError> {
        let body = RequestBody::Hello {
            version: NATIVE_VERSION,
        };
        let deadline = Instant::now() + wait;
        let record = self.encode(&body)?;
        self.mark_stale(&body)?;
        self.write(&record, &body, deadline)?;
        loop {
            let reply = match self.next_reply(&body, deadline) {
                Ok(reply) => reply,
                Err(ChannelError::HostSilent { .. }) => return Ok(Contract::Dpdk),
                Err(e) => return Err(e),
            };
            if reply.stale {
                self.matcher.skipped += 1;
                continue;
            }
            let ReplyKind::Verdict(verdict) = reply.kind else {
                self.matcher.skipped += 1;
                continue;
            };
            // The ACK carries the version granted in `unit`.
            let mut echo = reply.bytes.clone();
            let unit = header::UNIT..header::UNIT + 4;
            echo[unit.clone()].copy_from_slice(&record[unit.clone()]);
            if !echoes(&echo, &record, verdict) {
                self.matcher.skipped += 1;
                continue;
            }
            return Ok(match verdict {
                Verdict::Ack => {
                    let mut granted = [0u8; 4];
                    granted.copy_from_slice(&reply.bytes[unit]);
                    Contract::granted(u32::from_le_bytes(granted))
                }
                Verdict::Nack => Contract::Dpdk,
            });
        }
    }

    /// The reply contract the host answers this channel on.
    pub fn contract(&self) -> Contract {
        self.contract
    }

    /// The channel index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The path of the port.
    pub fn path(&self) -> &Path {
        self.port.path()
    }

    /// The configuration in use.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// How many replies were skipped as stale or as answers to earlier
    /// requests.
    pub fn skipped_replies(&self) -> u64 {
        self.matcher.skipped
    }

    /// Asks for a frequency change of one of this VM's vCPUs; waits for ACK.
    pub fn set_cpu_freq(&mut self, vcpu: u64, unit: ScalingUnit) -> Result<(), ChannelError> {
        self.power(vcpu, CoreType::Virtual, unit)
    }

    /// Asks for a frequency change of a vCPU or (if the host allows this VM)
    /// a host CPU; waits for ACK.
    pub fn power(
        &mut self,
        resource_id: u64,
        core_type: CoreType,
        unit: ScalingUnit,
    ) -> Result<(), ChannelError> {
        self.expect_ack(RequestBody::Power {
            resource_id,
            core_type,
            unit,
        })
    }

    /// Hands the host a policy (replacing this VM's earlier one); waits for ACK.
    pub fn send_policy(&mut self, policy: &Policy) -> Result<(), ChannelError> {
        self.expect_ack(RequestBody::SetPolicy(*policy))
    }

    /// Drops this VM's policy; waits for the ACK on the native contract
    /// (DPDK's host sends none: the request is only sent).
    pub fn remove_policy(&mut self) -> Result<(), ChannelError> {
        match self.contract {
            Contract::Native(_) => self.expect_ack(RequestBody::RemovePolicy),
            Contract::Dpdk => self.send_only(RequestBody::RemovePolicy),
        }
    }

    /// Asks the current frequency of one or all vCPUs.
    pub fn query_freq(&mut self, target: QueryTarget) -> Result<FreqListReply, ChannelError> {
        let (kind, resource_id) = match target {
            QueryTarget::Vcpu(v) => (QueryKind::Freq, v),
            QueryTarget::All => (QueryKind::FreqList, 0),
        };
        let body = RequestBody::Query { kind, resource_id };
        match self.request(body)? {
            Answer::FreqList(reply) => Ok(reply),
            other => Err(wrong_answer(&body, other)),
        }
    }

    /// Asks the turbo/priority capabilities of one or all vCPUs.
    pub fn query_caps(&mut self, target: QueryTarget) -> Result<CapsReply, ChannelError> {
        let (kind, resource_id) = match target {
            QueryTarget::Vcpu(v) => (QueryKind::Caps, v),
            QueryTarget::All => (QueryKind::CapsList, 0),
        };
        let body = RequestBody::Query { kind, resource_id };
        match self.request(body)? {
            Answer::Caps(reply) => Ok(reply),
            other => Err(wrong_answer(&body, other)),
        }
    }

    fn expect_ack(&mut self, body: RequestBody) -> Result<(), ChannelError> {
        match self.request(body)? {
            Answer::Ack => Ok(()),
            other => Err(wrong_answer(&body, other)),
        }
    }

    /// Sends a request without waiting for any answer (DPDK's behaviour).
    /// The answer, if one comes, is skipped by later requests.
    pub fn send_only(&mut self, body: RequestBody) -> Result<(), ChannelError> {
        let deadline = Instant::now() + self.config.timeout;
        let record = self.encode(&body)?;
        self.write(&record, &body, deadline)?;
        if matches!(body, RequestBody::Query { .. }) {
            self.matcher.query_left_unanswered();
        }
        Ok(())
    }

    /// Sends a request and waits for the reply that answers it (see the
    /// module documentation for the matching rule).
    pub fn request(&mut self, body: RequestBody) -> Result<Answer, ChannelError> {
        let start = Instant::now();
        let deadline = start + self.config.timeout;
        let record = self.encode(&body)?;
        self.mark_stale(&body)?;
        self.write(&record, &body, deadline)?;
        let is_query = Expect::of(&body) != Expect::Verdict;
        loop {
            let reply = match self.next_reply(&body, deadline) {
                Ok(r) => r,
                Err(e) => {
                    if is_query && matches!(e, ChannelError::HostSilent { .. }) {
                        self.matcher.query_left_unanswered();
                    }
                    return Err(e);
                }
            };
            if let Some(answer) = self.matcher.judge(&body, &record, reply)? {
                return Ok(answer);
            }
        }
    }

    fn encode(&self, body: &RequestBody) -> Result<RecordBytes, ChannelError> {
        let request = Request {
            vm_name: self.config.vm_name,
            body: *body,
        };
        encode_request_record(&request, self.config.layout).map_err(|source| ChannelError::Encode {
            request: request_name(body),
            source,
        })
    }

    fn write(
        &mut self,
        record: &[u8],
        body: &RequestBody,
        deadline: Instant,
    ) -> Result<(), ChannelError> {
        self.port
            .write_all(record, deadline)
            .map_err(|w| self.wait_error(w, body))
    }

    /// Takes in what is already readable and marks it stale.
    fn mark_stale(&mut self, body: &RequestBody) -> Result<(), ChannelError> {
        self.port
            .take_ready(&mut self.inbuf)
            .map_err(|w| self.wait_error(w, body))?;
        self.stale = self.inbuf.len();
        Ok(())
    }

    fn wait_error(&self, wait: Wait, body: &RequestBody) -> ChannelError {
        match wait {
            Wait::TimedOut { eof } => ChannelError::HostSilent {
                request: request_name(body),
                waited: self.config.timeout,
                host_connected: !eof,
            },
            Wait::Failed(op, source) => ChannelError::Io {
                op,
                path: self.port.path().to_owned(),
                source,
            },
        }
    }

    /// Reads one whole reply.
    fn next_reply(
        &mut self,
        body: &RequestBody,
        deadline: Instant,
    ) -> Result<Received, ChannelError> {
        self.port
            .fill(&mut self.inbuf, header::COMMAND + 4, deadline)
            .map_err(|w| self.wait_error(w, body))?;
        let kind = match peek_reply_kind(&self.inbuf) {
            Ok(kind) => kind,
            Err(source) => {
                self.inbuf.clear();
                self.stale = 0;
                return Err(ChannelError::MalformedReply {
                    request: request_name(body),
                    source,
                });
            }
        };
        let len = kind.record_len(self.config.layout);
        self.port
            .fill(&mut self.inbuf, len, deadline)
            .map_err(|w| self.wait_error(w, body))?;
        let bytes: Vec<u8> = self.inbuf.drain(..len).collect();
        let stale = self.stale > 0;
        self.stale = self.stale.saturating_sub(len);
        Ok(Received { kind, bytes, stale })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use vmpower_proto::Verdict;
    use vmpower_proto::layout::{decode_request, encode_freq_list, encode_verdict};

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn channel(layout: Layout, timeout: Duration) -> (Channel, UnixStream) {
        let (a, host) = UnixStream::pair().unwrap();
        let config = ChannelConfig {
            layout,
            timeout,
            connect: false,
            native: None,
            ..ChannelConfig::default()
        };
        (Channel::from_stream(a, 0, config).unwrap(), host)
    }

    fn read_record(host: &mut UnixStream, layout: Layout) -> Vec<u8> {
        host.set_read_timeout(Some(WAIT)).unwrap();
        let mut rec = vec![0u8; layout.record_len()];
        host.read_exact(&mut rec).unwrap();
        rec
    }

    fn verdict(rec: &[u8], layout: Layout, v: Verdict) -> Vec<u8> {
        encode_verdict(rec, layout, v).unwrap().as_slice().to_vec()
    }

    fn freq_list(resource_id: u64, khz: u32) -> Vec<u8> {
        encode_freq_list(&FreqListReply {
            resource_id,
            unit: 0,
            vm_name: VmName::default(),
            freqs_khz: [khz; 8],
            num_vcpu: 2,
        })
        .unwrap()
        .to_vec()
    }

    /// Runs a scripted host on another thread.
    fn host(
        mut stream: UnixStream,
        script: impl FnOnce(&mut UnixStream) + Send + 'static,
    ) -> std::thread::JoinHandle<UnixStream> {
        std::thread::spawn(move || {
            script(&mut stream);
            stream
        })
    }

    #[test]
    fn connect_is_sent_on_open() {
        let (a, mut host) = UnixStream::pair().unwrap();
        let config = ChannelConfig {
            layout: Layout::Dpdk1711,
            ..ChannelConfig::default()
        };
        let _channel = Channel::from_stream(a, 3, config).unwrap();
        let rec = read_record(&mut host, Layout::Dpdk1711);
        let req = decode_request(&rec, Layout::Dpdk1711).unwrap();
        assert_eq!(req.body, RequestBody::Connect { resource_id: 3 });
    }

    #[test]
    fn hello_answered_switches_to_native_and_silence_keeps_dpdks() {
        use vmpower_proto::layout::encode_hello_reply;
        // A host that grants version 1: removal then waits for its ACK.
        let (a, h) = UnixStream::pair().unwrap();
        let config = ChannelConfig {
            connect: false,
            ..ChannelConfig::default()
        };
        let host_side = host(h, |h| {
            let hello = read_record(h, Layout::Current);
            let req = decode_request(&hello, Layout::Current).unwrap();
            assert_eq!(
                req.body,
                RequestBody::Hello {
                    version: NATIVE_VERSION
                }
            );
            let reply = encode_hello_reply(&hello, Layout::Current, 1).unwrap();
            h.write_all(&reply).unwrap();
            let remove = read_record(h, Layout::Current);
            h.write_all(&verdict(&remove, Layout::Current, Verdict::Ack))
                .unwrap();
        });
        let mut ch = Channel::from_stream(a, 0, config).unwrap();
        assert_eq!(ch.contract(), Contract::Native(1));
        ch.remove_policy().unwrap();
        host_side.join().unwrap();

        // A host that says nothing (DPDK's): DPDK's contract after the wait,
        // and a removal is only sent.
        let (a, mut h) = UnixStream::pair().unwrap();
        let config = ChannelConfig {
            connect: false,
            native: Some(Duration::from_millis(50)),
            ..ChannelConfig::default()
        };
        let mut ch = Channel::from_stream(a, 0, config).unwrap();
        assert_eq!(ch.contract(), Contract::Dpdk);
        ch.remove_policy().unwrap();
        let _hello = read_record(&mut h, Layout::Current);
        let remove = read_record(&mut h, Layout::Current);
        let req = decode_request(&remove, Layout::Current).unwrap();
        assert_eq!(req.body, RequestBody::RemovePolicy);
    }

    #[test]
    fn stale_and_foreign_verdicts_are_skipped() {
        let layout = Layout::Current;
        let (mut ch, mut h) = channel(layout, WAIT);
        let up = RequestBody::Power {
            resource_id: 1,
            core_type: CoreType::Virtual,
            unit: ScalingUnit::ScaleUp,
        };
        // The same request sent earlier, DPDK style; its NACK is waiting
        // unread when we send again: rule 1 must skip it.
        ch.send_only(up).unwrap();
        let earlier = read_record(&mut h, layout);
        h.write_all(&verdict(&earlier, layout, Verdict::Nack))
            .unwrap();
        // A different request, whose verdict arrives after ours is sent.
        let other = Request {
            vm_name: VmName::default(),
            body: RequestBody::Power {
                resource_id: 2,
                core_type: CoreType::Virtual,
                unit: ScalingUnit::ScaleDown,
            },
        };
        let other = encode_request_record(&other, layout)
            .unwrap()
            .as_slice()
            .to_vec();
        let t = host(h, move |h| {
            let rec = read_record(h, layout);
            h.write_all(&verdict(&other, layout, Verdict::Nack))
                .unwrap();
            h.write_all(&verdict(&rec, layout, Verdict::Ack)).unwrap();
        });
        ch.set_cpu_freq(1, ScalingUnit::ScaleUp).unwrap();
        assert_eq!(ch.skipped_replies(), 2);
        drop(t.join().unwrap());
    }

    #[test]
    fn nack_echoing_us_is_refused() {
        let layout = Layout::Dpdk1711;
        let (mut ch, h) = channel(layout, WAIT);
        let t = host(h, move |h| {
            let rec = read_record(h, layout);
            h.write_all(&verdict(&rec, layout, Verdict::Nack)).unwrap();
        });
        let err = ch.set_cpu_freq(1, ScalingUnit::ScaleUp).unwrap_err();
        assert!(matches!(err, ChannelError::HostRefused { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "the host refused CPU_POWER SCALE_UP vCPU 1 (NACK)"
        );
        drop(t.join().unwrap());
    }

    #[test]
    fn ack_to_a_query_is_unexpected() {
        let layout = Layout::Current;
        let (mut ch, h) = channel(layout, WAIT);
        let t = host(h, move |h| {
            let rec = read_record(h, layout);
            h.write_all(&verdict(&rec, layout, Verdict::Ack)).unwrap();
        });
        let err = ch.query_freq(QueryTarget::All).unwrap_err();
        assert!(
            matches!(
                err,
                ChannelError::UnexpectedReply {
                    got: "ACK",
                    expected: "FREQ_LIST",
                    ..
                }
            ),
            "{err}"
        );
        drop(t.join().unwrap());
    }

    #[test]
    fn list_of_the_wrong_kind_is_unexpected() {
        let layout = Layout::Current;
        let (mut ch, h) = channel(layout, WAIT);
        let t = host(h, move |h| {
            let _ = read_record(h, layout);
            h.write_all(&freq_list(0, 1)).unwrap();
        });
        let err = ch.query_caps(QueryTarget::All).unwrap_err();
        assert!(
            matches!(
                err,
                ChannelError::UnexpectedReply {
                    got: "FREQ_LIST",
                    ..
                }
            ),
            "{err}"
        );
        drop(t.join().unwrap());
    }

    #[test]
    fn silence_times_out_and_a_late_answer_is_skipped_later() {
        let layout = Layout::Current;
        let (mut ch, mut h) = channel(layout, Duration::from_millis(50));
        let err = ch.query_freq(QueryTarget::Vcpu(1)).unwrap_err();
        assert!(
            matches!(
                err,
                ChannelError::HostSilent {
                    host_connected: true,
                    ..
                }
            ),
            "{err}"
        );
        let _ = read_record(&mut h, layout);
        ch.config.timeout = WAIT;
        let t = host(h, move |h| {
            let _ = read_record(h, layout);
            // The late answer to vCPU 1 comes now, then the answer to vCPU 0.
            h.write_all(&freq_list(1, 111)).unwrap();
            h.write_all(&freq_list(0, 222)).unwrap();
        });
        let reply = ch.query_freq(QueryTarget::Vcpu(0)).unwrap();
        assert_eq!(reply.freqs_khz[0], 222);
        drop(t.join().unwrap());
    }

    #[test]
    fn garbage_is_malformed_and_dropped() {
        let layout = Layout::Current;
        let (mut ch, h) = channel(layout, WAIT);
        let t = host(h, move |h| {
            let rec = read_record(h, layout);
            h.write_all(&[0x55; 40]).unwrap();
            let rec2 = read_record(h, layout);
            h.write_all(&verdict(&rec2, layout, Verdict::Ack)).unwrap();
            drop(rec);
        });
        let err = ch.set_cpu_freq(0, ScalingUnit::ScaleMin).unwrap_err();
        assert!(matches!(err, ChannelError::MalformedReply { .. }), "{err}");
        // The channel keeps working afterwards.
        ch.set_cpu_freq(0, ScalingUnit::ScaleMin).unwrap();
        drop(t.join().unwrap());
    }

    #[test]
    fn replies_split_byte_by_byte_are_reassembled() {
        let layout = Layout::Dpdk1711;
        let (mut ch, h) = channel(layout, WAIT);
        let t = host(h, move |h| {
            let rec = read_record(h, layout);
            for b in verdict(&rec, layout, Verdict::Ack) {
                h.write_all(&[b]).unwrap();
            }
        });
        ch.set_cpu_freq(2, ScalingUnit::ScaleMax).unwrap();
        drop(t.join().unwrap());
    }

    #[test]
    fn unencodable_requests_send_nothing() {
        let layout = Layout::Dpdk1711;
        let (mut ch, mut h) = channel(layout, WAIT);
        let err = ch
            .power(0, CoreType::Physical, ScalingUnit::ScaleMin)
            .unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Invalid, "{err}");
        h.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1];
        assert!(h.read(&mut buf).is_err(), "nothing was written");
    }
}
