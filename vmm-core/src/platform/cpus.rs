//! What each of a guest's CPUs has of its own on the platform: its local APIC, its NMI
//! latch and where it stands in the start-up protocol; and how an interrupt message (an
//! IPI, an IOAPIC delivery) finds its CPUs.
//!
//! Start-up follows the PC's (Intel SDM Vol 3A, revision 086, 9.4.4 "MP initialization
//! example" and 10.4.4.1 / 11.4.7.3 "local APIC state after INIT"): an application
//! processor waits for a start-up IPI (SIPI); INIT puts a running one back to waiting;
//! a SIPI to a CPU that is not waiting is ignored, so the second SIPI of the universal
//! start-up algorithm does nothing. The CPU that is waiting does not run at all (on both
//! vendors: no VT-x wait-for-SIPI activity state, one way for both backends).

use crate::devices::lapic::{LocalApic, Shorthand};
use crate::vm::MAX_GUEST_VCPUS;
use arrayvec::ArrayVec;

/// Where a CPU stands in the INIT/SIPI protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// It runs (the boot CPU from the start, an AP after its SIPI was taken).
    Running,
    /// It waits for a SIPI and does not run.
    WaitForSipi,
    /// It ran and got an INIT: its state goes, then it waits for a SIPI.
    Init,
    /// A SIPI with this vector came while it waited: it starts in real mode at
    /// `vector << 12` (after its old state, if any, went).
    Startup(u8),
}

impl RunState {
    /// An INIT arrived.
    pub fn init(self) -> RunState {
        match self {
            RunState::WaitForSipi => RunState::WaitForSipi,
            RunState::Running | RunState::Init | RunState::Startup(_) => RunState::Init,
        }
    }

    /// A SIPI with `vector` arrived: taken only by a CPU waiting for one.
    pub fn sipi(self, vector: u8) -> RunState {
        match self {
            RunState::WaitForSipi | RunState::Init => RunState::Startup(vector),
            RunState::Running | RunState::Startup(_) => self,
        }
    }
}

/// One CPU's share of the platform.
#[derive(Clone, Debug)]
pub struct CpuLocal {
    pub lapic: LocalApic,
    /// An NMI waiting for this CPU.
    pub nmi_pending: bool,
    pub run: RunState,
}

/// A set of a guest's CPUs, bit n for CPU n.
pub type CpuMask = u8;

/// The CPUs of one guest, CPU n with APIC ID n.
#[derive(Clone, Debug)]
pub struct Cpus {
    all: ArrayVec<CpuLocal, MAX_GUEST_VCPUS>,
    /// Where lowest-priority delivery starts looking among CPUs of equal priority, so
    /// that ties go round.
    next_lowest: usize,
}

