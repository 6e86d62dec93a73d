//! Counting interrupt handlers: `irq::count_on(vector, Eoi::Pic(irq))` installs a
//! handler that counts arrivals at `vector` and sends the EOI.

use super::{apic, idt, pc};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// Who gets the end-of-interrupt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Eoi {
    /// Nobody (software interrupts, or the suite does it).
    None,
    /// The PIC, non-specific, for this IRQ (slave too for 8-15).
    Pic(u8),
    /// The local APIC.
    Lapic,
}

static COUNTS: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];
/// 0: none; 1: LAPIC; 0x80 | irq: PIC.
static EOIS: [AtomicU8; 256] = [const { AtomicU8::new(0) }; 256];

fn counting(frame: &mut idt::Frame) {
    let v = frame.vector as usize;
    COUNTS[v].fetch_add(1, Ordering::SeqCst);
    match EOIS[v].load(Ordering::SeqCst) {
        0 => {}
        1 => apic::eoi(),
        e => pc::pic_eoi(e & 0x7f),
    }
}

/// Installs the counting handler at `vector`, resetting its count.
pub fn count_on(vector: u8, eoi: Eoi) {
    let e = match eoi {
        Eoi::None => 0,
        Eoi::Lapic => 1,
        Eoi::Pic(irq) => 0x80 | (irq & 0xf),
    };
    EOIS[vector as usize].store(e, Ordering::SeqCst);
    COUNTS[vector as usize].store(0, Ordering::SeqCst);
    idt::set_handler(vector, counting);
}

/// Arrivals at `vector` since `count_on`/`reset`.
pub fn count(vector: u8) -> u32 {
    COUNTS[vector as usize].load(Ordering::SeqCst)
}

/// Zeroes the count of `vector`.
pub fn reset(vector: u8) {
    COUNTS[vector as usize].store(0, Ordering::SeqCst);
}

/// Adds one to `vector`'s count (for suites' own handlers).
pub fn bump(vector: u8) {
    COUNTS[vector as usize].fetch_add(1, Ordering::SeqCst);
}
