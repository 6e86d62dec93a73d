//! What a guest switch costs on one host CPU: from the end of one guest's slice to the
//! start of another's (the scheduler's choice, the vCPUs' `put`/`load`, their x87/SSE
//! state, the IBPB), counted in TSC ticks, which under Bochs and QEMU's icount are
//! instructions (`cargo janus bench exits`, row `guest_switch`).
//!
//! A guest's end is not a switch: what follows its last slice is its teardown (its
//! vCPUs' frames given back, its summary line on the console: about 22,000 instructions
//! under Bochs). Counted as one, it made the bench's average swing between about 1,400
//! and 1,825 from one configuration to the next (the same build with 128 or 256 MiB, one
//! CPU model or another): the teardown fell before the last switch or after the last
//! slice, by how the two guests' time limits happened to fall.

/// The guest switches of one host CPU and the ticks they took in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    pub count: u64,
    pub ticks: u64,
    /// The guest whose slice ran last, and the TSC at its end while that guest lives.
    last: Option<(usize, Option<u64>)>,
}

impl Switches {
    /// A slice of guest `id` ended at `tsc`.
    pub fn slice_ended(&mut self, id: usize, tsc: u64) {
        self.last = Some((id, Some(tsc)));
    }

    /// Guest `id` ended: the time until the next slice is its teardown, not a switch.
    pub fn guest_ended(&mut self, id: usize) {
        if let Some((last, tsc)) = &mut self.last {
            if *last == id {
                *tsc = None;
            }
        }
    }

    /// A slice of guest `id` starts at `tsc`; counts the switch from another guest's
    /// slice when that guest still lives. Returns whether another guest ran last (ended
    /// since or not): the time `id` waited was then taken by others.
    pub fn slice_starts(&mut self, id: usize, tsc: u64) -> bool {
        let Some((last, ended_tsc)) = self.last else {
            return false;
        };
        if last == id {
            return false;
        }
        if let Some(t) = ended_tsc {
            self.count += 1;
            self.ticks += tsc.saturating_sub(t);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_is_counted_from_one_guests_slice_to_anothers() {
        let mut s = Switches::default();
        assert!(!s.slice_starts(0, 100), "the first slice follows no one");
        s.slice_ended(0, 1_000);
        assert!(s.slice_starts(1, 1_400));
        s.slice_ended(1, 5_000);
        assert!(!s.slice_starts(1, 5_100), "the same guest again: no switch");
        s.slice_ended(1, 9_000);
        assert!(s.slice_starts(0, 9_500));
        assert_eq!((s.count, s.ticks), (2, 400 + 500));
    }

    #[test]
    fn a_guests_end_is_not_a_switch_but_others_still_ran() {
        let mut s = Switches::default();
        s.slice_ended(0, 1_000);
        assert!(s.slice_starts(1, 1_400));
        s.slice_ended(1, 2_000);
        // Guest 1 ends (its time limit) before guest 0's next slice: its teardown.
        s.guest_ended(1);
        assert!(s.slice_starts(0, 24_000), "guest 0 waited while 1 ran");
        assert_eq!((s.count, s.ticks), (1, 400));
        // Another guest's end leaves the last slice's switch counted.
        s.slice_ended(0, 30_000);
        s.guest_ended(1);
        assert!(s.slice_starts(2, 30_300));
        assert_eq!((s.count, s.ticks), (2, 700));
    }
}
