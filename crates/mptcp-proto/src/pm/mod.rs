//! The path manager (RFC 8684 §3.4): which addresses a connection knows on each side,
//! which subflows it should have, and the ADD_ADDR / REMOVE_ADDR signalling.
//!
//! It is bookkeeping and policy only, as a pure state machine: the connection reports
//! address events, received ADD_ADDR / REMOVE_ADDR options and subflow lifecycle, and
//! drains [`PmAction`]s (open a subflow, send or echo an ADD_ADDR, send REMOVE_ADDR,
//! close subflows). It must not open sockets, build options (HMACs are the connection's
//! job) or read a clock: time comes in as [`Instant`].
//!
//! The policy is full mesh (Linux's `fullmesh`, the CAIA stack's only policy): one
//! subflow per (local address, remote address) pair of the same IP family, up to a
//! subflow limit. Every iteration runs in address-id order, so the same inputs give the
//! same actions on every run.

use core::net::{IpAddr, SocketAddr};
use std::collections::{BTreeMap, VecDeque};

use arrayvec::ArrayVec;
use tracing::debug;

use crate::time::{Duration, Instant};
pub use crate::wire::mptcp::AddrId;

/// Path manager settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmConfig {
    /// Most subflows per connection, the initial one included. Linux caps at 8
    /// (MPTCP_SUBFLOWS_MAX).
    pub max_subflows: usize,
    /// Open subflows to the mesh (usually the client). Linux: `subflow` endpoints.
    pub open_subflows: bool,
    /// Announce local addresses with ADD_ADDR (usually the server). Linux: `signal`
    /// endpoints.
    pub announce: bool,
    /// Longest wait before an unechoed ADD_ADDR is sent again. The wait is the
    /// connection's retransmission timeout ([`PathManager::set_rto`]), doubled per
    /// retransmission, and at most this. Linux's `add_addr_timeout` (120 s,
    /// TCP_RTO_MAX) is such a maximum since Linux 6.18, which waits for the largest
    /// subflow RTO; a fixed 120 s left connections shorter than that with no repeat.
    pub add_addr_timeout: Duration,
    /// Retransmissions of an ADD_ADDR before giving up. Linux: ADD_ADDR_RETRANS_MAX = 3.
    pub add_addr_retransmits: u32,
}

impl Default for PmConfig {
    fn default() -> Self {
        PmConfig {
            max_subflows: 8,
            open_subflows: true,
            announce: false,
            add_addr_timeout: Duration::from_secs(120),
            add_addr_retransmits: 3,
        }
    }
}

/// One of our addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalAddr {
    pub id: AddrId,
    pub addr: IpAddr,
    /// A port to announce with the address (a listener other than the initial one's).
    pub port: Option<u16>,
    /// Subflows from this address join as backups (MP_JOIN B flag, RFC 8684 §3.3.8).
    pub backup: bool,
}

/// One of the peer's addresses: id 0 is the initial subflow's, the others came in
/// ADD_ADDR (without a port, the initial subflow's port applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr {
    pub id: AddrId,
    pub addr: SocketAddr,
}

/// Which side an address id belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrSide {
    Local,
    Remote,
}

/// What the connection must do for the path manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmAction {
    /// Open a subflow with MP_JOIN from `local` to `remote`.
    OpenSubflow {
        local_id: AddrId,
        local: IpAddr,
        remote_id: AddrId,
        remote: SocketAddr,
        backup: bool,
    },
    /// Announce a local address (ADD_ADDR with HMAC, E = 0).
    SendAddAddr {
        id: AddrId,
        addr: IpAddr,
        port: Option<u16>,
    },
    /// Echo a received announcement (ADD_ADDR with E = 1, no HMAC; RFC 8684 §3.4.1).
    EchoAddAddr {
        id: AddrId,
        addr: IpAddr,
        port: Option<u16>,
    },
    /// Withdraw a local address (REMOVE_ADDR, §3.4.2).
    SendRemoveAddr { id: AddrId },
    /// Close every subflow using address `id` on `side` (RST with MP_TCPRST or FIN; the
    /// address is gone).
    CloseSubflows { side: AddrSide, id: AddrId },
    /// An announcement was never echoed after all retransmissions (the path manager
    /// then opens subflows from that address itself, see
    /// [`PathManager::handle_timeout`]).
    AddAddrGaveUp { id: AddrId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PmError {
    #[error("all 255 local address ids are in use")]
    AddrIdsExhausted,
    #[error("local address {0} is already known")]
    DuplicateAddress(IpAddr),
    #[error("no local address with id {0}")]
    UnknownAddrId(u8),
}

/// A subflow's state as far as the mesh is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PairState {
    /// Asked for with [`PmAction::OpenSubflow`], handshake not done.
    Opening,
    Established,
    /// Closed for a reason other than an address removal: not reopened until one of
    /// its addresses is announced or added again (RFC 8684 §3.4.1: after an
    /// unsuccessful attempt, no further attempts to that address).
    Failed,
}

