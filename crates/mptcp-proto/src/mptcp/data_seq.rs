//! Connection-level sequence state (RFC 8684 §3.3): the two data sequence spaces, the
//! data ACK in both directions, the connection-level receive window and DATA_FIN.
//!
//! It owns numbers only: the send buffer and the reassembly (stream offsets) belong to
//! the connection, which tells this state where they stand and asks it what to put on
//! the wire. Internally everything is a stream offset, `offset = DSN - (IDSN + 1)`
//! (§3.3: the first data byte has DSN IDSN + 1), so comparisons never meet the 2^64 wrap
//! of a randomly placed IDSN; DSNs appear only at the API.

use crate::seq::Dsn;

/// Where our DATA_FIN stands (RFC 8684 §3.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataFinTx {
    /// The application has not closed its sending side.
    Open,
    /// Closed: the DATA_FIN at `dsn` (after the last byte written) is due but has not
    /// been handed to a subflow.
    Pending { dsn: Dsn },
    /// On the wire, not yet covered by a data ACK.
    Sent { dsn: Dsn },
    /// A data ACK covered it: our direction is finished.
    Acked { dsn: Dsn },
}

/// Where the peer's DATA_FIN stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataFinRx {
    /// None received.
    Open,
    /// Received at `dsn`, but data before it is still missing.
    Received { dsn: Dsn },
    /// Received and every byte before it arrived: our data ACK covers it and the stream
    /// ends at `dsn` (end of file for the reader).
    Complete { dsn: Dsn },
}

/// What a received data ACK did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataAckOutcome {
    /// New data acknowledged. `freed` send-buffer bytes may go (call
    /// [`crate::buffer::SendBuffer::ack_until`] with `acked_offset`); the DATA_FIN, which
    /// has no byte in the buffer, is reported separately.
    Advanced {
        freed: u64,
        acked_offset: u64,
        data_fin_acked: bool,
    },
    /// At or below the highest data ACK already seen (a duplicate or a reordered one).
    Old,
    /// Beyond anything sent: ignored (RFC 8684 §3.3.2 — a data ACK may only acknowledge
    /// data that was sent; honouring it would free bytes never delivered).
    Unsent { ack: Dsn, highest_sent: Dsn },
}

/// The peer's DATA_FIN contradicts what we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DataFinError {
    #[error("DATA_FIN at {new:?} but an earlier one was at {earlier:?}")]
    Moved { earlier: Dsn, new: Dsn },
    #[error("DATA_FIN at {dsn:?} lies below data already received up to {received:?}")]
    BeforeReceivedData { dsn: Dsn, received: Dsn },
}

/// Sequence state of one MPTCP connection, both directions.
///
/// ```
/// use mptcp_proto::Dsn;
/// use mptcp_proto::mptcp::data_seq::{DataAckOutcome, DataSeq};
///
/// let mut seq = DataSeq::new(Dsn(999), Dsn(4999));
/// assert_eq!(seq.tx_dsn(0), Dsn(1000)); // the first byte is IDSN + 1
/// seq.record_sent(seq.tx_dsn(300));
/// assert_eq!(
///     seq.on_data_ack(Dsn(1100)),
///     DataAckOutcome::Advanced { freed: 100, acked_offset: 100, data_fin_acked: false }
/// );
/// seq.update_received(42); // the reassembly's contiguous_end
/// assert_eq!(seq.data_ack(), Dsn(5042));
/// ```
#[derive(Clone, Debug)]
pub struct DataSeq {
    local_idsn: Dsn,
    peer_idsn: Dsn,
    /// Highest data ACK received, as a send offset (DATA_FIN included: it can be one past
    /// the last payload byte).
    snd_una: u64,
    /// One past the highest send offset handed to any subflow, DATA_FIN included.
    snd_nxt: u64,
    /// Right edge of the peer's connection-level window, as a send offset; never moves
    /// left (§3.3.4).
    snd_wnd_edge: u64,
    fin_tx: DataFinTxState,
    /// In-order data received (the reassembly's contiguous end), as a receive offset.
    rcv_nxt: u64,
    /// Right edge we advertised, as a receive offset; never moves left (§3.3.4).
    rcv_wnd_edge: u64,
    /// The peer's DATA_FIN, as a receive offset.
    fin_rx: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataFinTxState {
    Open,
    Pending(u64),
    Sent(u64),
    Acked(u64),
}

impl DataSeq {
    /// `local_idsn` / `peer_idsn`: the low 64 bits of SHA-256 of each side's key
    /// (RFC 8684 §3.1).
    pub fn new(local_idsn: Dsn, peer_idsn: Dsn) -> Self {
        DataSeq {
            local_idsn,
            peer_idsn,
            snd_una: 0,
            snd_nxt: 0,
            snd_wnd_edge: 0,
            fin_tx: DataFinTxState::Open,
            rcv_nxt: 0,
            rcv_wnd_edge: 0,
            fin_rx: None,
        }
    }

