//! IN/OUT and INS/OUTS: port accesses go to the platform's port space; OUTs to COM1
//! reach the VM's console.

use super::{advance, page_fault};
use crate::addr::GuestVirt;
use crate::cpu_rules::rflags;
use crate::exit::{IoAccess, IoDir, StringIo};
use crate::operand::size_mask;
use crate::platform::PlatformEffect;
use crate::vcpu::{ArchVcpu, Gpr, SegReg};
use crate::vm::{GuestEnd, Vm};
use crate::walk::PagingState;
use crate::walk::{self, Access, WalkError};
use core::ops::ControlFlow;

/// At most this many iterations of a REP INS/OUTS per exit; the rest re-executes. Small,
/// so that one exit stays short: an endless REP OUTS must not keep the other guests from
/// the CPU for long (each element costs a page walk and a device access: 4,096 of them
/// took 0.4 s of emulated time under Bochs).
const MAX_STRING_ITERATIONS: u64 = 128;

/// A port I/O exit, plain or string form; or one the backend already made and
/// completed in place ([`crate::in_place::port_io`]) that changed what the dispatcher
/// follows: not made again, its change noted (the exit is not settled) and its effect
/// on the whole VM taken.
pub(super) fn io(vcpu: &mut impl ArchVcpu, vm: &mut Vm, io: IoAccess) -> Option<GuestEnd> {
    if let Some(effect) = vcpu.in_place().take_left() {
        vm.platform.changed();
        return effect_end(effect);
    }
    match io.string {
        None => port_io(vcpu, vm, io),
        Some(s) => string_io(vcpu, vm, io, s),
    }
}

/// IN/OUT with AL/AX/EAX, completed unless it ended the guest.
fn port_io(vcpu: &mut impl ArchVcpu, vm: &mut Vm, io: IoAccess) -> Option<GuestEnd> {
    effect_end(port_access(vcpu, vm, io)).or_else(|| advance(vcpu, vm))
}

/// The access of an IN or OUT with AL/AX/EAX, not its completion: the one way a port
/// access reaches the platform, through the dispatcher or in place
/// ([`crate::in_place::port_io`]). A 32-bit IN zero-extends into RAX; 8- and 16-bit INs
/// keep the upper bits (SDM Vol 1 3.4.1.1). Returns what the OUT did to the whole VM.
#[inline(always)]
pub(crate) fn port_access(vcpu: &mut impl ArchVcpu, vm: &mut Vm, io: IoAccess) -> PlatformEffect {
    let mask = size_mask(io.size);
    match io.dir {
        IoDir::In => {
            let v = port_read(vm, io) as u64;
            let rax = vcpu.gpr(Gpr::Rax);
            let new = if io.size == 4 {
                v
            } else {
                (rax & !mask) | (v & mask)
            };
            vcpu.set_gpr(Gpr::Rax, new);
            PlatformEffect::None
        }
        IoDir::Out => port_write_effect(vm, io, (vcpu.gpr(Gpr::Rax) & mask) as u32),
    }
}

fn port_read(vm: &mut Vm, io: IoAccess) -> u32 {
    let now = vm.now();
    vm.platform.port_read(io.port, io.size, now)
}

/// One OUT; what COM1 transmitted goes to the console, and what the OUT did to the
/// whole VM ends the guest or not.
fn port_write(vm: &mut Vm, io: IoAccess, v: u32) -> Option<GuestEnd> {
    effect_end(port_write_effect(vm, io, v))
}

/// One OUT; what COM1 transmitted goes to the console. What it did to the whole VM.
#[inline(always)]
fn port_write_effect(vm: &mut Vm, io: IoAccess, v: u32) -> PlatformEffect {
    let now = vm.now();
    let effect = vm.platform.port_write(io.port, io.size, v, now);
    vm.drain_console();
    effect
}

/// How a device's effect on the whole VM ends the guest, if it does.
fn effect_end(effect: PlatformEffect) -> Option<GuestEnd> {
    match effect {
        PlatformEffect::Exit(status) => Some(GuestEnd::Exited(status)),
        PlatformEffect::Reset => Some(GuestEnd::Reset),
        PlatformEffect::PowerOff => Some(GuestEnd::PoweredOff),
        PlatformEffect::None => None,
    }
}

