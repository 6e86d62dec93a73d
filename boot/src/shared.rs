//! Guests whose vCPUs run on several host CPUs at once (issue #11): a guest with
//! `vcpus=N` (N > 1) whose `cpus=` set holds more than one online CPU runs vCPU i on the
//! i-th CPU of the set, round robin (`vmm_core::smp::spread`).
//!
//! Such a guest is shared: its [`Guest`] (memory, devices, MSRs, console) sits behind one
//! lock here, and each of its host CPUs keeps a part of it in its scheduler: the vCPUs it
//! runs, whose VMCS or VMCB never leave that CPU. `dispatch::run_slice` holds the lock
//! only between two entries, never while a vCPU runs ([`SharedAccess`]). A vCPU that
//! another CPU runs and that got an interrupt, an NMI, an INIT or a SIPI is kicked with a
//! host IPI: in the guest it exits, idle its CPU wakes, and either way its scheduler
//! finds what waits for it. The guest ends once for all: the part that ends it says so
//! here and kicks the others, which release their vCPUs; the last one frees the RAM and
//! files the summary.
//!
//! Limits: a shared guest is not restarted on reset (`on-reset=restart`); its nested page
//! tables never change while it runs (RAM and device holes are fixed at load), so no
//! TLB shootdown is needed yet.

use crate::guests::Guest;
use crate::percpu;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use spin::{Mutex, MutexGuard, Once};
use vmm_core::dispatch::VmAccess;
use vmm_core::loader::modules::MAX_MODULES;
use vmm_core::platform::cpus::CpuMask;
use vmm_core::vm::{GuestEnd, Vm, MAX_GUEST_VCPUS};

/// A guest that may be used from several host CPUs.
pub struct SharedGuest {
    guest: Mutex<Movable>,
    /// The host CPU (index) of each vCPU.
    cpu_of: [u8; MAX_GUEST_VCPUS],
    vcpus: u8,
    /// How it ended, set once by the part that ended it.
    end: Mutex<Option<GuestEnd>>,
    ended: AtomicBool,
    /// Parts (host CPUs) that still hold vCPUs of it.
    parts: AtomicU8,
    /// CPU time its parts had, in ns, added as each part finishes.
    cpu_ns: AtomicU64,
    /// vCPUs halted with interrupts off (or never started): when all are, it ends.
    stopped: AtomicU8,
}

/// A guest moved to the shared table.
pub struct Movable(Guest);

impl Movable {
    pub fn guest(&mut self) -> &mut Guest {
        &mut self.0
    }
}

// SAFETY: a guest's raw pointers (its RAM) belong to the guest alone; the lock around it
// lets one host CPU at a time use them.
unsafe impl Send for Movable {}

static SHARED: [Once<SharedGuest>; MAX_MODULES] = [const { Once::new() }; MAX_MODULES];

