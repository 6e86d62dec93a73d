//! ACPI tables for the guest, so that an ACPI OS finds its CPUs, its IOAPIC and the ISA
//! interrupt routing (as in the MP table, [`super::mptable`]) and can power itself off
//! through the PM1a control register ([`crate::devices::acpi_pm`]).
//!
//! Spec: ACPI Specification 6.5 (August 2022): 5.2.3.2 (Generic Address Structure),
//! 5.2.5 (RSDP, revision 2: 20-byte checksum and extended checksum over 36 bytes),
//! 5.2.6 (the 36-byte system description table header, whose checksum makes the whole
//! table sum to 0), 5.2.7 (RSDT), 5.2.8 (XSDT), 5.2.9 (FADT, major version 6, minor 5,
//! 276 bytes; table 5.10 fixed feature flags, table 5.11 IA-PC boot architecture flags),
//! 5.2.10 (FACS: 64 bytes, 64-byte aligned, in memory the e820 map does not report as
//! RAM; no checksum), 5.2.11.1 (DSDT), 5.2.12 (MADT: processor local APIC, I/O APIC,
//! interrupt source override, local APIC NMI; MPS INTI flags), 7.4.2 (`\_Sx` packages:
//! SLP_TYPa, SLP_TYPb, two reserved) and 20.2 (AML encoding: NameOp 0x08, RootChar 0x5C,
//! PackageOp 0x12, one-byte PkgLength when below 64, BytePrefix 0x0A, ZeroOp 0x00).
//!
//! Where an OS looks for the RSDP: 5.2.5.1, on 16-byte boundaries in the first KiB of
//! the EBDA or in the BIOS area 0xE0000-0xFFFFF. The caller puts it at
//! [`RSDP_ADDR`] (0xF0000), inside the BIOS area the e820 map reserves
//! ([`crate::loader::e820::BIOS_START`]); the other tables follow it (see [`AcpiLayout`]).
//!
//! The machine described: a PC with `cpus` CPUs (APIC ids and ACPI processor UIDs 0..cpus),
//! dual 8259s, one IOAPIC with GSI base 0, ISA IRQ 0 on GSI 2 and the SCI on IRQ 9
//! (level, active high), NMI on every local APIC's LINT1; ACPI fixed hardware without SMM
//! (SMI_CMD = 0: always in ACPI mode), PM1a event and control blocks in I/O space, no PM
//! timer, no GPE blocks, no fixed power or sleep button, and the reset register at I/O
//! port 0xCF9 (value 0x06, which [`crate::devices::legacy`] takes as a CPU reset). The
//! DSDT holds nothing but `\_S0` and `\_S5`.

use super::{as_bytes, checksum, sum};
use crate::addr::GuestPhys;
use crate::devices::acpi_pm::{
    PM1A_CNT, PM1A_EVT, PM1_CNT_LEN, PM1_EVT_LEN, SLP_TYP_S0, SLP_TYP_S5,
};
use crate::memory::{GuestMemory, MemError};

/// Where the caller puts the RSDP: the first paragraph of the BIOS area, which Linux
/// scans (and e820 reserves).
pub const RSDP_ADDR: u64 = 0xF_0000;
/// The BIOS area ends here; the tables of [`write()`] at [`RSDP_ADDR`] stay below it for
/// any CPU count.
pub const BIOS_END: u64 = 0x10_0000;

pub const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
pub const OEM_ID: &[u8; 6] = b"JANUS ";
pub const OEM_TABLE_ID: &[u8; 8] = b"JANUSVM ";
pub const OEM_REVISION: u32 = 1;
pub const CREATOR_ID: &[u8; 4] = b"JNUS";
pub const CREATOR_REVISION: u32 = 1;

/// Table signatures.
pub mod sig {
    pub const RSDT: &[u8; 4] = b"RSDT";
    pub const XSDT: &[u8; 4] = b"XSDT";
    pub const FADT: &[u8; 4] = b"FACP";
    pub const FACS: &[u8; 4] = b"FACS";
    pub const DSDT: &[u8; 4] = b"DSDT";
    pub const MADT: &[u8; 4] = b"APIC";
}

/// Revisions: RSDP 2 (ACPI 2.0+), FADT 6.5, MADT 5 (ACPI 6.3+: Linux then honours the
/// online-capable flag, which enabled CPUs do not need), DSDT 2 (64-bit AML integers),
/// FACS 2.
pub mod rev {
    pub const RSDP: u8 = 2;
    pub const RSDT: u8 = 1;
    pub const XSDT: u8 = 1;
    pub const FADT: u8 = 6;
    pub const FADT_MINOR: u8 = 5;
    pub const MADT: u8 = 5;
    pub const DSDT: u8 = 2;
    pub const FACS: u8 = 2;
}

/// The SCI's ISA IRQ and GSI.
pub const SCI_IRQ: u8 = 9;
pub const LAPIC_ADDR: u32 = 0xFEE0_0000;
/// The reset register: the PIIX reset control register, and the value that resets.
pub const RESET_PORT: u16 = 0xCF9;
pub const RESET_VALUE: u8 = 0x06;

/// FADT fixed feature flags (table 5.10).
pub mod fadt_flags {
    pub const WBINVD: u32 = 1 << 0;
    pub const PROC_C1: u32 = 1 << 2;
    /// Set: the power button, if any, is a control-method device (here: none).
    pub const PWR_BUTTON: u32 = 1 << 4;
    pub const SLP_BUTTON: u32 = 1 << 5;
    pub const TMR_VAL_EXT: u32 = 1 << 8;
    pub const RESET_REG_SUP: u32 = 1 << 10;
    pub const HW_REDUCED_ACPI: u32 = 1 << 20;
}

/// IA-PC boot architecture flags (table 5.11).
pub mod boot_arch {
    pub const LEGACY_DEVICES: u16 = 1 << 0;
    pub const I8042: u16 = 1 << 1;
    pub const VGA_NOT_PRESENT: u16 = 1 << 2;
}