    /// Sets the peer's IDSN once its key arrives (a server learns the client's key
    /// from the third ACK or the first data, RFC 8684 §3.1, and may have sent data
    /// before). Receive state is kept as offsets, so this is exact as long as nothing
    /// was received yet, which is the only time a caller knows no key.
    pub fn set_peer_idsn(&mut self, peer_idsn: Dsn) {
        debug_assert_eq!(self.rcv_nxt, 0, "the peer's IDSN is fixed before its data");
        self.peer_idsn = peer_idsn;
    }

    pub fn local_idsn(&self) -> Dsn {
        self.local_idsn
    }

    pub fn peer_idsn(&self) -> Dsn {
        self.peer_idsn
    }

    // ---- conversions ----

    /// The DSN of send-stream offset `offset`.
    pub fn tx_dsn(&self, offset: u64) -> Dsn {
        self.local_idsn + 1 + offset
    }

    /// The send-stream offset of `dsn` (modulo 2^64; meaningful for DSNs of this
    /// connection).
    pub fn tx_offset(&self, dsn: Dsn) -> u64 {
        dsn.0.wrapping_sub(self.local_idsn.0.wrapping_add(1))
    }

    /// The DSN of receive-stream offset `offset`.
    pub fn rx_dsn(&self, offset: u64) -> Dsn {
        self.peer_idsn + 1 + offset
    }

    /// The receive-stream offset of `dsn` (modulo 2^64).
    pub fn rx_offset(&self, dsn: Dsn) -> u64 {
        dsn.0.wrapping_sub(self.peer_idsn.0.wrapping_add(1))
    }

    /// Expands a 4-byte DSN from a received mapping against the next expected DSN
    /// (RFC 8684 §3.3.1; Linux uses the same reference, its `ack_seq`).
    pub fn expand_peer_dsn(&self, low: u32) -> Dsn {
        Dsn::expand(low, self.rx_dsn(self.rcv_nxt))
    }

    /// Expands a 4-byte data ACK against the highest data ACK seen (§3.3.2).
    pub fn expand_data_ack(&self, low: u32) -> Dsn {
        Dsn::expand(low, self.tx_dsn(self.snd_una))
    }

    // ---- sending ----

    /// A subflow was handed data (or the DATA_FIN) up to, not including, `end`.
    /// Reinjections of older ranges change nothing.
    pub fn record_sent(&mut self, end: Dsn) {
        let end = self.tx_offset(end);
        // An offset wrapped from "before the stream" is huge; the caller only hands
        // subflows data from its send buffer, so such a value is a bug, not input.
        debug_assert!(
            end < u64::MAX / 2,
            "record_sent beyond any plausible stream"
        );
        self.snd_nxt = self.snd_nxt.max(end);
        if let DataFinTxState::Pending(fin) = self.fin_tx
            && self.snd_nxt > fin
        {
            self.fin_tx = DataFinTxState::Sent(fin);
        }
    }

    /// One past the highest DSN sent (DATA_FIN included).
    pub fn snd_nxt(&self) -> Dsn {
        self.tx_dsn(self.snd_nxt)
    }

    /// The highest data ACK received.
    pub fn snd_una(&self) -> Dsn {
        self.tx_dsn(self.snd_una)
    }

