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
}
