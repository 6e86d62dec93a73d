//! From the boot loader's modules to guest plans: which module is a guest (with its
//! name, kind, RAM size, kernel command line, initrd or multiboot modules), which is an
//! initrd (`initrd-of=`, Linux guests) and which a multiboot module (`module-of=`,
//! multiboot1 and multiboot2 guests: Multiboot 0.6.96 3.3, Multiboot2 spec 2.0 3.6.6),
//! or why a module cannot be any of these. Pure: the boot code allocates the RAM and
//! loads the images.
//!
//! A guest's multiboot modules keep their line order, whether their lines come before or
//! after the guest's; at most [`MAX_GUEST_MODULES`] each.
//!
//! Every refused module gets one [`Refusal`], printed as one line
//! `guest LABEL: not started: REASON`; the other modules are unaffected.

use crate::addr::{MIB, PAGE_2M};
use crate::loader::bootarea::{BootModule, PAGE};
use crate::loader::cmdline::{
    parse_module_args, valid_name_char, ArgError, Clip, GuestKind, ModuleArgs, ModuleString,
    OnReset,
};
use crate::loader::{linux, multiboot1, multiboot2};
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
/// Multiboot modules one guest takes; more are refused.
pub const MAX_GUEST_MODULES: usize = 16;

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
    Multiboot2(&'a [u8]),
    Linux(linux::LinuxImage<'a>),
}

/// A multiboot guest's modules, in line order.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestModules<'a> {
    list: [BootModule<'a>; MAX_GUEST_MODULES],
    len: usize,
}

impl<'a> GuestModules<'a> {
    pub fn as_slice(&self) -> &[BootModule<'a>] {
        &self.list[..self.len]
    }

    /// Adds `m`; false when the guest has [`MAX_GUEST_MODULES`] already.
    fn push(&mut self, m: BootModule<'a>) -> bool {
        let Some(slot) = self.list.get_mut(self.len) else {
            return false;
        };
        *slot = m;
        self.len += 1;
        true
    }

    /// Bytes the modules take in guest RAM, each from a page boundary.
    fn footprint(&self) -> u64 {
        self.as_slice()
            .iter()
            .map(|m| (m.image.len() as u64).next_multiple_of(PAGE))
            .sum()
    }
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
    /// Its multiboot modules (multiboot guests only).
    pub modules: GuestModules<'a>,
    /// How the guest shares the CPU and what its end is.
    pub schedule: Schedule,
    /// Its virtual CPUs (`vcpus=`, 1 to [`crate::vm::MAX_GUEST_VCPUS`]): the first starts
    /// at the image's entry, the others wait for INIT and SIPI as on a PC.
    pub vcpus: u8,
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
    /// `cpus=`: the host CPUs it may run on (`crate::smp::place`).
    pub cpus: Option<crate::smp::CpuSet>,
}

/// What a module is.
// A guest's plan holds its modules inline (about 1 KiB; vmm-core has no heap): the
// roles of one boot, 32 at most, are planned once.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Role<'a> {
    Guest(GuestPlan<'a>),
    /// The initrd of the guest module at this index.
    Initrd {
        of: usize,
    },
    /// A multiboot module of the guest module at this index.
    Module {
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
    ModuleOrphan(&'a str),
    ModuleOfLinux(&'a str),
    /// The guest has [`MAX_GUEST_MODULES`] modules already.
    TooManyGuestModules(&'a str),
    /// Its modules and image (bytes) do not fit its RAM (bytes).
    ModulesTooBig {
        need: u64,
        mem: u64,
    },
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
                "initrd for '{}', a multiboot guest: only Linux guests take one (give it modules with module-of=)",
                Clip(of)
            ),
            Reason::ModuleOrphan(of) => write!(
                f,
                "module for '{}', but no guest has that name",
                Clip(of)
            ),
            Reason::ModuleOfLinux(of) => write!(
                f,
                "module for '{}', a Linux guest: give a Linux guest its initrd with initrd-of=",
                Clip(of)
            ),
            Reason::TooManyGuestModules(of) => write!(
                f,
                "module for '{}', which has {MAX_GUEST_MODULES} modules already (at most {MAX_GUEST_MODULES} a guest)",
                Clip(of)
            ),
            Reason::ModulesTooBig { need, mem } => write!(
                f,
                "its image and modules ({} KiB) do not fit its {} MiB of RAM",
                need.div_ceil(1024),
                mem >> 20
            ),
            Reason::UnknownImage(len) => write!(
                f,
                "not a multiboot kernel (no multiboot1 header in the first 8 KiB, no multiboot2 header in the first 32 KiB) nor a Linux bzImage ({len} bytes)"
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
    Module(&'a str, ModuleString<'a>),
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
        Ok(ModuleArgs {
            module_of: Some((of, string)),
            ..
        }) => Parsed::Module(of, string),
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

/// `kind=`, else what the image is: Linux, then multiboot2, then multiboot1 (a kernel
/// with both multiboot headers is a multiboot2 kernel, as GRUB's `multiboot2` loads it).
fn kind_of(args: &ModuleArgs<'_>, image: &[u8]) -> Option<GuestKind> {
    match args.kind {
        Some(k) => Some(k),
        None if image.get(0x202..0x206) == Some(linux::HDRS) => Some(GuestKind::Linux),
        None if multiboot2::is_multiboot2(image) => Some(GuestKind::Multiboot2),
        None if multiboot1::is_multiboot1(image) => Some(GuestKind::Multiboot1),
        None => None,
    }
}

/// What attaches to one guest: its initrd and its multiboot modules.
#[derive(Clone, Copy, Default)]
struct Attached<'a> {
    initrd: Option<&'a [u8]>,
    modules: GuestModules<'a>,
}

fn plan_guest<'a>(
    m: &ModuleIn<'a>,
    args: &ModuleArgs<'a>,
    name: Name,
    attached: Attached<'a>,
) -> Result<GuestPlan<'a>, Reason<'a>> {
    let kind = kind_of(args, m.image).ok_or(Reason::UnknownImage(m.image.len()))?;
    let Attached { initrd, modules } = attached;
    let multiboot = |image| (image, DEFAULT_MEM, args.cmdline.unwrap_or(m.cmdline), None);
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
        GuestKind::Multiboot1 => multiboot(Image::Multiboot1(m.image)),
        GuestKind::Multiboot2 => multiboot(Image::Multiboot2(m.image)),
    };
    let modules = match image {
        Image::Linux(_) => GuestModules::default(),
        _ => modules,
    };
    let want = args.mem.unwrap_or(default_mem);
    if want < MIN_MEM {
        return Err(Reason::MemTooSmall(want));
    }
    let mem = want.div_ceil(PAGE_2M) * PAGE_2M;
    let need = (m.image.len() as u64).next_multiple_of(PAGE) + modules.footprint();
    if modules.len > 0 && need > mem {
        return Err(Reason::ModulesTooBig { need, mem });
    }
    Ok(GuestPlan {
        name,
        image,
        mem,
        cmdline,
        initrd,
        modules,
        vcpus: args.vcpus.unwrap_or(1),
        schedule: Schedule {
            weight: args.weight.unwrap_or(1),
            on_reset: args.on_reset.unwrap_or_default(),
            limit_ns: args.limit_ns,
            after: args.after.and_then(|a| Name::try_from(a).ok()),
            cpus: args.cpus,
        },
    })
}

/// Attaches each initrd and module line to its guest: `Ok(guest index)` or why not.
/// Entries of the other lines are `None`.
fn attach<'a>(parsed: &[Parsed<'a>]) -> ArrayVec<Option<Result<usize, Reason<'a>>>, MAX_MODULES> {
    let mut out: ArrayVec<Option<Result<usize, Reason<'a>>>, MAX_MODULES> = ArrayVec::new();
    for p in parsed {
        // How many earlier lines of the same kind attached to guest `g`, and the first.
        let earlier = |out: &[Option<Result<usize, Reason<'a>>>], g: usize| {
            let same = |j: &usize| {
                out[*j] == Some(Ok(g))
                    && core::mem::discriminant(&parsed[*j]) == core::mem::discriminant(p)
            };
            (
                (0..out.len()).filter(same).count(),
                (0..out.len()).find(same),
            )
        };
        out.push(match *p {
            Parsed::Initrd(of) => Some(match owner(of, parsed) {
                None => Err(Reason::InitrdOrphan(of)),
                Some(g) => match earlier(&out, g).1 {
                    Some(first) => Err(Reason::SecondInitrd { of, first }),
                    None => Ok(g),
                },
            }),
            Parsed::Module(of, _) => Some(match owner(of, parsed) {
                None => Err(Reason::ModuleOrphan(of)),
                Some(g) if earlier(&out, g).0 >= MAX_GUEST_MODULES => {
                    Err(Reason::TooManyGuestModules(of))
                }
                Some(g) => Ok(g),
            }),
            _ => None,
        });
    }
    out
}

