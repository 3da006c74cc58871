//! Path manager unit tests: exact actions per input.

use super::*;
use crate::time::Duration;

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
    open_slot(l, r, 0, local, remote)
}

fn open_slot(l: u8, r: u8, slot: u8, local: &str, remote: &str) -> PmAction {
    PmAction::OpenSubflow {
        key: key(l, r, slot),
        local: ip(local),
        remote: sock(remote),
        backup: false,
    }
}

fn key(l: u8, r: u8, slot: u8) -> PathKey {
    PathKey {
        local: AddrId(l),
        remote: AddrId(r),
        slot,
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
    pm.on_subflow_closed(Instant::ZERO, key(0, 2, 0));
    assert_eq!(drain(&mut pm), vec![open(2, "10.0.2.1", 0, "10.9.0.1:80")]);
    // Its retry is due in 500 ms but waits for a free slot: no wake-up while full.
    assert_eq!(
        pm.pending_retries().collect::<Vec<_>>(),
        vec![(key(0, 2, 0), Instant::from_millis(500))]
    );
    assert_eq!(pm.poll_timeout(), None);
    pm.handle_timeout(Instant::from_secs(1));
    assert_eq!(drain(&mut pm), vec![]);
    // A freed slot goes to a pair never tried before a retry.
    pm.on_subflow_closed(Instant::from_secs(2), key(1, 1, 0));
    assert_eq!(drain(&mut pm), vec![open(2, "10.0.2.1", 2, "10.9.2.1:80")]);
}

#[test]
fn remove_addr_closes_subflows_and_a_reannouncement_reopens_them() {
    let mut pm = client();
    pm.on_add_addr(AddrId(5), ip("10.9.5.1"), None);
    drain(&mut pm);
    pm.on_subflow_established(key(0, 5, 0));
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
            open(1, "10.9.1.1", 0, "10.0.0.1:5555"),
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

fn config(policy: PathPolicy) -> PmConfig {
    PmConfig {
        policy,
        ..PmConfig::default()
    }
}

fn opened_keys(actions: &[PmAction]) -> Vec<(u8, u8, u8, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            PmAction::OpenSubflow { key, backup, .. } => {
                Some((key.local.0, key.remote.0, key.slot, *backup))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn ndiffports_opens_n_minus_one_joins_on_the_initial_pair_only() {
    let mut pm = PathManager::new(
        config(PathPolicy::NDiffPorts { subflows: 4 }),
        ip("10.0.0.1"),
        sock("10.9.0.1:80"),
        false,
    );
    assert_eq!(
        drain(&mut pm),
        vec![
            open_slot(0, 0, 1, "10.0.0.1", "10.9.0.1:80"),
            open_slot(0, 0, 2, "10.0.0.1", "10.9.0.1:80"),
            open_slot(0, 0, 3, "10.0.0.1", "10.9.0.1:80"),
        ]
    );
    // Other addresses are remembered, not used.
    pm.add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false)
        .expect("free id");
    pm.on_add_addr(AddrId(1), ip("10.9.1.1"), None);
    assert_eq!(opened_keys(&drain(&mut pm)), vec![]);
    assert_eq!(pm.remote_addrs().count(), 2);
    assert_eq!(pm.live_subflows(), 4);
}

#[test]
fn ndiffports_beyond_eight_is_bounded_by_the_configured_limit() {
    let keys = |max_subflows| {
        let config = PmConfig {
            max_subflows,
            ..config(PathPolicy::NDiffPorts { subflows: 12 })
        };
        let mut pm = PathManager::new(config, ip("10.0.0.1"), sock("10.9.0.1:80"), false);
        opened_keys(&drain(&mut pm))
    };
    assert_eq!(
        keys(8),
        (1..8).map(|s| (0, 0, s, false)).collect::<Vec<_>>()
    );
    assert_eq!(
        keys(16),
        (1..12).map(|s| (0, 0, s, false)).collect::<Vec<_>>()
    );
    // Above the hard cap, clamped.
    assert_eq!(keys(1000).len(), 11);
    let config = PmConfig {
        max_subflows: 1000,
        ..config(PathPolicy::NDiffPorts { subflows: 200 })
    };
    let mut pm = PathManager::new(config, ip("10.0.0.1"), sock("10.9.0.1:80"), false);
    assert_eq!(
        opened_keys(&drain(&mut pm)).len(),
        crate::mptcp::MAX_SUBFLOWS - 1
    );
}

#[test]
fn backup_policy_marks_every_added_address_unless_some_are_designated() {
    let mut pm = PathManager::new(
        config(PathPolicy::Backup),
        ip("10.0.0.1"),
        sock("10.9.0.1:80"),
        false,
    );
    pm.add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false)
        .expect("free id");
    pm.on_add_addr(AddrId(1), ip("10.9.1.1"), None);
    assert_eq!(
        opened_keys(&drain(&mut pm)),
        vec![(1, 0, 0, true), (0, 1, 0, false), (1, 1, 0, true)]
    );

    let designated = PmConfig {
        backup_addrs: vec![ip("10.0.2.1")],
        ..config(PathPolicy::Backup)
    };
    let mut pm = PathManager::new(designated, ip("10.0.0.1"), sock("10.9.0.1:80"), false);
    pm.add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false)
        .expect("free id");
    pm.add_local_addr(Instant::ZERO, ip("10.0.2.1"), None, false)
        .expect("free id");
    assert_eq!(
        opened_keys(&drain(&mut pm)),
        vec![(1, 0, 0, false), (2, 0, 0, true)]
    );
    assert_eq!(
        pm.local_addrs().map(|l| l.backup).collect::<Vec<_>>(),
        vec![false, false, true]
    );

    // `--backup ADDR` works under full mesh too.
    let mesh = PmConfig {
        backup_addrs: vec![ip("10.0.1.1")],
        ..PmConfig::default()
    };
    let mut pm = PathManager::new(mesh, ip("10.0.0.1"), sock("10.9.0.1:80"), false);
    pm.add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false)
        .expect("free id");
    assert_eq!(opened_keys(&drain(&mut pm)), vec![(1, 0, 0, true)]);
}

