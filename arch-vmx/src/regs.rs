//! The guest state VT-x does not keep in the VMCS: the general registers (but RSP), CR2
//! (SDM Vol 3C 27.3) and the SYSCALL/SWAPGS MSRs that VM entry and exit do not switch.

use vmm_core::vcpu::GprFile;
use x86::msr::{self, rdmsr, wrmsr};

/// The guest's registers outside the VMCS, saved and loaded around each entry.
#[derive(Debug, Default)]
pub struct GuestRegs {
    pub gprs: GprFile,
    pub cr2: u64,
    pub msrs: SwappedMsrs,
}

/// The MSRs VT-x does not switch, in `SwappedMsrs` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swapped {
    KernelGsBase,
    Star,
    Lstar,
    Cstar,
    Fmask,
}

const MSRS: [u32; 5] = [
    msr::IA32_KERNEL_GSBASE,
    msr::IA32_STAR,
    msr::IA32_LSTAR,
    msr::IA32_CSTAR,
    msr::IA32_FMASK,
];

/// The guest's values of the `Swapped` MSRs. Once loaded (at the first entry) they stay
/// in the hardware: Janus itself uses neither SYSCALL nor SWAPGS.
#[derive(Debug, Default)]
pub struct SwappedMsrs {
    values: [u64; 5],
    loaded: bool,
}

impl SwappedMsrs {
    pub fn get(&self, m: Swapped) -> u64 {
        if self.loaded {
            // The hardware holds the guest's value (SWAPGS may have changed it).
            read_msr(MSRS[m as usize])
        } else {
            self.values[m as usize]
        }
    }

    pub fn set(&mut self, m: Swapped, v: u64) {
        self.values[m as usize] = v;
        if self.loaded {
            write_msr(MSRS[m as usize], v);
        }
    }

    /// Puts the guest's values into the hardware, once.
    pub fn load(&mut self) {
        if self.loaded {
            return;
        }
        for (&m, v) in MSRS.iter().zip(self.values) {
            write_msr(m, v);
        }
        self.loaded = true;
    }
}

fn read_msr(m: u32) -> u64 {
    // SAFETY: the `Swapped` MSRs exist on every x86-64 CPU and reading them has no side
    // effects.
    unsafe { rdmsr(m) }
}

fn write_msr(m: u32, v: u64) {
    // SAFETY: the `Swapped` MSRs exist on every x86-64 CPU; Janus uses neither SYSCALL
    // nor SWAPGS, so the guest's values do not disturb it (the core checked the value is
    // canonical).
    unsafe { wrmsr(m, v) }
}
