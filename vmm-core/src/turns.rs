//! Whose turn it is among one guest's vCPUs on their host CPU.
//!
//! A guest's vCPUs share its place in the run queue ([`crate::sched`]): within its time
//! slice they take turns, each for at most [`VCPU_TURN_NS`] while another of them can
//! run, in order, skipping the halted ones and those that wait for a SIPI. A vCPU that
//! sends an IPI ends its turn at once ([`crate::dispatch::Stop::Preempted`]), so that the
//! target takes it without waiting for the turn to end.

/// The longest turn of one vCPU while another vCPU of its guest can run: short, because
/// a vCPU spinning on a lock held by a vCPU that waits for its turn wastes it all.
pub const VCPU_TURN_NS: u64 = 1_000_000;

/// What one vCPU can do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// It has no state yet (an AP waiting for its SIPI) or no more (after INIT).
    Absent,
    Runnable,
    /// It halted; a device event at `wake_ns` (guest time) may wake it, if it has one.
    Halted {
        wake_ns: Option<u64>,
    },
}

/// The runnable vCPU after `last` in order (wrapping), if any.
pub fn next(turns: &[Turn], last: usize) -> Option<usize> {
    let n = turns.len();
    (1..=n)
        .map(|k| (last + k) % n)
        .find(|&i| turns[i] == Turn::Runnable)
}

/// When the guest needs the CPU again if none of its vCPUs can run: the earliest wake-up
/// of the halted ones (`None`: only an interrupt from elsewhere, or a time limit).
pub fn wake_ns(turns: &[Turn]) -> Option<u64> {
    turns
        .iter()
        .filter_map(|t| match t {
            Turn::Halted { wake_ns } => *wake_ns,
            _ => None,
        })
        .min()
}

/// How long the vCPU whose turn it is may run, from `now_ns` within a guest slice that
/// ends at `until_ns`: the whole slice when it is the only one that can run.
pub fn turn_end(turns: &[Turn], now_ns: u64, until_ns: u64) -> u64 {
    let runnable = turns.iter().filter(|t| **t == Turn::Runnable).count();
    if runnable > 1 {
        until_ns.min(now_ns.saturating_add(VCPU_TURN_NS))
    } else {
        until_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Turn::*;

    #[test]
    fn turns_go_round_skipping_those_that_cannot_run() {
        let t = [Runnable, Absent, Halted { wake_ns: None }, Runnable];
        assert_eq!(next(&t, 0), Some(3));
        assert_eq!(next(&t, 3), Some(0));
        assert_eq!(next(&[Runnable], 0), Some(0), "alone, it goes again");
        assert_eq!(next(&[Absent, Halted { wake_ns: Some(5) }], 0), None);
    }

    #[test]
    fn the_guest_wakes_with_its_earliest_vcpu() {
        let t = [
            Halted { wake_ns: Some(50) },
            Absent,
            Halted { wake_ns: Some(20) },
            Halted { wake_ns: None },
        ];
        assert_eq!(wake_ns(&t), Some(20));
        assert_eq!(wake_ns(&[Halted { wake_ns: None }, Absent]), None);
    }

    #[test]
    fn a_turn_is_short_only_when_another_vcpu_waits() {
        assert_eq!(turn_end(&[Runnable, Absent], 100, 10_000_000), 10_000_000);
        assert_eq!(
            turn_end(&[Runnable, Runnable], 100, 10_000_000),
            100 + VCPU_TURN_NS
        );
        assert_eq!(turn_end(&[Runnable, Runnable], 100, 500), 500);
    }
}
