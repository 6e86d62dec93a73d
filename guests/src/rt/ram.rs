//! Where the guest's RAM is and which of it is free: the image's end (from the linker
//! script), the end of RAM (multiboot `mem_upper`) and the available memory-map ranges
//! minus what the loader and the image use.

use super::multiboot::BootInfo;
use core::ops::Range;

/// Janus' loader writes the multiboot information below this (vmm-core `INFO_AREA`);
/// the real-mode IVT and BDA live there on a PC as well.
const LOADER_AREA_END: u64 = 0x1_0000;
/// The runtime identity-maps only the first GiB.
const MAPPED_END: u64 = 0x4000_0000;
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
    let info = boot.info()?;
    info.has(super::multiboot::FLAG_MEM)
        .then(|| 0x10_0000 + u64::from(info.mem_upper) * 1024)
}

/// The free RAM, page-aligned: available memory-map ranges in the identity map, minus
/// the loader's area and the image.
pub fn free_ranges(boot: &BootInfo) -> impl Iterator<Item = Range<u64>> {
    let image = image();
    boot.info()
        .into_iter()
        .flat_map(|i| i.mmap())
        .filter(|e| e.kind == 1)
        .filter_map(move |e| {
            let mut start = e.base.max(LOADER_AREA_END);
            let end = (e.base + e.len).min(MAPPED_END);
            if start < image.end && end > image.start {
                start = start.max(image.end);
            }
            let (start, end) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
            (start < end).then_some(start..end)
        })
}
