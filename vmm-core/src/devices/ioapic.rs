//! An I/O APIC (Intel 82093AA, datasheet order no. 290566-001, May 1996) with 24 pins, as
//! a state machine over its MMIO window at 0xFEC00000.
//!
//! Our own model: the rust-vmm device crates need std, which a bare-metal VMM does not
//! have. The guest selects a register with IOREGSEL (offset 0x00) and reads or writes it
//! through IOWIN (offset 0x10); version 0x20, which we report, adds the EOI register at
//! offset 0x40 (as on later PCH IOxAPICs), so a guest may end a level-triggered
//! interrupt without a local APIC EOI broadcast.
//!
//! Interrupt lines: the platform calls [`IoApic::set_irq`] with each line's *asserted*
//! state, whatever its electrical polarity: the polarity bit (13) of an entry is stored
//! and read back but not applied (the platform knows its wiring and passes assertion).
//! Edge-triggered entries deliver on a rising edge while unmasked (an edge while masked is
//! lost, as on the 82093AA). Level-triggered entries deliver while the line is asserted,
//! unmasked and remote IRR is clear, and set remote IRR; the local APIC's EOI for that
//! vector ([`IoApic::eoi`]) clears it and re-delivers if the line is still asserted.
//!
//! Deliveries are return values, never queued: [`IoApic::set_irq`], [`IoApic::eoi`] and
//! [`IoApic::write_mmio`] each return at most one [`Delivery`] for the platform to route
//! to local APICs. A write to a redirection entry delivers when it unmasks (or turns
//! level-triggered) a level entry whose line is asserted; a write to the EOI register
//! delivers as `eoi` does.
//!
//! Left out: the delivery-status bit (bit 12; delivery is immediate, it reads 0), the
//! arbitration ID as a separate register (it mirrors the ID), remote IRR for non-fixed
//! delivery modes (SMI, NMI, INIT and ExtINT are edge-like: they never set it), and
//! destination bits above 63:56 (extended destination IDs).

use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;

/// MMIO offsets in the window.
pub const IOREGSEL: u32 = 0x00;
pub const IOWIN: u32 = 0x10;
pub const IOEOI: u32 = 0x40;

/// The window's guest-physical address on a PC.
pub const DEFAULT_BASE: u64 = 0xfec0_0000;

/// Indirect register indices (through IOREGSEL).
pub const REG_ID: u8 = 0x00;
pub const REG_VERSION: u8 = 0x01;
pub const REG_ARB: u8 = 0x02;
/// Redirection entry `n` is at `REG_REDIR + 2n` (low half) and `+ 2n + 1` (high half).
pub const REG_REDIR: u8 = 0x10;

pub const PINS: usize = 24;

/// Version register: maximum redirection entry 23 (bits 23:16), version 0x20.
pub const VERSION: u32 = ((PINS as u32 - 1) << 16) | 0x20;

/// Redirection entry bits.
pub const ENTRY_LOGICAL: u64 = 1 << 11;
pub const ENTRY_ACTIVE_LOW: u64 = 1 << 13;
pub const ENTRY_REMOTE_IRR: u64 = 1 << 14;
pub const ENTRY_LEVEL: u64 = 1 << 15;
pub const ENTRY_MASKED: u64 = 1 << 16;

/// Bits the guest may write: vector, delivery mode, destination mode, polarity, trigger
/// mode, mask, destination (63:56). Delivery status and remote IRR are read-only.
const ENTRY_WRITABLE: u64 = 0xff00_0000_0001_afff;

/// Delivery modes of a redirection entry (bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    Fixed,
    LowestPriority,
    Smi,
    Nmi,
    Init,
    ExtInt,
}

/// An interrupt message for the platform to send to local APICs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub vector: u8,
    /// Destination (entry bits 63:56): an APIC ID, or a logical destination.
    pub dest: u8,
    pub logical: bool,
    pub mode: DeliveryMode,
    /// Level-triggered: the local APIC sets TMR and its EOI must reach [`IoApic::eoi`].
    pub level: bool,
}

