//! The dispatcher against the scripted vCPU: each exit kind's policy.
use super::irq::offer_interrupt;
use super::*;
use crate::addr::GuestPhys;
use crate::exit::NestedAccess;
use crate::exit::{IoAccess, IoDir, StringIo};
use crate::hypercall::{EFAULT, ENOSYS, EPERM};
use crate::memory::testing::ram;
use crate::mock::{take_output, vm, MockVcpu};
use crate::msr;
use crate::vcpu::{CrTarget, Event, Gpr, SegReg};
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
/// A nested page fault at `gpa` (device memory), a write or a read.
fn npf(gpa: u64, write: bool) -> VmExit {
    VmExit::NestedPageFault {
        gpa: GuestPhys(gpa),
        access: NestedAccess {
            write,
            ..Default::default()
        },
    }
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
    assert_eq!(handle_exit(&mut v, &mut m, inp(0x300, 1)), None);
    assert_eq!(
        v.reg(Gpr::Rax),
        0x1122_3344_5566_77ff,
        "8-bit IN keeps the upper bits"
    );
    assert_eq!(handle_exit(&mut v, &mut m, inp(0x300, 4)), None);
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
        port: 0x300,
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
        port: 0x300,
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
    call(&mut v, &mut m, 4, 0, 0);
    assert_eq!(
        (v.reg(Gpr::Rax), v.reg(Gpr::Rbx), v.reg(Gpr::Rcx)),
        (0, 0, 0)
    );
    m.steal.add(1_500);
    m.steal.add(500);
    call(&mut v, &mut m, 4, 0, 0);
    assert_eq!(
        (v.reg(Gpr::Rax), v.reg(Gpr::Rbx), v.reg(Gpr::Rcx)),
        (0, 2_000, 2)
    );
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

/// WRMSR of `val` to `msr` through the exit handler.
fn wrmsr(v: &mut MockVcpu, m: &mut Vm, msr: u32, val: u64) {
    v.regs[Gpr::Rcx as usize] = u64::from(msr);
    v.regs[Gpr::Rax as usize] = val & 0xffff_ffff;
    v.regs[Gpr::Rdx as usize] = val >> 32;
    assert_eq!(handle_exit(v, m, VmExit::WrMsr), None);
}

/// RDMSR of `msr` through the exit handler.
fn rdmsr(v: &mut MockVcpu, m: &mut Vm, msr: u32) -> u64 {
    v.regs[Gpr::Rcx as usize] = u64::from(msr);
    assert_eq!(handle_exit(v, m, VmExit::RdMsr), None);
    v.reg(Gpr::Rdx) << 32 | v.reg(Gpr::Rax)
}

#[test]
fn a_tsc_deadline_counts_in_the_guests_tsc_after_an_adjust() {
    let mut v = MockVcpu::new(&[]);
    let mut m = vm(ram(1 << 20));
    // x2APIC on, software-enabled, LVT timer in TSC-deadline mode (SDM Vol 3A 11.5.4.1).
    wrmsr(&mut v, &mut m, 0x1b, 0xfee0_0000 | 3 << 10);
    wrmsr(&mut v, &mut m, 0x80f, 0x1ff);
    wrmsr(&mut v, &mut m, 0x832, 2 << 17 | 0x40);
    wrmsr(&mut v, &mut m, msr::IA32_TSC_ADJUST, 1 << 40);
    assert!(v.injected.is_empty());
    let now = m.now();
    let guest_tsc = m.msrs.tsc.read(now.tsc);
    wrmsr(&mut v, &mut m, 0x6e0, guest_tsc + 5_000);
    assert_eq!(rdmsr(&mut v, &mut m, 0x6e0), guest_tsc + 5_000);
    // Due 5,000 ticks from now (ns = ticks in the mock), not 2^40 ticks from now.
    let due = m.platform.next_event_ns(m.now()).expect("armed");
    assert!(due.abs_diff(now.ns + 5_000) < 100, "{due} vs {}", now.ns);
    // A deadline already passed (below the offset, even) fires at once.
    wrmsr(&mut v, &mut m, 0x6e0, 7);
    assert_eq!(rdmsr(&mut v, &mut m, 0x6e0), 0, "fired and disarmed");
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
    // HLT with interrupts on halts (run_slice gives the CPU back; see the halt tests).
    v.rflags |= 1 << 9;
    assert_eq!(handle_exit(&mut v, &mut m, VmExit::Hlt), None);
    assert!(core::mem::take(&mut m.halted));
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
    let npf = npf(0xfee0_0000, true);
    // The instruction at RIP lies outside the guest's RAM: it cannot be fetched, which a
    // PC would end in a triple fault.
    take_output();
    assert_eq!(
        handle_exit(&mut v, &mut m, npf),
        Some(GuestEnd::TripleFault)
    );
    assert!(take_output().contains("cannot be fetched"));
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
    assert_eq!(handle_exit(&mut v, &mut m, VmExit::Hlt), None);
    assert!(m.halted, "the vCPU halts: run_slice gives the CPU back");
    assert_eq!(v.rip, rip + 2, "past the HLT");
    super::halt::wait_for_interrupt(&mut m);
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
    let npf = npf(0xfee0_00f0, true);
    assert_eq!(handle_exit(&mut v, &mut m, npf), None);
    assert_eq!(v.rip, 0x10_0000 - 0x1000 + 6);
    assert!(
        m.platform.lapic_mut().sw_enabled(),
        "SVR write reached the local APIC"
    );
}

#[test]
fn addresses_with_nothing_behind_them_read_all_ones_and_drop_writes() {
    let mut mem = ram(1 << 20);
    // mov eax, [rbx] ; 8b 03    then    mov [rbx], eax ; 89 03
    mem.write(GuestPhys(0x8000), &[0x8b, 0x03, 0x89, 0x03])
        .unwrap();
    let mut m = vm(mem);
    let mut v = MockVcpu::new(&[]);
    v.rip = 0x8000;
    v.segs[SegReg::Cs as usize].attr = 0xc9b;
    let gpa = GuestPhys(0x4000_0000); // far above the guest's 1 MiB
    v.regs[Gpr::Rbx as usize] = gpa.0;
    let read = npf(gpa.0, false);
    assert_eq!(handle_exit(&mut v, &mut m, read), None, "the guest goes on");
    assert_eq!(v.reg(Gpr::Rax), 0xffff_ffff, "open bus reads all ones");
    assert_eq!(v.rip, 0x8002);
    assert_eq!(
        take_output().matches("no RAM or device").count(),
        1,
        "one line"
    );
    let write = npf(gpa.0, true);
    assert_eq!(handle_exit(&mut v, &mut m, write), None);
    assert_eq!(v.rip, 0x8004);
    assert_eq!(take_output(), "", "said once per guest");
}

#[test]
fn an_nmi_ipi_is_injected_as_an_nmi() {
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[]);
    let now = m.now();
    m.platform.lapic_mut().write_mmio(0xf0, 0x1ff, now.ns);
    // ICR: NMI (delivery mode 4) to all including self (the self shorthand is for
    // fixed delivery only).
    let e = m
        .platform
        .lapic_mut()
        .write_mmio(0x300, (2 << 18) | (4 << 8), now.ns);
    m.platform.apic_effect(e);
    assert!(m.platform.nmi_pending());
    offer_interrupt(&mut v, &mut m);
    assert!(v.injected.is_empty() && v.window, "IF=0: wait for a window");
    v.rflags |= 1 << 9;
    offer_interrupt(&mut v, &mut m);
    assert_eq!(v.injected, vec![Event::Nmi]);
    assert!(!m.platform.nmi_pending());
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

#[test]
fn a_cr8_write_exit_sets_the_local_apic_tpr() {
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[]);
    let e = VmExit::CrWrite {
        cr: CrTarget::Cr8,
        value: 0xa,
    };
    assert_eq!(handle_exit(&mut v, &mut m, e), None);
    assert_eq!(m.platform.lapic_mut().tpr(), 0xa0);
    assert_eq!(v.rip, 0x10_0002, "the MOV completes");
}

