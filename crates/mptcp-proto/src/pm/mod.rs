//! The path manager (RFC 8684 §3.4): which addresses a connection knows on each side,
//! which subflows it should have, and the ADD_ADDR / REMOVE_ADDR signalling.
//!
//! It is bookkeeping and policy only, as a pure state machine: the connection reports
//! address events, received ADD_ADDR / REMOVE_ADDR options and subflow lifecycle, and
//! drains [`PmAction`]s (open a subflow, send or echo an ADD_ADDR, send REMOVE_ADDR,
//! close subflows). It must not open sockets, build options (HMACs are the connection's
//! job), judge a subflow's health (the connection detects failures and reports them) or
//! read a clock: time comes in as [`Instant`].
//!
//! Policies ([`PathPolicy`]): full mesh, n-diff-ports and backup. Each subflow the
//! manager tracks is a [`PathKey`]: an address pair plus a slot, so that one pair may
//! carry several subflows (n-diff-ports, or a make-before-break replacement next to the
//! subflow it replaces). Failed subflows are re-created with exponential backoff while
//! their local address exists (self-healing). Every iteration runs in key order, so the
//! same inputs give the same actions on every run.

use core::net::{IpAddr, SocketAddr};
use std::collections::{BTreeMap, VecDeque};

use arrayvec::ArrayVec;
use tracing::debug;

use crate::time::{Duration, Instant};
pub use crate::wire::mptcp::AddrId;

mod config;

pub use config::{Handover, PathPolicy, PmConfig, PolicyParseError};

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
/// ADD_ADDR (without a port, the initial subflow's port applies). Kept after a failed
/// attempt, so that later retries and freed subflow slots can use it.
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

/// One subflow as the path manager tracks it: its address pair and a slot that tells
/// apart subflows on the same pair (slot 0 first; n-diff-ports uses 0..n).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathKey {
    pub local: AddrId,
    pub remote: AddrId,
    pub slot: u8,
}

impl PathKey {
    /// The initial subflow's key.
    pub const INITIAL: PathKey = PathKey {
        local: AddrId(0),
        remote: AddrId(0),
        slot: 0,
    };
}

