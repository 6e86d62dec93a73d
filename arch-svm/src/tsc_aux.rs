//! IA32_TSC_AUX of this CPU. AMD-V neither switches it on VMRUN/#VMEXIT nor keeps it in
//! the VMCB (APM Vol 2 15.5.1 lists what VMRUN loads; the VMCB save area of Table B-2 has
//! no TSC_AUX outside SEV-ES), so the loaded vCPU's value sits in the register
//! ([`vmm_core::msr::tsc_aux`]). Loading it with the vCPU, rather than intercepting
//! RDTSCP (an exit and an emulation per RDTSCP) or writing it around every VMRUN (two
//! WRMSRs per exit), costs two WRMSRs per vCPU switch: Janus itself never reads it.
//! Host tests get a per-thread stand-in for the register instead.

/// Writes IA32_TSC_AUX.
#[cfg(not(test))]
pub fn write(v: u64) {
    // SAFETY: the core sets TSC_AUX only for a guest whose CPUID shows RDTSCP, shown only
    // when the host has it (and so the MSR), and checked bits 63:32 are clear; Janus
    // never reads TSC_AUX itself.
    unsafe { x86::msr::wrmsr(vmm_core::msr::IA32_TSC_AUX, v) };
}

#[cfg(test)]
pub use fake::write;

/// The host tests' TSC_AUX: one per test thread.
#[cfg(test)]
pub mod fake {
    use std::cell::Cell;

    std::thread_local! {
        static TSC_AUX: Cell<u64> = const { Cell::new(0) };
    }

    pub fn write(v: u64) {
        TSC_AUX.set(v);
    }

    /// What the stand-in register holds.
    pub fn hardware() -> u64 {
        TSC_AUX.get()
    }
}
