//! The CPUs the firmware lists, as a PC OS finds them (pure code: the host tests of
//! `janus-ci` compile it too):
//! - the ACPI MADT (ACPI 6.5: 5.2.5 RSDP and 5.2.5.1 where to find it, 5.2.6 the table
//!   header and checksum, 5.2.7 RSDT, 5.2.8 XSDT, 5.2.12 MADT with 5.2.12.2 Processor
//!   Local APIC, 5.2.12.3 I/O APIC and 5.2.12.12 Processor Local x2APIC entries);
//! - the MP table (Intel MultiProcessor Specification 1.4: 4 where to find the floating
//!   pointer, 4.1 the floating pointer, 4.2 the configuration table header, 4.3.1
//!   processor and 4.3.3 I/O APIC entries).
//!
//! Both are looked for in the first KiB of the EBDA (segment at 0x40E), the last KiB of
//! base memory (KiB count at 0x413; 640 when 0) and 0xE0000-0xFFFFF. Memory is read through a
//! [`Mem`] closure so the tests can hand in a fake machine.

use super::bytes::u32_at;

/// Reads `len` bytes of physical memory at an address, or `None` when unreadable.
pub type Mem<'a> = &'a dyn Fn(u64, usize) -> Option<&'a [u8]>;

/// The most CPUs a list holds (more are ignored and counted in `dropped`).
pub const MAX: usize = 32;

/// Which table a list came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Madt,
    MpTable,
}

/// The enabled CPUs of one table, in table order (the boot CPU is not marked: an OS
/// finds it by reading its own APIC ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuList {
    pub source: Source,
    /// The table's physical address (the MADT, or the MP configuration table).
    pub at: u64,
    /// The first I/O APIC's ID, if the table lists one.
    pub ioapic_id: Option<u32>,
    /// Enabled CPUs beyond [`MAX`].
    pub dropped: usize,
    ids: [u32; MAX],
    len: usize,
}

impl CpuList {
    fn new(source: Source, at: u64) -> CpuList {
        CpuList {
            source,
            at,
            ioapic_id: None,
            dropped: 0,
            ids: [0; MAX],
            len: 0,
        }
    }

    fn push(&mut self, id: u32) {
        match self.ids.get_mut(self.len) {
            Some(slot) => {
                *slot = id;
                self.len += 1;
            }
            None => self.dropped += 1,
        }
    }

    /// The APIC IDs of the enabled CPUs.
    pub fn ids(&self) -> &[u32] {
        &self.ids[..self.len]
    }

    /// Enabled CPUs listed (including those beyond [`MAX`]).
    pub fn count(&self) -> usize {
        self.len + self.dropped
    }

    /// Whether no APIC ID appears twice.
    pub fn distinct(&self) -> bool {
        let ids = self.ids();
        ids.iter()
            .enumerate()
            .all(|(i, a)| !ids[i + 1..].contains(a))
    }
}

/// Whether the bytes sum to 0 mod 256 (every ACPI and MP structure's checksum rule).
pub fn sums_to_zero(b: &[u8]) -> bool {
    b.iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([
        b.get(at).copied().unwrap_or(0),
        b.get(at + 1).copied().unwrap_or(0),
    ])
}

/// The areas a PC BIOS leaves its tables in: the EBDA's first KiB, the last KiB of base
/// memory, 0xE0000-0xFFFFF.
pub fn search_areas(mem: Mem) -> [(u64, usize); 3] {
    let bda = mem(0x400, 0x20);
    let ebda = bda.map_or(0, |b| u64::from(u16_at(b, 0x0e)) << 4);
    // A BDA without the base memory size (a loader that wrote none): 640 KiB.
    let base_kib = bda
        .map(|b| u64::from(u16_at(b, 0x13)))
        .filter(|&k| k != 0)
        .unwrap_or(640);
    let last_kib = base_kib.min(640) * 1024 - 1024;
    [(ebda, 1024), (last_kib, 1024), (0xe_0000, 0x2_0000)]
}

/// The first 16-byte aligned address in the search areas holding `sig` where
/// `valid(addr)` holds.
fn scan(mem: Mem, sig: &[u8], valid: impl Fn(u64) -> bool) -> Option<u64> {
    search_areas(mem)
        .into_iter()
        .filter(|&(base, _)| base != 0)
        .find_map(|(base, len)| {
            let area = mem(base, len)?;
            (0..len.saturating_sub(sig.len() - 1))
                .step_by(16)
                .map(|off| (off, base + off as u64))
                .find(|&(off, addr)| area[off..].starts_with(sig) && valid(addr))
                .map(|(_, addr)| addr)
        })
}

/// The RSDP: "RSD PTR " whose first 20 bytes sum to 0.
pub fn rsdp(mem: Mem) -> Option<u64> {
    scan(mem, b"RSD PTR ", |a| mem(a, 20).is_some_and(sums_to_zero))
}

