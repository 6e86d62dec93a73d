//! Guest image loaders and the module command line.
pub mod cmdline;
pub mod multiboot1;
