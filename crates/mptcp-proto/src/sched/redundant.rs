//! The redundant scheduler: every byte on every available subflow, for latency and
//! resilience at the cost of capacity (as the out-of-tree Linux `redundant`
//! scheduler). The receiver's DSN-keyed reassembly keeps the first copy and drops the
//! others; the sender frees the bytes on the data ACK.
//!
//! A new chunk goes out as soon as any candidate (regular subflows, or backups when no
//! regular one is available) has window space, to every candidate that has space, each
//! taking as much as its space allows: the subflow that drains fastest sets the pace,
//! whatever its RTT. A subflow whose window was full when a chunk went out catches up
//! later ([`Scheduler::carries_every_byte`]): the connection hands it the bytes it
//! missed that are not data-acknowledged yet, oldest first, before new data. So a lossy
//! or slow path neither holds the others back nor leaves a byte on one path only.

use super::{Decision, SchedInput, Scheduler};
use crate::sched::Assignment;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Redundant;

impl Scheduler for Redundant {
    fn name(&self) -> &'static str {
        "redundant"
    }

    fn schedule(&mut self, input: &SchedInput<'_>) -> Decision {
        let sendable = input.sendable();
        let mut decision = Decision::wait();
        if sendable == 0 {
            return decision;
        }
        let candidates = input.candidates();
        for s in candidates.iter().filter(|s| s.space() > 0) {
            decision.assignments.push(Assignment {
                subflow: s.id,
                bytes: s.space().min(sendable),
            });
        }
        decision
    }

    fn carries_every_byte(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mptcp::SubflowId;
    use crate::sched::tests::{input, subflow};

    fn assigned(d: &Decision) -> Vec<(u32, u64)> {
        d.assignments
            .iter()
            .map(|a| (a.subflow.0, a.bytes))
            .collect()
    }

    #[test]
    fn every_subflow_with_space_gets_the_chunk() {
        let mut s = Redundant;
        let mut flows = [subflow(4, Some(80)), subflow(1, Some(10)), subflow(2, None)];
        flows[0].in_flight = 10_000; // 4_480 bytes of space left
        let d = s.schedule(&input(&flows, 100_000));
        assert_eq!(assigned(&d), vec![(1, 14_480), (2, 14_480), (4, 4_480)]);
        let d = s.schedule(&input(&flows, 3_000));
        assert_eq!(assigned(&d), vec![(1, 3_000), (2, 3_000), (4, 3_000)]);
        // A full subflow misses the chunk (and catches up later), whether it is the
        // slowest or the fastest: the others do not wait for it.
        flows[0].in_flight = flows[0].cwnd;
        let d = s.schedule(&input(&flows, 3_000));
        assert_eq!(assigned(&d), vec![(1, 3_000), (2, 3_000)]);
        flows[1].in_flight = flows[1].cwnd;
        let d = s.schedule(&input(&flows, 3_000));
        assert_eq!(assigned(&d), vec![(2, 3_000)]);
        flows[2].in_flight = flows[2].cwnd;
        assert!(s.schedule(&input(&flows, 3_000)).is_wait());
        assert!(s.carries_every_byte());
        flows[1].in_flight = 0;
        for f in &mut flows {
            f.send_window = 0;
        }
        assert!(s.schedule(&input(&flows, 3_000)).is_wait());
    }

    #[test]
    fn backups_are_used_only_without_a_regular_subflow() {
        let mut s = Redundant;
        let mut flows = [
            subflow(1, Some(10)),
            subflow(2, Some(10)),
            subflow(3, Some(5)),
        ];
        flows[2].backup = true;
        let d = s.schedule(&input(&flows, 1_000));
        assert_eq!(assigned(&d), vec![(1, 1_000), (2, 1_000)]);
        flows[0].potentially_failed = true;
        flows[1].established = false;
        let d = s.schedule(&input(&flows, 1_000));
        assert_eq!(d, Decision::single(SubflowId(3), 1_000));
    }
}
