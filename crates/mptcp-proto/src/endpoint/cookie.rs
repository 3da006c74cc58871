//! SYN cookies (RFC 4987 §3.6): a listener answers a SYN with a SYN/ACK whose ISN
//! encodes everything it needs to rebuild the connection from the peer's ACK, and
//! keeps nothing in between, so a SYN flood costs no memory.
//!
//! The ISN (32 bits):
//!
//! ```text
//!  31                    12 11      0
//! +------------------------+---------+
//! |  MAC (20 bits)         | info^pad|
//! +------------------------+---------+
//! info (12 bits): time counter mod 4 (2) | MPTCP (2) | SACK-permitted (1) |
//!                 peer window scale, 15 = none (4) | MSS index (3)
//! ```
//!
//! - `MAC` = HMAC-SHA256(cookie key, 4-tuple ‖ client ISN ‖ time counter ‖ info),
//!   first 20 bits. The cookie key is derived from the endpoint's secret. The counter
//!   advances every [`COUNTER_PERIOD`]; a cookie is accepted for the counter it was
//!   made in and the next one (64 to 128 s, Linux accepts about 2 minutes).
//! - `pad` = 12 bits of HMAC(cookie key, 4-tuple ‖ client ISN): the info bits are not
//!   readable on the wire, so the whole ISN is unpredictable (RFC 6528).
//! - The client's ISN is the ACK's sequence number less one, in the third ACK and in
//!   the first data segment alike.
//!
//! What survives: the peer's MSS quantised down to [`MSS_TABLE`] (we never send
//! larger segments than it accepts, sometimes smaller), its window scale, SACK
//! permission, timestamps (not encoded: with timestamps on, the ACK itself carries
//! them; the echo also gives the handshake's RTT sample and must be a value we could
//! have sent within the cookie's life), and for MPTCP (RFC 8684 §3.1) the MP_CAPABLE
//! v1 request and the client's checksum flag A. Our MPTCP key is not stored: it is
//! derived from the cookie (HMAC of the 4-tuple and both ISNs under the cookie key),
//! so the SYN/ACK's key is re-derived at the ACK, and the key the ACK echoes must
//! match it (an endpoint that is one shard of several takes the first of up to 64
//! derivations whose token it owns, see [`CookieJar::mptcp_key`]). What is lost: data on the SYN (never accepted here anyway), the exact
//! MSS, and the SYN/ACK's retransmission (the client retransmits its SYN instead; and
//! if the third ACK is lost and the client has nothing to send, the server learns of
//! the connection only with the client's first segment, as with Linux's cookies).
//!
//! MP_JOIN SYNs never get cookies: they add a subflow to a connection that exists,
//! bounded by its subflow limit (Linux keeps a small table for them instead).

use core::fmt;
use core::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::crypto::{LocalKey, MAX_KEY_ATTEMPTS, MptcpKey};
use crate::mptcp::{MptcpConnection, SynKind, classify_syn};
use crate::seq::SeqNum;
use crate::tcp::{TcpConnection, TcpSocket};
use crate::time::{Duration, Instant};
use crate::wire::IpTcpRepr;
use crate::wire::mptcp::{
    CapableFlags, MpCapable, MpCapableKeys, MpTcpRst, MptcpOption, TcpRstFlags, TcpRstReason,
};
use crate::wire::tcp::{TcpFlags, TcpOptions, TcpRepr, Timestamps};

use super::conn::Conn;
use super::shard::Shard;
use super::slab::Key;
use super::{ConnHandle, DropReason, Endpoint, FourTuple, PendingReset, SynCookies, ip_header};

type HmacSha256 = Hmac<Sha256>;

/// The MSS values a cookie can carry (3 bits). The peer's MSS is rounded down to one
/// of them: 64 is the engine's floor, 536 the IPv4 default (RFC 9293 §3.7.1), 1220 the
/// IPv6 minimum, then common tunnel, IPv6 and IPv4 Ethernet values, and jumbo frames.
pub const MSS_TABLE: [u16; 8] = [64, 536, 1220, 1360, 1400, 1440, 1460, 8940];

/// The time counter's period.
pub const COUNTER_PERIOD: Duration = Duration::from_secs(64);

