//! FPU, debug-register, CR2 and MSR isolation: `plant` leaves a recognisable pattern in
//! XMM0-15, MXCSR, the x87 stack and control word, DR0-DR3, CR2 and the MSRs a guest
//! reaches without an exit ([`MSRS`], PAT) and keeps it there while halting; `snoop`,
//! booted after or beside it, checks that it sees only reset values. CR2 (the last page
//! fault's address, which no exit moves) leaked this way on Bochs' AMD-V, whose VMRUN
//! does not load it from the VMCB: Linux with 2 vCPUs found it (init's copy-on-write
//! fault read the other vCPU's fault address and init was killed).

use super::{Ctx, Saw};
use janus_guests::println;
use janus_guests::rt::{apic, cpu, dr, fpu, pc, time, x86};

/// "PLANT" in each value, with the index in the low byte.
const PATTERN: u64 = 0x504c_414e_5400_0000;
const PLANT_MXCSR: u32 = 0xff80; // all masked, round toward zero, FTZ
const PLANT_FCW: u16 = 0x0f7f; // all masked, 64-bit precision, round toward zero
/// A canonical address made of the pattern.
const ADDR: u64 = PATTERN >> 16;
/// The MSRs whose guest values pass through (no exit: `vmm_core::msr::PASSTHROUGH`) and
/// reset to 0, each planted with a value it takes (canonical addresses, selectors, a
/// 32-bit SFMASK). FS and GS bases are left out: the runtime may use them.
const MSRS: [(u32, &str, u64); 7] = [
    (x86::MSR_SYSENTER_CS, "SYSENTER_CS", 0x5010),
    (x86::MSR_SYSENTER_ESP, "SYSENTER_ESP", ADDR | 0x11),
    (x86::MSR_SYSENTER_EIP, "SYSENTER_EIP", ADDR | 0x12),
    (x86::MSR_STAR, "STAR", 0x0023_0010_5054_4e41),
    (x86::MSR_LSTAR, "LSTAR", ADDR | 0x14),
    (x86::MSR_FMASK, "FMASK", 0x0004_4700),
    (x86::MSR_KERNEL_GS_BASE, "KERNEL_GS_BASE", ADDR | 0x16),
];
/// IA32_PAT at reset (SDM Vol 3A 13.12.4), and plant's: valid types, PA0 still WB.
const PAT_RESET: u64 = 0x0007_0406_0007_0406;
const PLANT_PAT: u64 = 0x0100_0706_0504_0106;
/// How long `snoop` sleeps between its two looks.
const SNOOP_SLEEP_MS: u64 = 500;

/// Plants the pattern and halts with interrupts on, forever.
pub fn plant(_: &Ctx) -> Saw {
    fpu::enable_sse();
    fpu::write_xmm(&core::array::from_fn(|i| {
        (u128::from(PATTERN | i as u64) << 64) | u128::from(PATTERN | 0x80 | i as u64)
    }));
    fpu::set_mxcsr(PLANT_MXCSR);
    fpu::set_fcw(PLANT_FCW);
    fpu::fill_x87(&core::array::from_fn(|i| {
        (PATTERN | 0x40 | i as u64) as i64
    }));
    // Canonical addresses; DR7 keeps the breakpoints disabled.
    dr::write_addr_regs(&core::array::from_fn(|i| ADDR | i as u64));
    x86::write_cr2(ADDR | 0x2);
    for (msr, _, v) in MSRS {
        x86::wrmsr(msr, v);
    }
    x86::wrmsr(x86::MSR_PAT, PLANT_PAT);
    println!("hostile: attack plant: planted, halting");
    loop {
        x86::sti();
        // SAFETY: waits for an interrupt with IF set; state is untouched.
        unsafe { core::arch::asm!("hlt", options(nostack, nomem)) };
    }
}

/// One look at the state: prints every value that is not the reset value.
fn look(when: &str) -> u32 {
    let mut leaks = 0;
    for (i, v) in fpu::read_xmm().iter().enumerate() {
        if *v != 0 {
            println!("hostile: attack snoop: LEAK {when}: xmm{i} = {v:#034x}");
            leaks += 1;
        }
    }
    let mxcsr = fpu::mxcsr();
    if mxcsr != fpu::MXCSR_RESET {
        println!("hostile: attack snoop: LEAK {when}: MXCSR = {mxcsr:#x}");
        leaks += 1;
    }
    // The x87 init state (FNINIT, XRSTOR) or the power-up value.
    let fcw = fpu::fcw();
    if fcw != fpu::FCW_INIT && fcw != fpu::FCW_POWER_UP {
        println!("hostile: attack snoop: LEAK {when}: FCW = {fcw:#x}");
        leaks += 1;
    }
    for (i, v) in dr::read_addr_regs().iter().enumerate() {
        if *v != 0 {
            println!("hostile: attack snoop: LEAK {when}: DR{i} = {v:#x}");
            leaks += 1;
        }
    }
    let dr7 = dr::read_dr7();
    if dr7 != dr::DR7_RESET {
        println!("hostile: attack snoop: LEAK {when}: DR7 = {dr7:#x}");
        leaks += 1;
    }
    // 0 at reset, and snoop takes no page fault.
    let cr2 = x86::read_cr2();
    if cr2 != 0 {
        println!("hostile: attack snoop: LEAK {when}: CR2 = {cr2:#x}");
        leaks += 1;
    }
    for (msr, name, _) in MSRS {
        let v = cpu::rdmsr(msr);
        if v != 0 {
            println!("hostile: attack snoop: LEAK {when}: {name} = {v:#x}");
            leaks += 1;
        }
    }
    let pat = cpu::rdmsr(x86::MSR_PAT);
    if pat != PAT_RESET {
        println!("hostile: attack snoop: LEAK {when}: PAT = {pat:#x}");
        leaks += 1;
    }
    leaks
}

/// Sleeps `ms` with HLT, woken by a one-shot LAPIC timer (so other guests can run).
fn sleep(ms: u64) {
    const VEC: u8 = 0x40;
    pc::pic_disable();
    apic::enable();
    let per_ms = apic::timer_ticks_per_ms(1);
    janus_guests::rt::irq::count_on(VEC, janus_guests::rt::irq::Eoi::Lapic);
    let end = time::Deadline::after_us(ms * 1000);
    while !end.expired() {
        apic::timer_oneshot(VEC, (per_ms * 10).min(0xffff_ffff) as u32);
        x86::sti_hlt_cli();
    }
    apic::timer_stop();
}

/// Reads the state at start and after sleeping; "clean" only if all of it is at reset.
pub fn snoop(_: &Ctx) -> Saw {
    fpu::enable_sse();
    let mut leaks = look("at start");
    sleep(SNOOP_SLEEP_MS);
    leaks += look("after sleeping");
    if leaks == 0 {
        Saw::Text("clean")
    } else {
        Saw::Count(leaks.into(), "values LEAK")
    }
}
