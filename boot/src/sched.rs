//! A host CPU's scheduler loop: every guest placed on this CPU runs at once, sharing it
//! (each online host CPU runs one of these loops with its own queue: `smp.rs`).
//!
//! The policy is vmm_core::sched's `RunQueue` (weighted fair shares, 10 ms slices,
//! halted guests cost nothing until their next interrupt), and within a guest's slice
//! vmm_core::turns' (its vCPUs take turns). This file does what needs the hardware:
//! entering a vCPU for its turn (`dispatch::run_slice`), switching the CPU from one vCPU
//! to another (the backend's `put`/`load`, the x87/SSE/AVX state, an IBPB when the guest
//! changes), starting and stopping vCPUs on INIT and SIPI, idling when every guest is
//! halted, and ending or restarting guests.
//!
//! A guest is either all on this CPU (its vCPUs take turns) or shared
//! ([`crate::shared`]): its vCPUs spread over several CPUs, and this CPU's slot holds the
//! part it runs, reaching the guest through its lock.

use crate::fpu::FpuFrame;
use crate::frames::HostFrames;
use crate::guests::Guest;
use crate::handoff::Summary;
use crate::say;
use crate::shared::SharedGuest;
use arrayvec::ArrayVec;
use vmm_core::cpu_rules::{rflags, CpuRules};
use vmm_core::dispatch::{self, Stop};
use vmm_core::fpu::SaveMode;
use vmm_core::loader::cmdline::OnReset;
use vmm_core::loader::modules::GuestPlan;
use vmm_core::platform::cpus::CpuMask;
use vmm_core::platform::cpus::RunState;
use vmm_core::sched::{Next, RunQueue, Switches, MAX_VCPUS};
use vmm_core::turns::{self, Turn};
use vmm_core::vcpu::{ArchBackend, ArchVcpu, StartMode, VcpuError};
use vmm_core::vm::{GuestEnd, Name, Vm, MAX_GUEST_VCPUS};

/// IA32_PRED_CMD (SDM Vol 4 Table 2-2): writing bit 0 (IBPB) keeps branch predictions
/// one guest trained from steering another's.
const IA32_PRED_CMD: u32 = 0x49;
const IBPB: u64 = 1;

/// The shortest slice a guest gets when another guest's event cuts it short.
const MIN_SLICE_NS: u64 = 100_000;

/// A guest that resets more often than this with `on-reset=restart` ends instead.
pub const MAX_RESTARTS: u32 = 3;

/// One vCPU of a guest: its backend state and its saved x87/SSE/AVX state while it runs
/// (neither while it waits for a SIPI).
pub struct VcpuSlot<V> {
    pub vcpu: Option<V>,
    fpu: Option<FpuFrame>,
    /// It halted; the device event that may wake it, if any.
    halted: Option<Option<u64>>,
    /// The TSC offset its VMCS or VMCB holds: another vCPU's write of IA32_TSC or
    /// IA32_TSC_ADJUST moves the guest's TSC, and this one's follows before it runs.
    tsc_offset: u64,
}

impl<V: ArchVcpu> VcpuSlot<V> {
    fn empty() -> Self {
        VcpuSlot {
            vcpu: None,
            fpu: None,
            halted: None,
            tsc_offset: 0,
        }
    }

    /// Gives its VMCS or VMCB, maps and FPU frame back.
    fn release(&mut self, frames: &mut HostFrames) {
        if let Some(v) = self.vcpu.take() {
            v.release(frames);
        }
        if let Some(f) = self.fpu.take() {
            f.free(frames);
        }
        self.halted = None;
    }

    fn turn(&self) -> Turn {
        match (&self.vcpu, self.halted) {
            (None, _) => Turn::Absent,
            (Some(_), Some(wake_ns)) => Turn::Halted { wake_ns },
            (Some(_), None) => Turn::Runnable,
        }
    }
}

/// A guest on this CPU: all of it, or the part of a shared guest whose vCPUs it runs.
// Inline, as the slots hold their guests: Janus has no heap to box one in.
#[allow(clippy::large_enum_variant)]
pub enum Part {
    Owned(Guest),
    Shared {
        guest: &'static SharedGuest,
        /// The vCPUs this CPU runs.
        local: CpuMask,
    },
}

