//! The vCPU over a fake VMCS: set-up, control registers, MSRs, interrupts, injection and
//! VMCS access failures. Field encodings in expectations are written out from SDM Vol 3C
//! Appendix B where a test checks which field a value lands in.

use super::*;
use crate::caps::tests::bochs_like;
use crate::controls::pin;
use crate::host_state::HostState;
use crate::structures::Structures;
use crate::test_frames::{memory, Frames};
use crate::vmcs::fake::FakeVmcs;
use crate::vpid::VpidPool;
use vmm_core::addr::HostPhys;
use vmm_core::cpu_rules::{cr0, cr4, efer};
use vmm_core::vcpu::StartMode;

/// A CPU with everything: every CR4 and EFER feature (the `CpuRules` tests' `full`).
pub(super) fn full(leaf: u32, _sub: u32) -> [u32; 4] {
    match leaf {
        0 => [0xd, 0, 0, 0],
        1 => [0, 0, u32::MAX, u32::MAX],
        7 => [0, u32::MAX, u32::MAX, 0],
        0xd => [0x7, 0, 0, 0],
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        0x8000_0001 => [0, 0, 0, u32::MAX],
        _ => [0; 4],
    }
}

const LONG: StartMode = StartMode::Long64 {
    rip: 0x20_0000,
    rsi: 0x7000,
    cr3: 0x1000,
    gdt_base: 0x5000,
    gdt_limit: 0x1f,
};

pub(super) const PROT: StartMode = StartMode::Protected32 {
    entry: 0x10_0000,
    eax: 0x2bad_b002,
    ebx: 0x9000,
};

/// A VPID pool of the test's own.
pub(super) fn pool() -> &'static VpidPool {
    Box::leak(Box::new(VpidPool::new()))
}

/// A vCPU over a fake VMCS with Bochs' capabilities (CR0 FIXED0 = PG|NE|PE, CR4 FIXED0 =
/// VMXE) and structures taken from `frames`, or made up (never freed) without.
pub(super) fn vcpu_from(
    start: StartMode,
    vmcs: FakeVmcs,
    frames: Option<&mut Frames>,
    vpids: &'static VpidPool,
) -> Result<VmxVcpu<FakeVmcs>, VcpuError> {
    let mut none = Frames::new(0);
    let (s, frames) = match frames {
        Some(f) => (
            Structures::allocate(&memory(), 0x2b, vpids.take(), f).unwrap(),
            f,
        ),
        None => {
            let s = Structures {
                vmcs: HostPhys(0x8000),
                ept_root: HostPhys(0x7000),
                msr_bitmap: HostPhys(0x9000),
                vpid: vpids.take(),
                apic: None,
            };
            (s, &mut none)
        }
    };
    let rules = CpuRules::for_guest(full);
    let host = HostState::default();
    VmxVcpu::setup(vmcs, bochs_like(0xff), rules, start, s, &host, frames)
}

/// A vCPU as `vcpu_from` makes it, loaded on this thread's pretend CPU.
pub(super) fn vcpu(start: StartMode) -> VmxVcpu<FakeVmcs> {
    let mut v = vcpu_from(start, FakeVmcs::default(), None, pool()).unwrap();
    v.load();
    v
}

/// The raw value of the field with encoding `enc`.
pub(super) fn raw(v: &VmxVcpu<FakeVmcs>, enc: u32) -> u64 {
    v.vmcs.fields[&enc]
}

pub(super) fn set_raw(v: &mut VmxVcpu<FakeVmcs>, enc: u32, value: u64) {
    v.vmcs.fields.insert(enc, value);
}

pub(super) const PRIMARY_PROC_BASED: u32 = 0x4002;
pub(super) const ENTRY_CONTROLS: u32 = 0x4012;
const ENTRY_INTERRUPTION_INFO: u32 = 0x4016;
const ENTRY_ERROR_CODE: u32 = 0x4018;
const CR0_READ_SHADOW: u32 = 0x6004;
const CR4_READ_SHADOW: u32 = 0x6006;
const GUEST_CR0: u32 = 0x6800;
const GUEST_CR4: u32 = 0x6804;
pub(super) const GUEST_RIP: u32 = 0x681e;
pub(super) const GUEST_RFLAGS: u32 = 0x6820;
const GUEST_EFER: u32 = 0x2806;
pub(super) const INTERRUPTIBILITY: u32 = 0x4824;
const IA32E_MODE_GUEST: u64 = 1 << 9;

