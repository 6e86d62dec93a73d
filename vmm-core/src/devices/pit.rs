//! The PC's Intel 8254 programmable interval timer (ports 0x40-0x43) and the part of
//! port 0x61 (NMI status and control) that belongs to it.
//!
//! Written here because the rust-vmm device crates need std, which a bare-metal VMM does
//! not have.
//!
//! Source: Intel 8254 Programmable Interval Timer datasheet (order 231164-005): control
//! word (SC, RW, M, BCD), counter latch command, read-back command and status byte, the
//! six modes and their OUT waveforms, gate behaviour, count 0 = 65536. Port 0x61 follows
//! the PC/AT layout (Intel 82371 PIIX "NMI Status and Control Register"): bit 0 timer 2
//! gate, bit 1 speaker data enable, bit 4 refresh toggle, bit 5 timer 2 OUT.
//!
//! The counters are never ticked: each channel remembers when it started counting, and
//! every read derives the count and OUT from the elapsed guest time `now_ns` at the input
//! clock of 1 193 182 Hz. Counting starts at the write of the count (the real part loads
//! it on the next clock edge, within 0.84 µs).
//!
//! Channels 0 and 1 have their gate tied high; channel 0's OUT is IRQ0 (see
//! [`Pit::irq0_edges`] and [`Pit::next_irq0_ns`]). Channel 2's gate is port 0x61 bit 0
//! and its OUT is port 0x61 bit 5, which is what Linux's PIT-based TSC calibration
//! watches (mode 0, gate high, poll until OUT rises, and read the counter's MSB).
//!
//! Approximations: BCD counting is recorded (and reported in the status byte) but the
//! counters count in binary; a new count written to a running mode 2 or 3 counter takes
//! effect at once instead of at the end of the current period; mode 3 with an odd count
//! reads back even values. After reset no channel has a count (the BIOS would have set
//! channel 0 to mode 3, 18.2 Hz; every OS reprograms it), so nothing fires until the guest
//! programs a channel.

use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;

pub const CHANNEL0: u16 = 0x40;
pub const CHANNEL1: u16 = 0x41;
pub const CHANNEL2: u16 = 0x42;
pub const CONTROL: u16 = 0x43;
pub const PORT61: u16 = 0x61;

/// The 8254's input clock on a PC.
pub const FREQUENCY_HZ: u64 = 1_193_182;
const NS_PER_S: u64 = 1_000_000_000;

const PORT61_GATE2: u8 = 1 << 0;
const PORT61_SPEAKER: u8 = 1 << 1;
const PORT61_REFRESH: u8 = 1 << 4;
const PORT61_OUT2: u8 = 1 << 5;
/// Bits of port 0x61 the guest can write (gate, speaker, parity/IOCHK check disables).
const PORT61_WRITABLE: u8 = 0x0f;

/// Whole input-clock periods in `ns` nanoseconds.
fn ticks_in(ns: u64) -> u64 {
    (ns as u128 * FREQUENCY_HZ as u128 / NS_PER_S as u128) as u64
}

/// Nanoseconds until the `ticks`-th input-clock edge (rounded up).
fn ns_for(ticks: u64) -> u64 {
    let ns = (ticks as u128 * NS_PER_S as u128).div_ceil(FREQUENCY_HZ as u128);
    ns.min(u64::MAX as u128) as u64
}

/// Read/write access mode of a channel (control word bits 5-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Lo = 1,
    Hi = 2,
    LoHi = 3,
}

#[derive(Clone, Debug)]
struct Channel {
    mode: u8,
    access: Access,
    bcd: bool,
    /// The count last written, 1..=65536.
    reload: u32,
    /// A count has been written since the last control word.
    armed: bool,
    /// Modes 1 and 5: the gate has risen since the count was written.
    triggered: bool,
    gate: bool,
    /// Input clocks counted before the current run (counting suspended by the gate).
    ticks_before: u64,
    /// When the current run started, if the counter is counting.
    running_since: Option<u64>,
    /// LoHi write: the low byte is written, the high byte is next.
    write_lsb: Option<u8>,
    /// LoHi read of the live count: the high byte is next.
    read_msb_next: bool,
    /// Latched count and, for LoHi, whether its high byte is next.
    latch: Option<u16>,
    latch_msb_next: bool,
    status: Option<u8>,
}

