//! What the loader handed over, whichever multiboot protocol it spoke: the command line,
//! the memory, the memory map and the modules, and every range of memory its data takes
//! (Multiboot 0.6.96, 3.3; Multiboot2 Specification version 2.0, 3.6).

use super::bytes::u32_at;
use super::memmap::{Entries, Layout};
use super::multiboot::{self as mb1, MultibootInfo};
use super::{mb2_tags as mb2, phys};
use core::ops::Range;

/// The longest string read from the boot information.
const MAX_STRING: u64 = 4096;
/// The largest multiboot2 information structure read.
const MAX_MB2_INFO: u64 = 64 * 1024;

/// Which entry point the loader jumped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `_start`: the multiboot1 header's `entry_addr`, and the ELF entry.
    Start,
    /// `_start_mb2`: the multiboot2 header's entry address tag.
    Multiboot2Tag,
}

/// The boot information, by protocol.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    Multiboot1(&'static MultibootInfo),
    /// The whole multiboot2 structure (`total_size` bytes).
    Multiboot2(&'static [u8]),
    /// Neither magic, or no structure.
    Unknown,
}

/// One module: where its contents are and its string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    pub string: &'static str,
    /// Where the string lies (multiboot1: apart; multiboot2: inside the information).
    pub string_at: u64,
}

impl Module {
    /// The module's contents, if identity-mapped.
    pub fn bytes(&self) -> Option<&'static [u8]> {
        phys::bytes(self.start, self.end.checked_sub(self.start)?)
    }
}

/// What the loader handed over: EAX and EBX at entry, and the entry it used.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// EAX at entry: [`mb1::BOOTLOADER_MAGIC`] or [`mb2::BOOTLOADER_MAGIC`].
    pub magic: u32,
    /// EBX at entry: the physical address of the boot information.
    pub mbi_addr: u32,
    pub entry: Entry,
}

impl BootInfo {
    pub(crate) fn new(magic: u32, mbi_addr: u32, entry: Entry) -> BootInfo {
        BootInfo {
            magic,
            mbi_addr,
            entry,
        }
    }

