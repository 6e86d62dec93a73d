//! The one trait every vendor backend implements.
//!
//! A backend (arch-vmx, arch-svm) owns the hardware structure (VMCS or VMCB) and the
//! world switch. It turns each raw exit into a [`VmExit`], and keeps everything that is
//! vendor-only (VMX fixed bits, the SVM EFER.SVME bit, next-RIP discovery, NMI and
//! INIT/SIPI handling) below this trait. The core sees architectural guest state only:
//! registers, segments, control registers as the guest wrote them, and events.

use crate::cpu_rules::CpuRules;
use crate::exit::VmExit;
use crate::fetch::InsnCache;
use crate::memory::GuestMemory;
use crate::walk::PagingState;
use core::fmt;

/// General-purpose registers, in the x86 encoding order (ModRM.reg / REX.R numbering),
/// so that a decoded register number indexes this enum directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Gpr {
    Rax = 0,
    Rcx,
    Rdx,
    Rbx,
    Rsp,
    Rbp,
    Rsi,
    Rdi,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
}

impl Gpr {
    pub const ALL: [Gpr; 16] = [
        Gpr::Rax,
        Gpr::Rcx,
        Gpr::Rdx,
        Gpr::Rbx,
        Gpr::Rsp,
        Gpr::Rbp,
        Gpr::Rsi,
        Gpr::Rdi,
        Gpr::R8,
        Gpr::R9,
        Gpr::R10,
        Gpr::R11,
        Gpr::R12,
        Gpr::R13,
        Gpr::R14,
        Gpr::R15,
    ];
    /// The register with encoding `n` (0..=15).
    pub fn from_index(n: u8) -> Option<Gpr> {
        Self::ALL.get(n as usize).copied()
    }
}

/// Segment registers, in the x86 encoding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SegReg {
    Es = 0,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
}

impl SegReg {
    pub fn from_index(n: u8) -> Option<SegReg> {
        [
            SegReg::Es,
            SegReg::Cs,
            SegReg::Ss,
            SegReg::Ds,
            SegReg::Fs,
            SegReg::Gs,
        ]
        .get(n as usize)
        .copied()
    }
}

/// A segment register's visible and hidden parts, vendor-neutral. `attr` holds the
/// descriptor's access byte in bits 7:0 (type, S, DPL, P) and AVL, L, D/B, G in bits 11:8,
/// as in a descriptor's bytes 5 and 6 (SDM Vol 3A 3.4.5); both backends convert to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    pub base: u64,
    pub limit: u32,
    pub attr: u16,
}

impl Segment {
    pub const fn present(&self) -> bool {
        self.attr & 0x80 != 0
    }
    pub const fn long(&self) -> bool {
        self.attr & 0x200 != 0
    }
    pub const fn default_big(&self) -> bool {
        self.attr & 0x400 != 0
    }
}

/// The guest's descriptor-table registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescTable {
    pub base: u64,
    pub limit: u16,
}

/// The control registers a vCPU holds. CR8 is not among them: it is the local APIC's
/// task priority, which the core owns (see [`CrTarget`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlReg {
    Cr0,
    Cr2,
    Cr3,
    Cr4,
}

/// The register a control-register exit names: one the vCPU holds, or CR8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrTarget {
    Reg(ControlReg),
    /// CR8, TPR[7:4] of the local APIC (SDM Vol 3A 10.8.6.1): the platform's, not the
    /// vCPU's.
    Cr8,
}

impl CrTarget {
    /// The register a MOV CR exit names by number (VMX exit qualification bits 3:0, SVM
    /// exit code bits 3:0). CR2 moves never exit, so it is not among them.
    pub fn from_number(n: u64) -> Option<CrTarget> {
        Some(match n {
            0 => CrTarget::Reg(ControlReg::Cr0),
            3 => CrTarget::Reg(ControlReg::Cr3),
            4 => CrTarget::Reg(ControlReg::Cr4),
            8 => CrTarget::Cr8,
            _ => return None,
        })
    }
}

