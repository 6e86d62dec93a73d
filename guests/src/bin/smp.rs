//! The smp suite (issue #11): a guest with several CPUs, as a PC OS sees them.
//!
//! - The CPUs: the ACPI MADT, else the MP table (rt/cpu_list.rs) lists `cpus=N` enabled
//!   CPUs (command line; default 2) with distinct APIC IDs, the boot CPU among them; when
//!   both tables exist they agree.
//! - Start-up: every AP starts with INIT, 10 ms, STARTUP, 200 us, STARTUP through the
//!   xAPIC ICR (SDM Vol 3A 9.4.4; MP spec 1.4 B.4) and a trampoline in a free page below
//!   1 MiB (rt/smp.rs), reports in exactly once, and its LAPIC ID register and CPUID
//!   initial APIC ID (leaf 1 EBX[31:24]) are its table entry's.
//! - IPIs (SDM Vol 3A 11.6: the ICR, destination modes and shorthands, lowest-priority
//!   delivery): fixed physical ping-pong with every AP (the mean TSC ticks per round trip
//!   is printed: `smp: ipi round trip: N ticks`); NMI to each AP; flat logical
//!   destination (DFR flat, LDR one bit per CPU) to a subset; the all-excluding-self,
//!   all-including-self and self shorthands; lowest priority to a logical set (each IPI
//!   reaches exactly one CPU of it).
//! - Memory: an xchg spinlock guarding a plain counter and a `lock xadd` counter, every
//!   CPU at once; totals exact.
//! - The IOAPIC routes the PIT (pin 2) to each AP by its APIC ID (82093AA datasheet 3.2.4
//!   redirection table), and no other CPU gets it.
//! - INIT to a running AP, then STARTUP again, restarts it (it reports a second time).
//! - x2APIC (when CPUID.1:ECX[21]; SDM Vol 3A 11.12): every CPU switches; the x2APIC ID
//!   and LDR (cluster << 16 | 1 << (ID & 15)) are right; ping-pong through the ICR MSR
//!   0x830 with a 32-bit physical destination; a logical x2APIC destination; a
//!   destination that differs from an AP's ID only above bit 7 reaches nobody.
//!
//! Fewer CPUs than `cpus=` is a failure, not a skip. Checks that need an AP are left
//! out when none came online (`smp.aps_online` has failed then).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use janus_guests::rt::apic::{self, *};
use janus_guests::rt::cpu_list::{self, CpuList, Source};
use janus_guests::rt::idt::{self, Frame};
use janus_guests::rt::smp::{self, MAX_CPUS};
use janus_guests::rt::x86::{self, rdtsc, wrmsr, MSR_APIC_BASE};
use janus_guests::rt::{args, pc, phys, time};
use janus_guests::{cpuid, entry, println, rdmsr, BootInfo, Suite};

entry!(main);

const PING_VEC: u8 = 0x60;
const PONG_VEC: u8 = 0x61;
const TEST_VEC: u8 = 0x62;
const IO_VEC: u8 = 0x63;
const NMI_VEC: u8 = 2;
/// Counted vectors: PING, PONG, TEST, IO, NMI.
const SLOTS: usize = 5;

/// Round trips measured with CPU 1, and with each AP for the check.
const ROUND_TRIPS: u32 = 500;
const ROUND_TRIPS_EACH: u32 = 10;
/// Spinlock rounds per CPU.
const STRESS_ROUNDS: u64 = 50_000;
/// Lowest-priority IPIs sent.
const LOWEST_ROUNDS: u32 = 8;
/// How long an IPI may take to arrive, and how long a wrong extra one is waited for.
const ARRIVE_US: u64 = 200_000;
const SETTLE_US: u64 = 2_000;
/// How long posted work may take.
const WORK_US: u64 = 2_000_000;

/// Arrivals per CPU index and counted vector.
static HITS: [[AtomicU32; SLOTS]; MAX_CPUS] =
    [const { [const { AtomicU32::new(0) }; SLOTS] }; MAX_CPUS];
