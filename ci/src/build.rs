//! Builds Janus, the Rust test guests and the multiboot1 `hello` kernel, and runs the host
//! unit tests.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "x86_64-unknown-none";

/// A guest that `cargo janus` builds itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// The multiboot1 kernel from guests/hello-mb1 (assembled with binutils).
    Hello,
    /// A binary of the `janus-guests` crate.
    Bin(String),
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn release_dir(root: &Path) -> PathBuf {
    root.join("target").join(TARGET).join("release")
}

/// Where the release build puts Janus' ELF (its symbols name the addresses of a trace).
pub fn janus_elf(root: &Path) -> PathBuf {
    release_dir(root).join("janus")
}

/// `cargo build --release -p janus-boot --target x86_64-unknown-none`; returns the ELF.
pub fn janus(root: &Path) -> Result<PathBuf, String> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["build", "--release", "-p", "janus-boot", "--target", TARGET]);
    run(cmd, "building Janus (cargo build --release -p janus-boot)")?;
    let elf = janus_elf(root);
    if !elf.is_file() {
        return Err(format!("the Janus build did not produce {}", elf.display()));
    }
    Ok(elf)
}

/// `cargo build --release -p janus-guests --target x86_64-unknown-none --bins`.
pub fn guests(root: &Path) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.current_dir(root).args([
        "build",
        "--release",
        "-p",
        "janus-guests",
        "--target",
        TARGET,
        "--bins",
    ]);
    run(
        cmd,
        "building the test guests (cargo build --release -p janus-guests)",
    )
}

/// Where the guests crate puts binary `name`.
pub fn guest_bin(root: &Path, name: &str) -> PathBuf {
    release_dir(root).join(name)
}

/// Assembles and links guests/hello-mb1 into build/hello-mb1/hello.elf.
pub fn hello(root: &Path) -> Result<PathBuf, String> {
    let src = root.join("guests/hello-mb1");
    let out = root.join("build/hello-mb1");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let obj = out.join("hello.o");
    let elf = out.join("hello.elf");
    let mut cmd = Command::new("as");
    cmd.current_dir(root)
        .arg("--32")
        .arg("-o")
        .arg(&obj)
        .arg(src.join("hello.S"));
    run(cmd, "assembling guests/hello-mb1/hello.S")?;
    let mut cmd = Command::new("ld");
    cmd.current_dir(root)
        .args(["-m", "elf_i386", "-T"])
        .arg(src.join("link.ld"))
        .arg("-o")
        .arg(&elf)
        .arg(&obj);
    run(cmd, "linking build/hello-mb1/hello.elf")?;
    Ok(elf)
}

/// The lint step: `cargo fmt --check` over the workspace, then clippy (the workspace lints
/// deny clippy's default set and undocumented unsafe blocks; `-D warnings` denies rustc's
/// warnings too) on the host crates with their tests and on the bare-metal crates.
pub fn lint(root: &Path) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.current_dir(root).args(["fmt", "--all", "--check"]);
    run(cmd, "cargo fmt --check (run `cargo fmt` to fix)")?;
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["clippy", "--quiet", "--all-targets", "--", "-D", "warnings"]);
    run(cmd, "cargo clippy (host crates)")?;
    let mut cmd = cargo();
    cmd.current_dir(root).args([
        "clippy",
        "--quiet",
        "--release",
        "-p",
        "janus-boot",
        "-p",
        "janus-guests",
        "--target",
        "x86_64-unknown-none",
        "--",
        "-D",
        "warnings",
    ]);
    run(cmd, "cargo clippy (janus-boot, janus-guests)")
}

/// `cargo test --workspace`: the host unit tests of the default members.
pub fn host_tests(root: &Path) -> Result<(), String> {
    let mut cmd = cargo();
    // `--workspace` would also pull in the bare-metal crates; the default members are the
    // host-testable ones (vmm-core, arch-vmx, arch-svm, ci).
    cmd.current_dir(root).args(["test", "--quiet"]);
    run(cmd, "host unit tests (cargo test)")
}
