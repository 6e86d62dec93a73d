//! The guest registers that VT-x keeps in neither the VMCS nor the VM-exit landing's
//! save area, so that while a vCPU is loaded on the host CPU only the CPU's own registers
//! hold them: CR2 (not in the VMCS, SDM Vol 3C 27.3; Janus takes no page faults, so the
//! guest's stays in the register across exits instead of being loaded and read back
//! around every entry), DR0-DR3 and DR6 (the VMCS has only DR7, SDM Vol 3C 25.4.1), and the
//! SYSCALL/SWAPGS MSRs that VM entry and exit do not switch (SDM Vol 3C 26.3.2, 28.5),
//! and IA32_TSC_AUX, which the guest's RDTSCP reads without an exit (the VM-entry and
//! VM-exit MSR-load lists could switch it too, but would cost two MSR loads on every
//! entry and exit; loading it with the vCPU costs two WRMSRs per vCPU switch, see
//! [`vmm_core::msr::tsc_aux`]).
//!
//! `ResidentRegs` keeps the vCPU's copy: `load` puts it into the CPU, `put` reads the CPU
//! back (the guest changes the MSRs without an exit: WRMSR of the pass-through MSRs,
//! SWAPGS), and while loaded reads and writes reach the CPU.

use core::marker::PhantomData;
use vmm_core::msr::tsc_aux::{TscAux, IA32_TSC_AUX};
use vmm_core::vcpu::DebugReg;
use x86::msr::{self, rdmsr, wrmsr};

/// How many registers live in the CPU while a vCPU is loaded.
pub const COUNT: usize = 11;

/// One register that lives in the CPU while the vCPU is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resident {
    Cr2,
    Dr0,
    Dr1,
    Dr2,
    Dr3,
    Dr6,
    KernelGsBase,
    Star,
    Lstar,
    Cstar,
    Fmask,
}

impl Resident {
    pub const ALL: [Resident; COUNT] = [
        Resident::Cr2,
        Resident::Dr0,
        Resident::Dr1,
        Resident::Dr2,
        Resident::Dr3,
        Resident::Dr6,
        Resident::KernelGsBase,
        Resident::Star,
        Resident::Lstar,
        Resident::Cstar,
        Resident::Fmask,
    ];

    /// Where debug register `r` lives; `None` for DR7, which is in the VMCS.
    pub fn of_debug(r: DebugReg) -> Option<Resident> {
        Some(match r {
            DebugReg::Dr0 => Resident::Dr0,
            DebugReg::Dr1 => Resident::Dr1,
            DebugReg::Dr2 => Resident::Dr2,
            DebugReg::Dr3 => Resident::Dr3,
            DebugReg::Dr6 => Resident::Dr6,
            DebugReg::Dr7 => return None,
        })
    }
}

/// The CPU's registers: the hardware, or a pretend CPU in host tests.
pub trait CpuRegs {
    fn read(r: Resident) -> u64;
    fn write(r: Resident, v: u64);
    /// Writes IA32_TSC_AUX (only ever called when the guest has RDTSCP, so the host has
    /// the MSR).
    fn write_tsc_aux(v: u64);
}

/// The values a vCPU gives its resident registers, and whether they are in the CPU.
#[derive(Debug)]
pub struct ResidentRegs<C> {
    values: [u64; COUNT],
    tsc_aux: TscAux,
    loaded: bool,
    cpu: PhantomData<C>,
}

impl<C: CpuRegs> ResidentRegs<C> {
    /// Not loaded; every register 0 but DR6 = `dr6`.
    pub fn new(dr6: u64) -> Self {
        let mut values = [0; COUNT];
        values[Resident::Dr6 as usize] = dr6;
        ResidentRegs {
            values,
            tsc_aux: TscAux::new(),
            loaded: false,
            cpu: PhantomData,
        }
    }

    pub fn loaded(&self) -> bool {
        self.loaded
    }

    pub fn get(&self, r: Resident) -> u64 {
        if self.loaded {
            C::read(r)
        } else {
            self.values[r as usize]
        }
    }

    pub fn set(&mut self, r: Resident, v: u64) {
        self.values[r as usize] = v;
        if self.loaded {
            C::write(r, v);
        }
    }

    /// The guest's IA32_TSC_AUX.
    pub fn tsc_aux(&self) -> u64 {
        self.tsc_aux.get()
    }

    pub fn set_tsc_aux(&mut self, v: u64) {
        self.tsc_aux.set(v, C::write_tsc_aux);
    }

    /// Puts this vCPU's values into the CPU.
    pub fn load(&mut self) {
        for r in Resident::ALL {
            C::write(r, self.values[r as usize]);
        }
        self.tsc_aux.load(C::write_tsc_aux);
        self.loaded = true;
    }

    /// Keeps what the CPU holds; the CPU is free for another vCPU.
    pub fn put(&mut self) {
        if !self.loaded {
            return;
        }
        for r in Resident::ALL {
            self.values[r as usize] = C::read(r);
        }
        // The guest cannot change TSC_AUX without an exit: only the host's goes back.
        self.tsc_aux.put(C::write_tsc_aux);
        self.loaded = false;
    }
}

