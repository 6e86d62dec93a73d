//! Turning the boot loader's modules into guests: [`modules::plan_all`] (host-tested in
//! vmm-core) decides what each module is; here each planned guest gets its RAM and its
//! image. A module that cannot become a guest gets one line saying why; the others still
//! start.

use crate::bootinfo::BootInfo;
use crate::frames::HostFrames;
use crate::say;
use arrayvec::ArrayVec;
use core::fmt;
use vmm_core::addr::{GuestPhys, HostPhys, MIB, PAGE_2M, PAGE_4K};
use vmm_core::devices::ioapic::DEFAULT_BASE as IOAPIC_BASE;
use vmm_core::firmware::{acpi, mptable};
use vmm_core::loader::bootarea::BootState;
use vmm_core::loader::e820::EBDA_START;
use vmm_core::loader::modules::{self, GuestPlan, Image, ModuleIn, Role, MAX_MODULES};
use vmm_core::loader::{linux, multiboot1, multiboot2};
use vmm_core::memory::{GuestMemory, MemError};
use vmm_core::nested::FrameAllocator;
use vmm_core::platform::IOAPIC_ID;
use vmm_core::vcpu::StartMode;
use vmm_core::vm::{HostHooks, Vm};

pub struct Guest {
    pub vm: Vm,
    pub start: StartMode,
    /// What the guest was made from, to start it again (`on-reset=restart`).
    pub plan: GuestPlan<'static>,
    /// Its RAM: host-physical start and size.
    pub ram: (HostPhys, u64),
}

impl Guest {
    /// Gives the guest's RAM back to `frames` (zeroed before it is handed out again).
    pub fn free_ram(&self, frames: &mut HostFrames) {
        let (hpa, size) = self.ram;
        frames.free(hpa, (size / PAGE_4K) as usize);
    }

    /// Starts the guest again from its image: fresh RAM, devices and boot state. On
    /// failure (its one line was printed) the guest keeps what it had.
    pub fn reload(&mut self, frames: &mut HostFrames) -> Result<(), Rejected> {
        let (plan, hooks) = (self.plan, self.vm.host);
        let mut fresh = load(&plan, frames, hooks)?;
        fresh.vm.console_owner = self.vm.console_owner;
        self.free_ram(frames);
        *self = fresh;
        Ok(())
    }
}

/// A module that did not become a guest; its one line is printed.
pub struct Rejected;

/// Gives planned guest `plan` its RAM and loads its image, or says why not.
fn load(
    plan: &GuestPlan<'static>,
    frames: &mut HostFrames,
    hooks: HostHooks,
) -> Result<Guest, Rejected> {
    let name = plan.name;
    let reject = |args: fmt::Arguments<'_>| {
        say!("guest {}: not started: {}", name, args);
        Rejected
    };
    let size = plan.mem;
    let Some((hpa, ptr)) = frames.alloc_ram(size, PAGE_2M) else {
        return Err(reject(format_args!(
            "needs {} MiB of RAM but at most {} MiB are free",
            size / MIB,
            frames.largest(PAGE_2M) / MIB
        )));
    };
    let mut mem = GuestMemory::new();
    // SAFETY: `alloc_ram` handed out [hpa, hpa+size) to this guest alone, until
    // `Guest::free_ram` gives it back.
    let loaded = unsafe { mem.add_region(GuestPhys(0), hpa, size, ptr) }
        .map_err(LoadError::Memory)
        .and_then(|()| match plan.image {
            Image::Linux(img) => load_linux(plan, &img, &mut mem),
            Image::Multiboot1(image) => load_multiboot1(plan, image, &mut mem),
            Image::Multiboot2(image) => load_multiboot2(plan, image, &mut mem),
        });
    let start = match loaded {
        Ok(start) => start,
        Err(e) => {
            frames.free(hpa, (size / PAGE_4K) as usize);
            return Err(reject(format_args!("{e}")));
        }
    };
    Ok(Guest {
        vm: Vm::new(&name, mem, hooks, plan.vcpus),
        start,
        plan: *plan,
        ram: (hpa, size),
    })
}

/// Why loading an image failed.
enum LoadError {
    Linux(linux::LinuxError),
    Multiboot1(multiboot1::LoadError),
    Multiboot2(multiboot2::LoadError),
    Table(&'static str, MemError),
    Memory(MemError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Linux(e) => write!(f, "{e}"),
            LoadError::Multiboot1(e) => write!(f, "{e}"),
            LoadError::Multiboot2(e) => write!(f, "{e}"),
            LoadError::Table(what, e) => write!(f, "cannot write the {what}: {e}"),
            LoadError::Memory(e) => write!(f, "{e}"),
        }
    }
}