/// Generic Address Structure address space ids and access sizes.
pub mod gas {
    pub const SYSTEM_MEMORY: u8 = 0;
    pub const SYSTEM_IO: u8 = 1;
    pub const ACCESS_BYTE: u8 = 1;
    pub const ACCESS_WORD: u8 = 2;
    pub const ACCESS_DWORD: u8 = 3;
}

/// MADT structure types (5.2.12, table 5.21).
pub mod madt_type {
    pub const LOCAL_APIC: u8 = 0;
    pub const IOAPIC: u8 = 1;
    pub const INTERRUPT_OVERRIDE: u8 = 2;
    pub const LOCAL_APIC_NMI: u8 = 4;
}

/// MADT flags: PCAT_COMPAT, the system also has dual 8259s.
pub const MADT_PCAT_COMPAT: u32 = 1 << 0;
/// Local APIC flags: Enabled.
pub const LAPIC_ENABLED: u32 = 1 << 0;
/// MPS INTI flags: polarity bits 1:0 (01 active high, 11 active low), trigger mode bits
/// 3:2 (01 edge, 11 level); 0 = conforms to the bus (ISA: edge, active high).
pub const INTI_CONFORMS: u16 = 0;
pub const INTI_ACTIVE_HIGH: u16 = 0b01;
pub const INTI_LEVEL: u16 = 0b11 << 2;

/// PM ports the FADT describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmPorts {
    /// PM1a event block (PM1_STS, PM1_EN), [`PM1_EVT_LEN`] bytes.
    pub evt: u16,
    /// PM1a control block (PM1_CNT), [`PM1_CNT_LEN`] bytes.
    pub cnt: u16,
    /// The ACPI PM timer (24 bits at 3.579545 MHz), 4 bytes; 0 for none.
    pub tmr: u16,
}

impl PmPorts {
    /// The ports [`crate::devices::acpi_pm::AcpiPm::default`] answers.
    pub const PC: PmPorts = PmPorts {
        evt: PM1A_EVT,
        cnt: PM1A_CNT,
        tmr: crate::devices::acpi_pm::PM_TMR,
    };
}

impl Default for PmPorts {
    fn default() -> Self {
        Self::PC
    }
}

/// RSDP (5.2.5.3), ACPI 2.0+ form.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct Rsdp {
    pub signature: [u8; 8],
    /// Makes the first 20 bytes sum to 0.
    pub checksum: u8,
    pub oem_id: [u8; 6],
    pub revision: u8,
    pub rsdt_addr: u32,
    pub length: u32,
    pub xsdt_addr: u64,
    /// Makes all 36 bytes sum to 0.
    pub extended_checksum: u8,
    pub reserved: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<Rsdp>() == 36);
const _: () = assert!(core::mem::offset_of!(Rsdp, checksum) == 8);
const _: () = assert!(core::mem::offset_of!(Rsdp, revision) == 15);
const _: () = assert!(core::mem::offset_of!(Rsdp, rsdt_addr) == 16);
const _: () = assert!(core::mem::offset_of!(Rsdp, length) == 20);
const _: () = assert!(core::mem::offset_of!(Rsdp, xsdt_addr) == 24);
const _: () = assert!(core::mem::offset_of!(Rsdp, extended_checksum) == 32);

/// The system description table header (5.2.6).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct SdtHeader {
    pub signature: [u8; 4],
    /// The whole table, header included.
    pub length: u32,
    pub revision: u8,
    pub checksum: u8,
    pub oem_id: [u8; 6],
    pub oem_table_id: [u8; 8],
    pub oem_revision: u32,
    pub creator_id: [u8; 4],
    pub creator_revision: u32,
}

const _: () = assert!(core::mem::size_of::<SdtHeader>() == 36);
const _: () = assert!(core::mem::offset_of!(SdtHeader, checksum) == 9);
const _: () = assert!(core::mem::offset_of!(SdtHeader, oem_id) == 10);
const _: () = assert!(core::mem::offset_of!(SdtHeader, oem_table_id) == 16);
const _: () = assert!(core::mem::offset_of!(SdtHeader, creator_id) == 28);

impl SdtHeader {
    /// A Janus header; `checksum` still 0.
    pub const fn new(signature: &[u8; 4], length: u32, revision: u8) -> Self {
        Self {
            signature: *signature,
            length,
            revision,
            checksum: 0,
            oem_id: *OEM_ID,
            oem_table_id: *OEM_TABLE_ID,
            oem_revision: OEM_REVISION,
            creator_id: *CREATOR_ID,
            creator_revision: CREATOR_REVISION,
        }
    }
}

/// Generic Address Structure (5.2.3.2).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct Gas {
    pub space_id: u8,
    pub bit_width: u8,
    pub bit_offset: u8,
    pub access_size: u8,
    pub address: u64,
}

const _: () = assert!(core::mem::size_of::<Gas>() == 12);
const _: () = assert!(core::mem::offset_of!(Gas, address) == 4);

impl Gas {
    /// `bytes` bytes of I/O space at `port`, accessed `access_size` at a time.
    pub const fn io(port: u16, bytes: u8, access_size: u8) -> Self {
        Self {
            space_id: gas::SYSTEM_IO,
            bit_width: bytes * 8,
            bit_offset: 0,
            access_size,
            address: port as u64,
        }
    }
}

