//! Guest image loaders and the module command line.
pub mod cmdline;
pub mod e820;
pub mod linux;
pub mod modules;
pub mod multiboot1;
#[cfg(test)]
mod samples;
