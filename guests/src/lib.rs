//! Guest payloads for Janus: multiboot1 and multiboot2 kernels that run inside the hypervisor, and the
//! small runtime they share (see `rt`). Build with
//! `cargo build --release -p janus-guests --target x86_64-unknown-none --bins`.
//!
//! A guest binary is `#![no_std] #![no_main]` and names its main function with
//! [`entry!`]; the function gets the loader's [`BootInfo`] and must not return.
#![no_std]

pub mod rt;

pub use rt::boot_info::BootInfo;
pub use rt::cpu::{cpuid, exit, inb, inl, inw, outb, outl, outw, rdmsr, vendor};
pub use rt::hypercall::hypercall;
pub use rt::memmap::MmapEntry;
pub use rt::multiboot::MultibootInfo;
pub use rt::suite::Suite;

/// Names the guest's main function: `fn main(boot: &BootInfo) -> !`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn janus_guest_main(boot: &$crate::BootInfo) -> ! {
            let main: fn(&$crate::BootInfo) -> ! = $main;
            main(boot)
        }
    };
}
