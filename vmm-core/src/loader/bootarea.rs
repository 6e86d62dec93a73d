//! Where a multiboot guest's boot information and modules go, and the writer both
//! multiboot loaders fill it with.
//!
//! The rule is QEMU's (hw/i386/multiboot.c puts the module list, the strings and the
//! modules right after the kernel image): the boot information (info structure or tags,
//! memory map, loader name, command line, module list and module strings) starts at the
//! first page boundary after the image's highest loaded byte (bss included), and the
//! modules follow it, each on its own page boundary (Multiboot 0.6.96 3.1.2 flag 0 and
//! Multiboot2 spec 2.0 3.1.11 ask for page-aligned modules; Janus always aligns them).
//! All of it must lie in RAM the memory map reports as available: below the firmware
//! area ([`crate::loader::image::FIRMWARE_AREA`], 0x9FC00-0x100000, where the MP and
//! ACPI tables go) when the image ends below it, else below the end of RAM (at most the
//! IOAPIC page, so below 4 GiB). An image below 1 MiB with no room after it below
//! 0x9FC00 gets its boot information and modules from 1 MiB up instead.
//!
//! The memory map reports all RAM as available, the image and the boot information
//! included (as GRUB and QEMU do): a kernel keeps off its own image, the boot
//! information and the modules, which it finds from EBX.

use crate::addr::GuestPhys;
use crate::loader::cmdline::ModuleString;
use crate::loader::e820::{self, E820Entry, EBDA_START, HIGH_MEMORY, IOAPIC_BASE};
use crate::loader::image::{Extent, ImageError};
use crate::memory::{GuestMemory, MemError};
use crate::vcpu::StartMode;
use arrayvec::ArrayVec;
use core::ops::Range;

pub const PAGE: u64 = 0x1000;
/// What the loaders call themselves (`boot_loader_name`, Multiboot2 tag 2).
pub const LOADER_NAME: &str = "Janus";

/// A module handed to a multiboot guest (`module2 FILE module-of=NAME ARGS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootModule<'a> {
    pub image: &'a [u8],
    pub string: ModuleString<'a>,
}

/// Where the boot information and the modules went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootArea {
    /// The boot information's address (EBX), page-aligned.
    pub info: u64,
    /// The end of the boot information.
    pub info_end: u64,
    /// The end of the last module (`info_end` without modules).
    pub end: u64,
}

/// Where a multiboot kernel starts and what it finds: 32-bit protected mode with paging
/// off (Multiboot 0.6.96 3.2; Multiboot2 spec 2.0 3.3, the same state), EAX the boot
/// magic, EBX the boot information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootState {
    pub entry: u32,
    pub eax: u32,
    pub ebx: u32,
    /// Where the image went.
    pub image: Extent,
    /// Where the boot information and the modules went.
    pub area: BootArea,
}

impl BootState {
    /// Writes the boot information (by `info`, see [`write`]) and the modules after the
    /// loaded `image`, and says how the kernel starts: at `entry`, EAX = `magic`, EBX =
    /// the information. The last step of both multiboot loaders.
    pub fn after_image<F>(
        mem: &mut GuestMemory,
        image: Extent,
        entry: u64,
        magic: u32,
        modules: &[BootModule<'_>],
        info: F,
    ) -> Result<BootState, ImageError>
    where
        F: FnMut(&mut InfoWriter<'_>, u64) -> Result<(), MemError>,
    {
        let entry = u32::try_from(entry).map_err(|_| ImageError::EntryNotLoaded(entry))?;
        let area = write(mem, image, modules, info)?;
        Ok(BootState {
            entry,
            eax: magic,
            ebx: area.info as u32,
            image,
            area,
        })
    }

    pub fn start_mode(&self) -> StartMode {
        StartMode::Protected32 {
            entry: self.entry,
            eax: self.eax,
            ebx: self.ebx,
        }
    }
}

fn page_up(a: u64) -> Option<u64> {
    a.checked_next_multiple_of(PAGE)
}

/// The guest-physical range of each module when the first may start at `from`.
pub fn module_ranges<'a>(
    from: u64,
    modules: &'a [BootModule<'a>],
) -> impl Iterator<Item = Range<u64>> + 'a {
    modules.iter().scan(from, |at, m| {
        let start = page_up(*at)?;
        let end = start.checked_add(m.image.len() as u64)?;
        *at = end;
        Some(start..end)
    })
}

