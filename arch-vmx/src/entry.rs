//! The VT-x world switch: load the guest's registers, VMLAUNCH or VMRESUME, and on VM exit
//! land at `janus_vmx_exit`, save them, and return to Rust (SDM Vol 3C 27.3, 28.5).
//!
//! Register offsets come from `GprFile::offset` (`offset_of!`); HOST_RSP is written here, right
//! before entry, so the exit lands on this very stack frame.

use core::arch::naked_asm;
use vmm_core::vcpu::{Gpr, GprFile as Gprs};
use x86::vmx::vmcs::host;

/// The guest's RSP is not in the register file: it lives in the VMCS.
const fn off(r: Gpr) -> usize {
    Gprs::offset(r)
}

extern "C" {
    /// Where the CPU lands on every VM exit (the HOST_RIP field).
    pub fn janus_vmx_exit();
}

/// Enters the guest; returns 0 after a VM exit, 1 if VMLAUNCH/VMRESUME itself failed
/// (VMfailValid/VMfailInvalid: the VM-instruction error field says why).
///
/// # Safety
/// A VMCS whose host state points HOST_RIP at `janus_vmx_exit` must be current, and
/// `regs` must be valid for reads and writes for the whole call.
#[unsafe(naked)]
pub unsafe extern "C" fn vmx_run(regs: *mut Gprs, launched: u64) -> u64 {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rdi",
        "mov rax, {host_rsp}",
        "vmwrite rax, rsp",
        "cmp rsi, 0",
        "mov rax, [rdi + {rax}]",
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
        "jne 2f",
        "vmlaunch",
        "jmp 3f",
        "2:",
        "vmresume",
        "3:",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "mov eax, 1",
        "ret",
        ".global janus_vmx_exit",
        "janus_vmx_exit:",
        "push rdi",
        "mov rdi, [rsp + 8]",
        "mov [rdi + {rax}], rax",
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
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "xor eax, eax",
        "ret",
        host_rsp = const host::RSP,
        rax = const off(Gpr::Rax),
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
