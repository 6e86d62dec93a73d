//! The multiboot1 information structure (Multiboot 0.6.96, 3.3) and its memory map.

/// The value of EAX when a multiboot1 loader enters the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;

/// `flags` bit 0: `mem_lower` and `mem_upper` are valid.
pub const FLAG_MEM: u32 = 1 << 0;
/// `flags` bit 6: `mmap_length` and `mmap_addr` are valid.
pub const FLAG_MMAP: u32 = 1 << 6;

/// The multiboot1 information structure, up to the fields guests use.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct MultibootInfo {
    pub flags: u32,
    pub mem_lower: u32,
    pub mem_upper: u32,
    pub boot_device: u32,
    pub cmdline: u32,
    pub mods_count: u32,
    pub mods_addr: u32,
    pub syms: [u32; 4],
    pub mmap_length: u32,
    pub mmap_addr: u32,
}

/// One memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmapEntry {
    pub base: u64,
    pub len: u64,
    /// 1: available RAM; anything else is reserved.
    pub kind: u32,
}

impl MmapEntry {
    /// Whether this entry is available RAM that holds `addr`.
    pub fn available_at(&self, addr: u64) -> bool {
        self.kind == 1 && self.base <= addr && addr - self.base < self.len
    }
}

impl MultibootInfo {
    /// Whether all `bits` are set in `flags`.
    pub fn has(&self, bits: u32) -> bool {
        self.flags & bits == bits
    }

    /// The memory map (empty unless `flags` bit 6 is set).
    pub fn mmap(&self) -> Mmap {
        if self.has(FLAG_MMAP) {
            Mmap {
                next: u64::from(self.mmap_addr),
                end: u64::from(self.mmap_addr) + u64::from(self.mmap_length),
            }
        } else {
            Mmap { next: 0, end: 0 }
        }
    }
}

/// Iterates over the memory map. Each entry is `size` (u32) followed by `size` bytes:
/// base (u64), length (u64), type (u32); entries are not naturally aligned.
pub struct Mmap {
    next: u64,
    end: u64,
}

impl Iterator for Mmap {
    type Item = MmapEntry;

    fn next(&mut self) -> Option<MmapEntry> {
        if self.next + 24 > self.end {
            return None;
        }
        let p = self.next as *const u8;
        // SAFETY: the loader's map lies in identity-mapped low memory; reads are unaligned.
        let (size, base, len, kind) = unsafe {
            (
                p.cast::<u32>().read_unaligned(),
                p.add(4).cast::<u64>().read_unaligned(),
                p.add(12).cast::<u64>().read_unaligned(),
                p.add(20).cast::<u32>().read_unaligned(),
            )
        };
        self.next += u64::from(size) + 4;
        Some(MmapEntry { base, len, kind })
    }
}

/// What the loader handed over: EAX and EBX at entry.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// EAX at entry; [`BOOTLOADER_MAGIC`] when a multiboot1 loader started us.
    pub magic: u32,
    /// EBX at entry: the physical address of the multiboot information.
    pub mbi_addr: u32,
}

impl BootInfo {
    pub(crate) fn new(magic: u32, mbi_addr: u32) -> BootInfo {
        BootInfo { magic, mbi_addr }
    }

    /// The multiboot information, if the magic was right and the address is non-zero.
    pub fn info(&self) -> Option<&'static MultibootInfo> {
        if self.magic != BOOTLOADER_MAGIC || self.mbi_addr == 0 {
            return None;
        }
        // SAFETY: a multiboot1 loader put the structure at EBX, in identity-mapped memory.
        Some(unsafe { &*(self.mbi_addr as usize as *const MultibootInfo) })
    }
}
