//! Incoming packets: parsing, address checks, demultiplexing to a connection or a
//! listener, and the answers for segments that reach neither (RFC 9293 §3.10.7.1-2).
//!
//! `route` is the one place that decides where a segment goes; MPTCP adds its cases
//! there (MP_JOIN SYN by token to an existing connection, MP_CAPABLE SYN to a listener
//! creating an MPTCP connection, SYN cookies when a backlog is full).

use core::net::SocketAddr;

use crate::mptcp::{SynKind, classify_syn};
use crate::tcp::{TcpSocket, reset_for};
use crate::time::Instant;
use crate::wire::ipv4::Ipv4Error;
use crate::wire::ipv6::Ipv6Error;
use crate::wire::tcp::TcpError;
use crate::wire::tcp::TcpRepr;
use crate::wire::{IpTcpRepr, PacketError};

use super::conn::Conn;
use super::slab::Key;
use super::{
    ConnHandle, DropReason, Endpoint, FourTuple, PendingReset, SynCookies, ip_header, is_unicast,
    unspecified,
};

/// Where an incoming segment goes.
enum Route {
    Connection(Key),
    /// An MP_JOIN SYN for the MPTCP connection with that token.
    Join(Key),
    /// An MP_JOIN SYN naming a token nobody has.
    UnknownToken,
    Listener(Key),
    Nothing,
}

