//! The panic handler: prints `panic: ...` and ends the guest with status 0xFF.

use super::{cpu, suite};
use crate::println;

/// The exit status of a guest that panicked.
pub const PANIC_EXIT_STATUS: u32 = 0xff;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(l) => println!(
            "panic: {} at {}:{}:{}",
            info.message(),
            l.file(),
            l.line(),
            l.column()
        ),
        None => println!("panic: {}", info.message()),
    }
    suite::report_abort(format_args!("panic"));
    cpu::exit(PANIC_EXIT_STATUS)
}
