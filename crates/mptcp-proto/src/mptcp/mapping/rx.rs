//! The receiving side of DSN mappings: turning subflow payload into DSN-addressed pieces.

use tracing::debug;

use super::MAX_MAPPING_LEN;
use crate::crypto::DssChecksum;
use crate::seq::{Dsn, SeqNum};
use crate::wire::mptcp::DssMapping;

/// The fewest finite mappings one subflow may keep pending at once; the limit grows
/// with the receive buffer ([`rx_mapping_limit`]). Mappings leave when the subflow's
/// in-order receive point passes them, so only mappings for data above a hole pile up.
/// Past the limit, a new mapping below the highest pending one evicts that
/// highest mapping (the in-order data must never be refused, or the subflow would
/// deadlock); a new mapping above them all is refused with [`MappingError::TooMany`] and
/// the connection must refuse that segment's payload, which the peer then retransmits
/// with its mapping. Bytes of an evicted mapping not yet received become unmapped until
/// a retransmission carries the mapping again (senders repeat the mapping on every
/// segment it covers, as Linux does). Linux holds one mapping per subflow and processes
/// payload strictly in order (its out-of-order queue keeps each segment's options).
pub const MIN_RX_MAPPINGS: usize = 32;

/// Receive-buffer bytes per pending mapping allowed: a peer that maps every segment
/// separately (Linux without GSO does, one mapping per MSS-sized skb) must be able to
/// fill the whole window above a hole, or the subflow refuses in-window data, the
/// sender retransmits what it already sent, and a single loss in a large window costs
/// the rest of the window (measured: 20 Mbit/s path, 1 MB buffer, 32 mappings: half
/// of all bytes sent twice). 1 KiB is below any real MSS, and a mapping costs ~40
/// bytes of bookkeeping, so this stays a few % of the buffer it serves.
pub const RX_BYTES_PER_MAPPING: usize = 1024;

/// The pending-mapping limit for a subflow whose connection-level receive buffer is
/// `recv_buffer` bytes: one mapping per [`RX_BYTES_PER_MAPPING`], at least
/// [`MIN_RX_MAPPINGS`].
pub fn rx_mapping_limit(recv_buffer: usize) -> usize {
    (recv_buffer / RX_BYTES_PER_MAPPING).max(MIN_RX_MAPPINGS)
}

/// A mapping as a DSS option carried it (RFC 8684 §3.3.1), with the DSN already 64 bits
/// wide: expand a 4-byte DSN first against the next expected DSN
/// ([`crate::mptcp::data_seq::DataSeq::expand_peer_dsn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedMapping {
    pub dsn: Dsn,
    /// Relative to the subflow's initial sequence number: 1 is the first data byte; 0 is
    /// used only by a lone DATA_FIN.
    pub subflow_seq: SeqNum,
    /// Data-level length, DATA_FIN included; 0 is the infinite mapping (§3.7).
    pub data_len: u16,
    /// The DSS F flag (§3.3.3).
    pub data_fin: bool,
    /// Present exactly when checksums were negotiated.
    pub checksum: Option<u16>,
}

impl ReceivedMapping {
    /// The mapping of a parsed DSS option, its DSN expanded against `expected` (the
    /// next expected DSN: [`crate::mptcp::data_seq::DataSeq::expand_peer_dsn`]'s
    /// reference) when the option carried only 32 bits.
    pub fn from_dss(mapping: &DssMapping, data_fin: bool, expected: Dsn) -> Self {
        ReceivedMapping {
            dsn: mapping.dsn.expand(expected),
            subflow_seq: mapping.subflow_seq,
            data_len: mapping.data_len,
            data_fin,
            checksum: mapping.checksum,
        }
    }
}

/// A finite mapping kept by [`RxMappings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMapping {
    pub dsn: Dsn,
    /// Subflow stream offset of the first payload byte.
    pub offset: u64,
    /// Payload bytes (the data-level length minus the DATA_FIN).
    pub len: u32,
    pub data_fin: bool,
    /// The wire's relative subflow sequence number (part of the checksum pseudo-header).
    pub subflow_seq: SeqNum,
    pub checksum: Option<u16>,
}

impl RxMapping {
    pub const fn offset_end(&self) -> u64 {
        self.offset + self.len as u64
    }

    pub const fn data_level_len(&self) -> u16 {
        (self.len + self.data_fin as u32) as u16
    }
}

/// What [`RxMappings::insert`] did with a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertKind {
    /// Kept; its payload will be mapped.
    New,
    /// Identical to a pending mapping (a retransmission, or the next segment of a mapping
    /// that spans several): nothing changes.
    Duplicate,
    /// Covers only data the subflow already received in order, or arrived after an
    /// infinite mapping: ignored.
    Ignored,
    /// The infinite mapping (data-level length 0, RFC 8684 §3.7): from its subflow
    /// offset on, every byte follows the subflow and no checksum applies. The connection
    /// has fallen back to TCP on this subflow.
    Infinite,
    /// A DATA_FIN with no data (subflow sequence 0, length 1; §3.3.3), checksum verified
    /// when checksums are on.
    DataFinOnly,
}

/// The result of a successful [`RxMappings::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    pub kind: InsertKind,
    /// The DSN of the peer's DATA_FIN when the mapping carried one: the byte after the
    /// mapping's payload. The connection acknowledges it once all data before it arrived.
    pub data_fin: Option<Dsn>,
}

