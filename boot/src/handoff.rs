//! Guests going from the boot CPU, which loads them all, to the host CPU that runs them
//! (placed by `vmm_core::smp::place`), and their summaries coming back, so that the boot
//! CPU prints every guest's summary line in module order once all CPUs are done.
//!
//! A guest is handed over whole: its RAM, devices and console go to the one CPU that
//! creates its vCPUs and runs them. A guest whose vCPUs spread over several CPUs
//! (`vmm_core::smp::spread`) goes to the shared table instead ([`crate::shared`]), and
//! each of its CPUs gets a part: the vCPUs it runs.

use crate::frames::HostFrames;
use crate::guests::Guest;
use crate::say;
use crate::sched::{Part, Scheduler};
use crate::shared::SharedGuest;
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::Mutex;
use vmm_core::loader::modules::MAX_MODULES;
use vmm_core::smp::{place, spread, Want};
use vmm_core::stats::ExitStats;
use vmm_core::vcpu::ArchBackend;
use vmm_core::vm::{GuestEnd, Name};

/// A guest on its way to its CPU, with its console owner number (its index among the
/// loaded guests, unique across CPUs).
pub struct Handed {
    pub owner: u8,
    pub part: Part,
}

/// CPU numbers as `0,1,0,1` (vCPU i's first).
struct CpuList<'a>(&'a [usize]);

impl core::fmt::Display for CpuList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A `Handed` guest in the shared list.
struct InTransit {
    cpu: usize,
    handed: Handed,
}

// SAFETY: a guest's raw pointers (its RAM) belong to the guest alone; it is moved whole
// from the boot CPU to the CPU that runs it, and only that CPU uses it afterwards.
unsafe impl Send for InTransit {}

/// Room for every guest and the extra parts of shared guests.
const TRANSIT_MAX: usize = 2 * MAX_MODULES;
static TRANSIT: Mutex<ArrayVec<InTransit, TRANSIT_MAX>> = Mutex::new(ArrayVec::new_const());
/// Set once every guest is in `TRANSIT`: from then on a CPU that finds none has none.
static POSTED: AtomicBool = AtomicBool::new(false);

/// One guest's summary line.
pub struct Summary {
    pub owner: u8,
    pub name: Name,
    pub end: GuestEnd,
    pub cpu_ns: u64,
    pub stats: ExitStats,
}

static SUMMARIES: Mutex<ArrayVec<Summary, MAX_MODULES>> = Mutex::new(ArrayVec::new_const());
static SWITCHES: AtomicU64 = AtomicU64::new(0);
static SWITCH_TICKS: AtomicU64 = AtomicU64::new(0);

/// Places `guests` on the `online` CPUs and posts those of the other CPUs; returns the
/// boot CPU's and the number refused (a `cpus=` with no such CPU online: one line each,
/// and the guest's RAM goes back).
pub fn hand_out(
    guests: ArrayVec<Guest, MAX_MODULES>,
    online: &[usize],
) -> (ArrayVec<Handed, MAX_MODULES>, usize) {
    let wants: ArrayVec<Want, MAX_MODULES> = guests
        .iter()
        .enumerate()
        .map(|(i, g)| Want {
            cpus: g.plan.schedule.cpus,
            after: g
                .plan
                .schedule
                .after
                .and_then(|name| guests[..i].iter().position(|e| e.vm.name == name)),
        })
        .collect();
    let places = place::<MAX_MODULES>(online, &wants);
    let mut mine = ArrayVec::new();
    let mut refused = 0;
    let mut transit = TRANSIT.lock();
    for ((owner, guest), placed) in guests.into_iter().enumerate().zip(places) {
        let spread = guest
            .plan
            .schedule
            .cpus
            .and_then(|set| spread(online, set, guest.plan.vcpus));
        if let Some(cpu_of) = spread {
            let name = guest.vm.name;
            let Some(shared) = SharedGuest::publish(owner, guest, &cpu_of) else {
                continue;
            };
            say!("guest {}: runs on cpus {}", name, CpuList(&cpu_of));
            for cpu in shared.cpus() {
                let handed = Handed {
                    owner: owner as u8,
                    part: Part::Shared {
                        guest: shared,
                        local: shared.local_mask(cpu),
                    },
                };
                if cpu == 0 {
                    mine.push(handed);
                } else if transit.try_push(InTransit { cpu, handed }).is_err() {
                    say!("guest {}: too many parts in transit", name);
                }
            }
            continue;
        }
        let name = guest.vm.name;
        let handed = Handed {
            owner: owner as u8,
            part: Part::Owned(guest),
        };
        if let (Ok(cpu), true) = (placed, online.len() > 1) {
            say!("guest {}: runs on cpu {cpu}", name);
        }
        match placed {
            Ok(0) => mine.push(handed),
            Ok(cpu) => {
                let _ = transit.try_push(InTransit { cpu, handed });
            }
            Err(e) => {
                say!("guest {}: not started: {e}", name);
                if let Part::Owned(g) = &handed.part {
                    g.free_ram(&mut HostFrames::handle());
                }
                refused += 1;
            }
        }
    }
    POSTED.store(true, Ordering::Release);
    (mine, refused)
}

/// CPU `cpu`'s guests, once the boot CPU has posted them.
pub fn take(cpu: usize) -> Option<ArrayVec<Handed, MAX_MODULES>> {
    if !POSTED.load(Ordering::Acquire) {
        return None;
    }
    let mut transit = TRANSIT.lock();
    let mut mine = ArrayVec::new();
    let mut i = 0;
    while i < transit.len() {
        if transit[i].cpu == cpu {
            mine.push(transit.remove(i).handed);
        } else {
            i += 1;
        }
    }
    Some(mine)
}

/// Files the summaries of a CPU whose guests have all ended.
pub fn report<B: ArchBackend>(sched: &Scheduler<'_, B>) {
    let mut all = SUMMARIES.lock();
    for s in sched.slots.iter().filter_map(|slot| slot.summary()) {
        let _ = all.try_push(s);
    }
    SWITCHES.fetch_add(sched.switches.count, Ordering::Relaxed);
    SWITCH_TICKS.fetch_add(sched.switches.ticks, Ordering::Relaxed);
}

/// Every CPU's summaries in module order, and the guest switches and their ticks in all.
pub fn results() -> (ArrayVec<Summary, MAX_MODULES>, u64, u64) {
    let mut all = core::mem::take(&mut *SUMMARIES.lock());
    all.sort_unstable_by_key(|s| s.owner);
    (
        all,
        SWITCHES.load(Ordering::Relaxed),
        SWITCH_TICKS.load(Ordering::Relaxed),
    )
}
