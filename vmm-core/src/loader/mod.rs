//! Guest image loaders and the module command line.
pub mod cmdline;
pub mod multiboot1;
pub mod e820;
pub mod linux;