/// Interrupts taken on a CPU whose APIC ID is not in the table.
static STRANGERS: AtomicU32 = AtomicU32::new(0);

fn slot(vector: u8) -> usize {
    match vector {
        NMI_VEC => 4,
        v => usize::from(v - PING_VEC),
    }
}

fn bump(vector: u8) {
    match smp::this_cpu() {
        Some(i) => {
            HITS[i][slot(vector)].fetch_add(1, SeqCst);
        }
        None => {
            STRANGERS.fetch_add(1, SeqCst);
        }
    }
}

fn hits(cpu: usize, vector: u8) -> u32 {
    HITS[cpu][slot(vector)].load(SeqCst)
}

fn reset_hits() {
    HITS.iter().flatten().for_each(|h| h.store(0, SeqCst));
}

fn counting(f: &mut Frame) {
    bump(f.vector as u8);
    apic::eoi();
}

fn nmi(f: &mut Frame) {
    bump(f.vector as u8);
}

/// On an AP: answer a ping with a pong to the BSP.
fn ping(f: &mut Frame) {
    bump(f.vector as u8);
    apic::send_ipi(
        ICR_FIXED | u32::from(PONG_VEC),
        smp::apic_id(0).unwrap_or(0),
    );
    apic::eoi();
}

/// Interrupts on until `cond` holds or `us` pass.
fn wait_on(us: u64, cond: impl FnMut() -> bool) -> bool {
    x86::sti();
    let ok = time::wait_until(us, cond);
    x86::cli();
    ok
}

/// The CPUs under test: APIC IDs by index (BSP first) and which came online.
struct Cpus {
    ids: [u32; MAX_CPUS],
    n: usize,
    /// Bit i: CPU i runs (the BSP always).
    up: u32,
    /// The start-up page, if one was free.
    page: Option<u64>,
    /// Where the CPU table is (the start-up page must not hold it).
    table_at: u64,
}

impl Cpus {
    fn online(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.n).filter(|&i| self.up & (1 << i) != 0)
    }

    fn aps(&self) -> impl Iterator<Item = usize> + '_ {
        self.online().filter(|&i| i > 0)
    }

    fn last_ap(&self) -> Option<usize> {
        self.aps().last()
    }
}

fn main(boot: &BootInfo) -> ! {
    let mut s = Suite::new("smp");
    let want = args::arg(boot.cmdline(), "cpus")
        .and_then(args::parse_u64)
        .unwrap_or(2);
    println!(
        "smp: cpus={want}; tsc: {} kHz ({:?})",
        time::tsc_khz(),
        time::tsc_source()
    );
    pc::pic_disable();
    apic::enable();
    for v in [PONG_VEC, TEST_VEC, IO_VEC] {
        idt::set_handler(v, counting);
    }
    idt::set_handler(PING_VEC, ping);
    idt::set_handler(NMI_VEC, nmi);

    let Some(mut cpus) = discover(&mut s, want) else {
        s.finish()
    };
    start_aps(&mut s, boot, &mut cpus);
    if cpus.aps().next().is_some() {
        ping_pong(&mut s, &cpus);
        stress(&mut s, &cpus);
        nmis(&mut s, &cpus);
    }
    logical_and_shorthands(&mut s, &cpus);
    if cpus.aps().next().is_some() {
        ioapic_to_aps(&mut s, &cpus);
        init_restart(&mut s, &cpus);
    }
    x2apic(&mut s, &cpus);
    let (stray, last) = idt::unexpected();
    let strangers = STRANGERS.load(SeqCst);
    s.check(
        "smp.no_stray_interrupts",
        stray == 0 && strangers == 0,
        format_args!("{stray} interrupts at vectors without a handler (last {last:#x}), {strangers} on a CPU not in the table"),
    );
    s.finish()
}

fn print_list(l: &CpuList) {
    let what = match l.source {
        Source::Madt => "MADT",
        Source::MpTable => "MP table",
    };
    println!(
        "smp: {what} at {:#x}: {} enabled CPUs, APIC IDs {:?}, IOAPIC ID {:?}",
        l.at,
        l.count(),
        l.ids(),
        l.ioapic_id
    );
}