/// A mapping that must not be used. All are protocol errors on the subflow (RFC 8684
/// §3.3.1, §3.7): the connection resets it with MP_TCPRST, or falls back if it is the
/// only subflow and fallback is still allowed; [`MappingError::TooMany`] is the exception
/// (resource limit: refuse the segment's payload instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("mapping {new:?} conflicts with the pending mapping {existing:?}")]
    Conflict { new: RxMapping, existing: RxMapping },
    #[error(
        "DSS subflow sequence 0 with data-level length {data_len} and DATA_FIN {data_fin}: only a lone DATA_FIN (length 1) may use 0"
    )]
    ZeroSubflowSeq { data_len: u16, data_fin: bool },
    #[error("DSS checksum present: {present}, but checksums negotiated: {negotiated}")]
    ChecksumPresence { present: bool, negotiated: bool },
    #[error("{limit} mappings pending; refused the mapping at subflow offset {offset}")]
    TooMany { offset: u64, limit: usize },
    #[error("DATA_FIN-only mapping at {dsn:?} failed its DSS checksum")]
    DataFinChecksum { dsn: Dsn },
}

/// What [`RxMappings::receive`] reports through its sink, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxEvent<'b> {
    /// Bytes to insert into the connection's reassembly at `dsn`.
    Data { dsn: Dsn, bytes: &'b [u8] },
    /// A whole mapping arrived and its DSS checksum is right (its bytes were just given
    /// as one [`RxEvent::Data`]).
    ChecksumOk { dsn: Dsn },
    /// A whole mapping arrived and its checksum is wrong; its bytes were discarded.
    /// RFC 8684 §3.7: MP_FAIL with this DSN (single subflow, fallback allowed) or reset
    /// the subflow with MP_TCPRST and let the data arrive elsewhere.
    ChecksumFailed { dsn: Dsn },
}

/// The summary of one [`RxMappings::receive`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiveOutcome {
    /// Bytes from the start of the payload that were taken (delivered, staged for the
    /// checksum, or already taken earlier): what the subflow may acknowledge. The rest
    /// is refused and must come again.
    pub accepted: usize,
    /// The subflow offset of the first byte no mapping covers, when that stopped the
    /// call (RFC 8684 §3.3.1: unmapped data is never delivered; in order on the initial
    /// subflow before any DSS it signals fallback, §3.7).
    pub unmapped_at: Option<u64>,
}

/// The mappings one subflow received, and the split of its payload by them.
///
/// Without checksums, payload is mapped as it comes, in any order, and goes straight to
/// the connection (DESIGN.md: one DSN-keyed reassembly). With checksums (RFC 8684
/// §3.3.1), a mapping's bytes may be used only after the whole mapping arrived and its
/// checksum verified, so payload is taken strictly in subflow order and the mapping in
/// progress is staged here (at most [`MAX_MAPPING_LEN`] bytes, allocated once);
/// out-of-order payload is refused and comes again. Linux also processes mapped data
/// strictly in order; checksums are off by default there.
///
/// ```
/// use mptcp_proto::mptcp::mapping::{ReceivedMapping, RxEvent, RxMappings};
/// use mptcp_proto::{Dsn, SeqNum};
///
/// let mut rx = RxMappings::new(false);
/// let m = ReceivedMapping { dsn: Dsn(5000), subflow_seq: SeqNum(1), data_len: 4,
///                           data_fin: false, checksum: None };
/// rx.insert(m, 0).expect("a fresh mapping");
/// let mut got = Vec::new();
/// let outcome = rx.receive(2, b"cdef", |ev| if let RxEvent::Data { dsn, bytes } = ev {
///     got.push((dsn, bytes.to_vec()));
/// });
/// assert_eq!(got, vec![(Dsn(5002), b"cd".to_vec())]);
/// assert_eq!((outcome.accepted, outcome.unmapped_at), (2, Some(4)));
/// ```
#[derive(Clone, Debug)]
pub struct RxMappings {
    /// Finite mappings, sorted by offset, never overlapping, at most `limit`.
    maps: Vec<RxMapping>,
    limit: usize,
    /// The infinite mapping: (subflow offset, DSN) of its start.
    infinite: Option<(u64, Dsn)>,
    checksums: bool,
    /// Checksum mode: the next subflow offset to take (payload is taken in order only).
    cursor: u64,
    /// Checksum mode: the bytes of the mapping around `cursor`, from its start.
    staging: Vec<u8>,
    /// Checksum mode: a mapping failed; nothing more is taken until an infinite mapping.
    failed: bool,
}

impl RxMappings {
    /// `checksums`: whether DSS checksums were negotiated (either side set MP_CAPABLE
    /// flag A). Keeps at most [`MIN_RX_MAPPINGS`] pending mappings; see
    /// [`RxMappings::with_limit`].
    pub fn new(checksums: bool) -> Self {
        Self::with_limit(checksums, MIN_RX_MAPPINGS)
    }

    /// Keeps at most `limit` pending mappings (at least 1; [`rx_mapping_limit`] sizes it
    /// by the receive buffer). Storage grows on demand up to it.
    pub fn with_limit(checksums: bool, limit: usize) -> Self {
        RxMappings {
            maps: Vec::new(),
            limit: limit.max(1),
            infinite: None,
            checksums,
            cursor: 0,
            staging: Vec::with_capacity(if checksums {
                MAX_MAPPING_LEN as usize
            } else {
                0
            }),
            failed: false,
        }
    }