/// The debug registers a guest reaches with MOV DR (DR4 and DR5 are aliases of DR6 and
/// DR7 the core resolves: [`crate::cpu_rules::debug_reg`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugReg {
    Dr0,
    Dr1,
    Dr2,
    Dr3,
    Dr6,
    Dr7,
}

impl DebugReg {
    /// DR0-DR3, the breakpoint addresses.
    pub const ADDRESSES: [DebugReg; 4] =
        [DebugReg::Dr0, DebugReg::Dr1, DebugReg::Dr2, DebugReg::Dr3];
}

/// An event to deliver to the guest at the next entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A hardware exception (vector < 32), with its error code where it has one.
    Exception {
        vector: u8,
        error_code: Option<u32>,
    },
    /// An external interrupt.
    Interrupt(u8),
    Nmi,
}

impl Event {
    pub const UD: Event = Event::Exception {
        vector: 6,
        error_code: None,
    };
    pub const fn gp(code: u32) -> Event {
        Event::Exception {
            vector: 13,
            error_code: Some(code),
        }
    }
    pub const fn page_fault(code: u32) -> Event {
        Event::Exception {
            vector: 14,
            error_code: Some(code),
        }
    }
}

/// Why a vCPU could not run: the entry failed, or the backend met a state it cannot
/// handle. The message is one line for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuError {
    pub what: &'static str,
    pub code: u64,
}

impl fmt::Display for VcpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {:#x})", self.what, self.code)
    }
}

/// The guest state a vCPU starts in (the loader fills it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartMode {
    /// 32-bit protected mode, paging off, flat 4 GiB CS=0x08/DS=0x10 (multiboot1, SDM 9.9).
    Protected32 { entry: u32, eax: u32, ebx: u32 },
    /// 64-bit mode with paging on the given identity tables and a GDT whose selector 0x10
    /// is 64-bit code and 0x18 data, as Linux's 64-bit boot protocol asks; RSI holds `rsi`.
    Long64 {
        rip: u64,
        rsi: u64,
        cr3: u64,
        gdt_base: u64,
        gdt_limit: u16,
    },
    /// An application processor after INIT and a start-up IPI with `vector`: real mode at
    /// `vector << 12` (CS selector `vector << 8`, IP 0), as SDM Vol 3A 9.1.1 (Table 9-1,
    /// the state after INIT) and 10.4.4.1 (the SIPI's vector) give it.
    Startup { vector: u8 },
}

/// A guest-visible MSR whose value lives in the backend's guest-state area (VMCS or
/// VMCB). The core's MSR policy reads and writes these through the trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateMsr {
    Efer,
    Pat,
    FsBase,
    GsBase,
    KernelGsBase,
    SysenterCs,
    SysenterEsp,
    SysenterEip,
    Star,
    Lstar,
    Cstar,
    Fmask,
    /// IA32_TSC_AUX: the backend keeps it resident in the CPU while the vCPU is loaded
    /// ([`crate::msr::tsc_aux`]).
    TscAux,
}

/// One virtual CPU of a guest, on one vendor's hardware.
pub trait ArchVcpu {
    /// Enters the guest and runs it until the next exit the dispatcher has to see: the
    /// exits [`crate::in_place`] finishes (CPUID answered before) it finishes there and
    /// enters again.
    fn run(&mut self) -> Result<VmExit, VcpuError>;

    /// This vCPU's CPUID answers, and the exits its backend finished with them
    /// ([`crate::in_place`]): the backend keeps it; only the core looks inside.
    fn in_place(&mut self) -> &mut crate::in_place::InPlace;