/// Counters after the one a cookie was made in during which it is still accepted.
const MAX_AGE: u64 = 1;

const INFO_BITS: u32 = 12;
const INFO_MASK: u32 = (1 << INFO_BITS) - 1;
const NO_WINDOW_SCALE: u8 = 15;

/// What the SYN asked for that the connection needs, carried in the cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CookieParams {
    /// Index into [`MSS_TABLE`].
    pub mss_index: u8,
    /// The peer's window-scale shift, if it offered the option.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub mptcp: CookieMptcp,
}

/// Whether the SYN/ACK was MPTCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CookieMptcp {
    Plain,
    /// MP_CAPABLE v1 with our key; `checksums`: the client's flag A.
    Capable {
        checksums: bool,
    },
}

/// Why an ACK's cookie was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum CookieError {
    #[error("cookie made {age} counters ago (at most {MAX_AGE} accepted)")]
    Expired { age: u64 },
    #[error("cookie MAC mismatch")]
    BadMac,
    #[error("cookie info bits {info:#05x} are not a valid encoding")]
    BadInfo { info: u32 },
    #[error("timestamp echo {tsecr} is not a value we sent within the cookie's life")]
    BadEcho { tsecr: u32 },
    #[error("MP_CAPABLE echoes a receiver key that is not ours")]
    BadKeyEcho,
}

impl CookieParams {
    /// The parameters of a SYN (options as the peer offered them).
    pub fn from_syn(syn: &TcpRepr<'_>, mptcp: CookieMptcp) -> Self {
        // RFC 9293 §3.7.1: no MSS option means 536.
        let mss = syn.options.mss.unwrap_or(536);
        let mss_index = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u8;
        CookieParams {
            mss_index,
            // RFC 7323 §2.3: larger shifts are treated as 14.
            window_scale: syn.options.window_scale.map(|s| s.min(14)),
            sack_permitted: syn.options.sack_permitted,
            mptcp,
        }
    }

    pub fn mss(&self) -> u16 {
        MSS_TABLE[usize::from(self.mss_index & 7)]
    }

    /// The 10 bits without the time counter.
    fn bits(&self) -> u32 {
        let ws = self.window_scale.unwrap_or(NO_WINDOW_SCALE);
        let mptcp = match self.mptcp {
            CookieMptcp::Plain => 0,
            CookieMptcp::Capable { checksums: false } => 1,
            CookieMptcp::Capable { checksums: true } => 2,
        };
        u32::from(self.mss_index & 7)
            | u32::from(ws & 0xf) << 3
            | u32::from(self.sack_permitted) << 7
            | mptcp << 8
    }

    fn from_bits(info: u32) -> Result<Self, CookieError> {
        let mptcp = match (info >> 8) & 3 {
            0 => CookieMptcp::Plain,
            1 => CookieMptcp::Capable { checksums: false },
            2 => CookieMptcp::Capable { checksums: true },
            _ => return Err(CookieError::BadInfo { info }),
        };
        let ws = ((info >> 3) & 0xf) as u8;
        let window_scale = match ws {
            NO_WINDOW_SCALE => None,
            0..=14 => Some(ws),
            _ => return Err(CookieError::BadInfo { info }),
        };
        Ok(CookieParams {
            mss_index: (info & 7) as u8,
            window_scale,
            sack_permitted: (info >> 7) & 1 == 1,
            mptcp,
        })
    }
}

/// The cookie key and the cookie arithmetic.
#[derive(Clone)]
pub(super) struct CookieJar {
    key: [u8; 32],
}

impl fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.write_str("CookieJar { .. }")
    }
}

impl CookieJar {
    pub fn new(secret: &[u8; 32]) -> Self {
        let mut hash = Sha256::new();
        hash.update(secret);
        hash.update(b"mptcp-proto endpoint SYN cookies");
        CookieJar {
            key: hash.finalize().into(),
        }
    }

    fn counter(now: Instant) -> u64 {
        now.total_micros() / COUNTER_PERIOD.total_micros()
    }

