//! Debian's Linux as a test guest: the kernel and busybox fetched with `apt-get download`
//! into build/cache/, and an initramfs (an uncompressed cpio "newc" archive) written here.
//!
//! The initramfs' /init prints `JANUS-LINUX-MARKER: userspace reached`, the CPU flags and
//! /proc/interrupts, then `JANUS-LINUX-DONE`, and reboots (`reboot=k` on the kernel
//! command line: through the i8042 keyboard controller).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::iso::GuestSpec;

/// The metapackage whose dependency names the current standard kernel.
const KERNEL_META: &str = "linux-image-amd64";
const BUSYBOX_PACKAGE: &str = "busybox-static";

/// The line /init prints once userspace runs.
pub const MARKER: &str = "JANUS-LINUX-MARKER";
/// The line /init prints right after the marker: the kernel's own uptime (seconds since
/// its clock started, early in its boot), the time `cargo janus bench` compares.
pub const UPTIME: &str = "JANUS-LINUX-UPTIME:";
/// The line /init prints after its report, just before rebooting.
pub const DONE: &str = "JANUS-LINUX-DONE";
/// The line with the number of processors /proc/cpuinfo lists.
pub const CPUS: &str = "JANUS-LINUX-CPUS:";
/// The line with /proc/interrupts' local timer row (`LOC:`, one count per CPU).
pub const LOC: &str = "JANUS-LINUX-LOC:";
/// The line with the clocksource the kernel keeps time with at the end of its boot.
pub const CLOCK: &str = "JANUS-LINUX-CLOCK:";
/// Whether Linux keeps time with the TSC under Janus on CPU model `model`: where the
/// model shows an invariant TSC (CPUID 0x8000_0007 EDX bit 8), so that with Janus'
/// IA32_TSC_ADJUST (vmm-core's `msr::tsc`) Linux spares the TSC its clocksource watchdog.
/// Bochs' models do; QEMU's do not without `invtsc` (and Linux cannot calibrate the TSC
/// there: an exit is too slow for its PIT and PM-timer loops).
pub fn keeps_tsc(model: &str) -> bool {
    matches!(model, "corei7_skylake_x" | "ryzen" | "phenom_8650_toliman")
}

/// vCPUs of the Linux guest in the SMP rows (`vcpus=`).
pub const SMP_VCPUS: u8 = 2;

/// The guest's name in Janus (and in its `[linux] ` console prefix).
pub const GUEST: &str = "linux";
/// The kernel command line under Janus.
pub const JANUS_CMDLINE: &str = BARE_CMDLINE;
/// The kernel command line for bare QEMU (`cargo janus bench`).
pub const BARE_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1";
/// Guest memory, MiB.
pub const GUEST_MEM_MIB: u32 = 256;

/// The shell script the initramfs runs as /init.
pub const INIT_SCRIPT: &str = "#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo JANUS-LINUX-MARKER: userspace reached
echo \"JANUS-LINUX-UPTIME: $(/bin/busybox cat /proc/uptime)\"
/bin/busybox grep -m1 '^flags' /proc/cpuinfo
echo \"JANUS-LINUX-CPUS: $(/bin/busybox grep -c ^processor /proc/cpuinfo)\"
echo \"JANUS-LINUX-LOC: $(/bin/busybox grep LOC: /proc/interrupts)\"
echo \"JANUS-LINUX-CLOCK: $(/bin/busybox cat /sys/devices/system/clocksource/clocksource0/current_clocksource)\"
/bin/busybox cat /proc/interrupts
echo JANUS-LINUX-DONE
/bin/busybox poweroff -f
";

/// The kernel and initramfs, ready to boot.
#[derive(Debug, Clone)]
pub struct Assets {
    /// build/linux/vmlinuz (a copy of the cached `boot/vmlinuz-*`).
    pub kernel: PathBuf,
    /// build/linux/initramfs.cpio
    pub initramfs: PathBuf,
    /// e.g. `vmlinuz-6.1.0-56-amd64`
    pub kernel_name: String,
}

impl Assets {
    /// The two module lines of the Linux guest:
    /// `module2 /guests/vmlinuz name=linux mem=256M kind=linux cmdline="..."` and
    /// `module2 /guests/initramfs.cpio initrd-of=linux`.
    pub fn guest_specs(&self) -> Vec<GuestSpec> {
        self.guest_specs_with(JANUS_CMDLINE)
    }

