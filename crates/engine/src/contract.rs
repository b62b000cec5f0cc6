//! The reply a channel's guest gets on the wire: the engine decides what
//! a record means ([`Engine::handle`], the native contract's full answer),
//! then the channel's contract ([`vmpower_proto::contract`]) says which of
//! that answer goes back.
//!
//! ## Behavior
//! - Every channel starts on DPDK's contract, and goes back to it on a
//!   new connection ([`Engine::channel_connected`]) and on a CONNECT.
//! - On DPDK's contract a record gets exactly the reply DPDK's host would
//!   send for its `command` and `unit`: a verdict for CPU_POWER with a
//!   unit in 1..=6 and for PKT_POLICY, the list for an answered query,
//!   nothing otherwise — whether or not the record decoded. A refusal
//!   that goes unanswered is still a [`Note::Rejected`]: counted, logged
//!   within the VM's budget and shown in status by the daemon.
//! - On the native contract the full answer goes back: a NACK (with its
//!   [`NackReason`]) for every refusal and an ACK for PKT_POLICY_REMOVE.
//! - A BUSYNESS report (native v2) gets no reply on any contract, accepted
//!   or refused; a refusal is still a [`Note::Rejected`].

use vmpower_proto::Request;
use vmpower_proto::contract::{Contract, DpdkReply, NackReason, dpdk_reply, never_answered};
use vmpower_proto::layout::RecordHead;

use crate::engine::{Decision, Engine, Note, Reply};
use crate::ids::ChannelId;
use crate::reject::Rejection;
use crate::settings::Now;

impl Engine {
    /// Handles one record of a channel as [`Engine::handle`] does, and
    /// keeps of its reply what the channel's contract sends back. `head`
    /// is read from the raw record (it says DPDK's reply even for a record
    /// that did not decode). Returns the contract the reply is for.
    pub fn handle_record(
        &mut self,
        now: Now,
        channel: &ChannelId,
        head: RecordHead,
        request: Result<&Request, Rejection>,
    ) -> (Decision, Contract) {
        let mut decision = self.handle(now, channel, request);
        let contract = self.channel_contract(channel);
        if never_answered(head) {
            decision.reply = Reply::None;
        } else if contract == Contract::Dpdk {
            decision.reply = match (dpdk_reply(head), decision.reply) {
                (DpdkReply::Verdict, reply @ (Reply::Verdict(_) | Reply::Hello(_))) => reply,
                (DpdkReply::ListIfAnswered, reply @ (Reply::FreqList(_) | Reply::Caps(_))) => reply,
                _ => Reply::None,
            };
        }
        (decision, contract)
    }

    /// A new connection on `channel`: DPDK's contract until its guest
    /// asks for another.
    pub fn channel_connected(&mut self, channel: &ChannelId) {
        if let Some(state) = self.channels.get_mut(channel) {
            state.contract = Contract::Dpdk;
        }
    }

    /// The reply contract `channel` is on.
    pub fn channel_contract(&self, channel: &ChannelId) -> Contract {
        self.channels
            .get(channel)
            .map_or(Contract::Dpdk, |c| c.contract)
    }
}

impl Decision {
    /// Why a NACK of this decision refuses (the first rejection noted);
    /// `None` when nothing was refused (a NACK then means a write failed).
    pub fn nack_reason(&self) -> Option<NackReason> {
        self.notes.iter().find_map(|n| match n {
            Note::Rejected(r) => Some(r.nack_reason()),
            _ => None,
        })
    }
}
