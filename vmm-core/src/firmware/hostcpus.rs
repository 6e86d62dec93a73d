//! The host's CPUs, as its firmware lists them: the ACPI MADT ([`super::madt`]) when the
//! boot loader handed over an RSDP, else the MP table ([`super::mpscan`]), else one CPU
//! (the boot CPU). Parsing only: [`discover`] reads physical memory through
//! [`PhysRead`], which the caller bounds, and never trusts a length or a pointer it has
//! not checked. A table that fails a checksum or runs past its own end is refused with a
//! one-line reason and the next source is tried.
//!
//! Specs: ACPI 6.5 (August 2022) 5.2.5 (RSDP), 5.2.7/5.2.8 (RSDT/XSDT), 5.2.12 (MADT);
//! Intel MultiProcessor Specification 1.4 (May 1997) 4.1-4.3 and 5 (default
//! configurations).

use arrayvec::ArrayVec;

/// Most host CPUs Janus takes; more are reported and left out.
pub const MAX_CPUS: usize = 64;

/// Reads host physical memory for the parsers.
pub trait PhysRead {
    /// Fills `out` from `addr`; `false` if any of it is out of reach.
    fn read(&self, addr: u64, out: &mut [u8]) -> bool;
}

/// One processor the firmware lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostCpu {
    pub apic_id: u32,
    /// Not enabled yet, but may be brought online (MADT flag Online Capable).
    pub online_capable: bool,
}

/// Where the CPU list came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Madt,
    MpTable,
    /// No table: the boot CPU alone.
    BootCpuOnly,
}

impl core::fmt::Display for Source {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Source::Madt => "the ACPI MADT",
            Source::MpTable => "the MP table",
            Source::BootCpuOnly => "no table (the boot CPU alone)",
        })
    }
}

/// The CPUs found, in table order, without duplicate APIC IDs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList {
    pub source: Source,
    pub cpus: ArrayVec<HostCpu, MAX_CPUS>,
    /// Listed but disabled (neither enabled nor online capable).
    pub disabled: usize,
    /// Enabled but beyond [`MAX_CPUS`].
    pub dropped: usize,
}

impl CpuList {
    pub fn new(source: Source) -> CpuList {
        CpuList {
            source,
            cpus: ArrayVec::new(),
            disabled: 0,
            dropped: 0,
        }
    }

    /// Adds a CPU unless its APIC ID is already listed.
    pub fn push(&mut self, cpu: HostCpu) {
        if self.cpus.iter().any(|c| c.apic_id == cpu.apic_id) {
            return;
        }
        if self.cpus.try_push(cpu).is_err() {
            self.dropped += 1;
        }
    }
}

/// What [`discover`] found, and why the sources it passed over were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    pub list: CpuList,
    pub refused: ArrayVec<&'static str, 2>,
}

/// Finds the CPUs: the MADT under `rsdp` (the RSDP's bytes, as a multiboot2 tag holds
/// them), else the MP table, else the boot CPU alone. The boot CPU (`boot_apic_id`) is
/// always in the list, first.
pub fn discover(mem: &dyn PhysRead, rsdp: Option<&[u8]>, boot_apic_id: u32) -> Discovery {
    let mut refused = ArrayVec::new();
    let acpi = rsdp.map(|r| super::madt::cpus_from_rsdp(mem, r));
    let list = match acpi {
        Some(Ok(list)) => list,
        other => {
            if let Some(Err(e)) = other {
                refused.push(e);
            }
            match super::mpscan::cpus_from_mp_table(mem) {
                Ok(list) => list,
                Err(e) => {
                    refused.push(e);
                    CpuList::new(Source::BootCpuOnly)
                }
            }
        }
    };
    Discovery {
        list: boot_first(list, boot_apic_id),
        refused,
    }
}

/// `list` with the boot CPU first (added if the table forgot it).
fn boot_first(list: CpuList, boot_apic_id: u32) -> CpuList {
    let mut out = CpuList {
        cpus: ArrayVec::new(),
        ..list.clone()
    };
    out.push(HostCpu {
        apic_id: boot_apic_id,
        online_capable: false,
    });
    for &c in &list.cpus {
        out.push(c);
    }
    out
}

/// Sums `len` bytes from `addr` in chunks (tables are read without a heap).
pub fn sum_at(mem: &dyn PhysRead, addr: u64, len: u64) -> Option<u8> {
    let mut sum = 0u8;
    let mut buf = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        if !mem.read(addr.checked_add(done)?, &mut buf[..n]) {
            return None;
        }
        sum = sum.wrapping_add(super::sum(&buf[..n]));
        done += n as u64;
    }
    Some(sum)
}

pub(crate) fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

pub(crate) fn u64_at(b: &[u8], o: usize) -> u64 {
    u32_at(b, o) as u64 | (u32_at(b, o + 4) as u64) << 32
}

