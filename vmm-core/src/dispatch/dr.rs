//! MOV to and from debug registers, which both backends make exit so that a guest's
//! debug registers are its own and DR7/DR6 keep their architectural rules
//! ([`crate::cpu_rules::debug_reg`], [`crate::cpu_rules::write_dr`]).

use super::{advance, inject};
use crate::cpu_rules;
use crate::decode::Map;
use crate::fetch::decode_at_rip;
use crate::vcpu::{ArchVcpu, ControlReg, Gpr};
use crate::vm::{GuestEnd, Vm};

/// MOV r, DRn.
pub(super) fn read(vcpu: &mut impl ArchVcpu, vm: &mut Vm, dr: u8, dest: Gpr) -> Option<GuestEnd> {
    match cpu_rules::debug_reg(dr, vcpu.cr(ControlReg::Cr4)) {
        Ok(r) => {
            let v = vcpu.debug_reg(r);
            vcpu.set_gpr(dest, v);
            advance(vcpu, vm)
        }
        Err(ev) => inject(vcpu, ev),
    }
}

/// MOV DRn, r of `value`.
pub(super) fn write(vcpu: &mut impl ArchVcpu, vm: &mut Vm, dr: u8, value: u64) -> Option<GuestEnd> {
    let checked = cpu_rules::debug_reg(dr, vcpu.cr(ControlReg::Cr4))
        .and_then(|r| cpu_rules::write_dr(r, value).map(|v| (r, v)));
    match checked {
        Ok((r, v)) => {
            vcpu.set_debug_reg(r, v);
            advance(vcpu, vm)
        }
        Err(ev) => inject(vcpu, ev),
    }
}

/// A MOV DR whose general register the hardware did not report: decode it at RIP
/// (0F 21 /r reads DRn into ModRM.rm, 0F 23 /r writes it from ModRM.rm).
pub(super) fn undecoded(
    vcpu: &mut impl ArchVcpu,
    vm: &mut Vm,
    dr: u8,
    write_op: bool,
) -> Option<GuestEnd> {
    let opcode = if write_op { 0x23 } else { 0x21 };
    match decode_at_rip(vcpu, &vm.memory) {
        Ok(i) if i.map == Map::Two && i.opcode == opcode => {
            let reg = Gpr::from_index(i.rm()).unwrap_or(Gpr::Rax);
            if write_op {
                let value = vcpu.gpr(reg);
                write(vcpu, vm, dr, value)
            } else {
                read(vcpu, vm, dr, reg)
            }
        }
        _ => Some(GuestEnd::error(format_args!(
            "access to DR{dr} at rip {:#x} by an instruction Janus cannot decode",
            vcpu.rip()
        ))),
    }
}
