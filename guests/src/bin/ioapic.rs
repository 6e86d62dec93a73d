//! The IOAPIC at 0xFEC00000: ID and version (24 pins), redirection entries, COM1's IRQ4
//! on pin 4 delivered through the local APIC, a masked pin, and the PIT's IRQ0 on pin 2
//! (the ISA override).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use janus_guests::rt::apic::{self, REDIR_MASKED};
use janus_guests::rt::idt::{self, Frame};
use janus_guests::rt::irq::{self, Eoi};
use janus_guests::rt::pc::{self, UART_IER, UART_IIR, UART_LSR, UART_MCR};
use janus_guests::rt::{time, x86};
use janus_guests::{entry, inb, outb, println, BootInfo, Suite};

entry!(main);

const UART_VEC: u8 = 0x51;
const PIT_VEC: u8 = 0x52;
const PIN0_VEC: u8 = 0x53;

/// IIR as read by the UART handler (first interrupt).
static IIR_SEEN: AtomicU32 = AtomicU32::new(0xffff);

fn uart_handler(f: &mut Frame) {
    let iir = inb(UART_IIR);
    if irq::count(f.vector as u8) == 0 {
        IIR_SEEN.store(u32::from(iir), Ordering::SeqCst);
    }
    outb(UART_IER, 0);
    irq::bump(f.vector as u8);
    apic::eoi();
}

fn wait_irqs(vector: u8, n: u32, us: u64) -> bool {
    x86::sti();
    let ok = time::wait_until(us, || irq::count(vector) >= n);
    x86::cli();
    ok
}

/// Lets the transmitter drain so THRE is set, then clears any pending UART interrupt.
fn uart_quiet() {
    outb(UART_IER, 0);
    let _ = time::wait_until(20_000, || inb(UART_LSR) & 0x40 != 0);
    let _ = inb(UART_IIR);
}

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("ioapic");
    println!("tsc: {} kHz ({:?})", time::tsc_khz(), time::tsc_source());
    pc::pic_disable();
    apic::enable();
    let dest = apic::id();

    let ver = apic::ioapic_read(1);
    println!(
        "ioapic: id register {:#x}, version register {:#x}",
        apic::ioapic_read(0),
        ver
    );
    s.check(
        "ioapic.version",
        (ver >> 16) & 0xff == 23 && matches!(ver & 0xff, 0x11 | 0x20),
        format_args!("version register {:#x}: want max redirection entry 23 (bits 23:16) and version 0x11 or 0x20", ver),
    );
    let id = apic::ioapic_read(0);
    s.check(
        "ioapic.id",
        id & 0xf0ff_ffff == 0,
        format_args!("ID register {:#x}: only bits 27:24 may be set", id),
    );
    let unmasked: u32 = (0..24u8)
        .filter(|&p| apic::ioapic_entry(p) & REDIR_MASKED == 0)
        .fold(0, |m, p| m | 1 << p);
    s.check(
        "ioapic.entries_masked_at_boot",
        unmasked == 0,
        format_args!(
            "pins {:#x} were unmasked before the guest programmed them",
            unmasked
        ),
    );

    // Pin 4 (COM1) -> 0x51, fixed, physical, edge, active high.
    let want = u64::from(UART_VEC) | (u64::from(dest) << 56);
    apic::ioapic_route(4, UART_VEC, dest, 0);
    let e = apic::ioapic_entry(4);
    s.check(
        "ioapic.redirection_round_trip",
        e & !((1 << 12) | (1 << 14)) == want,
        format_args!("pin 4 entry reads {:#x}, wrote {:#x}", e, want),
    );

    // COM1 THRE interrupt: OUT2 + DTR + RTS, IER bit 1.
    idt::set_handler(UART_VEC, uart_handler);
    irq::reset(UART_VEC);
    uart_quiet();
    let mcr = inb(UART_MCR);
    outb(UART_MCR, 0x0b);
    outb(UART_IER, 0x02);
    let got = wait_irqs(UART_VEC, 1, 20_000);
    outb(UART_IER, 0);
    let iir = IIR_SEEN.load(Ordering::SeqCst);
    s.check(
        "ioapic.com1_irq4_delivered",
        got,
        format_args!(
            "no interrupt at {:#x} within 20 ms of enabling COM1's THRE interrupt (pin 4)",
            UART_VEC
        ),
    );
    s.check(
        "ioapic.com1_irq4_source",
        iir & 0x0f == 0x02,
        format_args!("IIR in the handler {:#x}: want 0x2 (THRE) in bits 3:0", iir),
    );

    // Masked pin 4: the UART requests, nothing arrives.
    apic::ioapic_mask(4);
    irq::reset(UART_VEC);
    uart_quiet();
    outb(UART_IER, 0x02);
    let _ = wait_irqs(UART_VEC, 1, 5_000);
    let iir = inb(UART_IIR);
    outb(UART_IER, 0);
    outb(UART_MCR, mcr);
    s.check(
        "ioapic.masked_pin_silent",
        irq::count(UART_VEC) == 0 && iir & 0x0f == 0x02,
        format_args!("pin 4 masked: {} interrupts at {:#x} in 5 ms (want 0); IIR {:#x} (want THRE pending, 0x2)", irq::count(UART_VEC), UART_VEC, iir),
    );
    uart_quiet();

    // PIT IRQ0 arrives on pin 2 (not pin 0). A timing check: taken again when another
    // guest had the CPU during the 50 ms (`time::measure`).
    let got = time::measure(3, || {
        irq::count_on(PIT_VEC, Eoi::Lapic);
        irq::count_on(PIN0_VEC, Eoi::Lapic);
        apic::ioapic_route(2, PIT_VEC, dest, 0);
        apic::ioapic_route(0, PIN0_VEC, dest, 0);
        pc::pit_program(0, 2, 1193);
        let got = wait_irqs(PIT_VEC, 3, 50_000);
        apic::ioapic_mask(2);
        apic::ioapic_mask(0);
        pc::pit_program(0, 0, 0xffff);
        (got, got)
    });
    x86::open_window();
    s.check(
        "ioapic.pit_irq0_on_pin2",
        got,
        format_args!(
            "{} interrupts at {:#x} (pin 2) within 50 ms of a 1 kHz PIT, want >= 3",
            irq::count(PIT_VEC),
            PIT_VEC
        ),
    );
    s.check(
        "ioapic.pit_not_on_pin0",
        irq::count(PIN0_VEC) == 0,
        format_args!(
            "{} interrupts at {:#x} (pin 0), want 0",
            irq::count(PIN0_VEC),
            PIN0_VEC
        ),
    );
    let isr = (0..8u32).fold(0u32, |a, i| a | apic::read(apic::ISR0 + i * 0x10));
    s.check(
        "ioapic.isr_clear",
        isr == 0,
        format_args!(
            "LAPIC ISR not empty after EOIs (OR of the 8 words {:#x})",
            isr
        ),
    );
    let (stray, last) = idt::unexpected();
    s.check(
        "ioapic.no_stray_vectors",
        stray == 0,
        format_args!(
            "{} interrupts at vectors without a handler (last {:#x})",
            stray, last
        ),
    );
    s.finish()
}