    /// The two modules with another kernel command line.
    pub fn guest_specs_with(&self, cmdline: &str) -> Vec<GuestSpec> {
        self.specs(cmdline, 1)
    }

    /// The two modules, the guest with `vcpus` vCPUs.
    pub fn smp_guest_specs(&self, vcpus: u8) -> Vec<GuestSpec> {
        self.specs(JANUS_CMDLINE, vcpus)
    }

    fn specs(&self, cmdline: &str, vcpus: u8) -> Vec<GuestSpec> {
        let mem = format!("{GUEST_MEM_MIB}M");
        let vcpus = vcpus.to_string();
        let mut keys = vec![
            ("name", GUEST),
            ("mem", mem.as_str()),
            ("kind", "linux"),
            ("cmdline", cmdline),
        ];
        if vcpus != "1" {
            // Its vCPUs spread over host CPUs 0 and 1 where the machine has both, and
            // take turns on CPU 0 where it has one.
            keys.push(("vcpus", vcpus.as_str()));
            keys.push(("cpus", "0-1"));
        }
        vec![
            GuestSpec::with_keys(self.kernel.clone(), &keys),
            GuestSpec::with_keys(self.initramfs.clone(), &[("initrd-of", GUEST)]),
        ]
    }
}

/// Fetches (once) and unpacks the kernel and busybox into build/cache/, and writes
/// build/linux/{vmlinuz,initramfs.cpio}.
pub fn assets(root: &Path) -> Result<Assets, String> {
    let cache = root.join("build/cache");
    let kernel_dir = cache.join("linux-image");
    let busybox_dir = cache.join("busybox-static");
    let mut kernel = find_kernel(&kernel_dir);
    if kernel.is_none() {
        let package = kernel_package()?;
        let deb = download(&cache, &package)?;
        extract(&deb, &kernel_dir, &["./boot"])?;
        kernel = find_kernel(&kernel_dir);
    }
    let kernel = kernel.ok_or_else(|| format!("no boot/vmlinuz-* in {}", kernel_dir.display()))?;
    let mut busybox = busybox_dir.join("bin/busybox");
    if !busybox.is_file() {
        let deb = download(&cache, BUSYBOX_PACKAGE)?;
        extract(&deb, &busybox_dir, &["./bin/busybox"])?;
        busybox = busybox_dir.join("bin/busybox");
        if !busybox.is_file() {
            return Err(format!("{} has no bin/busybox", deb.display()));
        }
    }

    let out = root.join("build/linux");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let kernel_copy = out.join("vmlinuz");
    std::fs::copy(&kernel, &kernel_copy)
        .map_err(|e| format!("cannot copy {}: {e}", kernel.display()))?;
    let busybox_bytes =
        std::fs::read(&busybox).map_err(|e| format!("cannot read {}: {e}", busybox.display()))?;
    let initramfs = out.join("initramfs.cpio");
    std::fs::write(&initramfs, initramfs_bytes(&busybox_bytes))
        .map_err(|e| format!("cannot write {}: {e}", initramfs.display()))?;
    let kernel_name = kernel
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Assets {
        kernel: kernel_copy,
        initramfs,
        kernel_name,
    })
}

/// `boot/vmlinuz-*` under `dir`, if unpacked already. Never the -cloud kernel (it has no
/// MP table support).
fn find_kernel(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir.join("boot")).ok()?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with("vmlinuz-") && !name.contains("cloud") && p.is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// Resolves the metapackage `linux-image-amd64` to the real kernel package
/// (`linux-image-6.1.0-NN-amd64`) with `apt-cache depends`.
fn kernel_package() -> Result<String, String> {
    let query = || {
        Command::new("apt-cache")
            .args(["depends", KERNEL_META])
            .stderr(Stdio::null())
            .output()
    };
    let mut out = query().map_err(|e| format!("cannot run apt-cache: {e}"))?;
    let mut package = parse_kernel_depends(&String::from_utf8_lossy(&out.stdout));
    if package.is_none() && is_root() {
        // No package lists yet (a fresh container): fetch them once.
        eprintln!("cargo janus: apt-get update (to resolve {KERNEL_META})");
        let _ = Command::new("apt-get")
            .arg("update")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        out = query().map_err(|e| format!("cannot run apt-cache: {e}"))?;
        package = parse_kernel_depends(&String::from_utf8_lossy(&out.stdout));
    }
    package.ok_or_else(|| {
        format!(
            "cannot resolve {KERNEL_META} to a kernel package with `apt-cache depends {KERNEL_META}` \
             (no apt package lists? run `apt-get update`)"
        )
    })
}