/// The MP table lists the boot CPU and only CPUs of the MADT. It may list fewer:
/// SeaBIOS lists the first logical CPU of each package only (its mptable.c), so QEMU's
/// `-smp 2` (one package, two threads) gives one entry.
fn mp_table_vs_madt(s: &mut Suite, mp: &CpuList, madt: &CpuList) {
    let bsp = apic::id();
    let stray = mp.ids().iter().find(|id| !madt.ids().contains(id));
    s.check(
        "smp.mp_table_within_madt",
        mp.ids().contains(&bsp) && stray.is_none() && mp.distinct(),
        format_args!(
            "MP table {:?}, MADT {:?}, BSP {bsp}: want the BSP and MADT CPUs only, once each",
            mp.ids(),
            madt.ids()
        ),
    );
    if mp.count() != madt.count() {
        println!(
            "note: the MP table lists {} of the MADT's {} CPUs",
            mp.count(),
            madt.count()
        );
    }
}

/// The table's CPUs: their count, distinct IDs, the BSP among them, MADT and MP table
/// agreeing. `None` when no table lists any.
fn discover(s: &mut Suite, want: u64) -> Option<Cpus> {
    let mem = |a: u64, l: usize| phys::bytes(a, l as u64);
    let list = match cpu_list::from_madt(&mem) {
        Ok(l) => l,
        Err(why) => {
            println!("note: {why}; looking for the MP table");
            match cpu_list::from_mp_table(&mem) {
                Ok(l) => l,
                Err(mp) => {
                    s.check(
                        "smp.cpus_listed",
                        false,
                        format_args!("no MADT ({why}) and no MP table ({mp})"),
                    );
                    return None;
                }
            }
        }
    };
    print_list(&list);
    if list.source == Source::Madt {
        match cpu_list::from_mp_table(&mem) {
            Ok(mp) => {
                print_list(&mp);
                mp_table_vs_madt(s, &mp, &list);
            }
            Err(why) => println!("note: {why}: the MADT alone is checked"),
        }
    }
    s.check(
        "smp.cpu_count",
        list.count() as u64 == want,
        format_args!(
            "the table lists {} enabled CPUs, cpus={want} wants {want}",
            list.count()
        ),
    );
    s.check(
        "smp.apic_ids_distinct",
        list.distinct(),
        format_args!("APIC IDs {:?}", list.ids()),
    );
    let bsp = apic::id();
    s.check(
        "smp.bsp_listed",
        list.ids().contains(&bsp),
        format_args!("the BSP's APIC ID {bsp} is not among {:?}", list.ids()),
    );
    let mut cpus = Cpus {
        ids: [0; MAX_CPUS],
        n: 1,
        up: 1,
        page: None,
        table_at: 0,
    };
    cpus.ids[0] = bsp;
    for &id in list.ids().iter().filter(|&&id| id != bsp) {
        if cpus.n < MAX_CPUS {
            cpus.ids[cpus.n] = id;
            cpus.n += 1;
        }
    }
    smp::set_cpus(&cpus.ids[..cpus.n]);
    cpus.table_at = list.at;
    Some(cpus)
}

