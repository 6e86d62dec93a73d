//! Exit sites: where the instructions of the last few exits lay and what they were (the
//! length of one an exit named, such as CPUID or a hypercall; the decoded instruction
//! of a device-memory access), with everything that was read from, so that the next
//! exit at the same place (a guest's loop, its interrupt handler) is answered by a few
//! compares and a handful of loads instead of a fetch through the code-page cache. On
//! AMD-V without NRIP save every such exit needs its length, and every MMIO exit needs
//! its instruction on any CPU (`cargo janus bench exits`).
//!
//! Nothing is trusted: a hit needs the same linear address, paging registers,
//! privilege, CS attributes (and for a length, the same instruction named by the exit),
//! every page-table entry of the walk that found the code page still as read, and the
//! instruction's bytes still the same.

use super::Place;
use crate::addr::GuestPhys;
use crate::decode::Insn;
use crate::memory::{GuestMemory, Watches};

/// The instruction's bytes are watched as 8-byte loads, two at most: it must not run
/// past the 16 bytes at its start, all in its page.
const SPAN: u64 = 16;

/// What a site knows about its instruction.
#[derive(Clone, Copy, Debug)]
pub(super) enum Known {
    /// Its length, found for an exit that named it by `opcode` (compared by address:
    /// each is a `'static` constant).
    Length { opcode: &'static [u8], len: usize },
    /// The whole instruction, decoded.
    Decoded(Insn),
}

impl Known {
    fn len(&self) -> usize {
        match self {
            Known::Length { len, .. } => *len,
            Known::Decoded(i) => i.len,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Site {
    place: Place,
    known: Known,
    /// The entries of the walk to the code page (up to five), as the code-page cache
    /// watches them, and the instruction's bytes (one or two loads).
    watches: Watches<7>,
}

impl Site {
    /// Remembers what the instruction at `place` is, whose bytes `code` are at `gpa`,
    /// found through `walk`. `None` for what a site cannot watch (bytes that
    /// run past 16 from its start or leave the page) or what changed since it was read.
    pub(super) fn new(
        mem: &GuestMemory,
        place: &Place,
        known: Known,
        (gpa, code): (GuestPhys, &[u8]),
        walk: &Watches<5>,
    ) -> Option<Site> {
        let code = code.get(..known.len())?;
        if gpa.0 & 0xfff > 0x1000 - SPAN {
            return None;
        }
        let mut watches = walk.widened()?;
        for (i, chunk) in code.chunks(8).enumerate() {
            let mut was = [0u8; 8];
            was[..chunk.len()].copy_from_slice(chunk);
            let at = GuestPhys(gpa.0 + 8 * i as u64);
            watches.add(mem, at, mask(chunk.len()), u64::from_le_bytes(was))?;
        }
        Some(Site {
            place: *place,
            known,
            watches,
        })
    }

    /// The length of the instruction at `place` that exited as `opcode`, if this site
    /// remembers it and nothing it was read from changed.
    #[inline(always)]
    pub(super) fn length(&self, mem: &GuestMemory, place: &Place, opcode: &[u8]) -> Option<usize> {
        match self.known {
            Known::Length { opcode: o, len } if core::ptr::eq(o, opcode) => {
                self.holds_at(mem, place).then_some(len)
            }
            _ => None,
        }
    }

    /// The instruction at `place`, if this site remembers it decoded and nothing it
    /// was read from changed.
    #[inline(always)]
    pub(super) fn decoded(&self, mem: &GuestMemory, place: &Place) -> Option<Insn> {
        match self.known {
            Known::Decoded(i) => self.holds_at(mem, place).then_some(i),
            _ => None,
        }
    }
}

impl Site {
    /// Whether this site knows the length of the instruction at `place` and nothing
    /// it was read from changed.
    pub(super) fn knows_length_at(&self, mem: &GuestMemory, place: &Place) -> bool {
        matches!(self.known, Known::Length { .. }) && self.holds_at(mem, place)
    }

    /// The length of the instruction at `place`, if this site knows it and nothing it
    /// was read from changed; checked without the memory at hand (a copy kept in a
    /// vCPU, [`crate::in_place`]), whatever exit named the instruction when it was kept.
    ///
    /// # Safety
    /// The memory the site was read from must still live
    /// ([`crate::memory::Watches::hold_in_live_memory`]).
    #[inline(always)]
    pub(crate) unsafe fn length_in_live_memory(&self, place: &Place) -> Option<usize> {
        let Known::Length { len, .. } = self.known else {
            return None;
        };
        // SAFETY: the caller's contract.
        let held = self.place.same(place) && unsafe { self.watches.hold_in_live_memory() };
        held.then_some(len)
    }

    /// At `place` (the linear address alone tells most other sites apart in one
    /// compare, before the whole place is compared), with its walk and bytes as read.
    #[inline(always)]
    fn holds_at(&self, mem: &GuestMemory, place: &Place) -> bool {
        self.place.la == place.la && self.place.same(place) && self.watches.hold(mem)
    }
}

/// The low `len` bytes of a u64 (`len` at most 8).
fn mask(len: usize) -> u64 {
    u64::MAX.checked_shr(64 - 8 * len as u32).unwrap_or(0)
}
