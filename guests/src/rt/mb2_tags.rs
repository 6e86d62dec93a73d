//! The multiboot2 boot information as bytes: the tags and what they hold (pure code: the
//! host tests of `janus-ci` compile it too).
//!
//! Multiboot2 Specification version 2.0, 3.6.1 (format: `total_size` u32, reserved u32,
//! then tags), 3.6.2 (each tag: `type` u32, `size` u32 counting the 8-byte tag header,
//! padded to 8 bytes; the list ends with a tag of type 0 and size 8), 3.6.3 basic
//! memory information, 3.6.5 command line, 3.6.6 modules, 3.6.8 memory map, 3.6.9 boot
//! loader name, 3.6.16 old RSDP, 3.6.17 new RSDP.

use super::bytes::u32_at;
use super::memmap::{Entries, Layout};

/// The value of EAX when a multiboot2 loader enters the kernel (3.3).
pub const BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

pub const END: u32 = 0;
pub const CMDLINE: u32 = 1;
pub const LOADER_NAME: u32 = 2;
pub const MODULE: u32 = 3;
pub const BASIC_MEMINFO: u32 = 4;
pub const MMAP: u32 = 6;
pub const ACPI_OLD: u32 = 14;
pub const ACPI_NEW: u32 = 15;

/// One tag: its type and the bytes after its 8-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag<'a> {
    pub kind: u32,
    pub body: &'a [u8],
}

/// The tags of a boot information structure, up to the end tag (or the first malformed
/// tag, which [`check`] reports).
#[derive(Clone, Debug)]
pub struct Tags<'a> {
    rest: &'a [u8],
}

/// The tags of `info`, the whole structure (`total_size` bytes from its start).
pub fn tags(info: &[u8]) -> Tags<'_> {
    Tags {
        rest: info.get(8..).unwrap_or(&[]),
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = Tag<'a>;

    fn next(&mut self) -> Option<Tag<'a>> {
        let (kind, size) = (u32_at(self.rest, 0), u32_at(self.rest, 4) as usize);
        if kind == END || size < 8 || size > self.rest.len() {
            return None;
        }
        let tag = Tag {
            kind,
            body: &self.rest[8..size],
        };
        self.rest = self.rest.get(size.next_multiple_of(8)..).unwrap_or(&[]);
        Some(tag)
    }
}

/// Whether `info` is well formed: `total_size` matches, a multiple of 8; every tag fits;
/// the list ends with an end tag of size 8 exactly at `total_size`.
pub fn check(info: &[u8]) -> Result<(), &'static str> {
    let total = u32_at(info, 0) as usize;
    if total != info.len() || total < 16 || !total.is_multiple_of(8) {
        return Err("total_size is not the structure's size, at least 16, a multiple of 8");
    }
    let mut at = 8;
    loop {
        let (kind, size) = (u32_at(info, at), u32_at(info, at + 4) as usize);
        if kind == END {
            return match (size, at + 8 == total) {
                (8, true) => Ok(()),
                (8, false) => Err("bytes after the end tag"),
                _ => Err("the end tag's size is not 8"),
            };
        }
        if size < 8 || at + size > total {
            return Err("a tag runs past total_size or is shorter than its header");
        }
        at += size.next_multiple_of(8);
        if at + 8 > total {
            return Err("no end tag");
        }
    }
}

/// The first tag of type `kind`.
pub fn find(info: &[u8], kind: u32) -> Option<&[u8]> {
    tags(info).find(|t| t.kind == kind).map(|t| t.body)
}

/// A string tag's text (up to its NUL), if UTF-8.
pub fn string(body: &[u8]) -> Option<&str> {
    let len = body.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&body[..len]).ok()
}

/// A module tag: `mod_start`, `mod_end` and its string.
pub fn module(body: &[u8]) -> Option<(u32, u32, &str)> {
    Some((u32_at(body, 0), u32_at(body, 4), string(body.get(8..)?)?))
}

/// The basic memory information: `mem_lower` and `mem_upper` in KiB.
pub fn basic_meminfo(body: &[u8]) -> Option<(u32, u32)> {
    (body.len() >= 8).then(|| (u32_at(body, 0), u32_at(body, 4)))
}

/// The memory-map tag's `entry_size`, `entry_version` and entries.
pub fn mmap(body: &[u8]) -> (u32, u32, Entries<'_>) {
    let (size, version) = (u32_at(body, 0), u32_at(body, 4));
    let entries = body.get(8..).unwrap_or(&[]);
    (
        size,
        version,
        Entries::new(entries, Layout::Stride(size as usize)),
    )
}
