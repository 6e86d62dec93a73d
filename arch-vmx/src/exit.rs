//! VMX exit reasons (SDM Vol 3C Appendix C) turned into the core's `VmExit`, and failed
//! VM entries turned into errors.

use crate::inject::info;
use crate::structures::APIC_ACCESS_GPA;
use vmm_core::addr::GuestPhys;
use vmm_core::exit::{IoAccess, IoDir, NestedAccess, StringIo, VmExit};
use vmm_core::vcpu::{ControlReg, CrTarget, Gpr, SegReg, VcpuError};

/// Basic exit reasons (SDM Vol 3C Table C-1).
pub mod reason {
    pub const EXCEPTION_OR_NMI: u32 = 0;
    pub const EXTERNAL_INTERRUPT: u32 = 1;
    pub const TRIPLE_FAULT: u32 = 2;
    pub const INTERRUPT_WINDOW: u32 = 7;
    pub const CPUID: u32 = 10;
    pub const HLT: u32 = 12;
    pub const INVD: u32 = 13;
    pub const INVLPG: u32 = 14;
    pub const RDPMC: u32 = 15;
    pub const RDTSC: u32 = 16;
    pub const VMCALL: u32 = 18;
    pub const VMCLEAR: u32 = 19;
    pub const VMXON: u32 = 27;
    pub const CR_ACCESS: u32 = 28;
    pub const DR_ACCESS: u32 = 29;
    pub const IO: u32 = 30;
    pub const RDMSR: u32 = 31;
    pub const WRMSR: u32 = 32;
    pub const ENTRY_INVALID_GUEST_STATE: u32 = 33;
    pub const ENTRY_MSR_LOADING: u32 = 34;
    pub const MWAIT: u32 = 36;
    pub const MONITOR: u32 = 39;
    pub const PAUSE: u32 = 40;
    pub const ENTRY_MACHINE_CHECK: u32 = 41;
    pub const APIC_ACCESS: u32 = 44;
    pub const VIRTUALIZED_EOI: u32 = 45;
    pub const EPT_VIOLATION: u32 = 48;
    pub const INVEPT: u32 = 50;
    pub const RDTSCP: u32 = 51;
    pub const PREEMPTION_TIMER: u32 = 52;
    pub const INVVPID: u32 = 53;
    pub const WBINVD: u32 = 54;
    pub const XSETBV: u32 = 55;
    pub const APIC_WRITE: u32 = 56;
    pub const VMFUNC: u32 = 59;
    /// Bits 15:0 of the exit-reason field (SDM Vol 3C 25.9.1, Table 25-18).
    pub const BASIC: u32 = 0xffff;
    /// Bit 31: VM-entry failure.
    pub const ENTRY_FAILURE: u32 = 1 << 31;
}

/// Exit qualification for control-register accesses (SDM Vol 3C Table 28-3).
mod cr_qual {
    pub const NUMBER: u64 = 0xf;
    pub const TYPE_SHIFT: u64 = 4;
    pub const TYPE_MASK: u64 = 3;
    pub const MOV_TO_CR: u64 = 0;
    pub const MOV_FROM_CR: u64 = 1;
    pub const CLTS: u64 = 2;
    pub const GPR_SHIFT: u64 = 8;
    pub const LMSW_SOURCE_SHIFT: u64 = 16;
}

/// Exit qualification for MOV DR (SDM Vol 3C Table 28-4).
mod dr_qual {
    pub const NUMBER: u64 = 0x7;
    pub const FROM_DR: u64 = 1 << 4;
    pub const GPR_SHIFT: u64 = 8;
}

/// Exit qualification for debug exceptions (SDM Vol 3C Table 28-1), laid out as DR6:
/// B0-B3, BD, BS.
pub mod db_qual {
    pub const B0_B3: u64 = 0xf;
    pub const BD: u64 = 1 << 13;
    pub const BS: u64 = 1 << 14;
}

/// DR6 as the CPU would have left it delivering the #DB whose VM exit reported
/// `qualification`: the #DB exit leaves DR6 alone and reports the bits instead (SDM Vol 3C
/// 28.1); B0-B3 say which breakpoints matched this time, BD and BS add to what DR6 had
/// (SDM Vol 3B 18.2.3).
pub fn dr6_after_debug_exception(dr6: u64, qualification: u64) -> u64 {
    let q = qualification & (db_qual::B0_B3 | db_qual::BD | db_qual::BS);
    (dr6 & !db_qual::B0_B3) | q
}