    /// Processes a data ACK (already expanded to 64 bits).
    pub fn on_data_ack(&mut self, ack: Dsn) -> DataAckOutcome {
        let offset = self.tx_offset(ack);
        if offset > self.snd_nxt {
            return DataAckOutcome::Unsent {
                ack,
                highest_sent: self.snd_nxt(),
            };
        }
        if offset <= self.snd_una {
            return DataAckOutcome::Old;
        }
        // The DATA_FIN has a DSN but no send-buffer byte.
        let fin_tx = self.fin_tx;
        let payload_end = |o: u64| match fin_tx {
            DataFinTxState::Pending(fin)
            | DataFinTxState::Sent(fin)
            | DataFinTxState::Acked(fin) => o.min(fin),
            DataFinTxState::Open => o,
        };
        let freed = payload_end(offset) - payload_end(self.snd_una);
        self.snd_una = offset;
        let mut data_fin_acked = false;
        if let DataFinTxState::Sent(fin) = self.fin_tx
            && offset > fin
        {
            self.fin_tx = DataFinTxState::Acked(fin);
            data_fin_acked = true;
        }
        DataAckOutcome::Advanced {
            freed,
            acked_offset: payload_end(offset),
            data_fin_acked,
        }
    }

    /// A subflow segment advertised `window_field` with the subflow's window scale
    /// `wscale`. RFC 8684 §3.3.4: the window is relative to the data ACK, the one this
    /// segment carried (`segment_ack`, if any and not beyond what we sent) or else the
    /// highest seen; the right edge never moves left.
    pub fn on_peer_window(&mut self, segment_ack: Option<Dsn>, window_field: u16, wscale: u8) {
        let base = segment_ack
            .map(|a| self.tx_offset(a))
            .filter(|&o| o <= self.snd_nxt)
            .unwrap_or(self.snd_una);
        let window = u64::from(window_field) << wscale.min(14);
        self.snd_wnd_edge = self.snd_wnd_edge.max(base + window);
    }

    /// Bytes of new data the peer's connection-level window still admits beyond
    /// everything sent.
    pub fn send_window(&self) -> u64 {
        self.snd_wnd_edge.saturating_sub(self.snd_nxt)
    }

    /// The application closed its sending side after writing `stream_end` bytes: the
    /// DATA_FIN takes DSN `tx_dsn(stream_end)`. Idempotent; returns the DATA_FIN's DSN.
    pub fn close_send(&mut self, stream_end: u64) -> Dsn {
        match self.fin_tx {
            DataFinTxState::Open => {
                self.fin_tx = DataFinTxState::Pending(stream_end);
                if self.snd_nxt > stream_end {
                    self.fin_tx = DataFinTxState::Sent(stream_end);
                }
                self.tx_dsn(stream_end)
            }
            DataFinTxState::Pending(fin)
            | DataFinTxState::Sent(fin)
            | DataFinTxState::Acked(fin) => self.tx_dsn(fin),
        }
    }

    pub fn data_fin_tx(&self) -> DataFinTx {
        match self.fin_tx {
            DataFinTxState::Open => DataFinTx::Open,
            DataFinTxState::Pending(o) => DataFinTx::Pending {
                dsn: self.tx_dsn(o),
            },
            DataFinTxState::Sent(o) => DataFinTx::Sent {
                dsn: self.tx_dsn(o),
            },
            DataFinTxState::Acked(o) => DataFinTx::Acked {
                dsn: self.tx_dsn(o),
            },
        }
    }

    // ---- receiving ----

    /// The reassembly's in-order end moved to `contiguous_end` (a receive offset).
    pub fn update_received(&mut self, contiguous_end: u64) {
        self.rcv_nxt = self.rcv_nxt.max(contiguous_end);
    }

