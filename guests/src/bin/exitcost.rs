//! The exit-cost benchmark, run as a suite: how many TSC ticks one round trip through
//! Janus costs for the common exits (CPUID, port I/O to an emulated device and to an
//! unclaimed port, RDMSR/WRMSR of an MSR Janus emulates, a hypercall, MMIO to the local
//! APIC, and a timer interrupt taken in HLT). Under Bochs (`clock: sync=none`) and QEMU
//! with `-icount` the TSC counts instructions, so the figures are the exit path's length
//! in instructions, reproducible run to run (`cargo janus bench exits` tabulates them).
//! The checks prove each loop really exited (the EXIT_COUNT hypercall grew by at least
//! one exit per iteration) and that every timer interrupt arrived; the figures are
//! printed, not judged.
//!
//! Each figure is TSC ticks for N iterations of the loop divided by N: the exit, its
//! instruction, and the loop around it (a few instructions: `no_exit` is the same loop
//! around a NOP). Each loop runs ATTEMPTS times and the attempt with the fewest exits
//! (then the fewest ticks) is printed, so that a host timer interrupt landing in one
//! attempt does not shift the figure.
#![no_std]
#![no_main]

use janus_guests::rt::apic::{
    self, LVT_ERROR, LVT_MASKED, LVT_TIMER, TIMER_CURRENT, TIMER_DIVIDE, TIMER_INITIAL,
    TIMER_ONESHOT,
};
use janus_guests::rt::hypercall::{self, hypercall};
use janus_guests::rt::x86::{self, rdtsc, wrmsr, MSR_APIC_BASE};
use janus_guests::rt::{args, irq, pc, time};
use janus_guests::{cpuid, entry, inb, outb, println, rdmsr, BootInfo, Suite};

entry!(main);

/// Iterations of one timed loop.
const N: u64 = 200;
/// Timed loops per exit; the one with the fewest exits is printed.
const ATTEMPTS: u32 = 3;
/// COM1's scratch register: an emulated device register with no side effects.
const COM1_SCR: u16 = 0x3ff;
/// A port nothing decodes.
const UNCLAIMED: u16 = 0x300;
/// The vector of the one-shot timer.
const TIMER_VEC: u8 = 0x41;
/// Divide configuration "divide by 1".
const DIVIDE_1: u32 = 0xb;
/// The LAPIC registers of the MMIO rows: ones whose accesses exit on every CPU, whatever
/// it virtualizes (VT-x with virtual-interrupt delivery carries out TPR accesses in the
/// virtual-APIC page, SDM Vol 3C 30.4): the timer's current count, which a CPU never
/// reads from a page (it counts), and the error LVT entry, written masked as after reset.
const MMIO_READ: u32 = TIMER_CURRENT;
const MMIO_WRITE: u32 = LVT_ERROR;

fn exits() -> u64 {
    hypercall(hypercall::EXIT_COUNT, 0, 0, 0, 0).1
}

/// One timed loop: ticks per iteration, and the exits taken during it (the EXIT_COUNT
/// hypercall that ends it included).
#[derive(Clone, Copy)]
struct Sample {
    ticks: u64,
    exits: u64,
}

/// The vector of the timer that ends [`console_out`]'s sleep.
const SLEEP_VEC: u8 = 0x42;
/// How long [`console_out`] sleeps: the previous figure's lines (about 110 bytes) take
/// 29 ms at 38,400 baud, the host UART's rate under `uart_16550`.
const CONSOLE_OUT_NS: u32 = 100_000_000;

/// Sleeps in HLT before a loop is timed (and before the timer is set up for one), so
/// that Janus' console has sent what is queued (the previous figure's lines) meanwhile:
/// while output is queued, one exit in 65 of a kind that Janus could finish in place
/// goes through its dispatcher to send some
/// (`vmm_core::in_place::WHILE_HOST_WAITS`), and each exit there sends what the UART
/// takes; that would count in the figure. The LAPIC's one-shot timer at divide 1 counts
/// Janus' 1 GHz APIC clock.
fn console_out() {
    pc::pic_disable();
    apic::enable();
    irq::count_on(SLEEP_VEC, irq::Eoi::Lapic);
    irq::reset(SLEEP_VEC);
    apic::write(TIMER_DIVIDE, DIVIDE_1);
    apic::write(LVT_TIMER, TIMER_ONESHOT | u32::from(SLEEP_VEC));
    apic::write(TIMER_INITIAL, CONSOLE_OUT_NS);
    while irq::count(SLEEP_VEC) == 0 {
        x86::sti_hlt_cli();
    }
}

