//! Host time: the TSC, calibrated once against the PIT's channel 2 (the PC's fixed
//! 1.193182 MHz clock, Intel 8254 datasheet), so that guest time can be derived from it.

use core::sync::atomic::{AtomicU64, Ordering};
use x86::io::{inb, outb};

const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms of PIT time.
const WINDOW_TICKS: u64 = PIT_HZ / 100;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// `vmm_core::vm::ns_per_tick` of the calibrated rate.
static NS_PER_TICK: AtomicU64 = AtomicU64::new(0);

pub fn tsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measures the TSC frequency with PIT channel 2 in mode 0 (one-shot): its output,
/// readable in port 0x61 bit 5, rises when the count reaches zero.
pub fn calibrate() -> u64 {
    // SAFETY: ports 0x42, 0x43 and 0x61 are the PC's PIT channel 2 and its gate; Janus
    // owns them (guests see virtual ones) and leaves the speaker off.
    let hz = unsafe {
        outb(0x61, (inb(0x61) & !0x02) | 0x01);
        outb(0x43, 0xb0);
        outb(0x42, WINDOW_TICKS as u8);
        outb(0x42, (WINDOW_TICKS >> 8) as u8);
        let start = tsc();
        let mut spins = 0u64;
        while inb(0x61) & 0x20 == 0 && spins < 100_000_000 {
            spins += 1;
        }
        (tsc() - start) * (PIT_HZ / WINDOW_TICKS)
    };
    TSC_HZ.store(hz.max(1), Ordering::Relaxed);
    NS_PER_TICK.store(vmm_core::vm::ns_per_tick(hz), Ordering::Relaxed);
    hz
}

/// Host time in nanoseconds, on the same scale as every guest's time.
pub fn now_ns() -> u64 {
    vmm_core::vm::ticks_to_ns(tsc(), NS_PER_TICK.load(Ordering::Relaxed))
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Spins for `us` microseconds of TSC time.
pub fn delay_us(us: u64) {
    let end = tsc() + tsc_hz() / 1_000_000 * us;
    while tsc() < end {
        core::hint::spin_loop();
    }
}
