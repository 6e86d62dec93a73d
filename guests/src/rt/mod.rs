//! The guest runtime: multiboot1 entry and long mode, exceptions and interrupts, serial,
//! CPU helpers, time, the PC devices and APICs, hypercalls and the check harness.

pub mod apic;
mod boot;
pub mod cpu;
pub mod hypercall;
pub mod idt;
pub mod irq;
pub mod multiboot;
mod panic;
pub mod pc;
pub mod serial;
pub mod suite;
pub mod time;
pub mod x86;