/// Test support: host memory as a byte vector from address 0.
#[cfg(test)]
pub(crate) mod testing {
    extern crate std;
    use super::PhysRead;
    use crate::addr::GuestPhys;
    use crate::memory::GuestMemory;
    use std::vec;
    use std::vec::Vec;

    pub struct Bytes(pub Vec<u8>);

    impl PhysRead for Bytes {
        fn read(&self, addr: u64, out: &mut [u8]) -> bool {
            let Some(end) = (addr as usize).checked_add(out.len()) else {
                return false;
            };
            match self.0.get(addr as usize..end) {
                Some(s) => {
                    out.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
    }

    /// The first MiB of a guest's memory as a host would see it.
    pub fn from_guest(mem: &GuestMemory) -> Bytes {
        let mut v = vec![0u8; 1 << 20];
        mem.read(GuestPhys(0), &mut v).unwrap();
        Bytes(v)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{from_guest, Bytes};
    use super::*;
    use crate::addr::GuestPhys;
    use crate::firmware::{acpi, mptable};
    use crate::loader::e820::EBDA_START;
    use crate::memory::testing::ram;
    extern crate std;
    use std::vec;

    fn machine(cpus: u8, with_acpi: bool, with_mp: bool) -> (Bytes, [u8; 36]) {
        let mut mem = ram(1 << 20);
        if with_acpi {
            acpi::write(
                &mut mem,
                GuestPhys(acpi::RSDP_ADDR),
                cpus,
                cpus,
                0xFEC0_0000,
                acpi::PmPorts::PC,
            )
            .unwrap();
        }
        if with_mp {
            mptable::write(&mut mem, GuestPhys(EBDA_START), cpus, cpus, 0xFEC0_0000).unwrap();
        }
        let bytes = from_guest(&mem);
        let mut rsdp = [0u8; 36];
        rsdp.copy_from_slice(&bytes.0[acpi::RSDP_ADDR as usize..][..36]);
        (bytes, rsdp)
    }

    fn ids(d: &Discovery) -> vec::Vec<u32> {
        d.list.cpus.iter().map(|c| c.apic_id).collect()
    }

    #[test]
    fn madt_first_when_there_is_an_rsdp() {
        let (mem, rsdp) = machine(3, true, true);
        let d = discover(&mem, Some(&rsdp), 0);
        assert_eq!(d.list.source, Source::Madt);
        assert_eq!(ids(&d), [0, 1, 2]);
        assert!(d.refused.is_empty());
    }

    #[test]
    fn mp_table_without_an_rsdp() {
        let (mem, _) = machine(2, false, true);
        let d = discover(&mem, None, 0);
        assert_eq!(d.list.source, Source::MpTable);
        assert_eq!(ids(&d), [0, 1]);
    }

    #[test]
    fn a_bad_madt_falls_back_to_the_mp_table_with_its_reason() {
        let (mem, mut rsdp) = machine(2, true, true);
        rsdp[8] ^= 1; // RSDP checksum
        let d = discover(&mem, Some(&rsdp), 0);
        assert_eq!(d.list.source, Source::MpTable);
        assert_eq!(d.refused.len(), 1);
        assert!(d.refused[0].contains("checksum"), "{}", d.refused[0]);
    }

    #[test]
    fn nothing_at_all_is_the_boot_cpu_alone() {
        let (mem, _) = machine(2, false, false);
        let d = discover(&mem, None, 5);
        assert_eq!(d.list.source, Source::BootCpuOnly);
        assert_eq!(ids(&d), [5]);
        assert_eq!(d.refused.len(), 1);
    }

    #[test]
    fn the_boot_cpu_comes_first_and_is_never_listed_twice() {
        let (mem, rsdp) = machine(3, true, false);
        let d = discover(&mem, Some(&rsdp), 2);
        assert_eq!(ids(&d), [2, 0, 1]);
    }

    #[test]
    fn more_than_max_cpus_are_counted_as_dropped() {
        let mut l = CpuList::new(Source::Madt);
        for id in 0..MAX_CPUS as u32 + 3 {
            l.push(HostCpu {
                apic_id: id,
                online_capable: false,
            });
        }
        assert_eq!(l.cpus.len(), MAX_CPUS);
        assert_eq!(l.dropped, 3);
    }

    #[test]
    fn sum_at_reads_in_chunks_and_refuses_what_is_out_of_reach() {
        let mem = Bytes((0..=255u8).cycle().take(1000).collect());
        let whole = crate::firmware::sum(&mem.0);
        assert_eq!(sum_at(&mem, 0, 1000), Some(whole));
        assert_eq!(sum_at(&mem, 900, 101), None);
        assert_eq!(sum_at(&mem, u64::MAX, 2), None);
    }
}