impl Channel {
    const fn new(gate: bool) -> Self {
        Self {
            mode: 0,
            access: Access::LoHi,
            bcd: false,
            reload: 0x1_0000,
            armed: false,
            triggered: false,
            gate,
            ticks_before: 0,
            running_since: None,
            write_lsb: None,
            read_msb_next: false,
            latch: None,
            latch_msb_next: false,
            status: None,
        }
    }

    fn gated_trigger(&self) -> bool {
        matches!(self.mode, 1 | 5)
    }

    /// Input clocks counted since the count was loaded (or the trigger).
    fn ticks(&self, now_ns: u64) -> u64 {
        self.ticks_before
            + self
                .running_since
                .map_or(0, |s| ticks_in(now_ns.saturating_sub(s)))
    }

    fn counting(&self) -> bool {
        self.armed && (!self.gated_trigger() || self.triggered)
    }

    /// The counting element at `now_ns`.
    fn count(&self, now_ns: u64) -> u16 {
        if !self.counting() {
            return if self.armed { self.reload as u16 } else { 0 };
        }
        let n = self.reload as u64;
        let t = self.ticks(now_ns);
        let v = match self.mode {
            2 => n - t % n,
            3 => {
                let high = n.div_ceil(2);
                let phase = t % n;
                let into_half = if phase < high { phase } else { phase - high };
                (n & !1).saturating_sub(2 * into_half)
            }
            // Modes 0, 1, 4, 5 count down and wrap through 0xffff.
            _ => n.wrapping_sub(t) & 0xffff,
        };
        v as u16
    }

    /// The OUT pin at `now_ns`.
    fn out(&self, now_ns: u64) -> bool {
        if !self.armed {
            return self.mode != 0;
        }
        let n = self.reload as u64;
        match self.mode {
            0 => self.ticks(now_ns) >= n,
            1 => !self.triggered || self.ticks(now_ns) >= n,
            2 => !self.gate || self.ticks(now_ns) % n != n - 1,
            3 => !self.gate || self.ticks(now_ns) % n < n.div_ceil(2),
            4 => self.ticks(now_ns) != n,
            _ => !self.triggered || self.ticks(now_ns) != n,
        }
    }

    /// Rising edges of OUT in the clock interval (t0, t1] of the current run.
    fn rising_edges(&self, t0: u64, t1: u64) -> u64 {
        if !self.counting() || t1 <= t0 {
            return 0;
        }
        let n = self.reload as u64;
        match self.mode {
            2 | 3 => t1 / n - t0 / n,
            _ => {
                let edge = self.oneshot_edge();
                u64::from(t0 < edge && edge <= t1)
            }
        }
    }

    /// The clock at which a one-shot mode's OUT rises.
    fn oneshot_edge(&self) -> u64 {
        let n = self.reload as u64;
        match self.mode {
            0 | 1 => n,
            _ => n + 1,
        }
    }

    /// The first clock after `t` at which OUT rises.
    fn next_edge(&self, t: u64) -> Option<u64> {
        if !self.counting() || self.running_since.is_none() {
            return None;
        }
        let n = self.reload as u64;
        match self.mode {
            2 | 3 => Some((t / n + 1) * n),
            _ => Some(self.oneshot_edge()).filter(|&e| e > t),
        }
    }

    fn status_byte(&self, now_ns: u64) -> u8 {
        let mut s = (self.access as u8) << 4 | self.mode << 1 | u8::from(self.bcd);
        if self.out(now_ns) {
            s |= 0x80;
        }
        if !self.armed {
            s |= 0x40; // null count
        }
        s
    }

    fn latch_count(&mut self, now_ns: u64) {
        if self.latch.is_none() {
            self.latch = Some(self.count(now_ns));
            self.latch_msb_next = false;
        }
    }

    fn control(&mut self, value: u8) {
        self.access = match (value >> 4) & 3 {
            1 => Access::Lo,
            2 => Access::Hi,
            _ => Access::LoHi,
        };
        // Modes 6 and 7 are modes 2 and 3.
        self.mode = match (value >> 1) & 7 {
            m @ 6..=7 => m - 4,
            m => m,
        };
        self.bcd = value & 1 != 0;
        self.armed = false;
        self.triggered = false;
        self.ticks_before = 0;
        self.running_since = None;
        self.write_lsb = None;
        self.read_msb_next = false;
        self.latch = None;
        self.status = None;
    }

