//! Picks the backend for this CPU at run time and runs every guest through it.

use crate::bootinfo::BootInfo;
use crate::frames::HostFrames;
use crate::guests;
use crate::machine::EndCode;
use crate::say;
use crate::sched::{Cpu, Scheduler};
use crate::smp::Backend;
use raw_cpuid::CpuId;
use vmm_core::fpu::SaveMode;
use vmm_core::vcpu::ArchBackend;
use vmm_core::vendor::{classify, Vendor};
use vmm_core::vm::{GuestEnd, HostHooks};

/// Features CPUID advertises that this CPU turned out not to execute (probed at boot),
/// as (leaf, register index, bit) to clear before the guest policy sees them.
static BROKEN_FEATURES: spin::Once<arrayvec::ArrayVec<(u32, usize, u32), 4>> = spin::Once::new();

/// Probes the features guests rely on without checking; says which are broken.
pub fn probe_features() {
    BROKEN_FEATURES.call_once(|| {
        let mut broken = arrayvec::ArrayVec::new();
        let l1 = core::arch::x86_64::__cpuid_count(1, 0);
        if l1.ecx & (1 << 23) != 0 && !crate::idt::popcnt_works() {
            log::warn!("CPUID advertises POPCNT but it raises #UD: hidden from guests");
            broken.push((1, 2, 1 << 23));
            broken.push((0x8000_0001, 2, 1 << 5)); // ABM (LZCNT and POPCNT on AMD)
        }
        let ext = core::arch::x86_64::__cpuid_count(0x8000_0001, 0);
        if ext.ecx & (1 << 21) != 0 && !crate::idt::tbm_works() {
            log::warn!("CPUID advertises TBM but it raises #UD: hidden from guests");
            broken.push((0x8000_0001, 2, 1 << 21));
        }
        broken
    });
}

fn host_cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    let mut v = [r.eax, r.ebx, r.ecx, r.edx];
    for &(l, reg, bit) in BROKEN_FEATURES.get().map(|b| b.as_slice()).unwrap_or(&[]) {
        if l == leaf {
            v[reg] &= !bit;
        }
    }
    v
}

fn host_print(args: core::fmt::Arguments<'_>) {
    crate::console::print(args)
}

const HOOKS: HostHooks = HostHooks {
    printer: host_print,
    guest_line: crate::console::guest_line,
    cpuid: host_cpuid,
    tsc: crate::time::tsc,
    tsc_hz: crate::time::tsc_hz,
    arm_timer: crate::hosttimer::arm,
    take_interrupts: crate::hosttimer::take_interrupts,
    idle: crate::hosttimer::idle,
    service: crate::console::service,
};

pub fn run(boot: &BootInfo, frames: &mut HostFrames, fpu: SaveMode) -> EndCode {
    probe_features();
    let cpuid = CpuId::new();
    let vendor_info = cpuid.get_vendor_info();
    let vendor = vendor_info.as_ref().map(|v| v.as_str()).unwrap_or("");
    match classify(vendor) {
        Some(Vendor::IntelCompatible) => match arch_vmx::probe() {
            Ok(caps) => {
                say!("cpu: vendor=Intel backend=vmx {}", caps);
                match arch_vmx::Vmx::enable(caps, frames) {
                    Ok(mut vmx) => {
                        crate::smp::start(boot, frames, Backend::Vmx(caps), fpu);
                        run_guests(&mut vmx, boot, frames, fpu)
                    }
                    Err(e) => refuse(format_args!("VMXON failed: {e}")),
                }
            }
            Err(e) => refuse(format_args!("{e}")),
        },
        Some(Vendor::AmdCompatible) => match arch_svm::probe(crate::idt::rdmsr_safe) {
            Ok(caps) => {
                say!("cpu: vendor=AMD backend=svm {}", caps);
                match arch_svm::Svm::enable(caps, frames) {
                    Ok(mut svm) => {
                        crate::smp::start(boot, frames, Backend::Svm(caps), fpu);
                        run_guests(&mut svm, boot, frames, fpu)
                    }
                    Err(e) => refuse(format_args!("enabling SVM failed: {e}")),
                }
            }
            Err(e) => refuse(format_args!("{e}")),
        },
        None => refuse(format_args!(
            "no hardware virtualization: unknown CPU vendor {vendor:?} (Janus knows Intel VT-x and AMD-V)"
        )),
    }
}

fn refuse(reason: core::fmt::Arguments<'_>) -> EndCode {
    say!("refused: {}", reason);
    EndCode::Refused
}

fn run_guests<B: ArchBackend>(
    backend: &mut B,
    boot: &BootInfo,
    frames: &mut HostFrames,
    fpu: SaveMode,
) -> EndCode {
    if boot.modules.is_empty() {
        say!("no guest modules: add `module2 /guests/FILE name=NAME mem=SIZE` lines to grub.cfg");
        say!("done: 0 guests, 0 failed");
        return EndCode::NoGuests;
    }
    let (guests, rejected) = guests::load_all(boot, frames, HOOKS);
    let (mine, refused) = crate::handoff::hand_out(guests, &crate::smp::online());
    let rejected = rejected + refused;
    let mut sched = Scheduler::new(backend, frames, Cpu::detect(fpu));
    for h in mine {
        sched.add(h.part, h.owner);
    }
    sched.run();
    crate::handoff::report(&sched);
    crate::smp::wait_for_guests();
    let (summaries, switches, switch_ticks) = crate::handoff::results();
    let mut failed = rejected;
    for s in &summaries {
        if !s.end.succeeded() {
            failed += 1;
        }
        say!(
            "summary: {} status={} cpu_ms={} {}",
            s.name,
            Status(&s.end),
            s.cpu_ns / 1_000_000,
            s.stats
        );
    }
    if switches > 0 {
        say!(
            "scheduler: {} guest switches, {} TSC ticks each on average (end of one slice to the start of the next)",
            switches,
            switch_ticks / switches
        );
    }
    say!(
        "done: {} guests, {} failed",
        summaries.len() + rejected,
        failed
    );
    if failed == 0 {
        EndCode::AllPassed
    } else {
        EndCode::SomeFailed
    }
}

/// A guest's end in one word for the summary line: its exit status, or how it ended.
struct Status<'a>(&'a GuestEnd);

impl core::fmt::Display for Status<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            GuestEnd::Exited(s) => write!(f, "{s}"),
            GuestEnd::Reset => write!(f, "reset"),
            GuestEnd::PoweredOff => write!(f, "powered-off"),
            GuestEnd::TimeLimit => write!(f, "time-limit"),
            GuestEnd::TripleFault => write!(f, "triple-fault"),
            GuestEnd::Halted => write!(f, "halted"),
            GuestEnd::Error(_) => write!(f, "error"),
        }
    }
}