#[derive(Clone, Debug)]
pub struct IoApic {
    id: u8,
    ioregsel: u8,
    redir: [u64; PINS],
    /// Asserted lines, one bit per pin.
    lines: u32,
}

impl IoApic {
    /// The state after reset: every entry masked, edge-triggered, vector 0.
    pub fn new(id: u8) -> Self {
        Self {
            id: id & 0xf,
            ioregsel: 0,
            redir: [ENTRY_MASKED; PINS],
            lines: 0,
        }
    }

    /// The 4-bit IOAPIC ID (register 0x00 bits 27:24).
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Redirection entry `pin` as the guest programmed it (remote IRR included).
    pub fn entry(&self, pin: u8) -> Option<u64> {
        self.redir.get(pin as usize).copied()
    }

    /// Whether line `pin` is asserted.
    pub fn line(&self, pin: u8) -> bool {
        (pin as usize) < PINS && self.lines & (1 << pin) != 0
    }

    fn read_reg(&self, index: u8) -> u32 {
        match index {
            REG_ID => (self.id as u32) << 24,
            REG_VERSION => VERSION,
            REG_ARB => (self.id as u32) << 24,
            i if (REG_REDIR..REG_REDIR + 2 * PINS as u8).contains(&i) => {
                let e = self.redir[((i - REG_REDIR) / 2) as usize];
                if i & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_reg(&mut self, index: u8, value: u32) -> Option<Delivery> {
        match index {
            REG_ID => self.id = ((value >> 24) & 0xf) as u8,
            i if (REG_REDIR..REG_REDIR + 2 * PINS as u8).contains(&i) => {
                let pin = ((i - REG_REDIR) / 2) as usize;
                let old = self.redir[pin];
                let (mask, shift) = if i & 1 == 0 {
                    (0xffff_ffffu64, 0)
                } else {
                    (0xffff_ffff << 32, 32)
                };
                let writable = ENTRY_WRITABLE & mask;
                let mut e = (old & !writable) | (((value as u64) << shift) & writable);
                if e & ENTRY_LEVEL == 0 {
                    e &= !ENTRY_REMOTE_IRR;
                }
                self.redir[pin] = e;
                if i & 1 == 0 {
                    return self.level_delivery(pin);
                }
            }
            // Version and arbitration are read-only.
            _ => {}
        }
        None
    }

    /// A guest read at `offset` in the window: IOREGSEL reads back, IOWIN reads the
    /// selected register; anything else (the EOI register is write-only) reads 0.
    pub fn read_mmio(&self, offset: u32) -> u32 {
        match offset {
            IOREGSEL => self.ioregsel as u32,
            IOWIN => self.read_reg(self.ioregsel),
            _ => 0,
        }
    }

    /// A guest write at `offset` in the window. Returns a delivery when the write
    /// unmasks a level-triggered entry whose line is asserted (remote IRR clear), or
    /// when a write to the EOI register re-delivers (see [`IoApic::eoi`]).
    pub fn write_mmio(&mut self, offset: u32, value: u32) -> Option<Delivery> {
        match offset {
            IOREGSEL => {
                self.ioregsel = value as u8;
                None
            }
            IOWIN => self.write_reg(self.ioregsel, value),
            IOEOI => self.eoi(value as u8),
            _ => None,
        }
    }

    /// The message entry `pin` sends, or None for a reserved delivery mode.
    fn message(&self, pin: usize) -> Option<Delivery> {
        let e = self.redir[pin];
        let mode = match (e >> 8) & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            7 => DeliveryMode::ExtInt,
            _ => return None,
        };
        Some(Delivery {
            vector: e as u8,
            dest: (e >> 56) as u8,
            logical: e & ENTRY_LOGICAL != 0,
            mode,
            level: self.level_triggered(pin),
        })
    }

    /// Level-triggered in the remote-IRR sense: trigger bit set, fixed or lowest
    /// priority delivery.
    fn level_triggered(&self, pin: usize) -> bool {
        let e = self.redir[pin];
        e & ENTRY_LEVEL != 0 && (e >> 8) & 6 == 0
    }

    /// Delivers a level entry if its line is asserted, it is unmasked and remote IRR is
    /// clear; sets remote IRR.
    fn level_delivery(&mut self, pin: usize) -> Option<Delivery> {
        let e = self.redir[pin];
        if !self.level_triggered(pin)
            || e & (ENTRY_MASKED | ENTRY_REMOTE_IRR) != 0
            || self.lines & (1 << pin) == 0
        {
            return None;
        }
        let d = self.message(pin)?;
        self.redir[pin] |= ENTRY_REMOTE_IRR;
        Some(d)
    }

    /// Line `pin` is now asserted (`asserted`) or not. Returns the message to send, if
    /// any: edge entries on a rising edge while unmasked; level entries while asserted,
    /// unmasked and not awaiting an EOI. Pins beyond 23 are ignored.
    pub fn set_irq(&mut self, pin: u8, asserted: bool) -> Option<Delivery> {
        let pin = pin as usize;
        if pin >= PINS {
            return None;
        }
        let was = self.lines & (1 << pin) != 0;
        if asserted {
            self.lines |= 1 << pin;
        } else {
            self.lines &= !(1 << pin);
            return None;
        }
        if self.level_triggered(pin) {
            self.level_delivery(pin)
        } else if !was && self.redir[pin] & ENTRY_MASKED == 0 {
            self.message(pin)
        } else {
            None
        }
    }

    /// A local APIC's EOI for `vector` (broadcast, or the EOI register): clears remote
    /// IRR of the level-triggered entries with that vector, then re-delivers the first of
    /// them whose line is still asserted and unmasked. Entries sharing a vector are thus
    /// served one per EOI.
    pub fn eoi(&mut self, vector: u8) -> Option<Delivery> {
        let matching = |e: u64| e as u8 == vector;
        for pin in 0..PINS {
            if self.level_triggered(pin) && matching(self.redir[pin]) {
                self.redir[pin] &= !ENTRY_REMOTE_IRR;
            }
        }
        (0..PINS).find_map(|pin| {
            if matching(self.redir[pin]) {
                self.level_delivery(pin)
            } else {
                None
            }
        })
    }
}

/// The IOAPIC page: IOREGSEL, IOWIN and IOEOI, 32 bits wide.
impl Device for IoApic {
    fn read(&mut self, offset: u64, _size: u8, _now: Now) -> u64 {
        self.read_mmio(offset as u32) as u64
    }
    fn write(&mut self, offset: u64, _size: u8, value: u64, _now: Now) -> DeviceEffect {
        match self.write_mmio(offset as u32, value as u32) {
            Some(d) => DeviceEffect::Deliver(d),
            None => DeviceEffect::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_reg(io: &mut IoApic, index: u8, value: u32) -> Option<Delivery> {
        io.write_mmio(IOREGSEL, index as u32);
        io.write_mmio(IOWIN, value)
    }

    fn read_reg(io: &mut IoApic, index: u8) -> u32 {
        io.write_mmio(IOREGSEL, index as u32);
        io.read_mmio(IOWIN)
    }

    fn program(io: &mut IoApic, pin: u8, low: u32, dest: u8) -> Option<Delivery> {
        write_reg(io, REG_REDIR + 2 * pin + 1, (dest as u32) << 24);
        write_reg(io, REG_REDIR + 2 * pin, low)
    }

    const LEVEL: u32 = ENTRY_LEVEL as u32;
    const MASKED: u32 = ENTRY_MASKED as u32;

    #[test]
    fn id_version_arbitration_and_ioregsel() {
        let mut io = IoApic::new(2);
        assert_eq!(read_reg(&mut io, REG_ID), 2 << 24);
        assert_eq!(read_reg(&mut io, REG_VERSION), 0x0017_0020);
        assert_eq!(read_reg(&mut io, REG_ARB), 2 << 24);
        write_reg(&mut io, REG_ID, 0x0500_0000 | 0xff);
        assert_eq!(read_reg(&mut io, REG_ID), 5 << 24, "only bits 27:24");
        assert_eq!(io.id(), 5);
        write_reg(&mut io, REG_VERSION, 0);
        assert_eq!(
            read_reg(&mut io, REG_VERSION),
            VERSION,
            "version is read-only"
        );
        io.write_mmio(IOREGSEL, 0x2b);
        assert_eq!(io.read_mmio(IOREGSEL), 0x2b);
        assert_eq!(read_reg(&mut io, 0x40), 0, "no register past the table");
    }

    #[test]
    fn entries_reset_masked_and_read_back() {
        let mut io = IoApic::new(0);
        for pin in 0..PINS as u8 {
            assert_eq!(read_reg(&mut io, REG_REDIR + 2 * pin), MASKED);
            assert_eq!(read_reg(&mut io, REG_REDIR + 2 * pin + 1), 0);
        }
        program(&mut io, 4, 0x0001_ffff | LEVEL, 0x03);
        // Delivery status (12) and remote IRR (14) are read-only.
        assert_eq!(read_reg(&mut io, REG_REDIR + 8), 0x0001_afff);
        write_reg(&mut io, REG_REDIR + 9, 0xffff_ffff);
        assert_eq!(
            read_reg(&mut io, REG_REDIR + 9),
            0xff00_0000,
            "bits 55:32 reserved"
        );
        assert_eq!(io.entry(4), Some(0xff00_0000_0001_afff));
        assert_eq!(io.entry(24), None);
    }

    #[test]
    fn edge_delivers_once_per_rising_edge() {
        let mut io = IoApic::new(0);
        assert_eq!(program(&mut io, 1, 0x31, 0x02), None);
        let d = Delivery {
            vector: 0x31,
            dest: 2,
            logical: false,
            mode: DeliveryMode::Fixed,
            level: false,
        };
        assert_eq!(io.set_irq(1, true), Some(d));
        assert_eq!(io.set_irq(1, true), None, "no edge while held");
        assert_eq!(io.set_irq(1, false), None);
        assert_eq!(io.set_irq(1, true), Some(d));
        assert_eq!(io.eoi(0x31), None, "edge entries ignore EOI");
        assert_eq!(io.set_irq(24, true), None, "no pin 24");
    }

    #[test]
    fn masked_entries_do_not_deliver() {
        let mut io = IoApic::new(0);
        assert_eq!(io.set_irq(3, true), None, "reset: masked");
        io.set_irq(3, false);
        program(&mut io, 3, 0x33 | MASKED, 0);
        assert_eq!(io.set_irq(3, true), None);
        assert_eq!(
            program(&mut io, 3, 0x33, 0),
            None,
            "edge lost while masked is not replayed"
        );
        io.set_irq(3, false);
        assert!(io.set_irq(3, true).is_some());
    }

    #[test]
    fn level_remote_irr_and_eoi_redelivery() {
        let mut io = IoApic::new(0);
        program(&mut io, 9, 0x49 | LEVEL | ENTRY_LOGICAL as u32, 0x01);
        let d = io.set_irq(9, true).expect("delivered");
        assert_eq!(
            (d.vector, d.level, d.logical, d.dest),
            (0x49, true, true, 1)
        );
        assert_ne!(
            read_reg(&mut io, REG_REDIR + 18) & ENTRY_REMOTE_IRR as u32,
            0
        );
        assert_eq!(io.set_irq(9, true), None, "remote IRR holds it");
        assert_eq!(io.eoi(0x48), None, "other vector");
        assert_eq!(io.eoi(0x49), Some(d), "still asserted: re-delivered");
        io.set_irq(9, false);
        assert_eq!(io.eoi(0x49), None);
        assert_eq!(
            read_reg(&mut io, REG_REDIR + 18) & ENTRY_REMOTE_IRR as u32,
            0
        );
        assert_eq!(io.set_irq(9, true), Some(d));
        // The EOI register does the same as a broadcast EOI.
        assert_eq!(io.write_mmio(IOEOI, 0x49), Some(d));
    }

    #[test]
    fn unmasking_an_asserted_level_line_delivers() {
        let mut io = IoApic::new(0);
        program(&mut io, 11, 0x5b | LEVEL | MASKED, 0);
        assert_eq!(io.set_irq(11, true), None);
        let d = program(&mut io, 11, 0x5b | LEVEL, 0).expect("delivered on unmask");
        assert_eq!((d.vector, d.level), (0x5b, true));
        assert_eq!(
            program(&mut io, 11, 0x5b | LEVEL, 0),
            None,
            "remote IRR set"
        );
        // Masking does not drop remote IRR; EOI while masked does not deliver.
        program(&mut io, 11, 0x5b | LEVEL | MASKED, 0);
        assert_eq!(io.eoi(0x5b), None);
        assert!(program(&mut io, 11, 0x5b | LEVEL, 0).is_some());
    }

    #[test]
    fn shared_vector_serves_one_entry_per_eoi() {
        let mut io = IoApic::new(0);
        program(&mut io, 16, 0x60 | LEVEL, 0);
        program(&mut io, 17, 0x60 | LEVEL, 1);
        assert_eq!(io.set_irq(16, true).map(|d| d.dest), Some(0));
        assert_eq!(io.set_irq(17, true).map(|d| d.dest), Some(1));
        assert_eq!(io.eoi(0x60).map(|d| d.dest), Some(0));
        assert_eq!(io.eoi(0x60).map(|d| d.dest), Some(0), "pin 16 first again");
        io.set_irq(16, false);
        assert_eq!(io.eoi(0x60).map(|d| d.dest), Some(1));
    }

    #[test]
    fn delivery_modes_and_non_fixed_level() {
        let mut io = IoApic::new(0);
        program(&mut io, 0, 0x700, 0); // ExtINT
        assert_eq!(
            io.set_irq(0, true).map(|d| d.mode),
            Some(DeliveryMode::ExtInt)
        );
        program(&mut io, 2, 0x400 | LEVEL, 0); // NMI: no remote IRR
        assert_eq!(
            io.set_irq(2, true).map(|d| (d.mode, d.level)),
            Some((DeliveryMode::Nmi, false))
        );
        assert_eq!(
            read_reg(&mut io, REG_REDIR + 4) & ENTRY_REMOTE_IRR as u32,
            0
        );
        program(&mut io, 5, 0x300 | 0x35, 0); // reserved mode
        assert_eq!(io.set_irq(5, true), None);
        program(&mut io, 6, 0x135, 0);
        assert_eq!(
            io.set_irq(6, true).map(|d| d.mode),
            Some(DeliveryMode::LowestPriority)
        );
    }

    #[test]
    fn switching_to_edge_clears_remote_irr() {
        let mut io = IoApic::new(0);
        program(&mut io, 7, 0x47 | LEVEL, 0);
        io.set_irq(7, true).unwrap();
        program(&mut io, 7, 0x47, 0);
        assert_eq!(io.entry(7).unwrap() & ENTRY_REMOTE_IRR, 0);
        // The polarity bit is stored, not applied: assertion is what counts.
        program(&mut io, 8, 0x48 | ENTRY_ACTIVE_LOW as u32, 0);
        assert_eq!(
            read_reg(&mut io, REG_REDIR + 16) & ENTRY_ACTIVE_LOW as u32,
            ENTRY_ACTIVE_LOW as u32
        );
        assert!(io.set_irq(8, true).is_some());
    }
}
