//! The qemukernel suite: a multiboot1 kernel written the way kernels for `qemu -kernel`
//! are, linked at 0xA000 (below 1 MiB; link-low.ld says why not 0x8000), that asks QEMU's fw_cfg for its
//! machine and takes its settings from multiboot modules (rt/fixtures.rs). It passes
//! under Janus and under `qemu-system-x86_64 -kernel qemukernel -initrd "MOD ARGS,..."`
//! with QEMU's own multiboot loader and fw_cfg.
//!
//! Checked: the magic and information flags (Multiboot 0.6.96, 3.2-3.3); the image below
//! 1 MiB and the loader's data outside it and in RAM; the command line; the modules
//! (3.3 `mods_*`: count, order, strings, contents, page alignment as header flag 0 asks);
//! fw_cfg (QEMU docs/specs/fw_cfg.rst): signature, ID, one CPU, the RAM size against
//! `mem_upper`, and the `etc/e820` file against the multiboot memory map.
#![no_std]
#![no_main]

use janus_guests::rt::fw_cfg::{self, ID_TRADITIONAL};
use janus_guests::rt::memmap::MmapEntry;
use janus_guests::rt::multiboot::{BOOTLOADER_MAGIC, FLAG_CMDLINE, FLAG_MEM, FLAG_MMAP, FLAG_MODS};
use janus_guests::rt::{boot_checks, ram};
use janus_guests::{entry, println, BootInfo, Suite};

entry!(main);

/// Where link-low.ld puts the image, and where it must end (the EBDA).
const LOAD_ADDR: u64 = 0xA000;
const LOW_END: u64 = 0x9_F000;
/// The most `etc/e820` entries compared.
const MAX_E820: usize = 32;

fn main(boot: &BootInfo) -> ! {
    let mut s = Suite::new("qemukernel");
    multiboot(&mut s, boot);
    image(&mut s);
    boot_checks::placement(&mut s, boot);
    boot_checks::cmdline(&mut s, boot);
    boot_checks::modules(&mut s, boot, true);
    fw_cfg::check_basics(&mut s, boot);
    let id = fw_cfg::id();
    s.check(
        "fw_cfg.id",
        id & ID_TRADITIONAL != 0,
        format_args!("ID {id:#x}: bit 0 (the port interface) clear"),
    );
    e820(&mut s, boot);
    s.finish()
}

fn multiboot(s: &mut Suite, boot: &BootInfo) {
    s.check(
        "multiboot.magic",
        boot.magic == BOOTLOADER_MAGIC,
        format_args!("eax={:#x}, want {BOOTLOADER_MAGIC:#x}", boot.magic),
    );
    let flags = boot.info().map_or(0, |i| i.flags);
    let want = FLAG_MEM | FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP;
    s.check(
        "multiboot.flags",
        flags & want == want,
        format_args!("flags={flags:#x}, want bits 0, 2, 3 and 6 (mem, cmdline, mods, mmap)"),
    );
}

/// The kernel is where it was linked: all of it below the EBDA, running there.
fn image(s: &mut Suite) {
    let image = ram::image();
    let here = multiboot as fn(&mut Suite, &BootInfo) as usize as u64;
    println!(
        "image: {:#x}-{:#x}, running at {here:#x}",
        image.start, image.end
    );
    s.check(
        "image.below_1mib",
        image.start == LOAD_ADDR && image.end <= LOW_END && image.contains(&here),
        format_args!(
            "image {image:x?}, code at {here:#x}; want all in {LOAD_ADDR:#x}..{LOW_END:#x}"
        ),
    );
}

/// `etc/e820` is QEMU's RAM: RAM from 0 up to the RAM size; every available range of
/// the multiboot memory map lies in it.
fn e820(s: &mut Suite, boot: &BootInfo) {
    let Some(file) = fw_cfg::find_file("etc/e820") else {
        s.check(
            "fw_cfg.e820_file",
            false,
            format_args!("no etc/e820 in the file directory"),
        );
        return;
    };
    let mut e820 = [MmapEntry {
        base: 0,
        len: 0,
        kind: 0,
    }; MAX_E820];
    let mut n = 0;
    for (slot, e) in e820.iter_mut().zip(fw_cfg::e820(file)) {
        println!(
            "etc/e820: base={:#x} len={:#x} type={}",
            e.base, e.len, e.kind
        );
        *slot = e;
        n += 1;
    }
    let e820 = &e820[..n];
    s.check(
        "fw_cfg.e820_file",
        file.size % 20 == 0 && n > 0,
        format_args!("etc/e820 is {} bytes ({n} entries)", file.size),
    );
    let ram = fw_cfg::ram_size();
    let ram_end = e820
        .iter()
        .filter(|e| e.kind == 1)
        .map(MmapEntry::end)
        .max()
        .unwrap_or(0);
    s.check(
        "fw_cfg.e820_ram_size",
        ram_end == ram,
        format_args!("etc/e820's RAM ends at {ram_end:#x}, the RAM size item says {ram:#x}"),
    );
    let stray = boot.mmap().filter(|m| m.kind == 1).find(|m| {
        !e820
            .iter()
            .any(|e| e.kind == 1 && e.base <= m.base && m.end() <= e.end())
    });
    s.check(
        "fw_cfg.e820_vs_mmap",
        boot.mmap().next().is_some() && stray.is_none(),
        format_args!("multiboot's available {stray:x?} is not RAM in etc/e820"),
    );
}