/// The MSR behind a resident MSR, `None` for a debug register.
fn msr_of(r: Resident) -> Option<u32> {
    Some(match r {
        Resident::KernelGsBase => msr::IA32_KERNEL_GSBASE,
        Resident::Star => msr::IA32_STAR,
        Resident::Lstar => msr::IA32_LSTAR,
        Resident::Cstar => msr::IA32_CSTAR,
        Resident::Fmask => msr::IA32_FMASK,
        _ => return None,
    })
}

/// The host CPU's registers.
#[derive(Debug)]
pub enum HwCpu {}

impl CpuRegs for HwCpu {
    fn read(r: Resident) -> u64 {
        if let Some(m) = msr_of(r) {
            // SAFETY: these MSRs exist on every x86-64 CPU and reading them has no side
            // effects.
            return unsafe { rdmsr(m) };
        }
        let v: u64;
        // SAFETY: Janus runs at CPL 0, where MOV from a debug register or CR2 cannot fault
        // (CR4.DE only matters for DR4/DR5, SDM Vol 3B 18.2.2); it has no side effects.
        unsafe {
            match r {
                Resident::Cr2 => {
                    core::arch::asm!("mov {}, cr2", out(reg) v, options(nomem, nostack))
                }
                Resident::Dr0 => {
                    core::arch::asm!("mov {}, dr0", out(reg) v, options(nomem, nostack))
                }
                Resident::Dr1 => {
                    core::arch::asm!("mov {}, dr1", out(reg) v, options(nomem, nostack))
                }
                Resident::Dr2 => {
                    core::arch::asm!("mov {}, dr2", out(reg) v, options(nomem, nostack))
                }
                Resident::Dr3 => {
                    core::arch::asm!("mov {}, dr3", out(reg) v, options(nomem, nostack))
                }
                // DR6, the only one left.
                _ => core::arch::asm!("mov {}, dr6", out(reg) v, options(nomem, nostack)),
            }
        }
        v
    }

    fn write(r: Resident, v: u64) {
        if let Some(m) = msr_of(r) {
            // SAFETY: these MSRs exist on every x86-64 CPU; Janus uses neither SYSCALL nor
            // SWAPGS, so a guest's values do not disturb it (the core checked the value is
            // canonical).
            unsafe { wrmsr(m, v) };
            return;
        }
        // SAFETY: at CPL 0 MOV to DR0-DR3 takes any address and MOV to DR6 any value
        // whose bits 63:32 are clear (the core's `write_dr` checked it). Host DR7 is 0x400
        // after every VM exit (SDM Vol 3C 28.5.1), so no breakpoint fires in Janus. CR2
        // takes any value and only page faults read or write it; Janus takes none.
        unsafe {
            match r {
                Resident::Cr2 => {
                    core::arch::asm!("mov cr2, {}", in(reg) v, options(nomem, nostack))
                }
                Resident::Dr0 => {
                    core::arch::asm!("mov dr0, {}", in(reg) v, options(nomem, nostack))
                }
                Resident::Dr1 => {
                    core::arch::asm!("mov dr1, {}", in(reg) v, options(nomem, nostack))
                }
                Resident::Dr2 => {
                    core::arch::asm!("mov dr2, {}", in(reg) v, options(nomem, nostack))
                }
                Resident::Dr3 => {
                    core::arch::asm!("mov dr3, {}", in(reg) v, options(nomem, nostack))
                }
                // DR6, the only one left.
                _ => core::arch::asm!("mov dr6, {}", in(reg) v, options(nomem, nostack)),
            }
        }
    }

    fn write_tsc_aux(v: u64) {
        // SAFETY: the core sets TSC_AUX only for a guest whose CPUID shows RDTSCP, which
        // it shows only when the host has it (and so the MSR); the core checked bits
        // 63:32 are clear. Janus never reads TSC_AUX itself.
        unsafe { wrmsr(IA32_TSC_AUX, v) };
    }
}

/// A pretend CPU for host tests: one per test thread.
#[cfg(test)]
pub mod fake {
    use super::{CpuRegs, Resident};
    use std::cell::RefCell;

    std::thread_local! {
        static REGS: RefCell<[u64; super::COUNT]> = const { RefCell::new([0; super::COUNT]) };
        static TSC_AUX: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
    }

    /// What the pretend CPU's IA32_TSC_AUX holds.
    pub fn tsc_aux() -> u64 {
        TSC_AUX.get()
    }

    #[derive(Debug)]
    pub enum FakeCpu {}

    impl CpuRegs for FakeCpu {
        fn read(r: Resident) -> u64 {
            REGS.with(|c| c.borrow()[r as usize])
        }
        fn write(r: Resident, v: u64) {
            REGS.with(|c| c.borrow_mut()[r as usize] = v)
        }
        fn write_tsc_aux(v: u64) {
            TSC_AUX.set(v)
        }
    }
}
