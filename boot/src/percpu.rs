//! Each host CPU's own block: its index, its APIC ID, how far its start has come, its GDT
//! and TSS, and the frames its VT enable takes. A CPU reaches its block through the GS
//! base (IA32_GS_BASE, SDM Vol 3A 3.4.4.1 / AMD APM Vol 2 4.5.3); the boot CPU reaches
//! any block by index.

use crate::gdt::CpuTables;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};
use vmm_core::firmware::hostcpus::MAX_CPUS;

const IA32_GS_BASE: u32 = 0xc000_0101;

/// How far a CPU's start has come.
pub mod state {
    pub const ABSENT: u8 = 0;
    /// The boot CPU sent INIT-SIPI-SIPI.
    pub const STARTING: u8 = 1;
    /// The CPU runs Janus' code on its own stack and has left the trampoline.
    pub const ARRIVED: u8 = 2;
    pub const ONLINE: u8 = 3;
    pub const LEFT_OUT: u8 = 4;
    /// It ran its guests to their end.
    pub const FINISHED: u8 = 5;
}

#[repr(C)]
pub struct PerCpu {
    pub index: AtomicU32,
    pub apic_id: AtomicU32,
    pub state: AtomicU8,
    /// The top of its double-fault stack (IST1).
    pub df_top: AtomicU64,
    /// Zeroed frames for its VMXON region or host save areas.
    pub frames: [AtomicU64; 2],
    pub tables: CpuTables,
}

impl PerCpu {
    const fn new() -> PerCpu {
        PerCpu {
            index: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            state: AtomicU8::new(state::ABSENT),
            df_top: AtomicU64::new(0),
            frames: [AtomicU64::new(0), AtomicU64::new(0)],
            tables: CpuTables::new(),
        }
    }
}

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// CPU `index`'s block.
pub fn get(index: usize) -> &'static PerCpu {
    &CPUS[index]
}

/// Makes CPU `index`'s block this CPU's (through GS).
pub fn install(index: usize) {
    let addr = get(index) as *const PerCpu as u64;
    // SAFETY: IA32_GS_BASE only sets where GS-relative accesses go; Janus uses GS for
    // nothing else.
    unsafe { x86::msr::wrmsr(IA32_GS_BASE, addr) };
}

/// This CPU's block, once `install` has run on it (exception handlers call this, so it
/// checks the GS base instead of trusting it).
pub fn current() -> Option<&'static PerCpu> {
    // SAFETY: reading IA32_GS_BASE has no side effects.
    let base = unsafe { x86::msr::rdmsr(IA32_GS_BASE) };
    CPUS.iter().find(|&c| c as *const PerCpu as u64 == base)
}