fn load_linux(
    plan: &GuestPlan<'_>,
    img: &linux::LinuxImage<'_>,
    mem: &mut GuestMemory,
) -> Result<StartMode, LoadError> {
    let setup = linux::LinuxSetup {
        ram: plan.mem,
        cmdline: plan.cmdline,
        initrd: plan.initrd,
    };
    let boot = linux::load(img, mem, &setup).map_err(LoadError::Linux)?;
    write_firmware_tables(mem, plan.vcpus)?;
    say!(
        "guest {}: loaded Linux (boot protocol {}.{:02}), kernel at {:#x}, initrd {}, memory {} MiB",
        plan.name,
        img.version >> 8,
        img.version & 0xff,
        boot.kernel_addr,
        match (plan.initrd, boot.initrd_addr) {
            (Some(i), Some(a)) => InitrdNote::At(i.len(), a),
            _ => InitrdNote::None,
        },
        plan.mem / MIB
    );
    Ok(boot.start)
}

/// The MP table in the EBDA and the ACPI tables from [`acpi::RSDP_ADDR`], describing the
/// guest's `vcpus` CPUs (APIC IDs 0 to vcpus - 1), the IOAPIC and the ISA interrupts.
fn write_firmware_tables(mem: &mut GuestMemory, vcpus: u8) -> Result<(), LoadError> {
    mptable::write(
        mem,
        GuestPhys(EBDA_START),
        vcpus,
        IOAPIC_ID,
        IOAPIC_BASE as u32,
    )
    .map_err(|e| LoadError::Table("MP table", e))?;
    acpi::write(
        mem,
        GuestPhys(acpi::RSDP_ADDR),
        vcpus,
        IOAPIC_ID,
        IOAPIC_BASE as u32,
        acpi::PmPorts::PC,
    )
    .map_err(|e| LoadError::Table("ACPI tables", e))?;
    Ok(())
}

/// Multiboot1 guests find the firmware tables where a PC's BIOS leaves them (as under
/// QEMU's `-kernel`): an SMP kernel learns its CPUs from them.
fn load_multiboot1(
    plan: &GuestPlan<'_>,
    image: &[u8],
    mem: &mut GuestMemory,
) -> Result<StartMode, LoadError> {
    write_firmware_tables(mem, plan.vcpus)?;
    let modules = plan.modules.as_slice();
    let boot =
        multiboot1::load(image, mem, plan.cmdline, modules).map_err(LoadError::Multiboot1)?;
    say_multiboot(plan, "multiboot1", &boot);
    Ok(boot.start_mode())
}

/// A multiboot2 guest gets the firmware tables too, and their RSDP in its information.
fn load_multiboot2(
    plan: &GuestPlan<'_>,
    image: &[u8],
    mem: &mut GuestMemory,
) -> Result<StartMode, LoadError> {
    write_firmware_tables(mem, plan.vcpus)?;
    let modules = plan.modules.as_slice();
    let rsdp = Some(acpi::RSDP_ADDR);
    let boot =
        multiboot2::load(image, mem, plan.cmdline, modules, rsdp).map_err(LoadError::Multiboot2)?;
    say_multiboot(plan, "multiboot2", &boot);
    Ok(boot.start_mode())
}

fn say_multiboot(plan: &GuestPlan<'_>, kind: &str, boot: &BootState) {
    let count = plan.modules.as_slice().len();
    say!(
        "guest {}: loaded {}, entry {:#x}, memory {} MiB, boot information at {:#x}, {} module{} up to {:#x}",
        plan.name,
        kind,
        boot.entry,
        plan.mem / MIB,
        boot.ebx,
        count,
        if count == 1 { "" } else { "s" },
        boot.area.end
    );
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

/// All modules, in order: the guests that loaded and the number rejected (each
/// rejected module printed one line).
pub fn load_all(
    info: &BootInfo,
    frames: &mut HostFrames,
    hooks: HostHooks,
) -> (ArrayVec<Guest, MAX_MODULES>, usize) {
    let inputs: ArrayVec<ModuleIn<'static>, MAX_MODULES> = info
        .modules
        .iter()
        .map(|m| ModuleIn {
            cmdline: m.cmdline,
            image: m.bytes(),
        })
        .collect();
    let mut guests = ArrayVec::new();
    let mut rejected = 0;
    for plan in modules::plan_all(&inputs) {
        match plan {
            Ok(Role::Guest(g)) => match load(&g, frames, hooks) {
                Ok(guest) => guests.push(guest),
                Err(Rejected) => rejected += 1,
            },
            Ok(Role::Initrd { .. } | Role::Module { .. }) => {}
            Err(r) => {
                say!("{}", r);
                rejected += 1;
            }
        }
    }
    for i in info.modules.len()..info.modules_given {
        say!("{}", modules::too_many(i));
        rejected += 1;
    }
    (guests, rejected)
}