    pub fn checksums(&self) -> bool {
        self.checksums
    }

    /// The most pending mappings kept.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The pending finite mappings, by subflow offset.
    pub fn pending(&self) -> &[RxMapping] {
        &self.maps
    }

    /// The infinite mapping's start (subflow offset, DSN), once received.
    pub fn infinite(&self) -> Option<(u64, Dsn)> {
        self.infinite
    }

    /// Records a mapping from a DSS option. `rcv_offset` is the subflow's in-order
    /// receive point (RCV.NXT as a stream offset): the 32-bit relative subflow sequence
    /// number is expanded next to it, and mappings entirely below it are dropped.
    pub fn insert(
        &mut self,
        mapping: ReceivedMapping,
        rcv_offset: u64,
    ) -> Result<Inserted, MappingError> {
        let infinite = mapping.data_len == 0;
        // RFC 8684 §3.3.1: the checksum is there exactly when negotiated. The infinite
        // mapping is exempt: checksums stop with fallback (§3.7).
        if !infinite && mapping.checksum.is_some() != self.checksums {
            return Err(MappingError::ChecksumPresence {
                present: mapping.checksum.is_some(),
                negotiated: self.checksums,
            });
        }
        if mapping.data_fin && mapping.data_len == 1 {
            // §3.3.3: a DATA_FIN without data; its "subflow sequence number" is 0 and
            // it occupies no subflow space.
            if let Some(received) = mapping.checksum
                && !checksum_ok(mapping.dsn, mapping.subflow_seq, 1, &[], received)
            {
                return Err(MappingError::DataFinChecksum { dsn: mapping.dsn });
            }
            return Ok(Inserted {
                kind: InsertKind::DataFinOnly,
                data_fin: Some(mapping.dsn),
            });
        }
        if mapping.subflow_seq.0 == 0 {
            return Err(MappingError::ZeroSubflowSeq {
                data_len: mapping.data_len,
                data_fin: mapping.data_fin,
            });
        }
        self.prune(rcv_offset);
        // Offset = relative sequence - 1, unwrapped next to the receive point. A value
        // "before" offset 0 is an old mapping from the far side of a wrap: ignore it.
        let step = SeqNum(mapping.subflow_seq.0.wrapping_sub(1)).diff(SeqNum(rcv_offset as u32));
        let Some(offset) = rcv_offset.checked_add_signed(i64::from(step)) else {
            return Ok(Inserted {
                kind: InsertKind::Ignored,
                data_fin: None,
            });
        };
        if infinite {
            debug!(offset, dsn = ?mapping.dsn, "infinite mapping: subflow falls back");
            self.infinite = Some((offset, mapping.dsn));
            if self.failed {
                // The fallback after MP_FAIL (§3.7): take data again, unchecked.
                self.failed = false;
                self.staging.clear();
            }
            return Ok(Inserted {
                kind: InsertKind::Infinite,
                data_fin: None,
            });
        }
        let len = u32::from(mapping.data_len) - u32::from(mapping.data_fin);
        let new = RxMapping {
            dsn: mapping.dsn,
            offset,
            len,
            data_fin: mapping.data_fin,
            subflow_seq: mapping.subflow_seq,
            checksum: mapping.checksum,
        };
        let data_fin = mapping.data_fin.then(|| new.dsn + u64::from(len));
        if self.infinite.is_some() || new.offset_end() <= self.taken_point(rcv_offset) {
            return Ok(Inserted {
                kind: InsertKind::Ignored,
                data_fin,
            });
        }
        let idx = self.maps.partition_point(|m| m.offset_end() <= new.offset);
        if let Some(existing) = self.maps.get(idx).filter(|m| m.offset < new.offset_end()) {
            // §3.3.1: a mapping, once sent, is fixed. The same one again is fine (it
            // rides on every segment it covers); a different one over the same subflow
            // bytes is a protocol error.
            let same_bytes = existing.dsn == new.dsn
                && existing.offset == new.offset
                && existing.len == new.len
                && existing.subflow_seq == new.subflow_seq;
            return if *existing == new {
                Ok(Inserted {
                    kind: InsertKind::Duplicate,
                    data_fin,
                })
            } else if same_bytes && existing.data_fin != new.data_fin {
                // The same mapping with or without the DATA_FIN's byte of data-level
                // length: Linux adds the DATA_FIN to a mapping whose first segments
                // went out before the application closed, and the tail carries the
                // mapping one longer. Same bytes at the same places; the DATA_FIN,
                // once seen, stays (with checksums, its checksum covers the longer
                // length).
                if new.data_fin {
                    self.maps[idx] = new;
                }
                Ok(Inserted {
                    kind: InsertKind::Duplicate,
                    data_fin,
                })
            } else {
                Err(MappingError::Conflict {
                    new,
                    existing: *existing,
                })
            };
        }
        if self.maps.len() >= self.limit {
            match self.maps.last() {
                Some(highest) if highest.offset > new.offset => {
                    debug!(evicted = ?highest, "mapping limit: evicting the highest pending mapping");
                    self.maps.pop();
                }
                _ => {
                    return Err(MappingError::TooMany {
                        offset: new.offset,
                        limit: self.limit,
                    });
                }
            }
        }
        self.maps.insert(idx, new);
        Ok(Inserted {
            kind: InsertKind::New,
            data_fin,
        })
    }

