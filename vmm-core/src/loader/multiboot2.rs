//! Loading a multiboot2 kernel the way GRUB's `multiboot2` command does.
//!
//! Spec: The Multiboot2 Specification version 2.0 (GNU), sections 3.1.1-3.1.3 (the
//! header: magic 0xE85250D6 in the first 32 KiB, 8-byte aligned, architecture 0 for
//! i386, header_length, checksum; tags of u16 type, u16 flags (bit 0: optional), u32
//! size, each 8-byte aligned, ending with type 0), 3.1.4-3.1.13 (the header tags), 3.3
//! (the i386 machine state: EAX 0x36D76289, EBX the boot information, 32-bit protected
//! mode with paging off, as for multiboot1) and 3.6 (the boot information: u32
//! total_size, u32 reserved, then 8-byte aligned tags ending with type 0).
//!
//! Header tags: an information request (1) for a tag Janus cannot give refuses the
//! kernel unless the request is optional; the address tag (2) loads the file as the
//! multiboot1 address fields do ([`super::image::AddressFields`], `load_addr` -1: from
//! the file's start) and needs an entry address tag (3); without an address tag the
//! ELF32 or ELF64 PT_LOAD segments load at `p_paddr` ([`super::elf`]), and an entry tag
//! overrides `e_entry`. Console flags (4) are ignored; module alignment (6) is always met
//! (modules are page-aligned); a relocatable kernel (10) loads at its linked address and
//! gets its load base (tag 21). The framebuffer (5), EFI boot services (7) and EFI entry
//! (8, 9) tags, and unknown ones, refuse the kernel unless optional.
//!
//! Boot information given: command line (1), boot loader name (2), one module tag (3)
//! per module with its string, basic memory information (4), the memory map (6, entry
//! size 24, version 0, [`super::bootarea::memory_map`]), the old and new ACPI RSDP (14,
//! 15) copied from the tables Janus wrote, the load base (21) for a relocatable kernel.
//! It goes after the image with the modules ([`super::bootarea`]).

use crate::addr::GuestPhys;
use crate::firmware::acpi::RSDP_SIGNATURE;
use crate::loader::bootarea::{self, BootModule, BootState, InfoWriter, LOADER_NAME};
use crate::loader::elf;
use crate::loader::image::{self, AddressFields, Extent, ImageError};
use crate::loader::le::{u16_at, u32_at};
use crate::memory::{GuestMemory, MemError};
use core::fmt;

pub const HEADER_MAGIC: u32 = 0xE852_50D6;
pub const BOOT_MAGIC: u32 = 0x36D7_6289;
/// The header lies in the first 32 KiB of the image, 8-byte aligned (spec 3.1.1).
pub const HEADER_SEARCH: usize = 32768;
pub const ARCH_I386: u32 = 0;
/// Header tag flag bit 0: the boot loader may ignore the tag (spec 3.1.3).
pub const OPTIONAL: u16 = 1;

/// Header tag types (spec 3.1.4-3.1.13).
pub mod header_tag {
    pub const END: u16 = 0;
    pub const INFO_REQUEST: u16 = 1;
    pub const ADDRESS: u16 = 2;
    pub const ENTRY: u16 = 3;
    pub const CONSOLE_FLAGS: u16 = 4;
    pub const FRAMEBUFFER: u16 = 5;
    pub const MODULE_ALIGN: u16 = 6;
    pub const EFI_BOOT_SERVICES: u16 = 7;
    pub const EFI32_ENTRY: u16 = 8;
    pub const EFI64_ENTRY: u16 = 9;
    pub const RELOCATABLE: u16 = 10;
}

/// Boot information tag types (spec 3.6).
pub mod info_tag {
    pub const END: u32 = 0;
    pub const CMDLINE: u32 = 1;
    pub const LOADER_NAME: u32 = 2;
    pub const MODULE: u32 = 3;
    pub const BASIC_MEMINFO: u32 = 4;
    pub const MMAP: u32 = 6;
    pub const FRAMEBUFFER: u32 = 8;
    pub const ACPI_OLD: u32 = 14;
    pub const ACPI_NEW: u32 = 15;
    pub const LOAD_BASE: u32 = 21;
}