    fn gpr(&self, r: Gpr) -> u64;
    fn set_gpr(&mut self, r: Gpr, v: u64);
    fn rip(&self) -> u64;
    fn rflags(&self) -> u64;
    /// Sets RFLAGS: the status flags of an instruction Janus carried out (TEST on device
    /// memory).
    fn set_rflags(&mut self, v: u64);
    /// Makes PAUSE exit ([`crate::exit::VmExit::Pause`]) or not. On for every vCPU: one
    /// that spins on a lock or a cross-CPU call gives the host CPU to the vCPU it waits
    /// for instead of spinning out its turn, and a spin loop exits even where the host
    /// timer cannot interrupt it (SDM Vol 3C 25.6.2 "PAUSE exiting"; APM Vol 2 15.14.4,
    /// the PAUSE intercept).
    fn set_pause_exits(&mut self, on: bool);
    fn segment(&self, s: SegReg) -> Segment;
    fn cpl(&self) -> u8;

    /// A control register as the guest sees it (its own writes, not the bits the
    /// host keeps set underneath).
    fn cr(&self, r: ControlReg) -> u64;
    /// Emulates a guest write of a control register; the backend keeps what the host
    /// needs (VMX fixed bits, long-mode activation) underneath. `Err` is the exception
    /// the guest must get (e.g. #GP for a reserved bit).
    fn set_cr(&mut self, r: ControlReg, v: u64) -> Result<(), Event>;

    fn state_msr(&self, m: StateMsr) -> u64;
    fn set_state_msr(&mut self, m: StateMsr, v: u64) -> Result<(), Event>;

    /// Queues an event for delivery at the next entry.
    fn inject(&mut self, ev: Event);

    /// Whether an external interrupt injected now would be taken: RFLAGS.IF set, no
    /// STI/MOV-SS shadow, and no event already queued.
    fn interrupts_open(&self) -> bool;

    /// Whether an NMI injected now would be taken. The default is conservative (the same
    /// window as an external interrupt); a backend that tracks NMI blocking may open it
    /// wider.
    fn nmi_open(&self) -> bool {
        self.interrupts_open()
    }

    /// Asks for an exit ([`VmExit::InterruptWindow`]) as soon as the guest can take an
    /// interrupt (`on`), or stops asking.
    fn request_interrupt_window(&mut self, on: bool);

    /// Where the instruction that caused the last exit ends. The backend knows (VMX: the
    /// exit's instruction length; SVM: nRIP, the IOIO exit's next RIP, or decoding the
    /// instruction in `mem`).
    fn next_rip(&self, mem: &GuestMemory, cache: &mut InsnCache) -> Result<u64, VcpuError>;

    /// Completes an emulated instruction: RIP becomes `next_rip`, and the STI/MOV-SS
    /// interrupt shadow that instruction was in ends (SDM Vol 3C 25.4.2, APM Vol 2
    /// 15.21.5). The one way the core moves RIP forward.
    fn retire(&mut self, next_rip: u64);

    /// Makes the guest's TSC read `host TSC + offset` (wrapping), for a guest write of
    /// IA32_TSC.
    fn set_tsc_offset(&mut self, offset: u64);

    /// The host TSC by which the guest must have exited (the end of its slice or its
    /// next device event), or `None`. A backend whose CPU has a timer of its own for this
    /// (VT-x's VMX-preemption timer) arms it and returns `true`: the guest exits then
    /// even where an interrupt does not reach it (seen: Bochs holds the host's interrupt
    /// while the guest runs with RFLAGS.IF=0), and the host timer stays off while it
    /// runs (armed as well, it made a second exit for every deadline). `false`: the host
    /// timer interrupt, armed for the same moment, makes the guest exit.
    fn set_exit_deadline(&mut self, tsc: Option<u64>) -> bool;

    /// A debug register as the guest sees it.
    fn debug_reg(&self, r: DebugReg) -> u64;

    /// Loads a debug register with a value the core has checked
    /// ([`crate::cpu_rules::write_dr6`], [`crate::cpu_rules::write_dr7`]).
    fn set_debug_reg(&mut self, r: DebugReg, v: u64);

    /// This host CPU is about to run another vCPU (or none): keep in this vCPU what lives
    /// only in hardware registers while it is loaded (DR0-DR3, DR6 where the hardware
    /// structure lacks it, MSRs the hardware does not switch). The core saves the x87/SSE
    /// state itself ([`crate::fpu`]).
    fn put(&mut self);