/// Exit qualification for I/O instructions (SDM Vol 3C Table 28-5).
mod io_qual {
    pub const SIZE_MINUS_1: u64 = 7;
    pub const IN: u64 = 1 << 3;
    pub const STRING: u64 = 1 << 4;
    pub const REP: u64 = 1 << 5;
    pub const PORT_SHIFT: u64 = 16;
}

/// Exit qualification for EPT violations (SDM Vol 3C Table 28-7).
mod ept_qual {
    pub const READ: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const FETCH: u64 = 1 << 2;
}

/// Exit qualification for APIC-access exits (SDM Vol 3C Table 28-6): the offset in the
/// APIC-access page and how it was reached.
mod apic_qual {
    pub const OFFSET: u64 = 0xfff;
    pub const TYPE_SHIFT: u64 = 12;
    pub const TYPE_MASK: u64 = 0xf;
    pub const LINEAR_READ: u64 = 0;
    pub const LINEAR_WRITE: u64 = 1;
}

/// What a VM exit left in the VMCS's read-only fields (SDM Vol 3C 25.9).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawExit {
    pub reason: u32,
    pub qualification: u64,
    pub instruction_info: u32,
    pub interruption_info: u32,
    pub interruption_error: u32,
    pub guest_physical: u64,
}

/// The guest's mode, which decides the address size of string I/O when the CPU does not
/// report it.
#[derive(Clone, Copy, Debug)]
pub struct ModeInfo {
    pub long64: bool,
    pub cs_big: bool,
    /// IA32_VMX_BASIC bit 54: instruction information is valid for INS/OUTS.
    pub ins_outs_info: bool,
}

const CR0_TS: u64 = vmm_core::cpu_rules::cr0::TS;
/// CR0 bits LMSW can set: MP, EM, TS (PE it can set but not clear).
const CR0_LMSW_CLEARABLE: u64 = 0xe;

/// Whether decoding an exit of basic reason `basic` reads the exit qualification: the
/// exits `decode` turns into a `VmExit` without it read none (an entry failure and any
/// reason `decode` leaves raw do).
pub fn needs_qualification(basic: u32) -> bool {
    use reason as r;
    !matches!(
        basic,
        r::EXTERNAL_INTERRUPT
            | r::PREEMPTION_TIMER
            | r::TRIPLE_FAULT
            | r::INTERRUPT_WINDOW
            | r::CPUID
            | r::HLT
            | r::INVD
            | r::VMCALL
            | r::VMCLEAR
            ..=r::VMXON
                | r::INVEPT
                | r::INVVPID
                | r::VMFUNC
                | r::MWAIT
                | r::MONITOR
                | r::RDMSR
                | r::WRMSR
                | r::WBINVD
                | r::XSETBV
    )
}

/// Whether the exit is a string I/O instruction (INS/OUTS), the only I/O exit whose
/// decoding needs the instruction information and the guest's mode (SDM Vol 3C Table
/// 28-5, 28.2.5): an IN or OUT reads neither.
pub fn is_string_io(raw: &RawExit) -> bool {
    raw.reason & reason::BASIC == reason::IO && raw.qualification & io_qual::STRING != 0
}

/// Whether an exit of basic reason `basic` can have interrupted the delivery of an event
/// (and so may have valid IDT-vectoring information to deliver again). An exit caused by
/// executing an instruction cannot: SDM Vol 3C 28.2.4 lists the exits that occur during
/// event delivery (a fault in the exception bitmap, a task switch through a task gate,
/// an APIC access, an EPT violation or misconfiguration, ...), and each instruction exit
/// happens at an instruction boundary. Nor can the trap-like exits of virtual-interrupt
/// delivery, which follow an instruction that completed: an EOI-induced exit (30.1.4)
/// and an APIC-write exit (30.4.3.3; an APIC-page access by event delivery itself is an
/// APIC-access exit, 30.4). Skipping the IDT-vectoring VMREAD for these saves it on the
/// commonest exits.
pub fn may_interrupt_delivery(basic: u32) -> bool {
    use reason as r;
    !matches!(
        basic,
        r::INTERRUPT_WINDOW
            | r::CPUID
            | r::HLT
            | r::INVD
            | r::INVLPG
            | r::RDPMC
            | r::RDTSC
            | r::VMCALL
            ..=r::VMXON
                | r::CR_ACCESS
                | r::DR_ACCESS
                | r::IO
                | r::RDMSR
                | r::WRMSR
                | r::MWAIT
                | r::MONITOR
                | r::PAUSE
                | r::INVEPT
                | r::RDTSCP
                | r::INVVPID
                | r::WBINVD
                | r::XSETBV
                | r::VIRTUALIZED_EOI
                | r::APIC_WRITE
    )
}

