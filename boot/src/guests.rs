//! Turning GRUB modules into guests: parse each module's command line, give the guest
//! its RAM and load its image. A module that cannot become a guest gets one line saying
//! why; the others still start.

use crate::bootinfo::{BootInfo, Module};
use crate::frames::HostFrames;
use crate::say;
use core::fmt;
use vmm_core::addr::{GuestPhys, MIB, PAGE_2M};
use vmm_core::devices::ioapic::DEFAULT_BASE as IOAPIC_BASE;
use vmm_core::firmware::{acpi, mptable};
use vmm_core::loader::cmdline::{parse_module_args, GuestKind, ModuleArgs};
use vmm_core::loader::e820::EBDA_START;
use vmm_core::loader::{linux, multiboot1};
use vmm_core::memory::GuestMemory;
use vmm_core::platform::IOAPIC_ID;
use vmm_core::vcpu::StartMode;
use vmm_core::vm::{HostHooks, Name, Vm};

pub const DEFAULT_MEM: u64 = 16 * MIB;
pub const MIN_MEM: u64 = 2 * MIB;
/// A Linux guest without `mem=`: Debian's kernel alone needs about 80 MiB to unpack.
pub const LINUX_DEFAULT_MEM: u64 = 256 * MIB;

pub struct Guest {
    pub vm: Vm,
    pub start: StartMode,
}

/// A module that did not become a guest, and why (one line).
pub struct Rejected;

fn name_of(index: usize, args: &ModuleArgs<'_>) -> Name {
    let mut n = Name::new();
    if let Some(name) = args.name {
        let _ = n.try_push_str(name);
    } else if let Some(path) = args.path {
        let file = path.rsplit('/').next().unwrap_or(path);
        let stem = file.split('.').next().unwrap_or(file);
        let _ = n.try_push_str(&stem[..stem.len().min(31)]);
    }
    if n.is_empty() {
        let _ = fmt::Write::write_fmt(&mut n, format_args!("guest{index}"));
    }
    n
}

/// The initrd module given for guest `name` (`initrd-of=NAME`), if any.
fn initrd_for(name: &str, modules: &[Module]) -> Option<&'static [u8]> {
    modules
        .iter()
        .find_map(|m| match parse_module_args(m.cmdline) {
            Ok(a) if a.initrd_of == Some(name) => Some(m.bytes()),
            _ => None,
        })
}

