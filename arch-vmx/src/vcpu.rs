//! The `ArchVcpu` implementation for VT-x: guest state in the VMCS, reached through a
//! `VmcsAccess` (the hardware VMCS, or a fake one in host tests).

use crate::caps::VmxCaps;
use crate::controls::{entry_ctl, pin};
use crate::exit::{
    db_qual, decode, dr6_after_debug_exception, entry_failure, is_string_io,
    may_interrupt_delivery, needs_qualification, ModeInfo, RawExit,
};
use crate::inject::{info, Injection};
use crate::regs::GuestRegs;
use crate::resident::{Resident, ResidentRegs};
use crate::segment::{ar, dpl, from_vmx_ar};
use crate::structures::Structures;
use crate::vmcs::fields::{control, exit_info, guest, Field, Width};
use crate::vmcs::{AccessError, HwVmcs, VmcsAccess};
use core::cell::Cell;
use vmm_core::cpu_rules::cr0::{PE as CR0_PE, PG as CR0_PG};
use vmm_core::cpu_rules::efer::LMA as EFER_LMA;
use vmm_core::cpu_rules::rflags::{IF as RFLAGS_IF, TF as RFLAGS_TF};
use vmm_core::cpu_rules::{CpuRules, CrState};
use vmm_core::exit::VmExit;
use vmm_core::fetch::InsnCache;
use vmm_core::in_place::InPlace;
use vmm_core::memory::GuestMemory;
use vmm_core::nested::FrameAllocator;
use vmm_core::vcpu::{
    ArchVcpu, ControlReg, DebugReg, Event, Gpr, SegReg, Segment, StateMsr, VcpuError,
};

/// Guest interruptibility state (SDM Vol 3C 25.4.2, Table 25-3).
pub mod interruptibility {
    pub const BLOCKING_BY_STI: u32 = 1 << 0;
    pub const BLOCKING_BY_MOV_SS: u32 = 1 << 1;
    /// The interrupt shadow of STI or MOV SS: the next instruction runs with interrupts
    /// blocked.
    pub const SHADOW: u32 = BLOCKING_BY_STI | BLOCKING_BY_MOV_SS;
}

/// The longest x86 instruction (SDM Vol 2A 2.3.11).
const MAX_INSN_LEN: u64 = 15;
/// The debug exception's vector.
const DB_VECTOR: u8 = 1;

const NOT_LOADED: VcpuError = VcpuError {
    what: "vCPU not loaded",
    code: 0,
};

/// One guest CPU on VT-x, its state in the VMCS `V`.
pub struct VmxVcpu<V: VmcsAccess = HwVmcs> {
    pub(crate) vmcs: V,
    pub(crate) regs: GuestRegs,
    /// DR0-DR3, DR6 and the MSRs VT-x does not switch: in the CPU while loaded.
    pub(crate) resident: ResidentRegs<V::Cpu>,
    /// The frames and VPID this vCPU owns, given back by `release`.
    pub(crate) structures: Structures,
    pub(crate) launched: bool,
    pub(crate) caps: VmxCaps,
    /// The CR0 and CR4 bits the host owns (guest/host masks), and the guest's values of
    /// them (the read shadows).
    pub(crate) cr0_mask: u64,
    pub(crate) cr4_mask: u64,
    pub(crate) cr0_shadow: u64,
    pub(crate) cr4_shadow: u64,
    /// The architectural rules for this guest's CR0/CR4/EFER writes.
    pub(crate) rules: CpuRules,
    /// The primary processor-based controls as last written: only Janus changes them,
    /// so the interrupt-window request compares with this copy instead of a VMREAD.
    pub(crate) proc1: u32,
    /// The pin-based controls as last written (the VMX-preemption timer's goes on and
    /// off with the exit deadline).
    pub(crate) pin: u32,
    /// The event to inject at the next entry.
    pub(crate) pending: Option<Injection>,
    /// The VMX-preemption timer's rate shift, when the control is on.
    pub(crate) preemption_timer: Option<u8>,
    /// The host TSC by which the guest must exit (`set_exit_deadline`).
    pub(crate) exit_deadline: Option<u64>,
    /// Length of the instruction that caused the last exit (SDM Vol 3C 25.9.4).
    /// The exiting instruction's length, once read (SDM Vol 3C 28.2.5).
    pub(crate) exit_insn_len: core::cell::Cell<Option<u64>>,
    /// The first VMCS access that failed where the trait cannot return an error; the next
    /// `run` (and `next_rip`) returns it.
    pub(crate) access_error: Cell<Option<AccessError>>,
    /// This vCPU's CPUID answers, for the exits finished in place ([`vmm_core::in_place`]).
    pub(crate) in_place: InPlace,
    /// Virtual-interrupt delivery, once turned on ([`virtual_apic`]).
    pub(crate) virtual_apic: Option<virtual_apic::VirtualApic>,
}

