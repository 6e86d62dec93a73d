//! Rows that boot a suite without Janus, to show that the suite tests the protocol and
//! not Janus' reading of it (issue #10):
//! - `grub mb2`: GRUB's own `multiboot2` and `module2` load the mb2 suite (an ISO whose
//!   grub.cfg boots it directly; Multiboot2 Specification version 2.0);
//! - `qemu -kernel`: QEMU's own multiboot loader and fw_cfg run the qemukernel suite
//!   (`-kernel`, `-append`, `-initrd "FILE ARGS,..."`; QEMU boots the kernel, not the CD).
//!   Both get the fixtures' command line and modules (guests/src/rt/fixtures.rs), as the
//!   suites do under Janus.
//! - `qemu -kernel smp, N CPUs`: QEMU's loader runs the smp suite with `-append cpus=N`
//!   on a machine of N CPUs (`-smp N`, from the row's CPU count): the suite's start-up,
//!   IPI and IOAPIC checks hold on emulated hardware before they judge Janus (issue #11).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::matrix::{fixture_file, fixtures, MB2, QEMUKERNEL};
use crate::{build, iso};

/// The suite GRUB boots, and the one QEMU's -kernel boots.
pub const GRUB_SUITE: &str = MB2;
pub const QEMU_SUITE: &str = QEMUKERNEL;
/// The guest-SMP suite (guests/src/bin/smp.rs), booted by QEMU's -kernel on N CPUs.
pub const SMP_SUITE: &str = "smp";

/// Which loader a bare row uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    Grub,
    QemuKernel,
    /// QEMU's -kernel booting the smp suite on a machine of this many CPUs.
    Smp(u32),
}

/// The bare rows' loaders, in matrix order.
pub const LOADERS: [Loader; 4] = [
    Loader::Grub,
    Loader::QemuKernel,
    Loader::Smp(2),
    Loader::Smp(4),
];

impl Loader {
    /// The suite it boots.
    pub fn suite(self) -> &'static str {
        match self {
            Loader::Grub => GRUB_SUITE,
            Loader::QemuKernel => QEMU_SUITE,
            Loader::Smp(_) => SMP_SUITE,
        }
    }

    /// The row's label after the model: `grub mb2`, `qemu -kernel`, `qemu -kernel smp,
    /// 2 CPUs`.
    pub fn what(self) -> String {
        match self {
            Loader::Grub => "grub mb2".into(),
            Loader::QemuKernel => "qemu -kernel".into(),
            Loader::Smp(n) => format!("qemu -kernel smp, {n} CPUs"),
        }
    }

    /// The stem of its logs.
    pub fn stem(self) -> String {
        match self {
            Loader::Grub => "grub-mb2".into(),
            Loader::QemuKernel => "qemu-kernel".into(),
            Loader::Smp(n) => format!("bare-smp{n}"),
        }
    }

    /// The emulated machine's CPUs.
    pub fn cpus(self) -> u32 {
        match self {
            Loader::Smp(n) => n,
            Loader::Grub | Loader::QemuKernel => 1,
        }
    }

    /// The QEMU arguments beyond the ISO: none for GRUB; `-kernel`, `-append` and
    /// `-initrd` for QEMU's own loader; `-kernel` and `-append cpus=N` for the smp
    /// suite (the row's CPU count gives `-smp N`).
    pub fn qemu_args(self, root: &Path) -> Vec<String> {
        match self {
            Loader::Grub => Vec::new(),
            Loader::QemuKernel => qemu_kernel_args(root),
            Loader::Smp(n) => vec![
                "-kernel".into(),
                build::guest_bin(root, SMP_SUITE).display().to_string(),
                "-append".into(),
                format!("cpus={n}"),
            ],
        }
    }
}

