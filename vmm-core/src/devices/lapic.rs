//! A local APIC (xAPIC and x2APIC) as a state machine, after the Intel SDM Vol. 3A
//! chapter 11, "Advanced Programmable Interrupt Controller (APIC)" (rev. 084).
//!
//! Our own model: the rust-vmm device crates need std, which a bare-metal VMM does not
//! have. One `LocalApic` per vCPU; the platform routes accesses to it:
//! - xAPIC mode: the 4 KiB page at [`LocalApic::base_address`] (0xFEE00000 after reset)
//!   goes to [`LocalApic::read_mmio`] / [`LocalApic::write_mmio`] (aligned 32-bit
//!   accesses; offsets not on a 16-byte boundary read 0 and ignore writes);
//! - x2APIC mode: MSRs 0x800-0x8FF go to [`LocalApic::read_msr`] /
//!   [`LocalApic::write_msr`], whose `None` / `Err` mean #GP(0);
//! - IA32_APIC_BASE (0x1B) and IA32_TSC_DEADLINE (0x6E0) have their own methods.
//!
//! The MMIO interface answers only in xAPIC mode and the MSR interface only in x2APIC
//! mode (reads 0 / #GP otherwise), as on hardware.
//!
//! Time: the model never reads a clock. Calls that depend on time take `now_ns`, the
//! guest's monotonic time in nanoseconds; the timer keeps the time it was loaded and
//! computes the current count from the elapsed time (nothing ticks). The timer's input
//! clock, `timer_hz`, is the platform's choice (the SDM leaves it model-specific: the bus
//! or core crystal clock); with 1 GHz one tick is one nanosecond before the divider.
//! The guest TSC is related to guest time by `tsc = now_ns * tsc_hz / 10^9`, i.e. it
//! reads 0 at `now_ns == 0`; this relation is only used to convert a TSC deadline to
//! nanoseconds ([`LocalApic::next_timer_ns`]) and to settle the timer on register
//! writes. [`LocalApic::poll_timer`] compares deadlines with the TSC it is given.
//!
//! Interrupt flow: the platform [`accept`](LocalApic::accept)s a vector (IRR, and TMR
//! for level-triggered), asks [`pending_vector`](LocalApic::pending_vector) when it can
//! inject, and [`acknowledge`](LocalApic::acknowledge)s the vector it injected (IRR to
//! ISR). The guest's EOI clears the highest ISR bit and comes back as
//! [`ApicEffect::Eoi`], so that the platform can tell the IOAPIC (remote IRR of
//! level-triggered entries). ICR writes come back as [`ApicEffect::Ipi`], except a fixed
//! self-IPI, which is accepted here.
//!
//! Left out: directed EOI (version bit 24 is 0), the arbitration/remote-read registers,
//! focus processor checking, level-triggered fixed interrupts on LINT0/1 (their remote
//! IRR), interrupt delivery for the thermal, performance and CMCI LVT entries (they are
//! registers only: the platform has no such sources), writable xAPIC IDs (the ID
//! register is read-only here), and #GP for reserved bits of LVT, SVR and divide
//! configuration writes in x2APIC mode (those bits are dropped instead).
//!
//! The version register reports max LVT entry 5 (timer, thermal, performance, LINT0,
//! LINT1, error); the CMCI LVT register exists anyway for guests that probe it.

use super::apic_page::{IrqState, PagePtr, VecReg};
use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;

/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6e0;
/// The x2APIC register MSRs are `X2APIC_MSR_BASE + (mmio offset >> 4)`.
pub const X2APIC_MSR_BASE: u32 = 0x800;
pub const X2APIC_MSR_LAST: u32 = 0x8ff;
/// The APIC page after reset.
pub const DEFAULT_BASE: u64 = 0xfee0_0000;

/// IA32_APIC_BASE bits.
pub const BASE_BSP: u64 = 1 << 8;
pub const BASE_EXTD: u64 = 1 << 10;
pub const BASE_ENABLE: u64 = 1 << 11;
/// Bits 51:12 (MAXPHYADDR is taken as 52; the platform may check a smaller one).
pub const BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Register offsets in the xAPIC page (Table 11-1).
pub mod reg {
    pub const ID: u32 = 0x020;
    pub const VERSION: u32 = 0x030;
    pub const TPR: u32 = 0x080;
    pub const APR: u32 = 0x090;
    pub const PPR: u32 = 0x0a0;
    pub const EOI: u32 = 0x0b0;
    pub const RRD: u32 = 0x0c0;
    pub const LDR: u32 = 0x0d0;
    pub const DFR: u32 = 0x0e0;
    pub const SVR: u32 = 0x0f0;
    pub const ISR: u32 = 0x100;
    pub const TMR: u32 = 0x180;
    pub const IRR: u32 = 0x200;
    pub const ESR: u32 = 0x280;
    pub const LVT_CMCI: u32 = 0x2f0;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_THERMAL: u32 = 0x330;
    pub const LVT_PERF: u32 = 0x340;
    pub const LVT_LINT0: u32 = 0x350;
    pub const LVT_LINT1: u32 = 0x360;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_CURRENT: u32 = 0x390;
    pub const TIMER_DIVIDE: u32 = 0x3e0;
    /// x2APIC only (MSR 0x83F).
    pub const SELF_IPI: u32 = 0x3f0;
}

/// The version register: version 0x14 (integrated xAPIC), max LVT entry 5 (six entries
/// counted by the version register), no EOI-broadcast suppression (bit 24 clear).
pub const VERSION: u32 = 0x0005_0014;

/// SVR bit 8: APIC software enable.
pub const SVR_ENABLE: u32 = 1 << 8;
/// LVT bit 16: masked.
pub const LVT_MASKED: u32 = 1 << 16;

/// ESR bits (section 11.5.3).
pub const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
pub const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;

const SVR_MASK: u32 = 0x1ff;
const DFR_RESERVED_ONES: u32 = 0x0fff_ffff;
/// ICR low bits software may set: vector, delivery mode, destination mode, level,
/// trigger mode, shorthand (delivery status reads 0: delivery is immediate).
const ICR_LOW_MASK: u32 = 0x000c_cfff;

// LVT slots: the order of the registers from 0x320 on, CMCI (at 0x2F0) last.
const LVT_TIMER: usize = 0;
// 1: thermal, 2: performance (registers only).
const LVT_LINT0: usize = 3;
const LVT_LINT1: usize = 4;
const LVT_ERROR: usize = 5;
const LVT_CMCI: usize = 6;
const LVT_COUNT: usize = 7;

/// Writable bits of each LVT entry (Figure 11-8): the timer and error entries have no
/// delivery mode; only LINT0/LINT1 have polarity and trigger mode (LINT1 is always
/// edge-triggered); only the timer has a mode.
const LVT_WRITABLE: [u32; LVT_COUNT] = [
    0x0007_00ff, // timer
    0x0001_07ff, // thermal
    0x0001_07ff, // performance
    0x0001_a7ff, // LINT0
    0x0001_27ff, // LINT1
    0x0001_00ff, // error
    0x0001_07ff, // CMCI
];

const NS_PER_SEC: u128 = 1_000_000_000;

/// The registers a CPU reads from an attached register page when it virtualizes the APIC
/// page's reads (VT-x's APIC-register virtualization, SDM Vol 3C 30.4.2, revision 084:
/// ID, version, TPR, EOI, LDR, DFR, SVR, ISR, TMR, IRR, ESR, ICR, the LVT entries of
/// 320H-370H, initial count, divide configuration), but for those the page holds anyway.
const MIRRORED: [u32; 15] = [
    reg::ID,
    reg::VERSION,
    reg::EOI,
    reg::LDR,
    reg::DFR,
    reg::SVR,
    reg::ESR,
    reg::LVT_TIMER,
    reg::LVT_THERMAL,
    reg::LVT_PERF,
    reg::LVT_LINT0,
    reg::LVT_LINT1,
    reg::LVT_ERROR,
    reg::TIMER_INITIAL,
    reg::TIMER_DIVIDE,
];

fn lvt_slot(offset: u32) -> Option<usize> {
    match offset {
        reg::LVT_CMCI => Some(LVT_CMCI),
        reg::LVT_TIMER..=reg::LVT_ERROR if offset & 0xf == 0 => {
            Some(((offset - reg::LVT_TIMER) >> 4) as usize)
        }
        _ => None,
    }
}

/// Whether a write of xAPIC register `offset` may change when the timer next fires: its
/// LVT entry, the initial count, the divide configuration, or the software enable (SVR,
/// which masks every LVT entry). The platform counts such writes as timer changes
/// (`Platform::timer_changes`); other registers (the EOI, the TPR, the ICR) change only
/// which interrupt the vCPU may take.
pub fn timer_register(offset: u64) -> bool {
    matches!(
        offset as u32,
        reg::LVT_TIMER | reg::TIMER_INITIAL | reg::TIMER_DIVIDE | reg::SVR
    )
}

/// What an access did that the platform must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicEffect {
    None,
    /// The guest ended the interrupt `vector`; `level` if it was accepted
    /// level-triggered (TMR set), in which case the IOAPIC must clear its remote IRR.
    Eoi {
        vector: u8,
        level: bool,
    },
    /// An interprocessor interrupt to route.
    Ipi(Ipi),
}

/// ICR delivery modes (bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiMode {
    Fixed,
    LowestPriority,
    Smi,
    Nmi,
    Init,
    Startup,
}

