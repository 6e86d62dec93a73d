//! Host SMP: finds the machine's CPUs in its firmware tables
//! (`vmm_core::firmware::hostcpus`), starts each application processor with
//! INIT-SIPI-SIPI (SDM Vol 3A 9.4.4.1 and 11.6.1: INIT, 10 ms, startup IPI, 200 us, a
//! second startup IPI) through the trampoline (`trampoline.rs`), and has it bring itself
//! up: its own stacks with guard pages (`apstack.rs`), GDT and TSS (`gdt.rs`), the shared
//! IDT, its per-CPU block (`percpu.rs`), its local APIC, its x87/SSE set-up, and its own
//! VT: it probes VMX or SVM, must match the boot CPU's capabilities, and enables it
//! (VMXON, or EFER.SVME and its own host save area). Each AP reports one line,
//! `cpu N (apic A): online, vmx` or `cpu N (apic A): left out: REASON`, and parks: a CPU
//! that fails is left out, never fatal.
//!
//! The boot CPU starts one AP at a time and waits for it to leave the trampoline, whose
//! one page all APs share.

use crate::bootinfo::BootInfo;
use crate::frames::HostFrames;
use crate::percpu::{self, state, PerCpu};
use crate::say;
use crate::sched::{Cpu, Scheduler};
use crate::trampoline::Trampoline;
use crate::{apic, apstack, gdt, idt, time};
use arrayvec::ArrayVec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;
use vmm_core::addr::HostPhys;
use vmm_core::firmware::hostcpus::MAX_CPUS;
use vmm_core::firmware::hostcpus::{self, PhysRead};
use vmm_core::fpu::SaveMode;
use vmm_core::nested::FrameAllocator;
use vmm_core::vcpu::ArchBackend;

/// The boot CPU's virtualization extension and capabilities, which every AP must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Vmx(arch_vmx::VmxCaps),
    Svm(arch_svm::SvmCaps),
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Vmx(_) => "vmx",
            Backend::Svm(_) => "svm",
        }
    }
}

struct BootCpu {
    backend: Backend,
    fpu: SaveMode,
}

static BOOT_CPU: Once<BootCpu> = Once::new();

/// How long an AP may take to leave the trampoline, and then to report.
const ARRIVE_MS: u64 = 1000;
const REPORT_MS: u64 = 5000;

/// Host memory below 4 GiB (identity-mapped) for the table parsers.
struct Identity;

impl PhysRead for Identity {
    fn read(&self, addr: u64, out: &mut [u8]) -> bool {
        let end = addr.checked_add(out.len() as u64);
        if addr == 0 || end.is_none_or(|e| e > 1 << 32) {
            return false;
        }
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: the first 4 GiB are identity-mapped (entry.rs); firmware tables are
            // ordinary memory, read a byte at a time without side effects.
            *b = unsafe { ((addr as usize + i) as *const u8).read_volatile() };
        }
        true
    }
}

