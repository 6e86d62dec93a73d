//! The ACPI PM1a fixed-hardware registers: the event block (PM1_STS, PM1_EN) and the
//! control block (PM1_CNT), enough for an OS to run in ACPI mode and to power the guest
//! off. The guest's `poweroff` writes SLP_TYP = S5 together with SLP_EN to PM1_CNT.
//!
//! Written here because the rust-vmm device crates need std, which a bare-metal VMM does
//! not have.
//!
//! Spec: ACPI Specification 6.5 (August 2022), 4.8.3.1 "PM1 Event Grouping" (PM1_STS at
//! the start of the event block, PM1_EN at its second half, status bits cleared by
//! writing 1), 4.8.3.2 "PM1 Control Grouping" (PM1_CNT: SCI_EN bit 0, BM_RLD bit 1,
//! GBL_RLS bit 2, SLP_TYPx bits 12:10, SLP_EN bit 13, write-only), and 16.1 "Sleeping
//! States" (OSPM writes SLP_TYPx from the `\_Sx` object, then sets SLP_EN). The fixed
//! hardware registers are accessed by byte or by word; this model also splits dword
//! accesses into bytes, as an ISA-style decoder would.
//!
//! The platform modelled has no SMI and no legacy mode: SCI_EN always reads 1 (the
//! FADT's SMI_CMD is 0, which tells the OS that the platform is always in ACPI mode).
//! No event sets a status bit on its own (no PM timer, no buttons, no RTC alarm); the
//! platform may set some with [`AcpiPm::set_status`], and [`AcpiPm::sci_level`] is then
//! the SCI line. A sleep request other than S5 is returned as [`PmEffect::Sleep`] for the
//! platform to refuse or ignore; WAK_STS is set at once, so a guest that goes on running
//! sees its sleep end immediately instead of spinning on WAK_STS forever.

use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;

/// Default ports of the PM1a event block (4 bytes) and control block (2 bytes), also
/// what [`crate::firmware::acpi`] puts in the FADT by default.
pub const PM1A_EVT: u16 = 0x600;
pub const PM1A_CNT: u16 = 0x604;
/// The ACPI PM timer's port (FADT PM_TMR_BLK): a free-running 24-bit counter at
/// 3.579545 MHz (ACPI 6.5, 4.8.3.3), which OSes use to calibrate their clocks.
pub const PM_TMR: u16 = 0x608;
pub const PM_TMR_HZ: u64 = 3_579_545;

/// The PM timer's value at guest time `now_ns` (24 bits).
pub fn pm_timer(now_ns: u64) -> u32 {
    ((now_ns as u128 * PM_TMR_HZ as u128 / 1_000_000_000) & 0xff_ffff) as u32
}
/// Block lengths in bytes (FADT PM1_EVT_LEN, PM1_CNT_LEN).
pub const PM1_EVT_LEN: u8 = 4;
pub const PM1_CNT_LEN: u8 = 2;

/// The SLP_TYP value of S5 (soft off). [`crate::firmware::acpi`]'s DSDT gives `\_S5` this
/// value, so the two always agree.
pub const SLP_TYP_S5: u8 = 5;
/// The SLP_TYP value of S0 (working), `\_S0` in the DSDT.
pub const SLP_TYP_S0: u8 = 0;

/// PM1_STS bits (write 1 to clear).
pub mod sts {
    pub const TMR: u16 = 1 << 0;
    pub const BM: u16 = 1 << 4;
    pub const GBL: u16 = 1 << 5;
    pub const PWRBTN: u16 = 1 << 8;
    pub const SLPBTN: u16 = 1 << 9;
    pub const RTC: u16 = 1 << 10;
    pub const PCIEXP_WAKE: u16 = 1 << 14;
    pub const WAK: u16 = 1 << 15;
    /// Every defined status bit.
    pub const ALL: u16 = TMR | BM | GBL | PWRBTN | SLPBTN | RTC | PCIEXP_WAKE | WAK;
    /// The status bits with an enable bit of the same position in PM1_EN: they raise
    /// the SCI when set and enabled.
    pub const EVENTS: u16 = TMR | GBL | PWRBTN | SLPBTN | RTC;
}

