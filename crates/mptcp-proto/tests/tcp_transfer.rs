//! Byte-exact transfers under random loss, duplication and reordering, over many seeds.

mod tcp_util;

use mptcp_proto::cc::CcAlgorithm;
use mptcp_proto::tcp::{Pacing, TcpConfig, TcpEvent, TcpState};
use mptcp_proto::time::{Duration, Instant};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use tcp_util::*;

struct Scenario {
    loss: f64,
    dup: f64,
    reorder: f64,
    /// Both sides pace their data (TcpConfig::pacing).
    pacing: bool,
}

fn run_seed(seed: u64, sc: &Scenario, up_len: usize, down_len: usize) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let cc = if rng.random_bool(0.5) {
        CcAlgorithm::NewReno
    } else {
        CcAlgorithm::Cubic
    };
    let mut cfg = TcpConfig {
        sack: rng.random_bool(0.8),
        timestamps: rng.random_bool(0.7),
        nodelay: rng.random_bool(0.5),
        congestion_control: cc,
        ..TcpConfig::default()
    };
    if rng.random_bool(0.3) {
        // Small buffers: the window fills and zero-window probing gets exercised.
        cfg.recv_buffer = 8 * 1024;
        cfg.send_buffer = 8 * 1024;
    }
    if sc.pacing {
        cfg.pacing = Some(Pacing::default());
    }
    let server_cfg = TcpConfig {
        sack: rng.random_bool(0.8),
        ..cfg.clone()
    };
    let delay = Duration::from_millis(rng.random_range(1..40));
    let mut p = Pair::new(cfg, server_cfg, delay);
    let (loss, dup, reorder) = (sc.loss, sc.dup, sc.reorder);
    let mut net_rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed);
    p.filter = Box::new(move |_| {
        let x: f64 = net_rng.random();
        if x < loss {
            Action::Drop
        } else if x < loss + dup {
            Action::Duplicate
        } else if x < loss + dup + reorder {
            Action::Delay(Duration::from_micros(net_rng.random_range(100..30_000)))
        } else {
            Action::Deliver
        }
    });
    let up = pattern(up_len, seed);
    let down = pattern(down_len, seed.wrapping_add(1));
    p.client_app.outbox = up.clone();
    p.server_app.outbox = down.clone();
    p.client_app.close_when_done = true;
    p.server_app.close_when_done = true;
    let limit = Instant::from_secs(3_600);
    let done = p.run_until(limit, |p| {
        p.client.state() == TcpState::Closed
            || (p.client.state() == TcpState::TimeWait
                && p.server
                    .as_ref()
                    .is_some_and(|s| s.state() == TcpState::Closed))
    });
    let server_inbox = &p.server_app.inbox;
    assert!(
        done,
        "seed {seed}: not finished by {:?}: client {:?}, server {:?}, up {}/{}, down {}/{}",
        p.now,
        p.client.state(),
        p.server.as_ref().map(|s| s.state()),
        server_inbox.len(),
        up.len(),
        p.client_app.inbox.len(),
        down.len()
    );
    let first_diff = server_inbox.iter().zip(up.iter()).position(|(a, b)| a != b);
    assert!(
        server_inbox == &up,
        "seed {seed}: upload corrupted: len {} vs {}, first difference at {first_diff:?}",
        server_inbox.len(),
        up.len()
    );
    assert!(
        p.client_app.inbox == down,
        "seed {seed}: download corrupted"
    );
    if std::env::var("TCP_DEBUG").is_ok() {
        eprintln!(
            "seed {seed} t={:?} client {:?}\nserver {:?}",
            p.now,
            p.client.stats(),
            p.server().stats()
        );
    }
    assert!(
        p.events(Side::Client).contains(&TcpEvent::PeerClosed)
            && p.events(Side::Server).contains(&TcpEvent::PeerClosed),
        "seed {seed}: FIN missing"
    );
    assert!(
        !p.events(Side::Client).contains(&TcpEvent::Reset)
            && !p.events(Side::Server).contains(&TcpEvent::Reset),
        "seed {seed}: unexpected reset"
    );
}

#[test]
fn byte_exact_transfer_under_random_loss_reordering_and_duplication() {
    let sc = Scenario {
        loss: 0.03,
        dup: 0.02,
        reorder: 0.05,
        pacing: false,
    };
    for seed in 0..200 {
        run_seed(seed, &sc, 200_000, 20_000);
    }
}

#[test]
fn byte_exact_paced_transfer_under_random_loss_reordering_and_duplication() {
    // The pacer holds segments back and hands the release time to poll_timeout: loss
    // recovery, probes and the FIN must all still get out.
    let sc = Scenario {
        loss: 0.03,
        dup: 0.02,
        reorder: 0.05,
        pacing: true,
    };
    for seed in 0..100 {
        run_seed(seed, &sc, 200_000, 20_000);
    }
}

#[test]
fn byte_exact_transfer_under_heavy_loss() {
    let sc = Scenario {
        loss: 0.15,
        dup: 0.05,
        reorder: 0.1,
        pacing: false,
    };
    for seed in 1_000..1_040 {
        run_seed(seed, &sc, 50_000, 5_000);
    }
}

#[test]
fn cwnd_does_not_grow_while_the_peer_window_limits_sending() {
    // A receiver with a 64 KiB buffer that reads everything at once: the sender always
    // has data, but the peer's window, not cwnd, limits the flight. Growing cwnd on
    // those ACKs would let it run away (found against the kernel: 23-54 MB) and burst
    // at line rate the moment the window opens.
    let server = TcpConfig {
        recv_buffer: 64 * 1024,
        ..config()
    };
    let mut p = Pair::new(config(), server, Duration::from_millis(5));
    p.handshake();
    p.client_app.outbox = pattern(40 << 20, 3);
    assert!(
        p.run_until(Instant::from_secs(60), |p| p.server_app.inbox.len()
            == 40 << 20)
    );
    let stats = p.client.stats();
    assert!(
        stats.cwnd <= 4 * 64 * 1024,
        "cwnd {} ran away beyond the 64 KiB the peer ever allowed",
        stats.cwnd
    );
    assert_eq!(stats.retransmits, 0);
}
