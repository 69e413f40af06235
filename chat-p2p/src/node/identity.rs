//! Who a frame is from: the claim in its envelope checked against the link it came over, and what
//! traffic the shell could not authenticate means.
//!
//! In a group with a secret every TCP link is authenticated (Noise, `crate::secure`): the shell
//! hands frames over as [`Input::Authenticated`] with the static key of the link's other end, and
//! the coordinator bound each member's ID to its key when it admitted it (`JoinRequest.key`, carried
//! in every `Member`). So a member's ID is taken from a frame only if the frame came over that
//! member's link: a member cannot send as another member, nor as the node it is talking to.
//!
//! | link                              | envelope `from`                  | taken as                          |
//! |-----------------------------------|----------------------------------|-----------------------------------|
//! | any                               | none                             | anonymous (a joiner; a forwarded join request) |
//! | any                               | this node's own ID               | refused                           |
//! | authenticated as key `K`          | a member bound to `K`            | that member                       |
//! | authenticated as key `K`          | a member bound to another key    | refused                           |
//! | authenticated as key `K`          | an ID outside the view           | a stranger with that ID (it holds the secret but no member's identity: answered as today, e.g. `NotMember`) |
//! | plaintext (no secret)             | any other ID                     | that ID: without a secret nothing proves a claim, which is why a node without one stays on loopback unless `--insecure` |
//! | plaintext, at a node with a secret| -                                | refused (the shell never passes one) |
//!
//! A member identified by its authenticated link is answered at the address it was admitted with,
//! whatever address its envelope names (`Envelope.addr` is a claim too).
//!
//! Refused frames are dropped and counted ([`Counters::identity_refused`](super::Counters::identity_refused)); a refused
//! `JoinRequest` is still answered as an anonymous one (a join request claims nothing but a name, an
//! address and a key). A joiner takes a `JoinAck` only over the link of the coordinator it names,
//! listing the joiner under its own key. The other way round, the driver opens a link to a member's
//! address only if it authenticates with that member's key ([`Node::key_at`]; else the link is
//! unreachable and reported [`Untrusted::WrongKey`]).
//!
//! | untrusted traffic ([`Input::Untrusted`])          | joining (never a member yet)          | coordinator                        |
//! |---------------------------------------------------|---------------------------------------|------------------------------------|
//! | another secret, or "a secret is required", from a datagram or a link it dialled | remembered: if no group admits it by the join timeout, it stops with `auth_failed` instead of founding a group | - |
//! | any datagram but a replay                         | -                                     | beacons now (at most once a heartbeat), so such a joiner hears the group at once |
//!
//! Everything is counted ([`Counters::untrusted`](super::Counters::untrusted)).

use std::time::Instant;

use chat_core::{ErrorCode, NodeId};

use super::common::Common;
use super::coordinator::Coordinator;
use super::joining::Joining;
use super::{Channel, Next, Node, Output, Role, Untrusted, Via};
use crate::membership::View;
use crate::protocol::{Envelope, PeerKey, PeerMsg};

impl Common {
    /// Who a frame claiming `claimed` over a link authenticated as `link` (`None`: plaintext) is
    /// from, the members being `view`; `Err` says why the claim is refused.
    pub(super) fn identify(&self, view: &View, link: Option<PeerKey>, claimed: Option<NodeId>) -> Result<Via, String> {
        let Some(claimed) = claimed else { return Ok(Via::Anonymous) };
        if self.id == Some(claimed) {
            return Err(format!("claims this node's own ID {claimed}"));
        }
        match (link, view.get(claimed)) {
            (Some(key), Some(member)) if member.key != Some(key) => {
                Err(format!("claims member {claimed} ({}) over a link authenticated as another key {key}", member.name))
            }
            _ => Ok(Via::Node(claimed)),
        }
    }
}

