//! The bad-modules rows (`bad`, ISO build/hostile.iso): a good smoke guest, then modules
//! that Janus must refuse, one `janus: guest LABEL: not started: REASON` line each
//! (vmm-core/src/loader/modules.rs and cmdline.rs, and boot's RAM and image loading),
//! while the smoke guest still runs.

use std::path::{Path, PathBuf};

use crate::iso::GuestSpec;
use crate::judge::Expectation;

/// Where the bad module files are written at run time.
pub const HOSTILE_DIR: &str = "build/hostile";

/// The suite that runs as the good guest, first, next to the bad modules.
pub const GOOD: &str = "smoke";
const GOOD_MEM: &str = "16M";

/// Janus takes this many modules; it refuses the others, one line each.
const MAX_MODULES: usize = 32;

/// Files written into [`HOSTILE_DIR`].
const JUNK: &str = "junk.bin";
const ORPHAN: &str = "orphan.cpio";
const TRUNCATED: &str = "truncated.elf";
const OUTSIDE: &str = "outside.elf";
const EMPTY: &str = "empty.bin";
/// A module larger than the RAM of the guest it belongs to.
const BIG: &str = "big.bin";
const BIG_LEN: usize = 3 << 20;
/// A junk file whose stem is not ASCII, over 31 bytes with a multi-byte character across
/// byte 31 (issue #8: cutting the derived name there panicked).
const NON_ASCII: &str = "résumé-日本-aaaaaaaaaaaaaaé-bbbbbbbbbb.bin";
/// Its name: characters outside A-Z a-z 0-9 _ . - become `_`, cut to 31 characters.
const NON_ASCII_LABEL: &str = "r_sum_-__-aaaaaaaaaaaaaa_-bbbbb";
/// Length of the stem of the junk file with a very long name (a name takes 31).
const LONG_STEM: usize = 200;

/// One module of the bad ISO and how Janus must answer it.
#[derive(Debug, Clone)]
pub struct BadModule {
    /// A file in [`HOSTILE_DIR`], or the built-in [`GOOD`].
    pub file: String,
    pub keys: Vec<(String, String)>,
    /// The module line starts with the file's path ([`GuestSpec::path_arg`]): Janus
    /// names the guest after the file's stem.
    pub path_arg: bool,
    /// The guest as Janus names it: `name=`, the file's stem, or `module<index>` when
    /// the command line could not be parsed. None: Janus says nothing (an initrd of a
    /// refused guest).
    pub label: Option<String>,
    /// A distinctive part of Janus' reason.
    pub reason: &'static str,
}

fn bad(file: &str, keys: &[(&str, &str)], label: &str, reason: &'static str) -> BadModule {
    BadModule {
        file: file.to_string(),
        keys: keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        label: Some(label.to_string()),
        reason,
        path_arg: false,
    }
}

/// A module without `name=` whose line starts with its path: named after its stem.
fn by_stem(file: &str, keys: &[(&str, &str)], label: &str, reason: &'static str) -> BadModule {
    BadModule {
        path_arg: true,
        ..bad(file, keys, label, reason)
    }
}

fn long_name_file() -> String {
    format!("{}.bin", "x".repeat(LONG_STEM))
}

