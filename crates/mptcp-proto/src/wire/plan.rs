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
pub fn plan<'a>(request: &OptionRequest<'a>) -> Plan<'a> {
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
