//! Operand sizes of guest accesses (1, 2, 4 or 8 bytes).

/// The low `size` bytes of a value: the bits an access of `size` bytes carries.
pub const fn size_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * size as u32)) - 1
    }
}
