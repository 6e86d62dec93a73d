//! Placing a multiboot kernel's image in guest RAM, shared by the multiboot1 and
//! multiboot2 loaders: segments copied to the physical addresses they ask for and zeroed
//! up to their memory size, from the header's address fields (Multiboot 0.6.96 3.1.3, the
//! "a.out kludge" of flag 16; Multiboot2 spec 2.0 3.1.5, the address tag) or from an ELF
//! image's program headers ([`super::elf`]).
//!
//! A segment must lie inside the guest's RAM and off the PC firmware area
//! ([`FIRMWARE_AREA`]: the EBDA where the MP table goes, the legacy video hole and the
//! BIOS area where the ACPI tables go, see [`crate::loader::e820`]). The loaders remember
//! the image's [`Extent`] so that the boot information goes after it
//! ([`super::bootarea`]).

use crate::addr::GuestPhys;
use crate::loader::e820::{EBDA_START, HIGH_MEMORY};
use crate::memory::{GuestMemory, MemError};
use core::fmt;
use core::ops::Range;

/// Guest-physical range no image may use: the EBDA (MP table), the legacy video hole and
/// the BIOS area (ACPI tables), 0x9FC00-0x100000.
pub const FIRMWARE_AREA: Range<u64> = EBDA_START..HIGH_MEMORY;

/// Why an image cannot be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Neither address fields nor a usable ELF.
    NotElf,
    BadElf(&'static str),
    /// The address fields or program headers point outside the file.
    Truncated,
    /// A segment (or the boot information) lands outside guest RAM.
    OutsideRam {
        addr: u64,
        len: u64,
        ram: u64,
    },
    /// A segment overlaps the firmware area.
    OverlapsFirmware {
        addr: u64,
        len: u64,
    },
    EntryNotLoaded(u64),
    /// No room for the boot information and the modules after the image.
    NoRoom {
        need: u64,
        ram: u64,
    },
    Memory(MemError),
}

impl From<MemError> for ImageError {
    fn from(e: MemError) -> Self {
        ImageError::Memory(e)
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::NotElf => write!(
                f,
                "neither multiboot address fields (flag 16 or an address tag) nor an ELF image"
            ),
            ImageError::BadElf(why) => write!(f, "bad ELF image: {why}"),
            ImageError::Truncated => {
                write!(f, "image is truncated: its headers point past its end")
            }
            ImageError::OutsideRam { addr, len, ram } => write!(
                f,
                "image wants {len:#x} bytes at {addr:#x}, outside the guest's {} MiB of RAM",
                ram >> 20
            ),
            ImageError::OverlapsFirmware { addr, len } => write!(
                f,
                "image at {addr:#x}+{len:#x} overlaps the firmware area {:#x}-{:#x} (EBDA, video hole, BIOS)",
                FIRMWARE_AREA.start, FIRMWARE_AREA.end
            ),
            ImageError::EntryNotLoaded(e) => {
                write!(f, "entry point {e:#x} is not in a loaded segment")
            }
            ImageError::NoRoom { need, ram } => write!(
                f,
                "no room for the boot information and modules ({} KiB) after the image in {} MiB of RAM",
                need.div_ceil(1024),
                ram >> 20
            ),
            ImageError::Memory(e) => write!(f, "{e}"),
        }
    }
}

/// The offset of the first `magic` in the first `within` bytes of `image`, on an `align`
/// boundary, with room for `len` header bytes (Multiboot 0.6.96 3.1.1: 4-aligned in 8 KiB;
/// Multiboot2 spec 2.0 3.1.1: 8-aligned in 32 KiB).
pub fn find_magic(
    image: &[u8],
    magic: u32,
    within: usize,
    align: usize,
    len: usize,
) -> Option<usize> {
    let end = image.len().min(within);
    (0..end.saturating_sub(len - 1))
        .step_by(align)
        .find(|&o| crate::loader::le::u32_at(image, o) == Some(magic))
}