#[test]
fn a_cr8_read_exit_returns_the_tpr_priority_class() {
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[]);
    m.platform.lapic_mut().set_tpr(0x7c);
    v.regs[Gpr::Rbx as usize] = u64::MAX;
    let e = VmExit::CrRead {
        cr: CrTarget::Cr8,
        dest: Gpr::Rbx,
    };
    assert_eq!(handle_exit(&mut v, &mut m, e), None);
    assert_eq!(v.reg(Gpr::Rbx), 7, "TPR >> 4, the whole register written");
}

#[test]
fn a_cr8_write_above_15_is_gp_and_leaves_the_tpr() {
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[]);
    m.platform.lapic_mut().set_tpr(0x30);
    let e = VmExit::CrWrite {
        cr: CrTarget::Cr8,
        value: 16,
    };
    assert_eq!(handle_exit(&mut v, &mut m, e), None);
    assert_eq!(v.injected, vec![Event::gp(0)]);
    assert_eq!(m.platform.lapic_mut().tpr(), 0x30);
    assert_eq!(v.rip, 0x10_0000, "the faulting MOV is not skipped");
}

#[test]
fn a_cr8_change_without_an_exit_reaches_the_local_apic() {
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[VmExit::Hlt]);
    v.tpr_shadow = Some(0);
    v.guest_cr8 = Some(5);
    assert_eq!(run(&mut v, &mut m), GuestEnd::Halted);
    assert_eq!(m.platform.lapic_mut().tpr(), 0x50);
}

#[test]
fn the_local_apic_tpr_reaches_the_shadow_before_entry() {
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[VmExit::Hlt]);
    v.tpr_shadow = Some(0);
    m.platform.lapic_mut().set_tpr(0x93);
    assert_eq!(run(&mut v, &mut m), GuestEnd::Halted);
    assert_eq!(v.tpr_at_entry, Some(9));
    assert_eq!(
        m.platform.lapic_mut().tpr(),
        0x93,
        "an unchanged class keeps the TPR"
    );
}