impl Part {
    /// Runs `f` on the guest (a shared one under its lock).
    fn with<R>(&mut self, f: impl FnOnce(&mut Guest) -> R) -> R {
        match self {
            Part::Owned(g) => f(g),
            Part::Shared { guest, local } => guest.with(*local, f),
        }
    }

    fn with_vm<R>(&mut self, f: impl FnOnce(&mut Vm) -> R) -> R {
        self.with(|g| f(&mut g.vm))
    }

    /// Looks at the VM (a shared one under its lock).
    fn read_vm<R>(&self, f: impl FnOnce(&Vm) -> R) -> R {
        match self {
            Part::Owned(g) => f(&g.vm),
            Part::Shared { guest, local } => guest.with(*local, |g| f(&g.vm)),
        }
    }

    /// Whether this CPU runs vCPU `i`.
    fn runs(&self, i: usize) -> bool {
        self.local() & 1 << i != 0
    }

    /// The vCPUs this CPU runs.
    fn local(&self) -> CpuMask {
        match self {
            Part::Owned(_) => CpuMask::MAX,
            Part::Shared { local, .. } => *local,
        }
    }

    fn shared(&self) -> Option<&'static SharedGuest> {
        match self {
            Part::Owned(_) => None,
            Part::Shared { guest, .. } => Some(guest),
        }
    }
}

/// One guest on this CPU: its VM, its vCPUs, and what the scheduler keeps of it.
pub struct Slot<V> {
    pub part: Part,
    /// What the guest was made from (its schedule, its name).
    plan: GuestPlan<'static>,
    name: Name,
    owner: u8,
    pub vcpus: ArrayVec<VcpuSlot<V>, MAX_GUEST_VCPUS>,
    /// The vCPU whose turn it was last.
    last_vcpu: usize,
    pub end: Option<GuestEnd>,
    pub restarts: u32,
    /// When its `limit=` runs out (host ns), from its first slice on.
    deadline: Option<u64>,
    /// CPU time it has had, in ns.
    pub cpu_ns: u64,
    /// Not in the run queue yet: it starts when the guest of this slot ends (`after=`).
    waits_for: Option<usize>,
    /// When its last slice ended while it was still runnable (host ns): if another guest
    /// runs before it, the wait is its steal time.
    ready_since: Option<u64>,
    /// It files the guest's summary: an owned guest's slot, or the last part of a shared
    /// guest to finish.
    reports: bool,
}

/// What switching guests needs to know about this CPU.
#[derive(Clone, Copy)]
pub struct Cpu {
    pub fpu: SaveMode,
    pub ibpb: bool,
}

impl Cpu {
    pub fn detect(fpu: SaveMode) -> Cpu {
        let intel = core::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 26) != 0;
        let amd = core::arch::x86_64::__cpuid_count(0x8000_0000, 0).eax >= 0x8000_0008
            && core::arch::x86_64::__cpuid_count(0x8000_0008, 0).ebx & (1 << 12) != 0;
        Cpu {
            fpu,
            ibpb: intel || amd,
        }
    }
}

impl<V: ArchVcpu> Slot<V> {
    /// Whether the guest lives (it has not ended).
    fn live(&self) -> bool {
        self.end.is_none()
    }

    fn turns(&self) -> ArrayVec<Turn, MAX_GUEST_VCPUS> {
        self.vcpus.iter().map(VcpuSlot::turn).collect()
    }

    /// Its guest's summary line, if this slot files it.
    pub fn summary(&self) -> Option<Summary> {
        if !self.reports {
            return None;
        }
        let (stats, cpu_ns) = match &self.part {
            Part::Owned(g) => (g.vm.stats.clone(), self.cpu_ns),
            Part::Shared { guest, local } => {
                (guest.with(*local, |g| g.vm.stats.clone()), guest.cpu_ns())
            }
        };
        Some(Summary {
            owner: self.owner,
            name: self.name,
            end: self.end.clone().unwrap_or(GuestEnd::Halted),
            cpu_ns,
            stats,
        })
    }
}