/// ICR destination shorthand (bits 19:18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shorthand {
    /// Use the destination field.
    Destination,
    ToSelf,
    AllIncludingSelf,
    AllExcludingSelf,
}

/// An IPI sent by a write to the ICR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    pub vector: u8,
    pub mode: IpiMode,
    /// The destination field: 8 bits in xAPIC mode (ICR bits 63:56), 32 in x2APIC mode.
    /// Meaningful only with [`Shorthand::Destination`]; see
    /// [`LocalApic::matches_destination`].
    pub dest: u32,
    /// Logical destination mode (ICR bit 11).
    pub logical: bool,
    pub shorthand: Shorthand,
    /// Level-triggered (ICR bit 15).
    pub level: bool,
    /// Level assert (ICR bit 14; always set except for INIT level de-assert, which is
    /// swallowed here).
    pub assert: bool,
    /// Sent in x2APIC mode (so `dest` is an x2APIC ID or logical x2APIC ID).
    pub x2apic: bool,
    /// The sender's APIC ID.
    pub source: u32,
}

/// The mode of the APIC, from IA32_APIC_BASE bits 11:10.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicMode {
    Disabled,
    XApic,
    X2Apic,
}

/// The timer mode, LVT timer bits 18:17.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    OneShot,
    Periodic,
    TscDeadline,
    /// 3: reserved; the timer does not run.
    Reserved,
}

/// LVT delivery modes (bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LvtMode {
    Fixed,
    Smi,
    Nmi,
    Init,
    ExtInt,
    /// 001, 011 and 110: reserved.
    Reserved(u8),
}

/// An LVT entry, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LvtInfo {
    pub vector: u8,
    pub mode: LvtMode,
    pub masked: bool,
    /// Polarity bit 13 (LINT only).
    pub active_low: bool,
    /// Trigger mode bit 15 (LINT0 only).
    pub level: bool,
}

impl LvtInfo {
    fn decode(v: u32) -> Self {
        let mode = match (v >> 8) & 7 {
            0 => LvtMode::Fixed,
            2 => LvtMode::Smi,
            4 => LvtMode::Nmi,
            5 => LvtMode::Init,
            7 => LvtMode::ExtInt,
            m => LvtMode::Reserved(m as u8),
        };
        Self {
            vector: v as u8,
            mode,
            masked: v & LVT_MASKED != 0,
            active_low: v & (1 << 13) != 0,
            level: v & (1 << 15) != 0,
        }
    }
}

/// The local interrupt pins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lint {
    Lint0,
    Lint1,
}

/// What an edge on a LINT pin does, per its LVT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LintDelivery {
    /// Masked, reserved mode, or an illegal vector.
    None,
    /// A fixed interrupt, already accepted into the IRR.
    Accepted(u8),
    /// Inject an NMI.
    Nmi,
    Smi,
    Init,
    /// Take the vector from the 8259 PIC (INTA cycle).
    ExtInt,
}

#[derive(Clone, Copy, Debug, Default)]
struct Timer {
    /// Initial count (0: stopped). Not used in TSC-deadline mode.
    initial: u32,
    /// Divide configuration register (bits 0, 1, 3).
    divide: u32,
    /// Guest time of the last (re)base of the count.
    epoch_ns: u64,
    /// Ticks already counted (since the initial count was written) at `epoch_ns`.
    epoch_ticks: u64,
    /// Expiries accounted for since the initial count was written (one-shot: 0 or 1;
    /// periodic: whole periods elapsed as of the last poll).
    expiries: u64,
    /// IA32_TSC_DEADLINE (0: disarmed).
    deadline: u64,
}

#[derive(Clone, Debug)]
pub struct LocalApic {
    id: u32,
    bsp: bool,
    /// IA32_APIC_BASE without the BSP bit.
    base: u64,
    tsc_hz: u64,
    timer_hz: u64,
    /// IRR, ISR, TMR and TPR: in the model, or in a register page the backend attached
    /// ([`LocalApic::attach_page`]).
    irq: IrqState,
    ldr: u32,
    dfr: u32,
    svr: u32,
    /// ESR as last latched by a write to it.
    esr: u32,
    /// Errors since the last write to the ESR.
    esr_pending: u32,
    lvt: [u32; LVT_COUNT],
    /// ICR destination: bits 31:24 in xAPIC mode, the whole x2APIC destination in x2APIC.
    timer: Timer,
}

impl LocalApic {
    /// A local APIC after RESET: xAPIC mode at 0xFEE00000, software-disabled (SVR
    /// 0xFF), every LVT entry masked. `apic_id` is the x2APIC ID (its low 8 bits are
    /// the xAPIC ID); `bsp` sets IA32_APIC_BASE.BSP. `tsc_hz` is the guest TSC rate and
    /// `timer_hz` the APIC timer's input clock before the divide configuration.
    pub fn new(apic_id: u32, bsp: bool, tsc_hz: u64, timer_hz: u64) -> Self {
        let mut a = Self {
            id: apic_id,
            bsp,
            base: DEFAULT_BASE | BASE_ENABLE,
            tsc_hz: tsc_hz.max(1),
            timer_hz: timer_hz.max(1),
            irq: IrqState::default(),
            ldr: 0,
            dfr: 0,
            svr: 0,
            esr: 0,
            esr_pending: 0,
            lvt: [0; LVT_COUNT],
            timer: Timer::default(),
        };
        a.reset_registers();
        a
    }

    /// An INIT IPI reached this APIC's CPU: the registers go back to their state after
    /// RESET, but for the ID and IA32_APIC_BASE (its mode stays), section 11.4.7.3.
    pub fn init(&mut self) {
        self.reset_registers();
        self.mirror();
    }

    /// The register state after RESET or INIT (section 11.4.7.1): everything but the
    /// ID and IA32_APIC_BASE.
    fn reset_registers(&mut self) {
        self.irq.clear();
        self.ldr = 0;
        self.dfr = 0xffff_ffff;
        self.svr = 0xff;
        self.esr = 0;
        self.esr_pending = 0;
        self.lvt = [LVT_MASKED; LVT_COUNT];
        self.timer = Timer::default();
    }

    // ---- identity and modes ----

    /// The (x2)APIC ID this APIC was built with.
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn mode(&self) -> ApicMode {
        match (self.base & BASE_ENABLE != 0, self.base & BASE_EXTD != 0) {
            (true, true) => ApicMode::X2Apic,
            (true, false) => ApicMode::XApic,
            _ => ApicMode::Disabled,
        }
    }

    /// Globally enabled (IA32_APIC_BASE bit 11).
    pub fn hw_enabled(&self) -> bool {
        self.base & BASE_ENABLE != 0
    }

    /// Software enabled (SVR bit 8).
    pub fn sw_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// Guest-physical address of the xAPIC page.
    pub fn base_address(&self) -> u64 {
        self.base & BASE_ADDR_MASK
    }

    /// IA32_APIC_BASE as RDMSR returns it.
    pub fn apic_base(&self) -> u64 {
        self.base | if self.bsp { BASE_BSP } else { 0 }
    }

    /// WRMSR IA32_APIC_BASE. `Err` is #GP: reserved bits set, the invalid state
    /// EXTD without EN, or a transition Figure 11-27 forbids (x2APIC to xAPIC, disabled
    /// to x2APIC). The BSP bit is the platform's and writes to it are ignored. Going to
    /// the disabled state resets the APIC registers (section 11.4.3).
    #[allow(clippy::result_unit_err)] // Err is #GP(0): nothing more to say.
    pub fn set_apic_base(&mut self, value: u64) -> Result<(), ()> {
        let was = self.base;
        let r = self.set_base(value);
        // A new mode or a reset changes what the guest reads from the page.
        if self.base != was {
            self.mirror();
        }
        r
    }

    fn set_base(&mut self, value: u64) -> Result<(), ()> {
        if value & !(BASE_ADDR_MASK | BASE_ENABLE | BASE_EXTD | BASE_BSP) != 0 {
            return Err(());
        }
        let new = match (value & BASE_ENABLE != 0, value & BASE_EXTD != 0) {
            (true, true) => ApicMode::X2Apic,
            (true, false) => ApicMode::XApic,
            (false, false) => ApicMode::Disabled,
            (false, true) => return Err(()),
        };
        let old = self.mode();
        match (old, new) {
            (ApicMode::X2Apic, ApicMode::XApic) | (ApicMode::Disabled, ApicMode::X2Apic) => {
                return Err(())
            }
            (ApicMode::XApic | ApicMode::X2Apic, ApicMode::Disabled) => self.reset_registers(),
            (ApicMode::XApic, ApicMode::X2Apic) => {
                // The ICR destination changes format (8 bits at 31:24 to 32 bits).
                self.irq.set_icr_high(0);
            }
            _ => {}
        }
        self.base = value & !BASE_BSP;
        Ok(())
    }

    /// LDR as the guest sees it: in x2APIC mode derived from the ID (section 11.12.10.2).
    fn ldr_value(&self) -> u32 {
        if self.mode() == ApicMode::X2Apic {
            ((self.id >> 4) << 16) | (1 << (self.id & 0xf))
        } else {
            self.ldr
        }
    }

