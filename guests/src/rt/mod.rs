//! The guest runtime: multiboot1 entry and long mode, exceptions, serial, CPU helpers,
//! hypercalls and the check harness.

mod boot;
pub mod cpu;
pub mod hypercall;
pub mod idt;
pub mod multiboot;
mod panic;
pub mod serial;
pub mod suite;
