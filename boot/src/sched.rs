//! A host CPU's scheduler loop: every guest placed on this CPU runs at once, sharing it
//! (each online host CPU runs one of these loops with its own queue: `smp.rs`).
//!
//! The policy is vmm_core::sched's `RunQueue` (weighted fair shares, 10 ms slices,
//! halted guests cost nothing until their next interrupt). This file does what needs the
//! hardware: entering a guest for one slice (`dispatch::run_slice`), switching the CPU
//! from one guest to another (the backend's `put`/`load`, the x87/SSE/AVX state, an IBPB
//! where the CPU has one), idling when every guest is halted, and ending or restarting
//! guests.

use crate::frames::HostFrames;
use crate::guests::Guest;
use crate::say;
use arrayvec::ArrayVec;
use vmm_core::cpu_rules::CpuRules;
use vmm_core::dispatch::{self, Stop};
use vmm_core::fpu::{FpuState, SaveMode};
use vmm_core::loader::cmdline::OnReset;
use vmm_core::sched::{Next, RunQueue, MAX_VCPUS};
use vmm_core::vcpu::{ArchBackend, ArchVcpu, VcpuError};
use vmm_core::vm::GuestEnd;

/// IA32_PRED_CMD (SDM Vol 4 Table 2-2): writing bit 0 (IBPB) keeps branch predictions
/// one guest trained from steering another's.
const IA32_PRED_CMD: u32 = 0x49;
const IBPB: u64 = 1;

/// The shortest slice a guest gets when another guest's event cuts it short.
const MIN_SLICE_NS: u64 = 100_000;

/// A guest that resets more often than this with `on-reset=restart` ends instead.
pub const MAX_RESTARTS: u32 = 3;

