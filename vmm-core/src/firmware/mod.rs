//! Firmware tables the guest finds in its memory, as a PC BIOS would leave them.
pub mod mptable;
