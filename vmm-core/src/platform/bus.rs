//! One interface for every device the guest addresses, and the table that maps address
//! ranges (ports, device memory) to them, as bhyve's ioport table or rust-vmm's
//! vm-device bus. A device sees offsets from where it is mapped; what an access did to
//! the rest of the machine it returns as a [`DeviceEffect`], which the platform acts on
//! (it owns the interrupt wiring).

use super::Now;
use crate::devices::ioapic::Delivery;
use crate::devices::lapic::ApicEffect;
use arrayvec::ArrayVec;

/// A device on the port or memory bus.
pub trait Device {
    /// A read of `size` bytes at `offset`.
    fn read(&mut self, offset: u64, size: u8, now: Now) -> u64;
    /// A write of the low `size` bytes of `value` at `offset`.
    fn write(&mut self, offset: u64, size: u8, value: u64, now: Now) -> DeviceEffect;
}

/// What a device access did beyond the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEffect {
    None,
    /// Debug-exit port: the guest ends with this status.
    Exit(u32),
    /// The reset line.
    Reset,
    /// ACPI S5.
    PowerOff,
    /// A local APIC register access's consequence (EOI, IPI).
    Apic(ApicEffect),
    /// An interrupt message from the IOAPIC.
    Deliver(Delivery),
}

/// Which accesses a range takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// A byte-wide ISA device: a wider access is split into byte accesses, each routed
    /// on its own, as the ISA bus does.
    Bytes,
    /// Any access that starts in the range, whole.
    Any,
    /// Only dword accesses at the range's start (the PCI address register).
    Dword,
}

/// One entry of the table: `len` addresses from `base` belong to device `id`, which
/// sees them at offsets from `offset` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range<Id> {
    pub base: u64,
    pub len: u64,
    pub id: Id,
    pub offset: u64,
    pub width: Width,
}

impl<Id> Range<Id> {
    /// `len` addresses from `base`, seen by the device at offsets from 0.
    pub const fn new(base: u64, len: u64, id: Id, width: Width) -> Self {
        Range {
            base,
            len,
            id,
            offset: 0,
            width,
        }
    }

    /// An ISA device that decodes its own port numbers: its offsets are the ports.
    pub const fn isa(base: u16, len: u16, id: Id) -> Self {
        Range {
            base: base as u64,
            len: len as u64,
            id,
            offset: base as u64,
            width: Width::Bytes,
        }
    }

    fn holds(&self, addr: u64) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    fn overlaps(&self, other: &Range<Id>) -> bool {
        self.base < other.base + other.len && other.base < self.base + self.len
    }
}

/// The device and offset an access reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit<Id> {
    pub id: Id,
    pub offset: u64,
    pub width: Width,
}

/// A table of at most `N` ranges. Addresses no range holds are unclaimed: the platform
/// reads them as all ones and drops writes to them, as on a PC with nothing decoding
/// that address.
#[derive(Clone, Debug)]
pub struct Bus<Id, const N: usize> {
    ranges: ArrayVec<Range<Id>, N>,
    /// The range the last lookup found: a guest's accesses come in runs on one device
    /// (a UART's status and data registers, a timer read in a loop), and checking it
    /// first spares the search (about 60 instructions per port exit).
    last: core::cell::Cell<usize>,
}

/// A range could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    Overlap,
    Full,
}

impl<Id: Copy, const N: usize> Bus<Id, N> {
    pub const fn new() -> Self {
        Bus {
            ranges: ArrayVec::new_const(),
            last: core::cell::Cell::new(0),
        }
    }

    /// Adds `r`; it must not overlap a range already there.
    pub fn insert(&mut self, r: Range<Id>) -> Result<(), BusError> {
        if self.ranges.iter().any(|o| o.overlaps(&r)) {
            return Err(BusError::Overlap);
        }
        // Kept sorted by base, so that `find` is a binary search: every port access and
        // every device-memory access looks up its device here.
        let at = self.ranges.partition_point(|o| o.base < r.base);
        self.ranges.try_insert(at, r).map_err(|_| BusError::Full)
    }

    /// The ranges, in the order they were added.
    #[cfg(test)]
    pub fn ranges(&self) -> &[Range<Id>] {
        &self.ranges
    }