/// Where a string I/O instruction's memory operand is, and how it moves.
struct StringOperand {
    index: Gpr,
    base: u64,
    amask: u64,
    step: u64,
    paging: PagingState,
    user: bool,
}

impl StringOperand {
    fn new(vcpu: &impl ArchVcpu, io: IoAccess, s: StringIo) -> Self {
        let (index, seg) = match io.dir {
            IoDir::Out => (Gpr::Rsi, s.seg),
            IoDir::In => (Gpr::Rdi, SegReg::Es),
        };
        let step = if vcpu.rflags() & rflags::DF != 0 {
            (io.size as u64).wrapping_neg()
        } else {
            io.size as u64
        };
        StringOperand {
            index,
            base: vcpu.segment(seg).base,
            amask: size_mask(s.addr_size),
            step,
            paging: vcpu.paging(),
            user: vcpu.cpl() == 3,
        }
    }

    fn access(&self, write: bool) -> Access {
        Access {
            write,
            user: self.user,
            fetch: false,
        }
    }
}

/// INS/OUTS, with or without REP: each element moves between the port and guest memory
/// at the segment base plus rSI/rDI, through the guest's own page tables.
fn string_io(vcpu: &mut impl ArchVcpu, vm: &mut Vm, io: IoAccess, s: StringIo) -> Option<GuestEnd> {
    let op = StringOperand::new(vcpu, io, s);
    let mut count = if s.rep {
        vcpu.gpr(Gpr::Rcx) & op.amask
    } else {
        1
    };
    let mut done = 0;
    while count > 0 && done < MAX_STRING_ITERATIONS {
        if let ControlFlow::Break(end) = string_element(vcpu, vm, io, &op) {
            return end;
        }
        count -= 1;
        done += 1;
        if s.rep {
            let rcx = vcpu.gpr(Gpr::Rcx);
            vcpu.set_gpr(Gpr::Rcx, (rcx & !op.amask) | (count & op.amask));
        }
    }
    if count > 0 {
        // Not finished: re-enter at the same instruction, which carries on from here.
        return None;
    }
    advance(vcpu, vm)
}

/// Moves one element and steps the index register; `Break` stops the instruction with
/// what the dispatcher returns (a fault injected, or the guest's end).
fn string_element(
    vcpu: &mut impl ArchVcpu,
    vm: &mut Vm,
    io: IoAccess,
    op: &StringOperand,
) -> ControlFlow<Option<GuestEnd>> {
    let idx = vcpu.gpr(op.index);
    let la = GuestVirt(op.base.wrapping_add(idx & op.amask));
    let r = match io.dir {
        IoDir::Out => {
            let mut buf = [0u8; 4];
            walk::read_virt(
                &vm.memory,
                &op.paging,
                la,
                &mut buf[..io.size as usize],
                op.access(false),
            )
            .map(|()| u32::from_le_bytes(buf))
        }
        IoDir::In => {
            let v = port_read(vm, io);
            let bytes = &v.to_le_bytes()[..io.size as usize];
            walk::write_virt(&mut vm.memory, &op.paging, la, bytes, op.access(true)).map(|()| v)
        }
    };
    let v = match r {
        Ok(v) => v,
        Err(WalkError::PageFault { gva, error_code }) => {
            return ControlFlow::Break(page_fault(vcpu, gva.0, error_code));
        }
        Err(WalkError::Memory(e)) => {
            return ControlFlow::Break(Some(GuestEnd::error(format_args!(
                "string I/O on port {:#x}: {e}",
                io.port
            ))));
        }
    };
    if io.dir == IoDir::Out {
        if let Some(end) = port_write(vm, io, v) {
            return ControlFlow::Break(Some(end));
        }
    }
    let next = (idx & !op.amask) | (idx.wrapping_add(op.step) & op.amask);
    vcpu.set_gpr(op.index, next);
    ControlFlow::Continue(())
}
