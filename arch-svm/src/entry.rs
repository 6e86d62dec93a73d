//! The AMD-V world switch: VMLOAD the guest's extra state, VMRUN, VMSAVE it back, and
//! VMLOAD Janus' own (APM Vol 2 15.5, 15.5.2). VMRUN itself saves and restores the
//! host's RSP, RIP and the rest of the state in the host save area (VM_HSAVE_PA).
//!
//! The guest's RAX lives in the VMCB; the other registers come from `GprFile` through
//! `GprFile::offset` (`offset_of!`). Host tests get a stand-in that fails the test
//! instead of executing VMRUN.

use vmm_core::vcpu::GprFile;

/// Runs the guest of the VMCB at `vmcb_pa` until its next #VMEXIT.
///
/// # Safety
/// `vmcb_pa` must be a valid VMCB, `host_save_pa` the page Janus' own VMSAVE state is
/// kept in, EFER.SVME must be set with VM_HSAVE_PA programmed, and `regs` must be valid
/// for reads and writes for the whole call.
#[cfg(not(test))]
#[unsafe(naked)]
pub unsafe extern "C" fn svm_run(regs: *mut GprFile, vmcb_pa: u64, host_save_pa: u64) {
    vmm_core::world_switch_asm!(
        enter: [
            "push rdx",
            // GIF=0 holds host interrupts off until STGI; RFLAGS.IF=1 at VMRUN is what lets
            // a physical interrupt reach the INTR intercept while the guest runs
            // (V_INTR_MASKING, APM Vol 2 15.21.1). CLI before STGI keeps it pending for the
            // dispatcher.
            "clgi",
            "sti",
            "mov rax, rsi",
        ],
        switch: [
            "vmload rax",
            "vmrun rax",
            // Where the host resumes after #VMEXIT: named for the host's #DB handler
            // (`boot/src/idt.rs`, a guest's single-step trap an emulator lets through).
            ".global janus_svm_after_vmrun",
            "janus_svm_after_vmrun:",
            "vmsave rax",
            "push rdi",
            "mov rdi, [rsp + 16]",
        ],
        leave: [
            "pop rax",
            "vmload rax",
            "cli",
            "stgi",
        ],
        operands: [],
    )
}

/// A host test reached VMRUN: only a loaded vCPU may.
///
/// # Safety
/// None needed; `unsafe` as the real one.
#[cfg(test)]
pub unsafe fn svm_run(_regs: *mut GprFile, _vmcb_pa: u64, _host_save_pa: u64) {
    panic!("VMRUN in a host test")
}