/// PM1_EN bits.
pub mod en {
    pub const TMR: u16 = 1 << 0;
    pub const GBL: u16 = 1 << 5;
    pub const PWRBTN: u16 = 1 << 8;
    pub const SLPBTN: u16 = 1 << 9;
    pub const RTC: u16 = 1 << 10;
    pub const PCIEXP_WAKE_DIS: u16 = 1 << 14;
    /// Every defined enable bit (the others read 0).
    pub const ALL: u16 = TMR | GBL | PWRBTN | SLPBTN | RTC | PCIEXP_WAKE_DIS;
}

/// PM1_CNT bits.
pub mod cnt {
    pub const SCI_EN: u16 = 1 << 0;
    pub const BM_RLD: u16 = 1 << 1;
    /// Write-only: reads 0.
    pub const GBL_RLS: u16 = 1 << 2;
    pub const SLP_TYP_SHIFT: u32 = 10;
    pub const SLP_TYP: u16 = 0b111 << SLP_TYP_SHIFT;
    /// Write-only: reads 0.
    pub const SLP_EN: u16 = 1 << 13;
    /// The bits that keep what was written.
    pub const STORED: u16 = BM_RLD | SLP_TYP;
}

/// What a register write did besides changing device state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmEffect {
    None,
    /// SLP_EN written with SLP_TYP = S5: the guest powered itself off.
    PowerOff,
    /// SLP_EN written with another SLP_TYP: a sleep state the platform does not have.
    Sleep(u8),
}

/// The PM1a event and control register blocks.
#[derive(Clone, Debug)]
pub struct AcpiPm {
    evt_port: u16,
    cnt_port: u16,
    sts: u16,
    en: u16,
    /// PM1_CNT's stored bits ([`cnt::STORED`]).
    cnt: u16,
}

impl Default for AcpiPm {
    fn default() -> Self {
        Self::new(PM1A_EVT, PM1A_CNT)
    }
}

/// Which register byte a port reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    /// PM1_STS byte 0 or 1.
    Sts(u8),
    /// PM1_EN byte 0 or 1.
    En(u8),
    /// PM1_CNT byte 0 or 1.
    Cnt(u8),
}

impl AcpiPm {
    /// The registers at `evt_port` (4 bytes: PM1_STS, PM1_EN) and `cnt_port` (2 bytes:
    /// PM1_CNT), in their power-on state: no status, nothing enabled, ACPI mode.
    pub const fn new(evt_port: u16, cnt_port: u16) -> Self {
        Self {
            evt_port,
            cnt_port,
            sts: 0,
            en: 0,
            cnt: 0,
        }
    }

    pub fn evt_port(&self) -> u16 {
        self.evt_port
    }

    pub fn cnt_port(&self) -> u16 {
        self.cnt_port
    }

    fn reg(&self, port: u16) -> Option<Reg> {
        let e = port.wrapping_sub(self.evt_port);
        let c = port.wrapping_sub(self.cnt_port);
        match (e, c) {
            (0 | 1, _) => Some(Reg::Sts(e as u8)),
            (2 | 3, _) => Some(Reg::En(e as u8 - 2)),
            (_, 0 | 1) => Some(Reg::Cnt(c as u8)),
            _ => None,
        }
    }

    /// Whether `port` is one of the six register bytes.
    pub fn claims(&self, port: u16) -> bool {
        self.reg(port).is_some()
    }

    /// PM1_STS.
    pub fn status(&self) -> u16 {
        self.sts
    }

    /// PM1_EN.
    pub fn enable(&self) -> u16 {
        self.en
    }

    /// PM1_CNT as the guest reads it.
    pub fn control(&self) -> u16 {
        self.cnt | cnt::SCI_EN
    }

    /// Sets PM1_STS bits (a platform event, e.g. [`sts::PWRBTN`]).
    pub fn set_status(&mut self, bits: u16) {
        self.sts |= bits & sts::ALL;
    }

