//! The VMCB layout (APM Vol 2 Appendix B, Tables B-1 and B-2), with compile-time offset
//! checks against the manual. The values its fields take are in `bits.rs`, `intercept.rs`
//! and `exit_code.rs`.

use core::mem::{offset_of, size_of};

/// A segment register in the save area: the attribute field packs descriptor bits
/// 47:40 into 7:0 and 55:52 into 11:8 (APM Vol 2 15.5.1), the core's neutral format.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VmcbSegment {
    pub selector: u16,
    pub attrib: u16,
    pub limit: u32,
    pub base: u64,
}

#[repr(C)]
pub struct ControlArea {
    /// See [`super::intercept`].
    pub intercept_cr: u32,
    pub intercept_dr: u32,
    pub intercept_exceptions: u32,
    pub intercept_misc1: u32,
    pub intercept_misc2: u32,
    pub intercept_misc3: u32,
    _reserved1: [u8; 0x3c - 0x18],
    pub pause_filter_threshold: u16,
    pub pause_filter_count: u16,
    pub iopm_base_pa: u64,
    pub msrpm_base_pa: u64,
    pub tsc_offset: u64,
    pub guest_asid: u32,
    pub tlb_control: u8,
    _reserved2: [u8; 3],
    /// See [`super::bits::v_intr`].
    pub v_intr: u64,
    pub interrupt_shadow: u64,
    pub exit_code: u64,
    pub exit_info1: u64,
    pub exit_info2: u64,
    pub exit_int_info: u64,
    pub np_control: u64,
    pub avic_apic_bar: u64,
    pub ghcb_pa: u64,
    pub event_inj: u64,
    pub n_cr3: u64,
    pub lbr_virt: u64,
    pub vmcb_clean: u32,
    _reserved3: u32,
    pub next_rip: u64,
    pub insn_len: u8,
    pub insn_bytes: [u8; 15],
    _reserved4: [u8; 0x400 - 0xe0],
}

#[repr(C)]
pub struct SaveArea {
    pub es: VmcbSegment,
    pub cs: VmcbSegment,
    pub ss: VmcbSegment,
    pub ds: VmcbSegment,
    pub fs: VmcbSegment,
    pub gs: VmcbSegment,
    pub gdtr: VmcbSegment,
    pub ldtr: VmcbSegment,
    pub idtr: VmcbSegment,
    pub tr: VmcbSegment,
    _reserved1: [u8; 0xcb - 0xa0],
    pub cpl: u8,
    _reserved2: u32,
    pub efer: u64,
    _reserved3: [u8; 0x148 - 0xd8],
    pub cr4: u64,
    pub cr3: u64,
    pub cr0: u64,
    pub dr7: u64,
    pub dr6: u64,
    pub rflags: u64,
    pub rip: u64,
    _reserved4: [u8; 0x1d8 - 0x180],
    pub rsp: u64,
    pub s_cet: u64,
    pub ssp: u64,
    pub isst_addr: u64,
    pub rax: u64,
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub cr2: u64,
    _reserved5: [u8; 0x268 - 0x248],
    pub g_pat: u64,
    pub dbgctl: u64,
    pub br_from: u64,
    pub br_to: u64,
    pub last_excp_from: u64,
    pub last_excp_to: u64,
    _reserved6: [u8; 0xc00 - 0x298],
}

/// One 4 KiB VMCB.
#[repr(C, align(4096))]
pub struct Vmcb {
    pub control: ControlArea,
    pub save: SaveArea,
}

const fn save(off: usize) -> usize {
    offset_of!(Vmcb, save) + off
}

const _: () = assert!(size_of::<Vmcb>() == 4096);
const _: () = assert!(offset_of!(Vmcb, save) == 0x400);
const _: () = assert!(offset_of!(ControlArea, intercept_misc1) == 0x0c);
const _: () = assert!(offset_of!(ControlArea, interrupt_shadow) == 0x68);
const _: () = assert!(offset_of!(ControlArea, tsc_offset) == 0x50);
const _: () = assert!(offset_of!(ControlArea, intercept_misc2) == 0x10);
const _: () = assert!(offset_of!(ControlArea, pause_filter_count) == 0x3e);
const _: () = assert!(offset_of!(ControlArea, iopm_base_pa) == 0x40);
const _: () = assert!(offset_of!(ControlArea, msrpm_base_pa) == 0x48);
const _: () = assert!(offset_of!(ControlArea, guest_asid) == 0x58);
const _: () = assert!(offset_of!(ControlArea, tlb_control) == 0x5c);
const _: () = assert!(offset_of!(ControlArea, v_intr) == 0x60);
const _: () = assert!(offset_of!(ControlArea, exit_code) == 0x70);
const _: () = assert!(offset_of!(ControlArea, exit_info1) == 0x78);
const _: () = assert!(offset_of!(ControlArea, exit_info2) == 0x80);
const _: () = assert!(offset_of!(ControlArea, exit_int_info) == 0x88);
const _: () = assert!(offset_of!(ControlArea, np_control) == 0x90);
const _: () = assert!(offset_of!(ControlArea, event_inj) == 0xa8);
const _: () = assert!(offset_of!(ControlArea, n_cr3) == 0xb0);
const _: () = assert!(offset_of!(ControlArea, vmcb_clean) == 0xc0);
const _: () = assert!(offset_of!(ControlArea, next_rip) == 0xc8);
const _: () = assert!(offset_of!(ControlArea, insn_bytes) == 0xd1);
const _: () = assert!(save(offset_of!(SaveArea, tr)) == 0x490);
const _: () = assert!(save(offset_of!(SaveArea, cpl)) == 0x4cb);
const _: () = assert!(save(offset_of!(SaveArea, efer)) == 0x4d0);
const _: () = assert!(save(offset_of!(SaveArea, cr4)) == 0x548);
const _: () = assert!(save(offset_of!(SaveArea, rflags)) == 0x570);
const _: () = assert!(save(offset_of!(SaveArea, rip)) == 0x578);
const _: () = assert!(save(offset_of!(SaveArea, rsp)) == 0x5d8);
const _: () = assert!(save(offset_of!(SaveArea, rax)) == 0x5f8);
const _: () = assert!(save(offset_of!(SaveArea, star)) == 0x600);
const _: () = assert!(save(offset_of!(SaveArea, kernel_gs_base)) == 0x620);
const _: () = assert!(save(offset_of!(SaveArea, cr2)) == 0x640);
const _: () = assert!(save(offset_of!(SaveArea, g_pat)) == 0x668);
const _: () = assert!(save(offset_of!(SaveArea, last_excp_to)) == 0x690);
