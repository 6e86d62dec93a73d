//! The local APIC: base MSR, software enable through the SVR, ID and version, TPR,
//! the timer (one-shot, periodic, masked, TSC-deadline when CPUID.1:ECX[24] says so),
//! TPR holding a fixed self-IPI until lowered, ISR/EOI, and x2APIC mode when
//! CPUID.1:ECX[21] says so.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use janus_guests::rt::apic::{self, *};
use janus_guests::rt::idt::{self, Frame};
use janus_guests::rt::time;
use janus_guests::rt::x86::{self, rdtsc, wrmsr, MSR_APIC_BASE, MSR_TSC_DEADLINE};
use janus_guests::rt::{irq, pc};
use janus_guests::{cpuid, entry, println, rdmsr, BootInfo, Suite};

entry!(main);

const TIMER_VEC: u8 = 0x40;
const DEADLINE_VEC: u8 = 0x42;
const IPI_VEC: u8 = 0x45;
const HIGH_IPI_VEC: u8 = 0x65;
const X2_VEC: u8 = 0x46;

/// TSC at the last timer interrupt.
static LAST_TSC: AtomicU64 = AtomicU64::new(0);
/// Whether the ISR bit of the vector was set inside its handler (1) or not (2).
static ISR_SEEN: AtomicU64 = AtomicU64::new(0);

fn timer_handler(f: &mut Frame) {
    LAST_TSC.store(rdtsc(), Ordering::SeqCst);
    irq::bump(f.vector as u8);
    apic::eoi();
}

fn ipi_handler(f: &mut Frame) {
    let v = f.vector as u8;
    if irq::count(v) == 0 {
        ISR_SEEN.store(if apic::bit_set(ISR0, v) { 1 } else { 2 }, Ordering::SeqCst);
    }
    irq::bump(v);
    apic::eoi();
}

/// Enables interrupts for up to `us` microseconds or until `vector` arrived `n` times.
fn wait_irqs(vector: u8, n: u32, us: u64) -> bool {
    x86::sti();
    let ok = time::wait_until(us, || irq::count(vector) >= n);
    x86::cli();
    ok
}

