//! Waking the event loop from application threads: an eventfd the loop polls next to
//! the TUN fd, plus a flag so that a burst of application calls costs one syscall.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub(crate) struct Notifier {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl Notifier {
    pub(crate) fn new() -> io::Result<Notifier> {
        // SAFETY: eventfd has no memory preconditions; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Notifier {
            fd,
            pending: AtomicBool::new(false),
        })
    }

    /// Makes the loop's next (or current) wait return.
    pub(crate) fn notify(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            // A wake-up is already on its way; the loop clears the flag before it
            // looks at the shared state, so this caller's change will be seen.
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
        let rc = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if rc < 0 {
            // EAGAIN means the counter is saturated: the loop will wake anyway.
            tracing::trace!(error = %io::Error::last_os_error(), "eventfd write");
        }
    }

    /// Called by the loop before it processes the shared state: empties the eventfd,
    /// then clears the flag, in that order. Clearing first loses wake-ups: a notify()
    /// between the two sees the flag clear and writes the eventfd, the read then takes
    /// that write, and the flag stays set with the eventfd empty, so every later
    /// notify() believes a wake-up is on its way while the loop sleeps until a packet
    /// or a timer comes (a window update owed after a read, or data just written,
    /// waits for the peer's next probe or retransmission). Emptying first, a notify()
    /// before the flag is cleared is seen when the loop looks at the state next, and
    /// one after it writes the eventfd again.
    pub(crate) fn clear(&self) {
        self.drain();
        self.rearm();
    }

    /// Empties the eventfd counter (a non-blocking read; nothing to read is fine).
    fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut value as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Lets the next notify() write the eventfd again. AcqRel: the loop then sees the
    /// changes made before the notify() calls it absorbs.
    fn rearm(&self) {
        self.pending.swap(false, Ordering::AcqRel);
    }
}

impl AsRawFd for Notifier {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Waits until `a` or `b` is readable or `timeout` passes (`None`: forever). Returns
/// whether `a` is readable.
pub(crate) fn wait_readable(
    a: RawFd,
    b: RawFd,
    timeout: Option<std::time::Duration>,
) -> io::Result<bool> {
    let mut fds = [
        libc::pollfd {
            fd: a,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` and `ts` live across the call; a null timeout means "forever".
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    if fds[0].revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        return Err(io::Error::other(format!(
            "TUN descriptor reported poll error (revents {:#x})",
            fds[0].revents
        )));
    }
    Ok(fds[0].revents & libc::POLLIN != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn notify_wakes_a_wait_and_clear_rearms_it() {
        let n = Notifier::new().expect("eventfd");
        let (r, w) = pipe();
        n.notify();
        n.notify();
        let start = Instant::now();
        assert!(!wait_readable(r, n.as_raw_fd(), Some(Duration::from_secs(5))).expect("poll"));
        assert!(start.elapsed() < Duration::from_secs(1));
        n.clear();
        // Cleared: the wait now times out.
        let start = Instant::now();
        assert!(!wait_readable(r, n.as_raw_fd(), Some(Duration::from_millis(30))).expect("poll"));
        assert!(start.elapsed() >= Duration::from_millis(29));
        // The first fd readable is reported as such.
        // SAFETY: writes one byte from a live array to our pipe.
        unsafe { libc::write(w, [1u8].as_ptr().cast(), 1) };
        assert!(wait_readable(r, n.as_raw_fd(), Some(Duration::from_secs(5))).expect("poll"));
        // SAFETY: closing the pipe ends we created.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    }

    /// The interleaving that used to lose wake-ups: an application's notify() lands
    /// inside the loop's clear(). The loop looks at the state right after clear(), so
    /// that notify needs no wake-up; the next one must wake the next wait.
    #[test]
    fn a_notify_during_clear_does_not_silence_the_next_one() {
        let n = Notifier::new().expect("eventfd");
        let (r, w) = pipe();
        n.notify();
        // clear(), with a notify() between its two steps.
        n.drain();
        n.notify();
        n.rearm();
        // The loop has seen the state; it waits. An application changes something.
        n.notify();
        let start = Instant::now();
        assert!(!wait_readable(r, n.as_raw_fd(), Some(Duration::from_secs(5))).expect("poll"));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the wait was not woken: the notify was lost"
        );
        // No spurious wake-up is left behind after a clear().
        n.clear();
        assert!(!wait_readable(r, n.as_raw_fd(), Some(Duration::from_millis(30))).expect("poll"));
        // SAFETY: closing the pipe ends we created.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    }

    fn pipe() -> (RawFd, RawFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        (fds[0], fds[1])
    }
}