    /// This vCPU runs next on this host CPU: load what [`ArchVcpu::put`] kept (or the
    /// reset values, the first time).
    fn load(&mut self);

    /// Ends the vCPU: every frame it took (control structure, permission maps, nested
    /// page tables) goes back to `frames`, zeroed.
    fn release<A: crate::nested::FrameAllocator>(self, frames: &mut A);

    /// The hardware's copy of CR8 where the guest moves to and from CR8 without an exit
    /// (AMD-V's V_TPR), as the guest left it; `None` where CR8 accesses always exit
    /// (VT-x here). The local APIC owns the task priority: only
    /// [`crate::dispatch`]'s TPR sync reads and writes this copy.
    fn tpr_shadow(&self) -> Option<u8> {
        None
    }

    /// Loads the hardware's copy of CR8 (0-15) from the local APIC before an entry.
    fn set_tpr_shadow(&mut self, _cr8: u8) {}

    /// Whether this backend can deliver interrupts itself ([`ArchVcpu::virtual_interrupts`]):
    /// where it cannot, the dispatcher's look at the register page is compiled out.
    const VIRTUAL_INTERRUPTS: bool = false;

    /// The local APIC's model wrote the register page since the last entry (an interrupt
    /// requested or taken, an EOI, the TPR): the CPU's copies of its highest requested
    /// and in-service vectors are brought up to date before the next entry. Called only
    /// then: the CPU keeps them itself for what it does in the page.
    fn virtual_apic_changed(&mut self) {}

    /// Turns on virtual-interrupt delivery where the CPU has it (VT-x's, SDM Vol 3C 30):
    /// the vCPU's register page, where its local APIC keeps IRR, ISR, TMR and TPR from
    /// then on ([`crate::devices::lapic::LocalApic::attach_page`]). The CPU takes the
    /// APIC's interrupts from it when the guest can (no injection, no interrupt window)
    /// and completes the guest's EOIs there without an exit but for the vectors the APIC
    /// marks level-triggered (TMR), whose EOI comes back as [`crate::exit::VmExit::ApicEoi`].
    /// `None` where the CPU has none (or memory ran out): interrupts are injected. Called
    /// before the vCPU's first entry, for a vCPU whose guest runs on this host CPU alone
    /// (another CPU's IPI must not write the page while the guest runs); the page is the
    /// vCPU's until [`ArchVcpu::release`].
    fn virtual_interrupts<A: crate::nested::FrameAllocator>(
        &mut self,
        _frames: &mut A,
    ) -> Option<crate::devices::apic_page::PagePtr> {
        None
    }

    /// The guest's paging registers, for walking its page tables.
    fn paging(&self) -> PagingState {
        PagingState {
            cr0: self.cr(ControlReg::Cr0),
            cr3: self.cr(ControlReg::Cr3),
            cr4: self.cr(ControlReg::Cr4),
            efer: self.state_msr(StateMsr::Efer),
        }
    }
}

/// A vendor backend, once it has switched the CPU into VMX root operation or enabled
/// SVM: it makes vCPUs for guests.
pub trait ArchBackend {
    type Vcpu: ArchVcpu;

    /// Creates a vCPU for a guest whose RAM is `mem`, starting in `start`, whose control
    /// register and EFER writes follow `rules` (from the CPUID the guest sees). The backend
    /// builds its nested page tables (mapping exactly `mem`'s regions) and its control
    /// structures from `frames`.
    fn create_vcpu<A: crate::nested::FrameAllocator>(
        &mut self,
        mem: &GuestMemory,
        start: StartMode,
        rules: CpuRules,
        frames: &mut A,
    ) -> Result<Self::Vcpu, VcpuError>;
}

/// The guest's general registers while it is not running, indexed by [`Gpr`]; both
/// backends' entry code saves and loads this (offsets via `offset_of!`). Slots a backend
/// keeps in its hardware structure instead (RSP; RAX on AMD) are unused there.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GprFile {
    pub r: [u64; 16],
}