/// The modules after the good guest, in boot order (module1, module2, ...); the last
/// ones are past Janus' [`MAX_MODULES`].
pub fn bad_modules() -> Vec<BadModule> {
    let long_line = "y".repeat(5000);
    let long_name = "n".repeat(32);
    let long_file = long_name_file();
    let mut v = vec![
        bad(JUNK, &[("name", "junk")], "junk", "not a multiboot kernel"),
        bad(
            GOOD,
            &[("name", "badline"), ("colour", "blue")],
            "module2",
            "unknown key 'colour'",
        ),
        // More RAM than the machine has.
        bad(
            GOOD,
            &[("name", "huge"), ("mem", "64G")],
            "huge",
            "needs 65536 MiB of RAM",
        ),
        bad(
            GOOD,
            &[("name", "tiny"), ("mem", "1M")],
            "tiny",
            "mem=1024 KiB is too little",
        ),
        bad(
            ORPHAN,
            &[("initrd-of", "nobody")],
            "module5",
            "initrd for 'nobody', but no guest has that name",
        ),
        bad(
            TRUNCATED,
            &[("name", "truncated")],
            "truncated",
            "image is truncated",
        ),
        bad(
            GOOD,
            &[("name", "overflow"), ("mem", "18446744073709551615")],
            "module7",
            "mem=18446744073709551615: too large",
        ),
        // More than guest-physical addresses reach.
        bad(
            GOOD,
            &[("name", "toolarge"), ("mem", "262145G")],
            "module8",
            "mem=262145G: too large",
        ),
        bad(
            OUTSIDE,
            &[("name", "outside"), ("mem", "16M")],
            "outside",
            "outside the guest's 16 MiB of RAM",
        ),
        by_stem(NON_ASCII, &[], NON_ASCII_LABEL, "not a multiboot kernel"),
        by_stem(&long_file, &[], &"x".repeat(31), "not a multiboot kernel"),
        bad(
            GOOD,
            &[("name", "longline"), ("cmdline", &long_line)],
            "module12",
            "bytes is too long (at most 4095)",
        ),
        // No name=: Janus derives `smoke` from the file, which module0 has already.
        by_stem(
            GOOD,
            &[("mem", GOOD_MEM)],
            GOOD,
            "duplicate name: module0 has it already",
        ),
        bad(
            GOOD,
            &[("name", "kindbad"), ("kind", "windows")],
            "module14",
            "bad kind 'windows'",
        ),
        bad(
            ORPHAN,
            &[("initrd-of", GOOD), ("mem", GOOD_MEM)],
            "module15",
            "keys 'initrd-of' and 'mem' do not go together",
        ),
        bad(
            JUNK,
            &[("name", "lxfail"), ("kind", "linux")],
            "lxfail",
            "not a Linux bzImage",
        ),
    ];
    // The initrd of the refused guest above: the guest's line says it all.
    v.push(BadModule {
        label: None,
        ..bad(ORPHAN, &[("initrd-of", "lxfail")], "", "")
    });
    v.extend([
        bad(
            GOOD,
            &[("name", "w0"), ("weight", "0")],
            "module18",
            "bad weight '0'",
        ),
        bad(
            GOOD,
            &[("name", "l5"), ("limit", "5")],
            "module19",
            "bad limit '5'",
        ),
        bad(
            GOOD,
            &[("name", "reboot"), ("on-reset", "reboot")],
            "module20",
            "bad on-reset 'reboot'",
        ),
        bad(
            GOOD,
            &[("name", "twice"), ("name", "again")],
            "module21",
            "key 'name' given twice",
        ),
        bad(
            GOOD,
            &[("name", "has/slash")],
            "module22",
            "bad name 'has/slash'",
        ),
        bad(
            GOOD,
            &[("name", "zero"), ("mem", "0")],
            "zero",
            "mem=0 KiB is too little",
        ),
        bad(
            GOOD,
            &[("name", "lots"), ("mem", "lots")],
            "module24",
            "bad size 'lots'",
        ),
        bad(
            ORPHAN,
            &[("initrd-of", GOOD)],
            "module25",
            "a multiboot guest: only Linux guests take one",
        ),
        bad(EMPTY, &[("name", "empty")], "empty", "(0 bytes)"),
        bad(
            GOOD,
            &[("name", "aslinux"), ("kind", "linux")],
            "aslinux",
            "not a Linux bzImage",
        ),
        bad(GOOD, &[("name", &long_name)], "module28", "bad name 'nnnn"),
        // A guest whose multiboot module does not fit its RAM: the guest's line says
        // it, its module says nothing more.
        bad(
            GOOD,
            &[("name", "fat"), ("mem", "2M")],
            "fat",
            "do not fit its 2 MiB of RAM",
        ),
    ]);
    v.push(BadModule {
        label: None,
        ..bad(BIG, &[("module-of", "fat")], "", "")
    });
    v.push(bad(
        ORPHAN,
        &[("module-of", "nobody")],
        "module31",
        "module for 'nobody', but no guest has that name",
    ));
    // Past the table: counted, one line each.
    for index in MAX_MODULES..MAX_MODULES + 2 {
        let name = format!("extra{index}");
        v.push(bad(
            JUNK,
            &[("name", &name)],
            &format!("module{index}"),
            "Janus takes at most 32 modules",
        ));
    }
    v
}

