//! From the boot loader's modules to guest plans: which module is a guest (with its
//! name, kind, RAM size, kernel command line and initrd) and which is an initrd, or why a
//! module cannot be either. Pure: the boot code allocates the RAM and loads the images.
//!
//! Every refused module gets one [`Refusal`], printed as one line
//! `guest LABEL: not started: REASON`; the other modules are unaffected.

use crate::addr::{MIB, PAGE_2M};
use crate::loader::cmdline::{
    parse_module_args, valid_name_char, ArgError, Clip, GuestKind, ModuleArgs, OnReset,
};
use crate::loader::{linux, multiboot1};
use crate::vm::Name;
use arrayvec::ArrayVec;
use core::fmt;

/// Modules Janus takes; more are refused.
pub const MAX_MODULES: usize = 32;
/// Longest module command line (GRUB's and QEMU's strings are shorter in practice).
pub const MAX_LINE: usize = 4095;
pub const DEFAULT_MEM: u64 = 16 * MIB;
pub const MIN_MEM: u64 = 2 * MIB;
/// A Linux guest without `mem=`: Debian's kernel alone needs about 80 MiB to unpack.
pub const LINUX_DEFAULT_MEM: u64 = 256 * MIB;
/// Longest guest name (a [`Name`] holds 32 bytes; names are ASCII).
pub const NAME_MAX: usize = 31;
/// Linux's command line when the module gives none.
pub const LINUX_CMDLINE: &str = "console=ttyS0";

/// One module as the boot loader handed it over.
#[derive(Clone, Copy, Debug)]
pub struct ModuleIn<'a> {
    pub cmdline: &'a str,
    pub image: &'a [u8],
}

/// The image of a guest, checked as far as possible without its RAM.
#[derive(Clone, Copy, Debug)]
pub enum Image<'a> {
    Multiboot1(&'a [u8]),
    Linux(linux::LinuxImage<'a>),
}

/// A module that becomes a guest.
#[derive(Clone, Copy, Debug)]
pub struct GuestPlan<'a> {
    pub name: Name,
    pub image: Image<'a>,
    /// RAM in bytes, a multiple of 2 MiB.
    pub mem: u64,
    /// The guest kernel's command line.
    pub cmdline: &'a str,
    /// The initrd's bytes (Linux guests only).
    pub initrd: Option<&'a [u8]>,
    /// How the guest shares the CPU and what its end is.
    pub schedule: Schedule,
}

/// A guest's scheduling settings (`weight=`, `on-reset=`, `limit=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub weight: u32,
    pub on_reset: OnReset,
    /// The longest it may live, in nanoseconds of host time.
    pub limit_ns: Option<u64>,
    /// The guest it starts after (when that one has ended).
    pub after: Option<Name>,
}

/// What a module is.
#[derive(Clone, Copy, Debug)]
pub enum Role<'a> {
    Guest(GuestPlan<'a>),
    /// The initrd of the guest module at this index.
    Initrd {
        of: usize,
    },
}

