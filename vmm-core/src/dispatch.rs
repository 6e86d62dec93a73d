//! The one exit dispatcher, shared by both backends.
//!
//! `run` enters the guest, counts each exit, hands it to the policy for its kind and
//! resumes, until the guest ends. An exit it does not know ends the guest with a reason
//! naming it: nothing is silently ignored or turned into a halt.

use crate::addr::GuestVirt;
use crate::cpuid::guest_cpuid;
use crate::exit::{IoAccess, IoDir, StringIo, VmExit};
use crate::hypercall;
use crate::mmio::{self, MmioOutcome};
use crate::msr;
use crate::platform::mmio::DeviceMemory;
use crate::platform::PlatformEffect;
use crate::vcpu::{ArchVcpu, ControlReg, CrTarget, Event, Gpr, SegReg, StateMsr};
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
        let now = vm.now();
        vm.platform.update(now);
        offer_interrupt(vcpu, vm);
        arm_host_timer(vm);
        vcpu.set_tpr_shadow(vm.platform.lapic.tpr() >> 4);
        (vm.host.service)();
        let exit = match vcpu.run() {
            Ok(e) => e,
            Err(e) => break GuestEnd::error(format_args!("VM entry failed: {e}")),
        };
        vm.stats.count(exit.kind());
        // A MOV to CR8 that did not exit changed the priority class only (CR8 is TPR[7:4]).
        if let Some(cr8) = vcpu.tpr_shadow() {
            if vm.platform.lapic.tpr() >> 4 != cr8 {
                vm.platform.lapic.set_tpr(cr8 << 4);
            }
        }
        if let Some(end) = handle_exit(vcpu, vm, exit) {
            break end;
        }
    };
    (vm.host.arm_timer)(None);
    vm.armed = None;
    vm.flush_console();
    end
}

/// Injects the interrupt the platform has for the vCPU if the guest can take it now,
/// or asks for an exit as soon as it can.
fn offer_interrupt(vcpu: &mut impl ArchVcpu, vm: &mut Vm) {
    if vm.platform.nmi_pending {
        if vcpu.nmi_open() {
            vm.platform.nmi_pending = false;
            vcpu.inject(Event::Nmi);
            vcpu.request_interrupt_window(vm.platform.interrupt_pending());
        } else {
            vcpu.request_interrupt_window(true);
        }
        return;
    }
    if !vm.platform.interrupt_pending() {
        vcpu.request_interrupt_window(false);
        return;
    }
    if vcpu.interrupts_open() {
        if let Some(v) = vm.platform.acknowledge_interrupt() {
            vcpu.inject(Event::Interrupt(v));
        }
        vcpu.request_interrupt_window(false);
    } else {
        vcpu.request_interrupt_window(true);
    }
}

/// Arms the host timer for the platform's next event, so that a guest that never exits
/// on its own still gets its timer interrupts.
fn arm_host_timer(vm: &mut Vm) {
    let now = vm.now();
    let next = vm.platform.next_event_ns(now);
    if next != vm.armed {
        vm.armed = next;
        (vm.host.arm_timer)(next.map(|t| t.saturating_sub(now.ns)));
    }
}

/// HLT with interrupts enabled: sleep until a device has an interrupt for the guest.
fn halt(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    if let Some(end) = advance(vcpu, vm) {
        return Some(end);
    }
    loop {
        let now = vm.now();
        vm.platform.update(now);
        if vm.platform.interrupt_pending() || vm.platform.nmi_pending {
            return None;
        }
        if vm.platform.next_event_ns(now).is_none() {
            return Some(GuestEnd::error(format_args!(
                "HLT at rip {:#x} with no timer armed and no interrupt pending: it would sleep forever",
                vcpu.rip().wrapping_sub(1)
            )));
        }
        arm_host_timer(vm);
        (vm.host.idle)();
        vm.armed = None;
    }
}

