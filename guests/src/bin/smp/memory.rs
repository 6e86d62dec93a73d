//! The smp suite's memory stress: every CPU at once takes an xchg spinlock around a
//! plain counter and bumps a `lock xadd` counter (SDM Vol 3A 9.1.2.2 locked atomic
//! operations); the totals must be exact.

use super::{Cpus, STRESS_ROUNDS, WORK_US};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use janus_guests::rt::smp::{self, MAX_CPUS};
use janus_guests::rt::time;
use janus_guests::{println, Suite};

static LOCK: AtomicBool = AtomicBool::new(false);
static PLAIN: AtomicU64 = AtomicU64::new(0);
static XADD: AtomicU64 = AtomicU64::new(0);
static GO: AtomicBool = AtomicBool::new(false);
/// CPUs that reached [`stress_work`] (the BSP lets them go once all are there).
static READY: AtomicU32 = AtomicU32::new(0);
/// `lock xadd`: adds `v` to `target`, returns the old value.
fn lock_xadd(target: &AtomicU64, v: u64) -> u64 {
    let mut r = v;
    // SAFETY: a locked read-modify-write of the atomic's own 8 bytes.
    unsafe {
        core::arch::asm!("lock xadd [{p}], {r}", p = in(reg) target.as_ptr(), r = inout(reg) r, options(nostack));
    }
    r
}

/// The stress work every CPU runs at once: an xchg spinlock around a plain
/// read-then-write of a counter, and a `lock xadd` counter.
fn stress_work() {
    READY.fetch_add(1, SeqCst);
    let _ = time::wait_until(WORK_US, || GO.load(SeqCst));
    for _ in 0..STRESS_ROUNDS {
        while LOCK.swap(true, core::sync::atomic::Ordering::Acquire) {
            while LOCK.load(core::sync::atomic::Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
        let v = PLAIN.load(core::sync::atomic::Ordering::Relaxed);
        PLAIN.store(v + 1, core::sync::atomic::Ordering::Relaxed);
        LOCK.store(false, core::sync::atomic::Ordering::Release);
        lock_xadd(&XADD, 1);
    }
}

pub(super) fn stress(s: &mut Suite, cpus: &Cpus) {
    GO.store(false, SeqCst);
    PLAIN.store(0, SeqCst);
    XADD.store(0, SeqCst);
    let before: [u32; MAX_CPUS] = core::array::from_fn(smp::done);
    READY.store(0, SeqCst);
    for ap in cpus.aps() {
        smp::post(ap, stress_work);
    }
    let aps = cpus.aps().count() as u32;
    let _ = time::wait_until(WORK_US, || READY.load(SeqCst) >= aps);
    let sw = time::Stopwatch::start();
    GO.store(true, SeqCst);
    stress_work();
    let all_done = time::wait_until(WORK_US * 10, || {
        cpus.aps().all(|ap| smp::done(ap) > before[ap])
    });
    let n = cpus.online().count() as u64;
    let want = n * STRESS_ROUNDS;
    let (plain, xadd) = (PLAIN.load(SeqCst), XADD.load(SeqCst));
    println!(
        "smp: {n} CPUs x {STRESS_ROUNDS} rounds of the spinlock and lock xadd in {} ms",
        sw.us() / 1000
    );
    s.check(
        "smp.spinlock_counter",
        all_done && plain == want,
        format_args!(
            "counter under the xchg spinlock {plain}, want {want} (all CPUs done: {all_done})"
        ),
    );
    s.check(
        "smp.lock_xadd_counter",
        all_done && xadd == want,
        format_args!("lock xadd counter {xadd}, want {want}"),
    );
}
