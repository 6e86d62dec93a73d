//! Exceptions and interrupts: #DE, #UD, #BP (returns after), #GP with an error code,
//! #PF with error code and CR2, #UD for the other vendor's hypercall instruction and for
//! VMX/SVM instructions, a software `int 0x80`, and an external interrupt (PIT via the
//! PIC) waking `sti; hlt`.
#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use janus_guests::rt::hypercall::{self, Insn};
use janus_guests::rt::idt::{self, catch_exception, expect_exception, ErrorInfo, Frame};
use janus_guests::rt::time::{self, Stopwatch};
use janus_guests::rt::{apic, irq, pc, x86};
use janus_guests::{entry, println, BootInfo, Suite};

/// How soon an interrupt due 2 ms after HLT must wake it.
const TIMELY_US: u64 = 50_000;
/// Undisturbed tries of that measurement (`time::measure`).
const ATTEMPTS: u32 = 3;

entry!(main);

/// The address of the instruction expected to fault, stored by the asm blocks.
static mut MARK: u64 = 0;

fn mark() -> u64 {
    // SAFETY: written only by the asm blocks on this CPU.
    unsafe { core::ptr::addr_of!(MARK).read_volatile() }
}

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("exceptions");
    divide(&mut s);
    invalid_opcode(&mut s);
    breakpoint(&mut s);
    general_protection(&mut s);
    page_fault(&mut s);
    virtualization(&mut s);
    software_int(&mut s);
    external_hlt(&mut s);
    single_step(&mut s);
    s.finish()
}

fn at(s: &mut Suite, name: &str, vector: u8, e: Option<ErrorInfo>, rip: u64) -> Option<ErrorInfo> {
    match e {
        Some(e) => {
            s.check(
                name,
                e.rip == rip,
                format_args!(
                    "{} raised at rip {:#x}, expected {:#x}",
                    idt::mnemonic(vector.into()),
                    e.rip,
                    rip
                ),
            );
            Some(e)
        }
        None => {
            s.check(
                name,
                false,
                format_args!(
                    "no {} (vector {}) raised",
                    idt::mnemonic(vector.into()),
                    vector
                ),
            );
            None
        }
    }
}

fn divide(s: &mut Suite) {
    // SAFETY: the instruction is meant to fault; the runtime's exception catcher resumes after it, and the asm touches only the registers it names.
    let e = expect_exception(0, || unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "mov qword ptr [rip + {m}], rax",
            "xor edx, edx",
            "mov eax, 100",
            "2: div ecx",
            m = sym MARK,
            in("ecx") 0u32,
            out("rax") _, out("rdx") _,
        )
    });
    at(s, "exceptions.de_div_zero", 0, e, mark());
}

fn invalid_opcode(s: &mut Suite) {
    // SAFETY: the instruction is meant to fault; the runtime's exception catcher resumes after it, and the asm touches only the registers it names.
    let e = expect_exception(6, || unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "mov qword ptr [rip + {m}], rax",
            "2: ud2",
            m = sym MARK,
            out("rax") _,
        )
    });
    at(s, "exceptions.ud_ud2", 6, e, mark());
}

static BP_RIP: AtomicU64 = AtomicU64::new(0);

fn breakpoint(s: &mut Suite) {
    idt::set_handler(3, |f: &mut Frame| {
        BP_RIP.store(f.rip, Ordering::SeqCst);
        irq::bump(3);
    });
    irq::reset(3);
    let after: u64;
    let mut counter: u64 = 0;
    // SAFETY: int3 traps to the handler above, which returns to the next instruction.
    unsafe {
        asm!(
            "lea {a}, [rip + 2f]",
            "int3",
            "2: inc {c}",
            a = out(reg) after,
            c = inout(reg) counter,
        )
    };
    idt::clear_handler(3);
    let n = irq::count(3);
    let rip = BP_RIP.load(Ordering::SeqCst);
    s.check(
        "exceptions.bp_int3_returns",
        n == 1 && rip == after && counter == 1,
        format_args!(
            "handler ran {} times, frame rip {:#x} (expected {:#x}, the next instruction), execution continued: {}",
            n, rip, after, counter == 1
        ),
    );
}

