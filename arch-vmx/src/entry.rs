//! The VT-x world switch: load the guest's registers, VMLAUNCH or VMRESUME, and on VM exit
//! land at `janus_vmx_exit`, save them, and return to Rust (SDM Vol 3C 27.3, 28.5).
//!
//! Register offsets come from `GprFile::offset` (`offset_of!`); HOST_RSP is written here, right
//! before entry, so the exit lands on this very stack frame.

use crate::vmcs::fields::host;
use vmm_core::vcpu::{Gpr, GprFile as Gprs};

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
    vmm_core::world_switch_asm!(
        enter: [
            "mov rax, {host_rsp}",
            "vmwrite rax, rsp",
            "cmp rsi, 0",
            "mov rax, [rdi + {rax}]",
        ],
        switch: [
            "jne 2f",
            "vmlaunch",
            "jmp 3f",
            "2:",
            "vmresume",
            // Still here: the entry failed (VMfail); nothing of the guest ran.
            "3:",
            "mov eax, 1",
            "jmp 4f",
            ".global janus_vmx_exit",
            "janus_vmx_exit:",
            "push rdi",
            "mov rdi, [rsp + 8]",
            "mov [rdi + {rax}], rax",
        ],
        leave: [
            "pop rax",
            "mov [rdi + {rdi}], rax",
            "xor eax, eax",
            "4:",
        ],
        operands: [
            host_rsp = const host::RSP.encoding(),
            rax = const Gprs::offset(Gpr::Rax),
        ],
    )
}
