//! Every VMCS field Janus uses, typed by width and grouped as SDM Vol 3C Appendix B lists
//! them: control fields, read-only data fields ("VM-exit information"), guest-state and
//! host-state fields. The numbers are the `x86` crate's; the types make a 16-bit field
//! impossible to write with a 64-bit value, and `Field::new` checks at compile time that
//! each encoding's width and group bits (SDM Vol 3C 25.11.2, "Structure of VMCS Component
//! Encoding") match the type and module it is declared in.

use core::marker::PhantomData;
use vmm_core::vcpu::SegReg;
use x86::vmx::vmcs as enc;

/// A field width: the Rust type of its values and the width code in encoding bits 14:13
/// (SDM Vol 3C 25.11.2).
pub trait Width {
    type Value: Copy + Default;
    const CODE: u32;
    fn to_raw(v: Self::Value) -> u64;
    fn from_raw(raw: u64) -> Self::Value;
}

macro_rules! width {
    ($name:ident, $t:ty, $code:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {}
        impl Width for $name {
            type Value = $t;
            const CODE: u32 = $code;
            fn to_raw(v: $t) -> u64 {
                v as u64
            }
            fn from_raw(raw: u64) -> $t {
                raw as $t
            }
        }
    };
}

width!(W16, u16, 0, "16-bit fields (SDM Vol 3C B.1).");
width!(W64, u64, 1, "64-bit fields, full access (SDM Vol 3C B.2).");
width!(W32, u32, 2, "32-bit fields (SDM Vol 3C B.3).");
width!(
    Natural,
    u64,
    3,
    "Natural-width fields, 64 bits on an x86-64 host (SDM Vol 3C B.4)."
);

/// The group in encoding bits 11:10 (SDM Vol 3C 25.11.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Group {
    Control = 0,
    ExitInfo = 1,
    Guest = 2,
    Host = 3,
}

/// One VMCS field of width `W`.
#[derive(Debug, PartialEq, Eq)]
pub struct Field<W> {
    encoding: u32,
    width: PhantomData<W>,
}

impl<W> Clone for Field<W> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W> Copy for Field<W> {}

impl<W: Width> Field<W> {
    /// Panics (at compile time, in a `const`) if `encoding` is not a full-access field of
    /// width `W` in `group`.
    pub const fn new(encoding: u32, group: Group) -> Self {
        assert!(encoding & 1 == 0, "high-half access encoding");
        assert!((encoding >> 13) & 3 == W::CODE, "width does not match");
        assert!((encoding >> 10) & 3 == group as u32, "group does not match");
        Field {
            encoding,
            width: PhantomData,
        }
    }
}

impl<W> Field<W> {
    pub const fn encoding(self) -> u32 {
        self.encoding
    }
}

macro_rules! fields {
    ($group:ident { $($name:ident: $w:ident = $e:expr;)* }) => {
        $(pub const $name: Field<$w> = Field::new($e, Group::$group);)*
    };
}

