//! Scenario files (TOML): hosts, routers, links with their impairments and schedules,
//! traffic, duration and seed. Parsing validates everything (units, references,
//! duplicates) and reports errors naming the item and the field; [`Scenario::build`]
//! turns a scenario into a [`Simulator`] with hosts from the caller's factory.
//!
//! The traffic list is only described here: the applications that generate it belong
//! to the TCP/MPTCP crates, which read [`Scenario::flows`].
//!
//! ```toml
//! seed = 1
//! duration = "30s"
//! sample_interval = "100ms"
//!
//! [[host]]
//! name = "client"
//! addresses = ["10.0.1.1"]
//!
//! [[link]]
//! name = "wifi"
//! a = "10.0.1.1"          # an interface address, or a node with one interface
//! b = "server"
//! rate = "20mbit"
//! delay = "10ms"
//! queue = "100 packets"
//! loss = "0.1%"
//! [link.b_to_a]           # overrides for one direction
//! rate = "5mbit"
//! [[link.events]]
//! at = "5s"
//! state = "down"
//!
//! [[flow]]
//! from = "client"
//! to = "server:80"
//! bytes = 10_000_000
//! ```

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use mptcp_proto::{Duration, Instant};
use serde::Deserialize;

use crate::host::Host;
use crate::link::{CapacityTrace, LinkConfig, LossModel, Rate, Reorder};
use crate::sim::{Direction, Directions, SimError, Simulator};
use crate::units::{self, UnitError};

