//! Checks of the boot information that the suites booted with the fixtures
//! ([`super::fixtures`]) share, whichever protocol brought it: the command line, the
//! modules (Multiboot 0.6.96, 3.3 `mods_*`; Multiboot2 Specification version 2.0, 3.6.6)
//! and where the loader put its data.

use super::args::is_words_after_path;
use super::boot_info::BootInfo;
use super::fixtures::{CMDLINE, MODULES};
use super::memmap::contiguous_end;
use super::ram;
use crate::{println, Suite};

const PAGE: u64 = 4096;
/// The check names of each module: string, contents, alignment.
const MODULE_CHECKS: [[&str; 3]; MODULES.len()] = [
    [
        "modules.0.string",
        "modules.0.contents",
        "modules.0.page_aligned",
    ],
    [
        "modules.1.string",
        "modules.1.contents",
        "modules.1.page_aligned",
    ],
];

/// The command line is [`CMDLINE`], after the kernel's path when the loader gives it.
pub fn cmdline(s: &mut Suite, boot: &BootInfo) {
    let line = boot.cmdline();
    println!("cmdline: \"{line}\"");
    s.check(
        "boot.cmdline",
        is_words_after_path(line, "", CMDLINE),
        format_args!("command line \"{line}\", want \"{CMDLINE}\" (after a path or not)"),
    );
}

/// The modules are [`MODULES`], in order, each with its string ("PATH ARGS" or "ARGS")
/// and its bytes, and page-aligned when `aligned` (the kernel asked for it).
pub fn modules(s: &mut Suite, boot: &BootInfo, aligned: bool) {
    let count = boot.modules().count();
    s.check(
        "modules.count",
        count == MODULES.len(),
        format_args!("{count} modules, want {}", MODULES.len()),
    );
    for (i, (m, want)) in boot.modules().zip(MODULES.iter()).enumerate() {
        let [string, contents, page_aligned] = MODULE_CHECKS[i];
        println!("module {i}: {:#x}-{:#x} \"{}\"", m.start, m.end, m.string);
        s.check(
            string,
            is_words_after_path(m.string, want.file, want.args),
            format_args!(
                "string \"{}\", want \"{}\" after .../{}",
                m.string, want.args, want.file
            ),
        );
        let bytes = m.bytes().unwrap_or(&[]);
        let first_diff = bytes.iter().zip(want.bytes).position(|(a, b)| a != b);
        s.check(
            contents,
            bytes == want.bytes,
            format_args!(
                "{} bytes, want {}; first difference at {:?}",
                bytes.len(),
                want.bytes.len(),
                first_diff
            ),
        );
        if aligned {
            s.check(
                page_aligned,
                m.start % PAGE == 0,
                format_args!("starts at {:#x}", m.start),
            );
        }
    }
}

/// The loader's data (information, strings, memory map, module list and modules) lies
/// in available RAM and outside the kernel's image: "never over the kernel".
pub fn placement(s: &mut Suite, boot: &BootInfo) {
    let image = ram::image();
    let (mut over_image, mut outside_ram) = (None, None);
    boot.loader_data(|r| {
        if r.start < r.end && r.start < image.end && image.start < r.end {
            over_image.get_or_insert(r.clone());
        }
        if r.start < r.end && contiguous_end(boot.mmap(), r.start) < r.end {
            outside_ram.get_or_insert(r);
        }
    });
    s.check(
        "boot.outside_image",
        over_image.is_none(),
        format_args!("loader data at {over_image:x?} overlaps the image {image:x?}"),
    );
    s.check(
        "boot.in_ram",
        outside_ram.is_none(),
        format_args!("loader data at {outside_ram:x?} is not all available RAM"),
    );
}

/// There is free RAM beside the image and the loader's data (at least 1 MiB).
pub fn free_ram(s: &mut Suite, boot: &BootInfo) {
    let free: u64 = ram::free_ranges(boot).map(|r| r.end - r.start).sum();
    s.check(
        "ram.free",
        free >= 1 << 20,
        format_args!("{free:#x} bytes of free RAM"),
    );
}
