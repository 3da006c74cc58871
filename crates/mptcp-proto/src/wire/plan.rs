//! The option-space planner: fits what a segment wants to carry into the 40 bytes of TCP
//! option space, most important first, and says what was left out.
//!
//! Priority, highest first (after Linux's `tcp_established_options` and
//! `mptcp_established_options`, with DSS ranked above timestamps):
//! 1. MSS, window scale, SACK-permitted (SYN options; with any MPTCP handshake option they
//!    fit by construction: 4 + 12 + 4 + 16 = 36 bytes at most);
//! 2. [`MptcpPriority::Essential`] MPTCP options (DSS, MP_CAPABLE, MP_JOIN, MP_FAIL,
//!    MP_FASTCLOSE, MP_TCPRST), in request order;
//! 3. timestamps;
//! 4. SACK blocks, trimmed from the end (the first block is the most recent, RFC 2018 §4)
//!    to as many as fit;
//! 5. [`MptcpPriority::Deferrable`] MPTCP options (ADD_ADDR, REMOVE_ADDR, MP_PRIO), in
//!    request order; one that does not fit waits for a later segment.
//!
//! Each item is taken if it fits with everything already taken, so a small low-priority
//! item can still ride along after a large one was left out. Sizes are those of the
//! canonical emission layout ([`options_len`]), so a plan's options always emit. The
//! planner does not allocate.
//!
//! Note for the path manager: an ADD_ADDR with an IPv6 address, a port and an HMAC is 30
//! bytes, and timestamps take 12, so once timestamps are negotiated (RFC 7323 §3.2: then
//! on every segment) such an ADD_ADDR never fits; announce that address without a port.

use arrayvec::ArrayVec;

use crate::wire::mptcp::MptcpOption;
use crate::wire::option::MAX_OPTIONS_LEN;
use crate::wire::tcp::{MAX_MPTCP_OPTIONS, SackBlock, TcpOptions, Timestamps, options_len};

/// Where an MPTCP option ranks against the TCP options when space is short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MptcpPriority {
    /// Carried ahead of timestamps: DSS, MP_CAPABLE, MP_JOIN, MP_FAIL, MP_FASTCLOSE,
    /// MP_TCPRST.
    Essential,
    /// Carried only in space left after SACK blocks: ADD_ADDR, REMOVE_ADDR, MP_PRIO.
    Deferrable,
}

impl MptcpPriority {
    /// The usual class of an option, by subtype.
    pub fn of(option: &MptcpOption<'_>) -> MptcpPriority {
        match option {
            MptcpOption::MpCapable(_)
            | MptcpOption::MpJoin(_)
            | MptcpOption::Dss(_)
            | MptcpOption::MpFail(_)
            | MptcpOption::MpFastclose(_)
            | MptcpOption::MpTcpRst(_) => MptcpPriority::Essential,
            MptcpOption::AddAddr(_)
            | MptcpOption::RemoveAddr(_)
            | MptcpOption::MpPrio(_)
            | MptcpOption::Experimental(_) => MptcpPriority::Deferrable,
        }
    }
}

/// What a segment would like to carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OptionRequest<'a> {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: Option<Timestamps>,
    /// Most recent first: trimming drops blocks from the end.
    pub sack_blocks: ArrayVec<SackBlock, 4>,
    pub mptcp: ArrayVec<(MptcpPriority, MptcpOption<'a>), MAX_MPTCP_OPTIONS>,
}

/// Something the plan left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Omitted {
    Mss,
    WindowScale,
    SackPermitted,
    Timestamps,
    /// Only the first `kept` of `requested` SACK blocks fit (`kept` may be 0).
    SackBlocks {
        requested: usize,
        kept: usize,
    },
    /// The request's MPTCP option at `index` (`len` bytes) did not fit.
    Mptcp {
        index: usize,
        len: usize,
        priority: MptcpPriority,
    },
}

/// Most items a request can name: MSS, WS, SACK-permitted, timestamps, SACK, 4 × MPTCP.
pub const MAX_OMITTED: usize = 4 + 1 + MAX_MPTCP_OPTIONS;

