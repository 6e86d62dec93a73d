//! EVENTINJ (APM Vol 2 15.20), the interrupt window through V_IRQ (15.21.4), V_TPR
//! (15.21.3) and the interrupt shadow (15.21.5).

use super::{vcpu, PROTECTED};
use vmm_core::vcpu::{ArchVcpu, ControlReg, Event};

// EVENTINJ: vector 7:0, TYPE 10:8 (0 INTR, 2 NMI, 3 exception), EV 11, V 31,
// ERRORCODE 63:32.
const V: u64 = 1 << 31;
const EV: u64 = 1 << 11;
const EXCEPTION: u64 = 3 << 8;
const NMI: u64 = 2 << 8;
// V_INTR (offset 0x60): V_TPR 3:0, V_IRQ 8, V_IGN_TPR 20, V_INTR_MASKING 24.
const V_IRQ: u64 = 1 << 8;
const V_IGN_TPR: u64 = 1 << 20;
const V_INTR_MASKING: u64 = 1 << 24;
/// Intercept vector 3, bit 4.
const VINTR_INTERCEPT: u32 = 1 << 4;
const RFLAGS_IF: u64 = 1 << 9;

#[test]
fn exceptions_carry_their_error_code_in_protected_mode() {
    let mut v = vcpu(PROTECTED);
    v.inject(Event::gp(0x10));
    assert_eq!(
        v.vmcb.control.event_inj,
        (0x10 << 32) | V | EV | EXCEPTION | 13
    );
    v.inject(Event::page_fault(0xffff_ffff));
    assert_eq!(
        v.vmcb.control.event_inj,
        (0xffff_ffff << 32) | V | EV | EXCEPTION | 14
    );
    v.inject(Event::UD);
    assert_eq!(v.vmcb.control.event_inj, V | EXCEPTION | 6);
}

#[test]
fn real_mode_drops_the_error_code() {
    let mut v = vcpu(PROTECTED);
    v.set_cr(ControlReg::Cr0, 0x10).unwrap();
    v.inject(Event::gp(0x10));
    assert_eq!(v.vmcb.control.event_inj, V | EXCEPTION | 13);
}

#[test]
fn interrupts_and_nmis() {
    let mut v = vcpu(PROTECTED);
    v.inject(Event::Interrupt(0x20));
    assert_eq!(v.vmcb.control.event_inj, V | 0x20);
    v.inject(Event::Interrupt(0xff));
    assert_eq!(v.vmcb.control.event_inj, V | 0xff);
    v.inject(Event::Nmi);
    assert_eq!(v.vmcb.control.event_inj, V | NMI | 2);
}

#[test]
fn interrupts_open_needs_if_no_shadow_and_nothing_queued() {
    let mut v = vcpu(PROTECTED);
    assert!(!v.interrupts_open(), "IF clear at start");
    v.vmcb.save.rflags |= RFLAGS_IF;
    assert!(v.interrupts_open());
    v.vmcb.control.interrupt_shadow = 1;
    assert!(!v.interrupts_open(), "STI shadow");
    v.vmcb.control.interrupt_shadow = 2;
    assert!(
        v.interrupts_open(),
        "bit 1 is the guest's IF copy, not a shadow"
    );
    v.inject(Event::Interrupt(0x30));
    assert!(!v.interrupts_open(), "an event is queued");
}

#[test]
fn the_interrupt_window_is_a_virtual_interrupt_that_ignores_the_tpr() {
    let mut v = vcpu(PROTECTED);
    v.set_tpr_shadow(7);
    v.request_interrupt_window(true);
    let c = &v.vmcb.control;
    assert_eq!(c.v_intr, V_INTR_MASKING | V_IRQ | V_IGN_TPR | 7);
    assert_ne!(c.intercept_misc1 & VINTR_INTERCEPT, 0);
    v.request_interrupt_window(false);
    let c = &v.vmcb.control;
    assert_eq!(c.v_intr, V_INTR_MASKING | 7);
    assert_eq!(c.intercept_misc1 & VINTR_INTERCEPT, 0);
    assert_ne!(c.intercept_misc1, 0, "the other intercepts stay");
}

#[test]
fn the_tpr_shadow_is_v_tpr() {
    let mut v = vcpu(PROTECTED);
    assert_eq!(v.tpr_shadow(), Some(0));
    v.request_interrupt_window(true);
    v.set_tpr_shadow(0xa);
    assert_eq!(v.tpr_shadow(), Some(0xa));
    assert_eq!(
        v.vmcb.control.v_intr,
        V_INTR_MASKING | V_IRQ | V_IGN_TPR | 0xa
    );
    v.vmcb.control.v_intr = (v.vmcb.control.v_intr & !0xf) | 3;
    assert_eq!(
        v.tpr_shadow(),
        Some(3),
        "the guest's MOV CR8 without an exit"
    );
}

#[test]
fn retire_moves_rip_and_ends_the_interrupt_shadow() {
    let mut v = vcpu(PROTECTED);
    v.vmcb.save.rflags |= RFLAGS_IF;
    v.vmcb.control.interrupt_shadow = 1 | 2;
    v.retire(0x1003);
    assert_eq!(v.rip(), 0x1003);
    assert_eq!(v.vmcb.control.interrupt_shadow, 2);
    assert!(v.interrupts_open());
}
