//! What a new VMCB holds (APM Vol 2 Appendix B, Tables B-1 and B-2).

use super::{vcpu, vcpu_with, CAPS, LONG, PROTECTED, TABLES};
use crate::caps::SvmCaps;
use crate::setup::msrpm_allow;
use vmm_core::vcpu::{ArchVcpu, Gpr};

fn bits(list: &[u32]) -> u32 {
    list.iter().fold(0, |acc, b| acc | 1 << b)
}

#[test]
fn intercepts_written_at_creation() {
    let v = vcpu(PROTECTED);
    let c = &v.vmcb.control;
    assert_eq!(c.intercept_cr, 1 << (16 + 4), "CR4 writes only");
    // INTR, NMI, SMI, INIT, RDPMC, CPUID, INVD, HLT, INVLPGA, IOIO_PROT, MSR_PROT,
    // SHUTDOWN.
    assert_eq!(
        c.intercept_misc1,
        bits(&[0, 1, 2, 3, 15, 18, 22, 24, 26, 27, 28, 31])
    );
    // VMRUN, VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, MONITOR, MWAIT, XSETBV.
    assert_eq!(c.intercept_misc2, bits(&[0, 1, 2, 3, 4, 5, 6, 10, 11, 13]));
}

#[test]
fn every_debug_register_move_exits() {
    let c = &vcpu(PROTECTED).vmcb.control;
    // Reads of DR0-DR7 in bits 7:0, writes in bits 23:16.
    assert_eq!(
        c.intercept_dr,
        bits(&[0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23])
    );
}

#[test]
fn db_and_ac_are_always_intercepted() {
    let c = &vcpu(PROTECTED).vmcb.control;
    assert_eq!(c.intercept_exceptions, bits(&[1, 17]), "#DB and #AC");
}

#[test]
fn control_area_points_at_the_tables() {
    let v = vcpu(PROTECTED);
    let c = &v.vmcb.control;
    assert_eq!(c.iopm_base_pa, TABLES.iopm.0);
    assert_eq!(c.msrpm_base_pa, TABLES.msrpm.0);
    assert_eq!(c.n_cr3, TABLES.n_cr3.0);
    assert_eq!(c.guest_asid, 5);
    assert_eq!(c.tlb_control, 1, "flush the entire TLB: no FlushByAsid");
    assert_eq!(c.np_control, 1, "NP_ENABLE");
    assert_eq!(c.v_intr, 1 << 24, "V_INTR_MASKING");
    assert_eq!(c.event_inj, 0);
    assert_eq!(v.caps, CAPS);
}

#[test]
fn a_reused_asid_is_flushed_at_the_first_vmrun() {
    let caps = SvmCaps {
        flush_by_asid: true,
        ..CAPS
    };
    let v = vcpu_with(PROTECTED, caps);
    assert_eq!(v.vmcb.control.tlb_control, 3, "flush this guest's entries");
}

#[test]
fn save_area_holds_the_start_state() {
    let st = LONG.initial_state();
    let v = vcpu(LONG);
    let s = &v.vmcb.save;
    assert_eq!((s.cr0, s.cr3, s.cr4), (st.cr0, st.cr3, st.cr4));
    assert_eq!(s.efer, st.efer | 1 << 12, "SVME underneath");
    assert_eq!((s.rip, s.rflags, s.rsp), (0x20_0000, 2, 0));
    assert_eq!(v.gpr(Gpr::Rsi), 0x7000);
    assert_eq!((s.gdtr.base, s.gdtr.limit), (0x500, 0x1f));
    assert_eq!((s.idtr.base, s.idtr.limit), (0, 0));
    assert_eq!((s.tr.attrib, s.tr.limit), (0x8b, 0xff), "a busy 64-bit TSS");
    assert_eq!(s.ldtr.attrib, 0);
    assert_eq!((s.dr6, s.dr7), (0xffff_0ff0, 0x400));
    assert_eq!(s.g_pat, 0x0007_0406_0007_0406);
    assert_eq!(s.cpl, 0);
}

fn exits(page: &[u64; 512], msr: u32, write: bool) -> bool {
    let (base, index) = if msr >= 0xc000_0000 {
        (0x800, msr - 0xc000_0000)
    } else {
        (0, msr)
    };
    let bit = base * 8 + index as usize * 2 + write as usize;
    page[bit / 64] & (1 << (bit % 64)) != 0
}

#[test]
fn only_the_pass_through_msrs_skip_the_exit() {
    let mut page = [u64::MAX; 512];
    msrpm_allow(&mut page);
    assert!(
        !exits(&page, 0xc000_0101, false) && !exits(&page, 0xc000_0101, true),
        "GS base"
    );
    assert!(
        exits(&page, 0x10, false) && exits(&page, 0x10, true),
        "TSC exits"
    );
    assert!(
        exits(&page, 0xc000_0080, false) && exits(&page, 0xc000_0080, true),
        "EFER exits"
    );
    assert!(exits(&page, 0x1b, true), "APIC base exits");
    assert!(
        exits(&page, 0x277, false) && exits(&page, 0x277, true),
        "PAT exits: QEMU's VMRUN does not switch G_PAT"
    );
    assert!(exits(&page, 0x1a0, false), "MISC_ENABLE exits");
}
