//! A power channel to the host: open the port, say CONNECT, send requests
//! and policies, and wait (bounded) for the reply that answers them.
//!
//! ## Reply matching
//! The port is a byte stream that may already hold replies nobody read:
//! DPDK's guests never read their ACKs, and a reply can arrive after its
//! request timed out. A reply answers the request just sent only if:
//! 1. **It arrived after the request was sent.** Before writing, everything
//!    already readable is taken in and skipped, whole record by whole
//!    record (a record still arriving is completed first, then skipped).
//! 2. **ACK/NACK:** it echoes the request byte for byte (every byte but
//!    `command`), as both vmpowerd and DPDK's host do. A verdict echoing
//!    something else answers an earlier request and is skipped. A NACK
//!    echoing us is [`ChannelError::HostRefused`]; an ACK to a query is
//!    [`ChannelError::UnexpectedReply`].
//! 3. **FREQ_LIST / CAPS_LIST:** its kind fits the query, and its
//!    `resource_id` is ours. A list reply that does not fit is skipped while
//!    an earlier query of this channel is still unanswered (it is that
//!    query's late answer); otherwise a wrong kind is
//!    [`ChannelError::UnexpectedReply`], and a right kind with another
//!    `resource_id` is accepted (DPDK's host does not echo `resource_id`).
//!
//! Bytes whose `command` is no reply at all cannot be framed: they are
//! dropped with everything buffered and reported as
//! [`ChannelError::MalformedReply`].
//!
//! ## Limitations
//! Two identical requests in flight cannot be told apart by their echoes;
//! rule 1 makes that matter only for a request sent within the host's
//! reply latency of an identical earlier one that was not waited for.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmpower_proto::layout::offsets::header;
use vmpower_proto::layout::{
    RecordBytes, ReplyKind, decode_caps_list, decode_freq_list, encode_request_record,
    peek_reply_kind,
};
use vmpower_proto::{
    CapsReply, CoreType, FreqListReply, Layout, Policy, QueryKind, Request, RequestBody,
    ScalingUnit, Verdict, VmName,
};

use crate::describe::{reply_kind_name, request_name};
use crate::error::ChannelError;
use crate::locate::{PortRoots, find_port};
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
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            layout: Layout::Current,
            timeout: Duration::from_secs(5),
            vm_name: VmName::default(),
            connect: true,
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

/// What reply a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Verdict,
    FreqList,
    CapsList,
}