#[test]
fn setup_asks_for_the_exits_janus_handles() {
    let v = vcpu(PROT);
    let p1 = raw(&v, PRIMARY_PROC_BASED);
    // HLT (7), CR8 load (19) and store (20), unconditional I/O (24), MSR bitmaps (28),
    // secondary controls (31); no interrupt window yet (2).
    for bit in [7, 19, 20, 24, 28, 31] {
        assert_ne!(p1 & (1 << bit), 0, "bit {bit}");
    }
    assert_eq!(p1 & (1 << 2), 0);
    assert_eq!(raw(&v, ENTRY_CONTROLS) & IA32E_MODE_GUEST, 0);
    assert_eq!(raw(&v, 0x201a), 0x701e, "EPTP");
    assert_eq!(raw(&v, 0x0000), 1, "VPID");
    assert_eq!(raw(&v, 0x2004), 0x9000, "MSR bitmap");
    assert_eq!(raw(&v, 0x2800), u64::MAX, "VMCS link pointer");
    assert_eq!(raw(&v, 0x4820), 1 << 16, "LDTR unusable");
    assert_eq!(raw(&v, 0x4816), 0xc09b, "CS access rights");
    assert_eq!(raw(&v, 0x4822), 0x8b, "TR: busy TSS");
    assert_eq!(v.gpr(Gpr::Rax), 0x2bad_b002);
    assert_eq!(v.rip(), 0x10_0000);
    assert_eq!(v.access_result(), Ok(()));
}

#[test]
fn a_long_mode_start_sets_lma_and_the_ia32e_entry_control() {
    let v = vcpu(LONG);
    assert_ne!(raw(&v, ENTRY_CONTROLS) & IA32E_MODE_GUEST, 0);
    assert_eq!(raw(&v, GUEST_EFER), efer::LME | efer::LMA);
    assert_eq!(raw(&v, 0x4816), 0xa09b, "CS: L");
    assert_eq!(v.gpr(Gpr::Rsi), 0x7000);
}

#[test]
fn setup_fails_when_a_vmwrite_fails_and_gives_the_frames_back() {
    let fake = FakeVmcs {
        fail: Some(0x4826), // activity state
        ..Default::default()
    };
    let mut frames = Frames::new(64);
    let err = vcpu_from(PROT, fake, Some(&mut frames), pool())
        .err()
        .unwrap();
    assert_eq!(err.what, "VMWRITE of VMCS field failed");
    assert_eq!(err.code, 0x4826);
    assert_eq!(frames.live(), 0);
}

#[test]
fn cr_reads_return_the_guests_view_through_the_read_shadows() {
    let v = vcpu(PROT);
    // The CPU runs with NE (FIXED0) and VMXE (FIXED0); the guest sees PE|ET and 0.
    assert_eq!(raw(&v, GUEST_CR0), 0x31);
    assert_eq!(raw(&v, CR0_READ_SHADOW), 0x11);
    assert_eq!(v.cr(ControlReg::Cr0), 0x11);
    assert_eq!(raw(&v, GUEST_CR4), cr4::VMXE);
    assert_eq!(raw(&v, CR4_READ_SHADOW), 0);
    assert_eq!(v.cr(ControlReg::Cr4), 0);
    // Masks: NE (CR0) and VMXE, plus the bits this guest may not set (CR4).
    assert_eq!(raw(&v, 0x6000), cr0::NE);
    assert_ne!(raw(&v, 0x6002) & cr4::VMXE, 0);
    assert_eq!(raw(&v, 0x6002) & cr4::PAE, 0);
}

#[test]
fn set_cr_writes_the_shadow_and_the_real_value_with_the_fixed_bits() {
    let mut v = vcpu(PROT);
    let cd = cr0::PE | cr0::ET | cr0::CD;
    assert_eq!(v.set_cr(ControlReg::Cr0, cd), Ok(()));
    assert_eq!(raw(&v, CR0_READ_SHADOW), cd);
    assert_eq!(raw(&v, GUEST_CR0), cd | cr0::NE);
    assert_eq!(v.cr(ControlReg::Cr0), cd);
    assert_eq!(v.set_cr(ControlReg::Cr4, cr4::PAE), Ok(()));
    assert_eq!(raw(&v, CR4_READ_SHADOW), cr4::PAE);
    assert_eq!(raw(&v, GUEST_CR4), cr4::PAE | cr4::VMXE);
    assert_eq!(v.cr(ControlReg::Cr4), cr4::PAE);
    assert_eq!(v.set_cr(ControlReg::Cr3, 0x5000), Ok(()));
    assert_eq!(raw(&v, 0x6802), 0x5000);
    assert_eq!(v.set_cr(ControlReg::Cr2, 0xdead), Ok(()));
    assert_eq!(v.cr(ControlReg::Cr2), 0xdead);
}