    fn load(&mut self, count: u16, now_ns: u64) {
        self.reload = if count == 0 { 0x1_0000 } else { count as u32 };
        self.armed = true;
        self.ticks_before = 0;
        if self.gated_trigger() {
            // Waits for a gate edge; a new count does not retrigger.
            if self.triggered {
                self.running_since = Some(now_ns);
            }
        } else {
            self.running_since = self.gate.then_some(now_ns);
        }
    }

    fn write(&mut self, value: u8, now_ns: u64) {
        match self.access {
            Access::Lo => self.load(value as u16, now_ns),
            Access::Hi => self.load((value as u16) << 8, now_ns),
            Access::LoHi => match self.write_lsb.take() {
                None => {
                    self.write_lsb = Some(value);
                    if self.mode == 0 {
                        // Writing the first byte stops the count and drops OUT.
                        self.armed = false;
                        self.running_since = None;
                    }
                }
                Some(lo) => self.load(u16::from_le_bytes([lo, value]), now_ns),
            },
        }
    }

    fn byte_of(access: Access, value: u16, msb_next: &mut bool) -> u8 {
        let [lo, hi] = value.to_le_bytes();
        match access {
            Access::Lo => lo,
            Access::Hi => hi,
            Access::LoHi => {
                let v = if *msb_next { hi } else { lo };
                *msb_next = !*msb_next;
                v
            }
        }
    }

    fn read(&mut self, now_ns: u64) -> u8 {
        if let Some(s) = self.status.take() {
            return s;
        }
        if let Some(l) = self.latch {
            let v = Self::byte_of(self.access, l, &mut self.latch_msb_next);
            if self.access != Access::LoHi || !self.latch_msb_next {
                self.latch = None;
            }
            return v;
        }
        let count = self.count(now_ns);
        Self::byte_of(self.access, count, &mut self.read_msb_next)
    }

    fn set_gate(&mut self, gate: bool, now_ns: u64) {
        if gate == self.gate {
            return;
        }
        self.gate = gate;
        match (self.mode, gate) {
            // Modes 0 and 4: the gate suspends and resumes counting.
            (0 | 4, false) => {
                self.ticks_before = self.ticks(now_ns);
                self.running_since = None;
            }
            (0 | 4, true) => {
                if self.armed {
                    self.running_since = Some(now_ns);
                }
            }
            // Modes 2 and 3: gate low stops (OUT high); rising reloads.
            (2 | 3, false) => {
                self.ticks_before = self.ticks(now_ns);
                self.running_since = None;
            }
            (2 | 3, true) => {
                if self.armed {
                    self.ticks_before = 0;
                    self.running_since = Some(now_ns);
                }
            }
            // Modes 1 and 5: a rising gate (re)triggers.
            (_, true) => {
                if self.armed {
                    self.triggered = true;
                    self.ticks_before = 0;
                    self.running_since = Some(now_ns);
                }
            }
            (_, false) => {}
        }
    }
}

/// The three-channel 8254 and the timer bits of port 0x61.
#[derive(Clone, Debug)]
pub struct Pit {
    channels: [Channel; 3],
    port61: u8,
    refresh: bool,
    /// Channel 0 rising edges counted but not yet reported by [`Pit::irq0_edges`].
    irq0_unreported: u32,
    /// Channel 0's clock count up to which edges have been counted.
    irq0_counted_to: u64,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    pub const fn new() -> Self {
        Self {
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            port61: 0,
            refresh: false,
            irq0_unreported: 0,
            irq0_counted_to: 0,
        }
    }

    /// Whether `port` belongs to the PIT (0x40-0x43 and 0x61).
    pub fn claims(port: u16) -> bool {
        matches!(port, CHANNEL0..=CONTROL | PORT61)
    }

    /// Adds channel 0's edges up to `now_ns` to the unreported count.
    fn collect_irq0(&mut self, now_ns: u64) {
        let ch = &self.channels[0];
        let t = ch.ticks(now_ns);
        let edges = ch.rising_edges(self.irq0_counted_to, t);
        self.irq0_unreported = self
            .irq0_unreported
            .saturating_add(edges.min(u32::MAX as u64) as u32);
        self.irq0_counted_to = self.irq0_counted_to.max(t);
    }

