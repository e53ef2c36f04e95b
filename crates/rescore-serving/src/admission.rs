//! Deadline-aware admission to the scoring slots (ADR 0002): a request whose expected wait for a
//! slot plus its expected scoring time exceeds what is left of its budget is refused at once
//! (`fallback: "overloaded"`), instead of waiting in the queue and then starting work it cannot
//! finish. The expectation is the work already admitted (the sum of admitted requests' estimated
//! costs, spread over the slots) and this request's estimate (hits × recent scoring time per hit).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Weight of the newest observation in the per-hit cost and the refusal share (1/16).
const EWMA_SHIFT: u32 = 4;
/// The refusal share's fixed-point one.
const SHARE_ONE: u32 = 1 << 16;

#[derive(Debug)]
pub(crate) struct Admission {
    slots: u64,
    /// Estimated µs of scoring admitted and not finished yet.
    queued_us: AtomicU64,
    /// Recent scoring time per hit, in nanoseconds (0 until the first observation).
    per_hit_ns: AtomicU64,
    /// Recent share of decisions that were refusals (fixed point, [`SHARE_ONE`] = all): while
    /// over half, bodies are decoded for refusal first (scores only), a full decode following
    /// only for those admitted. Half is where the two decodings' costs break even.
    refusal_share: AtomicU32,
}

/// An admitted request's share of the queue; released when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    cost_us: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission
            .queued_us
            .fetch_sub(self.cost_us, Ordering::Relaxed);
    }
}

impl Admission {
    pub(crate) fn new(slots: usize) -> Arc<Self> {
        Arc::new(Admission {
            slots: slots.max(1) as u64,
            queued_us: AtomicU64::new(0),
            per_hit_ns: AtomicU64::new(0),
            refusal_share: AtomicU32::new(0),
        })
    }

    /// The estimated scoring time of `hits` hits, in µs (0 before any observation).
    pub(crate) fn estimate_us(&self, hits: usize) -> u64 {
        self.per_hit_ns.load(Ordering::Relaxed) * hits as u64 / 1000
    }

    /// A ticket when the request can expect to finish within `remaining`, else `None`.
    pub(crate) fn admit(self: &Arc<Self>, hits: usize, remaining: Duration) -> Option<Ticket> {
        let cost_us = self.estimate_us(hits);
        let queued = self.queued_us.fetch_add(cost_us, Ordering::Relaxed);
        let ticket = Ticket {
            admission: self.clone(),
            cost_us,
        };
        let refused = self.overdue(cost_us, queued, remaining);
        self.decided(refused);
        if refused {
            return None; // the ticket's drop takes its cost back out of the queue
        }
        Some(ticket)
    }

    /// What [`Admission::admit`] would answer now, without queueing anything: the decision a
    /// request decoded for refusal gets (a refusal is recorded, an admission is left to
    /// `admit` once the request is fully decoded).
    pub(crate) fn would_admit(&self, hits: usize, remaining: Duration) -> bool {
        let queued = self.queued_us.load(Ordering::Relaxed);
        let refused = self.overdue(self.estimate_us(hits), queued, remaining);
        if refused {
            self.decided(true);
        }
        !refused
    }

    /// Whether `cost_us` of scoring, behind `queued_us` of admitted work spread over the
    /// slots, is expected to end after `remaining` (never before the cost is known).
    fn overdue(&self, cost_us: u64, queued_us: u64, remaining: Duration) -> bool {
        cost_us > 0 && u128::from(queued_us / self.slots + cost_us) > remaining.as_micros()
    }

    /// Whether most recent decisions were refusals.
    pub(crate) fn refusing(&self) -> bool {
        self.refusal_share.load(Ordering::Relaxed) > SHARE_ONE / 2
    }