impl Cpus {
    /// `n` CPUs (1 to [`MAX_GUEST_VCPUS`]; more are cut, none makes one): CPU 0 is the
    /// boot CPU and runs, the others wait for a SIPI.
    pub fn new(n: u8, tsc_hz: u64, timer_hz: u64) -> Cpus {
        let n = (n as usize).clamp(1, MAX_GUEST_VCPUS);
        let all = (0..n)
            .map(|i| CpuLocal {
                lapic: LocalApic::new(i as u32, i == 0, tsc_hz, timer_hz),
                nmi_pending: false,
                run: if i == 0 {
                    RunState::Running
                } else {
                    RunState::WaitForSipi
                },
            })
            .collect();
        Cpus {
            all,
            next_lowest: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// CPU `i` (below [`Cpus::len`]: the platform's current vCPU always is).
    pub fn get(&self, i: usize) -> &CpuLocal {
        &self.all[i]
    }

    pub fn get_mut(&mut self, i: usize) -> &mut CpuLocal {
        &mut self.all[i]
    }

    pub fn iter(&self) -> impl Iterator<Item = &CpuLocal> {
        self.all.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut CpuLocal> {
        self.all.iter_mut()
    }

    /// The CPUs an interrupt message from CPU `from` reaches: by shorthand, or those
    /// whose APIC takes destination `dest` in physical or logical mode.
    pub fn targets(&self, from: usize, shorthand: Shorthand, dest: u32, logical: bool) -> CpuMask {
        let everyone = ((1u16 << self.all.len()) - 1) as CpuMask;
        let me = 1 << from;
        match shorthand {
            Shorthand::ToSelf => me,
            Shorthand::AllIncludingSelf => everyone,
            Shorthand::AllExcludingSelf => everyone & !me,
            Shorthand::Destination => self
                .all
                .iter()
                .enumerate()
                .filter(|(_, c)| c.lapic.matches_destination(dest, logical))
                .fold(0, |m, (i, _)| m | (1 << i)),
        }
    }

    /// Of `set`, the one CPU a lowest-priority message goes to: the lowest processor
    /// priority (SDM Vol 3A 11.6.2.4), ties in turn.
    pub fn lowest_priority(&mut self, set: CpuMask) -> CpuMask {
        let n = self.all.len();
        let best = (0..n)
            .map(|k| (self.next_lowest + k) % n)
            .filter(|&i| set & (1 << i) != 0)
            .min_by_key(|&i| self.all[i].lapic.ppr());
        match best {
            Some(i) => {
                self.next_lowest = (i + 1) % n;
                1 << i
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(n: u8) -> Cpus {
        let mut c = Cpus::new(n, 1_000_000_000, 1_000_000_000);
        for cpu in c.iter_mut() {
            // Software-enable, flat logical model, logical ID bit = 1 << APIC ID.
            let id = cpu.lapic.id();
            cpu.lapic.write_mmio(0xf0, 0x1ff, 0);
            cpu.lapic.write_mmio(0xe0, 0xffff_ffff, 0);
            cpu.lapic.write_mmio(0xd0, (1 << id) << 24, 0);
        }
        c
    }

    #[test]
    fn only_the_boot_cpu_runs_at_first() {
        let c = Cpus::new(3, 1, 1);
        let states: ArrayVec<RunState, 8> = c.iter().map(|c| c.run).collect();
        assert_eq!(
            states.as_slice(),
            [
                RunState::Running,
                RunState::WaitForSipi,
                RunState::WaitForSipi
            ]
        );
        assert_eq!(c.get(1).lapic.id(), 1);
        assert_eq!(c.get(0).lapic.apic_base() & (1 << 8), 1 << 8, "BSP bit");
        assert_eq!(c.get(1).lapic.apic_base() & (1 << 8), 0);
    }

    #[test]
    fn init_sipi_sipi_starts_once_at_the_first_vector() {
        let s = RunState::WaitForSipi.init().sipi(0x9a).sipi(0x10);
        assert_eq!(s, RunState::Startup(0x9a));
        assert_eq!(RunState::Running.sipi(0x10), RunState::Running);
        assert_eq!(RunState::Running.init(), RunState::Init);
        assert_eq!(RunState::Running.init().sipi(7), RunState::Startup(7));
        assert_eq!(RunState::Startup(7).init(), RunState::Init);
    }

    #[test]
    fn shorthands_and_destinations_pick_their_cpus() {
        let c = cpus(4);
        assert_eq!(c.targets(1, Shorthand::ToSelf, 0, false), 0b0010);
        assert_eq!(c.targets(1, Shorthand::AllIncludingSelf, 0, false), 0b1111);
        assert_eq!(c.targets(1, Shorthand::AllExcludingSelf, 0, false), 0b1101);
        assert_eq!(c.targets(0, Shorthand::Destination, 2, false), 0b0100);
        assert_eq!(c.targets(0, Shorthand::Destination, 0xff, false), 0b1111);
        // Logical, flat: bits 1 and 3 of the destination are CPUs 1 and 3.
        assert_eq!(c.targets(0, Shorthand::Destination, 0b1010, true), 0b1010);
        assert_eq!(c.targets(0, Shorthand::Destination, 9, false), 0);
    }

    #[test]
    fn lowest_priority_goes_to_the_least_busy_then_in_turn() {
        let mut c = cpus(3);
        c.get_mut(0).lapic.set_tpr(0x40);
        assert_eq!(c.lowest_priority(0b011), 0b010, "CPU 1 has the lower TPR");
        let a = c.lowest_priority(0b110);
        let b = c.lowest_priority(0b110);
        assert_ne!(a, b, "equal priorities take turns");
        assert_eq!(a | b, 0b110);
        assert_eq!(c.lowest_priority(0), 0);
    }
}