/// Gives `slot`'s guest its vCPUs as at power-on: the boot vCPU at its boot state, the
/// others waiting for a SIPI.
fn start_vcpu<B: ArchBackend>(
    backend: &mut B,
    frames: &mut HostFrames,
    slot: &mut Slot<B::Vcpu>,
) -> Result<(), VcpuError> {
    slot.vcpus.clear();
    let n = slot.part.with_vm(|vm| vm.platform.cpus.len());
    for _ in 0..n {
        slot.vcpus.push(VcpuSlot::empty());
    }
    slot.last_vcpu = 0;
    if !slot.part.runs(0) {
        return Ok(());
    }
    let start = slot.part.with(|g| g.start);
    create(backend, frames, slot, 0, start)
}

/// Gives vCPU `i` of `slot`'s guest back, its local APIC's state first taken out of the
/// vCPU's register page (`ArchVcpu::virtual_interrupts`) into the model.
fn release_vcpu<V: ArchVcpu>(slot: &mut Slot<V>, i: usize, frames: &mut HostFrames) {
    if slot.vcpus[i].vcpu.is_some() {
        slot.part
            .with_vm(|vm| vm.platform.cpus.get_mut(i).lapic.detach_page());
    }
    slot.vcpus[i].release(frames);
}

/// Creates vCPU `i` of `slot`'s guest at `start`, with reset x87/SSE.
fn create<B: ArchBackend>(
    backend: &mut B,
    frames: &mut HostFrames,
    slot: &mut Slot<B::Vcpu>,
    i: usize,
    start: StartMode,
) -> Result<(), VcpuError> {
    let fpu = FpuFrame::new(frames).ok_or(VcpuError {
        what: "no memory for its x87/SSE state",
        code: 0,
    })?;
    let made = slot.part.with_vm(|vm| {
        let rules = CpuRules::for_guest(vm.host.cpuid);
        let vcpu = backend.create_vcpu(&vm.memory, start, rules, frames);
        vcpu.map(|v| (v, vm.msrs.tsc.offset()))
    });
    // All vCPUs of a guest read one TSC (IA32_TSC writes move it for all).
    let (mut vcpu, tsc_offset) = match made {
        Ok(v) => v,
        Err(e) => {
            fpu.free(frames);
            return Err(e);
        }
    };
    vcpu.set_tsc_offset(tsc_offset);
    // A vCPU that spins exits on PAUSE: Janus then sees the end of its slice even where
    // the host timer does not interrupt a PAUSE loop (Bochs with AMD-V), and a vCPU of
    // several gives its turn to the one it waits for (`dispatch::halt::pause`).
    vcpu.set_pause_exits(true);
    // Virtual-interrupt delivery where the CPU has it, for a guest this CPU runs alone:
    // another CPU's IPI must not write a register page while its guest runs.
    if slot.part.shared().is_none() {
        if let Some(page) = vcpu.virtual_interrupts(frames) {
            slot.part.with_vm(|vm| {
                // SAFETY: the page is the vCPU's until it is released, and
                // `release_vcpu` detaches it first; only this CPU runs the guest.
                unsafe { vm.platform.cpus.get_mut(i).lapic.attach_page(page) }
            });
        }
    }
    slot.vcpus[i] = VcpuSlot {
        vcpu: Some(vcpu),
        fpu: Some(fpu),
        halted: None,
        tsc_offset,
    };
    Ok(())
}

/// The guests of this CPU and what runs them.
pub struct Scheduler<'a, B: ArchBackend> {
    pub backend: &'a mut B,
    pub frames: &'a mut HostFrames,
    pub cpu: Cpu,
    pub slots: ArrayVec<Slot<B::Vcpu>, MAX_VCPUS>,
    queue: RunQueue,
    /// The slot and vCPU whose state is in the CPU.
    current: Option<(usize, usize)>,
    /// Switches from one live guest to another and the TSC ticks they took.
    pub switches: Switches,
}

impl<'a, B: ArchBackend> Scheduler<'a, B> {
    pub fn new(backend: &'a mut B, frames: &'a mut HostFrames, cpu: Cpu) -> Self {
        Scheduler {
            backend,
            frames,
            cpu,
            slots: ArrayVec::new(),
            queue: RunQueue::new(),
            current: None,
            switches: Switches::default(),
        }
    }

