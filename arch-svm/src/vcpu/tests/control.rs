//! CR0, CR4 and EFER writes go through the core's `CpuRules`; SVME stays set underneath
//! the guest's EFER (APM Vol 2 15.5.1).

use super::{vcpu, LONG, PROTECTED};
use vmm_core::cpu_rules::{cr0, cr4, efer};
use vmm_core::vcpu::{ArchVcpu, ControlReg, Event, StateMsr};

/// EFER.SVME, bit 12 (APM Vol 2 3.1.7).
const SVME: u64 = 1 << 12;

#[test]
fn cr4_refuses_reserved_bits_and_what_cpuid_hides() {
    let mut v = vcpu(PROTECTED);
    let hidden = [
        cr4::VMXE,
        cr4::SMXE,
        cr4::PCIDE,
        cr4::OSXSAVE,
        cr4::LA57,
        cr4::PKE,
        cr4::CET,
    ];
    let reserved = [1 << 15, 1 << 25, 1 << 31, 1 << 32, 1 << 63];
    for bit in hidden.into_iter().chain(reserved) {
        assert_eq!(
            v.set_cr(ControlReg::Cr4, cr4::PAE | bit),
            Err(Event::gp(0)),
            "CR4 bit {bit:#x}"
        );
        assert_eq!(v.cr(ControlReg::Cr4), 0, "a refused write changes nothing");
    }
    let allowed = cr4::PAE | cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT | cr4::SMEP;
    assert_eq!(v.set_cr(ControlReg::Cr4, allowed), Ok(()));
    assert_eq!(v.cr(ControlReg::Cr4), allowed);
    assert_eq!(v.vmcb.save.cr4, allowed);
}

#[test]
fn cr0_refuses_nw_without_cd() {
    let mut v = vcpu(PROTECTED);
    let before = v.cr(ControlReg::Cr0);
    assert_eq!(
        v.set_cr(ControlReg::Cr0, before | cr0::NW),
        Err(Event::gp(0))
    );
    assert_eq!(v.cr(ControlReg::Cr0), before);
    let cached = before | cr0::NW | cr0::CD;
    assert_eq!(v.set_cr(ControlReg::Cr0, cached), Ok(()));
    assert_eq!(v.vmcb.save.cr0, cached);
}

#[test]
fn cr2_and_cr3_are_written_as_given() {
    let mut v = vcpu(LONG);
    v.set_cr(ControlReg::Cr3, 0x42_3000).unwrap();
    v.set_cr(ControlReg::Cr2, 0xdead_b000).unwrap();
    assert_eq!((v.vmcb.save.cr3, v.vmcb.save.cr2), (0x42_3000, 0xdead_b000));
    assert_eq!(v.cr(ControlReg::Cr3), 0x42_3000);
    assert_eq!(v.cr(ControlReg::Cr2), 0xdead_b000);
}

/// Bochs' VMRUN does not load CR2 from the VMCB (`crate::cr2`): the loaded vCPU's CR2 is
/// in the CPU too, written at `load` and when set while loaded.
#[test]
fn cr2_is_in_the_cpu_while_loaded() {
    use crate::cr2::fake::hardware;
    let mut a = vcpu(LONG);
    let mut b = vcpu(LONG);
    a.set_cr(ControlReg::Cr2, 0xa000).unwrap();
    assert_eq!(hardware(), None, "not loaded: the CPU is left alone");
    a.load();
    assert_eq!(hardware(), Some(0xa000), "load puts it in");
    a.set_cr(ControlReg::Cr2, 0xa100).unwrap();
    assert_eq!(hardware(), Some(0xa100), "loaded: written through");
    a.put();
    // The guest faulted on b at 0xb000 (VMRUN's exit saved it); a loaded after it gets
    // its own back.
    b.vmcb.save.cr2 = 0xb000;
    b.load();
    assert_eq!(hardware(), Some(0xb000));
    b.put();
    a.load();
    assert_eq!(hardware(), Some(0xa100), "a's own, not b's");
}

#[test]
fn efer_keeps_svme_underneath_and_hides_it() {
    let mut v = vcpu(PROTECTED);
    assert_eq!(v.vmcb.save.efer, SVME, "set from the start");
    assert_eq!(v.state_msr(StateMsr::Efer), 0);
    let guest = efer::SCE | efer::LME | efer::NXE;
    assert_eq!(v.set_state_msr(StateMsr::Efer, guest), Ok(()));
    assert_eq!(v.vmcb.save.efer, guest | SVME);
    assert_eq!(v.state_msr(StateMsr::Efer), guest);
    // The guest cannot touch SVME either way.
    assert_eq!(
        v.set_state_msr(StateMsr::Efer, guest | SVME),
        Err(Event::gp(0))
    );
    assert_eq!(v.vmcb.save.efer, guest | SVME);
    // Paging on with LME activates long mode; SVME survives a CR0 write too.
    v.set_cr(ControlReg::Cr4, cr4::PAE).unwrap();
    v.set_cr(ControlReg::Cr0, cr0::PE | cr0::ET | cr0::PG)
        .unwrap();
    assert_eq!(v.vmcb.save.efer, guest | efer::LMA | SVME);
    assert_eq!(v.state_msr(StateMsr::Efer), guest | efer::LMA);
}

#[test]
fn the_rules_see_cs_l_in_64_bit_code() {
    // Leaving long mode from 64-bit code is #GP (APM Vol 2 14.7); CS.L is attribute bit 9.
    let mut v = vcpu(LONG);
    assert_eq!(v.set_cr(ControlReg::Cr0, cr0::PE), Err(Event::gp(0)));
    v.vmcb.save.cs.attrib &= !(1 << 9);
    assert_eq!(v.set_cr(ControlReg::Cr0, cr0::PE), Ok(()));
    assert_eq!(v.state_msr(StateMsr::Efer) & efer::LMA, 0);
}