#[test]
fn a_device_memory_access_completes_and_ends_the_interrupt_shadow() {
    let mut mem = ram(1 << 20);
    // mov eax, [rbx] ; 8b 03  (LAPIC version register at 0xfee00030)
    mem.write(GuestPhys(0x8000), &[0x8b, 0x03]).unwrap();
    let mut m = vm(mem);
    let mut v = MockVcpu::new(&[]);
    v.rip = 0x8000;
    v.insn_len = 7; // the backend's length is not used for a nested page fault
    v.shadow = true; // the MOV follows an STI
    let npf = npf(0xfee0_0030, false);
    assert_eq!(handle_exit(&mut v, &mut m, npf), None);
    assert_eq!(v.reg(Gpr::Rax) & 0xff, 0x14, "the LAPIC version");
    assert_eq!(v.rip, 0x8002, "past the decoded instruction");
    assert!(!v.shadow, "completing the instruction ends the STI shadow");
}

#[test]
fn debug_register_moves_follow_the_architectural_rules() {
    use crate::vcpu::DebugReg;
    let mut v = MockVcpu::new(&[]);
    let mut m = vm(ram(1 << 20));
    // MOV DR7, RAX with a breakpoint enabled: kept, bit 10 reads 1, RIP moves on.
    let rip = v.rip;
    let w = VmExit::DrWrite {
        dr: 7,
        value: 0x1_0003,
    };
    assert_eq!(handle_exit(&mut v, &mut m, w), None);
    assert_eq!(v.debug_reg(DebugReg::Dr7), 0x1_0403);
    assert_eq!(v.rip, rip + 2);
    // DR5 is DR7 while CR4.DE is clear; MOV RBX, DR5 reads it.
    let r = VmExit::DrRead {
        dr: 5,
        dest: Gpr::Rbx,
    };
    assert_eq!(handle_exit(&mut v, &mut m, r), None);
    assert_eq!(v.reg(Gpr::Rbx), 0x1_0403);
    // With CR4.DE set, DR4/DR5 are #UD and RIP stays.
    v.cr4 = crate::cpu_rules::cr4::DE;
    let rip = v.rip;
    assert_eq!(handle_exit(&mut v, &mut m, r), None);
    assert_eq!(v.injected.pop(), Some(Event::UD));
    assert_eq!(v.rip, rip);
    // Bits 63:32 of DR6/DR7 are #GP.
    let w = VmExit::DrWrite {
        dr: 6,
        value: 1 << 32,
    };
    assert_eq!(handle_exit(&mut v, &mut m, w), None);
    assert_eq!(v.injected.pop(), Some(Event::gp(0)));
    assert_eq!(v.debug_reg(DebugReg::Dr6), crate::cpu_rules::dr::DR6_RESET);
    // DR0 takes any address.
    let w = VmExit::DrWrite {
        dr: 0,
        value: 0xffff_8000_0000_1000,
    };
    assert_eq!(handle_exit(&mut v, &mut m, w), None);
    assert_eq!(v.debug_reg(DebugReg::Dr0), 0xffff_8000_0000_1000);
    // With DR7.GD set the move is #DB with DR6.BD, and GD is cleared for the handler.
    v.set_debug_reg(DebugReg::Dr7, 0x2400);
    let rip = v.rip;
    assert_eq!(handle_exit(&mut v, &mut m, w), None);
    assert_eq!(
        v.injected.pop(),
        Some(Event::Exception {
            vector: 1,
            error_code: None
        })
    );
    assert_eq!(v.rip, rip);
    assert_eq!(v.debug_reg(DebugReg::Dr7), 0x400);
    assert_ne!(v.debug_reg(DebugReg::Dr6) & (1 << 13), 0);
    // Outside CPL 0 it is #GP(0).
    v.cpl = 3;
    assert_eq!(handle_exit(&mut v, &mut m, r), None);
    assert_eq!(v.injected.pop(), Some(Event::gp(0)));
}

#[test]
fn db_and_ac_are_reflected_other_exceptions_end_the_guest() {
    let mut v = MockVcpu::new(&[]);
    let mut m = vm(ram(1 << 20));
    for (vector, error_code) in [(1, None), (17, Some(0))] {
        let rip = v.rip;
        let e = VmExit::Exception { vector, error_code };
        assert_eq!(handle_exit(&mut v, &mut m, e), None, "#{vector} resumes");
        assert_eq!(
            v.injected.pop(),
            Some(Event::Exception { vector, error_code })
        );
        assert_eq!(v.rip, rip, "a fault leaves RIP on the instruction");
    }
    let e = VmExit::Exception {
        vector: 13,
        error_code: Some(0),
    };
    assert!(matches!(
        handle_exit(&mut v, &mut m, e),
        Some(GuestEnd::Error(_))
    ));
    // A physical SMI or INIT the host took: the guest just resumes.
    assert_eq!(handle_exit(&mut v, &mut m, VmExit::HostSignal), None);
    assert!(v.injected.is_empty());
}

