//! Janus' console: COM1 (set up by `uart_16550`), the `say!` macro for protocol lines
//! (docs/console.md) and a `log` backend for diagnostics.
//!
//! Output goes through a 64 KiB ring that is drained whenever the UART's FIFO is empty,
//! without waiting for it: a real or emulated 16550 at 115200 baud takes 87 us per byte,
//! and a guest whose console lines Janus forwards must not stand still (and miss its
//! timer ticks) while they trickle out. `pump` runs on every exit; a full ring, an idle
//! CPU and the end of the machine wait for the UART instead.
//!
//! Guests share the ring fairly ([`guest_line`]): a guest's line is taken while the ring
//! is less than half full, or while that guest has less than [`SHARE`] bytes in it; the
//! other half is the reserve that makes the second rule always hold. So a guest that
//! floods its console waits for its own lines to go out (its UART reads busy), and any
//! other guest's line waits at most for one ring of output ahead of it.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use uart_16550::SerialPort;
use x86::io::{inb, outb};

const DATA: u16 = 0x3f8;
const LSR: u16 = 0x3fd;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LSR_TX_EMPTY: u8 = 1 << 6;
/// The 16550's transmit FIFO: this many bytes may follow an empty-THR indication.
const FIFO: usize = 16;
const RING: usize = 64 * 1024;
/// Most guests with lines in the ring (the scheduler's `MAX_VCPUS`).
const OWNERS: usize = vmm_core::sched::MAX_VCPUS;
/// A guest's share of the ring's reserve half.
pub const SHARE: usize = RING / 2 / OWNERS;
/// The owner byte of Janus' own output.
const JANUS: u8 = u8::MAX;

struct Ring {
    buf: [u8; RING],
    /// Who queued each byte of `buf` (a guest's console owner number, or [`JANUS`]), so
    /// that a sent byte comes off its owner's count.
    owner: [u8; RING],
    head: usize,
    len: usize,
    /// Bytes of each guest in the ring.
    queued: [usize; OWNERS],
}

static OUT: Mutex<Ring> = Mutex::new(Ring {
    buf: [0; RING],
    owner: [JANUS; RING],
    head: 0,
    len: 0,
    queued: [0; OWNERS],
});
static READY: AtomicBool = AtomicBool::new(false);
/// Whether the ring holds bytes (checked without the lock on every exit).
static PENDING: AtomicBool = AtomicBool::new(false);

fn lsr() -> u8 {
    // SAFETY: reading COM1's line status register has no side effects; Janus owns COM1.
    unsafe { inb(LSR) }
}

impl Ring {
    /// Sends what the UART can take now (up to a FIFO's worth when THR is empty).
    fn pump(&mut self) {
        if self.len > 0 && lsr() & LSR_THR_EMPTY != 0 {
            for _ in 0..FIFO.min(self.len) {
                // SAFETY: writing COM1's data register transmits one byte; Janus owns COM1.
                unsafe { outb(DATA, self.buf[self.head]) };
                self.sent_one();
                self.head = (self.head + 1) % RING;
                self.len -= 1;
            }
        }
        PENDING.store(self.len > 0, Ordering::Relaxed);
    }

    /// The oldest byte went out: its owner has one byte less in the ring.
    fn sent_one(&mut self) {
        if let Some(q) = self.queued.get_mut(usize::from(self.owner[self.head])) {
            *q -= 1;
        }
    }

    /// Queues `b` for `owner`, waiting for the UART while the ring is full.
    fn push_as(&mut self, owner: u8, b: u8) {
        while self.len == RING {
            self.pump();
            core::hint::spin_loop();
        }
        let at = (self.head + self.len) % RING;
        self.buf[at] = b;
        self.owner[at] = owner;
        self.len += 1;
        if let Some(q) = self.queued.get_mut(usize::from(owner)) {
            *q += 1;
        }
    }

    fn push(&mut self, b: u8) {
        self.push_as(JANUS, b);
    }

    /// Whether `owner` may queue `n` more bytes (see the module's comment).
    fn has_room(&self, owner: u8, n: usize) -> bool {
        let mine = self
            .queued
            .get(usize::from(owner))
            .copied()
            .unwrap_or(usize::MAX);
        self.len + n <= RING / 2 || (mine + n <= SHARE && self.len + n <= RING)
    }

    fn flush(&mut self) {
        while self.len > 0 {
            self.pump();
            core::hint::spin_loop();
        }
    }
}

impl fmt::Write for Ring {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            self.push(b);
        }
        Ok(())
    }
}

pub fn init() {
    // SAFETY: 0x3f8 is the PC's COM1; Janus is the only user of these ports.
    let mut port = unsafe { SerialPort::new(DATA) };
    // 115200 8N1 with the FIFOs on.
    port.init();
    READY.store(true, Ordering::Relaxed);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Queues formatted text for COM1 and sends what the UART takes now (before `init`,
/// output is dropped).
pub fn print(args: fmt::Arguments<'_>) {
    if !READY.load(Ordering::Relaxed) {
        return;
    }
    let mut out = OUT.lock();
    let _ = out.write_fmt(args);
    out.pump();
}

/// Queues a guest's console line, `[NAME] text`, if the guest `owner` has room for it in
/// the ring; `false` if not (the guest tries again later).
pub fn guest_line(owner: u8, name: &str, text: &str) -> bool {
    if !READY.load(Ordering::Relaxed) {
        return true;
    }
    let mut out = OUT.lock();
    out.pump();
    let n = name.len() + text.len() + 4;
    if !out.has_room(owner, n) {
        return false;
    }
    for part in [
        b"[" as &[u8],
        name.as_bytes(),
        b"] ",
        text.as_bytes(),
        b"\n",
    ] {
        for &b in part {
            out.push_as(owner, b);
        }
    }
    out.pump();
    true
}

/// Sends queued output the UART can take now, without waiting.
pub fn pump() {
    if PENDING.load(Ordering::Relaxed) {
        OUT.lock().pump();
    }
}

/// Sends queued output the UART can take now, without waiting; whether some is left
/// ([`vmm_core::vm::HostHooks::service`]).
pub fn service() -> bool {
    pump();
    pending()
}

/// Whether output is still queued.
pub fn pending() -> bool {
    PENDING.load(Ordering::Relaxed)
}

/// Prints from a context that may have interrupted a print (an exception handler):
/// takes the port without waiting for the lock.
pub fn print_emergency(args: fmt::Arguments<'_>) {
    // What was queued before comes first, if the ring is not the thing that faulted.
    if let Some(mut out) = OUT.try_lock() {
        out.flush();
    }
    // SAFETY: Janus runs with interrupts off; the lock is held here either by an
    // exception inside `print`, which will not resume, or by another host CPU, whose
    // bytes may interleave with these last lines before the machine ends: no memory is
    // shared through the port, only the UART's output.
    let mut port = unsafe { SerialPort::new(DATA) };
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
    if let Some(mut out) = OUT.try_lock() {
        out.flush();
    }
    for _ in 0..1_000_000 {
        if lsr() & LSR_TX_EMPTY != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}