fn general_protection(s: &mut Suite) {
    // Loading selector 0x18 (beyond the 3-entry GDT) into DS: #GP(0x18).
    // SAFETY: the instruction is meant to fault; the runtime's exception catcher resumes after it, and the asm touches only the registers it names.
    let e = expect_exception(13, || unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "mov qword ptr [rip + {m}], rax",
            "mov eax, 0x18",
            "2: mov ds, ax",
            m = sym MARK,
            out("rax") _,
        )
    });
    if let Some(e) = at(s, "exceptions.gp_bad_segment", 13, e, mark()) {
        s.check(
            "exceptions.gp_error_code",
            e.error == 0x18,
            format_args!(
                "#GP error code {:#x}, expected 0x18 (the selector)",
                e.error
            ),
        );
    }
    // A non-canonical address: #GP(0).
    // SAFETY: the instruction is meant to fault; the runtime's exception catcher resumes after it, and the asm touches only the registers it names.
    let e = expect_exception(13, || unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "mov qword ptr [rip + {m}], rax",
            "mov rcx, 0x8000000000001000",
            "2: mov rax, [rcx]",
            m = sym MARK,
            out("rax") _, out("rcx") _,
        )
    });
    if let Some(e) = at(s, "exceptions.gp_noncanonical", 13, e, mark()) {
        s.check(
            "exceptions.gp_noncanonical_error",
            e.error == 0,
            format_args!("#GP error code {:#x}, expected 0", e.error),
        );
    }
}

fn page_fault(s: &mut Suite) {
    // 1 GiB + 0x1234 lies outside the runtime's 1 GiB identity map.
    const ADDR: u64 = 0x4000_1234;
    // SAFETY: the instruction is meant to fault; the runtime's exception catcher resumes after it, and the asm touches only the registers it names.
    let e = expect_exception(14, || unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "mov qword ptr [rip + {m}], rax",
            "2: mov eax, [rcx]",
            m = sym MARK,
            in("rcx") ADDR,
            out("rax") _,
        )
    });
    if let Some(e) = at(s, "exceptions.pf_read", 14, e, mark()) {
        s.check(
            "exceptions.pf_read_cr2",
            e.cr2 == ADDR,
            format_args!("CR2 {:#x}, expected {:#x}", e.cr2, ADDR),
        );
        s.check(
            "exceptions.pf_read_error",
            e.error & 0x7 == 0,
            format_args!("error code {:#x}: want P=0 W=0 U=0", e.error),
        );
    }
    const WADDR: u64 = 0x7fff_0008;
    // SAFETY: the instruction is meant to fault; the runtime's exception catcher resumes after it, and the asm touches only the registers it names.
    let e = expect_exception(14, || unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "mov qword ptr [rip + {m}], rax",
            "2: mov dword ptr [rcx], 0x11223344",
            m = sym MARK,
            in("rcx") WADDR,
            out("rax") _,
        )
    });
    if let Some(e) = at(s, "exceptions.pf_write", 14, e, mark()) {
        s.check(
            "exceptions.pf_write_cr2_error",
            e.cr2 == WADDR && e.error & 0x7 == 0x2,
            format_args!(
                "CR2 {:#x} error {:#x}: want CR2 {:#x} and P=0 W=1 U=0",
                e.cr2, e.error, WADDR
            ),
        );
    }
}

/// Runs `f`, which must raise #UD at its marked instruction.
fn expect_ud(s: &mut Suite, name: &str, what: &str, f: impl FnOnce()) {
    let e = expect_exception(6, f);
    let rip = mark();
    s.check(
        name,
        e.map(|e| e.rip) == Some(rip),
        format_args!("{}: {:?}, expected #UD at {:#x}", what, e, rip),
    );
}

