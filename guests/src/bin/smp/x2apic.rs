//! The smp suite in x2APIC mode (SDM Vol 3A 11.12): every CPU switches; IDs and derived
//! LDRs (11.12.10.2); IPIs through the ICR MSR 0x830 (11.12.9) with physical and logical
//! destinations.

use super::ipi::{check_delivery, deliver, ping_physical, round_trips};
use super::{hits, reset_hits, Cpus, PING_VEC, ROUND_TRIPS, ROUND_TRIPS_EACH, TEST_VEC, WORK_US};
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use janus_guests::rt::apic::{self, ICR_FIXED, ICR_LOGICAL, LDR};
use janus_guests::rt::smp::{self, MAX_CPUS};
use janus_guests::rt::x86::{wrmsr, MSR_APIC_BASE};
use janus_guests::{println, rdmsr, Suite};

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
pub(super) fn x2apic(s: &mut Suite, cpus: &Cpus) {
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
