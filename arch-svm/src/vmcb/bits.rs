//! The values and bit fields of the VMCB control area Janus writes (APM Vol 2 Appendix
//! B, Table B-1). Only what Janus uses is named; the other values are listed in the docs.

/// TLB_CONTROL (offset 0x5C, APM Vol 2 15.16): 0 do nothing, 1 flush the entire TLB
/// (every ASID), 3 flush this guest's entries, 7 flush this guest's non-global entries
/// (3 and 7 need FlushByAsid, CPUID 0x8000_000A EDX[6]).
pub mod tlb_control {
    pub const DO_NOTHING: u8 = 0;
    pub const FLUSH_ALL: u8 = 1;
    pub const FLUSH_ASID: u8 = 3;
}

/// The nested paging control (offset 0x90, APM Vol 2 15.25.3).
pub mod np_control {
    pub const NP_ENABLE: u64 = 1 << 0;
}

/// The virtual interrupt control (offset 0x60, APM Vol 2 15.21.4): V_TPR 7:0 (3:0 used,
/// 7:4 SBZ), V_IRQ 8, V_INTR_PRIO 19:16, V_IGN_TPR 20, V_INTR_MASKING 24, V_INTR_VECTOR
/// 39:32.
pub mod v_intr {
    /// The guest's CR8 as the CPU keeps it without exiting (APM Vol 2 15.21.3).
    pub const V_TPR: u64 = 0xf;
    /// A virtual interrupt is pending.
    pub const V_IRQ: u64 = 1 << 8;
    /// The pending virtual interrupt's priority, compared with V_TPR.
    pub const V_INTR_PRIO: u64 = 0xf << 16;
    /// The pending virtual interrupt ignores V_TPR.
    pub const V_IGN_TPR: u64 = 1 << 20;
    /// RFLAGS.IF and the TPR of the guest then mask only virtual interrupts
    /// (APM Vol 2 15.21.1).
    pub const V_INTR_MASKING: u64 = 1 << 24;
}

/// The interrupt shadow field (offset 0x68, APM Vol 2 15.21.5): bit 0 is the STI/MOV SS
/// shadow, bit 1 (GUEST_INTERRUPT_MASK) the guest's RFLAGS.IF, read-only.
pub mod interrupt_shadow {
    pub const INTERRUPT_SHADOW: u64 = 1 << 0;
}

/// EVENTINJ (offset 0xA8) and EXITINTINFO (offset 0x88), APM Vol 2 15.20 and 15.7.2:
/// vector 7:0, type 10:8 (0 external interrupt, 2 NMI, 3 exception, 4 software
/// interrupt), EV 11, V 31, error code 63:32.
pub mod event_inj {
    pub const TYPE_INTR: u64 = 0 << 8;
    pub const TYPE_NMI: u64 = 2 << 8;
    pub const TYPE_EXCEPTION: u64 = 3 << 8;
    /// The error code in bits 63:32 is delivered.
    pub const EV: u64 = 1 << 11;
    pub const VALID: u64 = 1 << 31;
    pub const ERROR_CODE_SHIFT: u32 = 32;
}

/// VMCB clean bits (offset 0xC0, APM Vol 2 15.15.3): a set bit tells the CPU that the
/// fields of that group are unchanged since the last VMRUN of this VMCB (bit 0
/// intercepts, 1 IOPM/MSRPM, 2 ASID, 3 V_INTR, 4 nested paging, 5 CRx/EFER, 6 DRx, 7
/// GDT/IDT, 8 segments, 9 CR2, 10 LBR, 11 AVIC). Janus does not track changes yet.
pub mod clean {
    /// Every field group is reloaded from the VMCB.
    pub const ALL_DIRTY: u32 = 0;
}
