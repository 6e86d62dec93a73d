//! An application processor's stacks, with guard pages: a 2 MiB block of host memory
//! whose 2 MiB mapping is split into 4 KiB pages (SDM Vol 3A 5.5, 4-level paging) so that
//! two pages can be left unmapped: the lowest, under the stack, and one between the
//! stack and the double-fault stack above it. An overflow then faults (#PF, then #DF on
//! the double-fault stack, which reports it) instead of overwriting what lies below.
//!
//! Layout of the block: page 0 guard, pages 1-507 the stack (its top at page 508),
//! page 508 guard, pages 509-511 the double-fault stack.

use crate::frames::HostFrames;
use vmm_core::addr::{MIB, PAGE_4K};
use vmm_core::nested::FrameAllocator;

const BLOCK: u64 = 2 * MIB;
const GUARDS: [u64; 2] = [0, 508];
const PRESENT_WRITABLE: u64 = 0b11;

extern "C" {
    /// The boot page directories of entry.rs: 2048 entries of 2 MiB for 4 GiB.
    static boot_pd: [u64; 2048];
}

pub struct ApStack {
    pub top: u64,
    pub df_top: u64,
}

/// A new stack pair with its guard pages unmapped.
pub fn alloc(frames: &mut HostFrames) -> Result<ApStack, &'static str> {
    let (block, _) = frames
        .alloc_ram(BLOCK, BLOCK)
        .ok_or("no memory for its stack")?;
    let pt = frames
        .alloc_table()
        .ok_or("no memory for its stack's page table")?;
    let table = frames.table(pt);
    for (i, e) in table.iter_mut().enumerate() {
        let page = i as u64;
        *e = if GUARDS.contains(&page) {
            0
        } else {
            (block.0 + page * PAGE_4K) | PRESENT_WRITABLE
        };
    }
    let index = (block.0 / BLOCK) as usize;
    // SAFETY: the block is ours (just allocated) and below 4 GiB, so `index` is inside
    // the boot page directories; the new table maps the same addresses to the same
    // frames but for the guard pages, which nothing uses. The CR3 reload drops the old
    // 2 MiB translation on this CPU; the other CPUs have not used the block.
    unsafe {
        let pd = core::ptr::addr_of!(boot_pd) as *mut u64;
        pd.add(index).write_volatile(pt.0 | PRESENT_WRITABLE);
        x86::controlregs::cr3_write(x86::controlregs::cr3());
    }
    Ok(ApStack {
        top: block.0 + GUARDS[1] * PAGE_4K,
        df_top: block.0 + BLOCK,
    })
}
