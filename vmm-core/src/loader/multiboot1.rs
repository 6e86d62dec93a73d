//! Loading a multiboot1 kernel the way QEMU's `-kernel` does, so that kernels written
//! for QEMU run unmodified.
//!
//! Spec: Multiboot Specification version 0.6.96 (GNU, 2009), section 3.1 (the header,
//! including the "a.out kludge" address fields of flag bit 16), 3.2 (machine state) and
//! 3.3 (boot information format). ELF layouts: System V gABI (ELF32/ELF64 headers and
//! program headers).
//!
//! The guest gets: its image copied to the physical addresses it asks for (ELF PT_LOAD
//! `p_paddr`, or the bit-16 address fields), EAX = 0x2BADB002, EBX = the boot
//! information at [`INFO_ADDR`] with mem_lower/mem_upper, the command line, a memory map
//! and the loader's name. The boot information lives in [`INFO_AREA`], which the image
//! may not overlap.

use crate::addr::GuestPhys;
use crate::memory::{GuestMemory, MemError};
use core::fmt;
use core::ops::Range;

pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
pub const BOOT_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie in the first 8 KiB of the image, 4-byte aligned (spec 3.1.1).
pub const HEADER_SEARCH: usize = 8192;

/// Guest-physical range holding what the loader writes for the kernel.
pub const INFO_AREA: Range<u64> = 0x8000..0x10000;
pub const INFO_ADDR: u64 = 0x9000;
const LOADER_NAME_ADDR: u64 = 0x9080;
const CMDLINE_ADDR: u64 = 0x9100;
const CMDLINE_MAX: usize = 0xa000 - 0x9100 - 1;
const MMAP_ADDR: u64 = 0xa000;
pub const LOADER_NAME: &[u8] = b"Janus\0";

/// Header flags (spec 3.1.2). Bits 0-15 are requirements the loader must meet or refuse.
const FLAG_ALIGN_MODULES: u32 = 1 << 0;
pub(crate) const FLAG_MEMORY_INFO: u32 = 1 << 1;
const FLAG_VIDEO_MODE: u32 = 1 << 2;
pub(crate) const FLAG_ADDRESSES: u32 = 1 << 16;
const KNOWN_REQUIREMENTS: u32 = FLAG_ALIGN_MODULES | FLAG_MEMORY_INFO | FLAG_VIDEO_MODE;

/// Boot-information flags (spec 3.3).
pub mod info_flags {
    pub const MEMORY: u32 = 1 << 0;
    pub const CMDLINE: u32 = 1 << 2;
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
const _: () = assert!(core::mem::offset_of!(Info, mmap_length) == 44);
const _: () = assert!(core::mem::offset_of!(Info, boot_loader_name) == 64);

/// One memory-map entry; `size` counts the bytes after itself (20).
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct MmapEntry {
    pub size: u32,
    pub base: u64,
    pub len: u64,
    pub kind: u32,
}

const _: () = assert!(core::mem::size_of::<MmapEntry>() == 24);

impl MmapEntry {
    fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&{ self.size }.to_le_bytes());
        b[4..12].copy_from_slice(&{ self.base }.to_le_bytes());
        b[12..20].copy_from_slice(&{ self.len }.to_le_bytes());
        b[20..24].copy_from_slice(&{ self.kind }.to_le_bytes());
        b
    }
}

pub const MMAP_AVAILABLE: u32 = 1;
pub const MMAP_RESERVED: u32 = 2;

/// Where the kernel starts and what its registers hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootState {
    pub entry: u32,
    pub eax: u32,
    pub ebx: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    NoHeader,
    BadChecksum,
    UnsupportedRequirement(u32),
    /// Neither the address fields (flag 16) nor a usable ELF.
    NotElf,
    BadElf(&'static str),
    /// The address fields or program headers point outside the file.
    Truncated,
    /// A segment lands outside guest RAM.
    OutsideRam {
        addr: u64,
        len: u64,
        ram: u64,
    },
    /// A segment overlaps where the boot information goes.
    OverlapsInfo {
        addr: u64,
        len: u64,
    },
    EntryNotLoaded(u64),
    CmdlineTooLong(usize),
    Memory(MemError),
}