/// Why a scenario cannot be loaded or built.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scenario is not valid TOML for this format: {0}")]
    Toml(#[from] toml::de::Error),
    /// A semantic error, naming the item and field: "link 'wifi': rate '10 mbps' ...".
    #[error("{0}")]
    Invalid(String),
    #[error("building the network: {0}")]
    Topology(#[from] SimError),
}

fn invalid(msg: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid(msg.into())
}

/// A host to be created by the caller's factory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostSpec {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// Free-form settings for the host implementation (`[host.options]`).
    pub options: toml::Table,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouteSpec {
    pub prefix: IpAddr,
    pub len: u8,
    /// Address of the router's own interface to send through.
    pub via: IpAddr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouterSpec {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// Explicit routes; everything else is routed by shortest path.
    pub routes: Vec<RouteSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LinkEvent {
    pub at: Instant,
    pub directions: Directions,
    pub up: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    pub name: String,
    pub a: IpAddr,
    pub b: IpAddr,
    pub a_to_b: LinkConfig,
    pub b_to_a: LinkConfig,
    pub events: Vec<LinkEvent>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowKind {
    Tcp,
    Mptcp,
}

/// One application flow: `from` connects to `to` and sends `bytes` (or runs forever).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowSpec {
    pub from: String,
    pub to: String,
    /// Set when the file named the destination by address rather than host name.
    pub to_addr: Option<IpAddr>,
    pub port: u16,
    pub bytes: Option<u64>,
    pub start: Instant,
    pub kind: FlowKind,
    pub options: toml::Table,
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub seed: u64,
    pub duration: Option<Duration>,
    pub sample_interval: Option<Duration>,
    pub hosts: Vec<HostSpec>,
    pub routers: Vec<RouterSpec>,
    pub links: Vec<LinkSpec>,
    pub flows: Vec<FlowSpec>,
}

// ---- raw serde shapes -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    seed: Option<u64>,
    duration: Option<String>,
    sample_interval: Option<String>,
    #[serde(default, rename = "host")]
    hosts: Vec<RawHost>,
    #[serde(default, rename = "router")]
    routers: Vec<RawRouter>,
    #[serde(default, rename = "link")]
    links: Vec<RawLink>,
    #[serde(default, rename = "flow")]
    flows: Vec<RawFlow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    addresses: Vec<String>,
    #[serde(default)]
    options: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    name: String,
    addresses: Vec<String>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    to: String,
    via: String,
}

/// A number or a string such as "1%".
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Prob {
    Float(f64),
    Int(i64),
    Text(String),
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct RawDir {
    rate: Option<String>,
    delay: Option<String>,
    queue: Option<String>,
    loss: Option<Prob>,
    gilbert_elliott: Option<RawGilbert>,
    reorder: Option<RawReorder>,
    duplicate: Option<Prob>,
    corrupt: Option<Prob>,
    trace: Option<RawTrace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    name: String,
    a: String,
    b: String,
    rate: Option<String>,
    delay: Option<String>,
    queue: Option<String>,
    loss: Option<Prob>,
    gilbert_elliott: Option<RawGilbert>,
    reorder: Option<RawReorder>,
    duplicate: Option<Prob>,
    corrupt: Option<Prob>,
    trace: Option<RawTrace>,
    a_to_b: Option<RawDir>,
    b_to_a: Option<RawDir>,
    #[serde(default)]
    events: Vec<RawEvent>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawGilbert {
    p: Prob,
    r: Prob,
    loss_good: Option<Prob>,
    loss_bad: Option<Prob>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawReorder {
    probability: Prob,
    delay: String,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    steps: Option<Vec<(String, String)>>,
    file: Option<String>,
    #[serde(default, rename = "loop")]
    repeat: bool,
    period: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: String,
    state: String,
    direction: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    from: String,
    to: String,
    bytes: Option<u64>,
    start: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    options: toml::Table,
}

// ---- validation ---------------------------------------------------------------------

/// Formats unit errors as "{item}: {field} {error}".
struct Ctx<'a> {
    item: &'a str,
}

impl Ctx<'_> {
    fn wrap(&self, field: &str, e: UnitError) -> ScenarioError {
        invalid(format!("{}: {field} {e}", self.item))
    }
    fn rate(&self, field: &str, s: &str) -> Result<Rate, ScenarioError> {
        units::parse_rate(s).map_err(|e| self.wrap(field, e))
    }
    fn duration(&self, field: &str, s: &str) -> Result<Duration, ScenarioError> {
        units::parse_duration(s).map_err(|e| self.wrap(field, e))
    }
    fn prob(&self, field: &str, p: &Prob) -> Result<f64, ScenarioError> {
        let value = match p {
            Prob::Float(f) => *f,
            Prob::Int(i) => *i as f64,
            Prob::Text(s) => {
                return units::parse_probability_str(s).map_err(|e| self.wrap(field, e));
            }
        };
        units::check_probability(value).map_err(|()| {
            invalid(format!(
                "{}: {field} {value} is not a probability; it must be between 0 and 1",
                self.item
            ))
        })
    }
    fn addr(&self, field: &str, s: &str) -> Result<IpAddr, ScenarioError> {
        s.trim()
            .parse()
            .map_err(|_| invalid(format!("{}: {field} '{s}' is not an IP address", self.item)))
    }
}

impl std::str::FromStr for Scenario {
    type Err = ScenarioError;
    /// Parse with relative trace files resolved against the current directory.
    fn from_str(text: &str) -> Result<Self, ScenarioError> {
        Scenario::parse(text, Path::new("."))
    }
}

impl Scenario {
    /// Load a file; trace files are resolved relative to its directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_owned(),
            source,
        })?;
        Scenario::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parse `text`; relative trace files are resolved against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ScenarioError> {
        Scenario::parse_with_files(text, &|file: &str| {
            let path = base_dir.join(file);
            std::fs::read_to_string(&path).map_err(|source| ScenarioError::Io { path, source })
        })
    }

    /// Parse `text`, reading the trace files it names through `read_file` (given the
    /// name as written in the scenario). Built-in scenarios use it to serve their
    /// traces from memory.
    pub fn parse_with_files(
        text: &str,
        read_file: &dyn Fn(&str) -> Result<String, ScenarioError>,
    ) -> Result<Self, ScenarioError> {
        let raw: RawScenario = toml::from_str(text)?;
        let top = Ctx { item: "scenario" };
        let mut names = BTreeSet::new();
        let mut owners: Vec<(IpAddr, String)> = Vec::new();
        let mut add_node = |kind: &str, name: &str, addrs: &[String]| {
            let item = format!("{kind} '{name}'");
            if !names.insert(name.to_owned()) {
                return Err(invalid(format!("{item}: the name is used twice")));
            }
            let ctx = Ctx { item: &item };
            let mut out = Vec::new();
            for a in addrs {
                let addr = ctx.addr("address", a)?;
                if let Some((_, owner)) = owners.iter().find(|(x, _)| *x == addr) {
                    return Err(invalid(format!(
                        "{item}: address {addr} is already used by '{owner}'"
                    )));
                }
                owners.push((addr, name.to_owned()));
                out.push(addr);
            }
            Ok(out)
        };
        let mut hosts = Vec::new();
        for h in raw.hosts {
            let addresses = add_node("host", &h.name, &h.addresses)?;
            hosts.push(HostSpec {
                name: h.name,
                addresses,
                options: h.options,
            });
        }
        let mut routers = Vec::new();
        for r in raw.routers {
            let addresses = add_node("router", &r.name, &r.addresses)?;
            let item = format!("router '{}'", r.name);
            let ctx = Ctx { item: &item };
            let mut routes = Vec::new();
            for route in &r.routes {
                let (prefix, len) = parse_prefix(&route.to).ok_or_else(|| {
                    invalid(format!(
                        "{item}: route to '{}' is not a prefix like 10.0.0.0/24",
                        route.to
                    ))
                })?;
                let via = ctx.addr("route via", &route.via)?;
                if !addresses.contains(&via) {
                    return Err(invalid(format!(
                        "{item}: route via {via} is not one of its addresses"
                    )));
                }
                routes.push(RouteSpec { prefix, len, via });
            }
            routers.push(RouterSpec {
                name: r.name,
                addresses,
                routes,
            });
        }
        let resolve_end = |item: &str, field: &str, s: &str| -> Result<IpAddr, ScenarioError> {
            if let Ok(addr) = s.trim().parse::<IpAddr>() {
                return if owners.iter().any(|(a, _)| *a == addr) {
                    Ok(addr)
                } else {
                    Err(invalid(format!(
                        "{item}: {field} address {addr} belongs to no host or router"
                    )))
                };
            }
            let addrs: Vec<IpAddr> = owners
                .iter()
                .filter(|(_, n)| n == s)
                .map(|(a, _)| *a)
                .collect();
            match addrs.as_slice() {
                [one] => Ok(*one),
                [] => Err(invalid(format!(
                    "{item}: {field} '{s}' is neither an address nor a node"
                ))),
                _ => Err(invalid(format!(
                    "{item}: {field} '{s}' has several addresses; name one of them"
                ))),
            }
        };
        let mut links = Vec::new();
        let mut link_names = BTreeSet::new();
        let mut used = BTreeSet::new();
        for l in raw.links {
            let item = format!("link '{}'", l.name);
            if !link_names.insert(l.name.clone()) {
                return Err(invalid(format!("{item}: the name is used twice")));
            }
            let a = resolve_end(&item, "a", &l.a)?;
            let b = resolve_end(&item, "b", &l.b)?;
            for end in [a, b] {
                if !used.insert(end) {
                    return Err(invalid(format!(
                        "{item}: interface {end} is already on another link"
                    )));
                }
            }
            let base = RawDir {
                rate: l.rate,
                delay: l.delay,
                queue: l.queue,
                loss: l.loss,
                gilbert_elliott: l.gilbert_elliott,
                reorder: l.reorder,
                duplicate: l.duplicate,
                corrupt: l.corrupt,
                trace: l.trace,
            };
            let a_to_b = direction_config(&item, &base, l.a_to_b.as_ref(), read_file)?;
            let b_to_a = direction_config(&item, &base, l.b_to_a.as_ref(), read_file)?;
            let ctx = Ctx { item: &item };
            let mut events = Vec::new();
            for e in &l.events {
                let at = Instant::ZERO + ctx.duration("event at", &e.at)?;
                let up = match e.state.as_str() {
                    "up" => true,
                    "down" => false,
                    other => {
                        return Err(invalid(format!(
                            "{item}: event state '{other}' is neither 'up' nor 'down'"
                        )));
                    }
                };
                let directions = match e.direction.as_deref() {
                    None | Some("both") => Directions::Both,
                    Some("a_to_b") => Directions::Only(Direction::AToB),
                    Some("b_to_a") => Directions::Only(Direction::BToA),
                    Some(other) => {
                        return Err(invalid(format!(
                            "{item}: event direction '{other}' is not 'both', 'a_to_b' or 'b_to_a'"
                        )));
                    }
                };
                events.push(LinkEvent { at, directions, up });
            }
            links.push(LinkSpec {
                name: l.name,
                a,
                b,
                a_to_b,
                b_to_a,
                events,
            });
        }
        let mut flows = Vec::new();
        for (i, f) in raw.flows.into_iter().enumerate() {
            let item = format!("flow {} ({} -> {})", i + 1, f.from, f.to);
            let ctx = Ctx { item: &item };
            let host_of = |addr: IpAddr| {
                hosts
                    .iter()
                    .find(|h| h.addresses.contains(&addr))
                    .map(|h| h.name.clone())
            };
            let is_host = |name: &str| hosts.iter().any(|h| h.name == name);
            let from = match f.from.parse::<IpAddr>() {
                Ok(addr) => host_of(addr),
                Err(_) => is_host(&f.from).then(|| f.from.clone()),
            }
            .ok_or_else(|| invalid(format!("{item}: from '{}' is not a host", f.from)))?;
            let (to, to_addr, port) = if let Ok(sa) = f.to.parse::<SocketAddr>() {
                let host = host_of(sa.ip()).ok_or_else(|| {
                    invalid(format!("{item}: to address {} belongs to no host", sa.ip()))
                })?;
                (host, Some(sa.ip()), sa.port())
            } else {
                let (name, port) = f.to.rsplit_once(':').ok_or_else(|| {
                    invalid(format!(
                        "{item}: to '{}' needs a port, like 'server:80'",
                        f.to
                    ))
                })?;
                let port: u16 = port.parse().map_err(|_| {
                    invalid(format!("{item}: to port '{port}' is not a port number"))
                })?;
                if !is_host(name) {
                    return Err(invalid(format!("{item}: to '{name}' is not a host")));
                }
                (name.to_owned(), None, port)
            };
            let kind = match f.kind.as_deref() {
                None | Some("tcp") => FlowKind::Tcp,
                Some("mptcp") => FlowKind::Mptcp,
                Some(other) => {
                    return Err(invalid(format!(
                        "{item}: kind '{other}' is neither 'tcp' nor 'mptcp'"
                    )));
                }
            };
            let start = Instant::ZERO
                + f.start
                    .as_deref()
                    .map(|s| ctx.duration("start", s))
                    .transpose()?
                    .unwrap_or_default();
            flows.push(FlowSpec {
                from,
                to,
                to_addr,
                port,
                bytes: f.bytes,
                start,
                kind,
                options: f.options,
            });
        }
        Ok(Scenario {
            seed: raw.seed.unwrap_or(0),
            duration: raw
                .duration
                .as_deref()
                .map(|d| top.duration("duration", d))
                .transpose()?,
            sample_interval: raw
                .sample_interval
                .as_deref()
                .map(|d| top.duration("sample_interval", d))
                .transpose()?,
            hosts,
            routers,
            links,
            flows,
        })
    }

    /// Build the network: hosts come from `host_factory`, routes not given explicitly
    /// are computed by shortest path, link events are scheduled and sampling is on if
    /// the scenario sets an interval.
    pub fn build(
        &self,
        mut host_factory: impl FnMut(&HostSpec) -> Box<dyn Host>,
    ) -> Result<Simulator, ScenarioError> {
        let mut sim = Simulator::new(self.seed);
        for h in &self.hosts {
            sim.add_host(&h.name, &h.addresses, host_factory(h))?;
        }
        for r in &self.routers {
            let id = sim.add_router(&r.name, &r.addresses)?;
            for route in &r.routes {
                sim.add_route(id, route.prefix, route.len, route.via)?;
            }
        }
        for l in &self.links {
            let id = sim.add_link(&l.name, l.a, l.b, l.a_to_b.clone(), l.b_to_a.clone())?;
            for e in &l.events {
                sim.schedule_link_state(e.at, id, e.directions, e.up);
            }
        }
        sim.auto_routes();
        sim.set_sample_interval(self.sample_interval);
        Ok(sim)
    }

    pub fn host(&self, name: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = s.trim().split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// The configuration of one direction: link-level fields overridden by the
/// direction's own table.
fn direction_config(
    item: &str,
    base: &RawDir,
    over: Option<&RawDir>,
    read_file: &dyn Fn(&str) -> Result<String, ScenarioError>,
) -> Result<LinkConfig, ScenarioError> {
    let pick = |f: fn(&RawDir) -> bool| over.filter(|o| f(o)).unwrap_or(base);
    let ctx = Ctx { item };
    let mut cfg = LinkConfig::default();
    if let Some(rate) = &pick(|d| d.rate.is_some()).rate {
        cfg.rate = Some(ctx.rate("rate", rate)?);
    }
    if let Some(delay) = &pick(|d| d.delay.is_some()).delay {
        cfg.delay = ctx.duration("delay", delay)?;
    }
    if let Some(queue) = &pick(|d| d.queue.is_some()).queue {
        let limit = units::parse_queue(queue).map_err(|e| ctx.wrap("queue", e))?;
        cfg.queue_packets = limit.packets;
        cfg.queue_bytes = limit.bytes;
    }
    let loss = pick(|d| d.loss.is_some()).loss.clone();
    let ge = pick(|d| d.gilbert_elliott.is_some())
        .gilbert_elliott
        .clone();
    cfg.loss = match (loss, ge) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "{item}: set either loss or gilbert_elliott, not both"
            )));
        }
        (Some(p), None) => LossModel::Bernoulli(ctx.prob("loss", &p)?),
        (None, Some(g)) => LossModel::GilbertElliott {
            p: ctx.prob("gilbert_elliott.p", &g.p)?,
            r: ctx.prob("gilbert_elliott.r", &g.r)?,
            loss_good: g
                .loss_good
                .as_ref()
                .map(|p| ctx.prob("gilbert_elliott.loss_good", p))
                .transpose()?
                .unwrap_or(0.0),
            loss_bad: g
                .loss_bad
                .as_ref()
                .map(|p| ctx.prob("gilbert_elliott.loss_bad", p))
                .transpose()?
                .unwrap_or(1.0),
        },
        (None, None) => LossModel::None,
    };
    if let Some(r) = &pick(|d| d.reorder.is_some()).reorder {
        cfg.reorder = Some(Reorder {
            probability: ctx.prob("reorder.probability", &r.probability)?,
            extra_delay: ctx.duration("reorder.delay", &r.delay)?,
        });
    }
    if let Some(p) = &pick(|d| d.duplicate.is_some()).duplicate {
        cfg.duplicate = ctx.prob("duplicate", p)?;
    }
    if let Some(p) = &pick(|d| d.corrupt.is_some()).corrupt {
        cfg.corrupt = ctx.prob("corrupt", p)?;
    }
    if let Some(t) = &pick(|d| d.trace.is_some()).trace {
        cfg.trace = Some(trace(&ctx, t, read_file)?);
    }
    Ok(cfg)
}

