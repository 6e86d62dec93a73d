//! The one exit dispatcher, shared by both backends.
//!
//! `run` enters the guest, counts each exit, hands it to the policy for its kind and
//! resumes, until the guest ends. An exit it does not know ends the guest with a reason
//! naming it: nothing is silently ignored or turned into a halt.

use crate::addr::GuestVirt;
use crate::cpuid::guest_cpuid;
use crate::devices::bus::PortEffect;
use crate::exit::{IoAccess, IoDir, StringIo, VmExit};
use crate::hypercall;
use crate::msr;
use crate::vcpu::{ArchVcpu, ControlReg, Event, Gpr, SegReg};
use crate::vm::{GuestEnd, Vm};
use crate::walk::{self, Access, WalkError};

/// At most this many iterations of a REP INS/OUTS per exit; the rest re-executes.
const MAX_STRING_ITERATIONS: u64 = 4096;

/// RFLAGS.IF and RFLAGS.DF (SDM Vol 1 3.4.3).
const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_DF: u64 = 1 << 10;

/// Runs the vCPU until its guest ends, and says how.
pub fn run(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> GuestEnd {
    let end = loop {
        let exit = match vcpu.run() {
            Ok(e) => e,
            Err(e) => break GuestEnd::error(format_args!("VM entry failed: {e}")),
        };
        vm.stats.count(exit.kind());
        if let Some(end) = handle_exit(vcpu, vm, exit) {
            break end;
        }
    };
    vm.flush_console();
    end
}

/// What to do after an exit: `None` resumes the guest, `Some` ends it.
pub fn handle_exit(vcpu: &mut impl ArchVcpu, vm: &mut Vm, exit: VmExit) -> Option<GuestEnd> {
    match exit {
        VmExit::Cpuid => {
            let leaf = vcpu.gpr(Gpr::Rax) as u32;
            let sub = vcpu.gpr(Gpr::Rcx) as u32;
            let r = guest_cpuid(leaf, sub, vm.host.cpuid);
            for (reg, v) in [Gpr::Rax, Gpr::Rbx, Gpr::Rcx, Gpr::Rdx].into_iter().zip(r) {
                vcpu.set_gpr(reg, v as u64);
            }
            advance(vcpu, vm)
        }
        VmExit::Io(io) => match io.string {
            None => port_io(vcpu, vm, io),
            Some(s) => string_io(vcpu, vm, io, s),
        },
        VmExit::RdMsr => {
            let m = vcpu.gpr(Gpr::Rcx) as u32;
            match msr::read(vcpu, m, (vm.host.tsc)()) {
                Ok(v) => {
                    vcpu.set_gpr(Gpr::Rax, v & 0xffff_ffff);
                    vcpu.set_gpr(Gpr::Rdx, v >> 32);
                    advance(vcpu, vm)
                }
                Err(ev) => inject(vcpu, ev),
            }
        }
        VmExit::WrMsr => {
            let m = vcpu.gpr(Gpr::Rcx) as u32;
            let v = (vcpu.gpr(Gpr::Rdx) << 32) | (vcpu.gpr(Gpr::Rax) & 0xffff_ffff);
            match msr::write(vcpu, m, v) {
                Ok(()) => advance(vcpu, vm),
                Err(ev) => inject(vcpu, ev),
            }
        }
        VmExit::Hypercall => match hypercall::handle(vcpu, vm) {
            Some(end) => Some(end),
            None => advance(vcpu, vm),
        },
        VmExit::Hlt => {
            if vcpu.rflags() & RFLAGS_IF == 0 {
                Some(GuestEnd::Halted)
            } else {
                // No device can interrupt a guest yet, so this HLT would never end.
                Some(GuestEnd::error(format_args!(
                    "HLT with interrupts enabled at rip {:#x}, but this VM has no interrupt source yet",
                    vcpu.rip()
                )))
            }
        }
        VmExit::CrRead { cr, dest } => {
            let v = vcpu.cr(cr);
            vcpu.set_gpr(dest, v);
            advance(vcpu, vm)
        }
        VmExit::CrWrite { cr, value } => match vcpu.set_cr(cr, value) {
            Ok(()) => advance(vcpu, vm),
            Err(ev) => inject(vcpu, ev),
        },
        // Cache control has no effect on emulated memory; the guest's caches are ours.
        VmExit::Invd | VmExit::Wbinvd => advance(vcpu, vm),
        // XSAVE is hidden in CPUID and CR4.OSXSAVE cannot be set, so XSETBV is #UD as on
        // a CPU without XSAVE (SDM Vol 2C, XSETBV).
        VmExit::Xsetbv => inject(vcpu, Event::UD),
        // No nested virtualization: the instructions fault as on a CPU without VMX/SVM.
        VmExit::VirtInstruction => inject(vcpu, Event::UD),
        VmExit::TripleFault => Some(GuestEnd::TripleFault),
        // The host took its interrupt or NMI, or had a reason to look: just go on.
        VmExit::ExternalInterrupt | VmExit::Nmi | VmExit::InterruptWindow | VmExit::Preempted => None,
        VmExit::NestedPageFault { gpa, access } => Some(GuestEnd::error(format_args!(
            "{} of guest-physical {:#x} at rip {:#x}: no RAM or device there",
            if access.fetch { "instruction fetch" } else if access.write { "write" } else { "read" },
            gpa.0,
            vcpu.rip()
        ))),
        VmExit::Exception { vector, error_code } => Some(GuestEnd::error(format_args!(
            "unexpected intercepted exception {vector} (error code {error_code:?}) at rip {:#x}",
            vcpu.rip()
        ))),
        VmExit::Raw { reason, info1, info2 } => Some(GuestEnd::error(format_args!(
            "unsupported exit: reason {reason:#x}, info {info1:#x} {info2:#x}, at rip {:#x}",
            vcpu.rip()
        ))),
    }
}

fn advance(vcpu: &mut impl ArchVcpu, vm: &Vm) -> Option<GuestEnd> {
    match vcpu.advance_rip(&vm.memory) {
        Ok(()) => None,
        Err(e) => Some(GuestEnd::error(format_args!("cannot find the next instruction: {e}"))),
    }
}

fn inject(vcpu: &mut impl ArchVcpu, ev: Event) -> Option<GuestEnd> {
    vcpu.inject(ev);
    None
}

fn size_mask(size: u8) -> u64 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// IN/OUT with AL/AX/EAX. A 32-bit IN zero-extends into RAX; 8- and 16-bit INs keep the
/// upper bits (SDM Vol 1 3.4.1.1).
fn port_io(vcpu: &mut impl ArchVcpu, vm: &mut Vm, io: IoAccess) -> Option<GuestEnd> {
    let mask = size_mask(io.size);
    match io.dir {
        IoDir::In => {
            let v = vm.ports.read(io.port, io.size) as u64;
            let rax = vcpu.gpr(Gpr::Rax);
            let new = if io.size == 4 { v } else { (rax & !mask) | (v & mask) };
            vcpu.set_gpr(Gpr::Rax, new);
        }
        IoDir::Out => {
            let v = (vcpu.gpr(Gpr::Rax) & mask) as u32;
            if let Some(end) = port_write(vm, io.port, io.size, v) {
                return Some(end);
            }
        }
    }
    advance(vcpu, vm)
}

fn port_write(vm: &mut Vm, port: u16, size: u8, v: u32) -> Option<GuestEnd> {
    let mut out = [0u8; 4];
    let mut n = 0;
    let effect = vm.ports.write(port, size, v, &mut |b| {
        out[n] = b;
        n += 1;
    });
    for &b in &out[..n] {
        vm.console_byte(b);
    }
    match effect {
        PortEffect::Exit(status) => Some(GuestEnd::Exited(status)),
        PortEffect::None => None,
    }
}

/// INS/OUTS, with or without REP: each element moves between the port and guest memory
/// at the segment base plus rSI/rDI, through the guest's own page tables.
fn string_io(vcpu: &mut impl ArchVcpu, vm: &mut Vm, io: IoAccess, s: StringIo) -> Option<GuestEnd> {
    let amask = size_mask(s.addr_size);
    let (index, seg) = match io.dir {
        IoDir::Out => (Gpr::Rsi, s.seg),
        IoDir::In => (Gpr::Rdi, SegReg::Es),
    };
    let base = vcpu.segment(seg).base;
    let step = if vcpu.rflags() & RFLAGS_DF != 0 { (io.size as u64).wrapping_neg() } else { io.size as u64 };
    let paging = vcpu.paging();
    let user = vcpu.cpl() == 3;
    let mut count = if s.rep { vcpu.gpr(Gpr::Rcx) & amask } else { 1 };
    let mut done = 0;
    while count > 0 && done < MAX_STRING_ITERATIONS {
        let idx = vcpu.gpr(index);
        let la = GuestVirt(base.wrapping_add(idx & amask));
        let mut buf = [0u8; 4];
        let data = &mut buf[..io.size as usize];
        let r = match io.dir {
            IoDir::Out => walk::read_virt(&vm.memory, &paging, la, data, Access { write: false, user, fetch: false })
                .map(|()| u32::from_le_bytes(buf)),
            IoDir::In => {
                let v = vm.ports.read(io.port, io.size);
                walk::write_virt(&mut vm.memory, &paging, la, &v.to_le_bytes()[..io.size as usize]).map(|()| v)
            }
        };
        let v = match r {
            Ok(v) => v,
            Err(WalkError::PageFault { gva, error_code }) => {
                let _ = vcpu.set_cr(ControlReg::Cr2, gva.0);
                return inject(vcpu, Event::page_fault(error_code));
            }
            Err(WalkError::Memory(e)) => {
                return Some(GuestEnd::error(format_args!("string I/O on port {:#x}: {e}", io.port)));
            }
        };
        if io.dir == IoDir::Out {
            if let Some(end) = port_write(vm, io.port, io.size, v) {
                return Some(end);
            }
        }
        vcpu.set_gpr(index, (idx & !amask) | (idx.wrapping_add(step) & amask));
        count -= 1;
        done += 1;
        if s.rep {
            let rcx = vcpu.gpr(Gpr::Rcx);
            vcpu.set_gpr(Gpr::Rcx, (rcx & !amask) | (count & amask));
        }
    }
    if count > 0 {
        // Not finished: re-enter at the same instruction, which carries on from here.
        return None;
    }
    advance(vcpu, vm)
}
