//! The guest's BIOS memory map (INT 15h, AX=E820h), as a PC BIOS would report it.
//!
//! Format: ACPI Specification 6.5, section 15.1 ("INT 15H, E820H - Query System Address
//! Map": base, length, type; types 1-4), and the Linux zero page (Linux
//! Documentation/arch/x86/zero-page.rst, v6.1: `e820_entries` at 0x1e8, `e820_table` of
//! 128 entries of 20 bytes at 0x2d0), where the Linux loader puts it.
//!
//! The guest's RAM is one region starting at guest-physical 0. [`pc_map`] describes it the
//! way a PC does: conventional memory up to the EBDA, the EBDA (where
//! [`crate::firmware::mptable`] goes) and the BIOS area reserved, RAM from 1 MiB, and the
//! IOAPIC and local APIC pages reserved so that the guest never places a PCI BAR or
//! anything else over them.

use arrayvec::ArrayVec;

/// Usable RAM.
pub const RAM: u32 = 1;
/// Reserved: not to be used by the OS.
pub const RESERVED: u32 = 2;
/// ACPI tables, reclaimable after they have been read.
pub const ACPI: u32 = 3;
/// ACPI non-volatile storage.
pub const NVS: u32 = 4;

/// Where conventional memory ends and the EBDA begins (639 KiB).
pub const EBDA_START: u64 = 0x9_FC00;
/// End of the EBDA / start of the legacy video hole.
pub const EBDA_END: u64 = 0xA_0000;
/// The BIOS area a PC keeps reserved below 1 MiB.
pub const BIOS_START: u64 = 0xF_0000;
pub const HIGH_MEMORY: u64 = 0x10_0000;
/// The IOAPIC's and the local APIC's default MMIO pages.
pub const IOAPIC_BASE: u64 = 0xFEC0_0000;
pub const LAPIC_BASE: u64 = 0xFEE0_0000;
pub const APIC_PAGE: u64 = 0x1000;

/// Maximum entries the zero page holds.
pub const ZERO_PAGE_MAX: usize = 128;

/// One entry as INT 15h E820h returns it and as the zero page stores it.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

const _: () = assert!(core::mem::size_of::<E820Entry>() == 20);
const _: () = assert!(core::mem::offset_of!(E820Entry, size) == 8);
const _: () = assert!(core::mem::offset_of!(E820Entry, kind) == 16);

impl E820Entry {
    pub const SIZE: usize = 20;

    pub const fn new(addr: u64, size: u64, kind: u32) -> Self {
        Self { addr, size, kind }
    }

    pub fn end(&self) -> u64 {
        { self.addr }.saturating_add(self.size)
    }

    /// The little-endian bytes the guest reads.
    pub fn to_bytes(self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0..8].copy_from_slice(&{ self.addr }.to_le_bytes());
        b[8..16].copy_from_slice(&{ self.size }.to_le_bytes());
        b[16..20].copy_from_slice(&{ self.kind }.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; 20]) -> Self {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        Self {
            addr: u64_at(0),
            size: u64_at(8),
            kind: u32::from_le_bytes([b[16], b[17], b[18], b[19]]),
        }
    }
}

/// The PC memory map of a guest with `ram` bytes of RAM from guest-physical 0.
///
/// | range | kind |
/// |---|---|
/// | 0 .. min(ram, 0x9FC00) | RAM |
/// | 0x9FC00 .. 0xA0000 | reserved (EBDA: MP table) |
/// | 0xF0000 .. 0x100000 | reserved (BIOS area) |
/// | 0x100000 .. min(ram, 0xFEC00000) | RAM (if ram > 1 MiB) |
/// | 0xFEC00000 + 4 KiB | reserved (IOAPIC) |
/// | 0xFEE00000 + 4 KiB | reserved (local APIC) |
///
/// Only RAM below the IOAPIC page is reported: RAM that would lie under the APIC pages
/// or above 4 GiB is left out, since this single-region layout has no hole for them.
pub fn pc_map(ram: u64) -> ArrayVec<E820Entry, 8> {
    let mut map = ArrayVec::new();
    let low = ram.min(EBDA_START);
    if low > 0 {
        map.push(E820Entry::new(0, low, RAM));
    }
    map.push(E820Entry::new(EBDA_START, EBDA_END - EBDA_START, RESERVED));
    map.push(E820Entry::new(
        BIOS_START,
        HIGH_MEMORY - BIOS_START,
        RESERVED,
    ));
    let high_end = ram.min(IOAPIC_BASE);
    if high_end > HIGH_MEMORY {
        map.push(E820Entry::new(HIGH_MEMORY, high_end - HIGH_MEMORY, RAM));
    }
    map.push(E820Entry::new(IOAPIC_BASE, APIC_PAGE, RESERVED));
    map.push(E820Entry::new(LAPIC_BASE, APIC_PAGE, RESERVED));
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram_bytes(map: &[E820Entry]) -> u64 {
        map.iter().filter(|e| e.kind == RAM).map(|e| e.size).sum()
    }

    #[test]
    fn typical_guest() {
        let m = pc_map(256 << 20);
        assert_eq!(
            m.as_slice(),
            &[
                E820Entry::new(0, 0x9_FC00, RAM),
                E820Entry::new(0x9_FC00, 0x400, RESERVED),
                E820Entry::new(0xF_0000, 0x1_0000, RESERVED),
                E820Entry::new(0x10_0000, (256 << 20) - 0x10_0000, RAM),
                E820Entry::new(0xFEC0_0000, 0x1000, RESERVED),
                E820Entry::new(0xFEE0_0000, 0x1000, RESERVED),
            ]
        );
        assert_eq!(ram_bytes(&m), (256 << 20) - 0x6_0400);
    }

    #[test]
    fn sorted_and_disjoint() {
        for ram in [
            0x1000,
            0x9_FC00,
            0x10_0000,
            0x10_1000,
            64 << 20,
            0xFEC0_0000,
            6 << 30,
        ] {
            let m = pc_map(ram);
            for w in m.windows(2) {
                assert!(
                    w[0].end() <= { w[1].addr },
                    "{ram:#x}: {:?} then {:?}",
                    w[0],
                    w[1]
                );
            }
            // RAM entries lie inside the guest's RAM.
            assert!(m.iter().filter(|e| e.kind == RAM).all(|e| e.end() <= ram));
        }
    }

    #[test]
    fn small_and_huge_guests() {
        // Less than 1 MiB: no high-memory entry.
        let m = pc_map(512 << 10);
        assert_eq!(m.iter().filter(|e| e.kind == RAM).count(), 1);
        assert_eq!(ram_bytes(&m), 512 << 10);
        // Beyond the APIC pages: high RAM stops at the IOAPIC.
        let m = pc_map(6 << 30);
        assert_eq!(
            m.iter().filter(|e| e.kind == RAM).map(|e| e.end()).max(),
            Some(IOAPIC_BASE)
        );
    }

    #[test]
    fn bytes_round_trip() {
        let e = E820Entry::new(0x10_0000, 0x1234_5678_9000, RAM);
        let b = e.to_bytes();
        assert_eq!(&b[0..8], &0x10_0000u64.to_le_bytes());
        assert_eq!(&b[16..20], &1u32.to_le_bytes());
        assert_eq!(E820Entry::from_bytes(&b), e);
    }
}
