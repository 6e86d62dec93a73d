//! The multiboot2 suite: a kernel with only a multiboot2 header (Multiboot2
//! Specification version 2.0) that checks what its loader gave it. Booted with the
//! fixtures' command line and modules (rt/fixtures.rs), it passes under Janus and under
//! GRUB's own `multiboot2` + `module2`, which shows it tests the protocol and not Janus.
//!
//! The header (rt/boot.rs) asks for the command line, loader name, modules, basic memory,
//! memory map and old RSDP, gives an address tag and an entry address tag, and asks for
//! page-aligned modules. Checked: the magic (3.3); the structure (3.6.1-3.6.2); the
//! entry tag honoured (3.1.6: entered at `_start_mb2`, not the ELF entry); the address
//! tag honoured (3.1.5: the bytes past `load_end_addr` zeroed); the command line (3.6.5);
//! the loader name (3.6.9); the basic memory information against the memory map (3.6.3,
//! 3.6.8); the map itself; the old RSDP (3.6.16, ACPI 6.5 5.2.5) and its RSDT, the new
//! RSDP (3.6.17) and its XSDT when given; the modules (3.6.6) and where it all lies.
#![no_std]
#![no_main]

use janus_guests::rt::boot_info::Entry;
use janus_guests::rt::mb2_tags::{self as mb2, BOOTLOADER_MAGIC};
use janus_guests::rt::memmap::contiguous_end;
use janus_guests::rt::{boot_checks, bytes, phys};
use janus_guests::{entry, println, BootInfo, Suite};

entry!(main);

/// In the file past `load_end_addr` (section `.beyond`, image.ld): zero when the loader
/// honoured the address tag.
#[link_section = ".beyond"]
#[used]
static BEYOND: u64 = 0x6265_796f_6e64_2121;

const MIB: u64 = 0x10_0000;
/// Conventional memory ends at 640 KiB at most.
const LOWER_END: u64 = 0xA_0000;

fn main(boot: &BootInfo) -> ! {
    let mut s = Suite::new("mb2");
    s.check(
        "mb2.magic",
        boot.magic == BOOTLOADER_MAGIC,
        format_args!("eax={:#x}, want {BOOTLOADER_MAGIC:#x}", boot.magic),
    );
    let info = boot.mb2().unwrap_or(&[]);
    for t in mb2::tags(info) {
        println!("tag: type={} size={}", t.kind, t.body.len() + 8);
    }
    let shape = mb2::check(info);
    s.check(
        "mb2.info_structure",
        shape.is_ok(),
        format_args!(
            "{:?} (ebx={:#x}, {} bytes)",
            shape,
            boot.mbi_addr,
            info.len()
        ),
    );
    header_tags(&mut s, boot);
    boot_checks::cmdline(&mut s, boot);
    let name = boot.loader_name().unwrap_or("");
    println!("loader: \"{name}\"");
    s.check(
        "mb2.loader_name",
        !name.is_empty(),
        format_args!("no boot loader name tag"),
    );
    memory(&mut s, boot, info);
    acpi(&mut s, info);
    boot_checks::modules(&mut s, boot, true);
    boot_checks::placement(&mut s, boot);
    boot_checks::free_ram(&mut s, boot);
    s.finish()
}

/// The entry and address tags of the header were honoured.
fn header_tags(s: &mut Suite, boot: &BootInfo) {
    s.check(
        "mb2.entry_tag",
        boot.entry == Entry::Multiboot2Tag,
        format_args!(
            "entered at {:?}, not at the entry address tag's _start_mb2",
            boot.entry
        ),
    );
    // SAFETY: BEYOND is a valid u64 static; the volatile read sees what the loader left
    // instead of the value the compiler knows.
    let beyond = unsafe { core::ptr::read_volatile(&BEYOND) };
    s.check(
        "mb2.address_tag",
        beyond == 0,
        format_args!(
            "the bytes past load_end_addr read {beyond:#x}: loaded as ELF, not by the address tag"
        ),
    );
}

