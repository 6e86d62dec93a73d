//! Reads of what a loader left in physical memory (the boot information, its strings,
//! the modules). The runtime identity-maps the first GiB ([`super::ram`]), so a physical
//! address below that is a pointer; addresses above it read as nothing.

/// The end of the identity map the entry code builds.
pub const MAPPED_END: u64 = 0x4000_0000;

/// `len` bytes at physical `addr`, or `None` when they are not all identity-mapped (or
/// the address is 0).
pub fn bytes(addr: u64, len: u64) -> Option<&'static [u8]> {
    let end = addr.checked_add(len)?;
    if addr == 0 || end > MAPPED_END {
        return None;
    }
    // SAFETY: [addr, end) lies in the identity map of RAM set up by the entry code; the
    // loader's data is never written by the guest, so a shared slice of it is sound.
    Some(unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len as usize) })
}

/// The NUL-terminated string at `addr` (without the NUL), at most `max` bytes; `None`
/// when it is not mapped or not UTF-8.
pub fn c_str(addr: u64, max: u64) -> Option<&'static str> {
    let room = max.min(MAPPED_END.saturating_sub(addr));
    let all = bytes(addr, room)?;
    let len = all.iter().position(|&b| b == 0).unwrap_or(all.len());
    core::str::from_utf8(&all[..len]).ok()
}
