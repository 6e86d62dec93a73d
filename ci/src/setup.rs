//! Makes sure the host tools are there: emulators, GRUB's ISO maker, binutils, and the
//! Rust target. Missing Debian packages are installed when running as root; otherwise the
//! exact `sudo apt-get install` command is printed.

use std::path::Path;
use std::process::{Command, Stdio};

/// A group of tools one command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// grub-mkrescue and its helpers, plus binutils for the multiboot1 test kernel.
    Iso,
    Qemu,
    Bochs,
    /// Fetching and unpacking Debian's kernel and busybox (the Linux guest).
    Linux,
}

/// One thing to check and the Debian package that provides it.
struct Check {
    what: Probe,
    package: &'static str,
}

enum Probe {
    /// A command on PATH.
    Command(&'static str),
    /// A file or directory that must exist.
    Path(&'static str),
    /// A package that must be installed (for packages that only ship plugins).
    Package(&'static [&'static str]),
}

fn checks(need: Need) -> Vec<Check> {
    use Probe::*;
    let c = |what, package| Check { what, package };
    match need {
        Need::Iso => vec![
            c(Command("grub-mkrescue"), "grub-common"),
            c(Path("/usr/lib/grub/i386-pc"), "grub-pc-bin"),
            c(Command("xorriso"), "xorriso"),
            c(Command("mformat"), "mtools"),
            c(Command("as"), "binutils"),
            c(Command("ld"), "binutils"),
        ],
        Need::Qemu => vec![c(Command("qemu-system-x86_64"), "qemu-system-x86")],
        Need::Bochs => vec![
            c(Command("bochs-bin"), "bochs"),
            // `display_library: term` lives in its own package.
            c(
                Package(&[
                    "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so.0.0.0",
                    "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so",
                    "/usr/lib/bochs/plugins/libbx_term.so",
                ]),
                "bochs-term",
            ),
            c(Path("/usr/share/bochs/BIOS-bochs-latest"), "bochsbios"),
            c(Path("/usr/share/vgabios/vgabios.bin"), "vgabios"),
        ],
        Need::Linux => vec![
            c(Command("apt-get"), "apt"),
            c(Command("apt-cache"), "apt"),
            c(Command("dpkg-deb"), "dpkg"),
            c(Command("tar"), "tar"),
        ],
    }
}

/// Checks everything `needs` asks for, installs what is missing (as root), and adds the
/// Rust target.
pub fn ensure(needs: &[Need]) -> Result<(), String> {
    let missing = missing_packages(needs);
    if !missing.is_empty() {
        install(&missing)?;
        let still = missing_packages(needs);
        if !still.is_empty() {
            return Err(format!(
                "still missing after installing: {}",
                still.join(" ")
            ));
        }
    }
    rust_target()
}

fn missing_packages(needs: &[Need]) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for &need in needs {
        for check in checks(need) {
            let ok = match check.what {
                Probe::Command(cmd) => on_path(cmd),
                Probe::Path(p) => Path::new(p).exists(),
                Probe::Package(files) => {
                    files.iter().any(|f| Path::new(f).exists()) || dpkg_installed(check.package)
                }
            };
            if !ok && !missing.iter().any(|m| m == check.package) {
                missing.push(check.package.to_string());
            }
        }
    }
    missing
}

fn on_path(cmd: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(cmd).is_file())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn install(packages: &[String]) -> Result<(), String> {
    let list = packages.join(" ");
    if !is_root() {
        return Err(format!(
            "missing packages: {list}\n  install them with:\n    sudo apt-get install -y {list}"
        ));
    }
    eprintln!("cargo janus: installing {list}");
    let status = Command::new("apt-get")
        .arg("update")
        .stdout(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("cargo janus: warning: apt-get update failed; trying the install anyway");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !status.success() {
        return Err(format!("apt-get install -y {list} failed ({status})"));
    }
    Ok(())
}

/// The bare-metal target, and rustfmt and clippy for the lint step (quick when present).
fn rust_target() -> Result<(), String> {
    rustup(&["target", "add", "x86_64-unknown-none"])?;
    rustup(&["component", "add", "rustfmt", "clippy"])
}

fn rustup(args: &[&str]) -> Result<(), String> {
    let out = Command::new("rustup")
        .args(args)
        .current_dir(crate::workspace_root())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`rustup {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => {
            // No rustup (a distribution Rust?): the build will tell what is missing.
            eprintln!(
                "cargo janus: warning: cannot run rustup ({e}); assuming `rustup {}` is not needed",
                args.join(" ")
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_names_packages() {
        for need in [Need::Iso, Need::Qemu, Need::Bochs, Need::Linux] {
            assert!(!checks(need).is_empty());
        }
        let bochs: Vec<_> = checks(Need::Bochs).iter().map(|c| c.package).collect();
        assert!(
            bochs.contains(&"bochs-term"),
            "term display needs bochs-term"
        );
    }

    #[test]
    fn path_lookup() {
        assert!(on_path("sh"));
        assert!(!on_path("surely-not-a-command-janus"));
    }
}
