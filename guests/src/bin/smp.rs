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

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use janus_guests::rt::apic::{self, ICR_FIXED};
use janus_guests::rt::idt::{self, Frame};
use janus_guests::rt::smp::{self, MAX_CPUS};
use janus_guests::rt::x86;
use janus_guests::rt::{args, pc, time};
use janus_guests::{entry, println, BootInfo, Suite};

#[path = "smp/ipi.rs"]
mod ipi;
#[path = "smp/memory.rs"]
mod memory;
#[path = "smp/startup.rs"]
mod startup;
#[path = "smp/x2apic.rs"]
mod x2apic;

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

    let Some(mut cpus) = startup::discover(&mut s, want) else {
        s.finish()
    };
    startup::start_aps(&mut s, boot, &mut cpus);
    if cpus.aps().next().is_some() {
        ipi::ping_pong(&mut s, &cpus);
        memory::stress(&mut s, &cpus);
        ipi::nmis(&mut s, &cpus);
    }
    ipi::logical_and_shorthands(&mut s, &cpus);
    if cpus.aps().next().is_some() {
        ipi::ioapic_to_aps(&mut s, &cpus);
        startup::init_restart(&mut s, &cpus);
    }
    x2apic::x2apic(&mut s, &cpus);
    let (stray, last) = idt::unexpected();
    let strangers = STRANGERS.load(SeqCst);
    s.check(
        "smp.no_stray_interrupts",
        stray == 0 && strangers == 0,
        format_args!("{stray} interrupts at vectors without a handler (last {last:#x}), {strangers} on a CPU not in the table"),
    );
    s.finish()
}
