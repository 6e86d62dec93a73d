//! Turning GRUB modules into guests: parse each module's command line, give the guest
//! its RAM and load its image. A module that cannot become a guest gets one line saying
//! why; the others still start.

use crate::bootinfo::{BootInfo, Module};
use crate::frames::HostFrames;
use crate::say;
use core::fmt;
use vmm_core::addr::{GuestPhys, MIB, PAGE_2M};
use vmm_core::loader::cmdline::{parse_module_args, GuestKind, ModuleArgs};
use vmm_core::loader::multiboot1;
use vmm_core::memory::GuestMemory;
use vmm_core::vcpu::StartMode;
use vmm_core::vm::{HostHooks, Name, Vm};

pub const DEFAULT_MEM: u64 = 16 * MIB;
pub const MIN_MEM: u64 = 2 * MIB;

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

/// Loads module `index` as a guest, or says why not.
pub fn load(index: usize, m: &Module, frames: &mut HostFrames, hooks: HostHooks) -> Result<Guest, Rejected> {
    let args = match parse_module_args(m.cmdline) {
        Ok(a) => a,
        Err(e) => {
            say!("guest module{}: not started: bad module command line {:?}: {}", index, m.cmdline, e);
            return Err(Rejected);
        }
    };
    let name = name_of(index, &args);
    let reject = |args: fmt::Arguments<'_>| {
        say!("guest {}: not started: {}", name, args);
        Rejected
    };
    if let Some(of) = args.initrd_of {
        return Err(reject(format_args!("initrd for '{of}': Linux guests are not supported yet")));
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
    if kind == GuestKind::Linux {
        return Err(reject(format_args!("Linux guests are not supported yet")));
    }
    let want = args.mem.unwrap_or(DEFAULT_MEM);
    if want < MIN_MEM {
        return Err(reject(format_args!("mem={} KiB is too little: a guest needs at least 2 MiB", want / 1024)));
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
    let cmdline = args.cmdline.unwrap_or(m.cmdline);
    let boot = match multiboot1::load(image, &mut mem, cmdline) {
        Ok(b) => b,
        Err(e) => return Err(reject(format_args!("{e}"))),
    };
    say!("guest {}: loaded multiboot1, entry {:#x}, memory {} MiB", name, boot.entry, size / MIB);
    Ok(Guest {
        vm: Vm::new(&name, mem, hooks),
        start: StartMode::Protected32 { entry: boot.entry, eax: boot.eax, ebx: boot.ebx },
    })
}


/// All modules, in order: the guests that loaded and the number rejected.
pub fn load_all(info: &BootInfo, frames: &mut HostFrames, hooks: HostHooks) -> (arrayvec::ArrayVec<Guest, 32>, usize) {
    let mut guests = arrayvec::ArrayVec::new();
    let mut rejected = 0;
    for (i, m) in info.modules.iter().enumerate() {
        match load(i, m, frames, hooks) {
            Ok(g) => guests.push(g),
            Err(Rejected) => rejected += 1,
        }
    }
    (guests, rejected)
}
