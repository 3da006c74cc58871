//! What a SYN asks for (RFC 8684 §3.1, §3.2): the endpoint's demultiplexing question,
//! answered from the options alone.

use crate::crypto::{Nonce, Token};
use crate::wire::mptcp::{AddrId, CapableFlags, MpCapableKeys, MpJoin, MptcpOption};
use crate::wire::tcp::TcpRepr;

/// The MPTCP version we speak.
pub const MPTCP_VERSION: u8 = 1;

/// What kind of connection a SYN opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynKind {
    /// Plain TCP: no MPTCP option, or one we answer with plain TCP (version 0, H = 0,
    /// a malformed form, or MP_CAPABLE and MP_JOIN together).
    Plain,
    /// MP_CAPABLE v1 (or higher, answered with v1); `checksums`: the client set A.
    Capable { checksums: bool },
    /// MP_JOIN for the connection with `token`.
    Join {
        token: Token,
        nonce: Nonce,
        addr_id: AddrId,
        backup: bool,
    },
}

/// Classifies a SYN (no ACK) by its MPTCP options.
pub fn classify_syn(syn: &TcpRepr<'_>) -> SynKind {
    let mut capable = None;
    let mut join = None;
    for option in &syn.options.mptcp {
        match option {
            MptcpOption::MpCapable(c) => capable = Some(*c),
            MptcpOption::MpJoin(j) => join = Some(*j),
            MptcpOption::Dss(_)
            | MptcpOption::AddAddr(_)
            | MptcpOption::RemoveAddr(_)
            | MptcpOption::MpPrio(_)
            | MptcpOption::MpFail(_)
            | MptcpOption::MpFastclose(_)
            | MptcpOption::MpTcpRst(_)
            | MptcpOption::Experimental(_) => {}
        }
    }
    match (capable, join) {
        (Some(c), None) => {
            // RFC 8684 §3.1: version 0 is RFC 6824's (we answer plain TCP, as Linux
            // does); H = 0 asks for a hash we do not implement; a key in a SYN is the
            // version 0 form. A higher version is answered with ours.
            let v1_form = matches!(c.keys, MpCapableKeys::None);
            if c.version >= MPTCP_VERSION && v1_form && c.flags.contains(CapableFlags::HMAC_SHA256)
            {
                SynKind::Capable {
                    checksums: c.flags.checksum_required(),
                }
            } else {
                SynKind::Plain
            }
        }
        (
            None,
            Some(MpJoin::Syn {
                backup,
                addr_id,
                token,
                nonce,
            }),
        ) => SynKind::Join {
            token,
            nonce,
            addr_id,
            backup,
        },
        (None, Some(MpJoin::SynAck { .. } | MpJoin::Ack { .. })) | (None, None) => SynKind::Plain,
        // Both at once is contradictory; RFC 8684 gives it no meaning.
        (Some(_), Some(_)) => SynKind::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MptcpKey;
    use crate::seq::SeqNum;
    use crate::wire::mptcp::MpCapable;
    use crate::wire::tcp::{TcpFlags, TcpOptions};

    fn syn(options: &[MptcpOption<'static>]) -> TcpRepr<'static> {
        let mut o = TcpOptions::default();
        for x in options {
            o.mptcp.push(x.clone());
        }
        TcpRepr {
            src_port: 1000,
            dst_port: 80,
            seq: SeqNum(1),
            ack: SeqNum(0),
            flags: TcpFlags::SYN,
            window: 1000,
            urgent: 0,
            options: o,
            payload: &[],
        }
    }

    fn capable(version: u8, flags: u8, keys: MpCapableKeys) -> MptcpOption<'static> {
        MptcpOption::MpCapable(MpCapable {
            version,
            flags: CapableFlags(flags),
            keys,
        })
    }

    #[test]
    fn capable_versions_and_flags() {
        assert_eq!(
            classify_syn(&syn(&[capable(1, 0x01, MpCapableKeys::None)])),
            SynKind::Capable { checksums: false }
        );
        assert_eq!(
            classify_syn(&syn(&[capable(1, 0x81, MpCapableKeys::None)])),
            SynKind::Capable { checksums: true }
        );
        // A higher version is answered with v1.
        assert_eq!(
            classify_syn(&syn(&[capable(3, 0x01, MpCapableKeys::None)])),
            SynKind::Capable { checksums: false }
        );
        // Version 0, H = 0, or a key in the SYN: plain TCP.
        assert_eq!(
            classify_syn(&syn(&[capable(0, 0x01, MpCapableKeys::None)])),
            SynKind::Plain
        );
        assert_eq!(
            classify_syn(&syn(&[capable(1, 0x80, MpCapableKeys::None)])),
            SynKind::Plain
        );
        assert_eq!(
            classify_syn(&syn(&[capable(
                0,
                0x01,
                MpCapableKeys::Sender {
                    sender: MptcpKey(5)
                }
            )])),
            SynKind::Plain
        );
        assert_eq!(classify_syn(&syn(&[])), SynKind::Plain);
    }

    #[test]
    fn join_syn_and_contradictions() {
        let join = MptcpOption::MpJoin(MpJoin::Syn {
            backup: true,
            addr_id: AddrId(3),
            token: Token(0xdead_beef),
            nonce: Nonce(7),
        });
        assert_eq!(
            classify_syn(&syn(std::slice::from_ref(&join))),
            SynKind::Join {
                token: Token(0xdead_beef),
                nonce: Nonce(7),
                addr_id: AddrId(3),
                backup: true
            }
        );
        assert_eq!(
            classify_syn(&syn(&[capable(1, 0x01, MpCapableKeys::None), join])),
            SynKind::Plain
        );
    }
}