    /// A guest IN of one byte from 0x40-0x43 (0x43 reads as 0xff) or 0x61.
    pub fn read(&mut self, port: u16, now_ns: u64) -> u8 {
        match port {
            CHANNEL0..=CHANNEL2 => self.channels[(port - CHANNEL0) as usize].read(now_ns),
            PORT61 => self.read_port61(now_ns),
            _ => 0xff,
        }
    }

    /// A guest OUT of one byte to 0x40-0x43 or 0x61.
    pub fn write(&mut self, port: u16, value: u8, now_ns: u64) {
        match port {
            CHANNEL0..=CHANNEL2 => {
                let i = (port - CHANNEL0) as usize;
                if i == 0 {
                    self.collect_irq0(now_ns);
                }
                self.channels[i].write(value, now_ns);
                if i == 0 {
                    // A load restarts the clock count; edges so far are collected.
                    self.irq0_counted_to = self.channels[0].ticks(now_ns);
                }
            }
            CONTROL => self.control(value, now_ns),
            PORT61 => self.write_port61(value, now_ns),
            _ => {}
        }
    }

    fn control(&mut self, value: u8, now_ns: u64) {
        let sc = (value >> 6) as usize;
        if sc == 3 {
            // Read-back: bit 5 clear latches counts, bit 4 clear latches status,
            // bits 3-1 select channels 2-0.
            for (i, ch) in self.channels.iter_mut().enumerate() {
                if value & (2 << i) == 0 {
                    continue;
                }
                if value & 0x10 == 0 && ch.status.is_none() {
                    ch.status = Some(ch.status_byte(now_ns));
                }
                if value & 0x20 == 0 {
                    ch.latch_count(now_ns);
                }
            }
            return;
        }
        if (value >> 4) & 3 == 0 {
            self.channels[sc].latch_count(now_ns);
            return;
        }
        if sc == 0 {
            self.collect_irq0(now_ns);
        }
        self.channels[sc].control(value);
        if sc == 0 {
            self.irq0_counted_to = 0;
        }
    }

    /// Port 0x61: gate 2 and speaker as written, the refresh bit (toggling on every
    /// read) and channel 2's OUT.
    pub fn read_port61(&mut self, now_ns: u64) -> u8 {
        self.refresh = !self.refresh;
        let mut v = self.port61 & PORT61_WRITABLE;
        if self.refresh {
            v |= PORT61_REFRESH;
        }
        if self.channels[2].out(now_ns) {
            v |= PORT61_OUT2;
        }
        v
    }

    pub fn write_port61(&mut self, value: u8, now_ns: u64) {
        self.port61 = value & PORT61_WRITABLE;
        self.channels[2].set_gate(value & PORT61_GATE2 != 0, now_ns);
    }

    /// Whether the guest has the PC speaker sounding (gate 2 and speaker data enabled).
    pub fn speaker_on(&self) -> bool {
        self.port61 & (PORT61_GATE2 | PORT61_SPEAKER) == PORT61_GATE2 | PORT61_SPEAKER
    }

    /// Rising edges of channel 0's OUT (IRQ0, edge triggered) since the last call. The
    /// platform raises IRQ0 once if this is non-zero (an 8259 cannot queue more than
    /// one); the count tells it how many ticks a guest that counts them missed.
    pub fn irq0_edges(&mut self, now_ns: u64) -> u32 {
        self.collect_irq0(now_ns);
        core::mem::take(&mut self.irq0_unreported)
    }

    /// The guest time of channel 0's next rising edge, `now_ns` itself if edges are
    /// waiting to be collected, or `None` if channel 0 has none scheduled.
    pub fn next_irq0_ns(&self, now_ns: u64) -> Option<u64> {
        let ch = &self.channels[0];
        let t = ch.ticks(now_ns);
        if self.irq0_unreported > 0 || ch.rising_edges(self.irq0_counted_to, t) > 0 {
            return Some(now_ns);
        }
        let start = ch.running_since?;
        let edge = ch.next_edge(t)?;
        Some(start.saturating_add(ns_for(edge - ch.ticks_before)))
    }

    /// Channel `i`'s OUT pin at `now_ns`.
    pub fn out(&self, channel: usize, now_ns: u64) -> bool {
        self.channels.get(channel).is_some_and(|c| c.out(now_ns))
    }
}