/// Why an AP was left out.
enum LeftOut {
    NoVt(&'static str),
    Differs(&'static str),
    Enable(&'static str),
    Fpu,
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftOut::NoVt(r) => write!(f, "{r}"),
            LeftOut::Differs(what) => {
                write!(f, "its {what} capabilities differ from the boot CPU's")
            }
            LeftOut::Enable(r) => write!(f, "{r}"),
            LeftOut::Fpu => write!(f, "its x87/SSE/AVX state differs from the boot CPU's"),
        }
    }
}

/// Finds the CPUs and starts the others; returns how many are online (the boot CPU
/// included).
pub fn start(info: &BootInfo, frames: &mut HostFrames, backend: Backend, fpu: SaveMode) -> usize {
    BOOT_CPU.call_once(|| BootCpu { backend, fpu });
    let rsdp = (!info.rsdp.is_empty()).then_some(info.rsdp.as_slice());
    let boot_id = apic::id();
    let found = hostcpus::discover(&Identity, rsdp, boot_id);
    for r in &found.refused {
        log::info!("smp: {r}");
    }
    let list = &found.list;
    say!("smp: {} CPUs found in {}", list.cpus.len(), list.source);
    if list.disabled + list.dropped > 0 {
        log::info!(
            "smp: {} more listed disabled, {} beyond the {} Janus takes",
            list.disabled,
            list.dropped,
            hostcpus::MAX_CPUS
        );
    }
    let boot = percpu::get(0);
    boot.apic_id.store(boot_id, Ordering::Relaxed);
    boot.state.store(state::ONLINE, Ordering::Relaxed);
    percpu::install(0);
    say!(
        "cpu 0 (apic {boot_id}): online, {} (boot CPU)",
        backend.name()
    );
    let mut online = 1;
    if list.cpus.len() > 1 {
        online += start_aps(info, frames, &list.cpus[1..]);
    }
    say!("smp: {online} of {} CPUs online", list.cpus.len());
    online
}

/// Starts `aps` (CPUs 1, 2, ...) one after the other; returns how many came online.
fn start_aps(info: &BootInfo, frames: &mut HostFrames, aps: &[hostcpus::HostCpu]) -> usize {
    let tramp = HostFrames::low_page(info)
        .ok_or("no free page below 1 MiB for the AP trampoline")
        .and_then(Trampoline::install);
    let tramp = match tramp {
        Ok(t) => t,
        Err(e) => {
            for (i, c) in aps.iter().enumerate() {
                say!("cpu {} (apic {}): left out: {e}", i + 1, c.apic_id);
            }
            return 0;
        }
    };
    let mut online = 0;
    for (i, c) in aps.iter().enumerate() {
        let index = i + 1;
        match start_one(&tramp, index, c.apic_id, frames) {
            Ok(true) => online += 1,
            Ok(false) => {}
            Err(e) => {
                say!("cpu {index} (apic {}): left out: {e}", c.apic_id);
                if e == NO_ANSWER {
                    // It may still run the trampoline later: keep it to itself.
                    for (j, c) in aps.iter().enumerate().skip(i + 1) {
                        say!(
                            "cpu {} (apic {}): left out: not started after a CPU that did not answer",
                            j + 1,
                            c.apic_id
                        );
                    }
                    break;
                }
            }
        }
    }
    online
}

const NO_ANSWER: &str = "it did not answer INIT-SIPI-SIPI";

/// Starts CPU `index`: `Ok(true)` if it reported online, `Ok(false)` if it reported
/// itself left out, `Err` if the boot CPU leaves it out.
fn start_one(
    tramp: &Trampoline,
    index: usize,
    apic_id: u32,
    frames: &mut HostFrames,
) -> Result<bool, &'static str> {
    let stack = apstack::alloc(frames)?;
    let cpu = percpu::get(index);
    cpu.index.store(index as u32, Ordering::Relaxed);
    cpu.apic_id.store(apic_id, Ordering::Relaxed);
    cpu.df_top.store(stack.df_top, Ordering::Relaxed);
    for f in &cpu.frames {
        let page = frames.alloc_table().ok_or("no memory for its VT pages")?;
        f.store(page.0, Ordering::Relaxed);
    }
    tramp.prepare(stack.top, ap_main, index as u64);
    cpu.state.store(state::STARTING, Ordering::Release);
    apic::send_ipi(apic_id, apic::ICR_INIT);
    time::delay_us(10_000);
    for _ in 0..2 {
        apic::send_ipi(apic_id, apic::ICR_STARTUP | tramp.vector() as u32);
        if wait_for(cpu, |s| s != state::STARTING, 1) {
            break;
        }
        time::delay_us(200);
    }
    if !wait_for(cpu, |s| s != state::STARTING, ARRIVE_MS) {
        return Err(NO_ANSWER);
    }
    if !wait_for(cpu, |s| s >= state::ONLINE, REPORT_MS) {
        return Err("it stopped answering while it brought itself up");
    }
    Ok(cpu.state.load(Ordering::Acquire) == state::ONLINE)
}

/// Waits up to `ms` milliseconds for `cpu`'s state to satisfy `done`.
fn wait_for(cpu: &PerCpu, done: impl Fn(u8) -> bool, ms: u64) -> bool {
    let deadline = time::tsc() + time::tsc_hz() / 1000 * ms;
    loop {
        if done(cpu.state.load(Ordering::Acquire)) {
            return true;
        }
        if time::tsc() > deadline {
            return false;
        }
        crate::console::pump();
        core::hint::spin_loop();
    }
}

/// Where an AP lands in 64-bit mode, on its own stack, with the trampoline's GDT.
extern "C" fn ap_main(index: u64) -> ! {
    let index = index as usize;
    let cpu = percpu::get(index);
    gdt::load(&cpu.tables, cpu.df_top.load(Ordering::Relaxed));
    idt::init();
    percpu::install(index);
    cpu.state.store(state::ARRIVED, Ordering::Release);
    let Some(boot) = BOOT_CPU.get() else { park() };
    crate::hosttimer::enable_local();
    if crate::fpu::init() != boot.fpu {
        left_out(cpu, LeftOut::Fpu)
    }
    let mut pages = Reserved(&cpu.frames);
    match boot.backend {
        Backend::Vmx(want) => match enable_vmx(want, &mut pages) {
            Ok(mut vmx) => serve(cpu, &mut vmx, boot),
            Err(e) => left_out(cpu, e),
        },
        Backend::Svm(want) => match enable_svm(want, &mut pages) {
            Ok(mut svm) => serve(cpu, &mut svm, boot),
            Err(e) => left_out(cpu, e),
        },
    }
}