/// What to do after an exit: `None` resumes the guest, `Some` ends it.
pub fn handle_exit(vcpu: &mut impl ArchVcpu, vm: &mut Vm, exit: VmExit) -> Option<GuestEnd> {
    match exit {
        VmExit::Cpuid => {
            let leaf = vcpu.gpr(Gpr::Rax) as u32;
            let sub = vcpu.gpr(Gpr::Rcx) as u32;
            let tsc_khz = ((vm.host.tsc_hz)() / 1000) as u32;
            let r = guest_cpuid(leaf, sub, tsc_khz, vm.host.cpuid);
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
            let now = vm.now();
            let r = match vm.platform.read_msr(m, now) {
                Some(r) => r,
                None => msr::read(vcpu, m, now.tsc.wrapping_add(vm.tsc_offset)),
            };
            match r {
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
            let now = vm.now();
            let r = if m == msr::IA32_TSC {
                // The guest's TSC becomes `v` now and runs on with the host's.
                vm.tsc_offset = v.wrapping_sub(now.tsc);
                vcpu.set_tsc_offset(vm.tsc_offset);
                Ok(())
            } else {
                match vm.platform.write_msr(m, v, now) {
                    Some(r) => r,
                    None => msr::write(vcpu, m, v),
                }
            };
            match r {
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
                halt(vcpu, vm)
            }
        }
        VmExit::CrRead { cr, dest } => {
            let v = match cr {
                CrTarget::Cr8 => (vm.platform.lapic.tpr() >> 4) as u64,
                CrTarget::Reg(r) => vcpu.cr(r),
            };
            vcpu.set_gpr(dest, v);
            advance(vcpu, vm)
        }
        VmExit::CrWriteUndecoded { cr } => match crate::fetch::decode_at_rip(vcpu, &vm.memory) {
            // MOV CRn, r (0F 22 /r): the source is ModRM.rm.
            Ok(i) if i.map == crate::decode::Map::Two && i.opcode == 0x22 => {
                let value = vcpu.gpr(Gpr::from_index(i.rm()).unwrap_or(Gpr::Rax));
                handle_exit(vcpu, vm, VmExit::CrWrite { cr, value })
            }
            _ => Some(GuestEnd::error(format_args!(
                "write of {cr:?} at rip {:#x} by an instruction Janus cannot decode",
                vcpu.rip()
            ))),
        },
        VmExit::CrWrite {
            cr: CrTarget::Cr8,
            value,
        } => {
            if value > 15 {
                return inject(vcpu, Event::gp(0));
            }
            vm.platform.lapic.set_tpr((value as u8) << 4);
            advance(vcpu, vm)
        }
        VmExit::CrWrite {
            cr: CrTarget::Reg(cr),
            value,
        } => match vcpu.set_cr(cr, value) {
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
        // CPUID hides MONITOR/MWAIT and MONITORX/MWAITX: #UD, as on a CPU without them.
        VmExit::MonitorMwait => inject(vcpu, Event::UD),
        VmExit::TripleFault => {
            // What an OS developer needs to find the fault: where, and in which mode.
            let cs = vcpu.segment(SegReg::Cs);
            vm.say(format_args!(
                "triple fault at rip {:#x} (cs {:#x} attr {:#x}) rsp {:#x} rflags {:#x} cr0 {:#x} cr2 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x}",
                vcpu.rip(),
                cs.selector,
                cs.attr,
                vcpu.gpr(Gpr::Rsp),
                vcpu.rflags(),
                vcpu.cr(ControlReg::Cr0),
                vcpu.cr(ControlReg::Cr2),
                vcpu.cr(ControlReg::Cr3),
                vcpu.cr(ControlReg::Cr4),
                vcpu.state_msr(StateMsr::Efer)
            ));
            Some(GuestEnd::TripleFault)
        }
        // A host interrupt (Janus' timer) made the guest exit: take it and go on; the
        // loop then updates the devices and offers their interrupts.
        VmExit::ExternalInterrupt => {
            (vm.host.take_interrupts)();
            // The one-shot host timer may have fired (a little early, with rounding): arm
            // it again for whatever is due next.
            vm.armed = None;
            None
        }
        VmExit::Nmi | VmExit::InterruptWindow => None,
        VmExit::NestedPageFault { gpa, access } => {
            if access.fetch {
                return Some(GuestEnd::error(format_args!(
                    "instruction fetch from guest-physical {:#x} at rip {:#x}: no RAM there",
                    gpa.0,
                    vcpu.rip()
                )));
            }
            let now = vm.now();
            let mut dev = DeviceMemory {
                platform: &mut vm.platform,
                now,
            };
            match mmio::emulate(vcpu, &mut vm.memory, gpa, &mut dev) {
                Ok(MmioOutcome::Done) => None,
                Ok(MmioOutcome::PageFault { gva, error_code }) => {
                    let _ = vcpu.set_cr(ControlReg::Cr2, gva.0);
                    inject(vcpu, Event::page_fault(error_code))
                }
                Err(e) => Some(GuestEnd::error(format_args!(
                    "{} of guest-physical {:#x} at rip {:#x}: {e}",
                    if access.write { "write" } else { "read" },
                    gpa.0,
                    vcpu.rip()
                ))),
            }
        }
        VmExit::Exception { vector, error_code } => Some(GuestEnd::error(format_args!(
            "unexpected intercepted exception {vector} (error code {error_code:?}) at rip {:#x}",
            vcpu.rip()
        ))),
        VmExit::Raw {
            reason,
            info1,
            info2,
        } => Some(GuestEnd::error(format_args!(
            "unsupported exit: reason {reason:#x}, info {info1:#x} {info2:#x}, at rip {:#x}",
            vcpu.rip()
        ))),
    }
}

fn advance(vcpu: &mut impl ArchVcpu, vm: &Vm) -> Option<GuestEnd> {
    match vcpu.next_rip(&vm.memory) {
        Ok(next) => {
            vcpu.retire(next);
            None
        }
        Err(e) => Some(GuestEnd::error(format_args!(
            "cannot find the next instruction: {e}"
        ))),
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
            let now = vm.now();
            let v = vm.platform.port_read(io.port, io.size, now) as u64;
            let rax = vcpu.gpr(Gpr::Rax);
            let new = if io.size == 4 {
                v
            } else {
                (rax & !mask) | (v & mask)
            };
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
    let now = vm.now();
    let effect = vm.platform.port_write(port, size, v, now, &mut |b| {
        out[n] = b;
        n += 1;
    });
    for &b in &out[..n] {
        vm.console_byte(b);
    }
    match effect {
        PlatformEffect::Exit(status) => Some(GuestEnd::Exited(status)),
        PlatformEffect::Reset => Some(GuestEnd::Reset),
        PlatformEffect::PowerOff => Some(GuestEnd::PoweredOff),
        PlatformEffect::None => None,
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
    let step = if vcpu.rflags() & RFLAGS_DF != 0 {
        (io.size as u64).wrapping_neg()
    } else {
        io.size as u64
    };
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
            IoDir::Out => walk::read_virt(
                &vm.memory,
                &paging,
                la,
                data,
                Access {
                    write: false,
                    user,
                    fetch: false,
                },
            )
            .map(|()| u32::from_le_bytes(buf)),
            IoDir::In => {
                let now = vm.now();
                let v = vm.platform.port_read(io.port, io.size, now);
                walk::write_virt(
                    &mut vm.memory,
                    &paging,
                    la,
                    &v.to_le_bytes()[..io.size as usize],
                    Access {
                        write: true,
                        user,
                        fetch: false,
                    },
                )
                .map(|()| v)
            }
        };
        let v = match r {
            Ok(v) => v,
            Err(WalkError::PageFault { gva, error_code }) => {
                let _ = vcpu.set_cr(ControlReg::Cr2, gva.0);
                return inject(vcpu, Event::page_fault(error_code));
            }
            Err(WalkError::Memory(e)) => {
                return Some(GuestEnd::error(format_args!(
                    "string I/O on port {:#x}: {e}",
                    io.port
                )));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::GuestPhys;
    use crate::exit::NestedAccess;
    use crate::hypercall::{EFAULT, ENOSYS, EPERM};
    use crate::memory::testing::ram;
    use crate::mock::{take_output, vm, MockVcpu};
    extern crate std;
    use std::vec;

    fn out(port: u16, size: u8) -> VmExit {
        VmExit::Io(IoAccess {
            port,
            size,
            dir: IoDir::Out,
            string: None,
        })
    }
    fn inp(port: u16, size: u8) -> VmExit {
        VmExit::Io(IoAccess {
            port,
            size,
            dir: IoDir::In,
            string: None,
        })
    }

    #[test]
    fn com1_output_becomes_prefixed_lines_and_debug_exit_ends_the_guest() {
        let mut v = MockVcpu::new(&[out(0x3f8, 1), out(0x3f8, 1), out(0x3f8, 1), out(0xf4, 4)]);
        let mut m = vm(ram(1 << 20));
        let seq = [b'h', b'i', b'\n'];
        // Each OUT sends the byte in AL at the time of its exit: feed them one by one.
        for &b in &seq {
            v.regs[0] = b as u64;
            let e = v.exits.pop_front().unwrap();
            assert_eq!(handle_exit(&mut v, &mut m, e), None);
        }
        v.regs[0] = 3;
        assert_eq!(run(&mut v, &mut m), GuestEnd::Exited(3));
        assert_eq!(take_output(), "[t] hi\n");
        assert_eq!(v.rip, 0x10_0000 + 3 * 2);
    }

    #[test]
    fn in_from_an_unclaimed_port_reads_all_ones_with_x86_register_semantics() {
        let mut v = MockVcpu::new(&[]);
        let mut m = vm(ram(1 << 20));
        v.regs[0] = 0x1122_3344_5566_7788;
        assert_eq!(handle_exit(&mut v, &mut m, inp(0x510, 1)), None);
        assert_eq!(
            v.reg(Gpr::Rax),
            0x1122_3344_5566_77ff,
            "8-bit IN keeps the upper bits"
        );
        assert_eq!(handle_exit(&mut v, &mut m, inp(0x510, 4)), None);
        assert_eq!(v.reg(Gpr::Rax), 0xffff_ffff, "32-bit IN zero-extends");
    }

    #[test]
    fn rep_outsb_reads_guest_memory_and_updates_rsi_and_rcx() {
        let mut v = MockVcpu::new(&[]);
        let mut mem = ram(1 << 20);
        mem.write(GuestPhys(0x1000), b"abc\n").unwrap();
        let mut m = vm(mem);
        v.regs[Gpr::Rsi as usize] = 0x1000;
        v.regs[Gpr::Rcx as usize] = 4;
        let e = VmExit::Io(IoAccess {
            port: 0x3f8,
            size: 1,
            dir: IoDir::Out,
            string: Some(StringIo {
                rep: true,
                addr_size: 4,
                seg: SegReg::Ds,
            }),
        });
        assert_eq!(handle_exit(&mut v, &mut m, e), None);
        assert_eq!(take_output(), "[t] abc\n");
        assert_eq!((v.reg(Gpr::Rsi), v.reg(Gpr::Rcx)), (0x1004, 0));
        assert_eq!(v.rip, 0x10_0002);
    }

    #[test]
    fn rep_insb_fills_guest_memory_and_honours_the_direction_flag() {
        let mut v = MockVcpu::new(&[]);
        let mut m = vm(ram(1 << 20));
        v.regs[Gpr::Rdi as usize] = 0x2000;
        v.regs[Gpr::Rcx as usize] = 16;
        let e = VmExit::Io(IoAccess {
            port: 0x510,
            size: 1,
            dir: IoDir::In,
            string: Some(StringIo {
                rep: true,
                addr_size: 8,
                seg: SegReg::Ds,
            }),
        });
        assert_eq!(handle_exit(&mut v, &mut m, e), None);
        assert_eq!(
            m.memory.slice(GuestPhys(0x2000), 17).unwrap(),
            &[[0xffu8; 16].as_slice(), &[0]].concat()[..]
        );
        assert_eq!((v.reg(Gpr::Rdi), v.reg(Gpr::Rcx)), (0x2010, 0));
        // DF=1: backwards, 2 words.
        v.rflags |= 1 << 10;
        v.regs[Gpr::Rdi as usize] = 0x3002;
        v.regs[Gpr::Rcx as usize] = 2;
        let e = VmExit::Io(IoAccess {
            port: 0x510,
            size: 2,
            dir: IoDir::In,
            string: Some(StringIo {
                rep: true,
                addr_size: 8,
                seg: SegReg::Ds,
            }),
        });
        assert_eq!(handle_exit(&mut v, &mut m, e), None);
        assert_eq!(v.reg(Gpr::Rdi), 0x2ffe);
        assert_eq!(m.memory.read_u32(GuestPhys(0x3000)).unwrap(), 0xffff_ffff);
    }

    #[test]
    fn string_io_through_unmapped_guest_pages_injects_a_page_fault() {
        let mut v = MockVcpu::new(&[]);
        let mut m = vm(ram(1 << 20));
        // Long mode with an empty PML4 at 0x5000: nothing is mapped.
        v.cr0 = 0x8000_0011;
        v.cr4 = 0x20;
        v.cr3 = 0x5000;
        v.efer = 0x500;
        v.regs[Gpr::Rsi as usize] = 0x40_0000;
        v.regs[Gpr::Rcx as usize] = 1;
        let e = VmExit::Io(IoAccess {
            port: 0x3f8,
            size: 1,
            dir: IoDir::Out,
            string: Some(StringIo {
                rep: false,
                addr_size: 8,
                seg: SegReg::Ds,
            }),
        });
        assert_eq!(handle_exit(&mut v, &mut m, e), None);
        assert!(
            matches!(v.injected[..], [Event::Exception { vector: 14, .. }]),
            "{:?}",
            v.injected
        );
        assert_eq!(v.cr2, 0x40_0000);
        assert_eq!(v.rip, 0x10_0000, "the faulting instruction is not skipped");
    }

    #[test]
    fn hypercalls_follow_the_documented_abi() {
        let mut v = MockVcpu::new(&[]);
        let mut mem = ram(1 << 20);
        mem.write(GuestPhys(0x800), b"hello\n").unwrap();
        let mut m = vm(mem);
        let call = |v: &mut MockVcpu, m: &mut Vm, rax: u64, rbx: u64, rcx: u64| {
            v.regs[Gpr::Rax as usize] = rax;
            v.regs[Gpr::Rbx as usize] = rbx;
            v.regs[Gpr::Rcx as usize] = rcx;
            handle_exit(v, m, VmExit::Hypercall)
        };
        assert_eq!(call(&mut v, &mut m, 0, 0, 0), None);
        assert_eq!((v.reg(Gpr::Rax), v.reg(Gpr::Rbx)), (0, 1));
        call(&mut v, &mut m, 0x7777, 0, 0);
        assert_eq!(v.reg(Gpr::Rax), ENOSYS);
        call(&mut v, &mut m, 2, 0x800, 6);
        assert_eq!(v.reg(Gpr::Rax), 6);
        assert_eq!(take_output(), "[t] hello\n");
        call(&mut v, &mut m, 2, 0xffff_f000_0000, 6);
        assert_eq!(v.reg(Gpr::Rax), EFAULT);
        v.cpl = 3;
        call(&mut v, &mut m, 0, 0, 0);
        assert_eq!(v.reg(Gpr::Rax), EPERM);
        v.cpl = 0;
        assert_eq!(call(&mut v, &mut m, 1, 42, 0), Some(GuestEnd::Exited(42)));
    }

    #[test]
    fn msrs_follow_the_policy_and_unknown_ones_raise_gp() {
        let mut v = MockVcpu::new(&[]);
        let mut m = vm(ram(1 << 20));
        v.efer = 0x500;
        v.regs[Gpr::Rcx as usize] = 0xc000_0080;
        assert_eq!(handle_exit(&mut v, &mut m, VmExit::RdMsr), None);
        assert_eq!((v.reg(Gpr::Rax), v.reg(Gpr::Rdx)), (0x500, 0));
        // Setting SVME (bit 12): nested virtualization is not offered.
        v.regs[Gpr::Rax as usize] = 0x1500;
        let rip = v.rip;
        assert_eq!(handle_exit(&mut v, &mut m, VmExit::WrMsr), None);
        assert_eq!(v.injected, vec![Event::gp(0)]);
        assert_eq!(v.rip, rip);
        v.regs[Gpr::Rcx as usize] = 0x1234_5678;
        assert_eq!(handle_exit(&mut v, &mut m, VmExit::RdMsr), None);
        assert_eq!(v.injected, vec![Event::gp(0), Event::gp(0)]);
        assert_eq!(v.rip, rip);
        // IA32_MISC_ENABLE, which Linux reads on Intel without a fault handler.
        v.regs[Gpr::Rcx as usize] = 0x1a0;
        assert_eq!(handle_exit(&mut v, &mut m, VmExit::RdMsr), None);
        assert_eq!(v.reg(Gpr::Rax), msr::MISC_ENABLE_VALUE);
        // The guest TSC: a write moves it, and reads follow the host's from there.
        v.regs[Gpr::Rcx as usize] = 0x10;
        v.regs[Gpr::Rax as usize] = 0;
        v.regs[Gpr::Rdx as usize] = 1;
        assert_eq!(handle_exit(&mut v, &mut m, VmExit::WrMsr), None);
        assert_eq!(
            v.tsc_offset,
            (1u64 << 32).wrapping_sub(crate::mock::TSC.with(|t| t.get()))
        );
        assert_eq!(handle_exit(&mut v, &mut m, VmExit::RdMsr), None);
        assert_eq!((v.reg(Gpr::Rdx), v.reg(Gpr::Rax)), (1, 0));
    }

    #[test]
    fn cpuid_exits_answer_from_the_policy() {
        let mut v = MockVcpu::new(&[]);
        let mut m = vm(ram(1 << 20));
        v.regs[0] = 1;
        assert_eq!(handle_exit(&mut v, &mut m, VmExit::Cpuid), None);
        assert_ne!(v.reg(Gpr::Rcx) & (1 << 31), 0);
        assert_eq!(v.reg(Gpr::Rcx) & (1 << 5), 0);
        v.regs[0] = 0x4000_0000;
        handle_exit(&mut v, &mut m, VmExit::Cpuid);
        assert_eq!(v.reg(Gpr::Rbx), u32::from_le_bytes(*b"Janu") as u64);
    }

    #[test]
    fn every_other_end_is_reported_not_hidden() {
        let mut m = vm(ram(1 << 20));
        let mut v = MockVcpu::new(&[]);
        assert_eq!(
            handle_exit(&mut v, &mut m, VmExit::Hlt),
            Some(GuestEnd::Halted)
        );
        v.rflags |= 1 << 9;
        assert!(matches!(
            handle_exit(&mut v, &mut m, VmExit::Hlt),
            Some(GuestEnd::Error(_))
        ));
        assert_eq!(
            handle_exit(&mut v, &mut m, VmExit::TripleFault),
            Some(GuestEnd::TripleFault)
        );
        let raw = handle_exit(
            &mut v,
            &mut m,
            VmExit::Raw {
                reason: 0x99,
                info1: 1,
                info2: 2,
            },
        );
        assert!(
            matches!(&raw, Some(GuestEnd::Error(r)) if r.contains("unsupported exit: reason 0x99")),
            "{raw:?}"
        );
        let npf = VmExit::NestedPageFault {
            gpa: GuestPhys(0xfee0_0000),
            access: NestedAccess {
                write: true,
                ..Default::default()
            },
        };
        assert!(
            matches!(handle_exit(&mut v, &mut m, npf), Some(GuestEnd::Error(r)) if r.contains("0xfee00000"))
        );
        assert_eq!(handle_exit(&mut v, &mut m, VmExit::VirtInstruction), None);
        assert_eq!(v.injected, vec![Event::UD]);
        // A vCPU that cannot enter: the reason is kept.
        let end = run(&mut MockVcpu::new(&[]), &mut m);
        assert!(
            matches!(&end, GuestEnd::Error(r) if r.contains("VM entry failed: script ended")),
            "{end:?}"
        );
    }

    #[test]
    fn hlt_sleeps_until_the_pit_interrupts_and_the_interrupt_is_injected_when_open() {
        let mut m = vm(ram(1 << 20));
        let mut v = MockVcpu::new(&[]);
        // The guest's PIC: vectors 0x20/0x28, only IRQ0 unmasked; PIT channel 0 at 1 kHz.
        for (port, val) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 4),
            (0x21, 1),
            (0x21, 0xfe),
            (0x43, 0x34),
            (0x40, 0xa9),
            (0x40, 0x04),
        ] {
            v.regs[0] = val;
            assert_eq!(handle_exit(&mut v, &mut m, out(port, 1)), None);
        }
        let t0 = crate::mock::TSC.with(|t| t.get());
        v.rflags |= 1 << 9;
        let rip = v.rip;
        assert_eq!(
            handle_exit(&mut v, &mut m, VmExit::Hlt),
            None,
            "HLT returns once IRQ0 is due"
        );
        assert_eq!(v.rip, rip + 2, "past the HLT");
        let slept = crate::mock::TSC.with(|t| t.get()) - t0;
        assert!(
            (900_000..=1_100_000).contains(&slept),
            "slept about 1 ms of guest time: {slept} ns"
        );
        assert!(m.platform.interrupt_pending());
        // Interrupts closed: ask for a window instead of injecting.
        v.rflags &= !(1 << 9);
        offer_interrupt(&mut v, &mut m);
        assert!(v.window && v.injected.is_empty());
        v.rflags |= 1 << 9;
        offer_interrupt(&mut v, &mut m);
        assert_eq!(v.injected, vec![Event::Interrupt(0x20)]);
        assert!(!v.window);
    }

    #[test]
    fn device_memory_accesses_are_emulated() {
        let mut mem = ram(1 << 20);
        // mov dword [rax], 0x1ff ; c7 00 ff 01 00 00  (LAPIC SVR at 0xfee000f0)
        mem.write(
            GuestPhys(0x10_0000 - 0x1000),
            &[0xc7, 0x00, 0xff, 0x01, 0, 0],
        )
        .unwrap();
        let mut m = vm(mem);
        let mut v = MockVcpu::new(&[]);
        v.rip = 0x10_0000 - 0x1000;
        v.segs[SegReg::Cs as usize].attr = 0xc9b;
        let npf = VmExit::NestedPageFault {
            gpa: GuestPhys(0xfee0_00f0),
            access: NestedAccess {
                write: true,
                ..Default::default()
            },
        };
        assert_eq!(handle_exit(&mut v, &mut m, npf), None);
        assert_eq!(v.rip, 0x10_0000 - 0x1000 + 6);
        assert!(
            m.platform.lapic.sw_enabled(),
            "SVR write reached the local APIC"
        );
    }

    #[test]
    fn an_nmi_ipi_is_injected_as_an_nmi() {
        let mut m = vm(ram(1 << 20));
        let mut v = MockVcpu::new(&[]);
        let now = m.now();
        m.platform.lapic.write_mmio(0xf0, 0x1ff, now.ns);
        // ICR: NMI (delivery mode 4) to all including self (the self shorthand is for
        // fixed delivery only).
        let e = m
            .platform
            .lapic
            .write_mmio(0x300, (2 << 18) | (4 << 8), now.ns);
        m.platform.apic_effect(e);
        assert!(m.platform.nmi_pending);
        offer_interrupt(&mut v, &mut m);
        assert!(v.injected.is_empty() && v.window, "IF=0: wait for a window");
        v.rflags |= 1 << 9;
        offer_interrupt(&mut v, &mut m);
        assert_eq!(v.injected, vec![Event::Nmi]);
        assert!(!m.platform.nmi_pending);
    }

    #[test]
    fn the_reset_line_ends_the_guest() {
        let mut m = vm(ram(1 << 20));
        let mut v = MockVcpu::new(&[]);
        v.regs[0] = 0xfe;
        assert_eq!(
            handle_exit(&mut v, &mut m, out(0x64, 1)),
            Some(GuestEnd::Reset)
        );
    }
}
