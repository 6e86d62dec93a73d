//! The PC's Motorola MC146818 real-time clock and its 128 bytes of CMOS RAM, at ports
//! 0x70 (index; bit 7 is the NMI disable bit of the PC, not an address bit) and 0x71
//! (data).
//!
//! Written here because the rust-vmm device crates need std, which a bare-metal VMM does
//! not have.
//!
//! Source: Motorola MC146818A datasheet: the time, calendar and alarm registers at
//! 0x00-0x09, register A (UIP, divider DV2-0, rate RS3-0), B (SET, PIE, AIE, UIE, SQWE,
//! DM, 24/12, DSE), C (IRQF, PF, AF, UF; cleared by reading), D (VRT), BCD or binary data
//! mode, the 12-hour format with the PM flag in bit 7 of the hour, the periodic rates.
//! The PC's CMOS layout (base memory at 0x15/0x16, extended memory at 0x17/0x18 and
//! 0x30/0x31, memory above 16 MiB at 0x34/0x35, checksum of 0x10-0x2D at 0x2E/0x2F,
//! century at 0x32) is the IBM PC/AT convention; memory above 4 GiB at 0x5B-0x5D in
//! 64 KiB units is the convention SeaBIOS and QEMU use.
//!
//! The clock is never ticked: the RTC keeps the wall-clock time at guest time 0 and adds
//! the elapsed `now_ns`. A guest that writes a time register moves that origin. While
//! register B's SET bit is 1 the time reads as it was when SET was written, writes change
//! that held time, and clearing SET starts the clock from it (at a whole second).
//! Register A's UIP bit always reads 0: an update is instantaneous here. The weekday
//! register is computed from the date; a guest write to it is kept as an offset.
//!
//! Interrupt flags: PF is set at each boundary of the periodic rate (register A RS3-0)
//! and UF at each second; IRQF when one of them is enabled in register B;
//! [`Rtc::irq8_pending`] is the IRQ8 line (IRQF). Left out: alarm interrupts (the alarm
//! registers are plain storage, AF never sets), daylight saving (DSE), the square-wave
//! output, and the divider chain (DV2-0 are stored but do not stop the clock).

use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;

pub const INDEX: u16 = 0x70;
pub const DATA: u16 = 0x71;

pub const SECONDS: u8 = 0x00;
pub const MINUTES: u8 = 0x02;
pub const HOURS: u8 = 0x04;
pub const WEEKDAY: u8 = 0x06;
pub const DAY: u8 = 0x07;
pub const MONTH: u8 = 0x08;
pub const YEAR: u8 = 0x09;
pub const REG_A: u8 = 0x0a;
pub const REG_B: u8 = 0x0b;
pub const REG_C: u8 = 0x0c;
pub const REG_D: u8 = 0x0d;
pub const CENTURY: u8 = 0x32;

pub const B_SET: u8 = 1 << 7;
pub const B_PIE: u8 = 1 << 6;
pub const B_AIE: u8 = 1 << 5;
pub const B_UIE: u8 = 1 << 4;
pub const B_DM_BINARY: u8 = 1 << 2;
pub const B_24H: u8 = 1 << 1;
pub const C_IRQF: u8 = 1 << 7;
pub const C_PF: u8 = 1 << 6;
pub const C_AF: u8 = 1 << 5;
pub const C_UF: u8 = 1 << 4;
pub const D_VRT: u8 = 1 << 7;

const NS_PER_S: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Days from 1970-01-01 to 2000-03-01, the start of a 400-year cycle that begins just
/// after a leap day.
const DAYS_TO_2000_03_01: i64 = 10_957 + 31 + 29;
const DAYS_PER_400Y: i64 = 146_097;
const DAYS_PER_100Y: i64 = 36_524;
const DAYS_PER_4Y: i64 = 1_461;
/// Month lengths of a year that starts on March 1 (February last).
const MONTH_DAYS_FROM_MARCH: [i64; 12] = [31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 29];

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 1 (Sunday) - 7 (Saturday), the MC146818 convention.
    pub weekday: u8,
}