/// The basic memory information agrees with the memory map, and the map is sane.
fn memory(s: &mut Suite, boot: &BootInfo, info: &[u8]) {
    let (entry_size, version, _) =
        mb2::find(info, mb2::MMAP).map_or((0, 0, boot.mmap()), mb2::mmap);
    let mut prev_end = 0;
    let (mut count, mut sorted) = (0, true);
    for e in boot.mmap() {
        println!("mmap: base={:#x} len={:#x} type={}", e.base, e.len, e.kind);
        sorted &= e.base >= prev_end && e.len > 0;
        prev_end = e.end();
        count += 1;
    }
    let at_1mib = boot.mmap().any(|e| e.available_at(MIB));
    s.check(
        "mb2.mmap",
        count > 0 && entry_size >= 24 && entry_size % 8 == 0 && version == 0 && sorted && at_1mib,
        format_args!(
            "{count} entries of {entry_size} bytes, version {version}, sorted and disjoint: {sorted}, RAM at 1 MiB: {at_1mib}"
        ),
    );
    let Some((lower, upper)) = boot.mem() else {
        s.check(
            "mb2.basic_meminfo",
            false,
            format_args!("no basic memory information tag"),
        );
        return;
    };
    println!("memory: mem_lower={lower} KiB mem_upper={upper} KiB");
    let want_lower = contiguous_end(boot.mmap(), 0).min(LOWER_END) / 1024;
    let want_upper = contiguous_end(boot.mmap(), MIB).saturating_sub(MIB) / 1024;
    s.check(
        "mb2.basic_meminfo",
        u64::from(lower) == want_lower && u64::from(upper) == want_upper,
        format_args!(
            "mem_lower={lower} mem_upper={upper} KiB; the memory map says {want_lower} and {want_upper}"
        ),
    );
}

/// The RSDP tags hold valid RSDPs whose RSDT / XSDT are valid tables.
fn acpi(s: &mut Suite, info: &[u8]) {
    let old = mb2::find(info, mb2::ACPI_OLD).ok_or("no old RSDP tag (14)");
    let old = old
        .and_then(|b| rsdp(b, 20))
        .and_then(|b| table(bytes::u32_at(b, 16).into(), b"RSDT"));
    s.check(
        "mb2.acpi_old_rsdp",
        old.is_ok(),
        format_args!("{:?}", old.err()),
    );
    match mb2::find(info, mb2::ACPI_NEW) {
        None => {
            s.check_note(
                "mb2.acpi_new_rsdp",
                true,
                format_args!("not given"),
                format_args!(""),
            );
        }
        Some(body) => {
            let len = bytes::u32_at(body, 20) as usize;
            let new = rsdp(body, len.max(36)).and_then(|b| table(bytes::u64_at(b, 24), b"XSDT"));
            s.check(
                "mb2.acpi_new_rsdp",
                new.is_ok(),
                format_args!("{:?}", new.err()),
            );
        }
    }
}

/// The first `len` bytes of an RSDP copy, if its signature is right and they sum to 0.
fn rsdp(body: &[u8], len: usize) -> Result<&[u8], &'static str> {
    let b = body.get(..len).ok_or("the RSDP tag is too short")?;
    if !b.starts_with(b"RSD PTR ") {
        return Err("no \"RSD PTR \" signature");
    }
    let first = b[..20].iter().fold(0u8, |a, &x| a.wrapping_add(x));
    let all = b.iter().fold(0u8, |a, &x| a.wrapping_add(x));
    match (first, all) {
        (0, 0) => Ok(b),
        _ => Err("bad RSDP checksum"),
    }
}

/// Whether the ACPI table at `addr` has signature `sig` and a valid checksum.
fn table(addr: u64, sig: &[u8; 4]) -> Result<(), &'static str> {
    let header = phys::bytes(addr, 36).ok_or("the table is not in mapped memory")?;
    if &header[..4] != sig {
        return Err("the table's signature is wrong");
    }
    let len = bytes::u32_at(header, 4);
    let t = phys::bytes(addr, len.into()).filter(|_| len >= 36);
    let t = t.ok_or("the table's length is wrong")?;
    match t.iter().fold(0u8, |a, &x| a.wrapping_add(x)) {
        0 => Ok(()),
        _ => Err("the table's checksum is wrong"),
    }
}
