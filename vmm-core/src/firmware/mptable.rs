//! An MP table for the guest, so that a kernel without ACPI finds its CPUs, its IOAPIC
//! and how the ISA interrupts are wired.
//!
//! Spec: Intel MultiProcessor Specification, version 1.4 (May 1997): chapter 4.1 (the MP
//! floating pointer structure, "_MP_"), 4.2 (the configuration table header, "PCMP") and
//! 4.3 (base table entries: processor, bus, I/O APIC, I/O interrupt assignment, local
//! interrupt assignment), with checksums that make each structure's bytes sum to 0. Where
//! an OS looks for it: spec 4 (first KiB of the EBDA, last KiB of base memory, or the
//! BIOS ROM 0xF0000-0xFFFFF); Linux also scans 639 KiB..640 KiB, which is where the
//! caller usually puts it ([`crate::loader::e820::EBDA_START`]).
//!
//! The system described is a PC in virtual-wire mode (IMCR absent): CPUs with APIC ids
//! 0..cpus (CPU 0 the bootstrap processor), one ISA bus, one IOAPIC; ISA IRQ 0 goes to
//! IOAPIC pin 2 (the PC convention, which makes the OS see the usual IRQ0 override) and
//! the 8259's ExtINT to pin 0; IRQs 1 and 3-15 go to the pins of the same number, with
//! the ISA bus's polarity and trigger (active high, edge). The local APICs get ExtINT on
//! LINT0 and NMI on LINT1.

use super::{as_bytes, checksum};
use crate::addr::GuestPhys;
use crate::memory::{GuestMemory, MemError};

pub const FLOATING_SIGNATURE: &[u8; 4] = b"_MP_";
pub const TABLE_SIGNATURE: &[u8; 4] = b"PCMP";
pub const SPEC_REV: u8 = 4;
pub const OEM_ID: &[u8; 8] = b"JANUS   ";
pub const PRODUCT_ID: &[u8; 12] = b"JANUS VM    ";
pub const LAPIC_ADDR: u32 = 0xFEE0_0000;
/// Local APIC version of an integrated (xAPIC) APIC.
pub const LAPIC_VERSION: u8 = 0x14;
/// 82093AA-style IOAPIC version.
pub const IOAPIC_VERSION: u8 = 0x11;
/// CPU signature in the processor entries (family 6, model 0, stepping 0) and their
/// feature flags (CPUID.1:EDX FPU | APIC): informational only.
pub const CPU_SIGNATURE: u32 = 0x0600;
pub const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);
/// The bus type of bus 0 (spec table 4-8).
pub const BUS_ISA: &[u8; 6] = b"ISA   ";

/// Entry types (spec table 4-3).
pub mod entry {
    pub const PROCESSOR: u8 = 0;
    pub const BUS: u8 = 1;
    pub const IOAPIC: u8 = 2;
    pub const IO_INTERRUPT: u8 = 3;
    pub const LOCAL_INTERRUPT: u8 = 4;
}

/// Interrupt types of I/O and local interrupt entries (spec table 4-11).
pub mod int_type {
    pub const INT: u8 = 0;
    pub const NMI: u8 = 1;
    pub const SMI: u8 = 2;
    pub const EXTINT: u8 = 3;
}

/// Processor entry flags (spec table 4-5).
pub const CPU_ENABLED: u8 = 1 << 0;
pub const CPU_BSP: u8 = 1 << 1;
/// IOAPIC entry flag (spec table 4-9).
pub const IOAPIC_ENABLED: u8 = 1 << 0;
/// Feature byte 2, bit 7: IMCR present (PIC mode). Clear: virtual-wire mode.
pub const FEATURE2_IMCRP: u8 = 1 << 7;

/// The MP floating pointer structure (spec 4.1).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct FloatingPointer {
    pub signature: [u8; 4],
    pub table_addr: u32,
    /// In 16-byte units: 1.
    pub length: u8,
    pub spec_rev: u8,
    pub checksum: u8,
    /// 0: a configuration table is present (no default configuration).
    pub feature1: u8,
    pub feature2: u8,
    pub feature3_5: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<FloatingPointer>() == 16);
const _: () = assert!(core::mem::offset_of!(FloatingPointer, checksum) == 10);
const _: () = assert!(core::mem::offset_of!(FloatingPointer, feature2) == 12);

/// The MP configuration table header (spec 4.2).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct TableHeader {
    pub signature: [u8; 4],
    /// Header plus base entries, in bytes.
    pub base_length: u16,
    pub spec_rev: u8,
    pub checksum: u8,
    pub oem_id: [u8; 8],
    pub product_id: [u8; 12],
    pub oem_table: u32,
    pub oem_table_size: u16,
    pub entry_count: u16,
    pub lapic_addr: u32,
    pub ext_length: u16,
    pub ext_checksum: u8,
    pub reserved: u8,
}

