//! Upload times: wall-clock, but strictly increasing within one process, so
//! blobs uploaded one after the other list in that order even when the
//! filesystem clock is coarse.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Hands out strictly increasing timestamps (recorded as file mtimes).
#[derive(Debug)]
pub(crate) struct UploadClock {
    last: Mutex<SystemTime>,
}

impl UploadClock {
    /// A clock that has handed out nothing yet.
    pub(crate) fn new() -> Self {
        Self {
            last: Mutex::new(SystemTime::UNIX_EPOCH),
        }
    }

    /// The current time, or one microsecond after the last time handed out if
    /// the wall clock has not moved past it.
    pub(crate) fn next(&self) -> SystemTime {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = SystemTime::now();
        let floor = *last + Duration::from_micros(1);
        let next = if now > floor { now } else { floor };
        *last = next;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing() {
        let clock = UploadClock::new();
        let mut prev = clock.next();
        for _ in 0..1000 {
            let t = clock.next();
            assert!(t > prev);
            prev = t;
        }
    }
}
