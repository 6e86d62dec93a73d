//! SVM exit codes (APM Vol 2 Appendix C) turned into the core's `VmExit`.

use crate::vmcb::exit_code::{self as code, ioio, mov_info, msr, npf};
use vmm_core::addr::GuestPhys;
use vmm_core::exit::{IoAccess, IoDir, NestedAccess, StringIo, VmExit};
use vmm_core::vcpu::{CrTarget, Gpr, SegReg};

/// Decodes one #VMEXIT from EXITCODE, EXITINFO1 and EXITINFO2. `gpr` reads guest
/// registers (for CR and DR writes reported with decode assists).
/// `decode_assists`: the CPU has them (CPUID 0x8000_000A EDX bit 7), so EXITINFO1 names
/// the segment of a string I/O instruction. Out of line: inlined into `run` (and the
/// dispatcher's loop with it), the exit it builds was copied about the stack: 3
/// instructions more per hypercall on ryzen.
#[inline(never)]
pub fn decode(
    exit: u64,
    info1: u64,
    info2: u64,
    decode_assists: bool,
    gpr: impl Fn(Gpr) -> u64,
) -> VmExit {
    let raw = VmExit::Raw {
        reason: exit,
        info1,
        info2,
    };
    // The ranges first, in one test: the commonest exits (CPUID, IOIO, MSR, VMMCALL, HLT,
    // INTR, NPF) then go straight to the jump table of the rest.
    if exit <= code::EXCP_LAST {
        return access_or_exception(exit, info1, gpr).unwrap_or(raw);
    }
    match exit {
        code::INTR => VmExit::ExternalInterrupt,
        code::NMI => VmExit::Nmi,
        // A physical SMI or INIT, intercepted so that it reaches the host (APM Vol 2 15.13),
        // which has taken it by now.
        code::SMI | code::INIT => VmExit::HostSignal,
        code::VINTR => VmExit::InterruptWindow,
        code::CPUID => VmExit::Cpuid,
        code::INVD => VmExit::Invd,
        code::HLT => VmExit::Hlt,
        code::PAUSE => VmExit::Pause,
        code::IOIO => VmExit::Io(io_access(info1, decode_assists)),
        code::MSR if info1 == msr::READ => VmExit::RdMsr,
        code::MSR => VmExit::WrMsr,
        code::SHUTDOWN => VmExit::TripleFault,
        // VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA.
        code::VMRUN | code::VMLOAD..=code::SKINIT | code::INVLPGA => VmExit::VirtInstruction,
        code::VMMCALL => VmExit::Hypercall,
        code::WBINVD => VmExit::Wbinvd,
        // MONITOR(X), MWAIT(X), MWAIT conditional.
        code::MONITOR..=code::MWAIT_CONDITIONAL => VmExit::MonitorMwait,
        code::XSETBV => VmExit::Xsetbv,
        // Nested page fault: EXITINFO2 is the GPA (APM Vol 2 15.25.6).
        code::NPF => VmExit::NestedPageFault {
            gpa: GuestPhys(info2),
            access: NestedAccess {
                read: info1 & (npf::WRITE | npf::FETCH) == 0,
                write: info1 & npf::WRITE != 0,
                fetch: info1 & npf::FETCH != 0,
            },
        },
        _ => raw,
    }
}

/// A CR or DR access, or an intercepted exception: the exit codes 0x00-0x5F.
fn access_or_exception(exit: u64, info1: u64, gpr: impl Fn(Gpr) -> u64) -> Option<VmExit> {
    match exit {
        code::CR_READ..=code::CR_WRITE_LAST => cr_access(exit, info1, gpr),
        code::DR_READ..=code::DR_WRITE_LAST => dr_access(exit, info1, gpr),
        _ => {
            let vector = (exit - code::EXCP_BASE) as u8;
            Some(VmExit::Exception {
                vector,
                // For intercepted exceptions that push one, EXITINFO1 holds the error
                // code (APM Vol 2 15.12). An intercepted #DB has already updated DR6 and
                // DR7 in the VMCB as its delivery would have (APM Vol 2 15.12.2), so the
                // core reflects it as it is.
                error_code: pushes_error_code(vector).then_some(info1 as u32),
            })
        }
    }
}

/// Whether exception `vector` pushes an error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC,
/// #CP, #VC, #SX (APM Vol 2 8.2, Table 8-1).
const fn pushes_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// A CR read or write; the GPR is known only with decode assists (APM Vol 2 15.33.1), so
/// a write without them is left to the core to decode, and a read is not decoded.
fn cr_access(exit: u64, info1: u64, gpr: impl Fn(Gpr) -> u64) -> Option<VmExit> {
    let write = exit >= code::CR_WRITE;
    let cr = CrTarget::from_number(exit & code::CR_READ_LAST)?;
    if info1 & mov_info::MOV == 0 {
        return write.then_some(VmExit::CrWriteUndecoded { cr });
    }
    let reg = mov_gpr(info1)?;
    Some(if write {
        VmExit::CrWrite {
            cr,
            value: gpr(reg),
        }
    } else {
        VmExit::CrRead { cr, dest: reg }
    })
}

/// A MOV to or from DR0-DR7 (DR8-DR15 raise #UD and never exit); the GPR is known only
/// with decode assists (APM Vol 2 15.33.1), else the core decodes the instruction.
fn dr_access(exit: u64, info1: u64, gpr: impl Fn(Gpr) -> u64) -> Option<VmExit> {
    let write = exit >= code::DR_WRITE;
    let dr = ((exit - code::DR_READ) % 16) as u8;
    if dr > 7 {
        return None;
    }
    if info1 & mov_info::MOV == 0 {
        return Some(VmExit::DrAccessUndecoded { dr, write });
    }
    let reg = mov_gpr(info1)?;
    Some(if write {
        VmExit::DrWrite {
            dr,
            value: gpr(reg),
        }
    } else {
        VmExit::DrRead { dr, dest: reg }
    })
}

/// The general register a decoded MOV CR/DR names.
fn mov_gpr(info1: u64) -> Option<Gpr> {
    Gpr::from_index((info1 & mov_info::GPR) as u8)
}

/// An IOIO exit's EXITINFO1 (APM Vol 2 15.10.2, Figure 15-2).
pub(crate) fn io_access(info1: u64, decode_assists: bool) -> IoAccess {
    let size = if info1 & ioio::SZ8 != 0 {
        1
    } else if info1 & ioio::SZ16 != 0 {
        2
    } else {
        4
    };
    let string = (info1 & ioio::STR != 0).then(|| StringIo {
        rep: info1 & ioio::REP != 0,
        addr_size: if info1 & ioio::A16 != 0 {
            2
        } else if info1 & ioio::A32 != 0 {
            4
        } else {
            8
        },
        // Bits 12:10 hold the segment only with decode assists (without them they read
        // 0, which would say ES): OUTS reads DS:rSI then, as without a segment override.
        seg: if decode_assists {
            SegReg::from_index(((info1 >> ioio::SEG_SHIFT) & ioio::SEG_MASK) as u8)
                .unwrap_or(SegReg::Ds)
        } else {
            SegReg::Ds
        },
    });
    IoAccess {
        port: (info1 >> ioio::PORT_SHIFT) as u16,
        size,
        dir: if info1 & ioio::TYPE_IN != 0 {
            IoDir::In
        } else {
            IoDir::Out
        },
        string,
    }
}

#[cfg(test)]
mod tests;