/// Picks `linux-image-X-amd64` out of `apt-cache depends linux-image-amd64`, skipping the
/// -cloud flavour and virtual packages.
pub fn parse_kernel_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends:"))
        .map(|p| p.trim())
        .find(|p| {
            p.starts_with("linux-image-")
                && p.ends_with("-amd64")
                && !p.contains("cloud")
                && !p.starts_with('<')
        })
        .map(str::to_string)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `apt-get download PACKAGE` into `cache/debs/` unless a `PACKAGE_*.deb` is there already.
fn download(cache: &Path, package: &str) -> Result<PathBuf, String> {
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("cannot create {}: {e}", debs.display()))?;
    let find = || -> Option<PathBuf> {
        let prefix = format!("{package}_");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&debs)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
            .collect();
        v.sort();
        v.pop()
    };
    if let Some(deb) = find() {
        return Ok(deb);
    }
    eprintln!(
        "cargo janus: apt-get download {package} (into {})",
        debs.display()
    );
    let out = Command::new("apt-get")
        // As root, apt drops to the `_apt` user, which cannot write into our directory.
        .args(["-o", "APT::Sandbox::User=root", "download", package])
        .current_dir(&debs)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`apt-get download {package}` failed ({}); no network, or no apt package lists? \
             The Linux guest needs Debian's {package}.\n{}",
            out.status,
            err.trim()
        ));
    }
    find().ok_or_else(|| {
        format!(
            "`apt-get download {package}` left no {package}_*.deb in {}",
            debs.display()
        )
    })
}

/// `dpkg-deb --fsys-tarfile DEB | tar -x -C DIR MEMBERS...`: unpacks only what we need
/// (the kernel package's modules are hundreds of MiB).
fn extract(deb: &Path, dir: &Path, members: &[&str]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
    let tar_in = dpkg.stdout.take().expect("piped");
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .args(members)
        .stdin(tar_in)
        .status();
    let dpkg_status = dpkg.wait().map_err(|e| e.to_string())?;
    let tar = tar.map_err(|e| format!("cannot run tar: {e}"))?;
    if !dpkg_status.success() || !tar.success() {
        // Leave nothing half-unpacked behind for the next run to trust.
        let _ = std::fs::remove_dir_all(dir);
        return Err(format!(
            "unpacking {} failed (dpkg-deb {dpkg_status}, tar {tar})",
            deb.display()
        ));
    }
    Ok(())
}

/// The initramfs: /bin /proc /sys /dev, /dev/console (char 5,1), /init and /bin/busybox.
pub fn initramfs_bytes(busybox: &[u8]) -> Vec<u8> {
    let mut w = Cpio::new();
    for d in ["bin", "proc", "sys", "dev"] {
        w.dir(d);
    }
    w.char_device("dev/console", 5, 1);
    w.file("init", 0o755, INIT_SCRIPT.as_bytes());
    w.file("bin/busybox", 0o755, busybox);
    w.finish()
}

/// A writer for the cpio "newc" format (magic 070701) that the kernel unpacks into its
/// initramfs: a 110-byte ASCII header of 13 hex fields, the NUL-terminated name padded to
/// 4 bytes (header included), the data padded to 4 bytes, and a `TRAILER!!!` entry.
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFCHR: u32 = 0o020000;

impl Cpio {
    pub fn new() -> Cpio {
        Cpio {
            out: Vec::new(),
            ino: 1,
        }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, 2, (0, 0), &[]);
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, (0, 0), data);
    }

    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | 0o600, 1, (major, minor), &[]);
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.ino;
        self.ino += 1;
        self.raw(name, ino, mode, nlink, rdev, data);
    }

    fn raw(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(data.len()).expect("cpio newc files are < 4 GiB"),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1, // namesize, with the NUL
            0,                     // check (only for the 070702 "crc" format)
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.raw("TRAILER!!!", 0, 0, 1, (0, 0), &[]);
        self.out
    }
}