    /// Whether an interrupt message with destination `dest` (8-bit in xAPIC mode,
    /// 32-bit in x2APIC mode) in physical or logical mode is for this APIC, per the
    /// current mode, LDR and DFR (flat or cluster model). Broadcast (0xFF / 0xFFFFFFFF)
    /// matches. For the platform's IPI and IOAPIC routing.
    pub fn matches_destination(&self, dest: u32, logical: bool) -> bool {
        match self.mode() {
            ApicMode::Disabled => false,
            ApicMode::X2Apic => {
                if dest == u32::MAX {
                    true
                } else if logical {
                    let ldr = self.ldr_value();
                    dest >> 16 == ldr >> 16 && dest & ldr & 0xffff != 0
                } else {
                    dest == self.id
                }
            }
            ApicMode::XApic => {
                let dest = dest & 0xff;
                if dest == 0xff {
                    true
                } else if !logical {
                    dest == self.id & 0xff
                } else {
                    let ldr = self.ldr >> 24;
                    if self.dfr >> 28 == 0xf {
                        dest & ldr != 0
                    } else {
                        dest >> 4 == ldr >> 4 && dest & ldr & 0xf != 0
                    }
                }
            }
        }
    }

    // ---- priorities and the interrupt flow ----

    /// From now on IRR, ISR, TMR and TPR live in `page`, a backend's register page that
    /// its CPU updates itself while the guest runs (virtual-interrupt delivery:
    /// [`super::apic_page`]); they are copied there first.
    ///
    /// # Safety
    /// As [`IrqState::attach`]: `page` stays valid, touched only by this APIC and the CPU
    /// running its vCPU on this host CPU, until [`LocalApic::detach_page`].
    pub unsafe fn attach_page(&mut self, page: PagePtr) {
        // SAFETY: the caller's contract.
        unsafe { self.irq.attach(page) };
        self.mirror();
    }

    /// With a page attached: the registers a CPU that virtualizes the APIC page's reads
    /// serves from it ([`MIRRORED`]) as the guest would read them (0 outside xAPIC mode,
    /// as `read_mmio`); after a register write, the one written (`write_mmio`). The
    /// others it reads from the page are the page's own (TPR, ISR, TMR, IRR, ICR).
    fn mirror(&mut self) {
        if !self.irq.attached() {
            return;
        }
        for offset in MIRRORED {
            let v = self.read_mmio(offset, 0);
            self.irq.mirror_reg(offset, v);
        }
    }

    /// IRR, ISR, TMR and TPR come back from the attached page, if any.
    pub fn detach_page(&mut self) {
        self.irq.detach();
    }

    /// Whether a register page is attached ([`LocalApic::attach_page`]).
    pub fn page_attached(&self) -> bool {
        self.irq.attached()
    }

    /// Whether the model changed the attached page since the last call (its CPU then
    /// reads its highest requested and in-service vectors anew before the next entry:
    /// [`crate::vcpu::ArchVcpu::virtual_apic_changed`]).
    #[inline]
    pub fn take_page_changes(&mut self) -> bool {
        self.irq.take_changes()
    }

    /// The register at `offset` of the attached page, where the CPU stored a guest's
    /// write it left to Janus; `None` with no page attached.
    pub fn page_reg(&self, offset: u32) -> Option<u32> {
        self.irq.page_reg(offset)
    }

    /// The task priority register (bits 7:0). CR8 is `tpr() >> 4`.
    pub fn tpr(&self) -> u8 {
        self.irq.tpr()
    }

    /// Writes the TPR (a MOV to CR8 writes `value << 4`).
    pub fn set_tpr(&mut self, value: u8) {
        self.irq.set_tpr(value);
    }

    /// The processor priority: the TPR, or the class of the highest in-service vector if
    /// that is higher (section 11.8.3.1).
    pub fn ppr(&self) -> u8 {
        processor_priority(self.irq.tpr(), self.irq.highest(VecReg::Isr).unwrap_or(0))
    }

    /// Accepts a fixed interrupt (from the IOAPIC, an IPI, an MSI): sets its IRR bit, and
    /// its TMR bit if level-triggered. Vectors 0-15 are illegal: they set the ESR's
    /// receive-illegal-vector bit instead. Accepted while software-disabled too (held in
    /// the IRR); ignored while globally disabled.
    pub fn accept(&mut self, vector: u8, level: bool) {
        if !self.hw_enabled() {
            return;
        }
        if vector < 16 {
            self.error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return;
        }
        self.irq.set(VecReg::Irr, vector, true);
        self.irq.set(VecReg::Tmr, vector, level);
    }

    /// The vector the processor would take now: the highest requested vector whose
    /// priority class is above the PPR's. None while the APIC is disabled.
    pub fn pending_vector(&self) -> Option<u8> {
        if !self.hw_enabled() || !self.sw_enabled() {
            return None;
        }
        let v = self.irq.highest(VecReg::Irr)?;
        above_priority(v, self.ppr()).then_some(v)
    }

    /// Whether any vector is requested, whatever the priorities.
    pub fn irr_pending(&self) -> bool {
        self.irq.highest(VecReg::Irr).is_some()
    }

    /// The processor took `vector` (the platform injected it): IRR to ISR.
    pub fn acknowledge(&mut self, vector: u8) {
        self.irq.set(VecReg::Irr, vector, false);
        self.irq.set(VecReg::Isr, vector, true);
    }

    fn eoi(&mut self) -> ApicEffect {
        match self.irq.highest(VecReg::Isr) {
            Some(vector) => {
                self.irq.set(VecReg::Isr, vector, false);
                ApicEffect::Eoi {
                    vector,
                    level: self.irq.test(VecReg::Tmr, vector),
                }
            }
            None => ApicEffect::None,
        }
    }