/// The civil date of day `days` after 1970-01-01 (negative before it).
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    // Peel off whole 400-, 100-, 4- and 1-year spans counted from 2000-03-01. The last
    // span of each kind is one day longer (it ends with the leap day), so the quotient of
    // the shorter length is capped.
    let d = days - DAYS_TO_2000_03_01;
    let cycles = d.div_euclid(DAYS_PER_400Y);
    let mut rest = d.rem_euclid(DAYS_PER_400Y);
    let centuries = (rest / DAYS_PER_100Y).min(3);
    rest -= centuries * DAYS_PER_100Y;
    let quads = rest / DAYS_PER_4Y;
    rest -= quads * DAYS_PER_4Y;
    let years = (rest / 365).min(3);
    rest -= years * 365;
    let mut year = 2000 + 400 * cycles + 100 * centuries + 4 * quads + years;
    let mut month = 0;
    while rest >= MONTH_DAYS_FROM_MARCH[month] {
        rest -= MONTH_DAYS_FROM_MARCH[month];
        month += 1;
    }
    // month 0 is March; 10 and 11 are January and February of the next year.
    let month = if month >= 10 {
        year += 1;
        month - 9
    } else {
        month + 3
    };
    (year, month as u8, rest as u8 + 1)
}

/// Days from 1970-01-01 to the civil date (the inverse of [`civil_from_days`]; month and
/// day outside their ranges are carried the way arithmetic takes them).
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let month = month.clamp(1, 12) as usize;
    // Count years from March so that the leap day ends the year.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let y = y - 2000;
    let leap_days = y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400);
    let before_month: i64 = MONTH_DAYS_FROM_MARCH[..m].iter().sum();
    DAYS_TO_2000_03_01 + 365 * y + leap_days + before_month + day as i64 - 1
}

impl DateTime {
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (sod / 3600) as u8,
            minute: (sod / 60 % 60) as u8,
            second: (sod % 60) as u8,
            // 1970-01-01 was a Thursday (5 counting Sunday as 1).
            weekday: ((days + 4).rem_euclid(7) + 1) as u8,
        }
    }

    pub fn to_unix(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * SECS_PER_DAY
            + self.hour as i64 * 3600
            + self.minute as i64 * 60
            + self.second as i64
    }
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0f)
}

/// The MC146818 with the PC's CMOS contents.
#[derive(Clone, Debug)]
pub struct Rtc {
    cmos: [u8; 128],
    /// Port 0x70 as last written (index in bits 6-0, NMI disable in bit 7).
    index: u8,
    /// Wall-clock nanoseconds since the Unix epoch at guest time 0.
    origin_ns: i128,
    /// The time held while SET is 1, in Unix seconds.
    held: Option<i64>,
    /// Added to the computed weekday (a guest write to the weekday register).
    weekday_offset: u8,
    /// PF/AF/UF accumulated since register C was last read.
    flags: u8,
    /// Guest time up to which the flags are accounted.
    flags_at_ns: u64,
}

impl Rtc {
    /// An RTC whose clock reads `epoch_seconds` (Unix time) at guest time 0, in a guest
    /// with `ram_bytes` of RAM from guest-physical 0 (RAM below 4 GiB counts as low
    /// memory, the rest as memory above 4 GiB). Register B starts as a PC BIOS leaves it:
    /// 24-hour, BCD.
    pub fn new(epoch_seconds: u64, ram_bytes: u64) -> Self {
        let mut cmos = [0u8; 128];
        cmos[REG_A as usize] = 0x26; // 32.768 kHz time base, 1024 Hz periodic rate
        cmos[REG_B as usize] = B_24H;
        cmos[REG_D as usize] = D_VRT;
        cmos[0x14] = 0x02; // equipment: math coprocessor
        let put16 = |cmos: &mut [u8; 128], at: usize, v: u64| {
            let v = v.min(0xffff) as u16;
            cmos[at..at + 2].copy_from_slice(&v.to_le_bytes());
        };
        put16(&mut cmos, 0x15, 640);
        let low = ram_bytes.min(4 * GIB);
        let extended_kib = low.saturating_sub(MIB) / KIB;
        put16(&mut cmos, 0x17, extended_kib);
        put16(&mut cmos, 0x30, extended_kib);
        put16(&mut cmos, 0x34, low.saturating_sub(16 * MIB) / (64 * KIB));
        let high = (ram_bytes.saturating_sub(4 * GIB) / (64 * KIB)).min(0xff_ffff) as u32;
        cmos[0x5b..0x5e].copy_from_slice(&high.to_le_bytes()[..3]);
        let sum: u16 = cmos[0x10..=0x2d].iter().map(|&b| b as u16).sum();
        cmos[0x2e..0x30].copy_from_slice(&sum.to_be_bytes());
        Self {
            cmos,
            index: 0,
            origin_ns: epoch_seconds as i128 * NS_PER_S,
            held: None,
            weekday_offset: 0,
            flags: 0,
            flags_at_ns: 0,
        }
    }

