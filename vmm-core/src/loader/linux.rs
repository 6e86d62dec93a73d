//! Loading a Linux bzImage through the x86 boot protocol's 64-bit entry point.
//!
//! Spec: Linux Documentation/arch/x86/boot.rst (v6.1; boot protocol 2.12 and later: the
//! real-mode kernel header at file offset 0x1f1, `xloadflags` and the 64-bit entry at
//! load address + 0x200) and Documentation/arch/x86/zero-page.rst (v6.1: the
//! `boot_params` layout: `ext_ramdisk_image` 0x0c0, `ext_ramdisk_size` 0x0c4,
//! `ext_cmd_line_ptr` 0x0c8, `e820_entries` 0x1e8, `hdr` 0x1f1, `e820_table` 0x2d0).
//!
//! The 64-bit entry needs no real-mode code and no BIOS: the loader zeroes a
//! `boot_params` page, copies the setup header into it, fills in the loader's fields, the
//! command line, the initrd and the e820 map, copies the protected-mode payload to an
//! aligned address and enters it in 64-bit mode with the first 4 GiB identity-mapped,
//! a GDT with flat code at 0x10 and data at 0x18, and RSI = `boot_params`.
//!
//! Guest-physical layout (all below the EBDA at 0x9FC00, where the MP table goes):
//!
//! | range | what |
//! |---|---|
//! | 0x01000 - 0x0101F | GDT: null, null, 0x10 64-bit code, 0x18 data |
//! | 0x07000 - 0x07FFF | `boot_params` (the zero page); RSI at entry |
//! | 0x10000 - 0x10FFF | PML4 (CR3) |
//! | 0x11000 - 0x11FFF | PDPT (4 entries) |
//! | 0x12000 - 0x15FFF | 4 page directories: 0..4 GiB identity, 2 MiB pages |
//! | 0x20000 - 0x2FFFF | command line, NUL-terminated (at most `cmdline_size` bytes) |
//! | 0x9FC00 - 0x9FFFF | EBDA: left to [`crate::firmware::mptable`] |
//! | `kernel_addr` .. + max(init_size, payload) | the kernel: `pref_address` (16 MiB on distribution kernels) |
//! | highest fitting pages below min(RAM, initrd_addr_max + 1, 4 GiB) | the initrd |
//!
//! The kernel reserves the first MiB itself and copies `boot_params` and the command line
//! early, so everything below 1 MiB stays usable RAM in the e820 map.

use crate::addr::GuestPhys;
use crate::loader::e820;
use crate::memory::{GuestMemory, MemError};
use crate::vcpu::StartMode;
use core::fmt;

/// Guest-physical addresses of what the loader writes (see the module's table).
pub mod layout {
    pub const GDT: u64 = 0x1000;
    /// Four 8-byte descriptors.
    pub const GDT_LIMIT: u16 = 4 * 8 - 1;
    pub const BOOT_PARAMS: u64 = 0x7000;
    pub const PML4: u64 = 0x1_0000;
    pub const PDPT: u64 = 0x1_1000;
    /// First of four page directories.
    pub const PD: u64 = 0x1_2000;
    pub const CMDLINE: u64 = 0x2_0000;
    pub const CMDLINE_END: u64 = 0x3_0000;
    /// 64-bit code selector and the data selector Linux expects.
    pub const CODE_SELECTOR: u16 = 0x10;
    pub const DATA_SELECTOR: u16 = 0x18;
    /// The lowest address the kernel or the initrd may use.
    pub const HIGH_MEMORY: u64 = 0x10_0000;
    /// Default load address for a relocatable kernel whose `pref_address` is unusable.
    pub const DEFAULT_KERNEL: u64 = 0x100_0000;
}

/// GDT descriptors: flat 64-bit code (L=1, P, DPL 0, execute/read) and flat data.
pub const GDT_CODE64: u64 = 0x00AF_9A00_0000_FFFF;
pub const GDT_DATA: u64 = 0x00CF_9200_0000_FFFF;

/// Setup-header field offsets, identical in the file and in `boot_params` (boot.rst,
/// "The real-mode kernel header").
pub mod hdr {
    pub const SETUP_SECTS: usize = 0x1F1;
    pub const VID_MODE: usize = 0x1FA;
    pub const BOOT_FLAG: usize = 0x1FE;
    pub const JUMP: usize = 0x200;
    pub const HEADER: usize = 0x202;
    pub const VERSION: usize = 0x206;
    pub const TYPE_OF_LOADER: usize = 0x210;
    pub const LOADFLAGS: usize = 0x211;
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21C;
    pub const HEAP_END_PTR: usize = 0x224;
    pub const CMD_LINE_PTR: usize = 0x228;
    pub const INITRD_ADDR_MAX: usize = 0x22C;
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    pub const RELOCATABLE_KERNEL: usize = 0x234;
    pub const XLOADFLAGS: usize = 0x236;
    pub const CMDLINE_SIZE: usize = 0x238;
    pub const SETUP_DATA: usize = 0x250;
    pub const PREF_ADDRESS: usize = 0x258;
    pub const INIT_SIZE: usize = 0x260;
    /// End of the fields this loader reads (`init_size` included).
    pub const END_READ: usize = 0x264;
}

