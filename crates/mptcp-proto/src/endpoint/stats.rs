//! Endpoint counters: packets and bytes in and out, and every dropped packet counted
//! under the reason it was dropped.

/// Why the endpoint dropped an incoming packet (or an outgoing one it built itself).
/// Segments the endpoint hands to a connection are not counted here: the connection's
/// own [`crate::tcp::TcpStats`] count what it drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum DropReason {
    /// The IP or TCP header did not parse (lengths, version, data offset, options, port 0).
    #[error("malformed IP/TCP packet")]
    Malformed,
    /// The IPv4 header checksum or the TCP checksum is wrong.
    #[error("bad checksum")]
    BadChecksum,
    /// An IPv4 or IPv6 fragment: fragments are not reassembled.
    #[error("IP fragment")]
    Fragment,
    /// The IP payload is not TCP.
    #[error("not TCP")]
    NotTcp,
    /// The destination is not one of the configured local addresses.
    #[error("destination is not a local address")]
    NotForUs,
    /// A broadcast, multicast or unspecified source or destination (RFC 1122
    /// §4.2.3.10: such segments are discarded silently, never answered).
    #[error("broadcast, multicast or unspecified address")]
    InvalidAddress,
    /// A SYN to a port nobody listens on; answered with a RST.
    #[error("no listener; answered with RST")]
    NoListener,
    /// A non-SYN segment for no connection; answered with a RST.
    #[error("no connection; answered with RST")]
    NoConnection,
    /// A RST for no connection (RFC 9293 §3.10.7.1: discarded, never answered).
    #[error("RST for no connection")]
    StrayReset,
    /// A segment to a listener that is neither SYN, ACK nor RST (RFC 9293 §3.10.7.2,
    /// "any other control or text-bearing segment": dropped).
    #[error("segment to a listener without SYN, ACK or RST")]
    NoSynAtListener,
    /// A SYN the TCP engine refused (e.g. SYN with FIN).
    #[error("invalid SYN")]
    InvalidSyn,
    /// A SYN to a listener whose backlog of unaccepted connections is full.
    #[error("listener backlog full")]
    BacklogFull,
    /// A SYN while the connection table is at its configured limit.
    #[error("connection table full")]
    TableFull,
    /// A RST the endpoint would send was dropped because its queue is full.
    #[error("reset queue full")]
    ResetQueueFull,
    /// An outgoing packet did not fit the caller's buffer; retransmission recovers.
    #[error("transmit buffer too small")]
    TransmitBufferTooSmall,
    /// An MP_JOIN SYN naming a token no connection has (RFC 8684 §3.2); answered
    /// with a RST carrying MP_TCPRST.
    #[error("MP_JOIN for an unknown token; answered with RST")]
    UnknownToken,
    /// An MP_JOIN SYN the connection refused (not established, too many subflows);
    /// answered with a RST carrying MP_TCPRST.
    #[error("MP_JOIN refused; answered with RST")]
    JoinRefused,
    /// An ACK to a listener sending SYN cookies whose cookie is invalid or expired;
    /// answered with a RST unless it carries data.
    #[error("invalid or expired SYN cookie")]
    InvalidCookie,
    /// A valid MP_CAPABLE cookie whose derived token another connection took since
    /// the SYN/ACK; answered with a RST carrying MP_TCPRST.
    #[error("SYN cookie's MPTCP token in use; answered with RST")]
    TokenCollision,
    /// A SYN answered with a cookie whose SYN/ACK found its queue full.
    #[error("cookie SYN/ACK queue full")]
    SynAckQueueFull,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 20] = [
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::Fragment,
        DropReason::NotTcp,
        DropReason::NotForUs,
        DropReason::InvalidAddress,
        DropReason::NoListener,
        DropReason::NoConnection,
        DropReason::StrayReset,
        DropReason::NoSynAtListener,
        DropReason::InvalidSyn,
        DropReason::BacklogFull,
        DropReason::TableFull,
        DropReason::ResetQueueFull,
        DropReason::TransmitBufferTooSmall,
        DropReason::UnknownToken,
        DropReason::JoinRefused,
        DropReason::InvalidCookie,
        DropReason::TokenCollision,
        DropReason::SynAckQueueFull,
    ];

    fn index(self) -> usize {
        match self {
            DropReason::Malformed => 0,
            DropReason::BadChecksum => 1,
            DropReason::Fragment => 2,
            DropReason::NotTcp => 3,
            DropReason::NotForUs => 4,
            DropReason::InvalidAddress => 5,
            DropReason::NoListener => 6,
            DropReason::NoConnection => 7,
            DropReason::StrayReset => 8,
            DropReason::NoSynAtListener => 9,
            DropReason::InvalidSyn => 10,
            DropReason::BacklogFull => 11,
            DropReason::TableFull => 12,
            DropReason::ResetQueueFull => 13,
            DropReason::TransmitBufferTooSmall => 14,
            DropReason::UnknownToken => 15,
            DropReason::JoinRefused => 16,
            DropReason::InvalidCookie => 17,
            DropReason::TokenCollision => 18,
            DropReason::SynAckQueueFull => 19,
        }
    }
}