/// The options to send and what had to stay behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan<'a> {
    /// Ready for `TcpRepr::options`; MPTCP options keep their request order.
    pub options: TcpOptions<'a>,
    /// Option bytes the options take on the wire, padding included (at most 40).
    pub len: usize,
    /// In priority order, highest first.
    pub omitted: ArrayVec<Omitted, MAX_OMITTED>,
}

impl Plan<'_> {
    /// True when everything requested fits.
    pub fn is_complete(&self) -> bool {
        self.omitted.is_empty()
    }
}

/// Which requested items are in, as the planner builds it up.
#[derive(Clone, Copy, Default)]
struct Chosen {
    mss: bool,
    window_scale: bool,
    sack_permitted: bool,
    timestamps: bool,
    sack_blocks: usize,
    mptcp: [bool; MAX_MPTCP_OPTIONS],
}

impl Chosen {
    /// Every item a request can name.
    fn all() -> Chosen {
        Chosen {
            mss: true,
            window_scale: true,
            sack_permitted: true,
            timestamps: true,
            sack_blocks: usize::MAX,
            mptcp: [true; MAX_MPTCP_OPTIONS],
        }
    }
}

fn assemble<'a>(request: &OptionRequest<'a>, chosen: &Chosen) -> TcpOptions<'a> {
    TcpOptions {
        mss: request.mss.filter(|_| chosen.mss),
        window_scale: request.window_scale.filter(|_| chosen.window_scale),
        sack_permitted: request.sack_permitted && chosen.sack_permitted,
        sack_blocks: request
            .sack_blocks
            .iter()
            .take(chosen.sack_blocks)
            .copied()
            .collect(),
        timestamps: request.timestamps.filter(|_| chosen.timestamps),
        mptcp: request
            .mptcp
            .iter()
            .zip(chosen.mptcp)
            .filter(|(_, taken)| *taken)
            .map(|((_, option), _)| option.clone())
            .collect(),
    }
}

fn fits(request: &OptionRequest<'_>, chosen: &Chosen) -> bool {
    options_len(&assemble(request, chosen)) <= MAX_OPTIONS_LEN
}

/// Fits `request` into the option space (module docs give the priorities).
///
/// ```
/// use mptcp_proto::wire::mptcp::MptcpOption;
/// use mptcp_proto::wire::plan::{MptcpPriority, Omitted, OptionRequest, plan};
/// use mptcp_proto::wire::tcp::Timestamps;
///
/// // A DSS with an 8-byte data ACK, an 8-byte DSN mapping and a checksum: 28 bytes.
/// let dss = [30, 28, 0x20, 0x0f, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9,
///            0, 0, 0, 1, 0x05, 0xa0, 0x12, 0x34];
/// let dss = MptcpOption::parse(&dss).expect("well formed");
/// let mut request = OptionRequest {
///     timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
///     ..OptionRequest::default()
/// };
/// request.mptcp.push((MptcpPriority::of(&dss), dss));
/// request.sack_blocks.push(mptcp_proto::wire::tcp::SackBlock {
///     left: mptcp_proto::SeqNum(100),
///     right: mptcp_proto::SeqNum(200),
/// });
/// let plan = plan(&request);
/// // 12 (NOP NOP TS) + 28 (DSS) = 40: no room for a SACK block.
/// assert_eq!(plan.len, 40);
/// assert_eq!(plan.omitted.as_slice(), &[Omitted::SackBlocks { requested: 1, kept: 0 }]);
/// ```
pub fn plan<'a>(request: &OptionRequest<'a>) -> Plan<'a> {
    // The common case (every data segment: DSS, timestamps, perhaps SACK) is that it
    // all fits. `options_len` only grows as items are added, so the greedy pass below
    // would then take every item; one size check replaces its trial per item.
    let options = assemble(request, &Chosen::all());
    let len = options_len(&options);
    if len <= MAX_OPTIONS_LEN {
        return Plan {
            options,
            len,
            omitted: ArrayVec::new(),
        };
    }
    greedy(request)
}