/// VM-execution, VM-exit and VM-entry control fields (SDM Vol 3C 25.6-25.8).
pub mod control {
    use super::*;
    use enc::control as c;
    fields!(Control {
        VPID: W16 = c::VPID;
        MSR_BITMAPS: W64 = c::MSR_BITMAPS_ADDR_FULL;
        TSC_OFFSET: W64 = c::TSC_OFFSET_FULL;
        EPTP: W64 = c::EPTP_FULL;
        PIN_BASED: W32 = c::PINBASED_EXEC_CONTROLS;
        PRIMARY_PROC_BASED: W32 = c::PRIMARY_PROCBASED_EXEC_CONTROLS;
        EXCEPTION_BITMAP: W32 = c::EXCEPTION_BITMAP;
        CR3_TARGET_COUNT: W32 = c::CR3_TARGET_COUNT;
        EXIT_CONTROLS: W32 = c::VMEXIT_CONTROLS;
        EXIT_MSR_STORE_COUNT: W32 = c::VMEXIT_MSR_STORE_COUNT;
        EXIT_MSR_LOAD_COUNT: W32 = c::VMEXIT_MSR_LOAD_COUNT;
        ENTRY_CONTROLS: W32 = c::VMENTRY_CONTROLS;
        ENTRY_MSR_LOAD_COUNT: W32 = c::VMENTRY_MSR_LOAD_COUNT;
        ENTRY_INTERRUPTION_INFO: W32 = c::VMENTRY_INTERRUPTION_INFO_FIELD;
        ENTRY_EXCEPTION_ERROR_CODE: W32 = c::VMENTRY_EXCEPTION_ERR_CODE;
        SECONDARY_PROC_BASED: W32 = c::SECONDARY_PROCBASED_EXEC_CONTROLS;
        CR0_GUEST_HOST_MASK: Natural = c::CR0_GUEST_HOST_MASK;
        CR4_GUEST_HOST_MASK: Natural = c::CR4_GUEST_HOST_MASK;
        CR0_READ_SHADOW: Natural = c::CR0_READ_SHADOW;
        CR4_READ_SHADOW: Natural = c::CR4_READ_SHADOW;
        VIRTUAL_APIC_ADDR: W64 = c::VIRT_APIC_ADDR_FULL;
        APIC_ACCESS_ADDR: W64 = c::APIC_ACCESS_ADDR_FULL;
        EOI_EXIT_BITMAP0: W64 = c::EOI_EXIT0_FULL;
        EOI_EXIT_BITMAP1: W64 = c::EOI_EXIT1_FULL;
        EOI_EXIT_BITMAP2: W64 = c::EOI_EXIT2_FULL;
        EOI_EXIT_BITMAP3: W64 = c::EOI_EXIT3_FULL;
        TPR_THRESHOLD: W32 = c::TPR_THRESHOLD;
    });

    /// The four EOI-exit bitmap fields, vectors 0-63 first (SDM Vol 3C 25.6.8).
    pub const EOI_EXIT_BITMAPS: [Field<W64>; 4] = [
        EOI_EXIT_BITMAP0,
        EOI_EXIT_BITMAP1,
        EOI_EXIT_BITMAP2,
        EOI_EXIT_BITMAP3,
    ];
}

/// Read-only data fields: what a VM exit (or a failed VMX instruction) reports
/// (SDM Vol 3C 25.9).
pub mod exit_info {
    use super::*;
    use enc::ro as r;
    fields!(ExitInfo {
        GUEST_PHYSICAL_ADDRESS: W64 = r::GUEST_PHYSICAL_ADDR_FULL;
        VM_INSTRUCTION_ERROR: W32 = r::VM_INSTRUCTION_ERROR;
        EXIT_REASON: W32 = r::EXIT_REASON;
        INTERRUPTION_INFO: W32 = r::VMEXIT_INTERRUPTION_INFO;
        INTERRUPTION_ERROR_CODE: W32 = r::VMEXIT_INTERRUPTION_ERR_CODE;
        IDT_VECTORING_INFO: W32 = r::IDT_VECTORING_INFO;
        IDT_VECTORING_ERROR_CODE: W32 = r::IDT_VECTORING_ERR_CODE;
        INSTRUCTION_LENGTH: W32 = r::VMEXIT_INSTRUCTION_LEN;
        INSTRUCTION_INFO: W32 = r::VMEXIT_INSTRUCTION_INFO;
        QUALIFICATION: Natural = r::EXIT_QUALIFICATION;
    });
}

/// Guest-state fields (SDM Vol 3C 25.4).
pub mod guest {
    use super::*;
    use enc::guest as g;
    fields!(Guest {
        LINK_POINTER: W64 = g::LINK_PTR_FULL;
        IA32_DEBUGCTL: W64 = g::IA32_DEBUGCTL_FULL;
        IA32_PAT: W64 = g::IA32_PAT_FULL;
        IA32_EFER: W64 = g::IA32_EFER_FULL;
        GDTR_LIMIT: W32 = g::GDTR_LIMIT;
        IDTR_LIMIT: W32 = g::IDTR_LIMIT;
        INTERRUPTIBILITY: W32 = g::INTERRUPTIBILITY_STATE;
        ACTIVITY_STATE: W32 = g::ACTIVITY_STATE;
        IA32_SYSENTER_CS: W32 = g::IA32_SYSENTER_CS;
        INTERRUPT_STATUS: W16 = g::INTERRUPT_STATUS;
        PREEMPTION_TIMER_VALUE: W32 = g::VMX_PREEMPTION_TIMER_VALUE;
        CR0: Natural = g::CR0;
        CR3: Natural = g::CR3;
        CR4: Natural = g::CR4;
        GDTR_BASE: Natural = g::GDTR_BASE;
        IDTR_BASE: Natural = g::IDTR_BASE;
        DR7: Natural = g::DR7;
        RSP: Natural = g::RSP;
        RIP: Natural = g::RIP;
        RFLAGS: Natural = g::RFLAGS;
        PENDING_DEBUG_EXCEPTIONS: Natural = g::PENDING_DBG_EXCEPTIONS;
        IA32_SYSENTER_ESP: Natural = g::IA32_SYSENTER_ESP;
        IA32_SYSENTER_EIP: Natural = g::IA32_SYSENTER_EIP;
    });

