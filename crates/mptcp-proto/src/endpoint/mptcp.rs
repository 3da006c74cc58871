//! MPTCP in the endpoint: opening MPTCP connections, the token table, MP_JOIN SYNs
//! routed by token (RFC 8684 §3.2), the subflows a connection asks for, and the
//! connection-level events and path events.
//!
//! SYN cookies for MP_CAPABLE (no state between the SYN and the third ACK or first
//! data) live in `cookie.rs`.

use core::net::{IpAddr, SocketAddr};

use crate::mptcp::{
    ConnAction, ConnStats, JoinRefusal, MptcpConfig, MptcpConnection, MptcpEvent, SubflowId,
};
use crate::tcp::Pacing;
use crate::time::Instant;
use crate::wire::IpTcpRepr;
use crate::wire::mptcp::{TcpRstFlags, TcpRstReason};

use super::conn::Conn;
use super::slab::Key;
use super::{ConnHandle, DropReason, Endpoint, EndpointError, FourTuple, is_unicast, normalize};

impl Endpoint {
    /// Opens an MPTCP connection from `local` (port 0: ephemeral) to `remote`: the
    /// initial subflow's SYN carries MP_CAPABLE. `extra_locals` are our other
    /// addresses; once MPTCP is established, subflows join from each of them to every
    /// known peer address (full mesh). Settings come from
    /// [`super::EndpointConfig::mptcp`], or the defaults.
    pub fn connect_mptcp(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        extra_locals: &[IpAddr],
    ) -> Result<ConnHandle, EndpointError> {
        self.now = self.now.max(now);
        let (local, remote) = (normalize(local), normalize(remote));
        if local.is_ipv4() != remote.is_ipv4() {
            return Err(EndpointError::AddressFamilyMismatch { local, remote });
        }
        if !is_unicast(local.ip()) {
            return Err(EndpointError::InvalidLocal(local));
        }
        if !is_unicast(remote.ip()) || remote.port() == 0 {
            return Err(EndpointError::InvalidRemote(remote));
        }
        let limit = self.config.max_connections;
        if self.conns.len() >= limit {
            return Err(EndpointError::TooManyConnections { limit });
        }
        let local = self.resolve_local(local, remote)?;
        let tuple = FourTuple { local, remote };
        if self.by_tuple.contains_key(&tuple) {
            return Err(EndpointError::TupleInUse { local, remote });
        }
        let iss = self.isn.isn(local, remote, now);
        let config = self.config.mptcp.clone().unwrap_or_default();
        let (tokens, shard) = (&self.tokens, self.config.shard);
        let conn = MptcpConnection::connect(
            config,
            now,
            local,
            remote,
            extra_locals,
            iss,
            &mut self.rng,
            |t| tokens.contains_key(&t) || shard.is_some_and(|s| !s.owns_token(t)),
        )
        .map_err(|_| EndpointError::TooManyConnections { limit })?;
        let key = self
            .insert(Conn::Mptcp(Box::new(conn)), tuple, None)
            .ok_or(EndpointError::TooManyConnections { limit })?;
        self.stats.connections_opened += 1;
        tracing::debug!(%local, %remote, handle = %ConnHandle(key), "connect (MPTCP)");
        Ok(ConnHandle(key))
    }

    /// The next MPTCP-specific event (subflow up/down, addresses, fallback, and the
    /// connection's close reason). The generic ones (connected, readable, writable,
    /// peer closed, closed) come through [`Endpoint::poll_event`] as for TCP.
    pub fn poll_mptcp_event(&mut self) -> Option<(ConnHandle, MptcpEvent)> {
        self.mptcp_events.pop_front()
    }

    /// The MPTCP connection behind a handle, for inspection.
    pub fn mptcp(&self, conn: ConnHandle) -> Result<&MptcpConnection, EndpointError> {
        match &self.entry(conn)?.conn {
            Conn::Mptcp(c) => Ok(c),
            Conn::Tcp(_) => Err(EndpointError::UnknownConnection(conn)),
        }
    }

    /// Connection-level and per-subflow statistics of an MPTCP connection.
    pub fn mptcp_stats(&self, conn: ConnHandle) -> Result<ConnStats, EndpointError> {
        Ok(self.mptcp(conn)?.stats())
    }

    /// Whether a connection is MPTCP (possibly fallen back to TCP).
    pub fn is_mptcp(&self, conn: ConnHandle) -> Result<bool, EndpointError> {
        Ok(matches!(self.entry(conn)?.conn, Conn::Mptcp(_)))
    }

    /// A local address appeared (a path event): every MPTCP connection may use it
    /// (joins from it, or an announcement, by its path manager's policy).
    pub fn add_local_address(&mut self, now: Instant, addr: IpAddr) {
        self.now = self.now.max(now);
        for key in self.mptcp_keys() {
            if let Some(entry) = self.conns.get_mut(key)
                && let Conn::Mptcp(c) = &mut entry.conn
                && let Err(err) = c.add_local_address(now, addr)
            {
                tracing::debug!(%err, %addr, "address not added to a connection");
            }
            self.touched(key);
        }
    }