    /// Whether `port` belongs to the RTC.
    pub fn claims(port: u16) -> bool {
        matches!(port, INDEX | DATA)
    }

    /// Whether the guest has NMIs disabled (bit 7 of the last index written).
    pub fn nmi_disabled(&self) -> bool {
        self.index & 0x80 != 0
    }

    fn reg_b(&self) -> u8 {
        self.cmos[REG_B as usize]
    }

    fn running_secs(&self, now_ns: u64) -> i64 {
        (self.origin_ns + now_ns as i128).div_euclid(NS_PER_S) as i64
    }

    /// The clock, in Unix seconds, at guest time `now_ns`.
    pub fn unix_seconds(&self, now_ns: u64) -> i64 {
        self.held.unwrap_or_else(|| self.running_secs(now_ns))
    }

    fn set_unix_seconds(&mut self, secs: i64, now_ns: u64) {
        match &mut self.held {
            Some(h) => *h = secs,
            None => self.origin_ns = secs as i128 * NS_PER_S - now_ns as i128,
        }
    }

    fn encode(&self, v: u8) -> u8 {
        if self.reg_b() & B_DM_BINARY != 0 {
            v
        } else {
            to_bcd(v)
        }
    }

    fn decode(&self, v: u8) -> u8 {
        if self.reg_b() & B_DM_BINARY != 0 {
            v
        } else {
            from_bcd(v)
        }
    }

    fn read_time(&self, reg: u8, now_ns: u64) -> u8 {
        let t = DateTime::from_unix(self.unix_seconds(now_ns));
        match reg {
            SECONDS => self.encode(t.second),
            MINUTES => self.encode(t.minute),
            HOURS if self.reg_b() & B_24H != 0 => self.encode(t.hour),
            HOURS => {
                let h12 = match t.hour % 12 {
                    0 => 12,
                    h => h,
                };
                self.encode(h12) | if t.hour >= 12 { 0x80 } else { 0 }
            }
            WEEKDAY => self.encode((t.weekday - 1 + self.weekday_offset) % 7 + 1),
            DAY => self.encode(t.day),
            MONTH => self.encode(t.month),
            YEAR => self.encode(t.year.rem_euclid(100) as u8),
            _ => self.encode(t.year.div_euclid(100).clamp(0, 99) as u8),
        }
    }

    fn write_time(&mut self, reg: u8, value: u8, now_ns: u64) {
        let mut t = DateTime::from_unix(self.unix_seconds(now_ns));
        match reg {
            SECONDS => t.second = self.decode(value).min(59),
            MINUTES => t.minute = self.decode(value).min(59),
            HOURS if self.reg_b() & B_24H != 0 => t.hour = self.decode(value).min(23),
            HOURS => {
                let h = self.decode(value & 0x7f) % 12;
                t.hour = h + if value & 0x80 != 0 { 12 } else { 0 };
            }
            WEEKDAY => {
                let want = self.decode(value).clamp(1, 7);
                self.weekday_offset = (want + 7 - t.weekday) % 7;
                return;
            }
            DAY => t.day = self.decode(value).clamp(1, 31),
            MONTH => t.month = self.decode(value).clamp(1, 12),
            YEAR => t.year = t.year.div_euclid(100) * 100 + self.decode(value).min(99) as i64,
            _ => t.year = self.decode(value).min(99) as i64 * 100 + t.year.rem_euclid(100),
        }
        self.set_unix_seconds(t.to_unix(), now_ns);
    }

    /// Sets PF and UF for the boundaries passed since the last accounting.
    fn account_flags(&mut self, now_ns: u64) {
        let then = self.flags_at_ns;
        if now_ns <= then {
            return;
        }
        let rate = self.cmos[REG_A as usize] & 0x0f;
        if rate != 0 {
            // Period = 2^shift / 32768 s; rates 1 and 2 repeat rates 8 and 9.
            let shift = if rate <= 2 { rate + 6 } else { rate - 1 };
            let unit = (NS_PER_S as u128) << shift;
            let ticks = |ns: u64| ns as u128 * 32_768 / unit;
            if ticks(now_ns) > ticks(then) {
                self.flags |= C_PF;
            }
        }
        if self.held.is_none() && self.running_secs(now_ns) > self.running_secs(then) {
            self.flags |= C_UF;
        }
        self.flags_at_ns = now_ns;
    }

    fn irqf(&self) -> bool {
        self.flags & self.reg_b() & (C_PF | C_AF | C_UF) != 0
    }