macro_rules! ud_asm {
    ($($insn:literal),+) => {
        // SAFETY: the instruction is meant to fault; the runtime's exception catcher resumes after it, and the asm touches only the registers it names.
        || unsafe {
            asm!(
                "lea rax, [rip + 2f]",
                "mov qword ptr [rip + {m}], rax",
                "lea rax, [rip + {m}]",
                "2:",
                $($insn),+,
                m = sym MARK,
                out("rax") _,
            )
        }
    };
}

fn virtualization(s: &mut Suite) {
    let own = hypercall::insn();
    println!("hypercall instruction for this vendor: {}", own.name());
    match own {
        Insn::Vmmcall => expect_ud(
            s,
            "exceptions.ud_other_vendor_hypercall",
            "VMCALL on an AMD CPU",
            ud_asm!(".byte 0x0f, 0x01, 0xc1"),
        ),
        Insn::Vmcall => expect_ud(
            s,
            "exceptions.ud_other_vendor_hypercall",
            "VMMCALL on an Intel CPU",
            ud_asm!(".byte 0x0f, 0x01, 0xd9"),
        ),
    }
    // The vendor's own instruction is Janus' hypercall: VERSION answers RBX = 1.
    let mut ok = (0u64, 0u64);
    let e = idt::catch_exception(|| ok = hypercall::hypercall(hypercall::VERSION, 0, 0, 0, 0));
    s.check(
        "exceptions.vendor_hypercall_no_ud",
        e.is_none() && ok == (0, 1),
        format_args!(
            "{} (VERSION): exception {:?}, rax/rbx {:#x}/{:#x}; expected no exception and 0/1 (needs Janus)",
            own.name(), e.map(|e| e.vector), ok.0, ok.1
        ),
    );
    // VMX instructions with CR4.VMXE clear, SVM instructions with EFER.SVME clear.
    expect_ud(
        s,
        "exceptions.ud_vmxon",
        "VMXON [rax]",
        ud_asm!("vmxon qword ptr [rax]"),
    );
    expect_ud(
        s,
        "exceptions.ud_vmptrld",
        "VMPTRLD [rax]",
        ud_asm!("vmptrld qword ptr [rax]"),
    );
    expect_ud(
        s,
        "exceptions.ud_vmclear",
        "VMCLEAR [rax]",
        ud_asm!("vmclear qword ptr [rax]"),
    );
    expect_ud(
        s,
        "exceptions.ud_vmread",
        "VMREAD rax, rcx",
        ud_asm!("vmread rcx, rax"),
    );
    expect_ud(s, "exceptions.ud_vmlaunch", "VMLAUNCH", ud_asm!("vmlaunch"));
    expect_ud(s, "exceptions.ud_vmrun", "VMRUN", ud_asm!("vmrun rax"));
    expect_ud(s, "exceptions.ud_vmload", "VMLOAD", ud_asm!("vmload rax"));
    expect_ud(s, "exceptions.ud_vmsave", "VMSAVE", ud_asm!("vmsave rax"));
    expect_ud(s, "exceptions.ud_clgi", "CLGI", ud_asm!("clgi"));
    // MONITOR/MWAIT when CPUID says there are none (leaf 1 ECX bit 3): #UD, as on such a CPU.
    if janus_guests::cpuid(1, 0)[2] & (1 << 3) == 0 {
        // ECX/EDX (MONITOR) and EAX/ECX (MWAIT) zero: a CPU that does implement them
        // checks those before the hypervisor's intercept (#GP for bad extensions).
        expect_ud(
            s,
            "exceptions.ud_monitor",
            "MONITOR without CPUID.MONITOR",
            || {
                // SAFETY: MONITOR is meant to fault; the catcher resumes after it. RAX points
                // at MARK (valid memory), the clobbered registers are declared.
                unsafe {
                    asm!(
                        "lea rax, [rip + 2f]",
                        "mov qword ptr [rip + {m}], rax",
                        "lea rax, [rip + {m}]",
                        "2:",
                        "monitor",
                        m = sym MARK,
                        out("rax") _,
                        in("ecx") 0u32,
                        in("edx") 0u32,
                    )
                }
            },
        );
        expect_ud(
            s,
            "exceptions.ud_mwait",
            "MWAIT without CPUID.MONITOR",
            || {
                // SAFETY: MWAIT is meant to fault; the catcher resumes after it; EAX and ECX
                // (hints and extensions) are zero, the clobbered registers are declared.
                unsafe {
                    asm!(
                        "lea rdx, [rip + 2f]",
                        "mov qword ptr [rip + {m}], rdx",
                        "2:",
                        "mwait",
                        m = sym MARK,
                        out("rdx") _,
                        in("eax") 0u32,
                        in("ecx") 0u32,
                    )
                }
            },
        );
    } else {
        s.check_note(
            "exceptions.ud_monitor",
            true,
            format_args!("MONITOR is advertised"),
            format_args!(""),
        );
    }
}

