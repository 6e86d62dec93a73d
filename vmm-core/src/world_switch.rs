//! The part of the world switch both vendors share: moving the guest's general-purpose
//! registers between [`GprFile`](crate::vcpu::GprFile) and the CPU around VMRUN or
//! VMLAUNCH/VMRESUME. Each backend's naked entry function is written with
//! [`world_switch_asm!`], giving only its own instructions; the register offsets come
//! from `GprFile::offset` (`offset_of!`), never from a table written by hand.
//!
//! RAX and RSP are the backends' business (SVM keeps both in the VMCB, VMX keeps RSP in
//! the VMCS and RAX in the file): the shared blocks cover RCX-R15 and RDI.

/// Expands to a `naked_asm!` for an `extern "C" fn(regs: *mut GprFile, ...)` that saves
/// the callee-saved registers and `regs` (so `[rsp]` holds `regs` until `leave`), runs
/// `enter`, loads the guest's RCX-R15 and then RDI from the `GprFile` at RDI, runs
/// `switch` (which enters the guest, comes back on its exit and points RDI at the
/// `GprFile` again, keeping the guest's RDI: stored there, or pushed for `leave` to
/// store), stores the guest's RCX-R15 there, runs `leave`, and restores the
/// callee-saved registers and returns. `leave` must leave the
/// stack as `enter` found it; a path that bails out early jumps to its own label at the
/// end of `leave`. `operands` are the backend's own extra operands.
#[macro_export]
macro_rules! world_switch_asm {
    (
        enter: [$($enter:literal),* $(,)?],
        switch: [$($switch:literal),* $(,)?],
        leave: [$($leave:literal),* $(,)?],
        operands: [$($operands:tt)*] $(,)?
    ) => {
        core::arch::naked_asm!(
            "push rbp",
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "push rdi",
            $($enter,)*
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
            $($switch,)*
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
            $($leave,)*
            "add rsp, 8",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "ret",
            rcx = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::Rcx),
            rdx = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::Rdx),
            rbx = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::Rbx),
            rbp = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::Rbp),
            rsi = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::Rsi),
            rdi = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::Rdi),
            r8 = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::R8),
            r9 = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::R9),
            r10 = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::R10),
            r11 = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::R11),
            r12 = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::R12),
            r13 = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::R13),
            r14 = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::R14),
            r15 = const $crate::vcpu::GprFile::offset($crate::vcpu::Gpr::R15),
            $($operands)*
        )
    };
}
