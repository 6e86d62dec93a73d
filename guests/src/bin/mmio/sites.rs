//! Exits at a place whose code changed: Janus remembers where the instruction of a
//! recent exit lay and what it was (its length, for CPUID without NRIP save; the decoded
//! instruction, for a device-memory access: `vmm_core::fetch::site`). Here the guest
//! rewrites that instruction in place, or maps another page at its address, between two
//! exits there. A stale answer moves RIP into the middle of the new instruction, onto a
//! UD2 or a non-canonical store, which the checks catch.

use core::arch::asm;
use janus_guests::rt::apic::{self, LAPIC_BASE};
use janus_guests::rt::idt::catch_exception;
use janus_guests::rt::x86::{read_cr3, write_cr3};
use janus_guests::{cpuid, Suite};

/// A page of code, written by these checks and called.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut CODE_A: Page = Page([0; 4096]);
static mut CODE_B: Page = Page([0; 4096]);
/// The tables that map `REMAPPED` to page A or page B (4 KiB pages).
static mut PD: Page = Page([0; 4096]);
static mut PT: Page = Page([0; 4096]);

/// Where page A or B is mapped: PDPT entry 2 (1 GiB-2 GiB, otherwise unmapped here).
const REMAPPED: u64 = 0x8000_0000;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// CPUID with an operand-size prefix, RET, UD2: a stale length of 2 for it lands on
/// `A2 C3 0F 0B..` (a store to a non-canonical address: #GP).
const CPUID_66: &[u8] = &[0x66, 0x0f, 0xa2, 0xc3, 0x0f, 0x0b, 0x0f, 0x0b, 0x0f, 0x0b];
/// CPUID, RET, UD2: a stale length of 3 for it lands on the UD2.
const CPUID: &[u8] = &[0x0f, 0xa2, 0xc3, 0x0f, 0x0b, 0x0f, 0x0b];

pub fn run(s: &mut Suite) {
    rewritten_cpuid(s);
    remapped_cpuid(s);
    rewritten_load(s);
}

fn page(p: *mut Page) -> u64 {
    p as u64
}

/// Writes `code` at `at` (identity-mapped RAM of this guest).
fn write_code(at: u64, code: &[u8]) {
    for (i, b) in code.iter().enumerate() {
        // SAFETY: `at` is one of this file's code pages, `code` fits in it.
        unsafe { ((at + i as u64) as *mut u8).write_volatile(*b) };
    }
}

/// Calls the CPUID-and-RET at `at` with leaf 0 (subleaf 0: the same question each time,
/// which Janus answers in place from the second time on, `vmm_core::in_place`); what it
/// returned in EAX, or the exception it raised.
fn call_cpuid(at: u64) -> Result<u32, u8> {
    let mut eax = 0;
    let caught = catch_exception(|| {
        // SAFETY: `at` holds a CPUID and a RET written by these checks; RBX, which CPUID
        // writes and LLVM reserves, is saved around the call.
        unsafe {
            asm!("push rbx", "call {f}", "pop rbx", f = in(reg) at, inout("eax") 0u32 => eax,
                 inout("ecx") 0u32 => _, out("edx") _)
        };
    });
    caught.map_or(Ok(eax), |e| Err(e.vector))
}

/// Three calls (the first exit leaves a site, the next ones use it), then the code is
/// changed by `change` and called once more: every call must return leaf 0's EAX.
fn check_cpuid(s: &mut Suite, name: &str, at: u64, change: impl FnOnce(), what: &str) {
    let want = cpuid(0, 0)[0];
    let before = [call_cpuid(at), call_cpuid(at), call_cpuid(at)];
    change();
    let after = call_cpuid(at);
    s.check(
        name,
        before.iter().all(|r| *r == Ok(want)) && after == Ok(want),
        format_args!(
            "CPUID leaf 0 at {at:#x}, three times {before:?}, then {what}: {after:?} \
             (want Ok({want:#x}); Err is the exception vector)"
        ),
    );
}

fn rewritten_cpuid(s: &mut Suite) {
    let a = page(core::ptr::addr_of_mut!(CODE_A));
    write_code(a, CPUID_66);
    check_cpuid(
        s,
        "mmio.site_cpuid_rewritten",
        a,
        || write_code(a, CPUID),
        "rewritten in place without its 0x66 prefix",
    );
    let at = a + 0x100;
    write_code(at, CPUID);
    check_cpuid(
        s,
        "mmio.site_cpuid_prefixed",
        at,
        || write_code(at, CPUID_66),
        "rewritten in place with a 0x66 prefix",
    );
}

/// `REMAPPED` mapped to `frame` through this file's PD and PT.
fn map_remapped(frame: u64) {
    let (pd, pt) = (
        page(core::ptr::addr_of_mut!(PD)),
        page(core::ptr::addr_of_mut!(PT)),
    );
    // SAFETY: PD and PT are this file's tables (identity-mapped, 4 KiB aligned); PDPT
    // entry 2 is unused by the runtime and the other checks of this suite.
    unsafe {
        (pt as *mut u64).write_volatile(frame | 3);
        (pd as *mut u64).write_volatile(pt | 3);
        let pdpt = (((read_cr3() & ADDR) as *const u64).read_volatile() & ADDR) as *mut u64;
        pdpt.add(2).write_volatile(pd | 3);
    }
    write_cr3(read_cr3());
}

fn remapped_cpuid(s: &mut Suite) {
    let (a, b) = (
        page(core::ptr::addr_of_mut!(CODE_A)),
        page(core::ptr::addr_of_mut!(CODE_B)),
    );
    write_code(a, CPUID_66);
    write_code(b, CPUID);
    map_remapped(a);
    check_cpuid(
        s,
        "mmio.site_cpuid_remapped",
        REMAPPED,
        || map_remapped(b),
        "its page mapped to another frame (CPUID without the prefix there)",
    );
}

/// MOV EAX, [RDI] then RET; with an operand-size prefix, MOV AX, [RDI]: a stale
/// decoded 32-bit load would clear EAX's upper half and land on the 0x07 (#UD).
const LOAD32: &[u8] = &[0x8b, 0x07, 0xc3];
const LOAD16: &[u8] = &[0x66, 0x8b, 0x07, 0xc3];

/// Calls the load-and-RET at `at` with RDI at the TPR and EAX = 0xaaaa_0000.
fn call_load(at: u64) -> Result<u32, u8> {
    let mut eax = 0;
    let caught = catch_exception(|| {
        // SAFETY: `at` holds a load from [RDI] and a RET written by these checks; RDI is
        // the local APIC's TPR (mapped uncached by apic::map_mmio).
        unsafe {
            asm!("call {f}", f = in(reg) at, in("rdi") LAPIC_BASE + 0x80,
                 inout("eax") 0xaaaa_0000u32 => eax)
        };
    });
    caught.map_or(Ok(eax), |e| Err(e.vector))
}

fn rewritten_load(s: &mut Suite) {
    apic::mmio_write(0x80, 0x20);
    let at = page(core::ptr::addr_of_mut!(CODE_A)) + 0x200;
    write_code(at, LOAD32);
    let before = [call_load(at), call_load(at), call_load(at)];
    write_code(at, LOAD16);
    let after = call_load(at);
    apic::mmio_write(0x80, 0);
    s.check(
        "mmio.site_load_rewritten",
        before.iter().all(|r| *r == Ok(0x20)) && after == Ok(0xaaaa_0020),
        format_args!(
            "TPR 0x20 read by MOV EAX,[RDI] three times {before:?}, then by MOV AX,[RDI] \
             written in its place: {after:?} (want Ok(0xaaaa0020))"
        ),
    );
}