/// How many bytes the boot information (`info_len` bytes) and the modules take from a
/// page-aligned start; `None` on overflow.
fn span(info_len: u64, modules: &[BootModule<'_>]) -> Option<u64> {
    let mut end = info_len;
    for m in modules {
        end = page_up(end)?.checked_add(m.image.len() as u64)?;
    }
    Some(end)
}

/// Where `span` bytes of boot information and modules start, for an image occupying
/// `image` in `ram` bytes of RAM (the rule of the module documentation).
pub fn choose(image: Extent, ram: u64, span: u64) -> Result<u64, ImageError> {
    let top = ram.min(IOAPIC_BASE);
    let fits = |start: u64, limit: u64| start.checked_add(span).is_some_and(|e| e <= limit);
    let low_image = image.is_empty() || image.end <= EBDA_START;
    if let Some(after) = page_up(image.end).filter(|_| !image.is_empty()) {
        if after < EBDA_START && fits(after, top.min(EBDA_START)) {
            return Ok(after);
        }
        if after >= HIGH_MEMORY && fits(after, top) {
            return Ok(after);
        }
    }
    if low_image && fits(HIGH_MEMORY, top) {
        return Ok(HIGH_MEMORY);
    }
    Err(ImageError::NoRoom { need: span, ram })
}

/// Writes the boot information at `base`, or only measures it (no memory).
pub struct InfoWriter<'m> {
    mem: Option<&'m mut GuestMemory>,
    pub at: u64,
}

impl<'m> InfoWriter<'m> {
    fn measure() -> Self {
        InfoWriter { mem: None, at: 0 }
    }

    /// Writes `bytes` at `addr` (when writing); the cursor does not move.
    pub fn write_at(&mut self, addr: u64, bytes: &[u8]) -> Result<(), MemError> {
        match self.mem.as_deref_mut() {
            Some(mem) => mem.write(GuestPhys(addr), bytes),
            None => Ok(()),
        }
    }

    /// Appends `bytes`; returns where they went.
    pub fn put(&mut self, bytes: &[u8]) -> Result<u64, MemError> {
        let at = self.at;
        self.write_at(at, bytes)?;
        self.at += bytes.len() as u64;
        Ok(at)
    }

    pub fn put_u32s(&mut self, words: &[u32]) -> Result<u64, MemError> {
        let at = self.at;
        for w in words {
            self.put(&w.to_le_bytes())?;
        }
        Ok(at)
    }

    /// Appends zeros up to a multiple of `align`.
    pub fn align(&mut self, align: u64) -> Result<(), MemError> {
        const ZEROS: [u8; 8] = [0; 8];
        let pad = self.at.next_multiple_of(align) - self.at;
        self.put(&ZEROS[..pad as usize])?;
        Ok(())
    }

    /// Appends `s` and a NUL; returns its address.
    pub fn put_str(&mut self, s: &str) -> Result<u64, MemError> {
        let at = self.put(s.as_bytes())?;
        self.put(&[0])?;
        Ok(at)
    }

    /// Appends a module's string and a NUL; returns its address.
    pub fn put_module_string(&mut self, s: &ModuleString<'_>) -> Result<u64, MemError> {
        let at = self.at;
        for part in s.parts() {
            self.put(part.as_bytes())?;
        }
        self.put(&[0])?;
        Ok(at)
    }
}

