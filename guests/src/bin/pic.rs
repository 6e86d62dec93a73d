//! The i8259 PIC pair: Linux-style initialization (remapped to 0x20/0x28), PIT IRQ0 at
//! vector 0x20 with non-specific EOI, OCW3 IRR/ISR reads (ISR shows IRQ0 inside the
//! handler before the EOI), and masking.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use janus_guests::rt::idt::{self, Frame};
use janus_guests::rt::time::{self, Stopwatch};
use janus_guests::rt::{apic, irq, pc, x86};
use janus_guests::{entry, println, BootInfo, Suite};

entry!(main);

/// ISR as read inside the handler before the EOI (first interrupt), and the IRQ count.
static ISR_IN_HANDLER: AtomicU32 = AtomicU32::new(0xffff_ffff);

fn handler(_f: &mut Frame) {
    if irq::count(0x20) == 0 {
        ISR_IN_HANDLER.store(u32::from(pc::pic_isr()), Ordering::SeqCst);
    }
    irq::bump(0x20);
    pc::pic_eoi(0);
}

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("pic");
    println!("tsc: {} kHz ({:?})", time::tsc_khz(), time::tsc_source());
    let (svr, lint0) = apic::virtual_wire();
    println!(
        "lapic at boot: svr {:#x} lint0 {:#x}; now virtual wire (LINT0 ExtINT)",
        svr, lint0
    );

    pc::pic_remap(0x20, 0x28);
    pc::pic_set_mask(0xa5c3);
    let m = pc::pic_mask();
    s.check(
        "pic.imr_round_trip",
        m == 0xa5c3,
        format_args!(
            "wrote IMRs master 0xc3 slave 0xa5, read {:#x} {:#x}",
            m as u8,
            m >> 8
        ),
    );
    pc::pic_set_mask(0xffff);
    let isr = pc::pic_isr();
    s.check(
        "pic.isr_empty_after_init",
        isr == 0,
        format_args!("OCW3 read ISR after ICW1-4: {:#x}, expected 0", isr),
    );

    idt::set_handler(0x20, handler);
    irq::reset(0x20);
    // PIT channel 0, mode 2, 1193 ticks: ~1 kHz.
    pc::pit_program(0, 2, 1193);
    pc::pic_set_mask(!0x0001);

    // Interrupts off: IRQ0 is requested (IRR) but not in service (ISR).
    let pending = time::wait_until(20_000, || pc::pic_irr() & 1 != 0);
    let isr = pc::pic_isr();
    s.check(
        "pic.irr_shows_irq0_while_cli",
        pending && isr & 1 == 0,
        format_args!(
            "with IF=0 for up to 20 ms: IRR bit 0 {}, ISR {:#x} (want IRR bit 0 set, ISR 0)",
            pending, isr
        ),
    );

    // Five interrupts in at most 200 ms (`time::measure` takes it again when another
    // guest had the CPU meanwhile; a wrong rate fails every time).
    let (got, us, n) = time::measure(5, || {
        let base = irq::count(0x20);
        let sw = Stopwatch::start();
        x86::sti();
        let got = time::wait_until(200_000, || irq::count(0x20) >= base + 5);
        x86::cli();
        let us = sw.us();
        let n = irq::count(0x20) - base;
        (got && (2_500..=20_000).contains(&us), (got, us, n))
    });
    s.check(
        "pic.irq0_arrives",
        got,
        format_args!(
            "{} IRQ0 interrupts at vector 0x20 within {} us, expected >= 5 within 200 ms",
            n, us
        ),
    );
    s.check(
        "pic.irq0_rate",
        got && (2_500..=20_000).contains(&us),
        format_args!(
            "5 interrupts of a 1 kHz PIT took {} us, expected about 4000-5000",
            us
        ),
    );
    let isr_h = ISR_IN_HANDLER.load(Ordering::SeqCst);
    s.check(
        "pic.isr_in_handler",
        isr_h == 1,
        format_args!(
            "ISR read in the handler before EOI: {:#x}, expected 0x1 (IRQ0 only)",
            isr_h
        ),
    );
    let isr = pc::pic_isr();
    s.check(
        "pic.isr_clear_after_eoi",
        isr == 0,
        format_args!("ISR outside the handler after EOI: {:#x}, expected 0", isr),
    );

    // Masked: the PIT keeps requesting (IRR) but nothing is delivered.
    pc::pic_set_mask(0xffff);
    irq::reset(0x20);
    x86::sti();
    time::delay_us(20_000);
    x86::cli();
    let n = irq::count(0x20);
    let irr = pc::pic_irr();
    s.check(
        "pic.masked_irq0_not_delivered",
        n == 0,
        format_args!(
            "{} interrupts at 0x20 in 20 ms with IRQ0 masked, expected 0",
            n
        ),
    );
    s.check(
        "pic.masked_irq0_pending_in_irr",
        irr & 1 != 0,
        format_args!(
            "IRR {:#x} with IRQ0 masked and the PIT running: want bit 0 set",
            irr
        ),
    );
    // Unmasking delivers the pending request.
    pc::pic_set_mask(!0x0001);
    x86::sti();
    let got = time::wait_until(5_000, || irq::count(0x20) >= 1);
    x86::cli();
    s.check(
        "pic.unmask_delivers",
        got,
        format_args!("no interrupt at 0x20 within 5 ms of unmasking IRQ0"),
    );

    pc::pic_set_mask(0xffff);
    pc::pit_program(0, 0, 0xffff);
    // Let a request already raised before the mask drain.
    x86::open_window();
    let (stray, last) = idt::unexpected();
    s.check(
        "pic.no_stray_vectors",
        stray == 0,
        format_args!(
            "{} interrupts at vectors without a handler (last {:#x})",
            stray, last
        ),
    );
    s.finish()
}