/// Counters for one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Packets given to `handle_packet`, valid or not.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets written by `poll_transmit`.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// RSTs the endpoint sent for segments that matched no connection.
    pub resets_sent: u64,
    /// Connections opened with `connect`.
    pub connections_opened: u64,
    /// Connections created for a SYN to a listener.
    pub connections_accepted: u64,
    /// Connections removed from the table.
    pub connections_removed: u64,
    /// SYNs answered with a SYN cookie (no state kept).
    pub syn_cookies_sent: u64,
    /// Connections rebuilt from a valid cookie.
    pub syn_cookies_accepted: u64,
    /// MP_CAPABLE SYNs answered with plain TCP because the cookie's key had a token in
    /// use.
    pub syn_cookie_token_fallbacks: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl EndpointStats {
    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Packets dropped for any reason.
    pub fn total_dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Every reason with a non-zero count, in [`DropReason::ALL`] order.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .into_iter()
            .map(|r| (r, self.dropped(r)))
            .filter(|&(_, n)| n > 0)
    }

    /// Adds `other`'s counters to these: the figures of several endpoints (shards of
    /// one runtime) as one.
    pub fn merge(&mut self, other: &EndpointStats) {
        let EndpointStats {
            packets_in,
            bytes_in,
            packets_out,
            bytes_out,
            resets_sent,
            connections_opened,
            connections_accepted,
            connections_removed,
            syn_cookies_sent,
            syn_cookies_accepted,
            syn_cookie_token_fallbacks,
            drops,
        } = other;
        self.packets_in += packets_in;
        self.bytes_in += bytes_in;
        self.packets_out += packets_out;
        self.bytes_out += bytes_out;
        self.resets_sent += resets_sent;
        self.connections_opened += connections_opened;
        self.connections_accepted += connections_accepted;
        self.connections_removed += connections_removed;
        self.syn_cookies_sent += syn_cookies_sent;
        self.syn_cookies_accepted += syn_cookies_accepted;
        self.syn_cookie_token_fallbacks += syn_cookie_token_fallbacks;
        for (mine, theirs) in self.drops.iter_mut().zip(drops) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        let slot = &mut self.drops[reason.index()];
        *slot = slot.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_every_counter() {
        let mut a = EndpointStats {
            packets_in: 1,
            ..EndpointStats::default()
        };
        a.count_drop(DropReason::ALL[0]);
        let mut b = a.clone();
        b.resets_sent = 3;
        b.count_drop(DropReason::ALL[1]);
        a.merge(&b);
        assert_eq!((a.packets_in, a.resets_sent), (2, 3));
        assert_eq!(a.dropped(DropReason::ALL[0]), 2);
        assert_eq!(a.dropped(DropReason::ALL[1]), 1);
    }

    #[test]
    fn every_reason_has_its_own_counter() {
        let mut stats = EndpointStats::default();
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i);
            for _ in 0..=i {
                stats.count_drop(reason);
            }
        }
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(stats.dropped(reason), i as u64 + 1);
        }
        assert_eq!(stats.total_dropped(), (1..=20).sum::<u64>());
        assert_eq!(stats.drops().count(), 20);
    }
}