/// Why a module is not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason<'a> {
    TooManyModules,
    LineTooLong(usize),
    BadLine(ArgError<'a>),
    /// The name is already taken by the module at `first`.
    DuplicateName {
        first: usize,
    },
    InitrdOrphan(&'a str),
    /// The guest already has an initrd, the module at `first`.
    SecondInitrd {
        of: &'a str,
        first: usize,
    },
    InitrdNotLinux(&'a str),
    UnknownImage(usize),
    Linux(linux::LinuxError),
    NoInitrd,
    MemTooSmall(u64),
}

/// A module that does not start, and its one-line reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal<'a> {
    /// The guest's name, or `module<index>` when it has none yet.
    pub label: Name,
    pub reason: Reason<'a>,
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest {}: not started: {}", self.label, self.reason)
    }
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::TooManyModules => write!(f, "Janus takes at most {MAX_MODULES} modules"),
            Reason::LineTooLong(n) => write!(
                f,
                "module command line of {n} bytes is too long (at most {MAX_LINE})"
            ),
            Reason::BadLine(e) => write!(f, "bad module command line: {e}"),
            Reason::DuplicateName { first } => {
                write!(f, "duplicate name: module{first} has it already")
            }
            Reason::InitrdOrphan(of) => write!(
                f,
                "initrd for '{}', but no guest has that name",
                Clip(of)
            ),
            Reason::SecondInitrd { of, first } => write!(
                f,
                "second initrd for '{}': module{first} is its initrd already",
                Clip(of)
            ),
            Reason::InitrdNotLinux(of) => write!(
                f,
                "initrd for '{}', a multiboot1 guest: only Linux guests take one",
                Clip(of)
            ),
            Reason::UnknownImage(len) => write!(
                f,
                "not a multiboot1 kernel (no multiboot header in the first 8 KiB) nor a Linux bzImage ({len} bytes)"
            ),
            Reason::Linux(e) => write!(f, "{e}"),
            Reason::NoInitrd => write!(
                f,
                "no initrd: a Linux guest needs one here (Janus has no disks); add `module2 FILE initrd-of=NAME`"
            ),
            Reason::MemTooSmall(m) => write!(
                f,
                "mem={} KiB is too little: a guest needs at least 2 MiB",
                m / 1024
            ),
        }
    }
}

fn module_label(index: usize) -> Name {
    let mut n = Name::new();
    let _ = fmt::Write::write_fmt(&mut n, format_args!("module{index}"));
    n
}

/// The guest's name: `name=`, else the file's stem (characters outside the name alphabet
/// replaced by `_`, cut to [`NAME_MAX`]), else `guest<index>`.
pub fn name_of(index: usize, args: &ModuleArgs<'_>) -> Name {
    let mut n = Name::new();
    if let Some(name) = args.name {
        let _ = n.try_push_str(name);
    } else if let Some(path) = args.path {
        let file = path.rsplit('/').next().unwrap_or(path);
        let stem = file.split('.').next().unwrap_or(file);
        for c in stem.chars().take(NAME_MAX) {
            let _ = n.try_push(if valid_name_char(c) { c } else { '_' });
        }
    }
    if n.is_empty() {
        let _ = fmt::Write::write_fmt(&mut n, format_args!("guest{index}"));
    }
    n
}

