//! The PC's legacy devices: the i8259 PIC pair, the i8254 PIT and COM1's registers.

use super::cpu::{inb, outb};

pub const PIC1_CMD: u16 = 0x20;
pub const PIC1_DATA: u16 = 0x21;
pub const PIC2_CMD: u16 = 0xa0;
pub const PIC2_DATA: u16 = 0xa1;

/// Initializes both PICs as Linux does (ICW1 0x11, ICW2 `base1`/`base2`, ICW3 4/2,
/// ICW4 1) and masks every IRQ.
pub fn pic_remap(base1: u8, base2: u8) {
    outb(PIC1_CMD, 0x11);
    outb(PIC1_DATA, base1);
    outb(PIC1_DATA, 0x04);
    outb(PIC1_DATA, 0x01);
    outb(PIC2_CMD, 0x11);
    outb(PIC2_DATA, base2);
    outb(PIC2_DATA, 0x02);
    outb(PIC2_DATA, 0x01);
    pic_set_mask(0xffff);
}

/// Takes the PICs out of the way for APIC-only suites: remaps them to 0x20/0x28 (so a
/// stray request cannot land on an exception vector, as the BIOS's base 0x08 would) and
/// masks every IRQ.
pub fn pic_disable() {
    pic_remap(0x20, 0x28);
}

/// Sets the IMR of both PICs: bits 0-7 master, 8-15 slave (1 = masked).
pub fn pic_set_mask(mask: u16) {
    outb(PIC1_DATA, mask as u8);
    outb(PIC2_DATA, (mask >> 8) as u8);
}

/// Reads both IMRs.
pub fn pic_mask() -> u16 {
    u16::from(inb(PIC1_DATA)) | (u16::from(inb(PIC2_DATA)) << 8)
}

/// Non-specific EOI for `irq` (to the slave too for IRQ 8-15).
pub fn pic_eoi(irq: u8) {
    if irq >= 8 {
        outb(PIC2_CMD, 0x20);
    }
    outb(PIC1_CMD, 0x20);
}

/// OCW3 read IRR of both PICs (bits 0-7 master, 8-15 slave).
pub fn pic_irr() -> u16 {
    outb(PIC1_CMD, 0x0a);
    outb(PIC2_CMD, 0x0a);
    u16::from(inb(PIC1_CMD)) | (u16::from(inb(PIC2_CMD)) << 8)
}

/// OCW3 read ISR of both PICs (bits 0-7 master, 8-15 slave).
pub fn pic_isr() -> u16 {
    outb(PIC1_CMD, 0x0b);
    outb(PIC2_CMD, 0x0b);
    u16::from(inb(PIC1_CMD)) | (u16::from(inb(PIC2_CMD)) << 8)
}

pub const PIT_CH0: u16 = 0x40;
pub const PIT_CH2: u16 = 0x42;
pub const PIT_CMD: u16 = 0x43;
/// Port 0x61: bit 0 gate 2, bit 1 speaker data, bit 5 OUT2 (read).
pub const PORT_61: u16 = 0x61;

/// Programs PIT channel `ch` (0-2) with mode `mode`, lobyte/hibyte access, binary, and
/// loads `count`.
pub fn pit_program(ch: u8, mode: u8, count: u16) {
    outb(PIT_CMD, (ch << 6) | 0x30 | (mode << 1));
    outb(PIT_CH0 + u16::from(ch), count as u8);
    outb(PIT_CH0 + u16::from(ch), (count >> 8) as u8);
}

/// Latches channel `ch`'s count (counter latch command) and reads it lo/hi.
pub fn pit_latch_read(ch: u8) -> u16 {
    outb(PIT_CMD, ch << 6);
    pit_read_count(ch)
}

/// Reads a count (or latched count) lo then hi (lobyte/hibyte access mode).
pub fn pit_read_count(ch: u8) -> u16 {
    let lo = inb(PIT_CH0 + u16::from(ch));
    let hi = inb(PIT_CH0 + u16::from(ch));
    u16::from(lo) | (u16::from(hi) << 8)
}

/// COM1's registers.
pub const COM1: u16 = 0x3f8;
pub const UART_RBR: u16 = COM1; // read, DLAB=0
pub const UART_THR: u16 = COM1; // write, DLAB=0
pub const UART_IER: u16 = COM1 + 1;
pub const UART_IIR: u16 = COM1 + 2; // read
pub const UART_FCR: u16 = COM1 + 2; // write
pub const UART_LCR: u16 = COM1 + 3;
pub const UART_MCR: u16 = COM1 + 4;
pub const UART_LSR: u16 = COM1 + 5;
pub const UART_MSR: u16 = COM1 + 6;
pub const UART_SCR: u16 = COM1 + 7;
pub const UART_DLL: u16 = COM1; // DLAB=1
pub const UART_DLM: u16 = COM1 + 1; // DLAB=1
