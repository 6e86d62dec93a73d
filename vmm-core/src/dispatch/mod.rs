//! The one exit dispatcher, shared by both backends.
//!
//! `run` enters the guest, counts each exit, hands it to the policy for its kind and
//! resumes, until the guest ends. An exit it does not know ends the guest with a reason
//! naming it: nothing is silently ignored or turned into a halt.
//!
//! One small function per exit kind, by subject: [`cpu`] (CPUID, faulting instructions,
//! the ends), [`io`] (port and string I/O), [`msr`], [`cr`] (with CR8 in [`tpr`]), [`memory`] (device memory
//! behind nested page faults), [`halt`] and [`irq`] (interrupt offering, host timer).
//! Every emulated instruction completes through [`complete`], the one caller of
//! [`ArchVcpu::retire`].

mod cpu;
mod cr;
mod dr;
mod halt;
mod io;
mod irq;
mod memory;
mod msr;
#[cfg(test)]
mod tests;
mod tpr;

pub use halt::{refresh, sleeps_forever};
pub(crate) use io::port_access;

use crate::exit::{IoDir, VmExit};
use crate::hypercall;
use crate::vcpu::{ArchVcpu, Event, VcpuError};
use crate::vm::{GuestEnd, Vm};

/// Why [`run_slice`] gave the host CPU back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The guest ended.
    Ended(GuestEnd),
    /// Its time slice is over, or another vCPU of its guest has something to take; it
    /// can run again at once.
    Preempted,
    /// It executed HLT with interrupts on and has nothing to take yet: it needs the CPU
    /// again when its platform has an interrupt for it, at `wake_ns` (guest time of its
    /// next device event) at the latest; with no `wake_ns` only a time limit ends it.
    Halted { wake_ns: Option<u64> },
}

/// A VM that several host CPUs use at once (a guest whose vCPUs run on several: Janus'
/// shared guests), as one of them runs its vCPU `vcpu`: the VM behind `lock`, which
/// [`run_slice_shared`] takes and lets go inline around each entry (a call there cost
/// about 45 instructions per exit: the exit had to be kept across it).
pub struct SharedVm<'a> {
    pub lock: &'a spin::mutex::SpinMutex<()>,
    /// The VM, which whoever holds `lock` has to itself.
    pub vm: *mut Vm,
    pub vcpu: usize,
    /// The vCPUs this host CPU runs.
    pub local: crate::platform::cpus::CpuMask,
    /// Another host CPU's vCPU ended the guest.
    pub ended: &'a core::sync::atomic::AtomicBool,
    /// Interrupts the host CPUs of these vCPUs (other than this one).
    pub kick: &'a dyn Fn(crate::platform::cpus::CpuMask),
}

impl SharedVm<'_> {
    /// Takes the lock: the VM, acting for this vCPU, with this CPU's host-timer
    /// deadline (`armed`).
    #[inline(always)]
    fn take(&self, armed: Option<u64>) -> *mut Vm {
        core::mem::forget(self.lock.lock());
        // SAFETY: the lock is held: the VM is this CPU's.
        let vm = unsafe { &mut *self.vm };
        vm.platform.select(self.vcpu);
        vm.platform.set_local(self.local);
        vm.armed = armed;
        self.vm
    }

    /// Lets go of the lock; this CPU's host-timer deadline. Kicks for other CPUs' vCPUs
    /// go out.
    #[inline(always)]
    fn give(&self) -> Option<u64> {
        // SAFETY: the lock is held (taken by `take`): the VM is this CPU's until the
        // unlock below.
        let vm = unsafe { &mut *self.vm };
        let armed = vm.armed;
        let remote = vm.platform.take_remote_kicks();
        // SAFETY: this CPU took the lock in `take` and forgot its guard.
        unsafe { self.lock.force_unlock() };
        if remote != 0 {
            (self.kick)(remote);
        }
        armed
    }
}