    /// Drops mappings entirely below the subflow's in-order receive point `rcv_offset`
    /// (and, with checksums, below what was taken). [`RxMappings::insert`] calls it too.
    pub fn prune(&mut self, rcv_offset: u64) {
        let limit = self.taken_point(rcv_offset);
        let n = self.maps.partition_point(|m| m.offset_end() <= limit);
        self.maps.drain(..n);
    }

    fn taken_point(&self, rcv_offset: u64) -> u64 {
        if self.checksums {
            rcv_offset.min(self.cursor)
        } else {
            rcv_offset
        }
    }

    /// The DSN of subflow byte `offset` and how many bytes from it the same mapping
    /// covers.
    fn map_at(&self, offset: u64) -> Option<(Dsn, u64, Option<RxMapping>)> {
        if let Some((start, dsn)) = self.infinite
            && offset >= start
        {
            return Some((dsn + (offset - start), u64::MAX, None));
        }
        let idx = self.maps.partition_point(|m| m.offset_end() <= offset);
        let m = self.maps.get(idx).filter(|m| m.offset <= offset)?;
        Some((
            m.dsn + (offset - m.offset),
            m.offset_end() - offset,
            Some(*m),
        ))
    }

    /// Splits payload received at subflow `offset` into DSN-addressed pieces, reported
    /// to `sink` in order. Stops at the first byte no mapping covers.
    pub fn receive(
        &mut self,
        offset: u64,
        payload: &[u8],
        mut sink: impl FnMut(RxEvent<'_>),
    ) -> ReceiveOutcome {
        if self.checksums {
            return self.receive_checked(offset, payload, sink);
        }
        let mut pos = 0usize;
        while pos < payload.len() {
            let at = offset + pos as u64;
            let Some((dsn, avail, _)) = self.map_at(at) else {
                return ReceiveOutcome {
                    accepted: pos,
                    unmapped_at: Some(at),
                };
            };
            let n = clamp(avail, payload.len() - pos);
            sink(RxEvent::Data {
                dsn,
                bytes: &payload[pos..pos + n],
            });
            pos += n;
        }
        ReceiveOutcome {
            accepted: pos,
            unmapped_at: None,
        }
    }

    fn receive_checked(
        &mut self,
        offset: u64,
        payload: &[u8],
        mut sink: impl FnMut(RxEvent<'_>),
    ) -> ReceiveOutcome {
        if self.failed || offset > self.cursor {
            // Not in order (or after a failure): refuse, the peer sends it again.
            return ReceiveOutcome::default();
        }
        // Bytes before the cursor were taken already.
        let mut pos = clamp(self.cursor - offset, payload.len());
        while pos < payload.len() {
            let at = self.cursor;
            let Some((dsn, avail, finite)) = self.map_at(at) else {
                return ReceiveOutcome {
                    accepted: pos,
                    unmapped_at: Some(at),
                };
            };
            let n = clamp(avail, payload.len() - pos);
            let bytes = &payload[pos..pos + n];
            pos += n;
            self.cursor += n as u64;
            let Some(m) = finite else {
                // Infinite mapping: fallback, no checksum any more (§3.7).
                sink(RxEvent::Data { dsn, bytes });
                continue;
            };
            debug_assert_eq!(
                m.offset + self.staging.len() as u64,
                at,
                "staging holds the mapping's bytes from its start"
            );
            self.staging.extend_from_slice(bytes);
            if self.cursor < m.offset_end() {
                continue;
            }
            let received = m
                .checksum
                .expect("checksum mode keeps only checksummed mappings");
            let ok = checksum_ok(
                m.dsn,
                m.subflow_seq,
                m.data_level_len(),
                &self.staging,
                received,
            );
            if ok {
                sink(RxEvent::Data {
                    dsn: m.dsn,
                    bytes: &self.staging,
                });
                sink(RxEvent::ChecksumOk { dsn: m.dsn });
                self.staging.clear();
            } else {
                debug!(mapping = ?m, "DSS checksum failed");
                sink(RxEvent::ChecksumFailed { dsn: m.dsn });
                self.staging.clear();
                self.failed = true;
                break;
            }
        }
        ReceiveOutcome {
            accepted: pos,
            unmapped_at: None,
        }
    }
}

/// `avail` limited to `remaining` (as usize).
fn clamp(avail: u64, remaining: usize) -> usize {
    usize::try_from(avail).map_or(remaining, |a| a.min(remaining))
}

/// Whether `received` is the DSS checksum of a mapping (RFC 8684 §3.3.1).
fn checksum_ok(
    dsn: Dsn,
    subflow_seq: SeqNum,
    data_len: u16,
    payload: &[u8],
    received: u16,
) -> bool {
    DssChecksum::new(dsn, subflow_seq, data_len)
        .add(payload)
        .verify(received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mapping(dsn: u64, ssn: u32, data_len: u16) -> ReceivedMapping {
        ReceivedMapping {
            dsn: Dsn(dsn),
            subflow_seq: SeqNum(ssn),
            data_len,
            data_fin: false,
            checksum: None,
        }
    }

    /// Collects the events of one `receive` call as owned values.
    fn receive(rx: &mut RxMappings, offset: u64, payload: &[u8]) -> (Vec<String>, ReceiveOutcome) {
        let mut events = Vec::new();
        let outcome = rx.receive(offset, payload, |ev| {
            events.push(match ev {
                RxEvent::Data { dsn, bytes } => {
                    format!("data {} {}", dsn.0, String::from_utf8_lossy(bytes))
                }
                RxEvent::ChecksumOk { dsn } => format!("ok {}", dsn.0),
                RxEvent::ChecksumFailed { dsn } => format!("failed {}", dsn.0),
            })
        });
        (events, outcome)
    }

    /// An independent DSS checksum: 16-bit big-endian words summed in a u64, folded,
    /// complemented.
    fn reference_checksum(dsn: u64, ssn: u32, data_len: u16, payload: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&dsn.to_be_bytes());
        bytes.extend_from_slice(&ssn.to_be_bytes());
        bytes.extend_from_slice(&data_len.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(payload);
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut sum: u64 = bytes
            .chunks(2)
            .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn a_dss_mapping_converts_with_its_short_dsn_expanded() {
        use crate::wire::mptcp::DsnWire;
        let dss = DssMapping {
            dsn: DsnWire::Short(0x10),
            subflow_seq: SeqNum(7),
            data_len: 9,
            checksum: Some(0xbeef),
        };
        assert_eq!(
            ReceivedMapping::from_dss(&dss, true, Dsn(0x4_ffff_fff0)),
            ReceivedMapping {
                dsn: Dsn(0x5_0000_0010),
                subflow_seq: SeqNum(7),
                data_len: 9,
                data_fin: true,
                checksum: Some(0xbeef),
            }
        );
    }

    #[test]
    fn payload_spanning_two_mappings_splits_at_the_boundary() {
        let mut rx = RxMappings::new(false);
        let ins = rx.insert(mapping(1000, 1, 3), 0).expect("valid");
        assert_eq!(
            ins,
            Inserted {
                kind: InsertKind::New,
                data_fin: None
            }
        );
        // The second mapping's DSNs are not contiguous with the first (another subflow
        // carried 1003..2000).
        rx.insert(mapping(2000, 4, 5), 0).expect("valid");
        let (events, outcome) = receive(&mut rx, 0, b"abcdefgh");
        assert_eq!(events, vec!["data 1000 abc", "data 2000 defgh"]);
        assert_eq!(
            outcome,
            ReceiveOutcome {
                accepted: 8,
                unmapped_at: None
            }
        );
    }

    #[test]
    fn unmapped_bytes_stop_delivery_and_are_reported() {
        let mut rx = RxMappings::new(false);
        rx.insert(mapping(50, 11, 5), 0).expect("valid"); // offsets 10..15
        let (events, outcome) = receive(&mut rx, 0, b"0123456789abcde");
        assert!(events.is_empty());
        assert_eq!(
            outcome,
            ReceiveOutcome {
                accepted: 0,
                unmapped_at: Some(0)
            }
        );
        let (events, outcome) = receive(&mut rx, 12, b"cdefg");
        assert_eq!(events, vec!["data 52 cde"]);
        assert_eq!(
            outcome,
            ReceiveOutcome {
                accepted: 3,
                unmapped_at: Some(15)
            }
        );
    }

    #[test]
    fn identical_mapping_is_a_duplicate_a_different_one_a_conflict() {
        let mut rx = RxMappings::new(false);
        rx.insert(mapping(100, 1, 10), 0).expect("valid");
        assert_eq!(
            rx.insert(mapping(100, 1, 10), 0).map(|i| i.kind),
            Ok(InsertKind::Duplicate)
        );
        let existing = rx.pending()[0];
        match rx.insert(mapping(200, 1, 10), 0) {
            Err(MappingError::Conflict { new, existing: e }) => {
                assert_eq!((new.dsn, new.offset, new.len), (Dsn(200), 0, 10));
                assert_eq!(e, existing);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        // Overlapping with different bounds is a conflict too, even with consistent DSNs.
        assert!(matches!(
            rx.insert(mapping(105, 6, 10), 0),
            Err(MappingError::Conflict { .. })
        ));
        // Adjacent is fine.
        assert_eq!(
            rx.insert(mapping(110, 11, 10), 0).map(|i| i.kind),
            Ok(InsertKind::New)
        );
        assert_eq!(rx.pending().len(), 2);
    }

    /// Seen from Linux 6.18 at the end of a transfer: a mapping's first segment went
    /// out, the application closed, and the tail came with the same mapping one byte
    /// longer and DATA_FIN set. That is the same mapping, not a conflict (which resets
    /// the subflow: the connection then hung with the peer's last bytes unacked).
    #[test]
    fn a_mapping_repeated_with_the_data_fin_added_is_the_same_mapping() {
        let mut rx = RxMappings::new(false);
        rx.insert(mapping(100, 1, 10), 0).expect("valid");
        let with_fin = ReceivedMapping {
            data_fin: true,
            ..mapping(100, 1, 11)
        };
        assert_eq!(
            rx.insert(with_fin, 0),
            Ok(Inserted {
                kind: InsertKind::Duplicate,
                data_fin: Some(Dsn(110))
            })
        );
        assert_eq!(rx.pending().len(), 1);
        assert!(rx.pending()[0].data_fin, "the DATA_FIN is kept");
        // The earlier form again (a retransmitted head) keeps it too.
        assert_eq!(
            rx.insert(mapping(100, 1, 10), 0).map(|i| i.kind),
            Ok(InsertKind::Duplicate)
        );
        assert!(rx.pending()[0].data_fin);
        // One byte longer without a DATA_FIN covers other bytes: still a conflict.
        assert!(matches!(
            rx.insert(mapping(100, 1, 11), 0),
            Err(MappingError::Conflict { .. })
        ));
        // The payload maps to the data sequence as before.
        let (events, outcome) = receive(&mut rx, 0, b"0123456789");
        assert_eq!(events, vec!["data 100 0123456789"]);
        assert_eq!(outcome.accepted, 10);
    }

    #[test]
    fn mappings_below_the_receive_point_are_pruned_and_ignored() {
        let mut rx = RxMappings::new(false);
        rx.insert(mapping(100, 1, 10), 0).expect("valid");
        rx.insert(mapping(110, 11, 10), 0).expect("valid");
        rx.prune(10);
        assert_eq!(rx.pending().len(), 1);
        assert_eq!(
            rx.insert(mapping(100, 1, 10), 10).map(|i| i.kind),
            Ok(InsertKind::Ignored)
        );
        assert_eq!(rx.pending()[0].offset, 10);
    }

    #[test]
    fn relative_subflow_sequence_expands_next_to_the_receive_point() {
        let mut rx = RxMappings::new(false);
        // The subflow is 5 GiB in: sequence 0x4000_0001 means offset 0x1_4000_0000.
        let rcv = 0x1_3fff_fff0;
        rx.insert(mapping(9, 0x4000_0001, 4), rcv).expect("valid");
        assert_eq!(rx.pending()[0].offset, 0x1_4000_0000);
        // Just past a 2^32 boundary of the stream.
        let mut rx = RxMappings::new(false);
        rx.insert(mapping(9, 3, 4), 0xffff_fff0).expect("valid");
        assert_eq!(rx.pending()[0].offset, 0x1_0000_0002);
        // A sequence number "before" offset 0 is ignored, not wrapped to 2^64.
        let mut rx = RxMappings::new(false);
        assert_eq!(
            rx.insert(mapping(9, 0xffff_fff0, 4), 0).map(|i| i.kind),
            Ok(InsertKind::Ignored)
        );
    }

    #[test]
    fn data_fin_is_reported_with_data_and_alone() {
        let mut rx = RxMappings::new(false);
        let with_data = ReceivedMapping {
            data_fin: true,
            ..mapping(500, 1, 4)
        };
        assert_eq!(
            rx.insert(with_data, 0),
            Ok(Inserted {
                kind: InsertKind::New,
                data_fin: Some(Dsn(503))
            })
        );
        assert_eq!(rx.pending()[0].len, 3, "the DATA_FIN takes no subflow byte");
        let (events, outcome) = receive(&mut rx, 0, b"xyzq");
        assert_eq!(events, vec!["data 500 xyz"]);
        assert_eq!(outcome.unmapped_at, Some(3));
        let alone = ReceivedMapping {
            data_fin: true,
            ..mapping(503, 0, 1)
        };
        assert_eq!(
            rx.insert(alone, 3),
            Ok(Inserted {
                kind: InsertKind::DataFinOnly,
                data_fin: Some(Dsn(503))
            })
        );
        assert_eq!(
            rx.insert(mapping(503, 0, 5), 3),
            Err(MappingError::ZeroSubflowSeq {
                data_len: 5,
                data_fin: false
            })
        );
    }

    #[test]
    fn infinite_mapping_maps_everything_after_it() {
        let mut rx = RxMappings::new(false);
        rx.insert(mapping(100, 1, 4), 0).expect("valid");
        assert_eq!(
            rx.insert(mapping(104, 5, 0), 0).map(|i| i.kind),
            Ok(InsertKind::Infinite)
        );
        assert_eq!(rx.infinite(), Some((4, Dsn(104))));
        let (events, outcome) = receive(&mut rx, 2, b"cdefghij");
        assert_eq!(events, vec!["data 102 cd", "data 104 efghij"]);
        assert_eq!(outcome.accepted, 8);
        // Later finite mappings are ignored.
        assert_eq!(
            rx.insert(mapping(200, 20, 4), 0).map(|i| i.kind),
            Ok(InsertKind::Ignored)
        );
    }

    #[test]
    fn checksum_presence_must_match_the_negotiation() {
        let mut rx = RxMappings::new(true);
        assert_eq!(
            rx.insert(mapping(1, 1, 1), 0),
            Err(MappingError::ChecksumPresence {
                present: false,
                negotiated: true
            })
        );
        let mut rx = RxMappings::new(false);
        assert_eq!(
            rx.insert(
                ReceivedMapping {
                    checksum: Some(0),
                    ..mapping(1, 1, 1)
                },
                0
            ),
            Err(MappingError::ChecksumPresence {
                present: true,
                negotiated: false
            })
        );
    }

    #[test]
    fn checksummed_mapping_is_delivered_whole_after_verification() {
        let payload = b"hello, world";
        let sum = reference_checksum(0x1_0000_0000, 1, 12, payload);
        let mut rx = RxMappings::new(true);
        rx.insert(
            ReceivedMapping {
                checksum: Some(sum),
                ..mapping(0x1_0000_0000, 1, 12)
            },
            0,
        )
        .expect("valid");
        // Out of order: refused, nothing taken.
        let (events, outcome) = receive(&mut rx, 5, &payload[5..]);
        assert!(events.is_empty());
        assert_eq!(
            outcome,
            ReceiveOutcome {
                accepted: 0,
                unmapped_at: None
            }
        );
        // In order, an odd-length first piece: staged, nothing delivered yet.
        let (events, outcome) = receive(&mut rx, 0, &payload[..5]);
        assert!(events.is_empty());
        assert_eq!(outcome.accepted, 5);
        // Overlapping retransmission plus the rest: the whole mapping comes out.
        let (events, outcome) = receive(&mut rx, 3, &payload[3..]);
        assert_eq!(
            events,
            vec!["data 4294967296 hello, world", "ok 4294967296"]
        );
        assert_eq!(
            outcome,
            ReceiveOutcome {
                accepted: 9,
                unmapped_at: None
            }
        );
    }

    #[test]
    fn checksum_failure_discards_the_mapping_and_stops_taking_data() {
        let payload = b"abcdef";
        let good = reference_checksum(77, 1, 6, payload);
        let mut rx = RxMappings::new(true);
        rx.insert(
            ReceivedMapping {
                checksum: Some(good),
                ..mapping(77, 1, 6)
            },
            0,
        )
        .expect("valid");
        let later = reference_checksum(83, 7, 2, b"gh");
        rx.insert(
            ReceivedMapping {
                checksum: Some(later),
                ..mapping(83, 7, 2)
            },
            0,
        )
        .expect("valid");
        let (events, outcome) = receive(&mut rx, 0, b"abcdeXgh");
        assert_eq!(events, vec!["failed 77"]);
        assert_eq!(outcome.accepted, 6);
        let (events, outcome) = receive(&mut rx, 6, b"gh");
        assert!(events.is_empty());
        assert_eq!(outcome.accepted, 0);
    }

    #[test]
    fn checksummed_data_fin_only_mapping_is_verified() {
        let mut rx = RxMappings::new(true);
        let sum = reference_checksum(900, 0, 1, &[]);
        let fin = ReceivedMapping {
            data_fin: true,
            checksum: Some(sum),
            ..mapping(900, 0, 1)
        };
        assert_eq!(rx.insert(fin, 0).map(|i| i.data_fin), Ok(Some(Dsn(900))));
        let bad = ReceivedMapping {
            checksum: Some(sum ^ 1),
            ..fin
        };
        assert_eq!(
            rx.insert(bad, 0),
            Err(MappingError::DataFinChecksum { dsn: Dsn(900) })
        );
    }

    #[test]
    fn past_the_limit_lower_mappings_evict_the_highest() {
        let mut rx = RxMappings::new(false);
        // Mappings at offsets 100, 110, ... above a hole at 0..100.
        for i in 0..MIN_RX_MAPPINGS as u32 {
            rx.insert(mapping(1000 + u64::from(i) * 10, 101 + i * 10, 10), 0)
                .expect("room");
        }
        let top = 100 + (MIN_RX_MAPPINGS as u64 - 1) * 10;
        assert_eq!(
            rx.insert(mapping(5000, 1 + top as u32 + 10, 10), 0),
            Err(MappingError::TooMany {
                offset: top + 10,
                limit: MIN_RX_MAPPINGS
            })
        );
        // The hole's mapping is taken; the highest goes.
        assert_eq!(
            rx.insert(mapping(900, 1, 100), 0).map(|i| i.kind),
            Ok(InsertKind::New)
        );
        assert_eq!(rx.pending().len(), MIN_RX_MAPPINGS);
        assert_eq!(rx.pending()[0].offset, 0);
        assert_eq!(rx.pending().last().map(|m| m.offset), Some(top - 10));
    }

    #[test]
    fn a_window_of_one_segment_mappings_fits_above_a_hole() {
        // 1 MB of receive buffer, a hole at 0..1400, then one 1400-byte mapping per
        // segment for the rest of the window: all must be kept.
        let limit = rx_mapping_limit(1024 * 1024);
        assert_eq!(limit, 1024);
        let mut rx = RxMappings::with_limit(false, limit);
        let segments = (1024 * 1024 / 1400) as u32;
        for i in 1..segments {
            let kind = rx
                .insert(mapping(u64::from(i) * 1400, 1 + i * 1400, 1400), 0)
                .map(|k| k.kind);
            assert_eq!(kind, Ok(InsertKind::New), "segment {i}");
        }
        assert_eq!(rx.pending().len(), segments as usize - 1);
        // The default table refuses past its 32.
        let mut small = RxMappings::new(false);
        for i in 1..=MIN_RX_MAPPINGS as u32 {
            assert!(
                small
                    .insert(mapping(u64::from(i) * 1400, 1 + i * 1400, 1400), 0)
                    .is_ok()
            );
        }
        let next = MIN_RX_MAPPINGS as u32 + 1;
        assert_eq!(
            small.insert(mapping(u64::from(next) * 1400, 1 + next * 1400, 1400), 0),
            Err(MappingError::TooMany {
                offset: u64::from(next) * 1400,
                limit: MIN_RX_MAPPINGS
            })
        );
        // Small buffers keep the floor.
        assert_eq!(rx_mapping_limit(16 * 1024), MIN_RX_MAPPINGS);
    }

    proptest! {
        /// Whatever the chunking into mappings, segmentation, reordering and duplication,
        /// the bytes handed out land at the right DSNs and every byte eventually does.
        #[test]
        fn reordered_segments_reassemble_exactly(
            chunks in proptest::collection::vec(1u16..300, 1..60),
            cut in 1usize..200,
            order_seed: u64,
            dsn_base in 0u64..u64::MAX / 2,
        ) {
            let total: usize = chunks.iter().map(|&c| usize::from(c)).sum();
            let stream: Vec<u8> = (0..total).map(|i| (i * 7 + 3) as u8).collect();
            // Mapping k covers [start_k, start_k + len_k); DSNs jump by 1000 between
            // mappings, as if other subflows carried the gaps.
            let mut maps = Vec::new();
            let mut start = 0u64;
            for (k, &len) in chunks.iter().enumerate() {
                maps.push((start, len, dsn_base + start + 1000 * k as u64));
                start += u64::from(len);
            }
            // Segments of up to `cut` bytes, cut at mapping boundaries (one DSS per
            // segment), each carrying its mapping.
            let mut segments: Vec<(u64, usize)> = Vec::new();
            for &(m_start, m_len, _) in &maps {
                let m_end = m_start + u64::from(m_len);
                let mut s = m_start;
                while s < m_end {
                    let n = (cut as u64).min(m_end - s);
                    segments.push((s, n as usize));
                    s += n;
                }
            }
            let mut x = order_seed | 1;
            for i in (1..segments.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                segments.swap(i, (x % (i as u64 + 1)) as usize);
            }
            segments.extend(segments.clone()); // every segment twice
            let mut rx = RxMappings::new(false);
            let mut got = vec![None; total];
            let mut rcv_nxt = 0u64;
            // Deliver until nothing changes: refused bytes come again, like TCP would.
            let mut progress = true;
            while progress {
                progress = false;
                for &(seg_start, seg_len) in &segments {
                    if seg_start + seg_len as u64 <= rcv_nxt { continue; }
                    let &(m_start, m_len, m_dsn) = maps.iter()
                        .find(|&&(s, l, _)| seg_start >= s && seg_start < s + u64::from(l))
                        .expect("every offset is in a mapping");
                    let wire = ReceivedMapping {
                        dsn: Dsn(m_dsn),
                        subflow_seq: SeqNum((m_start + 1) as u32),
                        data_len: m_len,
                        data_fin: false,
                        checksum: None,
                    };
                    let kind = match rx.insert(wire, rcv_nxt) {
                        Ok(ins) => ins.kind,
                        // Limit reached: the segment is refused and comes again.
                        Err(MappingError::TooMany { .. }) => continue,
                        Err(e) => panic!("consistent mappings: {e}"),
                    };
                    prop_assert!(kind != InsertKind::Infinite && kind != InsertKind::DataFinOnly);
                    let payload = &stream[seg_start as usize..seg_start as usize + seg_len];
                    let mut pieces = Vec::new();
                    let out = rx.receive(seg_start, payload, |ev| {
                        if let RxEvent::Data { dsn, bytes } = ev { pieces.push((dsn, bytes.to_vec())); }
                    });
                    for (dsn, bytes) in pieces {
                        for (i, b) in bytes.into_iter().enumerate() {
                            let d = dsn.0 + i as u64;
                            let &(s, _, md) = maps.iter().rev().find(|&&(_, _, md)| md <= d).expect("mapped");
                            let off = (s + (d - md)) as usize;
                            prop_assert_eq!(b, stream[off]);
                            if got[off].is_none() { got[off] = Some(b); progress = true; }
                        }
                    }
                    prop_assert!(out.accepted <= seg_len);
                    while (rcv_nxt as usize) < total && got[rcv_nxt as usize].is_some() {
                        rcv_nxt += 1;
                    }
                }
            }
            prop_assert!(got.iter().all(Option::is_some));
            prop_assert!(rx.pending().len() <= MIN_RX_MAPPINGS);
        }

        /// In checksum mode, data fed in order in arbitrary pieces comes out exactly,
        /// one whole mapping at a time, each verified.
        #[test]
        fn checksummed_stream_in_any_pieces(
            chunks in proptest::collection::vec(1u16..200, 1..10),
            cuts in proptest::collection::vec(1usize..150, 1..40),
        ) {
            let total: usize = chunks.iter().map(|&c| usize::from(c)).sum();
            let stream: Vec<u8> = (0..total).map(|i| (i * 13 + 5) as u8).collect();
            let mut rx = RxMappings::new(true);
            let mut start = 0usize;
            for &len in &chunks {
                let dsn = 40_000 + start as u64;
                let end = start + usize::from(len);
                let sum = reference_checksum(dsn, start as u32 + 1, len, &stream[start..end]);
                let m = ReceivedMapping {
                    dsn: Dsn(dsn), subflow_seq: SeqNum(start as u32 + 1), data_len: len,
                    data_fin: false, checksum: Some(sum),
                };
                rx.insert(m, 0).expect("valid");
                start = end;
            }
            let mut out = Vec::new();
            let mut oks = 0;
            let mut offset = 0usize;
            let mut cut = cuts.iter().cycle();
            while offset < total {
                let n = (*cut.next().expect("cycle")).min(total - offset);
                let res = rx.receive(offset as u64, &stream[offset..offset + n], |ev| match ev {
                    RxEvent::Data { dsn, bytes } => {
                        assert_eq!(dsn.0, 40_000 + out.len() as u64);
                        out.extend_from_slice(bytes);
                    }
                    RxEvent::ChecksumOk { .. } => oks += 1,
                    RxEvent::ChecksumFailed { dsn } => panic!("checksum failed at {dsn:?}"),
                });
                prop_assert_eq!(res.accepted, n);
                offset += n;
            }
            prop_assert_eq!(out, stream);
            prop_assert_eq!(oks, chunks.len());
        }
    }
}