    /// Records an APIC error and raises the error LVT interrupt if it is unmasked.
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let e = self.lvt[LVT_ERROR];
        if e & LVT_MASKED == 0 && e as u8 >= 16 {
            self.irq.set(VecReg::Irr, e as u8, true);
            self.irq.set(VecReg::Tmr, e as u8, false);
        }
    }

    /// Delivers a local (LVT) fixed interrupt unless the entry is masked.
    fn fire_lvt(&mut self, slot: usize) {
        let e = self.lvt[slot];
        if e & LVT_MASKED == 0 {
            self.accept(e as u8, false);
        }
    }

    // ---- LINT0 / LINT1 ----

    pub fn lint0(&self) -> LvtInfo {
        LvtInfo::decode(self.lvt[LVT_LINT0])
    }

    pub fn lint1(&self) -> LvtInfo {
        LvtInfo::decode(self.lvt[LVT_LINT1])
    }

    /// LINT0 is unmasked in ExtINT mode on an enabled APIC (virtual wire mode): the
    /// 8259's INTR reaches the processor through the APIC.
    pub fn extint_enabled(&self) -> bool {
        let l = self.lint0();
        self.hw_enabled() && !l.masked && l.mode == LvtMode::ExtInt
    }

    /// Whether the 8259 PIC's INTR goes to the processor: LINT0 in ExtINT mode and
    /// unmasked, or the APIC globally or software disabled (as after a BIOS has left
    /// LINT0 in virtual wire mode; the platform injects the PIC's vector directly).
    pub fn pic_passthrough(&self) -> bool {
        !self.hw_enabled() || !self.sw_enabled() || self.extint_enabled()
    }

    /// An active edge on a LINT pin, delivered per its LVT entry. While the APIC is
    /// globally disabled the pins are INTR (LINT0) and NMI (LINT1).
    pub fn raise_lint(&mut self, pin: Lint) -> LintDelivery {
        if !self.hw_enabled() {
            return match pin {
                Lint::Lint0 => LintDelivery::ExtInt,
                Lint::Lint1 => LintDelivery::Nmi,
            };
        }
        let info = match pin {
            Lint::Lint0 => self.lint0(),
            Lint::Lint1 => self.lint1(),
        };
        if info.masked {
            return LintDelivery::None;
        }
        match info.mode {
            LvtMode::Fixed if info.vector >= 16 => {
                self.accept(info.vector, false);
                LintDelivery::Accepted(info.vector)
            }
            LvtMode::Fixed => {
                self.error(ESR_RECEIVE_ILLEGAL_VECTOR);
                LintDelivery::None
            }
            LvtMode::Nmi => LintDelivery::Nmi,
            LvtMode::Smi => LintDelivery::Smi,
            LvtMode::Init => LintDelivery::Init,
            LvtMode::ExtInt => LintDelivery::ExtInt,
            LvtMode::Reserved(_) => LintDelivery::None,
        }
    }

    // ---- timer ----

    pub fn timer_mode(&self) -> TimerMode {
        match (self.lvt[LVT_TIMER] >> 17) & 3 {
            0 => TimerMode::OneShot,
            1 => TimerMode::Periodic,
            2 => TimerMode::TscDeadline,
            _ => TimerMode::Reserved,
        }
    }

    /// The divisor the divide configuration register selects (1..128).
    pub fn timer_divisor(&self) -> u32 {
        let d = self.timer.divide;
        match ((d & 8) >> 1) | (d & 3) {
            7 => 1,
            v => 2 << v,
        }
    }

    /// Guest TSC at guest time `ns` (the relation in the module doc).
    pub fn ns_to_tsc(&self, ns: u64) -> u64 {
        (ns as u128 * self.tsc_hz as u128 / NS_PER_SEC).min(u64::MAX as u128) as u64
    }

    /// The first guest time at which the guest TSC reads at least `tsc`.
    pub fn tsc_to_ns(&self, tsc: u64) -> u64 {
        let hz = self.tsc_hz as u128;
        ((tsc as u128 * NS_PER_SEC).div_ceil(hz)).min(u64::MAX as u128) as u64
    }

    /// Timer ticks (after the divider) counted since the initial count was written.
    fn elapsed_ticks(&self, now_ns: u64) -> u64 {
        let dt = now_ns.saturating_sub(self.timer.epoch_ns);
        let shift = self.timer_divisor().trailing_zeros();
        let t = if self.timer_hz == NS_PER_SEC as u64 {
            // One tick of the undivided clock per nanosecond (Janus' own clock,
            // `platform::APIC_TIMER_HZ`), the divisor a power of two: a shift, where the
            // general case is a 128-bit division (a call of about 100 instructions, on
            // every timer poll and every exit that arms the exit timers: issue #9).
            dt >> shift
        } else {
            let t = dt as u128 * self.timer_hz as u128 / (NS_PER_SEC << shift);
            t.min(u64::MAX as u128) as u64
        };
        self.timer.epoch_ticks.saturating_add(t)
    }

    /// The guest time at which `ticks` ticks have been counted since the initial count
    /// was written.
    fn ticks_deadline_ns(&self, ticks: u64) -> u64 {
        let left = ticks.saturating_sub(self.timer.epoch_ticks) as u128;
        let divided = left << self.timer_divisor().trailing_zeros();
        // At Janus' 1 GHz clock a tick of the undivided clock is a nanosecond (as in
        // `elapsed_ticks`): no division.
        let ns = if self.timer_hz == NS_PER_SEC as u64 {
            divided
        } else {
            (divided * NS_PER_SEC).div_ceil(self.timer_hz as u128)
        };
        self.timer
            .epoch_ns
            .saturating_add(ns.min(u64::MAX as u128) as u64)
    }

    fn counting(&self) -> bool {
        self.timer.initial != 0
            && matches!(self.timer_mode(), TimerMode::OneShot | TimerMode::Periodic)
    }

    /// The current-count register at `now_ns`.
    pub fn current_count(&self, now_ns: u64) -> u32 {
        if !self.counting() {
            return 0;
        }
        let init = self.timer.initial as u64;
        let e = self.elapsed_ticks(now_ns);
        match self.timer_mode() {
            TimerMode::Periodic => (init - e % init) as u32,
            _ => init.saturating_sub(e) as u32,
        }
    }

    /// Fires the timer into the IRR if it expired by `now_ns` (one-shot, periodic) or
    /// `tsc` (TSC-deadline). A periodic timer rearms; periods missed since the last poll
    /// coalesce into one interrupt. A masked timer keeps counting but delivers nothing.
    pub fn poll_timer(&mut self, now_ns: u64, tsc: u64) -> bool {
        let fire = match self.timer_mode() {
            TimerMode::OneShot
                if self.counting()
                    && self.timer.expiries == 0
                    && self.elapsed_ticks(now_ns) >= self.timer.initial as u64 =>
            {
                self.timer.expiries = 1;
                true
            }
            TimerMode::Periodic if self.counting() => {
                let k = self.elapsed_ticks(now_ns) / self.timer.initial as u64;
                let fire = k > self.timer.expiries;
                if fire {
                    self.timer.expiries = k;
                }
                fire
            }
            TimerMode::TscDeadline if self.timer.deadline != 0 && tsc >= self.timer.deadline => {
                self.timer.deadline = 0;
                true
            }
            _ => false,
        };
        if fire {
            self.fire_lvt(LVT_TIMER);
        }
        fire
    }

    /// Settles the timer at `now_ns` before a register write changes how it runs.
    fn settle(&mut self, now_ns: u64) {
        // The guest TSC only matters in TSC-deadline mode (a 128-bit division otherwise
        // spent on every timer register write).
        let tsc = if self.timer_mode() == TimerMode::TscDeadline {
            self.ns_to_tsc(now_ns)
        } else {
            0
        };
        let _ = self.poll_timer(now_ns, tsc);
    }

    /// Guest time of the next timer interrupt, if one is due (armed and unmasked); never
    /// earlier than `now_ns` (an overdue expiry returns `now_ns`: poll now).
    pub fn next_timer_ns(&self, now_ns: u64) -> Option<u64> {
        if !self.hw_enabled() || self.lvt[LVT_TIMER] & LVT_MASKED != 0 {
            return None;
        }
        let t = match self.timer_mode() {
            TimerMode::OneShot if self.counting() && self.timer.expiries == 0 => {
                self.ticks_deadline_ns(self.timer.initial as u64)
            }
            TimerMode::Periodic if self.counting() => {
                let next = (self.timer.expiries + 1).saturating_mul(self.timer.initial as u64);
                self.ticks_deadline_ns(next)
            }
            TimerMode::TscDeadline if self.timer.deadline != 0 => {
                self.tsc_to_ns(self.timer.deadline)
            }
            _ => return None,
        };
        Some(t.max(now_ns))
    }

    /// RDMSR IA32_TSC_DEADLINE: the armed deadline, 0 when disarmed or not in
    /// TSC-deadline mode.
    pub fn read_tsc_deadline(&self) -> u64 {
        if self.timer_mode() == TimerMode::TscDeadline {
            self.timer.deadline
        } else {
            0
        }
    }

    /// WRMSR IA32_TSC_DEADLINE at guest TSC `tsc_now`: arms the timer (0 disarms).
    /// Ignored outside TSC-deadline mode; a deadline already passed fires at once.
    pub fn write_tsc_deadline(&mut self, value: u64, tsc_now: u64) {
        if !self.hw_enabled() || self.timer_mode() != TimerMode::TscDeadline {
            return;
        }
        self.timer.deadline = value;
        if value != 0 && tsc_now >= value {
            self.timer.deadline = 0;
            self.fire_lvt(LVT_TIMER);
        }
    }

    fn write_initial_count(&mut self, value: u32, now_ns: u64) {
        if self.timer_mode() == TimerMode::TscDeadline {
            return;
        }
        // An expiry the platform has not polled yet still happened.
        self.settle(now_ns);
        self.timer.initial = value;
        self.timer.epoch_ns = now_ns;
        self.timer.epoch_ticks = 0;
        self.timer.expiries = 0;
    }

    fn write_divide(&mut self, value: u32, now_ns: u64) {
        self.settle(now_ns);
        // Rebase: the ticks counted so far stay counted, the rest use the new divisor.
        self.timer.epoch_ticks = self.elapsed_ticks(now_ns);
        self.timer.epoch_ns = now_ns;
        self.timer.divide = value & 0xb;
    }

    fn write_lvt(&mut self, slot: usize, value: u32, now_ns: u64) {
        let mut v = value & LVT_WRITABLE[slot];
        if !self.sw_enabled() {
            v |= LVT_MASKED;
        }
        if slot == LVT_TIMER {
            self.settle(now_ns);
            let old = self.timer_mode();
            self.lvt[slot] = v;
            let new = self.timer_mode();
            if old != new && (old == TimerMode::TscDeadline || new == TimerMode::TscDeadline) {
                // Switching to or from TSC-deadline mode disarms the timer.
                self.timer.initial = 0;
                self.timer.deadline = 0;
                self.timer.expiries = 0;
            } else if old == TimerMode::OneShot
                && new == TimerMode::Periodic
                && self.timer.expiries > 0
            {
                // An expired one-shot has stopped at 0; changing the mode does not restart
                // it (only a write of the initial count does), so it must not fire at once
                // as if its old count had been periodic all along.
                self.timer.initial = 0;
                self.timer.expiries = 0;
            }
        } else {
            self.lvt[slot] = v;
        }
    }

    fn write_svr(&mut self, value: u32, now_ns: u64) {
        self.settle(now_ns);
        self.svr = value & SVR_MASK;
        if !self.sw_enabled() {
            // Section 11.4.7.2: software disabling masks every LVT entry.
            for e in self.lvt.iter_mut() {
                *e |= LVT_MASKED;
            }
        }
    }

    fn write_esr(&mut self) {
        self.esr = self.esr_pending;
        self.esr_pending = 0;
    }

    // ---- ICR ----

    /// Sends the IPI the ICR describes. `dest` is the destination field for the mode.
    fn send_ipi(&mut self, low: u32, dest: u32, x2apic: bool) -> ApicEffect {
        let vector = low as u8;
        let mode = match (low >> 8) & 7 {
            0 => IpiMode::Fixed,
            1 => IpiMode::LowestPriority,
            2 => IpiMode::Smi,
            4 => IpiMode::Nmi,
            5 => IpiMode::Init,
            6 => IpiMode::Startup,
            _ => return ApicEffect::None,
        };
        let assert = low & (1 << 14) != 0;
        let level = low & (1 << 15) != 0;
        let shorthand = match (low >> 18) & 3 {
            0 => Shorthand::Destination,
            1 => Shorthand::ToSelf,
            2 => Shorthand::AllIncludingSelf,
            _ => Shorthand::AllExcludingSelf,
        };
        if mode == IpiMode::Init && !assert && level {
            // INIT level de-assert: not supported since the Pentium 4; a no-op.
            return ApicEffect::None;
        }
        if matches!(mode, IpiMode::Fixed | IpiMode::LowestPriority) && vector < 16 {
            self.error(ESR_SEND_ILLEGAL_VECTOR);
            return ApicEffect::None;
        }
        if shorthand == Shorthand::ToSelf {
            // Only fixed delivery is valid with the self shorthand.
            if mode == IpiMode::Fixed {
                self.accept(vector, level);
            }
            return ApicEffect::None;
        }
        ApicEffect::Ipi(Ipi {
            vector,
            mode,
            dest,
            logical: low & (1 << 11) != 0,
            shorthand,
            level,
            assert,
            x2apic,
            source: self.id,
        })
    }

    // ---- xAPIC MMIO ----

    /// A 32-bit read at `offset` in the APIC page. Reads 0 unless in xAPIC mode, and for
    /// write-only, reserved or misaligned offsets.
    pub fn read_mmio(&mut self, offset: u32, now_ns: u64) -> u32 {
        let offset = offset & 0xfff;
        if self.mode() != ApicMode::XApic || offset & 0xf != 0 {
            return 0;
        }
        if let Some(slot) = lvt_slot(offset) {
            return self.lvt[slot];
        }
        match offset {
            reg::ID => (self.id & 0xff) << 24,
            reg::VERSION => VERSION,
            reg::TPR => self.irq.tpr() as u32,
            reg::PPR => self.ppr() as u32,
            reg::LDR => self.ldr,
            reg::DFR => self.dfr | DFR_RESERVED_ONES,
            reg::SVR => self.svr,
            reg::ISR..=0x270 => self.irq.vector_word(offset),
            reg::ESR => self.esr,
            reg::ICR_LOW => self.irq.icr_low(),
            reg::ICR_HIGH => self.irq.icr_high(),
            reg::TIMER_INITIAL => self.timer.initial,
            reg::TIMER_CURRENT => self.current_count(now_ns),
            reg::TIMER_DIVIDE => self.timer.divide,
            // APR (no arbitration priority), EOI (write-only), RRD, reserved.
            _ => 0,
        }
    }

    /// A 32-bit write at `offset` in the APIC page. Ignored unless in xAPIC mode, and
    /// for read-only, reserved or misaligned offsets.
    pub fn write_mmio(&mut self, offset: u32, value: u32, now_ns: u64) -> ApicEffect {
        let e = self.write_register(offset, value, now_ns);
        if self.irq.attached() {
            // The SVR's software disable masks every LVT entry.
            if offset & 0xff0 == reg::SVR {
                self.mirror();
            } else if MIRRORED.contains(&(offset & 0xff0)) {
                let v = self.read_mmio(offset & 0xff0, 0);
                self.irq.mirror_reg(offset, v);
            }
        }
        e
    }

    fn write_register(&mut self, offset: u32, value: u32, now_ns: u64) -> ApicEffect {
        let offset = offset & 0xfff;
        if self.mode() != ApicMode::XApic || offset & 0xf != 0 {
            return ApicEffect::None;
        }
        if let Some(slot) = lvt_slot(offset) {
            self.write_lvt(slot, value, now_ns);
            return ApicEffect::None;
        }
        match offset {
            reg::TPR => self.set_tpr(value as u8),
            reg::EOI => return self.eoi(),
            reg::LDR => self.ldr = value & 0xff00_0000,
            reg::DFR => self.dfr = value | DFR_RESERVED_ONES,
            reg::SVR => self.write_svr(value, now_ns),
            reg::ESR => self.write_esr(),
            reg::ICR_LOW => {
                self.irq.set_icr_low(value & ICR_LOW_MASK);
                let dest = self.irq.icr_high() >> 24;
                return self.send_ipi(value & ICR_LOW_MASK, dest, false);
            }
            reg::ICR_HIGH => self.irq.set_icr_high(value & 0xff00_0000),
            reg::TIMER_INITIAL => self.write_initial_count(value, now_ns),
            reg::TIMER_DIVIDE => self.write_divide(value, now_ns),
            _ => {}
        }
        ApicEffect::None
    }

    // ---- x2APIC MSRs ----

    /// RDMSR of an x2APIC register (0x800-0x8FF). `None` is #GP: not in x2APIC mode,
    /// write-only (EOI, SELF IPI) or reserved MSRs.
    pub fn read_msr(&mut self, msr: u32, now_ns: u64) -> Option<u64> {
        if self.mode() != ApicMode::X2Apic || !(X2APIC_MSR_BASE..=X2APIC_MSR_LAST).contains(&msr) {
            return None;
        }
        let offset = (msr - X2APIC_MSR_BASE) << 4;
        if let Some(slot) = lvt_slot(offset) {
            return Some(self.lvt[slot] as u64);
        }
        let v = match offset {
            reg::ID => self.id,
            reg::VERSION => VERSION,
            reg::TPR => self.irq.tpr() as u32,
            reg::PPR => self.ppr() as u32,
            reg::LDR => self.ldr_value(),
            reg::SVR => self.svr,
            reg::ISR..=0x270 => self.irq.vector_word(offset),
            reg::ESR => self.esr,
            reg::ICR_LOW => {
                return Some((self.irq.icr_high() as u64) << 32 | self.irq.icr_low() as u64)
            }
            reg::TIMER_INITIAL => self.timer.initial,
            reg::TIMER_CURRENT => self.current_count(now_ns),
            reg::TIMER_DIVIDE => self.timer.divide,
            _ => return None,
        };
        Some(v as u64)
    }

    /// WRMSR of an x2APIC register. `Err` is #GP: not in x2APIC mode, read-only or
    /// reserved MSRs, bits 63:32 set (except in the ICR), a non-zero write to EOI or
    /// ESR, reserved bits in TPR, SELF IPI or the ICR.
    #[allow(clippy::result_unit_err)] // Err is #GP(0): nothing more to say.
    pub fn write_msr(&mut self, msr: u32, value: u64, now_ns: u64) -> Result<ApicEffect, ()> {
        if self.mode() != ApicMode::X2Apic || !(X2APIC_MSR_BASE..=X2APIC_MSR_LAST).contains(&msr) {
            return Err(());
        }
        let offset = (msr - X2APIC_MSR_BASE) << 4;
        if offset == reg::ICR_LOW {
            if value & !(0xffff_ffff_0000_0000 | ICR_LOW_MASK as u64) != 0 {
                return Err(());
            }
            self.irq.set_icr_low(value as u32);
            self.irq.set_icr_high((value >> 32) as u32);
            return Ok(self.send_ipi(value as u32, (value >> 32) as u32, true));
        }
        if value >> 32 != 0 {
            return Err(());
        }
        let v = value as u32;
        if let Some(slot) = lvt_slot(offset) {
            self.write_lvt(slot, v, now_ns);
            return Ok(ApicEffect::None);
        }
        match offset {
            reg::TPR if v <= 0xff => self.set_tpr(v as u8),
            reg::EOI if v == 0 => return Ok(self.eoi()),
            reg::SVR => self.write_svr(v, now_ns),
            reg::ESR if v == 0 => self.write_esr(),
            reg::TIMER_INITIAL => self.write_initial_count(v, now_ns),
            reg::TIMER_DIVIDE => self.write_divide(v, now_ns),
            reg::SELF_IPI if v <= 0xff => self.accept(v as u8, false),
            _ => return Err(()),
        }
        Ok(ApicEffect::None)
    }
}

