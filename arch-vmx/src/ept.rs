//! The EPT entry format (SDM Vol 3C 29.3.2, Tables 29-1 to 29-6) and the EPT pointer
//! (SDM Vol 3C 25.6.11).

use vmm_core::addr::HostPhys;
use vmm_core::nested::{EntryFormat, ADDR_MASK};

const READ: u64 = 1 << 0;
const WRITE: u64 = 1 << 1;
const EXEC: u64 = 1 << 2;
/// Memory type write-back in bits 5:3 of a leaf.
const MT_WB: u64 = 6 << 3;
const LARGE: u64 = 1 << 7;

pub struct Ept;

impl EntryFormat for Ept {
    fn table(&self, next: HostPhys) -> u64 {
        (next.0 & ADDR_MASK) | READ | WRITE | EXEC
    }
    fn leaf(&self, hpa: HostPhys, large: bool) -> u64 {
        (hpa.0 & ADDR_MASK) | READ | WRITE | EXEC | MT_WB | if large { LARGE } else { 0 }
    }
    fn present(&self, e: u64) -> bool {
        e & (READ | WRITE | EXEC) != 0
    }
    fn is_large(&self, e: u64) -> bool {
        e & LARGE != 0
    }
}

/// The EPTP for a 4-level EPT rooted at `root`, with write-back paging structures.
pub fn eptp(root: HostPhys) -> u64 {
    (root.0 & ADDR_MASK) | (3 << 3) | 6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_leaves_tables_and_the_pointer() {
        assert_eq!(Ept.leaf(HostPhys(0x4020_0000), true), 0x4020_00b7);
        assert_eq!(Ept.leaf(HostPhys(0x4020_1000), false), 0x4020_1037);
        assert_eq!(Ept.table(HostPhys(0x5000)), 0x5007);
        assert!(!Ept.present(0));
        assert_eq!(eptp(HostPhys(0x7000)), 0x701e);
    }
}