fn trace(
    ctx: &Ctx<'_>,
    t: &RawTrace,
    read_file: &dyn Fn(&str) -> Result<String, ScenarioError>,
) -> Result<CapacityTrace, ScenarioError> {
    let item = ctx.item;
    let steps: Vec<(Duration, Rate)> = match (&t.steps, &t.file) {
        (Some(steps), None) => steps
            .iter()
            .map(|(at, rate)| {
                Ok((
                    ctx.duration("trace step time", at)?,
                    ctx.rate("trace step rate", rate)?,
                ))
            })
            .collect::<Result<_, ScenarioError>>()?,
        (None, Some(file)) => {
            let text = read_file(file)?;
            parse_trace_csv(&text)
                .map_err(|e| invalid(format!("{item}: trace file {file}: {e}")))?
        }
        _ => {
            return Err(invalid(format!(
                "{item}: trace needs exactly one of 'steps' or 'file'"
            )));
        }
    };
    let period = match (&t.period, t.repeat) {
        (Some(p), _) => Some(ctx.duration("trace period", p)?),
        (None, true) => match steps.as_slice() {
            [.., (before, _), (last, _)] => Some(*last + (*last - *before)),
            _ => {
                return Err(invalid(format!(
                    "{item}: a looping trace with one step needs a 'period'"
                )));
            }
        },
        (None, false) => None,
    };
    CapacityTrace::new(steps, period).map_err(|e| invalid(format!("{item}: {e}")))
}

