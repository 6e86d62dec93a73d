//! CR2 of this CPU. AMD-V keeps the guest's CR2 in the VMCB, and VMRUN loads it from
//! there (APM Vol 2 15.5.1: the guest state VMRUN loads, CR2 among it);
//! #VMEXIT saves it back (15.6). Bochs 2.7's VMRUN saves it but does not load it: the
//! guest kept whatever CR2 the CPU last had, another vCPU's or another guest's last page
//! fault address (found by Linux with 2 vCPUs on one Bochs ryzen: init's copy-on-write
//! fault read the other vCPU's fault address as its own and init was killed; the hostile
//! `snoop` attack reads `plant`'s). So the loaded vCPU's CR2 is written into the CPU
//! too, when it is loaded and when Janus sets it; on hardware VMRUN then loads the same
//! value. Host tests get a per-thread stand-in for the register instead.

/// Writes `v` into this CPU's CR2.
#[cfg(not(test))]
pub fn write(v: u64) {
    // SAFETY: Janus runs at CPL 0, where MOV to CR2 cannot fault (APM Vol 2 3.1.2); CR2
    // only reports page-fault addresses, nothing reads it but the guest that owns it.
    unsafe { core::arch::asm!("mov cr2, {}", in(reg) v, options(nostack, nomem, preserves_flags)) };
}

#[cfg(test)]
pub use fake::write;

/// The host tests' CR2: one per test thread.
#[cfg(test)]
pub mod fake {
    use std::cell::Cell;

    std::thread_local! {
        static CR2: Cell<Option<u64>> = const { Cell::new(None) };
    }

    pub fn write(v: u64) {
        CR2.set(Some(v));
    }

    /// What CR2 holds, `None` if nothing wrote it on this thread.
    pub fn hardware() -> Option<u64> {
        CR2.get()
    }
}