    fn mac(&self, label: &[u8], tuple: &FourTuple, client_isn: SeqNum) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(label);
        for addr in [tuple.local, tuple.remote] {
            match addr.ip() {
                IpAddr::V4(ip) => mac.update(&ip.octets()),
                IpAddr::V6(ip) => mac.update(&ip.octets()),
            }
            mac.update(&addr.port().to_be_bytes());
        }
        mac.update(&client_isn.0.to_be_bytes());
        mac
    }

    fn pad(&self, tuple: &FourTuple, client_isn: SeqNum) -> u32 {
        let digest = self.mac(b"pad", tuple, client_isn).finalize().into_bytes();
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & INFO_MASK
    }

    fn check_bits(&self, tuple: &FourTuple, client_isn: SeqNum, counter: u64, info: u32) -> u32 {
        let mut mac = self.mac(b"mac", tuple, client_isn);
        mac.update(&counter.to_be_bytes());
        mac.update(&info.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) >> INFO_BITS
    }

    /// The ISN of a SYN/ACK answering `client_isn` on `tuple` at `now`.
    pub fn encode(
        &self,
        tuple: &FourTuple,
        client_isn: SeqNum,
        now: Instant,
        params: CookieParams,
    ) -> SeqNum {
        let counter = Self::counter(now);
        let info = params.bits() | ((counter & 3) as u32) << 10;
        let check = self.check_bits(tuple, client_isn, counter, info);
        SeqNum(check << INFO_BITS | (info ^ self.pad(tuple, client_isn)))
    }

    /// The parameters in `iss` (the ACK number less one) if it is a cookie we made
    /// for `client_isn` on `tuple` and it has not expired.
    pub fn decode(
        &self,
        tuple: &FourTuple,
        client_isn: SeqNum,
        iss: SeqNum,
        now: Instant,
    ) -> Result<CookieParams, CookieError> {
        let info = (iss.0 & INFO_MASK) ^ self.pad(tuple, client_isn);
        let now_counter = Self::counter(now);
        // The most recent counter at or before now with these low bits.
        let age = now_counter.wrapping_sub(u64::from(info >> 10)) & 3;
        if age > MAX_AGE || age > now_counter {
            return Err(CookieError::Expired { age });
        }
        let counter = now_counter - age;
        if self.check_bits(tuple, client_isn, counter, info) != iss.0 >> INFO_BITS {
            return Err(CookieError::BadMac);
        }
        CookieParams::from_bits(info & 0x3ff)
    }

    /// Our MPTCP key for the connection with these ISNs: derived, never stored.
    ///
    /// A shard (`shard.rs`) must own the key's token, or MP_JOINs naming it would be
    /// steered to another shard; the derivation is a pure function of the cookie, so
    /// it takes the first of up to [`MAX_KEY_ATTEMPTS`] candidates whose token the
    /// shard owns, and the ACK finds the same one again without any state. `None` when
    /// no candidate is owned: probability (1 - 1/count)^64, 2e-4 with 8 shards.
    pub fn mptcp_key(
        &self,
        tuple: &FourTuple,
        client_isn: SeqNum,
        iss: SeqNum,
        shard: Option<Shard>,
    ) -> Option<MptcpKey> {
        let mut base = self.mac(b"mptcp key", tuple, client_isn);
        base.update(&iss.0.to_be_bytes());
        (0..MAX_KEY_ATTEMPTS)
            .map(|attempt| {
                let digest = base
                    .clone()
                    .chain_update(attempt.to_be_bytes())
                    .finalize()
                    .into_bytes();
                let mut key = [0u8; 8];
                key.copy_from_slice(&digest[..8]);
                MptcpKey(u64::from_be_bytes(key))
            })
            .find(|key| shard.is_none_or(|s| s.owns_token(key.token())))
    }
}

/// How long after a SYN/ACK its timestamp may come back in a valid cookie ACK.
fn echo_window() -> Duration {
    COUNTER_PERIOD.saturating_mul(MAX_AGE + 1)
}

impl Endpoint {
    /// Whether ACKs to `listener` are checked for a cookie: always when every SYN gets
    /// one; on overflow only while cookies sent lately may come back (Linux checks only
    /// after a recent overflow too, so blind ACKs meet no MAC to guess otherwise).
    pub(super) fn cookies_active(&self, listener: Key, now: Instant) -> bool {
        match self.config.syn_cookies {
            SynCookies::Never => false,
            SynCookies::Always => true,
            SynCookies::OnOverflow => self
                .listeners
                .get(listener)
                .and_then(|l| l.cookie_sent_at)
                .is_some_and(|at| now.saturating_since(at) <= echo_window()),
        }
    }

