//! SYN cookies from the engine's side: the SYN-ACK a passive open would send, built
//! without keeping the connection, and the step that rebuilds a connection once the
//! endpoint has validated the cookie in the peer's ACK (the endpoint owns the cookie
//! itself; see `endpoint/cookie.rs`).
//!
//! Both go through the same code as a stateful passive open (`accept`, then the
//! SYN-ACK emission), so a cookie SYN-ACK carries exactly the options, window and
//! timestamp a stateful one would, and the rebuilt connection is in exactly the state
//! a stateful one is after sending its SYN-ACK.

use core::net::SocketAddr;

use crate::seq::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::tcp::TcpRepr;

use super::owner::{ReceiveSink, SendSource};
use super::{TcpConfig, TcpConnection, TcpDrop};

/// A receiver with its whole buffer free: what a connection that was just created
/// advertises (the SYN-ACK's window is never scaled, RFC 7323 §2.2, so only the
/// configured buffer and the 16-bit field bound it).
struct FreshReceiver;

impl ReceiveSink for FreshReceiver {
    fn deliver(&mut self, _offset: u64, _payload: &[u8]) -> usize {
        0
    }

    fn receive_window(&self, _rcv_nxt: u64) -> u64 {
        u64::MAX
    }
}

impl SendSource<'static> for FreshReceiver {
    fn available(&self, _from: u64) -> u64 {
        0
    }

    fn bytes(&mut self, _offset: u64, _max_len: usize) -> &'static [u8] {
        &[]
    }
}

/// How long a SYN-ACK's timestamp may be echoed after it was sent and still give an
/// RTT sample (longer than any cookie lives).
const MAX_ECHO_AGE: Duration = Duration::from_secs(256);

impl TcpConnection {
    /// The SYN-ACK that [`TcpConnection::accept`] with these arguments sends first,
    /// without keeping anything: for a SYN answered with a cookie `iss`.
    pub fn stateless_syn_ack(
        config: TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr<'_>,
        now: Instant,
        iss: SeqNum,
    ) -> Result<TcpRepr<'static>, TcpDrop> {
        let mut conn = TcpConnection::accept(config, local, remote, syn, now, iss)?;
        Ok(conn.emit_syn(now, &mut FreshReceiver).segment)
    }

    /// For a connection just created by [`TcpConnection::accept`] from a SYN rebuilt
    /// out of a cookie: its SYN-ACK already went out (statelessly), so the handshake
    /// continues with the peer's ACK as if this connection had sent it. `tsecr` is the
    /// timestamp the ACK echoes: it tells when the SYN-ACK left, which gives the first
    /// RTT sample as a stateful handshake would (RFC 6298 §2); without one there is no
    /// sample and the RTO stays at its initial value until data is acknowledged.
    pub fn syn_ack_sent_statelessly(&mut self, now: Instant, tsecr: Option<u32>) {
        let sent_at = tsecr.filter(|_| self.ts_ok).and_then(|echo| {
            // tsval = milliseconds + ts_offset, so the echo tells the sending time.
            let sent_ms = echo.wrapping_sub(self.ts_offset);
            let elapsed = (now.total_millis() as u32).wrapping_sub(sent_ms);
            let elapsed = Duration::from_millis(u64::from(elapsed));
            (elapsed <= MAX_ECHO_AGE && elapsed.total_micros() <= now.total_micros())
                .then(|| Instant::from_micros(now.total_micros() - elapsed.total_micros()))
        });
        let at = sent_at.unwrap_or(now);
        // The same bookkeeping as the emission (window edge, last ACK sent, timer).
        let _ = self.emit_syn(at, &mut FreshReceiver);
        self.syn_sent_at = sent_at;
        self.rto_at = Some(now + self.rtt.rto());
    }

    /// What the first timestamp option of a connection with `iss` carries at `now`
    /// (RFC 7323 §5.4: a per-connection offset on a millisecond clock).
    pub fn initial_tsval(iss: SeqNum, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(ts_offset_for(iss))
    }
}

/// The per-connection timestamp offset for `iss`.
pub(super) fn ts_offset_for(iss: SeqNum) -> u32 {
    iss.0.rotate_left(13)
}