/// Runs the vCPU until its guest ends, halts, or reaches `until_ns` of guest time (the
/// end of its time slice: the host timer makes a guest that never exits leave then).
/// The VM is lent to the vCPU for its port accesses in place ([`crate::in_place::lend`]).
pub fn run_slice(vcpu: &mut impl ArchVcpu, vm: &mut Vm, until_ns: u64) -> Stop {
    let vm: *mut Vm = vm;
    // SAFETY: `vm` is this call's alone for all of it, and so the pointer made from it;
    // `slice` makes no reference to it while the vCPU runs, and it is taken back below.
    let stop = unsafe {
        crate::in_place::lend(vcpu, vm);
        slice(vcpu, vm, None, until_ns)
    };
    crate::in_place::unlend(vcpu);
    // SAFETY: as above; nothing else holds it now.
    count_in_place(vcpu, unsafe { &mut *vm });
    stop
}

/// The exits the backend finished in place ([`crate::in_place`]) join the VM's
/// counters when the slice ends (and when the guest asks, `hypercall::EXIT_COUNT`):
/// taken after every exit instead, they cost about 4 instructions of each.
pub(crate) fn count_in_place(vcpu: &mut impl ArchVcpu, vm: &mut Vm) {
    vm.stats.add_in_place(vcpu.in_place().take_done());
}

/// [`run_slice`] for a vCPU of a guest whose vCPUs run on several host CPUs: the VM's lock
/// is held only between two entries, never while the vCPU runs.
pub fn run_slice_shared(vcpu: &mut impl ArchVcpu, shared: &SharedVm<'_>, until_ns: u64) -> Stop {
    let vm = shared.take(None);
    // SAFETY: the lock is held; `slice` lets go of it only around each entry and takes
    // it again before it touches the VM.
    let stop = unsafe { slice(vcpu, vm, Some(shared), until_ns) };
    // SAFETY: `slice` returns with the lock held: the VM is this CPU's until `give`.
    count_in_place(vcpu, unsafe { &mut *vm });
    let _ = shared.give();
    stop
}

