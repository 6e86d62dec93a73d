//! MOV to and from control registers that exit: CR0/CR3/CR4 through the vCPU (which
//! applies [`crate::cpu_rules`]), CR8 through [`super::tpr`].

use super::{advance, inject, tpr};
use crate::decode::Map;
use crate::fetch::decode_at_rip;
use crate::vcpu::{ArchVcpu, CrTarget, Gpr};
use crate::vm::{GuestEnd, Vm};

/// MOV r, CRn.
pub(super) fn read(
    vcpu: &mut impl ArchVcpu,
    vm: &mut Vm,
    cr: CrTarget,
    dest: Gpr,
) -> Option<GuestEnd> {
    let v = match cr {
        CrTarget::Cr8 => tpr::read(&vm.platform),
        CrTarget::Reg(r) => vcpu.cr(r),
    };
    vcpu.set_gpr(dest, v);
    advance(vcpu, vm)
}

/// MOV CRn, r (or CLTS/LMSW, whose result the backend computed): `value` is written.
pub(super) fn write(
    vcpu: &mut impl ArchVcpu,
    vm: &mut Vm,
    cr: CrTarget,
    value: u64,
) -> Option<GuestEnd> {
    let r = match cr {
        CrTarget::Cr8 => tpr::write(&mut vm.platform, value),
        CrTarget::Reg(r) => vcpu.set_cr(r, value),
    };
    match r {
        Ok(()) => advance(vcpu, vm),
        Err(ev) => inject(vcpu, ev),
    }
}

/// A MOV to CRn whose source the hardware did not report: decode it at RIP.
pub(super) fn write_undecoded(
    vcpu: &mut impl ArchVcpu,
    vm: &mut Vm,
    cr: CrTarget,
) -> Option<GuestEnd> {
    match decode_at_rip(vcpu, &vm.memory, &mut vm.insn) {
        // MOV CRn, r (0F 22 /r): the source is ModRM.rm.
        Ok(i) if i.map == Map::Two && i.opcode == 0x22 => {
            let value = vcpu.gpr(Gpr::from_index(i.rm()).unwrap_or(Gpr::Rax));
            write(vcpu, vm, cr, value)
        }
        _ => Some(GuestEnd::error(format_args!(
            "write of {cr:?} at rip {:#x} by an instruction Janus cannot decode",
            vcpu.rip()
        ))),
    }
}