/// An ADD_ADDR waiting for its echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Announcement {
    addr: IpAddr,
    port: Option<u16>,
    /// Transmissions so far.
    sent: u32,
    /// When it was last sent: the next transmission (or giving up) is one echo
    /// timeout later ([`echo_timeout`]), with the RTO known at that time.
    last_sent: Instant,
}

/// Path manager state of one connection.
///
/// ```
/// use core::net::{IpAddr, SocketAddr};
/// use mptcp_proto::Instant;
/// use mptcp_proto::pm::{AddrId, PathManager, PmAction, PmConfig};
///
/// let local: IpAddr = "10.0.0.1".parse().unwrap();
/// let server: SocketAddr = "10.9.0.1:443".parse().unwrap();
/// let mut pm = PathManager::new(PmConfig::default(), local, server, false);
/// pm.on_add_addr(AddrId(1), "10.9.1.1".parse().unwrap(), None);
/// assert!(matches!(pm.poll_action(), Some(PmAction::EchoAddAddr { .. })));
/// assert_eq!(
///     pm.poll_action(),
///     Some(PmAction::OpenSubflow {
///         local_id: AddrId(0), local, remote_id: AddrId(1),
///         remote: "10.9.1.1:443".parse().unwrap(), backup: false,
///     })
/// );
/// ```
#[derive(Clone, Debug)]
pub struct PathManager {
    config: PmConfig,
    locals: BTreeMap<AddrId, LocalAddr>,
    remotes: BTreeMap<AddrId, RemoteAddr>,
    pairs: BTreeMap<(AddrId, AddrId), PairState>,
    announcements: BTreeMap<AddrId, Announcement>,
    /// The peer set MP_CAPABLE flag C: no subflows to its initial address (§3.1).
    peer_denies_initial: bool,
    /// The connection's retransmission timeout, the first wait for an echo.
    rto: Option<Duration>,
    actions: VecDeque<PmAction>,
}

impl PathManager {
    /// A connection whose initial subflow runs from `local` to `remote` (address id 0 on
    /// both sides). `peer_c_flag`: the peer's MP_CAPABLE had flag C.
    pub fn new(config: PmConfig, local: IpAddr, remote: SocketAddr, peer_c_flag: bool) -> Self {
        let id0 = AddrId(0);
        PathManager {
            config,
            locals: BTreeMap::from([(
                id0,
                LocalAddr {
                    id: id0,
                    addr: local,
                    port: None,
                    backup: false,
                },
            )]),
            remotes: BTreeMap::from([(
                id0,
                RemoteAddr {
                    id: id0,
                    addr: remote,
                },
            )]),
            pairs: BTreeMap::from([((id0, id0), PairState::Established)]),
            announcements: BTreeMap::new(),
            peer_denies_initial: peer_c_flag,
            rto: None,
            actions: VecDeque::new(),
        }
    }

