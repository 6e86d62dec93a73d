//! The local APIC (xAPIC MMIO at 0xFEE00000 or x2APIC MSRs) and the IOAPIC at
//! 0xFEC00000. The boot code maps only the first 1 GiB, so [`map_mmio`] maps the top
//! GiB below 4 GiB (uncached) first; the accessors call it.

use super::cpu::{cpuid, rdmsr};
use super::x86::{read_cr3, write_cr3, wrmsr, MSR_APIC_BASE};
use core::sync::atomic::{AtomicBool, Ordering};

/// The xAPIC's default physical base.
pub const LAPIC_BASE: u64 = 0xfee0_0000;
/// The IOAPIC's physical base.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;

// Local APIC register offsets (xAPIC MMIO; x2APIC MSR = 0x800 + offset / 16).
pub const ID: u32 = 0x20;
pub const VERSION: u32 = 0x30;
pub const TPR: u32 = 0x80;
pub const PPR: u32 = 0xa0;
pub const EOI: u32 = 0xb0;
pub const LDR: u32 = 0xd0;
/// Destination format register (xAPIC only; 0xFFFFFFFF = flat model).
pub const DFR: u32 = 0xe0;
pub const SVR: u32 = 0xf0;
pub const ISR0: u32 = 0x100;
pub const TMR0: u32 = 0x180;
pub const IRR0: u32 = 0x200;
pub const ESR: u32 = 0x280;
pub const ICR_LOW: u32 = 0x300;
pub const ICR_HIGH: u32 = 0x310;
pub const LVT_TIMER: u32 = 0x320;
pub const LVT_LINT0: u32 = 0x350;
pub const LVT_LINT1: u32 = 0x360;
pub const LVT_ERROR: u32 = 0x370;
pub const TIMER_INITIAL: u32 = 0x380;
pub const TIMER_CURRENT: u32 = 0x390;
pub const TIMER_DIVIDE: u32 = 0x3e0;

/// LVT mask bit.
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT timer modes (bits 18:17).
pub const TIMER_ONESHOT: u32 = 0 << 17;
pub const TIMER_PERIODIC: u32 = 1 << 17;
pub const TIMER_TSC_DEADLINE: u32 = 2 << 17;
/// Divide configuration value for divide-by-16.
pub const DIVIDE_16: u32 = 0x3;
/// The spurious vector the runtime programs in the SVR.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// CPUID.1:ECX bit 21.
pub fn x2apic_advertised() -> bool {
    cpuid(1, 0)[2] & (1 << 21) != 0
}

/// CPUID.1:ECX bit 24.
pub fn tsc_deadline_advertised() -> bool {
    cpuid(1, 0)[2] & (1 << 24) != 0
}

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut MMIO_PD: Table = Table([0; 512]);
static MAPPED: AtomicBool = AtomicBool::new(false);

/// Maps 0xC0000000-0xFFFFFFFF 1:1 with uncached 2 MiB pages (PDPT entry 3). Idempotent.
/// 1 GiB-3 GiB stays unmapped (a #PF there is what the exceptions suite wants).
pub fn map_mmio() {
    if MAPPED.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: the boot code's tables are identity-mapped in the first GiB; PDPT entry 3
    // is unused; the new PD lives in .bss (identity-mapped, 4 KiB aligned).
    unsafe {
        let pd = &mut *core::ptr::addr_of_mut!(MMIO_PD);
        for (i, e) in pd.0.iter_mut().enumerate() {
            // present, writable, PWT, PCD, PS
            *e = (0xc000_0000 + ((i as u64) << 21)) | 0x9b;
        }
        let pml4 = (read_cr3() & !0xfff) as *const u64;
        let pdpt = (pml4.read_volatile() & 0x000f_ffff_ffff_f000) as *mut u64;
        pdpt.add(3).write_volatile(pd as *mut Table as u64 | 3);
    }
    write_cr3(read_cr3());
}

static X2APIC: AtomicBool = AtomicBool::new(false);

/// Whether the runtime accesses the local APIC through x2APIC MSRs.
pub fn in_x2apic_mode() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// Switches to x2APIC mode (APIC base bits 10 and 11) and uses MSRs from now on.
pub fn enable_x2apic() {
    let base = rdmsr(MSR_APIC_BASE);
    wrmsr(MSR_APIC_BASE, base | (1 << 11) | (1 << 10));
    X2APIC.store(true, Ordering::Relaxed);
}

