//! The NPT entry format: ordinary x86-64 page-table entries (APM Vol 2 15.25.5; 5.3.3),
//! with U=1 because nested walks are treated as user accesses (APM Vol 2 15.25.5).

use vmm_core::addr::HostPhys;
use vmm_core::nested::{EntryFormat, ADDR_MASK};

const PRESENT: u64 = 1 << 0;
const WRITE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const LARGE: u64 = 1 << 7;

pub struct Npt;

impl EntryFormat for Npt {
    fn table(&self, next: HostPhys) -> u64 {
        (next.0 & ADDR_MASK) | PRESENT | WRITE | USER
    }
    fn leaf(&self, hpa: HostPhys, large: bool) -> u64 {
        (hpa.0 & ADDR_MASK) | PRESENT | WRITE | USER | if large { LARGE } else { 0 }
    }
    fn present(&self, e: u64) -> bool {
        e & PRESENT != 0
    }
    fn is_large(&self, e: u64) -> bool {
        e & LARGE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_user_writable_entries() {
        assert_eq!(Npt.leaf(HostPhys(0x4020_0000), true), 0x4020_0087);
        assert_eq!(Npt.leaf(HostPhys(0x4020_1000), false), 0x4020_1007);
        assert_eq!(Npt.table(HostPhys(0x5000)), 0x5007);
    }
}