    /// A local address for one connection only (a server announcing its other
    /// addresses on each new connection, RFC 8684 §3.4.1): joins from it or an
    /// ADD_ADDR for it, by the connection's path-manager policy. Before MPTCP is
    /// established it is kept and added then.
    pub fn add_connection_address(
        &mut self,
        conn: ConnHandle,
        now: Instant,
        addr: IpAddr,
    ) -> Result<(), EndpointError> {
        self.now = self.now.max(now);
        let entry = self.entry_mut(conn)?;
        let Conn::Mptcp(c) = &mut entry.conn else {
            return Err(EndpointError::UnknownConnection(conn));
        };
        if let Err(err) = c.add_local_address(now, addr) {
            tracing::debug!(%err, %addr, "address not added to the connection");
        }
        self.touched(conn.0);
        Ok(())
    }

    /// A local address disappeared: its subflows close and it is withdrawn.
    pub fn remove_local_address(&mut self, now: Instant, addr: IpAddr) {
        self.now = self.now.max(now);
        for key in self.mptcp_keys() {
            if let Some(entry) = self.conns.get_mut(key)
                && let Conn::Mptcp(c) = &mut entry.conn
                && let Err(err) = c.remove_local_address(addr)
            {
                tracing::debug!(%err, %addr, "address not removed from a connection");
            }
            self.touched(key);
        }
    }

    /// Changes our backup wish for one subflow (MP_PRIO, RFC 8684 §3.3.8).
    pub fn set_subflow_backup(
        &mut self,
        conn: ConnHandle,
        subflow: SubflowId,
        backup: bool,
    ) -> Result<bool, EndpointError> {
        let entry = self.entry_mut(conn)?;
        let Conn::Mptcp(c) = &mut entry.conn else {
            return Err(EndpointError::UnknownConnection(conn));
        };
        let found = c.set_subflow_backup(subflow, backup);
        self.touched(conn.0);
        Ok(found)
    }

    /// Turns pacing on or off for one subflow of an MPTCP connection
    /// ([`crate::tcp::TcpConfig::pacing`]); [`Endpoint::set_pacing`] does a whole
    /// connection. False when the connection has no such subflow.
    pub fn set_subflow_pacing(
        &mut self,
        conn: ConnHandle,
        subflow: SubflowId,
        pacing: Option<Pacing>,
    ) -> Result<bool, EndpointError> {
        let entry = self.entry_mut(conn)?;
        let Conn::Mptcp(c) = &mut entry.conn else {
            return Err(EndpointError::UnknownConnection(conn));
        };
        let found = c.set_subflow_pacing(subflow, pacing);
        self.touched(conn.0);
        Ok(found)
    }

    fn mptcp_keys(&self) -> Vec<Key> {
        self.tokens.values().copied().collect()
    }

    /// The settings MPTCP listeners use, when MPTCP is enabled for them.
    pub(super) fn mptcp_listen_config(&self) -> Option<MptcpConfig> {
        self.config.mptcp.clone()
    }

    /// Does what a connection asked for: open joins, forget removed subflows.
    pub(super) fn mptcp_actions(&mut self, key: Key) {
        loop {
            let Some(entry) = self.conns.get_mut(key) else {
                return;
            };
            let Conn::Mptcp(c) = &mut entry.conn else {
                return;
            };
            let Some(action) = c.poll_action() else {
                return;
            };
            match action {
                ConnAction::OpenSubflow {
                    local,
                    remote,
                    local_id,
                    remote_id,
                    backup,
                } => {
                    let local = match self.resolve_local(SocketAddr::new(local, 0), remote) {
                        Ok(local) => local,
                        Err(err) => {
                            tracing::debug!(%err, "no port for a new subflow");
                            continue;
                        }
                    };
                    let tuple = FourTuple { local, remote };
                    if self.by_tuple.contains_key(&tuple) {
                        continue;
                    }
                    let iss = self.isn.isn(local, remote, self.now);
                    let now = self.now;
                    let Some(entry) = self.conns.get_mut(key) else {
                        return;
                    };
                    let Conn::Mptcp(c) = &mut entry.conn else {
                        return;
                    };
                    c.open_subflow(
                        now,
                        local,
                        remote,
                        local_id,
                        remote_id,
                        backup,
                        iss,
                        &mut self.rng,
                    );
                    entry.subflow_tuples.push(tuple);
                    self.by_tuple.insert(tuple, key);
                    if !entry.in_transmit_queue {
                        entry.in_transmit_queue = true;
                        self.transmit_queue.push_back(key);
                    }
                }
                ConnAction::SubflowRemoved { local, remote, .. } => {
                    let tuple = FourTuple { local, remote };
                    entry.subflow_tuples.retain(|t| *t != tuple);
                    // The initial tuple stays until the connection closes (a late
                    // segment on it meets the connection, not a listener).
                    if tuple != entry.tuple && self.by_tuple.get(&tuple) == Some(&key) {
                        self.by_tuple.remove(&tuple);
                    }
                }
            }
        }
    }