/// The one loop behind [`run_slice`] and [`run_slice_shared`]: one per backend, so that
/// the backend's `run` and the exit handlers it inlines have one caller (with a second
/// copy of the loop they were no longer inlined: about 45 more instructions per exit on
/// ryzen, 80 on corei7_skylake_x, `cargo janus bench exits`). Out of line: inlined into
/// both callers, it would make two copies again.
///
/// # Safety
/// `vm` must be valid and this call's alone; with `shared`, its lock held on entry.
#[inline(never)]
unsafe fn slice<V: ArchVcpu>(
    vcpu: &mut V,
    vm: *mut Vm,
    shared: Option<&SharedVm<'_>>,
    until_ns: u64,
) -> Stop {
    // SAFETY (every `&mut *vm` below): the caller's contract; with `shared`, each
    // reference ends before the lock is let go and the lock is taken again before the
    // next one.
    let service = {
        // SAFETY: see above.
        let vm = unsafe { &mut *vm };
        // Another guest may have armed the host timer since this one last ran.
        vm.armed = None;
        vm.host.service
    };
    // The guest enters at least once, however late the slice starts: choosing it may
    // have taken longer than the slice (a slow emulated CPU, many guests).
    let mut entered = false;
    // Devices, interrupt offers and exit timers are up to date: the last exit could not
    // change them (`VmExit::is_quiet`) and nothing is due before `due_ns` (the next device
    // event or the end of the slice).
    let (mut settled, mut due_ns) = (false, 0);
    // `Platform::timer_changes` when the timers were last polled and the exit timers
    // armed: while it stays so and nothing is due, an exit that changed only interrupt
    // state (an EOI, a TPR write) needs the interrupt offer but not the timers.
    let mut timers_seen = None;
    loop {
        if shared.is_some_and(|s| s.ended.load(core::sync::atomic::Ordering::Acquire)) {
            return Stop::Preempted;
        }
        {
            // SAFETY: see above (the lock, with `shared`, is held here).
            let vm = unsafe { &mut *vm };
            let now = vm.now();
            if !settled || now.ns >= due_ns {
                let timers_kept = now.ns < due_ns
                    && vm.armed.is_some()
                    && timers_seen == Some(vm.platform.timer_changes());
                if !timers_kept {
                    vm.platform.update(now);
                }
                irq::offer_interrupt(vcpu, vm);
                // Another vCPU of this guest on this host CPU got an interrupt, an NMI, an
                // INIT or a SIPI (an IPI from this one, a device, its timer): this one
                // makes way, so that an IPI is taken at once rather than at the end of the
                // slice.
                let kicked = vm.platform.take_kicks() != 0;
                if entered && (now.ns >= until_ns || kicked) {
                    return Stop::Preempted;
                }
                if !timers_kept {
                    irq::arm_exit_timers(vcpu, vm, until_ns);
                    due_ns = vm.armed.unwrap_or(u64::MAX);
                    timers_seen = Some(vm.platform.timer_changes());
                }
                tpr::load_shadow(vcpu, &vm.platform);
                // The CPU learns what the model did in the local APIC's register page
                // (here only: every exit that can make the model write it changes what
                // the dispatcher follows, so the loop comes here before the next entry).
                if V::VIRTUAL_INTERRUPTS && vm.platform.lapic_mut().take_page_changes() {
                    vcpu.virtual_apic_changed();
                }
                // A console line that waited for room goes out when there is some.
                vm.drain_console();
            }
        }
        let armed = shared.map(|s| s.give());
        entered = true;
        let host_waits = service();
        vcpu.in_place().set_host_waits(host_waits);
        let exit = vcpu.run();
        if let (Some(s), Some(armed)) = (shared, armed) {
            s.take(armed);
        }
        // SAFETY: see above (taken again just now, with `shared`).
        let vm = unsafe { &mut *vm };
        let exit = match exit {
            Ok(e) => e,
            Err(e) => return ended(vm, GuestEnd::error(format_args!("VM entry failed: {e}"))),
        };
        vm.stats.count(exit.kind());
        let tpr_moved = tpr::store_shadow(vcpu, &mut vm.platform);
        let (quiet, devices_only) = (is_quiet(&exit), touches_only_devices(&exit));
        let hlt = matches!(exit, VmExit::Hlt);
        let changes = vm.platform.changes();
        if let Some(end) = handle_exit(vcpu, vm, exit) {
            return ended(vm, end);
        }
        let unchanged = vm.platform.changes() == changes;
        settled = !tpr_moved
            && !vm.console_waits()
            && (quiet
                || (devices_only && unchanged)
                || (V::VIRTUAL_INTERRUPTS
                    && hlt
                    && unchanged
                    && the_cpu_delivers_what_woke_it(vm)));
        if core::mem::take(&mut vm.halted) {
            let wake_ns = vm.platform.next_event_ns(vm.now());
            return Stop::Halted { wake_ns };
        }
        if core::mem::take(&mut vm.yielded) {
            return Stop::Preempted;
        }
    }
}

/// Whether handling `exit` leaves every device's timers, the interrupt the guest may take
/// and the exit timers as they were: the dispatcher then re-enters without updating them
/// (until the next device event or the end of the slice is due). CPUID, the hypercalls
/// (the console only queues a line), XSETBV, INVD/WBINVD and debug-register moves touch
/// no device; the POST port ignores what is written to it. Device accesses that change
/// nothing are quiet too ([`touches_only_devices`]).
fn is_quiet(exit: &VmExit) -> bool {
    match exit {
        VmExit::Cpuid
        | VmExit::Pause
        | VmExit::Hypercall
        | VmExit::Xsetbv
        | VmExit::Invd
        | VmExit::Wbinvd
        | VmExit::DrRead { .. }
        | VmExit::DrWrite { .. } => true,
        VmExit::Io(io) => io.dir == IoDir::Out && io.port == crate::devices::legacy::POST,
        _ => false,
    }
}