/// A failed VM entry (exit reason bit 31, SDM Vol 3C 27.8) as an error; `None` for an
/// exit from a guest that ran.
pub fn entry_failure(raw: &RawExit) -> Option<VcpuError> {
    if raw.reason & reason::ENTRY_FAILURE == 0 {
        return None;
    }
    let what = match raw.reason & reason::BASIC {
        reason::ENTRY_INVALID_GUEST_STATE => "VM entry failed: invalid guest state",
        reason::ENTRY_MSR_LOADING => "VM entry failed: MSR loading",
        reason::ENTRY_MACHINE_CHECK => "VM entry failed: machine-check event",
        _ => "VM entry failed",
    };
    Some(VcpuError {
        what,
        code: raw.qualification,
    })
}

/// Decodes one exit. `gpr` reads guest registers (for MOV to CR), `cr0` is the CR0 the
/// guest sees (for CLTS and LMSW).
///
/// Always inlined into `run`, its one caller: as a call its `VmExit` went back through
/// memory (with `dispatch::advance` inlined too, CPUID 445 -> 380 instructions on
/// corei7_skylake_x, `cargo janus bench exits`).
#[inline(always)]
pub fn decode(raw: &RawExit, mode: ModeInfo, gpr: impl Fn(Gpr) -> u64, cr0: u64) -> VmExit {
    let q = raw.qualification;
    match raw.reason & reason::BASIC {
        reason::EXCEPTION_OR_NMI => exception_or_nmi(raw),
        reason::EXTERNAL_INTERRUPT => VmExit::ExternalInterrupt,
        reason::PREEMPTION_TIMER => VmExit::DeadlineReached,
        reason::TRIPLE_FAULT => VmExit::TripleFault,
        reason::INTERRUPT_WINDOW => VmExit::InterruptWindow,
        reason::CPUID => VmExit::Cpuid,
        reason::HLT => VmExit::Hlt,
        reason::PAUSE => VmExit::Pause,
        reason::INVD => VmExit::Invd,
        reason::VMCALL => VmExit::Hypercall,
        reason::VMCLEAR..=reason::VMXON | reason::INVEPT | reason::INVVPID | reason::VMFUNC => {
            VmExit::VirtInstruction
        }
        reason::CR_ACCESS => cr_access(q, gpr, cr0).unwrap_or(raw_exit(raw)),
        reason::DR_ACCESS => dr_access(q, gpr).unwrap_or(raw_exit(raw)),
        reason::IO => VmExit::Io(io(raw, mode)),
        reason::MWAIT | reason::MONITOR => VmExit::MonitorMwait,
        reason::RDMSR => VmExit::RdMsr,
        reason::WRMSR => VmExit::WrMsr,
        reason::EPT_VIOLATION => VmExit::NestedPageFault {
            gpa: GuestPhys(raw.guest_physical),
            access: NestedAccess {
                read: q & ept_qual::READ != 0,
                write: q & ept_qual::WRITE != 0,
                fetch: q & ept_qual::FETCH != 0,
            },
        },
        reason::WBINVD => VmExit::Wbinvd,
        reason::XSETBV => VmExit::Xsetbv,
        reason::APIC_ACCESS => apic_access(q).unwrap_or(raw_exit(raw)),
        // Trap-like: the EOI or the write has been done in the virtual-APIC page (SDM Vol
        // 3C 30.1.4, 30.5); the qualification is the vector or the page offset.
        reason::VIRTUALIZED_EOI => VmExit::ApicEoi { vector: q as u8 },
        reason::APIC_WRITE => VmExit::ApicWrite {
            offset: (q & apic_qual::OFFSET) as u32,
        },
        _ => raw_exit(raw),
    }
}