    /// The SCI line: an enabled event's status bit is set (SCI_EN is always 1).
    pub fn sci_level(&self) -> bool {
        self.sts & self.en & sts::EVENTS != 0
    }

    fn read8(&self, port: u16) -> u8 {
        let byte = |v: u16, i: u8| (v >> (8 * i)) as u8;
        match self.reg(port) {
            Some(Reg::Sts(i)) => byte(self.sts, i),
            Some(Reg::En(i)) => byte(self.en, i),
            Some(Reg::Cnt(i)) => byte(self.control(), i),
            None => 0xff,
        }
    }

    fn write8(&mut self, port: u16, value: u8) -> PmEffect {
        // The written byte and its lane within the 16-bit register.
        let place = |i: u8| (value as u16) << (8 * i as u32);
        let lane = |i: u8| 0xffu16 << (8 * i as u32);
        match self.reg(port) {
            Some(Reg::Sts(i)) => self.sts &= !(place(i) & sts::ALL),
            Some(Reg::En(i)) => self.en = (self.en & !lane(i)) | (place(i) & en::ALL),
            Some(Reg::Cnt(i)) => {
                let written = (self.cnt & !lane(i)) | place(i);
                self.cnt = written & cnt::STORED;
                if place(i) & cnt::SLP_EN != 0 {
                    let typ = ((written & cnt::SLP_TYP) >> cnt::SLP_TYP_SHIFT) as u8;
                    if typ == SLP_TYP_S5 {
                        return PmEffect::PowerOff;
                    }
                    self.sts |= sts::WAK;
                    return PmEffect::Sleep(typ);
                }
            }
            None => {}
        }
        PmEffect::None
    }

    /// A guest IN of `size` (1, 2 or 4) bytes at `port`: little-endian bytes of the
    /// registers; bytes outside the blocks read 0xFF.
    pub fn read(&self, port: u16, size: u8) -> u32 {
        (0..size.min(4)).fold(0u32, |v, i| {
            v | (self.read8(port.wrapping_add(i as u16)) as u32) << (8 * i)
        })
    }

    /// A guest OUT of `size` (1, 2 or 4) bytes at `port`, byte by byte, lowest first.
    pub fn write(&mut self, port: u16, size: u8, value: u32) -> PmEffect {
        let mut effect = PmEffect::None;
        for i in 0..size.min(4) {
            let e = self.write8(port.wrapping_add(i as u16), (value >> (8 * i)) as u8);
            if e != PmEffect::None {
                effect = e;
            }
        }
        effect
    }
}

/// The PM1 blocks decode their own port numbers. SLP_TYP and SLP_EN share PM1_CNT's
/// high byte, so byte writes are enough; sleep states other than S5 set WAK_STS at
/// once: the guest wakes up.
impl Device for AcpiPm {
    fn read(&mut self, offset: u64, size: u8, _now: Now) -> u64 {
        AcpiPm::read(self, offset as u16, size) as u64
    }
    fn write(&mut self, offset: u64, size: u8, value: u64, _now: Now) -> DeviceEffect {
        match AcpiPm::write(self, offset as u16, size, value as u32) {
            PmEffect::PowerOff => DeviceEffect::PowerOff,
            _ => DeviceEffect::None,
        }
    }
}

/// The PM timer (PM_TMR): read-only, byte `offset` of the count.
#[derive(Clone, Copy, Debug, Default)]
pub struct PmTimer;

