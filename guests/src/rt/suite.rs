//! The check harness: `check NAME: ok` / `check NAME: FAIL (detail)` lines and a final
//! `SUITE: PASS (N checks)` / `SUITE: FAIL (F of N checks failed)` line.

use super::cpu::exit;
use crate::println;
use core::fmt;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// The exit status of a suite whose checks all passed.
pub const PASS_STATUS: u32 = 0;
/// The exit status of a suite with failed checks.
pub const FAIL_STATUS: u32 = 1;

// The running suite's name and counts, for the exception and panic handlers.
static NAME_PTR: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static NAME_LEN: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

/// A guest test suite. Only one runs per guest.
pub struct Suite {
    name: &'static str,
    total: u32,
    failed: u32,
}

impl Suite {
    /// Starts the suite `name`.
    pub fn new(name: &'static str) -> Suite {
        NAME_PTR.store(name.as_ptr() as *mut u8, Ordering::Relaxed);
        NAME_LEN.store(name.len(), Ordering::Relaxed);
        Suite {
            name,
            total: 0,
            failed: 0,
        }
    }

    /// Records one check; `detail` is printed when it failed. Returns `ok`.
    pub fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments) -> bool {
        self.total += 1;
        TOTAL.store(self.total, Ordering::Relaxed);
        if ok {
            println!("check {}: ok", name);
        } else {
            self.failed += 1;
            FAILED.store(self.failed, Ordering::Relaxed);
            println!("check {}: FAIL ({})", name, detail);
        }
        ok
    }

    /// Like [`Suite::check`], but a passing check prints `check NAME: ok (NOTE)`: for
    /// checks whose outcome depends on a CPUID bit, to say which way it went.
    pub fn check_note(
        &mut self,
        name: &str,
        ok: bool,
        note: fmt::Arguments,
        detail: fmt::Arguments,
    ) -> bool {
        self.total += 1;
        TOTAL.store(self.total, Ordering::Relaxed);
        if ok {
            println!("check {}: ok ({})", name, note);
        } else {
            self.failed += 1;
            FAILED.store(self.failed, Ordering::Relaxed);
            println!("check {}: FAIL ({})", name, detail);
        }
        ok
    }

    /// Checks run so far.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Checks failed so far.
    pub fn failed(&self) -> u32 {
        self.failed
    }

    /// Prints the verdict and ends the guest: status 0 on pass, 1 on failure.
    pub fn finish(self) -> ! {
        if self.failed == 0 {
            println!("{}: PASS ({} checks)", self.name, self.total);
            exit(PASS_STATUS)
        } else {
            println!(
                "{}: FAIL ({} of {} checks failed)",
                self.name, self.failed, self.total
            );
            exit(FAIL_STATUS)
        }
    }
}

/// Prints the running suite's verdict when it cannot finish (an exception or a panic).
pub(crate) fn report_abort(why: fmt::Arguments) {
    let ptr = NAME_PTR.load(Ordering::Relaxed);
    if ptr.is_null() {
        return;
    }
    // SAFETY: the pointer and length come from a `&'static str` stored by `Suite::new`.
    let name = unsafe {
        core::str::from_utf8_unchecked(core::slice::from_raw_parts(
            ptr,
            NAME_LEN.load(Ordering::Relaxed),
        ))
    };
    println!(
        "{}: FAIL ({}, after {} checks, {} failed)",
        name,
        why,
        TOTAL.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed)
    );
}
