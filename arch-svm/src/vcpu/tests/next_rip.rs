//! Where the instruction behind an exit ends: nRIP (APM Vol 2 15.7.1), the IOIO exit's
//! EXITINFO2 (15.10.2), or decoding it; and what reading an exit resets.

use super::{vcpu_with, CAPS, ENTRY, NRIP_CAPS, PROTECTED};
use std::ptr::NonNull;
use std::vec;
use vmm_core::addr::{GuestPhys, HostPhys};
use vmm_core::exit::VmExit;
use vmm_core::fetch::InsnCache;
use vmm_core::memory::GuestMemory;
use vmm_core::vcpu::{ArchVcpu, Event};

const CPUID: u64 = 0x72;
const IOIO: u64 = 0x7b;

/// 64 KiB of guest RAM at 0 holding `insn` at `ENTRY`.
pub(super) fn ram_with(insn: &[u8]) -> GuestMemory {
    let buf = vec![0u8; 0x1_0000].leak();
    buf[ENTRY as usize..][..insn.len()].copy_from_slice(insn);
    let mut m = GuestMemory::new();
    // SAFETY: the leaked buffer lives forever and nothing else uses it.
    unsafe {
        m.add_region(
            GuestPhys(0),
            HostPhys(0x1000_0000),
            buf.len() as u64,
            NonNull::from(&mut buf[0]),
        )
    }
    .unwrap();
    m
}

#[test]
fn nrip_save_gives_the_next_rip() {
    let mut v = vcpu_with(PROTECTED, NRIP_CAPS);
    v.vmcb.control.exit_code = CPUID;
    v.vmcb.control.next_rip = 0x1002;
    assert_eq!(super::exit(&mut v), Ok(VmExit::Cpuid));
    assert_eq!(
        v.next_rip(&GuestMemory::new(), &mut InsnCache::default()),
        Ok(0x1002),
        "no decoding"
    );
}

#[test]
fn the_reported_next_rip_is_for_one_instruction_only() {
    let mem = ram_with(&[0x0f, 0xa2]); // CPUID at ENTRY
    let mut v = vcpu_with(PROTECTED, NRIP_CAPS);
    v.vmcb.control.exit_code = CPUID;
    v.vmcb.control.next_rip = 0x5555;
    super::exit(&mut v).unwrap();
    v.retire(u64::from(ENTRY));
    // Completed: the nRIP no longer applies; the instruction at RIP is decoded.
    assert_eq!(
        v.next_rip(&mem, &mut InsnCache::default()),
        Ok(u64::from(ENTRY) + 2)
    );
    // The next exit reports again.
    super::exit(&mut v).unwrap();
    assert_eq!(v.next_rip(&mem, &mut InsnCache::default()), Ok(0x5555));
}

#[test]
fn ioio_exits_give_the_next_rip_in_exitinfo2() {
    let mut v = vcpu_with(PROTECTED, CAPS);
    v.vmcb.control.exit_code = IOIO;
    v.vmcb.control.exit_info1 = 0x80_0000 | (1 << 4);
    v.vmcb.control.exit_info2 = 0x1002;
    assert!(matches!(super::exit(&mut v), Ok(VmExit::Io(_))));
    assert_eq!(
        v.next_rip(&GuestMemory::new(), &mut InsnCache::default()),
        Ok(0x1002)
    );
}

#[test]
fn without_nrip_save_the_instruction_is_decoded() {
    let mem = ram_with(&[0x0f, 0xa2]); // CPUID
    let mut v = vcpu_with(PROTECTED, CAPS);
    v.vmcb.control.exit_code = CPUID;
    v.vmcb.control.next_rip = 0x9999;
    super::exit(&mut v).unwrap();
    assert_eq!(
        v.next_rip(&mem, &mut InsnCache::default()),
        Ok(u64::from(ENTRY) + 2)
    );
    // With NRIP save but no nRIP (0), too.
    let mut v = vcpu_with(PROTECTED, NRIP_CAPS);
    v.vmcb.control.exit_code = CPUID;
    super::exit(&mut v).unwrap();
    assert_eq!(
        v.next_rip(&mem, &mut InsnCache::default()),
        Ok(u64::from(ENTRY) + 2)
    );
    assert!(
        v.next_rip(&GuestMemory::new(), &mut InsnCache::default())
            .is_err(),
        "no RAM: an error, not a guess"
    );
}

#[test]
fn a_prefixed_instruction_goes_through_the_decoder() {
    // CPUID with an operand-size prefix is 3 bytes, not the plain opcode's 2.
    let mem = ram_with(&[0x66, 0x0f, 0xa2]);
    let mut v = vcpu_with(PROTECTED, CAPS);
    v.vmcb.control.exit_code = CPUID;
    super::exit(&mut v).unwrap();
    assert_eq!(
        v.next_rip(&mem, &mut InsnCache::default()),
        Ok(u64::from(ENTRY) + 3)
    );
    // WRMSR (EXITINFO1 1) and RDMSR (0) by their own opcodes; a VMMCALL.
    for (bytes, code, info1, len) in [
        (&[0x0f, 0x30][..], 0x7c, 1, 2),
        (&[0x0f, 0x32][..], 0x7c, 0, 2),
        (&[0x0f, 0x01, 0xd9][..], 0x81, 0, 3),
        (&[0xf4][..], 0x78, 0, 1),
    ] {
        let mem = ram_with(bytes);
        let mut v = vcpu_with(PROTECTED, CAPS);
        v.vmcb.control.exit_code = code;
        v.vmcb.control.exit_info1 = info1;
        super::exit(&mut v).unwrap();
        assert_eq!(
            v.next_rip(&mem, &mut InsnCache::default()),
            Ok(u64::from(ENTRY) + len),
            "{bytes:x?}"
        );
    }
}

#[test]
fn reading_an_exit_resets_tlb_control_and_clean_bits() {
    let mut v = vcpu_with(PROTECTED, CAPS);
    assert_eq!(v.vmcb.control.tlb_control, 1, "flush at the first VMRUN");
    v.vmcb.control.vmcb_clean = 0xfff;
    v.vmcb.control.exit_code = CPUID;
    super::exit(&mut v).unwrap();
    assert_eq!(v.vmcb.control.tlb_control, 0);
    assert_eq!(v.vmcb.control.vmcb_clean, 0);
}

#[test]
fn vmexit_invalid_is_an_error() {
    let mut v = vcpu_with(PROTECTED, CAPS);
    v.vmcb.control.exit_code = u64::MAX;
    assert!(super::exit(&mut v).is_err());
}

#[test]
fn an_interrupted_delivery_is_queued_again() {
    let mut v = vcpu_with(PROTECTED, CAPS);
    let pf = (1u64 << 31) | (1 << 11) | (3 << 8) | 14 | (2 << 32);
    v.vmcb.control.exit_code = 0x400;
    v.vmcb.control.exit_int_info = pf;
    super::exit(&mut v).unwrap();
    assert_eq!(v.vmcb.control.event_inj, pf);
    // An event queued already wins.
    v.inject(Event::Interrupt(0x40));
    super::exit(&mut v).unwrap();
    assert_eq!(v.vmcb.control.event_inj, (1 << 31) | 0x40);
}