/// Information tags Janus can give (the ACPI ones only when it wrote the tables).
const GIVEN: [u32; 8] = [
    info_tag::CMDLINE,
    info_tag::LOADER_NAME,
    info_tag::MODULE,
    info_tag::BASIC_MEMINFO,
    info_tag::MMAP,
    info_tag::ACPI_OLD,
    info_tag::ACPI_NEW,
    info_tag::LOAD_BASE,
];
/// A memory-map entry: base u64, length u64, type u32, reserved u32 (spec 3.6.8).
pub const MMAP_ENTRY: u32 = 24;
/// RSDP lengths: ACPI 1.0's 20 bytes, ACPI 2.0's 36 (ACPI 6.5 5.2.5.3).
const RSDP_V1: usize = 20;
const RSDP_V2: usize = 36;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    NoHeader,
    BadChecksum,
    UnsupportedArch(u32),
    BadHeader(&'static str),
    /// A non-optional information request for a tag Janus cannot give.
    Request(u32),
    /// A non-optional header tag Janus does not support.
    Unsupported(u16),
    AddressWithoutEntry,
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

fn header_tag_name(t: u16) -> &'static str {
    match t {
        header_tag::FRAMEBUFFER => "framebuffer",
        header_tag::EFI_BOOT_SERVICES => "EFI boot services",
        header_tag::EFI32_ENTRY => "EFI i386 entry",
        header_tag::EFI64_ENTRY => "EFI amd64 entry",
        _ => "unknown",
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoHeader => write!(f, "no multiboot2 header in the first 32 KiB"),
            LoadError::BadChecksum => write!(f, "multiboot2 header checksum is wrong"),
            LoadError::UnsupportedArch(a) => write!(
                f,
                "multiboot2 header is for architecture {a}, not i386 (0)"
            ),
            LoadError::BadHeader(why) => write!(f, "bad multiboot2 header: {why}"),
            LoadError::Request(t) => write!(
                f,
                "multiboot2 header requires boot information tag {t}, which Janus cannot give (it gives 1-4, 6, 14, 15, 21)"
            ),
            LoadError::Unsupported(t) => write!(
                f,
                "multiboot2 header requires the {} tag (type {t}), which Janus does not support",
                header_tag_name(*t)
            ),
            LoadError::AddressWithoutEntry => write!(
                f,
                "multiboot2 header has an address tag but no entry address tag"
            ),
            LoadError::Image(e) => write!(f, "{e}"),
        }
    }
}

/// The offset of the first multiboot2 magic, 8-byte aligned in the first 32 KiB.
fn find_header(image: &[u8]) -> Option<usize> {
    image::find_magic(image, HEADER_MAGIC, HEADER_SEARCH, 8, 16)
}

fn checksum_ok(image: &[u8], hdr: usize) -> bool {
    let f = |i: usize| u32_at(image, hdr + 4 * i).unwrap_or(0);
    f(0).wrapping_add(f(1))
        .wrapping_add(f(2))
        .wrapping_add(f(3))
        == 0
}

/// Whether `image` carries a multiboot2 header (magic and checksum).
pub fn is_multiboot2(image: &[u8]) -> bool {
    find_header(image).is_some_and(|h| checksum_ok(image, h))
}

/// What the header asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Header {
    address: Option<AddressFields>,
    entry: Option<u32>,
    relocatable: bool,
}

