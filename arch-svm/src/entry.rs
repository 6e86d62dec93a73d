//! The AMD-V world switch: VMLOAD the guest's extra state, VMRUN, VMSAVE it back, and
//! VMLOAD Janus' own (APM Vol 2 15.5, 15.5.2). VMRUN itself saves and restores the
//! host's RSP, RIP and the rest of the state in the host save area (VM_HSAVE_PA).
//!
//! The guest's RAX lives in the VMCB; the other registers come from `GprFile` through
//! `GprFile::offset` (`offset_of!`), and the VMCB's and host save page's addresses from
//! [`RunState`] beside it. Host tests get a stand-in that fails the test instead of
//! executing VMRUN.

use vmm_core::vcpu::GprFile;

/// What [`svm_run`] reads and writes, at offsets it takes from here: the guest's
/// registers the VMCB does not hold and, after them, the physical addresses of the VMCB
/// and of Janus' own VMSAVE page, fixed for the vCPU's life. One pointer to pass and no
/// stack slot for the second address: 3 instructions fewer per exit than three
/// arguments.
#[repr(C)]
#[derive(Debug)]
pub struct RunState {
    pub gprs: GprFile,
    pub vmcb_pa: u64,
    pub host_save_pa: u64,
}

// The registers are where `world_switch_asm!` looks for them: at the pointer it gets.
const _: () = assert!(core::mem::offset_of!(RunState, gprs) == 0);

/// Runs the guest of the VMCB at `state.vmcb_pa` until its next #VMEXIT.
///
/// # Safety
/// `vmcb_pa` must be a valid VMCB, `host_save_pa` the page Janus' own VMSAVE state is
/// kept in, EFER.SVME must be set with VM_HSAVE_PA programmed, and `state` must be valid
/// for reads and writes for the whole call.
#[cfg(not(test))]
#[unsafe(naked)]
pub unsafe extern "C" fn svm_run(state: *mut RunState) {
    vmm_core::world_switch_asm!(
        enter: [
            // GIF=0 holds host interrupts off until STGI; RFLAGS.IF=1 at VMRUN is what lets
            // a physical interrupt reach the INTR intercept while the guest runs
            // (V_INTR_MASKING, APM Vol 2 15.21.1). CLI before STGI keeps it pending for the
            // dispatcher.
            "clgi",
            "sti",
            "mov rax, [rdi + {vmcb}]",
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
            "mov rdi, [rsp + 8]",
        ],
        leave: [
            "mov rax, [rdi + {host_save}]",
            "vmload rax",
            "cli",
            "stgi",
        ],
        operands: [
            vmcb = const core::mem::offset_of!(RunState, vmcb_pa),
            host_save = const core::mem::offset_of!(RunState, host_save_pa),
        ],
    )
}

/// A host test reached VMRUN: only a loaded vCPU may.
///
/// # Safety
/// None needed; `unsafe` as the real one.
#[cfg(test)]
pub unsafe fn svm_run(_state: *mut RunState) {
    panic!("VMRUN in a host test")
}
