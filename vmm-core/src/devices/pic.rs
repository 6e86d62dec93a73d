//! The PC's pair of Intel 8259A programmable interrupt controllers, and the PIIX edge/level
//! control registers (ELCR) that sit beside them.
//!
//! Written here because the rust-vmm device crates need std, which a bare-metal VMM does
//! not have.
//!
//! Source: Intel 8259A Programmable Interrupt Controller datasheet (order 231468-003):
//! ICW1-ICW4 initialisation sequence, OCW1 (mask), OCW2 (EOI / rotation), OCW3 (register
//! read select, poll, special mask), priority resolution, spurious IR7. The ELCR at ports
//! 0x4D0/0x4D1 is from the Intel PIIX/PIIX3 datasheet (82371SB, "ELCR1/ELCR2"): one bit per
//! IRQ, 1 = level triggered; IRQ0-2 (master) and IRQ8/IRQ13 (slave) are always edge.
//!
//! Layout on a PC: master at 0x20/0x21 (IRQ0-7), slave at 0xA0/0xA1 (IRQ8-15), the slave's
//! INT output wired to the master's IR2. The slave's INT is treated as a level input of
//! the master's IR2 (the master's IRR bit 2 is the slave's INT output at every moment), so
//! a request that the slave withdraws never leaves a stale latch in the master.
//!
//! After reset the state is what a PC BIOS leaves: both chips initialised, all IRQs
//! masked (IMR = 0xff), vector bases 0x08 (master) and 0x70 (slave).
//!
//! Left out: special fully nested mode (SFNM, accepted and ignored), buffered mode, MCS-80
//! mode (the 8086 vector format is always used), rotate-in-AEOI mode (accepted, no
//! rotation).

use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;

pub const MASTER_CMD: u16 = 0x20;
pub const MASTER_DATA: u16 = 0x21;
pub const SLAVE_CMD: u16 = 0xa0;
pub const SLAVE_DATA: u16 = 0xa1;
pub const ELCR_MASTER: u16 = 0x4d0;
pub const ELCR_SLAVE: u16 = 0x4d1;

/// The master input the slave's INT drives.
const CASCADE_IRQ: u8 = 2;
/// ELCR bits that can be set (PIIX: IRQ0, 1, 2 and IRQ8, 13 are always edge triggered).
const ELCR_MASTER_MASK: u8 = 0xf8;
const ELCR_SLAVE_MASK: u8 = 0xde;

const ICW1_IC4: u8 = 1 << 0;
const ICW1_SNGL: u8 = 1 << 1;
const ICW1_LTIM: u8 = 1 << 3;
const ICW1: u8 = 1 << 4;
const ICW4_AEOI: u8 = 1 << 1;
const OCW3: u8 = 1 << 3;
const OCW3_RIS: u8 = 1 << 0;
const OCW3_RR: u8 = 1 << 1;
const OCW3_POLL: u8 = 1 << 2;
const OCW3_SMM: u8 = 1 << 5;
const OCW3_ESMM: u8 = 1 << 6;

/// Where a chip is in its ICW sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Init {
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// One 8259A.
#[derive(Clone, Debug)]
struct Chip {
    irr: u8,
    isr: u8,
    imr: u8,
    /// Current level of each IR input (for edge detection and level-triggered IRR).
    lines: u8,
    /// ELCR: inputs that are level triggered.
    elcr: u8,
    elcr_mask: u8,
    /// ICW1.LTIM: all inputs level triggered.
    ltim: bool,
    base: u8,
    init: Init,
    icw4_needed: bool,
    single: bool,
    aeoi: bool,
    /// ICW3: slave bitmap (master) or cascade identity (slave). Kept for completeness.
    icw3: u8,
    read_isr: bool,
    poll: bool,
    special_mask: bool,
    /// The IR of lowest priority (7 after initialisation; moved by rotation).
    lowest: u8,
}