    /// Gives `part`'s guest a vCPU and a place in the queue; a guest that cannot get a
    /// vCPU ends at once with the reason. `owner` numbers its lines on the console,
    /// unique across host CPUs (below MAX_VCPUS: its index among the loaded guests).
    pub fn add(&mut self, mut part: Part, owner: u8) {
        let id = self.slots.len();
        let (plan, name) = part.with(|g| {
            g.vm.console_owner = owner;
            (g.plan, g.vm.name)
        });
        // The limit counts from the guest's first slice (`run_one`): with many guests a
        // guest may wait for its first turn longer than its whole limit.
        let deadline = None;
        let weight = plan.schedule.weight;
        let mut slot = Slot {
            part,
            plan,
            name,
            owner,
            reports: true,
            vcpus: ArrayVec::new(),
            last_vcpu: 0,
            end: None,
            restarts: 0,
            deadline,
            cpu_ns: 0,
            waits_for: None,
            ready_since: None,
        };
        let started = start_vcpu(self.backend, self.frames, &mut slot);
        if self.slots.try_push(slot).is_err() {
            return;
        }
        // `after=NAME`: an earlier guest that is still alive holds this one back.
        let after = self.slots[id].plan.schedule.after;
        let waits_for = after.and_then(|name| {
            self.slots[..id]
                .iter()
                .position(|s| s.name == name && s.end.is_none())
        });
        if let Some(first) = waits_for {
            self.slots[id].waits_for = Some(first);
        } else {
            // `add` fails only for a bad weight (checked when the line was read) or a full
            // queue (as many entries as slots): neither can happen here.
            let _ = self.queue.add(id, weight);
        }
        if let Err(e) = started {
            self.finish(
                id,
                GuestEnd::error(format_args!("cannot create its vCPU: {e}")),
            );
        }
    }

    /// Runs every guest until all have ended.
    pub fn run(&mut self) {
        loop {
            crate::stack::check();
            let now = crate::time::now_ns();
            self.end_expired(now);
            let pending = self.poll_interrupts();
            match self
                .queue
                .next(now, |id| pending.get(id).copied().unwrap_or(false))
            {
                Next::Run { id, until_ns } => self.run_one(id, now, until_ns),
                Next::Idle { until_ns } => self.idle(now, until_ns),
                Next::Done => return,
            }
        }
    }

    fn run_one(&mut self, id: usize, now: u64, until_ns: u64) {
        // Another guest's event ends the slice early, but never before MIN_SLICE_NS: the
        // running guest always gets somewhere.
        let early = self
            .others_next_event(id)
            .map(|t| t.max(now + MIN_SLICE_NS));
        let until = early.map_or(until_ns, |t| t.min(until_ns));
        let others_ran = self.switches.slice_starts(id, crate::time::tsc());
        let slot = &mut self.slots[id];
        if let Some(since) = slot.ready_since.take().filter(|_| others_ran) {
            slot.part
                .with_vm(|vm| vm.steal.add(now.saturating_sub(since)));
        }
        if slot.deadline.is_none() {
            let limit = slot.plan.schedule.limit_ns;
            slot.deadline = limit.map(|l| now.saturating_add(l));
        }
        let until = slot.deadline.map_or(until, |d| d.min(until));
        let stop = self.run_turns(id, until);
        self.switches.slice_ended(id, crate::time::tsc());
        let ended = crate::time::now_ns();
        let ran = ended.saturating_sub(now);
        let slot = &mut self.slots[id];
        slot.cpu_ns += ran;
        let _ = self.queue.charge(id, ran);
        match stop {
            Stop::Preempted => slot.ready_since = Some(ended),
            // Nothing will ever wake it: only its time limit can end it; without one it
            // ends now.
            // A shared guest's other vCPUs may still wake this part's.
            Stop::Halted { wake_ns: None }
                if self.slots[id].deadline.is_none() && self.slots[id].part.shared().is_none() =>
            {
                let s = &self.slots[id];
                let end = s.vcpus[s.last_vcpu]
                    .vcpu
                    .as_ref()
                    .map_or(GuestEnd::Halted, dispatch::sleeps_forever);
                self.finish(id, end);
            }
            Stop::Halted { wake_ns } => {
                let _ = self.queue.halt(id, wake_ns);
            }
            Stop::Ended(end) => self.finish(id, end),
        }
    }

