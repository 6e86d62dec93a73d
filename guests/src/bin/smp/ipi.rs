//! The smp suite's IPIs in xAPIC mode (SDM Vol 3A 11.6): fixed physical ping-pong, NMI,
//! flat logical destinations, the shorthands, lowest priority; and the IOAPIC routing a
//! pin to each AP (82093AA datasheet 3.2.4).

use super::{hits, reset_hits, slot, wait_on, Cpus, HITS};
use super::{ARRIVE_US, LOWEST_ROUNDS, ROUND_TRIPS, ROUND_TRIPS_EACH, SETTLE_US, WORK_US};
use super::{IO_VEC, NMI_VEC, PING_VEC, PONG_VEC, TEST_VEC};
use core::sync::atomic::Ordering::SeqCst;
use janus_guests::rt::apic::{self, DFR, LDR};
use janus_guests::rt::apic::{ICR_ALL_EXCLUDING_SELF, ICR_ALL_INCLUDING_SELF, ICR_SELF};
use janus_guests::rt::apic::{ICR_ASSERT, ICR_FIXED, ICR_LOGICAL, ICR_LOWEST, ICR_NMI};
use janus_guests::rt::pc;
use janus_guests::rt::smp::{self, MAX_CPUS};
use janus_guests::rt::x86::rdtsc;
use janus_guests::{println, Suite};

/// `n` pings to CPU `ap` (each sent by `send`), each answered by a pong before the next;
/// the TSC ticks they took, or how many were answered.
pub(super) fn round_trips(n: u32, send: impl Fn()) -> Result<u64, u32> {
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

pub(super) fn ping_physical(ap: usize) -> impl Fn() {
    let id = smp::apic_id(ap).unwrap_or(0);
    move || apic::send_ipi(ICR_FIXED | u32::from(PING_VEC), id)
}

/// Fixed IPIs, physical destination, BSP <-> AP: every AP answers; the mean round trip
/// with CPU 1 is the figure.
pub(super) fn ping_pong(s: &mut Suite, cpus: &Cpus) {
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

/// An NMI IPI to each AP: its NMI handler runs once, nobody else's.
pub(super) fn nmis(s: &mut Suite, cpus: &Cpus) {
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
pub(super) fn deliver(cpus: &Cpus, want: u32, send: impl Fn()) -> Result<(), (usize, u32)> {
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

pub(super) fn check_delivery(
    s: &mut Suite,
    name: &str,
    what: &str,
    want: u32,
    r: Result<(), (usize, u32)>,
) {
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
pub(super) fn logical_and_shorthands(s: &mut Suite, cpus: &Cpus) {
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
pub(super) fn ioapic_to_aps(s: &mut Suite, cpus: &Cpus) {
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