#[test]
fn cr0_writes_go_through_the_rules() {
    let mut v = vcpu(PROT);
    // NW without CD (SDM Vol 3A 2.5) and PG without PE are #GP(0); nothing changes.
    assert_eq!(
        v.set_cr(ControlReg::Cr0, cr0::PE | cr0::NW),
        Err(Event::gp(0))
    );
    assert_eq!(v.set_cr(ControlReg::Cr0, cr0::PG), Err(Event::gp(0)));
    assert_eq!(v.cr(ControlReg::Cr0), 0x11);
    assert_eq!(raw(&v, GUEST_CR0), 0x31);
}

#[test]
fn hidden_and_reserved_cr4_bits_are_refused() {
    let mut v = vcpu(PROT);
    // The CPUID policy hides VMX and PCID; bit 15 is reserved.
    for bit in [cr4::VMXE, cr4::PCIDE, 1 << 15] {
        assert_eq!(
            v.set_cr(ControlReg::Cr4, bit),
            Err(Event::gp(0)),
            "{bit:#x}"
        );
    }
    assert_eq!(v.cr(ControlReg::Cr4), 0);
}

#[test]
fn paging_on_with_lme_enters_long_mode_and_off_leaves_it() {
    let mut v = vcpu(PROT);
    assert_eq!(v.set_state_msr(StateMsr::Efer, efer::LME), Ok(()));
    assert_eq!(v.set_cr(ControlReg::Cr4, cr4::PAE), Ok(()));
    let on = cr0::PE | cr0::ET | cr0::PG;
    assert_eq!(v.set_cr(ControlReg::Cr0, on), Ok(()));
    assert_eq!(v.state_msr(StateMsr::Efer), efer::LME | efer::LMA);
    assert_ne!(raw(&v, ENTRY_CONTROLS) & IA32E_MODE_GUEST, 0);
    assert_eq!(raw(&v, GUEST_CR0), on | cr0::NE);
    // CS is 32-bit here (compatibility mode), so paging may go off again.
    assert_eq!(v.set_cr(ControlReg::Cr0, cr0::PE | cr0::ET), Ok(()));
    assert_eq!(v.state_msr(StateMsr::Efer), efer::LME);
    assert_eq!(raw(&v, ENTRY_CONTROLS) & IA32E_MODE_GUEST, 0);
}

#[test]
fn efer_writes_go_through_the_rules() {
    let mut v = vcpu(PROT);
    assert_eq!(
        v.set_state_msr(StateMsr::Efer, efer::SVME),
        Err(Event::gp(0))
    );
    assert_eq!(v.set_state_msr(StateMsr::Efer, 1 << 1), Err(Event::gp(0)));
    // LMA is read-only.
    assert_eq!(
        v.set_state_msr(StateMsr::Efer, efer::LMA | efer::NXE),
        Ok(())
    );
    assert_eq!(raw(&v, GUEST_EFER), efer::NXE);
    // LME cannot change while paging is on.
    let mut lm = vcpu(LONG);
    assert_eq!(lm.set_state_msr(StateMsr::Efer, 0), Err(Event::gp(0)));
}

