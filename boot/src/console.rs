//! Janus' console: COM1 through `uart_16550`, the `say!` macro for protocol lines
//! (docs/console.md) and a `log` backend for diagnostics.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;

static COM1: Mutex<Option<SerialPort>> = Mutex::new(None);

pub fn init() {
    // SAFETY: 0x3f8 is the PC's COM1; Janus is the only user of these ports.
    let mut port = unsafe { SerialPort::new(0x3f8) };
    port.init();
    *COM1.lock() = Some(port);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Writes formatted text to COM1 (before `init`, output is dropped).
pub fn print(args: fmt::Arguments<'_>) {
    if let Some(port) = COM1.lock().as_mut() {
        let _ = port.write_fmt(args);
    }
}

/// Prints from a context that may have interrupted a print (an exception handler):
/// takes the port without waiting for the lock.
pub fn print_emergency(args: fmt::Arguments<'_>) {
    // SAFETY: Janus runs on one CPU with interrupts off; the only way here while the lock
    // is held is an exception inside `print`, which will not resume, so sharing is fine.
    let mut port = unsafe { SerialPort::new(0x3f8) };
    let _ = port.write_fmt(args);
}

/// A protocol line: `janus: ...` and a newline.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::console::print(format_args!("janus: {}\n", format_args!($($arg)*))) };
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        print(format_args!("janus: {}: {}\n", level, r.args()));
    }
    fn flush(&self) {}
}

/// Waits until COM1 has sent everything (LSR bit 6, transmitter empty), so that the
/// last line is not lost when the machine ends (Bochs drops what is still queued).
pub fn drain() {
    for _ in 0..1_000_000 {
        // SAFETY: reading COM1's line status register has no side effects.
        if unsafe { x86::io::inb(0x3fd) } & 0x40 != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}
