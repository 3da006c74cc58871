//! Counters and time series: what the network did (per link direction, per node, per
//! flow) and what hosts chose to report (cwnd, RTT, ...), with CSV export.
//!
//! Counters are always kept; time series are sampled only when the simulator has a
//! sample interval. Series live in name order, so exported files are deterministic.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use mptcp_proto::Instant;

/// Why a packet did not arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Drop-tail queue at its packet or byte limit.
    QueueFull,
    /// Bernoulli or Gilbert-Elliott loss.
    RandomLoss,
    /// The link direction was down when the packet was offered, queued or in flight.
    LinkDown,
    /// A middlebox returned `Verdict::Drop`.
    Middlebox,
    /// No interface or route leads to the destination.
    NoRoute,
    /// A router would have decremented the TTL / hop limit to zero.
    TtlExpired,
    /// Arrived at a host that does not own the destination, or at a router addressed
    /// to the router itself (routers do not terminate traffic).
    NotForHost,
    /// The IP header does not parse.
    Malformed,
}

impl DropReason {
    pub const ALL: [DropReason; 8] = [
        DropReason::QueueFull,
        DropReason::RandomLoss,
        DropReason::LinkDown,
        DropReason::Middlebox,
        DropReason::NoRoute,
        DropReason::TtlExpired,
        DropReason::NotForHost,
        DropReason::Malformed,
    ];

    /// Reasons that a link direction can cause.
    pub const LINK: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::RandomLoss,
        DropReason::LinkDown,
        DropReason::Middlebox,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::RandomLoss => "random_loss",
            DropReason::LinkDown => "link_down",
            DropReason::Middlebox => "middlebox",
            DropReason::NoRoute => "no_route",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NotForHost => "not_for_host",
            DropReason::Malformed => "malformed",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Drop counts by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts([u64; 8]);

impl DropCounts {
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    pub(crate) fn add(&mut self, reason: DropReason, n: u64) {
        self.0[reason.index()] += n;
    }
}

/// Cumulative counters of one link direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets accepted into the queue.
    pub enqueued_packets: u64,
    /// Packets (including duplicates) that reached the far end.
    pub delivered_packets: u64,
    pub delivered_bytes: u64,
    pub drops: DropCounts,
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
    /// Most bytes ever queued at once, the packet being serialized included: exact
    /// (updated on every enqueue), where a sampled `queue_bytes` series can miss a
    /// burst's peak.
    pub peak_queue_bytes: usize,
    /// Most packets ever queued at once, likewise.
    pub peak_queue_packets: usize,
}

/// Cumulative counters of one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Packets handed to the host, or forwarded by the router.
    pub received_packets: u64,
    /// Packets the host emitted (before routing).
    pub sent_packets: u64,
    pub drops: DropCounts,
}

/// Cumulative counters of one directed TCP flow, counted where it reaches its host.
#[derive(Clone, Debug, Default)]
pub struct FlowStats {
    pub packets: u64,
    /// TCP payload bytes delivered, retransmissions and duplicates included.
    pub payload_bytes: u64,
    /// Payload bytes of sequence space delivered for the first time: goodput.
    pub goodput_bytes: u64,
    seen: SeqRanges,
}

impl FlowStats {
    pub(crate) fn on_segment(&mut self, seq: u32, payload_len: usize) {
        self.packets += 1;
        self.payload_bytes += payload_len as u64;
        self.goodput_bytes += self.seen.insert(seq, payload_len as u64);
    }
}

/// Which sequence ranges of a flow have been delivered, unwrapped to 64 bits.
#[derive(Clone, Debug, Default)]
struct SeqRanges {
    /// The 32-bit sequence number that maps to `ORIGIN` in the unwrapped space.
    base: Option<u32>,
    /// Highest unwrapped end seen: the reference for unwrapping.
    highest: u64,
    /// Sorted, disjoint, non-adjacent half-open ranges.
    ranges: Vec<(u64, u64)>,
}

impl SeqRanges {
    /// Unwrapped space starts far from zero so data before the first segment seen
    /// (reordering) never underflows.
    const ORIGIN: u64 = 1 << 40;
    /// Bound on memory: beyond this the two lowest ranges are merged, counting the
    /// hole between them as delivered.
    const MAX_RANGES: usize = 1024;

    /// Mark `[seq, seq + len)` delivered; returns how many bytes were new.
    fn insert(&mut self, seq: u32, len: u64) -> u64 {
        if len == 0 {
            return 0;
        }
        let base = *self.base.get_or_insert(seq);
        if self.highest == 0 {
            self.highest = Self::ORIGIN;
        }
        let rel = seq.wrapping_sub(base);
        let delta = rel.wrapping_sub(self.highest.wrapping_sub(Self::ORIGIN) as u32) as i32;
        let start = self.highest.saturating_add_signed(i64::from(delta));
        let end = start + len;
        self.highest = self.highest.max(end);
        self.add_range(start, end)
    }