    /// The IRQ8 line: an enabled interrupt flag is set (it stays set until the guest reads
    /// register C). IRQ8 is edge triggered on the PIC, so the platform raises it when this
    /// becomes true.
    pub fn irq8_pending(&mut self, now_ns: u64) -> bool {
        self.account_flags(now_ns);
        self.irqf()
    }

    /// A guest IN of one byte from 0x70 (the index last written) or 0x71.
    pub fn read(&mut self, port: u16, now_ns: u64) -> u8 {
        match port {
            INDEX => self.index,
            DATA => self.read_reg(self.index & 0x7f, now_ns),
            _ => 0xff,
        }
    }

    fn read_reg(&mut self, reg: u8, now_ns: u64) -> u8 {
        match reg {
            SECONDS | MINUTES | HOURS | WEEKDAY | DAY | MONTH | YEAR | CENTURY => {
                self.read_time(reg, now_ns)
            }
            REG_A => self.cmos[REG_A as usize] & 0x7f,
            REG_C => {
                self.account_flags(now_ns);
                let v = self.flags | if self.irqf() { C_IRQF } else { 0 };
                self.flags = 0;
                v
            }
            REG_D => D_VRT,
            _ => self.cmos[reg as usize & 0x7f],
        }
    }

    /// A guest OUT of one byte to 0x70 or 0x71.
    pub fn write(&mut self, port: u16, value: u8, now_ns: u64) {
        match port {
            INDEX => self.index = value,
            DATA => self.write_reg(self.index & 0x7f, value, now_ns),
            _ => {}
        }
    }

    fn write_reg(&mut self, reg: u8, value: u8, now_ns: u64) {
        match reg {
            SECONDS | MINUTES | HOURS | WEEKDAY | DAY | MONTH | YEAR | CENTURY => {
                self.write_time(reg, value, now_ns)
            }
            REG_A => {
                self.account_flags(now_ns);
                self.cmos[REG_A as usize] = value & 0x7f;
            }
            REG_B => {
                self.account_flags(now_ns);
                let mut value = value;
                if value & B_SET != 0 {
                    if self.held.is_none() {
                        self.held = Some(self.running_secs(now_ns));
                    }
                    // Setting SET clears UIE.
                    value &= !B_UIE;
                } else if let Some(secs) = self.held.take() {
                    self.origin_ns = secs as i128 * NS_PER_S - now_ns as i128;
                    self.flags_at_ns = now_ns;
                }
                self.cmos[REG_B as usize] = value;
            }
            REG_C | REG_D => {}
            _ => self.cmos[reg as usize & 0x7f] = value,
        }
    }
}