/// The xAPIC page: 32-bit registers at their offsets (SDM Vol 3A 11.4.1).
impl Device for LocalApic {
    fn read(&mut self, offset: u64, _size: u8, now: Now) -> u64 {
        self.read_mmio(offset as u32, now.ns) as u64
    }
    fn write(&mut self, offset: u64, _size: u8, value: u64, now: Now) -> DeviceEffect {
        DeviceEffect::Apic(self.write_mmio(offset as u32, value as u32, now.ns))
    }
}

/// The processor priority from the task priority and the highest in-service vector (0
/// for none): the TPR, or the in-service vector's class if that is higher (SDM Vol 3A
/// 11.8.3.1). A virtual APIC's VPPR is the same function of VTPR and SVI (SDM Vol 3C
/// 30.1.3): the one rule for both.
pub fn processor_priority(tpr: u8, isrv: u8) -> u8 {
    if tpr >> 4 >= isrv >> 4 {
        tpr
    } else {
        isrv & 0xf0
    }
}

/// Whether `vector` is taken at priority `ppr`: its class above the PPR's (SDM Vol 3A
/// 11.8.3.1; a virtual interrupt's RVI against VPPR the same way, Vol 3C 30.2.1).
pub fn above_priority(vector: u8, ppr: u8) -> bool {
    vector >> 4 > ppr >> 4
}

#[cfg(test)]
mod tests {
    use super::*;

    const GHZ: u64 = 1_000_000_000;

    /// An enabled xAPIC, BSP, 1 GHz TSC and timer clock.
    fn apic() -> LocalApic {
        let mut a = LocalApic::new(0, true, GHZ, GHZ);
        a.write_mmio(reg::SVR, SVR_ENABLE | 0xff, 0);
        a
    }

    fn x2apic(id: u32) -> LocalApic {
        let mut a = LocalApic::new(id, false, GHZ, GHZ);
        a.set_apic_base(DEFAULT_BASE | BASE_ENABLE | BASE_EXTD)
            .unwrap();
        a.write_msr(0x80f, 0x1ff, 0).unwrap();
        a
    }

