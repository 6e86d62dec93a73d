//! The host's processors from its MP table, for machines whose loader gave no RSDP.
//! Parsing only, for [`super::hostcpus::discover`].
//!
//! Spec: Intel MultiProcessor Specification 1.4 (May 1997): 4 (where the floating pointer
//! lies: the first KiB of the EBDA, whose segment is the word at 0x40E; else the last KiB
//! of base memory, whose size in KiB is the word at 0x413; else the BIOS ROM
//! 0xF0000-0xFFFFF; on 16-byte boundaries), 4.1 (the floating pointer `_MP_`: table
//! address at 4, length in paragraphs at 8, checksum over it; a nonzero feature byte 1
//! means a default configuration and no table), 4.2 (the `PCMP` header, 44 bytes, whose
//! base table sums to 0; entry count at 34), 4.3 (entries: processor 20 bytes with flags
//! bit 0 EN; bus, I/O APIC, I/O and local interrupt assignments 8 bytes) and 5 (the
//! default configurations have two processors, APIC IDs 0 and 1).

use super::hostcpus::{sum_at, u16_at, u32_at, CpuList, HostCpu, PhysRead, Source};
use core::ops::Range;

const FLOATING: &[u8; 4] = b"_MP_";
const TABLE: &[u8; 4] = b"PCMP";
const HEADER: u64 = 44;
const PROCESSOR: u8 = 0;
const CPU_ENABLED: u8 = 1 << 0;

/// The CPUs of the MP table, if one is found.
pub fn cpus_from_mp_table(mem: &dyn PhysRead) -> Result<CpuList, &'static str> {
    let fp = find_floating(mem).ok_or("no ACPI RSDP and no MP table: one CPU")?;
    let mut f = [0u8; 16];
    if !mem.read(fp, &mut f) {
        return Err("MP: the floating pointer is out of reach");
    }
    if f[11] != 0 {
        // A default configuration: two processors, APIC IDs 0 and 1 (spec 5).
        let mut list = CpuList::new(Source::MpTable);
        for apic_id in 0..2 {
            list.push(HostCpu {
                apic_id,
                online_capable: false,
            });
        }
        return Ok(list);
    }
    table_cpus(mem, u32_at(&f, 4) as u64)
}

/// Where to look, in the spec's order.
fn areas(mem: &dyn PhysRead) -> [Range<u64>; 3] {
    let word = |at: u64| {
        let mut b = [0u8; 2];
        mem.read(at, &mut b).then(|| u16_at(&b, 0) as u64)
    };
    let ebda = word(0x40E).map(|seg| seg << 4).filter(|&a| a >= 0x400);
    let first = match ebda {
        Some(a) => a..a + 1024,
        None => {
            let kib = word(0x413).unwrap_or(640).clamp(1, 640);
            (kib - 1) * 1024..kib * 1024
        }
    };
    [first, 0x9_FC00..0xA_0000, 0xF_0000..0x10_0000]
}

/// The address of a floating pointer with a good signature, length and checksum.
fn find_floating(mem: &dyn PhysRead) -> Option<u64> {
    for area in areas(mem) {
        for at in area.step_by(16) {
            let mut f = [0u8; 16];
            if mem.read(at, &mut f) && &f[..4] == FLOATING && f[8] == 1 && super::sum(&f) == 0 {
                return Some(at);
            }
        }
    }
    None
}

