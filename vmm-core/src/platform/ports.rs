//! The guest's port-I/O space: the PC's port table, and port accesses through it.
//!
//! Every guest port access exits to the VMM (both backends intercept all of I/O space);
//! the [`Bus`] routes it. Unclaimed ports read all ones and ignore writes, as on a PC
//! with nothing decoding that address. Wide accesses to byte-wide devices are split
//! into consecutive byte accesses, as the ISA bus does.

use super::bus::{Bus, Device, DeviceEffect, Range, Width};
use super::{DeviceId, Now, Platform, PlatformEffect};
use crate::devices::acpi_pm::{AcpiPm, PM1_CNT_LEN, PM1_EVT_LEN, PM_TMR};
use crate::devices::fw_cfg;
use crate::devices::legacy::{KBD_DATA, KBD_STATUS, POST, RESET_CONTROL, SYSTEM_CONTROL_A};
use crate::devices::pci::{CONFIG_ADDRESS, CONFIG_DATA};
use crate::devices::pic::{ELCR_MASTER, MASTER_CMD, SLAVE_CMD};
use crate::devices::pit::{CHANNEL0, PORT61};
use crate::devices::rtc::INDEX as RTC_INDEX;
use crate::operand::size_mask;

pub const COM1: u16 = 0x3f8;
/// QEMU's `isa-debug-exit` port: writing `v` ends the guest with exit status `v`.
pub const DEBUG_EXIT: u16 = 0xf4;

/// The port table's capacity.
pub const PORT_RANGES: usize = 24;

/// The PC's port map, with the ACPI PM1 blocks where `acpi` has them.
pub fn pc_ports(acpi: &AcpiPm) -> Bus<DeviceId, PORT_RANGES> {
    let pci_data = Range {
        offset: 4,
        ..Range::new(CONFIG_DATA as u64, 4, DeviceId::Pci, Width::Any)
    };
    let table = [
        Range::new(COM1 as u64, 8, DeviceId::Com1, Width::Bytes),
        Range::new(DEBUG_EXIT as u64, 1, DeviceId::DebugExit, Width::Any),
        Range::isa(CHANNEL0, 4, DeviceId::Pit),
        Range::isa(PORT61, 1, DeviceId::Pit),
        Range::isa(MASTER_CMD, 2, DeviceId::Pic),
        Range::isa(SLAVE_CMD, 2, DeviceId::Pic),
        Range::isa(ELCR_MASTER, 2, DeviceId::Pic),
        Range::isa(RTC_INDEX, 2, DeviceId::Rtc),
        Range::isa(KBD_DATA, 1, DeviceId::Legacy),
        Range::isa(KBD_STATUS, 1, DeviceId::Legacy),
        Range::isa(POST, 1, DeviceId::Legacy),
        Range::isa(SYSTEM_CONTROL_A, 1, DeviceId::Legacy),
        // The reset control register shares 0xCF8-0xCFB with the PCI address register;
        // a byte access to 0xCF9 reaches it.
        Range::isa(RESET_CONTROL, 1, DeviceId::Legacy),
        Range::isa(acpi.evt_port(), PM1_EVT_LEN as u16, DeviceId::AcpiPm),
        Range::isa(acpi.cnt_port(), PM1_CNT_LEN as u16, DeviceId::AcpiPm),
        Range::new(PM_TMR as u64, 4, DeviceId::PmTimer, Width::Bytes),
        Range::new(CONFIG_ADDRESS as u64, 1, DeviceId::Pci, Width::Dword),
        pci_data,
        Range::new(fw_cfg::SELECTOR as u64, 2, DeviceId::FwCfg, Width::Any),
    ];
    let mut bus = Bus::new();
    for r in table {
        // The table is fixed and tested to fit without overlaps.
        let _ = bus.insert(r);
    }
    bus
}

/// The debug-exit port: a write ends the guest with the value written.
#[derive(Clone, Copy, Debug, Default)]
pub struct DebugExit;

impl Device for DebugExit {
    fn read(&mut self, _offset: u64, size: u8, _now: Now) -> u64 {
        size_mask(size)
    }
    fn write(&mut self, _offset: u64, size: u8, value: u64, _now: Now) -> DeviceEffect {
        DeviceEffect::Exit((value & size_mask(size)) as u32)
    }
}

/// The devices one access touched, to follow their interrupt lines afterwards.
#[derive(Default)]
struct Touched(u32);

impl Touched {
    fn add(&mut self, id: DeviceId) {
        self.0 |= 1 << id as u32;
    }
}