/// The initrd and modules of guest `g`.
fn attached_to<'a>(
    g: usize,
    modules: &[ModuleIn<'a>],
    parsed: &[Parsed<'a>],
    attachments: &[Option<Result<usize, Reason<'a>>>],
) -> Attached<'a> {
    let mut a = Attached::default();
    for (i, at) in attachments.iter().enumerate() {
        if *at != Some(Ok(g)) {
            continue;
        }
        match parsed[i] {
            Parsed::Initrd(_) => a.initrd = Some(modules[i].image),
            Parsed::Module(_, string) => {
                a.modules.push(BootModule {
                    image: modules[i].image,
                    string,
                });
            }
            _ => {}
        }
    }
    a
}

/// An initrd of a multiboot guest, or a module of a Linux guest: why not, if so.
fn wrong_kind<'a>(line: Parsed<'a>, guest: &Result<Role<'a>, Refusal<'a>>) -> Option<Reason<'a>> {
    let Ok(Role::Guest(g)) = guest else {
        return None;
    };
    match (line, g.image) {
        (Parsed::Initrd(of), Image::Multiboot1(_) | Image::Multiboot2(_)) => {
            Some(Reason::InitrdNotLinux(of))
        }
        (Parsed::Module(of, _), Image::Linux(_)) => Some(Reason::ModuleOfLinux(of)),
        _ => None,
    }
}

