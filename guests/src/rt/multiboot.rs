//! The multiboot1 information structure (Multiboot 0.6.96, 3.3): its fields up to the
//! boot loader's name, the memory map and the module list.

use super::memmap::{Entries, Layout};
use super::phys;

/// The value of EAX when a multiboot1 loader enters the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;

/// `flags` bit 0: `mem_lower` and `mem_upper` are valid.
pub const FLAG_MEM: u32 = 1 << 0;
/// `flags` bit 2: `cmdline` is valid.
pub const FLAG_CMDLINE: u32 = 1 << 2;
/// `flags` bit 3: `mods_count` and `mods_addr` are valid.
pub const FLAG_MODS: u32 = 1 << 3;
/// `flags` bit 6: `mmap_length` and `mmap_addr` are valid.
pub const FLAG_MMAP: u32 = 1 << 6;
/// `flags` bit 9: `boot_loader_name` is valid.
pub const FLAG_LOADER_NAME: u32 = 1 << 9;

/// The size of the whole structure (through the framebuffer fields), for the free-RAM
/// finder: loaders write up to this much.
pub const INFO_SIZE: u64 = 116;
/// The size of one module-list entry: start, end, string, reserved.
pub const MODULE_ENTRY: u64 = 16;

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
    pub drives_length: u32,
    pub drives_addr: u32,
    pub config_table: u32,
    pub boot_loader_name: u32,
}

impl MultibootInfo {
    /// The structure at physical `addr`, if mapped and 4-byte aligned.
    pub fn at(addr: u64) -> Option<&'static MultibootInfo> {
        if !addr.is_multiple_of(4) {
            return None;
        }
        let b = phys::bytes(addr, core::mem::size_of::<MultibootInfo>() as u64)?;
        // SAFETY: the bytes are mapped, 4-byte aligned and never written by the guest;
        // the structure is plain u32 fields, so any bytes are a valid value.
        Some(unsafe { &*b.as_ptr().cast::<MultibootInfo>() })
    }

    /// Whether all `bits` are set in `flags`.
    pub fn has(&self, bits: u32) -> bool {
        self.flags & bits == bits
    }

    /// The memory map's bytes (empty unless `flags` bit 6 is set).
    pub fn mmap_bytes(&self) -> &'static [u8] {
        self.has(FLAG_MMAP)
            .then(|| phys::bytes(self.mmap_addr.into(), self.mmap_length.into()))
            .flatten()
            .unwrap_or(&[])
    }

    /// The memory map (empty unless `flags` bit 6 is set).
    pub fn mmap(&self) -> Entries<'static> {
        Entries::new(self.mmap_bytes(), Layout::SizePrefixed)
    }

    /// The module list's bytes (empty unless `flags` bit 3 is set).
    pub fn module_list(&self) -> &'static [u8] {
        let len = u64::from(self.mods_count) * MODULE_ENTRY;
        self.has(FLAG_MODS)
            .then(|| phys::bytes(self.mods_addr.into(), len))
            .flatten()
            .unwrap_or(&[])
    }
}