    /// The multiboot1 information, if a multiboot1 loader started us.
    pub fn info(&self) -> Option<&'static MultibootInfo> {
        match self.protocol() {
            Protocol::Multiboot1(info) => Some(info),
            _ => None,
        }
    }

    /// The multiboot2 information structure, if a multiboot2 loader started us.
    pub fn mb2(&self) -> Option<&'static [u8]> {
        match self.protocol() {
            Protocol::Multiboot2(info) => Some(info),
            _ => None,
        }
    }

    /// The boot information, by the magic in EAX.
    pub fn protocol(&self) -> Protocol {
        let addr = u64::from(self.mbi_addr);
        match self.magic {
            mb1::BOOTLOADER_MAGIC => {
                MultibootInfo::at(addr).map_or(Protocol::Unknown, Protocol::Multiboot1)
            }
            mb2::BOOTLOADER_MAGIC => {
                let total = phys::bytes(addr, 4).map_or(0, |b| u32_at(b, 0));
                phys::bytes(addr, u64::from(total).min(MAX_MB2_INFO))
                    .map_or(Protocol::Unknown, Protocol::Multiboot2)
            }
            _ => Protocol::Unknown,
        }
    }

    /// The command line, or "" when there is none or it is not UTF-8.
    pub fn cmdline(&self) -> &'static str {
        match self.protocol() {
            Protocol::Multiboot1(i) if i.has(mb1::FLAG_CMDLINE) => {
                phys::c_str(i.cmdline.into(), MAX_STRING)
            }
            Protocol::Multiboot2(b) => mb2::find(b, mb2::CMDLINE).and_then(mb2::string),
            _ => None,
        }
        .unwrap_or("")
    }

    /// The boot loader's name, if given.
    pub fn loader_name(&self) -> Option<&'static str> {
        match self.protocol() {
            Protocol::Multiboot1(i) if i.has(mb1::FLAG_LOADER_NAME) => {
                phys::c_str(i.boot_loader_name.into(), MAX_STRING)
            }
            Protocol::Multiboot2(b) => mb2::find(b, mb2::LOADER_NAME).and_then(mb2::string),
            _ => None,
        }
    }

    /// `mem_lower` and `mem_upper` (KiB), if given.
    pub fn mem(&self) -> Option<(u32, u32)> {
        match self.protocol() {
            Protocol::Multiboot1(i) if i.has(mb1::FLAG_MEM) => Some((i.mem_lower, i.mem_upper)),
            Protocol::Multiboot2(b) => {
                mb2::find(b, mb2::BASIC_MEMINFO).and_then(mb2::basic_meminfo)
            }
            _ => None,
        }
    }

    /// The memory map (empty when none was given).
    pub fn mmap(&self) -> Entries<'static> {
        match self.protocol() {
            Protocol::Multiboot1(i) => i.mmap(),
            Protocol::Multiboot2(b) => match mb2::find(b, mb2::MMAP) {
                Some(body) => mb2::mmap(body).2,
                None => Entries::new(&[], Layout::SizePrefixed),
            },
            Protocol::Unknown => Entries::new(&[], Layout::SizePrefixed),
        }
    }

    /// The modules, in the loader's order.
    pub fn modules(&self) -> Modules {
        Modules {
            protocol: self.protocol(),
            next: 0,
        }
    }

    /// Every range the loader's data takes: the information structure, its strings,
    /// memory map and module list, each module's string and contents.
    pub fn loader_data(&self, mut f: impl FnMut(Range<u64>)) {
        let span = |addr: u64, len: u64| addr..addr.saturating_add(len);
        match self.protocol() {
            Protocol::Multiboot1(i) => {
                f(span(self.mbi_addr.into(), mb1::INFO_SIZE));
                let cmdline = i.has(mb1::FLAG_CMDLINE).then_some(i.cmdline);
                let name = i.has(mb1::FLAG_LOADER_NAME).then_some(i.boot_loader_name);
                for s in [cmdline, name].into_iter().flatten() {
                    let len = phys::c_str(s.into(), MAX_STRING).map_or(1, |t| t.len() + 1);
                    f(span(s.into(), len as u64));
                }
                f(span(
                    i.mmap_bytes().as_ptr() as u64,
                    i.mmap_bytes().len() as u64,
                ));
                f(span(
                    i.module_list().as_ptr() as u64,
                    i.module_list().len() as u64,
                ));
            }
            Protocol::Multiboot2(b) => f(span(b.as_ptr() as u64, b.len() as u64)),
            Protocol::Unknown => {}
        }
        for m in self.modules() {
            f(span(m.string_at, m.string.len() as u64 + 1));
            f(m.start..m.end);
        }
    }
}

/// The iterator of [`BootInfo::modules`].
pub struct Modules {
    protocol: Protocol,
    /// Multiboot1: the index in the module list; multiboot2: the index among the tags.
    next: usize,
}

impl Iterator for Modules {
    type Item = Module;

    fn next(&mut self) -> Option<Module> {
        match self.protocol {
            Protocol::Multiboot1(info) => {
                let list = info.module_list();
                let at = self.next * mb1::MODULE_ENTRY as usize;
                let e = list.get(at..at + mb1::MODULE_ENTRY as usize)?;
                self.next += 1;
                let string_at = u64::from(u32_at(e, 8));
                Some(Module {
                    start: u32_at(e, 0).into(),
                    end: u32_at(e, 4).into(),
                    string: phys::c_str(string_at, MAX_STRING).unwrap_or(""),
                    string_at,
                })
            }
            Protocol::Multiboot2(b) => {
                let tag = mb2::tags(b)
                    .filter(|t| t.kind == mb2::MODULE)
                    .nth(self.next)?;
                self.next += 1;
                let (start, end, string) = mb2::module(tag.body).unwrap_or((0, 0, ""));
                Some(Module {
                    start: start.into(),
                    end: end.into(),
                    string,
                    string_at: tag.body.as_ptr() as u64 + 8,
                })
            }
            Protocol::Unknown => None,
        }
    }
}
