//! Loading a multiboot1 kernel the way QEMU's `-kernel` does, so that kernels written
//! for QEMU run unmodified.
//!
//! Spec: Multiboot Specification version 0.6.96 (GNU, 2009), section 3.1 (the header,
//! including the "a.out kludge" address fields of flag bit 16), 3.2 (machine state) and
//! 3.3 (boot information format: the info structure, the module list of flag 3, the
//! memory map of flag 6, the loader name of flag 9).
//!
//! The guest gets: its image copied to the physical addresses it asks for (ELF PT_LOAD
//! `p_paddr` through [`super::elf`], or the bit-16 address fields through
//! [`super::image`]), EAX = 0x2BADB002, EBX = the boot information with
//! mem_lower/mem_upper, the command line, its modules (`mods_count`, `mods_addr`: each
//! `mod_start`, `mod_end`, `string`, `reserved` 0), a memory map and the loader's name.
//! The boot information and the modules go after the image ([`super::bootarea`]).

use crate::loader::bootarea::{self, BootModule, BootState, InfoWriter, LOADER_NAME};
use crate::loader::e820::E820Entry;
use crate::loader::elf;
use crate::loader::image::{self, AddressFields, Extent, ImageError};
use crate::loader::le::u32_at;
use crate::memory::{GuestMemory, MemError};
use core::fmt;

pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
pub const BOOT_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie in the first 8 KiB of the image, 4-byte aligned (spec 3.1.1).
pub const HEADER_SEARCH: usize = 8192;

/// Header flags (spec 3.1.2). Bits 0-15 are requirements the loader must meet or refuse.
pub(crate) const FLAG_ALIGN_MODULES: u32 = 1 << 0;
pub(crate) const FLAG_MEMORY_INFO: u32 = 1 << 1;
const FLAG_VIDEO_MODE: u32 = 1 << 2;
pub(crate) const FLAG_ADDRESSES: u32 = 1 << 16;
const KNOWN_REQUIREMENTS: u32 = FLAG_ALIGN_MODULES | FLAG_MEMORY_INFO | FLAG_VIDEO_MODE;

/// Boot-information flags (spec 3.3).
pub mod info_flags {
    pub const MEMORY: u32 = 1 << 0;
    pub const CMDLINE: u32 = 1 << 2;
    pub const MODS: u32 = 1 << 3;
    pub const MMAP: u32 = 1 << 6;
    pub const LOADER_NAME: u32 = 1 << 9;
}

/// The multiboot information structure (spec 3.3), as the kernel reads it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Info {
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
    pub apm_table: u32,
    pub vbe: [u32; 4],
    pub framebuffer: [u32; 7],
}

const _: () = assert!(core::mem::size_of::<Info>() == 116);
const _: () = assert!(core::mem::offset_of!(Info, mods_count) == 20);
const _: () = assert!(core::mem::offset_of!(Info, mmap_length) == 44);
const _: () = assert!(core::mem::offset_of!(Info, boot_loader_name) == 64);

impl Info {
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: Info is repr(C), made only of u32s (no padding), so all its bytes are
        // initialised; the slice borrows `self`.
        unsafe {
            core::slice::from_raw_parts(
                (self as *const Info).cast::<u8>(),
                core::mem::size_of::<Info>(),
            )
        }
    }
}

/// One module-list entry (spec 3.3): mod_start, mod_end, string, reserved.
pub const MODULE_ENTRY: usize = 16;
/// One memory-map entry: `size` (20, the bytes after itself), base, length, type.
pub const MMAP_ENTRY: usize = 24;

fn mmap_entry(e: &E820Entry) -> [u8; MMAP_ENTRY] {
    let mut b = [0u8; MMAP_ENTRY];
    b[0..4].copy_from_slice(&20u32.to_le_bytes());
    b[4..24].copy_from_slice(&e.to_bytes());
    b
}

pub const MMAP_AVAILABLE: u32 = 1;
pub const MMAP_RESERVED: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    NoHeader,
    BadChecksum,
    UnsupportedRequirement(u32),
    Image(ImageError),
}

