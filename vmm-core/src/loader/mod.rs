//! Guest image loaders and the module command line.
pub mod bootarea;
pub mod cmdline;
pub mod e820;
pub mod elf;
pub mod image;
pub mod le;
pub mod linux;
pub mod modules;
pub mod multiboot1;
pub mod multiboot2;
#[cfg(test)]
mod samples;