/// Takes the request's items in priority order, each one if it fits with those taken.
fn greedy<'a>(request: &OptionRequest<'a>) -> Plan<'a> {
    let mut planner = Planner {
        request,
        chosen: Chosen::default(),
        omitted: ArrayVec::new(),
    };
    if request.mss.is_some() {
        planner.take(|c| c.mss = true, Omitted::Mss);
    }
    if request.window_scale.is_some() {
        planner.take(|c| c.window_scale = true, Omitted::WindowScale);
    }
    if request.sack_permitted {
        planner.take(|c| c.sack_permitted = true, Omitted::SackPermitted);
    }
    planner.take_mptcp(MptcpPriority::Essential);
    if request.timestamps.is_some() {
        planner.take(|c| c.timestamps = true, Omitted::Timestamps);
    }
    let requested = request.sack_blocks.len();
    if requested > 0 {
        let kept = (1..=requested)
            .rev()
            .find(|&n| {
                let mut candidate = planner.chosen;
                candidate.sack_blocks = n;
                fits(request, &candidate)
            })
            .unwrap_or(0);
        planner.chosen.sack_blocks = kept;
        if kept < requested {
            planner
                .omitted
                .push(Omitted::SackBlocks { requested, kept });
        }
    }
    planner.take_mptcp(MptcpPriority::Deferrable);

    let options = assemble(request, &planner.chosen);
    let len = options_len(&options);
    debug_assert!(
        len <= MAX_OPTIONS_LEN,
        "every step keeps the plan within 40 bytes"
    );
    Plan {
        options,
        len,
        omitted: planner.omitted,
    }
}

struct Planner<'r, 'a> {
    request: &'r OptionRequest<'a>,
    chosen: Chosen,
    omitted: ArrayVec<Omitted, MAX_OMITTED>,
}

impl Planner<'_, '_> {
    /// Keeps one item when it fits with everything chosen so far, else records it.
    /// Each item is tried at most once, so `omitted` never overflows.
    fn take(&mut self, set: impl FnOnce(&mut Chosen), what: Omitted) {
        let mut candidate = self.chosen;
        set(&mut candidate);
        if fits(self.request, &candidate) {
            self.chosen = candidate;
        } else {
            self.omitted.push(what);
        }
    }

