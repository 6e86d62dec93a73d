//! PCI configuration mechanism 1 (ports 0xCF8-0xCFF) on a bus with no devices.
//!
//! Written here because the rust-vmm device crates need std, which a bare-metal VMM does
//! not have.
//!
//! Source: PCI Local Bus Specification 3.0, section 3.2.2.3.2 ("Software Generation of
//! Configuration Transactions"): CONFIG_ADDRESS is a dword register at 0xCF8 (bit 31
//! enable, bits 23-16 bus, 15-11 device, 10-8 function, 7-2 register, 1-0 read as 0);
//! CONFIG_DATA is the dword at 0xCFC, of which byte and word accesses reach the bytes
//! CONFIG_ADDRESS's register offset plus (port - 0xCFC) select; only a dword access to
//! 0xCF8 reaches CONFIG_ADDRESS (a byte at 0xCF9 is the PIIX reset control register, see
//! [`super::legacy`]). A configuration read that no function claims ends in a master
//! abort and returns all ones, which software reads as vendor ID 0xFFFF: no device.
//!
//! No device, not even a host bridge, answers: the address register reads back what the
//! guest wrote (Linux's mechanism-1 probe writes 0x80000000 and reads it back), every data
//! read returns all ones of the access width, data writes are dropped. Linux then finds
//! no host bridge or VGA device on bus 0 and reports no PCI, which is what this platform
//! wants. The address register's reserved bits 30-24 and 1-0 read as 0.

use crate::operand::size_mask;
use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;

pub const CONFIG_ADDRESS: u16 = 0xcf8;
pub const CONFIG_DATA: u16 = 0xcfc;

/// CONFIG_ADDRESS bits that hold state (enable, bus, device, function, register).
const ADDRESS_MASK: u32 = 0x80ff_fffc;

/// A decoded CONFIG_ADDRESS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigAddress {
    pub enabled: bool,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    /// Byte offset of the dword register (bits 7-2).
    pub register: u8,
}

#[derive(Clone, Debug, Default)]
pub struct PciConfig {
    address: u32,
}

impl PciConfig {
    pub const fn new() -> Self {
        Self { address: 0 }
    }

    /// Whether an access of `size` bytes at `port` belongs to the mechanism: a dword at
    /// 0xCF8, any access within 0xCFC-0xCFF.
    pub fn claims(port: u16, size: u8) -> bool {
        (port == CONFIG_ADDRESS && size == 4) || (CONFIG_DATA..CONFIG_DATA + 4).contains(&port)
    }

    /// CONFIG_ADDRESS as the guest last wrote it (reserved bits clear).
    pub fn address(&self) -> ConfigAddress {
        let a = self.address;
        ConfigAddress {
            enabled: a & 0x8000_0000 != 0,
            bus: (a >> 16) as u8,
            device: ((a >> 11) & 0x1f) as u8,
            function: ((a >> 8) & 7) as u8,
            register: (a & 0xfc) as u8,
        }
    }

    /// A guest IN of `size` (1, 2 or 4) bytes.
    pub fn read(&mut self, port: u16, size: u8) -> u32 {
        match port {
            CONFIG_ADDRESS if size == 4 => self.address,
            // Data: with the enable bit set, a master abort (no function answers); with it
            // clear, an ordinary I/O read nothing decodes. All ones either way.
            _ => size_mask(size.min(4)) as u32,
        }
    }

    /// A guest OUT of `size` bytes. Only a dword to 0xCF8 has an effect.
    pub fn write(&mut self, port: u16, size: u8, value: u32) {
        if port == CONFIG_ADDRESS && size == 4 {
            self.address = value & ADDRESS_MASK;
        }
    }
}

/// Offsets 0-3 are CONFIG_ADDRESS, 4-7 CONFIG_DATA.
impl Device for PciConfig {
    fn read(&mut self, offset: u64, size: u8, _now: Now) -> u64 {
        self.read(CONFIG_ADDRESS + offset as u16, size) as u64
    }
    fn write(&mut self, offset: u64, size: u8, value: u64, _now: Now) -> DeviceEffect {
        self.write(CONFIG_ADDRESS + offset as u16, size, value as u32);
        DeviceEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_mechanism1_probe_reads_the_address_back() {
        let mut p = PciConfig::new();
        // pci_check_type1: a byte to 0xCFB, save 0xCF8, write 0x80000000, read it back.
        p.write(0xcfb, 1, 0x01);
        let saved = p.read(CONFIG_ADDRESS, 4);
        p.write(CONFIG_ADDRESS, 4, 0x8000_0000);
        assert_eq!(p.read(CONFIG_ADDRESS, 4), 0x8000_0000);
        p.write(CONFIG_ADDRESS, 4, saved);
        assert_eq!(p.read(CONFIG_ADDRESS, 4), saved);
    }

    #[test]
    fn address_fields_and_reserved_bits() {
        let mut p = PciConfig::new();
        p.write(CONFIG_ADDRESS, 4, 0xffff_ffff);
        assert_eq!(p.read(CONFIG_ADDRESS, 4), 0x80ff_fffc);
        p.write(CONFIG_ADDRESS, 4, 0x8001_0a08); // 01:01.2, register 8
        assert_eq!(
            p.address(),
            ConfigAddress {
                enabled: true,
                bus: 1,
                device: 1,
                function: 2,
                register: 8
            }
        );
        // Byte and word writes to 0xCF8 are not CONFIG_ADDRESS.
        p.write(CONFIG_ADDRESS, 1, 0);
        p.write(CONFIG_ADDRESS, 2, 0);
        assert_eq!(p.read(CONFIG_ADDRESS, 4), 0x8001_0a08);
    }

    #[test]
    fn no_device_answers_anywhere() {
        let mut p = PciConfig::new();
        for addr in [0x8000_0000, 0x8000_0800, 0x80ff_ff00, 0x8000_0008] {
            p.write(CONFIG_ADDRESS, 4, addr);
            assert_eq!(
                p.read(CONFIG_DATA, 4),
                0xffff_ffff,
                "{addr:#x}: vendor/device"
            );
            assert_eq!(p.read(CONFIG_DATA, 2), 0xffff);
            assert_eq!(p.read(CONFIG_DATA + 2, 2), 0xffff);
            assert_eq!(p.read(CONFIG_DATA + 3, 1), 0xff);
        }
        // Writes go nowhere.
        p.write(CONFIG_ADDRESS, 4, 0x8000_0004);
        p.write(CONFIG_DATA, 4, 0x0000_0007);
        assert_eq!(p.read(CONFIG_DATA, 4), 0xffff_ffff);
        assert_eq!(
            p.read(CONFIG_ADDRESS, 4),
            0x8000_0004,
            "a data write leaves the address"
        );
    }

    #[test]
    fn claims() {
        assert!(PciConfig::claims(0xcf8, 4));
        assert!(!PciConfig::claims(0xcf8, 1));
        assert!(!PciConfig::claims(0xcf9, 1), "the reset control register");
        assert!(PciConfig::claims(0xcfc, 4));
        assert!(PciConfig::claims(0xcfe, 2));
        assert!(PciConfig::claims(0xcff, 1));
        assert!(!PciConfig::claims(0xd00, 1));
    }
}
