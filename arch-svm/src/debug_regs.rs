//! DR0-DR3 of this CPU, the one piece of guest state AMD-V neither switches nor keeps in
//! the VMCB (VMRUN and #VMEXIT switch DR6 and DR7 only, APM Vol 2 15.5.1, 15.6): the
//! loaded vCPU's breakpoint addresses sit in the hardware registers. Host tests get a
//! per-thread stand-in for the registers instead.

/// Writes the breakpoint addresses into DR0-DR3.
#[cfg(not(test))]
pub fn load_addresses(dr: &[u64; 4]) {
    // SAFETY: Janus runs at CPL 0, where MOV to DR0-DR3 cannot fault (APM Vol 2 13.1.1);
    // the addresses are inert until a DR7 enables them, and touch no memory Rust sees.
    unsafe {
        core::arch::asm!(
            "mov dr0, {}",
            "mov dr1, {}",
            "mov dr2, {}",
            "mov dr3, {}",
            in(reg) dr[0],
            in(reg) dr[1],
            in(reg) dr[2],
            in(reg) dr[3],
            options(nostack, preserves_flags),
        )
    };
}

#[cfg(test)]
pub use fake::load_addresses;

/// The host tests' DR0-DR3: one set per test thread.
#[cfg(test)]
pub mod fake {
    use std::cell::Cell;

    std::thread_local! {
        static DR0_3: Cell<Option<[u64; 4]>> = const { Cell::new(None) };
    }

    pub fn load_addresses(dr: &[u64; 4]) {
        DR0_3.set(Some(*dr));
    }

    /// What DR0-DR3 hold, `None` if nothing wrote them on this thread.
    pub fn hardware() -> Option<[u64; 4]> {
        DR0_3.get()
    }
}