    fn take_mptcp(&mut self, wanted: MptcpPriority) {
        for (index, (priority, option)) in self.request.mptcp.iter().enumerate() {
            if *priority == wanted {
                let len = option.wire_len();
                self.take(
                    |c| c.mptcp[index] = true,
                    Omitted::Mptcp {
                        index,
                        len,
                        priority: wanted,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::SeqNum;
    use crate::wire::fuzzing::MPTCP_SAMPLES;
    use crate::wire::tcp::{TcpFlags, TcpPacket, TcpRepr};
    use MptcpPriority::{Deferrable, Essential};

    const TS: Timestamps = Timestamps { tsval: 7, tsecr: 9 };
    const DSS_ACK4: usize = 4; // 8 bytes
    const DSS_MAP4: usize = 5; // 18 bytes
    const DSS_FULL: usize = 6; // 28 bytes
    const ADD_ADDR4: usize = 7; // 16 bytes
    const ADD_ADDR6_PORT: usize = 8; // 30 bytes
    const MP_PRIO: usize = 10; // 3 bytes
    const MP_TCPRST: usize = 13; // 4 bytes

    fn blocks(n: u32) -> ArrayVec<SackBlock, 4> {
        (0..n)
            .map(|i| SackBlock {
                left: SeqNum(1000 * i),
                right: SeqNum(1000 * i + 500),
            })
            .collect()
    }

    fn mptcp(
        list: &[(MptcpPriority, usize)],
    ) -> ArrayVec<(MptcpPriority, MptcpOption<'static>), 4> {
        list.iter()
            .map(|&(priority, sample)| {
                let option =
                    MptcpOption::parse(MPTCP_SAMPLES[sample]).expect("sample is well formed");
                (priority, option)
            })
            .collect()
    }

    /// The plan's options emit to exactly `plan.len` bytes of options.
    fn assert_emits(plan: &Plan<'_>) {
        let repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: SeqNum(0),
            ack: SeqNum(0),
            flags: TcpFlags::ACK,
            window: 0,
            urgent: 0,
            options: plan.options.clone(),
            payload: &[],
        };
        let mut buf = [0u8; 60];
        let src = core::net::IpAddr::from([10, 0, 0, 1]);
        let n = repr
            .emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, src, false)
            .expect("a plan always emits");
        assert_eq!(n, 20 + plan.len);
    }

    #[test]
    fn full_dss_and_timestamps_leave_no_room_for_sack() {
        // TS 12 (NOP NOP TS) + DSS 28 (8-byte ack, 8-byte DSN, checksum) = 40; a SACK option
        // needs at least 12 (NOP NOP, kind, len, one block).
        let request = OptionRequest {
            timestamps: Some(TS),
            sack_blocks: blocks(3),
            mptcp: mptcp(&[(Essential, DSS_FULL)]),
            ..OptionRequest::default()
        };
        let plan = plan(&request);
        assert_eq!(plan.len, 40);
        assert_eq!(plan.options.timestamps, Some(TS));
        assert_eq!(plan.options.mptcp.len(), 1);
        assert!(plan.options.sack_blocks.is_empty());
        assert_eq!(
            plan.omitted.as_slice(),
            &[Omitted::SackBlocks {
                requested: 3,
                kept: 0
            }]
        );
        assert_emits(&plan);
    }

    #[test]
    fn sack_is_trimmed_to_what_fits() {
        // TS 12 + DSS 8 = 20; 20 left: 4 + 8n <= 20 gives n = 2.
        let request = OptionRequest {
            timestamps: Some(TS),
            sack_blocks: blocks(4),
            mptcp: mptcp(&[(Essential, DSS_ACK4)]),
            ..OptionRequest::default()
        };
        let plan = plan(&request);
        assert_eq!(plan.len, 40);
        assert_eq!(plan.options.sack_blocks, blocks(2));
        assert_eq!(
            plan.omitted.as_slice(),
            &[Omitted::SackBlocks {
                requested: 4,
                kept: 2
            }]
        );
        assert_emits(&plan);
    }

    #[test]
    fn add_addr_waits_behind_sack_but_rides_when_there_is_room() {
        // TS 12 + DSS 8 + SACK(2) 20 = 40: the 16-byte ADD_ADDR is deferred.
        let mut request = OptionRequest {
            timestamps: Some(TS),
            sack_blocks: blocks(2),
            mptcp: mptcp(&[(Essential, DSS_ACK4), (Deferrable, ADD_ADDR4)]),
            ..OptionRequest::default()
        };
        let deferred = plan(&request);
        assert_eq!(deferred.len, 40);
        assert_eq!(deferred.options.mptcp.len(), 1);
        assert_eq!(
            deferred.omitted.as_slice(),
            &[Omitted::Mptcp {
                index: 1,
                len: 16,
                priority: Deferrable
            }]
        );
        assert_emits(&deferred);
        // Without SACK blocks: TS 12 + DSS 8 + ADD_ADDR 16 = 36.
        request.sack_blocks.clear();
        let sent = plan(&request);
        assert!(sent.is_complete());
        assert_eq!(sent.len, 36);
        assert_eq!(sent.options.mptcp.len(), 2);
        assert_emits(&sent);
    }

    #[test]
    fn a_small_deferrable_option_fits_after_sack_was_dropped() {
        // TS 12 + DSS 18 (padded with MPTCP options to 20) = 32: one SACK block (12) does
        // not fit, but MP_PRIO does (18 + 3 = 21 bytes of MPTCP, padded to 24): 36.
        let request = OptionRequest {
            timestamps: Some(TS),
            sack_blocks: blocks(2),
            mptcp: mptcp(&[(Deferrable, MP_PRIO), (Essential, DSS_MAP4)]),
            ..OptionRequest::default()
        };
        let plan = plan(&request);
        assert_eq!(plan.len, 36);
        assert_eq!(plan.options.mptcp.len(), 2);
        assert_eq!(
            plan.omitted.as_slice(),
            &[Omitted::SackBlocks {
                requested: 2,
                kept: 0
            }]
        );
        assert_emits(&plan);
    }

    #[test]
    fn essential_mptcp_outranks_timestamps() {
        // DSS 28 + MP_TCPRST 4 = 32; timestamps would make 44.
        let request = OptionRequest {
            timestamps: Some(TS),
            mptcp: mptcp(&[(Essential, DSS_FULL), (Essential, MP_TCPRST)]),
            ..OptionRequest::default()
        };
        let plan = plan(&request);
        assert_eq!(plan.len, 32);
        assert_eq!(plan.options.timestamps, None);
        assert_eq!(plan.omitted.as_slice(), &[Omitted::Timestamps]);
        assert_emits(&plan);
    }

    #[test]
    fn ipv6_add_addr_with_port_never_fits_beside_timestamps() {
        // 30 bytes of ADD_ADDR pad to 32; with TS 12 that is 44.
        let request = OptionRequest {
            timestamps: Some(TS),
            mptcp: mptcp(&[(Deferrable, ADD_ADDR6_PORT)]),
            ..OptionRequest::default()
        };
        let plan = plan(&request);
        assert_eq!(plan.len, 12);
        assert_eq!(
            plan.omitted.as_slice(),
            &[Omitted::Mptcp {
                index: 0,
                len: 30,
                priority: Deferrable
            }]
        );
    }

    #[test]
    fn syn_options_fit_by_construction() {
        // MSS 4 + SACKOK TS 12 + NOP WS 4 + MP_CAPABLE 4 = 24.
        let syn = OptionRequest {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some(TS),
            mptcp: mptcp(&[(Essential, 0)]),
            ..OptionRequest::default()
        };
        let plan_syn = plan(&syn);
        assert!(plan_syn.is_complete());
        assert_eq!(plan_syn.len, 24);
        assert_emits(&plan_syn);
        // The largest handshake option, MP_JOIN SYN/ACK (16): 4 + 12 + 4 + 16 = 36.
        let join = OptionRequest {
            mptcp: mptcp(&[(Essential, 3)]),
            ..syn
        };
        let plan_join = plan(&join);
        assert!(plan_join.is_complete());
        assert_eq!(plan_join.len, 36);
        assert_emits(&plan_join);
    }

    #[test]
    fn priority_by_subtype() {
        let classes: Vec<MptcpPriority> = MPTCP_SAMPLES
            .iter()
            .map(|bytes| MptcpPriority::of(&MptcpOption::parse(bytes).expect("well formed")))
            .collect();
        // Samples: 4 MP_CAPABLE/MP_JOIN, 3 DSS, 2 ADD_ADDR, REMOVE_ADDR, MP_PRIO, MP_FAIL,
        // MP_FASTCLOSE, MP_TCPRST.
        let mut expected = vec![Essential; 7];
        expected.extend([Deferrable; 4]);
        expected.extend([Essential; 3]);
        assert_eq!(classes, expected);
    }

    /// The shortcut for requests that fit whole gives what the greedy pass gives, over
    /// every combination of the SYN options, timestamps, 0 to 4 SACK blocks and up to
    /// two MPTCP samples of either priority (fitting or not).
    #[test]
    fn the_whole_request_shortcut_agrees_with_the_greedy_pass() {
        let mut fitting = 0;
        for bits in 0..16u32 {
            for sack in 0..=4 {
                for first in 0..=MPTCP_SAMPLES.len() {
                    for second in 0..=MPTCP_SAMPLES.len() {
                        let mut list = Vec::new();
                        for (i, sample) in [first, second].into_iter().enumerate() {
                            if sample < MPTCP_SAMPLES.len() {
                                let priority = if (bits >> i) & 1 == 0 {
                                    Essential
                                } else {
                                    Deferrable
                                };
                                list.push((priority, sample));
                            }
                        }
                        let request = OptionRequest {
                            mss: (bits & 4 != 0).then_some(1460),
                            window_scale: (bits & 4 != 0).then_some(7),
                            sack_permitted: bits & 4 != 0,
                            timestamps: (bits & 8 != 0).then_some(TS),
                            sack_blocks: blocks(sack),
                            mptcp: mptcp(&list),
                        };
                        let fast = plan(&request);
                        assert_eq!(fast, greedy(&request), "{request:?}");
                        fitting += usize::from(fast.is_complete());
                    }
                }
            }
        }
        assert!(fitting > 0, "some requests fit whole");
    }

    #[test]
    fn empty_request_gives_empty_plan() {
        let plan = plan(&OptionRequest::default());
        assert!(plan.is_complete());
        assert_eq!(plan.len, 0);
        assert_eq!(plan.options, TcpOptions::default());
    }
}