/// Whether `exit` does nothing to the platform but through device accesses (port I/O,
/// device memory, the platform's MSRs read): when its handling changed no interrupt or
/// timer state ([`crate::platform::Platform::changes`]: a read, which can only lower a
/// line that is then counted, or a write to a device whose line stayed put, such as a
/// byte to a UART with its interrupts off), it is as quiet as [`is_quiet`]'s exits.
fn touches_only_devices(exit: &VmExit) -> bool {
    matches!(
        exit,
        VmExit::Io(_) | VmExit::NestedPageFault { .. } | VmExit::RdMsr
    )
}

/// After a HLT that did not halt and changed nothing ([`halt::hlt`] woke at once, the
/// devices as they were): whether what woke it is the CPU's to deliver (an interrupt
/// requested in the local APIC's register page: [`ArchVcpu::VIRTUAL_INTERRUPTS`]), with
/// nothing for Janus to inject, so that the offer would change nothing. The timer
/// interrupt a guest armed before STI;HLT is such a wake. Asked only where a backend
/// has such a page: elsewhere a wake is always Janus' to inject (the question cost 45
/// instructions per timer interrupt on AMD-V).
fn the_cpu_delivers_what_woke_it(vm: &Vm) -> bool {
    !vm.halted && !vm.platform.nmi_pending() && vm.platform.next_interrupt().is_none()
}

fn ended(vm: &mut Vm, end: GuestEnd) -> Stop {
    (vm.host.arm_timer)(None);
    vm.armed = None;
    vm.flush_console();
    Stop::Ended(end)
}