/// FADT (5.2.9), major version 6.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct Fadt {
    pub header: SdtHeader,
    pub firmware_ctrl: u32,
    pub dsdt: u32,
    pub reserved0: u8,
    pub preferred_pm_profile: u8,
    pub sci_int: u16,
    pub smi_cmd: u32,
    pub acpi_enable: u8,
    pub acpi_disable: u8,
    pub s4bios_req: u8,
    pub pstate_cnt: u8,
    pub pm1a_evt_blk: u32,
    pub pm1b_evt_blk: u32,
    pub pm1a_cnt_blk: u32,
    pub pm1b_cnt_blk: u32,
    pub pm2_cnt_blk: u32,
    pub pm_tmr_blk: u32,
    pub gpe0_blk: u32,
    pub gpe1_blk: u32,
    pub pm1_evt_len: u8,
    pub pm1_cnt_len: u8,
    pub pm2_cnt_len: u8,
    pub pm_tmr_len: u8,
    pub gpe0_blk_len: u8,
    pub gpe1_blk_len: u8,
    pub gpe1_base: u8,
    pub cst_cnt: u8,
    pub p_lvl2_lat: u16,
    pub p_lvl3_lat: u16,
    pub flush_size: u16,
    pub flush_stride: u16,
    pub duty_offset: u8,
    pub duty_width: u8,
    pub day_alrm: u8,
    pub mon_alrm: u8,
    pub century: u8,
    pub iapc_boot_arch: u16,
    pub reserved1: u8,
    pub flags: u32,
    pub reset_reg: Gas,
    pub reset_value: u8,
    pub arm_boot_arch: u16,
    pub minor_version: u8,
    pub x_firmware_ctrl: u64,
    pub x_dsdt: u64,
    pub x_pm1a_evt_blk: Gas,
    pub x_pm1b_evt_blk: Gas,
    pub x_pm1a_cnt_blk: Gas,
    pub x_pm1b_cnt_blk: Gas,
    pub x_pm2_cnt_blk: Gas,
    pub x_pm_tmr_blk: Gas,
    pub x_gpe0_blk: Gas,
    pub x_gpe1_blk: Gas,
    pub sleep_control_reg: Gas,
    pub sleep_status_reg: Gas,
    pub hypervisor_vendor_id: u64,
}

const _: () = assert!(core::mem::size_of::<Fadt>() == 276);
const _: () = assert!(core::mem::offset_of!(Fadt, firmware_ctrl) == 36);
const _: () = assert!(core::mem::offset_of!(Fadt, dsdt) == 40);
const _: () = assert!(core::mem::offset_of!(Fadt, sci_int) == 46);
const _: () = assert!(core::mem::offset_of!(Fadt, smi_cmd) == 48);
const _: () = assert!(core::mem::offset_of!(Fadt, pm1a_evt_blk) == 56);
const _: () = assert!(core::mem::offset_of!(Fadt, pm1a_cnt_blk) == 64);
const _: () = assert!(core::mem::offset_of!(Fadt, pm_tmr_blk) == 76);
const _: () = assert!(core::mem::offset_of!(Fadt, pm1_evt_len) == 88);
const _: () = assert!(core::mem::offset_of!(Fadt, iapc_boot_arch) == 109);
const _: () = assert!(core::mem::offset_of!(Fadt, flags) == 112);
const _: () = assert!(core::mem::offset_of!(Fadt, reset_reg) == 116);
const _: () = assert!(core::mem::offset_of!(Fadt, reset_value) == 128);
const _: () = assert!(core::mem::offset_of!(Fadt, minor_version) == 131);
const _: () = assert!(core::mem::offset_of!(Fadt, x_firmware_ctrl) == 132);
const _: () = assert!(core::mem::offset_of!(Fadt, x_dsdt) == 140);
const _: () = assert!(core::mem::offset_of!(Fadt, x_pm1a_evt_blk) == 148);
const _: () = assert!(core::mem::offset_of!(Fadt, x_pm1a_cnt_blk) == 172);
const _: () = assert!(core::mem::offset_of!(Fadt, x_pm_tmr_blk) == 208);
const _: () = assert!(core::mem::offset_of!(Fadt, sleep_control_reg) == 244);
const _: () = assert!(core::mem::offset_of!(Fadt, hypervisor_vendor_id) == 268);

/// FACS (5.2.10). No checksum.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct Facs {
    pub signature: [u8; 4],
    pub length: u32,
    pub hardware_signature: u32,
    pub firmware_waking_vector: u32,
    pub global_lock: u32,
    pub flags: u32,
    pub x_firmware_waking_vector: u64,
    pub version: u8,
    pub reserved0: [u8; 3],
    pub ospm_flags: u32,
    pub reserved1: [u8; 24],
}

const _: () = assert!(core::mem::size_of::<Facs>() == 64);
const _: () = assert!(core::mem::offset_of!(Facs, x_firmware_waking_vector) == 24);
const _: () = assert!(core::mem::offset_of!(Facs, version) == 32);
const _: () = assert!(core::mem::offset_of!(Facs, ospm_flags) == 36);

/// MADT header: the SDT header, the local APIC address and flags; structures follow.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct MadtHeader {
    pub header: SdtHeader,
    pub lapic_addr: u32,
    pub flags: u32,
}

const _: () = assert!(core::mem::size_of::<MadtHeader>() == 44);

/// Processor Local APIC structure (5.2.12.2).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct MadtLocalApic {
    pub kind: u8,
    pub length: u8,
    pub processor_uid: u8,
    pub apic_id: u8,
    pub flags: u32,
}

const _: () = assert!(core::mem::size_of::<MadtLocalApic>() == 8);

/// I/O APIC structure (5.2.12.3).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct MadtIoApic {
    pub kind: u8,
    pub length: u8,
    pub id: u8,
    pub reserved: u8,
    pub address: u32,
    pub gsi_base: u32,
}

const _: () = assert!(core::mem::size_of::<MadtIoApic>() == 12);
const _: () = assert!(core::mem::offset_of!(MadtIoApic, gsi_base) == 8);

/// Interrupt Source Override structure (5.2.12.5).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct MadtInterruptOverride {
    pub kind: u8,
    pub length: u8,
    /// 0: ISA.
    pub bus: u8,
    pub source: u8,
    pub gsi: u32,
    pub flags: u16,
}

const _: () = assert!(core::mem::size_of::<MadtInterruptOverride>() == 10);
const _: () = assert!(core::mem::offset_of!(MadtInterruptOverride, flags) == 8);