    fn decided(&self, refused: bool) {
        let _ = self
            .refusal_share
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                let new = if refused { SHARE_ONE >> EWMA_SHIFT } else { 0 };
                Some(old - (old >> EWMA_SHIFT) + new)
            });
    }

    /// Whether `hits` hits can be scored in `remaining` by the recent cost: checked again when a
    /// slot is granted, so that a request that waited too long gives its slot to the next
    /// waiter at once instead of starting work it cannot finish (ADR 0010).
    pub(crate) fn fits(&self, hits: usize, remaining: Duration) -> bool {
        let fits = u128::from(self.estimate_us(hits)) <= remaining.as_micros();
        if !fits {
            self.decided(true);
        }
        fits
    }

    /// Folds one scoring run into the per-hit cost.
    pub(crate) fn observe(&self, hits: usize, took: Duration) {
        if hits == 0 {
            return;
        }
        let sample = (took.as_nanos() / hits as u128).min(u128::from(u64::MAX / 2)) as u64;
        let _ = self
            .per_hit_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    old - (old >> EWMA_SHIFT) + (sample >> EWMA_SHIFT)
                })
            });
    }

    #[cfg(test)]
    pub(crate) fn queued_us(&self) -> u64 {
        self.queued_us.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_everything_until_it_knows_the_cost() {
        let a = Admission::new(2);
        let t: Vec<_> = (0..100)
            .map(|_| a.admit(1000, Duration::from_millis(1)))
            .collect();
        assert!(t.iter().all(Option::is_some));
    }

    #[test]
    fn refuses_what_cannot_finish_in_time_and_releases_on_drop() {
        let a = Admission::new(2);
        a.observe(1000, Duration::from_millis(4)); // 4 µs per hit
        assert_eq!(a.estimate_us(1000), 4000);
        let budget = Duration::from_millis(9);
        let first = a.admit(1000, budget).expect("empty queue: 4 ms of 9");
        let second = a.admit(1000, budget).expect("2 ms expected wait + 4 ms");
        let third = a.admit(1000, budget).expect("4 ms wait + 4 ms");
        assert!(
            a.admit(1000, budget).is_none(),
            "6 ms wait + 4 ms is over 9 ms"
        );
        assert_eq!(a.queued_us(), 12_000, "a refusal takes its cost back out");
        assert!(a.admit(10, budget).is_some(), "a small request still fits");
        drop((first, second, third));
        assert_eq!(a.queued_us(), 0);
        assert!(a.admit(1000, budget).is_some());
    }

    #[test]
    fn refusing_follows_the_recent_share_of_refusals() {
        let a = Admission::new(1);
        a.observe(1000, Duration::from_millis(4)); // 4 µs per hit
        assert!(!a.refusing());
        let _held = a.admit(1000, Duration::from_millis(9)).expect("4 ms of 9");
        assert!(
            a.would_admit(1000, Duration::from_millis(8)),
            "4 ms wait + 4 ms"
        );
        assert_eq!(a.queued_us(), 4000, "a peek queues nothing");
        let refusals = (0..12)
            .take_while(|_| !a.refusing())
            .map(|_| assert!(!a.would_admit(1000, Duration::from_millis(7))))
            .count();
        assert!(
            (8..=12).contains(&refusals),
            "refusing after about 11 refusals in a row, not {refusals}"
        );
        assert!(!a.fits(1000, Duration::from_millis(3)), "a slot handed on");
        assert!(a.refusing());
        let admissions = (0..30)
            .take_while(|_| a.refusing())
            .map(|_| assert!(a.admit(10, Duration::from_millis(9)).is_some()))
            .count();
        assert!(
            (1..30).contains(&admissions),
            "admissions end the refusing state ({admissions})"
        );
    }

    #[test]
    fn a_granted_slot_is_kept_only_when_the_rest_of_the_budget_fits() {
        let a = Admission::new(1);
        assert!(a.fits(1000, Duration::ZERO), "no cost known yet");
        a.observe(1000, Duration::from_millis(2)); // 2 µs per hit
        assert!(a.fits(1000, Duration::from_millis(2)));
        assert!(!a.fits(1000, Duration::from_micros(1999)));
        assert!(a.fits(10, Duration::from_micros(20)));
    }

    #[test]
    fn the_cost_follows_recent_runs() {
        let a = Admission::new(1);
        a.observe(100, Duration::from_micros(100)); // 1 µs/hit
        for _ in 0..64 {
            a.observe(100, Duration::from_micros(300)); // 3 µs/hit
        }
        let per_hit_ns = a.estimate_us(1000);
        assert!((2900..=3100).contains(&per_hit_ns), "{per_hit_ns}");
    }
}