/// Reads xAPIC register `off` through MMIO (regardless of mode).
pub fn mmio_read(off: u32) -> u32 {
    map_mmio();
    // SAFETY: the LAPIC page is mapped uncached by `map_mmio`.
    unsafe { ((LAPIC_BASE + u64::from(off)) as *const u32).read_volatile() }
}

/// Writes xAPIC register `off` through MMIO.
pub fn mmio_write(off: u32, v: u32) {
    map_mmio();
    // SAFETY: as for `mmio_read`.
    unsafe { ((LAPIC_BASE + u64::from(off)) as *mut u32).write_volatile(v) }
}

/// Reads local APIC register `off` in the current mode.
pub fn read(off: u32) -> u32 {
    if in_x2apic_mode() {
        rdmsr(0x800 + off / 16) as u32
    } else {
        mmio_read(off)
    }
}

/// Writes local APIC register `off` in the current mode.
pub fn write(off: u32, v: u32) {
    if in_x2apic_mode() {
        wrmsr(0x800 + off / 16, u64::from(v))
    } else {
        mmio_write(off, v)
    }
}

/// Sends an IPI: `low` is ICR bits 31:0, `dest` the destination APIC ID.
pub fn send_ipi(low: u32, dest: u32) {
    if in_x2apic_mode() {
        wrmsr(0x830, (u64::from(dest) << 32) | u64::from(low));
    } else {
        mmio_write(ICR_HIGH, dest << 24);
        mmio_write(ICR_LOW, low);
    }
}

// ICR fields (SDM Vol 3A 11.6.1): delivery mode (bits 10:8), destination mode (bit 11),
// delivery status (bit 12), level (bit 14), trigger mode (bit 15), shorthand (19:18).
pub const ICR_FIXED: u32 = 0 << 8;
pub const ICR_LOWEST: u32 = 1 << 8;
pub const ICR_NMI: u32 = 4 << 8;
pub const ICR_INIT: u32 = 5 << 8;
pub const ICR_STARTUP: u32 = 6 << 8;
pub const ICR_LOGICAL: u32 = 1 << 11;
pub const ICR_PENDING: u32 = 1 << 12;
pub const ICR_ASSERT: u32 = 1 << 14;
pub const ICR_SELF: u32 = 1 << 18;
pub const ICR_ALL_INCLUDING_SELF: u32 = 2 << 18;
pub const ICR_ALL_EXCLUDING_SELF: u32 = 3 << 18;

/// Waits (at most `us` microseconds) until the xAPIC ICR's delivery status says the
/// last IPI was sent; returns whether it did. x2APIC has no delivery status: true.
pub fn wait_icr_idle(us: u64) -> bool {
    in_x2apic_mode() || super::time::wait_until(us, || mmio_read(ICR_LOW) & ICR_PENDING == 0)
}

/// A fixed self-IPI at `vector` (ICR destination shorthand "self").
pub fn self_ipi(vector: u8) {
    send_ipi((1 << 18) | u32::from(vector), 0);
}