/// How often an undisturbed timing measurement is taken before its check fails
/// (`time::measure` also takes again those during which another guest had the CPU).
const ATTEMPTS: u32 = 5;

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("lapic");
    println!("tsc: {} kHz ({:?})", time::tsc_khz(), time::tsc_source());

    pc::pic_disable();
    let base = rdmsr(MSR_APIC_BASE);
    s.check(
        "lapic.base_msr",
        base & 0xffff_f900 == 0xfee0_0900,
        format_args!(
            "IA32_APIC_BASE {:#x}: want base 0xfee00000, BSP (bit 8) and enable (bit 11)",
            base
        ),
    );

    apic::enable();
    let svr = apic::read(SVR);
    s.check(
        "lapic.svr_enable",
        svr & 0x1ff == 0x1ff,
        format_args!("wrote SVR 0x1ff, read {:#x}", svr),
    );
    let id = apic::id();
    let initial = cpuid(1, 0)[1] >> 24;
    s.check(
        "lapic.id",
        id == initial,
        format_args!(
            "APIC ID register {:#x} (id {}), CPUID.1:EBX[31:24] = {}",
            apic::read(ID),
            id,
            initial
        ),
    );
    let ver = apic::read(VERSION);
    s.check(
        "lapic.version",
        (0x10..=0x15).contains(&(ver & 0xff)) && (ver >> 16) & 0xff >= 3,
        format_args!(
            "version register {:#x}: want version 0x10-0x15 and max LVT >= 3",
            ver
        ),
    );
    apic::write(TPR, 0x20);
    let tpr = apic::read(TPR);
    apic::write(TPR, 0);
    s.check(
        "lapic.tpr_round_trip",
        tpr == 0x20,
        format_args!("wrote TPR 0x20, read {:#x}", tpr),
    );

    for v in [TIMER_VEC, DEADLINE_VEC] {
        idt::set_handler(v, timer_handler);
    }
    irq::reset(TIMER_VEC);
    let per_ms = apic::timer_ticks_per_ms(5);
    println!("lapic timer: {} ticks/ms at divide 16", per_ms);
    s.check(
        "lapic.timer_counts_down",
        per_ms > 10,
        format_args!(
            "the current count fell by {} ticks per ms (divide 16)",
            per_ms
        ),
    );

    // One-shot, 10 ms. Timed from the write of the initial count, which starts it; long
    // enough that an emulated CPU's exit costs (a fraction of a ms each) stay inside the
    // tolerance.
    let n = (per_ms * 10) as u32;
    let (fired, us) = time::measure(ATTEMPTS, || {
        irq::reset(TIMER_VEC);
        apic::write(TIMER_DIVIDE, DIVIDE_16);
        apic::write(LVT_TIMER, u32::from(TIMER_VEC));
        let t0 = rdtsc();
        apic::write(TIMER_INITIAL, n);
        let fired = wait_irqs(TIMER_VEC, 1, 100_000);
        let us = time::ticks_to_us(LAST_TSC.load(Ordering::SeqCst).wrapping_sub(t0));
        (fired && (7_500..=18_000).contains(&us), (fired, us))
    });
    s.check(
        "lapic.oneshot_fires",
        fired,
        format_args!(
            "no interrupt at {:#x} within 100 ms of a one-shot count {} (~10 ms)",
            TIMER_VEC, n
        ),
    );
    s.check(
        "lapic.oneshot_timing",
        // Never early; late by up to 80 % (an emulator's process can lose the host CPU).
        fired && (7_500..=18_000).contains(&us),
        format_args!(
            "one-shot of {} ticks fired after {} us, expected ~10000 (-25%..+80%)",
            n, us
        ),
    );
    let _ = wait_irqs(TIMER_VEC, 2, 12_000);
    let cur = apic::read(TIMER_CURRENT);
    s.check(
        "lapic.oneshot_once",
        irq::count(TIMER_VEC) == 1 && cur == 0,
        format_args!(
            "{} interrupts 12 ms after the one-shot (want 1); current count {} (want 0)",
            irq::count(TIMER_VEC),
            cur
        ),
    );

    // Periodic, 5 ms: the third interrupt after about 15 ms.
    let period = (per_ms * 5) as u32;
    let (got, us, cur) = time::measure(ATTEMPTS, || {
        irq::reset(TIMER_VEC);
        apic::write(TIMER_DIVIDE, DIVIDE_16);
        apic::write(LVT_TIMER, TIMER_PERIODIC | u32::from(TIMER_VEC));
        let t0 = rdtsc();
        apic::write(TIMER_INITIAL, period);
        let got = wait_irqs(TIMER_VEC, 3, 100_000);
        let us = time::ticks_to_us(LAST_TSC.load(Ordering::SeqCst).wrapping_sub(t0));
        let cur = apic::read(TIMER_CURRENT);
        apic::timer_stop();
        let _ = wait_irqs(TIMER_VEC, u32::MAX, 1_000);
        (got && (11_000..=27_000).contains(&us), (got, us, cur))
    });
    s.check(
        "lapic.periodic_repeats",
        got && (11_000..=27_000).contains(&us),
        format_args!(
            "{} interrupts of a 5 ms periodic timer; the third after {} us (want ~15000)",
            irq::count(TIMER_VEC),
            us
        ),
    );
    s.check(
        "lapic.periodic_reloads",
        cur != 0 && cur <= period,
        format_args!(
            "current count {} in periodic mode, want 1..={}",
            cur, period
        ),
    );
    // An interrupt the periodic timer raised just before it was stopped may still be
    // pending (stopping does not clear IRR): let it in before the next test.
    let _ = wait_irqs(TIMER_VEC, u32::MAX, 1_000);

    // Masked LVT: the count still runs out, nothing is delivered.
    irq::reset(TIMER_VEC);
    apic::write(LVT_TIMER, LVT_MASKED | TIMER_ONESHOT | u32::from(TIMER_VEC));
    apic::write(TIMER_INITIAL, per_ms as u32);
    let _ = wait_irqs(TIMER_VEC, 1, 5_000);
    let cur = apic::read(TIMER_CURRENT);
    apic::timer_stop();
    s.check(
        "lapic.masked_timer_silent",
        irq::count(TIMER_VEC) == 0 && cur == 0,
        format_args!(
            "masked 1 ms one-shot: {} interrupts in 5 ms (want 0), current count {} (want 0)",
            irq::count(TIMER_VEC),
            cur
        ),
    );

    tsc_deadline(&mut s);
    tpr_and_ipi(&mut s);
    x2apic(&mut s, per_ms);

    let (stray, last) = idt::unexpected();
    s.check(
        "lapic.no_stray_vectors",
        stray == 0,
        format_args!(
            "{} interrupts at vectors without a handler (last {:#x})",
            stray, last
        ),
    );
    s.finish()
}