/// Runs the vCPU alone on this CPU until its guest ends, sleeping while it halts.
pub fn run(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> GuestEnd {
    loop {
        match run_slice(vcpu, vm, u64::MAX) {
            Stop::Ended(end) => return end,
            Stop::Preempted => {}
            Stop::Halted { wake_ns: None } => return sleeps_forever(vcpu),
            Stop::Halted { .. } => halt::wait_for_interrupt(vm),
        }
    }
}

/// What to do after an exit: `None` resumes the guest, `Some` ends it. Inlined into
/// [`run_slice`], its one caller outside tests: as a call it costs a large stack frame
/// and a copy of the exit on every exit (measured: 40 instructions per CPUID).
#[inline(always)]
pub fn handle_exit(vcpu: &mut impl ArchVcpu, vm: &mut Vm, exit: VmExit) -> Option<GuestEnd> {
    match exit {
        VmExit::Cpuid => cpu::cpuid(vcpu, vm),
        VmExit::Io(io) => io::io(vcpu, vm, io),
        VmExit::RdMsr => msr::rdmsr(vcpu, vm),
        VmExit::WrMsr => msr::wrmsr(vcpu, vm),
        VmExit::Hypercall => hypercall::handle(vcpu, vm).or_else(|| advance(vcpu, vm)),
        VmExit::Hlt => halt::hlt(vcpu, vm),
        VmExit::Pause => halt::pause(vcpu, vm),
        VmExit::CrRead { cr, dest } => cr::read(vcpu, vm, cr, dest),
        VmExit::CrWrite { cr, value } => cr::write(vcpu, vm, cr, value),
        VmExit::CrWriteUndecoded { cr } => cr::write_undecoded(vcpu, vm, cr),
        VmExit::DrRead { dr, dest } => dr::read(vcpu, vm, dr, dest),
        VmExit::DrWrite { dr, value } => dr::write(vcpu, vm, dr, value),
        VmExit::DrAccessUndecoded { dr, write } => dr::undecoded(vcpu, vm, dr, write),
        // Cache control has no effect on emulated memory; the guest's caches are ours.
        VmExit::Invd | VmExit::Wbinvd => advance(vcpu, vm),
        // XSAVE is hidden in CPUID and CR4.OSXSAVE cannot be set, so XSETBV is #UD as on
        // a CPU without XSAVE (SDM Vol 2C, XSETBV). No nested virtualization: VMX/SVM
        // instructions fault as on a CPU without them. CPUID hides MONITOR/MWAIT and
        // MONITORX/MWAITX: #UD, as on a CPU without them.
        VmExit::Xsetbv | VmExit::VirtInstruction | VmExit::MonitorMwait => inject(vcpu, Event::UD),
        VmExit::TripleFault => cpu::triple_fault(vcpu, vm),
        VmExit::ExternalInterrupt => irq::external_interrupt(vm),
        VmExit::Nmi | VmExit::InterruptWindow | VmExit::HostSignal | VmExit::DeadlineReached => {
            None
        }
        VmExit::NestedPageFault { gpa, access } => memory::nested_page_fault(vcpu, vm, gpa, access),
        VmExit::ApicWrite { offset } => memory::apic_write(vcpu, vm, offset),
        VmExit::ApicEoi { vector } => {
            vm.platform.virtual_eoi(vector);
            None
        }
        VmExit::Exception { vector, error_code } => cpu::exception(vcpu, vector, error_code),
        VmExit::Raw {
            reason,
            info1,
            info2,
        } => cpu::unsupported(vcpu, reason, info1, info2),
    }
}

/// Completes the instruction that exited, where the backend says it ends. Always inlined:
/// as a call (VT-x's CPUID exit made one) it cost a frame and its registers per exit.
#[inline(always)]
fn advance(vcpu: &mut impl ArchVcpu, vm: &mut Vm) -> Option<GuestEnd> {
    complete(vcpu, vcpu.next_rip(&vm.memory, &mut vm.insn))
}

/// The one way an emulated instruction completes: RIP moves to `next` and the
/// interrupt shadow ends with it ([`ArchVcpu::retire`]); under RFLAGS.TF the guest gets
/// the single-step #DB the CPU would have raised after it ([`single_step`]). Always
/// inlined: with the TF check it became a call on VT-x, about 25 instructions per exit.
#[inline(always)]
fn complete(vcpu: &mut impl ArchVcpu, next: Result<u64, VcpuError>) -> Option<GuestEnd> {
    match next {
        Ok(next) => {
            vcpu.retire(next);
            if vcpu.rflags() & crate::cpu_rules::rflags::TF != 0 {
                single_step(vcpu);
            }
            None
        }
        Err(e) => Some(GuestEnd::error(format_args!(
            "cannot find the next instruction: {e}"
        ))),
    }
}

/// An instruction Janus carried out with RFLAGS.TF set ends in a single-step trap: a #DB
/// after it, with DR6.BS set (SDM Vol 3A 17.3.1.4; the exit kept the CPU from raising
/// it, and the hardware cannot be asked to on either vendor's entry the same way).
#[cold]
fn single_step(vcpu: &mut impl ArchVcpu) {
    let dr6 = vcpu.debug_reg(crate::vcpu::DebugReg::Dr6);
    vcpu.set_debug_reg(
        crate::vcpu::DebugReg::Dr6,
        dr6 | crate::cpu_rules::dr::DR6_BS,
    );
    vcpu.inject(Event::Exception {
        vector: 1,
        error_code: None,
    });
}

/// The instruction faults: the guest gets `ev` and RIP stays on it.
fn inject(vcpu: &mut impl ArchVcpu, ev: Event) -> Option<GuestEnd> {
    vcpu.inject(ev);
    None
}

/// The guest's own page tables fault at `gva`: #PF with CR2, RIP stays on the
/// instruction (SDM Vol 3A 4.7).
fn page_fault(vcpu: &mut impl ArchVcpu, gva: u64, error_code: u32) -> Option<GuestEnd> {
    let _ = vcpu.set_cr(crate::vcpu::ControlReg::Cr2, gva);
    inject(vcpu, Event::page_fault(error_code))
}
