//! Output to COM1 (0x3f8), polled, and the `print!`/`println!` macros.

use super::cpu::{inb, outb};
use core::fmt;

/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// COM1's line status register.
pub const COM1_LSR: u16 = COM1 + 5;
/// LSR bit 5: the transmit holding register is empty.
pub const LSR_THRE: u8 = 1 << 5;

/// Writes one byte to COM1 once the transmitter can take it. The wait is bounded so a
/// UART that never reports ready slows output down instead of hanging the guest.
pub fn write_byte(b: u8) {
    for _ in 0..100_000 {
        if inb(COM1_LSR) & LSR_THRE != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    outb(COM1, b);
}

/// Writes `bytes` to COM1, turning "\n" into "\r\n".
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            write_byte(b'\r');
        }
        write_byte(b);
    }
}

/// A `core::fmt::Write` sink for COM1. It holds no state, so exception and panic
/// handlers can use it at any time.
pub struct Serial;

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _ = fmt::Write::write_fmt(&mut Serial, args);
}

/// Prints to COM1.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::rt::serial::_print(format_args!($($arg)*)) };
}

/// Prints a line to COM1.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::rt::serial::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