/// What the connection must do for the path manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmAction {
    /// Open a subflow with MP_JOIN from `local` (a fresh source port) to `remote`, and
    /// report its fate under `key`.
    OpenSubflow {
        key: PathKey,
        local: IpAddr,
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

/// A tracked subflow's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathState {
    /// Asked for with [`PmAction::OpenSubflow`] (or a peer's join), handshake not done.
    Opening,
    Established,
    /// Closed or failed; opened again at `at` (self-healing).
    Retry {
        at: Instant,
    },
    /// Closed, and not reopened until one of its addresses is added or announced again
    /// or the connection loses every subflow (RFC 8684 §3.4.1: no further attempts
    /// after an unsuccessful one), because self-healing is off.
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Path {
    state: PathState,
    /// Consecutive failures since the subflow was last established.
    failures: u32,
    /// A make-before-break replacement was opened for it: when it closes, it is not
    /// re-created.
    replaced: bool,
}

impl Path {
    fn opening() -> Self {
        Path {
            state: PathState::Opening,
            failures: 0,
            replaced: false,
        }
    }

    fn is_live(&self) -> bool {
        match self.state {
            PathState::Opening | PathState::Established => true,
            PathState::Retry { .. } | PathState::Failed => false,
        }
    }
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
/// use mptcp_proto::pm::{AddrId, PathKey, PathManager, PmAction, PmConfig};
///
/// let local: IpAddr = "10.0.0.1".parse().unwrap();
/// let server: SocketAddr = "10.9.0.1:443".parse().unwrap();
/// let mut pm = PathManager::new(PmConfig::default(), local, server, false);
/// pm.on_add_addr(AddrId(1), "10.9.1.1".parse().unwrap(), None);
/// assert!(matches!(pm.poll_action(), Some(PmAction::EchoAddAddr { .. })));
/// assert_eq!(
///     pm.poll_action(),
///     Some(PmAction::OpenSubflow {
///         key: PathKey { local: AddrId(0), remote: AddrId(1), slot: 0 },
///         local,
///         remote: "10.9.1.1:443".parse().unwrap(),
///         backup: false,
///     })
/// );
/// ```
#[derive(Clone, Debug)]
pub struct PathManager {
    config: PmConfig,
    locals: BTreeMap<AddrId, LocalAddr>,
    remotes: BTreeMap<AddrId, RemoteAddr>,
    paths: BTreeMap<PathKey, Path>,
    announcements: BTreeMap<AddrId, Announcement>,
    /// The peer set MP_CAPABLE flag C: no subflows to its initial address (§3.1).
    peer_denies_initial: bool,
    /// The connection's retransmission timeout, the first wait for an echo.
    rto: Option<Duration>,
    actions: VecDeque<PmAction>,
    /// Nothing falls due (no echo wait ends, no retry) before this instant; `None`
    /// when not known. [`PathManager::handle_timeout`] runs after every segment and
    /// returns at once before it; whatever may bring a deadline earlier forgets it.
    quiet_until: Option<Instant>,
}

/// [`PathManager::quiet_until`] when nothing is scheduled at all.
const NEVER: Instant = Instant::from_micros(u64::MAX);

impl PathManager {
    /// A connection whose initial subflow runs from `local` to `remote` (address id 0 on
    /// both sides). `peer_c_flag`: the peer's MP_CAPABLE had flag C.
    pub fn new(mut config: PmConfig, local: IpAddr, remote: SocketAddr, peer_c_flag: bool) -> Self {
        config.max_subflows = config.max_subflows.clamp(1, crate::mptcp::MAX_SUBFLOWS);
        let id0 = AddrId(0);
        let mut pm = PathManager {
            locals: BTreeMap::from([(
                id0,
                LocalAddr {
                    id: id0,
                    addr: local,
                    port: None,
                    backup: config.backup_addrs.contains(&local),
                },
            )]),
            remotes: BTreeMap::from([(
                id0,
                RemoteAddr {
                    id: id0,
                    addr: remote,
                },
            )]),
            paths: BTreeMap::from([(
                PathKey::INITIAL,
                Path {
                    state: PathState::Established,
                    failures: 0,
                    replaced: false,
                },
            )]),
            announcements: BTreeMap::new(),
            peer_denies_initial: peer_c_flag,
            rto: None,
            actions: VecDeque::new(),
            quiet_until: None,
            config,
        };
        pm.fill();
        pm
    }

    pub fn config(&self) -> &PmConfig {
        &self.config
    }

    pub fn local_addrs(&self) -> impl Iterator<Item = &LocalAddr> + '_ {
        self.locals.values()
    }

    pub fn remote_addrs(&self) -> impl Iterator<Item = &RemoteAddr> + '_ {
        self.remotes.values()
    }

    /// Subflows opening or established, as the manager counts them against
    /// [`PmConfig::max_subflows`].
    pub fn live_subflows(&self) -> usize {
        self.paths.values().filter(|p| p.is_live()).count()
    }

    /// Keys waiting for a retry, with the instant of the retry.
    pub fn pending_retries(&self) -> impl Iterator<Item = (PathKey, Instant)> + '_ {
        self.paths.iter().filter_map(|(k, p)| match p.state {
            PathState::Retry { at } => Some((*k, at)),
            PathState::Opening | PathState::Established | PathState::Failed => None,
        })
    }

    /// The next action, oldest first.
    pub fn poll_action(&mut self) -> Option<PmAction> {
        self.actions.pop_front()
    }

    /// When [`PathManager::handle_timeout`] must next run. Retries wait for a free
    /// subflow slot, so they count only while one is free.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let announce = self
            .announcements
            .values()
            .map(|a| a.last_sent + self.echo_timeout(a.sent))
            .min();
        // The subflow count only when a retry waits: it walks every path, on each
        // poll, and most of the time nothing is waiting.
        let retry = if self.config.open_subflows {
            self.pending_retries()
                .map(|(_, at)| at)
                .min()
                .filter(|_| self.live_subflows() < self.config.max_subflows)
        } else {
            None
        };
        match (announce, retry) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }

    /// A local address appeared. It gets the lowest free id, is announced if so
    /// configured, and joins the mesh. `backup`: its subflows join as backups (so do
    /// those of [`PmConfig::backup_addrs`], and under [`PathPolicy::Backup`] without
    /// designated addresses every added address).
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
        let standby =
            self.config.policy == PathPolicy::Backup && self.config.backup_addrs.is_empty();
        let backup = backup || standby || self.config.backup_addrs.contains(&addr);
        self.locals.insert(
            id,
            LocalAddr {
                id,
                addr,
                port,
                backup,
            },
        );
        if self.config.announce {
            self.actions
                .push_back(PmAction::SendAddAddr { id, addr, port });
            self.quiet_until = None;
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
        self.fill();
        Ok(id)
    }

    /// A local address disappeared: withdraw it and close its subflows. Its paths are
    /// forgotten (self-healing needs the address).
    pub fn remove_local_addr(&mut self, id: AddrId) -> Result<(), PmError> {
        if self.locals.remove(&id).is_none() {
            return Err(PmError::UnknownAddrId(id.0));
        }
        self.announcements.remove(&id);
        self.paths.retain(|k, _| k.local != id);
        self.actions.push_back(PmAction::SendRemoveAddr { id });
        self.actions.push_back(PmAction::CloseSubflows {
            side: AddrSide::Local,
            id,
        });
        self.fill();
        Ok(())
    }

    /// A valid ADD_ADDR (HMAC already checked; RFC 8684 §3.4.1). Always echoed. The
    /// address is remembered even when no subflow slot is free, and used when one frees
    /// up. An id already known with another address is taken as the peer moving that
    /// id: the old address's subflows close.
    pub fn on_add_addr(&mut self, id: AddrId, addr: IpAddr, port: Option<u16>) {
        self.actions
            .push_back(PmAction::EchoAddAddr { id, addr, port });
        let port = port.unwrap_or_else(|| self.initial_remote_port());
        let remote = SocketAddr::new(addr, port);
        match self.remotes.get(&id) {
            // A retransmission (our echo was lost): nothing new.
            Some(known) if known.addr == remote => return,
            Some(known) => {
                debug!(?id, old = %known.addr, new = %remote, "peer re-announced an address id");
                self.drop_remote(id);
            }
            None => {}
        }
        self.remotes.insert(id, RemoteAddr { id, addr: remote });
        self.fill();
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
        self.fill();
    }

    fn drop_remote(&mut self, id: AddrId) {
        self.remotes.remove(&id);
        self.paths.retain(|k, _| k.remote != id);
        self.actions.push_back(PmAction::CloseSubflows {
            side: AddrSide::Remote,
            id,
        });
    }

    /// A subflow the peer opened to us (MP_JOIN SYN accepted): it gets the lowest free
    /// slot of its pair, the key to report its fate under.
    pub fn on_incoming_subflow(&mut self, local: AddrId, remote: AddrId) -> PathKey {
        let key = self.free_key(local, remote);
        self.paths.insert(key, Path::opening());
        key
    }

    /// A subflow finished its handshake (one we opened, or a join from the peer): its
    /// failure count starts over.
    pub fn on_subflow_established(&mut self, key: PathKey) {
        let path = self.paths.entry(key).or_insert_with(Path::opening);
        path.state = PathState::Established;
        path.failures = 0;
    }

    /// A subflow is potentially failed (RTOs without progress): under
    /// make-before-break, a replacement on the same address pair (a new source port)
    /// opens now, once per subflow, if a slot is free.
    pub fn on_subflow_potentially_failed(&mut self, key: PathKey) {
        if self.config.handover != Handover::MakeBeforeBreak
            || !self.config.open_subflows
            || self.live_subflows() >= self.config.max_subflows
            || !self.eligible(key.local, key.remote)
        {
            return;
        }
        let Some(path) = self.paths.get_mut(&key) else {
            return;
        };
        if path.replaced || path.state != PathState::Established {
            return;
        }
        path.replaced = true;
        let new = self.free_key(key.local, key.remote);
        debug!(old = ?key, new = ?new, "make-before-break: opening a replacement");
        self.open(new, Path::opening());
    }

    /// A subflow closed, failed, or failed to open (the connection tells failures it
    /// detected from other closes only through the timing: both are retried). A
    /// replaced subflow is forgotten; otherwise, with self-healing, the subflow is
    /// opened again after the backoff delay; without, it waits for its addresses to
    /// come back. Peer-opened subflows (we do not open subflows) are forgotten. A freed
    /// slot may go to another pair at once.
    pub fn on_subflow_closed(&mut self, now: Instant, key: PathKey) {
        let Some(path) = self.paths.get_mut(&key) else {
            self.fill();
            return;
        };
        let eligible = self.config.open_subflows
            && !path.replaced
            && self.locals.contains_key(&key.local)
            && self.remotes.contains_key(&key.remote)
            && !(key.remote == AddrId(0) && self.peer_denies_initial);
        if !eligible {
            self.paths.remove(&key);
        } else if self.config.self_heal {
            path.failures = path.failures.saturating_add(1);
            let at = now + self.config.retry_delay(path.failures);
            debug!(
                ?key,
                failures = path.failures,
                ?at,
                "subflow down: retry scheduled"
            );
            path.state = PathState::Retry { at };
            self.quiet_until = None;
        } else {
            path.state = PathState::Failed;
        }
        self.fill();
    }

    /// How many subflows of ours the pair may keep: what the policy wants, and at
    /// least one (a pair the policy does not want may carry the subflow opened for an
    /// announcement the peer never echoed). A make-before-break replacement makes one
    /// more than this while the subflow it replaces lives; once either works, the
    /// connection retires the surplus ([`PathManager::retire`]).
    pub fn budget(&self, local: AddrId, remote: AddrId) -> usize {
        self.wanted(local, remote).max(1)
    }

    /// The connection closes the subflow `key` on purpose because its pair has more
    /// than its [`PathManager::budget`] (the replacement when the replaced subflow
    /// recovered, or the replaced one when its replacement works): it is forgotten,
    /// not re-created, and the pair's survivors may be replaced again if they fail
    /// later.
    pub fn retire(&mut self, key: PathKey) {
        debug!(?key, "surplus subflow on its pair retired");
        self.paths.remove(&key);
        for (_, path) in self.paths.range_mut(pair_range(key.local, key.remote)) {
            path.replaced = false;
        }
    }

    /// The connection lost all its subflows and tries to make a path again
    /// ("make-after-break"): pairs given up on (self-healing off) become eligible
    /// again. Scheduled retries keep their backoff.
    pub fn retry_failed(&mut self, now: Instant) {
        for path in self.paths.values_mut() {
            if path.state == PathState::Failed {
                path.state = PathState::Retry { at: now };
            }
        }
        self.quiet_until = None;
        self.handle_timeout(now);
    }

    /// The connection's current retransmission timeout (RFC 6298): the wait for an
    /// ADD_ADDR echo before the first retransmission. It applies to announcements
    /// already waiting too (the first ones go out before any RTT is measured).
    /// Some announcement waits for its echo (its wait follows [`PathManager::set_rto`]).
    pub fn awaiting_echo(&self) -> bool {
        !self.announcements.is_empty()
    }

    pub fn set_rto(&mut self, rto: Duration) {
        if self.rto != Some(rto) && !self.announcements.is_empty() {
            // The echo waits move with it.
            self.quiet_until = None;
        }
        self.rto = Some(rto);
    }

    /// The wait after an announcement's `sent`-th transmission.
    fn echo_timeout(&self, sent: u32) -> Duration {
        echo_timeout(self.config.add_addr_timeout, self.rto, sent)
    }

    /// The paths are in trouble (a subflow went stale or down, RFC 8684 §3.3.6): every
    /// announcement still unechoed goes out again now, with a fresh retransmission
    /// budget. The copy sent before may have left on the failing path, and the peer
    /// may need the address to survive the failure; the connection puts it on a
    /// healthy subflow.
    pub fn resend_unechoed(&mut self, now: Instant) {
        self.quiet_until = None;
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

    /// Retransmits announcements whose echo is overdue, gives up on those out of
    /// retransmissions, and opens the subflows whose retry is due (in key order, while
    /// slots are free).
    ///
    /// An address the peer never echoed may be unknown to it, and then only we can
    /// make a subflow from it: when the only path died before the announcement got
    /// through, that is the connection's one way to survive. So a given-up
    /// announcement opens subflows from that address to the peer's (RFC 8684 §3.2:
    /// either host may open one), even where `open_subflows` is off; one that fails
    /// is not retried.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.quiet_until.is_some_and(|t| now < t) {
            return;
        }
        self.run_due(now);
        self.quiet_until = Some(self.next_due().unwrap_or(NEVER));
    }

    /// The earliest echo wait or retry, whether or not a subflow slot is free (unlike
    /// [`PathManager::poll_timeout`]): a retry due but blocked keeps
    /// [`PathManager::handle_timeout`] looking.
    fn next_due(&self) -> Option<Instant> {
        let announce = self
            .announcements
            .values()
            .map(|a| a.last_sent + self.echo_timeout(a.sent));
        let retry = self.pending_retries().map(|(_, at)| at);
        announce.chain(retry).min()
    }

    fn run_due(&mut self, now: Instant) {
        let limit = self.config.add_addr_retransmits;
        let (max, rto) = (self.config.add_addr_timeout, self.rto);
        let mut gave_up: ArrayVec<AddrId, 8> = ArrayVec::new();
        let actions = &mut self.actions;
        self.announcements.retain(|&id, a| {
            if a.last_sent + echo_timeout(max, rto, a.sent) > now {
                return true;
            }
            if a.sent > limit {
                actions.push_back(PmAction::AddAddrGaveUp { id });
                let _ = gave_up.try_push(id);
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
        for id in gave_up {
            self.join_from(id);
        }
        if !self.config.open_subflows {
            return;
        }
        let due: Vec<PathKey> = self
            .pending_retries()
            .filter(|&(_, at)| at <= now)
            .map(|(k, _)| k)
            .collect();
        for key in due {
            if self.live_subflows() >= self.config.max_subflows {
                break;
            }
            if let Some(path) = self.paths.get(&key).copied() {
                self.open(
                    key,
                    Path {
                        state: PathState::Opening,
                        ..path
                    },
                );
            }
        }
    }

    /// Opens a subflow from local address `id` to every known peer address it may
    /// reach and has none to yet, up to the subflow limit.
    fn join_from(&mut self, id: AddrId) {
        let remotes: Vec<AddrId> = self.remotes.keys().copied().collect();
        for remote in remotes {
            if self.live_subflows() >= self.config.max_subflows {
                return;
            }
            let had = self.paths.range(pair_range(id, remote)).count();
            if !self.eligible(id, remote) || had > 0 {
                continue;
            }
            let key = self.free_key(id, remote);
            debug!(?key, "ADD_ADDR never echoed: joining from its address");
            self.open(key, Path::opening());
        }
    }

    fn initial_remote_port(&self) -> u16 {
        self.remotes.get(&AddrId(0)).map_or(0, |r| r.addr.port())
    }

    /// The pair may carry subflows: same IP family, and not to the peer's initial
    /// address when it set flag C.
    fn eligible(&self, local: AddrId, remote: AddrId) -> bool {
        let (Some(l), Some(r)) = (self.locals.get(&local), self.remotes.get(&remote)) else {
            return false;
        };
        let denied = remote == AddrId(0) && self.peer_denies_initial;
        !denied && l.addr.is_ipv4() == r.addr.is_ipv4()
    }

    /// How many subflows the policy wants on a pair.
    fn wanted(&self, local: AddrId, remote: AddrId) -> usize {
        if !self.eligible(local, remote) {
            return 0;
        }
        match self.config.policy {
            PathPolicy::FullMesh | PathPolicy::Backup => 1,
            PathPolicy::NDiffPorts { subflows } => {
                if local == AddrId(0) && remote == AddrId(0) {
                    usize::from(subflows)
                } else {
                    0
                }
            }
        }
    }

    fn free_key(&self, local: AddrId, remote: AddrId) -> PathKey {
        (0..=u8::MAX)
            .map(|slot| PathKey {
                local,
                remote,
                slot,
            })
            .find(|k| !self.paths.contains_key(k))
            // 256 subflows on one pair would exceed MAX_SUBFLOWS many times over.
            .unwrap_or(PathKey {
                local,
                remote,
                slot: u8::MAX,
            })
    }

    fn open(&mut self, key: PathKey, path: Path) {
        let (Some(local), Some(remote)) =
            (self.locals.get(&key.local), self.remotes.get(&key.remote))
        else {
            return;
        };
        self.actions.push_back(PmAction::OpenSubflow {
            key,
            local: local.addr,
            remote: remote.addr,
            backup: local.backup,
        });
        self.paths.insert(key, path);
    }

    /// Opens what the policy wants and does not have, in (local id, remote id) order, up
    /// to the subflow limit. Subflows waiting for a retry or given up on count as had.
    fn fill(&mut self) {
        if !self.config.open_subflows {
            return;
        }
        let pairs: Vec<(AddrId, AddrId)> = self
            .locals
            .keys()
            .flat_map(|&l| self.remotes.keys().map(move |&r| (l, r)))
            .collect();
        for (l, r) in pairs {
            let wanted = self.wanted(l, r);
            let mut have = self.paths.range(pair_range(l, r)).count();
            while have < wanted {
                if self.live_subflows() >= self.config.max_subflows {
                    return;
                }
                let key = self.free_key(l, r);
                self.open(key, Path::opening());
                have += 1;
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

fn pair_range(local: AddrId, remote: AddrId) -> core::ops::RangeInclusive<PathKey> {
    PathKey {
        local,
        remote,
        slot: 0,
    }..=PathKey {
        local,
        remote,
        slot: u8::MAX,
    }
}

#[cfg(test)]
mod tests;
