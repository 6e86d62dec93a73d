//! Building the nested page tables (EPT on Intel, NPT on AMD) that map a VM's RAM.
//!
//! Both vendors use a 4-level radix tree of 512-entry tables indexed by guest-physical
//! address bits 47:39, 38:30, 29:21 and 20:12 (SDM Vol 3C 29.3.2; APM Vol 2 15.25.5);
//! only the entry formats differ, and the backend supplies them through
//! [`EntryFormat`]. Only the guest's RAM regions are mapped; everything else is absent,
//! so any other guest-physical access exits to the VMM.

use crate::addr::{GuestPhys, HostPhys, PAGE_2M, PAGE_4K};
use crate::memory::GuestMemory;
use core::fmt;

/// Host-physical address bits of a table or page entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Gives the builder zeroed 4 KiB tables and access to them.
pub trait FrameAllocator {
    /// A new zeroed 4 KiB-aligned frame, or `None` when memory is exhausted.
    fn alloc_table(&mut self) -> Option<HostPhys>;
    /// `pages` zeroed, physically contiguous 4 KiB frames (e.g. an I/O permission map).
    fn alloc_contiguous(&mut self, pages: usize) -> Option<HostPhys>;
    /// The 512 entries of a table returned by `alloc_table` earlier (or one page of an
    /// `alloc_contiguous` range).
    fn table(&mut self, hpa: HostPhys) -> &mut [u64; 512];
    /// Returns `pages` frames from `hpa` (one `alloc_table` or `alloc_contiguous` result)
    /// to the allocator; it zeroes them before it hands them out again.
    fn free(&mut self, hpa: HostPhys, pages: usize);
}

/// The vendor's entry encodings.
pub trait EntryFormat {
    /// An entry pointing at the next-level table `next` (full access: the leaf decides).
    fn table(&self, next: HostPhys) -> u64;
    /// A leaf mapping guest RAM at `hpa`; `large` for a 2 MiB page (level 2).
    fn leaf(&self, hpa: HostPhys, large: bool) -> u64;
    /// Whether the entry maps or points at anything.
    fn present(&self, entry: u64) -> bool;
    /// Whether a level-2 or level-3 entry is a large leaf rather than a table pointer.
    fn is_large(&self, entry: u64) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NestedError {
    OutOfMemory,
    /// The guest-physical range is above what 4-level tables can map (256 TiB).
    TooHigh(GuestPhys),
    /// A page was mapped twice.
    Overlap(GuestPhys),
}

impl fmt::Display for NestedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NestedError::OutOfMemory => write!(f, "out of host memory for nested page tables"),
            NestedError::TooHigh(g) => {
                write!(f, "guest-physical {g} is beyond 4-level nested paging")
            }
            NestedError::Overlap(g) => write!(f, "guest-physical {g} mapped twice"),
        }
    }
}

