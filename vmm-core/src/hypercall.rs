//! The hypercall ABI (docs/hypercalls.md), the same for VMCALL and VMMCALL.

use crate::addr::GuestPhys;
use crate::vcpu::{ArchVcpu, Gpr};
use crate::vm::{GuestEnd, Vm};

pub const VERSION: u64 = 0;
pub const EXIT: u64 = 1;
pub const CONSOLE_WRITE: u64 = 2;
pub const EXIT_COUNT: u64 = 3;
pub const STEAL_TIME: u64 = 4;

pub const ENOSYS: u64 = -1i64 as u64;
pub const EPERM: u64 = -2i64 as u64;
pub const EFAULT: u64 = -3i64 as u64;
pub const EINVAL: u64 = -4i64 as u64;

pub const CONSOLE_WRITE_MAX: u64 = 4096;

/// Carries out the hypercall in the guest's registers. `Some` ends the guest. Inlined
/// into the dispatcher's loop: as a call, 13 instructions more per hypercall on ryzen.
#[inline(always)]
pub fn handle(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    let nr = vcpu.gpr(Gpr::Rax);
    if vcpu.cpl() != 0 {
        vcpu.set_gpr(Gpr::Rax, EPERM);
        return None;
    }
    let rbx = vcpu.gpr(Gpr::Rbx);
    let rcx = vcpu.gpr(Gpr::Rcx);
    let result = match nr {
        VERSION => {
            vcpu.set_gpr(Gpr::Rbx, crate::cpuid::ABI_VERSION as u64);
            0
        }
        EXIT => return Some(GuestEnd::Exited(rbx as u32)),
        CONSOLE_WRITE => console_write(vm, GuestPhys(rbx), rcx),
        EXIT_COUNT => {
            crate::dispatch::count_in_place(vcpu, vm);
            vcpu.set_gpr(Gpr::Rbx, vm.stats.total());
            0
        }
        STEAL_TIME => {
            vcpu.set_gpr(Gpr::Rbx, vm.steal.ns);
            vcpu.set_gpr(Gpr::Rcx, vm.steal.count);
            0
        }
        _ => ENOSYS,
    };
    vcpu.set_gpr(Gpr::Rax, result);
    None
}

/// Out of line: its buffer (a page, probed on the stack) stays out of the frame of the
/// hypercall handler, which the dispatcher's loop can then inline.
#[inline(never)]
fn console_write(vm: &mut Vm, gpa: GuestPhys, len: u64) -> u64 {
    if len > CONSOLE_WRITE_MAX {
        return EINVAL;
    }
    let mut buf = [0u8; CONSOLE_WRITE_MAX as usize];
    let buf = &mut buf[..len as usize];
    if vm.memory.read(gpa, buf).is_err() {
        return EFAULT;
    }
    // The bytes the console took: fewer when this guest's share of the host console is
    // full (the guest writes the rest again later).
    buf.iter().take_while(|&&b| vm.console_byte(b)).count() as u64
}