/// Starts every AP; checks they came online once each with the right IDs.
fn start_aps(s: &mut Suite, boot: &BootInfo, cpus: &mut Cpus) {
    if cpus.n == 1 {
        println!("smp: one CPU: no AP to start");
        check_ids(s, cpus, "smp.apic_ids_match");
        return;
    }
    cpus.page = smp::trampoline_page(boot, &[cpus.table_at]);
    let len = smp::trampoline_len();
    let Some(page) = cpus.page.filter(|_| len <= 4096) else {
        s.check(
            "smp.trampoline_page",
            false,
            format_args!("no free page below 0xA0000 in the memory map (trampoline {len} bytes)"),
        );
        return;
    };
    println!("smp: trampoline at {page:#x} ({len} bytes)");
    let mut failed = None;
    for i in 1..cpus.n {
        match smp::start_ap(i, page) {
            Ok(us) => {
                cpus.up |= 1 << i;
                println!(
                    "smp: cpu {i} (APIC ID {}) online {us} us after INIT",
                    cpus.ids[i]
                );
            }
            Err(why) => failed = failed.or(Some((i, why))),
        }
    }
    let (i, why) = failed.unwrap_or((0, ""));
    s.check(
        "smp.aps_online",
        failed.is_none(),
        format_args!("cpu {i} (APIC ID {}): {why}", cpus.ids[i]),
    );
    // A second STARTUP must not restart an AP that is already running.
    time::delay_us(10_000);
    let twice = cpus.aps().find(|&i| smp::starts(i) != 1);
    s.check(
        "smp.aps_started_once",
        twice.is_none(),
        format_args!(
            "cpu {} reported in {} times",
            twice.unwrap_or(0),
            twice.map_or(0, smp::starts)
        ),
    );
    check_ids(s, cpus, "smp.apic_ids_match");
}

/// Every online CPU's LAPIC ID register and CPUID initial APIC ID match its table entry.
fn check_ids(s: &mut Suite, cpus: &Cpus, name: &str) {
    let seen = |i: usize| {
        if i == 0 {
            (apic::id(), cpuid(1, 0)[1] >> 24)
        } else {
            smp::seen_ids(i).unwrap_or((u32::MAX, u32::MAX))
        }
    };
    let bad = cpus
        .online()
        .find(|&i| seen(i) != (cpus.ids[i], cpus.ids[i] & 0xff));
    let (lapic, initial) = bad.map_or((0, 0), seen);
    s.check(
        name,
        bad.is_none(),
        format_args!(
            "cpu {}: table APIC ID {}, LAPIC ID register {lapic}, CPUID initial APIC ID {initial}",
            bad.unwrap_or(0),
            bad.map_or(0, |i| cpus.ids[i])
        ),
    );
}

/// `n` pings to CPU `ap` (each sent by `send`), each answered by a pong before the next;
/// the TSC ticks they took, or how many were answered.
fn round_trips(n: u32, send: impl Fn()) -> Result<u64, u32> {
    HITS[0][slot(PONG_VEC)].store(0, SeqCst);
    let t0 = rdtsc();
    for i in 0..n {
        send();
        if !wait_on(ARRIVE_US, || hits(0, PONG_VEC) > i) {
            return Err(i);
        }
    }
    Ok(rdtsc() - t0)
}

fn ping_physical(ap: usize) -> impl Fn() {
    let id = smp::apic_id(ap).unwrap_or(0);
    move || apic::send_ipi(ICR_FIXED | u32::from(PING_VEC), id)
}

/// Fixed IPIs, physical destination, BSP <-> AP: every AP answers; the mean round trip
/// with CPU 1 is the figure.
fn ping_pong(s: &mut Suite, cpus: &Cpus) {
    reset_hits();
    let mut bad = None;
    for ap in cpus.aps() {
        if let Err(got) = round_trips(ROUND_TRIPS_EACH, ping_physical(ap)) {
            bad = bad.or(Some((ap, got)));
        }
    }
    let first = cpus.aps().next().unwrap_or(1);
    match round_trips(ROUND_TRIPS, ping_physical(first)) {
        Ok(ticks) => {
            println!(
                "smp: ipi round trip: {} ticks",
                ticks / u64::from(ROUND_TRIPS)
            );
            println!("smp: (mean of {ROUND_TRIPS} round trips between cpu 0 and cpu {first}: fixed IPI, physical destination, xAPIC)");
        }
        Err(got) => bad = bad.or(Some((first, got))),
    }
    let (ap, got) = bad.unwrap_or((0, 0));
    s.check(
        "smp.ipi_ping_pong",
        bad.is_none() && hits(0, PING_VEC) == 0,
        format_args!(
            "cpu {ap} answered {got} pings in a row, then nothing for {} ms; pings taken by the BSP: {}",
            ARRIVE_US / 1000,
            hits(0, PING_VEC)
        ),
    );
}

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

