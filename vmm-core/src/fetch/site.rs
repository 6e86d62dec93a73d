//! The last exit site: where the instruction an exit named (CPUID, a hypercall, an MSR
//! access...) lay and how long it was, with everything its length was read from, so
//! that the next exit at the same place (a guest's loop) is answered by a few compares
//! and a handful of loads instead of a fetch through the code-page cache (on AMD-V
//! without NRIP save, every such exit needs its length: `cargo janus bench exits`).
//!
//! Nothing is trusted: a hit needs the same linear address, paging registers,
//! privilege, CS attributes and instruction, every page-table entry of the walk that
//! found the code page still as read, and the instruction's bytes still the same.

use super::Place;
use crate::addr::GuestPhys;
use crate::memory::{GuestMemory, Watches};
use crate::walk::Trail;

/// The longest instruction a site keeps: its bytes are watched as one 8-byte load.
const MAX_LEN: usize = 8;

#[derive(Clone, Debug)]
pub(super) struct Site {
    place: Place,
    /// The opcode the exit named (compared by address: each is a `'static` constant).
    opcode: &'static [u8],
    len: usize,
    /// The entries of the walk to the code page (up to five) and the instruction's bytes.
    watches: Watches<6>,
}

impl Site {
    /// Remembers that the instruction at `place`, named `opcode` by its exit, is
    /// `code` (its bytes, at `gpa`), found through the walk `trail`. `None` for what a
    /// site cannot watch with one load (longer than 8 bytes, or the load would leave the
    /// page) or what changed since it was read.
    pub(super) fn new(
        mem: &GuestMemory,
        place: &Place,
        opcode: &'static [u8],
        (gpa, code): (GuestPhys, &[u8]),
        trail: &Trail,
    ) -> Option<Site> {
        let len = code.len();
        if len > MAX_LEN || gpa.0 & 0xfff > 0x1000 - MAX_LEN as u64 {
            return None;
        }
        let mut watches = Watches::new(mem);
        trail.watch(mem, &mut watches)?;
        let mut was = [0u8; MAX_LEN];
        was[..len].copy_from_slice(code);
        watches.add(mem, gpa, mask(len), u64::from_le_bytes(was))?;
        Some(Site {
            place: *place,
            opcode,
            len,
            watches,
        })
    }

    /// The length of the instruction at `place` that exited as `opcode`, if it is the
    /// one this site remembers and nothing it was read from changed.
    #[inline(always)]
    pub(super) fn length(&self, mem: &GuestMemory, place: &Place, opcode: &[u8]) -> Option<usize> {
        let same = self.place.same(place) && core::ptr::eq(self.opcode, opcode);
        (same && self.watches.hold(mem)).then_some(self.len)
    }
}

/// The low `len` bytes of a u64 (`len` at most 8).
fn mask(len: usize) -> u64 {
    u64::MAX.checked_shr(64 - 8 * len as u32).unwrap_or(0)
}
