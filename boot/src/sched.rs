//! The boot CPU's scheduler loop: every guest runs at once, sharing this CPU.
//!
//! The policy is vmm_core::sched's `RunQueue` (weighted fair shares, 10 ms slices,
//! halted guests cost nothing until their next interrupt). This file does what needs the
//! hardware: entering a guest for one slice (`dispatch::run_slice`), switching the CPU
//! from one guest to another (the backend's `put`/`load`, the x87/SSE/AVX state, an IBPB
//! where the CPU has one), idling when every guest is halted, and ending guests.
//!
//! SMP will give every host CPU one of these loops with its own queue.

use crate::frames::HostFrames;
use crate::guests::Guest;
use crate::say;
use arrayvec::ArrayVec;
use vmm_core::dispatch::{self, Stop};
use vmm_core::fpu::{FpuState, SaveMode};
use vmm_core::nested::FrameAllocator;
use vmm_core::sched::{Next, RunQueue, MAX_VCPUS};
use vmm_core::vcpu::ArchVcpu;
use vmm_core::vm::GuestEnd;

/// IA32_PRED_CMD (SDM Vol 4 Table 2-2): writing bit 0 (IBPB) keeps branch predictions
/// one guest trained from steering another's.
const IA32_PRED_CMD: u32 = 0x49;
const IBPB: u64 = 1;

/// One guest on this CPU: its VM, its vCPU while it lives, and its saved state.
pub struct Slot<V> {
    pub guest: Guest,
    pub vcpu: Option<V>,
    pub fpu: FpuState,
    pub end: Option<GuestEnd>,
}

/// What the switch needs to know about this CPU.
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

/// Runs every slot's guest until all have ended. `weights[i]` is slot i's share.
pub fn run_all<V: ArchVcpu>(
    cpu: Cpu,
    slots: &mut ArrayVec<Slot<V>, MAX_VCPUS>,
    weights: &[u32],
    frames: &mut HostFrames,
) {
    let mut queue = RunQueue::new();
    for (i, slot) in slots.iter().enumerate() {
        if slot.vcpu.is_some() {
            // Weights were checked when the module line was read.
            let _ = queue.add(i, weights.get(i).copied().unwrap_or(1));
        }
    }
    let mut current: Option<usize> = None;
    loop {
        let now = crate::time::now_ns();
        wake_halted(&mut queue, slots);
        match queue.next(now) {
            Next::Run { id, until_ns } => {
                switch(cpu, slots, &mut current, id);
                let stop = run_slot(&mut slots[id], until_ns);
                let _ = queue.charge(id, crate::time::now_ns().saturating_sub(now));
                match stop {
                    Stop::Preempted => {}
                    Stop::Halted { wake_ns } => {
                        let _ = queue.halt(id, wake_ns);
                    }
                    Stop::Ended(end) => {
                        let _ = queue.end(id);
                        if current == Some(id) {
                            current = None;
                        }
                        finish(&mut slots[id], end, frames);
                    }
                }
            }
            Next::Idle { until_ns } => idle(now, until_ns),
            Next::Done => return,
        }
    }
}

/// Runs one slot's vCPU for one slice, with guest time in the VM's own terms.
fn run_slot<V: ArchVcpu>(slot: &mut Slot<V>, until_ns: u64) -> Stop {
    let Some(vcpu) = slot.vcpu.as_mut() else {
        return Stop::Ended(GuestEnd::error(format_args!("no vCPU")));
    };
    dispatch::run_slice(vcpu, &mut slot.guest.vm, until_ns)
}

/// Halted guests whose platform has an interrupt for them become runnable.
fn wake_halted<V>(queue: &mut RunQueue, slots: &mut ArrayVec<Slot<V>, MAX_VCPUS>) {
    let halted: ArrayVec<usize, MAX_VCPUS> = queue.halted().collect();
    for id in halted {
        if dispatch::has_interrupt(&mut slots[id].guest.vm) {
            let _ = queue.wake(id);
        }
    }
}

/// Makes `next` the guest whose state is in the CPU.
fn switch<V: ArchVcpu>(
    cpu: Cpu,
    slots: &mut ArrayVec<Slot<V>, MAX_VCPUS>,
    current: &mut Option<usize>,
    next: usize,
) {
    if *current == Some(next) {
        return;
    }
    if let Some(prev) = current.take() {
        let slot = &mut slots[prev];
        if let Some(v) = slot.vcpu.as_mut() {
            v.put();
        }
        slot.fpu.save(cpu.fpu);
    }
    if cpu.ibpb {
        // SAFETY: CPUID says IA32_PRED_CMD exists; IBPB only discards branch predictions.
        unsafe { x86::msr::wrmsr(IA32_PRED_CMD, IBPB) };
    }
    let slot = &mut slots[next];
    slot.fpu.restore(cpu.fpu);
    if let Some(v) = slot.vcpu.as_mut() {
        v.load();
    }
    *current = Some(next);
}

/// A guest ended: say so, and give its vCPU's frames back.
fn finish<V: ArchVcpu>(slot: &mut Slot<V>, end: GuestEnd, frames: &mut HostFrames) {
    say!("guest {} ended: {}", slot.guest.vm.name, end);
    if let Some(v) = slot.vcpu.take() {
        v.put_and_release(frames);
    }
    slot.end = Some(end);
}

/// Every guest is halted: sleep until the earliest wake-up or a host interrupt.
fn idle(now: u64, until_ns: Option<u64>) {
    crate::hosttimer::arm(until_ns.map(|t| t.saturating_sub(now)));
    crate::hosttimer::idle();
}

/// Ending a vCPU: `put` first (it may be loaded), then release its frames.
trait PutAndRelease {
    fn put_and_release(self, frames: &mut impl FrameAllocator);
}

impl<V: ArchVcpu> PutAndRelease for V {
    fn put_and_release(mut self, frames: &mut impl FrameAllocator) {
        self.put();
        self.release(frames);
    }
}
