//! The command line and multiboot modules the `mb2` and `qemukernel` suites are booted
//! with (pure data: `janus-ci` compiles this file too and writes the module lines from
//! it, so the suites and the matrix cannot disagree). The files are guests/modules/*.

/// A module: its file in guests/modules, the words after the file name on its module
/// line (its string is "PATH ARGS"), and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Fixture {
    pub file: &'static str,
    pub args: &'static str,
    pub bytes: &'static [u8],
}

/// The modules, in order: a short text, and 5,000 bytes of binary (NULs included) that
/// span two pages.
pub const MODULES: [Fixture; 2] = [
    Fixture {
        file: "alpha.txt",
        args: "index=0 colour=blue",
        bytes: include_bytes!("../../modules/alpha.txt"),
    },
    Fixture {
        file: "beta.bin",
        args: "index=1",
        bytes: include_bytes!("../../modules/beta.bin"),
    },
];

/// The kernel's own command line (after the kernel's path, when the loader puts it
/// first as QEMU's `-kernel` and GRUB's `multiboot` do).
pub const CMDLINE: &str = "fixture=janus words=3";