    /// Guests whose `limit=` ran out end, and parts of shared guests that another CPU
    /// ended.
    fn end_expired(&mut self, now: u64) {
        for id in 0..self.slots.len() {
            let s = &self.slots[id];
            if s.live() && s.deadline.is_some_and(|d| d <= now) {
                self.finish(id, GuestEnd::TimeLimit);
            } else if let Some(end) = s
                .live()
                .then(|| s.part.shared())
                .flatten()
                .and_then(|g| g.has_ended())
            {
                self.finish(id, end);
            }
        }
    }

    /// Which guests have an interrupt waiting for one of their vCPUs (or a vCPU to start
    /// or stop); the halted ones among them become runnable.
    fn poll_interrupts(&mut self) -> ArrayVec<bool, MAX_VCPUS> {
        let mut pending = ArrayVec::new();
        for slot in self.slots.iter_mut() {
            let live = slot.live();
            pending.push(live && wake_vcpus(slot));
        }
        let halted: ArrayVec<usize, MAX_VCPUS> = self.queue.halted().collect();
        for id in halted {
            if pending[id] {
                let _ = self.queue.wake(id);
            }
        }
        // Going first for an interrupt makes sense only if the guest can take it now.
        for (p, slot) in pending.iter_mut().zip(self.slots.iter()) {
            *p = *p
                && slot.vcpus.iter().any(|v| {
                    v.halted.is_none() && v.vcpu.as_ref().is_some_and(|v| v.interrupts_open())
                });
        }
        pending
    }

