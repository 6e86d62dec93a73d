//! The i8254 PIT: channel 2 in mode 0 through port 0x61 (gate, OUT2 timed against the
//! TSC), mode 3 toggling OUT2, the counter latch command,
//! lobyte/hibyte reads of a running channel 0 and the read-back status byte.
#![no_std]
#![no_main]

use janus_guests::rt::pc::{self, PIT_CMD, PORT_61};
use janus_guests::rt::time::{self, Stopwatch, PIT_HZ};
use janus_guests::{entry, inb, outb, println, BootInfo, Suite};

entry!(main);

fn out2() -> bool {
    inb(PORT_61) & 0x20 != 0
}

fn gate2(on: bool) {
    let v = inb(PORT_61) & !0x03; // speaker data off
    outb(PORT_61, v | on as u8);
}

/// Read-back status byte of channel `ch` (read-back command, status only).
fn status(ch: u8) -> u8 {
    outb(PIT_CMD, 0xe0 | (2 << ch));
    inb(pc::PIT_CH0 + u16::from(ch))
}

/// How often an undisturbed timing measurement is taken before its check fails
/// (`time::measure` also takes again those during which another guest had the CPU).
const ATTEMPTS: u32 = 5;

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("pit");
    let khz = time::tsc_khz();
    println!("tsc: {} kHz ({:?})", khz, time::tsc_source());
    if time::tsc_source() != time::TscSource::Cpuid {
        println!("note: the TSC was calibrated against PIT channel 2, so the timing check below is circular here");
    }

    // Channel 2, mode 0, 5966 ticks = 5 ms, gate on.
    const COUNT: u16 = 5966;
    let expect_us = u64::from(COUNT) * 1_000_000 / PIT_HZ;
    gate2(true);
    let timing_ok =
        |rose: bool, us: u64| rose && us * 10 >= expect_us * 8 && us * 10 <= expect_us * 12;
    let (low_at_start, rose, us) = time::measure(ATTEMPTS, || {
        pc::pit_program(2, 0, COUNT);
        let sw = Stopwatch::start();
        let low_at_start = !out2();
        let rose = time::wait_until(expect_us * 4, out2);
        let us = sw.us();
        (
            low_at_start && timing_ok(rose, us),
            (low_at_start, rose, us),
        )
    });
    s.check(
        "pit.ch2_mode0_out2_low_after_load",
        low_at_start,
        format_args!("port 0x61 bit 5 (OUT2) was already high right after loading the count"),
    );
    s.check(
        "pit.ch2_mode0_out2_rises",
        rose,
        format_args!(
            "OUT2 did not rise within {} us of loading {} (expected after {} us)",
            expect_us * 4,
            COUNT,
            expect_us
        ),
    );
    s.check(
        "pit.ch2_mode0_timing",
        timing_ok(rose, us),
        format_args!("OUT2 rose after {} us, expected {} us +-20%", us, expect_us),
    );
    let st = status(2);
    s.check(
        "pit.readback_status_ch2",
        st & 0x3f == 0x30 && st & 0x80 != 0,
        format_args!(
            "channel 2 status {:#x}: want OUT=1, access lo/hi (0x30), mode 0, binary",
            st
        ),
    );

    // Mode 3 (square wave), 1 ms period: OUT2 is seen high and low within 40 ms.
    pc::pit_program(2, 3, 1193);
    let (hi, lo, edges) = time::measure(ATTEMPTS, || {
        let (mut hi, mut lo, mut edges) = (0u32, 0u32, 0u32);
        let mut last = out2();
        let d = time::Deadline::after_us(40_000);
        while !d.expired() {
            let o = out2();
            if o {
                hi += 1
            } else {
                lo += 1
            }
            if o != last {
                edges += 1;
                last = o;
            }
        }
        (edges >= 4, (hi, lo, edges))
    });
    s.check(
        "pit.ch2_mode3_toggles",
        hi > 0 && lo > 0 && edges >= 4,
        format_args!(
            "over 40 ms of a 1 ms square wave: {} high samples, {} low, {} edges (want >= 4)",
            hi, lo, edges
        ),
    );
    let st = status(2);
    s.check(
        "pit.readback_status_mode3",
        st & 0x3e == 0x36,
        format_args!(
            "channel 2 status {:#x}: want access lo/hi, mode 3 (bits 5:1 = 0b11011)",
            st
        ),
    );
    gate2(false);

    // Channel 0, mode 2, full count (65536 ticks, ~55 ms).
    pc::pit_program(0, 2, 0);
    time::delay_us(200);
    let st = status(0);
    s.check(
        "pit.readback_status_ch0",
        st & 0x3f == 0x34,
        format_args!(
            "channel 0 status {:#x}: want access lo/hi (0x30), mode 2 (0x04), binary",
            st
        ),
    );

    // Direct lobyte/hibyte reads decrease: ~358 ticks in 300 us, modulo 65536 (late
    // reads, when the emulator lost the host CPU, only make the difference larger).
    let (a, b) = time::measure(ATTEMPTS, || {
        let a = pc::pit_read_count(0);
        time::delay_us(300);
        let b = pc::pit_read_count(0);
        ((100..=30_000).contains(&a.wrapping_sub(b)), (a, b))
    });
    let bad = if (100..=30_000).contains(&a.wrapping_sub(b)) {
        None
    } else {
        Some((a, b))
    };
    s.check(
        "pit.ch0_count_decreases",
        bad.is_none(),
        format_args!(
            "reads 300 us apart {:?}: want the second ~358 lower (mod 65536)",
            bad
        ),
    );

    // Latch: the value read is the one at the latch, and a second latch before reading
    // is ignored.
    // Another guest running in between makes the difference meaningless: measure again
    // then (`time::measure`).
    let (latched, live, us, diff, expect) = time::measure(ATTEMPTS, || {
        let t = Stopwatch::start();
        outb(PIT_CMD, 0x00);
        time::delay_us(2_000);
        outb(PIT_CMD, 0x00);
        let latched = pc::pit_read_count(0);
        let live = pc::pit_read_count(0);
        let us = t.us();
        let expect = us * PIT_HZ / 1_000_000;
        let diff = u64::from(latched.wrapping_sub(live));
        let good = diff * 10 >= expect * 6 && diff * 10 <= expect * 14;
        (good, (latched, live, us, diff, expect))
    });
    s.check(
        "pit.latch_freezes",
        diff * 10 >= expect * 6 && diff * 10 <= expect * 14,
        format_args!(
            "latched {:#x}, live {:#x} {} us later: difference {} ticks, expected ~{} (the first latch holds)",
            latched, live, us, diff, expect
        ),
    );

    // Read-back with count and status latched: status first, then the count.
    let (st, c, live) = time::measure(ATTEMPTS, || {
        outb(PIT_CMD, 0xc2);
        let st = inb(pc::PIT_CH0);
        let c = pc::pit_read_count(0);
        let live = pc::pit_read_count(0);
        (c.wrapping_sub(live) < 2000, (st, c, live))
    });
    s.check(
        "pit.readback_count_and_status",
        st & 0x3f == 0x34 && c.wrapping_sub(live) < 2000,
        format_args!(
            "read-back 0xc2: status {:#x} (want 0x34 in bits 5:0), count {:#x}, then live {:#x}",
            st, c, live
        ),
    );
    pc::pit_program(0, 0, 0xffff);
    s.finish()
}
