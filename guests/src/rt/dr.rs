//! The debug registers DR0-DR3, DR6 and DR7 (SDM Vol 3B 18.2).

use core::arch::asm;

/// DR7 after RESET (SDM Vol 3B 18.2.4): only the reserved bit 10 set.
pub const DR7_RESET: u64 = 0x400;
/// DR6 after RESET: reserved bits set.
pub const DR6_RESET: u64 = 0xffff_0ff0;

macro_rules! dr {
    ($read:ident, $write:ident, $dr:literal) => {
        #[doc = concat!("Reads ", $dr, ".")]
        pub fn $read() -> u64 {
            let v: u64;
            // SAFETY: reading a debug register at CPL 0 has no side effects.
            unsafe { asm!(concat!("mov {}, ", $dr), out(reg) v, options(nostack, nomem, preserves_flags)) };
            v
        }
        #[doc = concat!("Writes ", $dr, " (#GP for reserved bits in DR6/DR7).")]
        pub fn $write(v: u64) {
            // SAFETY: changes only the debug register; the caller owns what a
            // breakpoint it enables does.
            unsafe { asm!(concat!("mov ", $dr, ", {}"), in(reg) v, options(nostack, nomem, preserves_flags)) };
        }
    };
}

dr!(read_dr0, write_dr0, "dr0");
dr!(read_dr1, write_dr1, "dr1");
dr!(read_dr2, write_dr2, "dr2");
dr!(read_dr3, write_dr3, "dr3");
dr!(read_dr6, write_dr6, "dr6");
dr!(read_dr7, write_dr7, "dr7");

/// DR0-DR3.
pub fn read_addr_regs() -> [u64; 4] {
    [read_dr0(), read_dr1(), read_dr2(), read_dr3()]
}

/// Loads DR0-DR3 (breakpoints stay off unless DR7 enables them).
pub fn write_addr_regs(v: &[u64; 4]) {
    write_dr0(v[0]);
    write_dr1(v[1]);
    write_dr2(v[2]);
    write_dr3(v[3]);
}
