//! The fuzz targets: each turns random bytes into an input (structured where random
//! bytes alone would never pass the first check) and runs one piece of vmm-core on it.
//! A target fails by panicking: a bug in the code under test (index out of range,
//! arithmetic overflow with overflow checks on) or a broken invariant asserted here.

use super::gen::Gen;
use std::ptr::NonNull;
use vmm_core::addr::{GuestPhys, HostPhys, PAGE_2M};
use vmm_core::decode::{decode, CpuMode};
use vmm_core::loader::bootarea::{BootModule, BootState, PAGE};
use vmm_core::loader::cmdline::ModuleString;
use vmm_core::loader::cmdline::{parse_module_args, valid_name_char, MAX_MEM};
use vmm_core::loader::image::FIRMWARE_AREA;
use vmm_core::loader::linux::{self, hdr, BOOT_FLAG, HDRS};
use vmm_core::loader::modules::{self, ModuleIn, Role, MAX_MODULES, MIN_MEM, NAME_MAX};
use vmm_core::loader::multiboot1::{self, HEADER_MAGIC};
use vmm_core::loader::multiboot2::{self, header_tag};
use vmm_core::memory::GuestMemory;

pub struct Target {
    pub name: &'static str,
    /// Longest random input worth generating.
    pub max_len: usize,
    pub run: fn(&[u8]),
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "decode",
        max_len: 48,
        run: fuzz_decode,
    },
    Target {
        name: "multiboot1",
        max_len: 1024,
        run: fuzz_multiboot1,
    },
    Target {
        name: "multiboot2",
        max_len: 1024,
        run: fuzz_multiboot2,
    },
    Target {
        name: "linux",
        max_len: 1024,
        run: fuzz_linux,
    },
    Target {
        name: "modules",
        max_len: 2048,
        run: fuzz_modules,
    },
];

/// `decode` on up to 14 prefixes (legacy, REX, VEX/EVEX starts) and random bytes, in
/// each mode. A decoded instruction must fit in the bytes and in 15, and decode the same
/// from its own bytes alone.
fn fuzz_decode(data: &[u8]) {
    const PREFIXES: &[u8] = &[
        0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x40, 0x48, 0x4f, 0x0f,
        0xc4, 0xc5, 0x62,
    ];
    let mut g = Gen::new(data);
    let mode = g.pick(&[
        CpuMode::Real,
        CpuMode::Prot16,
        CpuMode::Prot32,
        CpuMode::Long64,
    ]);
    let mut bytes: Vec<u8> = (0..g.int(0..=14u8)).map(|_| g.pick(PREFIXES)).collect();
    bytes.extend_from_slice(g.bytes(16));
    if let Ok(insn) = decode(&bytes, mode) {
        assert!((1..=15).contains(&insn.len) && insn.len <= bytes.len());
        assert_eq!(decode(&bytes[..insn.len], mode), Ok(insn));
    }
}

/// Guest RAM for the loaders: one buffer per thread, reused (the loaders do not rely on
/// it being zero).
fn with_ram(size: u64, f: impl FnOnce(&mut GuestMemory)) {
    const MAX_RAM: usize = 64 << 20;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; MAX_RAM]);
    }
    BUF.with_borrow_mut(|buf| {
        let size = size.min(MAX_RAM as u64);
        let mut mem = GuestMemory::new();
        let host = NonNull::new(buf.as_mut_ptr()).expect("a Vec's pointer is not null");
        // SAFETY: `buf` holds MAX_RAM >= size bytes, is borrowed mutably for as long as
        // `mem` lives, and nothing else touches it meanwhile.
        unsafe { mem.add_region(GuestPhys(0), HostPhys(0x1000_0000), size, host) }
            .expect("one region from 0");
        f(&mut mem);
    });
}

fn put(img: &mut Vec<u8>, off: usize, v: &[u8]) {
    if img.len() < off + v.len() {
        img.resize(off + v.len(), 0);
    }
    img[off..off + v.len()].copy_from_slice(v);
}

/// A multiboot1 header (spec 3.1.1) at `off`: magic, flags, checksum (mostly right).
fn mb1_header(g: &mut Gen, img: &mut Vec<u8>, off: usize, flags: u32) {
    let mut sum = 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags);
    if g.ratio(1, 16) {
        sum ^= 1;
    }
    put(img, off, &HEADER_MAGIC.to_le_bytes());
    put(img, off + 4, &flags.to_le_bytes());
    put(img, off + 8, &sum.to_le_bytes());
}