const _: () = assert!(core::mem::size_of::<TableHeader>() == 44);
const _: () = assert!(core::mem::offset_of!(TableHeader, checksum) == 7);
const _: () = assert!(core::mem::offset_of!(TableHeader, entry_count) == 34);
const _: () = assert!(core::mem::offset_of!(TableHeader, lapic_addr) == 36);

/// A processor entry (spec 4.3.1), 20 bytes.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct ProcessorEntry {
    pub kind: u8,
    pub apic_id: u8,
    pub apic_version: u8,
    pub flags: u8,
    pub signature: u32,
    pub features: u32,
    pub reserved: [u32; 2],
}

const _: () = assert!(core::mem::size_of::<ProcessorEntry>() == 20);

/// A bus entry (spec 4.3.2), 8 bytes.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct BusEntry {
    pub kind: u8,
    pub bus_id: u8,
    pub bus_type: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<BusEntry>() == 8);

/// An I/O APIC entry (spec 4.3.3), 8 bytes.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct IoApicEntry {
    pub kind: u8,
    pub id: u8,
    pub version: u8,
    pub flags: u8,
    pub addr: u32,
}

const _: () = assert!(core::mem::size_of::<IoApicEntry>() == 8);

/// An I/O or local interrupt assignment entry (spec 4.3.4, 4.3.5), 8 bytes. `flags`
/// holds polarity (bits 1:0) and trigger mode (bits 3:2); 0 = conforms to the bus. For a
/// local interrupt, `dest_id` is a local APIC id (0xFF: all) and `dest_pin` a LINTIN#.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct InterruptEntry {
    pub kind: u8,
    pub int_type: u8,
    pub flags: u16,
    pub src_bus: u8,
    pub src_irq: u8,
    pub dest_id: u8,
    pub dest_pin: u8,
}

const _: () = assert!(core::mem::size_of::<InterruptEntry>() == 8);

as_bytes!(FloatingPointer);
as_bytes!(TableHeader);
as_bytes!(ProcessorEntry);
as_bytes!(BusEntry);
as_bytes!(IoApicEntry);
as_bytes!(InterruptEntry);

/// Bytes [`write`] produces for `cpus` processors: pointer, header and entries.
pub const fn size(cpus: u8) -> u64 {
    16 + 44 + 20 * cpus as u64 + 8 + 8 + 8 * (IO_INTERRUPTS as u64 + LOCAL_INTERRUPTS as u64)
}

const ISA_BUS: u8 = 0;
const IO_INTERRUPTS: usize = 16; // ExtINT on pin 0, then ISA IRQs 0, 1, 3-15.
const LOCAL_INTERRUPTS: usize = 2;

/// The I/O interrupt entries, in order: ExtINT → pin 0, IRQ 0 → pin 2, IRQ n → pin n.
fn io_interrupts(ioapic_id: u8) -> impl Iterator<Item = InterruptEntry> {
    let int = move |int_type, irq: u8, pin| InterruptEntry {
        kind: entry::IO_INTERRUPT,
        int_type,
        flags: 0,
        src_bus: ISA_BUS,
        src_irq: irq,
        dest_id: ioapic_id,
        dest_pin: pin,
    };
    let extint = core::iter::once(int(int_type::EXTINT, 0, 0));
    let irqs = (0u8..16)
        .filter(|&i| i != 2)
        .map(move |i| int(int_type::INT, i, if i == 0 { 2 } else { i }));
    extint.chain(irqs)
}

fn local_interrupts() -> [InterruptEntry; LOCAL_INTERRUPTS] {
    let lint = |int_type, pin| InterruptEntry {
        kind: entry::LOCAL_INTERRUPT,
        int_type,
        flags: 0,
        src_bus: ISA_BUS,
        src_irq: 0,
        dest_id: 0xFF,
        dest_pin: pin,
    };
    [lint(int_type::EXTINT, 0), lint(int_type::NMI, 1)]
}