impl Node {
    /// A frame from a link: plaintext (`link` is `None`) or authenticated as `link`.
    pub(super) fn receive_frame(&mut self, now: Instant, link: Option<PeerKey>, env: Envelope) {
        let Envelope { from, addr, msg } = env;
        if link.is_none() && self.common.cfg.key.is_some() {
            self.common.counters.identity_refused += 1;
            tracing::warn!(%addr, "a plaintext frame at a node with a group secret: dropped");
            return;
        }
        // The coordinator binds keys as it admits (the head of the log); a member as it delivers.
        let view = match &self.role {
            Role::Coordinator(c) => c.head.view(),
            _ => self.common.group.view(),
        };
        let via = match self.common.identify(view, link, from) {
            Ok(via) => via,
            Err(_) if matches!(msg, PeerMsg::JoinRequest { .. }) => Via::Anonymous,
            // A joiner takes the answer to its request by its nonce (and, with a secret, by the
            // link's key): after a partition its old number may be the coordinator's own.
            Err(_)
                if matches!(self.role, Role::Joining(_))
                    && matches!(
                        msg,
                        PeerMsg::JoinAck { .. } | PeerMsg::JoinRefused { .. } | PeerMsg::JoinHold { .. }
                    ) =>
            {
                Via::Anonymous
            }
            Err(reason) => {
                self.common.counters.identity_refused += 1;
                tracing::warn!(me = ?self.common.id, %addr, %reason, "frame refused: its sender is not who its link is");
                return;
            }
        };
        // A member identified by its link is answered where it was admitted, not where its envelope says.
        let addr = match (link, via) {
            (Some(_), Via::Node(id)) => view.get(id).map_or(addr, |m| m.addr),
            _ => addr,
        };
        self.receive(now, via, link, addr, msg);
    }

    /// Traffic the shell could not authenticate.
    pub(super) fn untrusted(&mut self, now: Instant, what: Untrusted, channel: Channel) {
        self.common.counters.untrusted += 1;
        tracing::debug!(me = ?self.common.id, %what, ?channel, "unauthenticated traffic dropped");
        let common = &mut self.common;
        match &mut self.role {
            Role::Joining(j) => j.untrusted(common, what, channel),
            Role::Coordinator(c) => c.untrusted(common, now, what, channel),
            Role::Member(_) | Role::Left => {}
        }
    }
}

impl Joining {
    /// Remembers a sign that the nodes here hold another secret (or need one), if this node was
    /// never a member: it will not found a rival group (see the module documentation).
    pub(super) fn untrusted(&mut self, common: &Common, what: Untrusted, channel: Channel) {
        let foreign = matches!(what, Untrusted::OtherSecret | Untrusted::SecretRequired);
        if foreign && common.id.is_none() && !matches!(channel, Channel::Accepted) && self.foreign.is_none() {
            self.foreign = Some(what);
        }
    }
}

/// A joiner that met only nodes it cannot authenticate: stopped with `auth_failed`.
pub(super) fn refuse_foreign(common: &mut Common, what: Untrusted) -> Next {
    let reason = match what {
        Untrusted::SecretRequired => "the nodes here require a group secret, and this node has none".to_string(),
        _ => "the nodes here hold another group secret: this node cannot join them (check its secret)".to_string(),
    };
    // Reported to the program as the refusal (`Output::Refused`); the log line is for operators.
    tracing::info!(name = %common.cfg.name, %reason, "cannot join");
    common.out.push_back(Output::Refused { code: ErrorCode::AuthFailed, reason });
    Next::Become(Role::Left)
}

impl Coordinator {
    /// Unauthenticated datagrams may come from a joiner with another secret: beacon now (at most
    /// once per heartbeat) so that it learns at once that a group it cannot join is here.
    pub(super) fn untrusted(&mut self, common: &mut Common, now: Instant, what: Untrusted, channel: Channel) {
        if channel != Channel::Datagram || what == Untrusted::Replayed || self.is_syncing() {
            return;
        }
        if self.last_beacon.is_none_or(|at| now >= at + common.cfg.heartbeat) {
            self.beacon(common, now);
        }
    }
}