#[test]
fn state_msrs_read_back_and_land_in_their_fields() {
    let mut v = vcpu(PROT);
    // (MSR, its VMCS field or None for those VT-x does not switch, a value).
    let table = [
        (StateMsr::Pat, Some(0x2804), 0x0007_0406_0007_0407),
        (StateMsr::FsBase, Some(0x680e), 0x1000),
        (StateMsr::GsBase, Some(0x6810), 0x2000),
        (StateMsr::SysenterCs, Some(0x482a), 0x10),
        (StateMsr::SysenterEsp, Some(0x6824), 0x3000),
        (StateMsr::SysenterEip, Some(0x6826), 0x4000),
        (StateMsr::KernelGsBase, None, 0x5000),
        (StateMsr::Star, None, 0x0023_0010_0000_0000),
        (StateMsr::Lstar, None, 0xffff_8000_0000_1000),
        (StateMsr::Cstar, None, 0xffff_8000_0000_2000),
        (StateMsr::Fmask, None, 0x4700),
    ];
    for (m, field, value) in table {
        assert_eq!(v.set_state_msr(m, value), Ok(()), "{m:?}");
        if let Some(f) = field {
            assert_eq!(raw(&v, f), value, "{m:?}");
        }
    }
    for (m, _, value) in table {
        assert_eq!(v.state_msr(m), value, "{m:?}");
    }
    assert_eq!(v.set_state_msr(StateMsr::Efer, efer::SCE), Ok(()));
    assert_eq!(v.state_msr(StateMsr::Efer), efer::SCE);
    assert_eq!(v.access_result(), Ok(()));
}

#[test]
fn retire_moves_rip_and_ends_the_sti_and_mov_ss_shadow() {
    let mut v = vcpu(PROT);
    // Blocking by STI (0), by MOV SS (1), and by NMI (3), which stays.
    set_raw(&mut v, INTERRUPTIBILITY, 0b1011);
    v.retire(0x10_0002);
    assert_eq!(raw(&v, GUEST_RIP), 0x10_0002);
    assert_eq!(raw(&v, INTERRUPTIBILITY), 0b1000);
}

#[test]
fn interrupts_are_open_with_if_no_shadow_and_nothing_queued() {
    let mut v = vcpu(PROT);
    assert!(!v.interrupts_open(), "IF clear");
    set_raw(&mut v, GUEST_RFLAGS, 0x202);
    assert!(v.interrupts_open());
    for shadow in [1, 2] {
        set_raw(&mut v, INTERRUPTIBILITY, shadow);
        assert!(!v.interrupts_open(), "shadow {shadow}");
    }
    set_raw(&mut v, INTERRUPTIBILITY, 0);
    v.inject(Event::Interrupt(0x20));
    assert!(!v.interrupts_open(), "an event is queued");
}

#[test]
fn the_interrupt_window_request_toggles_its_control_bit() {
    let mut v = vcpu(PROT);
    let before = raw(&v, PRIMARY_PROC_BASED);
    v.request_interrupt_window(true);
    assert_eq!(raw(&v, PRIMARY_PROC_BASED), before | (1 << 2));
    v.request_interrupt_window(true);
    assert_eq!(raw(&v, PRIMARY_PROC_BASED), before | (1 << 2));
    v.request_interrupt_window(false);
    assert_eq!(raw(&v, PRIMARY_PROC_BASED), before);
    // Asking for what is already set touches no field: not even a VMREAD (which would
    // fail here and fail the next run).
    v.vmcs.fail = Some(PRIMARY_PROC_BASED);
    v.request_interrupt_window(false);
    v.vmcs.fail = None;
    exit_with(&mut v, 12, 0, 1);
    assert_eq!(v.run(), Ok(VmExit::Hlt));
}

#[test]
fn pause_exits_toggle_their_control_bit() {
    let mut v = vcpu(PROT);
    let before = raw(&v, PRIMARY_PROC_BASED);
    assert_eq!(before & (1 << 30), 0, "off unless asked");
    v.set_pause_exits(true);
    assert_eq!(raw(&v, PRIMARY_PROC_BASED), before | (1 << 30));
    // The interrupt-window request keeps it (one copy of the controls).
    v.request_interrupt_window(true);
    assert_eq!(raw(&v, PRIMARY_PROC_BASED), before | (1 << 30) | (1 << 2));
    v.request_interrupt_window(false);
    v.set_pause_exits(false);
    assert_eq!(raw(&v, PRIMARY_PROC_BASED), before);
}

/// Leaves a VM exit with basic reason `reason` in the exit-information fields.
pub(super) fn exit_with(v: &mut VmxVcpu<FakeVmcs>, reason: u32, qualification: u64, insn_len: u64) {
    for (enc, value) in [
        (0x4402, reason as u64),
        (0x6400, qualification),
        (0x440e, 0),
        (0x4404, 0),
        (0x4406, 0),
        (0x2400, 0),
        (0x440c, insn_len),
        (0x4408, 0),
    ] {
        set_raw(v, enc, value);
    }
}