impl Platform {
    /// A guest IN of `size` (1, 2 or 4) bytes. A byte access is decided by the one
    /// lookup (a byte-wide device takes it as one of its bytes; nothing else takes it), so
    /// the common case searches the bus once. Inlined, with the split into bytes out of
    /// line: on the path of every IN, in place or through the dispatcher, where a call's
    /// frame cost more than the access.
    #[inline(always)]
    pub fn port_read(&mut self, port: u16, size: u8, now: Now) -> u32 {
        match self.ports.find(port as u64, size) {
            Some(hit) if hit.width != Width::Bytes || size == 1 => {
                let v = self.device(hit.id).read(hit.offset, size, now) as u32;
                self.sync_lines(hit.id);
                v
            }
            None if size == 1 => 0xff,
            _ => self.port_read_bytes(port, size, now),
        }
    }

    /// A guest OUT of `size` bytes; what it did to the whole machine. Byte accesses
    /// search the bus once, as in [`Platform::port_read`], inlined as it is.
    #[inline(always)]
    pub fn port_write(&mut self, port: u16, size: u8, value: u32, now: Now) -> PlatformEffect {
        match self.ports.find(port as u64, size) {
            Some(hit) if hit.width != Width::Bytes || size == 1 => {
                let effect = self.device_write(hit.id, hit.offset, size, value as u64, now);
                self.sync_lines(hit.id);
                effect
            }
            None if size == 1 => PlatformEffect::None,
            _ => self.port_write_bytes(port, size, value, now),
        }
    }

    /// A wide IN that no device takes whole: one byte at a time, as the ISA bus does.
    #[inline(never)]
    fn port_read_bytes(&mut self, port: u16, size: u8, now: Now) -> u32 {
        let mut touched = Touched::default();
        let v = (0..size).fold(0u32, |v, i| {
            let b = self.read8(port.wrapping_add(i as u16), now, &mut touched);
            v | (b as u32) << (8 * i)
        });
        self.sync_touched(touched);
        v
    }

    /// A wide OUT that no device takes whole: one byte at a time, as the ISA bus does.
    #[inline(never)]
    fn port_write_bytes(&mut self, port: u16, size: u8, value: u32, now: Now) -> PlatformEffect {
        let mut touched = Touched::default();
        let effect = (0..size).fold(PlatformEffect::None, |effect, i| {
            let b = (value >> (8 * i)) as u8;
            match self.write8(port.wrapping_add(i as u16), b, now, &mut touched) {
                PlatformEffect::None => effect,
                e => e,
            }
        });
        self.sync_touched(touched);
        effect
    }

    fn byte_device(&self, port: u16) -> Option<super::bus::Hit<DeviceId>> {
        self.ports
            .find(port as u64, 1)
            .filter(|h| h.width == Width::Bytes)
    }

    fn read8(&mut self, port: u16, now: Now, touched: &mut Touched) -> u8 {
        let Some(hit) = self.byte_device(port) else {
            return 0xff;
        };
        touched.add(hit.id);
        self.device(hit.id).read(hit.offset, 1, now) as u8
    }

    fn write8(&mut self, port: u16, value: u8, now: Now, touched: &mut Touched) -> PlatformEffect {
        let Some(hit) = self.byte_device(port) else {
            return PlatformEffect::None;
        };
        touched.add(hit.id);
        self.device_write(hit.id, hit.offset, 1, value as u64, now)
    }