fn enable_vmx(want: arch_vmx::VmxCaps, pages: &mut Reserved) -> Result<arch_vmx::Vmx, LeftOut> {
    let caps = arch_vmx::probe().map_err(|e| LeftOut::NoVt(e.0))?;
    if caps != want {
        return Err(LeftOut::Differs("VMX"));
    }
    arch_vmx::Vmx::enable(caps, pages).map_err(LeftOut::Enable)
}

fn enable_svm(want: arch_svm::SvmCaps, pages: &mut Reserved) -> Result<arch_svm::Svm, LeftOut> {
    let caps = arch_svm::probe(idt::rdmsr_safe).map_err(|e| LeftOut::NoVt(e.0))?;
    if caps != want {
        return Err(LeftOut::Differs("SVM"));
    }
    arch_svm::Svm::enable(caps, pages).map_err(LeftOut::Enable)
}

fn left_out(cpu: &PerCpu, why: LeftOut) -> ! {
    let (index, apic_id) = ids(cpu);
    say!("cpu {index} (apic {apic_id}): left out: {why}");
    cpu.state.store(state::LEFT_OUT, Ordering::Release);
    park()
}

fn ids(cpu: &PerCpu) -> (u32, u32) {
    (
        cpu.index.load(Ordering::Relaxed),
        cpu.apic_id.load(Ordering::Relaxed),
    )
}

/// An online AP: it waits for the guests placed on it, runs them on its own queue until
/// all have ended, files their summaries and parks.
fn serve<B: ArchBackend>(cpu: &PerCpu, backend: &mut B, boot: &BootCpu) -> ! {
    let (index, apic_id) = ids(cpu);
    say!(
        "cpu {index} (apic {apic_id}): online, {}",
        boot.backend.name()
    );
    cpu.state.store(state::ONLINE, Ordering::Release);
    crate::hosttimer::start_local();
    let guests = loop {
        if let Some(g) = crate::handoff::take(index as usize) {
            break g;
        }
        crate::hosttimer::arm(Some(POLL_NS));
        crate::hosttimer::idle();
    };
    let mut frames = HostFrames::handle();
    let mut sched = Scheduler::new(backend, &mut frames, Cpu::detect(boot.fpu));
    for h in guests {
        sched.add(h.part, h.owner);
    }
    sched.run();
    crate::handoff::report(&sched);
    cpu.state.store(state::FINISHED, Ordering::Release);
    park()
}

/// How often a waiting AP looks for its guests.
const POLL_NS: u64 = 1_000_000;

/// The CPU numbers that are online (0, the boot CPU, first).
pub fn online() -> ArrayVec<usize, MAX_CPUS> {
    (0..MAX_CPUS)
        .filter(|&i| percpu::get(i).state.load(Ordering::Acquire) >= state::ONLINE)
        .filter(|&i| percpu::get(i).state.load(Ordering::Acquire) != state::LEFT_OUT)
        .collect()
}

/// Waits until every AP that runs guests has finished them (the boot CPU has).
pub fn wait_for_guests() {
    let busy =
        || (1..MAX_CPUS).any(|i| percpu::get(i).state.load(Ordering::Acquire) == state::ONLINE);
    while busy() {
        crate::hosttimer::arm(Some(POLL_NS));
        crate::hosttimer::idle();
    }
}

/// An AP with nothing (more) to run waits here for good.
fn park() -> ! {
    loop {
        // SAFETY: with interrupts off, HLT waits for an NMI, INIT or SMI; Janus sends none.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// The zeroed frames the boot CPU set aside for an AP's VT enable (at most two pages,
/// one at a time): the AP takes no lock on the host allocator.
struct Reserved<'a>(&'a [AtomicU64; 2]);

impl FrameAllocator for Reserved<'_> {
    fn alloc_table(&mut self) -> Option<HostPhys> {
        self.0
            .iter()
            .map(|f| f.swap(0, Ordering::Relaxed))
            .find(|&p| p != 0)
            .map(HostPhys)
    }

    fn alloc_contiguous(&mut self, pages: usize) -> Option<HostPhys> {
        (pages == 1).then(|| self.alloc_table()).flatten()
    }

    fn table(&mut self, hpa: HostPhys) -> &mut [u64; 512] {
        // SAFETY: the frames are 4 KiB, identity-mapped and this AP's alone.
        unsafe { &mut *(hpa.0 as *mut [u64; 512]) }
    }

    fn free(&mut self, hpa: HostPhys, pages: usize) {
        // SAFETY: as in `table`; the frame comes back zeroed, as `alloc_table` promises.
        unsafe { core::ptr::write_bytes(hpa.0 as *mut u8, 0, pages * 4096) };
        if let Some(f) = self.0.iter().find(|f| f.load(Ordering::Relaxed) == 0) {
            f.store(hpa.0, Ordering::Relaxed);
        }
    }
}