impl Chip {
    const fn new(base: u8, elcr_mask: u8) -> Self {
        Self {
            irr: 0,
            isr: 0,
            imr: 0xff,
            lines: 0,
            elcr: 0,
            elcr_mask,
            ltim: false,
            base,
            init: Init::Ready,
            icw4_needed: false,
            single: false,
            aeoi: false,
            icw3: 0,
            read_isr: false,
            poll: false,
            special_mask: false,
            lowest: 7,
        }
    }

    fn level_mask(&self) -> u8 {
        if self.ltim {
            0xff
        } else {
            self.elcr
        }
    }

    /// Priority rank of `irq`: 0 is the highest.
    fn rank(&self, irq: u8) -> u8 {
        irq.wrapping_sub(self.lowest).wrapping_sub(1) & 7
    }

    /// The highest-priority IR among the bits of `mask`: `mask` rotated so that bit
    /// `rank(i)` holds IR `i`, its lowest set bit. A few instructions where a scan of the
    /// eight IRs took about 30, on every interrupt offer of a guest whose PIC is wired
    /// (issue #9).
    fn highest(&self, mask: u8) -> Option<u8> {
        let shift = u32::from(self.lowest.wrapping_add(1) & 7);
        let by_rank = mask.rotate_right(shift);
        (by_rank != 0).then(|| (by_rank.trailing_zeros() as u8 + shift as u8) & 7)
    }

    fn set_line(&mut self, irq: u8, level: bool) {
        let bit = 1u8 << irq;
        let was = self.lines & bit != 0;
        if level {
            self.lines |= bit;
            if self.level_mask() & bit != 0 || !was {
                self.irr |= bit;
            }
        } else {
            self.lines &= !bit;
            if self.level_mask() & bit != 0 {
                self.irr &= !bit;
            }
        }
    }

    /// The IR this chip would deliver on INTA, given `extra` requests (the cascade input):
    /// the highest-priority unmasked request above every in-service level.
    fn request(&self, extra: u8) -> Option<u8> {
        let candidate = self.highest((self.irr | extra) & !self.imr)?;
        // In special mask mode a masked in-service level blocks nothing.
        let blocking = if self.special_mask {
            self.isr & !self.imr
        } else {
            self.isr
        };
        match self.highest(blocking) {
            Some(s) if self.rank(s) <= self.rank(candidate) => None,
            _ => Some(candidate),
        }
    }

    /// INTA for `irq`: ISR set (unless AEOI), an edge-triggered request consumed.
    fn ack(&mut self, irq: u8) {
        let bit = 1u8 << irq;
        if !self.aeoi {
            self.isr |= bit;
        }
        if self.level_mask() & bit == 0 {
            self.irr &= !bit;
        }
    }

    fn eoi(&mut self, irq: u8, rotate: bool) {
        self.isr &= !(1 << irq);
        if rotate {
            self.lowest = irq;
        }
    }

    fn read(&mut self, data_port: bool, extra: u8) -> u8 {
        if data_port {
            return self.imr;
        }
        if self.poll {
            // Poll command: the next read is an INTA without the vector.
            self.poll = false;
            return match self.request(extra) {
                Some(irq) => {
                    self.ack(irq);
                    0x80 | irq
                }
                None => 0,
            };
        }
        if self.read_isr {
            self.isr
        } else {
            self.irr | extra
        }
    }

    fn write(&mut self, data_port: bool, value: u8) {
        if !data_port {
            if value & ICW1 != 0 {
                self.isr = 0;
                self.imr = 0;
                self.ltim = value & ICW1_LTIM != 0;
                // Edge sense reset: an edge-triggered input must rise again.
                self.irr = self.lines & self.level_mask();
                self.icw4_needed = value & ICW1_IC4 != 0;
                self.single = value & ICW1_SNGL != 0;
                self.aeoi = false;
                self.read_isr = false;
                self.poll = false;
                self.special_mask = false;
                self.lowest = 7;
                self.init = Init::Icw2;
            } else if value & OCW3 != 0 {
                if value & OCW3_RR != 0 {
                    self.read_isr = value & OCW3_RIS != 0;
                }
                self.poll = value & OCW3_POLL != 0;
                if value & OCW3_ESMM != 0 {
                    self.special_mask = value & OCW3_SMM != 0;
                }
            } else {
                self.ocw2(value);
            }
            return;
        }
        match self.init {
            Init::Ready => self.imr = value,
            Init::Icw2 => {
                self.base = value & 0xf8;
                self.init = if !self.single {
                    Init::Icw3
                } else if self.icw4_needed {
                    Init::Icw4
                } else {
                    Init::Ready
                };
            }
            Init::Icw3 => {
                self.icw3 = value;
                self.init = if self.icw4_needed {
                    Init::Icw4
                } else {
                    Init::Ready
                };
            }
            Init::Icw4 => {
                self.aeoi = value & ICW4_AEOI != 0;
                self.init = Init::Ready;
            }
        }
    }

