//! QEMU's firmware configuration device (fw_cfg), the I/O port interface: kernels written
//! for `qemu -kernel` ask it how much RAM and how many CPUs they have. Without it the
//! ports read all ones and such a kernel believes it has 65,535 CPUs.
//!
//! Source: QEMU's docs/specs/fw_cfg.rst (revision of QEMU 8.x) and the item numbers of
//! Linux's include/uapi/linux/qemu_fw_cfg.h. Selector register at 0x510 (16-bit, little
//! endian, write only: selecting an item sets its data offset to 0), data register at
//! 0x511 (8-bit: each read returns the item's next byte, 0 past its end); no DMA
//! interface (0x514), and FW_CFG_ID says so. The items, per guest:
//!
//! | selector | item | value |
//! |---|---|---|
//! | 0x0000 | signature | "QEMU" |
//! | 0x0001 | ID | 1 (the traditional interface only), u32 LE |
//! | 0x0003 | RAM size | the guest's RAM in bytes, u64 LE |
//! | 0x0005 | CPUs | 1, u16 LE |
//! | 0x000f | max CPUs | 1, u16 LE |
//! | 0x0019 | file directory | count (u32 BE), then per file: size (u32 BE), selector (u16 BE), reserved u16, name (56 bytes, NUL padded) |
//! | 0x0020 | `etc/e820` | the guest's memory map ([`crate::loader::e820::pc_map`]), entries of address u64, length u64, type u32, all LE |
//!
//! Any other selector reads as an empty item (zeros); writes to the data register are
//! ignored (no item is writable). Written here because the rust-vmm fw_cfg code needs
//! std and an allocator.

use crate::loader::e820::{pc_map, E820Entry};
use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;

pub const SELECTOR: u16 = 0x510;
pub const DATA: u16 = 0x511;

pub const SIGNATURE: u16 = 0x0000;
pub const ID: u16 = 0x0001;
pub const RAM_SIZE: u16 = 0x0003;
pub const NB_CPUS: u16 = 0x0005;
pub const MAX_CPUS: u16 = 0x000f;
pub const FILE_DIR: u16 = 0x0019;
/// The selector of the first (and only) file, `etc/e820`.
pub const E820_FILE: u16 = 0x0020;
const E820_NAME: &[u8] = b"etc/e820";
/// A file directory entry: size, selector, reserved, name.
const DIR_ENTRY: usize = 4 + 2 + 2 + 56;
/// FW_CFG_ID bit 0: the traditional (port) interface.
const ID_TRADITIONAL: u32 = 1;

/// One guest's fw_cfg: what it shows and where the guest reads.
#[derive(Clone, Debug)]
pub struct FwCfg {
    ram: u64,
    selector: u16,
    offset: usize,
}

impl FwCfg {
    /// The device of a guest with `ram` bytes of RAM from guest-physical 0.
    pub fn new(ram: u64) -> FwCfg {
        FwCfg {
            ram,
            selector: SIGNATURE,
            offset: 0,
        }
    }

    /// Selects an item; its data is read from its start.
    pub fn select(&mut self, selector: u16) {
        self.selector = selector;
        self.offset = 0;
    }

    /// The next byte of the selected item (0 past its end).
    pub fn next_byte(&mut self) -> u8 {
        let b = self.byte(self.selector, self.offset).unwrap_or(0);
        self.offset = self.offset.saturating_add(1);
        b
    }

    /// Byte `at` of item `selector`, if the item is that long.
    fn byte(&self, selector: u16, at: usize) -> Option<u8> {
        match selector {
            SIGNATURE => b"QEMU".get(at).copied(),
            ID => ID_TRADITIONAL.to_le_bytes().get(at).copied(),
            RAM_SIZE => self.ram.to_le_bytes().get(at).copied(),
            NB_CPUS | MAX_CPUS => 1u16.to_le_bytes().get(at).copied(),
            FILE_DIR => self.dir_byte(at),
            E820_FILE => self.e820_byte(at),
            _ => None,
        }
    }

    fn e820(&self) -> impl Iterator<Item = E820Entry> {
        pc_map(self.ram).into_iter()
    }

    fn e820_len(&self) -> usize {
        self.e820().count() * E820Entry::SIZE
    }

