//! The Linux TUN device: creation, link settings, the routes that send the stack's own
//! addresses into it, and packet IO.
//!
//! Addressing model: the kernel side of the TUN is "the network". The stack owns a set of
//! addresses; for each one the kernel gets a host route (`/32` or `/128`) into the TUN,
//! so whatever the kernel would send to those addresses (from local sockets, or forwarded
//! from other interfaces when forwarding is on) arrives here, and whatever the stack
//! writes is received by the kernel as if it came in on the TUN. The device itself needs
//! no address.
//!
//! Framing: without offload every read and write is exactly one IP packet of at most
//! the MTU. With offload (`IFF_VNET_HDR` and `TUNSETOFFLOAD` CSUM|TSO4|TSO6, through
//! tun-rs; TUN-CEILING.md) every read and write starts with a 10-byte virtio_net_hdr
//! (the `headroom`, see `offload.rs`) and packets may be super-segments of up to 64 KiB:
//! the kernel hands us unsegmented GSO packets and cuts the ones we write. When the
//! kernel refuses offload the device falls back to plain framing.
//!
//! This module must not know about TCP or the endpoint.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::process::Command;

use tun_rs::{DeviceBuilder, SyncDevice};

use crate::offload::{MAX_PACKET, VNET_HDR_LEN};

/// Link settings for the TUN device.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// Link MTU in bytes; the stack's MSS is derived from it.
    pub mtu: u16,
    /// Transmit queue length in packets. TUN-CEILING.md: the default 500 tail-drops under
    /// a bursty user-space reader; 5000 removed the drops.
    pub tx_queue_len: u32,
    /// Host routes into the device, one per address the stack owns.
    pub addresses: Vec<IpAddr>,
    /// Ask for virtio_net_hdr offload (checksum, TSO/GSO both ways).
    pub offload: bool,
    /// Queues (`IFF_MULTI_QUEUE` when more than one): one per worker thread.
    pub queues: usize,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            name: "mptcp0".to_owned(),
            mtu: 1500,
            tx_queue_len: 5000,
            addresses: Vec::new(),
            offload: true,
            queues: 1,
        }
    }
}

/// An open TUN device with its routes installed. Dropping it removes the routes and
/// closes the device (the kernel deletes a non-persistent TUN on close).
pub(crate) struct TunDevice {
    dev: SyncDevice,
    name: String,
    mtu: u16,
    /// virtio_net_hdr framing and offloads are on.
    offload: bool,
    /// Routes this device installed, removed again on drop.
    routes: Vec<IpAddr>,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("offload", &self.offload)
            .field("routes", &self.routes)
            .finish()
    }
}

const NEEDS_ROOT: &str = "creating a TUN device needs root or CAP_NET_ADMIN";