    /// OCW2: bits 7-5 are R, SL, EOI; bits 2-0 the level.
    fn ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            // Non-specific EOI, optionally rotating.
            0b001 | 0b101 => {
                if let Some(irq) = self.highest(self.isr) {
                    self.eoi(irq, value & 0x80 != 0);
                }
            }
            // Specific EOI, optionally rotating.
            0b011 => self.eoi(level, false),
            0b111 => self.eoi(level, true),
            // Set priority.
            0b110 => self.lowest = level,
            // Rotate in AEOI mode set/clear, no operation: accepted.
            _ => {}
        }
    }
}

/// The master/slave 8259A pair of a PC, with the ELCR.
#[derive(Clone, Debug)]
pub struct PicPair {
    master: Chip,
    slave: Chip,
}

impl Default for PicPair {
    fn default() -> Self {
        Self::new()
    }
}

impl PicPair {
    /// The state a PC BIOS leaves: all masked, vectors 0x08-0x0F and 0x70-0x77.
    pub const fn new() -> Self {
        Self {
            master: Chip::new(0x08, ELCR_MASTER_MASK),
            slave: Chip::new(0x70, ELCR_SLAVE_MASK),
        }
    }

    /// Whether `port` belongs to the pair (command/data ports and the ELCR).
    pub fn claims(port: u16) -> bool {
        matches!(
            port,
            MASTER_CMD | MASTER_DATA | SLAVE_CMD | SLAVE_DATA | ELCR_MASTER | ELCR_SLAVE
        )
    }

    fn cascaded(&self) -> bool {
        !self.master.single
    }

    /// The master's IR2 as the slave drives it.
    fn cascade_input(&self) -> u8 {
        if self.cascaded() && self.slave.request(0).is_some() {
            1 << CASCADE_IRQ
        } else {
            0
        }
    }

    /// A guest IN of one byte.
    pub fn read(&mut self, port: u16) -> u8 {
        match port {
            MASTER_CMD | MASTER_DATA => {
                let extra = self.cascade_input();
                let polled_cascade = self.master.poll && port == MASTER_CMD;
                let v = self.master.read(port == MASTER_DATA, extra);
                if polled_cascade && v == 0x80 | CASCADE_IRQ {
                    // The slave takes part in the polled INTA as in a real one.
                    if let Some(irq) = self.slave.request(0) {
                        self.slave.ack(irq);
                    }
                }
                v
            }
            SLAVE_CMD | SLAVE_DATA => self.slave.read(port == SLAVE_DATA, 0),
            ELCR_MASTER => self.master.elcr,
            ELCR_SLAVE => self.slave.elcr,
            _ => 0xff,
        }
    }

