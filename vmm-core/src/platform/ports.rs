//! The guest's port-I/O space: which device answers which port.
//!
//! Every guest port access exits to the VMM (both backends intercept all of I/O space);
//! this decoder routes it. Unclaimed ports read all ones and ignore writes, as on a PC
//! with nothing decoding that address. Wide accesses to byte-wide devices are split
//! into consecutive byte accesses, as the ISA bus does.

use super::{Now, Platform, PlatformEffect};
use crate::devices::acpi_pm::{pm_timer, PmEffect, PM_TMR};
use crate::devices::legacy::{Legacy, LegacyEffect};
use crate::devices::pic::PicPair;
use crate::devices::pit::Pit;

pub const COM1: u16 = 0x3f8;
/// QEMU's `isa-debug-exit` port: writing `v` ends the guest with exit status `v`.
pub const DEBUG_EXIT: u16 = 0xf4;
const PORT61: u16 = 0x61;
const RTC_INDEX: u16 = 0x70;
const RTC_DATA: u16 = 0x71;
const PCI_ADDRESS: u16 = 0xcf8;
const PCI_DATA: u16 = 0xcfc;
/// The reset control register shares 0xCF8-0xCFB with the PCI address register; a
/// byte access to 0xCF9 reaches it.
const RESET_CONTROL: u16 = 0xcf9;

fn all_ones(size: u8) -> u32 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    }
}

fn is_pci(port: u16, size: u8) -> bool {
    (port == PCI_ADDRESS && size == 4) || (PCI_DATA..PCI_DATA + 4).contains(&port)
}

impl Platform {
    fn read8(&mut self, port: u16, now: Now) -> u8 {
        match port {
            COM1..=0x3ff => self.com1.read((port - COM1) as u8),
            PORT61 => self.pit.read_port61(now.ns),
            p if Pit::claims(p) => self.pit.read(p, now.ns),
            p if PicPair::claims(p) => self.pic.read(p),
            RTC_INDEX | RTC_DATA => self.rtc.read(port, now.ns),
            p if Legacy::claims(p) => self.legacy.read(p),
            p if self.acpi_pm.claims(p) => self.acpi_pm.read(p, 1) as u8,
            p if (PM_TMR..PM_TMR + 4).contains(&p) => {
                (pm_timer(now.ns) >> (8 * (p - PM_TMR))) as u8
            }
            _ => 0xff,
        }
    }

    fn write8(
        &mut self,
        port: u16,
        value: u8,
        now: Now,
        out: &mut impl FnMut(u8),
    ) -> PlatformEffect {
        match port {
            COM1..=0x3ff => {
                if let Some(b) = self.com1.write((port - COM1) as u8, value) {
                    out(b);
                }
            }
            PORT61 => self.pit.write_port61(value, now.ns),
            p if Pit::claims(p) => self.pit.write(p, value, now.ns),
            p if PicPair::claims(p) => self.pic.write(p, value),
            RTC_INDEX | RTC_DATA => self.rtc.write(port, value, now.ns),
            p if Legacy::claims(p) && self.legacy.write(p, value) == LegacyEffect::Reset => {
                return PlatformEffect::Reset;
            }
            p if Legacy::claims(p) => {}
            // SLP_TYP and SLP_EN share PM1_CNT's high byte, so byte writes are enough.
            // Sleep states other than S5 set WAK_STS at once: the guest wakes up.
            p if self.acpi_pm.claims(p) => {
                return match self.acpi_pm.write(p, 1, value as u32) {
                    PmEffect::PowerOff => PlatformEffect::PowerOff,
                    _ => PlatformEffect::None,
                };
            }
            _ => {}
        }
        PlatformEffect::None
    }

    /// A guest IN of `size` (1, 2 or 4) bytes.
    pub fn port_read(&mut self, port: u16, size: u8, now: Now) -> u32 {
        if port == DEBUG_EXIT {
            return all_ones(size);
        }
        if is_pci(port, size) && port != RESET_CONTROL {
            return self.pci.read(port, size);
        }
        let v = (0..size).fold(0u32, |v, i| {
            v | (self.read8(port.wrapping_add(i as u16), now) as u32) << (8 * i)
        });
        self.sync_irq_lines(port);
        v
    }

    /// After an access to a device that drives an interrupt line, follows the line.
    fn sync_irq_lines(&mut self, port: u16) {
        match port {
            COM1..=0x3ff => self.sync_uart_irq(),
            0x60 | 0x64 => {
                let (k, m) = (self.legacy.irq1_level(), self.legacy.irq12_level());
                self.set_isa_irq(1, k);
                self.set_isa_irq(12, m);
            }
            _ => {}
        }
    }