#[test]
fn a_guest_that_never_exits_on_its_own_is_preempted_at_the_end_of_its_slice() {
    let mut m = vm(ram(1 << 20));
    // `cli; jmp $`: only the host timer makes it exit, every 3 ms of guest time here.
    let mut v = MockVcpu::new(&[VmExit::ExternalInterrupt; 16]);
    v.ns_per_run = 3_000_000;
    let now = crate::mock::TSC.with(|t| t.get());
    let until = now + 10_000_000;
    assert_eq!(run_slice(&mut v, &mut m, until), Stop::Preempted);
    assert_eq!(
        v.exits.len(),
        16 - 4,
        "four runs of 3 ms reach the 10 ms slice end"
    );
    let armed = crate::mock::ARMED.with(|a| a.borrow().first().copied().flatten());
    assert_eq!(
        armed,
        Some(10_000_000),
        "the host timer was armed for the slice end"
    );
    assert_eq!(
        v.exit_deadline,
        Some(until),
        "the vCPU's own exit timer too (TSC = ns in the mock)"
    );
}

#[test]
fn a_vcpu_with_an_exit_timer_of_its_own_runs_with_the_host_timer_off() {
    // VT-x's VMX-preemption timer makes the guest exit at the deadline; the host timer,
    // armed for the same moment, made it exit a second time right after (Linux on Bochs
    // corei7_skylake_x: 63,444 host timer exits beside 109,116 timer exits).
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[VmExit::DeadlineReached; 16]);
    v.exit_timer = true;
    v.ns_per_run = 3_000_000;
    let now = crate::mock::TSC.with(|t| t.get());
    let until = now + 10_000_000;
    crate::mock::ARMED.with(|a| a.borrow_mut().push(Some(1)));
    assert_eq!(run_slice(&mut v, &mut m, until), Stop::Preempted);
    assert_eq!(
        v.exit_deadline,
        Some(until),
        "the vCPU's own timer ends the slice"
    );
    let armed = crate::mock::ARMED.with(|a| a.borrow().last().copied());
    assert_eq!(
        armed,
        Some(None),
        "the host timer is off while the guest runs"
    );
}

#[test]
fn a_slice_with_nothing_due_clears_an_exit_deadline_left_from_before() {
    // A slice without an end and no device event: nothing to arm. The vCPU's exit
    // timer still held an earlier slice's deadline, long past, and the guest exited at
    // once on every entry (Linux with 2 vCPUs and the hostile suite's victim on Bochs
    // corei7_skylake_x: millions of timer exits at one RIP).
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[VmExit::Cpuid, VmExit::Cpuid]);
    v.exit_timer = true;
    v.exit_deadline = Some(5);
    assert!(matches!(
        run_slice(&mut v, &mut m, u64::MAX),
        Stop::Ended(_)
    ));
    assert_eq!(v.exit_deadline, None, "the stale deadline was cleared");
    let armed = crate::mock::ARMED.with(|a| a.borrow().last().copied());
    assert_eq!(armed, Some(None), "and the host timer is off");
}

#[test]
fn a_halted_guest_gives_the_cpu_back_until_its_next_device_event() {
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[]);
    for (port, val) in [(0x43, 0x34), (0x40, 0xa9), (0x40, 0x04)] {
        v.regs[0] = val;
        assert_eq!(handle_exit(&mut v, &mut m, out(port, 1)), None);
    }
    v.rflags |= 1 << 9;
    v.exits.push_back(VmExit::Hlt);
    let now = crate::mock::TSC.with(|t| t.get());
    let Stop::Halted {
        wake_ns: Some(wake),
    } = run_slice(&mut v, &mut m, u64::MAX)
    else {
        panic!("HLT with a PIT running halts until IRQ0")
    };
    assert!(
        (wake - now).abs_diff(1_000_000) < 2_000,
        "IRQ0 in about 1 ms: {}",
        wake - now
    );
    assert!(!m.halted, "run_slice took the halt");
    // Without any timer the halt would last forever: no wake-up time (only a time limit
    // can end it), and alone on the CPU the guest ends, named.
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[VmExit::Hlt]);
    v.rflags |= 1 << 9;
    assert_eq!(
        run_slice(&mut v, &mut m, u64::MAX),
        Stop::Halted { wake_ns: None }
    );
    let mut v = MockVcpu::new(&[VmExit::Hlt]);
    v.rflags |= 1 << 9;
    assert!(matches!(run(&mut v, &mut m), GuestEnd::Error(r) if r.contains("sleep forever")));
}

#[test]
fn a_slice_that_starts_late_still_enters_the_guest_once() {
    // Choosing the guest took longer than its slice (a slow CPU, many guests): it must
    // still run, or the scheduler would choose it again and again without progress.
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[VmExit::ExternalInterrupt; 4]);
    let now = crate::mock::TSC.with(|t| t.get());
    assert_eq!(run_slice(&mut v, &mut m, now - 1), Stop::Preempted);
    assert_eq!(v.exits.len(), 3, "entered once");
}

