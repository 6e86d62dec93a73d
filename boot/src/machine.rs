//! Ending the machine with a code a test harness can read (docs/console.md).

pub use vmm_core::machine_end::EndCode;

/// Writes the code to QEMU's debug-exit port 0xf4 (QEMU exits with `code << 1 | 1`),
/// then "Shutdown" to Bochs' port 0x8900, then halts for good (real hardware).
pub fn end(code: EndCode) -> ! {
    crate::console::drain();
    // SAFETY: port writes to 0xf4 and 0x8900 are only decoded by emulators' exit devices;
    // on a PC without them they go nowhere. Interrupts stay off and the CPU halts after.
    unsafe {
        x86::io::outb(0xf4, code as u8);
        for b in b"Shutdown" {
            x86::io::outb(0x8900, *b);
        }
        loop {
            x86::irq::disable();
            x86::halt();
        }
    }
}