    /// Answers a SYN to `listener` with a cookie SYN/ACK and keeps nothing.
    pub(super) fn cookie_syn(
        &mut self,
        now: Instant,
        listener: Key,
        tuple: FourTuple,
        packet: &IpTcpRepr<'_>,
    ) -> Result<(), DropReason> {
        let syn = &packet.tcp;
        let client_isn = syn.seq;
        let mptcp_config = self
            .mptcp_listen_config()
            .filter(|_| matches!(classify_syn(syn), SynKind::Capable { .. }));
        let mptcp = match classify_syn(syn) {
            SynKind::Capable { checksums } if mptcp_config.is_some() => {
                CookieMptcp::Capable { checksums }
            }
            SynKind::Capable { .. } | SynKind::Plain | SynKind::Join { .. } => CookieMptcp::Plain,
        };
        let mut params = CookieParams::from_syn(syn, mptcp);
        let mut iss = self.cookies.encode(&tuple, client_isn, now, params);
        let segment = match (mptcp_config, params.mptcp) {
            (Some(config), CookieMptcp::Capable { .. }) => {
                let key = self
                    .cookies
                    .mptcp_key(&tuple, client_isn, iss, self.config.shard)
                    .filter(|key| !self.token_unavailable(key.token()));
                if let Some(key) = key {
                    MptcpConnection::stateless_syn_ack(
                        &config,
                        now,
                        tuple.local,
                        tuple.remote,
                        syn,
                        iss,
                        key,
                    )
                    .map_err(|_| ())
                } else {
                    // RFC 8684 §3.1: our token must be unique, and a derived key cannot
                    // be drawn again: answer with plain TCP, as Linux falls back when
                    // it finds no free token. (Sharded, no candidate owned by this
                    // shard ends here too.)
                    tracing::debug!(local = %tuple.local, remote = %tuple.remote, "cookie key's token in use: plain TCP");
                    self.stats.syn_cookie_token_fallbacks += 1;
                    params.mptcp = CookieMptcp::Plain;
                    iss = self.cookies.encode(&tuple, client_isn, now, params);
                    TcpConnection::stateless_syn_ack(
                        self.config.tcp.clone(),
                        tuple.local,
                        tuple.remote,
                        syn,
                        now,
                        iss,
                    )
                    .map_err(|_| ())
                }
            }
            (None, _) | (Some(_), CookieMptcp::Plain) => TcpConnection::stateless_syn_ack(
                self.config.tcp.clone(),
                tuple.local,
                tuple.remote,
                syn,
                now,
                iss,
            )
            .map_err(|_| ()),
        };
        let Ok(segment) = segment else {
            return Err(self.drop(DropReason::InvalidSyn));
        };
        if self.syn_acks.len() >= self.config.max_pending_syn_acks {
            return Err(self.drop(DropReason::SynAckQueueFull));
        }
        let ip = ip_header(
            packet.ip.dst_addr(),
            packet.ip.src_addr(),
            self.config.hop_limit,
        );
        self.syn_acks.push_back(PendingReset { ip, tcp: segment });
        if let Some(l) = self.listeners.get_mut(listener) {
            l.cookie_sent_at = Some(now);
        }
        self.stats.syn_cookies_sent += 1;
        tracing::trace!(local = %tuple.local, remote = %tuple.remote, "SYN answered with a cookie");
        Ok(())
    }