    /// The peer's DATA_FIN at `dsn` (from a mapping with the F flag).
    pub fn on_peer_data_fin(&mut self, dsn: Dsn) -> Result<(), DataFinError> {
        let offset = self.rx_offset(dsn);
        match self.fin_rx {
            Some(earlier) if earlier != offset => Err(DataFinError::Moved {
                earlier: self.rx_dsn(earlier),
                new: dsn,
            }),
            Some(_) => Ok(()),
            None if offset < self.rcv_nxt => Err(DataFinError::BeforeReceivedData {
                dsn,
                received: self.rx_dsn(self.rcv_nxt),
            }),
            None => {
                self.fin_rx = Some(offset);
                Ok(())
            }
        }
    }

    pub fn data_fin_rx(&self) -> DataFinRx {
        match self.fin_rx {
            None => DataFinRx::Open,
            Some(fin) if self.rcv_nxt >= fin => DataFinRx::Complete {
                dsn: self.rx_dsn(fin),
            },
            Some(fin) => DataFinRx::Received {
                dsn: self.rx_dsn(fin),
            },
        }
    }

    /// The data ACK to send (RFC 8684 §3.3.2: cumulative, the next DSN expected), one
    /// past the DATA_FIN once everything before it arrived (§3.3.3).
    pub fn data_ack(&self) -> Dsn {
        let fin = matches!(self.data_fin_rx(), DataFinRx::Complete { .. });
        self.rx_dsn(self.rcv_nxt + u64::from(fin))
    }

    /// The TCP window field to put on any subflow's segment, given the reassembly's
    /// `right_edge` (a receive offset: the first byte it cannot hold) and the subflow's
    /// receive window scale. RFC 8684 §3.3.4: the window is relative to the data ACK
    /// sent, and one shared for the connection; its right edge must not move left, so a
    /// field never advertises less than an earlier one did, even if the buffer shrank.
    ///
    /// Both are rounded down to the scale: an edge offered is always one the buffer can
    /// take. Rounding an earlier promise up instead (as Linux does, whose receive
    /// memory is a soft limit) creeps the edge forward by up to one scale unit per data
    /// ACK while the application does not read; here the reassembly then drops what the
    /// peer rightly sent up to that edge, and only a connection-level retransmission
    /// 200 ms later repairs it (seen over TUN at 10 Gbit/s). Rounded down, the edge the
    /// peer sees may recede by less than one scale unit when the data ACK moves by a
    /// non-multiple of it; senders keep the highest edge seen (ours and Linux's MPTCP).
    /// Records the edge the peer will see.
    pub fn window_field(&mut self, right_edge: u64, wscale: u8) -> u16 {
        let wscale = wscale.min(14);
        let ack = self.rx_offset(self.data_ack());
        let fresh = right_edge.saturating_sub(ack) >> wscale;
        let promised = self.rcv_wnd_edge.saturating_sub(ack) >> wscale;
        let field = fresh.max(promised).min(u64::from(u16::MAX));
        self.rcv_wnd_edge = self.rcv_wnd_edge.max(ack + (field << wscale));
        field as u16
    }