/// The grub.cfg that boots the mb2 suite from /boot/mb2 with the fixtures as
/// /modules/FILE.
pub fn grub_cfg() -> String {
    let mut cfg = format!(
        "{}menuentry \"{GRUB_SUITE}\" {{\n    multiboot2 /boot/{GRUB_SUITE} {}\n",
        iso::CFG_SERIAL,
        fixtures::CMDLINE
    );
    for m in fixtures::MODULES {
        writeln!(cfg, "    module2 /modules/{} {}", m.file, m.args).unwrap();
    }
    cfg.push_str("    boot\n}\n");
    cfg
}

/// `-kernel BIN -append CMDLINE -initrd "FILE ARGS,FILE ARGS"` for the qemukernel suite.
pub fn qemu_kernel_args(root: &Path) -> Vec<String> {
    let modules: Vec<String> = fixtures::MODULES
        .iter()
        .map(|m| format!("{} {}", fixture_file(root, m.file).display(), m.args))
        .collect();
    vec![
        "-kernel".into(),
        build::guest_bin(root, QEMU_SUITE).display().to_string(),
        "-append".into(),
        fixtures::CMDLINE.into(),
        "-initrd".into(),
        modules.join(","),
    ]
}

/// Builds the guests and the ISO of the bare rows at `out`: GRUB booting the mb2 suite.
pub fn make_iso(root: &Path, out: &Path) -> Result<PathBuf, String> {
    build::guests(root)?;
    let dir = root.join("build/iso/bare");
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io("cannot clear", &dir, e))?;
    }
    let (grub, modules) = (dir.join("boot/grub"), dir.join("modules"));
    for d in [&grub, &modules] {
        std::fs::create_dir_all(d).map_err(|e| io("cannot create", d, e))?;
    }
    let kernel = build::guest_bin(root, GRUB_SUITE);
    std::fs::copy(&kernel, dir.join("boot").join(GRUB_SUITE))
        .map_err(|e| io("cannot copy", &kernel, e))?;
    for m in fixtures::MODULES {
        let f = fixture_file(root, m.file);
        std::fs::copy(&f, modules.join(m.file)).map_err(|e| io("cannot copy", &f, e))?;
    }
    let cfg = grub.join("grub.cfg");
    std::fs::write(&cfg, grub_cfg()).map_err(|e| io("cannot write", &cfg, e))?;
    iso::mkrescue(&dir, out)?;
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_boots_the_mb2_suite_with_the_fixtures() {
        assert_eq!(
            grub_cfg(),
            format!(
                "{}menuentry \"mb2\" {{\n    multiboot2 /boot/mb2 fixture=janus words=3\n    \
                 module2 /modules/alpha.txt index=0 colour=blue\n    \
                 module2 /modules/beta.bin index=1\n    boot\n}}\n",
                iso::CFG_SERIAL
            )
        );
    }

    #[test]
    fn qemu_loads_the_qemukernel_suite_with_the_fixtures() {
        let root = Path::new("/r");
        assert_eq!(
            Loader::QemuKernel.qemu_args(root),
            [
                "-kernel",
                "/r/target/x86_64-unknown-none/release/qemukernel",
                "-append",
                "fixture=janus words=3",
                "-initrd",
                "/r/guests/modules/alpha.txt index=0 colour=blue,/r/guests/modules/beta.bin index=1",
            ]
        );
        assert!(Loader::Grub.qemu_args(root).is_empty());
    }

    /// The smp rows: QEMU's -kernel boots the smp suite, told how many CPUs to find, on
    /// a machine of that many.
    #[test]
    fn smp_loader_tells_the_suite_its_cpu_count() {
        let root = Path::new("/r");
        assert_eq!(
            Loader::Smp(4).qemu_args(root),
            [
                "-kernel",
                "/r/target/x86_64-unknown-none/release/smp",
                "-append",
                "cpus=4"
            ]
        );
        assert_eq!(Loader::Smp(4).cpus(), 4);
        assert_eq!(Loader::QemuKernel.cpus(), 1);
        assert_eq!(Loader::Smp(2).what(), "qemu -kernel smp, 2 CPUs");
        assert_ne!(Loader::Smp(2).stem(), Loader::Smp(4).stem());
        assert_eq!(Loader::Smp(2).suite(), "smp");
    }
}