/// Times N iterations of `op` ATTEMPTS times (each after one untimed warm-up call) and
/// keeps the attempt with the fewest exits, then the fewest ticks.
fn sample(mut op: impl FnMut()) -> Sample {
    let mut best: Option<Sample> = None;
    for _ in 0..ATTEMPTS {
        op(); // warm up
        let before = exits();
        let t0 = rdtsc();
        for _ in 0..N {
            op();
        }
        let ticks = (rdtsc() - t0) / N;
        let taken = exits() - before;
        let s = Sample {
            ticks,
            exits: taken,
        };
        best = match best {
            Some(b) if (b.exits, b.ticks) <= (s.exits, s.ticks) => Some(b),
            _ => Some(s),
        };
    }
    best.unwrap_or(Sample { ticks: 0, exits: 0 })
}

fn print(name: &str, s: Sample) {
    println!(
        "exit cost {}: {} TSC ticks per round trip ({} exits for {} iterations)",
        name, s.ticks, s.exits, N
    );
}

/// Times `op` and checks that every iteration exited.
fn measure(s: &mut Suite, name: &str, op: impl FnMut()) {
    console_out();
    let m = sample(op);
    print(name, m);
    s.check(
        &name_of(name),
        m.exits > N,
        format_args!(
            "{} iterations of {} took {} exits; each should exit",
            N, name, m.exits
        ),
    );
}

fn name_of(name: &str) -> arrayvec_name::Name {
    arrayvec_name::Name::new(name)
}

mod arrayvec_name {
    /// "exitcost.NAME" without an allocator.
    pub struct Name {
        buf: [u8; 48],
        len: usize,
    }
    impl Name {
        pub fn new(n: &str) -> Self {
            let mut buf = [0u8; 48];
            let prefix = b"exitcost.";
            buf[..prefix.len()].copy_from_slice(prefix);
            let m = n.len().min(48 - prefix.len());
            buf[prefix.len()..prefix.len() + m].copy_from_slice(&n.as_bytes()[..m]);
            Name {
                buf,
                len: prefix.len() + m,
            }
        }
    }
    impl core::ops::Deref for Name {
        type Target = str;
        fn deref(&self) -> &str {
            core::str::from_utf8(&self.buf[..self.len]).unwrap_or("exitcost")
        }
    }
}

fn nop() {
    // SAFETY: a NOP changes nothing; it keeps the loop from being optimised away.
    unsafe { core::arch::asm!("nop", options(nostack, nomem, preserves_flags)) };
}

/// A LAPIC one-shot timer interrupt taken in HLT. Each iteration arms the timer with an
/// initial count of 1 at divide 1 (1 ns of Janus' 1 GHz APIC timer clock: less than one
/// TSC tick under Bochs' 10 MHz TSC, one under QEMU's icount, so the programmed wait is
/// nothing to subtract), then `sti; hlt; cli`; the handler (the runtime's stub: 15
/// registers saved, a Rust call) counts the interrupt, writes the EOI and IRETs. So one
/// round trip is: the MMIO write of the initial count (an exit), HLT (an exit), the
/// interrupt's injection, the handler with its EOI (an MMIO write: an exit), IRET.
fn interrupt(s: &mut Suite) {
    // Before the timer is set up for the loop: the sleep uses it too.
    console_out();
    timer_setup();
    // First one interrupt waited for with a bounded poll: a timer that never fires must
    // fail the check, not leave the guest in HLT for good.
    apic::write(TIMER_INITIAL, 1);
    x86::sti();
    let fired = time::wait_until(100_000, || irq::count(TIMER_VEC) >= 1);
    x86::cli();
    s.check(
        "exitcost.irq_fires",
        fired,
        format_args!(
            "a one-shot LAPIC timer of count 1 at vector {:#x}: no interrupt within 100 ms",
            TIMER_VEC
        ),
    );
    if !fired {
        apic::timer_stop();
        return;
    }
    irq::reset(TIMER_VEC);
    let m = sample(|| {
        apic::write(TIMER_INITIAL, 1);
        x86::sti_hlt_cli();
    });
    apic::timer_stop();
    let got = u64::from(irq::count(TIMER_VEC));
    let want = u64::from(ATTEMPTS) * (N + 1);
    print("irq_oneshot_hlt", m);
    s.check(
        "exitcost.irq_oneshot_hlt",
        got == want && m.exits > N,
        format_args!(
            "{} interrupts for {} one-shots (want one each), {} exits for {} iterations",
            got, want, m.exits, N
        ),
    );
}