/// The ACPI table at `addr` if its signature is `sig` and its checksum holds.
pub fn acpi_table<'a>(mem: Mem<'a>, addr: u64, sig: &[u8; 4]) -> Option<&'a [u8]> {
    let head = mem(addr, 36)?;
    let len = u32_at(head, 4) as usize;
    if !head.starts_with(sig) || len < 36 {
        return None;
    }
    mem(addr, len).filter(|t| sums_to_zero(t))
}

/// The address of the table `sig` that the RSDP's XSDT (revision 2 and later, when
/// valid) or else its RSDT points at.
pub fn find_acpi(mem: Mem, rsdp: u64, sig: &[u8; 4]) -> Option<u64> {
    let r = mem(rsdp, 20)?;
    let xsdt = (r[15] >= 2)
        .then(|| mem(rsdp, 36))
        .flatten()
        .map(|r| u64::from(u32_at(r, 24)) | (u64::from(u32_at(r, 28)) << 32))
        .and_then(|a| Some((a, acpi_table(mem, a, b"XSDT")?)));
    let rsdt = || {
        let a = u64::from(u32_at(r, 16));
        Some((a, acpi_table(mem, a, b"RSDT")?))
    };
    let (_, root) = xsdt.or_else(rsdt)?;
    let width = if root.starts_with(b"XSDT") { 8 } else { 4 };
    root[36..]
        .chunks_exact(width)
        .map(|e| {
            let lo = u64::from(u32_at(e, 0));
            if width == 8 {
                lo | (u64::from(u32_at(e, 4)) << 32)
            } else {
                lo
            }
        })
        .find(|&a| acpi_table(mem, a, sig).is_some())
}

/// The enabled CPUs of a MADT (its bytes, checksum already checked).
pub fn madt_cpus(madt: &[u8], at: u64) -> CpuList {
    let mut list = CpuList::new(Source::Madt, at);
    let mut off = 44;
    while let (Some(&kind), Some(&len)) = (madt.get(off), madt.get(off + 1)) {
        let e = match madt.get(off..off + len as usize) {
            Some(e) if len >= 2 => e,
            _ => break,
        };
        match (kind, len) {
            (0, 8) if u32_at(e, 4) & 1 != 0 => list.push(u32::from(e[3])),
            (1, 12) if list.ioapic_id.is_none() => list.ioapic_id = Some(u32::from(e[2])),
            (9, 16) if u32_at(e, 8) & 1 != 0 => list.push(u32_at(e, 4)),
            _ => {}
        }
        off += len as usize;
    }
    list
}

/// The CPUs of the MADT the RSDP leads to.
pub fn from_madt(mem: Mem) -> Result<CpuList, &'static str> {
    let rsdp = rsdp(mem).ok_or("no RSDP with a valid checksum")?;
    let at = find_acpi(mem, rsdp, b"APIC").ok_or("no MADT (APIC) in the RSDT/XSDT")?;
    let madt = acpi_table(mem, at, b"APIC").ok_or("the MADT went away")?;
    Ok(madt_cpus(madt, at))
}

/// The MP floating pointer: "_MP_", 16 bytes * its length field summing to 0.
pub fn mp_floating(mem: Mem) -> Option<u64> {
    scan(mem, b"_MP_", |a| {
        mem(a, 16)
            .map(|h| usize::from(h[8]) * 16)
            .and_then(|len| mem(a, len.max(16)))
            .is_some_and(sums_to_zero)
    })
}

/// The enabled CPUs of an MP configuration table (its base table bytes, checksum
/// already checked).
pub fn mp_cpus(table: &[u8], at: u64) -> CpuList {
    let mut list = CpuList::new(Source::MpTable, at);
    let count = u16_at(table, 34);
    let mut off = 44;
    for _ in 0..count {
        let Some(&kind) = table.get(off) else { break };
        let len = if kind == 0 { 20 } else { 8 };
        let Some(e) = table.get(off..off + len) else {
            break;
        };
        match kind {
            0 if e[3] & 1 != 0 => list.push(u32::from(e[1])),
            2 if list.ioapic_id.is_none() && e[3] & 1 != 0 => {
                list.ioapic_id = Some(u32::from(e[1]))
            }
            0..=4 => {}
            _ => break,
        }
        off += len;
    }
    list
}

/// The CPUs of the MP table the floating pointer leads to.
pub fn from_mp_table(mem: Mem) -> Result<CpuList, &'static str> {
    let fp = mp_floating(mem).ok_or("no MP floating pointer with a valid checksum")?;
    let at = u64::from(mem(fp, 16).map_or(0, |h| u32_at(h, 4)));
    if at == 0 {
        return Err("the MP floating pointer names a default configuration, no table");
    }
    let head = mem(at, 44).ok_or("the MP configuration table is not readable")?;
    let len = usize::from(u16_at(head, 4));
    let table = mem(at, len.max(44)).ok_or("the MP configuration table is not readable")?;
    if !table.starts_with(b"PCMP") || !sums_to_zero(table) {
        return Err("bad MP configuration table (signature or checksum)");
    }
    Ok(mp_cpus(table, at))
}

/// The CPUs as an OS finds them: the MADT, else the MP table.
pub fn find(mem: Mem) -> Result<CpuList, &'static str> {
    from_madt(mem).or_else(|_| from_mp_table(mem))
}
