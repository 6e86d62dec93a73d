//! COM1, a 16550: scratch, line control and divisor latch round trips, loopback (data
//! and modem lines), and its THRE and RX interrupts through the PIC on IRQ4 (vector
//! 0x24). Nothing is printed while the UART is in loopback: results are printed after.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use janus_guests::rt::idt::{self, Frame};
use janus_guests::rt::pc::*;
use janus_guests::rt::{apic, irq, time, x86};
use janus_guests::{entry, inb, outb, println, BootInfo, Suite};

entry!(main);

const VEC: u8 = 0x24;

static IIR_SEEN: AtomicU32 = AtomicU32::new(0xffff);
static RBR_SEEN: AtomicU32 = AtomicU32::new(0xffff);

fn handler(_f: &mut Frame) {
    let iir = inb(UART_IIR);
    if irq::count(VEC) == 0 {
        IIR_SEEN.store(u32::from(iir), Ordering::SeqCst);
        if iir & 0x0f == 0x04 {
            RBR_SEEN.store(u32::from(inb(UART_RBR)), Ordering::SeqCst);
        }
    }
    outb(UART_IER, 0);
    irq::bump(VEC);
    pic_eoi(4);
}

fn wait_irqs(n: u32, us: u64) -> bool {
    x86::sti();
    let ok = time::wait_until(us, || irq::count(VEC) >= n);
    x86::cli();
    ok
}

fn drain_rx() {
    for _ in 0..64 {
        if inb(UART_LSR) & 1 == 0 {
            break;
        }
        let _ = inb(UART_RBR);
    }
}