/// One piece of the image to place: `filesz` bytes from `offset` at `addr`, zeroed up
/// to `memsz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub filesz: u64,
    pub addr: u64,
    pub memsz: u64,
}

impl Segment {
    pub fn span(&self) -> Range<u64> {
        self.addr..self.addr.saturating_add(self.memsz)
    }
}

/// The guest-physical bytes an image occupies: from its lowest loaded byte to the end of
/// its highest (bss included). Empty until a segment is placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
}

impl Extent {
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    fn add(&mut self, r: Range<u64>) {
        if r.is_empty() {
            return;
        }
        if self.is_empty() {
            (self.start, self.end) = (r.start, r.end);
        } else {
            self.start = self.start.min(r.start);
            self.end = self.end.max(r.end);
        }
    }

    pub fn contains(&self, a: u64) -> bool {
        (self.start..self.end).contains(&a)
    }
}

/// Copies segment `s` of `image` into `mem` and zeroes its bss; adds it to `extent`.
pub fn place(
    image: &[u8],
    mem: &mut GuestMemory,
    s: Segment,
    extent: &mut Extent,
) -> Result<(), ImageError> {
    if s.filesz > s.memsz {
        return Err(ImageError::BadElf(
            "segment's file size exceeds its memory size",
        ));
    }
    let file_end = s
        .offset
        .checked_add(s.filesz)
        .ok_or(ImageError::Truncated)?;
    if file_end > image.len() as u64 {
        return Err(ImageError::Truncated);
    }
    if s.memsz == 0 {
        return Ok(());
    }
    let outside = ImageError::OutsideRam {
        addr: s.addr,
        len: s.memsz,
        ram: mem.size(),
    };
    let end = s.addr.checked_add(s.memsz).ok_or(outside)?;
    if !mem.contains(GuestPhys(s.addr), s.memsz) {
        return Err(outside);
    }
    if s.addr < FIRMWARE_AREA.end && end > FIRMWARE_AREA.start {
        return Err(ImageError::OverlapsFirmware {
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
    extent.add(s.addr..end);
    Ok(())
}

/// The address fields of a multiboot1 header (flag 16) or a multiboot2 address tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressFields {
    pub header_addr: u32,
    /// Multiboot2 only: `u32::MAX` loads the file from its start.
    pub load_addr: u32,
    /// 0: to the end of the file.
    pub load_end_addr: u32,
    /// 0: no bss.
    pub bss_end_addr: u32,
}

/// Multiboot2's `load_addr` that means "from the start of the file" (spec 2.0 3.1.5).
pub const LOAD_FROM_START: u32 = u32::MAX;

impl AddressFields {
    /// The segment these fields describe, for a header found at offset `hdr` of a file
    /// of `len` bytes.
    pub fn segment(&self, hdr: usize, len: usize) -> Result<Segment, ImageError> {
        let bad = ImageError::BadElf("multiboot address fields are inconsistent");
        let header_addr = u64::from(self.header_addr);
        let (offset, load_addr) = if self.load_addr == LOAD_FROM_START {
            (0, header_addr.checked_sub(hdr as u64).ok_or(bad)?)
        } else {
            let load_addr = u64::from(self.load_addr);
            let before = header_addr.checked_sub(load_addr).ok_or(bad)?;
            ((hdr as u64).checked_sub(before).ok_or(bad)?, load_addr)
        };
        let filesz = if self.load_end_addr == 0 {
            (len as u64)
                .checked_sub(offset)
                .ok_or(ImageError::Truncated)?
        } else {
            u64::from(self.load_end_addr)
                .checked_sub(load_addr)
                .ok_or(bad)?
        };
        let memsz = if self.bss_end_addr == 0 {
            filesz
        } else {
            u64::from(self.bss_end_addr)
                .checked_sub(load_addr)
                .ok_or(bad)?
                .max(filesz)
        };
        Ok(Segment {
            offset,
            filesz,
            addr: load_addr,
            memsz,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::testing::ram;

    fn fields(header: u32, load: u32, end: u32, bss: u32) -> AddressFields {
        AddressFields {
            header_addr: header,
            load_addr: load,
            load_end_addr: end,
            bss_end_addr: bss,
        }
    }

    #[test]
    fn address_fields_to_a_segment() {
        // Header at file offset 0x40, linked at 0x10_0040: the file loads from 0.
        let s = fields(0x10_0040, 0x10_0000, 0x10_0200, 0x10_1000)
            .segment(0x40, 0x1000)
            .unwrap();
        assert_eq!(
            s,
            Segment {
                offset: 0,
                filesz: 0x200,
                addr: 0x10_0000,
                memsz: 0x1000
            }
        );
        // load_end 0: the rest of the file; bss_end 0: no bss.
        let s = fields(0x8040, 0x8000, 0, 0).segment(0x40, 0x300).unwrap();
        assert_eq!((s.offset, s.filesz, s.memsz), (0, 0x300, 0x300));
        // Multiboot2's load_addr -1: from the file's start, so the header lands at
        // header_addr.
        let s = fields(0x20_0100, LOAD_FROM_START, 0, 0)
            .segment(0x100, 0x400)
            .unwrap();
        assert_eq!((s.offset, s.addr, s.filesz), (0, 0x20_0000, 0x400));
        for bad in [
            fields(0x1000, 0x2000, 0, 0),      // load after header
            fields(0x10_0000, 0x8000, 0, 0),   // header too far into the file
            fields(0x8040, 0x8000, 0x7000, 0), // load end before load
            fields(0x8040, 0x8000, 0, 0x10),   // bss end before load
            fields(0x10, LOAD_FROM_START, 0, 0),
        ] {
            assert!(
                matches!(bad.segment(0x40, 0x300), Err(ImageError::BadElf(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn place_copies_zeroes_and_records_the_extent() {
        let mut mem = ram(2 << 20);
        mem.fill(GuestPhys(0x8000), 0x3000, 0xcc).unwrap();
        let img = [0xf4u8; 0x20];
        let mut ext = Extent::default();
        let s = |addr, memsz| Segment {
            offset: 0x10,
            filesz: 0x10,
            addr,
            memsz,
        };
        place(&img, &mut mem, s(0x9000, 0x100), &mut ext).unwrap();
        place(&img, &mut mem, s(0x8000, 0x20), &mut ext).unwrap();
        assert_eq!(
            ext,
            Extent {
                start: 0x8000,
                end: 0x9100
            }
        );
        assert_eq!(mem.read_u8(GuestPhys(0x900f)).unwrap(), 0xf4);
        assert_eq!(mem.read_u8(GuestPhys(0x9010)).unwrap(), 0, "bss zeroed");
        assert_eq!(mem.read_u8(GuestPhys(0x9100)).unwrap(), 0xcc, "past bss");
        // An empty segment changes nothing.
        let empty = Segment {
            filesz: 0,
            memsz: 0,
            ..s(0x10_0000, 0)
        };
        place(&img, &mut mem, empty, &mut ext).unwrap();
        assert_eq!(
            place(&img, &mut mem, s(0x9_F000, 0x1000), &mut ext),
            Err(ImageError::OverlapsFirmware {
                addr: 0x9_F000,
                len: 0x1000
            })
        );
        assert!(matches!(
            place(&img, &mut mem, s(0x1F_F000, 0x2000), &mut ext),
            Err(ImageError::OutsideRam { .. })
        ));
        assert!(matches!(
            place(&img, &mut mem, s(u64::MAX - 4, 0x10), &mut ext),
            Err(ImageError::OutsideRam { .. })
        ));
        let long = Segment {
            offset: 0x18,
            ..s(0x1000, 0x10)
        };
        assert_eq!(
            place(&img, &mut mem, long, &mut ext),
            Err(ImageError::Truncated)
        );
        assert_eq!(
            ext,
            Extent {
                start: 0x8000,
                end: 0x9100
            },
            "failures add nothing"
        );
    }
}
