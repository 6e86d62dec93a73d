//! VMCB clean bits (APM Vol 2 15.15.3): after an exit every group is marked clean, and
//! each change the vCPU makes to the VMCB clears the bit of the group it touched, found
//! here by comparing the VMCB's bytes before and after against Table 15-9.

use super::{vcpu_with, CAPS, PROTECTED};
use crate::caps::SvmCaps;
use crate::vcpu::SvmVcpu;
use crate::vmcb::Vmcb;
use vmm_core::cpu_rules::{cr0, efer};
use vmm_core::vcpu::{ArchVcpu, ControlReg, DebugReg, Event, Gpr, StateMsr};

const CLEAN_CAPS: SvmCaps = SvmCaps {
    vmcb_clean: true,
    ..CAPS
};

/// Clean bits 0-10 (APM Vol 2 Table 15-9).
const ALL: u32 = 0x7ff;
/// The CPUID exit code (APM Vol 2 Appendix C).
const CPUID: u64 = 0x72;

/// The clean-bit group of the VMCB byte at `off`, where it has one (APM Vol 2 Table 15-9,
/// offsets from Appendix B).
fn group_of(off: usize) -> Option<u32> {
    Some(match off {
        // Intercept vectors, pause filter threshold and count, TSC offset.
        0x00..=0x13 | 0x3c..=0x3f | 0x50..=0x57 => 0,
        // IOPM and MSRPM base addresses.
        0x40..=0x4f => 1,
        0x58..=0x5b => 2,
        // V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR.
        0x60..=0x67 => 3,
        // NP_ENABLE, N_CR3, G_PAT.
        0x90..=0x97 | 0xb0..=0xb7 | 0x668..=0x66f => 4,
        // EFER, CR4, CR3, CR0.
        0x4d0..=0x4d7 | 0x548..=0x55f => 5,
        // DR7, DR6.
        0x560..=0x56f => 6,
        // GDTR, IDTR.
        0x460..=0x46f | 0x480..=0x48f => 7,
        // ES, CS, SS, DS, CPL.
        0x400..=0x43f | 0x4cb => 8,
        0x640..=0x647 => 9,
        // LBR virtualization enable, DBGCTL and the branch records.
        0xb8..=0xbf | 0x670..=0x697 => 10,
        _ => return None,
    })
}

fn bytes(v: &SvmVcpu) -> Vec<u8> {
    let vmcb: &Vmcb = &v.vmcb;
    // SAFETY: a `Vmcb` is 4 KiB of integers and byte arrays (layout.rs asserts the size),
    // every byte of which is initialized; the slice lives no longer than the borrow.
    unsafe { std::slice::from_raw_parts((vmcb as *const Vmcb).cast::<u8>(), 4096) }.to_vec()
}

/// A vCPU right after a CPUID exit on a CPU with clean bits.
fn after_exit() -> SvmVcpu {
    let mut v = vcpu_with(PROTECTED, CLEAN_CAPS);
    v.vmcb.control.exit_code = CPUID;
    super::exit(&mut v).unwrap();
    v
}

#[test]
fn an_exit_marks_every_group_clean_where_the_cpu_has_clean_bits() {
    assert_eq!(after_exit().vmcb.control.vmcb_clean, ALL);
    let mut v = vcpu_with(PROTECTED, CAPS);
    v.vmcb.control.exit_code = CPUID;
    super::exit(&mut v).unwrap();
    assert_eq!(v.vmcb.control.vmcb_clean, 0, "without VmcbClean: all dirty");
}

#[test]
fn loading_the_vcpu_marks_every_group_dirty() {
    // Another VMCB may have run on this CPU, or this one elsewhere (APM Vol 2 15.15.3).
    let mut v = after_exit();
    v.load();
    assert_eq!(v.vmcb.control.vmcb_clean, 0);
    v.put();
}

#[test]
fn each_change_clears_exactly_the_groups_of_the_bytes_it_changed() {
    type Change = (&'static str, fn(&mut SvmVcpu));
    let changes: [Change; 20] = [
        ("cr0", |v| {
            v.set_cr(ControlReg::Cr0, cr0::PE | cr0::ET | cr0::WP)
                .unwrap()
        }),
        ("cr2", |v| v.set_cr(ControlReg::Cr2, 0xdead_b000).unwrap()),
        ("cr3", |v| v.set_cr(ControlReg::Cr3, 0x5000).unwrap()),
        ("cr4", |v| v.set_cr(ControlReg::Cr4, 1 << 5).unwrap()),
        ("efer", |v| {
            v.set_state_msr(StateMsr::Efer, efer::LME).unwrap()
        }),
        ("pat", |v| v.set_state_msr(StateMsr::Pat, 0x0606).unwrap()),
        ("lstar", |v| {
            v.set_state_msr(StateMsr::Lstar, 0x1000).unwrap()
        }),
        ("fs base", |v| {
            v.set_state_msr(StateMsr::FsBase, 0x2000).unwrap()
        }),
        ("dr7", |v| v.set_debug_reg(DebugReg::Dr7, 0x401)),
        ("dr6", |v| v.set_debug_reg(DebugReg::Dr6, 0xffff_4ff1)),
        ("dr0 (not in the VMCB)", |v| {
            v.set_debug_reg(DebugReg::Dr0, 0x3000)
        }),
        ("window on", |v| v.request_interrupt_window(true)),
        ("window off (already)", |v| {
            v.request_interrupt_window(false)
        }),
        ("tsc offset", |v| v.set_tsc_offset(0x1234)),
        ("cr8", |v| v.set_tpr_shadow(5)),
        ("cr8 (same)", |v| v.set_tpr_shadow(0)),
        ("inject", |v| v.inject(Event::Interrupt(0x30))),
        ("rax", |v| v.set_gpr(Gpr::Rax, 7)),
        ("rsp", |v| v.set_gpr(Gpr::Rsp, 0x8000)),
        ("retire", |v| v.retire(0x1002)),
    ];
    for (what, change) in changes {
        let mut v = after_exit();
        let before = bytes(&v);
        change(&mut v);
        let after = bytes(&v);
        let touched = (0..4096)
            .filter(|&i| before[i] != after[i])
            .filter_map(group_of)
            .fold(0, |bits, g| bits | 1 << g);
        assert_eq!(
            v.vmcb.control.vmcb_clean,
            ALL & !touched,
            "{what}: groups touched {touched:#x}"
        );
    }
}

#[test]
fn closing_the_interrupt_window_clears_its_groups_too() {
    let mut v = after_exit();
    v.request_interrupt_window(true);
    v.vmcb.control.vmcb_clean = ALL;
    v.request_interrupt_window(false);
    assert_eq!(
        v.vmcb.control.vmcb_clean,
        ALL & !0b1001,
        "intercepts and V_IRQ"
    );
}
