//! Device models: state machines, each a [`crate::platform::bus::Device`] (read/write at
//! an offset) that the platform's port and memory buses route to, unit-tested on the
//! host. The rust-vmm device crates need std, which a bare-metal VMM does not have, so
//! these are our own.
pub mod acpi_pm;
pub mod apic_page;
pub mod fw_cfg;
pub mod ioapic;
pub mod lapic;
pub mod legacy;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod rtc;
pub mod uart16550;
pub mod vectors;
