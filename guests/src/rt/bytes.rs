//! Little-endian fields of byte slices, for the parsers of what loaders and firmware
//! hand over (pure code: the host tests of `janus-ci` compile it too).

/// The little-endian u32 at byte `at` of `b` (0 past the end).
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at.saturating_add(4))
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// The little-endian u64 at byte `at` of `b` (0 past the end).
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at.saturating_add(8))
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}