/// One header tag: type, flags, body (after the 8-byte tag header).
fn tag_at(image: &[u8], off: usize, end: usize) -> Result<(u16, u16, &[u8]), LoadError> {
    let bad = LoadError::BadHeader;
    if off.checked_add(8).is_none_or(|e| e > end) {
        return Err(bad("tags run past header_length without an end tag"));
    }
    let t = ImageError::Truncated;
    let (ty, flags) = (
        u16_at(image, off).ok_or(t)?,
        u16_at(image, off + 2).ok_or(t)?,
    );
    let size = u32_at(image, off + 4).ok_or(t)? as usize;
    if size < 8 {
        return Err(bad("a tag is shorter than 8 bytes"));
    }
    let tag_end = off.checked_add(size).filter(|&e| e <= end);
    let tag_end = tag_end.ok_or(bad("a tag runs past header_length"))?;
    Ok((ty, flags, &image[off + 8..tag_end]))
}

/// The u32 words of a tag body; `None` when it has fewer than `n`.
fn words<const N: usize>(body: &[u8]) -> Option<[u32; N]> {
    let mut w = [0u32; N];
    for (i, slot) in w.iter_mut().enumerate() {
        *slot = u32_at(body, 4 * i)?;
    }
    Some(w)
}

/// Checks one information request (spec 3.1.4).
fn check_request(body: &[u8], optional: bool, acpi: bool) -> Result<(), LoadError> {
    if optional {
        return Ok(());
    }
    let can = |t: u32| {
        GIVEN.contains(&t) && (acpi || !matches!(t, info_tag::ACPI_OLD | info_tag::ACPI_NEW))
    };
    match body
        .chunks_exact(4)
        .map(|c| u32_at(c, 0).unwrap_or(0))
        .find(|&t| !can(t))
    {
        Some(t) => Err(LoadError::Request(t)),
        None => Ok(()),
    }
}

/// Reads the header at `hdr` and its tags.
fn parse_header(image: &[u8], hdr: usize, acpi: bool) -> Result<Header, LoadError> {
    if !checksum_ok(image, hdr) {
        return Err(LoadError::BadChecksum);
    }
    let t = ImageError::Truncated;
    let arch = u32_at(image, hdr + 4).ok_or(t)?;
    if arch != ARCH_I386 {
        return Err(LoadError::UnsupportedArch(arch));
    }
    let len = u32_at(image, hdr + 8).ok_or(t)? as usize;
    let end = hdr
        .checked_add(len)
        .filter(|&e| e <= image.len())
        .ok_or(t)?;
    let mut h = Header::default();
    let mut off = hdr + 16;
    loop {
        let (ty, flags, body) = tag_at(image, off, end)?;
        let optional = flags & OPTIONAL != 0;
        let short = LoadError::BadHeader("a tag is too short for its type");
        match ty {
            header_tag::END => return Ok(h),
            header_tag::INFO_REQUEST => check_request(body, optional, acpi)?,
            header_tag::ADDRESS => {
                let [header_addr, load_addr, load_end_addr, bss_end_addr] =
                    words(body).ok_or(short)?;
                h.address = Some(AddressFields {
                    header_addr,
                    load_addr,
                    load_end_addr,
                    bss_end_addr,
                });
            }
            header_tag::ENTRY => h.entry = Some(words::<1>(body).ok_or(short)?[0]),
            header_tag::CONSOLE_FLAGS | header_tag::MODULE_ALIGN => {}
            header_tag::RELOCATABLE => {
                words::<4>(body).ok_or(short)?;
                h.relocatable = true;
            }
            _ if optional => {}
            _ => return Err(LoadError::Unsupported(ty)),
        }
        off += 8 + body.len().next_multiple_of(8);
    }
}

/// Loads the image; returns its extent and physical entry.
fn load_image(
    image: &[u8],
    mem: &mut GuestMemory,
    hdr: usize,
    h: &Header,
) -> Result<(Extent, u64), LoadError> {
    let (extent, elf_entry) = match h.address {
        Some(fields) => {
            let seg = fields.segment(hdr, image.len())?;
            let mut extent = Extent::default();
            image::place(image, mem, seg, &mut extent)?;
            (extent, Err(LoadError::AddressWithoutEntry))
        }
        None => {
            let l = elf::load(image, mem)?;
            let entry = l.entry.ok_or(ImageError::EntryNotLoaded(l.e_entry).into());
            (l.extent, entry)
        }
    };
    let entry = match h.entry {
        Some(e) if extent.contains(e.into()) => u64::from(e),
        Some(e) => return Err(ImageError::EntryNotLoaded(e.into()).into()),
        None => elf_entry?,
    };
    Ok((extent, entry))
}

