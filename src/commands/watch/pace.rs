//! How often a costly kind of dump may run: at most every `every`, and
//! no more often than keeps its own time within a share of the wall
//! clock. A dump that takes 50 ms under a share of 10% runs at most every
//! 500 ms, whatever the interval asked for. The kernel's cost of a dump
//! grows with every socket of the machine (it walks whole tables), not
//! with the sockets watched: on a big host the share, not the interval,
//! sets the pace, and the watch says so.

use std::time::{Duration, Instant};

/// The CPU time the calling thread has used, in the kernel (a dump's
/// walk runs in the thread's receive call) and out of it: what a dump
/// or a scan costs the machine, which a loaded machine's wall clock
/// would overstate.
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// A change of pace worth a line: the period changed by this factor or
/// more since it was last said (or since the start).
const WORTH_SAYING: f64 = 1.5;

/// The pace of one kind of dump.
#[derive(Debug, Clone)]
pub struct Pace {
    /// The most of the time its dumps may take.
    share: f64,
    /// The least time between two, as asked.
    every: Duration,
    last_start: Option<Instant>,
    last_cost: Duration,
    /// The period last said, if one was.
    said: Option<Duration>,
}

/// A change of pace to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceChange {
    /// What the last dump took.
    pub cost: Duration,
    /// The time between two dumps from now on.
    pub period: Duration,
    /// The time asked for.
    pub every: Duration,
}

impl Pace {
    /// A pace of at most one dump every `every`, within `share` of the
    /// time.
    pub fn new(share: f64, every: Duration) -> Pace {
        Pace {
            share,
            every,
            last_start: None,
            last_cost: Duration::ZERO,
            said: None,
        }
    }

    /// The time between two dumps, given what the last one took.
    pub fn period(&self) -> Duration {
        self.every.max(self.last_cost.div_f64(self.share))
    }

    /// Whether a dump may start now. Polls come on a grid of intervals,
    /// a little before or after it: a quarter of `every` of slack keeps
    /// one a little early from waiting for the next.
    pub fn allows(&self, now: Instant) -> bool {
        self.last_start
            .is_none_or(|last| now + self.every / 4 >= last + self.period())
    }

    /// Whether `every` has passed since the last dump (with the same
    /// slack).
    pub fn due(&self, now: Instant) -> bool {
        self.last_start
            .is_none_or(|last| now + self.every / 4 >= last + self.every)
    }

    /// Records a dump that started at `start` and took `cost`. Returns
    /// the new pace when it is worth a line: the period left the one
    /// asked for, moved by half as much again since it was last said, or
    /// came back.
    pub fn ran(&mut self, start: Instant, cost: Duration) -> Option<PaceChange> {
        self.last_start = Some(start);
        self.last_cost = cost;
        let period = self.period();
        let slower = period.as_secs_f64() >= self.every.as_secs_f64() * WORTH_SAYING;
        let worth = match self.said {
            None => slower,
            Some(said) => {
                let ratio = period.as_secs_f64() / said.as_secs_f64().max(1e-9);
                !slower || !(1.0 / WORTH_SAYING..WORTH_SAYING).contains(&ratio)
            }
        };
        if !worth {
            return None;
        }
        self.said = slower.then_some(period);
        Some(PaceChange {
            cost,
            period: if slower { period } else { self.every },
            every: self.every,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_cheap_dump_runs_every_interval_and_a_costly_one_within_its_share() {
        let mut pace = Pace::new(0.1, 100 * MS);
        let start = Instant::now();
        assert!(pace.allows(start));
        assert_eq!(pace.ran(start, 4 * MS), None, "nothing to say");
        assert!(pace.allows(start + 100 * MS));
        // 50 ms within 10%: every 500 ms, said once.
        let change = pace.ran(start, 50 * MS).unwrap();
        assert_eq!((change.period, change.every), (500 * MS, 100 * MS));
        assert!(!pace.allows(start + 470 * MS));
        assert!(pace.allows(start + 480 * MS), "a poll a little early");
        assert!(pace.due(start + 100 * MS));
        assert_eq!(pace.ran(start, 55 * MS), None, "about the same");
        // Twice as costly: said again.
        assert_eq!(pace.ran(start, 110 * MS).unwrap().period, 1100 * MS);
        // Cheap again: said that it is back to the interval, once.
        assert_eq!(pace.ran(start, 3 * MS).unwrap().period, 100 * MS);
        assert_eq!(pace.ran(start, 3 * MS), None);
    }
}
