//! Where the guest's RAM is and which of it is free: the image's end (from the linker
//! script), the end of RAM (multiboot `mem_upper`) and the available memory-map ranges
//! minus the image and whatever the loader left, wherever it put it (the information
//! structure, its strings and memory map, the modules; either protocol).

use super::boot_info::BootInfo;
use super::phys::MAPPED_END;
use super::ranges::Used;
use core::ops::Range;

/// The real-mode IVT and the BIOS data area: never handed out.
const LOW_RESERVED_END: u64 = 0x1000;
const PAGE: u64 = 4096;

extern "C" {
    static __guest_load_start: u8;
    static __guest_bss_end: u8;
}

/// The guest image (code, data, .bss with the stacks and page tables).
pub fn image() -> Range<u64> {
    core::ptr::addr_of!(__guest_load_start) as u64..core::ptr::addr_of!(__guest_bss_end) as u64
}

/// The first address above RAM: 1 MiB + `mem_upper` KiB, or `None` without the field.
pub fn ram_end(boot: &BootInfo) -> Option<u64> {
    boot.mem()
        .map(|(_, upper)| 0x10_0000 + u64::from(upper) * 1024)
}

/// What is in use: the low area, the image and the loader's data.
pub fn used(boot: &BootInfo) -> Used {
    let mut used = Used::default();
    used.add(0..LOW_RESERVED_END);
    used.add(image());
    boot.loader_data(|r| used.add(r));
    used
}

/// The free RAM, page-aligned: available memory-map ranges in the identity map, minus
/// [`used`].
pub fn free_ranges(boot: &BootInfo) -> impl Iterator<Item = Range<u64>> {
    let used = used(boot);
    boot.mmap()
        .filter(|e| e.kind == 1)
        .flat_map(move |e| used.gaps(e.base..e.end().min(MAPPED_END)))
        .filter_map(|r| {
            let (start, end) = (r.start.next_multiple_of(PAGE), r.end / PAGE * PAGE);
            (start < end).then_some(start..end)
        })
}
