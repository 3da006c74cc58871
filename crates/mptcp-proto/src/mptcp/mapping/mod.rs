//! DSN mappings (RFC 8684 §3.3.1): which bytes of a subflow's byte stream carry which
//! bytes of the connection's data sequence space.
//!
//! A mapping ties `len` bytes starting at a subflow stream offset to the data sequence
//! numbers starting at a DSN. Subflow stream offsets are `u64`, 0 being the first data
//! byte after the SYN, as everywhere in the stack (the wire's relative subflow sequence
//! number is the offset plus one).
//!
//! - [`TxMappings`] (one per subflow): the mappings a subflow has sent, so that every
//!   (re)transmitted segment carries the same DSS mapping, retransmissions re-read the
//!   connection's send buffer by DSN, and a dying subflow's data can be reinjected.
//! - [`RxMappings`] (one per subflow): the mappings received in DSS options, which split
//!   received payload into DSN-addressed pieces for the connection's reassembly, with
//!   DSS checksum verification when it was negotiated.
//!
//! This module owns mapping bookkeeping only. It must not hold the connection's bytes
//! (except the one mapping staged for checksum verification), decide what to send, or
//! touch the data ACK.

mod rx;
mod tx;

pub use rx::{
    InsertKind, Inserted, MIN_RX_MAPPINGS, MappingError, RX_BYTES_PER_MAPPING, ReceiveOutcome,
    ReceivedMapping, RxEvent, RxMapping, RxMappings, rx_mapping_limit,
};
pub use tx::{TxMapping, TxMappings, UnackedRanges};

/// The largest data-level length of one mapping: the DSS field is 16 bits wide
/// (RFC 8684 §3.3). Length 0 is reserved for the infinite mapping (§3.7).
pub const MAX_MAPPING_LEN: u32 = u16::MAX as u32;
