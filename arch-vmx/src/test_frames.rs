//! A frame allocator over ordinary memory for host tests, that counts what is live and
//! panics on a frame freed twice or never allocated.

use vmm_core::addr::{GuestPhys, HostPhys};
use vmm_core::memory::GuestMemory;
use vmm_core::nested::FrameAllocator;

const BASE: u64 = 0x7000_0000;

/// Up to `limit` frames; `live[i]` says whether frame `i` is allocated.
pub struct Frames {
    tables: Vec<Box<[u64; 512]>>,
    live: Vec<bool>,
    limit: usize,
}

impl Frames {
    pub fn new(limit: usize) -> Frames {
        Frames {
            tables: Vec::new(),
            live: Vec::new(),
            limit,
        }
    }

    /// How many frames are allocated and not freed.
    pub fn live(&self) -> usize {
        self.live.iter().filter(|&&l| l).count()
    }

    pub fn live_frames(&self) -> Vec<HostPhys> {
        (0..self.live.len())
            .filter(|&i| self.live[i])
            .map(|i| HostPhys(BASE + i as u64 * 4096))
            .collect()
    }

    fn index(hpa: HostPhys) -> usize {
        ((hpa.0 - BASE) / 4096) as usize
    }
}

impl FrameAllocator for Frames {
    fn alloc_table(&mut self) -> Option<HostPhys> {
        if self.tables.len() == self.limit {
            return None;
        }
        self.tables.push(Box::new([0; 512]));
        self.live.push(true);
        Some(HostPhys(BASE + (self.tables.len() as u64 - 1) * 4096))
    }

    fn alloc_contiguous(&mut self, pages: usize) -> Option<HostPhys> {
        // Frames are handed out at consecutive addresses, so a run of them is contiguous.
        let first = self.alloc_table()?;
        for _ in 1..pages {
            self.alloc_table()?;
        }
        Some(first)
    }

    fn table(&mut self, hpa: HostPhys) -> &mut [u64; 512] {
        &mut self.tables[Self::index(hpa)]
    }

    fn free(&mut self, hpa: HostPhys, pages: usize) {
        assert_eq!(pages, 1);
        let i = Self::index(hpa);
        assert!(self.live[i], "frame {hpa:?} freed twice");
        self.live[i] = false;
    }
}

/// 8 MiB of guest RAM at 0 (the builder never touches the RAM itself).
pub fn memory() -> GuestMemory {
    let mut m = GuestMemory::new();
    // SAFETY: the EPT builder never dereferences the host pointer; a dangling non-null
    // pointer is enough for the region bookkeeping.
    unsafe {
        m.add_region(
            GuestPhys(0),
            HostPhys(0x4000_0000),
            8 << 20,
            core::ptr::NonNull::dangling(),
        )
        .unwrap()
    };
    m
}