fn software_int(s: &mut Suite) {
    idt::set_handler(0x80, |f: &mut Frame| {
        irq::bump(0x80);
        // A system call: RAX in, RAX out.
        f.rax = f.rax.wrapping_mul(3).wrapping_add(f.rdi);
    });
    irq::reset(0x80);
    let mut rax: u64 = 0x1000;
    // SAFETY: vector 0x80 has the handler above, which only changes RAX.
    unsafe { asm!("int 0x80", inout("rax") rax, in("rdi") 7u64) };
    idt::clear_handler(0x80);
    s.check(
        "exceptions.int80_handler",
        irq::count(0x80) == 1 && rax == 0x3007,
        format_args!(
            "handler ran {} times, rax {:#x} (expected 1 and 0x3007)",
            irq::count(0x80),
            rax
        ),
    );
}

fn external_hlt(s: &mut Suite) {
    let khz = time::tsc_khz();
    println!("tsc: {} kHz ({:?})", khz, time::tsc_source());
    let (svr, lint0) = apic::virtual_wire();
    println!(
        "lapic at boot: svr {:#x} lint0 {:#x}; now virtual wire (LINT0 ExtINT)",
        svr, lint0
    );
    // A guard: the LAPIC timer at vector 0x41 wakes the HLT after 200 ms if the PIT
    // interrupt never comes.
    let per_ms = apic::timer_ticks_per_ms(2);
    irq::count_on(0x41, irq::Eoi::Lapic);
    pc::pic_remap(0x20, 0x28);
    irq::count_on(0x20, irq::Eoi::Pic(0));
    pc::pic_set_mask(!0x0001);
    // PIT channel 0, mode 0 (one interrupt on terminal count) after ~2 ms. Taken again
    // when another guest had the CPU meanwhile (the many-guests rows): how soon a halted
    // guest wakes then is the scheduler's fair share, not the wake-up path.
    let us = time::measure(ATTEMPTS, || {
        irq::reset(0x20);
        irq::reset(0x41);
        pc::pit_program(0, 0, 2386);
        apic::timer_oneshot(0x41, (per_ms * 200).min(0xffff_ffff) as u32);
        let sw = Stopwatch::start();
        x86::sti_hlt_cli();
        let us = sw.us();
        apic::timer_stop();
        (us < TIMELY_US, us)
    });
    pc::pic_set_mask(0xffff);
    s.check(
        "exceptions.external_irq_wakes_hlt",
        irq::count(0x20) == 1 && irq::count(0x41) == 0,
        format_args!(
            "after sti;hlt: {} PIT interrupts at 0x20, {} guard timer interrupts at 0x41, {} us",
            irq::count(0x20),
            irq::count(0x41),
            us
        ),
    );
    s.check(
        "exceptions.external_irq_timely",
        us < TIMELY_US,
        format_args!("hlt woke after {} us; the PIT was due after 2 ms", us),
    );
}

/// DR6.BS: the #DB was a single-step (SDM Vol 3A 17.2.3).
const DR6_BS: u64 = 1 << 14;