#[test]
fn a_failed_subflow_is_retried_with_exponential_backoff_until_it_holds() {
    let config = PmConfig {
        retry_initial: Duration::from_millis(200),
        retry_max: Duration::from_millis(1500),
        ..PmConfig::default()
    };
    let mut pm = PathManager::new(config, ip("10.0.0.1"), sock("10.9.0.1:80"), false);
    pm.add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false)
        .expect("free id");
    let k = key(1, 0, 0);
    let reopen = vec![open(1, "10.0.1.1", 0, "10.9.0.1:80")];
    assert_eq!(drain(&mut pm), reopen);
    pm.on_subflow_established(k);

    // Established, then lost at 10 s: 200 ms, then each failed attempt doubles.
    let mut t = Instant::from_secs(10);
    let mut retries = Vec::new();
    for _ in 0..5 {
        pm.on_subflow_closed(t, k);
        assert_eq!(drain(&mut pm), vec![]);
        let at = pm.poll_timeout().expect("a retry is scheduled");
        pm.handle_timeout(at - Duration::from_micros(1));
        assert_eq!(drain(&mut pm), vec![], "not before its time");
        pm.handle_timeout(at);
        assert_eq!(drain(&mut pm), reopen);
        retries.push(at.saturating_since(t).total_millis());
        // The attempt fails 3 s later (SYN retries exhausted).
        t = at + Duration::from_secs(3);
    }
    assert_eq!(retries, vec![200, 400, 800, 1500, 1500]);

    // Once it holds, the backoff starts over.
    pm.on_subflow_established(k);
    pm.on_subflow_closed(Instant::from_secs(100), k);
    assert_eq!(pm.poll_timeout(), Some(Instant::from_millis(100_200)));
}

#[test]
fn without_self_healing_a_failed_pair_waits_for_make_after_break() {
    let config = PmConfig {
        self_heal: false,
        ..PmConfig::default()
    };
    let mut pm = PathManager::new(config, ip("10.0.0.1"), sock("10.9.0.1:80"), false);
    pm.on_add_addr(AddrId(1), ip("10.9.1.1"), None);
    drain(&mut pm);
    pm.on_subflow_closed(Instant::from_secs(1), key(0, 1, 0));
    assert_eq!(drain(&mut pm), vec![]);
    assert_eq!(pm.poll_timeout(), None);
    pm.handle_timeout(Instant::from_secs(100));
    assert_eq!(drain(&mut pm), vec![]);
    pm.retry_failed(Instant::from_secs(101));
    assert_eq!(drain(&mut pm), vec![open(0, "10.0.0.1", 1, "10.9.1.1:80")]);
}