/// Loads module `index` as a guest, or says why not. An initrd module is not a guest:
/// `Ok(None)`.
pub fn load(
    index: usize,
    modules: &[Module],
    frames: &mut HostFrames,
    hooks: HostHooks,
) -> Result<Option<Guest>, Rejected> {
    let m = &modules[index];
    let args = match parse_module_args(m.cmdline) {
        Ok(a) => a,
        Err(e) => {
            say!(
                "guest module{}: not started: bad module command line {:?}: {}",
                index,
                m.cmdline,
                e
            );
            return Err(Rejected);
        }
    };
    let name = name_of(index, &args);
    let reject = |args: fmt::Arguments<'_>| {
        say!("guest {}: not started: {}", name, args);
        Rejected
    };
    if let Some(of) = args.initrd_of {
        let owner = modules.iter().enumerate().any(|(i, g)| {
            parse_module_args(g.cmdline)
                .is_ok_and(|a| a.initrd_of.is_none() && name_of(i, &a).as_str() == of)
        });
        if !owner {
            say!(
                "guest module{}: not started: initrd for '{}', but no guest has that name",
                index,
                of
            );
            return Err(Rejected);
        }
        return Ok(None);
    }
    let image = m.bytes();
    let kind = match args.kind {
        Some(k) => k,
        None if multiboot1::is_multiboot1(image) => GuestKind::Multiboot1,
        None if image.get(0x202..0x206) == Some(b"HdrS") => GuestKind::Linux,
        None => {
            return Err(reject(format_args!(
                "not a multiboot1 kernel (no multiboot header in the first 8 KiB) nor a Linux bzImage ({} bytes)",
                image.len()
            )))
        }
    };
    let image_linux = if kind == GuestKind::Linux {
        match linux::parse(image) {
            Ok(img) => Some(img),
            Err(e) => return Err(reject(format_args!("{e}"))),
        }
    } else {
        None
    };
    if image_linux.is_some() && initrd_for(&name, modules).is_none() {
        return Err(reject(format_args!(
            "no initrd: a Linux guest needs one here (Janus has no disks); add `module2 FILE initrd-of={name}`"
        )));
    }
    let want = args.mem.unwrap_or(if kind == GuestKind::Linux {
        LINUX_DEFAULT_MEM
    } else {
        DEFAULT_MEM
    });
    if want < MIN_MEM {
        return Err(reject(format_args!(
            "mem={} KiB is too little: a guest needs at least 2 MiB",
            want / 1024
        )));
    }
    let size = want.div_ceil(PAGE_2M) * PAGE_2M;
    let Some((hpa, ptr)) = frames.alloc_ram(size, PAGE_2M) else {
        return Err(reject(format_args!(
            "needs {} MiB of RAM but at most {} MiB are free",
            size / MIB,
            frames.largest(PAGE_2M) / MIB
        )));
    };
    let mut mem = GuestMemory::new();
    // SAFETY: `alloc_ram` handed out [hpa, hpa+size) for good; only this guest uses it.
    if let Err(e) = unsafe { mem.add_region(GuestPhys(0), hpa, size, ptr) } {
        return Err(reject(format_args!("{e}")));
    }
    if let Some(img) = image_linux {
        let initrd = initrd_for(&name, modules);
        let cmdline = args.cmdline.unwrap_or("console=ttyS0");
        let setup = linux::LinuxSetup {
            ram: size,
            cmdline,
            initrd,
        };
        let boot = match linux::load(&img, &mut mem, &setup) {
            Ok(b) => b,
            Err(e) => return Err(reject(format_args!("{e}"))),
        };
        if let Err(e) = mptable::write(
            &mut mem,
            GuestPhys(EBDA_START),
            1,
            IOAPIC_ID,
            IOAPIC_BASE as u32,
        ) {
            return Err(reject(format_args!("cannot write the MP table: {e}")));
        }
        if let Err(e) = acpi::write(
            &mut mem,
            GuestPhys(acpi::RSDP_ADDR),
            1,
            IOAPIC_ID,
            IOAPIC_BASE as u32,
            acpi::PmPorts::PC,
        ) {
            return Err(reject(format_args!("cannot write the ACPI tables: {e}")));
        }
        say!(
            "guest {}: loaded Linux (boot protocol {}.{:02}), kernel at {:#x}, initrd {}, memory {} MiB",
            name,
            img.version >> 8,
            img.version & 0xff,
            boot.kernel_addr,
            match (initrd, boot.initrd_addr) {
                (Some(i), Some(a)) => InitrdNote::At(i.len(), a),
                _ => InitrdNote::None,
            },
            size / MIB
        );
        return Ok(Some(Guest {
            vm: Vm::new(&name, mem, hooks),
            start: boot.start,
        }));
    }
    let cmdline = args.cmdline.unwrap_or(m.cmdline);
    let boot = match multiboot1::load(image, &mut mem, cmdline) {
        Ok(b) => b,
        Err(e) => return Err(reject(format_args!("{e}"))),
    };
    say!(
        "guest {}: loaded multiboot1, entry {:#x}, memory {} MiB",
        name,
        boot.entry,
        size / MIB
    );
    Ok(Some(Guest {
        vm: Vm::new(&name, mem, hooks),
        start: StartMode::Protected32 {
            entry: boot.entry,
            eax: boot.eax,
            ebx: boot.ebx,
        },
    }))
}

enum InitrdNote {
    None,
    At(usize, u64),
}

impl fmt::Display for InitrdNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitrdNote::None => write!(f, "none"),
            InitrdNote::At(len, addr) => write!(f, "{} KiB at {:#x}", len / 1024, addr),
        }
    }
}

/// All modules, in order: the guests that loaded and the number rejected.
pub fn load_all(
    info: &BootInfo,
    frames: &mut HostFrames,
    hooks: HostHooks,
) -> (arrayvec::ArrayVec<Guest, 32>, usize) {
    let mut guests = arrayvec::ArrayVec::new();
    let mut rejected = 0;
    for i in 0..info.modules.len() {
        match load(i, &info.modules, frames, hooks) {
            Ok(Some(g)) => guests.push(g),
            Ok(None) => {}
            Err(Rejected) => rejected += 1,
        }
    }
    (guests, rejected)
}
