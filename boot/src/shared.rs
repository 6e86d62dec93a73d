//! Guests whose vCPUs run on several host CPUs at once (issue #11): a guest with
//! `vcpus=N` (N > 1) whose `cpus=` set holds more than one online CPU runs vCPU i on the
//! i-th CPU of the set, round robin (`vmm_core::smp::spread`).
//!
//! Such a guest is shared: its [`Guest`] (memory, devices, MSRs, console) sits behind one
//! lock here, and each of its host CPUs keeps a part of it in its scheduler: the vCPUs it
//! runs, whose VMCS or VMCB never leave that CPU. `dispatch::run_slice_shared` holds the
//! lock only between two entries, never while a vCPU runs ([`SharedGuest::access`]). A vCPU that
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
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use spin::mutex::SpinMutex;
use spin::{Mutex, Once};
use vmm_core::dispatch::SharedVm;
use vmm_core::loader::modules::MAX_MODULES;
use vmm_core::platform::cpus::CpuMask;
use vmm_core::vm::{GuestEnd, MAX_GUEST_VCPUS};

/// A guest that may be used from several host CPUs.
pub struct SharedGuest {
    /// Held by the host CPU that uses `guest`. A bare lock beside the data rather than a
    /// `spin::Mutex<Guest>`: the dispatcher takes and lets go of it inline around every VM
    /// entry, with no guard to carry (`vmm_core::dispatch::SharedVm`).
    lock: SpinMutex<()>,
    guest: UnsafeCell<Guest>,
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

// SAFETY: the guest (and its raw pointers: its RAM) is reached only with `lock` held,
// by one host CPU at a time; the rest is atomics and locks.
unsafe impl Sync for SharedGuest {}
// SAFETY: as above; it lives in a static and never moves between threads otherwise.
unsafe impl Send for SharedGuest {}

static SHARED: [Once<SharedGuest>; MAX_MODULES] = [const { Once::new() }; MAX_MODULES];

impl SharedGuest {
    /// Puts `guest` (module index `owner`) in the shared table, its vCPUs on `cpu_of`.
    pub fn publish(owner: usize, guest: Guest, cpu_of: &[usize]) -> Option<&'static SharedGuest> {
        let vcpus = cpu_of.len().min(MAX_GUEST_VCPUS);
        let mut cpus = [0u8; MAX_GUEST_VCPUS];
        for (c, &cpu) in cpus.iter_mut().zip(cpu_of) {
            *c = cpu as u8;
        }
        let slot = SHARED.get(owner)?;
        let mut fresh = Some(guest);
        let g = slot.call_once(|| SharedGuest {
            lock: SpinMutex::new(()),
            guest: UnsafeCell::new(fresh.take().expect("called once")),
            cpu_of: cpus,
            vcpus: vcpus as u8,
            end: Mutex::new(None),
            ended: AtomicBool::new(false),
            // Set below, from `cpus()`.
            parts: AtomicU8::new(0),
            cpu_ns: AtomicU64::new(0),
            stopped: AtomicU8::new(0),
        });
        if fresh.is_some() {
            return None;
        }
        g.parts.store(g.cpus().count() as u8, Ordering::Release);
        Some(g)
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

    /// Runs `f` on the guest, locked, for the part whose vCPUs are `local`.
    pub fn with<R>(&self, local: CpuMask, f: impl FnOnce(&mut Guest) -> R) -> R {
        let _held = self.lock.lock();
        // SAFETY: the lock is held: the guest is this CPU's until `_held` goes.
        let g = unsafe { &mut *self.guest.get() };
        g.vm.platform.set_local(local);
        f(g)
    }

    /// How the dispatcher reaches the VM for vCPU `vcpu` of the part whose vCPUs are
    /// `local`; `kick` interrupts other CPUs ([`SharedGuest::kick`]).
    pub fn access<'a>(
        &'a self,
        vcpu: usize,
        local: CpuMask,
        kick: &'a dyn Fn(CpuMask),
    ) -> SharedVm<'a> {
        SharedVm {
            lock: &self.lock,
            // SAFETY: only the place is computed, nothing is read; the lock's holder alone
            // goes through the pointer (`SharedVm`'s use).
            vm: unsafe { core::ptr::addr_of_mut!((*self.guest.get()).vm) },
            vcpu,
            local,
            ended: &self.ended,
            kick,
        }
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
        self.kick(self.all());
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
        self.stopped.fetch_or(mask, Ordering::AcqRel) | mask == self.all()
    }

    /// The vCPUs in `mask` run again.
    pub fn running(&self, mask: CpuMask) {
        self.stopped.fetch_and(!mask, Ordering::AcqRel);
    }

    /// All of its vCPUs.
    fn all(&self) -> CpuMask {
        CpuMask::MAX >> (8 - self.vcpus as u32)
    }
}

/// This host CPU's index.
fn this_cpu() -> usize {
    percpu::current().map_or(0, |c| c.index.load(Ordering::Relaxed) as usize)
}
