//! Packet capture: every IP packet the stack sends and receives, as a classic pcap file
//! with linktype RAW (101) and wall-clock timestamps, readable by Wireshark and tshark.
//!
//! With TUN offload, packets cross the device with partial TCP checksums (completed by
//! whoever needs them) and as super-segments; the capture shows them as a capture on a
//! host with TSO/GRO does: super-segments whole, but with checksums completed, so that
//! tools that check them see valid packets.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

/// A pcap file being written. Buffered; [`PcapSink::flush`] is called whenever the event
/// loop goes idle, so the file is readable while the stack runs.
pub(crate) struct PcapSink {
    writer: PcapWriter<SharedFile>,
    /// The same buffered file, for flushing (pcap-file's writer does not expose its
    /// inner writer).
    file: SharedFile,
    dirty: bool,
}

/// `packet` with its TCP checksum computed; `None` for what does not parse as TCP/IP.
fn complete_checksum(packet: &[u8]) -> Option<Vec<u8>> {
    use mptcp_proto::wire::{IpTcpRepr, TcpPacket};
    let ip = IpTcpRepr::parse(packet, false).ok()?.ip;
    let header = match ip {
        mptcp_proto::wire::IpRepr::V4(_) => usize::from(packet[0] & 0x0f) * 4,
        mptcp_proto::wire::IpRepr::V6(_) => 40,
    };
    let mut copy = packet.to_vec();
    TcpPacket::new_unchecked(&mut copy[header..])
        .fill_checksum(ip.src_addr(), ip.dst_addr())
        .ok()?;
    Some(copy)
}

/// A buffered file shared between the pcap writer and the sink.
#[derive(Clone)]
struct SharedFile(Arc<Mutex<BufWriter<File>>>);

impl SharedFile {
    fn with<T>(&self, f: impl FnOnce(&mut BufWriter<File>) -> T) -> T {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.with(|f| f.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with(|f| f.write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.with(|f| f.flush())
    }
}

impl std::fmt::Debug for PcapSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapSink").finish_non_exhaustive()
    }
}

impl PcapSink {
    pub(crate) fn create(path: &Path) -> io::Result<PcapSink> {
        let file = File::create(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create pcap file {}: {e}", path.display()),
            )
        })?;
        let header = PcapHeader {
            datalink: DataLink::RAW,
            ..PcapHeader::default()
        };
        let file = SharedFile(Arc::new(Mutex::new(BufWriter::new(file))));
        let writer = PcapWriter::with_header(file.clone(), header).map_err(pcap_error)?;
        Ok(PcapSink {
            writer,
            file,
            dirty: false,
        })
    }

    /// Records one IP packet seen now. `partial_checksum`: its TCP checksum field
    /// holds only the pseudo-header sum (checksum offload); the capture gets the full
    /// checksum.
    pub(crate) fn record(&mut self, packet: &[u8], partial_checksum: bool) -> io::Result<()> {
        if partial_checksum && let Some(full) = complete_checksum(packet) {
            return self.write(&full);
        }
        self.write(packet)
    }

    fn write(&mut self, packet: &[u8]) -> io::Result<()> {
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let orig_len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        self.writer
            .write_packet(&PcapPacket::new(ts, orig_len, packet))
            .map_err(pcap_error)?;
        self.dirty = true;
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.flush()?;
            self.dirty = false;
        }
        Ok(())
    }
}

impl Drop for PcapSink {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "pcap flush failed");
        }
    }
}

fn pcap_error(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(format!("pcap: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;

    #[test]
    fn recorded_packets_read_back_with_raw_linktype_and_real_time() {
        let dir = std::env::temp_dir().join(format!("mptcp-tun-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let path = dir.join("t.pcap");
        let before = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock after 1970");
        {
            let mut sink = PcapSink::create(&path).expect("pcap file created");
            sink.record(&[0x45, 0, 0, 20], false).expect("record");
            sink.record(&[0x60; 40], true).expect("record");
        }
        let mut reader = PcapReader::new(File::open(&path).expect("open")).expect("header");
        assert_eq!(reader.header().datalink, DataLink::RAW);
        let first = reader.next_packet().expect("one packet").expect("valid");
        assert_eq!(&first.data[..], &[0x45, 0, 0, 20]);
        assert_eq!(first.orig_len, 4);
        // Microsecond resolution: the stamp is at most 1 us before `before`.
        assert!(first.timestamp + std::time::Duration::from_micros(1) >= before);
        let second = reader.next_packet().expect("two packets").expect("valid");
        assert_eq!(second.data.len(), 40);
        assert!(reader.next_packet().is_none());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