/// The grub.cfg of the bare half of `cargo janus bench`: GRUB boots the kernel itself,
/// with `cmdline`, as it boots Janus in the other half.
pub fn bare_grub_cfg(cmdline: &str) -> String {
    format!(
        "{}menuentry \"Linux\" {{\n    linux /boot/vmlinuz {cmdline}\n    initrd /boot/initramfs\n    boot\n}}\n",
        crate::iso::CFG_SERIAL
    )
}

/// The GRUB ISO of the bare half, `out`: the kernel and initramfs of `assets` booted by
/// GRUB with `cmdline`, no Janus (issue #9 compares Linux under Janus with the same
/// kernel, initramfs, CPU and memory booted by GRUB without it).
pub fn bare_iso(root: &Path, assets: &Assets, cmdline: &str, out: &Path) -> Result<(), String> {
    use crate::iso::io;
    let dir = crate::iso::fresh_tree(root, out)?;
    for (from, to) in [
        (&assets.kernel, "vmlinuz"),
        (&assets.initramfs, "initramfs"),
    ] {
        std::fs::copy(from, dir.join("boot").join(to)).map_err(|e| io("cannot copy", from, e))?;
    }
    let cfg = dir.join("boot/grub/grub.cfg");
    std::fs::write(&cfg, bare_grub_cfg(cmdline)).map_err(|e| io("cannot write", &cfg, e))?;
    crate::iso::mkrescue(&dir, out)
}