/// Plans every module (at most [`MAX_MODULES`]), in order: a guest, an initrd, a
/// multiboot module or a refusal. The first module with a name keeps it; initrds and
/// modules attach to that guest. A refused guest's initrd and modules say nothing more:
/// the guest's line is the reason.
pub fn plan_all<'a>(
    modules: &[ModuleIn<'a>],
) -> ArrayVec<Result<Role<'a>, Refusal<'a>>, MAX_MODULES> {
    let modules = &modules[..modules.len().min(MAX_MODULES)];
    let mut parsed: ArrayVec<Parsed<'a>, MAX_MODULES> = ArrayVec::new();
    for (i, m) in modules.iter().enumerate() {
        let p = parse_one(i, m, &parsed);
        parsed.push(p);
    }
    let attachments = attach(&parsed);
    let mut out: ArrayVec<Result<Role<'a>, Refusal<'a>>, MAX_MODULES> = parsed
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let refuse = |reason| Refusal {
                label: module_label(i),
                reason,
            };
            match *p {
                Parsed::Refused(r) => Err(r),
                Parsed::Guest(args, name) => {
                    let attached = attached_to(i, modules, &parsed, &attachments);
                    plan_guest(&modules[i], &args, name, attached)
                        .map(Role::Guest)
                        .map_err(|reason| Refusal {
                            label: name,
                            reason,
                        })
                }
                Parsed::Initrd(of) => attachments[i]
                    .unwrap_or(Err(Reason::InitrdOrphan(of)))
                    .map(|of| Role::Initrd { of })
                    .map_err(refuse),
                Parsed::Module(of, _) => attachments[i]
                    .unwrap_or(Err(Reason::ModuleOrphan(of)))
                    .map(|of| Role::Module { of })
                    .map_err(refuse),
            }
        })
        .collect();
    for i in 0..out.len() {
        let of = match out[i] {
            Ok(Role::Initrd { of } | Role::Module { of }) => of,
            _ => continue,
        };
        if let Some(reason) = wrong_kind(parsed[i], &out[of]) {
            out[i] = Err(Refusal {
                label: module_label(i),
                reason,
            });
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
    use crate::loader::multiboot1::FLAG_MEMORY_INFO;
    use crate::loader::samples::{aout_image, bzimage, elf32_with, header, mb2_header};
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
    fn vcpus_are_planned_and_bad_counts_refuse_only_their_guest() {
        let k = aout_image(&[0xf4], 0);
        let p = plan_all(&[
            m("/k name=one", &k),
            m("/k name=four vcpus=4", &k),
            m("/k name=zero vcpus=0", &k),
            m("/k name=nine vcpus=9", &k),
            m("/k name=word vcpus=two", &k),
            m("/k name=max vcpus=8", &k),
        ]);
        assert_eq!(guest(&p[0]).vcpus, 1, "default");
        assert_eq!(guest(&p[1]).vcpus, 4);
        assert_eq!(guest(&p[5]).vcpus, 8);
        assert_eq!(
            line(&p[2]),
            "guest module2: not started: bad module command line: bad vcpus '0': use a number of virtual CPUs, 1 to 8"
        );
        assert!(line(&p[3]).ends_with("bad vcpus '9': use a number of virtual CPUs, 1 to 8"));
        assert!(line(&p[4]).ends_with("bad vcpus 'two': use a number of virtual CPUs, 1 to 8"));
        assert_eq!(refusals(&p), 3);
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
            "guest j: not started: not a multiboot kernel (no multiboot1 header in the first 8 KiB, no multiboot2 header in the first 32 KiB) nor a Linux bzImage (15 bytes)"
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
            "guest module0: not started: bad module command line: unknown key 'colour' (known: name, mem, kind, cmdline, initrd-of, module-of, weight, on-reset, limit, after, cpus, vcpus)"
        );
    }

    #[test]
    fn unknown_kind() {
        let k = aout_image(&[0xf4], 0);
        let p = plan_all(&[m("/k kind=windows", &k)]);
        assert!(line(&p[0]).ends_with("bad kind 'windows': use multiboot1, multiboot2 or linux"));
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
        assert!(line(&p[0]).contains("not a multiboot kernel"));
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
        assert!(line(&p[4]).contains("a multiboot guest: only Linux guests take one"));
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

    fn module_strings(g: &GuestPlan<'_>) -> Vec<String> {
        g.modules
            .as_slice()
            .iter()
            .map(|m| m.string.to_string())
            .collect()
    }

    #[test]
    fn modules_attach_in_line_order_before_or_after_their_guest() {
        let k = aout_image(&[0xf4], 0);
        let p = plan_all(&[
            m("module-of=k one 1", b"first"),
            m("/k name=k", &k),
            m("/guests/two module-of=k", b"second"),
            m("module-of=k", b""),
        ]);
        let g = guest(&p[1]);
        assert_eq!(module_strings(&g), ["one 1", "/guests/two", ""]);
        let images: Vec<&[u8]> = g.modules.as_slice().iter().map(|m| m.image).collect();
        assert_eq!(images, [&b"first"[..], b"second", b""]);
        for i in [0, 2, 3] {
            assert!(matches!(p[i], Ok(Role::Module { of: 1 })), "{i}");
        }
        assert!(guest(&plan_all(&[m("/k", &k)])[0])
            .modules
            .as_slice()
            .is_empty());
    }

    #[test]
    fn module_of_nobody_or_of_a_linux_guest() {
        let (k, lx) = (aout_image(&[0xf4], 0), bzimage());
        let p = plan_all(&[
            m("module-of=nobody", b"x"),
            m("/vmlinuz name=lx", &lx),
            m("/rd initrd-of=lx", b"cpio"),
            m("module-of=lx", b"x"),
            m("/k name=k", &k),
        ]);
        assert_eq!(
            line(&p[0]),
            "guest module0: not started: module for 'nobody', but no guest has that name"
        );
        assert_eq!(
            line(&p[3]),
            "guest module3: not started: module for 'lx', a Linux guest: give a Linux guest its initrd with initrd-of="
        );
        assert!(guest(&p[1]).modules.as_slice().is_empty());
        assert_eq!(guest(&p[1]).initrd, Some(&b"cpio"[..]));
        assert_eq!(refusals(&p), 2);
    }

    #[test]
    fn too_many_modules_for_one_guest() {
        let k = aout_image(&[0xf4], 0);
        let lines: Vec<String> = (0..=MAX_GUEST_MODULES)
            .map(|i| std::format!("module-of=k m{i}"))
            .collect();
        let mut mods = std::vec![m("/k name=k", &k)];
        mods.extend(lines.iter().map(|l| m(l, b"data")));
        let p = plan_all(&mods);
        let g = guest(&p[0]);
        assert_eq!(g.modules.as_slice().len(), MAX_GUEST_MODULES);
        assert_eq!(module_strings(&g)[MAX_GUEST_MODULES - 1], "m15");
        assert_eq!(
            line(&p[MAX_GUEST_MODULES + 1]),
            "guest module17: not started: module for 'k', which has 16 modules already (at most 16 a guest)"
        );
        assert_eq!(refusals(&p), 1);
    }

    #[test]
    fn modules_that_do_not_fit_refuse_their_guest_alone() {
        let k = aout_image(&[0xf4], 0);
        let big = std::vec![0u8; 2 << 20];
        let p = plan_all(&[
            m("/k name=k mem=2M", &k),
            m("module-of=k", &big),
            m("/j name=j mem=4M", &k),
            m("module-of=j", &big),
        ]);
        assert_eq!(
            line(&p[0]),
            "guest k: not started: its image and modules (2052 KiB) do not fit its 2 MiB of RAM"
        );
        assert!(matches!(p[1], Ok(Role::Module { of: 0 })), "no second line");
        assert_eq!(guest(&p[2]).modules.as_slice().len(), 1);
        assert_eq!(refusals(&p), 1);
    }

    #[test]
    fn multiboot2_detected_before_multiboot1() {
        let mb2 = elf32_with(
            0x10_0000,
            0x10_0000,
            0x10_0000,
            &[0xf4],
            0x10,
            &mb2_header(&[]),
        );
        let mut both = mb2.clone();
        both.resize(both.len().next_multiple_of(4), 0);
        both.extend_from_slice(&header(FLAG_MEMORY_INFO));
        assert!(crate::loader::multiboot1::is_multiboot1(&both));
        let k = aout_image(&[0xf4], 0);
        let p = plan_all(&[
            m("/a", &mb2),
            m("/b", &both),
            m("/c kind=multiboot2", &k),
            m("/d", &k),
            m("module-of=a x", b"1"),
        ]);
        for i in 0..3 {
            assert!(matches!(guest(&p[i]).image, Image::Multiboot2(_)), "{i}");
        }
        assert!(matches!(guest(&p[3]).image, Image::Multiboot1(_)));
        assert_eq!(module_strings(&guest(&p[0])), ["x"]);
    }
}