    /// A guest OUT of one byte.
    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            MASTER_CMD | MASTER_DATA => self.master.write(port == MASTER_DATA, value),
            SLAVE_CMD | SLAVE_DATA => self.slave.write(port == SLAVE_DATA, value),
            ELCR_MASTER => Self::write_elcr(&mut self.master, value),
            ELCR_SLAVE => Self::write_elcr(&mut self.slave, value),
            _ => {}
        }
    }

    fn write_elcr(chip: &mut Chip, value: u8) {
        chip.elcr = value & chip.elcr_mask;
        // Inputs that became level triggered request while their line is high.
        chip.irr = (chip.irr & !chip.elcr) | (chip.lines & chip.elcr);
    }

    /// Drives ISA interrupt line `irq` (0-15) to `level`. An edge-triggered input latches a
    /// request on a rising edge; a level-triggered one (ELCR or ICW1.LTIM) requests while
    /// the line is high.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            0..=7 => self.master.set_line(irq, level),
            8..=15 => self.slave.set_line(irq - 8, level),
            _ => {}
        }
    }

    /// The master's INT output: an unmasked request above everything in service,
    /// counting the slave's INT on IR2.
    pub fn pending(&self) -> bool {
        self.master.request(self.cascade_input()).is_some()
    }

    /// An INTA cycle: the vector the pair puts on the bus. The request moves from IRR to
    /// ISR (ISR untouched in AEOI mode). With no request left, the chip answers with a
    /// spurious IR7 (base + 7) and sets no ISR bit. Always `Some` on a PC; `Option` lets a
    /// caller treat "no PIC in the path" uniformly.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let extra = self.cascade_input();
        let Some(irq) = self.master.request(extra) else {
            return Some(self.master.base + 7);
        };
        self.master.ack(irq);
        if irq == CASCADE_IRQ && self.cascaded() {
            return Some(match self.slave.request(0) {
                Some(s) => {
                    self.slave.ack(s);
                    self.slave.base + s
                }
                None => self.slave.base + 7,
            });
        }
        Some(self.master.base + irq)
    }

    /// The vector bases the guest programmed (master, slave).
    pub fn vector_bases(&self) -> (u8, u8) {
        (self.master.base, self.slave.base)
    }

    /// The interrupt mask registers (master, slave).
    pub fn masks(&self) -> (u8, u8) {
        (self.master.imr, self.slave.imr)
    }
}