impl Expect {
    fn of(body: &RequestBody) -> Expect {
        match body {
            RequestBody::Query {
                kind: QueryKind::Freq | QueryKind::FreqList,
                ..
            } => Expect::FreqList,
            RequestBody::Query { .. } => Expect::CapsList,
            _ => Expect::Verdict,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Expect::Verdict => "ACK or NACK",
            Expect::FreqList => "FREQ_LIST",
            Expect::CapsList => "CAPS_LIST",
        }
    }
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
    /// Queries sent whose answer never came (it may still come).
    unanswered_queries: usize,
    skipped: u64,
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
        Channel::open_path(&path, index, config)
    }

    /// Opens the port at `path` (a virtio port, a pty, or a unix socket to
    /// connect to) as channel `index`.
    pub fn open_path(path: &Path, index: u32, config: ChannelConfig) -> Result<Self, ChannelError> {
        let port = Port::open(path).map_err(|source| ChannelError::Open {
            path: path.to_owned(),
            source,
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
            unanswered_queries: 0,
            skipped: 0,
        };
        if config.connect {
            channel.send_only(RequestBody::Connect {
                resource_id: u64::from(index),
            })?;
        }
        Ok(channel)
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
        self.skipped
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

    /// Drops this VM's policy; waits for ACK.
    pub fn remove_policy(&mut self) -> Result<(), ChannelError> {
        self.expect_ack(RequestBody::RemovePolicy)
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
            self.unanswered_queries += 1;
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
        let expect = Expect::of(&body);
        loop {
            let reply = match self.next_reply(&body, deadline) {
                Ok(r) => r,
                Err(e) => {
                    if expect != Expect::Verdict && matches!(e, ChannelError::HostSilent { .. }) {
                        self.unanswered_queries += 1;
                    }
                    return Err(e);
                }
            };
            if let Some(answer) = self.match_reply(&body, &record, expect, reply)? {
                return Ok(answer);
            }
            self.skipped += 1;
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
            .map_err(|w| self.wait_error(w, body, false))
    }

    /// Takes in what is already readable and marks it stale.
    fn mark_stale(&mut self, body: &RequestBody) -> Result<(), ChannelError> {
        self.port
            .take_ready(&mut self.inbuf)
            .map_err(|w| self.wait_error(w, body, true))?;
        self.stale = self.inbuf.len();
        Ok(())
    }

    fn wait_error(&self, wait: Wait, body: &RequestBody, host_connected: bool) -> ChannelError {
        match wait {
            Wait::TimedOut { eof } => ChannelError::HostSilent {
                request: request_name(body),
                waited: self.config.timeout,
                host_connected: host_connected && !eof,
            },
            Wait::Failed(op, source) => ChannelError::Io {
                op,
                path: self.port.path().to_owned(),
                source,
            },
        }
    }

    /// Reads one whole reply; returns its kind, bytes and whether it is stale.
    fn next_reply(
        &mut self,
        body: &RequestBody,
        deadline: Instant,
    ) -> Result<(ReplyKind, Vec<u8>, bool), ChannelError> {
        self.port
            .fill(&mut self.inbuf, header::COMMAND + 4, deadline)
            .map_err(|w| self.wait_error(w, body, true))?;
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
            .map_err(|w| self.wait_error(w, body, true))?;
        let bytes: Vec<u8> = self.inbuf.drain(..len).collect();
        let stale = self.stale > 0;
        self.stale = self.stale.saturating_sub(len);
        Ok((kind, bytes, stale))
    }

    /// Applies the matching rule: `Some` answer, `None` to skip, or an error.
    fn match_reply(
        &mut self,
        body: &RequestBody,
        sent: &[u8],
        expect: Expect,
        (kind, bytes, stale): (ReplyKind, Vec<u8>, bool),
    ) -> Result<Option<Answer>, ChannelError> {
        let request = || request_name(body);
        let is_list = !matches!(kind, ReplyKind::Verdict(_));
        if stale {
            if is_list {
                self.unanswered_queries = self.unanswered_queries.saturating_sub(1);
            }
            return Ok(None);
        }
        let unexpected = || ChannelError::UnexpectedReply {
            request: request(),
            expected: expect.name(),
            got: reply_kind_name(kind),
        };
        let fits = match (kind, expect) {
            (ReplyKind::Verdict(verdict), _) => {
                if !echoes(&bytes, sent) {
                    return Ok(None);
                }
                return match (verdict, expect) {
                    (Verdict::Nack, _) => Err(ChannelError::HostRefused { request: request() }),
                    (Verdict::Ack, Expect::Verdict) => Ok(Some(Answer::Ack)),
                    (Verdict::Ack, _) => Err(unexpected()),
                };
            }
            (ReplyKind::FreqList, Expect::FreqList) | (ReplyKind::CapsList, Expect::CapsList) => {
                true
            }
            _ => false,
        };
        if !fits {
            if self.unanswered_queries > 0 {
                self.unanswered_queries -= 1;
                return Ok(None);
            }
            return Err(unexpected());
        }
        let ours = resource_id_of(body);
        let malformed = |source| ChannelError::MalformedReply {
            request: request(),
            source,
        };
        let (answer, echoed) = match kind {
            ReplyKind::FreqList => {
                let r = decode_freq_list(&bytes).map_err(malformed)?;
                (Answer::FreqList(r), r.resource_id)
            }
            _ => {
                let r = decode_caps_list(&bytes).map_err(malformed)?;
                (Answer::Caps(r), r.resource_id)
            }
        };
        if echoed != ours && self.unanswered_queries > 0 {
            self.unanswered_queries -= 1;
            return Ok(None);
        }
        Ok(Some(answer))
    }
}

/// The error for an answer of the wrong kind. [`Channel::request`] only
/// returns the kind the request expects, so this is a safety net.
fn wrong_answer(body: &RequestBody, answer: Answer) -> ChannelError {
    ChannelError::UnexpectedReply {
        request: request_name(body),
        expected: Expect::of(body).name(),
        got: match answer {
            Answer::Ack => "ACK",
            Answer::FreqList(_) => "FREQ_LIST",
            Answer::Caps(_) => "CAPS_LIST",
        },
    }
}

/// Whether a verdict record echoes `sent` (every byte but `command`).
fn echoes(reply: &[u8], sent: &[u8]) -> bool {
    let cmd = header::COMMAND..header::COMMAND + 4;
    reply.len() == sent.len()
        && reply[..cmd.start] == sent[..cmd.start]
        && reply[cmd.end..] == sent[cmd.end..]
}

/// The `resource_id` a request carries.
fn resource_id_of(body: &RequestBody) -> u64 {
    match body {
        RequestBody::Connect { resource_id }
        | RequestBody::Power { resource_id, .. }
        | RequestBody::Query { resource_id, .. } => *resource_id,
        RequestBody::SetPolicy(_) | RequestBody::RemovePolicy => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use vmpower_proto::layout::{decode_request, encode_freq_list, encode_verdict};

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn channel(layout: Layout, timeout: Duration) -> (Channel, UnixStream) {
        let (a, host) = UnixStream::pair().unwrap();
        let config = ChannelConfig {
            layout,
            timeout,
            connect: false,
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
        let err = ch.remove_policy().unwrap_err();
        assert!(matches!(err, ChannelError::HostRefused { .. }), "{err}");
        assert_eq!(err.to_string(), "the host refused PKT_POLICY_REMOVE (NACK)");
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
