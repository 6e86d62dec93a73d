//! QEMU's firmware configuration device (fw_cfg) through its I/O ports, as a kernel
//! written for `qemu -kernel` reads it, and the checks the suites make of it.
//!
//! Source: QEMU's docs/specs/fw_cfg.rst: the selector register at 0x510 (16-bit write;
//! selecting an item restarts its data), the data register at 0x511 (one byte per
//! read). Items: signature 0x0000 ("QEMU"), ID 0x0001 (u32 LE, bit 0: the port
//! interface), RAM size 0x0003 (u64 LE), CPUs 0x0005 and max CPUs 0x000f (u16 LE), the
//! file directory 0x0019 (count u32 BE, then per file: size u32 BE, selector u16 BE,
//! reserved u16, name of 56 bytes NUL-padded). The file `etc/e820` holds entries of
//! base u64, length u64, type u32 (LE): QEMU's idea of the RAM, not the BIOS' map.

use super::boot_info::BootInfo;
use super::cpu::{inb, outw};
use super::memmap::MmapEntry;
use super::suite::Suite;

pub const SELECTOR: u16 = 0x510;
pub const DATA: u16 = 0x511;

pub const SIGNATURE: u16 = 0x0000;
pub const ID: u16 = 0x0001;
pub const RAM_SIZE: u16 = 0x0003;
pub const NB_CPUS: u16 = 0x0005;
pub const MAX_CPUS: u16 = 0x000f;
pub const FILE_DIR: u16 = 0x0019;
/// FW_CFG_ID bit 0: the traditional (port) interface.
pub const ID_TRADITIONAL: u32 = 1;
/// The name field of a directory entry.
const NAME_LEN: usize = 56;
/// The most directory entries walked.
const MAX_FILES: u32 = 4096;

/// Selects `selector` and reads its first `buf.len()` bytes.
pub fn read(selector: u16, buf: &mut [u8]) {
    outw(SELECTOR, selector);
    read_more(buf);
}

/// Reads the selected item's next `buf.len()` bytes.
fn read_more(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        *b = inb(DATA);
    }
}

fn read_array<const N: usize>(selector: u16) -> [u8; N] {
    let mut b = [0u8; N];
    read(selector, &mut b);
    b
}

pub fn signature() -> [u8; 4] {
    read_array(SIGNATURE)
}

pub fn id() -> u32 {
    u32::from_le_bytes(read_array(ID))
}

/// The RAM size in bytes.
pub fn ram_size() -> u64 {
    u64::from_le_bytes(read_array(RAM_SIZE))
}

/// The number of CPUs and the most CPUs the machine can have.
pub fn cpus() -> (u16, u16) {
    (
        u16::from_le_bytes(read_array(NB_CPUS)),
        u16::from_le_bytes(read_array(MAX_CPUS)),
    )
}

/// A file of the directory: its size and selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct File {
    pub size: u32,
    pub selector: u16,
}

/// The file called `name`, found by walking the directory.
pub fn find_file(name: &str) -> Option<File> {
    let count = u32::from_be_bytes(read_array(FILE_DIR));
    for _ in 0..count.min(MAX_FILES) {
        let mut entry = [0u8; 8 + NAME_LEN];
        read_more(&mut entry);
        let len = entry[8..].iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        if &entry[8..8 + len] == name.as_bytes() {
            return Some(File {
                size: u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]),
                selector: u16::from_be_bytes([entry[4], entry[5]]),
            });
        }
    }
    None
}

/// The entries of the `etc/e820` file `file`. Reads the device as it goes: finish with
/// it before reading another item.
pub fn e820(file: File) -> impl Iterator<Item = MmapEntry> {
    outw(SELECTOR, file.selector);
    (0..file.size / 20).map(|_| {
        let mut e = [0u8; 20];
        read_more(&mut e);
        let u64_at = |at: usize| super::bytes::u64_at(&e, at);
        MmapEntry {
            base: u64_at(0),
            len: u64_at(8),
            kind: super::bytes::u32_at(&e, 16),
        }
    })
}

/// The checks every suite that reads fw_cfg makes: the signature, one CPU, and a RAM
/// size that agrees with the multiboot `mem_upper` (the KiB from 1 MiB to the first
/// hole: QEMU counts it from its RAM size, so the two differ by less than 1 MiB).
pub fn check_basics(s: &mut Suite, boot: &BootInfo) {
    let sig = signature();
    s.check(
        "fw_cfg.signature",
        &sig == b"QEMU",
        format_args!("signature {:x?}, want \"QEMU\"", sig),
    );
    let (cpus, max) = cpus();
    s.check(
        "fw_cfg.cpus",
        cpus == 1 && max == 1,
        format_args!("{cpus} CPUs, {max} at most; want 1 (this guest has one vCPU)"),
    );
    let ram = ram_size();
    let upper = boot
        .mem()
        .map_or(0, |(_, upper)| (u64::from(upper) + 1024) * 1024);
    s.check(
        "fw_cfg.ram_size",
        ram >= upper && ram > 0 && ram < upper + (1 << 20),
        format_args!("RAM size {ram:#x}, multiboot says about {upper:#x}"),
    );
}