#[test]
fn a_guest_whose_console_share_is_full_waits_for_itself_and_loses_nothing() {
    use crate::mock::ROOM;
    let mut v = MockVcpu::new(&[]);
    let mut m = vm(ram(1 << 20));
    let lsr = |v: &mut MockVcpu, m: &mut Vm| {
        handle_exit(v, m, inp(0x3fd, 1));
        v.reg(Gpr::Rax) as u8 & 0x60
    };
    ROOM.with(|r| r.set(false));
    for b in b"ab\ncd" {
        v.regs[0] = u64::from(*b);
        assert_eq!(handle_exit(&mut v, &mut m, out(0x3f8, 1)), None);
    }
    assert_eq!(take_output(), "", "no room: the line waits");
    assert_eq!(lsr(&mut v, &mut m), 0, "and the transmitter reads busy");
    // CONSOLE_WRITE takes nothing while the line waits.
    m.memory.write(GuestPhys(0x800), b"xy\n").unwrap();
    v.regs[Gpr::Rax as usize] = 2;
    v.regs[Gpr::Rbx as usize] = 0x800;
    v.regs[Gpr::Rcx as usize] = 3;
    handle_exit(&mut v, &mut m, VmExit::Hypercall);
    assert_eq!(v.reg(Gpr::Rax), 0, "bytes written");
    ROOM.with(|r| r.set(true));
    m.drain_console();
    assert_eq!(take_output(), "[t] ab\n");
    assert_eq!(lsr(&mut v, &mut m), 0x60, "empty again");
    v.regs[Gpr::Rax as usize] = 2;
    handle_exit(&mut v, &mut m, VmExit::Hypercall);
    assert_eq!(v.reg(Gpr::Rax), 3);
    assert_eq!(take_output(), "[t] cdxy\n");
    // A guest that ends with a line waiting and bytes in its UART: all of it is printed.
    ROOM.with(|r| r.set(false));
    for b in b"ef\ngh" {
        v.regs[0] = u64::from(*b);
        handle_exit(&mut v, &mut m, out(0x3f8, 1));
    }
    m.flush_console();
    assert_eq!(take_output(), "[t] ef\n[t] gh\n");
}

#[test]
fn a_waiting_line_goes_out_when_room_comes_with_nothing_new_in_the_uart() {
    use crate::mock::ROOM;
    let mut v = MockVcpu::new(&[]);
    let mut m = vm(ram(1 << 20));
    ROOM.with(|r| r.set(false));
    for b in b"ab\n" {
        v.regs[0] = u64::from(*b);
        handle_exit(&mut v, &mut m, out(0x3f8, 1));
    }
    assert_eq!(take_output(), "", "no room: the line waits");
    assert!(
        !m.platform.com1.has_output(),
        "the UART gave the console all of it"
    );
    ROOM.with(|r| r.set(true));
    m.drain_console();
    assert_eq!(take_output(), "[t] ab\n");
}

#[test]
fn a_line_waiting_for_room_goes_out_while_the_guest_polls_with_nothing_due() {
    // The hostile suite's victim on Bochs corei7_skylake_x, alone on its CPU with its timer
    // stopped, polled its UART for room for a line that waited for Janus' console: quiet
    // exits, nothing due, a slice without an end. It polled forever.
    use crate::mock::ROOM;
    let mut m = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[]);
    ROOM.with(|r| r.set(false));
    for b in b"ab\n" {
        v.regs[0] = u64::from(*b);
        handle_exit(&mut v, &mut m, out(0x3f8, 1));
    }
    assert_eq!(take_output(), "", "no room: the line waits");
    v.exits = [inp(0x3fd, 1), inp(0x3fd, 1), inp(0x3fd, 1), VmExit::Hlt]
        .into_iter()
        .collect();
    v.rflags |= 1 << 9;
    v.room_at_run = Some(2);
    assert_eq!(
        run_slice(&mut v, &mut m, u64::MAX),
        Stop::Halted { wake_ns: None }
    );
    assert_eq!(take_output(), "[t] ab\n", "it went out once there was room");
}

#[test]
fn quiet_exits_skip_the_device_work_until_something_is_due() {
    let mut m = vm(ram(1 << 20));
    // Ten CPUIDs of 50 us each, then the slice ends after 1 ms: devices and interrupt
    // offers are brought up to date before the first entry and when the slice end is
    // due, not after every CPUID.
    let mut v = MockVcpu::new(&[VmExit::Cpuid; 30]);
    v.ns_per_run = 50_000;
    let now = crate::mock::TSC.with(|t| t.get());
    assert_eq!(run_slice(&mut v, &mut m, now + 1_000_000), Stop::Preempted);
    assert_eq!(v.exits.len(), 30 - 20, "twenty CPUIDs fill the 1 ms slice");
    assert_eq!(
        v.offers, 2,
        "at the first entry and when the slice end was due"
    );
    // Port reads and POST codes are quiet too.
    let mut v = MockVcpu::new(&[inp(0x3fd, 1), out(0x80, 1), inp(0x40, 1), VmExit::Cpuid]);
    v.ns_per_run = 50_000;
    let now = crate::mock::TSC.with(|t| t.get());
    assert_eq!(run_slice(&mut v, &mut m, now + 175_000), Stop::Preempted);
    assert_eq!(v.offers, 2);
    // A write to a device (the PIC's mask) brings everything up to date after it.
    let mut v = MockVcpu::new(&[VmExit::Cpuid, out(0x21, 1), VmExit::Cpuid, VmExit::Cpuid]);
    v.ns_per_run = 50_000;
    let now = crate::mock::TSC.with(|t| t.get());
    assert_eq!(run_slice(&mut v, &mut m, now + 175_000), Stop::Preempted);
    assert_eq!(v.offers, 3, "first entry, after the OUT, at the slice end");
}