/// Local APIC NMI structure (5.2.12.7).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct MadtLocalApicNmi {
    pub kind: u8,
    pub length: u8,
    /// 0xFF: all processors.
    pub processor_uid: u8,
    pub flags: u16,
    pub lint: u8,
}

const _: () = assert!(core::mem::size_of::<MadtLocalApicNmi>() == 6);
const _: () = assert!(core::mem::offset_of!(MadtLocalApicNmi, lint) == 5);

as_bytes!(
    Rsdp,
    SdtHeader,
    Gas,
    Fadt,
    Facs,
    MadtHeader,
    MadtLocalApic,
    MadtIoApic,
    MadtInterruptOverride,
    MadtLocalApicNmi
);

/// AML: NameOp, RootChar, the name, then `Package (4) { typ, typ, 0, 0 }`.
const fn sleep_package(name: [u8; 4], typ: u8) -> [u8; 15] {
    const NAME_OP: u8 = 0x08;
    const ROOT_CHAR: u8 = 0x5C;
    const PACKAGE_OP: u8 = 0x12;
    const BYTE_PREFIX: u8 = 0x0A;
    const ZERO_OP: u8 = 0x00;
    // PkgLength counts itself, NumElements and the elements: 1 + 1 + 2 + 2 + 1 + 1.
    const PKG_LENGTH: u8 = 8;
    const NUM_ELEMENTS: u8 = 4;
    [
        NAME_OP,
        ROOT_CHAR,
        name[0],
        name[1],
        name[2],
        name[3],
        PACKAGE_OP,
        PKG_LENGTH,
        NUM_ELEMENTS,
        BYTE_PREFIX,
        typ,
        BYTE_PREFIX,
        typ,
        ZERO_OP,
        ZERO_OP,
    ]
}

/// `Name (\_S0, Package (4) { 0, 0, 0, 0 })`.
pub const AML_S0: [u8; 15] = sleep_package(*b"_S0_", SLP_TYP_S0);
/// `Name (\_S5, Package (4) { 5, 5, 0, 0 })`: SLP_TYPa = SLP_TYPb = [`SLP_TYP_S5`].
pub const AML_S5: [u8; 15] = sleep_package(*b"_S5_", SLP_TYP_S5);

const DSDT_LEN: u64 = 36 + AML_S0.len() as u64 + AML_S5.len() as u64;
const FADT_LEN: u64 = core::mem::size_of::<Fadt>() as u64;
const FACS_LEN: u64 = core::mem::size_of::<Facs>() as u64;
const RSDT_LEN: u64 = 36 + 4 * TABLES;
const XSDT_LEN: u64 = 36 + 8 * TABLES;
/// Tables the RSDT and XSDT list: FADT, MADT.
const TABLES: u64 = 2;
/// ISA IRQ 0 → GSI 2, SCI.
const OVERRIDES: u64 = 2;

/// Bytes of the MADT for `cpus` processors.
pub const fn madt_len(cpus: u8) -> u64 {
    44 + 8 * cpus as u64 + 12 + 10 * OVERRIDES + 6
}

const fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

/// Where [`write()`] puts each structure: the RSDP at the given address, then, in this
/// order, the FACS (64-byte aligned), RSDT, XSDT, FADT, DSDT and MADT (each 16-byte
/// aligned). For the RSDP at [`RSDP_ADDR`]:
///
/// | address | what |
/// |---|---|
/// | 0xF0000 | RSDP (36 bytes) |
/// | 0xF0040 | FACS (64) |
/// | 0xF0080 | RSDT (44) |
/// | 0xF00B0 | XSDT (52) |
/// | 0xF00F0 | FADT (276) |
/// | 0xF0210 | DSDT (66) |
/// | 0xF0260 | MADT (82 + 8 per CPU) .. `end` |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiLayout {
    pub rsdp: u64,
    pub facs: u64,
    pub rsdt: u64,
    pub xsdt: u64,
    pub fadt: u64,
    pub dsdt: u64,
    pub madt: u64,
    /// First byte after the MADT.
    pub end: u64,
}

impl AcpiLayout {
    /// The layout with the RSDP at `rsdp` (16-byte aligned, so that a scan finds it).
    /// `None` if it would pass the end of the address space.
    pub const fn new(rsdp: u64, cpus: u8) -> Option<AcpiLayout> {
        // Bounded sizes: nothing below overflows unless `rsdp` is within ~3 KiB of 2^64.
        if rsdp > u64::MAX - 0x1000 - madt_len(255) {
            return None;
        }
        let facs = align_up(rsdp + 36, 64);
        let rsdt = align_up(facs + FACS_LEN, 16);
        let xsdt = align_up(rsdt + RSDT_LEN, 16);
        let fadt = align_up(xsdt + XSDT_LEN, 16);
        let dsdt = align_up(fadt + FADT_LEN, 16);
        let madt = align_up(dsdt + DSDT_LEN, 16);
        let end = madt + madt_len(cpus);
        Some(AcpiLayout {
            rsdp,
            facs,
            rsdt,
            xsdt,
            fadt,
            dsdt,
            madt,
            end,
        })
    }

    /// Bytes from the RSDP to the end of the MADT.
    pub const fn size(&self) -> u64 {
        self.end - self.rsdp
    }
}

/// Bytes [`write()`] covers for `cpus` processors with the RSDP 64-byte aligned (e.g. at
/// [`RSDP_ADDR`]).
pub const fn size(cpus: u8) -> u64 {
    match AcpiLayout::new(0, cpus) {
        Some(l) => l.size(),
        None => 0,
    }
}

const _: () = assert!(
    RSDP_ADDR + size(255) <= BIOS_END,
    "255 CPUs' tables fit the BIOS area"
);

/// Writes a table: `header` (with its checksum computed over itself and `body`), then
/// `body` right after it.
fn put_table(
    mem: &mut GuestMemory,
    at: u64,
    mut header: SdtHeader,
    body: &[&[u8]],
) -> Result<(), MemError> {
    let mut off = at + 36;
    let mut s = 0u8;
    for part in body {
        mem.write(GuestPhys(off), part)?;
        off += part.len() as u64;
        s = s.wrapping_add(sum(part));
    }
    debug_assert_eq!({ header.length } as u64, off - at);
    header.checksum = 0u8.wrapping_sub(s.wrapping_add(sum(header.as_bytes())));
    mem.write(GuestPhys(at), header.as_bytes())
}