/// RFLAGS.TF over an instruction Janus carries out for the guest (one that exits): the
/// CPU raises a single-step #DB right after it, with DR6.BS set (SDM Vol 3A 17.3.1.4),
/// and so must Janus. CPUID (which Janus may answer without its dispatcher, but not
/// under TF) and an OUT to the POST port (an exit that touches no device). TF is set
/// by the POPF just before the instruction (a POPF that sets TF does not trap itself);
/// should no #DB come after it, the CPU's own single-step after the next instruction
/// (PUSHF, which clears TF) is caught at the wrong RIP.
/// A single-stepped CPUID of leaf 0 after `$before` (the mark set at the instruction
/// after it, TF cleared again there; RBX kept in RSI).
macro_rules! single_stepped_cpuid {
    ($($before:literal),*) => {
        asm!(
            "mov rsi, rbx",
            "lea rdx, [rip + 2f]",
            "mov qword ptr [rip + {m}], rdx",
            $($before,)*
            "xor eax, eax",
            "xor ecx, ecx",
            "pushfq",
            "or qword ptr [rsp], 0x100",
            "popfq",
            "cpuid",
            "2: pushfq",
            "and qword ptr [rsp], ~0x100",
            "popfq",
            "mov rbx, rsi",
            m = sym MARK,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _,
        )
    };
}

fn single_step(s: &mut Suite) {
    // SAFETY: the asm sets TF and the single-step #DB is caught by the runtime, which
    // clears TF; CPUID's RBX is restored by the catch.
    let cpuid = || unsafe { single_stepped_cpuid!() };
    // SAFETY: as above; the POST port ignores what is written to it.
    let out_post = || unsafe {
        asm!(
            "lea rdx, [rip + 2f]",
            "mov qword ptr [rip + {m}], rdx",
            "xor eax, eax",
            "pushfq",
            "or qword ptr [rsp], 0x100",
            "popfq",
            "out 0x80, al",
            "2: pushfq",
            "and qword ptr [rsp], ~0x100",
            "popfq",
            m = sym MARK,
            out("rax") _, out("rdx") _,
        )
    };
    // SAFETY: as `cpuid`. The first CPUID (leaf 0, answered before) is one Janus
    // finishes in its backend's entry loop where the CPU says where it ends: the guest
    // enters again from there (on AMD-V from inside the world switch, `svm_run_again`),
    // and the single-stepped CPUID exits from that entry. Bochs' AMD-V then delivers the
    // pending single-step trap to Janus at the instruction after that VMRUN, which Janus
    // must know as well as the first entry's.
    let cpuid_after_cpuid =
        || unsafe { single_stepped_cpuid!("xor eax, eax", "xor ecx, ecx", "cpuid") };
    step_over(s, "exceptions.single_step_cpuid", cpuid);
    step_over(s, "exceptions.single_step_out", out_post);
    step_over(
        s,
        "exceptions.single_step_cpuid_after_one_in_place",
        cpuid_after_cpuid,
    );
}

/// Runs `f` (TF set just before an exiting instruction) and checks the #DB after it.
fn step_over(s: &mut Suite, name: &str, f: impl FnOnce()) {
    write_dr6(0);
    let e = catch_exception(f);
    let dr6 = read_dr6();
    let want = mark();
    match e {
        Some(e) if e.vector == 1 => s.check(
            name,
            e.rip == want && dr6 & DR6_BS != 0,
            format_args!("#DB at rip {:#x} (want {want:#x}), DR6 {dr6:#x}", e.rip),
        ),
        Some(e) => s.check(
            name,
            false,
            format_args!(
                "vector {} at rip {:#x}, want #DB at {want:#x}",
                e.vector, e.rip
            ),
        ),
        None => s.check(name, false, format_args!("no #DB at all")),
    };
}

fn read_dr6() -> u64 {
    let v: u64;
    // SAFETY: reading DR6 at CPL 0 has no side effects.
    unsafe { asm!("mov {}, dr6", out(reg) v) };
    v
}

fn write_dr6(v: u64) {
    // SAFETY: DR6 only reports; its reserved bits read back as the CPU fixes them.
    unsafe { asm!("mov dr6, {}", in(reg) v) };
}