    /// A guest OUT of `size` bytes. Bytes COM1 transmits go to `out`.
    pub fn port_write(
        &mut self,
        port: u16,
        size: u8,
        value: u32,
        now: Now,
        out: &mut impl FnMut(u8),
    ) -> PlatformEffect {
        if port == DEBUG_EXIT {
            return PlatformEffect::Exit(value & all_ones(size));
        }
        if is_pci(port, size) && port != RESET_CONTROL {
            self.pci.write(port, size, value);
            return PlatformEffect::None;
        }
        let mut effect = PlatformEffect::None;
        for i in 0..size {
            let e = self.write8(
                port.wrapping_add(i as u16),
                (value >> (8 * i)) as u8,
                now,
                out,
            );
            if e != PlatformEffect::None {
                effect = e;
            }
        }
        self.sync_irq_lines(port);
        effect
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    const NOW: Now = Now { ns: 0, tsc: 0 };

    fn pc() -> Platform {
        Platform::new(16 << 20, 1_000_000_000, 1_700_000_000)
    }

    #[test]
    fn unclaimed_ports_read_all_ones_and_ignore_writes() {
        let mut p = pc();
        assert_eq!(p.port_read(0x510, 1, NOW), 0xff);
        assert_eq!(p.port_read(0x510, 2, NOW), 0xffff);
        assert_eq!(p.port_read(0x510, 4, NOW), 0xffff_ffff);
        let mut seen = Vec::new();
        assert_eq!(
            p.port_write(0x510, 4, 0x1234_5678, NOW, &mut |b| seen.push(b)),
            PlatformEffect::None
        );
        assert!(seen.is_empty());
    }

    #[test]
    fn com1_transmits_and_debug_exit_ends() {
        let mut p = pc();
        let mut seen = Vec::new();
        p.port_write(COM1, 1, b'J' as u32, NOW, &mut |b| seen.push(b));
        assert_eq!(seen, b"J");
        assert_eq!(
            p.port_read(COM1 + 5, 1, NOW) & 0x60,
            0x60,
            "LSR shows the transmitter empty"
        );
        assert_eq!(
            p.port_write(DEBUG_EXIT, 1, 0x1ff, NOW, &mut |_| {}),
            PlatformEffect::Exit(0xff)
        );
        assert_eq!(
            p.port_write(DEBUG_EXIT, 4, 7, NOW, &mut |_| {}),
            PlatformEffect::Exit(7)
        );
    }

    #[test]
    fn pc_devices_answer_their_ports() {
        let mut p = pc();
        // PIC: OCW1 mask round trip.
        p.port_write(0x21, 1, 0xa5, NOW, &mut |_| {});
        assert_eq!(p.port_read(0x21, 1, NOW), 0xa5);
        // PCI mechanism 1: the address register reads back, data reads all ones.
        p.port_write(0xcf8, 4, 0x8000_0000, NOW, &mut |_| {});
        assert_eq!(p.port_read(0xcf8, 4, NOW), 0x8000_0000);
        assert_eq!(p.port_read(0xcfc, 4, NOW), 0xffff_ffff);
        assert_eq!(p.port_read(0xcfe, 2, NOW), 0xffff);
        // RTC register D: valid RAM and time.
        p.port_write(0x70, 1, 0x0d, NOW, &mut |_| {});
        assert_eq!(p.port_read(0x71, 1, NOW) & 0x80, 0x80);
        // The i8042's reset pulse resets the machine.
        assert_eq!(
            p.port_write(0x64, 1, 0xfe, NOW, &mut |_| {}),
            PlatformEffect::Reset
        );
        // So does the reset control register.
        assert_eq!(
            p.port_write(0xcf9, 1, 0x06, NOW, &mut |_| {}),
            PlatformEffect::Reset
        );
        // ACPI: SCI_EN reads 1; S5 (SLP_TYP 5 | SLP_EN) powers off, as Linux writes it.
        assert_eq!(p.port_read(0x604, 2, NOW) & 1, 1);
        assert_eq!(
            p.port_write(0x604, 2, (5 << 10) | (1 << 13) | 1, NOW, &mut |_| {}),
            PlatformEffect::PowerOff
        );
        // The PM timer runs at 3.579545 MHz.
        let t = Now {
            ns: 1_000_000,
            tsc: 0,
        };
        assert_eq!(p.port_read(0x608, 4, t), 3579);
    }
}