/// A capacity trace as CSV: `time,rate` per line. Times are seconds or carry a unit
/// ("1.5" or "1500ms"); rates are bits per second or carry a unit ("5e6" or "5mbit").
/// Blank lines, `#` comments and a header line are skipped.
pub fn parse_trace_csv(text: &str) -> Result<Vec<(Duration, Rate)>, String> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((time, rate)) = line.split_once([',', ';', '\t']) else {
            return Err(format!(
                "line {}: expected 'time,rate', got '{line}'",
                n + 1
            ));
        };
        let (time, rate) = (time.trim(), rate.trim());
        let t = match time.parse::<f64>() {
            Ok(secs) if secs >= 0.0 && secs.is_finite() => Duration::from_secs_f64(secs),
            Ok(_) => return Err(format!("line {}: time '{time}' is negative", n + 1)),
            Err(_) => match units::parse_duration(time) {
                Ok(d) => d,
                // A header line such as "time_s,rate_bps".
                Err(_) if steps.is_empty() => continue,
                Err(e) => return Err(format!("line {}: {e}", n + 1)),
            },
        };
        let r = match rate.parse::<f64>() {
            Ok(bps) if bps >= 0.0 && bps.is_finite() => Rate(bps.round() as u64),
            Ok(_) => return Err(format!("line {}: rate '{rate}' is negative", n + 1)),
            Err(_) => units::parse_rate(rate).map_err(|e| format!("line {}: {e}", n + 1))?,
        };
        steps.push((t, r));
    }
    Ok(steps)
}
