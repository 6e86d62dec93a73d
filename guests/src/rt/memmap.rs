//! Memory-map entries as both multiboot protocols lay them out (pure code: the host
//! tests of `janus-ci` compile it too).
//!
//! Multiboot 0.6.96, 3.3 (`mmap_addr`): each entry is `size` (u32) then `size` bytes of
//! base (u64), length (u64), type (u32), not naturally aligned. Multiboot2 Specification
//! version 2.0, 3.6.8: the memory-map tag gives `entry_size` (a multiple of 8) and every
//! entry is base (u64), length (u64), type (u32), reserved (u32). Type 1 is available RAM.

use super::bytes::{u32_at, u64_at};

/// One memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmapEntry {
    pub base: u64,
    pub len: u64,
    /// 1: available RAM; anything else is reserved.
    pub kind: u32,
}

impl MmapEntry {
    /// Whether this entry is available RAM that holds `addr`.
    pub fn available_at(&self, addr: u64) -> bool {
        self.kind == 1 && self.base <= addr && addr - self.base < self.len
    }

    /// The first address past the entry (saturating).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }
}

/// How the entries follow one another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Multiboot1: each entry starts with its size (not counting the size field).
    SizePrefixed,
    /// Multiboot2: every entry is this many bytes.
    Stride(usize),
}

/// Iterates over the entries in `bytes`; stops at the end or at a malformed entry.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    layout: Layout,
}

impl<'a> Entries<'a> {
    pub fn new(bytes: &'a [u8], layout: Layout) -> Entries<'a> {
        Entries { bytes, layout }
    }
}

impl Iterator for Entries<'_> {
    type Item = MmapEntry;

    fn next(&mut self) -> Option<MmapEntry> {
        let (at, step) = match self.layout {
            Layout::SizePrefixed => (4, u32_at(self.bytes, 0) as usize + 4),
            Layout::Stride(n) => (0, n),
        };
        if step < at + 20 || self.bytes.len() < at + 20 {
            return None;
        }
        let e = MmapEntry {
            base: u64_at(self.bytes, at),
            len: u64_at(self.bytes, at + 8),
            kind: u32_at(self.bytes, at + 16),
        };
        self.bytes = self.bytes.get(step..).unwrap_or(&[]);
        Some(e)
    }
}

/// The end of the available RAM that runs without a hole from `from` (merging adjacent
/// available entries), or `from` itself when no available entry holds it.
pub fn contiguous_end(entries: impl Iterator<Item = MmapEntry> + Clone, from: u64) -> u64 {
    let mut end = from;
    while let Some(e) = entries.clone().find(|e| e.available_at(end)) {
        end = e.end();
    }
    end
}