    #[test]
    fn an_attached_page_holds_what_the_guest_reads_at_the_architectural_offsets() {
        use crate::devices::apic_page::{ApicPage, PagePtr};
        let mut a = apic();
        // SAFETY: zeroed memory is a valid page, alive until the end of the test.
        let mut page: std::boxed::Box<ApicPage> =
            unsafe { std::boxed::Box::new_zeroed().assume_init() };
        // SAFETY: as above; detached before it goes.
        let at = unsafe { PagePtr::new(core::ptr::NonNull::from(&mut *page)) };
        // SAFETY: as above.
        unsafe { a.attach_page(at) };
        a.write_mmio(reg::SVR, 0x1ff, 0);
        a.write_mmio(reg::LVT_TIMER, 0x0002_0041 | 0xff00_0000, 0);
        a.write_mmio(reg::TIMER_INITIAL, 1234, 0);
        a.write_mmio(reg::TIMER_DIVIDE, 0xb, 0);
        a.write_mmio(reg::ICR_HIGH, 0x0300_0000, 0);
        let read = |a: &mut LocalApic, off: u32| a.read_mmio(off, 0);
        for off in MIRRORED.into_iter().chain([reg::ICR_HIGH, reg::TPR]) {
            // SAFETY: nothing runs; the model is done with the page meanwhile.
            let in_page = unsafe { at.get() }.reg(off);
            assert_eq!(in_page, read(&mut a, off), "offset {off:#x}");
        }
        // SAFETY: as above.
        let p = unsafe { at.get() };
        assert_eq!(
            p.reg(reg::LVT_TIMER),
            0x0002_0041,
            "as read: reserved bits dropped"
        );
        assert_eq!(
            (p.reg(reg::TIMER_INITIAL), p.reg(reg::VERSION)),
            (1234, VERSION)
        );
        // The SVR's software disable masks every LVT entry, in the page too.
        a.write_mmio(reg::SVR, 0xff, 0);
        // SAFETY: as above.
        assert_ne!(unsafe { at.get() }.reg(reg::LVT_TIMER) & LVT_MASKED, 0);
        // x2APIC mode: the xAPIC page reads 0.
        a.set_apic_base(DEFAULT_BASE | BASE_ENABLE | BASE_EXTD)
            .unwrap();
        // SAFETY: as above.
        let p = unsafe { at.get() };
        assert_eq!((p.reg(reg::SVR), p.reg(reg::VERSION)), (0, 0));
        a.detach_page();
    }

    #[test]
    fn an_icr_destination_the_cpu_stored_in_the_page_is_the_one_the_ipi_goes_to() {
        // VT-x stores a guest's ICR-high write in the virtual-APIC page without an exit
        // (Bochs' Skylake: the smp suite's logical-destination IPIs went to the old
        // destination while the model kept its own copy).
        use crate::devices::apic_page::{ApicPage, PagePtr};
        let mut a = apic();
        a.write_mmio(reg::SVR, 0x1ff, 0);
        // SAFETY: zeroed memory is a valid page, alive until the end of the test.
        let mut page: std::boxed::Box<ApicPage> =
            unsafe { std::boxed::Box::new_zeroed().assume_init() };
        // SAFETY: as above; detached before it goes.
        let at = unsafe { PagePtr::new(core::ptr::NonNull::from(&mut *page)) };
        // SAFETY: as above.
        unsafe { a.attach_page(at) };
        // SAFETY: the CPU's write, in a test; the model is not using the page.
        unsafe { at.get_mut() }.set_reg(reg::ICR_HIGH, 0x0200_0000);
        match a.write_mmio(reg::ICR_LOW, 0x40, 0) {
            ApicEffect::Ipi(ipi) => assert_eq!((ipi.vector, ipi.dest), (0x40, 2)),
            e => panic!("want an IPI, got {e:?}"),
        }
        assert_eq!(a.read_mmio(reg::ICR_HIGH, 0), 0x0200_0000);
        a.detach_page();
        assert_eq!(
            a.read_mmio(reg::ICR_HIGH, 0),
            0x0200_0000,
            "kept when detached"
        );
    }

    #[test]
    fn reset_state_and_identity_registers() {
        let mut a = LocalApic::new(3, true, GHZ, GHZ);
        assert_eq!(a.apic_base(), 0xfee0_0000 | BASE_ENABLE | BASE_BSP);
        assert_eq!(a.read_mmio(reg::ID, 0), 3 << 24);
        assert_eq!(a.read_mmio(reg::VERSION, 0), 0x0005_0014);
        assert_eq!(a.read_mmio(reg::SVR, 0), 0xff);
        assert_eq!(a.read_mmio(reg::DFR, 0), 0xffff_ffff);
        assert_eq!(a.read_mmio(reg::LVT_LINT0, 0), LVT_MASKED);
        assert!(!a.sw_enabled());
        a.accept(0x40, false);
        assert_eq!(
            a.pending_vector(),
            None,
            "software-disabled: nothing is taken"
        );
        assert!(a.irr_pending(), "but the request is held");
    }

    #[test]
    fn software_enable_via_svr_and_lvt_masking() {
        let mut a = LocalApic::new(0, true, GHZ, GHZ);
        a.write_mmio(reg::LVT_LINT0, 0x700, 0);
        assert_ne!(
            a.read_mmio(reg::LVT_LINT0, 0) & LVT_MASKED,
            0,
            "mask sticks while disabled"
        );
        a.write_mmio(reg::SVR, 0x1ff, 0);
        assert!(a.sw_enabled());
        a.write_mmio(reg::LVT_LINT0, 0x700, 0);
        assert_eq!(a.read_mmio(reg::LVT_LINT0, 0), 0x700);
        a.write_mmio(reg::SVR, 0xff, 0);
        assert_eq!(
            a.read_mmio(reg::LVT_LINT0, 0),
            0x700 | LVT_MASKED,
            "disabling masks"
        );
    }

    #[test]
    fn priorities_acknowledge_and_eoi_order() {
        let mut a = apic();
        a.accept(0x31, false);
        a.accept(0x52, true);
        assert_eq!(a.read_mmio(reg::IRR + 0x10, 0), 1 << 0x11);
        assert_eq!(a.pending_vector(), Some(0x52));
        a.acknowledge(0x52);
        assert_eq!(a.read_mmio(reg::ISR + 0x20, 0), 1 << 0x12);
        assert_eq!(a.read_mmio(reg::PPR, 0), 0x50);
        assert_eq!(
            a.pending_vector(),
            None,
            "0x31 is below the in-service class"
        );
        a.accept(0x61, false);
        assert_eq!(a.pending_vector(), Some(0x61), "a higher class nests");
        a.acknowledge(0x61);
        assert_eq!(
            a.write_mmio(reg::EOI, 0, 0),
            ApicEffect::Eoi {
                vector: 0x61,
                level: false
            }
        );
        assert_eq!(
            a.write_mmio(reg::EOI, 0, 0),
            ApicEffect::Eoi {
                vector: 0x52,
                level: true
            }
        );
        assert_eq!(a.pending_vector(), Some(0x31));
        // TPR masks classes at or below it.
        a.write_mmio(reg::TPR, 0x30, 0);
        assert_eq!(a.read_mmio(reg::PPR, 0), 0x30);
        assert_eq!(a.pending_vector(), None);
        a.set_tpr(0x2f);
        assert_eq!(a.pending_vector(), Some(0x31));
        a.acknowledge(0x31);
        assert_eq!(
            a.write_mmio(reg::EOI, 0, 0),
            ApicEffect::Eoi {
                vector: 0x31,
                level: false
            }
        );
        assert_eq!(
            a.write_mmio(reg::EOI, 0, 0),
            ApicEffect::None,
            "nothing in service"
        );
    }

    #[test]
    fn illegal_vectors_set_esr_and_raise_the_error_lvt() {
        let mut a = apic();
        a.write_mmio(reg::LVT_ERROR, 0xfe, 0);
        a.accept(5, false);
        assert_eq!(a.read_mmio(reg::ESR, 0), 0, "ESR latches on write");
        a.write_mmio(reg::ESR, 0, 0);
        assert_eq!(a.read_mmio(reg::ESR, 0), ESR_RECEIVE_ILLEGAL_VECTOR);
        assert_eq!(a.pending_vector(), Some(0xfe));
        a.write_mmio(reg::ICR_LOW, 0x4_4000 | 3, 0);
        a.write_mmio(reg::ESR, 0, 0);
        assert_eq!(a.read_mmio(reg::ESR, 0), ESR_SEND_ILLEGAL_VECTOR);
    }

    /// Every divide configuration on clocks of `hz`, at a spread of elapsed times: the
    /// ticks counted and the deadline of a count agree with the 128-bit formulas of the
    /// SDM's timer (Vol 3A 11.5.4), whichever way they are computed.
    fn timer_arithmetic_matches_the_formulas(hz: u64) {
        for divide in [0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xa, 0xb] {
            let mut a = LocalApic::new(0, true, GHZ, hz);
            a.write_mmio(reg::SVR, SVR_ENABLE | 0xff, 0);
            a.write_mmio(reg::TIMER_DIVIDE, divide, 0);
            a.write_mmio(reg::LVT_TIMER, 0x40, 0);
            a.write_mmio(reg::TIMER_INITIAL, u32::MAX, 7);
            let div = u128::from(a.timer_divisor());
            for dt in [0u64, 1, 2, 127, 128, 999, 1_000_003, 1 << 40, u64::MAX - 7] {
                let want = u128::from(dt) * u128::from(hz) / (div * NS_PER_SEC);
                let want = want.min(u128::from(u64::MAX)) as u64;
                assert_eq!(
                    a.elapsed_ticks(7 + dt.min(u64::MAX - 7)),
                    want,
                    "hz {hz} div {div} dt {dt}"
                );
            }
            for ticks in [0u64, 1, 3, 1000, 1 << 33] {
                let ns = (u128::from(ticks) * div * NS_PER_SEC).div_ceil(u128::from(hz));
                let want = 7u64.saturating_add(ns.min(u128::from(u64::MAX)) as u64);
                assert_eq!(
                    a.ticks_deadline_ns(ticks),
                    want,
                    "hz {hz} div {div} ticks {ticks}"
                );
            }
        }
    }

