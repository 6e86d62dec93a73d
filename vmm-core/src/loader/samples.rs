//! Test images: small multiboot1 kernels and a synthetic bzImage.
extern crate std;
use crate::loader::linux::{hdr, BOOT_FLAG, HDRS, LOADED_HIGH, QUIET_FLAG};
use crate::loader::multiboot1::{FLAG_ADDRESSES, FLAG_MEMORY_INFO, HEADER_MAGIC};
use std::vec;
use std::vec::Vec;

const MIB: u64 = 1 << 20;
/// The protected-mode part of [`bzimage`].
pub const PAYLOAD: &[u8] = b"\xfa\xf4 the protected-mode kernel";

pub fn header(flags: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&HEADER_MAGIC.to_le_bytes());
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&(0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags)).to_le_bytes());
    h
}

/// A flat image loaded at 1 MiB with the address fields: header at offset 0.
pub fn aout_image(code: &[u8], bss: u32) -> Vec<u8> {
    aout_image_at(0x10_0000, code, bss)
}

/// A flat image loaded at `load` with the address fields: header at offset 0, entry at
/// `load + 32` (the code).
pub fn aout_image_at(load: u32, code: &[u8], bss: u32) -> Vec<u8> {
    let mut img = header(FLAG_MEMORY_INFO | FLAG_ADDRESSES);
    let len = 32 + code.len() as u32;
    for v in [load, load, load + len, load + len + bss, load + 32] {
        img.extend_from_slice(&v.to_le_bytes());
    }
    img.extend_from_slice(code);
    img
}

pub fn elf32(paddr: u32, vaddr: u32, entry: u32, code: &[u8], memsz: u32) -> Vec<u8> {
    elf32_with(paddr, vaddr, entry, code, memsz, &header(FLAG_MEMORY_INFO))
}

