//! Address-space newtypes. Janus deals with three kinds of address and never mixes them:
//! guest-physical (what the guest's page tables produce), host-physical (what the nested
//! page tables point at) and guest-virtual (what guest instructions use).

use core::fmt;

macro_rules! address {
    ($(#[$doc:meta])* $name:ident, $tag:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// `self + off`, or `None` on overflow.
            pub const fn checked_add(self, off: u64) -> Option<Self> {
                match self.0.checked_add(off) { Some(v) => Some(Self(v)), None => None }
            }
            pub const fn is_aligned(self, align: u64) -> bool { self.0 & (align - 1) == 0 }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($tag, ":{:#x}"), self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{:#x}", self.0) }
        }
    };
}

address!(
    /// A guest-physical address.
    GuestPhys, "gpa");
address!(
    /// A host-physical address (what EPT/NPT entries hold).
    HostPhys, "hpa");
address!(
    /// A guest-virtual (linear) address.
    GuestVirt, "gva");

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const PAGE_4K: u64 = 4 * KIB;
pub const PAGE_2M: u64 = 2 * MIB;
