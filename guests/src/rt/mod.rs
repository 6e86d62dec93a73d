//! The guest runtime: multiboot1 entry and long mode, exceptions and interrupts, serial,
//! CPU helpers, time, the PC devices and APICs, hypercalls and the check harness, the
//! command line, free RAM, SSE/x87 and debug registers, and CPL 3.

pub mod apic;
pub mod args;
mod boot;
pub mod cpu;
pub mod dr;
pub mod fpu;
pub mod hypercall;
pub mod idt;
pub mod irq;
pub mod multiboot;
mod panic;
pub mod pc;
pub mod ram;
pub mod serial;
pub mod suite;
pub mod time;
pub mod user;
pub mod x86;