/// Software-enables the local APIC: SVR = enable | spurious vector 0xFF, TPR = 0,
/// and installs a handler for the spurious vector.
pub fn enable() {
    map_mmio();
    super::idt::set_handler(SPURIOUS_VECTOR, |_| {});
    write(SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(TPR, 0);
}

/// Signals end of interrupt.
pub fn eoi() {
    write(EOI, 0);
}

/// The local APIC ID (bits 31:24 in xAPIC mode, the whole register in x2APIC mode).
pub fn id() -> u32 {
    let v = read(ID);
    if in_x2apic_mode() {
        v
    } else {
        v >> 24
    }
}

/// Whether bit `vector` is set in the 256-bit register array at `base` (ISR0/TMR0/IRR0).
pub fn bit_set(base: u32, vector: u8) -> bool {
    let reg = base + u32::from(vector / 32) * 0x10;
    read(reg) & (1 << (vector % 32)) != 0
}

/// Reads IOAPIC register `reg` (IOREGSEL at +0, IOWIN at +0x10).
pub fn ioapic_read(reg: u32) -> u32 {
    map_mmio();
    // SAFETY: the IOAPIC page is mapped uncached by `map_mmio`.
    unsafe {
        (IOAPIC_BASE as *mut u32).write_volatile(reg);
        ((IOAPIC_BASE + 0x10) as *const u32).read_volatile()
    }
}

/// Writes IOAPIC register `reg`.
pub fn ioapic_write(reg: u32, v: u32) {
    map_mmio();
    // SAFETY: as for `ioapic_read`.
    unsafe {
        (IOAPIC_BASE as *mut u32).write_volatile(reg);
        ((IOAPIC_BASE + 0x10) as *mut u32).write_volatile(v);
    }
}

/// IOAPIC redirection entry flags.
pub const REDIR_MASKED: u64 = 1 << 16;
pub const REDIR_LEVEL: u64 = 1 << 15;
pub const REDIR_ACTIVE_LOW: u64 = 1 << 13;

/// Programs redirection entry `pin`: fixed delivery, physical destination `dest`.
pub fn ioapic_route(pin: u8, vector: u8, dest: u32, flags: u64) {
    let v = u64::from(vector) | flags | (u64::from(dest) << 56);
    let reg = 0x10 + 2 * u32::from(pin);
    // Mask first, then write the high half, then the low half.
    ioapic_write(reg, REDIR_MASKED as u32);
    ioapic_write(reg + 1, (v >> 32) as u32);
    ioapic_write(reg, v as u32);
}

/// Reads redirection entry `pin`.
pub fn ioapic_entry(pin: u8) -> u64 {
    let reg = 0x10 + 2 * u32::from(pin);
    u64::from(ioapic_read(reg)) | (u64::from(ioapic_read(reg + 1)) << 32)
}

/// Masks redirection entry `pin`.
pub fn ioapic_mask(pin: u8) {
    let reg = 0x10 + 2 * u32::from(pin);
    let lo = ioapic_read(reg);
    ioapic_write(reg, lo | REDIR_MASKED as u32);
}

/// Puts the local APIC in virtual-wire mode, as a PC BIOS leaves it and as Linux sets it
/// up for the PIC: software-enabled (SVR), LINT0 = ExtINT, LINT1 = NMI. The i8259's INTR
/// reaches the CPU through LINT0. Returns (SVR, LINT0) as found. Does nothing but read
/// if the APIC is globally disabled (APIC base bit 11 clear): INTR then goes straight in.
pub fn virtual_wire() -> (u32, u32) {
    if rdmsr(MSR_APIC_BASE) & (1 << 11) == 0 {
        return (0, 0);
    }
    let found = (read(SVR), read(LVT_LINT0));
    enable();
    write(LVT_LINT0, 0x700);
    write(LVT_LINT1, 0x400);
    found
}

/// Measures the local APIC timer's rate at divide-by-16: timer ticks per millisecond,
/// over `ms` milliseconds of TSC time, with the LVT timer masked. Leaves it stopped.
pub fn timer_ticks_per_ms(ms: u64) -> u64 {
    // Taken again if another guest had the CPU meanwhile: the TSC runs on while this
    // guest waits, and a wait between a count read and its TSC read skews the rate.
    super::time::undisturbed(|| {
        write(LVT_TIMER, LVT_MASKED | u32::from(SPURIOUS_VECTOR - 1));
        write(TIMER_DIVIDE, DIVIDE_16);
        write(TIMER_INITIAL, 0xffff_ffff);
        let sw = super::time::Stopwatch::start();
        let start = read(TIMER_CURRENT);
        super::time::delay_us(ms * 1000);
        let end = read(TIMER_CURRENT);
        let us = sw.us().max(1);
        write(TIMER_INITIAL, 0);
        (u64::from(start.wrapping_sub(end)) * 1000 / us).max(1)
    })
}

/// Starts a masked-or-not one-shot timer at `vector` firing after `ticks` (divide 16).
pub fn timer_oneshot(vector: u8, ticks: u32) {
    write(TIMER_DIVIDE, DIVIDE_16);
    write(LVT_TIMER, TIMER_ONESHOT | u32::from(vector));
    write(TIMER_INITIAL, ticks);
}

/// Stops the timer and masks its LVT.
pub fn timer_stop() {
    write(LVT_TIMER, LVT_MASKED);
    write(TIMER_INITIAL, 0);
}