impl From<ImageError> for LoadError {
    fn from(e: ImageError) -> Self {
        LoadError::Image(e)
    }
}

impl From<MemError> for LoadError {
    fn from(e: MemError) -> Self {
        LoadError::Image(ImageError::Memory(e))
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoHeader => write!(f, "no multiboot1 header in the first 8 KiB"),
            LoadError::BadChecksum => write!(f, "multiboot1 header checksum is wrong"),
            LoadError::UnsupportedRequirement(bits) => {
                write!(
                    f,
                    "multiboot1 header requires features Janus does not offer (flags {bits:#x})"
                )
            }
            LoadError::Image(e) => write!(f, "{e}"),
        }
    }
}

/// The offset of the multiboot1 header (magic and a matching checksum aside), if any.
fn find_header(image: &[u8]) -> Option<usize> {
    image::find_magic(image, HEADER_MAGIC, HEADER_SEARCH, 4, 12)
}

/// Whether `image` carries a multiboot1 header.
pub fn is_multiboot1(image: &[u8]) -> bool {
    find_header(image).is_some()
}

/// The address fields of flag 16 (spec 3.1.3) and the entry address after them.
fn address_fields(image: &[u8], hdr: usize) -> Result<(AddressFields, u32), ImageError> {
    let f = |i: usize| u32_at(image, hdr + 12 + 4 * i).ok_or(ImageError::Truncated);
    let fields = AddressFields {
        header_addr: f(0)?,
        load_addr: f(1)?,
        load_end_addr: f(2)?,
        bss_end_addr: f(3)?,
    };
    if fields.load_addr == image::LOAD_FROM_START {
        return Err(ImageError::BadElf(
            "multiboot address fields are inconsistent",
        ));
    }
    Ok((fields, f(4)?))
}

/// Loads the image; returns its extent and physical entry.
fn load_image(
    image: &[u8],
    mem: &mut GuestMemory,
    hdr: usize,
    flags: u32,
) -> Result<(Extent, u64), ImageError> {
    if flags & FLAG_ADDRESSES == 0 {
        let l = elf::load(image, mem)?;
        return Ok((
            l.extent,
            l.entry.ok_or(ImageError::EntryNotLoaded(l.e_entry))?,
        ));
    }
    let (fields, entry) = address_fields(image, hdr)?;
    let seg = fields.segment(hdr, image.len())?;
    let mut extent = Extent::default();
    image::place(image, mem, seg, &mut extent)?;
    let entry = u64::from(entry);
    if !extent.contains(entry) {
        return Err(ImageError::EntryNotLoaded(entry));
    }
    Ok((extent, entry))
}