impl TunDevice {
    /// Creates the device, sets MTU and queue length, brings it up and routes every
    /// configured address into it.
    pub(crate) fn open(config: &DeviceConfig) -> io::Result<TunDevice> {
        if config.name.is_empty() || config.name.len() > 15 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "TUN device name {:?} must be 1 to 15 bytes long",
                    config.name
                ),
            ));
        }
        if config.mtu < 1280 {
            // IPv6 needs 1280 (RFC 8200 §5); below that the MSS arithmetic gets silly.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TUN MTU {} is below the minimum of 1280", config.mtu),
            ));
        }
        let build = |offload: bool| {
            DeviceBuilder::new()
                .name(&config.name)
                .mtu(config.mtu)
                .tx_queue_len(config.tx_queue_len)
                .offload(offload)
                .multi_queue(config.queues > 1)
                .enable(true)
                .build_sync()
        };
        let (dev, offload) = match build(config.offload) {
            Ok(dev) => (dev, config.offload),
            // Permission and name problems fail the same way without offload; anything
            // else may be a kernel without IFF_VNET_HDR or TUNSETOFFLOAD.
            Err(e)
                if config.offload
                    && !matches!(
                        e.raw_os_error(),
                        Some(libc::EPERM | libc::EACCES | libc::EBUSY | libc::ENOENT)
                    ) =>
            {
                tracing::warn!(name = %config.name, error = %e, "TUN offload refused: running without it");
                (
                    build(false).map_err(|e| open_error(&config.name, e))?,
                    false,
                )
            }
            Err(e) => return Err(open_error(&config.name, e)),
        };
        dev.set_nonblocking(true)?;
        let name = dev.name().unwrap_or_else(|_| config.name.clone());
        let mut device = TunDevice {
            dev,
            name,
            mtu: config.mtu,
            offload,
            routes: Vec::new(),
        };
        for &addr in &config.addresses {
            route(RouteOp::Add, &device.name, addr)?;
            device.routes.push(addr);
        }
        tracing::info!(
            name = %device.name,
            mtu = device.mtu,
            offload = device.offload,
            routes = ?device.routes,
            "TUN device up"
        );
        Ok(device)
    }

    /// Another queue of the same multi-queue device (the kernel spreads the packets
    /// it sends over the queues, and prefers the queue a flow was last written from).
    /// The clone carries the same framing and offload, and owns no routes.
    pub(crate) fn clone_queue(&self) -> io::Result<TunDevice> {
        let dev = self.dev.try_clone().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open another queue of TUN device {}: {e}", self.name),
            )
        })?;
        dev.set_nonblocking(true)?;
        Ok(TunDevice {
            dev,
            name: self.name.clone(),
            mtu: self.mtu,
            offload: self.offload,
            routes: Vec::new(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn mtu(&self) -> u16 {
        self.mtu
    }

    /// Whether reads and writes carry a virtio_net_hdr and may be super-segments.
    pub(crate) fn offload(&self) -> bool {
        self.offload
    }

    /// Bytes in front of every packet in a read or write buffer: the virtio_net_hdr
    /// when offload is on.
    pub(crate) fn headroom(&self) -> usize {
        if self.offload { VNET_HDR_LEN } else { 0 }
    }

    /// The longest packet a read may return or a write may carry (without headroom).
    pub(crate) fn max_packet(&self) -> usize {
        if self.offload {
            MAX_PACKET
        } else {
            usize::from(self.mtu)
        }
    }

    /// Reads one packet without blocking: the kernel's virtio_net_hdr (with offload)
    /// into `buf[..headroom]`, the packet after it. Returns the packet length (without
    /// headroom), or `Ok(None)` when nothing is queued.
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let headroom = self.headroom();
        loop {
            match self.dev.recv(buf) {
                Ok(n) if n < headroom => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a {n}-byte read is shorter than the virtio_net_hdr"),
                    ));
                }
                Ok(n) => return Ok(Some(n - headroom)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes one packet held in `buf[headroom..headroom + len]`.
    ///
    /// A TUN write only fails for a malformed packet or when the kernel drops it; a full
    /// queue is a drop like on any link, so `WouldBlock` is reported as `Ok(false)` and
    /// TCP's loss recovery takes care of it.
    pub(crate) fn send(&self, buf: &[u8], len: usize) -> io::Result<bool> {
        let headroom = self.headroom();
        loop {
            match self.dev.send(&buf[..headroom + len]) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for TunDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }
}

impl Drop for TunDevice {
    fn drop(&mut self) {
        for &addr in self.routes.iter().rev() {
            // The kernel drops the routes itself when the device goes away; removing
            // them first keeps a persistent or reused device clean too.
            if let Err(e) = route(RouteOp::Delete, &self.name, addr) {
                tracing::debug!(name = %self.name, %addr, error = %e, "route removal failed");
            }
        }
        if !self.routes.is_empty() {
            tracing::info!(name = %self.name, "TUN device closed");
        }
    }
}

/// Turns a device creation failure into an error that says what to do.
fn open_error(name: &str, e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("cannot create TUN device {name:?}: {e} ({NEEDS_ROOT})"),
        ),
        Some(libc::ENOENT) | Some(libc::ENODEV) => io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "cannot create TUN device {name:?}: {e} (is /dev/net/tun present and the tun module loaded?)"
            ),
        ),
        Some(libc::EBUSY) => io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "cannot create TUN device {name:?}: {e} (another process holds a device of that name)"
            ),
        ),
        _ => io::Error::new(e.kind(), format!("cannot create TUN device {name:?}: {e}")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RouteOp {
    Add,
    Delete,
}

/// Adds or deletes the host route for `addr` through device `dev` with iproute2.
fn route(op: RouteOp, dev: &str, addr: IpAddr) -> io::Result<()> {
    let (family, prefix) = match addr {
        IpAddr::V4(_) => ("-4", 32),
        IpAddr::V6(_) => ("-6", 128),
    };
    let verb = match op {
        RouteOp::Add => "add",
        RouteOp::Delete => "del",
    };
    let target = format!("{addr}/{prefix}");
    let output = Command::new("ip")
        .args([family, "route", verb, &target, "dev", dev])
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot run `ip route {verb} {target} dev {dev}`: {e} (is iproute2 installed?)"
                ),
            )
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    let kind = if stderr.contains("File exists") {
        io::ErrorKind::AddrInUse
    } else if stderr.contains("Operation not permitted") {
        io::ErrorKind::PermissionDenied
    } else {
        io::ErrorKind::Other
    };
    let hint = match kind {
        io::ErrorKind::AddrInUse => " (another route for this address exists)",
        io::ErrorKind::PermissionDenied => " (routes need root or CAP_NET_ADMIN)",
        _ => "",
    };
    Err(io::Error::new(
        kind,
        format!("`ip {family} route {verb} {target} dev {dev}` failed: {stderr}{hint}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, mtu: u16) -> DeviceConfig {
        DeviceConfig {
            name: name.to_owned(),
            mtu,
            ..DeviceConfig::default()
        }
    }

    #[test]
    fn bad_names_and_mtus_are_refused_before_touching_the_system() {
        let err = TunDevice::open(&config("a-name-of-16-byt", 1500)).expect_err("16 bytes");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            "TUN device name \"a-name-of-16-byt\" must be 1 to 15 bytes long"
        );
        let err = TunDevice::open(&config("", 1500)).expect_err("empty");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = TunDevice::open(&config("mptcp0", 1279)).expect_err("small MTU");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "TUN MTU 1279 is below the minimum of 1280");
    }

    #[test]
    fn open_errors_say_what_to_do() {
        let e = open_error("t0", io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            e.to_string()
                .ends_with("(creating a TUN device needs root or CAP_NET_ADMIN)")
        );
        let e = open_error("t0", io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let e = open_error("t0", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/dev/net/tun"));
        let e = open_error("t0", io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let e = open_error("t0", io::Error::from_raw_os_error(libc::EINVAL));
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .starts_with("cannot create TUN device \"t0\": ")
        );
    }
}