#[test]
fn a_hlt_woken_by_an_interrupt_the_cpu_delivers_itself_is_quiet() {
    use crate::devices::apic_page::{ApicPage, PagePtr};
    // The timer interrupt a guest armed before STI;HLT is requested already when HLT
    // exits. Offers: at the first entry, after each HLT that leaves something to do, at
    // the slice end.
    let slice = |attach: bool| {
        let mut m = vm(ram(1 << 20));
        let now = m.now();
        m.platform.lapic_mut().write_mmio(0xf0, 0x1ff, now.ns);
        // SAFETY: zeroed memory is a valid page; it outlives its attachment (detached
        // below).
        let mut page: std::boxed::Box<ApicPage> =
            unsafe { std::boxed::Box::new_zeroed().assume_init() };
        if attach {
            // SAFETY: as above; nothing else touches the page.
            let at = unsafe { PagePtr::new(core::ptr::NonNull::from(&mut *page)) };
            // SAFETY: as above.
            unsafe { m.platform.lapic_mut().attach_page(at) };
        }
        m.platform.lapic_mut().accept(0x40, false);
        let mut v = MockVcpu::new(&[VmExit::Hlt, VmExit::Cpuid, VmExit::Cpuid, VmExit::Cpuid]);
        v.rflags |= 1 << 9;
        // Held off at the first entry (an STI's shadow): not injected then.
        v.shadow = true;
        v.ns_per_run = 50_000;
        let now = crate::mock::TSC.with(|t| t.get());
        assert_eq!(run_slice(&mut v, &mut m, now + 175_000), Stop::Preempted);
        m.platform.lapic_mut().detach_page();
        v.offers
    };
    // The CPU takes it from the register page: HLT wakes at once, nothing to offer.
    assert_eq!(slice(true), 2, "first entry and the slice end");
    // Janus injects it: the HLT that woke for it is followed by an offer.
    assert_eq!(slice(false), 3, "and after the HLT");
}

#[test]
fn uart_bytes_are_quiet_while_its_interrupt_line_stays_put() {
    let slice = |m: &mut Vm, exits: &[VmExit]| {
        let mut v = MockVcpu::new(exits);
        v.regs[Gpr::Rax as usize] = u64::from(b'x');
        v.ns_per_run = 50_000;
        let now = crate::mock::TSC.with(|t| t.get());
        assert_eq!(run_slice(&mut v, m, now + 175_000), Stop::Preempted);
        v.offers
    };
    // An interrupt handler's IIR read, then a byte.
    let exits = [inp(0x3fa, 1), out(0x3f8, 1), VmExit::Cpuid, VmExit::Cpuid];
    // Interrupts off in the UART (IER 0, as Linux's early console polls it): nothing to
    // bring up to date after the read or the byte.
    let mut m = vm(ram(1 << 20));
    assert_eq!(slice(&mut m, &exits), 2, "first entry and the slice end");
    // With the transmitter interrupt on, the IIR read drops IRQ 4 and the byte raises it
    // again as it leaves: each is followed by an offer.
    let mut m = vm(ram(1 << 20));
    m.platform.port_write(0x3fc, 1, 0x08, m.now()); // MCR.OUT2 gates the line
    m.platform.port_write(0x3f9, 1, 0x02, m.now()); // IER.THRE
    assert!(m.platform.com1.irq_pending(), "THR empty: THRE interrupt");
    assert_eq!(slice(&mut m, &exits), 4);
}

#[test]
fn device_memory_reads_are_quiet_and_writes_are_not() {
    let mut mem = ram(1 << 20);
    // mov eax, [rbx] twice, then mov [rbx], eax; RBX = the LAPIC's TPR.
    mem.write(GuestPhys(0x8000), &[0x8b, 0x03, 0x8b, 0x03, 0x89, 0x03])
        .unwrap();
    let mut m = vm(mem);
    let npf = |write| npf(0xfee0_0080, write);
    let slice = |m: &mut Vm, exits: &[VmExit]| {
        let mut v = MockVcpu::new(exits);
        v.rip = 0x8000;
        v.segs[SegReg::Cs as usize].attr = 0xc9b;
        v.regs[Gpr::Rbx as usize] = 0xfee0_0080;
        v.ns_per_run = 50_000;
        let now = crate::mock::TSC.with(|t| t.get());
        assert_eq!(run_slice(&mut v, m, now + 175_000), Stop::Preempted);
        v.offers
    };
    let reads = [npf(false), npf(false), VmExit::Cpuid, VmExit::Cpuid];
    assert_eq!(slice(&mut m, &reads), 2, "first entry and the slice end");
    let write = [npf(false), npf(false), npf(true), VmExit::Cpuid];
    assert_eq!(slice(&mut m, &write), 3, "and after the TPR write");
}