/// The processors of the configuration table at `at`.
fn table_cpus(mem: &dyn PhysRead, at: u64) -> Result<CpuList, &'static str> {
    let mut h = [0u8; HEADER as usize];
    if at == 0 || !mem.read(at, &mut h) {
        return Err("MP: the configuration table is out of reach");
    }
    if &h[..4] != TABLE {
        return Err("MP: the configuration table has no `PCMP` signature");
    }
    let len = u16_at(&h, 4) as u64;
    if len < HEADER {
        return Err("MP: the configuration table is shorter than its header");
    }
    if sum_at(mem, at, len) != Some(0) {
        return Err("MP: the configuration table checksum is wrong");
    }
    let mut list = CpuList::new(Source::MpTable);
    let mut o = HEADER;
    for _ in 0..u16_at(&h, 34) {
        let mut e = [0u8; 20];
        let size = match mem.read(at + o, &mut e[..1]).then_some(e[0]) {
            Some(PROCESSOR) => 20,
            Some(1..=4) => 8,
            _ => return Err("MP: an entry of unknown type"),
        };
        if o + size > len || !mem.read(at + o, &mut e[..size as usize]) {
            return Err("MP: an entry runs past the table's end");
        }
        if e[0] == PROCESSOR {
            if e[3] & CPU_ENABLED != 0 {
                list.push(HostCpu {
                    apic_id: e[1] as u32,
                    online_capable: false,
                });
            } else {
                list.disabled += 1;
            }
        }
        o += size;
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::super::hostcpus::testing::{from_guest, Bytes};
    use super::*;
    use crate::addr::GuestPhys;
    use crate::firmware::mptable;
    use crate::memory::testing::ram;
    extern crate std;
    use std::vec::Vec;

    fn machine(cpus: u8, at: u64) -> Bytes {
        let mut mem = ram(1 << 20);
        mptable::write(&mut mem, GuestPhys(at), cpus, cpus, 0xFEC0_0000).unwrap();
        from_guest(&mem)
    }

    fn ids(l: &CpuList) -> Vec<u32> {
        l.cpus.iter().map(|c| c.apic_id).collect()
    }

    fn fix_table_checksum(m: &mut Bytes, table: usize) {
        let len = u16_at(&m.0, table + 4) as usize;
        m.0[table + 7] = 0;
        m.0[table + 7] = crate::firmware::checksum(&m.0[table..table + len]);
    }

    #[test]
    fn found_in_the_last_kib_of_base_memory_and_in_the_bios_rom() {
        for at in [0x9_FC00, 0xF_8000] {
            let l = cpus_from_mp_table(&machine(3, at)).unwrap();
            assert_eq!(l.source, Source::MpTable);
            assert_eq!(ids(&l), [0, 1, 2], "at {at:#x}");
        }
    }

    #[test]
    fn found_in_the_ebda_the_bda_points_at() {
        let mut m = machine(2, 0x8_0000);
        assert!(cpus_from_mp_table(&m).is_err(), "not in any area yet");
        m.0[0x40E..0x410].copy_from_slice(&0x8000u16.to_le_bytes());
        assert_eq!(ids(&cpus_from_mp_table(&m).unwrap()), [0, 1]);
    }

    #[test]
    fn a_pointer_with_a_bad_checksum_is_not_taken() {
        let mut m = machine(2, 0x9_FC00);
        m.0[0x9_FC00 + 10] ^= 1;
        assert!(cpus_from_mp_table(&m).unwrap_err().contains("no MP table"));
    }

    #[test]
    fn a_table_with_a_bad_checksum_is_refused() {
        let mut m = machine(2, 0x9_FC00);
        m.0[0x9_FC10 + 50] ^= 1;
        assert!(cpus_from_mp_table(&m).unwrap_err().contains("checksum"));
    }

    #[test]
    fn disabled_processors_and_bad_entries() {
        let mut m = machine(2, 0x9_FC00);
        let table = 0x9_FC10;
        let p1 = table + 44 + 20;
        m.0[p1 + 3] &= !CPU_ENABLED;
        fix_table_checksum(&mut m, table);
        let l = cpus_from_mp_table(&m).unwrap();
        assert_eq!((ids(&l), l.disabled), (std::vec![0], 1));
        m.0[p1] = 9;
        fix_table_checksum(&mut m, table);
        assert!(cpus_from_mp_table(&m).unwrap_err().contains("unknown type"));
        m.0[p1] = PROCESSOR;
        m.0[table + 34] += 40; // more entries than the length holds
        fix_table_checksum(&mut m, table);
        assert!(cpus_from_mp_table(&m)
            .unwrap_err()
            .contains("past the table's end"));
    }

    #[test]
    fn a_default_configuration_has_two_cpus() {
        let mut m = machine(1, 0x9_FC00);
        m.0[0x9_FC00 + 11] = 5;
        m.0[0x9_FC00 + 10] = m.0[0x9_FC00 + 10].wrapping_sub(5);
        assert_eq!(ids(&cpus_from_mp_table(&m).unwrap()), [0, 1]);
    }
}
