//! Scenario files: the examples parse and build, values land where they should, and
//! mistakes are reported with the item, the field and a hint.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use mptcp_proto::{Duration, Instant};
use mptcp_sim::testing::{Blaster, Sink};
use mptcp_sim::{
    Direction, Directions, FlowKind, Host, LinkConfig, LossModel, Rate, Scenario, ScenarioError,
};

fn scenarios() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
}

fn sinks(_: &mptcp_sim::HostSpec) -> Box<dyn Host> {
    Box::new(Sink::default())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn error(toml: &str) -> String {
    match toml.parse::<Scenario>() {
        Ok(_) => panic!("accepted: {toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn two_paths_example_parses_with_every_value_in_place() {
    let s = Scenario::from_file(scenarios().join("two-paths.toml")).unwrap();
    assert_eq!(s.seed, 1);
    assert_eq!(s.duration, Some(Duration::from_secs(30)));
    assert_eq!(s.sample_interval, Some(Duration::from_millis(100)));
    assert_eq!(
        s.host("client").unwrap().addresses,
        [ip("10.1.0.1"), ip("10.2.0.1")]
    );
    let wifi = &s.links[0];
    assert_eq!(
        (wifi.name.as_str(), wifi.a, wifi.b),
        ("wifi", ip("10.1.0.1"), ip("10.1.0.254"))
    );
    let expected = LinkConfig {
        loss: LossModel::Bernoulli(0.001),
        queue_packets: Some(100),
        ..LinkConfig::new(Rate::mbit(20), Duration::from_millis(10))
    };
    assert_eq!(wifi.a_to_b, expected);
    assert_eq!(wifi.b_to_a, expected);
    assert_eq!(wifi.events.len(), 2);
    assert_eq!(wifi.events[0].at, Instant::from_secs(10));
    assert!(!wifi.events[0].up);
    assert_eq!(wifi.events[0].directions, Directions::Both);
    let lte = &s.links[1];
    assert_eq!(lte.a_to_b.queue_bytes, Some(150 * 1024));
    assert_eq!(lte.a_to_b.queue_packets, None);
    assert_eq!(
        lte.a_to_b.loss,
        LossModel::GilbertElliott {
            p: 0.001,
            r: 0.3,
            loss_good: 0.0,
            loss_bad: 1.0
        }
    );
    // The trace is only on the downlink; the link-level rate still applies.
    assert!(lte.a_to_b.trace.is_none());
    assert!(lte.b_to_a.trace.is_some());
    assert_eq!(lte.b_to_a.rate, Some(Rate::mbit(10)));
    assert_eq!(s.links[2].b, ip("10.0.0.1"));
    let flow = &s.flows[0];
    assert_eq!(
        (
            flow.from.as_str(),
            flow.to.as_str(),
            flow.port,
            flow.bytes,
            flow.kind,
            flow.start
        ),
        (
            "client",
            "server",
            80,
            Some(50_000_000),
            FlowKind::Mptcp,
            Instant::from_millis(100)
        )
    );
}

#[test]
fn shared_bottleneck_example_parses_and_builds() {
    let s = Scenario::from_file(scenarios().join("shared-bottleneck.toml")).unwrap();
    assert_eq!(s.hosts.len(), 4);
    assert_eq!(s.routers.len(), 2);
    assert_eq!(s.flows.len(), 2);
    assert_eq!(s.flows[1].start, Instant::from_secs(1));
    assert_eq!(s.flows[0].bytes, None);
    let sim = s.build(sinks).unwrap();
    let link = sim.link_id("bottleneck").unwrap();
    assert_eq!(
        sim.link_config(link, Direction::AToB).queue_packets,
        Some(50)
    );
}

#[test]
fn built_two_paths_network_routes_each_client_address_over_its_own_link() {
    let s = Scenario::from_file(scenarios().join("two-paths.toml")).unwrap();
    let mut sim = s
        .build(|spec| -> Box<dyn Host> {
            if spec.name == "server" {
                // Answers to both client addresses: one packet each.
                let dst_wifi = SocketAddr::new(ip("10.1.0.1"), 5000);
                let dst_lte = SocketAddr::new(ip("10.2.0.1"), 5000);
                let src = SocketAddr::new(spec.addresses[0], 80);
                Box::new(TwoBlasts(
                    Blaster::new(src, dst_wifi, 1500, None, 1),
                    Blaster::new(src, dst_lte, 1500, None, 1),
                ))
            } else {
                Box::new(Sink::keeping())
            }
        })
        .unwrap();
    sim.run_until(Instant::from_secs(1));
    let wifi = sim.link_id("wifi").unwrap();
    let lte = sim.link_id("lte").unwrap();
    assert_eq!(sim.link_stats(wifi, Direction::BToA).delivered_packets, 1);
    assert_eq!(sim.link_stats(lte, Direction::BToA).delivered_packets, 1);
    let client = sim.node_id("client").unwrap();
    let times: Vec<Instant> = sim
        .host::<Sink>(client)
        .unwrap()
        .arrivals
        .iter()
        .map(|a| a.0)
        .collect();
    // core: 12 us + 1 ms; wifi: 600 us + 10 ms; lte downlink at the trace's 10 Mbit/s:
    // 1.2 ms + 40 ms (both leave the server back to back: the second waits 12 us).
    assert_eq!(
        times,
        [Instant::from_micros(11_612), Instant::from_micros(42_224)]
    );
}

struct TwoBlasts(Blaster, Blaster);

impl Host for TwoBlasts {
    fn handle_packet(&mut self, _: &mut mptcp_sim::Context<'_>, _: &[u8]) {}
    fn poll_transmit(&mut self, cx: &mut mptcp_sim::Context<'_>, buf: &mut Vec<u8>) -> bool {
        self.0.poll_transmit(cx, buf) || self.1.poll_transmit(cx, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _: &mut mptcp_sim::Context<'_>) {}
}

const BASE: &str = r#"
[[host]]
name = "client"
addresses = ["10.0.0.1"]
[[host]]
name = "server"
addresses = ["10.0.0.2"]
"#;

fn with_link(fields: &str) -> String {
    format!("{BASE}\n[[link]]\nname = \"wifi\"\na = \"client\"\nb = \"server\"\n{fields}\n")
}

#[test]
fn bad_units_name_the_link_the_field_and_a_fix() {
    assert_eq!(
        error(&with_link("rate = \"10 mbps\"")),
        "link 'wifi': rate '10 mbps' is not a rate; try '10mbit'"
    );
    assert_eq!(
        error(&with_link("delay = \"20\"")),
        "link 'wifi': delay '20' is not a duration; add a unit, e.g. '20ms'"
    );
    assert_eq!(
        error(&with_link("queue = \"big\"")),
        "link 'wifi': queue 'big' is not a queue limit; try '100 packets', '64kb' or both, comma-separated"
    );
    assert_eq!(
        error(&with_link("loss = 1.5")),
        "link 'wifi': loss 1.5 is not a probability; it must be between 0 and 1"
    );
    assert_eq!(
        error(&with_link("[link.b_to_a]\nrate = \"fast\"")),
        "link 'wifi': rate 'fast' is not a rate; write a number and a unit, e.g. '10mbit'"
    );
    assert_eq!(
        error(&with_link(
            "loss = 0.1\ngilbert_elliott = { p = 0.1, r = 0.5 }"
        )),
        "link 'wifi': set either loss or gilbert_elliott, not both"
    );
    assert_eq!(
        error(&with_link(
            "[[link.events]]\nat = \"1s\"\nstate = \"sideways\""
        )),
        "link 'wifi': event state 'sideways' is neither 'up' nor 'down'"
    );
    assert_eq!(
        error(&with_link("trace = { steps = [[\"1s\", \"5mbit\"]] }")),
        "link 'wifi': capacity trace must start at 0s, its first step is at 1.000s"
    );
}

#[test]
fn bad_references_are_reported() {
    assert_eq!(
        error(&format!(
            "{BASE}\n[[link]]\nname = \"x\"\na = \"10.0.0.1\"\nb = \"10.0.0.9\"\n"
        )),
        "link 'x': b address 10.0.0.9 belongs to no host or router"
    );
    assert_eq!(
        error(&format!(
            "{BASE}\n[[host]]\nname = \"client\"\naddresses = []\n"
        )),
        "host 'client': the name is used twice"
    );
    assert_eq!(
        error(&format!(
            "{BASE}\n[[router]]\nname = \"r\"\naddresses = [\"10.0.0.2\"]\n"
        )),
        "router 'r': address 10.0.0.2 is already used by 'server'"
    );
    assert_eq!(
        error(&format!(
            "{BASE}\n[[flow]]\nfrom = \"client\"\nto = \"nowhere:80\"\n"
        )),
        "flow 1 (client -> nowhere:80): to 'nowhere' is not a host"
    );
    assert_eq!(
        error(&format!(
            "{BASE}\n[[flow]]\nfrom = \"client\"\nto = \"server\"\n"
        )),
        "flow 1 (client -> server): to 'server' needs a port, like 'server:80'"
    );
    assert_eq!(
        error(&format!(
            "{BASE}\n[[flow]]\nfrom = \"client\"\nto = \"server:80\"\nkind = \"udp\"\n"
        )),
        "flow 1 (client -> server:80): kind 'udp' is neither 'tcp' nor 'mptcp'"
    );
    let typo = error(&with_link("rtae = \"10mbit\""));
    assert!(typo.contains("unknown field `rtae`"), "{typo}");
}

#[test]
fn flow_destination_by_address_and_per_direction_overrides() {
    let text = format!(
        "{}\n[link.b_to_a]\nrate = \"2mbit\"\nloss = \"5%\"\n[[link.events]]\nat = \"3s\"\nstate = \"down\"\ndirection = \"b_to_a\"\n\n[[flow]]\nfrom = \"10.0.0.1\"\nto = \"10.0.0.2:443\"\n",
        with_link("rate = \"12mbit\"\ndelay = \"10ms\"")
    );
    let s: Scenario = text.parse().unwrap();
    let link = &s.links[0];
    assert_eq!(link.a_to_b.rate, Some(Rate::mbit(12)));
    assert_eq!(link.a_to_b.loss, LossModel::None);
    assert_eq!(link.b_to_a.rate, Some(Rate::mbit(2)));
    assert_eq!(link.b_to_a.delay, Duration::from_millis(10));
    assert_eq!(link.b_to_a.loss, LossModel::Bernoulli(0.05));
    assert_eq!(link.events[0].directions, Directions::Only(Direction::BToA));
    assert_eq!(s.flows[0].from, "client");
    assert_eq!(s.flows[0].to, "server");
    assert_eq!(s.flows[0].to_addr, Some(ip("10.0.0.2")));
    assert_eq!(s.flows[0].port, 443);
    assert_eq!(s.flows[0].kind, FlowKind::Tcp);
}

#[test]
fn scenario_built_link_times_a_packet_exactly() {
    let s: Scenario = with_link("rate = \"12mbit\"\ndelay = \"10ms\"")
        .parse()
        .unwrap();
    let mut sim = s
        .build(|spec| -> Box<dyn Host> {
            if spec.name == "client" {
                let src = SocketAddr::new(ip("10.0.0.1"), 1);
                let dst = SocketAddr::new(ip("10.0.0.2"), 2);
                Box::new(Blaster::new(src, dst, 1500, None, 1))
            } else {
                Box::new(Sink::keeping())
            }
        })
        .unwrap();
    sim.run_until(Instant::from_secs(1));
    let server = sim.node_id("server").unwrap();
    assert_eq!(
        sim.host::<Sink>(server).unwrap().arrivals[0].0,
        Instant::from_millis(11)
    );
}

#[test]
fn trace_csv_accepts_headers_comments_and_units() {
    let steps = mptcp_sim::scenario::parse_trace_csv("# c\ntime,rate\n0,1e6\n1.5s,2mbit\n\n3, 0\n")
        .unwrap();
    assert_eq!(
        steps,
        [
            (Duration::ZERO, Rate::mbit(1)),
            (Duration::from_millis(1500), Rate::mbit(2)),
            (Duration::from_secs(3), Rate(0)),
        ]
    );
    assert_eq!(
        mptcp_sim::scenario::parse_trace_csv("0,1e6\n1,lots\n").unwrap_err(),
        "line 2: 'lots' is not a rate; write a number and a unit, e.g. '10mbit'"
    );
}

#[test]
fn missing_trace_file_is_an_io_error_naming_the_path() {
    let text = with_link("trace = { file = \"nope.csv\" }");
    match Scenario::parse(&text, Path::new("/nonexistent")) {
        Err(ScenarioError::Io { path, .. }) => assert_eq!(path, Path::new("/nonexistent/nope.csv")),
        other => panic!("{other:?}"),
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text_is_an_error_not_a_panic(text in "\\PC{0,200}") {
            let _ = text.parse::<Scenario>();
        }

        #[test]
        fn damaged_example_files_are_errors_not_panics(
            cut in any::<prop::sample::Index>(),
            junk in "[\\[\\]=\"a-z0-9%., \n]{0,12}",
        ) {
            let text = std::fs::read_to_string(scenarios().join("two-paths.toml")).unwrap();
            let at = cut.index(text.len());
            let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            let damaged = format!("{}{junk}{}", &text[..at], &text[at..]);
            if let Ok(s) = Scenario::parse(&damaged, scenarios()) {
                let _ = s.build(sinks);
            }
        }
    }
}
