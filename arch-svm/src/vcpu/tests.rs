//! Host tests of the AMD-V vCPU: an `SvmVcpu` over a VMCB in ordinary memory at a made-up
//! physical address. Nothing here executes an SVM instruction. Expected values are
//! written as the manual gives them (APM Vol 2), not through the crate's constants.

mod clean;
mod control;
mod debug;
mod events;
mod in_place;
mod next_rip;
mod regs;
mod setup;

use super::{SvmVcpu, Switch};
use crate::asid::AsidPool;
use crate::caps::SvmCaps;
use crate::setup::Tables;
use crate::vmcb::{Vmcb, VmcbPage};
use std::boxed::Box;
use std::ptr::NonNull;
use vmm_core::addr::HostPhys;
use vmm_core::cpu_rules::CpuRules;
use vmm_core::vcpu::StartMode;

/// A host CPUID with every feature on; Janus' CPUID policy then hides what it hides.
fn host_cpuid(leaf: u32, _sub: u32) -> [u32; 4] {
    match leaf {
        0 => [0xd, 0, 0, 0],
        1 => [0, 0, u32::MAX, u32::MAX],
        7 => [0, u32::MAX, u32::MAX, 0],
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        0x8000_0001 => [0, 0, u32::MAX, u32::MAX],
        _ => [0; 4],
    }
}

const CAPS: SvmCaps = SvmCaps {
    npt: true,
    nrip_save: false,
    asids: 16,
    decode_assists: false,
    flush_by_asid: false,
    vmcb_clean: false,
};
const NRIP_CAPS: SvmCaps = SvmCaps {
    nrip_save: true,
    ..CAPS
};

const VMCB_PA: HostPhys = HostPhys(0x7000_0000);
const HOST_SAVE: HostPhys = HostPhys(0x7000_1000);
const TABLES: Tables = Tables {
    iopm: HostPhys(0x7001_0000),
    msrpm: HostPhys(0x7002_0000),
    n_cr3: HostPhys(0x7003_0000),
    asid: 5,
};

/// 32-bit protected mode, paging off (multiboot1), at `ENTRY`.
const ENTRY: u32 = 0x1000;
const PROTECTED: StartMode = StartMode::Protected32 {
    entry: ENTRY,
    eax: 0x2bad_b002,
    ebx: 0x9000,
};
const LONG: StartMode = StartMode::Long64 {
    rip: 0x20_0000,
    rsi: 0x7000,
    cr3: 0x10_0000,
    gdt_base: 0x500,
    gdt_limit: 0x1f,
};

/// A zeroed VMCB on the heap, never freed.
fn zeroed_vmcb() -> VmcbPage {
    // SAFETY: a `Vmcb` is integers and byte arrays only, for which all zeroes is valid.
    let vmcb = unsafe { Box::<Vmcb>::new_zeroed().assume_init() };
    // SAFETY: the leaked box is valid forever and used through this page alone; no test
    // runs VMRUN, so the address is never used.
    unsafe { VmcbPage::new(NonNull::from(Box::leak(vmcb)), VMCB_PA) }
}

/// A vCPU over `TABLES`, with a pool of its own for the ASID (svm/tests.rs releases
/// vCPUs; these tests do not).
fn vcpu_with(start: StartMode, caps: SvmCaps) -> SvmVcpu {
    let asids: &'static AsidPool = Box::leak(Box::new(AsidPool::new()));
    SvmVcpu::new(
        zeroed_vmcb(),
        HOST_SAVE,
        caps,
        CpuRules::for_guest(host_cpuid),
        &TABLES,
        &start.initial_state(),
        asids,
    )
}

fn vcpu(start: StartMode) -> SvmVcpu {
    vcpu_with(start, CAPS)
}

/// The world switch `run_with` gets in a host test: `play` at each VMRUN (the first,
/// and each after an exit finished in place), nothing when the switch is left.
fn playing(mut play: impl FnMut(&mut SvmVcpu)) -> impl FnMut(&mut SvmVcpu, Switch) {
    move |v, part| {
        if part != Switch::Leave {
            play(v)
        }
    }
}

/// What `run` makes of the exit the test wrote into the VMCB, as if a VMRUN had just
/// ended with it.
fn exit(v: &mut SvmVcpu) -> Result<vmm_core::exit::VmExit, vmm_core::vcpu::VcpuError> {
    let loaded = core::mem::replace(&mut v.loaded, true);
    let exit = v.run_with(playing(|_| {}));
    v.loaded = loaded;
    exit
}
