//! SYN cookies for MP_CAPABLE (RFC 8684 §3.1): the server's SYN/ACK built without
//! keeping the connection, and the step that completes a connection rebuilt at the
//! ACK. RFC 8684 makes this possible: the third ACK, and the client's first data
//! when that ACK is lost, carry both keys, so the server needs nothing from the SYN
//! that the cookie cannot carry. The endpoint owns the cookie and derives our key from
//! it (`endpoint/cookie.rs`), so the key sent here is the key rebuilt there.

use core::net::SocketAddr;

use crate::crypto::MptcpKey;
use crate::mptcp::config::MptcpConfig;
use crate::mptcp::connection::{AcceptError, MptcpConnection, Role};
use crate::mptcp::handshake::{MPTCP_VERSION, SynKind, classify_syn};
use crate::seq::SeqNum;
use crate::tcp::TcpConnection;
use crate::time::Instant;
use crate::wire::mptcp::{CapableFlags, MpCapable, MpCapableKeys, MptcpOption};
use crate::wire::tcp::TcpRepr;

/// The flags of the MP_CAPABLE on the initial subflow's SYN or SYN/ACK: H always
/// (HMAC-SHA256, the only v1 algorithm), A when checksums are in use, C when the
/// server does not accept joins to its initial address.
pub(crate) fn capable_flags_for(checksums: bool, deny_join: bool, role: Role) -> CapableFlags {
    let mut flags = CapableFlags::HMAC_SHA256;
    if checksums {
        flags = flags.union(CapableFlags::CHECKSUM);
    }
    if deny_join && role == Role::Server {
        flags = flags.union(CapableFlags::NO_MORE_SUBFLOWS);
    }
    flags
}

impl MptcpConnection {
    /// The SYN/ACK that [`MptcpConnection::accept_with_key`] with these arguments
    /// sends, built without keeping anything: TCP's cookie SYN-ACK plus MP_CAPABLE
    /// with `key`.
    pub fn stateless_syn_ack(
        config: &MptcpConfig,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr<'_>,
        iss: SeqNum,
        key: MptcpKey,
    ) -> Result<TcpRepr<'static>, AcceptError> {
        let SynKind::Capable { checksums: peer_a } = classify_syn(syn) else {
            return Err(AcceptError::NotMpCapable);
        };
        let tcp_config = Self::subflow_tcp_config(config);
        let mut segment =
            TcpConnection::stateless_syn_ack(tcp_config, local, remote, syn, now, iss)?;
        // RFC 8684 §3.1: checksums are used when either side sets flag A.
        let checksums = config.checksums || peer_a;
        segment
            .options
            .mptcp
            .push(MptcpOption::MpCapable(MpCapable {
                version: MPTCP_VERSION,
                flags: capable_flags_for(
                    checksums,
                    config.deny_join_to_initial_address,
                    Role::Server,
                ),
                keys: MpCapableKeys::Sender { sender: key },
            }));
        Ok(segment)
    }

    /// For a connection rebuilt from a cookie by [`MptcpConnection::accept_with_key`]:
    /// its SYN/ACK already went out; see
    /// [`TcpConnection::syn_ack_sent_statelessly`].
    pub fn syn_ack_sent_statelessly(&mut self, now: Instant, tsecr: Option<u32>) {
        if let Some(initial) = self.subflows.first_mut() {
            initial.tcp.syn_ack_sent_statelessly(now, tsecr);
        }
    }
}