    pub fn local_addrs(&self) -> impl Iterator<Item = &LocalAddr> + '_ {
        self.locals.values()
    }

    pub fn remote_addrs(&self) -> impl Iterator<Item = &RemoteAddr> + '_ {
        self.remotes.values()
    }

    /// The connection's current retransmission timeout (RFC 6298): the wait for an
    /// ADD_ADDR echo before the first retransmission. It applies to announcements
    /// already waiting too (the first ones go out before any RTT is measured).
    pub fn set_rto(&mut self, rto: Duration) {
        self.rto = Some(rto);
    }

    /// The wait after an announcement's `sent`-th transmission: the RTO doubled per
    /// retransmission (like a TCP segment's), at most `add_addr_timeout`.
    fn echo_timeout(&self, sent: u32) -> Duration {
        echo_timeout(self.config.add_addr_timeout, self.rto, sent)
    }

    /// The paths are in trouble (a subflow went stale or down, RFC 8684 §3.3.6): every
    /// announcement still unechoed goes out again now, with a fresh retransmission
    /// budget. The copy sent before may have left on the failing path, and the peer
    /// may need the address to survive the failure; the connection puts it on a
    /// healthy subflow.
    pub fn resend_unechoed(&mut self, now: Instant) {
        for (&id, a) in &mut self.announcements {
            a.sent = 1;
            a.last_sent = now;
            self.actions.push_back(PmAction::SendAddAddr {
                id,
                addr: a.addr,
                port: a.port,
            });
        }
    }

    /// The next action, oldest first.
    pub fn poll_action(&mut self) -> Option<PmAction> {
        self.actions.pop_front()
    }

    /// When [`PathManager::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.announcements
            .values()
            .map(|a| a.last_sent + self.echo_timeout(a.sent))
            .min()
    }

    /// A local address appeared. It gets the lowest free id, is announced if so
    /// configured, and joins the mesh.
    pub fn add_local_addr(
        &mut self,
        now: Instant,
        addr: IpAddr,
        port: Option<u16>,
        backup: bool,
    ) -> Result<AddrId, PmError> {
        if self.locals.values().any(|l| l.addr == addr) {
            return Err(PmError::DuplicateAddress(addr));
        }
        let id = (1..=u8::MAX)
            .map(AddrId)
            .find(|id| !self.locals.contains_key(id))
            .ok_or(PmError::AddrIdsExhausted)?;
        self.locals.insert(
            id,
            LocalAddr {
                id,
                addr,
                port,
                backup,
            },
        );
        // A returning address may be tried again.
        self.pairs
            .retain(|&(l, _), state| l != id || *state != PairState::Failed);
        if self.config.announce {
            self.actions
                .push_back(PmAction::SendAddAddr { id, addr, port });
            self.announcements.insert(
                id,
                Announcement {
                    addr,
                    port,
                    sent: 1,
                    last_sent: now,
                },
            );
        }
        self.mesh();
        Ok(id)
    }

    /// A local address disappeared: withdraw it and close its subflows.
    pub fn remove_local_addr(&mut self, id: AddrId) -> Result<(), PmError> {
        if self.locals.remove(&id).is_none() {
            return Err(PmError::UnknownAddrId(id.0));
        }
        self.announcements.remove(&id);
        self.pairs.retain(|&(l, _), _| l != id);
        self.actions.push_back(PmAction::SendRemoveAddr { id });
        self.actions.push_back(PmAction::CloseSubflows {
            side: AddrSide::Local,
            id,
        });
        self.mesh();
        Ok(())
    }

    /// A valid ADD_ADDR (HMAC already checked; RFC 8684 §3.4.1). Always echoed. An id
    /// already known with another address is taken as the peer moving that id: the old
    /// address's subflows close.
    pub fn on_add_addr(&mut self, id: AddrId, addr: IpAddr, port: Option<u16>) {
        self.actions
            .push_back(PmAction::EchoAddAddr { id, addr, port });
        let port = port.unwrap_or_else(|| self.initial_remote_port());
        let remote = SocketAddr::new(addr, port);
        match self.remotes.get(&id) {
            Some(known) if known.addr == remote => return,
            Some(known) => {
                debug!(?id, old = %known.addr, new = %remote, "peer re-announced an address id");
                self.drop_remote(id);
            }
            None => {}
        }
        self.remotes.insert(id, RemoteAddr { id, addr: remote });
        self.pairs
            .retain(|&(_, r), state| r != id || *state != PairState::Failed);
        self.mesh();
    }

    /// An ADD_ADDR echo (E = 1): stop retransmitting the matching announcement.
    pub fn on_add_addr_echo(&mut self, id: AddrId, addr: IpAddr, port: Option<u16>) {
        if self
            .announcements
            .get(&id)
            .is_some_and(|a| a.addr == addr && a.port == port)
        {
            self.announcements.remove(&id);
        }
    }

    /// A REMOVE_ADDR (§3.4.2): forget the ids and close the subflows using them. Unknown
    /// ids are ignored.
    pub fn on_remove_addr(&mut self, ids: impl IntoIterator<Item = AddrId>) {
        for id in ids {
            if self.remotes.contains_key(&id) {
                self.drop_remote(id);
            }
        }
        self.mesh();
    }

    fn drop_remote(&mut self, id: AddrId) {
        self.remotes.remove(&id);
        self.pairs.retain(|&(_, r), _| r != id);
        self.actions.push_back(PmAction::CloseSubflows {
            side: AddrSide::Remote,
            id,
        });
    }

    /// A subflow between these address ids finished its handshake (one we opened, or a
    /// join from the peer).
    pub fn on_subflow_established(&mut self, local_id: AddrId, remote_id: AddrId) {
        self.pairs
            .insert((local_id, remote_id), PairState::Established);
    }

    /// A subflow closed or failed to open. Not reopened until an address of the pair is
    /// added or announced again; the freed slot may go to another pair.
    pub fn on_subflow_closed(&mut self, local_id: AddrId, remote_id: AddrId) {
        if let Some(state) = self.pairs.get_mut(&(local_id, remote_id)) {
            *state = PairState::Failed;
        }
        self.mesh();
    }

    /// Forgets every failed pair and opens the mesh again: the connection lost all its
    /// subflows and tries to make a path again ("make-after-break").
    pub fn retry_failed(&mut self) {
        self.pairs.retain(|_, state| *state != PairState::Failed);
        self.mesh();
    }

    /// Retransmits announcements whose echo is overdue, and gives up on those out of
    /// retransmissions. An address the peer never echoed may be unknown to it, and
    /// then only we can make a subflow from it: when the only path died before the
    /// announcement got through, that is the connection's one way to survive. So it
    /// opens subflows from that address to the peer's (RFC 8684 §3.2: either host may
    /// open one), even where `open_subflows` is off; one that fails is not retried.
    pub fn handle_timeout(&mut self, now: Instant) {
        let before = self.actions.len();
        let limit = self.config.add_addr_retransmits;
        let (max, rto) = (self.config.add_addr_timeout, self.rto);
        let actions = &mut self.actions;
        self.announcements.retain(|&id, a| {
            if a.last_sent + echo_timeout(max, rto, a.sent) > now {
                return true;
            }
            if a.sent > limit {
                actions.push_back(PmAction::AddAddrGaveUp { id });
                return false;
            }
            a.sent += 1;
            a.last_sent = now;
            actions.push_back(PmAction::SendAddAddr {
                id,
                addr: a.addr,
                port: a.port,
            });
            true
        });
        let gave_up: ArrayVec<AddrId, 8> = self
            .actions
            .iter()
            .skip(before)
            .filter_map(|a| match a {
                PmAction::AddAddrGaveUp { id } => Some(*id),
                PmAction::OpenSubflow { .. }
                | PmAction::SendAddAddr { .. }
                | PmAction::EchoAddAddr { .. }
                | PmAction::SendRemoveAddr { .. }
                | PmAction::CloseSubflows { .. } => None,
            })
            .take(8)
            .collect();
        for id in gave_up {
            self.join_from(id);
        }
    }

    /// Opens subflows from local address `id` to every known peer address of its
    /// family not yet paired with it, up to the subflow limit.
    fn join_from(&mut self, id: AddrId) {
        let Some(local) = self.locals.get(&id).copied() else {
            return;
        };
        let mut live = self
            .pairs
            .values()
            .filter(|s| matches!(s, PairState::Opening | PairState::Established))
            .count();
        for remote in self.remotes.values() {
            if live >= self.config.max_subflows {
                return;
            }
            let key = (local.id, remote.id);
            let denied = remote.id == AddrId(0) && self.peer_denies_initial;
            let same_family = local.addr.is_ipv4() == remote.addr.is_ipv4();
            if self.pairs.contains_key(&key) || denied || !same_family {
                continue;
            }
            debug!(?id, remote = %remote.addr, "ADD_ADDR never echoed: joining from it");
            self.pairs.insert(key, PairState::Opening);
            live += 1;
            self.actions.push_back(PmAction::OpenSubflow {
                local_id: local.id,
                local: local.addr,
                remote_id: remote.id,
                remote: remote.addr,
                backup: local.backup,
            });
        }
    }

    fn initial_remote_port(&self) -> u16 {
        self.remotes.get(&AddrId(0)).map_or(0, |r| r.addr.port())
    }

    /// Full mesh: opens the missing pairs, in (local id, remote id) order, up to the
    /// subflow limit.
    fn mesh(&mut self) {
        if !self.config.open_subflows {
            return;
        }
        let mut live = self
            .pairs
            .values()
            .filter(|s| matches!(s, PairState::Opening | PairState::Established))
            .count();
        for local in self.locals.values() {
            for remote in self.remotes.values() {
                if live >= self.config.max_subflows {
                    return;
                }
                let key = (local.id, remote.id);
                let denied = remote.id == AddrId(0) && self.peer_denies_initial;
                let same_family = local.addr.is_ipv4() == remote.addr.is_ipv4();
                if self.pairs.contains_key(&key) || denied || !same_family {
                    continue;
                }
                self.pairs.insert(key, PairState::Opening);
                live += 1;
                self.actions.push_back(PmAction::OpenSubflow {
                    local_id: local.id,
                    local: local.addr,
                    remote_id: remote.id,
                    remote: remote.addr,
                    backup: local.backup,
                });
            }
        }
    }
}