    /// The device an access of `size` bytes at `addr` reaches, if any range takes it.
    pub fn find(&self, addr: u64, size: u8) -> Option<Hit<Id>> {
        // The last range starting at or below `addr` is the only one that can hold it
        // (ranges do not overlap).
        let r = match self.ranges.get(self.last.get()) {
            Some(r) if r.holds(addr) => r,
            _ => {
                let i = self
                    .ranges
                    .partition_point(|r| r.base <= addr)
                    .checked_sub(1)?;
                let r = self.ranges.get(i).filter(|r| r.holds(addr))?;
                self.last.set(i);
                r
            }
        };
        if r.width == Width::Dword && (size != 4 || addr != r.base) {
            return None;
        }
        Some(Hit {
            id: r.id,
            offset: addr - r.base + r.offset,
            width: r.width,
        })
    }
}

impl<Id: Copy, const N: usize> Default for Bus<Id, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_route_to_offsets_and_refuse_overlaps() {
        let mut b: Bus<u8, 4> = Bus::new();
        b.insert(Range::new(0x3f8, 8, 1, Width::Bytes)).unwrap();
        b.insert(Range::isa(0x40, 4, 2)).unwrap();
        b.insert(Range::new(0xcf8, 1, 3, Width::Dword)).unwrap();
        assert_eq!(
            b.insert(Range::new(0x3ff, 2, 4, Width::Any)),
            Err(BusError::Overlap)
        );
        assert_eq!(b.find(0x3f9, 1).map(|h| (h.id, h.offset)), Some((1, 1)));
        assert_eq!(b.find(0x42, 1).map(|h| (h.id, h.offset)), Some((2, 0x42)));
        assert_eq!(b.find(0xcf8, 4).map(|h| h.id), Some(3));
        assert_eq!(
            b.find(0xcf8, 1),
            None,
            "the address register takes dwords only"
        );
        assert_eq!(b.find(0x400, 1), None);
    }

    #[test]
    fn the_binary_search_finds_what_a_scan_finds_in_any_insertion_order() {
        let table = [
            (0x3f8, 8),
            (0x20, 2),
            (0xa0, 2),
            (0x40, 4),
            (0x61, 1),
            (0x70, 2),
            (0x4d0, 2),
            (0xcf8, 1),
            (0xcfc, 4),
            (0x510, 2),
            (0x600, 4),
        ];
        let mut b: Bus<usize, 16> = Bus::new();
        for (i, &(base, len)) in table.iter().enumerate() {
            b.insert(Range::new(base, len, i, Width::Any)).unwrap();
        }
        assert!(
            b.ranges().windows(2).all(|w| w[0].base < w[1].base),
            "sorted"
        );
        for addr in 0..0x1000u64 {
            let scan = table
                .iter()
                .position(|&(base, len)| addr >= base && addr < base + len);
            assert_eq!(b.find(addr, 1).map(|h| h.id), scan, "{addr:#x}");
        }
    }

    #[test]
    fn the_last_hit_answers_only_for_its_own_range() {
        let mut b: Bus<u8, 8> = Bus::new();
        b.insert(Range::new(0x3f8, 8, 1, Width::Any)).unwrap();
        b.insert(Range::new(0x60, 1, 2, Width::Any)).unwrap();
        assert_eq!(b.find(0x3fd, 1).map(|h| (h.id, h.offset)), Some((1, 5)));
        // Next door, and unclaimed, after a hit on the UART.
        assert_eq!(b.find(0x400, 1), None);
        assert_eq!(b.find(0x3f7, 1), None);
        assert_eq!(b.find(0x60, 1).map(|h| h.id), Some(2));
        // A range added in front moves the others: the remembered index now names
        // another range, which must not answer for the UART's ports.
        assert_eq!(b.find(0x3f8, 1).map(|h| h.id), Some(1));
        b.insert(Range::new(0x20, 2, 3, Width::Any)).unwrap();
        assert_eq!(b.find(0x3f9, 1).map(|h| (h.id, h.offset)), Some((1, 1)));
        assert_eq!(b.find(0x21, 1).map(|h| h.id), Some(3));
        assert_eq!(b.find(0x60, 1).map(|h| h.id), Some(2));
    }
}