impl From<MemError> for LoadError {
    fn from(e: MemError) -> Self {
        LoadError::Memory(e)
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
            LoadError::NotElf => write!(
                f,
                "neither multiboot address fields (flag 16) nor an ELF image"
            ),
            LoadError::BadElf(why) => write!(f, "bad ELF image: {why}"),
            LoadError::Truncated => write!(f, "image is truncated: its headers point past its end"),
            LoadError::OutsideRam { addr, len, ram } => write!(
                f,
                "image wants {len:#x} bytes at {addr:#x}, outside the guest's {} MiB of RAM",
                ram >> 20
            ),
            LoadError::OverlapsInfo { addr, len } => write!(
                f,
                "image at {addr:#x}+{len:#x} overlaps the boot information area {:#x}-{:#x}",
                INFO_AREA.start, INFO_AREA.end
            ),
            LoadError::EntryNotLoaded(e) => {
                write!(f, "entry point {e:#x} is not in a loaded segment")
            }
            LoadError::CmdlineTooLong(n) => write!(
                f,
                "command line of {n} bytes is too long (at most {CMDLINE_MAX})"
            ),
            LoadError::Memory(e) => write!(f, "{e}"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The offset of the multiboot1 header (magic and a matching checksum aside), if any.
fn find_header(image: &[u8]) -> Option<usize> {
    let end = image.len().min(HEADER_SEARCH);
    (0..end.saturating_sub(11))
        .step_by(4)
        .find(|&o| u32_at(image, o) == Some(HEADER_MAGIC))
}

/// Whether `image` carries a multiboot1 header.
pub fn is_multiboot1(image: &[u8]) -> bool {
    find_header(image).is_some()
}

/// One piece of the image to place: `filesz` bytes from `offset` at `addr`, zeroed up
/// to `memsz`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    offset: u64,
    filesz: u64,
    addr: u64,
    memsz: u64,
}

fn place(image: &[u8], mem: &mut GuestMemory, s: Segment) -> Result<(), LoadError> {
    if s.filesz > s.memsz {
        return Err(LoadError::BadElf(
            "segment's file size exceeds its memory size",
        ));
    }
    let file_end = s.offset.checked_add(s.filesz).ok_or(LoadError::Truncated)?;
    if file_end > image.len() as u64 {
        return Err(LoadError::Truncated);
    }
    let end = s.addr.checked_add(s.memsz).ok_or(LoadError::OutsideRam {
        addr: s.addr,
        len: s.memsz,
        ram: mem.size(),
    })?;
    if s.memsz == 0 {
        return Ok(());
    }
    if !mem.contains(GuestPhys(s.addr), s.memsz) {
        return Err(LoadError::OutsideRam {
            addr: s.addr,
            len: s.memsz,
            ram: mem.size(),
        });
    }
    if s.addr < INFO_AREA.end && end > INFO_AREA.start {
        return Err(LoadError::OverlapsInfo {
            addr: s.addr,
            len: s.memsz,
        });
    }
    mem.write(
        GuestPhys(s.addr),
        &image[s.offset as usize..file_end as usize],
    )?;
    mem.fill(
        GuestPhys(s.addr + s.filesz),
        (s.memsz - s.filesz) as usize,
        0,
    )?;
    Ok(())
}

/// Segments from the header's address fields (flag 16, spec 3.1.3).
fn aout_segments(image: &[u8], hdr: usize) -> Result<(Segment, u64), LoadError> {
    let f = |i: usize| {
        u32_at(image, hdr + 12 + 4 * i)
            .ok_or(LoadError::Truncated)
            .map(u64::from)
    };
    let (header_addr, load_addr, load_end, bss_end, entry) = (f(0)?, f(1)?, f(2)?, f(3)?, f(4)?);
    let bad = LoadError::BadElf("multiboot address fields are inconsistent");
    if load_addr > header_addr {
        return Err(bad);
    }
    let offset = (hdr as u64)
        .checked_sub(header_addr - load_addr)
        .ok_or(bad)?;
    let filesz = if load_end == 0 {
        image.len() as u64 - offset
    } else {
        load_end.checked_sub(load_addr).ok_or(bad)?
    };
    let memsz = if bss_end == 0 {
        filesz
    } else {
        bss_end.checked_sub(load_addr).ok_or(bad)?.max(filesz)
    };
    Ok((
        Segment {
            offset,
            filesz,
            addr: load_addr,
            memsz,
        },
        entry,
    ))
}

/// Loads the PT_LOAD segments of an ELF32 or ELF64 image; returns the physical entry.
fn load_elf(image: &[u8], mem: &mut GuestMemory) -> Result<u64, LoadError> {
    if image.get(..4) != Some(b"\x7fELF") {
        return Err(LoadError::NotElf);
    }
    let class64 = match image.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(LoadError::BadElf("unknown ELF class")),
    };
    if image.get(5) != Some(&1) {
        return Err(LoadError::BadElf("not little-endian"));
    }
    let t = LoadError::Truncated;
    let machine = u16_at(image, 18).ok_or(t)?;
    if !matches!(machine, 3 | 62) {
        return Err(LoadError::BadElf("not an x86 image"));
    }
    let (entry, phoff, phentsize, phnum) = if class64 {
        (
            u64_at(image, 24).ok_or(t)?,
            u64_at(image, 32).ok_or(t)?,
            u16_at(image, 54).ok_or(t)?,
            u16_at(image, 56).ok_or(t)?,
        )
    } else {
        (
            u32_at(image, 24).ok_or(t)? as u64,
            u32_at(image, 28).ok_or(t)? as u64,
            u16_at(image, 42).ok_or(t)?,
            u16_at(image, 44).ok_or(t)?,
        )
    };
    if phnum == 0 {
        return Err(LoadError::BadElf("no program headers"));
    }
    if (phentsize as usize) < if class64 { 56 } else { 32 } {
        return Err(LoadError::BadElf("program header entries too small"));
    }
    let mut phys_entry = None;
    for i in 0..phnum as u64 {
        let ph = phoff.checked_add(i * phentsize as u64).ok_or(t)? as usize;
        if u32_at(image, ph).ok_or(t)? != 1 {
            continue; // not PT_LOAD
        }
        let (offset, vaddr, paddr, filesz, memsz) = if class64 {
            let g = |o: usize| u64_at(image, ph + o).ok_or(LoadError::Truncated);
            (g(8)?, g(16)?, g(24)?, g(32)?, g(40)?)
        } else {
            let g = |o: usize| {
                u32_at(image, ph + o)
                    .map(u64::from)
                    .ok_or(LoadError::Truncated)
            };
            (g(4)?, g(8)?, g(12)?, g(16)?, g(20)?)
        };
        place(
            image,
            mem,
            Segment {
                offset,
                filesz,
                addr: paddr,
                memsz,
            },
        )?;
        // Like QEMU, an entry given as a virtual address inside this segment is moved to
        // the segment's physical address.
        if entry >= vaddr && entry < vaddr.saturating_add(memsz) {
            phys_entry = Some(entry - vaddr + paddr);
        }
    }
    phys_entry.ok_or(LoadError::EntryNotLoaded(entry))
}

/// Writes the boot information: the `Info` structure, the loader's name, the command
/// line and a PC-like memory map of the guest's RAM.
fn write_info(mem: &mut GuestMemory, cmdline: &str) -> Result<u32, LoadError> {
    if cmdline.len() > CMDLINE_MAX {
        return Err(LoadError::CmdlineTooLong(cmdline.len()));
    }
    let ram = mem.size();
    let low_end = 0x9fc00u64.min(ram);
    let mut map: arrayvec::ArrayVec<(u64, u64, u32), 4> = arrayvec::ArrayVec::new();
    map.push((0, low_end, MMAP_AVAILABLE));
    map.push((0x9fc00, 0x400, MMAP_RESERVED)); // EBDA
    map.push((0xf0000, 0x10000, MMAP_RESERVED)); // BIOS ROM
    if ram > 0x10_0000 {
        map.push((0x10_0000, ram - 0x10_0000, MMAP_AVAILABLE));
    }
    for (i, &(base, len, kind)) in map.iter().enumerate() {
        let e = MmapEntry {
            size: 20,
            base,
            len,
            kind,
        };
        mem.write(GuestPhys(MMAP_ADDR + 24 * i as u64), &e.to_bytes())?;
    }
    mem.write(GuestPhys(LOADER_NAME_ADDR), LOADER_NAME)?;
    mem.write(GuestPhys(CMDLINE_ADDR), cmdline.as_bytes())?;
    mem.write(GuestPhys(CMDLINE_ADDR + cmdline.len() as u64), &[0])?;
    let info = Info {
        flags: info_flags::MEMORY
            | info_flags::CMDLINE
            | info_flags::MMAP
            | info_flags::LOADER_NAME,
        mem_lower: (low_end / 1024) as u32,
        mem_upper: (ram.saturating_sub(0x10_0000) / 1024) as u32,
        cmdline: CMDLINE_ADDR as u32,
        mmap_length: 24 * map.len() as u32,
        mmap_addr: MMAP_ADDR as u32,
        boot_loader_name: LOADER_NAME_ADDR as u32,
        ..Default::default()
    };
    // SAFETY: Info is repr(C), made only of u32s (no padding), so its bytes are initialised.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            (&info as *const Info).cast::<u8>(),
            core::mem::size_of::<Info>(),
        )
    };
    mem.fill(GuestPhys(INFO_ADDR), 0x80, 0)?;
    mem.write(GuestPhys(INFO_ADDR), bytes)?;
    Ok(INFO_ADDR as u32)
}