/// The wait after an announcement's `sent`-th transmission: the RTO doubled per
/// retransmission (like a TCP segment's), at most `max`.
fn echo_timeout(max: Duration, rto: Option<Duration>, sent: u32) -> Duration {
    let base = rto.map_or(max, |rto| rto.min(max));
    base.saturating_mul(1u64 << sent.saturating_sub(1).min(16))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().expect("test socket address")
    }

    fn drain(pm: &mut PathManager) -> Vec<PmAction> {
        core::iter::from_fn(|| pm.poll_action()).collect()
    }

    fn open(l: u8, local: &str, r: u8, remote: &str) -> PmAction {
        PmAction::OpenSubflow {
            local_id: AddrId(l),
            local: ip(local),
            remote_id: AddrId(r),
            remote: sock(remote),
            backup: false,
        }
    }

    fn client() -> PathManager {
        PathManager::new(
            PmConfig::default(),
            ip("10.0.0.1"),
            sock("10.9.0.1:80"),
            false,
        )
    }

    #[test]
    fn full_mesh_grows_with_each_address_in_id_order() {
        let mut pm = client();
        assert_eq!(
            pm.add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false),
            Ok(AddrId(1))
        );
        assert_eq!(drain(&mut pm), vec![open(1, "10.0.1.1", 0, "10.9.0.1:80")]);
        pm.on_add_addr(AddrId(3), ip("10.9.3.1"), Some(8080));
        assert_eq!(
            drain(&mut pm),
            vec![
                PmAction::EchoAddAddr {
                    id: AddrId(3),
                    addr: ip("10.9.3.1"),
                    port: Some(8080)
                },
                open(0, "10.0.0.1", 3, "10.9.3.1:8080"),
                open(1, "10.0.1.1", 3, "10.9.3.1:8080"),
            ]
        );
        // The same announcement again (a retransmission): echoed, nothing else.
        pm.on_add_addr(AddrId(3), ip("10.9.3.1"), Some(8080));
        assert_eq!(
            drain(&mut pm),
            vec![PmAction::EchoAddAddr {
                id: AddrId(3),
                addr: ip("10.9.3.1"),
                port: Some(8080)
            }]
        );
    }

    #[test]
    fn c_flag_keeps_subflows_away_from_the_peers_initial_address() {
        let mut pm = PathManager::new(
            PmConfig::default(),
            ip("10.0.0.1"),
            sock("10.9.0.1:80"),
            true,
        );
        pm.add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, true)
            .expect("free id");
        assert_eq!(drain(&mut pm), vec![]);
        pm.on_add_addr(AddrId(1), ip("10.9.1.1"), None);
        let mut backup = open(1, "10.0.1.1", 1, "10.9.1.1:80");
        if let PmAction::OpenSubflow { backup: b, .. } = &mut backup {
            *b = true;
        }
        assert_eq!(
            drain(&mut pm)[1..],
            [open(0, "10.0.0.1", 1, "10.9.1.1:80"), backup]
        );
    }

    #[test]
    fn the_subflow_limit_and_address_families_bound_the_mesh() {
        let config = PmConfig {
            max_subflows: 3,
            ..PmConfig::default()
        };
        let mut pm = PathManager::new(config, ip("10.0.0.1"), sock("10.9.0.1:80"), false);
        pm.add_local_addr(Instant::ZERO, ip("fd00::1"), None, false)
            .expect("free id");
        assert_eq!(drain(&mut pm), vec![], "no v6 remote yet");
        pm.on_add_addr(AddrId(1), ip("fd09::1"), None);
        pm.on_add_addr(AddrId(2), ip("10.9.2.1"), None);
        let actions: Vec<_> = drain(&mut pm)
            .into_iter()
            .filter(|a| matches!(a, PmAction::OpenSubflow { .. }))
            .collect();
        assert_eq!(
            actions,
            vec![
                open(1, "fd00::1", 1, "[fd09::1]:80"),
                open(0, "10.0.0.1", 2, "10.9.2.1:80")
            ]
        );
        // At the limit: a closed subflow frees a slot, but is not itself reopened.
        pm.add_local_addr(Instant::ZERO, ip("10.0.2.1"), None, false)
            .expect("free id");
        assert_eq!(drain(&mut pm), vec![]);
        pm.on_subflow_closed(AddrId(0), AddrId(2));
        assert_eq!(drain(&mut pm), vec![open(2, "10.0.2.1", 0, "10.9.0.1:80")]);
    }

    #[test]
    fn remove_addr_closes_subflows_and_a_reannouncement_reopens_them() {
        let mut pm = client();
        pm.on_add_addr(AddrId(5), ip("10.9.5.1"), None);
        drain(&mut pm);
        pm.on_subflow_established(AddrId(0), AddrId(5));
        pm.on_remove_addr([AddrId(5), AddrId(77)]);
        assert_eq!(
            drain(&mut pm),
            vec![PmAction::CloseSubflows {
                side: AddrSide::Remote,
                id: AddrId(5)
            }]
        );
        assert_eq!(pm.remote_addrs().count(), 1);
        pm.on_add_addr(AddrId(5), ip("10.9.5.1"), None);
        assert_eq!(drain(&mut pm)[1..], [open(0, "10.0.0.1", 5, "10.9.5.1:80")]);
    }

    #[test]
    fn a_moved_remote_id_closes_the_old_subflows_first() {
        let mut pm = client();
        pm.on_add_addr(AddrId(1), ip("10.9.1.1"), None);
        drain(&mut pm);
        pm.on_add_addr(AddrId(1), ip("10.9.1.2"), None);
        assert_eq!(
            drain(&mut pm),
            vec![
                PmAction::EchoAddAddr {
                    id: AddrId(1),
                    addr: ip("10.9.1.2"),
                    port: None
                },
                PmAction::CloseSubflows {
                    side: AddrSide::Remote,
                    id: AddrId(1)
                },
                open(0, "10.0.0.1", 1, "10.9.1.2:80"),
            ]
        );
    }

    #[test]
    fn removing_a_local_address_withdraws_it() {
        let mut pm = client();
        let id = pm
            .add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false)
            .expect("free id");
        drain(&mut pm);
        assert_eq!(pm.remove_local_addr(id), Ok(()));
        assert_eq!(
            drain(&mut pm),
            vec![
                PmAction::SendRemoveAddr { id },
                PmAction::CloseSubflows {
                    side: AddrSide::Local,
                    id
                },
            ]
        );
        assert_eq!(pm.remove_local_addr(id), Err(PmError::UnknownAddrId(1)));
        // The freed id is reused, and the address meshes again.
        assert_eq!(
            pm.add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false),
            Ok(AddrId(1))
        );
        assert_eq!(
            pm.add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false),
            Err(PmError::DuplicateAddress(ip("10.0.1.1")))
        );
        assert_eq!(drain(&mut pm), vec![open(1, "10.0.1.1", 0, "10.9.0.1:80")]);
    }

    #[test]
    fn add_addr_is_retransmitted_until_echoed_then_given_up() {
        let config = PmConfig {
            open_subflows: false,
            announce: true,
            add_addr_timeout: Duration::from_secs(2),
            add_addr_retransmits: 2,
            ..PmConfig::default()
        };
        let mut pm = PathManager::new(config, ip("10.9.0.1"), sock("10.0.0.1:5555"), false);
        let t0 = Instant::from_secs(10);
        let a = pm
            .add_local_addr(t0, ip("10.9.1.1"), Some(443), false)
            .expect("free id");
        let b = pm
            .add_local_addr(t0 + Duration::from_secs(1), ip("10.9.2.1"), None, false)
            .expect("free id");
        let send_a = PmAction::SendAddAddr {
            id: a,
            addr: ip("10.9.1.1"),
            port: Some(443),
        };
        let send_b = PmAction::SendAddAddr {
            id: b,
            addr: ip("10.9.2.1"),
            port: None,
        };
        assert_eq!(drain(&mut pm), vec![send_a, send_b]);
        assert_eq!(pm.poll_timeout(), Some(Instant::from_secs(12)));
        pm.handle_timeout(Instant::from_secs(11));
        assert_eq!(drain(&mut pm), vec![]);
        pm.handle_timeout(Instant::from_secs(12));
        assert_eq!(drain(&mut pm), vec![send_a]);
        assert_eq!(pm.poll_timeout(), Some(Instant::from_secs(13)));
        // B is echoed, with the wrong port first (ignored), then right.
        pm.on_add_addr_echo(b, ip("10.9.2.1"), Some(1));
        pm.on_add_addr_echo(b, ip("10.9.2.1"), None);
        assert_eq!(pm.poll_timeout(), Some(Instant::from_secs(14)));
        pm.handle_timeout(Instant::from_secs(14));
        assert_eq!(drain(&mut pm), vec![send_a]);
        pm.handle_timeout(Instant::from_secs(16));
        // Never echoed: the peer may not know the address, so we join from it.
        assert_eq!(
            drain(&mut pm),
            vec![
                PmAction::AddAddrGaveUp { id: a },
                PmAction::OpenSubflow {
                    local_id: a,
                    local: ip("10.9.1.1"),
                    remote_id: AddrId(0),
                    remote: sock("10.0.0.1:5555"),
                    backup: false,
                }
            ]
        );
        assert_eq!(pm.poll_timeout(), None);
    }

    #[test]
    fn add_addr_waits_one_rto_then_backs_off_and_repeats_at_once_when_paths_fail() {
        let config = PmConfig {
            open_subflows: false,
            announce: true,
            ..PmConfig::default()
        };
        let mut pm = PathManager::new(config, ip("10.9.0.1"), sock("10.0.0.1:5555"), false);
        let t0 = Instant::from_secs(1);
        let id = pm
            .add_local_addr(t0, ip("10.9.1.1"), None, false)
            .expect("free id");
        let send = PmAction::SendAddAddr {
            id,
            addr: ip("10.9.1.1"),
            port: None,
        };
        assert_eq!(drain(&mut pm), vec![send]);
        // No RTT measured yet: the 120 s maximum. Once the connection knows its RTO
        // (300 ms), the waiting announcement follows it.
        assert_eq!(pm.poll_timeout(), Some(t0 + Duration::from_secs(120)));
        pm.set_rto(Duration::from_millis(300));
        assert_eq!(pm.poll_timeout(), Some(t0 + Duration::from_millis(300)));
        // Retransmissions back off as TCP's do: 300, 600, 1200 ms.
        let mut at = t0 + Duration::from_millis(300);
        for wait in [600, 1200] {
            pm.handle_timeout(at);
            assert_eq!(drain(&mut pm), vec![send]);
            assert_eq!(pm.poll_timeout(), Some(at + Duration::from_millis(wait)));
            at += Duration::from_millis(wait);
        }
        // A subflow went stale: the announcement goes again now, with a fresh budget.
        let trouble = at - Duration::from_millis(100);
        pm.resend_unechoed(trouble);
        assert_eq!(drain(&mut pm), vec![send]);
        assert_eq!(
            pm.poll_timeout(),
            Some(trouble + Duration::from_millis(300))
        );
        // The echo ends it; nothing is repeated after that, even on trouble.
        pm.on_add_addr_echo(id, ip("10.9.1.1"), None);
        assert_eq!(pm.poll_timeout(), None);
        pm.resend_unechoed(at);
        assert_eq!(drain(&mut pm), vec![]);
    }

    #[test]
    fn the_add_addr_wait_never_exceeds_the_configured_maximum() {
        let max = Duration::from_secs(2);
        assert_eq!(echo_timeout(max, None, 1), max);
        assert_eq!(
            echo_timeout(max, Some(Duration::from_millis(700)), 2),
            Duration::from_millis(1400)
        );
        assert_eq!(echo_timeout(max, Some(Duration::from_millis(700)), 3), max);
        assert_eq!(echo_timeout(max, Some(Duration::from_secs(5)), 1), max);
        assert_eq!(echo_timeout(max, Some(Duration::from_millis(1)), 99), max);
    }
}