/// Writes the MP floating pointer at `at` (16-byte aligned, in a place the guest scans:
/// e.g. 0x9FC00) and the configuration table right after it; returns the bytes written
/// ([`size`]`(cpus)`: 1 KiB of EBDA holds it for up to 40 CPUs).
///
/// `cpus` processors get APIC ids 0..cpus; `ioapic_id` should differ from all of them
/// (e.g. `cpus`). `ioapic_addr` is the IOAPIC's MMIO base (normally 0xFEC00000).
pub fn write(
    mem: &mut GuestMemory,
    at: GuestPhys,
    cpus: u8,
    ioapic_id: u8,
    ioapic_addr: u32,
) -> Result<u64, MemError> {
    let total = size(cpus);
    let table_at = at.checked_add(16).ok_or(MemError::OutOfRange {
        gpa: at,
        len: total,
    })?;
    // The pointer is a u32: the whole table must lie below 4 GiB and in RAM.
    let table_addr = u32::try_from(table_at.0).map_err(|_| MemError::OutOfRange {
        gpa: at,
        len: total,
    })?;
    if !mem.contains(at, total) {
        return Err(MemError::OutOfRange {
            gpa: at,
            len: total,
        });
    }

    // Entries first, then the header whose checksum covers them.
    let mut off = table_at.0 + 44;
    let mut sum = 0u8;
    let mut count = 0u16;
    let mut put = |mem: &mut GuestMemory, b: &[u8]| -> Result<(), MemError> {
        mem.write(GuestPhys(off), b)?;
        off += b.len() as u64;
        sum = sum.wrapping_add(super::sum(b));
        count += 1;
        Ok(())
    };
    for id in 0..cpus {
        let p = ProcessorEntry {
            kind: entry::PROCESSOR,
            apic_id: id,
            apic_version: LAPIC_VERSION,
            flags: CPU_ENABLED | if id == 0 { CPU_BSP } else { 0 },
            signature: CPU_SIGNATURE,
            features: CPU_FEATURES,
            reserved: [0; 2],
        };
        put(mem, p.as_bytes())?;
    }
    put(
        mem,
        BusEntry {
            kind: entry::BUS,
            bus_id: ISA_BUS,
            bus_type: *BUS_ISA,
        }
        .as_bytes(),
    )?;
    let ioapic = IoApicEntry {
        kind: entry::IOAPIC,
        id: ioapic_id,
        version: IOAPIC_VERSION,
        flags: IOAPIC_ENABLED,
        addr: ioapic_addr,
    };
    put(mem, ioapic.as_bytes())?;
    for e in io_interrupts(ioapic_id) {
        put(mem, e.as_bytes())?;
    }
    for e in local_interrupts() {
        put(mem, e.as_bytes())?;
    }
    let entries_end = off;

    let mut hdr = TableHeader {
        signature: *TABLE_SIGNATURE,
        base_length: (entries_end - table_at.0) as u16,
        spec_rev: SPEC_REV,
        checksum: 0,
        oem_id: *OEM_ID,
        product_id: *PRODUCT_ID,
        entry_count: count,
        lapic_addr: LAPIC_ADDR,
        ..Default::default()
    };
    let hdr_sum = sum.wrapping_add(super::sum(hdr.as_bytes()));
    hdr.checksum = 0u8.wrapping_sub(hdr_sum);
    mem.write(table_at, hdr.as_bytes())?;

    let mut fp = FloatingPointer {
        signature: *FLOATING_SIGNATURE,
        table_addr,
        length: 1,
        spec_rev: SPEC_REV,
        feature2: 0, // IMCRP clear: virtual-wire mode
        ..Default::default()
    };
    fp.checksum = checksum(fp.as_bytes());
    mem.write(at, fp.as_bytes())?;
    debug_assert_eq!(entries_end - at.0, total);
    Ok(total)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::firmware::sum;
    use crate::memory::testing::ram;
    use std::vec;
    use std::vec::Vec;

    const AT: u64 = 0x9_FC00;

    /// Writes a table and returns (pointer bytes, table bytes).
    fn build(cpus: u8) -> (Vec<u8>, Vec<u8>) {
        let mut mem = ram(1 << 20);
        mem.fill(GuestPhys(AT), 0x400, 0xAA).unwrap();
        let n = write(&mut mem, GuestPhys(AT), cpus, cpus, 0xFEC0_0000).unwrap();
        assert_eq!(n, size(cpus));
        let mut fp = vec![0u8; 16];
        mem.read(GuestPhys(AT), &mut fp).unwrap();
        let table_addr = u32::from_le_bytes(fp[4..8].try_into().unwrap()) as u64;
        let len = mem.read_u16(GuestPhys(table_addr + 4)).unwrap() as usize;
        let mut t = vec![0u8; len];
        mem.read(GuestPhys(table_addr), &mut t).unwrap();
        assert_eq!(table_addr, AT + 16, "table follows the pointer");
        assert_eq!(16 + len as u64, n);
        (fp, t)
    }

    /// The entries of a table as (type, bytes).
    fn entries(t: &[u8]) -> Vec<&[u8]> {
        let mut v = Vec::new();
        let mut o = 44;
        while o < t.len() {
            let len = if t[o] == entry::PROCESSOR { 20 } else { 8 };
            v.push(&t[o..o + len]);
            o += len;
        }
        assert_eq!(o, t.len());
        v
    }

    #[test]
    fn floating_pointer() {
        let (fp, _) = build(2);
        assert_eq!(&fp[0..4], b"_MP_");
        assert_eq!(fp[8], 1, "length in paragraphs");
        assert_eq!(fp[9], 4, "spec 1.4");
        assert_eq!(sum(&fp), 0, "checksum");
        assert_eq!(fp[11], 0, "a configuration table is present");
        assert_eq!(fp[12] & FEATURE2_IMCRP, 0, "virtual-wire mode");
    }

    #[test]
    fn table_header_and_checksum() {
        for cpus in [1, 4, 40] {
            let (_, t) = build(cpus);
            assert_eq!(&t[0..4], b"PCMP");
            assert_eq!(t[6], 4);
            assert_eq!(sum(&t), 0, "base table checksum, {cpus} cpus");
            assert_eq!(&t[8..16], b"JANUS   ");
            assert_eq!(&t[16..28], b"JANUS VM    ");
            let count = u16::from_le_bytes([t[34], t[35]]) as usize;
            assert_eq!(count, cpus as usize + 1 + 1 + 16 + 2);
            assert_eq!(entries(&t).len(), count);
            assert_eq!(
                u32::from_le_bytes(t[36..40].try_into().unwrap()),
                0xFEE0_0000
            );
            assert_eq!(&t[40..44], &[0, 0, 0, 0], "no extended table");
        }
        assert!(size(40) <= 0x400, "40 CPUs fit the EBDA's first KiB");
    }

    #[test]
    fn processors_bus_and_ioapic() {
        let (_, t) = build(3);
        let e = entries(&t);
        // Sorted by type.
        assert!(e.windows(2).all(|w| w[0][0] <= w[1][0]));
        let cpus: Vec<_> = e.iter().filter(|x| x[0] == entry::PROCESSOR).collect();
        assert_eq!(cpus.len(), 3);
        for (i, p) in cpus.iter().enumerate() {
            assert_eq!(p[1], i as u8, "APIC id");
            assert_eq!(p[2], 0x14);
            assert_eq!(p[3] & CPU_ENABLED, CPU_ENABLED);
            assert_eq!(p[3] & CPU_BSP != 0, i == 0, "BSP flag only on CPU 0");
        }
        let bus = e.iter().find(|x| x[0] == entry::BUS).unwrap();
        assert_eq!(&bus[1..8], b"\0ISA   ");
        let io = e.iter().find(|x| x[0] == entry::IOAPIC).unwrap();
        assert_eq!(io[1], 3, "IOAPIC id as given");
        assert_eq!(io[2], 0x11);
        assert_eq!(io[3], IOAPIC_ENABLED);
        assert_eq!(
            u32::from_le_bytes(io[4..8].try_into().unwrap()),
            0xFEC0_0000
        );
    }

    #[test]
    fn interrupt_routing() {
        let (_, t) = build(1);
        let e = entries(&t);
        let io: Vec<_> = e.iter().filter(|x| x[0] == entry::IO_INTERRUPT).collect();
        assert_eq!(io.len(), 16);
        // (type, src irq) -> dest pin; all to IOAPIC id 1 on bus 0, flags conform to bus.
        let route = |ty: u8, irq: u8| {
            let v: Vec<_> = io.iter().filter(|x| x[1] == ty && x[5] == irq).collect();
            assert_eq!(v.len(), 1, "type {ty} irq {irq}");
            assert_eq!((v[0][2], v[0][3], v[0][4], v[0][6]), (0, 0, 0, 1));
            v[0][7]
        };
        assert_eq!(route(int_type::INT, 0), 2, "IRQ0 -> pin 2");
        assert_eq!(route(int_type::EXTINT, 0), 0, "ExtINT -> pin 0");
        for irq in (1..16).filter(|&i| i != 2) {
            assert_eq!(route(int_type::INT, irq), irq);
        }
        assert!(
            !io.iter().any(|x| x[1] == int_type::INT && x[5] == 2),
            "no entry for the cascade"
        );
        let local: Vec<_> = e
            .iter()
            .filter(|x| x[0] == entry::LOCAL_INTERRUPT)
            .collect();
        assert_eq!(local.len(), 2);
        assert_eq!(
            (local[0][1], local[0][6], local[0][7]),
            (int_type::EXTINT, 0xFF, 0)
        );
        assert_eq!(
            (local[1][1], local[1][6], local[1][7]),
            (int_type::NMI, 0xFF, 1)
        );
    }

    #[test]
    fn outside_ram_is_an_error() {
        let mut mem = ram(0x9_FC00 + 0x40);
        assert!(matches!(
            write(&mut mem, GuestPhys(AT), 1, 1, 0xFEC0_0000),
            Err(MemError::OutOfRange { .. })
        ));
        // Nothing half-written.
        assert_eq!(mem.read_u32(GuestPhys(AT)).unwrap(), 0);
    }
}