/// One guest on this CPU: its VM, its vCPU while it lives, and its saved state.
pub struct Slot<V> {
    pub guest: Guest,
    pub vcpu: Option<V>,
    pub fpu: FpuState,
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

/// Gives `slot`'s guest a new vCPU, starting from its boot state and reset x87/SSE.
fn start_vcpu<B: ArchBackend>(
    backend: &mut B,
    frames: &mut HostFrames,
    slot: &mut Slot<B::Vcpu>,
) -> Result<(), VcpuError> {
    let g = &slot.guest;
    let rules = CpuRules::for_guest(g.vm.host.cpuid);
    slot.vcpu = Some(backend.create_vcpu(&g.vm.memory, g.start, rules, frames)?);
    slot.fpu = FpuState::reset();
    Ok(())
}

/// The guests of this CPU and what runs them.
pub struct Scheduler<'a, B: ArchBackend> {
    pub backend: &'a mut B,
    pub frames: &'a mut HostFrames,
    pub cpu: Cpu,
    pub slots: ArrayVec<Slot<B::Vcpu>, MAX_VCPUS>,
    queue: RunQueue,
    /// The slot whose state is in the CPU.
    current: Option<usize>,
    /// The last slice: whose, and the TSC when it ended.
    last_slice: Option<(usize, u64)>,
    /// Switches from one guest to another, and the TSC ticks they took in all: from the
    /// end of one guest's slice to the start of the next guest's (the scheduler's choice,
    /// `put`/`load`, the x87/SSE state and the IBPB). Ticks are instructions under Bochs.
    pub switches: u64,
    pub switch_ticks: u64,
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
            last_slice: None,
            switches: 0,
            switch_ticks: 0,
        }
    }

    /// Gives `guest` a vCPU and a place in the queue; a guest that cannot get a vCPU
    /// ends at once with the reason. `owner` numbers its lines on the console, unique
    /// across host CPUs (below MAX_VCPUS: its index among the loaded guests).
    pub fn add(&mut self, mut guest: Guest, owner: u8) {
        let id = self.slots.len();
        guest.vm.console_owner = owner;
        // The limit counts from the guest's first slice (`run_one`): with many guests a
        // guest may wait for its first turn longer than its whole limit.
        let deadline = None;
        let weight = guest.plan.schedule.weight;
        let mut slot = Slot {
            guest,
            vcpu: None,
            fpu: FpuState::reset(),
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
        let after = self.slots[id].guest.plan.schedule.after;
        let waits_for = after.and_then(|name| {
            self.slots[..id]
                .iter()
                .position(|s| s.guest.vm.name == name && s.end.is_none())
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
        self.switch_to(id);
        // Another guest's event ends the slice early, but never before MIN_SLICE_NS: the
        // running guest always gets somewhere.
        let early = self
            .others_next_event(id)
            .map(|t| t.max(now + MIN_SLICE_NS));
        let until = early.map_or(until_ns, |t| t.min(until_ns));
        if let Some((prev, ended_tsc)) = self.last_slice {
            if prev != id {
                self.switches += 1;
                self.switch_ticks += crate::time::tsc().saturating_sub(ended_tsc);
            }
        }
        let others_ran = self.last_slice.is_some_and(|(prev, _)| prev != id);
        let slot = &mut self.slots[id];
        if let Some(since) = slot.ready_since.take().filter(|_| others_ran) {
            slot.guest.vm.steal.add(now.saturating_sub(since));
        }
        if slot.deadline.is_none() {
            let limit = slot.guest.plan.schedule.limit_ns;
            slot.deadline = limit.map(|l| now.saturating_add(l));
        }
        let until = slot.deadline.map_or(until, |d| d.min(until));
        let stop = match slot.vcpu.as_mut() {
            Some(vcpu) => dispatch::run_slice(vcpu, &mut slot.guest.vm, until),
            None => Stop::Ended(GuestEnd::error(format_args!("no vCPU"))),
        };
        self.last_slice = Some((id, crate::time::tsc()));
        let ended = crate::time::now_ns();
        let ran = ended.saturating_sub(now);
        slot.cpu_ns += ran;
        let _ = self.queue.charge(id, ran);
        match stop {
            Stop::Preempted => slot.ready_since = Some(ended),
            // Nothing will ever wake it: only its time limit can end it; without one it
            // ends now.
            Stop::Halted { wake_ns: None } if self.slots[id].deadline.is_none() => {
                let end = self.slots[id]
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

    /// Guests whose `limit=` ran out end.
    fn end_expired(&mut self, now: u64) {
        for id in 0..self.slots.len() {
            let s = &self.slots[id];
            if s.vcpu.is_some() && s.deadline.is_some_and(|d| d <= now) {
                self.finish(id, GuestEnd::TimeLimit);
            }
        }
    }

    /// Which guests have an interrupt waiting; the halted ones among them become
    /// runnable.
    fn poll_interrupts(&mut self) -> ArrayVec<bool, MAX_VCPUS> {
        let mut pending = ArrayVec::new();
        for slot in self.slots.iter_mut() {
            let live = slot.vcpu.is_some();
            pending.push(live && dispatch::has_interrupt(&mut slot.guest.vm));
        }
        let halted: ArrayVec<usize, MAX_VCPUS> = self.queue.halted().collect();
        for id in halted {
            if pending[id] {
                let _ = self.queue.wake(id);
            }
        }
        // Going first for an interrupt makes sense only if the guest can take it now.
        for (p, slot) in pending.iter_mut().zip(self.slots.iter()) {
            *p = *p && slot.vcpu.as_ref().is_some_and(|v| v.interrupts_open());
        }
        pending
    }

    /// The earliest device event or time limit of the guests other than `id`: the
    /// running guest's slice ends then, so that the other gets its interrupt on time.
    fn others_next_event(&self, id: usize) -> Option<u64> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != id && s.vcpu.is_some())
            .filter_map(|(_, s)| {
                let event = s.guest.vm.platform.next_event_ns(s.guest.vm.now());
                match (event, s.deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    /// Makes slot `next` the one whose state is in the CPU.
    fn switch_to(&mut self, next: usize) {
        if self.current == Some(next) {
            return;
        }
        self.put_current();
        if self.cpu.ibpb {
            // SAFETY: CPUID says IA32_PRED_CMD exists; IBPB only discards predictions.
            unsafe { x86::msr::wrmsr(IA32_PRED_CMD, IBPB) };
        }
        let slot = &mut self.slots[next];
        slot.fpu.restore(self.cpu.fpu);
        if let Some(v) = slot.vcpu.as_mut() {
            v.load();
        }
        self.current = Some(next);
    }

    /// Takes the current guest's state out of the CPU.
    fn put_current(&mut self) {
        if let Some(prev) = self.current.take() {
            let slot = &mut self.slots[prev];
            if let Some(v) = slot.vcpu.as_mut() {
                v.put();
            }
            slot.fpu.save(self.cpu.fpu);
        }
    }

    /// A guest ended: it restarts (`on-reset=restart`, a few times) or is gone; its
    /// vCPU's frames go back either way, and its RAM when it is gone.
    fn finish(&mut self, id: usize, end: GuestEnd) {
        if self.current == Some(id) {
            self.put_current();
        }
        let frames = &mut *self.frames;
        let slot = &mut self.slots[id];
        if let Some(v) = slot.vcpu.take() {
            v.release(frames);
        }
        let restart = end == GuestEnd::Reset
            && slot.guest.plan.schedule.on_reset == OnReset::Restart
            && slot.restarts < MAX_RESTARTS;
        if restart {
            slot.restarts += 1;
            say!(
                "guest {} reset: starting it again ({} of {})",
                slot.guest.vm.name,
                slot.restarts,
                MAX_RESTARTS
            );
            if self.restart(id).is_ok() {
                return;
            }
        }
        let slot = &mut self.slots[id];
        slot.guest.vm.flush_console();
        say!("guest {} ended: {}", slot.guest.vm.name, end);
        slot.guest.free_ram(self.frames);
        slot.end = Some(end);
        let _ = self.queue.end(id);
        // Guests that were to start after this one start now.
        for i in 0..self.slots.len() {
            if self.slots[i].waits_for == Some(id) {
                self.slots[i].waits_for = None;
                let weight = self.slots[i].guest.plan.schedule.weight;
                let _ = self.queue.add(i, weight);
            }
        }
    }

    /// Loads the guest again and gives it a new vCPU.
    fn restart(&mut self, id: usize) -> Result<(), ()> {
        let slot = &mut self.slots[id];
        slot.guest.reload(self.frames).map_err(|_| ())?;
        if let Err(e) = start_vcpu(self.backend, self.frames, slot) {
            say!("guest {}: cannot create its vCPU: {e}", slot.guest.vm.name);
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
            .filter(|s| s.vcpu.is_some())
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