    fn add_range(&mut self, start: u64, end: u64) -> u64 {
        if let Some(last) = self.ranges.last_mut()
            && start >= last.1
        {
            if start == last.1 {
                last.1 = end;
            } else {
                self.ranges.push((start, end));
                self.bound();
            }
            return end - start;
        }
        let first = self.ranges.partition_point(|r| r.1 < start);
        let mut last = first;
        let (mut lo, mut hi, mut covered) = (start, end, 0);
        while let Some(&(a, b)) = self.ranges.get(last) {
            if a > end {
                break;
            }
            covered += b.min(end).saturating_sub(a.max(start));
            lo = lo.min(a);
            hi = hi.max(b);
            last += 1;
        }
        self.ranges.splice(first..last, [(lo, hi)]);
        self.bound();
        (end - start) - covered
    }

    fn bound(&mut self) {
        if self.ranges.len() > Self::MAX_RANGES {
            let second = self.ranges.remove(1);
            self.ranges[0].1 = second.1;
        }
    }
}

/// Names a series for fast repeated recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesId(usize);

/// A named time series of `(time, value)` points in recording order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    name: String,
    points: Vec<(Instant, f64)>,
}

impl Series {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn points(&self) -> &[(Instant, f64)] {
        &self.points
    }

    /// CSV with a `time_s,value` header; times in seconds with microsecond precision.
    pub fn write_csv<W: Write>(&self, mut out: W) -> io::Result<()> {
        writeln!(out, "time_s,value")?;
        for &(t, v) in &self.points {
            writeln!(out, "{},{}", secs(t), v)?;
        }
        Ok(())
    }
}

fn secs(t: Instant) -> String {
    let us = t.total_micros();
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// All series of a run.
///
/// ```
/// use mptcp_proto::Instant;
/// use mptcp_sim::Recorder;
///
/// let mut rec = Recorder::default();
/// rec.record(Instant::from_millis(10), "client/cwnd", 14480.0);
/// let mut csv = Vec::new();
/// rec.write_csv(&mut csv).unwrap();
/// assert_eq!(String::from_utf8(csv).unwrap(), "series,time_s,value\nclient/cwnd,0.010000,14480\n");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    series: Vec<Series>,
    index: BTreeMap<String, SeriesId>,
}

impl Recorder {
    /// The id of the series called `name`, creating it if needed.
    pub fn series_id(&mut self, name: &str) -> SeriesId {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = SeriesId(self.series.len());
        self.series.push(Series {
            name: name.to_owned(),
            points: Vec::new(),
        });
        self.index.insert(name.to_owned(), id);
        id
    }

    pub fn record(&mut self, now: Instant, name: &str, value: f64) {
        let id = self.series_id(name);
        self.record_id(id, now, value);
    }

    pub fn record_id(&mut self, id: SeriesId, now: Instant, value: f64) {
        self.series[id.0].points.push((now, value));
    }

    pub fn series(&self, name: &str) -> Option<&Series> {
        self.index.get(name).map(|id| &self.series[id.0])
    }

    /// Every series, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Series> {
        self.index.values().map(|id| &self.series[id.0])
    }

    /// Long-format CSV of every series: `series,time_s,value`, series in name order.
    pub fn write_csv<W: Write>(&self, mut out: W) -> io::Result<()> {
        writeln!(out, "series,time_s,value")?;
        for series in self.iter() {
            for &(t, v) in &series.points {
                writeln!(out, "{},{},{}", series.name, secs(t), v)?;
            }
        }
        Ok(())
    }

    pub fn write_csv_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let file = std::fs::File::create(path)?;
        let mut out = io::BufWriter::new(file);
        self.write_csv(&mut out)?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goodput_counts_each_sequence_byte_once() {
        let mut flow = FlowStats::default();
        flow.on_segment(1000, 100);
        flow.on_segment(1200, 100); // hole at 1100..1200
        flow.on_segment(1000, 100); // duplicate
        flow.on_segment(1050, 200); // fills the hole, overlaps both sides
        assert_eq!(flow.payload_bytes, 500);
        assert_eq!(flow.goodput_bytes, 300);
        assert_eq!(flow.seen.ranges.len(), 1);
    }

    #[test]
    fn goodput_survives_sequence_wrap_and_early_reordering() {
        let mut flow = FlowStats::default();
        flow.on_segment(u32::MAX - 99, 100);
        flow.on_segment(0, 100);
        flow.on_segment(u32::MAX - 199, 100); // before the first segment seen
        assert_eq!(flow.goodput_bytes, 300);
        assert_eq!(flow.seen.ranges.len(), 1);
    }

    #[test]
    fn range_memory_is_bounded() {
        let mut flow = FlowStats::default();
        for i in 0..3000u32 {
            flow.on_segment(i * 20, 10);
        }
        assert_eq!(flow.seen.ranges.len(), SeqRanges::MAX_RANGES);
        assert_eq!(flow.goodput_bytes, 30_000);
    }

    #[test]
    fn series_csv_has_fixed_point_times() {
        let mut rec = Recorder::default();
        rec.record(Instant::from_micros(1_500_001), "b", 2.5);
        rec.record(Instant::from_micros(0), "a", 1.0);
        let mut out = Vec::new();
        rec.series("b").unwrap().write_csv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "time_s,value\n1.500001,2.5\n"
        );
        let names: Vec<_> = rec.iter().map(Series::name).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