    #[test]
    fn the_timer_counts_as_the_formulas_say_on_janus_clock_and_on_others() {
        // Janus' own 1 GHz clock takes the shift; the others the division.
        timer_arithmetic_matches_the_formulas(GHZ);
        timer_arithmetic_matches_the_formulas(100_000_000);
        timer_arithmetic_matches_the_formulas(3 * GHZ);
    }

    #[test]
    fn one_shot_timer_with_divide_16() {
        let mut a = apic();
        a.write_mmio(reg::TIMER_DIVIDE, 0x3, 0);
        assert_eq!(a.timer_divisor(), 16);
        a.write_mmio(reg::LVT_TIMER, 0x40, 0);
        a.write_mmio(reg::TIMER_INITIAL, 1000, 100);
        // 1000 ticks * 16 ns.
        assert_eq!(a.next_timer_ns(100), Some(16_100));
        assert_eq!(a.read_mmio(reg::TIMER_CURRENT, 100 + 16 * 250), 750);
        a.poll_timer(16_099, 16_099);
        assert_eq!(a.pending_vector(), None);
        a.poll_timer(16_100, 16_100);
        assert_eq!(a.pending_vector(), Some(0x40));
        assert_eq!(a.read_mmio(reg::TIMER_CURRENT, 16_100), 0);
        a.acknowledge(0x40);
        a.write_mmio(reg::EOI, 0, 0);
        a.poll_timer(1_000_000, 1_000_000);
        assert_eq!(a.pending_vector(), None, "one-shot fires once");
        assert_eq!(a.next_timer_ns(1_000_000), None);
    }

    #[test]
    fn periodic_timer_rearms_counts_down_and_coalesces() {
        let mut a = apic();
        a.write_mmio(reg::TIMER_DIVIDE, 0xb, 0);
        assert_eq!(a.timer_divisor(), 1);
        a.write_mmio(reg::LVT_TIMER, (1 << 17) | 0x50, 0);
        a.write_mmio(reg::TIMER_INITIAL, 100, 0);
        assert_eq!(a.read_mmio(reg::TIMER_CURRENT, 0), 100);
        assert_eq!(a.read_mmio(reg::TIMER_CURRENT, 25), 75);
        assert_eq!(a.read_mmio(reg::TIMER_CURRENT, 50), 50);
        assert_eq!(
            a.read_mmio(reg::TIMER_CURRENT, 130),
            70,
            "reloaded after a period"
        );
        for period in 1..=3u64 {
            assert_eq!(a.next_timer_ns(period * 100 - 1), Some(period * 100));
            a.poll_timer(period * 100, period * 100);
            assert_eq!(a.pending_vector(), Some(0x50));
            a.acknowledge(0x50);
            a.write_mmio(reg::EOI, 0, 0);
        }
        // Five periods missed: one interrupt, next expiry on the period grid.
        a.poll_timer(850, 850);
        assert_eq!(a.pending_vector(), Some(0x50));
        a.acknowledge(0x50);
        a.write_mmio(reg::EOI, 0, 0);
        assert_eq!(a.next_timer_ns(850), Some(900));
        a.poll_timer(899, 899);
        assert_eq!(a.pending_vector(), None);
        // Writing 0 stops it.
        a.write_mmio(reg::TIMER_INITIAL, 0, 900);
        assert_eq!(a.next_timer_ns(900), None);
        assert_eq!(a.read_mmio(reg::TIMER_CURRENT, 950), 0);
    }

    #[test]
    fn masked_timer_counts_but_does_not_interrupt() {
        let mut a = apic();
        a.write_mmio(reg::TIMER_DIVIDE, 0xb, 0);
        a.write_mmio(reg::LVT_TIMER, LVT_MASKED | (1 << 17) | 0x50, 0);
        a.write_mmio(reg::TIMER_INITIAL, 100, 0);
        assert_eq!(a.next_timer_ns(0), None);
        assert_eq!(a.read_mmio(reg::TIMER_CURRENT, 40), 60);
        a.poll_timer(250, 250);
        assert!(!a.irr_pending());
        // Unmasking does not deliver the periods that expired while masked.
        a.write_mmio(reg::LVT_TIMER, (1 << 17) | 0x50, 260);
        a.poll_timer(260, 260);
        assert!(!a.irr_pending());
        a.poll_timer(300, 300);
        assert_eq!(a.pending_vector(), Some(0x50));
    }

    #[test]
    fn tsc_deadline_fires_once_passed_and_zero_disarms() {
        // TSC at 2 GHz: deadline 3000 is at 1500 ns.
        let mut a = LocalApic::new(0, true, 2 * GHZ, GHZ);
        a.write_mmio(reg::SVR, 0x1ff, 0);
        a.write_tsc_deadline(3000, 0);
        assert_eq!(
            a.read_tsc_deadline(),
            0,
            "ignored outside TSC-deadline mode"
        );
        a.write_mmio(reg::LVT_TIMER, (2 << 17) | 0x60, 0);
        a.write_mmio(reg::TIMER_INITIAL, 100, 0);
        assert_eq!(
            a.read_mmio(reg::TIMER_INITIAL, 0),
            0,
            "initial count ignored"
        );
        a.write_tsc_deadline(3000, 0);
        assert_eq!(a.read_tsc_deadline(), 3000);
        assert_eq!(a.next_timer_ns(0), Some(1500));
        a.poll_timer(1499, 2999);
        assert_eq!(a.pending_vector(), None);
        a.poll_timer(1500, 3000);
        assert_eq!(a.pending_vector(), Some(0x60));
        assert_eq!(a.read_tsc_deadline(), 0, "disarmed after firing");
        a.acknowledge(0x60);
        a.write_mmio(reg::EOI, 0, 0);
        a.write_tsc_deadline(10_000, 3000);
        a.write_tsc_deadline(0, 3000);
        assert_eq!(a.next_timer_ns(3000), None);
        a.poll_timer(100_000, 200_000);
        assert_eq!(a.pending_vector(), None, "writing 0 disarmed it");
        // A deadline already passed fires at once.
        a.write_tsc_deadline(5, 3000);
        assert_eq!(a.pending_vector(), Some(0x60));
    }

    #[test]
    fn leaving_tsc_deadline_mode_disarms() {
        let mut a = apic();
        a.write_mmio(reg::LVT_TIMER, (2 << 17) | 0x60, 0);
        a.write_tsc_deadline(1000, 0);
        a.write_mmio(reg::LVT_TIMER, 0x60, 10);
        a.write_mmio(reg::LVT_TIMER, (2 << 17) | 0x60, 20);
        assert_eq!(a.read_tsc_deadline(), 0);
    }

    #[test]
    fn rearming_does_not_lose_an_unpolled_expiry() {
        let mut a = apic();
        a.write_mmio(reg::TIMER_DIVIDE, 0xb, 0);
        a.write_mmio(reg::LVT_TIMER, 0x40, 0);
        a.write_mmio(reg::TIMER_INITIAL, 100, 0);
        a.write_mmio(reg::TIMER_INITIAL, 100, 150);
        assert_eq!(a.pending_vector(), Some(0x40));
        assert_eq!(a.next_timer_ns(150), Some(250));
    }

    #[test]
    fn divide_change_keeps_counted_ticks() {
        let mut a = apic();
        a.write_mmio(reg::TIMER_DIVIDE, 0xb, 0); // /1
        a.write_mmio(reg::LVT_TIMER, 0x40, 0);
        a.write_mmio(reg::TIMER_INITIAL, 100, 0);
        a.write_mmio(reg::TIMER_DIVIDE, 0x0, 40); // /2: 60 ticks left = 120 ns
        assert_eq!(a.read_mmio(reg::TIMER_CURRENT, 40), 60);
        assert_eq!(a.next_timer_ns(40), Some(160));
    }

