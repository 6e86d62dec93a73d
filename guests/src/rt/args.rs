//! The multiboot command line (Multiboot 0.6.96, 3.3: `cmdline`, valid when `flags` bit 2
//! is set) and its `key=value` words. Janus passes a guest its module's `cmdline=` (or
//! the rest of the module line) here.

use super::multiboot::BootInfo;

/// `flags` bit 2: `cmdline` is valid.
pub const FLAG_CMDLINE: u32 = 1 << 2;
/// The longest command line read (Janus' loader allows less).
const MAX_LEN: usize = 4096;

/// The command line, or "" when there is none or it is not UTF-8.
pub fn cmdline(boot: &BootInfo) -> &'static str {
    let Some(info) = boot.info() else {
        return "";
    };
    if !info.has(FLAG_CMDLINE) || info.cmdline == 0 {
        return "";
    }
    let p = info.cmdline as usize as *const u8;
    let mut len = 0;
    // SAFETY: the loader put a NUL-terminated string at `cmdline` in identity-mapped
    // low memory; the scan stops at the NUL or after MAX_LEN bytes.
    while len < MAX_LEN && unsafe { p.add(len).read() } != 0 {
        len += 1;
    }
    // SAFETY: `len` bytes from `p` were just read.
    let bytes = unsafe { core::slice::from_raw_parts(p, len) };
    core::str::from_utf8(bytes).unwrap_or("")
}

/// The value of the first whitespace-separated `key=value` word, if any.
pub fn arg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// A decimal or `0x` hexadecimal number.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
