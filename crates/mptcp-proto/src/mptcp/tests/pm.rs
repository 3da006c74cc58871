//! Path management over the `Pair`: policies (n-diff-ports beyond 8 subflows,
//! backup), self-healing retries with backoff, failure detection after K RTOs or T
//! without progress, make-before-break and break-before-make.

use core::cell::Cell;
use std::rc::Rc;

use super::*;
use crate::mptcp::{SubflowDownReason, SubflowId};
use crate::pm::{Handover, PathPolicy};
use crate::sched::SchedulerKind;
use crate::wire::mptcp::{MpJoin, TcpRstReason};

/// Drops every segment of the 4-tuples `matches` selects while the switch is on.
fn blackhole(p: &mut Pair, matches: impl Fn(&Wire) -> bool + 'static) -> Rc<Cell<bool>> {
    let on = Rc::new(Cell::new(false));
    let switch = on.clone();
    p.filter = Some(Box::new(move |w| {
        if switch.get() && matches(w) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    on
}

fn uses_port(port: u16) -> impl Fn(&Wire) -> bool {
    move |w| w.src.port() == port || w.dst.port() == port
}

fn uses_ip(addr: &str) -> impl Fn(&Wire) -> bool {
    let addr = ip(addr);
    move |w| w.src.ip() == addr || w.dst.ip() == addr
}

/// A bulk client-to-server transfer driven one event instant at a time, so tests can
/// look at the connection between any two instants.
struct Bulk {
    data: Vec<u8>,
    written: usize,
    got: Vec<u8>,
}

impl Bulk {
    fn new(len: usize) -> Self {
        Bulk {
            data: pattern(len, 7),
            written: 0,
            got: Vec::new(),
        }
    }

    /// Writes what fits, reads what arrived, and runs to the next event instant.
    fn step(&mut self, p: &mut Pair) {
        self.written += p.client.write(&self.data[self.written..]);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = p.server().read(&mut buf);
            if n == 0 {
                break;
            }
            self.got.extend_from_slice(&buf[..n]);
        }
        p.flush();
        let next = [
            p.in_flight.keys().next().map(|k| k.0),
            p.client.poll_timeout(),
            p.server.as_ref().and_then(|s| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(p.now + Duration::from_millis(1));
        p.run_until(next.max(p.now));
    }

    fn done(&self) -> bool {
        self.got.len() >= self.data.len()
    }

    fn finish(&mut self, p: &mut Pair, limit: Duration) {
        let deadline = p.now + limit;
        while !self.done() && p.now < deadline {
            self.step(p);
        }
        assert_bytes(&self.got, &self.data);
    }
}

fn subflow_on(p: &Pair, local_port: u16) -> Option<SubflowId> {
    p.client.subflow_ids().find(|&id| {
        p.client
            .subflow_addrs(id)
            .is_some_and(|(l, _)| l.port() == local_port)
    })
}

fn subflow_from(p: &Pair, local_ip: &str) -> Option<SubflowId> {
    let addr = ip(local_ip);
    p.client.subflow_ids().find(|&id| {
        p.client
            .subflow_addrs(id)
            .is_some_and(|(l, _)| l.ip() == addr)
    })
}

fn rto_count(p: &Pair, id: SubflowId) -> u64 {
    p.client.subflow_tcp(id).map_or(0, |t| t.stats().rto_count)
}

/// When the client reported `id` down, and why.
fn down_of(p: &Pair, id: SubflowId) -> Option<(Instant, SubflowDownReason)> {
    p.client_log.iter().find_map(|(t, e)| match e {
        MptcpEvent::SubflowDown { id: d, reason, .. } if *d == id => Some((*t, *reason)),
        _ => None,
    })
}

fn up_index(p: &Pair, id: SubflowId) -> Option<usize> {
    p.client_log
        .iter()
        .position(|(_, e)| matches!(e, MptcpEvent::SubflowUp { id: u, .. } if *u == id))
}

fn down_index(p: &Pair, id: SubflowId) -> Option<usize> {
    p.client_log
        .iter()
        .position(|(_, e)| matches!(e, MptcpEvent::SubflowDown { id: d, .. } if *d == id))
}

/// Connected, fully established (a data ACK came back) and settled.
fn established(mut p: Pair) -> Pair {
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.run_for(Duration::from_millis(200));
    p
}

const UNACCEPTABLE: SubflowDownReason = SubflowDownReason::LocalReset {
    reason: TcpRstReason::UNACCEPTABLE_PERFORMANCE,
};

#[test]
fn ndiffports_runs_twelve_subflows_over_one_address_pair_byte_exact() {
    for scheduler in [
        SchedulerKind::RoundRobin {
            segments_per_turn: 1,
        },
        SchedulerKind::Redundant,
    ] {
        let mut cc = small_config();
        cc.scheduler = scheduler;
        cc.pm.policy = PathPolicy::NDiffPorts { subflows: 12 };
        cc.pm.max_subflows = 12;
        let mut sc = small_config();
        sc.pm_server.max_subflows = 12;
        let mut p = established(Pair::new(cc, sc, &[]));
        assert_eq!(p.opened.len(), 11, "{scheduler:?}");
        assert_eq!(p.client.subflow_ids().count(), 12);
        assert_eq!(p.server().subflow_ids().count(), 12);
        let mut ports: Vec<u16> = p
            .client
            .subflow_ids()
            .map(|id| {
                let (l, r) = p.client.subflow_addrs(id).expect("live");
                assert_eq!((l.ip(), r), (client_addr().ip(), server_addr()));
                l.port()
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 12, "distinct source ports");

        let mut bulk = Bulk::new(600_000);
        bulk.finish(&mut p, Duration::from_secs(60));
        let stats = p.client.stats();
        assert_eq!(stats.subflows.len(), 12);
        for s in &stats.subflows {
            assert!(s.bytes_scheduled > 0, "{scheduler:?}: {s:?}");
        }
        if scheduler == SchedulerKind::Redundant {
            // Every byte on every subflow.
            for s in &stats.subflows {
                assert!(s.bytes_scheduled >= 600_000, "{s:?}");
            }
        }
    }
}

#[test]
fn backup_policy_joins_with_the_b_flag_and_carries_data_only_when_the_regular_path_fails() {
    let mut cc = small_config();
    cc.pm.policy = PathPolicy::Backup;
    cc.pm.handover = Handover::BreakBeforeMake;
    cc.pm.fail_after_rtos = None;
    let mut p = Pair::new(cc, small_config(), &[ip("10.0.1.1")]);
    let outage = blackhole(&mut p, uses_port(client_addr().port()));
    let mut p = established(p);
    let join = p.log.iter().find_map(|w| {
        w.mptcp().into_iter().find_map(|o| match o {
            MptcpOption::MpJoin(MpJoin::Syn { backup, .. }) => Some(backup),
            _ => None,
        })
    });
    assert_eq!(join, Some(true));
    let backup = subflow_from(&p, "10.0.1.1").expect("the backup subflow");
    let mut bulk = Bulk::new(400_000);
    while bulk.got.len() < 100_000 {
        bulk.step(&mut p);
    }
    let scheduled = |p: &Pair| {
        p.client
            .stats()
            .subflows
            .iter()
            .find(|s| s.id == backup)
            .map(|s| s.bytes_scheduled)
    };
    assert_eq!(scheduled(&p), Some(0), "idle while the regular path works");
    outage.set(true);
    bulk.finish(&mut p, Duration::from_secs(60));
    assert!(
        scheduled(&p).is_some_and(|b| b > 200_000),
        "{:?}",
        scheduled(&p)
    );
}

#[test]
fn a_refused_join_is_retried_with_exponential_backoff() {
    let mut cc = small_config();
    cc.pm.retry_initial = Duration::from_millis(100);
    cc.pm.retry_max = Duration::from_millis(800);
    let mut sc = small_config();
    // The server takes no joins: each attempt is reset 20 ms (one RTT) after it.
    sc.pm_server.max_subflows = 1;
    let mut p = established(Pair::new(cc, sc, &[ip("10.0.1.1")]));
    p.run_for(Duration::from_secs(3));
    let gaps: Vec<u64> = p
        .opened
        .windows(2)
        .take(5)
        .map(|w| w[1].0.saturating_since(w[0].0).total_millis())
        .collect();
    assert_eq!(gaps, vec![120, 220, 420, 820, 820]);
    assert!(p.opened.iter().all(|o| o.1.ip() == ip("10.0.1.1")));
    assert_eq!(p.client.subflow_ids().count(), 1);
}

#[test]
fn address_events_open_and_close_subflows_and_removed_addresses_are_not_retried() {
    let mut p = established(Pair::new(small_config(), small_config(), &[]));
    assert!(p.opened.is_empty());
    let t = p.now;
    p.client
        .add_local_address(t, ip("10.0.1.1"))
        .expect("a free id");
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.opened.len(), 1);
    let id = subflow_from(&p, "10.0.1.1").expect("joined");
    assert!(up_index(&p, id).is_some());
    p.client
        .remove_local_address(ip("10.0.1.1"))
        .expect("known");
    p.run_for(Duration::from_secs(10));
    assert_eq!(
        down_of(&p, id).map(|d| d.1),
        Some(SubflowDownReason::AddressRemoved)
    );
    assert_eq!(p.opened.len(), 1, "no retry without the address");
    let t = p.now;
    p.client
        .add_local_address(t, ip("10.0.1.1"))
        .expect("a free id");
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.opened.len(), 2);
    assert_eq!(p.client.subflow_ids().count(), 2);
}

/// Two paths, bulk data on both; the second address's path dies at 100 kB.
fn second_path_dies(cc: MptcpConfig) -> (Pair, Bulk, SubflowId) {
    let mut p = Pair::new(cc, small_config(), &[ip("10.0.1.1")]);
    let outage = blackhole(&mut p, uses_ip("10.0.1.1"));
    let mut p = established(p);
    let id = subflow_from(&p, "10.0.1.1").expect("second subflow");
    let mut bulk = Bulk::new(2_000_000);
    while bulk.got.len() < 100_000 {
        bulk.step(&mut p);
    }
    outage.set(true);
    (p, bulk, id)
}

#[test]
fn k_consecutive_rtos_declare_a_subflow_failed_at_the_kth_rto() {
    let mut cc = small_config();
    cc.pm.fail_after_rtos = Some(3);
    cc.pm.handover = Handover::BreakBeforeMake;
    cc.pm.retry_initial = Duration::from_secs(100);
    let (mut p, mut bulk, id) = second_path_dies(cc);
    let mut last = (0, None);
    while subflow_from(&p, "10.0.1.1").is_some() {
        last = (
            rto_count(&p, id),
            p.client.subflow_tcp(id).and_then(|t| t.poll_timeout()),
        );
        bulk.step(&mut p);
    }
    let (down_at, reason) = down_of(&p, id).expect("reported down");
    assert_eq!(reason, UNACCEPTABLE);
    // It was alive after its second RTO and went at the instant of its third.
    assert_eq!(last.0, 2);
    assert_eq!(Some(down_at), last.1);
    // The RST says why (RFC 8684 §3.6, reason 5), even if the dead path eats it.
    let rst = p
        .sent(Dir::ToServer)
        .into_iter()
        .rev()
        .find(|w| w.flags().rst() && w.src.ip() == ip("10.0.1.1"))
        .expect("a RST");
    assert!(rst.mptcp().iter().any(|o| matches!(
        o,
        MptcpOption::MpTcpRst(r) if r.reason == TcpRstReason::UNACCEPTABLE_PERFORMANCE
    )));
    bulk.finish(&mut p, Duration::from_secs(60));
}

#[test]
fn t_without_progress_declares_a_subflow_failed_at_t() {
    let mut cc = small_config();
    cc.pm.fail_after_rtos = None;
    cc.pm.fail_after_no_progress = Some(Duration::from_millis(1500));
    cc.pm.handover = Handover::BreakBeforeMake;
    cc.pm.retry_initial = Duration::from_secs(100);
    let (mut p, mut bulk, id) = second_path_dies(cc);
    let mut acked = 0;
    let mut progress = p.now;
    while subflow_from(&p, "10.0.1.1").is_some() {
        if let Some(t) = p.client.subflow_tcp(id)
            && (t.acked_offset() != acked || t.sent_offset() == t.acked_offset())
        {
            acked = t.acked_offset();
            progress = p.now;
        }
        bulk.step(&mut p);
    }
    let (down_at, reason) = down_of(&p, id).expect("reported down");
    assert_eq!(reason, UNACCEPTABLE);
    assert_eq!(down_at, progress + Duration::from_millis(1500));
    bulk.finish(&mut p, Duration::from_secs(60));
}

#[test]
fn a_short_no_progress_limit_spares_a_lossy_but_working_path() {
    // The second path loses every 25th data segment: its cumulative ACK stands still
    // for an RTT or more in each recovery, while SACKs show it delivering. A limit of
    // 1 ms (far below the RTT) must not declare it failed: SACKed data is progress,
    // and the limit is never shorter than srtt + 4 rttvar.
    let mut cc = small_config();
    cc.pm.fail_after_rtos = None;
    cc.pm.fail_after_no_progress = Some(Duration::from_millis(1));
    let mut p = Pair::new(cc, small_config(), &[ip("10.0.1.1")]);
    let mut data_segments = 0u64;
    let second = ip("10.0.1.1");
    p.filter = Some(Box::new(move |w| {
        if w.dir == Dir::ToServer && w.src.ip() == second && w.bytes.len() > 200 {
            data_segments += 1;
            if data_segments.is_multiple_of(25) {
                return Verdict::Drop;
            }
        }
        Verdict::Pass
    }));
    let mut p = established(p);
    let id = subflow_from(&p, "10.0.1.1").expect("second subflow");
    let mut bulk = Bulk::new(2_000_000);
    while !bulk.done() {
        bulk.step(&mut p);
        assert!(p.now < Instant::from_secs(120), "transfer stalled");
    }
    assert_eq!(bulk.got, bulk.data);
    assert_eq!(down_of(&p, id), None, "the lossy path was declared failed");
    let lossy = p.client.subflow_tcp(id).expect("alive").stats();
    assert!(lossy.fast_recoveries >= 3, "{lossy:?}");
}

/// One address pair; the initial subflow's 4-tuple is black-holed mid-transfer (a
/// middlebox lost its state), so a subflow on a new source port works.
fn initial_tuple_dies(handover: Handover) -> (Pair, Bulk, SubflowId) {
    let mut cc = small_config();
    cc.pm.handover = handover;
    cc.pm.fail_after_rtos = Some(4);
    cc.pm.retry_initial = Duration::from_millis(400);
    let mut p = Pair::new(cc, small_config(), &[]);
    let outage = blackhole(&mut p, uses_port(client_addr().port()));
    let mut p = established(p);
    let initial = subflow_on(&p, client_addr().port()).expect("initial");
    let mut bulk = Bulk::new(1_000_000);
    while bulk.got.len() < 100_000 {
        bulk.step(&mut p);
    }
    outage.set(true);
    (p, bulk, initial)
}

#[test]
fn make_before_break_opens_the_replacement_first_and_data_keeps_flowing() {
    let (mut p, mut bulk, old) = initial_tuple_dies(Handover::MakeBeforeBreak);
    let mut stale_at = None;
    while subflow_on(&p, client_addr().port()).is_some() {
        let stale = p
            .client
            .stats()
            .subflows
            .iter()
            .any(|s| s.id == old && s.stale);
        if stale && stale_at.is_none() {
            stale_at = Some(p.now);
        }
        bulk.step(&mut p);
    }
    // The replacement was asked for at the instant the old one became potentially
    // failed (its second RTO), on the same address pair.
    assert_eq!(p.opened.len(), 1);
    let (opened_at, local, remote) = p.opened[0];
    assert_eq!(Some(opened_at), stale_at);
    assert_eq!((local.ip(), remote), (client_addr().ip(), server_addr()));
    let new = subflow_on(&p, local.port()).expect("replacement alive");
    let (down_at, reason) = down_of(&p, old).expect("old reported down");
    assert_eq!(reason, UNACCEPTABLE);
    assert!(
        up_index(&p, new) < down_index(&p, old),
        "{:?}",
        p.client_log
    );
    // Data flowed on the replacement before the old subflow was dropped.
    let (up_at, _) = p.client_log[up_index(&p, new).expect("up")];
    assert!(up_at < down_at);
    let on_new_before_drop = p
        .client
        .stats()
        .subflows
        .iter()
        .find(|s| s.id == new)
        .map_or(0, |s| s.bytes_scheduled);
    assert!(on_new_before_drop > 0);
    let got_at_drop = bulk.got.len();
    // Measured: stale at 1.056 s, replacement up at 1.096 s, old dropped at its fourth
    // RTO at 3.456 s, by which time the whole megabyte had arrived.
    assert!(got_at_drop > 500_000, "{got_at_drop}");
    // The replaced subflow is not re-created.
    bulk.finish(&mut p, Duration::from_secs(60));
    assert_eq!(p.opened.len(), 1);
}

#[test]
fn break_before_make_drops_the_old_subflow_then_opens_after_the_retry_delay() {
    let (mut p, mut bulk, old) = initial_tuple_dies(Handover::BreakBeforeMake);
    while subflow_on(&p, client_addr().port()).is_some() {
        bulk.step(&mut p);
    }
    assert!(p.opened.is_empty(), "nothing opened before the break");
    let (down_at, reason) = down_of(&p, old).expect("old reported down");
    assert_eq!(reason, UNACCEPTABLE);
    let got_at_drop = bulk.got.len();
    bulk.finish(&mut p, Duration::from_secs(60));
    assert_eq!(p.opened.len(), 1);
    assert_eq!(p.opened[0].0, down_at + Duration::from_millis(400));
    let new = subflow_on(&p, p.opened[0].1.port()).expect("replacement");
    assert!(down_index(&p, old) < up_index(&p, new));
    // The transfer stalled between the break and the make.
    assert!(got_at_drop < 200_000, "{got_at_drop}");
}

/// Live subflows of the client (not reported down).
fn live(p: &Pair) -> Vec<SubflowId> {
    p.client
        .subflow_ids()
        .filter(|&id| down_of(p, id).is_none())
        .collect()
}

const BY_POLICY: SubflowDownReason = SubflowDownReason::LocalReset {
    reason: TcpRstReason::ADMINISTRATIVELY_PROHIBITED,
};

#[test]
fn a_replacement_is_retired_when_the_subflow_it_replaced_recovers_first() {
    // The path goes dark: the old subflow turns stale and its replacement's SYNs are
    // lost too. The old subflow's retransmission gets through first when the path
    // returns: the replacement, still handshaking, goes, and the pair is back to one
    // subflow that carries the rest.
    let mut cc = small_config();
    cc.pm.fail_after_rtos = Some(10);
    let mut p = Pair::new(cc, small_config(), &[]);
    let old_dark = Rc::new(Cell::new(false));
    let joins_dark = Rc::new(Cell::new(false));
    let (a, b) = (old_dark.clone(), joins_dark.clone());
    p.filter = Some(Box::new(move |w| {
        let old = uses_port(client_addr().port())(w);
        let join_syn = w.flags().syn()
            && w.mptcp()
                .iter()
                .any(|o| matches!(o, MptcpOption::MpJoin(MpJoin::Syn { .. })));
        if (a.get() && old) || (b.get() && join_syn) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    let mut p = established(p);
    let old = subflow_on(&p, client_addr().port()).expect("initial");
    let mut bulk = Bulk::new(1_500_000);
    while bulk.got.len() < 100_000 {
        bulk.step(&mut p);
    }
    old_dark.set(true);
    joins_dark.set(true);
    while p.opened.is_empty() {
        bulk.step(&mut p);
    }
    let new = subflow_on(&p, p.opened[0].1.port()).expect("replacement handshaking");
    old_dark.set(false);
    while p
        .client
        .stats()
        .subflows
        .iter()
        .any(|s| s.id == old && s.stale)
    {
        bulk.step(&mut p);
    }
    // Recovered; the replacement's SYNs may pass again.
    joins_dark.set(false);
    bulk.finish(&mut p, Duration::from_secs(60));
    assert_eq!(live(&p), vec![old], "{:?}", p.client_log);
    // Given up during its handshake (never up, so never reported down; a SYN-SENT
    // abort sends nothing, RFC 9293 §3.10.5).
    assert!(up_index(&p, new).is_none(), "it never carried data");
    let stats = p.client.stats();
    assert!(stats.subflows.iter().all(|s| s.id != new));
    assert!(
        stats
            .closed_subflows
            .iter()
            .any(|s| s.id == new && s.bytes_sent == 0)
    );
    assert_eq!(p.opened.len(), 1, "nothing re-created");
}

#[test]
fn when_both_subflows_of_a_pair_work_again_the_one_with_the_smaller_window_is_drained_and_retired()
{
    // Only the old subflow's 4-tuple goes dark (a middlebox lost its state): the
    // replacement takes the data; then the old one recovers before it is declared
    // failed. The pair keeps one: the old one, back from an RTO with a small window,
    // takes no new data and goes once its data is acknowledged. Nothing is lost.
    let mut cc = small_config();
    cc.pm.fail_after_rtos = Some(10);
    let mut p = Pair::new(cc, small_config(), &[]);
    let outage = blackhole(&mut p, uses_port(client_addr().port()));
    let mut p = established(p);
    let old = subflow_on(&p, client_addr().port()).expect("initial");
    let mut bulk = Bulk::new(3_000_000);
    while bulk.got.len() < 100_000 {
        bulk.step(&mut p);
    }
    outage.set(true);
    while p.opened.is_empty()
        || up_index(&p, subflow_on(&p, p.opened[0].1.port()).expect("new")).is_none()
    {
        bulk.step(&mut p);
    }
    let new = subflow_on(&p, p.opened[0].1.port()).expect("replacement");
    let dark_until = p.now + Duration::from_millis(500);
    while p.now < dark_until {
        bulk.step(&mut p);
    }
    outage.set(false);
    bulk.finish(&mut p, Duration::from_secs(60));
    assert_eq!(live(&p), vec![new], "{:?}", p.client_log);
    assert_eq!(down_of(&p, old).map(|d| d.1), Some(BY_POLICY));
    let old_stats = p
        .client
        .stats()
        .closed_subflows
        .into_iter()
        .find(|s| s.id == old)
        .expect("the old subflow's final figures");
    assert!(
        old_stats.rto_count >= 2 && old_stats.rto_count < 10,
        "{old_stats:?}"
    );
    assert_eq!(p.opened.len(), 1, "nothing re-created");
}