fn stress(s: &mut Suite, cpus: &Cpus) {
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

/// An NMI IPI to each AP: its NMI handler runs once, nobody else's.
fn nmis(s: &mut Suite, cpus: &Cpus) {
    let mut bad = None;
    for ap in cpus.aps() {
        reset_hits();
        apic::send_ipi(ICR_NMI | ICR_ASSERT, cpus.ids[ap]);
        let _ = wait_on(ARRIVE_US, || hits(ap, NMI_VEC) > 0);
        let _ = wait_on(SETTLE_US, || false);
        let others = cpus
            .online()
            .filter(|&i| i != ap && hits(i, NMI_VEC) != 0)
            .count();
        if hits(ap, NMI_VEC) != 1 || others != 0 {
            bad = bad.or(Some((ap, hits(ap, NMI_VEC), others)));
        }
    }
    let (ap, got, others) = bad.unwrap_or((0, 0, 0));
    s.check(
        "smp.nmi_ipi",
        bad.is_none(),
        format_args!(
            "NMI to cpu {ap}: its handler ran {got} times (want 1), {others} other CPUs took one"
        ),
    );
}

/// Flat logical model on the CPU running it: DFR flat, LDR bit = CPU index.
fn set_logical() {
    if let Some(i) = smp::this_cpu() {
        apic::write(DFR, 0xffff_ffff);
        apic::write(LDR, (1 << i) << 24);
    }
}

/// Sends one IPI with `send` and checks that exactly the CPUs of mask `want` took one
/// at TEST_VEC. Err names the first CPU that got the wrong number.
fn deliver(cpus: &Cpus, want: u32, send: impl Fn()) -> Result<(), (usize, u32)> {
    reset_hits();
    send();
    let wanted = |i: usize| want & (1 << i) != 0;
    let _ = wait_on(ARRIVE_US, || {
        cpus.online().all(|i| !wanted(i) || hits(i, TEST_VEC) > 0)
    });
    let _ = wait_on(SETTLE_US, || false);
    match cpus
        .online()
        .find(|&i| hits(i, TEST_VEC) != u32::from(wanted(i)))
    {
        Some(i) => Err((i, hits(i, TEST_VEC))),
        None => Ok(()),
    }
}

fn check_delivery(s: &mut Suite, name: &str, what: &str, want: u32, r: Result<(), (usize, u32)>) {
    let (cpu, got) = r.err().unwrap_or((0, 0));
    s.check(
        name,
        r.is_ok(),
        format_args!(
            "{what} (CPUs {want:#x}): cpu {cpu} took {got} (want {})",
            u32::from(want & (1 << cpu) != 0)
        ),
    );
}

/// Logical flat destinations, the three shorthands and lowest priority (xAPIC).
fn logical_and_shorthands(s: &mut Suite, cpus: &Cpus) {
    set_logical();
    let all_set = cpus.aps().all(|ap| smp::run_on(ap, set_logical, WORK_US));
    let online = cpus.up;
    // Odd CPU indices (the BSP alone on a 1-CPU machine).
    let subset = if online == 1 { 1 } else { online & 0xaa };
    let fixed = ICR_FIXED | u32::from(TEST_VEC);
    let r = deliver(cpus, subset, || apic::send_ipi(fixed | ICR_LOGICAL, subset));
    let r = r.and(if all_set { Ok(()) } else { Err((0, 0)) });
    check_delivery(
        s,
        "smp.logical_flat_subset",
        "flat logical destination (LDR bit = CPU index)",
        subset,
        r,
    );
    if online != 1 {
        let r = deliver(cpus, online & !1, || {
            apic::send_ipi(fixed | ICR_ALL_EXCLUDING_SELF, 0)
        });
        check_delivery(
            s,
            "smp.shorthand_all_excluding_self",
            "all excluding self",
            online & !1,
            r,
        );
    }
    let r = deliver(cpus, online, || {
        apic::send_ipi(fixed | ICR_ALL_INCLUDING_SELF, 0)
    });
    check_delivery(
        s,
        "smp.shorthand_all_including_self",
        "all including self",
        online,
        r,
    );
    let r = deliver(cpus, 1, || apic::send_ipi(fixed | ICR_SELF, 0));
    check_delivery(s, "smp.shorthand_self", "self", 1, r);
    lowest_priority(s, cpus);
}

/// Lowest priority to the logical set of every online CPU: each IPI reaches exactly one.
fn lowest_priority(s: &mut Suite, cpus: &Cpus) {
    reset_hits();
    let total = || cpus.online().map(|i| hits(i, TEST_VEC)).sum::<u32>();
    let mut sent = 0;
    for _ in 0..LOWEST_ROUNDS {
        apic::send_ipi(ICR_LOWEST | ICR_LOGICAL | u32::from(TEST_VEC), cpus.up);
        sent += 1;
        if !wait_on(ARRIVE_US, || total() >= sent) {
            break;
        }
        let _ = wait_on(SETTLE_US, || false);
    }
    let mut spread = [0u32; MAX_CPUS];
    for i in cpus.online() {
        spread[i] = hits(i, TEST_VEC);
    }
    println!(
        "smp: lowest priority to CPUs {:#x}: taken per CPU {:?}",
        cpus.up,
        &spread[..cpus.n]
    );
    s.check(
        "smp.lowest_priority_one_each",
        total() == LOWEST_ROUNDS && sent == LOWEST_ROUNDS,
        format_args!("{sent} sent, {} taken (want one each)", total()),
    );
}

/// The IOAPIC routes the PIT (pin 2, edge) to each AP by APIC ID: that AP takes the
/// ticks, the others and the BSP none.
fn ioapic_to_aps(s: &mut Suite, cpus: &Cpus) {
    let mut bad = None;
    for ap in cpus.aps() {
        reset_hits();
        apic::ioapic_route(2, IO_VEC, cpus.ids[ap], 0);
        pc::pit_program(0, 2, 1193);
        let got = wait_on(100_000, || hits(ap, IO_VEC) >= 3);
        apic::ioapic_mask(2);
        pc::pit_program(0, 0, 0xffff);
        let _ = wait_on(SETTLE_US, || false);
        let others: u32 = cpus
            .online()
            .filter(|&i| i != ap)
            .map(|i| hits(i, IO_VEC))
            .sum();
        if !got || others != 0 {
            bad = bad.or(Some((ap, hits(ap, IO_VEC), others)));
        }
    }
    let (ap, got, others) = bad.unwrap_or((0, 0, 0));
    s.check(
        "smp.ioapic_routes_to_ap",
        bad.is_none(),
        format_args!("pin 2 (PIT, 1 kHz) to cpu {ap}: it took {got} in 100 ms (want >= 3), the other CPUs {others} (want 0)"),
    );
}

/// INIT to a running AP stops it; STARTUP starts it again (it reports a second time,
/// with the right IDs, and answers pings).
fn init_restart(s: &mut Suite, cpus: &Cpus) {
    let (Some(ap), Some(page)) = (cpus.last_ap(), cpus.page) else {
        return;
    };
    let r = smp::start_ap(ap, page);
    let pinged = r.is_ok() && round_trips(ROUND_TRIPS_EACH, ping_physical(ap)).is_ok();
    s.check(
        "smp.init_restarts_ap",
        r.is_ok() && smp::starts(ap) == 2 && pinged,
        format_args!(
            "cpu {ap} after INIT, STARTUP: {:?}, reported in {} times in all (want 2), answers pings: {pinged}",
            r.map(|_| ()),
            smp::starts(ap)
        ),
    );
    check_ids(s, cpus, "smp.apic_ids_match_after_restart");
}

/// What each CPU read in x2APIC mode: its x2APIC ID and LDR.
static X2_ID: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
static X2_LDR: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// Switches the CPU running it to x2APIC mode (the runtime's mode flag is the BSP's to
/// set, once all have switched) and records its ID and LDR. The xAPIC LDR is cleared
/// first, so the x2APIC LDR can only come from the ID (the flat LDR the suite set, bit =
/// CPU index, equals it for APIC IDs below 8).
fn go_x2apic() {
    let Some(i) = smp::this_cpu() else { return };
    apic::mmio_write(LDR, 0);
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | (1 << 11) | (1 << 10));
    X2_ID[i].store(rdmsr(0x802) as u32, SeqCst);
    X2_LDR[i].store(rdmsr(0x80d) as u32, SeqCst);
}