/// The pair decodes its own ports (command/data of both chips, the ELCR).
impl Device for PicPair {
    fn read(&mut self, offset: u64, _size: u8, _now: Now) -> u64 {
        self.read(offset as u16) as u64
    }
    fn write(&mut self, offset: u64, _size: u8, value: u64, _now: Now) -> DeviceEffect {
        self.write(offset as u16, value as u8);
        DeviceEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Initialisation as Linux's `init_8259A` does it.
    fn linux_init() -> PicPair {
        let mut p = PicPair::new();
        p.write(MASTER_DATA, 0xff);
        p.write(SLAVE_DATA, 0xff);
        p.write(MASTER_CMD, 0x11);
        p.write(MASTER_DATA, 0x30);
        p.write(MASTER_DATA, 1 << CASCADE_IRQ);
        p.write(MASTER_DATA, 0x01);
        p.write(SLAVE_CMD, 0x11);
        p.write(SLAVE_DATA, 0x38);
        p.write(SLAVE_DATA, CASCADE_IRQ);
        p.write(SLAVE_DATA, 0x01);
        p.write(MASTER_DATA, 0x00);
        p.write(SLAVE_DATA, 0x00);
        p
    }

    fn pulse(p: &mut PicPair, irq: u8) {
        p.set_irq(irq, true);
        p.set_irq(irq, false);
    }

    #[test]
    fn reset_state_is_masked_with_bios_bases() {
        let mut p = PicPair::new();
        assert_eq!(p.read(MASTER_DATA), 0xff);
        assert_eq!(p.read(SLAVE_DATA), 0xff);
        assert_eq!(p.vector_bases(), (0x08, 0x70));
        pulse(&mut p, 0);
        assert!(!p.pending(), "masked");
        assert_eq!(p.read(MASTER_CMD), 1, "but latched in IRR");
    }

    #[test]
    fn linux_init_then_timer_interrupt_and_eoi() {
        let mut p = linux_init();
        assert_eq!(p.vector_bases(), (0x30, 0x38));
        assert_eq!(p.masks(), (0, 0));
        assert!(!p.pending());
        pulse(&mut p, 0);
        assert!(p.pending());
        assert_eq!(p.acknowledge(), Some(0x30));
        assert!(!p.pending());
        p.write(MASTER_CMD, 0x0b); // OCW3: read ISR
        assert_eq!(p.read(MASTER_CMD), 0x01);
        p.write(MASTER_CMD, 0x20); // non-specific EOI
        assert_eq!(p.read(MASTER_CMD), 0x00);
        p.write(MASTER_CMD, 0x0a); // back to IRR
        assert_eq!(p.read(MASTER_CMD), 0x00, "edge request consumed by INTA");
    }

    #[test]
    fn in_service_level_blocks_lower_priority_only() {
        let mut p = linux_init();
        pulse(&mut p, 1);
        assert_eq!(p.acknowledge(), Some(0x31));
        pulse(&mut p, 3);
        assert!(!p.pending(), "IRQ1 in service blocks IRQ3");
        pulse(&mut p, 0);
        assert!(p.pending(), "but not IRQ0");
        assert_eq!(p.acknowledge(), Some(0x30));
        p.write(MASTER_CMD, 0x20); // EOI for IRQ0 (the highest in service)
        assert!(!p.pending(), "IRQ1 still in service");
        p.write(MASTER_CMD, 0x61); // specific EOI for IRQ1
        assert!(p.pending());
        assert_eq!(p.acknowledge(), Some(0x33));
    }

    #[test]
    fn slave_interrupts_come_through_the_cascade() {
        let mut p = linux_init();
        pulse(&mut p, 12);
        assert!(p.pending());
        assert_eq!(p.acknowledge(), Some(0x38 + 4));
        p.write(MASTER_CMD, 0x0b);
        p.write(SLAVE_CMD, 0x0b);
        assert_eq!(p.read(MASTER_CMD), 1 << CASCADE_IRQ);
        assert_eq!(p.read(SLAVE_CMD), 1 << 4);
        // IRQ2 in service on the master blocks the other slave inputs and IRQ3...
        pulse(&mut p, 9);
        pulse(&mut p, 3);
        assert!(!p.pending());
        // ...until both chips get their EOI.
        p.write(SLAVE_CMD, 0x20);
        p.write(MASTER_CMD, 0x20);
        assert!(p.pending());
        assert_eq!(p.acknowledge(), Some(0x39), "IRQ9 (via IR2) outranks IRQ3");
        p.write(SLAVE_CMD, 0x20);
        p.write(MASTER_CMD, 0x20);
        assert_eq!(p.acknowledge(), Some(0x33));
    }

    #[test]
    fn masked_irq_is_not_pending_until_unmasked() {
        let mut p = linux_init();
        p.write(MASTER_DATA, 0x10);
        pulse(&mut p, 4);
        assert!(!p.pending());
        p.write(MASTER_DATA, 0x00);
        assert!(p.pending());
        assert_eq!(p.acknowledge(), Some(0x34));
        // A slave IRQ masked on the slave, or the cascade masked on the master.
        p.write(MASTER_CMD, 0x20);
        p.write(SLAVE_DATA, 0x02);
        pulse(&mut p, 9);
        assert!(!p.pending());
        p.write(SLAVE_DATA, 0x00);
        p.write(MASTER_DATA, 1 << CASCADE_IRQ);
        assert!(!p.pending());
        p.write(MASTER_DATA, 0);
        assert_eq!(p.acknowledge(), Some(0x39));
    }

    #[test]
    fn level_triggered_through_elcr() {
        let mut p = linux_init();
        p.write(ELCR_SLAVE, 0xff);
        assert_eq!(p.read(ELCR_SLAVE), 0xde, "IRQ8 and IRQ13 stay edge");
        p.write(ELCR_MASTER, 0x07);
        assert_eq!(p.read(ELCR_MASTER), 0x00, "IRQ0-2 stay edge");
        p.set_irq(11, true);
        assert_eq!(p.acknowledge(), Some(0x3b));
        p.write(SLAVE_CMD, 0x20);
        p.write(MASTER_CMD, 0x20);
        assert!(p.pending(), "line still high: requests again after EOI");
        p.set_irq(11, false);
        assert!(!p.pending(), "IRR follows the line");
        // Edge-triggered: a line held high requests once.
        p.set_irq(4, true);
        assert_eq!(p.acknowledge(), Some(0x34));
        p.write(MASTER_CMD, 0x20);
        assert!(!p.pending());
        p.set_irq(4, true);
        assert!(!p.pending(), "no new edge");
    }

    #[test]
    fn irr_and_isr_read_through_ocw3() {
        let mut p = linux_init();
        pulse(&mut p, 5);
        pulse(&mut p, 6);
        assert_eq!(p.read(MASTER_CMD), 0x60, "IRR after init");
        p.acknowledge();
        p.write(MASTER_CMD, 0x0b);
        assert_eq!(p.read(MASTER_CMD), 0x20);
        p.write(MASTER_CMD, 0x08); // OCW3 without RR: selection unchanged
        assert_eq!(p.read(MASTER_CMD), 0x20);
        p.write(MASTER_CMD, 0x0a);
        assert_eq!(p.read(MASTER_CMD), 0x40);
    }

    #[test]
    fn spurious_interrupt_is_ir7() {
        let mut p = linux_init();
        assert_eq!(p.acknowledge(), Some(0x37));
        p.write(MASTER_CMD, 0x0b);
        assert_eq!(p.read(MASTER_CMD), 0, "spurious IR7 sets no ISR bit");
        // A level-triggered slave request withdrawn before INTA: spurious on the slave.
        p.write(ELCR_SLAVE, 0x08);
        p.set_irq(11, true);
        assert!(p.pending());
        p.set_irq(11, false);
        assert!(!p.pending());
        assert_eq!(p.acknowledge(), Some(0x37), "master sees no request either");
        // The master delivers IR2 but the slave has nothing: the slave's IR7.
        pulse(&mut p, CASCADE_IRQ);
        assert_eq!(p.acknowledge(), Some(0x3f));
    }

    #[test]
    fn poll_command_returns_the_request() {
        let mut p = linux_init();
        p.write(MASTER_CMD, 0x0c);
        assert_eq!(p.read(MASTER_CMD), 0, "nothing pending");
        pulse(&mut p, 3);
        p.write(MASTER_CMD, 0x0c);
        assert_eq!(p.read(MASTER_CMD), 0x83);
        assert!(!p.pending(), "poll acknowledged it");
        p.write(MASTER_CMD, 0x0b);
        assert_eq!(p.read(MASTER_CMD), 0x08);
    }

    #[test]
    fn auto_eoi_leaves_isr_clear() {
        let mut p = PicPair::new();
        p.write(MASTER_CMD, 0x11);
        p.write(MASTER_DATA, 0x20);
        p.write(MASTER_DATA, 0x04);
        p.write(MASTER_DATA, 0x03); // 8086 mode, AEOI
        assert_eq!(p.read(MASTER_DATA), 0, "ICW1 clears the mask");
        pulse(&mut p, 1);
        assert_eq!(p.acknowledge(), Some(0x21));
        p.write(MASTER_CMD, 0x0b);
        assert_eq!(p.read(MASTER_CMD), 0);
        pulse(&mut p, 3);
        assert!(p.pending(), "nothing in service blocks IRQ3");
    }

    #[test]
    fn rotation_changes_priority() {
        let mut p = linux_init();
        p.write(MASTER_CMD, 0xc3); // set priority: IRQ3 lowest, IRQ4 highest
        pulse(&mut p, 1);
        pulse(&mut p, 5);
        assert_eq!(p.acknowledge(), Some(0x35));
    }

    #[test]
    fn the_highest_request_is_the_one_of_best_rank_for_every_mask_and_rotation() {
        for lowest in 0..8u8 {
            let mut c = Chip::new(0x20, 0xff);
            c.lowest = lowest;
            for mask in 0..=255u8 {
                let scan = (0..8u8)
                    .filter(|i| mask & (1 << i) != 0)
                    .min_by_key(|&i| c.rank(i));
                assert_eq!(c.highest(mask), scan, "mask {mask:#010b}, lowest {lowest}");
            }
        }
    }
}