/// The bare QEMU command `cargo janus bench` compares Janus with: `iso` (from
/// [`bare_iso`]) on the same machine, CPU and guest memory, without Janus.
pub fn bare_qemu_command(iso: &Path, log: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "pc",
        "-accel",
        "tcg",
        "-cpu",
        "EPYC",
        "-m",
        &GUEST_MEM_MIB.to_string(),
        "-display",
        "none",
    ])
    .arg("-serial")
    .arg(format!("file:{}", log.display()))
    .arg("-no-reboot")
    .arg("-cdrom")
    .arg(iso);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed cpio entry.
    #[derive(Debug)]
    struct Entry {
        name: String,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
        /// Offset of the header in the archive.
        at: usize,
    }

    fn hex(b: &[u8]) -> u32 {
        u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap()
    }

    fn align4(n: usize) -> usize {
        (n + 3) & !3
    }

    /// An independent reader: checks the magic, the padding bytes and that the archive
    /// ends right after the trailer.
    fn parse(a: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(at % 4, 0, "header at {at} is not 4-aligned");
            let h = &a[at..at + 110];
            assert_eq!(&h[..6], b"070701", "magic at {at}");
            assert!(
                h[6..].iter().all(|c| c.is_ascii_hexdigit()),
                "hex fields at {at}"
            );
            let f = |i: usize| hex(&h[6 + 8 * i..14 + 8 * i]);
            let (namesize, filesize) = (f(11) as usize, f(6) as usize);
            assert_eq!(f(12), 0, "check field");
            let name_start = at + 110;
            let name_end = name_start + namesize;
            assert_eq!(a[name_end - 1], 0, "name is NUL-terminated");
            let name = String::from_utf8(a[name_start..name_end - 1].to_vec()).unwrap();
            let data_start = align4(name_end);
            assert!(
                a[name_end..data_start].iter().all(|&b| b == 0),
                "name padding is zeros"
            );
            let data_end = data_start + filesize;
            let next = align4(data_end);
            assert!(
                a[data_end..next].iter().all(|&b| b == 0),
                "data padding is zeros"
            );
            let e = Entry {
                name,
                ino: f(0),
                mode: f(1),
                nlink: f(4),
                rdev: (f(9), f(10)),
                data: a[data_start..data_end].to_vec(),
                at,
            };
            at = next;
            let last = e.name == "TRAILER!!!";
            entries.push(e);
            if last {
                assert_eq!(at, a.len(), "nothing after the trailer");
                return entries;
            }
        }
    }

    #[test]
    fn header_layout_by_hand() {
        let mut w = Cpio::new();
        w.file("ab", 0o644, b"xyz");
        let a = w.finish();
        // 110 + "ab\0" = 113 → 116; data 3 → 119 → 120; then the trailer.
        let fields = [
            "00000001", "000081A4", "00000000", "00000000", "00000001", "00000000", "00000003",
        ];
        let rest = [
            "00000000", "00000000", "00000000", "00000000", "00000003", "00000000",
        ];
        let expect_header = format!("070701{}{}", fields.concat(), rest.concat());
        assert_eq!(expect_header.len(), 110);
        assert_eq!(&a[..110], expect_header.as_bytes());
        assert_eq!(&a[110..116], b"ab\0\0\0\0");
        assert_eq!(&a[116..120], b"xyz\0");
        assert_eq!(&a[120..126], b"070701");
        assert_eq!(&a[230..241], b"TRAILER!!!\0");
        assert_eq!(a.len(), 244);
    }

    #[test]
    fn roundtrip_all_name_and_data_lengths() {
        // Every residue of name and data length mod 4.
        let mut w = Cpio::new();
        let mut want = Vec::new();
        for n in 1..=4usize {
            for d in 0..=4usize {
                let name = format!("{}{}", "n".repeat(n), d);
                let data: Vec<u8> = (0..d as u8).map(|i| i + 1).collect();
                w.file(&name, 0o600, &data);
                want.push((name, data));
            }
        }
        let entries = parse(&w.finish());
        assert_eq!(entries.len(), want.len() + 1);
        for (e, (name, data)) in entries.iter().zip(&want) {
            assert_eq!(&e.name, name);
            assert_eq!(&e.data, data);
            assert_eq!(e.mode, S_IFREG | 0o600);
        }
        let inos: Vec<u32> = entries[..want.len()].iter().map(|e| e.ino).collect();
        let mut uniq = inos.clone();
        uniq.dedup();
        assert_eq!(inos, uniq, "inode numbers are distinct");
    }

    #[test]
    fn initramfs_contents() {
        let busybox = b"\x7fELF fake busybox".to_vec();
        let entries = parse(&initramfs_bytes(&busybox));
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "proc",
                "sys",
                "dev",
                "dev/console",
                "init",
                "bin/busybox",
                "TRAILER!!!"
            ]
        );
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        for d in ["bin", "proc", "sys", "dev"] {
            assert_eq!(get(d).mode, S_IFDIR | 0o755);
            assert_eq!(get(d).nlink, 2);
        }
        let console = get("dev/console");
        assert_eq!(console.mode & 0o170000, S_IFCHR);
        assert_eq!(console.rdev, (5, 1));
        let init = get("init");
        assert_eq!(init.mode, S_IFREG | 0o755);
        assert!(init.data.starts_with(b"#!/bin/busybox sh\n"));
        let script = String::from_utf8(init.data.clone()).unwrap();
        assert!(script.contains("echo JANUS-LINUX-MARKER: userspace reached\n"));
        assert!(script.contains("echo JANUS-LINUX-DONE\n/bin/busybox poweroff -f\n"));
        assert_eq!(get("bin/busybox").data, busybox);
        let trailer = entries.last().unwrap();
        assert_eq!((trailer.ino, trailer.mode, trailer.data.len()), (0, 0, 0));
        assert!(trailer.at > 0);
    }

    #[test]
    fn kernel_package_from_apt_cache() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_kernel_depends(text).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        let text = "linux-image-amd64\n |Depends: linux-image-6.1.0-56-cloud-amd64\n  Depends: <linux-image-x>\n  \
                    Depends: linux-image-6.1.0-57-amd64\n";
        assert_eq!(
            parse_kernel_depends(text).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(
            parse_kernel_depends("N: Unable to locate package linux-image-amd64\n"),
            None
        );
    }

    #[test]
    fn module_lines() {
        let a = Assets {
            kernel: PathBuf::from("/b/linux/vmlinuz"),
            initramfs: PathBuf::from("/b/linux/initramfs.cpio"),
            kernel_name: "vmlinuz-6.1.0-56-amd64".into(),
        };
        let lines: Vec<String> = a.guest_specs().iter().map(|g| g.module_line()).collect();
        assert_eq!(
            lines,
            [
                "module2 /guests/vmlinuz name=linux mem=256M kind=linux \
                 cmdline=\"console=ttyS0 reboot=k panic=-1\"",
                "module2 /guests/initramfs.cpio initrd-of=linux",
            ]
        );
    }

    #[test]
    fn the_bare_half_boots_the_kernel_with_grub() {
        let cfg = bare_grub_cfg("console=ttyS0 quiet");
        assert!(cfg.starts_with(crate::iso::CFG_SERIAL));
        assert!(cfg.contains("    linux /boot/vmlinuz console=ttyS0 quiet\n"));
        assert!(cfg.contains("    initrd /boot/initramfs\n"));
        assert!(!cfg.contains("multiboot"));
    }
}