/// `boot_params` offsets outside the setup header (zero-page.rst).
pub mod zero_page {
    pub const EXT_RAMDISK_IMAGE: usize = 0x0C0;
    pub const EXT_RAMDISK_SIZE: usize = 0x0C4;
    pub const EXT_CMD_LINE_PTR: usize = 0x0C8;
    pub const E820_ENTRIES: usize = 0x1E8;
    pub const HDR: usize = 0x1F1;
    /// Where the setup header must end (`edd_mbr_sig_buffer` follows).
    pub const HDR_MAX_END: usize = 0x290;
    pub const E820_TABLE: usize = 0x2D0;
    pub const SIZE: usize = 0x1000;
}

pub const BOOT_FLAG: u16 = 0xAA55;
pub const HDRS: &[u8; 4] = b"HdrS";
/// Protocol 2.12: the first with `xloadflags`, hence with a declared 64-bit entry.
pub const MIN_VERSION: u16 = 0x020C;
/// `loadflags` bits.
pub const LOADED_HIGH: u8 = 1 << 0;
pub const QUIET_FLAG: u8 = 1 << 5;
pub const CAN_USE_HEAP: u8 = 1 << 7;
/// `xloadflags` bit 0: the kernel has the 64-bit entry at +0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `type_of_loader` for a loader without an assigned id.
pub const LOADER_UNDEFINED: u8 = 0xFF;
/// `heap_end_ptr` (only the real-mode setup code uses it): the end of a 64 KiB setup
/// segment minus 0x200, as boot.rst suggests.
pub const HEAP_END: u16 = 0xFE00;
/// The offset of the 64-bit entry from the load address.
pub const ENTRY64_OFFSET: u64 = 0x200;

const PAGE: u64 = 0x1000;
const FOUR_GIB: u64 = 1 << 32;
/// Page-table entry bits: present, writable, and (in a PD) a 2 MiB page.
const PTE_P_RW: u64 = 0x3;
const PDE_2M: u64 = 0x83;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinuxError {
    /// No 0xAA55 boot flag at 0x1FE or no "HdrS" at 0x202.
    NotLinux,
    /// Boot protocol older than 2.12.
    TooOld(u16),
    /// `xloadflags` lacks XLF_KERNEL_64.
    Not64Bit,
    /// The header or the payload lies past the end of the file.
    Truncated,
    /// A header field this loader cannot work with.
    BadHeader(&'static str),
    /// The kernel's `[load, load + init_size)` window and the initrd do not fit the RAM.
    TooLittleMemory {
        need: u64,
        have: u64,
    },
    CmdlineTooLong {
        len: usize,
        max: usize,
    },
    /// The initrd does not fit below the kernel's `initrd_addr_max`.
    InitrdTooLarge {
        size: u64,
        max: u64,
    },
    Memory(MemError),
}

impl From<MemError> for LinuxError {
    fn from(e: MemError) -> Self {
        LinuxError::Memory(e)
    }
}

impl fmt::Display for LinuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinuxError::NotLinux => write!(
                f,
                "not a Linux bzImage: no 0xAA55 boot flag or \"HdrS\" header"
            ),
            LinuxError::TooOld(v) => write!(
                f,
                "Linux boot protocol {}.{:02} is too old: the 64-bit entry needs 2.12 or later",
                v >> 8,
                v & 0xff
            ),
            LinuxError::Not64Bit => write!(
                f,
                "the kernel has no 64-bit entry point (xloadflags bit 0 clear)"
            ),
            LinuxError::Truncated => write!(
                f,
                "the bzImage is truncated: its header or payload runs past its end"
            ),
            LinuxError::BadHeader(why) => write!(f, "unusable Linux setup header: {why}"),
            LinuxError::TooLittleMemory { need, have } => write!(
                f,
                "the kernel (and initrd) need {} MiB of guest RAM, the guest has {} MiB",
                need.div_ceil(1 << 20),
                have >> 20
            ),
            LinuxError::CmdlineTooLong { len, max } => {
                write!(f, "kernel command line of {len} bytes is too long (the kernel takes at most {max})")
            }
            LinuxError::InitrdTooLarge { size, max } => write!(
                f,
                "initrd of {size} bytes does not fit below the kernel's initrd limit {max:#x}"
            ),
            LinuxError::Memory(e) => write!(f, "{e}"),
        }
    }
}

fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}
fn u16_at(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

/// A parsed bzImage: the header fields the loader uses, and the file itself.
#[derive(Clone, Copy, Debug)]
pub struct LinuxImage<'a> {
    image: &'a [u8],
    /// Setup sectors (0 in the file means 4).
    pub setup_sects: u8,
    pub version: u16,
    pub loadflags: u8,
    pub xloadflags: u16,
    pub relocatable: bool,
    pub kernel_alignment: u32,
    pub pref_address: u64,
    /// Bytes the kernel needs from its load address to decompress and start.
    pub init_size: u32,
    pub initrd_addr_max: u32,
    /// Longest command line without its NUL.
    pub cmdline_size: u32,
    /// File offset of the protected-mode payload: (setup_sects + 1) * 512.
    pub payload_offset: usize,
    /// End of the setup header in the file: 0x202 + the byte at 0x201.
    pub hdr_end: usize,
}

