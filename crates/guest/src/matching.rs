//! Which reply answers the request just sent (pure logic, no I/O).
//!
//! ## The rule
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
//! `Matcher` applies rules 2 and 3 (the channel knows what is stale) and
//! counts the queries whose answer may still come.
//!
//! ## Limitations
//! Two identical requests in flight cannot be told apart by their echoes;
//! rule 1 makes that matter only for a request sent within the host's
//! reply latency of an identical earlier one that was not waited for.

use vmpower_proto::contract::{NACK_REASON, NackReason};
use vmpower_proto::layout::ReplyKind;
use vmpower_proto::layout::offsets::header;
use vmpower_proto::layout::{decode_caps_list, decode_freq_list};
use vmpower_proto::{QueryKind, RequestBody, Verdict};

use crate::channel::Answer;
use crate::describe::{reply_kind_name, request_name};
use crate::error::ChannelError;

/// One whole reply read from the port.
#[derive(Debug)]
pub(crate) struct Received {
    /// Its kind, from `command`.
    pub kind: ReplyKind,
    /// Exactly `kind.record_len(layout)` bytes.
    pub bytes: Vec<u8>,
    /// It arrived before the current request was sent.
    pub stale: bool,
}

/// What reply a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    Verdict,
    FreqList,
    CapsList,
}

impl Expect {
    pub(crate) fn of(body: &RequestBody) -> Expect {
        match body {
            RequestBody::Query {
                kind: QueryKind::Freq | QueryKind::FreqList,
                ..
            } => Expect::FreqList,
            RequestBody::Query { .. } => Expect::CapsList,
            _ => Expect::Verdict,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Expect::Verdict => "ACK or NACK",
            Expect::FreqList => "FREQ_LIST",
            Expect::CapsList => "CAPS_LIST",
        }
    }
}

/// The matching state of one channel.
#[derive(Debug, Default)]
pub(crate) struct Matcher {
    /// Queries sent whose answer never came (it may still come).
    unanswered_queries: usize,
    /// Replies skipped so far.
    pub skipped: u64,
}

impl Matcher {
    /// Notes a query whose answer will not be waited for (sent without
    /// waiting, or timed out): its answer may come later and must be skipped.
    pub(crate) fn query_left_unanswered(&mut self) {
        self.unanswered_queries += 1;
    }

    /// Judges one reply to the request `body` (sent as `sent`): `Some`
    /// answer, `None` to skip it, or an error.
    pub(crate) fn judge(
        &mut self,
        body: &RequestBody,
        sent: &[u8],
        Received { kind, bytes, stale }: Received,
    ) -> Result<Option<Answer>, ChannelError> {
        let verdict = self.judge_inner(body, sent, kind, &bytes, stale);
        if matches!(verdict, Ok(None)) {
            self.skipped += 1;
        }
        verdict
    }