/// Loads a multiboot1 kernel into `mem` and prepares its boot information.
pub fn load(image: &[u8], mem: &mut GuestMemory, cmdline: &str) -> Result<BootState, LoadError> {
    let hdr = find_header(image).ok_or(LoadError::NoHeader)?;
    let flags = u32_at(image, hdr + 4).ok_or(LoadError::Truncated)?;
    let checksum = u32_at(image, hdr + 8).ok_or(LoadError::Truncated)?;
    if HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum) != 0 {
        return Err(LoadError::BadChecksum);
    }
    let unknown = flags & 0xffff & !KNOWN_REQUIREMENTS;
    if unknown != 0 {
        return Err(LoadError::UnsupportedRequirement(unknown));
    }
    if mem.size() < INFO_AREA.end {
        return Err(LoadError::OutsideRam {
            addr: INFO_AREA.start,
            len: INFO_AREA.end - INFO_AREA.start,
            ram: mem.size(),
        });
    }
    let entry = if flags & FLAG_ADDRESSES != 0 {
        let (seg, entry) = aout_segments(image, hdr)?;
        place(image, mem, seg)?;
        if entry < seg.addr || entry >= seg.addr + seg.memsz {
            return Err(LoadError::EntryNotLoaded(entry));
        }
        entry
    } else {
        load_elf(image, mem)?
    };
    let entry = u32::try_from(entry).map_err(|_| LoadError::EntryNotLoaded(entry))?;
    let ebx = write_info(mem, cmdline)?;
    Ok(BootState {
        entry,
        eax: BOOT_MAGIC,
        ebx,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::loader::samples::{aout_image, elf32, header};
    use crate::memory::testing::ram;

    #[test]
    fn address_fields_load_and_zero_bss() {
        let mut mem = ram(4 << 20);
        mem.fill(GuestPhys(0x10_0000), 0x100, 0xcc).unwrap();
        let img = aout_image(&[0xf4, 0xeb, 0xfe], 0x40);
        let b = load(&img, &mut mem, "/guests/k arg").unwrap();
        assert_eq!(
            b,
            BootState {
                entry: 0x10_0020,
                eax: BOOT_MAGIC,
                ebx: INFO_ADDR as u32
            }
        );
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
        load(&aout_image(&[0xf4], 0), &mut mem, "hello=world").unwrap();
        let i = INFO_ADDR;
        let flags = mem.read_u32(GuestPhys(i)).unwrap();
        assert_eq!(
            flags,
            info_flags::MEMORY | info_flags::CMDLINE | info_flags::MMAP | info_flags::LOADER_NAME
        );
        assert_eq!(mem.read_u32(GuestPhys(i + 4)).unwrap(), 639);
        assert_eq!(mem.read_u32(GuestPhys(i + 8)).unwrap(), 15 * 1024);
        let cmd = mem.read_u32(GuestPhys(i + 16)).unwrap() as u64;
        let mut buf = [0u8; 12];
        mem.read(GuestPhys(cmd), &mut buf).unwrap();
        assert_eq!(&buf, b"hello=world\0");
        let (len, addr) = (
            mem.read_u32(GuestPhys(i + 44)).unwrap(),
            mem.read_u32(GuestPhys(i + 48)).unwrap() as u64,
        );
        assert_eq!(len, 4 * 24);
        // Last entry: available RAM from 1 MiB to the end.
        let last = addr + 3 * 24;
        assert_eq!(mem.read_u32(GuestPhys(last)).unwrap(), 20);
        assert_eq!(mem.read_u64(GuestPhys(last + 4)).unwrap(), 0x10_0000);
        assert_eq!(mem.read_u64(GuestPhys(last + 12)).unwrap(), 15 << 20);
        assert_eq!(mem.read_u32(GuestPhys(last + 20)).unwrap(), MMAP_AVAILABLE);
        let name = mem.read_u32(GuestPhys(i + 64)).unwrap() as u64;
        let mut n = [0u8; 6];
        mem.read(GuestPhys(name), &mut n).unwrap();
        assert_eq!(&n, LOADER_NAME);
    }

    #[test]
    fn elf32_segments_at_their_physical_address() {
        let mut mem = ram(4 << 20);
        // Linked at 3 GiB virtual, loaded at 1 MiB physical; entry given virtually.
        let img = elf32(0x10_0000, 0xc010_0000, 0xc010_0001, &[0x90, 0xf4], 0x1000);
        assert!(is_multiboot1(&img));
        let b = load(&img, &mut mem, "").unwrap();
        assert_eq!(b.entry, 0x10_0001);
        assert_eq!(mem.read_u16(GuestPhys(0x10_0000)).unwrap(), 0xf490);
    }

    #[test]
    fn hostile_images_get_a_reason() {
        let mut mem = ram(4 << 20);
        assert_eq!(
            load(b"not a kernel at all", &mut mem, ""),
            Err(LoadError::NoHeader)
        );
        let mut bad = aout_image(&[0xf4], 0);
        bad[8] ^= 1;
        assert_eq!(load(&bad, &mut mem, ""), Err(LoadError::BadChecksum));
        let mut req = header(1 << 5);
        req.resize(64, 0);
        assert_eq!(
            load(&req, &mut mem, ""),
            Err(LoadError::UnsupportedRequirement(1 << 5))
        );
        // Header only, no ELF and no address fields.
        let mut plain = header(FLAG_MEMORY_INFO);
        plain.resize(64, 0);
        assert_eq!(load(&plain, &mut mem, ""), Err(LoadError::NotElf));
        // Truncated: address fields claim more than the file holds.
        let mut img = aout_image(&[0xf4], 0);
        img.truncate(img.len() - 1);
        assert_eq!(load(&img, &mut mem, ""), Err(LoadError::Truncated));
        // Too big for RAM.
        let big = elf32(0x10_0000, 0x10_0000, 0x10_0000, &[0xf4], 8 << 20);
        assert!(matches!(
            load(&big, &mut mem, ""),
            Err(LoadError::OutsideRam { .. })
        ));
        // Over the boot information.
        let low = elf32(0x8800, 0x8800, 0x8800, &[0xf4], 0x10);
        assert!(matches!(
            load(&low, &mut mem, ""),
            Err(LoadError::OverlapsInfo { .. })
        ));
        // Entry outside every segment.
        let e = elf32(0x10_0000, 0x10_0000, 0x50_0000, &[0xf4], 0x10);
        assert_eq!(
            load(&e, &mut mem, ""),
            Err(LoadError::EntryNotLoaded(0x50_0000))
        );
        let long = "x".repeat(CMDLINE_MAX + 1);
        assert_eq!(
            load(&aout_image(&[0xf4], 0), &mut mem, &long),
            Err(LoadError::CmdlineTooLong(CMDLINE_MAX + 1))
        );
        assert!(std::format!("{}", LoadError::NoHeader).contains("multiboot1 header"));
    }
}