/// The x2APIC LDR of APIC ID `id` (SDM Vol 3A 11.12.10.2).
fn x2_ldr(id: u32) -> u32 {
    ((id >> 4) << 16) | (1 << (id & 0xf))
}

/// x2APIC: every CPU switches; IDs and LDRs; ping-pong through MSR 0x830 with a 32-bit
/// physical destination; logical destinations; no delivery to ID + 0x100.
fn x2apic(s: &mut Suite, cpus: &Cpus) {
    if !apic::x2apic_advertised() {
        s.check_note(
            "smp.x2apic",
            true,
            format_args!("CPUID.1:ECX.x2APIC clear: not tested"),
            format_args!(""),
        );
        return;
    }
    let all = cpus.aps().all(|ap| smp::run_on(ap, go_x2apic, WORK_US));
    go_x2apic();
    apic::enable_x2apic();
    let bad = cpus.online().find(|&i| {
        X2_ID[i].load(SeqCst) != cpus.ids[i] || X2_LDR[i].load(SeqCst) != x2_ldr(cpus.ids[i])
    });
    let b = bad.unwrap_or(0);
    s.check(
        "smp.x2apic_ids",
        all && bad.is_none(),
        format_args!(
            "cpu {b}: x2APIC ID {:#x} (want {:#x}), LDR {:#x} (want {:#x}); all switched: {all}",
            X2_ID[b].load(SeqCst),
            cpus.ids[b],
            X2_LDR[b].load(SeqCst),
            x2_ldr(cpus.ids[b])
        ),
    );
    let Some(first) = cpus.aps().next() else {
        return;
    };
    reset_hits();
    match round_trips(ROUND_TRIPS, ping_physical(first)) {
        Ok(ticks) => println!(
            "smp: x2apic ipi round trip: {} ticks",
            ticks / u64::from(ROUND_TRIPS)
        ),
        Err(got) => println!("note: cpu {first} answered {got} x2APIC pings"),
    }
    let each = cpus
        .aps()
        .all(|ap| round_trips(ROUND_TRIPS_EACH, ping_physical(ap)).is_ok());
    s.check(
        "smp.x2apic_ping_pong",
        each && hits(0, PING_VEC) == 0 && hits(first, PING_VEC) >= ROUND_TRIPS,
        format_args!(
            "pings through MSR 0x830 went unanswered (or reached the BSP: {})",
            hits(0, PING_VEC)
        ),
    );
    let mut bad = None;
    for ap in cpus.aps() {
        let ldr = x2_ldr(cpus.ids[ap]);
        let r = deliver(cpus, 1 << ap, || {
            apic::send_ipi(ICR_FIXED | ICR_LOGICAL | u32::from(TEST_VEC), ldr)
        });
        bad = bad.or(r.err().map(|e| (1 << ap, e)));
    }
    let (want, r) = bad.map_or((0, Ok(())), |(w, e)| (w, Err(e)));
    check_delivery(
        s,
        "smp.x2apic_logical",
        "logical x2APIC destination (cluster << 16 | bit of the AP)",
        want,
        r,
    );
    let id = cpus.ids[first] | 0x100;
    let r = deliver(cpus, 0, || {
        apic::send_ipi(ICR_FIXED | u32::from(TEST_VEC), id)
    });
    check_delivery(
        s,
        "smp.x2apic_dest_32bit",
        "physical destination APIC ID + 0x100",
        0,
        r,
    );
}