/// The VMX-preemption timer value that makes the guest exit at `deadline` (host TSC),
/// `now` being the TSC at entry: zero when it is due. It counts down once per 2^`shift` ticks from whatever phase the TSC is in, so a value
/// v runs out after more than (v - 1) * 2^`shift` ticks and at most v * 2^`shift` (SDM
/// Vol 3C 26.5.1): rounded up, plus one, it never runs out before the deadline (early,
/// the guest exits with nothing due and goes round again).
fn preemption_value(deadline: u64, now: u64, shift: u8) -> u32 {
    let left = match deadline.saturating_sub(now) {
        0 => 0,
        ticks => (ticks >> shift).saturating_add(2),
    };
    left.min(u64::from(u32::MAX)) as u32
}

fn tsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl<V: VmcsAccess> VmxVcpu<V> {
    /// Turns `bit` of the primary processor-based controls on or off, through the copy
    /// of them that Janus keeps (only Janus writes them): a VMWRITE only on a change.
    fn set_proc1(&mut self, bit: u32, on: bool) {
        let want = if on {
            self.proc1 | bit
        } else {
            self.proc1 & !bit
        };
        if want != self.proc1 {
            self.proc1 = want;
            self.write_field(control::PRIMARY_PROC_BASED, want);
        }
    }

    /// Reads a field; a failure is recorded and the value reads as 0 until `run` ends
    /// the guest with it.
    fn get<W: Width>(&self, f: Field<W>) -> W::Value {
        self.vmcs.read(f).unwrap_or_else(|e| {
            self.record(e);
            W::Value::default()
        })
    }

    /// Writes a field; a failure is recorded for `run`.
    fn write_field<W: Width>(&mut self, f: Field<W>, v: W::Value) {
        if let Err(e) = self.vmcs.write(f, v) {
            self.record(e);
        }
    }

    fn record(&self, e: AccessError) {
        if self.access_error.get().is_none() {
            self.access_error.set(Some(e));
        }
    }

    /// The first recorded VMCS access failure, as an error.
    pub(crate) fn access_result(&self) -> Result<(), VcpuError> {
        match self.access_error.get() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The registers the architectural rules look at, as the guest sees them.
    fn cr_state(&self) -> CrState {
        CrState {
            cr0: self.cr(ControlReg::Cr0),
            cr3: self.get(guest::CR3),
            cr4: self.cr(ControlReg::Cr4),
            efer: self.efer(),
            cs_long: self.get(guest::segment(SegReg::Cs).access_rights) & ar::LONG != 0,
        }
    }

    /// The CR0 the CPU runs the guest with: its value plus the bits VMX fixes to 1 (but PE
    /// and PG, the guest's own under unrestricted guest), less those fixed to 0
    /// (SDM Vol 3C A.7).
    pub(crate) fn real_cr0(&self, guest_value: u64) -> u64 {
        let c = &self.caps;
        (guest_value | (c.cr0_fixed0 & !(CR0_PE | CR0_PG))) & c.cr0_fixed1
    }

    /// The CR4 the CPU runs the guest with (SDM Vol 3C A.8).
    pub(crate) fn real_cr4(&self, guest_value: u64) -> u64 {
        (guest_value | self.caps.cr4_fixed0) & self.caps.cr4_fixed1
    }

    fn efer(&self) -> u64 {
        self.get(guest::IA32_EFER)
    }

    /// Sets EFER.LMA and the "IA-32e mode guest" entry control together, as VM entry
    /// requires them equal (SDM Vol 3C 26.3.1.1).
    pub(crate) fn set_long_mode_active(&mut self, active: bool) {
        let (efer, entry) = (self.efer(), self.get(control::ENTRY_CONTROLS));
        if active {
            self.write_field(guest::IA32_EFER, efer | EFER_LMA);
            self.write_field(control::ENTRY_CONTROLS, entry | entry_ctl::IA32E_GUEST);
        } else {
            self.write_field(guest::IA32_EFER, efer & !EFER_LMA);
            self.write_field(control::ENTRY_CONTROLS, entry & !entry_ctl::IA32E_GUEST);
        }
    }

    /// The exit information this exit's reason uses: each VMREAD is on the path of every
    /// exit, so the ones a reason does not need are left out (SDM Vol 3C 28.2.1 says
    /// which fields each reason fills).
    /// Always inlined: `run` and the CPUID loop each take it, and as a call it cost
    /// about 25 instructions per exit.
    #[inline(always)]
    fn raw_exit(&self) -> Result<RawExit, AccessError> {
        let m = &self.vmcs;
        let reason = m.read(exit_info::EXIT_REASON)?;
        let basic = reason & crate::exit::reason::BASIC;
        let failed = reason & crate::exit::reason::ENTRY_FAILURE != 0;
        let mut raw = RawExit {
            reason,
            ..RawExit::default()
        };
        use crate::exit::reason as r;
        if !failed && !needs_qualification(basic) {
            return Ok(raw);
        }
        raw.qualification = m.read(exit_info::QUALIFICATION)?;
        if failed {
            return Ok(raw);
        }
        match basic {
            r::IO if is_string_io(&raw) => {
                raw.instruction_info = m.read(exit_info::INSTRUCTION_INFO)?;
            }
            r::EXCEPTION_OR_NMI => {
                raw.interruption_info = m.read(exit_info::INTERRUPTION_INFO)?;
                raw.interruption_error = m.read(exit_info::INTERRUPTION_ERROR_CODE)?;
            }
            r::EPT_VIOLATION => {
                raw.guest_physical = m.read(exit_info::GUEST_PHYSICAL_ADDRESS)?;
            }
            _ => {}
        }
        Ok(raw)
    }

    /// After an exit: an event whose delivery the exit interrupted is delivered again
    /// (SDM Vol 3C 28.2.4).
    fn keep_vectoring_event(&mut self) -> Result<(), AccessError> {
        let vectoring = self.vmcs.read(exit_info::IDT_VECTORING_INFO)?;
        if vectoring & crate::inject::info::VALID != 0 {
            let code = self.vmcs.read(exit_info::IDT_VECTORING_ERROR_CODE)?;
            self.pending = Some(Injection::redeliver(vectoring, code));
        }
        Ok(())
    }

    /// After a #DB exit: DR6 as the CPU would have made it (SDM Vol 3C 28.1), and a
    /// pending single-step where VM entry requires one (see below); an INT1 (ICEBP) is
    /// stepped over, as its #DB is a trap the guest's handler returns past.
    fn after_debug_exception(&mut self, raw: &RawExit) -> Result<(), AccessError> {
        if raw.interruption_info & info::TYPE_MASK == info::TYPE_PRIV_SW_EXCEPTION {
            let rip = self.vmcs.read(guest::RIP)?;
            let len = self.vmcs.read(exit_info::INSTRUCTION_LENGTH)?;
            self.retire(rip.wrapping_add(u64::from(len)));
            return Ok(());
        }
        let dr6 = dr6_after_debug_exception(self.debug_reg(DebugReg::Dr6), raw.qualification);
        self.set_debug_reg(DebugReg::Dr6, dr6);
        // Under an STI or MOV SS shadow with RFLAGS.TF set, VM entry requires a pending
        // single-step (BS) (SDM Vol 3C 26.3.1.5), which a #DB exit does not record: the
        // single-step is still due after the guest's handler.
        let shadow = self.vmcs.read(guest::INTERRUPTIBILITY)? & interruptibility::SHADOW;
        if shadow != 0 && self.vmcs.read(guest::RFLAGS)? & RFLAGS_TF != 0 {
            let pending = self.vmcs.read(guest::PENDING_DEBUG_EXCEPTIONS)?;
            self.vmcs
                .write(guest::PENDING_DEBUG_EXCEPTIONS, pending | db_qual::BS)?;
        }
        Ok(())
    }

    /// Turns the VMX-preemption timer on when there is an exit deadline, off when there
    /// is none (its control cleared, a VMWRITE only on a change), so that no value left
    /// from an earlier deadline can make the guest exit (a stale deadline, long past,
    /// made the guest exit at once on every entry: see `vmm_core::vm::NEVER_NS`).
    /// Always inlined, as [`VmxVcpu::raw_exit`] (as a call: about 14 instructions).
    #[inline(always)]
    fn switch_preemption_timer(&mut self) -> Result<(), AccessError> {
        if self.preemption_timer.is_none() {
            return Ok(());
        }
        let want = if self.exit_deadline.is_some() {
            self.pin | pin::PREEMPTION_TIMER
        } else {
            self.pin & !pin::PREEMPTION_TIMER
        };
        if want != self.pin {
            self.pin = want;
            self.vmcs.write(control::PIN_BASED, want)?;
        }
        Ok(())
    }

    /// Loads the VMX-preemption timer, when on, with what is left until the exit
    /// deadline, just before entry: it counts from VM entry on (SDM Vol 3C 26.5.1).
    #[inline(always)]
    fn load_preemption_timer(&mut self) -> Result<(), AccessError> {
        // The control is on exactly when the CPU has the timer and a deadline is set
        // (`switch_preemption_timer`): one test instead of two on every entry.
        if self.pin & pin::PREEMPTION_TIMER == 0 {
            return Ok(());
        }
        match (self.preemption_timer, self.exit_deadline) {
            (Some(shift), Some(t)) => self.vmcs.write(
                guest::PREEMPTION_TIMER_VALUE,
                preemption_value(t, tsc(), shift),
            ),
            _ => Ok(()),
        }
    }

    /// One entry from `run`: the VMX-preemption timer switched for the exit deadline
    /// the dispatcher set, then [`VmxVcpu::enter_armed`].
    #[inline(always)]
    fn enter(&mut self) -> Result<(), VcpuError> {
        self.switch_preemption_timer()?;
        self.sync_virtual_apic()?;
        self.enter_armed()
    }

    /// One entry with the VMX-preemption timer switched as the deadline wants (by
    /// `enter`; the CPUID loop's entries follow one and the deadline stays): its value
    /// loaded, VMLAUNCH or VMRESUME.
    #[inline(always)]
    fn enter_armed(&mut self) -> Result<(), VcpuError> {
        self.load_preemption_timer()?;
        self.vmcs.enter(&mut self.regs, self.launched)?;
        self.launched = true;
        Ok(())
    }

    /// [`VmxVcpu::enter_armed`] after an exit this vCPU finished in place: the VMCS was
    /// launched (VMRESUME, without the flag's store and load).
    #[inline(always)]
    fn enter_again(&mut self) -> Result<(), VcpuError> {
        self.load_preemption_timer()?;
        self.vmcs.enter(&mut self.regs, true)
    }

    /// After an exit of reason `REASON` (CPUID, I/O or HLT): each one [`vmm_core::in_place`]
    /// can finish is finished here and the guest enters again (an exit finished in place
    /// queues no event to inject); the first exit it cannot finish, of this reason or
    /// another (or a port access it made that the dispatcher must follow up), for the
    /// dispatcher. Only the exit reason and what the exit uses are read until then. One
    /// loop per reason (the other's branch folded away): one loop for both made CPUID 14
    /// instructions longer. Out of line: with the loop in `run`, every other exit was 10
    /// to 15 instructions longer.
    #[inline(never)]
    fn in_place_exits<const REASON: u32>(&mut self) -> Result<RawExit, VcpuError> {
        while self.finished_in_place(REASON)? {
            self.enter_again()?;
            if self.vmcs.read(exit_info::EXIT_REASON)? != REASON {
                break;
            }
        }
        Ok(self.raw_exit()?)
    }

    /// Finishes the exit of `reason` (CPUID, I/O or HLT: the loops `run` enters) here
    /// when [`vmm_core::in_place`] can: a CPUID, an IN or OUT (not a string form, SDM Vol
    /// 3C Table 28-5), or a HLT the CPU's pending virtual interrupt wakes at once
    /// (`virtual_interrupt_pending`), where the exit's instruction length says it ends
    /// (SDM Vol 3C 28.2.5). Returns whether the guest enters again.
    #[inline(always)]
    fn finished_in_place(&mut self, reason: u32) -> Result<bool, VcpuError> {
        use crate::exit::reason::{CPUID, HLT};
        // Pinned, as entry needs: checked once here, the check in each access below is
        // dropped by the compiler (about 10 instructions per CPUID).
        if !self.vmcs.pinned() {
            return Ok(false);
        }
        let len = u64::from(self.vmcs.read(exit_info::INSTRUCTION_LENGTH)?);
        if len == 0 || len > MAX_INSN_LEN {
            return Ok(false);
        }
        let next = self.vmcs.read(guest::RIP)?.wrapping_add(len);
        let done = if reason == CPUID {
            vmm_core::in_place::cpuid(self, next)
        } else if reason == HLT {
            let delivers = self.virtual_interrupt_pending()?;
            vmm_core::in_place::hlt(self, next, delivers)
        } else {
            let raw = RawExit {
                reason,
                qualification: self.vmcs.read(exit_info::QUALIFICATION)?,
                ..RawExit::default()
            };
            // A string form needs its instruction information: the dispatcher's.
            !is_string_io(&raw) && {
                let io = crate::exit::io(&raw, self.string_mode_unused());
                vmm_core::in_place::port_io(self, io, next) == vmm_core::in_place::Finished::Resume
            }
        };
        self.access_result()?;
        Ok(done)
    }

    /// The [`ModeInfo`] of an exit that is not string I/O: only string I/O reads it.
    #[inline(always)]
    fn string_mode_unused(&self) -> ModeInfo {
        ModeInfo {
            long64: false,
            cs_big: false,
            ins_outs_info: self.caps.ins_outs_info,
        }
    }

    fn mode(&self) -> Result<ModeInfo, AccessError> {
        let cs_ar = self.vmcs.read(guest::segment(SegReg::Cs).access_rights)?;
        let efer = self.vmcs.read(guest::IA32_EFER)?;
        Ok(ModeInfo {
            long64: efer & EFER_LMA != 0 && cs_ar & ar::LONG != 0,
            cs_big: cs_ar & ar::DEFAULT_BIG != 0,
            ins_outs_info: self.caps.ins_outs_info,
        })
    }
}

impl<V: VmcsAccess> ArchVcpu for VmxVcpu<V> {
    fn run(&mut self) -> Result<VmExit, VcpuError> {
        self.access_result()?;
        if !self.resident.loaded() {
            return Err(NOT_LOADED);
        }
        if let Some(inj) = self.pending.take() {
            self.vmcs
                .write(control::ENTRY_INTERRUPTION_INFO, inj.info)?;
            self.vmcs
                .write(control::ENTRY_EXCEPTION_ERROR_CODE, inj.error_code)?;
        }
        self.enter()?;
        let mut raw = self.raw_exit()?;
        {
            use crate::exit::reason::{CPUID, HLT, IO};
            if raw.reason == CPUID {
                raw = self.in_place_exits::<CPUID>()?;
            } else if raw.reason == IO {
                raw = self.in_place_exits::<IO>()?;
            } else if raw.reason == HLT {
                raw = self.in_place_exits::<HLT>()?;
            }
        }
        if let Some(e) = entry_failure(&raw) {
            return Err(e);
        }
        // Read when an instruction is completed (`next_rip`): most exits need no length.
        self.exit_insn_len.set(None);
        let basic = raw.reason & crate::exit::reason::BASIC;
        if may_interrupt_delivery(basic) {
            self.keep_vectoring_event()?;
        }
        let mode = if is_string_io(&raw) {
            self.mode()?
        } else {
            self.string_mode_unused()
        };
        let cr0 = if basic == crate::exit::reason::CR_ACCESS {
            self.cr(ControlReg::Cr0)
        } else {
            0
        };
        let exit = decode(&raw, mode, |r| self.gpr(r), cr0);
        if let VmExit::Exception {
            vector: DB_VECTOR, ..
        } = exit
        {
            self.after_debug_exception(&raw)?;
        }
        self.access_result()?;
        Ok(exit)
    }

    fn in_place(&mut self) -> &mut InPlace {
        &mut self.in_place
    }

    fn gpr(&self, r: Gpr) -> u64 {
        if r == Gpr::Rsp {
            self.get(guest::RSP)
        } else {
            self.regs.gprs.r[r as usize]
        }
    }

    fn set_gpr(&mut self, r: Gpr, v: u64) {
        if r == Gpr::Rsp {
            self.write_field(guest::RSP, v)
        } else {
            self.regs.gprs.r[r as usize] = v
        }
    }

    fn rip(&self) -> u64 {
        self.get(guest::RIP)
    }

    fn rflags(&self) -> u64 {
        self.get(guest::RFLAGS)
    }

    fn set_rflags(&mut self, v: u64) {
        self.write_field(guest::RFLAGS, v)
    }

    fn set_pause_exits(&mut self, on: bool) {
        use crate::controls::proc1::PAUSE_EXITING;
        // Where the CPU cannot exit on PAUSE, the vCPU spins out its turn as before.
        if !self.caps.proc1.allows(PAUSE_EXITING) {
            return;
        }
        self.set_proc1(PAUSE_EXITING, on);
    }

    fn segment(&self, s: SegReg) -> Segment {
        let f = guest::segment(s);
        Segment {
            selector: self.get(f.selector),
            base: self.get(f.base),
            limit: self.get(f.limit),
            attr: from_vmx_ar(self.get(f.access_rights)),
        }
    }

    fn cpl(&self) -> u8 {
        // CPL is SS.DPL (SDM Vol 3C 26.3.1.2).
        dpl(self.get(guest::segment(SegReg::Ss).access_rights))
    }

    fn cr(&self, r: ControlReg) -> u64 {
        // The guest reads its own value of host-owned bits: the read shadow
        // (SDM Vol 3C 25.6.6).
        match r {
            ControlReg::Cr0 => {
                (self.get(guest::CR0) & !self.cr0_mask) | (self.cr0_shadow & self.cr0_mask)
            }
            ControlReg::Cr2 => self.resident.get(Resident::Cr2),
            ControlReg::Cr3 => self.get(guest::CR3),
            ControlReg::Cr4 => {
                (self.get(guest::CR4) & !self.cr4_mask) | (self.cr4_shadow & self.cr4_mask)
            }
        }
    }

    fn set_cr(&mut self, r: ControlReg, v: u64) -> Result<(), Event> {
        match r {
            ControlReg::Cr0 => {
                let st = self.cr_state();
                let next = self.rules.write_cr0(st, v)?;
                if next.long_mode_active() != st.long_mode_active() {
                    self.set_long_mode_active(next.long_mode_active());
                }
                self.cr0_shadow = v;
                self.write_field(control::CR0_READ_SHADOW, v);
                self.write_field(guest::CR0, self.real_cr0(v));
            }
            ControlReg::Cr4 => {
                self.rules.write_cr4(self.cr_state(), v)?;
                self.cr4_shadow = v;
                self.write_field(control::CR4_READ_SHADOW, v);
                self.write_field(guest::CR4, self.real_cr4(v));
            }
            ControlReg::Cr3 => self.write_field(guest::CR3, v),
            ControlReg::Cr2 => self.resident.set(Resident::Cr2, v),
        }
        Ok(())
    }

    fn state_msr(&self, m: StateMsr) -> u64 {
        match m {
            StateMsr::Efer => self.efer(),
            StateMsr::Pat => self.get(guest::IA32_PAT),
            StateMsr::FsBase => self.get(guest::segment(SegReg::Fs).base),
            StateMsr::GsBase => self.get(guest::segment(SegReg::Gs).base),
            StateMsr::SysenterCs => self.get(guest::IA32_SYSENTER_CS) as u64,
            StateMsr::SysenterEsp => self.get(guest::IA32_SYSENTER_ESP),
            StateMsr::SysenterEip => self.get(guest::IA32_SYSENTER_EIP),
            StateMsr::KernelGsBase => self.resident.get(Resident::KernelGsBase),
            StateMsr::Star => self.resident.get(Resident::Star),
            StateMsr::Lstar => self.resident.get(Resident::Lstar),
            StateMsr::Cstar => self.resident.get(Resident::Cstar),
            StateMsr::Fmask => self.resident.get(Resident::Fmask),
            StateMsr::TscAux => self.resident.tsc_aux(),
        }
    }

    fn set_state_msr(&mut self, m: StateMsr, v: u64) -> Result<(), Event> {
        match m {
            StateMsr::Efer => {
                let next = self.rules.write_efer(self.cr_state(), v)?;
                self.write_field(guest::IA32_EFER, next.efer);
            }
            StateMsr::Pat => self.write_field(guest::IA32_PAT, v),
            StateMsr::FsBase => self.write_field(guest::segment(SegReg::Fs).base, v),
            StateMsr::GsBase => self.write_field(guest::segment(SegReg::Gs).base, v),
            // IA32_SYSENTER_CS holds a selector in its low bits; the field is 32 bits.
            StateMsr::SysenterCs => self.write_field(guest::IA32_SYSENTER_CS, v as u32),
            StateMsr::SysenterEsp => self.write_field(guest::IA32_SYSENTER_ESP, v),
            StateMsr::SysenterEip => self.write_field(guest::IA32_SYSENTER_EIP, v),
            StateMsr::KernelGsBase => self.resident.set(Resident::KernelGsBase, v),
            StateMsr::Star => self.resident.set(Resident::Star, v),
            StateMsr::Lstar => self.resident.set(Resident::Lstar, v),
            StateMsr::Cstar => self.resident.set(Resident::Cstar, v),
            StateMsr::Fmask => self.resident.set(Resident::Fmask, v),
            StateMsr::TscAux => self.resident.set_tsc_aux(v),
        }
        Ok(())
    }

    fn interrupts_open(&self) -> bool {
        // RFLAGS.IF, and no blocking by STI or MOV SS (SDM Vol 3C 25.4.2, Table 25-3).
        self.pending.is_none()
            && self.rflags() & RFLAGS_IF != 0
            && self.get(guest::INTERRUPTIBILITY) & interruptibility::SHADOW == 0
    }

    fn request_interrupt_window(&mut self, on: bool) {
        self.set_proc1(crate::controls::proc1::INTERRUPT_WINDOW_EXITING, on);
    }

    fn inject(&mut self, ev: Event) {
        let protected = self.cr(ControlReg::Cr0) & CR0_PE != 0;
        self.pending = Some(Injection::of(ev, protected));
    }

    fn set_tsc_offset(&mut self, offset: u64) {
        self.write_field(control::TSC_OFFSET, offset);
    }

    fn set_exit_deadline(&mut self, tsc: Option<u64>) -> bool {
        self.exit_deadline = tsc;
        self.preemption_timer.is_some()
    }

    fn debug_reg(&self, r: DebugReg) -> u64 {
        match Resident::of_debug(r) {
            Some(res) => self.resident.get(res),
            None => self.get(guest::DR7),
        }
    }

    fn set_debug_reg(&mut self, r: DebugReg, v: u64) {
        match Resident::of_debug(r) {
            Some(res) => self.resident.set(res, v),
            None => self.write_field(guest::DR7, v),
        }
    }

    fn put(&mut self) {
        self.resident.put();
        self.vmcs.unpin();
    }

    /// The VMCS is pinned current while loaded, so the exit path's accesses need no
    /// VMPTRLD check (`crate::vmcs::current`); a failed VMPTRLD fails the next `run`.
    fn load(&mut self) {
        if let Err(e) = self.vmcs.pin() {
            self.record(e);
        }
        self.resident.load();
    }

    const VIRTUAL_INTERRUPTS: bool = true;

    fn virtual_interrupts<A: FrameAllocator>(
        &mut self,
        frames: &mut A,
    ) -> Option<vmm_core::devices::apic_page::PagePtr> {
        self.turn_on_virtual_apic(frames)
    }

    fn virtual_apic_changed(&mut self) {
        self.note_virtual_apic_change();
    }

    fn release<A: FrameAllocator>(mut self, frames: &mut A) {
        let cleared = match self.vmcs.clear() {
            Ok(()) => true,
            Err(e) => {
                log::error!("{} ({:#x}): the VMCS page is not reused", e.what, e.code);
                false
            }
        };
        self.structures.free(cleared, frames);
    }

    fn next_rip(&self, _mem: &GuestMemory, _cache: &mut InsnCache) -> Result<u64, VcpuError> {
        self.access_result()?;
        let len = match self.exit_insn_len.get() {
            Some(len) => len,
            None => {
                let len = u64::from(self.vmcs.read(exit_info::INSTRUCTION_LENGTH)?);
                self.exit_insn_len.set(Some(len));
                len
            }
        };
        if len == 0 || len > MAX_INSN_LEN {
            return Err(VcpuError {
                what: "no VM-exit instruction length for this exit",
                code: len,
            });
        }
        Ok(self.vmcs.read(guest::RIP)?.wrapping_add(len))
    }

    #[inline(always)]
    fn retire(&mut self, next_rip: u64) {
        self.write_field(guest::RIP, next_rip);
        // Completing the instruction ends any STI or MOV-SS interrupt shadow (SDM Vol 3C
        // 25.4.2).
        let intr = self.get(guest::INTERRUPTIBILITY);
        if intr & interruptibility::SHADOW != 0 {
            self.write_field(guest::INTERRUPTIBILITY, intr & !interruptibility::SHADOW);
        }
    }
}

mod virtual_apic;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod isolation_tests;

#[cfg(test)]
mod in_place_tests;