    #[test]
    fn x2apic_msrs() {
        let mut a = x2apic(0x123);
        assert_eq!(a.read_msr(0x802, 0), Some(0x123));
        assert_eq!(a.read_msr(0x803, 0), Some(VERSION as u64));
        // Logical ID: cluster 0x12, bit 3.
        assert_eq!(a.read_msr(0x80d, 0), Some(0x12_0008));
        assert!(a.matches_destination(0x12_0008, true));
        assert!(!a.matches_destination(0x13_0008, true));
        assert!(a.matches_destination(0x123, false));
        // SELF IPI, then EOI.
        assert_eq!(a.write_msr(0x83f, 0x45, 0), Ok(ApicEffect::None));
        assert_eq!(a.pending_vector(), Some(0x45));
        a.acknowledge(0x45);
        assert_eq!(a.read_msr(0x812, 0), Some(1 << 5), "ISR word 2, bit 5");
        assert_eq!(a.write_msr(0x80b, 1, 0), Err(()), "non-zero EOI");
        assert_eq!(
            a.write_msr(0x80b, 0, 0),
            Ok(ApicEffect::Eoi {
                vector: 0x45,
                level: false
            })
        );
        // ICR is one 64-bit MSR: a fixed self-IPI is handled here.
        assert_eq!(
            a.write_msr(0x830, (1 << 18) | 0x66, 0),
            Ok(ApicEffect::None)
        );
        assert_eq!(a.pending_vector(), Some(0x66));
        assert_eq!(a.read_msr(0x830, 0), Some((1 << 18) | 0x66));
        // A physical IPI to x2APIC ID 0x1_0000 goes to the platform.
        let icr = (0x1_0000u64 << 32) | (1 << 14) | 0x70;
        let Ok(ApicEffect::Ipi(ipi)) = a.write_msr(0x830, icr, 0) else {
            panic!()
        };
        assert_eq!(
            (ipi.vector, ipi.dest, ipi.mode, ipi.x2apic),
            (0x70, 0x1_0000, IpiMode::Fixed, true)
        );
        assert_eq!(ipi.shorthand, Shorthand::Destination);
        assert!(!ipi.logical && ipi.assert && !ipi.level);
        assert_eq!(ipi.source, 0x123);
        // #GP cases.
        assert_eq!(a.read_msr(0x831, 0), None, "no ICR high MSR");
        assert_eq!(a.read_msr(0x80e, 0), None, "no DFR");
        assert_eq!(a.read_msr(0x80b, 0), None, "EOI is write-only");
        assert_eq!(a.read_msr(0x83f, 0), None, "SELF IPI is write-only");
        assert_eq!(a.write_msr(0x802, 0, 0), Err(()), "ID is read-only");
        assert_eq!(
            a.write_msr(0x839, 0, 0),
            Err(()),
            "current count is read-only"
        );
        assert_eq!(a.write_msr(0x808, 0x100, 0), Err(()), "TPR reserved bits");
        assert_eq!(
            a.write_msr(0x80f, 1 << 32, 0),
            Err(()),
            "upper half reserved"
        );
        assert_eq!(a.write_msr(0x828, 1, 0), Err(()), "non-zero ESR write");
        assert_eq!(a.write_msr(0x830, 1 << 12, 0), Err(()), "ICR reserved bit");
        assert_eq!(a.write_msr(0x900, 0, 0), Err(()));
        // MMIO is off in x2APIC mode.
        assert_eq!(a.read_mmio(reg::VERSION, 0), 0);
        // Timer via MSRs.
        a.write_msr(0x83e, 0xb, 0).unwrap();
        a.write_msr(0x838, 500, 0).unwrap();
        assert_eq!(a.read_msr(0x839, 200), Some(300));
    }

    #[test]
    fn x2apic_msrs_fault_in_xapic_mode() {
        let mut a = apic();
        assert_eq!(a.read_msr(0x802, 0), None);
        assert_eq!(a.write_msr(0x80b, 0, 0), Err(()));
    }

    #[test]
    fn apic_base_transitions() {
        let mut a = LocalApic::new(1, false, GHZ, GHZ);
        let x = DEFAULT_BASE | BASE_ENABLE;
        assert_eq!(a.set_apic_base(x | 1), Err(()), "reserved bit 0");
        assert_eq!(a.set_apic_base(x | (1 << 9)), Err(()), "reserved bit 9");
        assert_eq!(a.set_apic_base(x | (1 << 60)), Err(()), "above MAXPHYADDR");
        assert_eq!(
            a.set_apic_base(DEFAULT_BASE | BASE_EXTD),
            Err(()),
            "EXTD without EN"
        );
        assert_eq!(a.set_apic_base(x | BASE_EXTD), Ok(()));
        assert_eq!(a.mode(), ApicMode::X2Apic);
        assert_eq!(a.set_apic_base(x), Err(()), "x2APIC to xAPIC directly");
        assert_eq!(a.set_apic_base(DEFAULT_BASE), Ok(()));
        assert_eq!(a.mode(), ApicMode::Disabled);
        assert_eq!(
            a.set_apic_base(x | BASE_EXTD),
            Err(()),
            "disabled to x2APIC"
        );
        assert_eq!(a.set_apic_base(x), Ok(()));
        assert_eq!(a.mode(), ApicMode::XApic);
        // Relocation, and the BSP bit is not the guest's.
        assert_eq!(
            a.set_apic_base(0xfed0_0000 | BASE_ENABLE | BASE_BSP),
            Ok(())
        );
        assert_eq!(a.base_address(), 0xfed0_0000);
        assert_eq!(a.apic_base(), 0xfed0_0000 | BASE_ENABLE);
    }

    #[test]
    fn global_disable_resets_state() {
        let mut a = apic();
        a.accept(0x40, false);
        a.set_apic_base(DEFAULT_BASE).unwrap();
        a.accept(0x41, false);
        a.set_apic_base(DEFAULT_BASE | BASE_ENABLE).unwrap();
        assert!(!a.irr_pending());
        assert!(!a.sw_enabled());
    }

    #[test]
    fn extint_passthrough() {
        let mut a = LocalApic::new(0, true, GHZ, GHZ);
        assert!(a.pic_passthrough(), "software-disabled after reset");
        a.write_mmio(reg::SVR, 0x1ff, 0);
        assert!(!a.pic_passthrough(), "enabled, LINT0 masked");
        a.write_mmio(reg::LVT_LINT0, 0x700, 0);
        assert!(a.extint_enabled() && a.pic_passthrough());
        assert_eq!(a.lint0().mode, LvtMode::ExtInt);
        assert_eq!(a.raise_lint(Lint::Lint0), LintDelivery::ExtInt);
        a.write_mmio(reg::LVT_LINT0, 0x700 | LVT_MASKED, 0);
        assert!(!a.pic_passthrough());
        a.write_mmio(reg::LVT_LINT1, 0x400, 0);
        assert_eq!(a.raise_lint(Lint::Lint1), LintDelivery::Nmi);
        a.set_apic_base(DEFAULT_BASE).unwrap();
        assert!(a.pic_passthrough(), "globally disabled");
        assert_eq!(a.raise_lint(Lint::Lint1), LintDelivery::Nmi);
    }

    #[test]
    fn xapic_ipis_and_logical_destinations() {
        let mut a = apic();
        a.write_mmio(reg::ICR_HIGH, 0x0200_0000, 0);
        // INIT, then SIPI, to APIC 2.
        let Ipi {
            mode, dest, x2apic, ..
        } = match a.write_mmio(reg::ICR_LOW, 0x4500, 0) {
            ApicEffect::Ipi(i) => i,
            e => panic!("{e:?}"),
        };
        assert_eq!((mode, dest, x2apic), (IpiMode::Init, 2, false));
        let ApicEffect::Ipi(sipi) = a.write_mmio(reg::ICR_LOW, 0x4608, 0) else {
            panic!()
        };
        assert_eq!((sipi.mode, sipi.vector), (IpiMode::Startup, 0x08));
        assert_eq!(
            a.read_mmio(reg::ICR_LOW, 0) & (1 << 12),
            0,
            "delivery status idle"
        );
        // INIT level de-assert is a no-op.
        assert_eq!(a.write_mmio(reg::ICR_LOW, 0xc8500, 0), ApicEffect::None);
        // All-excluding-self broadcast.
        let ApicEffect::Ipi(b) = a.write_mmio(reg::ICR_LOW, 0xc4030, 0) else {
            panic!()
        };
        assert_eq!(b.shorthand, Shorthand::AllExcludingSelf);
        // Self shorthand: accepted here.
        assert_eq!(a.write_mmio(reg::ICR_LOW, 0x44031, 0), ApicEffect::None);
        assert_eq!(a.pending_vector(), Some(0x31));
        // Logical flat and cluster models.
        a.write_mmio(reg::LDR, 0x0400_0000, 0);
        assert!(a.matches_destination(0x06, true));
        assert!(!a.matches_destination(0x02, true));
        a.write_mmio(reg::DFR, 0x0fff_ffff, 0);
        a.write_mmio(reg::LDR, 0x2100_0000, 0);
        assert!(a.matches_destination(0x23, true));
        assert!(!a.matches_destination(0x31, true));
        assert!(a.matches_destination(0xff, false));
        assert!(a.matches_destination(0x00, false));
    }

    #[test]
    fn an_expired_one_shot_switched_to_periodic_stays_stopped() {
        let mut a = LocalApic::new(0, true, 1_000_000_000, 1_000_000_000);
        a.write_mmio(reg::SVR, 0x1ff, 0);
        a.write_mmio(reg::TIMER_DIVIDE, 0xb, 0); // divide by 1
        a.write_mmio(reg::LVT_TIMER, 0x40, 0);
        a.write_mmio(reg::TIMER_INITIAL, 1000, 0);
        a.poll_timer(5_000, 5_000);
        assert_eq!(a.pending_vector(), Some(0x40));
        a.acknowledge(0x40);
        a.write_mmio(reg::EOI, 0, 5_000);
        // Periodic mode much later: nothing fires until a new initial count is written.
        a.write_mmio(reg::LVT_TIMER, 0x40 | (1 << 17), 100_000);
        a.poll_timer(100_500, 100_500);
        assert_eq!(a.pending_vector(), None, "no interrupt from the old count");
        a.write_mmio(reg::TIMER_INITIAL, 1000, 100_500);
        a.poll_timer(101_000, 101_000);
        assert_eq!(a.pending_vector(), None);
        a.poll_timer(101_600, 101_600);
        assert_eq!(a.pending_vector(), Some(0x40), "one period after the write");
    }
}
