//! What the boot loader handed over: available memory, the areas that must not be reused
//! (the boot information itself, the modules), and the modules with their command lines.
//! Multiboot2 (GRUB's `multiboot2`) goes through the `multiboot2` crate; multiboot1 (QEMU's
//! `-kernel`) is small enough to read here (Multiboot 0.6.96 3.3), as no chosen crate
//! parses it.

use arrayvec::ArrayVec;
use core::mem::{offset_of, size_of};
use core::ops::Range;
use vmm_core::loader::modules::{MAX_LINE, MAX_MODULES};

pub const MB2_MAGIC: u32 = 0x36d7_6289;
pub const MB1_MAGIC: u32 = 0x2bad_b002;

#[derive(Clone, Copy, Debug)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    pub cmdline: &'static str,
}

impl Module {
    /// The module's bytes.
    pub fn bytes(&self) -> &'static [u8] {
        // SAFETY: the loader placed the module at [start, end) below 4 GiB, which is
        // identity-mapped, and the frame allocator never hands that range out.
        unsafe {
            core::slice::from_raw_parts(self.start as *const u8, (self.end - self.start) as usize)
        }
    }
}

/// Areas to keep: the boot information, the memory map, the module list, and each
/// module's bytes and command line.
const RESERVED_MAX: usize = 2 * MAX_MODULES + 8;

pub struct BootInfo {
    pub protocol: &'static str,
    pub available: ArrayVec<Range<u64>, 64>,
    pub reserved: ArrayVec<Range<u64>, RESERVED_MAX>,
    /// The first [`MAX_MODULES`] modules.
    pub modules: ArrayVec<Module, MAX_MODULES>,
    /// How many modules the loader handed over (more than `modules.len()` when it gave
    /// more than Janus takes; the rest are refused).
    pub modules_given: usize,
    /// The ACPI RSDP as the loader copied it (multiboot2 tags 14 and 15, Multiboot2 spec
    /// 1.0 3.6.14-3.6.15); empty when it gave none.
    pub rsdp: ArrayVec<u8, 36>,
}

pub fn parse(magic: u32, info: u32) -> Result<BootInfo, &'static str> {
    match magic {
        MB2_MAGIC => parse_mb2(info),
        MB1_MAGIC => parse_mb1(info),
        _ => Err("not started by a multiboot loader (bad magic in EAX)"),
    }
}

fn parse_mb2(info: u32) -> Result<BootInfo, &'static str> {
    use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};
    // SAFETY: GRUB passed the boot information's physical address in EBX; it is below
    // 4 GiB and identity-mapped, and nothing writes to it while we read.
    let bi = unsafe { BootInformation::load(info as usize as *const BootInformationHeader) }
        .map_err(|_| "the multiboot2 boot information is malformed")?;
    let mut out = BootInfo {
        protocol: "multiboot2",
        available: ArrayVec::new(),
        reserved: ArrayVec::new(),
        modules: ArrayVec::new(),
        modules_given: 0,
        rsdp: ArrayVec::new(),
    };
    let mmap = bi
        .memory_map_tag()
        .ok_or("the multiboot2 boot information has no memory map")?;
    for a in mmap.memory_areas() {
        if a.typ() == MemoryAreaType::Available {
            let _ = out.available.try_push(a.start_address()..a.end_address());
        }
    }
    let _ = out
        .reserved
        .try_push(bi.start_address() as u64..bi.end_address() as u64);
    if let Some(t) = bi.rsdp_v2_tag() {
        out.rsdp = tag_payload(t);
    } else if let Some(t) = bi.rsdp_v1_tag() {
        out.rsdp = tag_payload(t);
    }
    for m in bi.module_tags() {
        out.modules_given += 1;
        let cmdline = m.cmdline().unwrap_or("");
        // SAFETY: the string lives in the boot information, which is reserved for good.
        let cmdline: &'static str = unsafe { &*(cmdline as *const str) };
        let module = Module {
            start: m.start_address() as u64,
            end: m.end_address() as u64,
            cmdline,
        };
        let _ = out.reserved.try_push(module.start..module.end);
        let _ = out.modules.try_push(module);
    }
    Ok(out)
}

/// The bytes after a multiboot2 tag's 8-byte header (type, size), up to 36.
fn tag_payload<T>(tag: &T) -> ArrayVec<u8, 36> {
    let p = tag as *const T as *const u8;
    // SAFETY: `tag` is a tag inside the boot information, which starts with its type and
    // size (Multiboot2 spec 1.0 3.6.1); the size counts the header and the payload, all
    // inside the boot information, which stays mapped and untouched.
    let payload = unsafe {
        let size = (p.add(4) as *const u32).read_unaligned() as usize;
        core::slice::from_raw_parts(p.add(8), size.saturating_sub(8))
    };
    payload.iter().copied().take(36).collect()
}