/// Waits for the transmitter to be empty (bounded).
fn tx_idle() {
    let _ = time::wait_until(20_000, || inb(UART_LSR) & 0x60 == 0x60);
}

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("uart");
    println!("tsc: {} kHz ({:?})", time::tsc_khz(), time::tsc_source());

    let mut bad = None;
    for v in [0x00u8, 0xff, 0x5a, 0xa5, 0x01] {
        outb(UART_SCR, v);
        let r = inb(UART_SCR);
        if r != v {
            bad = Some((v, r));
        }
    }
    s.check(
        "uart.scratch",
        bad.is_none(),
        format_args!("scratch wrote/read {:x?}", bad),
    );

    tx_idle();
    let lcr = inb(UART_LCR);
    outb(UART_LCR, 0x80 | 0x03);
    let (dll0, dlm0) = (inb(UART_DLL), inb(UART_DLM));
    outb(UART_DLL, 0x0c);
    outb(UART_DLM, 0x01);
    let (dll, dlm) = (inb(UART_DLL), inb(UART_DLM));
    outb(UART_DLL, dll0);
    outb(UART_DLM, dlm0);
    let lcr_dlab = inb(UART_LCR);
    outb(UART_LCR, 0x03);
    let lcr_back = inb(UART_LCR);
    // 8N1 whatever it was: the console needs 8-bit characters.
    outb(UART_LCR, 0x03);
    s.check(
        "uart.divisor_latch",
        dll == 0x0c && dlm == 0x01,
        format_args!(
            "DLAB=1: wrote DLL 0x0c DLM 0x01, read {:#x} {:#x}",
            dll, dlm
        ),
    );
    s.check(
        "uart.lcr_round_trip",
        lcr_dlab == 0x83 && lcr_back == 0x03,
        format_args!("LCR wrote 0x83/0x03, read {:#x}/{:#x}", lcr_dlab, lcr_back),
    );
    println!(
        "divisor was {:#x}, LCR {:#x}",
        u16::from(dll0) | u16::from(dlm0) << 8,
        lcr
    );

    // Loopback: bytes come back in RBR; MSR reflects MCR's outputs.
    tx_idle();
    let mcr = inb(UART_MCR);
    outb(UART_IER, 0);
    outb(UART_FCR, 0x07); // FIFO on, both cleared
    outb(UART_MCR, 0x1f); // loop, OUT2, OUT1, RTS, DTR
    let msr_all = inb(UART_MSR);
    outb(UART_MCR, 0x10);
    let msr_none = inb(UART_MSR);
    drain_rx();
    let mut loop_bad = None;
    for v in [0x5au8, 0x00, 0xff, 0xa5] {
        outb(UART_THR, v);
        let dr = time::wait_until(10_000, || inb(UART_LSR) & 1 != 0);
        let r = inb(UART_RBR);
        let lsr = inb(UART_LSR);
        if !dr || r != v || lsr & 1 != 0 {
            loop_bad = Some((v, dr, r, lsr));
        }
    }
    outb(UART_MCR, mcr);
    s.check(
        "uart.loopback_data",
        loop_bad.is_none(),
        format_args!("(sent, LSR.DR seen, RBR, LSR after) = {:x?}", loop_bad),
    );
    s.check(
        "uart.loopback_modem_lines",
        msr_all & 0xf0 == 0xf0 && msr_none & 0xf0 == 0,
        format_args!(
            "loopback MSR with MCR 0x1f: {:#x} (want 0xf_), with MCR 0x10: {:#x} (want 0x0_)",
            msr_all, msr_none
        ),
    );

    // THRE interrupt through the PIC on IRQ4.
    let (svr, lint0) = apic::virtual_wire();
    println!(
        "lapic at boot: svr {:#x} lint0 {:#x}; now virtual wire (LINT0 ExtINT)",
        svr, lint0
    );
    pic_remap(0x20, 0x28);
    pic_set_mask(!(1 << 4));
    idt::set_handler(VEC, handler);
    irq::reset(VEC);
    tx_idle();
    let _ = inb(UART_IIR);
    outb(UART_MCR, 0x0b); // OUT2, RTS, DTR
    outb(UART_IER, 0x02);
    let got = wait_irqs(1, 20_000);
    outb(UART_IER, 0);
    let iir = IIR_SEEN.load(Ordering::SeqCst);
    s.check(
        "uart.thre_interrupt",
        got && iir & 0x0f == 0x02,
        format_args!("{} interrupts at {:#x} within 20 ms of IER=0x02; IIR in the handler {:#x} (want 0x2 in bits 3:0)", irq::count(VEC), VEC, iir),
    );

    // RX interrupt in loopback.
    tx_idle();
    drain_rx();
    irq::reset(VEC);
    IIR_SEEN.store(0xffff, Ordering::SeqCst);
    outb(UART_MCR, 0x1b); // loop, OUT2, RTS, DTR
    let _ = inb(UART_IIR);
    outb(UART_IER, 0x01);
    outb(UART_THR, 0x3c);
    let dr = time::wait_until(10_000, || inb(UART_LSR) & 1 != 0);
    let iir_polled = inb(UART_IIR);
    let got = wait_irqs(1, 20_000);
    outb(UART_IER, 0);
    drain_rx();
    outb(UART_MCR, mcr);
    let iir = IIR_SEEN.load(Ordering::SeqCst);
    let rbr = RBR_SEEN.load(Ordering::SeqCst);
    s.check(
        "uart.rx_pending_in_iir",
        dr && iir_polled & 0x0f == 0x04,
        format_args!(
            "loopback byte with IER=0x01: LSR.DR {}, IIR {:#x} (want 0x4, data available)",
            dr, iir_polled
        ),
    );
    s.check(
        "uart.rx_interrupt",
        got && iir & 0x0f == 0x04 && rbr == 0x3c,
        format_args!(
            "{} interrupts at {:#x}; IIR in the handler {:#x} (want 0x4), RBR {:#x} (want 0x3c)",
            irq::count(VEC),
            VEC,
            iir,
            rbr
        ),
    );
    pic_set_mask(0xffff);
    x86::open_window();
    let (stray, last) = idt::unexpected();
    s.check(
        "uart.no_stray_vectors",
        stray == 0,
        format_args!(
            "{} interrupts at vectors without a handler (last {:#x})",
            stray, last
        ),
    );
    s.finish()
}