impl Endpoint {
    /// Processes one IP packet. Returns why the endpoint dropped it, if it did (a RST
    /// may still have been queued in answer); segments handed to a connection return
    /// `Ok` whatever the connection makes of them. Never panics on any input, and
    /// creates state only for a valid SYN to a listener.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) -> Result<(), DropReason> {
        self.input(now, packet, true)
    }

    /// [`Endpoint::handle_packet`] for a packet whose checksums the device vouches for:
    /// it verified them (virtio_net_hdr `DATA_VALID`), or the packet never left the
    /// machine and its TCP checksum field holds only the pseudo-header sum
    /// (`NEEDS_CSUM`, a partial checksum that would fail verification). The packet may
    /// be a GRO/GSO super-segment: any payload size the IP length allows.
    pub fn handle_packet_trusted(&mut self, now: Instant, packet: &[u8]) -> Result<(), DropReason> {
        self.input(now, packet, false)
    }

    fn input(
        &mut self,
        now: Instant,
        packet: &[u8],
        verify_checksums: bool,
    ) -> Result<(), DropReason> {
        self.now = self.now.max(now);
        self.stats.packets_in += 1;
        self.stats.bytes_in += packet.len() as u64;
        let parsed = match IpTcpRepr::parse(packet, verify_checksums) {
            Ok(parsed) => parsed,
            Err(err) => {
                tracing::trace!(%err, "endpoint drop");
                return Err(self.drop(classify(&err)));
            }
        };
        let (src, dst) = (parsed.ip.src_addr(), parsed.ip.dst_addr());
        // RFC 1122 §4.2.3.10 / RFC 9293 §3.10.7.2: segments to or from broadcast and
        // multicast addresses are discarded silently (never answered with a RST).
        if !is_unicast(src) || !is_unicast(dst) {
            return Err(self.drop(DropReason::InvalidAddress));
        }
        if !self.config.local_addrs.is_empty() && !self.config.local_addrs.contains(&dst) {
            return Err(self.drop(DropReason::NotForUs));
        }
        let tuple = FourTuple {
            local: SocketAddr::new(dst, parsed.tcp.dst_port),
            remote: SocketAddr::new(src, parsed.tcp.src_port),
        };
        match self.route(&tuple, &parsed.tcp) {
            Route::Connection(key) => {
                let entry = self
                    .conns
                    .get_mut(key)
                    .expect("the 4-tuple index names live connections");
                match &mut entry.conn {
                    Conn::Tcp(socket) => {
                        if let Err(reason) = socket.handle_segment(now, &parsed.tcp) {
                            tracing::trace!(%reason, handle = %ConnHandle(key), "segment dropped by connection");
                        }
                        self.touched(key);
                    }
                    Conn::Mptcp(_) => self.mptcp_input(now, key, tuple, &parsed),
                }
                Ok(())
            }
            Route::Join(key) => self.join_input(now, key, tuple, &parsed),
            Route::UnknownToken => {
                // RFC 8684 §3.2: an unknown token gets a RST (with MP_TCPRST).
                self.refuse_join(&parsed, crate::wire::mptcp::TcpRstReason::MPTCP_ERROR);
                Err(self.drop(DropReason::UnknownToken))
            }
            Route::Listener(listener) => self.listener_input(now, listener, tuple, &parsed),
            Route::Nothing => Err(self.closed_input(&parsed)),
        }
    }

    /// Demultiplexing: the connection on this 4-tuple, else a listener on the local
    /// address (specific before unspecified), else nothing.
    fn route(&self, tuple: &FourTuple, tcp: &TcpRepr<'_>) -> Route {
        if let Some(&key) = self.by_tuple.get(tuple) {
            return Route::Connection(key);
        }
        if tcp.flags.syn()
            && !tcp.flags.ack()
            && !tcp.flags.rst()
            && let SynKind::Join { token, .. } = classify_syn(tcp)
        {
            return match self.tokens.get(&token) {
                Some(&key) => Route::Join(key),
                None => Route::UnknownToken,
            };
        }
        let any = SocketAddr::new(unspecified(tuple.local.ip()), tuple.local.port());
        match self
            .listener_by_addr
            .get(&tuple.local)
            .or_else(|| self.listener_by_addr.get(&any))
        {
            Some(&key) => Route::Listener(key),
            None => Route::Nothing,
        }
    }

    /// RFC 9293 §3.10.7.2, a segment for a LISTEN socket.
    fn listener_input(
        &mut self,
        now: Instant,
        listener: Key,
        tuple: FourTuple,
        packet: &IpTcpRepr<'_>,
    ) -> Result<(), DropReason> {
        let f = packet.tcp.flags;
        if f.rst() {
            // "An incoming RST segment could not be valid ... should be ignored."
            return Err(self.drop(DropReason::StrayReset));
        }
        if f.ack() {
            if !f.syn() && self.cookies_active(listener, now) {
                // The third ACK or the first data of a connection answered with a SYN
                // cookie: valid, the connection is rebuilt; else a RST as below.
                return self.cookie_ack(now, listener, tuple, packet);
            }
            // "Any acknowledgment is bad if it arrives on a connection still in the
            // LISTEN state": <SEQ=SEG.ACK><CTL=RST>.
            self.queue_reset(packet);
            return Err(self.drop(DropReason::NoConnection));
        }
        if !f.syn() {
            return Err(self.drop(DropReason::NoSynAtListener));
        }
        let (ready, children) = self.backlog(listener);
        let backlog = self.config.listen_backlog;
        match self.config.syn_cookies {
            SynCookies::Never => {
                if children >= backlog {
                    return Err(self.drop(DropReason::BacklogFull));
                }
            }
            SynCookies::OnOverflow | SynCookies::Always => {
                // A full accept queue drops SYNs even with cookies (Linux does too):
                // a connection rebuilt now would find no room either.
                if ready >= backlog {
                    return Err(self.drop(DropReason::BacklogFull));
                }
                if self.config.syn_cookies == SynCookies::Always || children >= backlog {
                    return self.cookie_syn(now, listener, tuple, packet);
                }
            }
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(self.drop(DropReason::TableFull));
        }
        if let Some(config) = self.mptcp_listen_config()
            && matches!(classify_syn(&packet.tcp), SynKind::Capable { .. })
        {
            // `None`: not MPTCP v1 after all; plain TCP below.
            if let Some(key) = self.mptcp_accept(now, config, tuple, packet, listener)? {
                self.listeners
                    .get_mut(listener)
                    .expect("route names live listeners")
                    .children
                    .insert(key);
                self.stats.connections_accepted += 1;
                tracing::debug!(local = %tuple.local, remote = %tuple.remote, handle = %ConnHandle(key), "MP_CAPABLE SYN accepted");
                return Ok(());
            }
        }
        let iss = self.isn.isn(tuple.local, tuple.remote, now);
        let socket = match TcpSocket::accept(
            self.config.tcp.clone(),
            tuple.local,
            tuple.remote,
            &packet.tcp,
            now,
            iss,
        ) {
            Ok(socket) => socket,
            Err(reason) => {
                tracing::trace!(%reason, "SYN refused");
                return Err(self.drop(DropReason::InvalidSyn));
            }
        };
        let Some(key) = self.insert(Conn::Tcp(socket), tuple, Some(listener)) else {
            return Err(self.drop(DropReason::TableFull));
        };
        self.listeners
            .get_mut(listener)
            .expect("route names live listeners")
            .children
            .insert(key);
        self.stats.connections_accepted += 1;
        tracing::debug!(local = %tuple.local, remote = %tuple.remote, handle = %ConnHandle(key), "SYN accepted");
        Ok(())
    }

    /// RFC 9293 §3.10.7.1, CLOSED: a RST is discarded, anything else answered with a
    /// RST.
    fn closed_input(&mut self, packet: &IpTcpRepr<'_>) -> DropReason {
        let f = packet.tcp.flags;
        if f.rst() {
            return self.drop(DropReason::StrayReset);
        }
        self.queue_reset(packet);
        if f.syn() && !f.ack() {
            self.drop(DropReason::NoListener)
        } else {
            self.drop(DropReason::NoConnection)
        }
    }

    pub(super) fn queue_reset(&mut self, packet: &IpTcpRepr<'_>) {
        let Some(tcp) = reset_for(&packet.tcp) else {
            return;
        };
        if self.resets.len() >= self.config.max_pending_resets {
            self.drop(DropReason::ResetQueueFull);
            return;
        }
        let ip = ip_header(
            packet.ip.dst_addr(),
            packet.ip.src_addr(),
            self.config.hop_limit,
        );
        self.resets.push_back(PendingReset { ip, tcp });
    }
}

/// The drop reason for a parse error.
fn classify(err: &PacketError) -> DropReason {
    match err {
        PacketError::Ipv4(Ipv4Error::Checksum { .. })
        | PacketError::Tcp(TcpError::Checksum { .. }) => DropReason::BadChecksum,
        PacketError::Ipv4(Ipv4Error::Fragment { .. })
        | PacketError::Ipv6(Ipv6Error::Fragment(_)) => DropReason::Fragment,
        PacketError::NotTcp(_) => DropReason::NotTcp,
        PacketError::Empty
        | PacketError::Version(_)
        | PacketError::Ipv4(_)
        | PacketError::Ipv6(_)
        | PacketError::Tcp(_)
        | PacketError::BufferTooShort { .. } => DropReason::Malformed,
    }
}