/// What the command line alone says about one module.
#[derive(Clone, Copy)]
enum Parsed<'a> {
    Refused(Refusal<'a>),
    Guest(ModuleArgs<'a>, Name),
    Initrd(&'a str),
}

fn parse_one<'a>(index: usize, m: &ModuleIn<'a>, earlier: &[Parsed<'a>]) -> Parsed<'a> {
    let refuse = |reason| {
        Parsed::Refused(Refusal {
            label: module_label(index),
            reason,
        })
    };
    if m.cmdline.len() > MAX_LINE {
        return refuse(Reason::LineTooLong(m.cmdline.len()));
    }
    match parse_module_args(m.cmdline) {
        Err(e) => refuse(Reason::BadLine(e)),
        Ok(ModuleArgs {
            initrd_of: Some(of),
            ..
        }) => Parsed::Initrd(of),
        Ok(args) => {
            let name = name_of(index, &args);
            match owner(&name, earlier) {
                Some(first) => Parsed::Refused(Refusal {
                    label: name,
                    reason: Reason::DuplicateName { first },
                }),
                None => Parsed::Guest(args, name),
            }
        }
    }
}

/// The guest module named `name`, if any.
fn owner(name: &str, parsed: &[Parsed<'_>]) -> Option<usize> {
    parsed
        .iter()
        .position(|p| matches!(p, Parsed::Guest(_, n) if n.as_str() == name))
}

fn kind_of(args: &ModuleArgs<'_>, image: &[u8]) -> Option<GuestKind> {
    match args.kind {
        Some(k) => Some(k),
        None if multiboot1::is_multiboot1(image) => Some(GuestKind::Multiboot1),
        None if image.get(0x202..0x206) == Some(linux::HDRS) => Some(GuestKind::Linux),
        None => None,
    }
}

fn plan_guest<'a>(
    m: &ModuleIn<'a>,
    args: &ModuleArgs<'a>,
    name: Name,
    initrd: Option<&'a [u8]>,
) -> Result<GuestPlan<'a>, Reason<'a>> {
    let kind = kind_of(args, m.image).ok_or(Reason::UnknownImage(m.image.len()))?;
    let (image, default_mem, cmdline, initrd) = match kind {
        GuestKind::Linux => {
            let img = linux::parse(m.image).map_err(Reason::Linux)?;
            if initrd.is_none() {
                return Err(Reason::NoInitrd);
            }
            (
                Image::Linux(img),
                LINUX_DEFAULT_MEM,
                args.cmdline.unwrap_or(LINUX_CMDLINE),
                initrd,
            )
        }
        GuestKind::Multiboot1 => (
            Image::Multiboot1(m.image),
            DEFAULT_MEM,
            args.cmdline.unwrap_or(m.cmdline),
            None,
        ),
    };
    let want = args.mem.unwrap_or(default_mem);
    if want < MIN_MEM {
        return Err(Reason::MemTooSmall(want));
    }
    Ok(GuestPlan {
        name,
        image,
        mem: want.div_ceil(PAGE_2M) * PAGE_2M,
        cmdline,
        initrd,
        schedule: Schedule {
            weight: args.weight.unwrap_or(1),
            on_reset: args.on_reset.unwrap_or_default(),
            limit_ns: args.limit_ns,
            after: args.after.and_then(|a| Name::try_from(a).ok()),
        },
    })
}

/// Attaches each initrd module to its guest: `Ok(guest index)` or why not. Entries of
/// modules that are not initrds are `None`.
fn attach_initrds<'a>(
    parsed: &[Parsed<'a>],
) -> ArrayVec<Option<Result<usize, Reason<'a>>>, MAX_MODULES> {
    let mut out: ArrayVec<Option<Result<usize, Reason<'a>>>, MAX_MODULES> = ArrayVec::new();
    for p in parsed {
        let Parsed::Initrd(of) = *p else {
            out.push(None);
            continue;
        };
        let first = out
            .iter()
            .position(|o| matches!(o, Some(Ok(g)) if owner(of, parsed) == Some(*g)));
        out.push(Some(match (owner(of, parsed), first) {
            (None, _) => Err(Reason::InitrdOrphan(of)),
            (Some(_), Some(first)) => Err(Reason::SecondInitrd { of, first }),
            (Some(g), None) => Ok(g),
        }));
    }
    out
}

/// Plans every module (at most [`MAX_MODULES`]), in order: a guest, an initrd, or a
/// refusal. The first module with a name keeps it; initrds attach to that guest.
/// A refused guest's initrd says nothing more: the guest's line is the reason.
pub fn plan_all<'a>(
    modules: &[ModuleIn<'a>],
) -> ArrayVec<Result<Role<'a>, Refusal<'a>>, MAX_MODULES> {
    let modules = &modules[..modules.len().min(MAX_MODULES)];
    let mut parsed: ArrayVec<Parsed<'a>, MAX_MODULES> = ArrayVec::new();
    for (i, m) in modules.iter().enumerate() {
        let p = parse_one(i, m, &parsed);
        parsed.push(p);
    }
    let initrds = attach_initrds(&parsed);
    let initrd_for = |g: usize| {
        initrds
            .iter()
            .position(|o| *o == Some(Ok(g)))
            .map(|r| modules[r].image)
    };
    let mut out: ArrayVec<Result<Role<'a>, Refusal<'a>>, MAX_MODULES> = parsed
        .iter()
        .enumerate()
        .map(|(i, p)| match *p {
            Parsed::Refused(r) => Err(r),
            Parsed::Guest(args, name) => plan_guest(&modules[i], &args, name, initrd_for(i))
                .map(Role::Guest)
                .map_err(|reason| Refusal {
                    label: name,
                    reason,
                }),
            Parsed::Initrd(of) => match initrds[i].unwrap_or(Err(Reason::InitrdOrphan(of))) {
                Ok(of) => Ok(Role::Initrd { of }),
                Err(reason) => Err(Refusal {
                    label: module_label(i),
                    reason,
                }),
            },
        })
        .collect();
    for i in 0..out.len() {
        if let (Ok(Role::Initrd { of }), Parsed::Initrd(name)) = (out[i], parsed[i]) {
            if let Ok(Role::Guest(GuestPlan {
                image: Image::Multiboot1(_),
                ..
            })) = out[of]
            {
                out[i] = Err(Refusal {
                    label: module_label(i),
                    reason: Reason::InitrdNotLinux(name),
                });
            }
        }
    }
    out
}

/// The refusal of module `index` when the boot loader handed over more than
/// [`MAX_MODULES`].
pub fn too_many(index: usize) -> Refusal<'static> {
    Refusal {
        label: module_label(index),
        reason: Reason::TooManyModules,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::loader::cmdline::parse_module_args;
    use crate::loader::samples::{aout_image, bzimage};
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn m<'a>(cmdline: &'a str, image: &'a [u8]) -> ModuleIn<'a> {
        ModuleIn { cmdline, image }
    }

    /// The one line Janus prints for a refused module.
    fn line(r: &Result<Role<'_>, Refusal<'_>>) -> String {
        let s = r.as_ref().expect_err("refused").to_string();
        assert!(!s.contains('\n') && s.contains(": not started: "), "{s}");
        s
    }

    fn guest<'a>(r: &Result<Role<'a>, Refusal<'a>>) -> GuestPlan<'a> {
        match r {
            Ok(Role::Guest(g)) => *g,
            other => panic!("not a guest: {other:?}"),
        }
    }

    fn refusals(plans: &[Result<Role<'_>, Refusal<'_>>]) -> usize {
        plans.iter().filter(|p| p.is_err()).count()
    }

    fn name_from(path: &str) -> Name {
        name_of(3, &parse_module_args(path).unwrap())
    }

    #[test]
    fn no_modules_no_plans() {
        assert!(plan_all(&[]).is_empty());
    }

    #[test]
    fn a_guest_gets_its_settings() {
        let k = aout_image(&[0xf4], 0);
        let p = plan_all(&[m("/guests/smoke name=s mem=5M cmdline=a b", &k)]);
        let g = guest(&p[0]);
        assert_eq!(g.name.as_str(), "s");
        assert_eq!(g.mem, 6 * MIB, "rounded up to 2 MiB");
        assert_eq!(g.cmdline, "a b");
        assert!(matches!(g.image, Image::Multiboot1(_)) && g.initrd.is_none());
        let g = guest(&plan_all(&[m("/guests/smoke", &k)])[0]);
        assert_eq!((g.name.as_str(), g.mem), ("smoke", DEFAULT_MEM));
        assert_eq!(
            g.cmdline, "/guests/smoke",
            "multiboot1 default: the module line"
        );
    }

    #[test]
    fn a_linux_guest_gets_its_initrd() {
        let (k, rd) = (bzimage(), [7u8; 16]);
        let p = plan_all(&[m("/vmlinuz name=lx", &k), m("/rd initrd-of=lx", &rd)]);
        let g = guest(&p[0]);
        assert!(matches!(g.image, Image::Linux(_)));
        assert_eq!(g.initrd, Some(&rd[..]));
        assert_eq!((g.mem, g.cmdline), (LINUX_DEFAULT_MEM, LINUX_CMDLINE));
        assert!(matches!(p[1], Ok(Role::Initrd { of: 0 })));
        let p = plan_all(&[m("/vmlinuz name=lx", &k)]);
        assert!(line(&p[0]).contains("no initrd"));
    }

    #[test]
    fn junk_image() {
        let p = plan_all(&[m("/junk name=j", b"MZ not a kernel")]);
        assert_eq!(
            line(&p[0]),
            "guest j: not started: not a multiboot1 kernel (no multiboot header in the first 8 KiB) nor a Linux bzImage (15 bytes)"
        );
        let p = plan_all(&[m("/junk name=j kind=linux", b"MZ not a kernel")]);
        assert!(line(&p[0]).contains("not a Linux bzImage"));
    }

    /// Issue #8: a stem over 31 bytes with a multi-byte character across byte 31 (as
    /// QEMU's `-initrd "<path>"` gives it) panicked when cut.
    #[test]
    fn non_ascii_long_file_name_is_cut_at_a_character() {
        let path = std::format!("/guests/{}é{}.elf", "a".repeat(30), "b".repeat(9));
        let n = name_from(&path);
        assert_eq!(n.as_str(), std::format!("{}_{}", "a".repeat(30), ""));
        assert_eq!(n.len(), NAME_MAX);
    }

    #[test]
    fn non_ascii_file_name_becomes_a_valid_name() {
        assert_eq!(name_from("/guests/résumé.elf").as_str(), "r_sum_");
        assert_eq!(name_from("/guests/日本.elf").as_str(), "__");
        assert_eq!(name_from("/guests/.hidden").as_str(), "guest3");
    }

    #[test]
    fn very_long_file_name_is_cut() {
        let path = std::format!("/guests/{}.elf", "x".repeat(5000));
        assert_eq!(name_from(&path).as_str(), "x".repeat(NAME_MAX));
    }

    #[test]
    fn very_long_module_line() {
        let k = aout_image(&[0xf4], 0);
        let long = std::format!("/k name=a cmdline={}", "y".repeat(MAX_LINE));
        let p = plan_all(&[m(&long, &k)]);
        let l = line(&p[0]);
        assert!(
            l.starts_with("guest module0: not started: module command line of"),
            "{l}"
        );
        assert!(l.len() < 120, "the line is not repeated: {l}");
    }

    /// Issue #8: `mem=18446744073709551615` wrapped when rounded up to 2 MiB.
    #[test]
    fn mem_that_overflows_is_too_large() {
        let k = aout_image(&[0xf4], 0);
        for mem in [
            "18446744073709551615",
            "17179869184G",
            "99999999999999999999",
            "262145G",
        ] {
            let l = std::format!("/k name=big mem={mem}");
            let p = plan_all(&[m(&l, &k)]);
            let want = std::format!(
                "guest module0: not started: bad module command line: mem={mem}: too large"
            );
            assert!(line(&p[0]).starts_with(&want), "{}", line(&p[0]));
        }
    }

    #[test]
    fn zero_and_too_small_mem() {
        let k = aout_image(&[0xf4], 0);
        for (mem, kib) in [("0", 0), ("1M", 1024), ("2047K", 2047)] {
            let l = std::format!("/k name=t mem={mem}");
            let p = plan_all(&[m(&l, &k)]);
            assert_eq!(
                line(&p[0]),
                std::format!("guest t: not started: mem={kib} KiB is too little: a guest needs at least 2 MiB")
            );
        }
        assert_eq!(guest(&plan_all(&[m("/k mem=2M", &k)])[0]).mem, MIN_MEM);
    }

    /// Issue #8: two guests with one name ran with the same console prefix.
    #[test]
    fn duplicate_name_is_refused() {
        let k = aout_image(&[0xf4], 0);
        let p = plan_all(&[
            m("/a name=x", &k),
            m("/b name=x", &k),
            m("/x", &k),
            m("/c name=y", &k),
        ]);
        assert_eq!(guest(&p[0]).name.as_str(), "x");
        assert_eq!(
            line(&p[1]),
            "guest x: not started: duplicate name: module0 has it already"
        );
        assert!(line(&p[2]).contains("duplicate name"), "a derived name too");
        assert_eq!(guest(&p[3]).name.as_str(), "y");
        assert_eq!(refusals(&p), 2);
    }

    #[test]
    fn unknown_key() {
        let k = aout_image(&[0xf4], 0);
        let p = plan_all(&[m("/k name=a colour=blue", &k)]);
        assert_eq!(
            line(&p[0]),
            "guest module0: not started: bad module command line: unknown key 'colour' (known: name, mem, kind, cmdline, initrd-of, weight, on-reset, limit, after)"
        );
    }

    #[test]
    fn unknown_kind() {
        let k = aout_image(&[0xf4], 0);
        let p = plan_all(&[m("/k kind=windows", &k)]);
        assert!(line(&p[0]).ends_with("bad kind 'windows': use multiboot1 or linux"));
    }

    #[test]
    fn conflicting_keys() {
        let k = aout_image(&[0xf4], 0);
        let p = plan_all(&[m("/k name=a", &k), m("/rd initrd-of=a kind=linux", &k)]);
        assert!(line(&p[1]).ends_with("keys 'initrd-of' and 'kind' do not go together"));
        let p = plan_all(&[m("/k name=a name=b", &k)]);
        assert!(line(&p[0]).ends_with("key 'name' given twice"));
    }

    #[test]
    fn initrd_of_a_missing_guest() {
        let p = plan_all(&[m("/rd initrd-of=nobody", b"cpio")]);
        assert_eq!(
            line(&p[0]),
            "guest module0: not started: initrd for 'nobody', but no guest has that name"
        );
    }

    #[test]
    fn initrd_of_a_failed_guest_adds_no_line() {
        let p = plan_all(&[m("/junk name=lx", b"junk"), m("/rd initrd-of=lx", b"cpio")]);
        assert!(line(&p[0]).contains("not a multiboot1 kernel"));
        assert!(matches!(p[1], Ok(Role::Initrd { of: 0 })));
        assert_eq!(refusals(&p), 1);
    }

    #[test]
    fn second_initrd_and_initrd_of_multiboot1() {
        let (k, mb) = (bzimage(), aout_image(&[0xf4], 0));
        let p = plan_all(&[
            m("/vmlinuz name=lx", &k),
            m("/rd initrd-of=lx", b"1"),
            m("/rd2 initrd-of=lx", b"2"),
            m("/mb name=mb", &mb),
            m("/rd3 initrd-of=mb", b"3"),
        ]);
        assert_eq!(guest(&p[0]).initrd, Some(&b"1"[..]));
        assert_eq!(
            line(&p[2]),
            "guest module2: not started: second initrd for 'lx': module1 is its initrd already"
        );
        assert!(guest(&p[3]).initrd.is_none());
        assert!(line(&p[4]).contains("a multiboot1 guest: only Linux guests take one"));
        assert_eq!(refusals(&p), 2);
    }

    #[test]
    fn more_modules_than_the_table_holds() {
        let k = aout_image(&[0xf4], 0);
        let lines: Vec<String> = (0..MAX_MODULES + 3)
            .map(|i| std::format!("/k name=g{i}"))
            .collect();
        let mods: Vec<ModuleIn<'_>> = lines.iter().map(|l| m(l, &k)).collect();
        let p = plan_all(&mods);
        assert_eq!((p.len(), refusals(&p)), (MAX_MODULES, 0));
        assert_eq!(
            too_many(MAX_MODULES).to_string(),
            "guest module32: not started: Janus takes at most 32 modules"
        );
    }
}
