//! Seeded pseudo-random byte streams for transfer tests, and what one side saw of a
//! stream (its length and SHA-256), so that sender and receiver can be compared without
//! keeping the bytes.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// Length and SHA-256 of what one direction of a transfer sent or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest32 {
    pub len: usize,
    pub sha: [u8; 32],
}

impl Digest32 {
    /// The SHA-256 in lowercase hex, as `sha256sum` prints it.
    pub fn sha_hex(&self) -> String {
        self.sha.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The bytes of stream `seed`: xorshift64, cheap, and every byte differs between seeds.
pub struct SeededBytes {
    state: u64,
}

impl SeededBytes {
    pub fn new(seed: u64) -> SeededBytes {
        SeededBytes { state: seed | 1 }
    }

    /// Fills `buf` with the next bytes, eight from each step of the generator (a short
    /// last word takes the first bytes of its step).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            word.copy_from_slice(&self.state.to_le_bytes()[..word.len()]);
        }
    }
}

/// Writes `total` bytes of stream `seed` in 64 KiB chunks, then calls `shutdown` (to
/// half-close); returns what was sent.
pub fn send_stream(
    mut w: impl Write,
    total: usize,
    seed: u64,
    shutdown: impl FnOnce(),
) -> Digest32 {
    let mut bytes = SeededBytes::new(seed);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut hash = Sha256::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len());
        bytes.fill(&mut chunk[..n]);
        w.write_all(&chunk[..n]).expect("write");
        hash.update(&chunk[..n]);
        left -= n;
    }
    shutdown();
    Digest32 {
        len: total,
        sha: hash.finalize().into(),
    }
}

/// Writes stream `seed` in 64 KiB chunks until `done` is set; returns what was sent.
pub fn send_until(mut w: impl Write, done: &AtomicBool, seed: u64) -> Digest32 {
    let mut bytes = SeededBytes::new(seed);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut hash = Sha256::new();
    let mut len = 0;
    while !done.load(Ordering::Relaxed) {
        bytes.fill(&mut chunk);
        w.write_all(&chunk).expect("write");
        hash.update(&chunk);
        len += chunk.len();
    }
    Digest32 {
        len,
        sha: hash.finalize().into(),
    }
}

/// Reads to the end of the stream; returns what arrived.
pub fn recv_stream(mut r: impl Read) -> Digest32 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut hash = Sha256::new();
    let mut len = 0;
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        len += n;
    }
    Digest32 {
        len,
        sha: hash.finalize().into(),
    }
}

/// Where a received stream first departs from stream `seed`, for failure messages: the
/// byte offset, and where in stream `seed` (or in `other`, the opposite direction's
/// stream) the 8 bytes found there belong, which tells a shifted or repeated range
/// from bytes of another stream or plain garbage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// First offset whose byte differs.
    pub first: usize,
    /// Last offset whose byte differs.
    pub last: usize,
    /// How many bytes differ.
    pub bytes: usize,
    /// The aligned 8-byte word at `first` as received.
    pub word: [u8; 8],
    /// Offset of that word in stream `seed`, when it is one of its first `len` bytes.
    pub found_at: Option<usize>,
    /// Offset of that word in stream `other`, when it is one of its first `len` bytes.
    pub found_in_other: Option<usize>,
}