    /// An ACK (third ACK or first data) to a listener that sends cookies: rebuilds the
    /// connection when the cookie is valid, else answers as LISTEN does (a RST).
    pub(super) fn cookie_ack(
        &mut self,
        now: Instant,
        listener: Key,
        tuple: FourTuple,
        packet: &IpTcpRepr<'_>,
    ) -> Result<(), DropReason> {
        let seg = &packet.tcp;
        let client_isn = seg.seq - 1;
        let iss = seg.ack - 1;
        let (params, cookie_key) = match self.validate_cookie(&tuple, client_isn, iss, seg, now) {
            Ok(valid) => valid,
            Err(err) => {
                tracing::debug!(%err, local = %tuple.local, remote = %tuple.remote, "cookie rejected");
                // RFC 9293 §3.10.7.2: an ACK at LISTEN gets <SEQ=SEG.ACK><CTL=RST>
                // (Linux answers a bad cookie the same way). Not for data, though: a
                // data segment that overtook the client's first one (lost, or
                // reordered) carries a sequence number that is not the client's
                // ISN + 1, so its cookie cannot check out; a RST would kill the
                // client's connection, silence lets the first segment's retransmission
                // rebuild it. Dropping forged data silently costs nothing.
                if seg.payload.is_empty() {
                    self.queue_reset(packet);
                }
                return Err(self.drop(DropReason::InvalidCookie));
            }
        };
        let (ready, _) = self.backlog(listener);
        if ready >= self.config.listen_backlog {
            // The accept queue is full: drop, the client sends again (Linux drops too).
            return Err(self.drop(DropReason::BacklogFull));
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(self.drop(DropReason::TableFull));
        }
        let tsecr = seg.options.timestamps.map(|ts| ts.tsecr);
        let mut syn = rebuilt_syn(seg, client_isn, &params);
        let conn = match (params.mptcp, self.mptcp_listen_config()) {
            (CookieMptcp::Capable { checksums }, Some(config)) => {
                let Some(key) = cookie_key else {
                    // validate_cookie finds the key of every MPTCP cookie.
                    return Err(self.drop(DropReason::InvalidCookie));
                };
                let (token, idsn) = key.token_and_idsn();
                if self.token_unavailable(token) {
                    // Another connection took the token since the SYN/ACK. The client
                    // holds our key, so no other can be chosen: reset with MP_TCPRST,
                    // transient (a new SYN gets a new key), as Linux refuses the ACK.
                    tracing::debug!(local = %tuple.local, remote = %tuple.remote, "cookie key's token taken since the SYN/ACK: reset");
                    self.refuse_with(packet, TcpRstReason::MPTCP_ERROR, TcpRstFlags::TRANSIENT);
                    return Err(self.drop(DropReason::TokenCollision));
                }
                let mut flags = CapableFlags::HMAC_SHA256;
                if checksums {
                    flags = flags.union(CapableFlags::CHECKSUM);
                }
                syn.options.mptcp.push(MptcpOption::MpCapable(MpCapable {
                    version: crate::mptcp::handshake::MPTCP_VERSION,
                    flags,
                    keys: MpCapableKeys::None,
                }));
                let local_key = LocalKey { key, token, idsn };
                match MptcpConnection::accept_with_key(
                    config,
                    now,
                    tuple.local,
                    tuple.remote,
                    &syn,
                    iss,
                    local_key,
                ) {
                    Ok(mut c) => {
                        c.syn_ack_sent_statelessly(now, tsecr);
                        Conn::Mptcp(Box::new(c))
                    }
                    Err(err) => {
                        tracing::debug!(%err, "cookie connection not rebuilt");
                        return Err(self.drop(DropReason::InvalidSyn));
                    }
                }
            }
            (CookieMptcp::Plain, _) | (CookieMptcp::Capable { .. }, None) => {
                match TcpSocket::accept(
                    self.config.tcp.clone(),
                    tuple.local,
                    tuple.remote,
                    &syn,
                    now,
                    iss,
                ) {
                    Ok(mut s) => {
                        s.syn_ack_sent_statelessly(now, tsecr);
                        Conn::Tcp(s)
                    }
                    Err(reason) => {
                        tracing::debug!(%reason, "cookie connection not rebuilt");
                        return Err(self.drop(DropReason::InvalidSyn));
                    }
                }
            }
        };
        let Some(key) = self.insert(conn, tuple, Some(listener)) else {
            return Err(self.drop(DropReason::TableFull));
        };
        if let Some(l) = self.listeners.get_mut(listener) {
            l.children.insert(key);
        }
        self.stats.connections_accepted += 1;
        self.stats.syn_cookies_accepted += 1;
        tracing::debug!(local = %tuple.local, remote = %tuple.remote, handle = %ConnHandle(key), "connection rebuilt from a SYN cookie");
        // The ACK itself (and any data on it) completes the handshake as it would for a
        // connection that had kept its state.
        let mptcp = match self.conns.get_mut(key).map(|e| &mut e.conn) {
            Some(Conn::Tcp(socket)) => {
                if let Err(reason) = socket.handle_segment(now, seg) {
                    tracing::debug!(%reason, "cookie ACK dropped by the rebuilt connection");
                }
                false
            }
            Some(Conn::Mptcp(_)) => true,
            None => return Ok(()),
        };
        if mptcp {
            self.mptcp_input(now, key, tuple, packet);
        } else {
            self.touched(key);
        }
        Ok(())
    }