/// An ELF32 image with one PT_LOAD segment (`code` at `paddr`/`vaddr`, `memsz` bytes)
/// and `hdr` (a multiboot header, at most 0xa0 bytes) at file offset 0x60.
pub fn elf32_with(
    paddr: u32,
    vaddr: u32,
    entry: u32,
    code: &[u8],
    memsz: u32,
    hdr: &[u8],
) -> Vec<u8> {
    let mut e = std::vec![0u8; 0x54];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 1;
    e[5] = 1;
    e[6] = 1;
    e[16..18].copy_from_slice(&2u16.to_le_bytes());
    e[18..20].copy_from_slice(&3u16.to_le_bytes());
    e[24..28].copy_from_slice(&entry.to_le_bytes());
    e[28..32].copy_from_slice(&0x34u32.to_le_bytes());
    e[42..44].copy_from_slice(&32u16.to_le_bytes());
    e[44..46].copy_from_slice(&1u16.to_le_bytes());
    let ph = 0x34;
    let off = 0x100u32;
    for (i, v) in [1u32, off, vaddr, paddr, 0, memsz, 5, 0x1000]
        .iter()
        .enumerate()
    {
        e[ph + 4 * i..ph + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    e.resize(0x60, 0);
    assert!(hdr.len() <= 0xa0, "the header overlaps the code");
    e.extend_from_slice(hdr);
    e.resize(off as usize, 0);
    e.extend_from_slice(code);
    let filesz = code.len() as u32;
    e[ph + 16..ph + 20].copy_from_slice(&filesz.to_le_bytes());
    e
}

/// A multiboot2 header tag: type, flags, payload words.
pub type Mb2Tag<'a> = (u16, u16, &'a [u32]);

/// A multiboot2 header (spec 2.0 3.1.1-3.1.3) for i386 with `tags`, each 8-byte
/// aligned, and the end tag.
pub fn mb2_header(tags: &[Mb2Tag<'_>]) -> Vec<u8> {
    let mut t = Vec::new();
    for (ty, flags, body) in tags {
        t.extend_from_slice(&ty.to_le_bytes());
        t.extend_from_slice(&flags.to_le_bytes());
        t.extend_from_slice(&(8 + 4 * body.len() as u32).to_le_bytes());
        for w in *body {
            t.extend_from_slice(&w.to_le_bytes());
        }
        t.resize(t.len().next_multiple_of(8), 0);
    }
    t.extend_from_slice(&[0, 0, 0, 0, 8, 0, 0, 0]);
    let len = 16 + t.len() as u32;
    let magic = crate::loader::multiboot2::HEADER_MAGIC;
    let mut h = Vec::new();
    for w in [magic, 0, len, 0u32.wrapping_sub(magic).wrapping_sub(len)] {
        h.extend_from_slice(&w.to_le_bytes());
    }
    h.extend_from_slice(&t);
    h
}

/// A flat multiboot2 image loaded at `load`: the header at offset 0 with an address tag
/// (the whole file, then `bss` bytes), an entry tag for `code` (right after the header)
/// and `tags`.
pub fn mb2_flat(load: u32, code: &[u8], bss: u32, tags: &[Mb2Tag<'_>]) -> Vec<u8> {
    let build = |fields: [u32; 4], entry: u32| {
        let entry = [entry];
        let mut all: Vec<Mb2Tag<'_>> = std::vec![(2, 0, &fields[..]), (3, 0, &entry[..])];
        all.extend_from_slice(tags);
        let mut img = mb2_header(&all);
        img.extend_from_slice(code);
        img
    };
    let hdr_len = build([0; 4], 0).len() as u32 - code.len() as u32;
    let end = load + hdr_len + code.len() as u32;
    build([load, load, end, end + bss], load + hdr_len)
}

/// A synthetic bzImage: 4 setup sectors (field 0), protocol 2.15, relocatable,
/// pref_address 16 MiB, alignment 2 MiB, init_size 4 MiB.
pub fn bzimage() -> Vec<u8> {
    let mut b = vec![0u8; 5 * 512];
    let put = |b: &mut Vec<u8>, off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(&mut b, hdr::SETUP_SECTS, &[0]);
    put(&mut b, hdr::VID_MODE, &0xFFFFu16.to_le_bytes());
    put(&mut b, hdr::BOOT_FLAG, &BOOT_FLAG.to_le_bytes());
    put(&mut b, hdr::JUMP, &[0xEB, 0x6A]); // header ends at 0x26C
    put(&mut b, hdr::HEADER, HDRS);
    put(&mut b, hdr::VERSION, &0x020Fu16.to_le_bytes());
    put(&mut b, hdr::LOADFLAGS, &[LOADED_HIGH | QUIET_FLAG]);
    put(&mut b, hdr::INITRD_ADDR_MAX, &0x7FFF_FFFFu32.to_le_bytes());
    put(&mut b, hdr::KERNEL_ALIGNMENT, &0x20_0000u32.to_le_bytes());
    put(&mut b, hdr::RELOCATABLE_KERNEL, &[1]);
    put(&mut b, hdr::XLOADFLAGS, &0x7Fu16.to_le_bytes());
    put(&mut b, hdr::CMDLINE_SIZE, &2047u32.to_le_bytes());
    put(&mut b, hdr::PREF_ADDRESS, &0x100_0000u64.to_le_bytes());
    put(&mut b, hdr::INIT_SIZE, &(4 * MIB as u32).to_le_bytes());
    put(&mut b, 0x268, &0x1234u32.to_le_bytes()); // kernel_info_offset, last header field
    b.extend_from_slice(PAYLOAD);
    b
}

/// The NUL-terminated string at `at` in guest memory.
pub fn c_string(mem: &crate::memory::GuestMemory, at: u64) -> std::string::String {
    let bytes: Vec<u8> = (at..)
        .map(|a| mem.read_u8(crate::addr::GuestPhys(a)).unwrap())
        .take_while(|&c| c != 0)
        .collect();
    std::string::String::from_utf8(bytes).unwrap()
}
