//! Janus' own timer: the host local APIC's timer in one-shot mode, armed for the next
//! moment a guest's virtual device needs attention (its PIT or APIC timer fires). The
//! interrupt makes the running guest exit (VMX external-interrupt exiting, SVM INTR
//! intercept); Janus then takes it with interrupts briefly enabled, and the handler only
//! acknowledges it. Also used to sleep while a guest is halted.
//!
//! Manual: Intel SDM Vol 3A (rev. 084) 11.4 (APIC base, xAPIC MMIO at 0xFEE00000),
//! 11.5.4 (APIC timer: divide configuration 0x3E0, initial count 0x380, current count
//! 0x390, LVT timer 0x320), 11.8.5 (EOI 0xB0), 11.9 (spurious vector 0xF0).

use core::sync::atomic::{AtomicU64, Ordering};

/// The vector of Janus' timer interrupt; 0xFF is the APIC's spurious vector.
pub const VECTOR: u8 = 0xf0;
pub const SPURIOUS: u8 = 0xff;

const APIC_BASE: usize = 0xfee0_0000;
const SVR: usize = 0xf0;
const LVT_TIMER: usize = 0x320;
const INITIAL_COUNT: usize = 0x380;
const CURRENT_COUNT: usize = 0x390;
const DIVIDE: usize = 0x3e0;
const DIVIDE_BY_1: u32 = 0b1011;
const MASKED: u32 = 1 << 16;

static APIC_HZ: AtomicU64 = AtomicU64::new(0);

fn write(reg: usize, v: u32) {
    // SAFETY: the xAPIC page is identity-mapped by the boot page tables; writes to these
    // registers only program the local APIC, which Janus owns.
    unsafe { core::ptr::write_volatile((APIC_BASE + reg) as *mut u32, v) }
}

fn read(reg: usize) -> u32 {
    // SAFETY: as in `write`; reads of these registers have no side effects.
    unsafe { core::ptr::read_volatile((APIC_BASE + reg) as *const u32) }
}

/// Interrupts the host CPU with APIC ID `apic_id` (a fixed IPI on the timer's vector,
/// whose handler only acknowledges it): a guest running there exits, an idle CPU wakes,
/// and its scheduler looks at what waits for its vCPUs (a shared guest's kick).
pub fn kick(apic_id: u32) {
    crate::apic::send_ipi(apic_id, VECTOR as u32);
}

/// Enables this CPU's local APIC with its timer masked (every host CPU, SMP included).
pub fn enable_local() {
    // SAFETY: IA32_APIC_BASE (0x1B): setting the global enable bit keeps the default base.
    unsafe {
        let base = x86::msr::rdmsr(0x1b);
        x86::msr::wrmsr(0x1b, base | (1 << 11));
    }
    write(SVR, 0x100 | SPURIOUS as u32);
    write(DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, MASKED | VECTOR as u32);
}

/// Unmasks this CPU's timer (one-shot, stopped) once its APIC is enabled: an AP's, whose
/// rate the boot CPU measured (every CPU's APIC timer runs at the same rate).
pub fn start_local() {
    write(INITIAL_COUNT, 0);
    write(LVT_TIMER, VECTOR as u32);
}

/// Enables the local APIC and measures its timer against the (calibrated) TSC.
pub fn init() {
    enable_local();
    // Count down for about 1 ms of TSC time.
    let tsc_hz = crate::time::tsc_hz();
    let window = tsc_hz / 1000;
    write(INITIAL_COUNT, u32::MAX);
    let start = crate::time::tsc();
    while crate::time::tsc() - start < window {
        core::hint::spin_loop();
    }
    let counted = u32::MAX - read(CURRENT_COUNT);
    write(INITIAL_COUNT, 0);
    let hz = (counted as u64 * 1000).max(1);
    APIC_HZ.store(hz, Ordering::Relaxed);
    write(LVT_TIMER, VECTOR as u32);
    // Check it: a 1 ms one-shot must wake an idle CPU after about 1 ms (with the console
    // drained first, or `idle` would return at once to send it).
    crate::console::drain();
    let t0 = crate::time::tsc();
    arm(Some(1_000_000));
    idle();
    let took_us = (crate::time::tsc() - t0) * 1_000_000 / tsc_hz.max(1);
    log::info!(
        "host APIC timer {}.{:03} MHz; a 1 ms one-shot woke the CPU after {} us",
        hz / 1_000_000,
        hz / 1000 % 1000,
        took_us
    );
}

/// Arms the timer to fire `ns` nanoseconds from now (at least one tick), or stops it.
pub fn arm(ns: Option<u64>) {
    match ns {
        None => write(INITIAL_COUNT, 0),
        Some(ns) => {
            let hz = APIC_HZ.load(Ordering::Relaxed) as u128;
            // Round up, so the timer never fires before the deadline.
            let ticks = (ns as u128 * hz)
                .div_ceil(1_000_000_000)
                .clamp(1, u32::MAX as u128);
            write(INITIAL_COUNT, ticks as u32);
        }
    }
}

/// Lets a pending host interrupt (the timer) be taken, then masks interrupts again.
pub fn take_interrupts() {
    // SAFETY: the only interrupts Janus unmasks are its timer and the spurious vector,
    // whose handlers just acknowledge them; the one-instruction window after STI is
    // where they are delivered.
    unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) }
}

/// Sleeps until the next host interrupt (the armed timer).
pub fn idle() {
    // Queued console output goes out while the CPU has nothing else to do; the caller
    // comes back here until it is gone.
    if crate::console::pending() {
        crate::console::pump();
        return;
    }
    // SAFETY: as in `take_interrupts`; STI's shadow makes STI;HLT atomic, so an interrupt
    // that is already pending wakes the HLT instead of being lost.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) }
}

core::arch::global_asm!(
    ".global janus_timer_irq, janus_spurious_irq",
    "janus_timer_irq:",
    "push rax",
    "mov rax, {eoi}",
    "mov dword ptr [rax], 0",
    "pop rax",
    "iretq",
    "janus_spurious_irq:",
    "iretq",
    eoi = const APIC_BASE + 0xb0,
);

extern "C" {
    fn janus_timer_irq();
    fn janus_spurious_irq();
}

/// The handlers for the IDT: (vector, address).
pub fn handlers() -> [(u8, u64); 2] {
    [
        (VECTOR, janus_timer_irq as *const () as u64),
        (SPURIOUS, janus_spurious_irq as *const () as u64),
    ]
}