fn tsc_deadline(s: &mut Suite) {
    if !apic::tsc_deadline_advertised() {
        s.check_note(
            "lapic.tsc_deadline_advertised_or_absent",
            true,
            format_args!("not advertised"),
            format_args!("unreachable"),
        );
        return;
    }
    s.check_note(
        "lapic.tsc_deadline_advertised_or_absent",
        true,
        format_args!("advertised"),
        format_args!("unreachable"),
    );
    irq::reset(DEADLINE_VEC);
    apic::write(LVT_TIMER, TIMER_TSC_DEADLINE | u32::from(DEADLINE_VEC));
    let deadline = rdtsc() + time::us_to_ticks(3_000);
    wrmsr(MSR_TSC_DEADLINE, deadline);
    let armed = rdmsr(MSR_TSC_DEADLINE);
    // A host that preempts the emulator for longer than the deadline makes the timer fire
    // before the read: then the MSR reads 0, as it must once the timer has fired.
    let expired_at_read = rdtsc() >= deadline;
    // Not before: wait until 1 ms before the deadline (or the interrupt, if it came).
    let _ = wait_irqs(DEADLINE_VEC, 1, 2_000);
    let early = if LAST_TSC.load(Ordering::SeqCst) < deadline {
        irq::count(DEADLINE_VEC)
    } else {
        0
    };
    let fired = wait_irqs(DEADLINE_VEC, 1, 50_000);
    let at = LAST_TSC.load(Ordering::SeqCst);
    let after = rdmsr(MSR_TSC_DEADLINE);
    s.check(
        "lapic.tsc_deadline_msr",
        armed == deadline || (armed == 0 && expired_at_read),
        format_args!("wrote IA32_TSC_DEADLINE {:#x}, read {:#x}", deadline, armed),
    );
    s.check(
        "lapic.tsc_deadline_not_early",
        early == 0 && (!fired || at >= deadline),
        format_args!(
            "{} interrupts 1 ms before the deadline; fired at TSC {:#x}, deadline {:#x}",
            early, at, deadline
        ),
    );
    s.check(
        "lapic.tsc_deadline_fires",
        fired && irq::count(DEADLINE_VEC) == 1,
        format_args!(
            "{} interrupts at {:#x} within 50 ms after a 3 ms deadline (want 1)",
            irq::count(DEADLINE_VEC),
            DEADLINE_VEC
        ),
    );
    s.check(
        "lapic.tsc_deadline_msr_cleared",
        after == 0,
        format_args!("IA32_TSC_DEADLINE reads {:#x} after firing, want 0", after),
    );
    // Writing 0 disarms. Taken again when another guest ran between the two writes for
    // longer than the 1 ms (seen with many guests: the deadline passed before the disarm).
    let fired = time::measure(ATTEMPTS, || {
        irq::reset(DEADLINE_VEC);
        wrmsr(MSR_TSC_DEADLINE, rdtsc() + time::us_to_ticks(1_000));
        wrmsr(MSR_TSC_DEADLINE, 0);
        let _ = wait_irqs(DEADLINE_VEC, 1, 3_000);
        let n = irq::count(DEADLINE_VEC);
        (n == 0, n)
    });
    s.check(
        "lapic.tsc_deadline_disarm",
        fired == 0,
        format_args!(
            "{} interrupts after writing 0 to IA32_TSC_DEADLINE (want 0)",
            fired
        ),
    );
    apic::timer_stop();
}