#[test]
fn run_injects_the_queued_event_and_decodes_the_exit() {
    let mut v = vcpu(PROT);
    v.inject(Event::gp(0x18));
    exit_with(&mut v, 12, 0, 1);
    assert_eq!(v.run(), Ok(VmExit::Hlt));
    assert_eq!(v.vmcs.entries, 1);
    assert_eq!(raw(&v, ENTRY_INTERRUPTION_INFO), 0x8000_0b0d);
    assert_eq!(raw(&v, ENTRY_ERROR_CODE), 0x18);
    let mem = GuestMemory::new();
    assert_eq!(v.next_rip(&mem, &mut InsnCache::default()), Ok(0x10_0001));
    // Real mode: the same #GP goes without its error code.
    v.set_cr(ControlReg::Cr0, 0x10).unwrap();
    v.inject(Event::gp(0x18));
    assert_eq!(v.run(), Ok(VmExit::Hlt));
    assert_eq!(raw(&v, ENTRY_INTERRUPTION_INFO), 0x8000_030d);
}

#[test]
fn an_interrupted_delivery_is_queued_again() {
    let mut v = vcpu(PROT);
    exit_with(&mut v, 48, 2, 0);
    set_raw(&mut v, 0x4408, 0x8000_1b0e); // #PF being delivered, bit 12 set
    set_raw(&mut v, 0x440a, 6);
    assert!(matches!(v.run(), Ok(VmExit::NestedPageFault { .. })));
    set_raw(&mut v, 0x4408, 0);
    exit_with(&mut v, 12, 0, 1);
    assert_eq!(v.run(), Ok(VmExit::Hlt));
    assert_eq!(raw(&v, ENTRY_INTERRUPTION_INFO), 0x8000_0b0e);
    assert_eq!(raw(&v, ENTRY_ERROR_CODE), 6);
}

#[test]
fn an_instruction_exit_reads_no_idt_vectoring_information() {
    let mut v = vcpu(PROT);
    // CPUID, RDMSR, OUT: the IDT-vectoring field cannot be valid, and is not read (a read
    // of it would fail here).
    for (reason, q) in [(10, 0), (31, 0), (30, 0x3f8 << 16)] {
        exit_with(&mut v, reason, q, 2);
        v.vmcs.fail = Some(0x4408);
        assert!(v.run().is_ok(), "exit reason {reason}");
    }
    // An EPT violation may have interrupted a delivery: read.
    exit_with(&mut v, 48, 2, 0);
    v.vmcs.fail = Some(0x4408);
    assert_eq!(v.run().unwrap_err().code, 0x4408);
}

#[test]
fn an_in_or_out_exit_reads_neither_instruction_information_nor_the_mode() {
    let mut v = vcpu(PROT);
    // OUT DX, AL to 0x3f8: none of these is read (each read would fail here).
    for field in [0x440e, 0x4816, 0x2806] {
        exit_with(&mut v, 30, 0x3f8 << 16, 1);
        v.vmcs.fail = Some(field);
        assert!(v.run().is_ok(), "field {field:#x} read");
    }
    // OUTSB (string, bit 4): the instruction information is read.
    exit_with(&mut v, 30, (0x3f8 << 16) | (1 << 4), 1);
    v.vmcs.fail = Some(0x440e);
    assert_eq!(v.run().unwrap_err().code, 0x440e);
}

#[test]
fn a_failed_entry_is_an_error() {
    let mut v = vcpu(PROT);
    exit_with(&mut v, (1 << 31) | 33, 0, 0);
    let err = v.run().unwrap_err();
    assert_eq!(err.what, "VM entry failed: invalid guest state");
}

#[test]
fn a_failed_vmcs_access_ends_the_guest_at_the_next_run() {
    let mut v = vcpu(PROT);
    exit_with(&mut v, 12, 0, 1);
    v.vmcs.fail = Some(GUEST_RIP);
    assert_eq!(v.rip(), 0, "the getter cannot fail");
    v.vmcs.fail = None;
    let mem = GuestMemory::new();
    let want = VcpuError {
        what: "VMREAD of VMCS field failed",
        code: GUEST_RIP as u64,
    };
    assert_eq!(v.next_rip(&mem, &mut InsnCache::default()), Err(want));
    assert_eq!(v.run(), Err(want));
    assert_eq!(v.vmcs.entries, 0, "the guest did not run");
}

