//! The scheduler: which vCPU a host CPU runs next, and until when.
//!
//! One [`RunQueue`] per host CPU (only the boot CPU has one today; SMP gives every CPU its
//! own and moves vCPUs between them). It knows vCPUs by an index the caller chooses, and
//! nothing of VMs: the caller runs the vCPU it picks until the slice ends or the guest
//! halts or ends, then tells the queue what happened.
//!
//! Policy: weighted fair sharing by virtual runtime, as stride scheduling (Waldspurger and
//! Weihl, 1995) and Linux's CFS do. Each vCPU's `vruntime` grows by the time it ran divided
//! by its weight; the runnable vCPU with the smallest `vruntime` runs next, for one time
//! slice at most. Over time a vCPU of weight 3 gets three times the CPU of a vCPU of
//! weight 1 when both want it. A halted vCPU is not runnable and costs nothing until its
//! wake-up time or an interrupt wakes it; when it wakes it may not claim the time it slept
//! (its `vruntime` is raised to the queue's minimum less one slice), so a guest that
//! sleeps cannot starve the others afterwards.
//!
//! Interrupt latency: a runnable vCPU whose platform has an interrupt for it goes first,
//! as long as it is not more than [`BOOST_NS`] ahead of the others; the caller ends the
//! running vCPU's slice early when another vCPU's device event comes due (see
//! [`RunQueue::next`]). So a guest that waits for its timer gets it about on time even
//! beside guests that never stop computing, and those still get their share.

mod switches;

pub use switches::Switches;

use arrayvec::ArrayVec;

/// Most vCPUs one run queue holds.
pub const MAX_VCPUS: usize = 32;

/// The time slice: the longest a vCPU runs while another one is runnable (alone on its
/// CPU, with no other that could wake, it has no end: [`RunQueue::next`]).
pub const SLICE_NS: u64 = 10_000_000;

/// The slice of a vCPU that goes first for its interrupt: long enough to take it, short
/// enough that several such vCPUs in a row keep each other's latency low.
pub const URGENT_SLICE_NS: u64 = 1_000_000;

/// How far ahead of the least-served vCPU one with an interrupt waiting may be and still
/// go first: five slices.
pub const BOOST_NS: u64 = 5 * SLICE_NS;

/// Fixed-point scale of `vruntime`, so that weights up to [`MAX_WEIGHT`] divide exactly
/// enough.
const SCALE: u64 = 1 << 10;

/// Largest `weight=` a guest may ask for.
pub const MAX_WEIGHT: u32 = 1000;

/// What a vCPU is doing, as far as the queue knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Runnable,
    /// Waiting for an interrupt; the queue wakes it by itself at `wake_ns` (its next
    /// device event), if it has one.
    Halted {
        wake_ns: Option<u64>,
    },
    Ended,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    id: usize,
    weight: u32,
    vruntime: u64,
    state: State,
}

/// What the host CPU does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run vCPU `id` until `until_ns` at the latest (the end of its slice).
    Run { id: usize, until_ns: u64 },
    /// Every vCPU is halted: sleep until the earliest wake-up (or an interrupt).
    Idle { until_ns: Option<u64> },
    /// Every vCPU has ended.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    Full,
    BadWeight,
    UnknownVcpu,
}

/// One host CPU's vCPUs.
#[derive(Debug, Default)]
pub struct RunQueue {
    entries: ArrayVec<Entry, MAX_VCPUS>,
}

impl RunQueue {
    pub fn new() -> RunQueue {
        RunQueue::default()
    }

    /// Adds vCPU `id` with `weight` (1..=[`MAX_WEIGHT`]), runnable, behind the vCPUs that
    /// already have run (it starts at the queue's minimum virtual runtime).
    pub fn add(&mut self, id: usize, weight: u32) -> Result<(), SchedError> {
        if weight == 0 || weight > MAX_WEIGHT {
            return Err(SchedError::BadWeight);
        }
        let vruntime = self.min_vruntime();
        let e = Entry {
            id,
            weight,
            vruntime,
            state: State::Runnable,
        };
        self.entries.try_push(e).map_err(|_| SchedError::Full)
    }