    fn e820_byte(&self, at: usize) -> Option<u8> {
        let e = self.e820().nth(at / E820Entry::SIZE)?;
        let i = at % E820Entry::SIZE;
        Some(match i {
            0..8 => e.addr.to_le_bytes()[i],
            8..16 => e.size.to_le_bytes()[i - 8],
            _ => e.kind.to_le_bytes()[i - 16],
        })
    }

    fn dir_byte(&self, at: usize) -> Option<u8> {
        if at < 4 {
            return Some(1u32.to_be_bytes()[at]);
        }
        let i = at - 4;
        if i >= DIR_ENTRY {
            return None;
        }
        Some(match i {
            0..4 => (self.e820_len() as u32).to_be_bytes()[i],
            4..6 => E820_FILE.to_be_bytes()[i - 4],
            6..8 => 0,
            _ => E820_NAME.get(i - 8).copied().unwrap_or(0),
        })
    }
}

impl Device for FwCfg {
    /// Offset 0 is the selector (write only: reads give 0), 1 the data register; a wider
    /// read of the data register takes that many bytes in a row.
    fn read(&mut self, offset: u64, size: u8, _now: Now) -> u64 {
        if offset != 1 {
            return 0;
        }
        (0..size.min(8)).fold(0, |v, i| v | u64::from(self.next_byte()) << (8 * i))
    }

    fn write(&mut self, offset: u64, _size: u8, value: u64, _now: Now) -> DeviceEffect {
        if offset == 0 {
            self.select(value as u16);
        }
        DeviceEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Now = Now { ns: 0, tsc: 0 };

    fn read_item(d: &mut FwCfg, selector: u16, len: usize) -> Vec<u8> {
        d.write(0, 2, u64::from(selector), NOW);
        (0..len).map(|_| d.read(1, 1, NOW) as u8).collect()
    }

    #[test]
    fn signature_id_ram_and_cpus() {
        let mut d = FwCfg::new(64 << 20);
        assert_eq!(read_item(&mut d, SIGNATURE, 5), b"QEMU\0");
        assert_eq!(read_item(&mut d, ID, 4), [1, 0, 0, 0], "no DMA interface");
        assert_eq!(read_item(&mut d, RAM_SIZE, 8), (64u64 << 20).to_le_bytes());
        assert_eq!(read_item(&mut d, NB_CPUS, 2), [1, 0]);
        assert_eq!(read_item(&mut d, MAX_CPUS, 2), [1, 0]);
        assert_eq!(read_item(&mut d, 0x1234, 3), [0, 0, 0], "unknown item");
        // Selecting again starts over; a 16-bit read takes two bytes.
        d.write(0, 2, u64::from(SIGNATURE), NOW);
        assert_eq!(d.read(1, 2, NOW), u64::from(u16::from_le_bytes(*b"QE")));
        assert_eq!(d.read(0, 1, NOW), 0, "the selector is write-only");
    }

    #[test]
    fn the_file_directory_names_the_memory_map() {
        let mut d = FwCfg::new(32 << 20);
        let dir = read_item(&mut d, FILE_DIR, 4 + DIR_ENTRY);
        assert_eq!(dir[..4], 1u32.to_be_bytes(), "one file");
        let size = u32::from_be_bytes(dir[4..8].try_into().unwrap()) as usize;
        let select = u16::from_be_bytes(dir[8..10].try_into().unwrap());
        assert_eq!(select, E820_FILE);
        assert_eq!(&dir[12..20], b"etc/e820");
        assert!(dir[20..].iter().all(|&b| b == 0));
        let map = pc_map(32 << 20);
        assert_eq!(size, map.len() * E820Entry::SIZE);
        let raw = read_item(&mut d, E820_FILE, size);
        for (e, bytes) in map.iter().zip(raw.chunks(E820Entry::SIZE)) {
            let (addr, size, kind) = (e.addr, e.size, e.kind);
            assert_eq!(u64::from_le_bytes(bytes[..8].try_into().unwrap()), addr);
            assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), size);
            assert_eq!(u32::from_le_bytes(bytes[16..].try_into().unwrap()), kind);
        }
        let ram: u64 = map.iter().filter(|e| { e.kind } == 1).map(|e| e.size).sum();
        assert!(ram > 31 << 20, "the map shows the guest's RAM");
    }
}
