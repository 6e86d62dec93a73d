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

/// VMCB clean bits (offset 0xC0, APM Vol 2 15.15.3, Table 15-9): a set bit tells the CPU
/// that the fields of that group are unchanged since this VMCB's last VMRUN on this CPU,
/// so it may keep its cached copy instead of reading them again. Bit 0 intercepts (the
/// vectors, TSC offset, pause filter), 1 IOPM/MSRPM bases, 2 ASID, 3 TPR (V_TPR, V_IRQ
/// and the rest of 0x60-0x67), 4 NP (NP_ENABLE, N_CR3, G_PAT), 5 CR0/CR3/CR4/EFER, 6
/// DR6/DR7, 7 GDTR/IDTR, 8 CS/DS/SS/ES and CPL, 9 CR2, 10 LBR, 11 AVIC. The fields outside
/// every group (TLB_CONTROL, the interrupt shadow, EVENTINJ, RIP, RSP, RAX, RFLAGS, and
/// what VMLOAD loads) are read on every VMRUN. Only the groups Janus changes after a
/// VMCB's set-up are named.
pub mod clean {
    pub const INTERCEPTS: u32 = 1 << 0;
    pub const TPR: u32 = 1 << 3;
    pub const NP: u32 = 1 << 4;
    pub const CRX: u32 = 1 << 5;
    pub const DRX: u32 = 1 << 6;
    pub const CR2: u32 = 1 << 9;
    /// Groups 0-10, every one Janus uses (AVIC's and the later ones are left clear).
    pub const ALL: u32 = (1 << 11) - 1;
    /// Every field group is read from the VMCB.
    pub const ALL_DIRTY: u32 = 0;
}
