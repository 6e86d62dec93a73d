//! Firmware tables: the ones the guest finds in its memory, as a PC BIOS would leave them
//! (`acpi`, `mptable`), and the parsers that find the host's own CPUs in its firmware's
//! (`hostcpus`, `madt`, `mpscan`).
pub mod acpi;
pub mod hostcpus;
pub mod madt;
pub mod mpscan;
pub mod mptable;

/// The sum of `bytes` mod 256: 0 for every well-formed ACPI and MP structure (ACPI 6.5
/// 5.2.5.3, MP spec 1.4 4.1).
pub fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

/// The byte that makes `bytes` sum to 0 (mod 256) when stored in a zeroed checksum field.
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(sum(bytes))
}

/// The bytes of a `repr(C, packed)` structure made of integers and byte arrays.
///
/// # Safety
/// `T` must have no padding (every type here is packed and made of integers).
unsafe fn bytes_of<T>(v: &T) -> &[u8] {
    // SAFETY: per the caller, all size_of::<T>() bytes of *v are initialised.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
}

/// `as_bytes()` for firmware table structures (`repr(C, packed)`, integers only).
macro_rules! as_bytes {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn as_bytes(&self) -> &[u8] {
                // SAFETY: the type is repr(C, packed) and made of integers: no padding.
                unsafe { super::bytes_of(self) }
            }
        }
    )*};
}
use as_bytes;
