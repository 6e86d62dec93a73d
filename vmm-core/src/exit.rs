//! The common exit enum: what each backend turns its raw VM exit into.

use crate::addr::GuestPhys;
use crate::vcpu::{CrTarget, Gpr, SegReg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDir {
    In,
    Out,
}

/// The string form of an I/O instruction (INS/OUTS), as the backend decoded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StringIo {
    pub rep: bool,
    /// Address size in bytes: 2, 4 or 8.
    pub addr_size: u8,
    /// The source segment of OUTS (DS unless overridden); INS always writes ES:rDI.
    pub seg: SegReg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    pub dir: IoDir,
    pub string: Option<StringIo>,
}

/// What kind of access faulted in the nested page tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NestedAccess {
    pub read: bool,
    pub write: bool,
    pub fetch: bool,
}

/// Why the guest left, vendor-neutral. Each backend maps its exit reasons here and keeps
/// [`VmExit::Raw`] for the ones the core does not know, so nothing is silently dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmExit {
    Cpuid,
    Io(IoAccess),
    RdMsr,
    WrMsr,
    /// VMCALL on Intel, VMMCALL on AMD.
    Hypercall,
    Hlt,
    CrRead {
        cr: CrTarget,
        dest: Gpr,
    },
    /// A control-register write the core must emulate; `value` is what the guest wrote
    /// (for CLTS and LMSW the backend has already computed the resulting CR0).
    CrWrite {
        cr: CrTarget,
        value: u64,
    },
    /// A MOV to a control register whose source the hardware did not report (AMD-V
    /// without decode assists): the core decodes the instruction at RIP.
    CrWriteUndecoded {
        cr: CrTarget,
    },
    /// MOV from debug register `dr` (0-7, as encoded) into `dest`.
    DrRead {
        dr: u8,
        dest: Gpr,
    },
    /// MOV to debug register `dr` (0-7, as encoded) of `value`.
    DrWrite {
        dr: u8,
        value: u64,
    },
    /// A MOV DR whose general register the hardware did not report (AMD-V without decode
    /// assists): the core decodes the instruction at RIP.
    DrAccessUndecoded {
        dr: u8,
        write: bool,
    },
    /// A physical SMI or INIT made the guest exit (AMD-V intercepts them so that they
    /// reach the host, APM Vol 2 15.13): the host has taken it; the guest resumes.
    HostSignal,
    Xsetbv,
    Invd,
    Wbinvd,
    /// The guest touched guest-physical memory that is not mapped (MMIO or outside RAM).
    NestedPageFault {
        gpa: GuestPhys,
        access: NestedAccess,
    },
    /// The guest's EOI, which the CPU carried out in the local APIC's register page
    /// (virtual-interrupt delivery: `vector` left the ISR) for a vector the APIC marked
    /// level-triggered: the platform tells the IOAPIC. The instruction has completed.
    ApicEoi {
        vector: u8,
    },
    /// A write to the local APIC register at `offset` that the CPU stored in the register
    /// page and left to Janus (VT-x's APIC-write exit, SDM Vol 3C 30.5: an ICR write that is
    /// not a self-IPI): the value is in the page. The instruction has completed.
    ApicWrite {
        offset: u32,
    },
    /// An exception the backend intercepted.
    Exception {
        vector: u8,
        error_code: Option<u32>,
    },
    ExternalInterrupt,
    /// The vCPU's own exit timer ran out (VT-x's VMX-preemption timer, armed by
    /// [`crate::vcpu::ArchVcpu::set_exit_deadline`]): the end of a slice or a device
    /// event is due, whatever the guest's RFLAGS.IF.
    DeadlineReached,
    Nmi,
    InterruptWindow,
    /// The guest shut down (a triple fault).
    TripleFault,
    /// The guest executed a VMX or SVM instruction (nested virtualization is not offered).
    VirtInstruction,
    /// MONITOR/MWAIT (or AMD's MONITORX/MWAITX), which CPUID hides.
    MonitorMwait,
    /// PAUSE ([`crate::vcpu::ArchVcpu::set_pause_exits`]): the vCPU spins, in a guest of
    /// several most likely waiting for another one.
    Pause,
    /// An exit the backend has no mapping for: its own reason code and qualification.
    Raw {
        reason: u64,
        info1: u64,
        info2: u64,
    },
}

/// The exceptions every backend intercepts whatever the guest does, #DB (1) and #AC (17)
/// (SDM Vol 3A 6.15): a guest can make their delivery raise them again, which on bare
/// hardware loops inside microcode where no interrupt reaches it (CVE-2015-8104,
/// CVE-2015-5307, XSA-156). Intercepted, each delivery is an exit; the core reflects them
/// to the guest ([`VmExit::Exception`]).
pub const ALWAYS_INTERCEPTED_EXCEPTIONS: [u8; 2] = [1, 17];

/// Exit kinds for counting (one counter each in [`crate::stats::ExitStats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum ExitKind {
    Io = 0,
    Cpuid,
    Msr,
    Hypercall,
    Hlt,
    Cr,
    Dr,
    Npf,
    Exception,
    /// A host interrupt (Janus' timer, a kick) or an NMI made the guest exit.
    Interrupt,
    /// The vCPU's own exit timer ran out ([`VmExit::DeadlineReached`]).
    Timer,
    /// The guest opened its interrupts for one that waited ([`VmExit::InterruptWindow`]).
    Window,
    Other,
}

impl ExitKind {
    pub const COUNT: usize = 13;
    pub const NAMES: [&'static str; Self::COUNT] = [
        "io",
        "cpuid",
        "msr",
        "hypercall",
        "hlt",
        "cr",
        "dr",
        "npf",
        "exception",
        "intr",
        "timer",
        "window",
        "other",
    ];
}

impl VmExit {
    pub fn kind(&self) -> ExitKind {
        match self {
            VmExit::Io(_) => ExitKind::Io,
            VmExit::Cpuid => ExitKind::Cpuid,
            VmExit::RdMsr | VmExit::WrMsr => ExitKind::Msr,
            VmExit::Hypercall => ExitKind::Hypercall,
            VmExit::Hlt => ExitKind::Hlt,
            VmExit::CrRead { .. } | VmExit::CrWrite { .. } | VmExit::CrWriteUndecoded { .. } => {
                ExitKind::Cr
            }
            VmExit::DrRead { .. } | VmExit::DrWrite { .. } | VmExit::DrAccessUndecoded { .. } => {
                ExitKind::Dr
            }
            // Device memory: the local APIC's page, virtualized or not.
            VmExit::NestedPageFault { .. } | VmExit::ApicEoi { .. } | VmExit::ApicWrite { .. } => {
                ExitKind::Npf
            }
            VmExit::Exception { .. } => ExitKind::Exception,
            VmExit::ExternalInterrupt | VmExit::Nmi => ExitKind::Interrupt,
            VmExit::DeadlineReached => ExitKind::Timer,
            VmExit::InterruptWindow => ExitKind::Window,
            _ => ExitKind::Other,
        }
    }
}