#[test]
fn retries_stop_when_the_local_address_goes() {
    let mut pm = client();
    let id = pm
        .add_local_addr(Instant::ZERO, ip("10.0.1.1"), None, false)
        .expect("free id");
    drain(&mut pm);
    pm.on_subflow_closed(Instant::from_secs(1), key(1, 0, 0));
    assert_eq!(pm.pending_retries().count(), 1);
    pm.remove_local_addr(id).expect("known");
    assert_eq!(pm.pending_retries().count(), 0);
    assert_eq!(pm.poll_timeout(), None);
    pm.handle_timeout(Instant::from_secs(10));
    assert_eq!(
        opened_keys(&drain(&mut pm)),
        vec![],
        "nothing reopens from a removed address"
    );
    // A subflow reported closed after its address went is simply forgotten.
    pm.on_subflow_closed(Instant::from_secs(11), key(1, 0, 0));
    assert_eq!(pm.pending_retries().count(), 0);
}

#[test]
fn make_before_break_opens_the_replacement_while_the_old_subflow_lives() {
    let mut pm = client();
    pm.on_subflow_potentially_failed(PathKey::INITIAL);
    assert_eq!(
        drain(&mut pm),
        vec![open_slot(0, 0, 1, "10.0.0.1", "10.9.0.1:80")]
    );
    assert_eq!(pm.live_subflows(), 2);
    // Once per subflow.
    pm.on_subflow_potentially_failed(PathKey::INITIAL);
    assert_eq!(drain(&mut pm), vec![]);
    pm.on_subflow_established(key(0, 0, 1));
    // The old one is dropped: replaced, so not retried; the mesh is whole.
    pm.on_subflow_closed(Instant::from_secs(5), PathKey::INITIAL);
    assert_eq!(drain(&mut pm), vec![]);
    assert_eq!(pm.pending_retries().count(), 0);
    assert_eq!(pm.live_subflows(), 1);
    // The replacement fails in turn: it is now the pair's subflow and heals.
    pm.on_subflow_closed(Instant::from_secs(6), key(0, 0, 1));
    assert_eq!(
        pm.pending_retries().collect::<Vec<_>>(),
        vec![(key(0, 0, 1), Instant::from_millis(6_500))]
    );
}

#[test]
fn break_before_make_replaces_only_after_the_close() {
    let config = PmConfig {
        handover: Handover::BreakBeforeMake,
        ..PmConfig::default()
    };
    let mut pm = PathManager::new(config, ip("10.0.0.1"), sock("10.9.0.1:80"), false);
    pm.on_subflow_potentially_failed(PathKey::INITIAL);
    assert_eq!(drain(&mut pm), vec![]);
    pm.on_subflow_closed(Instant::from_secs(5), PathKey::INITIAL);
    assert_eq!(drain(&mut pm), vec![]);
    pm.handle_timeout(Instant::from_millis(5_500));
    assert_eq!(
        drain(&mut pm),
        vec![open_slot(0, 0, 0, "10.0.0.1", "10.9.0.1:80")]
    );
}

#[test]
fn the_initial_pair_is_not_healed_when_the_peer_set_flag_c() {
    let mut pm = PathManager::new(
        PmConfig::default(),
        ip("10.0.0.1"),
        sock("10.9.0.1:80"),
        true,
    );
    pm.on_subflow_potentially_failed(PathKey::INITIAL);
    pm.on_subflow_closed(Instant::from_secs(1), PathKey::INITIAL);
    assert_eq!(drain(&mut pm), vec![]);
    assert_eq!(pm.poll_timeout(), None);
}