/// Header flags: memory info (bit 1), sometimes other requirement bits, `extra`.
fn mb1_flags(g: &mut Gen, extra: u32) -> u32 {
    let f = (1 << 1) | extra;
    if g.ratio(1, 8) {
        f | g.u32()
    } else {
        f
    }
}

/// An image with the address fields (flag 16, spec 3.1.3).
fn mb1_aout(g: &mut Gen) -> Vec<u8> {
    let mut img = Vec::new();
    let off = 4 * g.int(0..=16usize);
    let flags = mb1_flags(g, 1 << 16);
    mb1_header(g, &mut img, off, flags);
    let load = g.pick(&[0x10_0000u64, 0x8000, 0x20_0000]);
    let code = g.bytes(256);
    let end = load + (off + 32 + code.len()) as u64;
    // header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr.
    let fields = [
        load + off as u64,
        load,
        end,
        end + 0x100,
        load + off as u64 + 32,
    ];
    for (i, base) in fields.into_iter().enumerate() {
        let v = g.mostly(base) as u32;
        put(&mut img, off + 12 + 4 * i, &v.to_le_bytes());
    }
    img.extend_from_slice(code);
    img
}

/// An ELF32 or ELF64 image (System V gABI) with a multiboot1 header after its
/// program headers.
fn mb1_elf(g: &mut Gen) -> Vec<u8> {
    let class64 = g.ratio(1, 2);
    let mut img = vec![0u8; if class64 { 64 } else { 52 }];
    put(&mut img, 0, b"\x7fELF");
    put(&mut img, 4, &[if class64 { 2 } else { 1 }, 1, 1]);
    put(&mut img, 18, &g.mostly_of(3u16, &[62, 0]).to_le_bytes());
    let phnum = if g.ratio(1, 16) { 0 } else { g.int(1..=4u16) };
    let phent: u16 = if class64 { 56 } else { 32 };
    let phoff = g.mostly(img.len() as u64);
    let entry = g.near(0x10_0000);
    if class64 {
        put(&mut img, 24, &entry.to_le_bytes());
        put(&mut img, 32, &phoff.to_le_bytes());
        put(&mut img, 54, &phent.to_le_bytes());
        put(&mut img, 56, &phnum.to_le_bytes());
    } else {
        put(&mut img, 24, &(entry as u32).to_le_bytes());
        put(&mut img, 28, &(phoff as u32).to_le_bytes());
        put(&mut img, 42, &phent.to_le_bytes());
        put(&mut img, 44, &phnum.to_le_bytes());
    }
    let ph0 = img.len();
    for i in 0..phnum as usize {
        let ph = ph0 + i * phent as usize;
        let kind = if g.ratio(7, 8) { 1u32 } else { g.u32() };
        put(&mut img, ph, &kind.to_le_bytes());
        // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz.
        let fields = [
            g.mostly(0),
            g.mostly(0x10_0000),
            g.mostly(0x10_0000),
            g.near(0x40),
            g.near(0x1000),
        ];
        for (j, v) in fields.iter().enumerate() {
            if class64 {
                put(&mut img, ph + 8 + 8 * j, &v.to_le_bytes());
            } else {
                put(&mut img, ph + 4 + 4 * j, &(*v as u32).to_le_bytes());
            }
        }
    }
    let hdr = img.len().next_multiple_of(4);
    let flags = mb1_flags(g, 0);
    mb1_header(g, &mut img, hdr, flags);
    img.extend_from_slice(g.bytes(512));
    img
}

fn mb1_image(g: &mut Gen) -> Vec<u8> {
    match g.int(0..=7u8) {
        0..=3 => mb1_elf(g),
        4..=6 => mb1_aout(g),
        _ => g.bytes(1024).to_vec(),
    }
}

/// A string of up to `max` bytes: mostly ASCII, sometimes any UTF-8.
fn text(g: &mut Gen, max: usize) -> String {
    let n = g.pick(&[0, 1, 16, max / 2, max, max + 1]);
    let c = g.pick(&['x', 'é', ' ', '\n', '"', '=']);
    c.to_string().repeat(n / c.len_utf8())
}

/// Up to three modules' bytes, of sizes around a page and up to 1 MiB.
fn module_bytes(g: &mut Gen) -> Vec<Vec<u8>> {
    (0..g.int(0..=3u8))
        .map(|_| vec![0x6d; g.pick(&[0usize, 1, 4095, 4097, 1 << 20])])
        .collect()
}