    /// After an access, follows the interrupt lines of the devices it touched. Inlined
    /// into the port accesses: as a call its frame cost more than its work.
    #[inline(always)]
    fn sync_touched(&mut self, touched: Touched) {
        // Only the set bits (usually one), not every device's: this is on the path of
        // every port access.
        let mut bits = touched.0;
        while bits != 0 {
            if let Some(&id) = DeviceId::ALL.get(bits.trailing_zeros() as usize) {
                self.sync_lines(id);
            }
            bits &= bits - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Now = Now { ns: 0, tsc: 0 };

    fn pc() -> Platform {
        Platform::new(16 << 20, 1_000_000_000, 1_700_000_000, 1)
    }

    /// A port nothing on the PC decodes (the prototype-card range).
    const UNCLAIMED: u16 = 0x300;

    #[test]
    fn fw_cfg_answers_at_0x510() {
        let mut p = pc();
        p.port_write(0x510, 2, 0x0003, NOW);
        let ram = (0..8).fold(0u64, |v, i| {
            v | u64::from(p.port_read(0x511, 1, NOW) as u8) << (8 * i)
        });
        assert_eq!(ram, 16 << 20, "FW_CFG_RAM_SIZE");
        p.port_write(0x510, 2, 0x0005, NOW);
        assert_eq!(p.port_read(0x511, 1, NOW), 1, "one CPU, not 0xff");
    }

    #[test]
    fn the_pc_port_table_fits_without_overlaps() {
        // `Bus::insert` refuses an overlapping range and a full table.
        assert_eq!(pc_ports(&AcpiPm::default()).ranges().len(), 19);
    }

    #[test]
    fn unclaimed_ports_read_all_ones_and_ignore_writes() {
        let mut p = pc();
        assert_eq!(p.port_read(UNCLAIMED, 1, NOW), 0xff);
        assert_eq!(p.port_read(UNCLAIMED, 2, NOW), 0xffff);
        assert_eq!(p.port_read(UNCLAIMED, 4, NOW), 0xffff_ffff);
        assert_eq!(
            p.port_write(UNCLAIMED, 4, 0x1234_5678, NOW),
            PlatformEffect::None
        );
        assert!(p.com1.take_output().is_empty());
    }

    #[test]
    fn com1_transmits_and_debug_exit_ends() {
        let mut p = pc();
        p.port_write(COM1, 1, b'J' as u32, NOW);
        assert_eq!(p.com1.take_output().as_slice(), b"J");
        assert_eq!(
            p.port_read(COM1 + 5, 1, NOW) & 0x60,
            0x60,
            "LSR shows the transmitter empty"
        );
        assert_eq!(
            p.port_write(DEBUG_EXIT, 1, 0x1ff, NOW),
            PlatformEffect::Exit(0xff)
        );
        assert_eq!(p.port_write(DEBUG_EXIT, 4, 7, NOW), PlatformEffect::Exit(7));
    }

    #[test]
    fn pc_devices_answer_their_ports() {
        let mut p = pc();
        // PIC: OCW1 mask round trip.
        p.port_write(0x21, 1, 0xa5, NOW);
        assert_eq!(p.port_read(0x21, 1, NOW), 0xa5);
        // PCI mechanism 1: the address register reads back, data reads all ones.
        p.port_write(0xcf8, 4, 0x8000_0000, NOW);
        assert_eq!(p.port_read(0xcf8, 4, NOW), 0x8000_0000);
        assert_eq!(p.port_read(0xcfc, 4, NOW), 0xffff_ffff);
        assert_eq!(p.port_read(0xcfe, 2, NOW), 0xffff);
        // RTC register D: valid RAM and time.
        p.port_write(0x70, 1, 0x0d, NOW);
        assert_eq!(p.port_read(0x71, 1, NOW) & 0x80, 0x80);
        // The i8042's reset pulse resets the machine.
        assert_eq!(p.port_write(0x64, 1, 0xfe, NOW), PlatformEffect::Reset);
        // So does the reset control register.
        assert_eq!(p.port_write(0xcf9, 1, 0x06, NOW), PlatformEffect::Reset);
        // ACPI: SCI_EN reads 1; S5 (SLP_TYP 5 | SLP_EN) powers off, as Linux writes it.
        assert_eq!(p.port_read(0x604, 2, NOW) & 1, 1);
        assert_eq!(
            p.port_write(0x604, 2, (5 << 10) | (1 << 13) | 1, NOW),
            PlatformEffect::PowerOff
        );
        // The PM timer runs at 3.579545 MHz.
        let t = Now {
            ns: 1_000_000,
            tsc: 0,
        };
        assert_eq!(p.port_read(0x608, 4, t), 3579);
    }

    /// A PC whose PIC has vectors 0x30/0x38 and only IRQ4 (COM1) unmasked; the APIC
    /// passes the PIC through.
    fn pc_with_irq4() -> Platform {
        let mut p = pc();
        for (port, v) in [
            (0x20, 0x11),
            (0x21, 0x30),
            (0x21, 4),
            (0x21, 1),
            (0x21, 0xef),
        ] {
            p.port_write(port, 1, v, NOW);
        }
        p
    }

    #[test]
    fn the_uart_interrupt_reaches_the_cpu_through_port_writes() {
        let mut p = pc_with_irq4();
        p.port_write(COM1 + 4, 1, 0x08, NOW); // MCR: OUT2 gates the line
        assert_eq!(p.acknowledge_interrupt(), None);
        p.port_write(COM1 + 1, 1, 0x02, NOW); // IER: THRE, the transmitter is empty
        assert_eq!(p.acknowledge_interrupt(), Some(0x34));
    }

    #[test]
    fn a_wide_access_to_the_uart_reaches_its_bytes_and_moves_its_line() {
        let mut p = pc_with_irq4();
        // MCR: OUT2 gates the line.
        p.port_write(COM1 + 4, 1, 0x08, NOW);
        // One word: 'J' to DATA, THRE to IER (the byte above), as the ISA bus splits it.
        p.port_write(COM1, 2, 0x0200 | b'J' as u32, NOW);
        assert_eq!(p.com1.take_output().as_slice(), b"J");
        assert_eq!(
            p.acknowledge_interrupt(),
            Some(0x34),
            "IRQ4 followed the IER byte"
        );
        // One word read: MCR, then LSR (transmitter empty) above it.
        assert_eq!(p.port_read(COM1 + 4, 2, NOW) & 0x60ff, 0x6008);
    }
}
