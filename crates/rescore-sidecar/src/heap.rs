//! Gives the heap the allocator keeps after a burst back to the system (ADR 0010).
//!
//! Under overload hundreds of request bodies and parsed hit lists are alive at once. Once they
//! are freed, glibc keeps their pages in its per-thread arenas, so the resident size stays at
//! the burst's peak for as long as the process runs (docs/reliability.md). `malloc_trim(0)`
//! returns them. It walks and locks every arena in turn, so it is not run under load: only
//! once a burst has ended, on a blocking thread.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use rescore_serving::Rescorer;

/// Counted each time the heap is trimmed after a burst.
pub const HEAP_TRIMS: &str = "rescore_heap_trims_total";

/// An interval with fewer than this many answers is never the peak of a burst.
const MIN_BURST: u64 = 100;

/// Tells, from the answers counted per interval, when a burst has ended: an interval with at
/// most a quarter of the busiest interval's answers since the last trim.
#[derive(Debug, Default)]
struct BurstEnd {
    peak: u64,
}

impl BurstEnd {
    fn ended(&mut self, answered: u64) -> bool {
        if self.peak >= MIN_BURST && answered.saturating_mul(4) <= self.peak {
            self.peak = answered;
            return true;
        }
        self.peak = self.peak.max(answered);
        false
    }
}

/// Every `every`, trims the heap when the answers of the last interval show a burst ended.
pub fn spawn_trim_after_bursts(rescorer: Arc<Rescorer>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut burst = BurstEnd::default();
        let mut last = rescorer.answered_requests();
        loop {
            tick.tick().await;
            let now = rescorer.answered_requests();
            if burst.ended(now.saturating_sub(last)) {
                let released = tokio::task::spawn_blocking(release_free_heap)
                    .await
                    .unwrap_or(false);
                metrics::counter!(HEAP_TRIMS).increment(1);
                tracing::debug!(released, "heap trimmed after a burst");
            }
            last = now;
        }
    });
}

/// Returns whether the allocator gave memory back. Only glibc keeps freed arenas this way;
/// elsewhere there is nothing to do.
fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointers and has no preconditions; glibc locks each
        // arena while it trims it, so it is safe beside threads that allocate.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_ends_when_the_load_falls_to_a_quarter_of_its_peak() {
        let mut b = BurstEnd::default();
        assert!(!b.ended(50), "a quiet start");
        assert!(!b.ended(0), "below the smallest burst: nothing to trim");
        assert!(!b.ended(20_000));
        assert!(!b.ended(6_000), "30% of the peak: still busy");
        assert!(b.ended(5_000), "25%: the burst is over");
        assert!(
            !b.ended(4_000),
            "once per burst: the peak is now the level after it"
        );
        assert!(
            b.ended(0),
            "a further fall to a quarter of that is another end"
        );
        assert!(!b.ended(30_000));
        assert!(b.ended(10), "the next burst ends");
    }
}
