//! The host state every VM exit loads: Janus' own registers, read once when a vCPU is
//! created (SDM Vol 3C 26.2.2, 28.5).

use crate::entry::janus_vmx_exit;
use x86::controlregs::{cr0, cr3, cr4};
use x86::msr::{self, rdmsr};

/// Janus' registers as the host-state area wants them.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    /// CS, SS, DS, ES selectors with RPL and TI cleared (SDM Vol 3C 26.2.3).
    pub cs: u16,
    pub ss: u16,
    pub ds: u16,
    pub es: u16,
    pub tr: u16,
    pub tr_base: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub gdtr_base: u64,
    pub idtr_base: u64,
    pub efer: u64,
    pub pat: u64,
    /// Where exits land.
    pub rip: u64,
}

/// A selector's RPL and TI bits.
const SELECTOR_RPL_TI: u16 = 7;

impl HostState {
    /// Reads this CPU's registers.
    pub fn current() -> HostState {
        let mut gdtr = x86::dtables::DescriptorTablePointer::<u64>::default();
        let mut idtr = x86::dtables::DescriptorTablePointer::<u64>::default();
        // SAFETY: SGDT/SIDT/STR and reading segment registers, control registers and MSRs
        // have no side effects; the TSS descriptor read lies inside the GDT the CPU is
        // using.
        unsafe {
            x86::dtables::sgdt(&mut gdtr);
            x86::dtables::sidt(&mut idtr);
            let tr = x86::task::tr().bits() & !SELECTOR_RPL_TI;
            let desc = (gdtr.base as *const u8).add(tr as usize) as *const u64;
            let (lo, hi) = (desc.read_unaligned(), desc.add(1).read_unaligned());
            // A 16-byte system descriptor's base: bits 39:16 and 63:56 of the low half,
            // bits 31:0 of the high half (SDM Vol 3A, "TSS Descriptor in 64-bit Mode").
            let tr_base =
                ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | ((hi & 0xffff_ffff) << 32);
            HostState {
                cr0: cr0().bits() as u64,
                cr3: cr3(),
                cr4: cr4().bits() as u64,
                cs: x86::segmentation::cs().bits() & !SELECTOR_RPL_TI,
                ss: x86::segmentation::ss().bits() & !SELECTOR_RPL_TI,
                ds: x86::segmentation::ds().bits() & !SELECTOR_RPL_TI,
                es: x86::segmentation::es().bits() & !SELECTOR_RPL_TI,
                tr,
                tr_base,
                fs_base: rdmsr(msr::IA32_FS_BASE),
                gs_base: rdmsr(msr::IA32_GS_BASE),
                gdtr_base: gdtr.base as u64,
                idtr_base: idtr.base as u64,
                efer: rdmsr(msr::IA32_EFER),
                pat: rdmsr(msr::IA32_PAT),
                rip: janus_vmx_exit as *const () as u64,
            }
        }
    }
}
