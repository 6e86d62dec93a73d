//! Host physical memory for Janus' own use: nested page tables, VMCS/VMCB pages and
//! guest RAM, carved from what the boot loader said is available, and shared by every
//! host CPU behind a spin lock.

use crate::bootinfo::BootInfo;
use core::ptr::NonNull;
use vmm_core::addr::{HostPhys, MIB, PAGE_4K};
use vmm_core::hostmem::FreeRanges;
use vmm_core::nested::FrameAllocator;

/// Janus identity-maps the first 4 GiB (entry.rs); memory above is not used yet.
const MAPPED_END: u64 = 4 << 30;

/// Where a startup IPI can send a CPU (vector 0x08-0x9E: SDM Vol 3A 9.4.4.2 wants the
/// page below 1 MiB, and the BIOS areas at both ends are best left alone).
const LOW_PAGES: core::ops::Range<u64> = 0x8000..0x9_F000;

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The host's free memory, shared by every host CPU behind a lock.
static FREE: spin::Once<spin::Mutex<FreeRanges>> = spin::Once::new();

/// A handle on the host's frames (every CPU makes its own; they share [`FREE`]). Each
/// call takes the lock for its own length only.
pub struct HostFrames(());

impl HostFrames {
    /// Builds the free list from the boot information (once) and returns a handle.
    pub fn new(info: &BootInfo) -> Self {
        FREE.call_once(|| {
            let mut free = FreeRanges::new();
            for r in &info.available {
                // Below 1 MiB lie the BIOS data areas and the boot loader's leftovers.
                free.add(r.start.max(MIB)..r.end.min(MAPPED_END));
            }
            // SAFETY: only the addresses of the linker-script symbols are taken.
            let image =
                unsafe { &__image_start as *const u8 as u64..&__image_end as *const u8 as u64 };
            free.reserve(image);
            for r in &info.reserved {
                free.reserve(r.start & !(PAGE_4K - 1)..(r.end + PAGE_4K - 1) & !(PAGE_4K - 1));
            }
            spin::Mutex::new(free)
        });
        HostFrames(())
    }

    /// Another handle, for another CPU (after `new`).
    pub fn handle() -> Self {
        HostFrames(())
    }

    fn with<T>(&self, f: impl FnOnce(&mut FreeRanges) -> T) -> T {
        let free = FREE
            .get()
            .expect("HostFrames::new runs before any allocation");
        f(&mut free.lock())
    }

    /// A 4 KiB page below 1 MiB that the loader reported available and that holds none of
    /// the boot information or modules, for the APs' real-mode start (`trampoline.rs`).
    /// The allocator never hands out memory below 1 MiB, so the page stays Janus' own.
    pub fn low_page(info: &BootInfo) -> Option<u64> {
        let overlaps = |p: u64| {
            info.reserved
                .iter()
                .any(|r| r.start < p + PAGE_4K && p < r.end)
        };
        info.available.iter().find_map(|r| {
            let first = r.start.max(LOW_PAGES.start).next_multiple_of(PAGE_4K);
            (first..r.end.min(LOW_PAGES.end))
                .step_by(PAGE_4K as usize)
                .find(|&p| p + PAGE_4K <= r.end && !overlaps(p))
        })
    }

    pub fn free_bytes(&self) -> u64 {
        self.with(|f| f.total())
    }

    /// Zeroed, `align`-aligned memory for a guest's RAM, and the pointer Janus uses on it.
    pub fn alloc_ram(&mut self, size: u64, align: u64) -> Option<(HostPhys, NonNull<u8>)> {
        let hpa = self.with(|f| f.alloc(size, align))?;
        let ptr = NonNull::new(hpa.0 as *mut u8)?;
        // SAFETY: the range was free (never handed out before), lies below 4 GiB and so is
        // identity-mapped; we own it from now on.
        unsafe { core::ptr::write_bytes(ptr.as_ptr(), 0, size as usize) };
        Some((hpa, ptr))
    }

    /// The largest guest RAM that could still be allocated.
    pub fn largest(&self, align: u64) -> u64 {
        self.with(|f| f.largest(align))
    }
}

impl FrameAllocator for HostFrames {
    fn alloc_table(&mut self) -> Option<HostPhys> {
        self.alloc_contiguous(1)
    }

    fn alloc_contiguous(&mut self, pages: usize) -> Option<HostPhys> {
        self.alloc_ram(pages as u64 * PAGE_4K, PAGE_4K)
            .map(|(hpa, _)| hpa)
    }

    fn free(&mut self, hpa: HostPhys, pages: usize) {
        // `alloc_ram` zeroes what it hands out, so the frames need no clearing here.
        self.with(|f| f.add(hpa.0..hpa.0 + pages as u64 * PAGE_4K));
    }
    fn table(&mut self, hpa: HostPhys) -> &mut [u64; 512] {
        assert!(
            hpa.is_aligned(PAGE_4K) && hpa.0 < MAPPED_END,
            "table {hpa:?} outside mapped memory"
        );
        // SAFETY: every frame this allocator hands out is 4 KiB, aligned, identity-mapped
        // and owned by its requester, which passes it back here to write its entries.
        unsafe { &mut *(hpa.0 as *mut [u64; 512]) }
    }
}