impl GprFile {
    /// Byte offset of register `r` in the file, for entry/exit assembly.
    pub const fn offset(r: Gpr) -> usize {
        core::mem::offset_of!(GprFile, r) + 8 * r as usize
    }
}

/// The architectural state a vCPU starts in, computed once for both backends from a
/// [`StartMode`]. Backends write it into their VMCS or VMCB, adding what their hardware
/// needs underneath (VMX fixed bits, EFER.SVME).
#[derive(Clone, Copy, Debug)]
pub struct InitialState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cs: Segment,
    /// DS, ES, SS, FS and GS.
    pub data: Segment,
    /// A usable, busy TSS (VM entry insists on one, SDM Vol 3C 26.3.1.2).
    pub tr: Segment,
    pub gdt: DescTable,
    pub idt: DescTable,
    pub gprs: GprFile,
}

/// GDTR and IDTR after RESET or INIT: base 0, limit 0xFFFF (SDM Vol 3A 9.1.1, Table 9-1).
const RESET_TABLE: DescTable = DescTable {
    base: 0,
    limit: 0xffff,
};

impl StartMode {
    pub fn initial_state(&self) -> InitialState {
        let tr = Segment {
            selector: 0,
            base: 0,
            limit: 0xff,
            attr: 0x8b,
        };
        match *self {
            StartMode::Protected32 { entry, eax, ebx } => {
                let mut gprs = GprFile::default();
                gprs.r[Gpr::Rax as usize] = eax as u64;
                gprs.r[Gpr::Rbx as usize] = ebx as u64;
                InitialState {
                    cr0: 0x11, // PE | ET
                    cr3: 0,
                    cr4: 0,
                    efer: 0,
                    rip: entry as u64,
                    rflags: 2,
                    cs: Segment {
                        selector: 0x08,
                        base: 0,
                        limit: 0xffff_ffff,
                        attr: 0xc9b,
                    },
                    data: Segment {
                        selector: 0x10,
                        base: 0,
                        limit: 0xffff_ffff,
                        attr: 0xc93,
                    },
                    tr,
                    gdt: RESET_TABLE,
                    idt: RESET_TABLE,
                    gprs,
                }
            }
            StartMode::Long64 {
                rip,
                rsi,
                cr3,
                gdt_base,
                gdt_limit,
            } => {
                let mut gprs = GprFile::default();
                gprs.r[Gpr::Rsi as usize] = rsi;
                InitialState {
                    cr0: 0x8000_0031, // PG | NE | ET | PE
                    cr3,
                    cr4: 0x20,   // PAE
                    efer: 0x500, // LME | LMA
                    rip,
                    rflags: 2,
                    cs: Segment {
                        selector: 0x10,
                        base: 0,
                        limit: 0xffff_ffff,
                        attr: 0xa9b,
                    },
                    data: Segment {
                        selector: 0x18,
                        base: 0,
                        limit: 0xffff_ffff,
                        attr: 0xc93,
                    },
                    tr,
                    gdt: DescTable {
                        base: gdt_base,
                        limit: gdt_limit,
                    },
                    idt: DescTable { base: 0, limit: 0 },
                    gprs,
                }
            }
            StartMode::Startup { vector } => {
                let real = |selector: u16, base: u64, attr: u16| Segment {
                    selector,
                    base,
                    limit: 0xffff,
                    attr,
                };
                InitialState {
                    cr0: 0x6000_0010, // CD | NW | ET, as after INIT
                    cr3: 0,
                    cr4: 0,
                    efer: 0,
                    rip: 0,
                    rflags: 2,
                    cs: real((vector as u16) << 8, (vector as u64) << 12, 0x9b),
                    data: real(0, 0, 0x93),
                    tr,
                    gdt: RESET_TABLE,
                    idt: RESET_TABLE,
                    gprs: GprFile::default(),
                }
            }
        }
    }
}