/// Writes the boot information: the `Info` structure, the memory map, the loader's
/// name, the command line, the module list and the module strings; the modules start at
/// `first_module`.
fn write_info(
    w: &mut InfoWriter<'_>,
    ram: u64,
    cmdline: &str,
    modules: &[BootModule<'_>],
    first_module: u64,
) -> Result<(), MemError> {
    let info_at = w.put(&[0u8; core::mem::size_of::<Info>()])?;
    w.align(8)?;
    let map = bootarea::memory_map(ram);
    let mmap_at = w.at;
    for e in &map {
        w.put(&mmap_entry(e))?;
    }
    let name_at = w.put_str(LOADER_NAME)?;
    let cmd_at = w.put_str(cmdline)?;
    w.align(4)?;
    let mods_at = w.at;
    let mut string_at = mods_at + (MODULE_ENTRY * modules.len()) as u64;
    for (m, r) in modules
        .iter()
        .zip(bootarea::module_ranges(first_module, modules))
    {
        w.put_u32s(&[r.start as u32, r.end as u32, string_at as u32, 0])?;
        string_at += m.string.len() as u64 + 1;
    }
    for m in modules {
        w.put_module_string(&m.string)?;
    }
    let (mem_lower, mem_upper) = bootarea::mem_bounds(ram);
    let info = Info {
        flags: info_flags::MEMORY
            | info_flags::CMDLINE
            | info_flags::MODS
            | info_flags::MMAP
            | info_flags::LOADER_NAME,
        mem_lower,
        mem_upper,
        cmdline: cmd_at as u32,
        mods_count: modules.len() as u32,
        mods_addr: mods_at as u32,
        mmap_length: (MMAP_ENTRY * map.len()) as u32,
        mmap_addr: mmap_at as u32,
        boot_loader_name: name_at as u32,
        ..Default::default()
    };
    w.write_at(info_at, info.as_bytes())
}

/// Loads a multiboot1 kernel into `mem` and prepares its boot information and modules.
pub fn load(
    image: &[u8],
    mem: &mut GuestMemory,
    cmdline: &str,
    modules: &[BootModule<'_>],
) -> Result<BootState, LoadError> {
    let hdr = find_header(image).ok_or(LoadError::NoHeader)?;
    let flags = u32_at(image, hdr + 4).ok_or(ImageError::Truncated)?;
    let checksum = u32_at(image, hdr + 8).ok_or(ImageError::Truncated)?;
    if HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum) != 0 {
        return Err(LoadError::BadChecksum);
    }
    let unknown = flags & 0xffff & !KNOWN_REQUIREMENTS;
    if unknown != 0 {
        return Err(LoadError::UnsupportedRequirement(unknown));
    }
    let (extent, entry) = load_image(image, mem, hdr, flags)?;
    let ram = mem.size();
    let write = |w: &mut InfoWriter<'_>, first| write_info(w, ram, cmdline, modules, first);
    Ok(BootState::after_image(
        mem, extent, entry, BOOT_MAGIC, modules, write,
    )?)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::addr::GuestPhys;
    use crate::loader::cmdline::ModuleString;
    use crate::loader::samples::{aout_image, aout_image_at, c_string, elf32, header};
    use crate::memory::testing::ram;
    use std::vec::Vec;

    fn info_u32(mem: &GuestMemory, b: &BootState, off: u64) -> u32 {
        mem.read_u32(GuestPhys(b.ebx as u64 + off)).unwrap()
    }

    #[test]
    fn address_fields_load_and_zero_bss() {
        let mut mem = ram(4 << 20);
        mem.fill(GuestPhys(0x10_0000), 0x100, 0xcc).unwrap();
        let img = aout_image(&[0xf4, 0xeb, 0xfe], 0x40);
        let b = load(&img, &mut mem, "/guests/k arg", &[]).unwrap();
        assert_eq!((b.entry, b.eax), (0x10_0020, BOOT_MAGIC));
        assert_eq!(
            b.image,
            Extent {
                start: 0x10_0000,
                end: 0x10_0063
            }
        );
        assert_eq!(b.ebx, 0x10_1000, "on the page after the image");
        assert_eq!(mem.read_u8(GuestPhys(0x10_0020)).unwrap(), 0xf4);
        assert_eq!(
            mem.read_u8(GuestPhys(0x10_0023)).unwrap(),
            0,
            "bss is zeroed"
        );
        assert_eq!(mem.read_u8(GuestPhys(0x10_0062)).unwrap(), 0);
        assert_eq!(
            mem.read_u8(GuestPhys(0x10_0063)).unwrap(),
            0xcc,
            "past bss untouched"
        );
    }

    #[test]
    fn boot_information() {
        let mut mem = ram(16 << 20);
        let b = load(&aout_image(&[0xf4], 0), &mut mem, "hello=world", &[]).unwrap();
        assert_eq!(
            info_u32(&mem, &b, 0),
            info_flags::MEMORY
                | info_flags::CMDLINE
                | info_flags::MODS
                | info_flags::MMAP
                | info_flags::LOADER_NAME
        );
        assert_eq!(info_u32(&mem, &b, 4), 639);
        assert_eq!(info_u32(&mem, &b, 8), 15 * 1024);
        assert_eq!(c_string(&mem, info_u32(&mem, &b, 16) as u64), "hello=world");
        assert_eq!(info_u32(&mem, &b, 20), 0, "no modules");
        let (len, addr) = (info_u32(&mem, &b, 44), info_u32(&mem, &b, 48) as u64);
        let map = bootarea::memory_map(16 << 20);
        assert_eq!(len as usize, MMAP_ENTRY * map.len());
        // The RAM from 1 MiB to the end is available.
        let high = (0..map.len() as u64)
            .map(|i| addr + 24 * i)
            .find(|&e| mem.read_u64(GuestPhys(e + 4)).unwrap() == 0x10_0000)
            .expect("an entry at 1 MiB");
        assert_eq!(mem.read_u32(GuestPhys(high)).unwrap(), 20);
        assert_eq!(mem.read_u64(GuestPhys(high + 12)).unwrap(), 15 << 20);
        assert_eq!(mem.read_u32(GuestPhys(high + 20)).unwrap(), MMAP_AVAILABLE);
        assert_eq!(c_string(&mem, info_u32(&mem, &b, 64) as u64), LOADER_NAME);
        // Everything the loader wrote lies in [ebx, info_end).
        for off in [16, 48, 64] {
            let p = info_u32(&mem, &b, off) as u64;
            assert!((b.area.info..b.area.info_end).contains(&p), "{off}");
        }
    }

    fn module<'a>(image: &'a [u8], head: &'a str, tail: &'a str) -> BootModule<'a> {
        BootModule {
            image,
            string: ModuleString { head, tail },
        }
    }

    #[test]
    fn modules_in_order_page_aligned_with_their_strings() {
        let mut mem = ram(16 << 20);
        let (a, b2, c) = (Vec::from([1u8; 10]), [2u8; 0x1800], b"config".to_vec());
        let mods = [
            module(&a, "", "first x=1"),
            module(&b2, "/guests/two", ""),
            module(&c, "/c", "y"),
        ];
        let b = load(&aout_image(&[0xf4], 0), &mut mem, "k", &mods).unwrap();
        assert_eq!(info_u32(&mem, &b, 20), 3);
        let list = info_u32(&mem, &b, 24) as u64;
        let mut last_end = b.area.info_end;
        for (i, (m, want)) in mods
            .iter()
            .zip(["first x=1", "/guests/two", "/c y"])
            .enumerate()
        {
            let e = list + 16 * i as u64;
            let (start, end) = (
                mem.read_u32(GuestPhys(e)).unwrap() as u64,
                mem.read_u32(GuestPhys(e + 4)).unwrap() as u64,
            );
            assert_eq!(start % 0x1000, 0, "module {i} page-aligned");
            assert!(start >= last_end, "module {i} after what precedes it");
            assert_eq!(end - start, m.image.len() as u64);
            let mut bytes = std::vec![0u8; m.image.len()];
            mem.read(GuestPhys(start), &mut bytes).unwrap();
            assert_eq!(bytes, m.image);
            let s = mem.read_u32(GuestPhys(e + 8)).unwrap() as u64;
            assert_eq!(c_string(&mem, s), want);
            assert_eq!(mem.read_u32(GuestPhys(e + 12)).unwrap(), 0, "reserved");
            last_end = end;
        }
        assert_eq!(b.area.end, last_end);
        assert!(b.area.info >= b.image.end, "info after the image");
    }

    /// Issue #10: a kernel linked at 0x8000 was refused ("overlaps the boot
    /// information area 0x8000-0x10000"); QEMU loads it.
    #[test]
    fn kernel_at_0x8000_loads_with_its_info_after_it() {
        let mut mem = ram(16 << 20);
        let img = aout_image_at(0x8000, &[0xf4], 0x3000);
        let data = [9u8; 0x100];
        let b = load(&img, &mut mem, "low", &[module(&data, "", "m")]).unwrap();
        assert_eq!(b.entry, 0x8020);
        assert_eq!(b.image.end, 0x8000 + 0x21 + 0x3000);
        assert_eq!(b.ebx, 0xc000, "the page after its bss");
        assert!(b.area.end <= 0x9_FC00, "below the EBDA");
        // A low kernel with no room after it below the EBDA: info from 1 MiB.
        let mut mem = ram(16 << 20);
        let big = [7u8; 0x9_3000];
        let b = load(&img, &mut mem, "low", &[module(&big, "", "")]).unwrap();
        assert_eq!(b.ebx, 0x10_0000);
        assert_eq!(info_u32(&mem, &b, 24) as u64 / 0x1000 * 0x1000, 0x10_0000);
    }

    #[test]
    fn modules_must_fit_in_ram() {
        let mut mem = ram(2 << 20);
        let big = std::vec![0u8; 1 << 20];
        assert!(matches!(
            load(
                &aout_image(&[0xf4], 0),
                &mut mem,
                "",
                &[module(&big, "", "")]
            ),
            Err(LoadError::Image(ImageError::NoRoom { .. }))
        ));
    }

    #[test]
    fn elf32_segments_at_their_physical_address() {
        let mut mem = ram(4 << 20);
        // Linked at 3 GiB virtual, loaded at 1 MiB physical; entry given virtually.
        let img = elf32(0x10_0000, 0xc010_0000, 0xc010_0001, &[0x90, 0xf4], 0x1000);
        assert!(is_multiboot1(&img));
        let b = load(&img, &mut mem, "", &[]).unwrap();
        assert_eq!(b.entry, 0x10_0001);
        assert_eq!(b.ebx, 0x10_1000);
        assert_eq!(mem.read_u16(GuestPhys(0x10_0000)).unwrap(), 0xf490);
    }

    #[test]
    fn hostile_images_get_a_reason() {
        let mut mem = ram(4 << 20);
        let img = |e: ImageError| Err(LoadError::Image(e));
        assert_eq!(
            load(b"not a kernel at all", &mut mem, "", &[]),
            Err(LoadError::NoHeader)
        );
        let mut bad = aout_image(&[0xf4], 0);
        bad[8] ^= 1;
        assert_eq!(load(&bad, &mut mem, "", &[]), Err(LoadError::BadChecksum));
        let mut req = header(1 << 5);
        req.resize(64, 0);
        assert_eq!(
            load(&req, &mut mem, "", &[]),
            Err(LoadError::UnsupportedRequirement(1 << 5))
        );
        // Header only, no ELF and no address fields.
        let mut plain = header(FLAG_MEMORY_INFO);
        plain.resize(64, 0);
        assert_eq!(load(&plain, &mut mem, "", &[]), img(ImageError::NotElf));
        // Truncated: address fields claim more than the file holds.
        let mut t = aout_image(&[0xf4], 0);
        t.truncate(t.len() - 1);
        assert_eq!(load(&t, &mut mem, "", &[]), img(ImageError::Truncated));
        // Too big for RAM.
        let big = elf32(0x10_0000, 0x10_0000, 0x10_0000, &[0xf4], 8 << 20);
        assert!(matches!(
            load(&big, &mut mem, "", &[]),
            Err(LoadError::Image(ImageError::OutsideRam { .. }))
        ));
        // Over the EBDA and BIOS area, where the firmware tables go.
        let fw = elf32(0x9_F000, 0x9_F000, 0x9_F000, &[0xf4], 0x1000);
        assert!(matches!(
            load(&fw, &mut mem, "", &[]),
            Err(LoadError::Image(ImageError::OverlapsFirmware { .. }))
        ));
        // Entry outside every segment.
        let e = elf32(0x10_0000, 0x10_0000, 0x50_0000, &[0xf4], 0x10);
        assert_eq!(
            load(&e, &mut mem, "", &[]),
            img(ImageError::EntryNotLoaded(0x50_0000))
        );
        let mut e = aout_image(&[0xf4], 0);
        e[28..32].copy_from_slice(&0x50_0000u32.to_le_bytes());
        assert_eq!(
            load(&e, &mut mem, "", &[]),
            img(ImageError::EntryNotLoaded(0x50_0000))
        );
        assert!(std::format!("{}", LoadError::NoHeader).contains("multiboot1 header"));
    }
}
