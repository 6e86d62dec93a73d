//! Firmware tables the guest finds in its memory, as a PC BIOS would leave them.
pub mod acpi;
pub mod mptable;