/// The RTC decodes its own ports (index 0x70, data 0x71).
impl Device for Rtc {
    fn read(&mut self, offset: u64, _size: u8, now: Now) -> u64 {
        self.read(offset as u16, now.ns) as u64
    }
    fn write(&mut self, offset: u64, _size: u8, value: u64, now: Now) -> DeviceEffect {
        self.write(offset as u16, value as u8, now.ns);
        DeviceEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    /// 2023-11-14 22:13:20 UTC, a Tuesday.
    const T: u64 = 1_700_000_000;

    fn get(r: &mut Rtc, reg: u8, now: u64) -> u8 {
        r.write(INDEX, reg, now);
        r.read(DATA, now)
    }

    fn set(r: &mut Rtc, reg: u8, v: u8, now: u64) {
        r.write(INDEX, reg, now);
        r.write(DATA, v, now);
    }

    #[test]
    fn calendar_conversion() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(19_675), (2023, 11, 14));
        // 2100 is not a leap year.
        assert_eq!(
            civil_from_days(days_from_civil(2100, 2, 28) + 1),
            (2100, 3, 1)
        );
        assert_eq!(
            days_from_civil(2024, 2, 29) + 1,
            days_from_civil(2024, 3, 1)
        );
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert!((1..=12).contains(&m) && (1..=31).contains(&dd));
            assert_eq!(days_from_civil(y, m, dd), d, "{y}-{m}-{dd}");
        }
        let t = DateTime::from_unix(T as i64);
        assert_eq!((t.hour, t.minute, t.second, t.weekday), (22, 13, 20, 3));
        assert_eq!(t.to_unix(), T as i64);
        assert_eq!(
            DateTime::from_unix(0).weekday,
            5,
            "1970-01-01 was a Thursday"
        );
    }

    #[test]
    fn known_epoch_reads_in_bcd() {
        let mut r = Rtc::new(T, 0);
        let regs = [SECONDS, MINUTES, HOURS, WEEKDAY, DAY, MONTH, YEAR, CENTURY];
        let got = regs.map(|reg| get(&mut r, reg, 0));
        assert_eq!(got, [0x20, 0x13, 0x22, 0x03, 0x14, 0x11, 0x23, 0x20]);
    }

    #[test]
    fn binary_mode_when_the_guest_selects_it() {
        let mut r = Rtc::new(T, 0);
        set(&mut r, REG_B, B_24H | B_DM_BINARY, 0);
        let regs = [SECONDS, MINUTES, HOURS, DAY, MONTH, YEAR, CENTURY];
        assert_eq!(
            regs.map(|reg| get(&mut r, reg, 0)),
            [20, 13, 22, 14, 11, 23, 20]
        );
    }

    #[test]
    fn time_advances_with_guest_time() {
        let mut r = Rtc::new(T, 0);
        assert_eq!(get(&mut r, SECONDS, 999_999_999), 0x20);
        assert_eq!(get(&mut r, SECONDS, S), 0x21);
        assert_eq!(get(&mut r, MINUTES, 100 * S), 0x15);
        // Midnight: 1h46m40s later it is Wednesday the 15th.
        let midnight = (86_400 - 80_000) * S;
        assert_eq!(get(&mut r, HOURS, midnight - 1), 0x23);
        assert_eq!(get(&mut r, HOURS, midnight), 0x00);
        assert_eq!(get(&mut r, DAY, midnight), 0x15);
        assert_eq!(get(&mut r, WEEKDAY, midnight), 0x04);
    }

    #[test]
    fn twelve_hour_mode() {
        let mut r = Rtc::new(T, 0);
        set(&mut r, REG_B, 0, 0); // 12-hour, BCD
        assert_eq!(get(&mut r, HOURS, 0), 0x80 | 0x10, "10 PM");
        set(&mut r, REG_B, B_DM_BINARY, 0);
        assert_eq!(get(&mut r, HOURS, 0), 0x80 | 10);
        // 00:xx is 12 AM; 12:xx is 12 PM.
        let mut r = Rtc::new(0, 0);
        set(&mut r, REG_B, 0, 0);
        assert_eq!(get(&mut r, HOURS, 0), 0x12);
        assert_eq!(get(&mut r, HOURS, 12 * 3600 * S), 0x92);
        // Writing 7 AM in 12-hour mode, read back in 24-hour mode.
        set(&mut r, HOURS, 0x07, 0);
        set(&mut r, REG_B, B_24H, 0);
        assert_eq!(get(&mut r, HOURS, 0), 0x07);
        set(&mut r, REG_B, 0, 0);
        set(&mut r, HOURS, 0x87, 0);
        set(&mut r, REG_B, B_24H, 0);
        assert_eq!(get(&mut r, HOURS, 0), 0x19);
    }

    #[test]
    fn memory_size_bytes() {
        let mut r = Rtc::new(0, 6 * GIB);
        let word = |r: &mut Rtc, at: u8| u16::from_le_bytes([get(r, at, 0), get(r, at + 1, 0)]);
        assert_eq!(word(&mut r, 0x15), 640);
        assert_eq!(word(&mut r, 0x17), 0xffff, "capped");
        assert_eq!(word(&mut r, 0x30), 0xffff);
        assert_eq!(word(&mut r, 0x34), 0xff00, "4 GiB - 16 MiB in 64 KiB units");
        let high = u32::from_le_bytes([
            get(&mut r, 0x5b, 0),
            get(&mut r, 0x5c, 0),
            get(&mut r, 0x5d, 0),
            0,
        ]);
        assert_eq!(high, 0x8000, "2 GiB above 4 GiB");
        let mut r = Rtc::new(0, 32 * MIB);
        assert_eq!(word(&mut r, 0x17), 31 * 1024);
        assert_eq!(word(&mut r, 0x34), 256);
        assert_eq!(get(&mut r, 0x5b, 0), 0);
        let sum: u16 = (0x10..=0x2d).map(|i| get(&mut r, i, 0) as u16).sum();
        assert_eq!(
            u16::from_be_bytes([get(&mut r, 0x2e, 0), get(&mut r, 0x2f, 0)]),
            sum
        );
    }

    #[test]
    fn status_registers() {
        let mut r = Rtc::new(T, 0);
        assert_eq!(get(&mut r, REG_D, 0), D_VRT);
        assert_eq!(get(&mut r, REG_A, 0), 0x26, "UIP reads 0");
        assert_eq!(get(&mut r, REG_B, 0), B_24H);
        set(&mut r, REG_D, 0, 0);
        assert_eq!(get(&mut r, REG_D, 0), D_VRT, "read-only");
    }

    #[test]
    fn time_register_writes_set_the_clock() {
        let mut r = Rtc::new(T, 0);
        set(&mut r, MINUTES, 0x45, 10 * S);
        assert_eq!(get(&mut r, MINUTES, 10 * S), 0x45);
        assert_eq!(get(&mut r, SECONDS, 10 * S), 0x30);
        assert_eq!(get(&mut r, SECONDS, 15 * S), 0x35, "keeps running");
        set(&mut r, YEAR, 0x99, 15 * S);
        set(&mut r, CENTURY, 0x19, 15 * S);
        assert_eq!(get(&mut r, YEAR, 15 * S), 0x99);
        assert_eq!(get(&mut r, CENTURY, 15 * S), 0x19);
        let t = DateTime::from_unix(r.unix_seconds(15 * S));
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (1999, 11, 14, 22, 45, 35)
        );
        set(&mut r, WEEKDAY, 0x01, 15 * S);
        assert_eq!(get(&mut r, WEEKDAY, 15 * S), 0x01);
        assert_eq!(
            get(&mut r, WEEKDAY, (15 + 86_400) * S),
            0x02,
            "advances with the days"
        );
    }

    #[test]
    fn set_bit_holds_the_clock_while_the_guest_writes() {
        let mut r = Rtc::new(T, 0);
        set(&mut r, REG_B, B_SET | B_24H | B_UIE, S);
        assert_eq!(get(&mut r, REG_B, S), B_SET | B_24H, "SET clears UIE");
        set(&mut r, HOURS, 0x08, S);
        set(&mut r, MINUTES, 0x00, S);
        set(&mut r, SECONDS, 0x00, S);
        assert_eq!(get(&mut r, SECONDS, 50 * S), 0x00, "held");
        set(&mut r, REG_B, B_24H, 60 * S);
        assert_eq!(get(&mut r, HOURS, 60 * S), 0x08);
        assert_eq!(get(&mut r, SECONDS, 63 * S), 0x03, "runs from the release");
    }

    #[test]
    fn periodic_and_update_flags() {
        let mut r = Rtc::new(T, 0);
        // Rate 6: 1024 Hz, period 976.5625 µs. Flags set regardless of enables.
        assert_eq!(get(&mut r, REG_C, 500_000), 0);
        assert_eq!(get(&mut r, REG_C, 1_000_000), C_PF);
        assert_eq!(get(&mut r, REG_C, 1_100_000), 0, "reading C cleared it");
        assert!(!r.irq8_pending(10_000_000), "PIE clear: no IRQF");
        set(&mut r, REG_B, B_24H | B_PIE, 10_000_000);
        assert!(r.irq8_pending(10_000_000), "PF was already set");
        assert_eq!(get(&mut r, REG_C, 10_000_000), C_IRQF | C_PF);
        assert!(!r.irq8_pending(10_000_100));
        assert!(r.irq8_pending(11_000_000));
        // Rate 15: 2 Hz.
        set(&mut r, REG_A, 0x2f, 11_000_000);
        get(&mut r, REG_C, 11_000_000);
        assert!(!r.irq8_pending(400_000_000));
        assert!(r.irq8_pending(500_000_000));
        // The update-ended flag at each second.
        set(&mut r, REG_B, B_24H | B_UIE, S);
        get(&mut r, REG_C, S);
        assert_eq!(get(&mut r, REG_C, S + S / 2) & C_UF, 0);
        assert_eq!(get(&mut r, REG_C, 2 * S), C_IRQF | C_UF | C_PF);
    }

    #[test]
    fn cmos_ram_and_nmi_bit() {
        let mut r = Rtc::new(T, 0);
        set(&mut r, 0x0f, 0x0a, 0);
        assert_eq!(get(&mut r, 0x0f, 0), 0x0a);
        r.write(INDEX, 0x80 | 0x40, 0);
        assert!(r.nmi_disabled());
        r.write(DATA, 0x5a, 0);
        assert_eq!(r.read(DATA, 0), 0x5a);
        assert_eq!(get(&mut r, 0x40, 0), 0x5a, "NMI bit is not an address bit");
        assert!(!r.nmi_disabled());
    }
}