#[test]
fn amd_legacy_pmu_msrs_and_misc_enable_bits_keep_the_cpus_word() {
    let mut v = MockVcpu::new(&[]);
    let mut m = vm(ram(1 << 20));
    assert!(m.msrs.amd, "the mock host is AuthenticAMD");
    let rd = |v: &mut MockVcpu, m: &mut Vm, msr: u32| {
        v.injected.clear();
        v.regs[Gpr::Rcx as usize] = u64::from(msr);
        v.regs[Gpr::Rax as usize] = 0xdead;
        handle_exit(v, m, VmExit::RdMsr);
        (v.injected.is_empty(), v.reg(Gpr::Rax))
    };
    let wr = |v: &mut MockVcpu, m: &mut Vm, msr: u32, val: u64| {
        v.injected.clear();
        v.regs[Gpr::Rcx as usize] = u64::from(msr);
        v.regs[Gpr::Rax as usize] = val & 0xffff_ffff;
        v.regs[Gpr::Rdx as usize] = val >> 32;
        handle_exit(v, m, VmExit::WrMsr);
        v.injected.is_empty()
    };
    for msr in 0xc001_0000..=0xc001_0007 {
        assert_eq!(rd(&mut v, &mut m, msr), (true, 0), "{msr:#x} reads 0");
        assert!(wr(&mut v, &mut m, msr, 0x43_0076), "{msr:#x} takes writes");
        assert_eq!(rd(&mut v, &mut m, msr), (true, 0), "and ignores them");
    }
    assert!(
        !rd(&mut v, &mut m, 0xc001_0008).0,
        "past the legacy block: #GP"
    );
    // IA32_MISC_ENABLE: fast strings off and on again, kept; limit-CPUID-maxval: #GP.
    let misc = crate::msr::MISC_ENABLE_VALUE;
    assert!(wr(&mut v, &mut m, 0x1a0, misc & !1));
    assert_eq!(rd(&mut v, &mut m, 0x1a0), (true, misc & !1));
    assert!(!wr(&mut v, &mut m, 0x1a0, misc | (1 << 22)));
    assert_eq!(rd(&mut v, &mut m, 0x1a0), (true, misc & !1), "unchanged");
    // An Intel guest has no such MSRs.
    m.msrs.amd = false;
    assert!(!rd(&mut v, &mut m, 0xc001_0004).0);
    assert!(!wr(&mut v, &mut m, 0xc001_0000, 0));
}

/// Both vCPUs' APICs in x2APIC mode and software-enabled.
fn x2apics(m: &mut Vm) {
    use crate::devices::lapic::{BASE_ENABLE, BASE_EXTD, DEFAULT_BASE};
    let now = m.now();
    for i in 0..m.platform.cpus.len() {
        m.platform.select(i);
        let bsp = if i == 0 { 1 << 8 } else { 0 };
        let base = DEFAULT_BASE | BASE_ENABLE | BASE_EXTD | bsp;
        m.platform.lapic_mut().set_apic_base(base).unwrap();
        m.platform
            .lapic_mut()
            .write_msr(0x80f, 0x1ff, now.ns)
            .unwrap();
    }
    m.platform.select(0);
}

#[test]
fn an_ipi_to_another_vcpu_ends_the_senders_turn_at_once() {
    let mut m = crate::mock::vm_smp(ram(1 << 20), 2);
    x2apics(&mut m);
    // WRMSR x2APIC ICR: fixed, vector 0x40, to APIC 1; then the debug-exit port.
    let mut v = MockVcpu::new(&[VmExit::WrMsr, out(0xf4, 1)]);
    v.regs[Gpr::Rcx as usize] = 0x830;
    v.regs[Gpr::Rax as usize] = 0x40;
    v.regs[Gpr::Rdx as usize] = 1;
    assert_eq!(run_slice(&mut v, &mut m, u64::MAX), Stop::Preempted);
    assert!(m.platform.wakes(1, true), "vCPU 1 has the IPI");
    assert!(!m.platform.wakes(0, true));
    m.platform.select(1);
    assert_eq!(m.platform.acknowledge_interrupt(), Some(0x40));
}

#[test]
fn a_self_ipi_does_not_end_the_turn() {
    let mut m = crate::mock::vm_smp(ram(1 << 20), 2);
    x2apics(&mut m);
    // x2APIC SELF IPI register (0x83f): vector 0x41, to the sender only.
    let mut v = MockVcpu::new(&[VmExit::WrMsr, out(0xf4, 1)]);
    v.rflags |= 1 << 9;
    v.regs[Gpr::Rcx as usize] = 0x83f;
    v.regs[Gpr::Rax as usize] = 0x41;
    v.regs[Gpr::Rdx as usize] = 0;
    // The debug-exit port ends it with AL, still the vector.
    assert_eq!(
        run_slice(&mut v, &mut m, u64::MAX),
        Stop::Ended(GuestEnd::Exited(0x41))
    );
    assert_eq!(v.injected, vec![Event::Interrupt(0x41)]);
}