#[test]
fn a_failed_vmwrite_is_reported_too() {
    let mut v = vcpu(PROT);
    v.vmcs.fail = Some(GUEST_RIP);
    v.retire(0x10_0002);
    v.vmcs.fail = None;
    let err = v.run().unwrap_err();
    assert_eq!(
        (err.what, err.code),
        ("VMWRITE of VMCS field failed", 0x681e)
    );
}

#[test]
fn segments_and_cpl_read_from_the_vmcs() {
    let v = vcpu(PROT);
    let cs = v.segment(SegReg::Cs);
    assert_eq!(
        (cs.selector, cs.base, cs.limit, cs.attr),
        (8, 0, 0xffff_ffff, 0xc9b)
    );
    assert_eq!(v.segment(SegReg::Ss).attr, 0xc93);
    assert_eq!(v.cpl(), 0);
}

#[test]
fn the_preemption_timer_ends_the_slice_whatever_the_guests_if() {
    // `cli; jmp $` on Bochs: the host's timer interrupt never makes it exit, the
    // VMX-preemption timer does (exit reason 52).
    let mut v = vcpu(PROT);
    assert_ne!(raw(&v, 0x4000) & u64::from(pin::PREEMPTION_TIMER), 0);
    let shift = v.caps.preemption_timer_shift;
    v.set_exit_deadline(Some(tsc() + (1_000_000 << shift)));
    exit_with(&mut v, 52, 0, 0);
    assert_eq!(v.run(), Ok(VmExit::DeadlineReached));
    let left = raw(&v, 0x482e);
    assert!(
        left <= 1_000_002 && left > 900_000,
        "timer loaded with {left}, want what is left of 10^6 units"
    );
    // A deadline already past: zero (the guest exits at once).
    v.set_exit_deadline(Some(0));
    assert_eq!(v.run(), Ok(VmExit::DeadlineReached));
    assert_eq!(raw(&v, 0x482e), 0);
}

#[test]
fn without_a_deadline_the_preemption_timer_is_off() {
    // No deadline, nothing for the timer to do: off, so that nothing left from an earlier
    // deadline makes the guest exit (the hostile suite's victim, alone on its CPU with
    // its own timer stopped, made two million timer exits at one RIP on Bochs while a
    // stale deadline was left armed).
    let mut v = vcpu(PROT);
    let timer_on = |v: &VmxVcpu<FakeVmcs>| raw(v, 0x4000) & u64::from(pin::PREEMPTION_TIMER) != 0;
    v.set_exit_deadline(None);
    exit_with(&mut v, 10, 0, 2);
    assert_eq!(v.run(), Ok(VmExit::Cpuid));
    assert!(!timer_on(&v), "no deadline: the timer control is off");
    v.set_exit_deadline(Some(tsc() + 1_000_000));
    exit_with(&mut v, 10, 0, 2);
    assert_eq!(v.run(), Ok(VmExit::Cpuid));
    assert!(timer_on(&v), "a deadline: on again");
}

#[test]
fn the_preemption_timer_never_ends_a_slice_before_its_deadline() {
    // The timer counts once per 2^shift TSC ticks, from whatever phase the TSC is in at
    // entry: loaded with v it runs out after more than (v - 1) * 2^shift ticks (SDM Vol 3C
    // 26.5.1). Rounded down, it ran out before the deadline, the dispatcher found nothing
    // due and the guest went round again (Linux on Bochs corei7_skylake_x: 2.4 timer
    // exits per timer interrupt).
    let shift = 5;
    let now = 1_000_000;
    for ahead in 1..=200u64 {
        let v = u64::from(preemption_value(now + ahead, now, shift));
        assert!(
            (v - 1) << shift >= ahead,
            "{ahead} ticks ahead loaded {v}: it may run out {} ticks early",
            ahead - ((v - 1) << shift)
        );
        assert!(
            v << shift <= ahead + (2 << shift),
            "{ahead} ticks: {v}, too late"
        );
    }
    assert_eq!(preemption_value(now, now, shift), 0, "due: exit at once");
    assert_eq!(preemption_value(5, now, shift), 0, "past: exit at once");
    assert_eq!(preemption_value(u64::MAX, 0, 0), u32::MAX);
}