/// What a bad-modules row expects: each bad module rejected with its reason (the
/// initrd of a refused guest silently), smoke passing, and the done line counting
/// every refused module as a failed guest.
pub fn expectation() -> Expectation {
    let rejected: Vec<(String, &'static str)> = bad_modules()
        .into_iter()
        .filter_map(|b| Some((b.label?, b.reason)))
        .collect();
    let done = format!(
        "janus: done: {} guests, {} failed",
        rejected.len() + 1,
        rejected.len()
    );
    Expectation::Rejects {
        rejected,
        good: vec![GOOD.to_string()],
        done,
    }
}

/// The modules of build/hostile.iso, in boot order: `smoke name=smoke mem=16M`, then
/// the bad modules (files in `dir`, or the built-in smoke).
pub fn specs(dir: &Path) -> Vec<GuestSpec> {
    let good = GuestSpec::with_keys(PathBuf::from(GOOD), &[("name", GOOD), ("mem", GOOD_MEM)]);
    let bad = bad_modules().into_iter().map(|b| GuestSpec {
        file: if b.file == GOOD {
            PathBuf::from(GOOD)
        } else {
            dir.join(b.file)
        },
        keys: b.keys,
        path_arg: b.path_arg,
    });
    std::iter::once(good).chain(bad).collect()
}

/// The multiboot1 magic 0x1BADB002, little-endian.
const MB1_MAGIC: [u8; 4] = [0x02, 0xb0, 0xad, 0x1b];
/// The truncated ELF keeps this much of the good guest.
const CUT: usize = 8192;
/// Where outside.elf's image wants to be: far above its RAM.
const OUTSIDE_SHIFT: u32 = 0x4000_0000;

/// Offset of the multiboot1 header in the first 8 KiB, 4-byte aligned.
fn mb1_header(elf: &[u8]) -> Option<usize> {
    elf[..elf.len().min(CUT)]
        .chunks_exact(4)
        .position(|w| w == MB1_MAGIC)
        .map(|i| 4 * i)
}

/// The good guest with its multiboot1 address fields (flag 16: header, load, load end,
/// bss end, entry; Multiboot 0.6.96 3.1.3) moved up by [`OUTSIDE_SHIFT`].
fn outside_image(elf: &[u8]) -> Result<Vec<u8>, String> {
    let hdr = mb1_header(elf).ok_or("no multiboot header in the first 8 KiB")?;
    let mut out = elf.to_vec();
    let field = |i: usize| hdr + 12 + 4 * i;
    let flags = u32::from_le_bytes(out[hdr + 4..hdr + 8].try_into().unwrap());
    if flags & (1 << 16) == 0 || out.len() < field(5) {
        return Err("its multiboot header has no address fields (flag 16)".into());
    }
    for i in 0..5 {
        let at = field(i);
        let v = u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
        if v != 0 {
            out[at..at + 4].copy_from_slice(&(v + OUTSIDE_SHIFT).to_le_bytes());
        }
    }
    Ok(out)
}

/// Writes the bad files into `dir`: junk (4 KiB of text, also under a non-ASCII and a
/// very long name), an empty file, a small "initrd", `truncated.elf` (the first 8 KiB of
/// `good_elf`, whose multiboot header lies within them but whose load addresses point
/// past them) and `outside.elf` (`good_elf` loaded 1 GiB up).
pub fn write_files(dir: &Path, good_elf: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let write = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, data).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    let line = b"This is not a kernel: Janus must refuse it and run the other guests.\n";
    let junk: Vec<u8> = line.iter().copied().cycle().take(4096).collect();
    for name in [JUNK, NON_ASCII, &long_name_file()] {
        write(name, &junk)?;
    }
    write(EMPTY, b"")?;
    write(BIG, &vec![0x42; BIG_LEN])?;
    write(ORPHAN, b"an initrd for a guest that does not exist\n")?;
    let elf =
        std::fs::read(good_elf).map_err(|e| format!("cannot read {}: {e}", good_elf.display()))?;
    if elf.len() <= CUT || mb1_header(&elf).is_none() {
        return Err(format!(
            "{} has no multiboot header in its first 8 KiB (or is not longer): truncated.elf would not test truncation",
            good_elf.display()
        ));
    }
    write(TRUNCATED, &elf[..CUT])?;
    let outside = outside_image(&elf).map_err(|e| format!("{}: {e}", good_elf.display()))?;
    write(OUTSIDE, &outside)
}