    /// The right edge of the window we advertised (a DSN): data up to it must be taken.
    pub fn advertised_edge(&self) -> Dsn {
        self.rx_dsn(self.rcv_wnd_edge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Dsn = Dsn(0x0123_4567_89ab_cdef);
    const PEER: Dsn = Dsn(0xffff_ffff_ffff_fff0); // the receive space wraps 2^64 early

    fn seq() -> DataSeq {
        DataSeq::new(LOCAL, PEER)
    }

    #[test]
    fn offsets_and_dsns_convert_both_ways_across_the_wrap() {
        let s = seq();
        assert_eq!(s.tx_dsn(0), Dsn(0x0123_4567_89ab_cdf0));
        assert_eq!(s.tx_offset(Dsn(0x0123_4567_89ab_cdf0 + 77)), 77);
        assert_eq!(s.rx_dsn(0), Dsn(0xffff_ffff_ffff_fff1));
        // ...fff1 + 15 wraps to 0.
        assert_eq!(s.rx_dsn(20), Dsn(5));
        assert_eq!(s.rx_offset(Dsn(5)), 20);
    }

    #[test]
    fn data_acks_free_once_and_ignore_unsent_data() {
        let mut s = seq();
        s.record_sent(s.tx_dsn(1000));
        assert_eq!(
            s.on_data_ack(s.tx_dsn(400)),
            DataAckOutcome::Advanced {
                freed: 400,
                acked_offset: 400,
                data_fin_acked: false
            }
        );
        assert_eq!(s.on_data_ack(s.tx_dsn(400)), DataAckOutcome::Old);
        assert_eq!(s.on_data_ack(s.tx_dsn(100)), DataAckOutcome::Old);
        assert_eq!(
            s.on_data_ack(s.tx_dsn(1001)),
            DataAckOutcome::Unsent {
                ack: s.tx_dsn(1001),
                highest_sent: s.tx_dsn(1000)
            }
        );
        // An ACK from "before the stream" wraps to a huge offset: also ignored.
        assert!(matches!(
            s.on_data_ack(s.tx_dsn(0) - 5),
            DataAckOutcome::Unsent { .. }
        ));
        assert_eq!(s.snd_una(), s.tx_dsn(400));
        assert_eq!(
            s.on_data_ack(s.tx_dsn(1000)),
            DataAckOutcome::Advanced {
                freed: 600,
                acked_offset: 1000,
                data_fin_acked: false
            }
        );
    }

    #[test]
    fn short_data_ack_expands_against_the_highest_seen() {
        let mut s = DataSeq::new(Dsn(0xffff_fff0 - 1), PEER);
        // snd_una sits at DSN 0xffff_fff0; a 32-bit ACK of 0x10 is past the 2^32 boundary.
        assert_eq!(s.expand_data_ack(0x10), Dsn(0x1_0000_0010));
        s.record_sent(Dsn(0x1_0000_0100));
        assert!(matches!(
            s.on_data_ack(Dsn(0x1_0000_0010)),
            DataAckOutcome::Advanced { freed: 0x20, .. }
        ));
        assert_eq!(s.expand_data_ack(0x0000_0020), Dsn(0x1_0000_0020));
    }

    #[test]
    fn short_peer_dsn_expands_against_the_next_expected() {
        let mut s = DataSeq::new(LOCAL, Dsn(0x2_ffff_ff00));
        s.update_received(0x80); // next expected DSN 0x2_ffff_ff81
        assert_eq!(s.expand_peer_dsn(0x0000_0100), Dsn(0x3_0000_0100));
        assert_eq!(s.expand_peer_dsn(0xffff_ff90), Dsn(0x2_ffff_ff90));
    }

    #[test]
    fn our_data_fin_is_pending_sent_then_acked() {
        let mut s = seq();
        assert_eq!(s.data_fin_tx(), DataFinTx::Open);
        let fin = s.close_send(10);
        assert_eq!(fin, s.tx_dsn(10));
        assert_eq!(
            s.close_send(99),
            fin,
            "closing twice keeps the first DATA_FIN"
        );
        assert_eq!(s.data_fin_tx(), DataFinTx::Pending { dsn: fin });
        s.record_sent(s.tx_dsn(10));
        assert_eq!(s.data_fin_tx(), DataFinTx::Pending { dsn: fin });
        s.record_sent(fin + 1);
        assert_eq!(s.data_fin_tx(), DataFinTx::Sent { dsn: fin });
        assert_eq!(
            s.on_data_ack(fin),
            DataAckOutcome::Advanced {
                freed: 10,
                acked_offset: 10,
                data_fin_acked: false
            }
        );
        // Covering the DATA_FIN frees no buffer byte.
        assert_eq!(
            s.on_data_ack(fin + 1),
            DataAckOutcome::Advanced {
                freed: 0,
                acked_offset: 10,
                data_fin_acked: true
            }
        );
        assert_eq!(s.data_fin_tx(), DataFinTx::Acked { dsn: fin });
        assert!(matches!(
            s.on_data_ack(fin + 2),
            DataAckOutcome::Unsent { .. }
        ));
    }

    #[test]
    fn peer_data_fin_is_acked_only_after_all_data_before_it() {
        let mut s = seq();
        s.update_received(5);
        let fin = s.rx_dsn(8);
        assert_eq!(s.on_peer_data_fin(fin), Ok(()));
        assert_eq!(s.on_peer_data_fin(fin), Ok(()));
        assert_eq!(s.data_fin_rx(), DataFinRx::Received { dsn: fin });
        assert_eq!(s.data_ack(), s.rx_dsn(5));
        s.update_received(8);
        assert_eq!(s.data_fin_rx(), DataFinRx::Complete { dsn: fin });
        assert_eq!(s.data_ack(), s.rx_dsn(9));
        assert_eq!(
            s.on_peer_data_fin(s.rx_dsn(9)),
            Err(DataFinError::Moved {
                earlier: fin,
                new: s.rx_dsn(9)
            })
        );
        let mut s = seq();
        s.update_received(5);
        assert_eq!(
            s.on_peer_data_fin(s.rx_dsn(4)),
            Err(DataFinError::BeforeReceivedData {
                dsn: s.rx_dsn(4),
                received: s.rx_dsn(5)
            })
        );
    }

    #[test]
    fn peer_window_is_relative_to_the_data_ack_and_never_shrinks() {
        let mut s = seq();
        s.record_sent(s.tx_dsn(1000));
        s.on_peer_window(None, 500, 2); // 2000 bytes from snd_una 0
        assert_eq!(s.send_window(), 1000);
        s.on_data_ack(s.tx_dsn(600));
        // Relative to this segment's data ACK: 600 + 1000 = 1600 < 2000: edge stays.
        s.on_peer_window(Some(s.tx_dsn(600)), 250, 2);
        assert_eq!(s.send_window(), 1000);
        s.on_peer_window(Some(s.tx_dsn(600)), 1000, 2); // 600 + 4000
        assert_eq!(s.send_window(), 3600);
        // A data ACK for unsent data is not a base; the highest seen is used instead.
        s.on_peer_window(Some(s.tx_dsn(9000)), 2000, 2); // 600 + 8000
        assert_eq!(s.send_window(), 7600);
    }

    #[test]
    fn our_window_field_scales_and_keeps_its_right_edge() {
        let mut s = seq();
        // A 64 KiB reassembly, nothing read: edge 65536, ack 0, scale 2 -> 16384.
        assert_eq!(s.window_field(65_536, 2), 16_384);
        assert_eq!(s.advertised_edge(), s.rx_dsn(65_536));
        // 1001 bytes arrive, none read: (65536 - 1001) / 4 = 16133 (rounded down): the
        // peer sees 1001 + 64532 = 65533, three bytes short of the recorded edge, never
        // more than the buffer holds.
        s.update_received(1001);
        assert_eq!(s.window_field(65_536, 2), 16_133);
        assert_eq!(s.advertised_edge(), s.rx_dsn(65_536));
        // The application read 1000: a fresh window rounds down, (66536 - 1001) / 4.
        assert_eq!(s.window_field(66_536, 2), 16_383);
        assert_eq!(s.advertised_edge(), s.rx_dsn(1001 + 16_383 * 4));
        // A smaller buffer later (e.g. memory pressure) still honours the promise.
        assert_eq!(s.window_field(2_000, 2), 16_383);
        // However many data ACKs go out while nobody reads, the edge stays inside the
        // buffer (rounding the earlier promise up would creep it forward each time).
        let mut s = seq();
        let mut received = 0;
        for _ in 0..50 {
            received += 3;
            s.update_received(received);
            s.window_field(65_536, 7);
            assert!(s.advertised_edge() <= s.rx_dsn(65_536));
        }
        // Huge windows clamp to the 16-bit field.
        let mut s = seq();
        assert_eq!(s.window_field(1 << 30, 0), u16::MAX);
        assert_eq!(s.advertised_edge(), s.rx_dsn(65_535));
    }

    #[test]
    fn window_field_counts_from_the_ack_including_the_data_fin() {
        let mut s = seq();
        s.update_received(100);
        s.on_peer_data_fin(s.rx_dsn(100)).expect("in order");
        // ack = offset 101; edge 1000 -> 899 bytes.
        assert_eq!(s.window_field(1_000, 0), 899);
    }
}
