//! The AMD-V world switch, in three parts (APM Vol 2 15.5, 15.5.2): [`svm_run`] VMLOADs the
//! guest's extra state, VMRUNs and VMSAVEs it back; [`svm_run_again`] only VMRUNs and
//! VMSAVEs; [`leave`] VMLOADs Janus' own. VMRUN itself saves and restores the host's RSP,
//! RIP and the rest of the state in the host save area (VM_HSAVE_PA).
//!
//! Between the exit and [`leave`] the VMCB is whole, but the CPU still holds the guest's
//! VMLOAD state (FS and GS with their bases, TR, LDTR, KernelGsBase, STAR/LSTAR/CSTAR/
//! SFMASK, the SYSENTER MSRs) and GIF is clear, so no host interrupt or NMI is taken: the
//! backend's loop that finishes exits in place ([`vmm_core::in_place`]) runs there and
//! enters the guest again with [`svm_run_again`], 7 instructions fewer per exit than a
//! whole switch (CLGI, STI, the guest's VMLOAD, Janus' VMLOAD and its address, CLI,
//! STGI). (Leaving the VMSAVE out of it too, once after a run of them, gained nothing:
//! the loop's code came out longer.) What runs there is vmm-core's code for the exit: no host interrupt handler, no
//! per-CPU data (Janus finds its per-CPU block through IA32_GS_BASE, `boot/src/percpu.rs`,
//! which holds the guest's value then); every other exit leaves first.
//!
//! The guest's RAX lives in the VMCB; the other registers come from `GprFile` through
//! `GprFile::offset` (`offset_of!`), and the VMCB's and host save page's addresses from
//! [`RunState`] beside it. Host tests get stand-ins that fail the test instead of
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

/// The body of [`svm_run`] and [`svm_run_again`]: `$enter` (after RAX is loaded with the
/// VMCB's address), VMRUN, and after #VMEXIT the label `$after` (declared global by
/// `$global`: the host's #DB handler, `boot/src/idt.rs`, knows the instruction after
/// each VMRUN, where an emulator may deliver a guest's single-step trap), VMSAVE, and the
/// guest's registers back into the `GprFile`.
#[cfg(not(test))]
macro_rules! svm_world_switch {
    ([$($enter:literal),* $(,)?], $global:literal, $after:literal) => {
        vmm_core::world_switch_asm!(
            enter: ["mov rax, [rdi + {vmcb}]", $($enter),*],
            switch: [
                "vmrun rax",
                $global,
                $after,
                "vmsave rax",
                // RAX is free (the guest's lives in the VMCB): it carries the GprFile's
                // address while the guest's RDI is stored (one instruction fewer than a
                // push and a pop of RDI).
                "mov rax, [rsp]",
                "mov [rax + {rdi}], rdi",
                "mov rdi, rax",
            ],
            leave: [],
            operands: [
                vmcb = const core::mem::offset_of!(RunState, vmcb_pa),
            ],
        )
    };
}

/// Runs the guest of the VMCB at `state.vmcb_pa` until its next #VMEXIT, and returns
/// with GIF clear and the guest's VMLOAD state still in the CPU (the module's doc):
/// [`svm_run_again`] or [`leave`] comes next.
///
/// # Safety
/// `vmcb_pa` must be a valid VMCB, `host_save_pa` the page Janus' own VMSAVE state is
/// kept in, EFER.SVME must be set with VM_HSAVE_PA programmed, and `state` must be valid
/// for reads and writes for the whole call.
#[cfg(not(test))]
#[unsafe(naked)]
pub unsafe extern "C" fn svm_run(state: *mut RunState) {
    // GIF=0 holds host interrupts off until STGI (in `leave`); RFLAGS.IF=1 at VMRUN is
    // what lets a physical interrupt reach the INTR intercept while the guest runs
    // (V_INTR_MASKING, APM Vol 2 15.21.1). CLI before STGI keeps it pending for the
    // dispatcher.
    svm_world_switch!(
        ["clgi", "sti", "vmload rax"],
        ".global janus_svm_after_vmrun",
        "janus_svm_after_vmrun:"
    )
}

/// [`svm_run`] again after an exit the backend finished without leaving: GIF is still
/// clear and the guest's VMLOAD state still in the CPU, so no VMLOAD. Returns as
/// [`svm_run`] does.
///
/// # Safety
/// As [`svm_run`], and the last world switch on this CPU was this vCPU's [`svm_run`] or
/// [`svm_run_again`], not followed by [`leave`].
#[cfg(not(test))]
#[unsafe(naked)]
pub unsafe extern "C" fn svm_run_again(state: *mut RunState) {
    svm_world_switch!(
        [],
        ".global janus_svm_after_vmrun_again",
        "janus_svm_after_vmrun_again:"
    )
}

/// Ends the world switch [`svm_run`] began: VMLOAD Janus' own extra state, then CLI;
/// STGI (a host interrupt that came meanwhile stays pending until Janus sets IF).
///
/// # Safety
/// As [`svm_run`]; the last world switch on this CPU was one of this vCPU's.
#[cfg(not(test))]
#[inline(always)]
pub unsafe fn leave(state: &RunState) {
    // SAFETY: the caller's contract. VMLOAD reads only Janus' own page and loads the
    // state it was VMSAVEd with (`Svm::enable`); no memory Rust reaches is written (not
    // `nomem` all the same: with STGI, host interrupts come again, and memory accesses
    // stay on their side of it).
    unsafe {
        core::arch::asm!(
            "vmload rax",
            "cli",
            "stgi",
            inout("rax") state.host_save_pa => _,
            options(nostack),
        )
    }
}

/// A host test reached VMRUN: only a loaded vCPU may.
///
/// # Safety
/// None needed; `unsafe` as the real one.
#[cfg(test)]
pub unsafe fn svm_run(_state: *mut RunState) {
    panic!("VMRUN in a host test")
}

/// As the test's [`svm_run`].
///
/// # Safety
/// None needed.
#[cfg(test)]
pub unsafe fn svm_run_again(_state: *mut RunState) {
    panic!("VMRUN in a host test")
}

/// As the test's [`svm_run`].
///
/// # Safety
/// None needed.
#[cfg(test)]
pub unsafe fn leave(_state: &RunState) {
    panic!("VMLOAD in a host test")
}