/// Writes the RSDP at `at` (16-byte aligned, where the guest scans: [`RSDP_ADDR`]) and
/// the tables after it ([`AcpiLayout`]); returns the bytes written, from `at` to the end
/// of the MADT ([`size`]`(cpus)` for a 64-byte aligned `at`).
///
/// `cpus` processors get APIC ids and processor UIDs 0..cpus; `ioapic_id` should differ
/// from all of them (e.g. `cpus`), as in [`super::mptable::write`]. `ioapic_addr` is the
/// IOAPIC's MMIO base (normally 0xFEC00000). `pm` are the ports of the
/// [`crate::devices::acpi_pm::AcpiPm`] the platform decodes.
///
/// Everything must lie in guest RAM below 4 GiB (the RSDT's and FADT's pointers are
/// 32-bit); otherwise nothing is written.
pub fn write(
    mem: &mut GuestMemory,
    at: GuestPhys,
    cpus: u8,
    ioapic_id: u8,
    ioapic_addr: u32,
    pm: PmPorts,
) -> Result<u64, MemError> {
    let out_of_range = MemError::OutOfRange {
        gpa: at,
        len: size(cpus),
    };
    let l = AcpiLayout::new(at.0, cpus).ok_or(out_of_range)?;
    if l.end > 1 << 32 || !mem.contains(at, l.size()) {
        return Err(MemError::OutOfRange {
            gpa: at,
            len: l.size(),
        });
    }
    let u32_of = |v: u64| v as u32; // all below 4 GiB, checked above

    // FACS: no checksum; the OS owns the waking vector and global lock.
    let facs = Facs {
        signature: *sig::FACS,
        length: FACS_LEN as u32,
        version: rev::FACS,
        ..Default::default()
    };
    mem.write(GuestPhys(l.facs), facs.as_bytes())?;

    // DSDT.
    put_table(
        mem,
        l.dsdt,
        SdtHeader::new(sig::DSDT, DSDT_LEN as u32, rev::DSDT),
        &[&AML_S0, &AML_S5],
    )?;

    // FADT.
    let fadt = Fadt {
        header: SdtHeader::new(sig::FADT, FADT_LEN as u32, rev::FADT),
        // X_FIRMWARE_CTRL stays 0: the spec wants FIRMWARE_CTRL 0 when it is set.
        firmware_ctrl: u32_of(l.facs),
        dsdt: u32_of(l.dsdt),
        sci_int: SCI_IRQ as u16,
        smi_cmd: 0,
        pm1a_evt_blk: pm.evt as u32,
        pm1a_cnt_blk: pm.cnt as u32,
        pm1_evt_len: PM1_EVT_LEN,
        pm1_cnt_len: PM1_CNT_LEN,
        pm_tmr_blk: pm.tmr as u32,
        pm_tmr_len: if pm.tmr != 0 { 4 } else { 0 },
        // No C2/C3: latencies above 100 and 1000 us say so.
        p_lvl2_lat: 101,
        p_lvl3_lat: 1001,
        iapc_boot_arch: boot_arch::LEGACY_DEVICES | boot_arch::I8042,
        flags: fadt_flags::WBINVD
            | fadt_flags::PROC_C1
            | fadt_flags::PWR_BUTTON
            | fadt_flags::SLP_BUTTON
            | fadt_flags::RESET_REG_SUP,
        // Only a byte access reaches the reset control register (0xCF8 is PCI's).
        reset_reg: Gas::io(RESET_PORT, 1, gas::ACCESS_BYTE),
        reset_value: RESET_VALUE,
        minor_version: rev::FADT_MINOR,
        x_dsdt: l.dsdt,
        x_pm1a_evt_blk: Gas::io(pm.evt, PM1_EVT_LEN, gas::ACCESS_WORD),
        x_pm1a_cnt_blk: Gas::io(pm.cnt, PM1_CNT_LEN, gas::ACCESS_WORD),
        x_pm_tmr_blk: if pm.tmr != 0 {
            Gas::io(pm.tmr, 4, gas::ACCESS_DWORD)
        } else {
            Gas::default()
        },
        ..Default::default()
    };
    put_table(mem, l.fadt, fadt.header, &[&fadt.as_bytes()[36..]])?;

    // MADT: entries first, summed as they go, then the header.
    let mut off = l.madt + 44;
    let mut s = 0u8;
    let mut put = |mem: &mut GuestMemory, b: &[u8]| -> Result<(), MemError> {
        mem.write(GuestPhys(off), b)?;
        off += b.len() as u64;
        s = s.wrapping_add(sum(b));
        Ok(())
    };
    for id in 0..cpus {
        let e = MadtLocalApic {
            kind: madt_type::LOCAL_APIC,
            length: 8,
            processor_uid: id,
            apic_id: id,
            flags: LAPIC_ENABLED,
        };
        put(mem, e.as_bytes())?;
    }
    let io = MadtIoApic {
        kind: madt_type::IOAPIC,
        length: 12,
        id: ioapic_id,
        reserved: 0,
        address: ioapic_addr,
        gsi_base: 0,
    };
    put(mem, io.as_bytes())?;
    let iso = |source: u8, gsi: u32, flags: u16| MadtInterruptOverride {
        kind: madt_type::INTERRUPT_OVERRIDE,
        length: 10,
        bus: 0,
        source,
        gsi,
        flags,
    };
    put(mem, iso(0, 2, INTI_CONFORMS).as_bytes())?;
    put(
        mem,
        iso(SCI_IRQ, SCI_IRQ as u32, INTI_LEVEL | INTI_ACTIVE_HIGH).as_bytes(),
    )?;
    let nmi = MadtLocalApicNmi {
        kind: madt_type::LOCAL_APIC_NMI,
        length: 6,
        processor_uid: 0xFF,
        flags: INTI_CONFORMS,
        lint: 1,
    };
    put(mem, nmi.as_bytes())?;
    debug_assert_eq!(off, l.end);
    let mut madt = MadtHeader {
        header: SdtHeader::new(sig::MADT, madt_len(cpus) as u32, rev::MADT),
        lapic_addr: LAPIC_ADDR,
        flags: MADT_PCAT_COMPAT,
    };
    madt.header.checksum = 0u8.wrapping_sub(s.wrapping_add(sum(madt.as_bytes())));
    mem.write(GuestPhys(l.madt), madt.as_bytes())?;

    // RSDT and XSDT: FADT, MADT.
    let (fadt32, madt32) = (u32_of(l.fadt).to_le_bytes(), u32_of(l.madt).to_le_bytes());
    put_table(
        mem,
        l.rsdt,
        SdtHeader::new(sig::RSDT, RSDT_LEN as u32, rev::RSDT),
        &[&fadt32, &madt32],
    )?;
    let (fadt64, madt64) = (l.fadt.to_le_bytes(), l.madt.to_le_bytes());
    put_table(
        mem,
        l.xsdt,
        SdtHeader::new(sig::XSDT, XSDT_LEN as u32, rev::XSDT),
        &[&fadt64, &madt64],
    )?;

    // RSDP last: its checksums cover the finished pointers.
    let mut rsdp = Rsdp {
        signature: *RSDP_SIGNATURE,
        oem_id: *OEM_ID,
        revision: rev::RSDP,
        rsdt_addr: u32_of(l.rsdt),
        length: 36,
        xsdt_addr: l.xsdt,
        ..Default::default()
    };
    rsdp.checksum = checksum(&rsdp.as_bytes()[..20]);
    rsdp.extended_checksum = checksum(rsdp.as_bytes());
    mem.write(at, rsdp.as_bytes())?;
    Ok(l.size())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::memory::testing::ram;
    use std::vec;
    use std::vec::Vec;

    const AT: u64 = RSDP_ADDR;
    const IOAPIC: u32 = 0xFEC0_0000;

    fn u16_at(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    /// The guest's tables as an OS finds them: by scanning for the RSDP and following
    /// pointers, never through [`AcpiLayout`].
    struct Parsed {
        mem: GuestMemory,
        rsdp: Vec<u8>,
    }

    impl Parsed {
        fn build(cpus: u8) -> Parsed {
            let mut mem = ram(1 << 20);
            mem.fill(GuestPhys(AT), 0x1_0000, 0xAA).unwrap();
            let n = write(&mut mem, GuestPhys(AT), cpus, cpus, IOAPIC, PmPorts::PC).unwrap();
            assert_eq!(n, size(cpus));
            // Scan 0xE0000-0xFFFFF on 16-byte boundaries, as Linux does.
            let mut found = None;
            for a in (0xE_0000u64..0x10_0000).step_by(16) {
                let mut s = [0u8; 8];
                mem.read(GuestPhys(a), &mut s).unwrap();
                if &s == RSDP_SIGNATURE {
                    found = Some(a);
                    break;
                }
            }
            assert_eq!(found, Some(AT));
            let rsdp = Parsed::bytes(&mem, AT, 36);
            Parsed { mem, rsdp }
        }

        fn bytes(mem: &GuestMemory, at: u64, len: usize) -> Vec<u8> {
            let mut v = vec![0u8; len];
            mem.read(GuestPhys(at), &mut v).unwrap();
            v
        }

        /// A whole table, by its header's length.
        fn table(&self, at: u64) -> Vec<u8> {
            let len = self.mem.read_u32(GuestPhys(at + 4)).unwrap() as usize;
            assert!(len >= 36);
            Parsed::bytes(&self.mem, at, len)
        }

        fn xsdt_entries(&self) -> Vec<u64> {
            let x = self.table(u64_at(&self.rsdp, 24));
            x[36..]
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        }

        fn rsdt_entries(&self) -> Vec<u64> {
            let r = self.table(u32_at(&self.rsdp, 16) as u64);
            r[36..]
                .chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as u64)
                .collect()
        }

        /// The table with this signature, through the XSDT.
        fn find(&self, signature: &[u8; 4]) -> Vec<u8> {
            let hits: Vec<_> = self
                .xsdt_entries()
                .into_iter()
                .map(|a| self.table(a))
                .filter(|t| &t[0..4] == signature)
                .collect();
            assert_eq!(hits.len(), 1, "{:?}", core::str::from_utf8(signature));
            hits.into_iter().next().unwrap()
        }

        fn madt_entries(&self) -> Vec<Vec<u8>> {
            let t = self.find(sig::MADT);
            let mut v = Vec::new();
            let mut o = 44;
            while o < t.len() {
                let len = t[o + 1] as usize;
                assert!(len >= 2, "entry length at {o}");
                v.push(t[o..o + len].to_vec());
                o += len;
            }
            assert_eq!(o, t.len(), "entries fill the MADT exactly");
            v
        }
    }

    fn assert_janus_header(t: &[u8], signature: &[u8; 4], revision: u8) {
        assert_eq!(&t[0..4], signature);
        assert_eq!(t[8], revision, "{:?}", core::str::from_utf8(signature));
        assert_eq!(sum(t), 0, "{:?} checksum", core::str::from_utf8(signature));
        assert_eq!(&t[10..16], b"JANUS ");
        assert_eq!(&t[16..24], b"JANUSVM ");
        assert_eq!(&t[28..32], b"JNUS");
    }

    #[test]
    fn rsdp() {
        let p = Parsed::build(1);
        let r = &p.rsdp;
        assert_eq!(&r[0..8], b"RSD PTR ");
        assert_eq!(sum(&r[..20]), 0, "ACPI 1.0 checksum over 20 bytes");
        assert_eq!(sum(r), 0, "extended checksum over 36 bytes");
        assert_eq!(&r[9..15], b"JANUS ");
        assert_eq!(r[15], 2, "revision 2: XSDT present");
        assert_eq!(u32_at(r, 20), 36);
        assert_eq!(&r[33..36], &[0, 0, 0]);
        assert_ne!(u32_at(r, 16), 0);
        assert_ne!(u64_at(r, 24), 0);
    }

    #[test]
    fn rsdt_and_xsdt_list_fadt_and_madt() {
        let p = Parsed::build(2);
        let rsdt = p.table(u32_at(&p.rsdp, 16) as u64);
        let xsdt = p.table(u64_at(&p.rsdp, 24));
        assert_janus_header(&rsdt, b"RSDT", 1);
        assert_janus_header(&xsdt, b"XSDT", 1);
        assert_eq!(p.rsdt_entries(), p.xsdt_entries(), "same tables in both");
        let sigs: Vec<_> = p
            .xsdt_entries()
            .iter()
            .map(|&a| p.table(a)[0..4].to_vec())
            .collect();
        assert_eq!(sigs, vec![b"FACP".to_vec(), b"APIC".to_vec()]);
    }

    #[test]
    fn every_table_sums_to_zero_and_stays_in_the_bios_area() {
        for cpus in [1, 4, 255] {
            let p = Parsed::build(cpus);
            let fadt = p.find(sig::FADT);
            let mut tables = p.xsdt_entries();
            tables.push(u32_at(&p.rsdp, 16) as u64);
            tables.push(u64_at(&p.rsdp, 24));
            tables.push(u64_at(&fadt, 140));
            for a in tables {
                let t = p.table(a);
                assert_eq!(sum(&t), 0, "table at {a:#x}, {cpus} cpus");
                assert!(
                    a >= 0xF_0000 && a + t.len() as u64 <= 0x10_0000,
                    "in the e820-reserved BIOS area"
                );
            }
        }
    }

    #[test]
    fn fadt_fields() {
        let p = Parsed::build(1);
        let f = p.find(sig::FADT);
        assert_janus_header(&f, b"FACP", 6);
        assert_eq!(f.len(), 276);
        assert_eq!(f[131], 5, "FADT 6.5");
        // DSDT, 32- and 64-bit, agree.
        let dsdt = u32_at(&f, 40) as u64;
        assert_eq!(u64_at(&f, 140), dsdt);
        assert_eq!(&p.table(dsdt)[0..4], b"DSDT");
        // FACS through FIRMWARE_CTRL only.
        let facs = u32_at(&f, 36) as u64;
        assert_eq!(
            u64_at(&f, 132),
            0,
            "X_FIRMWARE_CTRL 0 when FIRMWARE_CTRL is set"
        );
        assert_eq!(facs % 64, 0, "FACS 64-byte aligned");
        let fc = Parsed::bytes(&p.mem, facs, 64);
        assert_eq!(&fc[0..4], b"FACS");
        assert_eq!(u32_at(&fc, 4), 64);
        assert_eq!(fc[32], 2, "FACS version");
        // SCI, no SMM.
        assert_eq!(u16_at(&f, 46), 9, "SCI_INT");
        assert_eq!(u32_at(&f, 48), 0, "SMI_CMD: always in ACPI mode");
        // PM1a blocks, legacy and GAS.
        assert_eq!(u32_at(&f, 56), 0x600, "PM1a_EVT_BLK");
        assert_eq!(u32_at(&f, 64), 0x604, "PM1a_CNT_BLK");
        assert_eq!(
            (u32_at(&f, 60), u32_at(&f, 68), u32_at(&f, 72)),
            (0, 0, 0),
            "no PM1b, no PM2"
        );
        assert_eq!(u32_at(&f, 76), 0x608, "PM_TMR_BLK");
        assert_eq!((u32_at(&f, 80), u32_at(&f, 84)), (0, 0), "no GPE blocks");
        assert_eq!(
            &f[88..92],
            &[4, 2, 0, 4],
            "PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN"
        );
        assert_eq!(&f[148..152], &[1, 32, 0, 2], "X_PM1a_EVT_BLK: I/O, 32 bits");
        assert_eq!(u64_at(&f, 152), 0x600);
        assert_eq!(&f[172..176], &[1, 16, 0, 2], "X_PM1a_CNT_BLK: I/O, 16 bits");
        assert_eq!(u64_at(&f, 176), 0x604);
        assert_eq!(&f[208..212], &[1, 32, 0, 3], "X_PM_TMR_BLK: I/O, 32 bits");
        assert_eq!(u64_at(&f, 212), 0x608);
        assert!(
            f[220..276].iter().all(|&b| b == 0),
            "no GPE, sleep registers or hypervisor id"
        );
        // Reset register: byte at I/O 0xCF9, value 6.
        assert_eq!(&f[116..120], &[1, 8, 0, 1]);
        assert_eq!(u64_at(&f, 120), 0xCF9);
        assert_eq!(f[128], 6);
        // Flags.
        let flags = u32_at(&f, 112);
        assert_eq!(flags, 1 | 1 << 2 | 1 << 4 | 1 << 5 | 1 << 10);
        assert_eq!(flags & fadt_flags::HW_REDUCED_ACPI, 0);
        assert_eq!(u16_at(&f, 109), 0b11, "legacy devices, 8042");
    }

    #[test]
    fn fadt_takes_other_pm_ports() {
        let mut mem = ram(1 << 20);
        write(
            &mut mem,
            GuestPhys(AT),
            1,
            1,
            IOAPIC,
            PmPorts {
                evt: 0xb000,
                cnt: 0xb004,
                tmr: 0,
            },
        )
        .unwrap();
        let l = AcpiLayout::new(AT, 1).unwrap();
        assert_eq!(mem.read_u32(GuestPhys(l.fadt + 56)).unwrap(), 0xb000);
        assert_eq!(mem.read_u32(GuestPhys(l.fadt + 64)).unwrap(), 0xb004);
        assert_eq!(mem.read_u64(GuestPhys(l.fadt + 152)).unwrap(), 0xb000);
        assert_eq!(mem.read_u64(GuestPhys(l.fadt + 176)).unwrap(), 0xb004);
    }

    #[test]
    fn dsdt_holds_s5() {
        let p = Parsed::build(1);
        let f = p.find(sig::FADT);
        let d = p.table(u32_at(&f, 40) as u64);
        assert_janus_header(&d, b"DSDT", 2);
        assert_eq!(d.len(), 36 + 30, "length header covers the AML exactly");
        let aml = &d[36..];
        // Name (\_S5, Package (4) { 5, 5, 0, 0 }), byte by byte.
        let s5 = [
            0x08, 0x5C, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00,
            0x00,
        ];
        assert!(aml.windows(s5.len()).any(|w| w == s5), "{aml:02x?}");
        let s0 = [
            0x08, 0x5C, b'_', b'S', b'0', b'_', 0x12, 0x08, 0x04, 0x0A, 0x00, 0x0A, 0x00, 0x00,
            0x00,
        ];
        assert!(aml.windows(s0.len()).any(|w| w == s0));
        // PkgLength: from itself to the end of the package.
        let pkg = aml.windows(s5.len()).position(|w| w == s5).unwrap() + 7;
        assert_eq!(pkg + aml[pkg] as usize, 15 + 15);
        // SLP_TYPa is what the PM device powers off on.
        assert_eq!(s5[10], crate::devices::acpi_pm::SLP_TYP_S5);
    }

    #[test]
    fn madt_header_and_processors() {
        for cpus in [1u8, 4] {
            let p = Parsed::build(cpus);
            let m = p.find(sig::MADT);
            assert_janus_header(&m, b"APIC", 5);
            assert_eq!(m.len() as u64, madt_len(cpus));
            assert_eq!(u32_at(&m, 36), 0xFEE0_0000, "local APIC address");
            assert_eq!(u32_at(&m, 40), 1, "PCAT_COMPAT");
            let e = p.madt_entries();
            let lapics: Vec<_> = e.iter().filter(|x| x[0] == 0).collect();
            assert_eq!(lapics.len(), cpus as usize);
            for (i, l) in lapics.iter().enumerate() {
                assert_eq!(l.len(), 8);
                assert_eq!((l[2], l[3]), (i as u8, i as u8), "UID and APIC id");
                assert_eq!(u32_at(l, 4), 1, "enabled");
            }
            assert_eq!(e.len(), cpus as usize + 1 + 2 + 1);
        }
    }

    #[test]
    fn madt_ioapic_overrides_and_nmi() {
        let p = Parsed::build(4);
        let e = p.madt_entries();
        let io: Vec<_> = e.iter().filter(|x| x[0] == 1).collect();
        assert_eq!(io.len(), 1);
        assert_eq!(io[0].len(), 12);
        assert_eq!(io[0][2], 4, "IOAPIC id as given");
        assert_eq!(u32_at(io[0], 4), 0xFEC0_0000);
        assert_eq!(u32_at(io[0], 8), 0, "GSI base");

        let iso: Vec<_> = e.iter().filter(|x| x[0] == 2).collect();
        assert_eq!(iso.len(), 2);
        let by_src = |irq: u8| iso.iter().find(|x| x[3] == irq).unwrap();
        let irq0 = by_src(0);
        assert_eq!(
            (irq0.len(), irq0[2], u32_at(irq0, 4), u16_at(irq0, 8)),
            (10, 0, 2, 0),
            "ISA IRQ0 -> GSI 2"
        );
        let sci = by_src(9);
        assert_eq!(
            (sci[2], u32_at(sci, 4), u16_at(sci, 8)),
            (0, 9, 0x000D),
            "SCI: GSI 9 level, active high"
        );

        let nmi: Vec<_> = e.iter().filter(|x| x[0] == 4).collect();
        assert_eq!(nmi.len(), 1);
        assert_eq!(nmi[0].len(), 6);
        assert_eq!(
            (nmi[0][2], u16_at(nmi[0], 3), nmi[0][5]),
            (0xFF, 0, 1),
            "all CPUs, LINT1"
        );
    }

    #[test]
    fn layout() {
        let l = AcpiLayout::new(RSDP_ADDR, 1).unwrap();
        assert_eq!(
            (l.rsdp, l.facs, l.rsdt, l.xsdt, l.fadt, l.dsdt, l.madt, l.end),
            (
                0xF_0000,
                0xF_0040,
                0xF_0080,
                0xF_00B0,
                0xF_00F0,
                0xF_0210,
                0xF_0260,
                0xF_0260 + 90
            )
        );
        // Nothing overlaps, for a misaligned base too.
        for base in [RSDP_ADDR, RSDP_ADDR + 16, RSDP_ADDR + 48] {
            let l = AcpiLayout::new(base, 3).unwrap();
            assert_eq!(l.facs % 64, 0);
            let spans = [
                (l.rsdp, 36),
                (l.facs, FACS_LEN),
                (l.rsdt, RSDT_LEN),
                (l.xsdt, XSDT_LEN),
                (l.fadt, FADT_LEN),
                (l.dsdt, DSDT_LEN),
                (l.madt, madt_len(3)),
            ];
            for w in spans.windows(2) {
                assert!(w[0].0 + w[0].1 <= w[1].0);
            }
            assert_eq!(l.end, l.madt + madt_len(3));
        }
        assert_eq!(AcpiLayout::new(u64::MAX - 100, 1), None);
    }

    #[test]
    fn outside_ram_is_an_error_and_writes_nothing() {
        let mut mem = ram(0xF_0100);
        let r = write(&mut mem, GuestPhys(AT), 1, 1, IOAPIC, PmPorts::PC);
        assert!(matches!(r, Err(MemError::OutOfRange { .. })));
        assert_eq!(mem.read_u64(GuestPhys(AT)).unwrap(), 0, "no RSDP");
    }
}
