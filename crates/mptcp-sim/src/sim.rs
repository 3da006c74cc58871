//! The engine: topology (hosts, routers, interfaces, links), virtual time, the event
//! queue, packet forwarding and sampling.
//!
//! Everything that happens is an event popped from one `BinaryHeap` ordered by
//! (time in ns, insertion sequence), so simultaneous events run in the order they were
//! scheduled and a run is a pure function of the topology, the hosts and the seed.
//! Internally time is kept in nanoseconds so serialization at any rate accumulates no
//! rounding error; hosts see `Instant` (microseconds), rounded down.

use std::any::Any;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::IpAddr;

use mptcp_proto::{Duration, Instant};
use rand::SeedableRng;

use crate::host::{Context, Host, HostRng, NodeId};
use crate::link::{DirState, LinkConfig, ns};
use crate::middlebox::{Middlebox, Verdict};
use crate::packet::{self, FlowId};
use crate::record::{DropReason, FlowStats, LinkStats, NodeStats, Recorder, SeriesId};
use crate::routing::{self, Route};

/// Names a link in a [`Simulator`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub(crate) usize);

/// One direction of a link: from its `a` end to its `b` end, or back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    AToB,
    BToA,
}

/// Which directions of a link an up/down change applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directions {
    Both,
    Only(Direction),
}

/// Errors while building a topology.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("a node named '{0}' already exists")]
    DuplicateNode(String),
    #[error("a link named '{0}' already exists")]
    DuplicateLink(String),
    #[error("address {0} is already assigned to node '{1}'")]
    DuplicateAddress(IpAddr, String),
    #[error("no interface has address {0}")]
    UnknownAddress(IpAddr),
    #[error("interface {0} is already attached to link '{1}'")]
    InterfaceInUse(IpAddr, String),
    #[error("link '{0}' joins two interfaces of the same node '{1}'")]
    SelfLoop(String, String),
    #[error("node '{0}' has no interface {1}")]
    NotAnInterfaceOf(String, IpAddr),
    #[error("prefix length {len} is too long for {prefix}")]
    BadPrefix { prefix: IpAddr, len: u8 },
}

struct Interface {
    addr: IpAddr,
    /// Index into `Simulator::dirs` of the direction leaving through this interface.
    out: Option<usize>,
}

enum NodeKind {
    Host(Box<HostSlot>),
    Router,
}

struct HostSlot {
    host: Box<dyn Host>,
    rng: HostRng,
    /// The timeout currently scheduled, and a generation that invalidates older events.
    timer: Option<Instant>,
    timer_gen: u64,
}

struct Node {
    name: String,
    ifaces: Vec<Interface>,
    addrs: Vec<IpAddr>,
    routes: Vec<Route>,
    kind: NodeKind,
    stats: NodeStats,
}

struct Link {
    name: String,
    /// (node, interface index) of the `a` and `b` ends.
    ends: [(usize, usize); 2],
}