fn index(gpa: u64, level: u32) -> usize {
    ((gpa >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// Counts of what [`build`] mapped, for the log and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapStats {
    pub tables: u32,
    pub pages_2m: u32,
    pub pages_4k: u32,
}

/// Builds tables mapping every RAM region of `mem` and returns the root (PML4) and counts.
/// 2 MiB pages are used wherever guest- and host-physical addresses are both 2 MiB-aligned.
pub fn build(
    mem: &GuestMemory,
    fmt: &impl EntryFormat,
    alloc: &mut impl FrameAllocator,
) -> Result<(HostPhys, MapStats), NestedError> {
    let root = alloc.alloc_table().ok_or(NestedError::OutOfMemory)?;
    let mut stats = MapStats {
        tables: 1,
        ..Default::default()
    };
    for r in mem.regions() {
        let mut off = 0;
        while off < r.len {
            let gpa = r.gpa.0 + off;
            let hpa = r.hpa.0 + off;
            let large = gpa % PAGE_2M == 0 && hpa % PAGE_2M == 0 && r.len - off >= PAGE_2M;
            map_one(
                root,
                GuestPhys(gpa),
                HostPhys(hpa),
                large,
                fmt,
                alloc,
                &mut stats,
            )?;
            off += if large { PAGE_2M } else { PAGE_4K };
        }
    }
    Ok((root, stats))
}

/// Maps the one 4 KiB page at `gpa` to the frame `hpa` in the tree at `root` (built by
/// [`build`]), with the tables it needs (given back with the tree by [`free_tables`]): a
/// page the backend's CPU handles itself, such as VT-x's APIC-access page.
pub fn map_page(
    root: HostPhys,
    gpa: GuestPhys,
    hpa: HostPhys,
    fmt: &impl EntryFormat,
    alloc: &mut impl FrameAllocator,
) -> Result<(), NestedError> {
    map_one(root, gpa, hpa, false, fmt, alloc, &mut MapStats::default())
}

fn map_one(
    root: HostPhys,
    gpa: GuestPhys,
    hpa: HostPhys,
    large: bool,
    fmt: &impl EntryFormat,
    alloc: &mut impl FrameAllocator,
    stats: &mut MapStats,
) -> Result<(), NestedError> {
    if gpa.0 >> 48 != 0 {
        return Err(NestedError::TooHigh(gpa));
    }
    let leaf_level = if large { 2 } else { 1 };
    let mut table = root;
    for level in (leaf_level + 1..=4).rev() {
        let i = index(gpa.0, level);
        let e = alloc.table(table)[i];
        table = if fmt.present(e) {
            if fmt.is_large(e) {
                return Err(NestedError::Overlap(gpa));
            }
            HostPhys(e & ADDR_MASK)
        } else {
            let next = alloc.alloc_table().ok_or(NestedError::OutOfMemory)?;
            stats.tables += 1;
            alloc.table(table)[i] = fmt.table(next);
            next
        };
    }
    let slot = &mut alloc.table(table)[index(gpa.0, leaf_level)];
    if fmt.present(*slot) {
        return Err(NestedError::Overlap(gpa));
    }
    *slot = fmt.leaf(hpa, large);
    if large {
        stats.pages_2m += 1
    } else {
        stats.pages_4k += 1
    }
    Ok(())
}

/// Returns every table of the tree at `root` (built by [`build`]) to `alloc`: the tables,
/// not the guest RAM their leaves map. Returns how many frames went back.
pub fn free_tables(
    root: HostPhys,
    fmt: &impl EntryFormat,
    alloc: &mut impl FrameAllocator,
) -> usize {
    free_level(root, 4, fmt, alloc)
}

fn free_level(
    table: HostPhys,
    level: u32,
    fmt: &impl EntryFormat,
    alloc: &mut impl FrameAllocator,
) -> usize {
    let mut freed = 0;
    if level > 1 {
        for i in 0..512 {
            let e = alloc.table(table)[i];
            if fmt.present(e) && !(level <= 3 && fmt.is_large(e)) {
                freed += free_level(HostPhys(e & ADDR_MASK), level - 1, fmt, alloc);
            }
        }
    }
    alloc.free(table, 1);
    freed + 1
}

/// Walks tables built by [`build`]: the host-physical address `gpa` maps to, if any.
pub fn translate(
    root: HostPhys,
    gpa: GuestPhys,
    fmt: &impl EntryFormat,
    alloc: &mut impl FrameAllocator,
) -> Option<HostPhys> {
    if gpa.0 >> 48 != 0 {
        return None;
    }
    let mut table = root;
    for level in (1..=4).rev() {
        let e = alloc.table(table)[index(gpa.0, level)];
        if !fmt.present(e) {
            return None;
        }
        let page = 1u64 << (12 + 9 * (level - 1));
        if level == 1 || (level <= 3 && fmt.is_large(e)) {
            return Some(HostPhys(
                (e & ADDR_MASK & !(page - 1)) + (gpa.0 & (page - 1)),
            ));
        }
        table = HostPhys(e & ADDR_MASK);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::MIB;
    use core::ptr::NonNull;
    extern crate std;
    use std::{boxed::Box, vec::Vec};

    /// Tables in heap boxes; "host-physical" addresses are made up.
    struct Heap(Vec<Box<[u64; 512]>>);
    impl FrameAllocator for Heap {
        fn alloc_table(&mut self) -> Option<HostPhys> {
            if self.0.len() >= 64 {
                return None;
            }
            self.0.push(Box::new([0; 512]));
            Some(HostPhys(0x7000_0000 + (self.0.len() as u64 - 1) * 4096))
        }
        fn alloc_contiguous(&mut self, pages: usize) -> Option<HostPhys> {
            let first = self.alloc_table()?;
            for _ in 1..pages {
                self.alloc_table()?;
            }
            Some(first)
        }
        fn table(&mut self, hpa: HostPhys) -> &mut [u64; 512] {
            &mut self.0[((hpa.0 - 0x7000_0000) / 4096) as usize]
        }
        fn free(&mut self, hpa: HostPhys, pages: usize) {
            // Freed frames are marked so that a double free or a missed one shows.
            for p in 0..pages as u64 {
                let t = self.table(HostPhys(hpa.0 + p * 4096));
                assert_ne!(t[0], FREED, "frame {hpa:?} freed twice");
                t.fill(0);
                t[0] = FREED;
            }
        }
    }

    const FREED: u64 = 0xdead_f4ee;

    #[test]
    fn free_tables_returns_every_table_and_only_tables() {
        let mem = memory(&[
            (0, 0x4000_0000, 16 * MIB),
            (0x7ff0_0000, 0x5000_0000, 64 * 1024),
        ]);
        let mut heap = Heap(Vec::new());
        let (root, stats) = build(&mem, &Plain, &mut heap).unwrap();
        assert_eq!(free_tables(root, &Plain, &mut heap), stats.tables as usize);
        assert!(
            heap.0.iter().all(|t| t[0] == FREED),
            "every table went back"
        );
    }

    /// A plain x86-64 paging format (the shape of NPT entries).
    struct Plain;
    impl EntryFormat for Plain {
        fn table(&self, next: HostPhys) -> u64 {
            next.0 | 7
        }
        fn leaf(&self, hpa: HostPhys, large: bool) -> u64 {
            hpa.0 | 7 | if large { 0x80 } else { 0 }
        }
        fn present(&self, e: u64) -> bool {
            e & 1 != 0
        }
        fn is_large(&self, e: u64) -> bool {
            e & 0x80 != 0
        }
    }

    fn memory(regions: &[(u64, u64, u64)]) -> GuestMemory {
        let mut m = GuestMemory::new();
        for &(gpa, hpa, len) in regions {
            // SAFETY: the builder never touches guest RAM through this pointer; a dangling
            // but non-null pointer is enough for the region bookkeeping in this test.
            unsafe {
                m.add_region(GuestPhys(gpa), HostPhys(hpa), len, NonNull::dangling())
                    .unwrap()
            };
        }
        m
    }

    #[test]
    fn maps_aligned_ram_with_2m_pages_and_nothing_else() {
        let mem = memory(&[(0, 0x4000_0000, 16 * MIB)]);
        let mut heap = Heap(Vec::new());
        let (root, stats) = build(&mem, &Plain, &mut heap).unwrap();
        assert_eq!(
            stats,
            MapStats {
                tables: 3,
                pages_2m: 8,
                pages_4k: 0
            }
        );
        assert_eq!(
            translate(root, GuestPhys(0), &Plain, &mut heap),
            Some(HostPhys(0x4000_0000))
        );
        assert_eq!(
            translate(root, GuestPhys(0x12_3456), &Plain, &mut heap),
            Some(HostPhys(0x4012_3456))
        );
        assert_eq!(
            translate(root, GuestPhys(16 * MIB), &Plain, &mut heap),
            None
        );
        assert_eq!(
            translate(root, GuestPhys(0xfee0_0000), &Plain, &mut heap),
            None
        );
    }

    #[test]
    fn unaligned_host_memory_falls_back_to_4k_pages() {
        let mem = memory(&[(0, 0x4000_1000, 2 * MIB + 0x3000)]);
        let mut heap = Heap(Vec::new());
        let (root, stats) = build(&mem, &Plain, &mut heap).unwrap();
        assert_eq!(stats.pages_2m, 0);
        assert_eq!(stats.pages_4k, 515);
        assert_eq!(
            translate(root, GuestPhys(0x20_2fff), &Plain, &mut heap),
            Some(HostPhys(0x4020_3fff))
        );
        assert_eq!(
            translate(root, GuestPhys(0x20_3000), &Plain, &mut heap),
            None
        );
    }

    #[test]
    fn running_out_of_tables_is_an_error() {
        let mem = memory(&[(0, 0x4000_1000, 256 * MIB)]); // needs 128 PTs, the heap has 64
        let mut heap = Heap(Vec::new());
        assert_eq!(
            build(&mem, &Plain, &mut heap).unwrap_err(),
            NestedError::OutOfMemory
        );
    }
}