    fn entry(&mut self, id: usize) -> Result<&mut Entry, SchedError> {
        self.entries
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(SchedError::UnknownVcpu)
    }

    /// The smallest virtual runtime among the vCPUs that have not ended.
    fn min_vruntime(&self) -> u64 {
        self.live().map(|e| e.vruntime).min().unwrap_or(0)
    }

    fn live(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.state != State::Ended)
    }

    /// Wakes halted vCPUs whose wake-up time has come, then picks what runs next: a
    /// vCPU with an interrupt waiting (`pending(id)`) that is at most [`BOOST_NS`] ahead of
    /// the least-served runnable vCPU, else the least-served one.
    pub fn next(&mut self, now_ns: u64, pending: impl Fn(usize) -> bool) -> Next {
        for i in 0..self.entries.len() {
            if let State::Halted { wake_ns: Some(t) } = self.entries[i].state {
                if t <= now_ns {
                    let id = self.entries[i].id;
                    let _ = self.wake(id);
                }
            }
        }
        let runnable = || self.entries.iter().filter(|e| e.state == State::Runnable);
        // Alone on the CPU, a vCPU runs until it halts or ends: no other could want the
        // CPU, so a slice end would only cost an exit and a trip through here.
        if let (Some(e), 1) = (runnable().next(), self.live().count()) {
            return Next::Run {
                id: e.id,
                until_ns: u64::MAX,
            };
        }
        let least = runnable().map(|e| e.vruntime).min();
        let urgent = least.and_then(|m| {
            runnable()
                .filter(|e| e.vruntime <= m.saturating_add(BOOST_NS * SCALE) && pending(e.id))
                .min_by_key(|e| e.vruntime)
        });
        if let Some(e) = urgent {
            return Next::Run {
                id: e.id,
                until_ns: now_ns.saturating_add(URGENT_SLICE_NS),
            };
        }
        if let Some(e) = runnable().min_by_key(|e| e.vruntime) {
            return Next::Run {
                id: e.id,
                until_ns: now_ns.saturating_add(SLICE_NS),
            };
        }
        if self.live().next().is_none() {
            return Next::Done;
        }
        let until_ns = self
            .live()
            .filter_map(|e| match e.state {
                State::Halted { wake_ns } => wake_ns,
                _ => None,
            })
            .min();
        Next::Idle { until_ns }
    }

    /// Charges vCPU `id` for `ran_ns` of CPU time.
    pub fn charge(&mut self, id: usize, ran_ns: u64) -> Result<(), SchedError> {
        let e = self.entry(id)?;
        let weighted = ran_ns.saturating_mul(SCALE) / e.weight as u64;
        e.vruntime = e.vruntime.saturating_add(weighted);
        Ok(())
    }

    /// vCPU `id` halted until an interrupt, or until `wake_ns` at the latest.
    pub fn halt(&mut self, id: usize, wake_ns: Option<u64>) -> Result<(), SchedError> {
        self.entry(id)?.state = State::Halted { wake_ns };
        Ok(())
    }

    /// vCPU `id` has an interrupt to take: it is runnable again, without credit for the
    /// time it slept.
    pub fn wake(&mut self, id: usize) -> Result<(), SchedError> {
        let floor = self
            .entries
            .iter()
            .filter(|e| e.state == State::Runnable && e.id != id)
            .map(|e| e.vruntime)
            .min()
            .map(|m| m.saturating_sub(SLICE_NS * SCALE));
        let e = self.entry(id)?;
        if matches!(e.state, State::Halted { .. }) {
            e.state = State::Runnable;
            if let Some(f) = floor {
                e.vruntime = e.vruntime.max(f);
            }
        }
        Ok(())
    }

    /// vCPU `id` ended; it never runs again.
    pub fn end(&mut self, id: usize) -> Result<(), SchedError> {
        self.entry(id)?.state = State::Ended;
        Ok(())
    }

    /// vCPU `id` starts over (a guest restarted from its image): runnable, at the queue's
    /// minimum virtual runtime.
    pub fn restart(&mut self, id: usize) -> Result<(), SchedError> {
        let floor = self.min_vruntime();
        let e = self.entry(id)?;
        e.state = State::Runnable;
        e.vruntime = e.vruntime.max(floor);
        Ok(())
    }

    pub fn state(&self, id: usize) -> Option<State> {
        self.entries.iter().find(|e| e.id == id).map(|e| e.state)
    }

    /// The vCPUs that are halted, for the caller to check for interrupts.
    pub fn halted(&self) -> impl Iterator<Item = usize> + '_ {
        self.entries
            .iter()
            .filter(|e| matches!(e.state, State::Halted { .. }))
            .map(|e| e.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `queue` for `total_ns` with every vCPU CPU-bound (it uses its whole slice);
    /// returns the CPU time each id got.
    fn simulate(queue: &mut RunQueue, total_ns: u64) -> [u64; 4] {
        let mut got = [0u64; 4];
        let mut now = 0;
        while now < total_ns {
            match queue.next(now, |_| false) {
                Next::Run { id, until_ns } => {
                    let ran = until_ns - now;
                    queue.charge(id, ran).unwrap();
                    got[id] += ran;
                    now = until_ns;
                }
                other => panic!("{other:?}"),
            }
        }
        got
    }

    #[test]
    fn weights_1_and_3_share_25_75() {
        let mut q = RunQueue::new();
        q.add(0, 1).unwrap();
        q.add(1, 3).unwrap();
        let got = simulate(&mut q, 4_000_000_000);
        let share = got[1] as f64 / (got[0] + got[1]) as f64;
        assert!((share - 0.75).abs() < 0.01, "weight 3 got {share}");
    }

    #[test]
    fn equal_weights_alternate_slice_by_slice() {
        let mut q = RunQueue::new();
        for id in 0..3 {
            q.add(id, 1).unwrap();
        }
        let mut order = Vec::new();
        let mut now = 0;
        for _ in 0..6 {
            let Next::Run { id, until_ns } = q.next(now, |_| false) else {
                panic!()
            };
            assert_eq!(until_ns - now, SLICE_NS);
            order.push(id);
            q.charge(id, SLICE_NS).unwrap();
            now = until_ns;
        }
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn alone_on_its_cpu_a_vcpu_runs_without_a_slice_end() {
        // Nobody else could want the CPU: a slice end would only cost an exit and a trip
        // through the scheduler every SLICE_NS (Linux alone on Bochs ryzen: about 19,600
        // of its 56,525 host timer exits).
        let mut q = RunQueue::new();
        q.add(0, 1).unwrap();
        q.add(1, 1).unwrap();
        q.end(1).unwrap();
        let alone = Next::Run {
            id: 0,
            until_ns: u64::MAX,
        };
        assert_eq!(q.next(5, |_| false), alone);
        assert_eq!(q.next(5, |_| true), alone, "with an interrupt waiting too");
        // Another one, even halted, may be woken from elsewhere (an IPI from another
        // CPU): the slice ends as usual.
        q.restart(1).unwrap();
        q.halt(1, None).unwrap();
        assert_eq!(
            q.next(5, |_| false),
            Next::Run {
                id: 0,
                until_ns: 5 + SLICE_NS
            }
        );
    }

    #[test]
    fn a_halted_vcpu_costs_nothing_and_wakes_at_its_deadline() {
        let mut q = RunQueue::new();
        q.add(0, 1).unwrap();
        q.add(1, 1).unwrap();
        q.halt(1, Some(25_000_000)).unwrap();
        let got = simulate(&mut q, 20_000_000);
        assert_eq!(got, [20_000_000, 0, 0, 0]);
        // At its wake-up time it is runnable again, and it runs next: it is behind.
        assert_eq!(
            q.next(25_000_000, |_| false),
            Next::Run {
                id: 1,
                until_ns: 25_000_000 + SLICE_NS
            }
        );
    }

    #[test]
    fn all_halted_is_idle_until_the_earliest_wake_up() {
        let mut q = RunQueue::new();
        q.add(0, 1).unwrap();
        q.add(1, 1).unwrap();
        q.halt(0, Some(7_000)).unwrap();
        q.halt(1, None).unwrap();
        assert_eq!(
            q.next(5_000, |_| false),
            Next::Idle {
                until_ns: Some(7_000)
            }
        );
        q.halt(0, None).unwrap();
        assert_eq!(q.next(5_000, |_| false), Next::Idle { until_ns: None });
        q.wake(1).unwrap();
        assert!(matches!(q.next(5_000, |_| false), Next::Run { id: 1, .. }));
    }

    #[test]
    fn a_long_sleeper_does_not_starve_the_others_when_it_wakes() {
        let mut q = RunQueue::new();
        q.add(0, 1).unwrap();
        q.add(1, 1).unwrap();
        q.halt(1, None).unwrap();
        simulate(&mut q, 1_000_000_000);
        q.wake(1).unwrap();
        // From now on they alternate: the sleeper gets at most one extra slice.
        let got = simulate(&mut q, 100_000_000);
        assert!(got[1] <= got[0] + 2 * SLICE_NS, "{got:?}");
    }

    #[test]
    fn ended_vcpus_leave_and_the_queue_finishes() {
        let mut q = RunQueue::new();
        q.add(0, 1).unwrap();
        q.add(1, 2).unwrap();
        q.end(0).unwrap();
        assert!(matches!(q.next(0, |_| false), Next::Run { id: 1, .. }));
        q.end(1).unwrap();
        assert_eq!(q.next(0, |_| false), Next::Done);
        assert_eq!(q.state(1), Some(State::Ended));
        q.restart(1).unwrap();
        assert!(matches!(q.next(0, |_| false), Next::Run { id: 1, .. }));
    }

    #[test]
    fn bad_weights_and_unknown_ids_are_errors() {
        let mut q = RunQueue::new();
        assert_eq!(q.add(0, 0), Err(SchedError::BadWeight));
        assert_eq!(q.add(0, MAX_WEIGHT + 1), Err(SchedError::BadWeight));
        assert_eq!(q.halt(9, None), Err(SchedError::UnknownVcpu));
        for id in 0..MAX_VCPUS {
            q.add(id, 1).unwrap();
        }
        assert_eq!(q.add(99, 1), Err(SchedError::Full));
    }
}

#[cfg(test)]
mod latency_tests {
    use super::*;

    #[test]
    fn a_vcpu_with_an_interrupt_waiting_goes_before_a_hog_but_not_far_ahead() {
        let mut q = RunQueue::new();
        q.add(0, 1).unwrap(); // a hog
        q.add(1, 1).unwrap(); // waits for its timer
        q.charge(1, SLICE_NS / 2).unwrap();
        assert!(
            matches!(q.next(0, |_| false), Next::Run { id: 0, .. }),
            "fair order"
        );
        assert_eq!(
            q.next(0, |id| id == 1),
            Next::Run {
                id: 1,
                until_ns: URGENT_SLICE_NS
            },
            "interrupt first, for a short slice"
        );
        // One that already ran more than BOOST_NS beyond the hog waits its turn.
        q.charge(1, BOOST_NS + SLICE_NS).unwrap();
        assert!(matches!(q.next(0, |id| id == 1), Next::Run { id: 0, .. }));
    }
}