impl<'a> LinuxImage<'a> {
    /// The protected-mode kernel (what goes to the load address).
    pub fn payload(&self) -> &'a [u8] {
        &self.image[self.payload_offset..]
    }

    /// The setup header as the file holds it, from 0x1F1 to its end.
    pub fn setup_header(&self) -> &'a [u8] {
        &self.image[hdr::SETUP_SECTS..self.hdr_end]
    }

    /// Bytes the kernel occupies from its load address: init_size, or the payload if larger.
    pub fn window(&self) -> u64 {
        (self.init_size as u64).max(self.payload().len() as u64)
    }

    /// Where the kernel goes: `pref_address` when usable (required for a
    /// non-relocatable kernel), else 16 MiB rounded up to `kernel_alignment`. Loading a
    /// relocatable kernel lower than `pref_address` gains nothing: its decompressor moves
    /// up to its built-in address (LOAD_PHYSICAL_ADDR, which `pref_address` reports).
    pub fn load_address(&self) -> Result<u64, LinuxError> {
        let pref = self.pref_address;
        let align = self.kernel_alignment as u64;
        if self.relocatable {
            if (layout::HIGH_MEMORY..FOUR_GIB).contains(&pref) && pref.is_multiple_of(align) {
                Ok(pref)
            } else {
                Ok(layout::DEFAULT_KERNEL.next_multiple_of(align))
            }
        } else if (layout::HIGH_MEMORY..FOUR_GIB).contains(&pref) {
            Ok(pref)
        } else {
            Err(LinuxError::BadHeader(
                "non-relocatable kernel with pref_address below 1 MiB or above 4 GiB",
            ))
        }
    }
}

/// Checks a bzImage's header and returns what the loader needs from it.
pub fn parse(image: &[u8]) -> Result<LinuxImage<'_>, LinuxError> {
    if image.len() < hdr::VERSION + 2
        || u16_at(image, hdr::BOOT_FLAG) != BOOT_FLAG
        || &image[hdr::HEADER..hdr::HEADER + 4] != HDRS
    {
        return Err(LinuxError::NotLinux);
    }
    let version = u16_at(image, hdr::VERSION);
    if version < MIN_VERSION {
        return Err(LinuxError::TooOld(version));
    }
    if image.len() < hdr::END_READ {
        return Err(LinuxError::Truncated);
    }
    let hdr_end = hdr::HEADER + u8_at(image, hdr::JUMP + 1) as usize;
    if !(hdr::END_READ..=zero_page::HDR_MAX_END).contains(&hdr_end) {
        return Err(LinuxError::BadHeader(
            "setup header length (byte at 0x201) out of range",
        ));
    }
    if hdr_end > image.len() {
        return Err(LinuxError::Truncated);
    }
    let xloadflags = u16_at(image, hdr::XLOADFLAGS);
    if xloadflags & XLF_KERNEL_64 == 0 {
        return Err(LinuxError::Not64Bit);
    }
    let loadflags = u8_at(image, hdr::LOADFLAGS);
    if loadflags & LOADED_HIGH == 0 {
        return Err(LinuxError::BadHeader(
            "LOADED_HIGH clear: a zImage, not a bzImage",
        ));
    }
    let setup_sects = match u8_at(image, hdr::SETUP_SECTS) {
        0 => 4,
        n => n,
    };
    let payload_offset = (setup_sects as usize + 1) * 512;
    if payload_offset >= image.len() {
        return Err(LinuxError::Truncated);
    }
    // syssize (0x1F4): the protected-mode payload's size in 16-byte units. A file shorter
    // than that lost its tail (a partial copy or download).
    let syssize = u32_at(image, 0x1F4) as usize;
    if syssize != 0 && payload_offset + syssize * 16 > image.len() {
        return Err(LinuxError::Truncated);
    }
    let relocatable = u8_at(image, hdr::RELOCATABLE_KERNEL) != 0;
    let kernel_alignment = u32_at(image, hdr::KERNEL_ALIGNMENT);
    if relocatable && !kernel_alignment.is_power_of_two() {
        return Err(LinuxError::BadHeader(
            "kernel_alignment is not a power of two",
        ));
    }
    let init_size = u32_at(image, hdr::INIT_SIZE);
    if init_size == 0 {
        return Err(LinuxError::BadHeader("init_size is 0"));
    }
    Ok(LinuxImage {
        image,
        setup_sects,
        version,
        loadflags,
        xloadflags,
        relocatable,
        kernel_alignment,
        pref_address: u64_at(image, hdr::PREF_ADDRESS),
        init_size,
        initrd_addr_max: u32_at(image, hdr::INITRD_ADDR_MAX),
        cmdline_size: u32_at(image, hdr::CMDLINE_SIZE),
        payload_offset,
        hdr_end,
    })
}