enum Event {
    HostTimer {
        node: usize,
        generation: u64,
    },
    TxDone {
        dir: usize,
        epoch: u32,
    },
    Arrive {
        dir: usize,
        epoch: u32,
        packet: Vec<u8>,
    },
    LinkState {
        dir: usize,
        up: bool,
    },
    Sample {
        generation: u64,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest event must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Time-series sampling state.
struct Sampler {
    interval_ns: u64,
    generation: u64,
    /// Per direction: the counters at the previous tick and the series ids.
    prev_links: Vec<LinkStats>,
    link_series: Vec<LinkSeries>,
    prev_flows: BTreeMap<FlowId, (u64, u64)>,
}

struct LinkSeries {
    throughput: SeriesId,
    queue_bytes: SeriesId,
    queue_packets: SeriesId,
    drops: [SeriesId; 4],
}

type Tap = Box<dyn FnMut(Instant, NodeId, &[u8])>;

/// A deterministic network of hosts, routers and links in virtual time.
///
/// ```
/// use mptcp_proto::{Duration, Instant};
/// use mptcp_sim::{LinkConfig, Rate, Simulator};
///
/// let mut sim = Simulator::new(42);
/// let a = "10.0.0.1".parse().unwrap();
/// let b = "10.0.0.2".parse().unwrap();
/// sim.add_router("r1", &[a]).unwrap();
/// sim.add_router("r2", &[b]).unwrap();
/// let cfg = LinkConfig::new(Rate::mbit(10), Duration::from_millis(5));
/// sim.add_link("l", a, b, cfg.clone(), cfg).unwrap();
/// sim.run_until(Instant::from_secs(1));
/// assert_eq!(sim.now(), Instant::from_secs(1));
/// ```
pub struct Simulator {
    seed: u64,
    now_ns: u64,
    seq: u64,
    events: BinaryHeap<Scheduled>,
    nodes: Vec<Node>,
    node_names: BTreeMap<String, usize>,
    addr_owner: BTreeMap<IpAddr, (usize, usize)>,
    links: Vec<Link>,
    link_names: BTreeMap<String, usize>,
    /// Link directions: `2 * link` is a->b, `2 * link + 1` is b->a.
    dirs: Vec<DirState>,
    /// Hosts to poll before the next event: new, or touched through `host_mut`.
    dirty: Vec<usize>,
    pool: Vec<Vec<u8>>,
    recorder: Recorder,
    flows: BTreeMap<FlowId, FlowStats>,
    sampler: Option<Sampler>,
    sample_generation: u64,
    tap: Option<Tap>,
}

/// Packet buffers kept for reuse; beyond this they are freed.
const POOL_LIMIT: usize = 4096;

impl Simulator {
    pub fn new(seed: u64) -> Self {
        Simulator {
            seed,
            now_ns: 0,
            seq: 0,
            events: BinaryHeap::new(),
            nodes: Vec::new(),
            node_names: BTreeMap::new(),
            addr_owner: BTreeMap::new(),
            links: Vec::new(),
            link_names: BTreeMap::new(),
            dirs: Vec::new(),
            dirty: Vec::new(),
            pool: Vec::new(),
            recorder: Recorder::default(),
            flows: BTreeMap::new(),
            sampler: None,
            sample_generation: 0,
            tap: None,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.now_ns / 1_000)
    }

    // ---- topology -------------------------------------------------------------------

    /// Add a host with one interface per address.
    pub fn add_host(
        &mut self,
        name: &str,
        addresses: &[IpAddr],
        host: Box<dyn Host>,
    ) -> Result<NodeId, SimError> {
        let rng = HostRng::seed_from_u64(derive_seed(self.seed, &format!("host/{name}")));
        let slot = HostSlot {
            host,
            rng,
            timer: None,
            timer_gen: 0,
        };
        let id = self.add_node(name, addresses, NodeKind::Host(Box::new(slot)))?;
        self.dirty.push(id.0);
        Ok(id)
    }

    /// Add a router: it forwards by destination with its routes and terminates nothing.
    pub fn add_router(&mut self, name: &str, addresses: &[IpAddr]) -> Result<NodeId, SimError> {
        self.add_node(name, addresses, NodeKind::Router)
    }

    fn add_node(
        &mut self,
        name: &str,
        addresses: &[IpAddr],
        kind: NodeKind,
    ) -> Result<NodeId, SimError> {
        if self.node_names.contains_key(name) {
            return Err(SimError::DuplicateNode(name.to_owned()));
        }
        for (i, addr) in addresses.iter().enumerate() {
            if let Some(&(owner, _)) = self.addr_owner.get(addr) {
                return Err(SimError::DuplicateAddress(
                    *addr,
                    self.nodes[owner].name.clone(),
                ));
            }
            if addresses[..i].contains(addr) {
                return Err(SimError::DuplicateAddress(*addr, name.to_owned()));
            }
        }
        let id = self.nodes.len();
        for (i, addr) in addresses.iter().enumerate() {
            self.addr_owner.insert(*addr, (id, i));
        }
        self.nodes.push(Node {
            name: name.to_owned(),
            ifaces: addresses
                .iter()
                .map(|&addr| Interface { addr, out: None })
                .collect(),
            addrs: addresses.to_vec(),
            routes: Vec::new(),
            kind,
            stats: NodeStats::default(),
        });
        self.node_names.insert(name.to_owned(), id);
        Ok(NodeId(id))
    }

    /// Join the interfaces with addresses `a` and `b`. Each direction has its own
    /// configuration and its own random stream, derived from the seed and the link's
    /// name, so adding a link never changes what happens on the others.
    pub fn add_link(
        &mut self,
        name: &str,
        a: IpAddr,
        b: IpAddr,
        a_to_b: LinkConfig,
        b_to_a: LinkConfig,
    ) -> Result<LinkId, SimError> {
        if self.link_names.contains_key(name) {
            return Err(SimError::DuplicateLink(name.to_owned()));
        }
        let ends = [a, b].map(|addr| self.addr_owner.get(&addr).copied().ok_or(addr));
        let [end_a, end_b] = match ends {
            [Ok(x), Ok(y)] => [x, y],
            [Err(addr), _] | [_, Err(addr)] => return Err(SimError::UnknownAddress(addr)),
        };
        if end_a.0 == end_b.0 {
            return Err(SimError::SelfLoop(
                name.to_owned(),
                self.nodes[end_a.0].name.clone(),
            ));
        }
        for (node, iface) in [end_a, end_b] {
            let interface = &self.nodes[node].ifaces[iface];
            if let Some(dir) = interface.out {
                return Err(SimError::InterfaceInUse(
                    interface.addr,
                    self.links[dir / 2].name.clone(),
                ));
            }
        }
        let link = self.links.len();
        self.nodes[end_a.0].ifaces[end_a.1].out = Some(2 * link);
        self.nodes[end_b.0].ifaces[end_b.1].out = Some(2 * link + 1);
        self.dirs.push(DirState::new(
            a_to_b,
            derive_seed(self.seed, &format!("link/{name}/a->b")),
        ));
        self.dirs.push(DirState::new(
            b_to_a,
            derive_seed(self.seed, &format!("link/{name}/b->a")),
        ));
        self.links.push(Link {
            name: name.to_owned(),
            ends: [end_a, end_b],
        });
        self.link_names.insert(name.to_owned(), link);
        if let Some(sampler) = &mut self.sampler {
            for dir in [2 * link, 2 * link + 1] {
                sampler.prev_links.push(LinkStats::default());
                let series = link_series(&mut self.recorder, &self.links, &self.nodes, dir);
                sampler.link_series.push(series);
            }
        }
        Ok(LinkId(link))
    }

    /// Route `prefix/len` out of the node's interface with address `via`. Routes added
    /// this way take precedence over [`auto_routes`](Self::auto_routes) for the
    /// addresses they cover.
    pub fn add_route(
        &mut self,
        node: NodeId,
        prefix: IpAddr,
        len: u8,
        via: IpAddr,
    ) -> Result<(), SimError> {
        let n = &mut self.nodes[node.0];
        if len > routing::host_prefix_len(prefix) {
            return Err(SimError::BadPrefix { prefix, len });
        }
        let iface = n
            .ifaces
            .iter()
            .position(|i| i.addr == via)
            .ok_or_else(|| SimError::NotAnInterfaceOf(n.name.clone(), via))?;
        n.routes.push(Route { prefix, len, iface });
        Ok(())
    }

    /// Give every node a host route to every interface address it has no route for,
    /// along a shortest path (fewest links; ties go to the lower link index) through
    /// routers. A packet for an address is routed to enter its node through that
    /// address's own interface, so each address of a multi-homed host is one path.
    pub fn auto_routes(&mut self) {
        let mut adjacency: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); self.nodes.len()];
        for link in &self.links {
            let [(na, ia), (nb, ib)] = link.ends;
            adjacency[na].push((nb, ia, ib));
            adjacency[nb].push((na, ib, ia));
        }
        let targets: Vec<(IpAddr, usize, usize)> = self
            .addr_owner
            .iter()
            .map(|(&addr, &(node, iface))| (addr, node, iface))
            .collect();
        for (addr, owner, owner_iface) in targets {
            let Some(dir) = self.nodes[owner].ifaces[owner_iface].out else {
                continue;
            };
            let (peer, peer_iface) = self.links[dir / 2].ends[1 - dir % 2];
            // Breadth-first from the peer outwards: `first_hop[x]` is x's interface
            // towards the target.
            let mut first_hop: Vec<Option<usize>> = vec![None; self.nodes.len()];
            first_hop[peer] = Some(peer_iface);
            let mut frontier = vec![peer];
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for &u in &frontier {
                    if !matches!(self.nodes[u].kind, NodeKind::Router) {
                        continue;
                    }
                    for &(v, _u_iface, v_iface) in &adjacency[u] {
                        if v != owner && first_hop[v].is_none() {
                            first_hop[v] = Some(v_iface);
                            next.push(v);
                        }
                    }
                }
                frontier = next;
            }
            for (node, hop) in first_hop.into_iter().enumerate() {
                let Some(iface) = hop else { continue };
                let n = &mut self.nodes[node];
                if routing::lookup(&n.routes, addr).is_none() {
                    n.routes.push(Route {
                        prefix: addr,
                        len: routing::host_prefix_len(addr),
                        iface,
                    });
                }
            }
        }
    }

    /// Install a middlebox on one direction of a link, replacing any previous one.
    pub fn set_middlebox(
        &mut self,
        link: LinkId,
        dir: Direction,
        middlebox: impl Middlebox + 'static,
    ) {
        self.dirs[dir_index(link, dir)].middlebox = Some(Box::new(middlebox));
    }

    pub fn clear_middlebox(&mut self, link: LinkId, dir: Direction) {
        self.dirs[dir_index(link, dir)].middlebox = None;
    }

    /// Change a direction's configuration from now on. A packet being serialized
    /// finishes at the rate it started with.
    pub fn link_config_mut(&mut self, link: LinkId, dir: Direction) -> &mut LinkConfig {
        &mut self.dirs[dir_index(link, dir)].config
    }

    pub fn link_config(&self, link: LinkId, dir: Direction) -> &LinkConfig {
        &self.dirs[dir_index(link, dir)].config
    }

    /// Schedule a link state change. Going down loses every queued and propagating
    /// packet and drops new ones until the link comes back up.
    pub fn schedule_link_state(&mut self, at: Instant, link: LinkId, which: Directions, up: bool) {
        let at = at.total_micros().saturating_mul(1_000).max(self.now_ns);
        for dir in directions(link, which) {
            self.schedule(at, Event::LinkState { dir, up });
        }
    }

    /// Change a link's state now.
    pub fn set_link_state(&mut self, link: LinkId, which: Directions, up: bool) {
        for dir in directions(link, which) {
            self.apply_link_state(dir, up);
        }
    }

    pub fn is_link_up(&self, link: LinkId, dir: Direction) -> bool {
        self.dirs[dir_index(link, dir)].up
    }

    /// Record link, flow and host series every `interval` from now on (`None` stops).
    pub fn set_sample_interval(&mut self, interval: Option<Duration>) {
        self.sample_generation += 1;
        self.sampler = None;
        let Some(interval) = interval.filter(|i| *i > Duration::ZERO) else {
            return;
        };
        let link_series = (0..self.dirs.len())
            .map(|dir| link_series(&mut self.recorder, &self.links, &self.nodes, dir))
            .collect();
        self.sampler = Some(Sampler {
            interval_ns: ns(interval),
            generation: self.sample_generation,
            prev_links: self.dirs.iter().map(|d| d.stats).collect(),
            link_series,
            prev_flows: self
                .flows
                .iter()
                .map(|(id, f)| (*id, (f.goodput_bytes, f.payload_bytes)))
                .collect(),
        });
        let at = self.now_ns.saturating_add(ns(interval));
        let generation = self.sample_generation;
        self.schedule(at, Event::Sample { generation });
    }

    /// Call `tap(now, node, packet)` for every packet handed to a host.
    pub fn set_delivery_tap(&mut self, tap: impl FnMut(Instant, NodeId, &[u8]) + 'static) {
        self.tap = Some(Box::new(tap));
    }

    // ---- lookups --------------------------------------------------------------------

    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.node_names.get(name).map(|&i| NodeId(i))
    }

    pub fn node_name(&self, node: NodeId) -> &str {
        &self.nodes[node.0].name
    }

    pub fn node_addresses(&self, node: NodeId) -> &[IpAddr] {
        &self.nodes[node.0].addrs
    }

    pub fn link_id(&self, name: &str) -> Option<LinkId> {
        self.link_names.get(name).map(|&i| LinkId(i))
    }

    pub fn link_name(&self, link: LinkId) -> &str {
        &self.links[link.0].name
    }

    /// The host `node` as its concrete type, if it is a host of type `T`.
    pub fn host<T: Host>(&self, node: NodeId) -> Option<&T> {
        match &self.nodes.get(node.0)?.kind {
            NodeKind::Host(slot) => (slot.host.as_ref() as &dyn Any).downcast_ref(),
            NodeKind::Router => None,
        }
    }

    /// The host `node` as its concrete type, for application calls (write, close, ...).
    /// The simulator polls it again before the next event.
    pub fn host_mut<T: Host>(&mut self, node: NodeId) -> Option<&mut T> {
        match &mut self.nodes.get_mut(node.0)?.kind {
            NodeKind::Host(slot) => {
                let host = (slot.host.as_mut() as &mut dyn Any).downcast_mut()?;
                if !self.dirty.contains(&node.0) {
                    self.dirty.push(node.0);
                }
                Some(host)
            }
            NodeKind::Router => None,
        }
    }

    pub fn link_stats(&self, link: LinkId, dir: Direction) -> &LinkStats {
        &self.dirs[dir_index(link, dir)].stats
    }

    /// Packets and bytes queued (including the one being serialized).
    pub fn queue_len(&self, link: LinkId, dir: Direction) -> (usize, usize) {
        let d = &self.dirs[dir_index(link, dir)];
        (d.queue.len(), d.queued_bytes)
    }

    pub fn node_stats(&self, node: NodeId) -> &NodeStats {
        &self.nodes[node.0].stats
    }

    /// Every TCP flow seen arriving at a host, in 5-tuple order.
    pub fn flows(&self) -> &BTreeMap<FlowId, FlowStats> {
        &self.flows
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub fn recorder_mut(&mut self) -> &mut Recorder {
        &mut self.recorder
    }

    /// Events waiting, stale ones included.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    // ---- running --------------------------------------------------------------------

    /// Process the next event. Returns `false` if there was none.
    pub fn step(&mut self) -> bool {
        self.service_dirty();
        let Some(Scheduled { at, event, .. }) = self.events.pop() else {
            return false;
        };
        self.now_ns = self.now_ns.max(at);
        self.dispatch(event);
        true
    }

    /// Process every event up to and including `deadline`, then stand at `deadline`.
    pub fn run_until(&mut self, deadline: Instant) {
        let deadline_ns = deadline.total_micros().saturating_mul(1_000);
        loop {
            self.service_dirty();
            match self.events.peek() {
                Some(next) if next.at <= deadline_ns => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now_ns = self.now_ns.max(deadline_ns);
    }

    /// `run_until(now + span)`.
    pub fn run_for(&mut self, span: Duration) {
        let deadline = self.now() + span;
        self.run_until(deadline);
    }

    /// Run until `done(self)` holds (checked before each event) or `deadline` passes.
    /// Returns whether `done` held.
    pub fn run_until_condition(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Simulator) -> bool,
    ) -> bool {
        let deadline_ns = deadline.total_micros().saturating_mul(1_000);
        loop {
            self.service_dirty();
            if done(self) {
                return true;
            }
            match self.events.peek() {
                Some(next) if next.at <= deadline_ns => {
                    self.step();
                }
                _ => {
                    self.now_ns = self.now_ns.max(deadline_ns);
                    return done(self);
                }
            }
        }
    }

    /// Run until no events remain or `deadline` passes; returns whether it went idle.
    pub fn run_until_idle(&mut self, deadline: Instant) -> bool {
        let deadline_ns = deadline.total_micros().saturating_mul(1_000);
        loop {
            self.service_dirty();
            match self.events.peek() {
                None => return true,
                Some(next) if next.at <= deadline_ns => {
                    self.step();
                }
                Some(_) => {
                    self.now_ns = self.now_ns.max(deadline_ns);
                    return false;
                }
            }
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::HostTimer { node, generation } => self.on_host_timer(node, generation),
            Event::TxDone { dir, epoch } => self.on_tx_done(dir, epoch),
            Event::Arrive { dir, epoch, packet } => self.on_arrive(dir, epoch, packet),
            Event::LinkState { dir, up } => self.apply_link_state(dir, up),
            Event::Sample { generation } => self.on_sample(generation),
        }
    }

    // ---- hosts ----------------------------------------------------------------------

    fn service_dirty(&mut self) {
        while !self.dirty.is_empty() {
            let node = self.dirty.remove(0);
            self.service_host(node);
        }
    }

    /// Call `f` on a host with a fresh context. Returns `None` for routers.
    fn with_host<R>(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut dyn Host, &mut Context<'_>) -> R,
    ) -> Option<R> {
        let now = self.now();
        let Node {
            name, addrs, kind, ..
        } = &mut self.nodes[node];
        let NodeKind::Host(slot) = kind else {
            return None;
        };
        let mut cx = Context {
            now,
            node: NodeId(node),
            name: name.as_str(),
            addresses: addrs.as_slice(),
            recorder: &mut self.recorder,
            rng: &mut slot.rng,
        };
        Some(f(slot.host.as_mut(), &mut cx))
    }

    /// Drain the host's transmissions and re-arm its timer.
    fn service_host(&mut self, node: usize) {
        loop {
            let mut buf = self.pool.pop().unwrap_or_default();
            buf.clear();
            let sent = self
                .with_host(node, |host, cx| host.poll_transmit(cx, &mut buf))
                .unwrap_or(false);
            if !sent {
                self.recycle(buf);
                break;
            }
            self.host_send(node, buf);
        }
        let now_ns = self.now_ns;
        let NodeKind::Host(slot) = &mut self.nodes[node].kind else {
            return;
        };
        let timeout = slot.host.poll_timeout();
        if timeout != slot.timer {
            slot.timer_gen += 1;
            slot.timer = timeout;
            let generation = slot.timer_gen;
            if let Some(t) = timeout {
                let at = t.total_micros().saturating_mul(1_000).max(now_ns);
                self.schedule(at, Event::HostTimer { node, generation });
            }
        }
    }

    fn on_host_timer(&mut self, node: usize, generation: u64) {
        let NodeKind::Host(slot) = &mut self.nodes[node].kind else {
            return;
        };
        if slot.timer_gen != generation {
            return;
        }
        slot.timer = None;
        self.with_host(node, |host, cx| host.handle_timeout(cx));
        self.service_host(node);
    }

    /// A host emitted `packet`: leave by the interface owning its source address
    /// (source routing, as Linux policy routing does for multipath), else by route.
    fn host_send(&mut self, node: usize, packet: Vec<u8>) {
        self.nodes[node].stats.sent_packets += 1;
        let ip = match packet::parse_ip(&packet) {
            Ok(ip) => ip,
            Err(err) => {
                tracing::debug!(node = %self.nodes[node].name, %err, "host sent a malformed packet");
                return self.drop_at_node(node, packet, DropReason::Malformed);
            }
        };
        let n = &self.nodes[node];
        let out = n
            .ifaces
            .iter()
            .find(|i| i.addr == ip.src && i.out.is_some())
            .and_then(|i| i.out)
            .or_else(|| routing::lookup(&n.routes, ip.dst).and_then(|i| n.ifaces[i].out));
        match out {
            Some(dir) => self.offer(dir, packet),
            None => self.drop_at_node(node, packet, DropReason::NoRoute),
        }
    }

    fn drop_at_node(&mut self, node: usize, packet: Vec<u8>, reason: DropReason) {
        self.nodes[node].stats.drops.add(reason, 1);
        self.recycle(packet);
    }

    fn recycle(&mut self, packet: Vec<u8>) {
        if self.pool.len() < POOL_LIMIT {
            self.pool.push(packet);
        }
    }

    // ---- links ----------------------------------------------------------------------

    /// A packet enters link direction `dir`.
    fn offer(&mut self, dir: usize, mut packet: Vec<u8>) {
        let now = self.now();
        let d = &mut self.dirs[dir];
        if d.up
            && let Some(middlebox) = &mut d.middlebox
            && middlebox.process(now, &mut packet) == Verdict::Drop
        {
            d.stats.drops.add(DropReason::Middlebox, 1);
            return self.recycle(packet);
        }
        match d.enqueue(packet) {
            Ok(()) => {
                d.stats.enqueued_packets += 1;
                if !d.transmitting {
                    self.start_tx(dir);
                }
            }
            Err((packet, reason)) => {
                d.stats.drops.add(reason, 1);
                self.recycle(packet);
            }
        }
    }

    /// Begin serializing the head of the queue now.
    fn start_tx(&mut self, dir: usize) {
        let d = &mut self.dirs[dir];
        let Some(head) = d.queue.front() else { return };
        // A rate that is zero forever leaves the packet queued; the next enqueue (after
        // a configuration change, say) tries again.
        if let Some(end) = d.config.serialization_end(self.now_ns, head.len()) {
            d.transmitting = true;
            d.tx_start_ns = self.now_ns;
            let epoch = d.epoch;
            self.schedule(end, Event::TxDone { dir, epoch });
        }
    }

    fn on_tx_done(&mut self, dir: usize, epoch: u32) {
        let d = &mut self.dirs[dir];
        if d.epoch != epoch {
            return;
        }
        match d.depart(self.now_ns) {
            Err((packet, reason)) => {
                d.stats.drops.add(reason, 1);
                self.recycle(packet);
            }
            Ok(departure) => {
                let base = self.now_ns.saturating_add(ns(d.config.delay));
                for (packet, extra) in departure.copies.into_iter().flatten() {
                    self.dirs[dir].in_flight += 1;
                    self.schedule(
                        base.saturating_add(extra),
                        Event::Arrive { dir, epoch, packet },
                    );
                }
            }
        }
        self.start_tx(dir);
    }

    fn on_arrive(&mut self, dir: usize, epoch: u32, packet: Vec<u8>) {
        let d = &mut self.dirs[dir];
        if d.epoch != epoch {
            // Counted as lost when the link went down.
            return self.recycle(packet);
        }
        d.in_flight -= 1;
        d.stats.delivered_packets += 1;
        d.stats.delivered_bytes += packet.len() as u64;
        let (node, _iface) = self.links[dir / 2].ends[1 - dir % 2];
        match self.nodes[node].kind {
            NodeKind::Router => self.forward(node, packet),
            NodeKind::Host(_) => self.deliver(node, packet),
        }
    }

    fn apply_link_state(&mut self, dir: usize, up: bool) {
        let d = &mut self.dirs[dir];
        if up {
            d.up = true;
            return;
        }
        if !d.up {
            return;
        }
        let lost: Vec<Vec<u8>> = d.go_down().collect();
        tracing::debug!(link = %self.links[dir / 2].name, dir, lost = lost.len(), "link down");
        for packet in lost {
            self.recycle(packet);
        }
    }

    // ---- nodes ----------------------------------------------------------------------

    fn forward(&mut self, node: usize, mut packet: Vec<u8>) {
        let ip = match packet::parse_ip(&packet) {
            Ok(ip) => ip,
            Err(_) => return self.drop_at_node(node, packet, DropReason::Malformed),
        };
        let n = &mut self.nodes[node];
        if n.addrs.contains(&ip.dst) {
            return self.drop_at_node(node, packet, DropReason::NotForHost);
        }
        if !packet::decrement_ttl(&mut packet, &ip) {
            return self.drop_at_node(node, packet, DropReason::TtlExpired);
        }
        let out = routing::lookup(&n.routes, ip.dst).and_then(|i| n.ifaces[i].out);
        match out {
            Some(dir) => {
                n.stats.received_packets += 1;
                self.offer(dir, packet);
            }
            None => self.drop_at_node(node, packet, DropReason::NoRoute),
        }
    }

    fn deliver(&mut self, node: usize, packet: Vec<u8>) {
        let ip = match packet::parse_ip(&packet) {
            Ok(ip) => ip,
            Err(_) => return self.drop_at_node(node, packet, DropReason::Malformed),
        };
        if !self.nodes[node].addrs.contains(&ip.dst) {
            return self.drop_at_node(node, packet, DropReason::NotForHost);
        }
        self.nodes[node].stats.received_packets += 1;
        if let Ok(tcp) = packet::parse_tcp(&packet, &ip) {
            self.flows
                .entry(tcp.flow)
                .or_default()
                .on_segment(tcp.seq, tcp.payload_len);
        }
        let now = self.now();
        if let Some(tap) = &mut self.tap {
            tap(now, NodeId(node), &packet);
        }
        self.with_host(node, |host, cx| host.handle_packet(cx, &packet));
        self.recycle(packet);
        self.service_host(node);
    }

    // ---- sampling -------------------------------------------------------------------

    fn on_sample(&mut self, generation: u64) {
        let now = self.now();
        let Some(sampler) = &mut self.sampler else {
            return;
        };
        if sampler.generation != generation {
            return;
        }
        let secs = sampler.interval_ns as f64 / 1e9;
        for (dir, d) in self.dirs.iter().enumerate() {
            let prev = &mut sampler.prev_links[dir];
            let ids = &sampler.link_series[dir];
            let bytes = d.stats.delivered_bytes - prev.delivered_bytes;
            self.recorder
                .record_id(ids.throughput, now, bytes as f64 * 8.0 / secs);
            self.recorder
                .record_id(ids.queue_bytes, now, d.queued_bytes as f64);
            self.recorder
                .record_id(ids.queue_packets, now, d.queue.len() as f64);
            for (reason, id) in DropReason::LINK.into_iter().zip(ids.drops) {
                let n = d.stats.drops.get(reason) - prev.drops.get(reason);
                self.recorder.record_id(id, now, n as f64);
            }
            *prev = d.stats;
        }
        for (flow, stats) in &self.flows {
            let prev = sampler.prev_flows.entry(*flow).or_insert((0, 0));
            let goodput = (stats.goodput_bytes - prev.0) as f64 * 8.0 / secs;
            let payload = (stats.payload_bytes - prev.1) as f64 * 8.0 / secs;
            *prev = (stats.goodput_bytes, stats.payload_bytes);
            self.recorder
                .record(now, &format!("flow/{flow}/goodput_bps"), goodput);
            self.recorder
                .record(now, &format!("flow/{flow}/payload_bps"), payload);
        }
        let interval = sampler.interval_ns;
        for node in 0..self.nodes.len() {
            if self
                .with_host(node, |host, cx| host.on_sample(cx))
                .is_some()
            {
                self.service_host(node);
            }
        }
        // Keep ticking only while something else can still happen, so a finished
        // simulation goes idle.
        if !self.events.is_empty() {
            self.schedule(
                self.now_ns.saturating_add(interval),
                Event::Sample { generation },
            );
        }
    }
}

fn dir_index(link: LinkId, dir: Direction) -> usize {
    match dir {
        Direction::AToB => 2 * link.0,
        Direction::BToA => 2 * link.0 + 1,
    }
}

fn directions(link: LinkId, which: Directions) -> Vec<usize> {
    match which {
        Directions::Both => vec![2 * link.0, 2 * link.0 + 1],
        Directions::Only(dir) => vec![dir_index(link, dir)],
    }
}

/// Series names for a direction: `link/{link}/{from}->{to}/{metric}`.
fn link_series(recorder: &mut Recorder, links: &[Link], nodes: &[Node], dir: usize) -> LinkSeries {
    let link = &links[dir / 2];
    let from = &nodes[link.ends[dir % 2].0].name;
    let to = &nodes[link.ends[1 - dir % 2].0].name;
    let prefix = format!("link/{}/{from}->{to}", link.name);
    let mut id = |metric: &str| recorder.series_id(&format!("{prefix}/{metric}"));
    LinkSeries {
        throughput: id("throughput_bps"),
        queue_bytes: id("queue_bytes"),
        queue_packets: id("queue_packets"),
        drops: DropReason::LINK.map(|r| id(&format!("drops_{}", r.name()))),
    }
}

/// A seed for one random stream: the simulation seed mixed with a stable hash of the
/// stream's name (FNV-1a, then SplitMix64 finalisation).
pub(crate) fn derive_seed(seed: u64, name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ hash;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
