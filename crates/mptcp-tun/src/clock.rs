//! Wall time for the sans-IO core: `std::time::Instant` mapped onto the core's
//! microsecond `Instant`, with the runtime's start as origin.

use std::time::Instant as StdInstant;

use mptcp_proto::Instant;

/// Maps the monotonic OS clock onto the core's time axis.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: StdInstant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            origin: StdInstant::now(),
        }
    }

    /// The current time on the core's axis.
    pub(crate) fn now(self) -> Instant {
        self.to_core(StdInstant::now())
    }

    pub(crate) fn to_core(self, t: StdInstant) -> Instant {
        let micros = t.saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    pub(crate) fn to_std(self, t: Instant) -> StdInstant {
        self.origin + std::time::Duration::from_micros(t.total_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_time_round_trips_through_std_time() {
        let clock = Clock::new();
        let t = Instant::from_micros(1_234_567);
        assert_eq!(clock.to_core(clock.to_std(t)), t);
        assert_eq!(clock.to_core(clock.origin), Instant::ZERO);
        // Before the origin clamps to zero rather than wrapping.
        let earlier = clock.origin.checked_sub(std::time::Duration::from_secs(1));
        if let Some(earlier) = earlier {
            assert_eq!(clock.to_core(earlier), Instant::ZERO);
        }
    }
}