impl Device for PmTimer {
    fn read(&mut self, offset: u64, _size: u8, now: Now) -> u64 {
        ((pm_timer(now.ns) >> (8 * offset)) & 0xff) as u64
    }
    fn write(&mut self, _offset: u64, _size: u8, _value: u64, _now: Now) -> DeviceEffect {
        DeviceEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVT: u16 = PM1A_EVT;
    const CNT: u16 = PM1A_CNT;

    fn slp(typ: u16) -> u32 {
        ((typ << cnt::SLP_TYP_SHIFT) | cnt::SLP_EN) as u32
    }

    #[test]
    fn claims_exactly_the_two_blocks() {
        let pm = AcpiPm::default();
        for p in EVT..EVT + 4 {
            assert!(pm.claims(p), "{p:#x}");
        }
        for p in CNT..CNT + 2 {
            assert!(pm.claims(p), "{p:#x}");
        }
        for p in [EVT - 1, CNT + 2, CNT + 3, 0, 0xffff] {
            assert!(!pm.claims(p), "{p:#x}");
        }
        let other = AcpiPm::new(0xb000, 0xb004);
        assert!(other.claims(0xb000) && other.claims(0xb005) && !other.claims(EVT));
    }

    #[test]
    fn sci_en_always_reads_1() {
        let mut pm = AcpiPm::default();
        assert_eq!(pm.read(CNT, 2), 1);
        assert_eq!(pm.read(CNT, 1), 1);
        assert_eq!(pm.write(CNT, 2, 0), PmEffect::None);
        assert_eq!(pm.read(CNT, 2) & 1, 1, "ACPI mode cannot be left");
        assert_eq!(pm.write(CNT, 1, 0), PmEffect::None);
        assert_eq!(pm.read(CNT, 1) & 1, 1);
    }

    #[test]
    fn control_keeps_bm_rld_and_slp_typ_but_not_write_only_bits() {
        let mut pm = AcpiPm::default();
        let v = cnt::BM_RLD | cnt::GBL_RLS | (3 << cnt::SLP_TYP_SHIFT);
        assert_eq!(
            pm.write(CNT, 2, v as u32),
            PmEffect::None,
            "no SLP_EN: nothing happens"
        );
        assert_eq!(
            pm.read(CNT, 2),
            (cnt::SCI_EN | cnt::BM_RLD | (3 << cnt::SLP_TYP_SHIFT)) as u32
        );
        // Byte access to the high byte alone.
        assert_eq!(pm.read(CNT + 1, 1), (3 << 2) as u32);
        assert_eq!(pm.write(CNT + 1, 1, 0), PmEffect::None);
        assert_eq!(pm.read(CNT, 2), (cnt::SCI_EN | cnt::BM_RLD) as u32);
    }

    #[test]
    fn s5_with_slp_en_powers_off() {
        // What Linux does: SLP_TYP first, then SLP_EN with it, word accesses.
        let mut pm = AcpiPm::default();
        let typ = (SLP_TYP_S5 as u16) << cnt::SLP_TYP_SHIFT;
        assert_eq!(pm.write(CNT, 2, (cnt::SCI_EN | typ) as u32), PmEffect::None);
        assert_eq!(
            pm.write(CNT, 2, (cnt::SCI_EN | typ | cnt::SLP_EN) as u32),
            PmEffect::PowerOff
        );
        // In one go, as a word, and as a byte to the high half.
        let mut pm = AcpiPm::default();
        assert_eq!(pm.write(CNT, 2, slp(5)), PmEffect::PowerOff);
        let mut pm = AcpiPm::default();
        assert_eq!(pm.write(CNT + 1, 1, slp(5) >> 8), PmEffect::PowerOff);
        // A dword at the control block also reaches it (the upper bytes are not ours).
        let mut pm = AcpiPm::default();
        assert_eq!(pm.write(CNT, 4, slp(5)), PmEffect::PowerOff);
        // SLP_EN reads back 0.
        assert_eq!(pm.read(CNT, 2) as u16 & cnt::SLP_EN, 0);
    }

    #[test]
    fn other_sleep_types_are_reported_and_wake_at_once() {
        for typ in [0u16, 1, 2, 3, 4, 6, 7] {
            let mut pm = AcpiPm::default();
            assert_eq!(pm.write(CNT, 2, slp(typ)), PmEffect::Sleep(typ as u8));
            assert_ne!(pm.read(EVT, 2) as u16 & sts::WAK, 0, "WAK_STS after S{typ}");
            assert_eq!(pm.read(CNT, 2) as u16 & cnt::SLP_EN, 0);
        }
        // A low-byte write never carries SLP_EN.
        let mut pm = AcpiPm::default();
        assert_eq!(pm.write(CNT, 1, 0xff), PmEffect::None);
    }

    #[test]
    fn status_is_write_1_to_clear() {
        let mut pm = AcpiPm::default();
        pm.set_status(sts::PWRBTN | sts::TMR | sts::WAK);
        assert_eq!(pm.read(EVT, 2), (sts::PWRBTN | sts::TMR | sts::WAK) as u32);
        // Writing 0 changes nothing; writing 1 clears that bit only.
        assert_eq!(pm.write(EVT, 2, 0), PmEffect::None);
        assert_eq!(pm.status(), sts::PWRBTN | sts::TMR | sts::WAK);
        pm.write(EVT, 2, sts::TMR as u32);
        assert_eq!(pm.status(), sts::PWRBTN | sts::WAK);
        // Byte access to the high byte: WAK_STS is bit 7 of it.
        assert_eq!(pm.read(EVT + 1, 1), ((sts::PWRBTN | sts::WAK) >> 8) as u32);
        pm.write(EVT + 1, 1, 0x80);
        assert_eq!(pm.status(), sts::PWRBTN);
        // Clearing everything, as ACPICA does at start.
        pm.write(EVT, 2, 0xffff);
        assert_eq!(pm.status(), 0);
    }

    #[test]
    fn enable_reads_back_defined_bits() {
        let mut pm = AcpiPm::default();
        pm.write(EVT + 2, 2, 0xffff);
        assert_eq!(pm.read(EVT + 2, 2), en::ALL as u32);
        pm.write(EVT + 2, 1, 0);
        assert_eq!(pm.enable(), en::ALL & 0xff00);
        pm.write(EVT + 3, 1, 0);
        assert_eq!(pm.enable(), 0);
        // Writing the enables does not touch the status, and vice versa.
        pm.set_status(sts::GBL);
        pm.write(EVT + 2, 2, en::GBL as u32);
        assert_eq!((pm.status(), pm.enable()), (sts::GBL, en::GBL));
    }

    #[test]
    fn dword_at_event_block_is_status_and_enable() {
        let mut pm = AcpiPm::default();
        pm.set_status(sts::RTC);
        pm.write(EVT, 4, (en::PWRBTN as u32) << 16);
        assert_eq!(pm.read(EVT, 4), sts::RTC as u32 | (en::PWRBTN as u32) << 16);
        // One dword clears status and sets enables at once.
        pm.write(EVT, 4, sts::RTC as u32 | (en::RTC as u32) << 16);
        assert_eq!((pm.status(), pm.enable()), (0, en::RTC));
    }

    #[test]
    fn unclaimed_bytes_read_all_ones() {
        let pm = AcpiPm::default();
        assert_eq!(pm.read(CNT, 4), 0xffff_0001);
        assert_eq!(pm.read(CNT + 2, 2), 0xffff);
        assert_eq!(pm.read(EVT - 1, 1), 0xff);
    }

    #[test]
    fn sci_follows_enabled_status() {
        let mut pm = AcpiPm::default();
        assert!(!pm.sci_level());
        pm.set_status(sts::PWRBTN);
        assert!(!pm.sci_level(), "not enabled");
        pm.write(EVT + 2, 2, en::PWRBTN as u32);
        assert!(pm.sci_level());
        pm.write(EVT, 2, sts::PWRBTN as u32);
        assert!(!pm.sci_level(), "cleared");
        // WAK_STS has no enable: it never raises the SCI.
        pm.write(EVT + 2, 2, en::ALL as u32);
        pm.set_status(sts::WAK);
        assert!(!pm.sci_level());
    }

    #[test]
    fn pm_timer_counts_at_its_rate_and_wraps_at_24_bits() {
        assert_eq!(pm_timer(0), 0);
        assert_eq!(pm_timer(1_000_000_000), (PM_TMR_HZ & 0xff_ffff) as u32);
        assert_eq!(pm_timer(1_000_000), 3579);
        assert!(pm_timer(5_000_000_000) < 1 << 24);
    }
}