/// Iterations of a profiled loop before the breakpoint: its first exits go to the
/// dispatcher (a CPUID not answered yet; while the profiling line is still going out,
/// every 65th, `in_place::WHILE_HOST_WAITS`), the trace wants the steady ones (of which
/// every 1,025th still goes there, `in_place::WHILE_HOST_IDLE`).
const PROFILE_WARMUP: u32 = 2000;

/// `profile=NAME`: runs loop NAME for good instead of the suite, so that a debugger's
/// instruction trace (docs/testing.md, "Profiling an exit") sees only that exit. After
/// [`PROFILE_WARMUP`] iterations it executes Bochs' magic breakpoint
/// ([`x86::magic_break`]), where `cargo janus profile` starts tracing.
fn profile(name: &str) -> ! {
    let base = rdmsr(MSR_APIC_BASE);
    let step: fn(u64) = match name {
        "irq_oneshot_hlt" => {
            timer_setup();
            |_| {
                apic::write(TIMER_INITIAL, 1);
                x86::sti_hlt_cli();
            }
        }
        "cpuid" => |_| {
            cpuid(0, 0);
        },
        "out_com1_scr" => |_| outb(COM1_SCR, 0x5a),
        "in_com1_scr" => |_| {
            inb(COM1_SCR);
        },
        "in_unclaimed" => |_| {
            inb(UNCLAIMED);
        },
        "rdmsr_apic_base" => |_| {
            rdmsr(MSR_APIC_BASE);
        },
        "wrmsr_apic_base" => |base| wrmsr(MSR_APIC_BASE, base),
        "hypercall" => |_| {
            hypercall(hypercall::VERSION, 0, 0, 0, 0);
        },
        "mmio_apic_read" => |_| {
            apic::mmio_read(MMIO_READ);
        },
        "mmio_apic_write" => |_| apic::mmio_write(MMIO_WRITE, LVT_MASKED),
        _ => {
            println!("exitcost: no loop named {}", name);
            janus_guests::exit(1);
        }
    };
    println!("exitcost: profiling {} (runs for good)", name);
    for _ in 0..PROFILE_WARMUP {
        step(base);
    }
    x86::magic_break();
    loop {
        step(base);
    }
}

/// The local APIC's timer one-shot at divide 1 on TIMER_VEC, counted, the PIC off.
fn timer_setup() {
    pc::pic_disable();
    apic::enable();
    irq::count_on(TIMER_VEC, irq::Eoi::Lapic);
    apic::write(TIMER_DIVIDE, DIVIDE_1);
    apic::write(LVT_TIMER, TIMER_ONESHOT | u32::from(TIMER_VEC));
}

fn main(boot: &BootInfo) -> ! {
    apic::map_mmio();
    if let Some(name) = args::arg(boot.cmdline(), "profile") {
        profile(name);
    }
    let mut s = Suite::new("exitcost");
    // The loop alone, without an exit: what to subtract from the others for the exit
    // alone. Not a check (no exit is expected, but a host interrupt may add one).
    print("no_exit", sample(nop));
    measure(&mut s, "cpuid", || {
        cpuid(0, 0);
    });
    measure(&mut s, "out_com1_scr", || outb(COM1_SCR, 0x5a));
    measure(&mut s, "in_com1_scr", || {
        inb(COM1_SCR);
    });
    measure(&mut s, "in_unclaimed", || {
        inb(UNCLAIMED);
    });
    // IA32_APIC_BASE: not passed through (vmm-core/src/msr.rs PASSTHROUGH); the
    // platform's local APIC answers it. The write keeps the value.
    let base = rdmsr(MSR_APIC_BASE);
    measure(&mut s, "rdmsr_apic_base", || {
        rdmsr(MSR_APIC_BASE);
    });
    measure(&mut s, "wrmsr_apic_base", || wrmsr(MSR_APIC_BASE, base));
    measure(&mut s, "hypercall", || {
        hypercall(hypercall::VERSION, 0, 0, 0, 0);
    });
    measure(&mut s, "mmio_apic_read", || {
        apic::mmio_read(MMIO_READ);
    });
    measure(&mut s, "mmio_apic_write", || {
        apic::mmio_write(MMIO_WRITE, LVT_MASKED)
    });
    interrupt(&mut s);
    s.finish()
}
