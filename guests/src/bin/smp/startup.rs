//! The smp suite's CPUs: the table's list (MADT, else MP table) and its checks, AP
//! start-up with INIT-SIPI-SIPI (rt/smp.rs; SDM Vol 3A 9.4.4, MP spec 1.4 B.4), the IDs
//! each CPU reports, and INIT to a running AP restarting it.

use super::ipi::{ping_physical, round_trips};
use super::{Cpus, ROUND_TRIPS_EACH};
use janus_guests::rt::cpu_list::{self, CpuList, Source};
use janus_guests::rt::smp::{self, MAX_CPUS};
use janus_guests::rt::{apic, phys, time};
use janus_guests::{cpuid, println, BootInfo, Suite};

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
pub(super) fn discover(s: &mut Suite, want: u64) -> Option<Cpus> {
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
pub(super) fn start_aps(s: &mut Suite, boot: &BootInfo, cpus: &mut Cpus) {
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
pub(super) fn check_ids(s: &mut Suite, cpus: &Cpus, name: &str) {
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

/// INIT to a running AP stops it; STARTUP starts it again (it reports a second time,
/// with the right IDs, and answers pings).
pub(super) fn init_restart(s: &mut Suite, cpus: &Cpus) {
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