    /// The earliest device event or time limit of the guests other than `id`: the
    /// running guest's slice ends then, so that the other gets its interrupt on time.
    fn others_next_event(&self, id: usize) -> Option<u64> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != id && s.live())
            .filter_map(|(_, s)| {
                let event = s.part.read_vm(|vm| vm.platform.next_event_ns(vm.now()));
                match (event, s.deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    /// Makes vCPU `v` of slot `next` the one whose state is in the CPU (and the one its
    /// platform acts for).
    fn switch_to(&mut self, next: usize, v: usize) {
        // A shared guest's platform acts for the vCPU that holds its lock.
        if let Part::Owned(g) = &mut self.slots[next].part {
            g.vm.platform.select(v);
        }
        if self.current == Some((next, v)) {
            return;
        }
        let other_guest = self.current.is_some_and(|(g, _)| g != next);
        self.put_current();
        if other_guest && self.cpu.ibpb {
            // SAFETY: CPUID says IA32_PRED_CMD exists; IBPB only discards predictions.
            unsafe { x86::msr::wrmsr(IA32_PRED_CMD, IBPB) };
        }
        let vs = &mut self.slots[next].vcpus[v];
        if let Some(f) = vs.fpu.as_mut() {
            f.state().restore(self.cpu.fpu);
        }
        if let Some(vcpu) = vs.vcpu.as_mut() {
            vcpu.load();
        }
        self.current = Some((next, v));
    }

    /// Takes the current vCPU's state out of the CPU.
    fn put_current(&mut self) {
        if let Some((g, v)) = self.current.take() {
            let vs = &mut self.slots[g].vcpus[v];
            if let Some(vcpu) = vs.vcpu.as_mut() {
                vcpu.put();
            }
            if let Some(f) = vs.fpu.as_mut() {
                f.state().save(self.cpu.fpu);
            }
        }
    }

    /// Slot `id`'s vCPUs take turns until its slice ends at `until` (host ns), every one
    /// of them halts, or the guest ends.
    fn run_turns(&mut self, id: usize, until: u64) -> Stop {
        // The first turn is taken however late (as `run_slice` enters at least once);
        // after it, the slice ends at `until` whichever way the last turn ended.
        let mut first = true;
        loop {
            let shared = self.slots[id].part.shared();
            if let Some(end) = shared.and_then(|g| g.has_ended()) {
                return Stop::Ended(end);
            }
            if let Some(end) = self.start_and_stop(id) {
                return Stop::Ended(end);
            }
            // Another vCPU's IPI or a device may have woken a halted one.
            wake_vcpus(&mut self.slots[id]);
            let slot = &self.slots[id];
            let turns = slot.turns();
            let Some(v) = turns::next(&turns, slot.last_vcpu) else {
                return self.all_halted(id, &turns);
            };
            let now = crate::time::now_ns();
            if !first && now >= until {
                return Stop::Preempted;
            }
            first = false;
            let turn_end = turns::turn_end(&turns, now, until);
            self.switch_to(id, v);
            let slot = &mut self.slots[id];
            slot.last_vcpu = v;
            let Slot { part, vcpus, .. } = slot;
            let vs = &mut vcpus[v];
            let Some(vcpu) = vs.vcpu.as_mut() else {
                continue;
            };
            let tsc_offset = part.read_vm(|vm| vm.msrs.tsc.offset());
            if vs.tsc_offset != tsc_offset {
                vcpu.set_tsc_offset(tsc_offset);
                vs.tsc_offset = tsc_offset;
            }
            let stop = match part {
                Part::Owned(g) => dispatch::run_slice(vcpu, &mut g.vm, turn_end),
                Part::Shared { guest, local } => {
                    guest.running(1 << v);
                    let kick = |mask| guest.kick(mask);
                    let access = guest.access(v, *local, &kick);
                    dispatch::run_slice_shared(vcpu, &access, turn_end)
                }
            };
            match stop {
                Stop::Preempted => {}
                Stop::Halted { wake_ns } => vs.halted = Some(wake_ns),
                Stop::Ended(end) => return Stop::Ended(end),
            }
        }
    }

    /// None of slot `id`'s vCPUs can run: the guest halts until the first of them wakes,
    /// or ends as halted when every one that runs halted with interrupts off (only an NMI
    /// could wake one, and none of them is left to send it).
    fn all_halted(&self, id: usize, turns: &[Turn]) -> Stop {
        let slot = &self.slots[id];
        let stopped = slot.vcpus.iter().all(|v| {
            v.vcpu
                .as_ref()
                .is_none_or(|v| !rflags::interrupts_on(v.rflags()))
        });
        // A shared guest ends so only when the vCPUs of every part are stopped.
        let all = match slot.part.shared() {
            Some(g) => stopped && g.stop(slot.part.local()),
            None => stopped,
        };
        if all {
            return Stop::Ended(GuestEnd::Halted);
        }
        Stop::Halted {
            wake_ns: turns::wake_ns(turns),
        }
    }

    /// Acts on the INITs and SIPIs slot `id`'s vCPUs received: an INIT takes a vCPU's
    /// state away, a SIPI gives it a new one in real mode at its vector. `Some` ends the
    /// guest: a vCPU could not be created.
    fn start_and_stop(&mut self, id: usize) -> Option<GuestEnd> {
        for i in 0..self.slots[id].vcpus.len() {
            // Another CPU starts and stops the vCPUs it runs.
            if !self.slots[id].part.runs(i) {
                continue;
            }
            let run = self.slots[id].part.read_vm(|vm| vm.platform.run_state(i));
            if matches!(run, RunState::Running | RunState::WaitForSipi) {
                continue;
            }
            // INIT makes the boot CPU start over at the reset vector, in the firmware
            // (SDM Vol 3A 9.1): a PC reboots. Janus has no firmware there: the guest's
            // machine resets, as through its reset line.
            if i == 0 {
                return Some(GuestEnd::Reset);
            }
            if self.current == Some((id, i)) {
                self.put_current();
            }
            release_vcpu(&mut self.slots[id], i, self.frames);
            let next = match run {
                RunState::Startup(vector) => {
                    let start = StartMode::Startup { vector };
                    let slot = &mut self.slots[id];
                    if let Err(e) = create(self.backend, self.frames, slot, i, start) {
                        return Some(GuestEnd::error(format_args!(
                            "cannot create its vCPU {i}: {e}"
                        )));
                    }
                    RunState::Running
                }
                _ => RunState::WaitForSipi,
            };
            self.slots[id]
                .part
                .with_vm(|vm| vm.platform.set_run_state(i, next));
        }
        None
    }

    /// A guest ended: it restarts (`on-reset=restart`, a few times) or is gone; its
    /// vCPU's frames go back either way, and its RAM when it is gone.
    fn finish(&mut self, id: usize, end: GuestEnd) {
        self.switches.guest_ended(id);
        if self.current.is_some_and(|(g, _)| g == id) {
            self.put_current();
        }
        let frames = &mut *self.frames;
        let slot = &mut self.slots[id];
        for i in 0..slot.vcpus.len() {
            release_vcpu(slot, i, frames);
        }
        // A shared guest is not restarted: its parts end together.
        let restart = end == GuestEnd::Reset
            && slot.plan.schedule.on_reset == OnReset::Restart
            && slot.restarts < MAX_RESTARTS
            && slot.part.shared().is_none();
        if restart {
            slot.restarts += 1;
            say!(
                "guest {} reset: starting it again ({} of {})",
                slot.name,
                slot.restarts,
                MAX_RESTARTS
            );
            if self.restart(id).is_ok() {
                return;
            }
        }
        let slot = &mut self.slots[id];
        let (end, last) = match slot.part.shared() {
            // The first end of a shared guest is its end; its other parts are told.
            Some(g) => {
                let end = g.end(end);
                (end, g.part_done(slot.cpu_ns))
            }
            None => (end, true),
        };
        slot.reports = last;
        if last {
            let frames = &mut *self.frames;
            slot.part.with(|g| {
                g.vm.flush_console();
                say!("guest {} ended: {}", g.vm.name, end);
                g.free_ram(frames);
            });
        }
        slot.end = Some(end);
        let _ = self.queue.end(id);
        // Guests that were to start after this one start now.
        for i in 0..self.slots.len() {
            if self.slots[i].waits_for == Some(id) {
                self.slots[i].waits_for = None;
                let weight = self.slots[i].plan.schedule.weight;
                let _ = self.queue.add(i, weight);
            }
        }
    }

    /// Loads the guest again and gives it a new vCPU.
    fn restart(&mut self, id: usize) -> Result<(), ()> {
        let slot = &mut self.slots[id];
        let frames = &mut *self.frames;
        slot.part.with(|g| g.reload(frames)).map_err(|_| ())?;
        if let Err(e) = start_vcpu(self.backend, self.frames, slot) {
            say!("guest {}: cannot create its vCPU: {e}", slot.name);
            return Err(());
        }
        let _ = self.queue.restart(id);
        Ok(())
    }

    /// Every guest is halted: sleep until the earliest wake-up or time limit, or a host
    /// interrupt.
    fn idle(&self, now: u64, until_ns: Option<u64>) {
        let limit = self
            .slots
            .iter()
            .filter(|s| s.live())
            .filter_map(|s| s.deadline)
            .min();
        let wake = match (until_ns, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        crate::hosttimer::arm(wake.map(|t| t.saturating_sub(now)));
        crate::hosttimer::idle();
    }
}

/// Wakes the halted vCPUs of `slot` that have an interrupt waiting; whether any vCPU has
/// one, or an INIT or SIPI to be acted on.
fn wake_vcpus<V: ArchVcpu>(slot: &mut Slot<V>) -> bool {
    let Slot { part, vcpus, .. } = slot;
    let local = part.local();
    part.with_vm(|vm| wake_local(vm, vcpus, local))
}

/// [`wake_vcpus`] for the vCPUs in `local` (this CPU's).
fn wake_local<V: ArchVcpu>(vm: &mut Vm, vcpus: &mut [VcpuSlot<V>], local: CpuMask) -> bool {
    dispatch::refresh(vm);
    let mut any = false;
    for (i, vs) in vcpus.iter_mut().enumerate() {
        if local & 1 << i == 0 {
            continue;
        }
        let starts = !matches!(
            vm.platform.run_state(i),
            RunState::Running | RunState::WaitForSipi
        );
        // Only a halted vCPU's RFLAGS matter (with IF clear only an NMI wakes it); a
        // runnable one takes its interrupt when its interrupts are on.
        let interrupt = match (&vs.vcpu, vs.halted) {
            (None, _) => false,
            (Some(v), Some(_)) => vm.platform.wakes(i, rflags::interrupts_on(v.rflags())),
            (Some(_), None) => vm.platform.wakes(i, true),
        };
        if interrupt {
            vs.halted = None;
        }
        any |= starts || interrupt;
    }
    any
}