    /// A segment for an MPTCP connection: to its subflow on this 4-tuple.
    pub(super) fn mptcp_input(
        &mut self,
        now: Instant,
        key: Key,
        tuple: FourTuple,
        packet: &IpTcpRepr<'_>,
    ) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let Conn::Mptcp(c) = &mut entry.conn else {
            return;
        };
        match c.subflow_for(tuple.local, tuple.remote) {
            Some(id) => c.handle_segment(now, id, &packet.tcp),
            None => {
                // A subflow that is gone: answer as CLOSED would.
                if !packet.tcp.flags.rst() {
                    self.queue_reset(packet);
                }
            }
        }
        self.touched(key);
    }

    /// An MP_JOIN SYN for the connection with its token (RFC 8684 §3.2).
    pub(super) fn join_input(
        &mut self,
        now: Instant,
        key: Key,
        tuple: FourTuple,
        packet: &IpTcpRepr<'_>,
    ) -> Result<(), DropReason> {
        let iss = self.isn.isn(tuple.local, tuple.remote, now);
        let Some(entry) = self.conns.get_mut(key) else {
            return Err(self.refuse_join(packet, TcpRstReason::MPTCP_ERROR));
        };
        let Conn::Mptcp(c) = &mut entry.conn else {
            return Err(self.refuse_join(packet, TcpRstReason::MPTCP_ERROR));
        };
        match c.accept_join(
            now,
            tuple.local,
            tuple.remote,
            &packet.tcp,
            iss,
            &mut self.rng,
        ) {
            Ok(_) => {
                entry.subflow_tuples.push(tuple);
                self.by_tuple.insert(tuple, key);
                self.touched(key);
                Ok(())
            }
            Err(refusal) => {
                tracing::debug!(%refusal, "MP_JOIN refused");
                let reason = refusal.reason();
                self.refuse_join(packet, reason);
                Err(self.drop(match refusal {
                    JoinRefusal::WrongToken { .. } => DropReason::UnknownToken,
                    JoinRefusal::NotEstablished
                    | JoinRefusal::TooManySubflows
                    | JoinRefusal::NotAJoin => DropReason::JoinRefused,
                }))
            }
        }
    }

    /// Answers a refused MP_JOIN SYN: a RST carrying MP_TCPRST (RFC 8684 §3.6).
    pub(super) fn refuse_join(
        &mut self,
        packet: &IpTcpRepr<'_>,
        reason: TcpRstReason,
    ) -> DropReason {
        self.refuse_with(packet, reason, TcpRstFlags::default());
        DropReason::UnknownToken
    }

    /// A SYN with MP_CAPABLE to a listener, MPTCP enabled: a new MPTCP connection.
    /// `Ok(None)` means the SYN is not MPTCP v1 and plain TCP applies.
    pub(super) fn mptcp_accept(
        &mut self,
        now: Instant,
        config: MptcpConfig,
        tuple: FourTuple,
        packet: &IpTcpRepr<'_>,
        listener: Key,
    ) -> Result<Option<Key>, DropReason> {
        let iss = self.isn.isn(tuple.local, tuple.remote, now);
        let (tokens, shard) = (&self.tokens, self.config.shard);
        let mut conn = match MptcpConnection::accept(
            config,
            now,
            tuple.local,
            tuple.remote,
            &packet.tcp,
            iss,
            &mut self.rng,
            |t| tokens.contains_key(&t) || shard.is_some_and(|s| !s.owns_token(t)),
        ) {
            Ok(conn) => conn,
            Err(crate::mptcp::AcceptError::NotMpCapable) => return Ok(None),
            Err(err) => {
                tracing::trace!(%err, "MPTCP SYN refused");
                return Err(self.drop(DropReason::InvalidSyn));
            }
        };
        // The connection knows only the address the SYN came to; our other configured
        // addresses are for its path manager to announce (ADD_ADDR, RFC 8684 §3.4.1)
        // once it is established. Without this an accepted connection never learns
        // them and a client with a single address gets a single path.
        for &addr in &self.config.local_addrs {
            if addr != tuple.local.ip()
                && let Err(err) = conn.add_local_address(now, addr)
            {
                tracing::debug!(%err, %addr, "address not given to an accepted connection");
            }
        }
        match self.insert(Conn::Mptcp(Box::new(conn)), tuple, Some(listener)) {
            Some(key) => Ok(Some(key)),
            None => Err(self.drop(DropReason::TableFull)),
        }
    }
}