fn boot_modules<'a>(bytes: &'a [Vec<u8>], string: &'a str) -> Vec<BootModule<'a>> {
    bytes
        .iter()
        .map(|b| BootModule {
            image: b,
            string: ModuleString {
                head: "/guests/m",
                tail: string,
            },
        })
        .collect()
}

/// What a loaded multiboot kernel must find: its entry in its image; the boot
/// information page-aligned, in RAM, off the image and the firmware area; the modules
/// after it in order, each on a page boundary, holding their bytes.
fn check_boot(b: &BootState, mem: &GuestMemory, modules: &[BootModule<'_>]) {
    let ram = mem.size();
    assert!(
        b.image.contains(b.entry.into()),
        "entry {:#x} outside the image",
        b.entry
    );
    let area = b.area;
    assert_eq!(u64::from(b.ebx), area.info);
    assert!(
        area.info.is_multiple_of(PAGE) && area.info <= area.info_end && area.info_end <= area.end
    );
    assert!(
        area.end <= ram,
        "boot area ends at {:#x}, past RAM",
        area.end
    );
    let disjoint =
        |a: std::ops::Range<u64>, b: std::ops::Range<u64>| a.end <= b.start || b.end <= a.start;
    assert!(
        disjoint(area.info..area.end, b.image.start..b.image.end),
        "over the image"
    );
    assert!(
        disjoint(area.info..area.end, FIRMWARE_AREA),
        "over the firmware area"
    );
    let ranges: Vec<_> =
        vmm_core::loader::bootarea::module_ranges(area.info_end, modules).collect();
    for (m, r) in modules.iter().zip(&ranges) {
        assert!(r.start.is_multiple_of(PAGE) && r.end <= area.end);
        if let Some(&last) = m.image.last() {
            assert_eq!(mem.read_u8(GuestPhys(r.end - 1)).unwrap(), last);
        }
    }
}

/// `multiboot1::load` on generated images and modules in RAM of various sizes.
fn fuzz_multiboot1(data: &[u8]) {
    let mut g = Gen::new(data);
    let ram = g.pick(&[64 << 10, 1 << 20, 2 << 20, 4 << 20]);
    let cmdline = text(&mut g, 4096);
    let img = mb1_image(&mut g);
    let bytes = module_bytes(&mut g);
    let string = text(&mut g, 64);
    let mods = boot_modules(&bytes, &string);
    with_ram(ram, |mem| {
        if let Ok(b) = multiboot1::load(&img, mem, &cmdline, &mods) {
            check_boot(&b, mem, &mods);
        }
    });
}

/// A multiboot2 header (spec 2.0 3.1) at `off` with generated tags: information
/// requests, address and entry tags near `load`, console, framebuffer, module alignment,
/// EFI, relocatable and unknown tags, mostly well formed.
fn mb2_header(g: &mut Gen, img: &mut Vec<u8>, off: usize, load: u64, len_hint: u64) {
    let mut tags: Vec<u8> = Vec::new();
    for _ in 0..g.int(0..=4u8) {
        let ty = g.pick(&[1u16, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x7fff]);
        let flags = g.pick(&[0u16, 1]);
        let body: Vec<u32> = match ty {
            header_tag::INFO_REQUEST => (0..g.int(0..=3u8))
                .map(|_| g.pick(&[1u32, 3, 6, 8, 14, 21, 99]))
                .collect(),
            header_tag::ADDRESS => vec![
                g.mostly(load + off as u64) as u32,
                g.mostly_of(load as u32, &[u32::MAX, 0]),
                g.mostly_of(0u32, &[(load + len_hint) as u32]),
                g.mostly_of(0u32, &[(load + len_hint + 0x1000) as u32]),
            ],
            header_tag::ENTRY => vec![g.near(load + 0x40) as u32],
            _ => (0..g.int(0..=4u8)).map(|_| g.u32()).collect(),
        };
        let size = if g.ratio(1, 16) {
            g.int(0..=40u32)
        } else {
            8 + 4 * body.len() as u32
        };
        tags.extend_from_slice(&ty.to_le_bytes());
        tags.extend_from_slice(&flags.to_le_bytes());
        tags.extend_from_slice(&size.to_le_bytes());
        body.iter()
            .for_each(|w| tags.extend_from_slice(&w.to_le_bytes()));
        tags.resize(tags.len().next_multiple_of(8), 0);
    }
    if g.ratio(15, 16) {
        tags.extend_from_slice(&[0, 0, 0, 0, 8, 0, 0, 0]);
    }
    let len = g.mostly(16 + tags.len() as u64) as u32;
    let arch = g.mostly_of(0u32, &[4]);
    let mut sum = 0u32
        .wrapping_sub(multiboot2::HEADER_MAGIC)
        .wrapping_sub(arch)
        .wrapping_sub(len);
    if g.ratio(1, 16) {
        sum ^= 1;
    }
    for (i, w) in [multiboot2::HEADER_MAGIC, arch, len, sum]
        .iter()
        .enumerate()
    {
        put(img, off + 4 * i, &w.to_le_bytes());
    }
    put(img, off + 16, &tags);
}

/// A multiboot2 image: an ELF (with a multiboot1 header turned into a multiboot2 one)
/// or a flat file whose header carries the address tags.
fn mb2_image(g: &mut Gen) -> Vec<u8> {
    let mut img = if g.ratio(1, 2) {
        mb1_elf(g)
    } else {
        g.bytes(256).to_vec()
    };
    let off = img.len().min(512).next_multiple_of(8);
    let load = g.pick(&[0x10_0000u64, 0x8000, 0x1000]);
    mb2_header(g, &mut img, off, load, 0x400);
    img.extend_from_slice(g.bytes(256));
    img
}

/// `multiboot2::load` on generated images and modules, with and without an RSDP.
fn fuzz_multiboot2(data: &[u8]) {
    let mut g = Gen::new(data);
    let ram = g.pick(&[1 << 20, 2 << 20, 4 << 20]);
    let cmdline = text(&mut g, 4096);
    let img = mb2_image(&mut g);
    let bytes = module_bytes(&mut g);
    let string = text(&mut g, 64);
    let mods = boot_modules(&bytes, &string);
    let rsdp = g.pick(&[None, Some(0xF_0000u64), Some(u64::MAX)]);
    with_ram(ram, |mem| {
        if let Ok(b) = multiboot2::load(&img, mem, &cmdline, &mods, rsdp) {
            check_boot(&b, mem, &mods);
            let total = mem.read_u32(GuestPhys(b.area.info)).unwrap() as u64;
            assert_eq!(b.area.info + total, b.area.info_end, "total_size");
        }
    });
}

/// A bzImage with generated setup-header fields (boot.rst) and payload.
fn bzimage(g: &mut Gen) -> Vec<u8> {
    if g.ratio(1, 16) {
        return g.bytes(1024).to_vec();
    }
    let setup_sects = g.mostly_of(0u8, &[1, 4, 255]);
    let mut b = vec![0u8; 5 * 512];
    put(&mut b, hdr::SETUP_SECTS, &[setup_sects]);
    put(&mut b, hdr::BOOT_FLAG, &BOOT_FLAG.to_le_bytes());
    put(
        &mut b,
        hdr::JUMP,
        &[0xeb, g.mostly_of(0x6a, &[0x62, 0x8e, 0xff])],
    );
    put(&mut b, hdr::HEADER, HDRS);
    put(
        &mut b,
        hdr::VERSION,
        &g.mostly_of(0x20fu16, &[0x20c, 0x20b, 0xffff]).to_le_bytes(),
    );
    put(&mut b, hdr::LOADFLAGS, &[g.mostly_of(1u8, &[0x21, 0])]);
    put(
        &mut b,
        hdr::XLOADFLAGS,
        &g.mostly_of(0x7fu16, &[1, 0]).to_le_bytes(),
    );
    put(
        &mut b,
        0x1f4,
        &g.mostly_of(0u32, &[1, 0x1000_0000, u32::MAX]).to_le_bytes(),
    );
    put(&mut b, hdr::RELOCATABLE_KERNEL, &[g.mostly_of(1u8, &[0])]);
    let align = g.mostly(0x20_0000) as u32;
    put(&mut b, hdr::KERNEL_ALIGNMENT, &align.to_le_bytes());
    put(
        &mut b,
        hdr::PREF_ADDRESS,
        &g.mostly(0x100_0000).to_le_bytes(),
    );
    put(
        &mut b,
        hdr::INIT_SIZE,
        &(g.mostly(4 << 20) as u32).to_le_bytes(),
    );
    put(
        &mut b,
        hdr::INITRD_ADDR_MAX,
        &(g.mostly(0x7fff_ffff) as u32).to_le_bytes(),
    );
    put(
        &mut b,
        hdr::CMDLINE_SIZE,
        &(g.mostly(2047) as u32).to_le_bytes(),
    );
    b.extend_from_slice(g.bytes(512));
    if g.ratio(1, 8) {
        b.truncate(g.pick(&[0x264, 0x200, 5 * 512 + 1]));
    }
    b
}

/// `linux::parse` and `linux::load` on generated bzImages, RAM sizes, command lines
/// and initrds.
fn fuzz_linux(data: &[u8]) {
    let mut g = Gen::new(data);
    let ram = g.pick(&[1 << 20, 17 << 20, 20 << 20, 32 << 20, 64 << 20]);
    let setup_ram = if g.ratio(1, 8) { g.near(ram) } else { ram };
    let cmdline = text(&mut g, 4096);
    let initrd_len = g.pick(&[0usize, 1, 4096, 1 << 20]);
    let img = bzimage(&mut g);
    let Ok(parsed) = linux::parse(&img) else {
        return;
    };
    let initrd = vec![0x5au8; initrd_len];
    let setup = linux::LinuxSetup {
        ram: setup_ram,
        cmdline: &cmdline,
        initrd: Some(&initrd),
    };
    with_ram(ram, |mem| {
        if let Ok(b) = linux::load(&parsed, mem, &setup) {
            assert!(b.kernel_addr + parsed.window() <= ram);
            if let Some(a) = b.initrd_addr {
                assert!(a + initrd_len as u64 <= ram);
            }
        }
    });
}

/// A module command line from the keys' vocabulary and odd values.
fn module_line(g: &mut Gen) -> String {
    if g.ratio(1, 8) {
        return String::from_utf8_lossy(g.bytes(256)).into_owned();
    }
    let mut s = String::new();
    if g.ratio(3, 4) {
        s += g.pick(&[
            "/guests/smoke",
            "/g/résumé.elf",
            "/g/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaé.elf",
            "/x/.y",
            "k",
            "\"/a b\"",
        ]);
    }
    for _ in 0..g.int(0..=4u8) {
        s.push(' ');
        s += g.pick(&[
            "name=",
            "mem=",
            "kind=",
            "initrd-of=",
            "module-of=",
            "cmdline=",
            "colour=",
            "x",
            "\"",
        ]);
        s += g.pick(&[
            "a",
            "b",
            "smoke",
            "16M",
            "0",
            "1M",
            "18446744073709551615",
            "17179869184G",
            "99K",
            "linux",
            "multiboot1",
            "\"q r\"",
            "é",
            "",
        ]);
    }
    if g.ratio(1, 16) {
        s += &"z".repeat(g.pick(&[31, 32, modules::MAX_LINE]));
    }
    s
}

/// `plan_all` on generated module lists: every refusal is one line, every guest has a
/// valid, unique name and a RAM size in range.
fn fuzz_modules(data: &[u8]) {
    let mut g = Gen::new(data);
    let _ = parse_module_args(&String::from_utf8_lossy(g.bytes(64)));
    let n = g.pick(&[0usize, 1, 2, 3, 5, MAX_MODULES + 1]);
    let lines: Vec<String> = (0..n).map(|_| module_line(&mut g)).collect();
    let images: Vec<Vec<u8>> = (0..n)
        .map(|_| match g.int(0..=3u8) {
            0 => mb1_image(&mut g),
            1 => bzimage(&mut g),
            2 => mb2_image(&mut g),
            _ => g.bytes(64).to_vec(),
        })
        .collect();
    let mods: Vec<ModuleIn> = lines
        .iter()
        .zip(&images)
        .map(|(l, i)| ModuleIn {
            cmdline: l,
            image: i,
        })
        .collect();
    let mut names = Vec::new();
    for p in modules::plan_all(&mods) {
        match p {
            Ok(Role::Guest(plan)) => {
                let name = plan.name;
                assert!(!name.is_empty() && name.len() <= NAME_MAX);
                assert!(name.chars().all(valid_name_char), "{name}");
                assert!(!names.contains(&name), "two guests named {name}");
                names.push(name);
                assert!((MIN_MEM..=MAX_MEM).contains(&plan.mem) && plan.mem % PAGE_2M == 0);
            }
            Ok(Role::Initrd { of } | Role::Module { of }) => assert!(of < n),
            Err(r) => {
                let line = r.to_string();
                assert!(line.starts_with("guest ") && line.contains(": not started: "));
                assert!(!line.contains('\n') && line.len() < 400, "{line}");
            }
        }
    }
}