/// Reads to the end of the stream like [`recv_stream`], and also compares what arrives
/// with stream `seed`: returns where it first differs, if it does (the length is
/// checked by the caller's digest comparison).
pub fn recv_checked(mut r: impl Read, seed: u64, other: u64) -> (Digest32, Option<Divergence>) {
    const BLOCK: usize = 64 * 1024;
    let mut buf = vec![0u8; 256 * 1024];
    let mut expected = SeededBytes::new(seed);
    let mut block = vec![0u8; BLOCK];
    let mut in_block = BLOCK;
    let mut hash = Sha256::new();
    let mut len = 0;
    let mut diff: Option<(usize, usize, usize)> = None;
    // The aligned word around the first difference, completed across reads.
    let mut word = [0u8; 8];
    let mut word_at = None;
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        let mut got = &buf[..n];
        while !got.is_empty() {
            if in_block == BLOCK {
                expected.fill(&mut block);
                in_block = 0;
            }
            let m = got.len().min(BLOCK - in_block);
            let want = &block[in_block..in_block + m];
            // Byte by byte only where it differs or the first difference's word is
            // being completed: a clean stream costs a memcmp.
            let slow = got[..m] != *want || word_at.is_some_and(|w| w + 8 > len);
            if slow {
                for (i, (&b, &e)) in got[..m].iter().zip(want).enumerate() {
                    let off = len + i;
                    if b != e {
                        match &mut diff {
                            None => {
                                diff = Some((off, off, 1));
                                word_at = Some(off & !7);
                                // The word's bytes before `first` are the expected ones.
                                let at = in_block + i;
                                word[..off % 8].copy_from_slice(&block[at - off % 8..at]);
                            }
                            Some((_, last, count)) => {
                                *last = off;
                                *count += 1;
                            }
                        }
                    }
                    if let Some(w) = word_at
                        && (w..w + 8).contains(&off)
                    {
                        word[off - w] = b;
                    }
                }
            }
            got = &got[m..];
            in_block += m;
            len += m;
        }
    }
    let digest = Digest32 {
        len,
        sha: hash.finalize().into(),
    };
    let divergence = diff.map(|(first, last, bytes)| Divergence {
        first,
        last,
        bytes,
        word,
        found_at: find_word(seed, len, word),
        found_in_other: find_word(other, len, word),
    });
    (digest, divergence)
}

/// Offset of the aligned 8-byte `word` in the first `len` bytes of stream `seed`.
fn find_word(seed: u64, len: usize, word: [u8; 8]) -> Option<usize> {
    let mut bytes = SeededBytes::new(seed);
    let mut w = [0u8; 8];
    (0..len.div_ceil(8)).find_map(|i| {
        bytes.fill(&mut w);
        (w == word).then_some(i * 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sent_is_what_is_received_and_seeds_differ() {
        let mut wire = Vec::new();
        let sent = send_stream(&mut wire, 100_003, 7, || ());
        assert_eq!(recv_stream(&wire[..]), sent);
        assert_eq!(sent.len, 100_003);
        let other = send_stream(std::io::sink(), 100_003, 8, || ());
        assert_ne!(other.sha, sent.sha);
        // The stream does not depend on how it is cut into chunks.
        let mut bytes = SeededBytes::new(7);
        let mut whole = vec![0u8; 64 * 1024 + 16];
        bytes.fill(&mut whole[..64 * 1024]);
        bytes.fill(&mut whole[64 * 1024..]);
        assert_eq!(whole[..], wire[..whole.len()]);
        assert_eq!(
            Digest32 {
                len: 0,
                sha: [0xab; 32]
            }
            .sha_hex(),
            "ab".repeat(32)
        );
    }

    #[test]
    fn recv_checked_says_where_a_stream_departs_and_where_the_bytes_came_from() {
        let mut wire = Vec::new();
        let sent = send_stream(&mut wire, 300_000, 7, || ());
        let (got, none) = recv_checked(&wire[..], 7, 8);
        assert_eq!((got, none), (sent, None));
        // 1000 bytes at 200_003 replaced by the bytes at 100_000: a repeated range.
        let mut bad = wire.clone();
        bad.copy_within(100_000..101_000, 200_000);
        let (got, d) = recv_checked(&bad[..], 7, 8);
        assert_eq!(got.len, sent.len);
        let d = d.expect("a divergence");
        assert!((200_000..200_008).contains(&d.first), "{d:?}");
        assert!((200_992..201_000).contains(&d.last), "{d:?}");
        assert_eq!(d.found_at, Some(100_000));
        assert_eq!(d.found_in_other, None);
        // Bytes of the other stream.
        let mut other = Vec::new();
        send_stream(&mut other, 300_000, 8, || ());
        bad = wire.clone();
        bad[64..72].copy_from_slice(&other[8..16]);
        let d = recv_checked(&bad[..], 7, 8).1.expect("a divergence");
        assert_eq!((d.found_at, d.found_in_other), (None, Some(8)));
    }
}