#[test]
fn an_announced_address_is_remembered_until_a_slot_frees() {
    let config = PmConfig {
        max_subflows: 1,
        ..PmConfig::default()
    };
    let mut pm = PathManager::new(config, ip("10.0.0.1"), sock("10.9.0.1:80"), false);
    pm.on_add_addr(AddrId(4), ip("10.9.4.1"), None);
    assert_eq!(opened_keys(&drain(&mut pm)), vec![]);
    // The initial subflow dies: its retry and the new address compete for the slot;
    // the new address goes first (it was never tried), the retry waits.
    pm.on_subflow_closed(Instant::from_secs(3), PathKey::INITIAL);
    assert_eq!(drain(&mut pm), vec![open(0, "10.0.0.1", 4, "10.9.4.1:80")]);
    assert_eq!(pm.poll_timeout(), None);
    pm.on_subflow_closed(Instant::from_secs(4), key(0, 4, 0));
    // Both wait now; the earliest due (the initial pair, at 3.5 s) goes first.
    assert_eq!(pm.poll_timeout(), Some(Instant::from_millis(3_500)));
    pm.handle_timeout(Instant::from_millis(4_500));
    assert_eq!(drain(&mut pm), vec![open(0, "10.0.0.1", 0, "10.9.0.1:80")]);
}

#[test]
fn peer_opened_subflows_get_slots_and_are_forgotten_when_closed() {
    let config = PmConfig {
        open_subflows: false,
        ..PmConfig::default()
    };
    let mut pm = PathManager::new(config, ip("10.9.0.1"), sock("10.0.0.1:5555"), false);
    assert_eq!(pm.on_incoming_subflow(AddrId(0), AddrId(0)), key(0, 0, 1));
    assert_eq!(pm.on_incoming_subflow(AddrId(0), AddrId(0)), key(0, 0, 2));
    assert_eq!(pm.on_incoming_subflow(AddrId(0), AddrId(3)), key(0, 3, 0));
    pm.on_subflow_established(key(0, 0, 1));
    assert_eq!(pm.live_subflows(), 4);
    pm.on_subflow_closed(Instant::from_secs(1), key(0, 0, 1));
    assert_eq!(pm.live_subflows(), 3);
    assert_eq!(pm.pending_retries().count(), 0);
    assert_eq!(pm.on_incoming_subflow(AddrId(0), AddrId(0)), key(0, 0, 1));
    assert_eq!(drain(&mut pm), vec![]);
}

#[test]
fn a_retired_surplus_subflow_is_forgotten_and_the_survivor_may_be_replaced_again() {
    let mut pm = client();
    assert_eq!(pm.budget(AddrId(0), AddrId(0)), 1);
    pm.on_subflow_potentially_failed(PathKey::INITIAL);
    assert_eq!(
        drain(&mut pm),
        vec![open_slot(0, 0, 1, "10.0.0.1", "10.9.0.1:80")]
    );
    pm.on_subflow_established(key(0, 0, 1));
    assert_eq!(pm.live_subflows(), 2);
    // The old subflow recovered; the connection retires the replacement.
    pm.retire(key(0, 0, 1));
    pm.on_subflow_closed(Instant::ZERO, key(0, 0, 1));
    assert_eq!(pm.live_subflows(), 1);
    assert_eq!(pm.pending_retries().count(), 0, "not re-created");
    assert!(drain(&mut pm).is_empty());
    // It may fail again later, and get a replacement again.
    pm.on_subflow_potentially_failed(PathKey::INITIAL);
    assert_eq!(
        drain(&mut pm),
        vec![open_slot(0, 0, 1, "10.0.0.1", "10.9.0.1:80")]
    );
    // Or the replacement survives and the old one is retired: the pair keeps one.
    pm.on_subflow_established(key(0, 0, 1));
    pm.retire(PathKey::INITIAL);
    pm.on_subflow_closed(Instant::ZERO, PathKey::INITIAL);
    assert_eq!(pm.live_subflows(), 1);
    assert_eq!(pm.pending_retries().count(), 0);
    assert!(drain(&mut pm).is_empty());
    // A pair the policy does not want still keeps the one it has.
    let mut nd = PathManager::new(
        config(PathPolicy::NDiffPorts { subflows: 3 }),
        ip("10.0.0.1"),
        sock("10.9.0.1:80"),
        false,
    );
    assert_eq!(nd.budget(AddrId(0), AddrId(0)), 3);
    nd.on_add_addr(AddrId(1), ip("10.9.1.1"), None);
    assert_eq!(nd.budget(AddrId(0), AddrId(1)), 1);
}