impl SharedGuest {
    /// Puts `guest` (module index `owner`) in the shared table, its vCPUs on `cpu_of`.
    pub fn publish(owner: usize, guest: Guest, cpu_of: &[usize]) -> Option<&'static SharedGuest> {
        let vcpus = cpu_of.len().min(MAX_GUEST_VCPUS);
        let mut cpus = [0u8; MAX_GUEST_VCPUS];
        for (c, &cpu) in cpus.iter_mut().zip(cpu_of) {
            *c = cpu as u8;
        }
        let parts = (0..vcpus)
            .filter(|&i| !cpus[..i].contains(&cpus[i]))
            .count();
        let slot = SHARED.get(owner)?;
        let mut fresh = Some(guest);
        let g = slot.call_once(|| SharedGuest {
            guest: Mutex::new(Movable(fresh.take().expect("called once"))),
            cpu_of: cpus,
            vcpus: vcpus as u8,
            end: Mutex::new(None),
            ended: AtomicBool::new(false),
            parts: AtomicU8::new(parts as u8),
            cpu_ns: AtomicU64::new(0),
            stopped: AtomicU8::new(0),
        });
        fresh.is_none().then_some(g)
    }

    /// The vCPUs host CPU `cpu` runs.
    pub fn local_mask(&self, cpu: usize) -> CpuMask {
        (0..self.vcpus as usize)
            .filter(|&i| self.cpu_of[i] as usize == cpu)
            .fold(0, |m, i| m | 1 << i)
    }

    /// The distinct host CPUs its vCPUs run on, in vCPU order.
    pub fn cpus(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.vcpus as usize)
            .filter(|&i| !self.cpu_of[..i].contains(&self.cpu_of[i]))
            .map(|i| self.cpu_of[i] as usize)
    }

    /// The guest, locked, for the part whose vCPUs are `local`.
    pub fn lock(&self, local: CpuMask) -> MutexGuard<'_, Movable> {
        let mut g = self.guest.lock();
        g.0.vm.platform.set_local(local);
        g
    }

    /// Interrupts the host CPUs of the vCPUs in `mask` (other than this one).
    pub fn kick(&self, mask: CpuMask) {
        let me = this_cpu();
        let mut sent: u32 = 0;
        for i in (0..self.vcpus as usize).filter(|i| mask & 1 << i != 0) {
            let cpu = self.cpu_of[i] as usize;
            if cpu != me && sent & 1 << cpu == 0 {
                sent |= 1 << cpu;
                crate::hosttimer::kick(percpu::get(cpu).apic_id.load(Ordering::Relaxed));
            }
        }
    }

    /// Ends the guest (the first end wins) and kicks every other part; returns its end.
    pub fn end(&self, end: GuestEnd) -> GuestEnd {
        let end = self.end.lock().get_or_insert(end).clone();
        self.ended.store(true, Ordering::Release);
        self.kick(CpuMask::MAX >> (8 - self.vcpus as u32));
        end
    }

    pub fn has_ended(&self) -> Option<GuestEnd> {
        if !self.ended.load(Ordering::Acquire) {
            return None;
        }
        self.end.lock().clone()
    }

    /// A part let go of its vCPUs after `cpu_ns` of CPU time; `true` for the last one,
    /// which frees the guest's RAM and files its summary.
    pub fn part_done(&self, cpu_ns: u64) -> bool {
        self.cpu_ns.fetch_add(cpu_ns, Ordering::AcqRel);
        self.parts.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub fn cpu_ns(&self) -> u64 {
        self.cpu_ns.load(Ordering::Acquire)
    }

    /// The vCPUs in `mask` are stopped (halted with interrupts off, or never started);
    /// `true` when every vCPU of the guest is.
    pub fn stop(&self, mask: CpuMask) -> bool {
        let all = CpuMask::MAX >> (8 - self.vcpus as u32);
        self.stopped.fetch_or(mask, Ordering::AcqRel) | mask == all
    }

    /// The vCPUs in `mask` run again.
    pub fn restart(&self, mask: CpuMask) {
        self.stopped.fetch_and(!mask, Ordering::AcqRel);
    }
}

/// This host CPU's index.
fn this_cpu() -> usize {
    percpu::current().map_or(0, |c| c.index.load(Ordering::Relaxed) as usize)
}

/// How `run_slice` reaches a shared guest's VM for vCPU `vcpu` of the part whose vCPUs are
/// `local`: under the lock, with the platform acting for that vCPU; kicks for vCPUs of
/// other CPUs become host IPIs once the lock is let go.
pub struct SharedAccess<'a> {
    pub guest: &'a SharedGuest,
    pub vcpu: usize,
    pub local: CpuMask,
    /// The host-timer deadline this part armed (`Vm::armed` is this CPU's, not the
    /// guest's).
    pub armed: Option<u64>,
}

impl VmAccess for SharedAccess<'_> {
    fn with<R>(&mut self, f: impl FnOnce(&mut Vm) -> R) -> R {
        let mut g = self.guest.lock(self.local);
        let vm = &mut g.guest().vm;
        vm.platform.select(self.vcpu);
        vm.armed = self.armed;
        let r = f(vm);
        self.armed = vm.armed;
        let remote = vm.platform.take_remote_kicks();
        drop(g);
        if remote != 0 {
            self.guest.kick(remote);
        }
        r
    }

    fn ended_elsewhere(&self) -> bool {
        self.guest.ended.load(Ordering::Acquire)
    }
}