/// The RSDP Janus wrote at `addr` (36 bytes), if its signature is there.
fn read_rsdp(mem: &GuestMemory, addr: Option<u64>) -> Option<[u8; RSDP_V2]> {
    let mut b = [0u8; RSDP_V2];
    mem.read(GuestPhys(addr?), &mut b).ok()?;
    (&b[..8] == RSDP_SIGNATURE).then_some(b)
}

/// Appends a tag: its header, `payload`, padding to 8 bytes.
fn tag(w: &mut InfoWriter<'_>, ty: u32, payload: &[&[u8]]) -> Result<(), MemError> {
    let len: usize = payload.iter().map(|p| p.len()).sum();
    w.put_u32s(&[ty, 8 + len as u32])?;
    for p in payload {
        w.put(p)?;
    }
    w.align(8)
}

/// What the boot information holds besides the modules.
struct InfoInput<'a> {
    ram: u64,
    cmdline: &'a str,
    rsdp: Option<[u8; RSDP_V2]>,
    load_base: Option<u32>,
}

/// Writes the boot information (spec 3.6); the modules start at `first_module`.
fn write_info(
    w: &mut InfoWriter<'_>,
    input: &InfoInput<'_>,
    modules: &[BootModule<'_>],
    first_module: u64,
) -> Result<(), MemError> {
    let start = w.put_u32s(&[0, 0])?;
    tag(w, info_tag::CMDLINE, &[input.cmdline.as_bytes(), &[0]])?;
    tag(w, info_tag::LOADER_NAME, &[LOADER_NAME.as_bytes(), &[0]])?;
    for (m, r) in modules
        .iter()
        .zip(bootarea::module_ranges(first_module, modules))
    {
        let size = 16 + m.string.len() as u32 + 1;
        w.put_u32s(&[info_tag::MODULE, size, r.start as u32, r.end as u32])?;
        w.put_module_string(&m.string)?;
        w.align(8)?;
    }
    let (lower, upper) = bootarea::mem_bounds(input.ram);
    w.put_u32s(&[info_tag::BASIC_MEMINFO, 16, lower, upper])?;
    let map = bootarea::memory_map(input.ram);
    let size = 16 + MMAP_ENTRY * map.len() as u32;
    w.put_u32s(&[info_tag::MMAP, size, MMAP_ENTRY, 0])?;
    for e in &map {
        w.put(&e.to_bytes())?;
        w.put(&[0; 4])?;
    }
    if let Some(rsdp) = &input.rsdp {
        tag(w, info_tag::ACPI_OLD, &[&rsdp[..RSDP_V1]])?;
        tag(w, info_tag::ACPI_NEW, &[&rsdp[..]])?;
    }
    if let Some(base) = input.load_base {
        tag(w, info_tag::LOAD_BASE, &[&base.to_le_bytes()])?;
    }
    w.put_u32s(&[info_tag::END, 8])?;
    let total = (w.at - start) as u32;
    w.write_at(start, &total.to_le_bytes())
}

/// Loads a multiboot2 kernel into `mem` and prepares its boot information and modules.
/// `rsdp` is where Janus wrote the guest's ACPI RSDP, if it did.
pub fn load(
    image: &[u8],
    mem: &mut GuestMemory,
    cmdline: &str,
    modules: &[BootModule<'_>],
    rsdp: Option<u64>,
) -> Result<BootState, LoadError> {
    let hdr = find_header(image).ok_or(LoadError::NoHeader)?;
    let rsdp = read_rsdp(mem, rsdp);
    let h = parse_header(image, hdr, rsdp.is_some())?;
    let (extent, entry) = load_image(image, mem, hdr, &h)?;
    let input = InfoInput {
        ram: mem.size(),
        cmdline,
        rsdp,
        load_base: h.relocatable.then_some(extent.start as u32),
    };
    let write = |w: &mut InfoWriter<'_>, first| write_info(w, &input, modules, first);
    Ok(BootState::after_image(
        mem, extent, entry, BOOT_MAGIC, modules, write,
    )?)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::firmware::acpi;
    use crate::loader::cmdline::ModuleString;
    use crate::loader::multiboot1::FLAG_MEMORY_INFO;
    use crate::loader::samples::{c_string, elf32_with, header, mb2_flat, mb2_header, Mb2Tag};
    use crate::memory::testing::ram;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    /// An ELF32 kernel at 1 MiB whose multiboot2 header has `tags`.
    fn elf(tags: &[Mb2Tag<'_>]) -> Vec<u8> {
        elf32_with(
            0x10_0000,
            0x10_0000,
            0x10_0000,
            &[0xf4],
            0x2000,
            &mb2_header(tags),
        )
    }

    fn with_acpi(size: u64) -> GuestMemory {
        let mut mem = ram(size as usize);
        acpi::write(
            &mut mem,
            GuestPhys(acpi::RSDP_ADDR),
            1,
            0,
            0xFEC0_0000,
            acpi::PmPorts::PC,
        )
        .unwrap();
        mem
    }

    /// The boot information's tags: (type, address of the tag, size), checking the
    /// layout rules of spec 3.6 on the way.
    fn tags(mem: &GuestMemory, b: &BootState) -> Vec<(u32, u64, u32)> {
        let at = u64::from(b.ebx);
        assert_eq!(at % 8, 0, "8-aligned");
        let total = mem.read_u32(GuestPhys(at)).unwrap() as u64;
        assert_eq!(mem.read_u32(GuestPhys(at + 4)).unwrap(), 0, "reserved");
        assert_eq!(at + total, b.area.info_end);
        let mut out = Vec::new();
        let mut t = at + 8;
        loop {
            assert_eq!(t % 8, 0);
            let (ty, size) = (
                mem.read_u32(GuestPhys(t)).unwrap(),
                mem.read_u32(GuestPhys(t + 4)).unwrap(),
            );
            out.push((ty, t, size));
            if ty == info_tag::END {
                assert_eq!((size, t + 8), (8, at + total), "end tag last");
                return out;
            }
            t += u64::from(size).next_multiple_of(8);
        }
    }

    fn find(tags: &[(u32, u64, u32)], ty: u32) -> Vec<(u64, u32)> {
        tags.iter()
            .filter(|t| t.0 == ty)
            .map(|t| (t.1, t.2))
            .collect()
    }

    fn module<'a>(image: &'a [u8], tail: &'a str) -> BootModule<'a> {
        BootModule {
            image,
            string: ModuleString { head: "", tail },
        }
    }

    #[test]
    fn an_elf_kernel_gets_the_boot_information_grub_gives() {
        let mut mem = with_acpi(16 * MIB);
        let (m0, m1) = ([1u8; 0x1234], [2u8; 3]);
        let mods = [module(&m0, "first a=b"), module(&m1, "second")];
        let img = elf(&[]);
        let b = load(&img, &mut mem, "console=x", &mods, Some(acpi::RSDP_ADDR)).unwrap();
        assert_eq!((b.entry, b.eax), (0x10_0000, BOOT_MAGIC));
        assert_eq!(b.ebx, 0x10_2000, "on the page after the image's bss");
        let t = tags(&mem, &b);
        let types: Vec<u32> = t.iter().map(|t| t.0).collect();
        assert_eq!(types, [1, 2, 3, 3, 4, 6, 14, 15, 0]);
        let (cmd, size) = find(&t, info_tag::CMDLINE)[0];
        assert_eq!(
            (c_string(&mem, cmd + 8), size),
            ("console=x".into(), 8 + 10)
        );
        let name = find(&t, info_tag::LOADER_NAME)[0].0;
        assert_eq!(c_string(&mem, name + 8), LOADER_NAME);
        let mut prev_end = b.area.info_end;
        for ((at, size), (m, s)) in find(&t, info_tag::MODULE)
            .into_iter()
            .zip(mods.iter().zip(["first a=b", "second"]))
        {
            let start = mem.read_u32(GuestPhys(at + 8)).unwrap() as u64;
            let end = mem.read_u32(GuestPhys(at + 12)).unwrap() as u64;
            assert!(
                start.is_multiple_of(0x1000) && start >= prev_end,
                "in order, on pages"
            );
            assert_eq!(end - start, m.image.len() as u64);
            assert_eq!(mem.read_u8(GuestPhys(end - 1)).unwrap(), m.image[0]);
            assert_eq!(c_string(&mem, at + 16), s);
            assert_eq!(size as usize, 16 + s.len() + 1);
            prev_end = end;
        }
        let meminfo = find(&t, info_tag::BASIC_MEMINFO)[0].0;
        assert_eq!(mem.read_u32(GuestPhys(meminfo + 8)).unwrap(), 639);
        assert_eq!(mem.read_u32(GuestPhys(meminfo + 12)).unwrap(), 15 * 1024);
        let (mmap, size) = find(&t, info_tag::MMAP)[0];
        assert_eq!(mem.read_u32(GuestPhys(mmap + 8)).unwrap(), 24, "entry_size");
        assert_eq!(
            mem.read_u32(GuestPhys(mmap + 12)).unwrap(),
            0,
            "entry_version"
        );
        let map = bootarea::memory_map(16 * MIB);
        assert_eq!(size as usize, 16 + 24 * map.len());
        for (i, e) in map.iter().enumerate() {
            let at = mmap + 16 + 24 * i as u64;
            assert_eq!(mem.read_u64(GuestPhys(at)).unwrap(), { e.addr });
            assert_eq!(mem.read_u64(GuestPhys(at + 8)).unwrap(), { e.size });
            assert_eq!(mem.read_u32(GuestPhys(at + 16)).unwrap(), { e.kind });
            assert_eq!(mem.read_u32(GuestPhys(at + 20)).unwrap(), 0);
        }
        let mut rsdp = [0u8; 36];
        mem.read(GuestPhys(acpi::RSDP_ADDR), &mut rsdp).unwrap();
        for (ty, len) in [(info_tag::ACPI_OLD, 20), (info_tag::ACPI_NEW, 36)] {
            let (at, size) = find(&t, ty)[0];
            assert_eq!(size, 8 + len as u32);
            let mut copy = std::vec![0u8; len];
            mem.read(GuestPhys(at + 8), &mut copy).unwrap();
            assert_eq!(copy, &rsdp[..len]);
        }
    }

    #[test]
    fn without_acpi_tables_no_rsdp_tags() {
        let mut mem = ram(16 << 20);
        let b = load(&elf(&[]), &mut mem, "", &[], Some(acpi::RSDP_ADDR)).unwrap();
        let types: Vec<u32> = tags(&mem, &b).iter().map(|t| t.0).collect();
        assert_eq!(types, [1, 2, 4, 6, 0]);
    }

    /// A flat kernel linked at 0x8000 with the address and entry tags loads, and its
    /// boot information goes after it.
    #[test]
    fn address_and_entry_tags_load_a_flat_kernel_low() {
        let mut mem = ram(16 << 20);
        mem.fill(GuestPhys(0x8000), 0x2000, 0xcc).unwrap();
        let img = mb2_flat(0x8000, &[0xf4, 0xeb], 0x100, &[]);
        let hdr_len = img.len() as u64 - 2;
        let b = load(&img, &mut mem, "", &[], None).unwrap();
        assert_eq!(u64::from(b.entry), 0x8000 + hdr_len);
        assert_eq!(mem.read_u8(GuestPhys(0x8000 + hdr_len)).unwrap(), 0xf4);
        assert_eq!(b.image.end, 0x8000 + img.len() as u64 + 0x100);
        assert_eq!(mem.read_u8(GuestPhys(b.image.end - 1)).unwrap(), 0, "bss");
        assert_eq!(b.ebx, 0x9000);
        // load_addr -1: the file from its start.
        let mut img = mb2_flat(0x20_0000, &[0xf4], 0, &[]);
        img[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        let b = load(&img, &mut mem, "", &[], None).unwrap();
        assert_eq!(b.image.start, 0x20_0000);
    }

    #[test]
    fn entry_tag_overrides_the_elf_entry() {
        let mut mem = ram(16 << 20);
        let b = load(&elf(&[(3, 0, &[0x10_0010])]), &mut mem, "", &[], None).unwrap();
        assert_eq!(b.entry, 0x10_0010);
        assert_eq!(
            load(&elf(&[(3, 0, &[0x50_0000])]), &mut mem, "", &[], None),
            Err(LoadError::Image(ImageError::EntryNotLoaded(0x50_0000)))
        );
        // An address tag needs an entry tag.
        let fields: &[u32] = &[0x10_0000, 0x10_0000, 0, 0];
        let mut img = mb2_header(&[(2, 0, fields)]);
        img.resize(0x40, 0xf4);
        assert_eq!(
            load(&img, &mut mem, "", &[], None),
            Err(LoadError::AddressWithoutEntry)
        );
    }

    #[test]
    fn information_requests() {
        let mut mem = with_acpi(16 << 20);
        let rsdp = Some(acpi::RSDP_ADDR);
        let ok: &[u32] = &[1, 2, 3, 4, 6, 14, 15, 21];
        assert!(load(&elf(&[(1, 0, ok)]), &mut mem, "", &[], rsdp).is_ok());
        // A framebuffer (8) Janus cannot give: refused unless optional.
        let fb: &[u32] = &[1, 8];
        assert_eq!(
            load(&elf(&[(1, 0, fb)]), &mut mem, "", &[], rsdp),
            Err(LoadError::Request(8))
        );
        assert!(load(&elf(&[(1, OPTIONAL, fb)]), &mut mem, "", &[], rsdp).is_ok());
        // The RSDP only when Janus wrote ACPI tables.
        let acpi_req: &[u32] = &[14];
        let mut bare = ram(16 << 20);
        assert_eq!(
            load(&elf(&[(1, 0, acpi_req)]), &mut bare, "", &[], rsdp),
            Err(LoadError::Request(14))
        );
        let s = std::format!("{}", LoadError::Request(8));
        assert!(s.contains("tag 8") && !s.contains('\n'), "{s}");
    }

    #[test]
    fn header_tags_honoured_ignored_or_refused() {
        let mut mem = ram(16 << 20);
        // Console flags (4) and module alignment (6): fine even when not optional.
        let tags: &[Mb2Tag<'_>] = &[(4, 0, &[3]), (6, 0, &[])];
        assert!(load(&elf(tags), &mut mem, "", &[], None).is_ok());
        // Framebuffer (5), EFI (7, 8, 9) and unknown tags: refused unless optional.
        let fb: &[u32] = &[1024, 768, 32];
        for (ty, body) in [
            (5u16, fb),
            (7, &[]),
            (8, &[0x10_0000]),
            (9, &[0x10_0000]),
            (77, &[]),
        ] {
            assert_eq!(
                load(&elf(&[(ty, 0, body)]), &mut mem, "", &[], None),
                Err(LoadError::Unsupported(ty)),
                "{ty}"
            );
            assert!(load(&elf(&[(ty, OPTIONAL, body)]), &mut mem, "", &[], None).is_ok());
        }
        assert!(std::format!("{}", LoadError::Unsupported(5)).contains("framebuffer"));
    }

    #[test]
    fn relocatable_kernel_loads_where_linked_and_learns_its_base() {
        let mut mem = ram(16 << 20);
        let reloc: &[u32] = &[0x10_0000, 0x1000_0000, 0x1000, 1];
        let b = load(&elf(&[(10, 0, reloc)]), &mut mem, "", &[], None).unwrap();
        let t = tags(&mem, &b);
        let (at, size) = find(&t, info_tag::LOAD_BASE)[0];
        assert_eq!(size, 12);
        assert_eq!(mem.read_u32(GuestPhys(at + 8)).unwrap(), 0x10_0000);
        assert_eq!(b.image.start, 0x10_0000);
    }

    #[test]
    fn bad_headers_get_a_reason() {
        let mut mem = ram(16 << 20);
        assert_eq!(
            load(b"nothing", &mut mem, "", &[], None),
            Err(LoadError::NoHeader)
        );
        let good = elf(&[]);
        let with = |off: usize, v: u32| {
            let mut b = good.clone();
            b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            b
        };
        let h = 0x60;
        assert_eq!(
            load(&with(h + 12, 0), &mut mem, "", &[], None),
            Err(LoadError::BadChecksum)
        );
        // Architecture 4 (MIPS), checksum kept right.
        let sum = u32::from_le_bytes(good[h + 12..h + 16].try_into().unwrap());
        let mips = with(h + 4, 4);
        let mips = {
            let mut b = mips;
            b[h + 12..h + 16].copy_from_slice(&sum.wrapping_sub(4).to_le_bytes());
            b
        };
        assert_eq!(
            load(&mips, &mut mem, "", &[], None),
            Err(LoadError::UnsupportedArch(4))
        );
        // A tag shorter than 8 bytes, or running past header_length.
        let mut short = mb2_header(&[(4, 0, &[0])]);
        short[20..24].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            load(&short, &mut mem, "", &[], None),
            Err(LoadError::BadHeader(_))
        ));
        let mut long = mb2_header(&[(4, 0, &[0])]);
        long[20..24].copy_from_slice(&64u32.to_le_bytes());
        assert!(matches!(
            load(&long, &mut mem, "", &[], None),
            Err(LoadError::BadHeader(_))
        ));
        // An address tag too short for its four fields.
        let addr: &[u32] = &[0x10_0000];
        assert!(matches!(
            load(&mb2_header(&[(2, 0, addr)]), &mut mem, "", &[], None),
            Err(LoadError::BadHeader(_))
        ));
        // header_length past the file.
        let mut cut = mb2_header(&[]);
        cut.truncate(20);
        assert!(matches!(
            load(&cut, &mut mem, "", &[], None),
            Err(LoadError::Image(ImageError::Truncated)) | Err(LoadError::BadChecksum)
        ));
    }

    #[test]
    fn detection_needs_magic_and_checksum_8_aligned_in_32_kib() {
        let mut both = elf(&[]);
        assert!(is_multiboot2(&both));
        both.resize(both.len().next_multiple_of(4), 0);
        both.extend_from_slice(&header(FLAG_MEMORY_INFO));
        assert!(crate::loader::multiboot1::is_multiboot1(&both));
        assert!(is_multiboot2(&both), "a multiboot1 header as well");
        let mut bad = elf(&[]);
        bad[0x6c] ^= 1;
        assert!(!is_multiboot2(&bad), "wrong checksum");
        let mut late = std::vec![0u8; HEADER_SEARCH];
        late.extend_from_slice(&mb2_header(&[]));
        assert!(!is_multiboot2(&late), "past 32 KiB");
        let mut odd = std::vec![0u8; 4];
        odd.extend_from_slice(&mb2_header(&[]));
        assert!(!is_multiboot2(&odd), "not 8-aligned");
    }
}
