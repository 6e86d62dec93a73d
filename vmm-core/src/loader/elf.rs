//! Loading an ELF32 or ELF64 kernel's PT_LOAD segments at their physical addresses
//! (`p_paddr`), as QEMU's `-kernel` and GRUB's multiboot loaders do for a kernel without
//! address fields.
//!
//! Spec: System V gABI, "ELF Header" (e_ident class and data, e_machine, e_entry,
//! e_phoff, e_phentsize, e_phnum) and "Program Header" (p_type PT_LOAD = 1, p_offset,
//! p_vaddr, p_paddr, p_filesz, p_memsz); EM_386 = 3, EM_X86_64 = 62.

use crate::loader::image::{place, Extent, ImageError, Segment};
use crate::loader::le::{u16_at, u32_at, u64_at};
use crate::memory::GuestMemory;

const PT_LOAD: u32 = 1;

/// What loading the segments gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub extent: Extent,
    /// `e_entry` as the file gives it.
    pub e_entry: u64,
    /// `e_entry` moved to the physical address of the segment whose virtual range holds
    /// it (as QEMU does), if one does.
    pub entry: Option<u64>,
}

struct Header {
    class64: bool,
    entry: u64,
    phoff: u64,
    phentsize: u16,
    phnum: u16,
}

fn header(image: &[u8]) -> Result<Header, ImageError> {
    if image.get(..4) != Some(b"\x7fELF") {
        return Err(ImageError::NotElf);
    }
    let class64 = match image.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(ImageError::BadElf("unknown ELF class")),
    };
    if image.get(5) != Some(&1) {
        return Err(ImageError::BadElf("not little-endian"));
    }
    let t = ImageError::Truncated;
    if !matches!(u16_at(image, 18).ok_or(t)?, 3 | 62) {
        return Err(ImageError::BadElf("not an x86 image"));
    }
    let h = if class64 {
        Header {
            class64,
            entry: u64_at(image, 24).ok_or(t)?,
            phoff: u64_at(image, 32).ok_or(t)?,
            phentsize: u16_at(image, 54).ok_or(t)?,
            phnum: u16_at(image, 56).ok_or(t)?,
        }
    } else {
        Header {
            class64,
            entry: u32_at(image, 24).ok_or(t)?.into(),
            phoff: u32_at(image, 28).ok_or(t)?.into(),
            phentsize: u16_at(image, 42).ok_or(t)?,
            phnum: u16_at(image, 44).ok_or(t)?,
        }
    };
    if h.phnum == 0 {
        return Err(ImageError::BadElf("no program headers"));
    }
    if (h.phentsize as usize) < if class64 { 56 } else { 32 } {
        return Err(ImageError::BadElf("program header entries too small"));
    }
    Ok(h)
}

/// Program header `ph` (its offset in the file): `None` when not PT_LOAD, else its
/// segment and virtual address.
fn program_header(
    image: &[u8],
    class64: bool,
    ph: usize,
) -> Result<Option<(Segment, u64)>, ImageError> {
    let t = ImageError::Truncated;
    if u32_at(image, ph).ok_or(t)? != PT_LOAD {
        return Ok(None);
    }
    let (offset, vaddr, paddr, filesz, memsz) = if class64 {
        let g = |o: usize| u64_at(image, ph + o).ok_or(t);
        (g(8)?, g(16)?, g(24)?, g(32)?, g(40)?)
    } else {
        let g = |o: usize| u32_at(image, ph + o).map(u64::from).ok_or(t);
        (g(4)?, g(8)?, g(12)?, g(16)?, g(20)?)
    };
    let seg = Segment {
        offset,
        filesz,
        addr: paddr,
        memsz,
    };
    Ok(Some((seg, vaddr)))
}

/// Loads the PT_LOAD segments of an ELF32 or ELF64 image into `mem`.
pub fn load(image: &[u8], mem: &mut GuestMemory) -> Result<Loaded, ImageError> {
    let h = header(image)?;
    let mut out = Loaded {
        extent: Extent::default(),
        e_entry: h.entry,
        entry: None,
    };
    for i in 0..u64::from(h.phnum) {
        let ph = h
            .phoff
            .checked_add(i * u64::from(h.phentsize))
            .and_then(|p| usize::try_from(p).ok())
            .ok_or(ImageError::Truncated)?;
        let Some((seg, vaddr)) = program_header(image, h.class64, ph)? else {
            continue;
        };
        place(image, mem, seg, &mut out.extent)?;
        if h.entry >= vaddr && h.entry < vaddr.saturating_add(seg.memsz) {
            out.entry = Some(h.entry - vaddr + seg.addr);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::GuestPhys;
    use crate::loader::samples::elf32;
    use crate::memory::testing::ram;

    #[test]
    fn segments_at_their_physical_address() {
        let mut mem = ram(4 << 20);
        let img = elf32(0x10_0000, 0xc010_0000, 0xc010_0001, &[0x90, 0xf4], 0x1000);
        let l = load(&img, &mut mem).unwrap();
        assert_eq!(l.entry, Some(0x10_0001));
        assert_eq!(l.e_entry, 0xc010_0001);
        assert_eq!(
            l.extent,
            Extent {
                start: 0x10_0000,
                end: 0x10_1000
            }
        );
        assert_eq!(mem.read_u16(GuestPhys(0x10_0000)).unwrap(), 0xf490);
        let far = elf32(0x10_0000, 0x10_0000, 0x50_0000, &[0xf4], 0x10);
        assert_eq!(load(&far, &mut mem).unwrap().entry, None);
    }

    #[test]
    fn bad_headers() {
        let mut mem = ram(4 << 20);
        let good = elf32(0x10_0000, 0x10_0000, 0x10_0000, &[0xf4], 0x10);
        assert_eq!(load(b"MZ", &mut mem), Err(ImageError::NotElf));
        let with = |off: usize, v: &[u8]| {
            let mut b = good.clone();
            b[off..off + v.len()].copy_from_slice(v);
            b
        };
        assert_eq!(
            load(&with(4, &[3]), &mut mem),
            Err(ImageError::BadElf("unknown ELF class"))
        );
        assert_eq!(
            load(&with(5, &[2]), &mut mem),
            Err(ImageError::BadElf("not little-endian"))
        );
        assert_eq!(
            load(&with(18, &[40, 0]), &mut mem),
            Err(ImageError::BadElf("not an x86 image"))
        );
        assert_eq!(
            load(&with(44, &[0, 0]), &mut mem),
            Err(ImageError::BadElf("no program headers"))
        );
        assert_eq!(
            load(&with(42, &[8, 0]), &mut mem),
            Err(ImageError::BadElf("program header entries too small"))
        );
        assert_eq!(
            load(&with(28, &[0xf0, 0xff, 0, 0]), &mut mem),
            Err(ImageError::Truncated)
        );
    }
}