#[test]
fn cpuid_names_the_vcpu_that_asks() {
    let mut m = crate::mock::vm_smp(ram(1 << 20), 2);
    for i in [0u64, 1] {
        m.platform.select(i as usize);
        let mut v = MockVcpu::new(&[]);
        v.regs[Gpr::Rax as usize] = 1;
        assert_eq!(handle_exit(&mut v, &mut m, VmExit::Cpuid), None);
        assert_eq!(v.regs[Gpr::Rbx as usize] >> 24, i, "leaf 1 EBX[31:24]");
    }
}

#[test]
fn hlt_with_interrupts_off_stops_one_vcpu_of_several_not_the_guest() {
    let mut m = crate::mock::vm_smp(ram(1 << 20), 2);
    let mut v = MockVcpu::new(&[]);
    assert_eq!(handle_exit(&mut v, &mut m, VmExit::Hlt), None);
    assert!(m.halted, "it waits for an NMI, INIT or SIPI");
    // An external interrupt does not wake it; an NMI does.
    m.platform.lapic_mut().write_mmio(0xf0, 0x1ff, 0);
    m.platform.lapic_mut().accept(0x40, false);
    assert!(!m.platform.wakes(0, false));
    m.platform.cpus.get_mut(0).nmi_pending = true;
    assert!(m.platform.wakes(0, false));
    // The only vCPU of a guest so halted ends it.
    let mut one = vm(ram(1 << 20));
    assert_eq!(
        handle_exit(&mut MockVcpu::new(&[]), &mut one, VmExit::Hlt),
        Some(GuestEnd::Halted)
    );
}

#[test]
fn pause_completes_and_gives_the_turn_away() {
    let mut m = crate::mock::vm_smp(ram(1 << 20), 2);
    let mut v = MockVcpu::new(&[VmExit::Pause, out(0xf4, 1)]);
    assert_eq!(run_slice(&mut v, &mut m, u64::MAX), Stop::Preempted);
    assert_eq!(v.rip, 0x10_0000 + 2, "past the PAUSE");
    assert!(!m.yielded, "taken");
    // A guest's only vCPU goes on after it.
    let mut one = vm(ram(1 << 20));
    let mut v = MockVcpu::new(&[VmExit::Pause, out(0xf4, 1)]);
    assert_eq!(
        run_slice(&mut v, &mut one, u64::MAX),
        Stop::Ended(GuestEnd::Exited(0))
    );
}

#[test]
fn a_timer_written_through_device_memory_is_armed_before_the_next_entry() {
    // The local APIC's SVR, LVT timer and initial count written by `mov [rbx], eax`
    // with EAX = 0x1ff each time (enabled; vector 0xff, one-shot; 511 at divide 2). An
    // exit that changes only interrupt state leaves the exit timers as they were
    // (`Platform::timer_changes`); these three must not.
    let mut mem = ram(1 << 20);
    mem.write(GuestPhys(0x8000), &[0x89, 0x03, 0x89, 0x03, 0x89, 0x03])
        .unwrap();
    let mut m = vm(mem);
    let npf = |reg: u64| npf(0xfee0_0000 + reg, true);
    let mut v = MockVcpu::new(&[npf(0x0f0), npf(0x320), npf(0x380)]);
    v.rip = 0x8000;
    v.segs[SegReg::Cs as usize].attr = 0xc9b;
    v.regs[Gpr::Rax as usize] = 0x1ff;
    v.exit_timer = true;
    let now = crate::mock::TSC.with(|t| t.get());
    assert!(matches!(
        run_slice(&mut v, &mut m, u64::MAX),
        Stop::Ended(_)
    ));
    assert_eq!(v.rip, 0x8006, "three writes emulated");
    let due = v.exit_deadline.expect("the timer's deadline is armed");
    assert!(due > now, "{due} after {now}");
}

#[test]
fn an_instruction_completed_under_tf_ends_in_a_single_step_trap() {
    // The CPU would have raised #DB after it, DR6.BS set (SDM Vol 3A 17.3.1.4); the exit
    // kept it from doing so.
    let mut m = vm(ram(1 << 20));
    for (exit, what) in [(VmExit::Cpuid, "CPUID"), (out(0x80, 1), "OUT")] {
        let mut v = MockVcpu::new(&[]);
        v.rflags |= crate::cpu_rules::rflags::TF;
        let rip = v.rip;
        assert_eq!(handle_exit(&mut v, &mut m, exit), None);
        assert_eq!(v.rip, rip + v.insn_len, "{what} completed");
        assert_eq!(
            v.injected,
            vec![Event::Exception {
                vector: 1,
                error_code: None
            }],
            "{what}"
        );
        let dr6 = v.debug_reg(crate::vcpu::DebugReg::Dr6);
        assert_ne!(dr6 & crate::cpu_rules::dr::DR6_BS, 0, "{what}");
        // Without TF, nothing.
        let mut v = MockVcpu::new(&[]);
        assert_eq!(handle_exit(&mut v, &mut m, exit), None);
        assert!(v.injected.is_empty(), "{what}");
        assert_eq!(
            v.debug_reg(crate::vcpu::DebugReg::Dr6) & crate::cpu_rules::dr::DR6_BS,
            0
        );
    }
}
