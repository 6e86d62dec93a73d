//! The boot stack's low end, watched: a canary in its lowest bytes that the scheduler
//! checks between slices. Janus maps memory with 2 MiB pages and has no guard page yet, so
//! an overflow would otherwise run silently into what lies below (it did once, into the
//! boot page tables, with 22 guests' state on a 1 MiB stack; the stack is 8 MiB now).

extern "C" {
    static boot_stack: u8;
}

const CANARY: u64 = 0x5354_4143_4b5f_4f4b; // "KO_KCATS"
const WORDS: usize = 64;

fn bottom() -> *mut u64 {
    // SAFETY: only the symbol's address is taken; entry.rs defines it in .bss.
    unsafe { &boot_stack as *const u8 as *mut u64 }
}

/// Writes the canary; called once at boot, long before the stack could reach it.
pub fn arm() {
    for i in 0..WORDS {
        // SAFETY: the lowest WORDS words of the 8 MiB boot stack, far below the live frames.
        unsafe { bottom().add(i).write_volatile(CANARY) };
    }
}

/// Ends Janus with a clear line if the stack has reached its lowest bytes.
pub fn check() {
    // SAFETY: as in `arm`; reading the words has no side effects.
    let intact = (0..WORDS).all(|i| unsafe { bottom().add(i).read_volatile() } == CANARY);
    if !intact {
        panic!("the boot stack overflowed (its lowest bytes were overwritten)");
    }
}