/// What the guest boots with.
#[derive(Clone, Copy, Debug)]
pub struct LinuxSetup<'a> {
    /// Guest RAM in bytes: one region from guest-physical 0 (normally `mem.size()`).
    pub ram: u64,
    pub cmdline: &'a str,
    /// An empty initrd is treated as none.
    pub initrd: Option<&'a [u8]>,
}

/// Where the kernel was put and how to start it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxBoot {
    /// Always [`StartMode::Long64`]: rip = kernel_addr + 0x200, rsi = boot_params.
    pub start: StartMode,
    pub kernel_addr: u64,
    pub initrd_addr: Option<u64>,
}

/// Where the initrd goes: the highest page-aligned place below `limit` clear of the
/// kernel's window, else the highest one below the kernel (not under 1 MiB).
fn place_initrd(size: u64, limit: u64, kernel: core::ops::Range<u64>) -> Option<u64> {
    let below = |top: u64| {
        top.checked_sub(size)
            .map(|a| a & !(PAGE - 1))
            .filter(|&a| a >= layout::HIGH_MEMORY)
    };
    if let Some(a) = below(limit) {
        if a >= kernel.end {
            return Some(a);
        }
    }
    below(kernel.start.min(limit))
}

/// Loads `img` into `mem` as `setup` describes and returns the boot state.
pub fn load(
    img: &LinuxImage,
    mem: &mut GuestMemory,
    setup: &LinuxSetup,
) -> Result<LinuxBoot, LinuxError> {
    let ram = setup.ram;
    if !mem.contains(GuestPhys(0), ram) {
        return Err(MemError::OutOfRange {
            gpa: GuestPhys(0),
            len: ram,
        }
        .into());
    }
    // The e820 map reports RAM only up to the IOAPIC page.
    let usable = ram.min(e820::IOAPIC_BASE);

    let max = (img.cmdline_size as usize).min((layout::CMDLINE_END - layout::CMDLINE) as usize - 1);
    if setup.cmdline.len() > max {
        return Err(LinuxError::CmdlineTooLong {
            len: setup.cmdline.len(),
            max,
        });
    }

    let kernel_addr = img.load_address()?;
    let kernel_end = kernel_addr + img.window();
    let initrd = setup.initrd.filter(|rd| !rd.is_empty());
    let initrd_len = initrd.map_or(0, |rd| rd.len() as u64);
    let need = kernel_end + initrd_len.next_multiple_of(PAGE);
    if kernel_end > usable {
        return Err(LinuxError::TooLittleMemory { need, have: ram });
    }
    let initrd_addr = match initrd {
        None => None,
        Some(_) => {
            let limit = usable.min(img.initrd_addr_max as u64 + 1).min(FOUR_GIB);
            match place_initrd(initrd_len, limit, kernel_addr..kernel_end) {
                Some(a) => Some(a),
                None if need <= usable => {
                    return Err(LinuxError::InitrdTooLarge {
                        size: initrd_len,
                        max: limit,
                    })
                }
                None => return Err(LinuxError::TooLittleMemory { need, have: ram }),
            }
        }
    };

    // The kernel and the initrd.
    mem.write(GuestPhys(kernel_addr), img.payload())?;
    if let (Some(rd), Some(a)) = (initrd, initrd_addr) {
        mem.write(GuestPhys(a), rd)?;
    }

    // boot_params.
    let bp = layout::BOOT_PARAMS;
    let at = |off: usize| GuestPhys(bp + off as u64);
    mem.fill(GuestPhys(bp), zero_page::SIZE, 0)?;
    mem.write(at(zero_page::HDR), img.setup_header())?;
    mem.write(at(hdr::TYPE_OF_LOADER), &[LOADER_UNDEFINED])?;
    mem.write(
        at(hdr::LOADFLAGS),
        &[(img.loadflags | CAN_USE_HEAP) & !QUIET_FLAG],
    )?;
    mem.write_u16(at(hdr::HEAP_END_PTR), HEAP_END)?;
    mem.write_u32(at(hdr::CMD_LINE_PTR), layout::CMDLINE as u32)?;
    mem.write_u32(
        at(zero_page::EXT_CMD_LINE_PTR),
        (layout::CMDLINE >> 32) as u32,
    )?;
    let (rd_addr, rd_size) = (
        initrd_addr.unwrap_or(0),
        initrd_addr.map_or(0, |_| initrd_len),
    );
    mem.write_u32(at(hdr::RAMDISK_IMAGE), rd_addr as u32)?;
    mem.write_u32(at(hdr::RAMDISK_SIZE), rd_size as u32)?;
    mem.write_u32(at(zero_page::EXT_RAMDISK_IMAGE), (rd_addr >> 32) as u32)?;
    mem.write_u32(at(zero_page::EXT_RAMDISK_SIZE), (rd_size >> 32) as u32)?;
    // No setup_data chain: the file's value is a build artefact (normally 0).
    mem.write_u64(at(hdr::SETUP_DATA), 0)?;
    let map = e820::pc_map(ram);
    mem.write(at(zero_page::E820_ENTRIES), &[map.len() as u8])?;
    for (i, e) in map.iter().enumerate() {
        mem.write(
            at(zero_page::E820_TABLE + i * e820::E820Entry::SIZE),
            &e.to_bytes(),
        )?;
    }

    // The command line.
    mem.write(GuestPhys(layout::CMDLINE), setup.cmdline.as_bytes())?;
    mem.write(
        GuestPhys(layout::CMDLINE + setup.cmdline.len() as u64),
        &[0],
    )?;

    // The GDT.
    for (i, d) in [0, 0, GDT_CODE64, GDT_DATA].into_iter().enumerate() {
        mem.write_u64(GuestPhys(layout::GDT + 8 * i as u64), d)?;
    }

    // Identity page tables for 0..4 GiB with 2 MiB pages.
    mem.fill(GuestPhys(layout::PML4), PAGE as usize, 0)?;
    mem.fill(GuestPhys(layout::PDPT), PAGE as usize, 0)?;
    mem.write_u64(GuestPhys(layout::PML4), layout::PDPT | PTE_P_RW)?;
    for i in 0..4u64 {
        let pd = layout::PD + i * PAGE;
        mem.write_u64(GuestPhys(layout::PDPT + 8 * i), pd | PTE_P_RW)?;
        let mut page = [0u8; PAGE as usize];
        for (j, e) in page.chunks_exact_mut(8).enumerate() {
            let addr = (i << 30) | ((j as u64) << 21);
            e.copy_from_slice(&(addr | PDE_2M).to_le_bytes());
        }
        mem.write(GuestPhys(pd), &page)?;
    }

    Ok(LinuxBoot {
        start: StartMode::Long64 {
            rip: kernel_addr + ENTRY64_OFFSET,
            rsi: bp,
            cr3: layout::PML4,
            gdt_base: layout::GDT,
            gdt_limit: layout::GDT_LIMIT,
        },
        kernel_addr,
        initrd_addr,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::loader::samples::{bzimage, PAYLOAD};
    use crate::memory::testing::ram;
    use std::vec;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn with(mut b: Vec<u8>, off: usize, v: &[u8]) -> Vec<u8> {
        b[off..off + v.len()].copy_from_slice(v);
        b
    }

    fn setup<'a>(ram: u64, cmdline: &'a str, initrd: Option<&'a [u8]>) -> LinuxSetup<'a> {
        LinuxSetup {
            ram,
            cmdline,
            initrd,
        }
    }

    #[test]
    fn parses_the_header() {
        let b = bzimage();
        let img = parse(&b).unwrap();
        assert_eq!(img.setup_sects, 4);
        assert_eq!(img.payload_offset, 5 * 512);
        assert_eq!(img.payload(), PAYLOAD);
        assert_eq!(img.version, 0x020F);
        assert!(img.relocatable);
        assert_eq!(img.pref_address, 0x100_0000);
        assert_eq!(img.init_size, 4 << 20);
        assert_eq!(img.cmdline_size, 2047);
        assert_eq!(img.hdr_end, 0x26C);
        assert_eq!(img.setup_header().len(), 0x26C - 0x1F1);
        assert_eq!(img.load_address(), Ok(0x100_0000));
    }

    #[test]
    fn parse_errors() {
        let b = bzimage();
        assert_eq!(parse(b"MZ").err(), Some(LinuxError::NotLinux));
        assert_eq!(
            parse(&with(b.clone(), hdr::BOOT_FLAG, &[0, 0])).err(),
            Some(LinuxError::NotLinux)
        );
        assert_eq!(
            parse(&with(b.clone(), hdr::HEADER, b"HdrT")).err(),
            Some(LinuxError::NotLinux)
        );
        assert_eq!(
            parse(&with(b.clone(), hdr::VERSION, &0x020Bu16.to_le_bytes())).err(),
            Some(LinuxError::TooOld(0x020B))
        );
        assert_eq!(
            parse(&with(b.clone(), hdr::XLOADFLAGS, &[0x7E, 0])).err(),
            Some(LinuxError::Not64Bit)
        );
        assert!(matches!(
            parse(&with(b.clone(), hdr::LOADFLAGS, &[0])),
            Err(LinuxError::BadHeader(_))
        ));
        assert!(matches!(
            parse(&with(
                b.clone(),
                hdr::KERNEL_ALIGNMENT,
                &0x30_0000u32.to_le_bytes()
            )),
            Err(LinuxError::BadHeader(_))
        ));
        assert!(matches!(
            parse(&with(b.clone(), hdr::INIT_SIZE, &[0; 4])),
            Err(LinuxError::BadHeader(_))
        ));
        assert!(matches!(
            parse(&with(b.clone(), hdr::JUMP + 1, &[0x10])),
            Err(LinuxError::BadHeader(_))
        ));
        // Truncated: in the header, and with no payload after the setup sectors.
        assert_eq!(parse(&b[..0x250]).err(), Some(LinuxError::Truncated));
        assert_eq!(parse(&b[..5 * 512]).err(), Some(LinuxError::Truncated));
        // A payload shorter than syssize says.
        let long = with(b.clone(), 0x1F4, &((b.len() as u32) / 16 + 1).to_le_bytes());
        assert_eq!(parse(&long).err(), Some(LinuxError::Truncated));
        // setup_sects 39 (as Debian's) puts the payload past this small file.
        assert_eq!(
            parse(&with(b.clone(), hdr::SETUP_SECTS, &[39])).err(),
            Some(LinuxError::Truncated)
        );
        // Every error has a one-line reason.
        for e in [
            LinuxError::NotLinux,
            LinuxError::TooOld(0x0204),
            LinuxError::Not64Bit,
            LinuxError::Truncated,
            LinuxError::BadHeader("x"),
            LinuxError::TooLittleMemory {
                need: 67 * MIB,
                have: 64 * MIB,
            },
            LinuxError::CmdlineTooLong {
                len: 3000,
                max: 2047,
            },
            LinuxError::InitrdTooLarge { size: 1, max: 2 },
        ] {
            let s = std::format!("{e}");
            assert!(!s.is_empty() && !s.contains('\n'), "{s}");
        }
        assert!(std::format!("{}", LinuxError::TooOld(0x0204)).contains("2.04"));
    }

    #[test]
    fn load_address_fallbacks() {
        let b = with(bzimage(), hdr::PREF_ADDRESS, &0x8_0000u64.to_le_bytes());
        assert_eq!(
            parse(&b).unwrap().load_address(),
            Ok(0x100_0000),
            "relocatable, pref below 1 MiB"
        );
        let b = with(
            bzimage(),
            hdr::KERNEL_ALIGNMENT,
            &0x200_0000u32.to_le_bytes(),
        );
        assert_eq!(
            parse(&b).unwrap().load_address(),
            Ok(0x200_0000),
            "16 MiB rounded up to the alignment"
        );
        let b = with(
            with(bzimage(), hdr::RELOCATABLE_KERNEL, &[0]),
            hdr::PREF_ADDRESS,
            &0x30_0000u64.to_le_bytes(),
        );
        assert_eq!(
            parse(&b).unwrap().load_address(),
            Ok(0x30_0000),
            "fixed kernels load at pref_address"
        );
        let b = with(
            with(bzimage(), hdr::RELOCATABLE_KERNEL, &[0]),
            hdr::PREF_ADDRESS,
            &[0; 8],
        );
        assert!(matches!(
            parse(&b).unwrap().load_address(),
            Err(LinuxError::BadHeader(_))
        ));
    }

    #[test]
    fn loads_kernel_and_boot_params() {
        let b = bzimage();
        let img = parse(&b).unwrap();
        let mut mem = ram(32 << 20);
        let boot = load(
            &img,
            &mut mem,
            &setup(32 * MIB, "console=ttyS0 quiet", None),
        )
        .unwrap();
        assert_eq!(boot.kernel_addr, 0x100_0000);
        assert_eq!(boot.initrd_addr, None);
        assert_eq!(
            boot.start,
            StartMode::Long64 {
                rip: 0x100_0200,
                rsi: 0x7000,
                cr3: 0x1_0000,
                gdt_base: 0x1000,
                gdt_limit: 0x1F
            }
        );
        let mut got = vec![0u8; PAYLOAD.len()];
        mem.read(GuestPhys(0x100_0000), &mut got).unwrap();
        assert_eq!(got, PAYLOAD);

        let bp = |off: u64| GuestPhys(0x7000 + off);
        // The setup header copy, with the loader's fields on top.
        let mut h = vec![0u8; img.hdr_end - 0x1F1];
        mem.read(bp(0x1F1), &mut h).unwrap();
        assert_eq!(&h[0x202 - 0x1F1..0x206 - 0x1F1], b"HdrS");
        assert_eq!(mem.read_u16(bp(0x1FE)).unwrap(), 0xAA55);
        assert_eq!(mem.read_u16(bp(0x206)).unwrap(), 0x020F);
        assert_eq!(mem.read_u64(bp(0x258)).unwrap(), 0x100_0000);
        assert_eq!(
            mem.read_u32(bp(0x268)).unwrap(),
            0x1234,
            "copied to the header's end"
        );
        assert_eq!(mem.read_u8(bp(0x26C)).unwrap(), 0, "nothing past it");
        assert_eq!(mem.read_u8(bp(0x210)).unwrap(), 0xFF, "type_of_loader");
        assert_eq!(
            mem.read_u8(bp(0x211)).unwrap(),
            LOADED_HIGH | CAN_USE_HEAP,
            "QUIET cleared, heap on"
        );
        assert_eq!(mem.read_u16(bp(0x224)).unwrap(), 0xFE00);
        assert_eq!(mem.read_u32(bp(0x228)).unwrap(), 0x2_0000, "cmd_line_ptr");
        assert_eq!(mem.read_u32(bp(0x0C8)).unwrap(), 0, "ext_cmd_line_ptr");
        assert_eq!(mem.read_u32(bp(0x218)).unwrap(), 0);
        assert_eq!(mem.read_u32(bp(0x21C)).unwrap(), 0);
        assert_eq!(mem.read_u8(bp(0x1EF)).unwrap(), 0, "sentinel");

        // e820.
        let map = e820::pc_map(32 * MIB);
        assert_eq!(mem.read_u8(bp(0x1E8)).unwrap() as usize, map.len());
        for (i, e) in map.iter().enumerate() {
            let mut raw = [0u8; 20];
            mem.read(bp(0x2D0 + 20 * i as u64), &mut raw).unwrap();
            assert_eq!(e820::E820Entry::from_bytes(&raw), *e);
        }
        let mut raw = [0u8; 20];
        mem.read(bp(0x2D0 + 3 * 20), &mut raw).unwrap();
        assert_eq!(
            e820::E820Entry::from_bytes(&raw),
            e820::E820Entry::new(MIB, 31 * MIB, e820::RAM)
        );

        // Command line, NUL-terminated.
        let mut c = [0u8; 20];
        mem.read(GuestPhys(0x2_0000), &mut c).unwrap();
        assert_eq!(&c, b"console=ttyS0 quiet\0");

        // GDT.
        assert_eq!(mem.read_u64(GuestPhys(0x1000)).unwrap(), 0);
        assert_eq!(
            mem.read_u64(GuestPhys(0x1010)).unwrap(),
            0x00AF_9A00_0000_FFFF
        );
        assert_eq!(
            mem.read_u64(GuestPhys(0x1018)).unwrap(),
            0x00CF_9200_0000_FFFF
        );
        let code = mem.read_u64(GuestPhys(0x1010)).unwrap();
        assert_eq!((code >> 53) & 1, 1, "L");
        assert_eq!((code >> 54) & 1, 0, "D clear with L");
        assert_eq!((code >> 47) & 1, 1, "P");
    }

    /// Walks the loader's page tables for `va` (4-level, 2 MiB leaves).
    fn translate(mem: &GuestMemory, cr3: u64, va: u64) -> Option<u64> {
        let mask = 0x000F_FFFF_FFFF_F000u64;
        let pml4e = mem
            .read_u64(GuestPhys((cr3 & mask) + 8 * ((va >> 39) & 511)))
            .ok()?;
        if pml4e & 1 == 0 {
            return None;
        }
        let pdpte = mem
            .read_u64(GuestPhys((pml4e & mask) + 8 * ((va >> 30) & 511)))
            .ok()?;
        if pdpte & 1 == 0 || pdpte & 0x80 != 0 {
            return None;
        }
        let pde = mem
            .read_u64(GuestPhys((pdpte & mask) + 8 * ((va >> 21) & 511)))
            .ok()?;
        if pde & 0x83 != 0x83 {
            return None;
        }
        Some((pde & 0x000F_FFFF_FFE0_0000) | (va & 0x1F_FFFF))
    }

    #[test]
    fn page_tables_identity_map_4gib() {
        let b = bzimage();
        let mut mem = ram(32 << 20);
        let boot = load(&parse(&b).unwrap(), &mut mem, &setup(32 * MIB, "", None)).unwrap();
        let StartMode::Long64 { cr3, .. } = boot.start else {
            panic!()
        };
        for va in [
            0,
            0x7000,
            0x1234_5678,
            0x100_0200,
            0x4000_0000,
            0xBFFF_FFFF,
            0xFEE0_0000,
            0xFFFF_FFFF,
        ] {
            assert_eq!(translate(&mem, cr3, va), Some(va), "{va:#x}");
        }
        assert_eq!(translate(&mem, cr3, 1 << 32), None, "nothing above 4 GiB");
        // The tables lie clear of boot_params, the command line and the EBDA.
        let tables = layout::PML4..layout::PD + 4 * PAGE;
        for a in [layout::BOOT_PARAMS, layout::CMDLINE, layout::GDT, 0x9_FC00] {
            assert!(!tables.contains(&a));
        }
    }

    #[test]
    fn initrd_goes_high_below_its_limit() {
        let b = bzimage();
        let img = parse(&b).unwrap();
        let rd: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut mem = ram(64 << 20);
        let boot = load(&img, &mut mem, &setup(64 * MIB, "", Some(&rd))).unwrap();
        let a = boot.initrd_addr.unwrap();
        assert_eq!(
            a,
            (64 * MIB - 10_000) & !0xFFF,
            "highest page below the end of RAM"
        );
        assert!(a + rd.len() as u64 <= 64 * MIB);
        let mut got = vec![0u8; rd.len()];
        mem.read(GuestPhys(a), &mut got).unwrap();
        assert_eq!(got, rd);
        assert_eq!(mem.read_u32(GuestPhys(0x7000 + 0x218)).unwrap() as u64, a);
        assert_eq!(mem.read_u32(GuestPhys(0x7000 + 0x21C)).unwrap(), 10_000);
        assert_eq!(
            mem.read_u32(GuestPhys(0x7000 + 0x0C0)).unwrap(),
            0,
            "ext_ramdisk_image"
        );
        assert_eq!(
            mem.read_u32(GuestPhys(0x7000 + 0x0C4)).unwrap(),
            0,
            "ext_ramdisk_size"
        );

        // initrd_addr_max below the end of RAM: the initrd ends at or below it.
        let b2 = with(
            bzimage(),
            hdr::INITRD_ADDR_MAX,
            &(40 * MIB as u32 - 1).to_le_bytes(),
        );
        let mut mem = ram(64 << 20);
        let boot = load(
            &parse(&b2).unwrap(),
            &mut mem,
            &setup(64 * MIB, "", Some(&rd)),
        )
        .unwrap();
        let a = boot.initrd_addr.unwrap();
        assert_eq!(a, (40 * MIB - 10_000) & !0xFFF);
        assert!(a + 10_000 <= 40 * MIB);
    }

    #[test]
    fn initrd_avoids_the_kernel_window() {
        // initrd_addr_max inside the kernel's window [16, 20) MiB: the initrd goes below it.
        let b = with(
            bzimage(),
            hdr::INITRD_ADDR_MAX,
            &(18 * MIB as u32 - 1).to_le_bytes(),
        );
        let img = parse(&b).unwrap();
        let rd = vec![7u8; 3 * MIB as usize];
        let mut mem = ram(64 << 20);
        let boot = load(&img, &mut mem, &setup(64 * MIB, "", Some(&rd))).unwrap();
        assert_eq!(boot.initrd_addr, Some(13 * MIB));
        // Too big for the space below the kernel and under the limit.
        let rd = vec![7u8; 16 * MIB as usize];
        assert_eq!(
            load(&img, &mut mem, &setup(64 * MIB, "", Some(&rd))).err(),
            Some(LinuxError::InitrdTooLarge {
                size: 16 * MIB,
                max: 18 * MIB
            })
        );
    }

    #[test]
    fn too_little_memory() {
        // A Debian-like init_size of 63 MiB at 16 MiB needs 79 MiB.
        let b = with(bzimage(), hdr::INIT_SIZE, &(63 * MIB as u32).to_le_bytes());
        let img = parse(&b).unwrap();
        let mut mem = ram(64 << 20);
        assert_eq!(
            load(&img, &mut mem, &setup(64 * MIB, "", None)).err(),
            Some(LinuxError::TooLittleMemory {
                need: 79 * MIB,
                have: 64 * MIB
            })
        );
        // The kernel fits but the initrd fits neither above nor below it.
        let b = bzimage();
        let img = parse(&b).unwrap();
        let rd = vec![1u8; 16 * MIB as usize];
        assert_eq!(
            load(&img, &mut mem, &setup(32 * MIB, "", Some(&rd))).err(),
            Some(LinuxError::TooLittleMemory {
                need: 36 * MIB,
                have: 32 * MIB
            })
        );
        // 13 MiB does not fit above the kernel's window [16, 20) MiB but does below it.
        let rd = vec![1u8; 13 * MIB as usize];
        let boot = load(&img, &mut mem, &setup(32 * MIB, "", Some(&rd))).unwrap();
        assert_eq!(boot.initrd_addr, Some(3 * MIB));
        // RAM larger than the memory given.
        assert!(matches!(
            load(&img, &mut mem, &setup(128 * MIB, "", None)),
            Err(LinuxError::Memory(_))
        ));
        let s = std::format!(
            "{}",
            LinuxError::TooLittleMemory {
                need: 79 * MIB,
                have: 64 * MIB
            }
        );
        assert!(s.contains("79 MiB") && s.contains("64 MiB"), "{s}");
    }

    #[test]
    fn command_line_limits() {
        let b = with(bzimage(), hdr::CMDLINE_SIZE, &16u32.to_le_bytes());
        let img = parse(&b).unwrap();
        let mut mem = ram(32 << 20);
        mem.fill(GuestPhys(0x2_0000), 32, 0xCC).unwrap();
        load(&img, &mut mem, &setup(32 * MIB, "0123456789abcdef", None)).unwrap();
        let mut c = [0u8; 17];
        mem.read(GuestPhys(0x2_0000), &mut c).unwrap();
        assert_eq!(&c, b"0123456789abcdef\0");
        assert_eq!(
            load(&img, &mut mem, &setup(32 * MIB, "0123456789abcdefX", None)).err(),
            Some(LinuxError::CmdlineTooLong { len: 17, max: 16 })
        );
        // A huge cmdline_size is capped by the command-line area.
        let b = with(bzimage(), hdr::CMDLINE_SIZE, &u32::MAX.to_le_bytes());
        let long = "x".repeat(0x1_0000);
        assert_eq!(
            load(&parse(&b).unwrap(), &mut mem, &setup(32 * MIB, &long, None)).err(),
            Some(LinuxError::CmdlineTooLong {
                len: 0x1_0000,
                max: 0xFFFF
            })
        );
    }

    #[test]
    fn layout_is_disjoint() {
        let areas = [
            (layout::GDT, layout::GDT + layout::GDT_LIMIT as u64 + 1),
            (layout::BOOT_PARAMS, layout::BOOT_PARAMS + 0x1000),
            (layout::PML4, layout::PML4 + 0x1000),
            (layout::PDPT, layout::PDPT + 0x1000),
            (layout::PD, layout::PD + 0x4000),
            (layout::CMDLINE, layout::CMDLINE_END),
            (e820::EBDA_START, e820::EBDA_END),
        ];
        for (i, a) in areas.iter().enumerate() {
            for b in &areas[i + 1..] {
                assert!(a.1 <= b.0 || b.1 <= a.0, "{a:x?} overlaps {b:x?}");
            }
            assert!(a.1 <= e820::EBDA_END);
        }
    }
}