/// Lays out and writes the boot information and the modules after `image`.
/// `info(writer, first_module)` writes the boot information (the same bytes each time it
/// is called: once to measure it, once to write it); the modules start at
/// `first_module` ([`module_ranges`]).
pub fn write<F>(
    mem: &mut GuestMemory,
    image: Extent,
    modules: &[BootModule<'_>],
    mut info: F,
) -> Result<BootArea, ImageError>
where
    F: FnMut(&mut InfoWriter<'_>, u64) -> Result<(), MemError>,
{
    let mut m = InfoWriter::measure();
    info(&mut m, 0)?;
    let ram = mem.size();
    let need = span(m.at, modules).ok_or(ImageError::NoRoom {
        need: u64::MAX,
        ram,
    })?;
    let base = choose(image, ram, need)?;
    let info_end = base + m.at;
    let mut w = InfoWriter {
        mem: Some(&mut *mem),
        at: base,
    };
    info(&mut w, info_end)?;
    let mut end = info_end;
    for (m, r) in modules.iter().zip(module_ranges(info_end, modules)) {
        mem.write(GuestPhys(r.start), m.image)?;
        end = r.end;
    }
    Ok(BootArea {
        info: base,
        info_end,
        end,
    })
}

/// The memory map both multiboot loaders give: the PC map of [`e820::pc_map`].
pub fn memory_map(ram: u64) -> ArrayVec<E820Entry, 8> {
    e820::pc_map(ram)
}

/// `mem_lower` and `mem_upper` in KiB (Multiboot 0.6.96 3.3, Multiboot2 3.6.3): the
/// conventional memory below the EBDA, and the RAM from 1 MiB to the first hole.
pub fn mem_bounds(ram: u64) -> (u32, u32) {
    let lower = ram.min(EBDA_START) / 1024;
    let upper = ram.min(IOAPIC_BASE).saturating_sub(HIGH_MEMORY) / 1024;
    (lower as u32, upper as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::testing::ram;

    fn ext(start: u64, end: u64) -> Extent {
        Extent { start, end }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn right_after_the_image_page_aligned() {
        // A kernel at 1 MiB: its information on the next page after its bss.
        assert_eq!(
            choose(ext(MIB, MIB + 0x2345), 16 * MIB, 0x800),
            Ok(MIB + 0x3000)
        );
        // A kernel linked at 0x8000: after it, below the EBDA.
        assert_eq!(choose(ext(0x8000, 0x9001), 16 * MIB, 0x800), Ok(0xa000));
        // Exactly up to the EBDA still fits.
        assert_eq!(
            choose(ext(0x8000, 0x9_E000), 16 * MIB, 0x1c00),
            Ok(0x9_E000)
        );
    }

    #[test]
    fn a_low_image_without_room_goes_to_1_mib() {
        assert_eq!(choose(ext(0x8000, 0x9_E000), 16 * MIB, 0x1c01), Ok(MIB));
        assert_eq!(choose(ext(0x1000, 0x9_FC00), 16 * MIB, 0x10), Ok(MIB));
        // ... but not past the end of RAM.
        assert_eq!(
            choose(ext(0x8000, 0x9_E000), 2 * MIB, MIB + 1),
            Err(ImageError::NoRoom {
                need: MIB + 1,
                ram: 2 * MIB
            })
        );
    }

    #[test]
    fn a_high_image_never_falls_back_below_it() {
        assert_eq!(
            choose(ext(MIB, 2 * MIB - 0x10), 2 * MIB, 0x100),
            Err(ImageError::NoRoom {
                need: 0x100,
                ram: 2 * MIB
            })
        );
        assert_eq!(
            choose(ext(MIB, 2 * MIB - 0x1000), 2 * MIB, 0x1000),
            Ok(2 * MIB - 0x1000)
        );
        // Nothing goes at or past the IOAPIC page, even in more RAM.
        assert!(choose(ext(IOAPIC_BASE - PAGE, IOAPIC_BASE - 1), 8 << 30, 1).is_err());
    }

    #[test]
    fn modules_follow_the_information_on_pages() {
        let (a, b, c) = ([1u8; 3], [2u8; 0x1001], [3u8; 1]);
        let mods = [
            BootModule {
                image: &a,
                ..Default::default()
            },
            BootModule {
                image: &b,
                ..Default::default()
            },
            BootModule {
                image: &c,
                ..Default::default()
            },
        ];
        let r: std::vec::Vec<_> = module_ranges(0x20_0010, &mods).collect();
        assert_eq!(
            r,
            [
                0x20_1000..0x20_1003,
                0x20_2000..0x20_3001,
                0x20_4000..0x20_4001
            ]
        );
        assert_eq!(span(0x10, &mods), Some(0x4001));
        assert_eq!(span(0x10, &[]), Some(0x10));
    }

    extern crate std;

    #[test]
    fn write_measures_then_writes_after_the_image() {
        let mut mem = ram(4 << 20);
        let data = [0xabu8; 5];
        let string = ModuleString {
            head: "/m",
            tail: "x=1",
        };
        let mods = [BootModule {
            image: &data,
            string,
        }];
        let mut calls = std::vec::Vec::new();
        let area = write(&mut mem, ext(MIB, MIB + 0x10), &mods, |w, first| {
            calls.push(first);
            w.put_u32s(&[7, 8])?;
            w.put_module_string(&string)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            area,
            BootArea {
                info: MIB + 0x1000,
                info_end: MIB + 0x1000 + 8 + 7,
                end: MIB + 0x2005
            }
        );
        assert_eq!(calls, [0, MIB + 0x100f], "measured, then written");
        assert_eq!(mem.read_u32(GuestPhys(MIB + 0x1004)).unwrap(), 8);
        let mut s = [0u8; 7];
        mem.read(GuestPhys(MIB + 0x1008), &mut s).unwrap();
        assert_eq!(&s, b"/m x=1\0");
        assert_eq!(mem.read_u8(GuestPhys(MIB + 0x2004)).unwrap(), 0xab);
    }

    #[test]
    fn bounds_in_kib() {
        assert_eq!(mem_bounds(16 * MIB), (639, 15 * 1024));
        assert_eq!(mem_bounds(512 << 10), (512, 0));
        assert_eq!(mem_bounds(8 << 30).1 as u64, (IOAPIC_BASE - MIB) / 1024);
    }
}