/// The multiboot1 information structure, up to the fields Janus reads.
#[repr(C)]
struct Mb1Info {
    flags: u32,
    mem_lower: u32,
    mem_upper: u32,
    boot_device: u32,
    cmdline: u32,
    mods_count: u32,
    mods_addr: u32,
    syms: [u32; 4],
    mmap_length: u32,
    mmap_addr: u32,
}
const _: () = assert!(offset_of!(Mb1Info, mods_count) == 20);
const _: () = assert!(offset_of!(Mb1Info, mmap_length) == 44);
const _: () = assert!(size_of::<Mb1Info>() == 52);

#[repr(C)]
struct Mb1Module {
    start: u32,
    end: u32,
    string: u32,
    _reserved: u32,
}
const _: () = assert!(size_of::<Mb1Module>() == 16);

/// A NUL-terminated string in low memory, scanned up to one byte past [`MAX_LINE`]: a
/// longer string comes back that long, and is refused as too long. Bytes that are not
/// UTF-8 end the string (the module's line then does not parse or is cut).
///
/// # Safety
/// `addr` must be identity-mapped memory that stays untouched for good.
unsafe fn c_str(addr: u32) -> &'static str {
    if addr == 0 {
        return "";
    }
    // SAFETY: per the caller; the scan stops after MAX_LINE + 1 bytes.
    let bytes = unsafe { core::slice::from_raw_parts(addr as usize as *const u8, MAX_LINE + 1) };
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    match core::str::from_utf8(&bytes[..len]) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

fn parse_mb1(info: u32) -> Result<BootInfo, &'static str> {
    // SAFETY: the loader passed the info structure's physical address in EBX; low memory
    // is identity-mapped and the structure is never written.
    let mbi = unsafe { &*(info as usize as *const Mb1Info) };
    let mut out = BootInfo {
        protocol: "multiboot1",
        available: ArrayVec::new(),
        reserved: ArrayVec::new(),
        modules: ArrayVec::new(),
        modules_given: 0,
        rsdp: ArrayVec::new(),
    };
    let _ = out
        .reserved
        .try_push(info as u64..info as u64 + size_of::<Mb1Info>() as u64);
    if mbi.flags & (1 << 6) != 0 {
        let end = mbi.mmap_addr as u64 + mbi.mmap_length as u64;
        let _ = out.reserved.try_push(mbi.mmap_addr as u64..end);
        let mut p = mbi.mmap_addr as u64;
        while p + 24 <= end {
            // SAFETY: inside the memory map the loader described; entries are
            // `size, base_addr, length, type` (Multiboot 0.6.96 3.3), unaligned.
            let (size, base, len, ty) = unsafe {
                let e = p as usize as *const u8;
                (
                    (e as *const u32).read_unaligned(),
                    (e.add(4) as *const u64).read_unaligned(),
                    (e.add(12) as *const u64).read_unaligned(),
                    (e.add(20) as *const u32).read_unaligned(),
                )
            };
            if ty == 1 {
                let _ = out.available.try_push(base..base.saturating_add(len));
            }
            p += size as u64 + 4;
        }
    } else if mbi.flags & 1 != 0 {
        let _ = out
            .available
            .try_push(0x10_0000..0x10_0000 + mbi.mem_upper as u64 * 1024);
    } else {
        return Err("the multiboot1 boot information has no memory map");
    }
    if mbi.flags & (1 << 3) != 0 {
        let n = mbi.mods_count as usize;
        out.modules_given = n;
        let _ = out
            .reserved
            .try_push(mbi.mods_addr as u64..(mbi.mods_addr as u64 + 16 * n as u64));
        for i in 0..n.min(MAX_MODULES) {
            // SAFETY: the loader's module list, identity-mapped, `mods_count` entries long.
            let m = unsafe { &*((mbi.mods_addr as usize + i * 16) as *const Mb1Module) };
            // SAFETY: the loader's command-line string, reserved below with the module.
            let cmdline = unsafe { c_str(m.string) };
            let _ = out
                .reserved
                .try_push(m.string as u64..m.string as u64 + cmdline.len() as u64 + 1);
            let _ = out.reserved.try_push(m.start as u64..m.end as u64);
            let _ = out.modules.try_push(Module {
                start: m.start as u64,
                end: m.end as u64,
                cmdline,
            });
        }
    }
    Ok(out)
}