    fn validate_cookie(
        &self,
        tuple: &FourTuple,
        client_isn: SeqNum,
        iss: SeqNum,
        seg: &TcpRepr<'_>,
        now: Instant,
    ) -> Result<(CookieParams, Option<MptcpKey>), CookieError> {
        let params = self.cookies.decode(tuple, client_isn, iss, now)?;
        // With timestamps negotiated the ACK echoes our SYN/ACK's TSval: it must be a
        // value this cookie's connection could have sent within the cookie's life.
        if self.config.tcp.timestamps
            && let Some(Timestamps { tsecr, .. }) = seg.options.timestamps
        {
            let newest = TcpConnection::initial_tsval(iss, now);
            let age = u64::from(newest.wrapping_sub(tsecr));
            if age > echo_window().total_millis() {
                return Err(CookieError::BadEcho { tsecr });
            }
        }
        let mut key = None;
        if let CookieMptcp::Capable { .. } = params.mptcp {
            // The SYN/ACK carried MP_CAPABLE only with a key, and the same cookie
            // derives the same one.
            let ours = self
                .cookies
                .mptcp_key(tuple, client_isn, iss, self.config.shard)
                .ok_or(CookieError::BadKeyEcho)?;
            key = Some(ours);
            for option in &seg.options.mptcp {
                if let MptcpOption::MpCapable(MpCapable {
                    keys:
                        MpCapableKeys::Both { receiver, .. }
                        | MpCapableKeys::BothWithData { receiver, .. },
                    ..
                }) = option
                    && *receiver != ours
                {
                    return Err(CookieError::BadKeyEcho);
                }
            }
        }
        Ok((params, key))
    }

    /// (ready, all) children of a listener.
    pub(super) fn backlog(&self, listener: Key) -> (usize, usize) {
        self.listeners
            .get(listener)
            .map_or((0, 0), |l| (l.ready.len(), l.children.len()))
    }

    /// A RST answering `packet` that carries MP_TCPRST (RFC 8684 §3.6).
    pub(super) fn refuse_with(
        &mut self,
        packet: &IpTcpRepr<'_>,
        reason: TcpRstReason,
        flags: TcpRstFlags,
    ) {
        let Some(mut tcp) = crate::tcp::reset_for(&packet.tcp) else {
            return;
        };
        tcp.options
            .mptcp
            .push(MptcpOption::MpTcpRst(MpTcpRst { flags, reason }));
        if self.resets.len() >= self.config.max_pending_resets {
            self.drop(DropReason::ResetQueueFull);
            return;
        }
        let ip = ip_header(
            packet.ip.dst_addr(),
            packet.ip.src_addr(),
            self.config.hop_limit,
        );
        self.resets.push_back(PendingReset { ip, tcp });
    }
}

/// The SYN the cookie stands for: the client's ISN, and its options as far as the
/// cookie and the ACK tell them (timestamps from the ACK: RFC 7323 §3.2 has every
/// segment carry them once negotiated).
fn rebuilt_syn(ack: &TcpRepr<'_>, client_isn: SeqNum, params: &CookieParams) -> TcpRepr<'static> {
    TcpRepr {
        src_port: ack.src_port,
        dst_port: ack.dst_port,
        seq: client_isn,
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: ack.window,
        urgent: 0,
        options: TcpOptions {
            mss: Some(params.mss()),
            window_scale: params.window_scale,
            sack_permitted: params.sack_permitted,
            timestamps: ack.options.timestamps.map(|ts| Timestamps {
                tsval: ts.tsval,
                tsecr: 0,
            }),
            ..TcpOptions::default()
        },
        payload: &[],
    }
}

#[cfg(test)]
#[path = "cookie_tests.rs"]
mod tests;