    /// The four fields of one segment register.
    #[derive(Clone, Copy, Debug)]
    pub struct SegmentFields {
        pub selector: Field<W16>,
        pub base: Field<Natural>,
        pub limit: Field<W32>,
        pub access_rights: Field<W32>,
    }

    macro_rules! segment {
        ($sel:ident, $base:ident, $limit:ident, $ar:ident) => {
            SegmentFields {
                selector: Field::new(g::$sel, Group::Guest),
                base: Field::new(g::$base, Group::Guest),
                limit: Field::new(g::$limit, Group::Guest),
                access_rights: Field::new(g::$ar, Group::Guest),
            }
        };
    }

    /// ES, CS, SS, DS, FS, GS: indexed by `SegReg`.
    const SEGMENTS: [SegmentFields; 6] = [
        segment!(ES_SELECTOR, ES_BASE, ES_LIMIT, ES_ACCESS_RIGHTS),
        segment!(CS_SELECTOR, CS_BASE, CS_LIMIT, CS_ACCESS_RIGHTS),
        segment!(SS_SELECTOR, SS_BASE, SS_LIMIT, SS_ACCESS_RIGHTS),
        segment!(DS_SELECTOR, DS_BASE, DS_LIMIT, DS_ACCESS_RIGHTS),
        segment!(FS_SELECTOR, FS_BASE, FS_LIMIT, FS_ACCESS_RIGHTS),
        segment!(GS_SELECTOR, GS_BASE, GS_LIMIT, GS_ACCESS_RIGHTS),
    ];
    pub const LDTR: SegmentFields =
        segment!(LDTR_SELECTOR, LDTR_BASE, LDTR_LIMIT, LDTR_ACCESS_RIGHTS);
    pub const TR: SegmentFields = segment!(TR_SELECTOR, TR_BASE, TR_LIMIT, TR_ACCESS_RIGHTS);

    pub const fn segment(s: SegReg) -> SegmentFields {
        SEGMENTS[s as usize]
    }
}

/// Host-state fields: what every VM exit loads (SDM Vol 3C 25.5).
pub mod host {
    use super::*;
    use enc::host as h;
    fields!(Host {
        ES_SELECTOR: W16 = h::ES_SELECTOR;
        CS_SELECTOR: W16 = h::CS_SELECTOR;
        SS_SELECTOR: W16 = h::SS_SELECTOR;
        DS_SELECTOR: W16 = h::DS_SELECTOR;
        FS_SELECTOR: W16 = h::FS_SELECTOR;
        GS_SELECTOR: W16 = h::GS_SELECTOR;
        TR_SELECTOR: W16 = h::TR_SELECTOR;
        IA32_PAT: W64 = h::IA32_PAT_FULL;
        IA32_EFER: W64 = h::IA32_EFER_FULL;
        IA32_SYSENTER_CS: W32 = h::IA32_SYSENTER_CS;
        CR0: Natural = h::CR0;
        CR3: Natural = h::CR3;
        CR4: Natural = h::CR4;
        FS_BASE: Natural = h::FS_BASE;
        GS_BASE: Natural = h::GS_BASE;
        TR_BASE: Natural = h::TR_BASE;
        GDTR_BASE: Natural = h::GDTR_BASE;
        IDTR_BASE: Natural = h::IDTR_BASE;
        IA32_SYSENTER_ESP: Natural = h::IA32_SYSENTER_ESP;
        IA32_SYSENTER_EIP: Natural = h::IA32_SYSENTER_EIP;
        RSP: Natural = h::RSP;
        RIP: Natural = h::RIP;
    });
}
