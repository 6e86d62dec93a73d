//! TSC-based time: the TSC frequency (from Janus' CPUID leaf 0x40000010 when offered,
//! else calibrated against PIT channel 2), deadlines and bounded waits.

use super::cpu::{cpuid, inb, outb};
use super::x86::rdtsc;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

static TSC_KHZ: AtomicU64 = AtomicU64::new(0);
/// 0: unknown; 1: CPUID leaf 0x40000010; 2: PIT calibration; 3: fallback guess.
static SOURCE: AtomicU8 = AtomicU8::new(0);

/// Where the TSC frequency came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TscSource {
    /// CPUID leaf 0x40000010 EAX.
    Cpuid,
    /// Measured against PIT channel 2.
    Pit,
    /// Nothing worked; 1 GHz assumed.
    Guess,
}

/// The TSC frequency in kHz from CPUID leaf 0x40000010, if the hypervisor offers it.
pub fn cpuid_tsc_khz() -> Option<u64> {
    let max = cpuid(0x4000_0000, 0)[0];
    if !(0x4000_0010..0x4000_0100).contains(&max) {
        return None;
    }
    let khz = cpuid(0x4000_0010, 0)[0];
    (khz != 0).then_some(u64::from(khz))
}

/// The PIT's input clock.
pub const PIT_HZ: u64 = 1_193_182;

/// Measures the TSC against PIT channel 2 in mode 0 over `pit_ticks` PIT ticks (at most
/// 0xffff); returns TSC ticks elapsed, or `None` if OUT2 never rose. Leaves channel 2's
/// gate on and the speaker off.
pub fn measure_pit_ch2(pit_ticks: u16) -> Option<u64> {
    // Gate on (bit 0), speaker data off (bit 1).
    outb(0x61, (inb(0x61) & !0x02) | 0x01);
    // Channel 2, lobyte/hibyte, mode 0, binary.
    outb(0x43, 0xb0);
    outb(0x42, pit_ticks as u8);
    outb(0x42, (pit_ticks >> 8) as u8);
    let t0 = rdtsc();
    // Bounded by iterations: the TSC rate is not known yet.
    for _ in 0..50_000_000u32 {
        if inb(0x61) & 0x20 != 0 {
            return Some(rdtsc() - t0);
        }
    }
    None
}

/// The TSC frequency in kHz (looked up or calibrated once).
pub fn tsc_khz() -> u64 {
    let k = TSC_KHZ.load(Ordering::Relaxed);
    if k != 0 {
        return k;
    }
    let (k, src) = if let Some(k) = cpuid_tsc_khz() {
        (k, 1)
    } else {
        // 11932 PIT ticks = 10 ms.
        match measure_pit_ch2(11932) {
            Some(t) if t > 0 => (t * PIT_HZ / 11932 / 1000, 2),
            _ => (1_000_000, 3),
        }
    };
    let k = k.max(1);
    TSC_KHZ.store(k, Ordering::Relaxed);
    SOURCE.store(src, Ordering::Relaxed);
    k
}

/// Where [`tsc_khz`] got its value.
pub fn tsc_source() -> TscSource {
    tsc_khz();
    match SOURCE.load(Ordering::Relaxed) {
        1 => TscSource::Cpuid,
        2 => TscSource::Pit,
        _ => TscSource::Guess,
    }
}

/// TSC ticks in `us` microseconds.
pub fn us_to_ticks(us: u64) -> u64 {
    us * tsc_khz() / 1000
}

/// Microseconds in `ticks` TSC ticks.
pub fn ticks_to_us(ticks: u64) -> u64 {
    ticks * 1000 / tsc_khz()
}

/// A point in TSC time to wait for.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(pub u64);

impl Deadline {
    /// `us` microseconds from now.
    pub fn after_us(us: u64) -> Deadline {
        Deadline(rdtsc() + us_to_ticks(us))
    }
    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        rdtsc() >= self.0
    }
}

/// Measures elapsed time.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch(pub u64);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(rdtsc())
    }
    /// TSC ticks since the start.
    pub fn ticks(&self) -> u64 {
        rdtsc().wrapping_sub(self.0)
    }
    /// Microseconds since the start.
    pub fn us(&self) -> u64 {
        ticks_to_us(self.ticks())
    }
}

/// Spins for `us` microseconds.
pub fn delay_us(us: u64) {
    let d = Deadline::after_us(us);
    while !d.expired() {
        core::hint::spin_loop();
    }
}

/// Spins until `cond()` holds or `us` microseconds pass; returns whether it held.
pub fn wait_until(us: u64, mut cond: impl FnMut() -> bool) -> bool {
    let d = Deadline::after_us(us);
    loop {
        if cond() {
            return true;
        }
        if d.expired() {
            return cond();
        }
        core::hint::spin_loop();
    }
}

/// Whether this guest kept the CPU: Janus' steal-time count (the `STEAL_TIME` hypercall)
/// when it started, compared at the end.
#[derive(Clone, Copy, Debug)]
pub struct Undisturbed(u64);

impl Undisturbed {
    pub fn start() -> Undisturbed {
        Undisturbed(super::hypercall::steal_time().1)
    }
    /// Whether no other guest had the CPU since the start.
    pub fn held(&self) -> bool {
        super::hypercall::steal_time().1 == self.0
    }
}

/// Runs `f` until no other guest had the CPU while it ran (at most [`MAX_DISTURBED`]
/// times; the last result stands then): for measurements with nothing to check them
/// against, such as a calibration.
pub fn undisturbed<T>(mut f: impl FnMut() -> T) -> T {
    let mut n = 0;
    loop {
        let u = Undisturbed::start();
        let r = f();
        n += 1;
        if u.held() || n >= MAX_DISTURBED {
            return r;
        }
    }
}

/// Most measurements [`measure`] takes again because another guest had the CPU during
/// them, before it judges the last one anyway.
pub const MAX_DISTURBED: u32 = 200;

/// Takes a timing measurement until it is good: `attempt` measures and says whether the
/// result is right. Janus shares the CPU among guests, so a measurement during which
/// another guest ran (the steal-time count grew) is taken again, up to [`MAX_DISTURBED`]
/// times; an undisturbed one that is wrong is taken again up to `tries` times in all (an
/// emulator's own process can lose the host's CPU, which no guest can see). A broken
/// device fails every undisturbed attempt. Returns the last result.
pub fn measure<T>(tries: u32, mut attempt: impl FnMut() -> (bool, T)) -> T {
    let (mut undisturbed, mut disturbed) = (0, 0);
    loop {
        let u = Undisturbed::start();
        let (good, result) = attempt();
        if good {
            return result;
        }
        if u.held() {
            undisturbed += 1;
        } else {
            disturbed += 1;
        }
        if undisturbed >= tries || disturbed >= MAX_DISTURBED {
            if disturbed > 0 {
                crate::println!(
                    "note: {} of {} attempts lost the CPU to another guest",
                    disturbed,
                    disturbed + undisturbed
                );
            }
            return result;
        }
    }
}