fn tpr_and_ipi(s: &mut Suite) {
    idt::set_handler(IPI_VEC, ipi_handler);
    idt::set_handler(HIGH_IPI_VEC, ipi_handler);
    irq::reset(IPI_VEC);
    irq::reset(HIGH_IPI_VEC);
    ISR_SEEN.store(0, Ordering::SeqCst);

    // TPR 0x50 holds vector 0x45 (class 4) but not 0x65 (class 6).
    apic::write(TPR, 0x50);
    apic::self_ipi(IPI_VEC);
    let icr = apic::read(ICR_LOW);
    let _ = wait_irqs(IPI_VEC, 1, 1_000);
    let held = irq::count(IPI_VEC);
    let pending = apic::bit_set(IRR0, IPI_VEC);
    s.check(
        "lapic.self_ipi_icr",
        icr & 0xff == u32::from(IPI_VEC) && icr & (1 << 12) == 0,
        format_args!(
            "ICR low reads {:#x} after a self-IPI: want vector {:#x}, delivery status idle",
            icr, IPI_VEC
        ),
    );
    s.check(
        "lapic.tpr_holds_ipi",
        held == 0 && pending,
        format_args!(
            "TPR 0x50, self-IPI {:#x}: {} deliveries in 1 ms (want 0), IRR bit {} (want set)",
            IPI_VEC, held, pending
        ),
    );
    apic::self_ipi(HIGH_IPI_VEC);
    let high = wait_irqs(HIGH_IPI_VEC, 1, 1_000);
    s.check(
        "lapic.tpr_passes_higher_class",
        high && irq::count(IPI_VEC) == 0,
        format_args!(
            "TPR 0x50, self-IPI {:#x}: delivered {}, and {:#x} {} times (want 1 and 0)",
            HIGH_IPI_VEC,
            irq::count(HIGH_IPI_VEC),
            IPI_VEC,
            irq::count(IPI_VEC)
        ),
    );
    apic::write(TPR, 0);
    ISR_SEEN.store(0, Ordering::SeqCst);
    let got = wait_irqs(IPI_VEC, 1, 1_000);
    s.check(
        "lapic.tpr_lowered_delivers",
        got && irq::count(IPI_VEC) == 1,
        format_args!(
            "after TPR 0: {} deliveries of {:#x} (want 1)",
            irq::count(IPI_VEC),
            IPI_VEC
        ),
    );
    let isr_in = ISR_SEEN.load(Ordering::SeqCst);
    let isr_after = apic::bit_set(ISR0, IPI_VEC);
    s.check(
        "lapic.isr_and_eoi",
        isr_in == 1 && !isr_after,
        format_args!(
            "ISR bit {:#x}: inside the handler {}, after EOI {} (want set, clear)",
            IPI_VEC,
            if isr_in == 1 { "set" } else { "clear" },
            if isr_after { "set" } else { "clear" }
        ),
    );
}

fn x2apic(s: &mut Suite, per_ms: u64) {
    if !apic::x2apic_advertised() {
        s.check_note(
            "lapic.x2apic_advertised_or_absent",
            true,
            format_args!("not advertised"),
            format_args!("unreachable"),
        );
        return;
    }
    s.check_note(
        "lapic.x2apic_advertised_or_absent",
        true,
        format_args!("advertised"),
        format_args!("unreachable"),
    );
    let mmio_ver = apic::read(VERSION);
    apic::enable_x2apic();
    let base = rdmsr(MSR_APIC_BASE);
    s.check(
        "lapic.x2apic_enable",
        base & 0xc00 == 0xc00,
        format_args!("IA32_APIC_BASE {:#x} after setting bits 10 and 11", base),
    );
    let id = rdmsr(0x802) as u32;
    let x2id = cpuid(0xb, 0)[3];
    let max_basic = cpuid(0, 0)[0];
    let want = if max_basic >= 0xb {
        x2id
    } else {
        cpuid(1, 0)[1] >> 24
    };
    s.check(
        "lapic.x2apic_id",
        id == want,
        format_args!("x2APIC ID MSR 0x802 = {:#x}, CPUID says {:#x}", id, want),
    );
    let ver = rdmsr(0x803) as u32;
    s.check(
        "lapic.x2apic_version",
        ver & 0xff00ff == mmio_ver & 0xff00ff,
        format_args!(
            "version MSR 0x803 = {:#x}, the xAPIC MMIO version was {:#x}",
            ver, mmio_ver
        ),
    );
    idt::set_handler(X2_VEC, ipi_handler);
    irq::reset(X2_VEC);
    wrmsr(0x83f, u64::from(X2_VEC)); // SELF IPI
    let got = wait_irqs(X2_VEC, 1, 1_000);
    s.check(
        "lapic.x2apic_self_ipi",
        got,
        format_args!(
            "no interrupt at {:#x} within 1 ms of a SELF IPI (MSR 0x83f)",
            X2_VEC
        ),
    );
    irq::reset(TIMER_VEC);
    apic::timer_oneshot(TIMER_VEC, per_ms as u32);
    let got = wait_irqs(TIMER_VEC, 1, 20_000);
    apic::timer_stop();
    s.check(
        "lapic.x2apic_timer",
        got,
        format_args!("no timer interrupt within 20 ms of a 1 ms one-shot in x2APIC mode"),
    );
}
