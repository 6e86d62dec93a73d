//! MOV to and from debug registers, which both backends make exit so that a guest's
//! debug registers are its own and DR7/DR6 keep their architectural rules
//! ([`crate::cpu_rules::debug_reg`], [`crate::cpu_rules::write_dr`]).

use super::{advance, inject};
use crate::cpu_rules;
use crate::decode::Map;
use crate::fetch::decode_at_rip;
use crate::vcpu::{ArchVcpu, ControlReg, DebugReg, Event, Gpr};
use crate::vm::{GuestEnd, Vm};

/// The checks a MOV DR makes before it moves anything (SDM Vol 3B 18.2.4, Vol 2B MOV
/// DR): #GP(0) outside CPL 0 and, with DR7.GD set, #DB with DR6.BD set and GD cleared so
/// that the debugger's handler can use the registers. The hardware may make some of them
/// before the exit; making them again here costs nothing and holds on every vendor.
fn refused(vcpu: &mut impl ArchVcpu) -> Option<Event> {
    if vcpu.cpl() != 0 {
        return Some(Event::gp(0));
    }
    let dr7 = vcpu.debug_reg(DebugReg::Dr7);
    if dr7 & cpu_rules::dr::DR7_GD == 0 {
        return None;
    }
    let dr6 = vcpu.debug_reg(DebugReg::Dr6);
    vcpu.set_debug_reg(DebugReg::Dr6, dr6 | cpu_rules::dr::DR6_BD);
    vcpu.set_debug_reg(DebugReg::Dr7, dr7 & !cpu_rules::dr::DR7_GD);
    Some(Event::Exception {
        vector: 1,
        error_code: None,
    })
}

/// MOV r, DRn.
pub(super) fn read(vcpu: &mut impl ArchVcpu, vm: &mut Vm, dr: u8, dest: Gpr) -> Option<GuestEnd> {
    if let Some(ev) = refused(vcpu) {
        return inject(vcpu, ev);
    }
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
    if let Some(ev) = refused(vcpu) {
        return inject(vcpu, ev);
    }
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
    match decode_at_rip(vcpu, &vm.memory, &mut vm.insn) {
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