/// Builds the good guest and writes the bad files into build/hostile; returns the specs
/// of build/hostile.iso.
pub fn guests(root: &Path) -> Result<Vec<GuestSpec>, String> {
    crate::build::guests(root)?;
    let dir = root.join(HOSTILE_DIR);
    write_files(&dir, &crate::build::guest_bin(root, GOOD))?;
    Ok(specs(&dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_20_classes_one_line_each() {
        let bad = bad_modules();
        let Expectation::Rejects {
            rejected,
            good,
            done,
        } = expectation()
        else {
            panic!()
        };
        assert!(rejected.len() >= 20, "{} classes", rejected.len());
        assert_eq!(good, [GOOD]);
        // Every module but the initrd and the module of a refused guest has its line; two
        // modules are silent, so 33 modules after smoke give 31 lines.
        assert_eq!(bad.len(), 33);
        assert_eq!(rejected.len(), 31);
        assert_eq!(done, "janus: done: 32 guests, 31 failed");
        let mut labels: Vec<&str> = rejected.iter().map(|(l, _)| l.as_str()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), rejected.len(), "one label per module");
        assert!(rejected.iter().all(|(_, r)| !r.is_empty()));
    }

    /// A module refused at parse time is `module<index>`: the index must be where the
    /// module sits on the ISO (smoke is module0).
    #[test]
    fn labels_name_module_indices() {
        for (i, b) in bad_modules().iter().enumerate() {
            let index = i + 1;
            if let Some(l) = b.label.as_deref().and_then(|l| l.strip_prefix("module")) {
                assert_eq!(l, index.to_string(), "{b:?}");
            }
            if index >= MAX_MODULES {
                assert_eq!(b.reason, "Janus takes at most 32 modules", "module{index}");
            }
        }
        assert_eq!(
            bad_modules()[MAX_MODULES - 2].label.as_deref(),
            Some("module31")
        );
    }

    #[test]
    fn iso_lines() {
        let dir = Path::new("/b");
        let specs = specs(dir);
        assert_eq!(
            specs.len(),
            MAX_MODULES + 2,
            "two modules past Janus' table"
        );
        let lines: Vec<String> = specs.iter().map(|g| g.module_line()).collect();
        assert_eq!(lines[0], "module2 /guests/smoke name=smoke mem=16M");
        assert_eq!(lines[1], "module2 /guests/junk.bin name=junk");
        assert_eq!(lines[2], "module2 /guests/smoke name=badline colour=blue");
        assert_eq!(
            lines[10],
            format!("module2 /guests/{NON_ASCII} /guests/{NON_ASCII}")
        );
        let long = format!("/guests/{}.bin", "x".repeat(200));
        assert_eq!(lines[11], format!("module2 {long} {long}"));
        assert_eq!(
            lines[13], "module2 /guests/smoke /guests/smoke mem=16M",
            "a name derived from the path: smoke again"
        );
        assert!(lines[12].len() > 5000);
        assert_eq!(lines[17], "module2 /guests/orphan.cpio initrd-of=lxfail");
        assert_eq!(lines[21], "module2 /guests/smoke name=twice name=again");
        assert_eq!(lines[29], "module2 /guests/smoke name=fat mem=2M");
        assert_eq!(lines[30], "module2 /guests/big.bin module-of=fat");
        assert_eq!(lines[31], "module2 /guests/orphan.cpio module-of=nobody");
        assert_eq!(specs[5].file, dir.join("orphan.cpio"));
    }

    /// Janus derives a name from the file stem (vmm-core `modules::name_of`): characters
    /// outside A-Z a-z 0-9 _ . - become `_`, cut to 31.
    #[test]
    fn derived_labels() {
        let derive = |file: &str| -> String {
            let stem = file.split('.').next().unwrap();
            stem.chars()
                .take(31)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        assert_eq!(derive(NON_ASCII), NON_ASCII_LABEL);
        let stem = NON_ASCII.split('.').next().unwrap();
        assert!(
            stem.len() > 31 && !stem.is_char_boundary(31),
            "é across byte 31"
        );
        assert_eq!(derive(&long_name_file()), "x".repeat(31));
    }

    fn fake_elf(flags: u32) -> Vec<u8> {
        // A fake good ELF: the multiboot header at 0x1000, 12 KiB long.
        let mut elf = vec![0u8; 12288];
        let f = [
            0x1BADB002, flags, 0, 0x101000, 0x100000, 0, 0x180000, 0x100020,
        ];
        for (i, v) in f.iter().enumerate() {
            elf[0x1000 + 4 * i..0x1004 + 4 * i].copy_from_slice(&u32::to_le_bytes(*v));
        }
        elf
    }

    #[test]
    fn bad_files() {
        let dir = std::env::temp_dir().join(format!("janus-ci-bad-{}", std::process::id()));
        let elf = fake_elf(0x0001_0002);
        let fake = dir.join("fake-smoke");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&fake, &elf).unwrap();
        write_files(&dir, &fake).unwrap();
        let junk = std::fs::read(dir.join(JUNK)).unwrap();
        assert_eq!(junk.len(), 4096);
        assert!(junk.iter().all(|b| b.is_ascii()));
        assert_eq!(std::fs::read(dir.join(NON_ASCII)).unwrap(), junk);
        assert_eq!(std::fs::read(dir.join(long_name_file())).unwrap(), junk);
        assert!(std::fs::read(dir.join(EMPTY)).unwrap().is_empty());
        assert_eq!(std::fs::read(dir.join(TRUNCATED)).unwrap(), &elf[..8192]);
        assert!(!std::fs::read(dir.join(ORPHAN)).unwrap().is_empty());
        assert_eq!(std::fs::read(dir.join(BIG)).unwrap().len(), 3 << 20);
        // outside.elf: the address fields 1 GiB up, load end (0) untouched.
        let out = std::fs::read(dir.join(OUTSIDE)).unwrap();
        let at =
            |i: usize| u32::from_le_bytes(out[0x100c + 4 * i..0x1010 + 4 * i].try_into().unwrap());
        assert_eq!(
            [at(0), at(1), at(2), at(3), at(4)],
            [0x4010_1000, 0x4010_0000, 0, 0x4018_0000, 0x4010_0020]
        );
        assert_eq!(out[..0x100c], elf[..0x100c]);
        assert_eq!(out[0x1020..], elf[0x1020..]);
        // Without address fields outside.elf would not test where the image lands.
        std::fs::write(&fake, fake_elf(0x2)).unwrap();
        assert!(write_files(&dir, &fake).unwrap_err().contains("flag 16"));
        // Without a header in the first 8 KiB the truncated module would test nothing.
        std::fs::write(&fake, vec![0u8; 12288]).unwrap();
        assert!(write_files(&dir, &fake)
            .unwrap_err()
            .contains("no multiboot header"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
