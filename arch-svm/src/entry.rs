//! The AMD-V world switch: VMLOAD the guest's extra state, VMRUN, VMSAVE it back, and
//! VMLOAD Janus' own (APM Vol 2 15.5, 15.5.2). VMRUN itself saves and restores the
//! host's RSP, RIP and the rest of the state in the host save area (VM_HSAVE_PA).
//!
//! The guest's RAX lives in the VMCB; the other registers come from `GprFile` through
//! `GprFile::offset` (`offset_of!`).

use core::arch::naked_asm;
use vmm_core::vcpu::{Gpr, GprFile};

const fn off(r: Gpr) -> usize {
    GprFile::offset(r)
}

/// Runs the guest of the VMCB at `vmcb_pa` until its next #VMEXIT.
///
/// # Safety
/// `vmcb_pa` must be a valid VMCB, `host_save_pa` the page Janus' own VMSAVE state is
/// kept in, EFER.SVME must be set with VM_HSAVE_PA programmed, and `regs` must be valid
/// for reads and writes for the whole call.
#[unsafe(naked)]
pub unsafe extern "C" fn svm_run(regs: *mut GprFile, vmcb_pa: u64, host_save_pa: u64) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rdi",
        "push rdx",
        // GIF=0 holds host interrupts off until STGI; RFLAGS.IF=1 at VMRUN is what lets a
        // physical interrupt reach the INTR intercept while the guest runs (V_INTR_MASKING,
        // APM Vol 2 15.21.1). CLI before STGI keeps it pending for the dispatcher.
        "clgi",
        "sti",
        "mov rax, rsi",
        "mov rcx, [rdi + {rcx}]",
        "mov rdx, [rdi + {rdx}]",
        "mov rbx, [rdi + {rbx}]",
        "mov rbp, [rdi + {rbp}]",
        "mov rsi, [rdi + {rsi}]",
        "mov r8, [rdi + {r8}]",
        "mov r9, [rdi + {r9}]",
        "mov r10, [rdi + {r10}]",
        "mov r11, [rdi + {r11}]",
        "mov r12, [rdi + {r12}]",
        "mov r13, [rdi + {r13}]",
        "mov r14, [rdi + {r14}]",
        "mov r15, [rdi + {r15}]",
        "mov rdi, [rdi + {rdi}]",
        "vmload rax",
        "vmrun rax",
        "vmsave rax",
        "push rdi",
        "mov rdi, [rsp + 16]",
        "mov [rdi + {rcx}], rcx",
        "mov [rdi + {rdx}], rdx",
        "mov [rdi + {rbx}], rbx",
        "mov [rdi + {rbp}], rbp",
        "mov [rdi + {rsi}], rsi",
        "mov [rdi + {r8}], r8",
        "mov [rdi + {r9}], r9",
        "mov [rdi + {r10}], r10",
        "mov [rdi + {r11}], r11",
        "mov [rdi + {r12}], r12",
        "mov [rdi + {r13}], r13",
        "mov [rdi + {r14}], r14",
        "mov [rdi + {r15}], r15",
        "pop rax",
        "mov [rdi + {rdi}], rax",
        "pop rax",
        "vmload rax",
        "cli",
        "stgi",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
        rcx = const off(Gpr::Rcx),
        rdx = const off(Gpr::Rdx),
        rbx = const off(Gpr::Rbx),
        rbp = const off(Gpr::Rbp),
        rsi = const off(Gpr::Rsi),
        rdi = const off(Gpr::Rdi),
        r8 = const off(Gpr::R8),
        r9 = const off(Gpr::R9),
        r10 = const off(Gpr::R10),
        r11 = const off(Gpr::R11),
        r12 = const off(Gpr::R12),
        r13 = const off(Gpr::R13),
        r14 = const off(Gpr::R14),
        r15 = const off(Gpr::R15),
    )
}
