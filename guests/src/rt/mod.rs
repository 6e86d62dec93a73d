//! The guest runtime: multiboot1 and multiboot2 entry and long mode, the boot
//! information of both protocols (and checks of it), QEMU's fw_cfg, exceptions and
//! interrupts, serial, CPU helpers, time, the PC devices and APICs, hypercalls and the
//! check harness, the command line, free RAM, SSE/x87 and debug registers, CPL 3, the
//! CPUs the firmware lists and application processors.

pub mod apic;
pub mod args;
mod boot;
pub mod boot_checks;
pub mod boot_info;
pub mod bytes;
pub mod cpu;
pub mod cpu_list;
pub mod dr;
pub mod fixtures;
pub mod fpu;
pub mod fw_cfg;
pub mod hypercall;
pub mod idt;
pub mod irq;
pub mod mb2_tags;
pub mod memmap;
pub mod multiboot;
mod panic;
pub mod pc;
pub mod phys;
pub mod ram;
pub mod ranges;
pub mod serial;
pub mod smp;
pub mod suite;
pub mod time;
pub mod user;
pub mod x86;