    fn judge_inner(
        &mut self,
        body: &RequestBody,
        sent: &[u8],
        kind: ReplyKind,
        bytes: &[u8],
        stale: bool,
    ) -> Result<Option<Answer>, ChannelError> {
        let expect = Expect::of(body);
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
                if !echoes(bytes, sent, verdict) {
                    return Ok(None);
                }
                return match (verdict, expect) {
                    (Verdict::Nack, _) => Err(ChannelError::HostRefused {
                        request: request(),
                        reason: NackReason::from_code(bytes[NACK_REASON]).map(NackReason::label),
                    }),
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
                let r = decode_freq_list(bytes).map_err(malformed)?;
                (Answer::FreqList(r), r.resource_id)
            }
            _ => {
                let r = decode_caps_list(bytes).map_err(malformed)?;
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

/// The error for an answer of the wrong kind. [`crate::Channel::request`] only
/// returns the kind the request expects, so this is a safety net.
pub(crate) fn wrong_answer(body: &RequestBody, answer: Answer) -> ChannelError {
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

/// Whether a verdict record echoes `sent`: every byte but `command` (and,
/// in a NACK, the native contract's reason byte, padding in the request).
pub(crate) fn echoes(reply: &[u8], sent: &[u8], verdict: Verdict) -> bool {
    let cmd = header::COMMAND..header::COMMAND + 4;
    let same = |range: std::ops::Range<usize>| {
        range
            .clone()
            .all(|i| reply.get(i) == sent.get(i) || (i == NACK_REASON && verdict == Verdict::Nack))
    };
    reply.len() == sent.len() && same(0..cmd.start) && same(cmd.end..sent.len())
}

/// The `resource_id` a request carries.
fn resource_id_of(body: &RequestBody) -> u64 {
    match body {
        RequestBody::Connect { resource_id }
        | RequestBody::Power { resource_id, .. }
        | RequestBody::Query { resource_id, .. } => *resource_id,
        RequestBody::SetPolicy(_) | RequestBody::RemovePolicy | RequestBody::Hello { .. } => 0,
        RequestBody::Busyness(report) => report.seq(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmpower_proto::layout::{encode_request_record, encode_verdict};
    use vmpower_proto::{Layout, Request, ScalingUnit, VmName};

    fn query() -> (RequestBody, Vec<u8>) {
        let body = RequestBody::Query {
            kind: QueryKind::Caps,
            resource_id: 2,
        };
        let req = Request {
            vm_name: VmName::default(),
            body,
        };
        let sent = encode_request_record(&req, Layout::Current).unwrap();
        (body, sent.as_slice().to_vec())
    }

    fn verdict(sent: &[u8], v: Verdict) -> Received {
        Received {
            kind: ReplyKind::Verdict(v),
            bytes: encode_verdict(sent, Layout::Current, v)
                .unwrap()
                .as_slice()
                .to_vec(),
            stale: false,
        }
    }

    #[test]
    fn echo_ignores_only_the_command_and_a_nacks_reason() {
        let (_, sent) = query();
        let mut reply = sent.clone();
        reply[12] = 1;
        assert!(echoes(&reply, &sent, Verdict::Ack));
        reply[NACK_REASON] = 11;
        assert!(!echoes(&reply, &sent, Verdict::Ack), "an ACK has no reason");
        assert!(echoes(&reply, &sent, Verdict::Nack));
        reply[0] ^= 1;
        assert!(!echoes(&reply, &sent, Verdict::Nack));
        assert!(!echoes(&reply[..100], &sent, Verdict::Nack));
    }

    #[test]
    fn a_native_nack_names_its_reason() {
        let (body, sent) = query();
        let mut nack = verdict(&sent, Verdict::Nack);
        nack.bytes[NACK_REASON] = NackReason::QueriesNotAllowed.code();
        let err = Matcher::default().judge(&body, &sent, nack).unwrap_err();
        assert!(err.to_string().contains("queries_not_allowed"), "{err}");
    }

    #[test]
    fn stale_replies_are_skipped_even_if_they_echo_us() {
        let (body, sent) = query();
        let mut m = Matcher::default();
        let mut stale = verdict(&sent, Verdict::Nack);
        stale.stale = true;
        assert!(m.judge(&body, &sent, stale).unwrap().is_none());
        assert_eq!(m.skipped, 1);
        let err = m
            .judge(&body, &sent, verdict(&sent, Verdict::Nack))
            .unwrap_err();
        assert!(matches!(err, ChannelError::HostRefused { .. }), "{err}");
    }

    #[test]
    fn a_late_list_reply_is_skipped_once() {
        let (body, sent) = query();
        let other = Request {
            vm_name: VmName::default(),
            body: RequestBody::Power {
                resource_id: 0,
                core_type: vmpower_proto::CoreType::Virtual,
                unit: ScalingUnit::ScaleUp,
            },
        };
        let other = encode_request_record(&other, Layout::Current).unwrap();
        let freq = || Received {
            kind: ReplyKind::FreqList,
            bytes: vec![0; 88],
            stale: false,
        };
        let mut m = Matcher::default();
        m.query_left_unanswered();
        // A FREQ_LIST while a CAPS query waits: the earlier query's answer.
        assert!(m.judge(&body, &sent, freq()).unwrap().is_none());
        // A second one has no earlier query to belong to.
        let err = m.judge(&body, &sent, freq()).unwrap_err();
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
        // A verdict for another request is always skipped.
        assert!(
            m.judge(&body, &sent, verdict(&other, Verdict::Ack))
                .unwrap()
                .is_none()
        );
    }
}