/// An APIC-access exit (fault-like: the instruction has not run) of a guest's read or
/// write, as the nested page fault it replaces at the APIC-access page's guest-physical
/// address, which only the local APIC's default page maps ([`APIC_ACCESS_GPA`]); `None`
/// for a fetch or an access during event delivery (left raw).
fn apic_access(q: u64) -> Option<VmExit> {
    let write = match (q >> apic_qual::TYPE_SHIFT) & apic_qual::TYPE_MASK {
        apic_qual::LINEAR_READ => false,
        apic_qual::LINEAR_WRITE => true,
        _ => return None,
    };
    Some(VmExit::NestedPageFault {
        gpa: GuestPhys(APIC_ACCESS_GPA + (q & apic_qual::OFFSET)),
        access: NestedAccess {
            read: !write,
            write,
            fetch: false,
        },
    })
}

fn raw_exit(raw: &RawExit) -> VmExit {
    VmExit::Raw {
        reason: raw.reason as u64,
        info1: raw.qualification,
        info2: raw.guest_physical,
    }
}

/// Exception or NMI: the interruption type and error code (SDM Vol 3C 25.9.2).
fn exception_or_nmi(raw: &RawExit) -> VmExit {
    let i = raw.interruption_info;
    if i & info::TYPE_MASK == info::TYPE_NMI {
        return VmExit::Nmi;
    }
    VmExit::Exception {
        vector: (i & info::VECTOR) as u8,
        error_code: (i & info::DELIVER_ERROR != 0).then_some(raw.interruption_error),
    }
}

/// Control-register access; `None` for a register or GPR number that does not exist.
fn cr_access(q: u64, gpr: impl Fn(Gpr) -> u64, cr0: u64) -> Option<VmExit> {
    let cr = CrTarget::from_number(q & cr_qual::NUMBER)?;
    let reg = Gpr::from_index(((q >> cr_qual::GPR_SHIFT) & 0xf) as u8)?;
    let cr0_write = |value| VmExit::CrWrite {
        cr: CrTarget::Reg(ControlReg::Cr0),
        value,
    };
    Some(match (q >> cr_qual::TYPE_SHIFT) & cr_qual::TYPE_MASK {
        cr_qual::MOV_TO_CR => VmExit::CrWrite {
            cr,
            value: gpr(reg),
        },
        cr_qual::MOV_FROM_CR => VmExit::CrRead { cr, dest: reg },
        cr_qual::CLTS => cr0_write(cr0 & !CR0_TS),
        // LMSW loads CR0 bits 3:0 but cannot clear PE (SDM Vol 2A, LMSW).
        _ => cr0_write((cr0 & !CR0_LMSW_CLEARABLE) | ((q >> cr_qual::LMSW_SOURCE_SHIFT) & 0xf)),
    })
}

/// MOV to or from a debug register; `None` for a GPR number that does not exist.
fn dr_access(q: u64, gpr: impl Fn(Gpr) -> u64) -> Option<VmExit> {
    let dr = (q & dr_qual::NUMBER) as u8;
    let reg = Gpr::from_index(((q >> dr_qual::GPR_SHIFT) & 0xf) as u8)?;
    Some(if q & dr_qual::FROM_DR != 0 {
        VmExit::DrRead { dr, dest: reg }
    } else {
        VmExit::DrWrite {
            dr,
            value: gpr(reg),
        }
    })
}

/// I/O instruction; string I/O's address size and segment come from the instruction
/// information (SDM Vol 3C Table 28-8) where the CPU reports it, else from the mode.
pub(crate) fn io(raw: &RawExit, mode: ModeInfo) -> IoAccess {
    let q = raw.qualification;
    let string = (q & io_qual::STRING != 0).then(|| {
        let i = raw.instruction_info;
        let (addr_size, seg) = if mode.ins_outs_info {
            (
                2u8 << ((i >> 7) & 3),
                SegReg::from_index(((i >> 15) & 7) as u8).unwrap_or(SegReg::Ds),
            )
        } else if mode.long64 {
            (8, SegReg::Ds)
        } else if mode.cs_big {
            (4, SegReg::Ds)
        } else {
            (2, SegReg::Ds)
        };
        StringIo {
            rep: q & io_qual::REP != 0,
            addr_size,
            seg,
        }
    });
    IoAccess {
        port: (q >> io_qual::PORT_SHIFT) as u16,
        size: (q & io_qual::SIZE_MINUS_1) as u8 + 1,
        dir: if q & io_qual::IN != 0 {
            IoDir::In
        } else {
            IoDir::Out
        },
        string,
    }
}

#[cfg(test)]
mod tests;