/// The PIT decodes its own ports (0x40-0x43, and port 0x61's timer bits).
impl Device for Pit {
    fn read(&mut self, offset: u64, _size: u8, now: Now) -> u64 {
        match offset as u16 {
            PORT61 => self.read_port61(now.ns) as u64,
            port => self.read(port, now.ns) as u64,
        }
    }
    fn write(&mut self, offset: u64, _size: u8, value: u64, now: Now) -> DeviceEffect {
        match offset as u16 {
            PORT61 => self.write_port61(value as u8, now.ns),
            port => self.write(port, value as u8, now.ns),
        }
        DeviceEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;

    fn read16(p: &mut Pit, port: u16, now: u64) -> u16 {
        let lo = p.read(port, now);
        let hi = p.read(port, now);
        u16::from_le_bytes([lo, hi])
    }

    fn program(p: &mut Pit, control: u8, count: u16, now: u64) {
        p.write(CONTROL, control, now);
        let port = CHANNEL0 + (control >> 6) as u16;
        p.write(port, count as u8, now);
        p.write(port, (count >> 8) as u8, now);
    }

    #[test]
    fn tick_conversion() {
        assert_eq!(ticks_in(NS_PER_S), FREQUENCY_HZ);
        assert_eq!(ticks_in(838), 0);
        assert_eq!(ticks_in(839), 1, "one period is 838.1 ns");
        assert_eq!(ns_for(1), 839);
        assert_eq!(ticks_in(ns_for(1193)), 1193);
        assert_eq!(ticks_in(ns_for(1193) - 1), 1192);
    }

    #[test]
    fn mode2_count_follows_time() {
        let mut p = Pit::new();
        let t0 = 5 * MS;
        program(&mut p, 0x34, 1000, t0); // channel 0, lo/hi, mode 2
        assert_eq!(read16(&mut p, CHANNEL0, t0), 1000);
        // 100 clocks = 83.81 µs.
        assert_eq!(read16(&mut p, CHANNEL0, t0 + ns_for(100)), 900);
        assert_eq!(read16(&mut p, CHANNEL0, t0 + ns_for(999)), 1);
        assert_eq!(read16(&mut p, CHANNEL0, t0 + ns_for(1000)), 1000, "reloads");
        assert_eq!(read16(&mut p, CHANNEL0, t0 + ns_for(2250)), 750);
        assert!(!p.out(0, t0 + ns_for(999)), "OUT low for the last clock");
        assert!(p.out(0, t0 + ns_for(1000)));
        assert!(p.out(0, t0 + ns_for(500)));
    }

    #[test]
    fn mode0_out_rises_at_terminal_count_on_port61() {
        // Linux's pit_calibrate_tsc: gate high, speaker off, channel 2 mode 0.
        let mut p = Pit::new();
        let t0 = 1_000 * MS;
        let v = p.read_port61(t0);
        p.write_port61((v & !0x02) | 0x01, t0);
        p.write(CONTROL, 0xb0, t0);
        let latch = (FREQUENCY_HZ / 20) as u16; // 50 ms
        p.write(CHANNEL2, latch as u8, t0);
        p.write(CHANNEL2, (latch >> 8) as u8, t0);
        assert_eq!(p.read_port61(t0) & PORT61_OUT2, 0);
        assert_eq!(p.read_port61(t0 + 49 * MS) & PORT61_OUT2, 0);
        assert_ne!(p.read_port61(t0 + 50 * MS) & PORT61_OUT2, 0);
        assert_ne!(p.read_port61(t0 + 80 * MS) & PORT61_OUT2, 0, "stays high");
        // The MSB Linux's quick_pit_calibrate watches, reading lo then hi unlatched.
        p.write(CONTROL, 0xb0, t0);
        p.write(CHANNEL2, 0xff, t0);
        p.write(CHANNEL2, 0xff, t0);
        assert_eq!(read16(&mut p, CHANNEL2, t0) >> 8, 0xff);
        assert_eq!(read16(&mut p, CHANNEL2, t0 + ns_for(256)) >> 8, 0xfe);
        assert_eq!(
            read16(&mut p, CHANNEL2, t0 + ns_for(256 * 10 + 5)) >> 8,
            0xf5
        );
    }

    #[test]
    fn gate_low_holds_channel2() {
        let mut p = Pit::new();
        p.write(CONTROL, 0xb0, 0);
        p.write(CHANNEL2, 0x00, 0);
        p.write(CHANNEL2, 0x10, 0); // 4096
        assert_eq!(
            read16(&mut p, CHANNEL2, 10 * MS),
            0x1000,
            "gate low: no counting"
        );
        p.write_port61(0x01, 10 * MS);
        assert_eq!(read16(&mut p, CHANNEL2, 10 * MS + ns_for(96)), 4000);
        p.write_port61(0x00, 10 * MS + ns_for(96));
        assert_eq!(read16(&mut p, CHANNEL2, 20 * MS), 4000, "suspended");
        p.write_port61(0x01, 20 * MS);
        assert_eq!(
            read16(&mut p, CHANNEL2, 20 * MS + ns_for(1000)),
            3000,
            "resumed"
        );
        assert_eq!(p.read_port61(20 * MS) & 0x03, 0x01);
    }

    #[test]
    fn port61_refresh_bit_toggles() {
        let mut p = Pit::new();
        let a = p.read_port61(0) & PORT61_REFRESH;
        let b = p.read_port61(0) & PORT61_REFRESH;
        assert_ne!(a, b);
        p.write_port61(0xff, 0);
        assert_eq!(p.read_port61(0) & 0xcf, 0x0f, "only bits 0-3 are writable");
        assert!(p.speaker_on());
    }

    #[test]
    fn latch_freezes_the_value() {
        let mut p = Pit::new();
        program(&mut p, 0x34, 0, 0); // 65536
        p.write(CONTROL, 0x00, ns_for(1000)); // latch channel 0
        p.write(CONTROL, 0x00, ns_for(2000)); // ignored: already latched
        assert_eq!(
            read16(&mut p, CHANNEL0, ns_for(5000)),
            (65536 - 1000) as u16
        );
        assert_eq!(
            read16(&mut p, CHANNEL0, ns_for(5000)),
            (65536 - 5000) as u16,
            "live again"
        );
        // A latch read half-way keeps the other half for later.
        p.write(CONTROL, 0x00, ns_for(7000));
        assert_eq!(p.read(CHANNEL0, ns_for(8000)), (65536u32 - 7000) as u8);
        assert_eq!(
            p.read(CHANNEL0, ns_for(9000)),
            ((65536u32 - 7000) >> 8) as u8
        );
    }

    #[test]
    fn lobyte_hibyte_toggle_and_single_byte_modes() {
        let mut p = Pit::new();
        p.write(CONTROL, 0x34, 0);
        p.write(CHANNEL0, 0x34, 0);
        p.write(CHANNEL0, 0x12, 0);
        assert_eq!(p.read(CHANNEL0, 0), 0x34);
        assert_eq!(p.read(CHANNEL0, 0), 0x12);
        assert_eq!(p.read(CHANNEL0, 0), 0x34, "toggle wraps");
        // Low byte only: the high byte is zero.
        p.write(CONTROL, 0x14, 0);
        p.write(CHANNEL0, 0x80, 0);
        assert_eq!(p.read(CHANNEL0, 0), 0x80);
        assert_eq!(p.read(CHANNEL0, ns_for(0x10)), 0x70);
        // High byte only: the low byte is zero.
        p.write(CONTROL, 0x24, 0);
        p.write(CHANNEL0, 0x02, 0);
        assert_eq!(p.read(CHANNEL0, ns_for(0x100)), 0x01);
        assert_eq!(p.read(CHANNEL0, ns_for(0x100)), 0x01, "no toggle");
    }

    #[test]
    fn irq0_edges_at_1khz() {
        let mut p = Pit::new();
        let t0 = 3 * MS;
        program(&mut p, 0x34, 1193, t0); // ~1 kHz
        assert_eq!(p.irq0_edges(t0), 0);
        assert_eq!(p.irq0_edges(t0 + 10 * MS), 10);
        assert_eq!(p.irq0_edges(t0 + 10 * MS), 0, "reported once");
        assert_eq!(p.irq0_edges(t0 + 10 * MS + 500 * US), 0);
        assert_eq!(p.irq0_edges(t0 + 11 * MS + 100 * US), 1);
        // Mode 3 has the same period.
        p.irq0_edges(t0 + 20 * MS);
        program(&mut p, 0x36, 1193, t0 + 20 * MS);
        assert_eq!(p.irq0_edges(t0 + 30 * MS), 10);
    }

    #[test]
    fn reprogramming_keeps_edges_already_due() {
        let mut p = Pit::new();
        program(&mut p, 0x34, 1193, 0);
        // Three edges happened, then the guest reprograms without anyone collecting.
        program(&mut p, 0x34, 11932, 3 * MS + 500 * US);
        assert_eq!(p.irq0_edges(3 * MS + 600 * US), 3);
        assert_eq!(p.irq0_edges(12 * MS), 0);
        assert_eq!(p.irq0_edges(14 * MS), 1);
    }

    #[test]
    fn next_irq0() {
        let mut p = Pit::new();
        assert_eq!(p.next_irq0_ns(0), None, "unprogrammed");
        let t0 = 7 * MS;
        program(&mut p, 0x34, 1193, t0);
        let first = t0 + ns_for(1193);
        assert_eq!(p.next_irq0_ns(t0), Some(first));
        assert_eq!(p.next_irq0_ns(first - 1), Some(first));
        assert_eq!(p.next_irq0_ns(first), Some(first), "due, not yet collected");
        assert_eq!(p.irq0_edges(first), 1);
        assert_eq!(p.next_irq0_ns(first), Some(t0 + ns_for(2 * 1193)));
        // One-shot (mode 0, Linux's oneshot clockevent): one edge, then none.
        p.irq0_edges(20 * MS);
        program(&mut p, 0x30, 5000, 20 * MS);
        assert_eq!(p.next_irq0_ns(20 * MS), Some(20 * MS + ns_for(5000)));
        assert_eq!(p.irq0_edges(30 * MS), 1);
        assert_eq!(p.next_irq0_ns(30 * MS), None);
        assert_eq!(p.irq0_edges(100 * MS), 0);
    }

    #[test]
    fn read_back_status_and_count() {
        let mut p = Pit::new();
        p.write(CONTROL, 0xb0, 0); // channel 2, lo/hi, mode 0
                                   // Status of channel 2: null count, OUT low, lo/hi, mode 0.
        p.write(CONTROL, 0xe8, 0);
        assert_eq!(p.read(CHANNEL2, 0), 0x70);
        p.write_port61(0x01, 0);
        p.write(CHANNEL2, 100, 0);
        p.write(CHANNEL2, 0, 0);
        // Count and status of channels 0 and 2: status first, then the count.
        p.write(CONTROL, 0xc0 | 0x08 | 0x02, ns_for(40));
        assert_eq!(p.read(CHANNEL2, ns_for(90)), 0x30, "count loaded, OUT low");
        assert_eq!(read16(&mut p, CHANNEL2, ns_for(90)), 60);
        assert_eq!(p.read(CHANNEL0, 0), 0x70, "channel 0: never programmed");
        p.write(CONTROL, 0xd8, ns_for(150)); // count only, channel 2
        assert_eq!(read16(&mut p, CHANNEL2, ns_for(200)), 0xffff - 49);
        p.write(CONTROL, 0xe8, ns_for(150)); // status only
        assert_eq!(
            p.read(CHANNEL2, ns_for(200)),
            0xb0,
            "OUT high after terminal count"
        );
    }

    #[test]
    fn mode3_square_wave_out() {
        let mut p = Pit::new();
        program(&mut p, 0x36, 100, 0);
        assert!(p.out(0, 0));
        assert!(p.out(0, ns_for(49)));
        assert!(!p.out(0, ns_for(50)));
        assert!(!p.out(0, ns_for(99)));
        assert!(p.out(0, ns_for(100)));
        assert_eq!(read16(&mut p, CHANNEL0, ns_for(10)), 80);
        assert_eq!(read16(&mut p, CHANNEL0, ns_for(60)), 80);
    }

    #[test]
    fn mode4_strobe_and_mode1_trigger() {
        let mut p = Pit::new();
        program(&mut p, 0x38, 10, 0); // channel 0 mode 4
        assert!(p.out(0, ns_for(9)));
        assert!(!p.out(0, ns_for(10)));
        assert!(p.out(0, ns_for(11)));
        assert_eq!(p.irq0_edges(ns_for(20)), 1);
        // Mode 1 on channel 2 waits for the gate.
        p.write(CONTROL, 0xb2, 0);
        p.write(CHANNEL2, 50, 0);
        p.write(CHANNEL2, 0, 0);
        assert!(p.out(2, MS));
        p.write_port61(0x01, MS);
        assert!(!p.out(2, MS + ns_for(49)));
        assert!(p.out(2, MS + ns_for(50)));
    }
}
