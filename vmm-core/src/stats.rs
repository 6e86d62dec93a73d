//! Exit counters per guest: what the summary line and the benchmarks print.

use crate::exit::ExitKind;
use core::fmt;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    pub by_kind: [u64; ExitKind::COUNT],
}

impl ExitStats {
    pub fn count(&mut self, k: ExitKind) {
        self.by_kind[k as usize] += 1;
    }
    /// Exits the backend finished without the dispatcher ([`crate::in_place`]).
    #[inline(always)]
    pub fn add_in_place(&mut self, done: crate::in_place::Done) {
        self.by_kind[ExitKind::Cpuid as usize] += u64::from(done.cpuid);
        self.by_kind[ExitKind::Io as usize] += u64::from(done.io);
        self.by_kind[ExitKind::Hlt as usize] += u64::from(done.hlt);
    }
    pub fn total(&self) -> u64 {
        self.by_kind.iter().sum()
    }
    pub fn get(&self, k: ExitKind) -> u64 {
        self.by_kind[k as usize]
    }
}

/// `exits=T (io=.. cpuid=.. ...)`, the form of the summary line (docs/console.md).
impl fmt::Display for ExitStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exits={} (", self.total())?;
        for (i, (name, n)) in ExitKind::NAMES.iter().zip(self.by_kind.iter()).enumerate() {
            write!(f, "{}{}={}", if i == 0 { "" } else { " " }, name, n)?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::format;

    #[test]
    fn prints_total_and_each_kind() {
        let mut s = ExitStats::default();
        s.count(ExitKind::Io);
        s.count(ExitKind::Io);
        s.count(ExitKind::Hypercall);
        assert_eq!(s.total(), 3);
        assert_eq!(
            format!("{s}"),
            "exits=3 (io=2 cpuid=0 msr=0 hypercall=1 hlt=0 cr=0 dr=0 npf=0 exception=0 intr=0 timer=0 window=0 other=0)"
        );
    }

    #[test]
    fn host_interrupts_exit_timers_and_windows_count_apart() {
        // Lumped together as `intr`, they hid 2.4 timer exits per timer interrupt of
        // Linux on Bochs corei7_skylake_x.
        use crate::exit::VmExit;
        let mut s = ExitStats::default();
        for e in [
            VmExit::ExternalInterrupt,
            VmExit::Nmi,
            VmExit::DeadlineReached,
            VmExit::InterruptWindow,
            VmExit::InterruptWindow,
        ] {
            s.count(e.kind());
        }
        let counts = [ExitKind::Interrupt, ExitKind::Timer, ExitKind::Window].map(|k| s.get(k));
        assert_eq!(counts, [2, 1, 2]);
    }
}
