//! The `ArchVcpu` implementation for AMD-V: guest state in the VMCB (and the GPR file and
//! DR0-DR3 for what the VMCB does not hold), exits, events and instruction completion,
//! and the vCPU's frames and ASID going back when it ends.

use crate::asid::AsidPool;
use crate::caps::SvmCaps;
use crate::cr2;
use crate::debug_regs;
use crate::entry::{leave, svm_run, svm_run_again, RunState};
use crate::exit::{decode, io_access};
use crate::inject;
use crate::npt::Npt;
use crate::setup::{self, Tables, IOPM_PAGES, MSRPM_PAGES};
use crate::tsc_aux;
use crate::vmcb::bits::interrupt_shadow::INTERRUPT_SHADOW;
use crate::vmcb::bits::v_intr::{V_IGN_TPR, V_INTR_PRIO, V_IRQ, V_TPR};
use crate::vmcb::bits::{clean, tlb_control};
use crate::vmcb::exit_code;
use crate::vmcb::intercept::misc1;
use crate::vmcb::{VmcbPage, VmcbSegment};
use vmm_core::addr::HostPhys;
use vmm_core::cpu_rules::{cr0, efer, rflags, CpuRules, CrState};
use vmm_core::exit::VmExit;
use vmm_core::fetch::{length_at_rip, InsnCache};
use vmm_core::in_place::{self, InPlace};
use vmm_core::memory::GuestMemory;
use vmm_core::msr::tsc_aux::TscAux;
use vmm_core::nested::{self, FrameAllocator};
use vmm_core::vcpu::{
    ArchVcpu, ControlReg, DebugReg, Event, Gpr, InitialState, SegReg, Segment, StateMsr, VcpuError,
};

/// The pending virtual interrupt's fields: a window request sets V_IRQ and V_IGN_TPR at
/// priority 0 (APM Vol 2 15.21.4).
const WINDOW_REQUEST: u64 = V_IRQ | V_INTR_PRIO | V_IGN_TPR;

/// Which part of the world switch `run_with` asks for ([`crate::entry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Switch {
    /// The first VMRUN of `run`, with the guest's VMLOAD state loaded.
    Enter,
    /// VMRUN again after an exit finished in place, still in the switch.
    Again,
    /// Out of the switch, before the exit goes to the dispatcher: Janus' own VMLOAD
    /// state loaded again, GIF set.
    Leave,
}

const NOT_LOADED: VcpuError = VcpuError {
    what: "vCPU not loaded",
    code: 0,
};

/// One guest CPU on AMD-V.
pub struct SvmVcpu {
    pub(crate) vmcb: VmcbPage,
    /// Every GPR but RAX and RSP, which live in the VMCB's save area, and the VMCB's
    /// and Janus' VMSAVE page's addresses, for `svm_run` (`vmcb_pa` a copy of
    /// `vmcb.pa()`, which never changes, read there without a second load).
    run: RunState,
    caps: SvmCaps,
    /// The instruction behind the last exit was completed (`retire`): what the CPU said
    /// about where it ends no longer applies.
    retired: bool,
    /// The architectural rules for this guest's CR0/CR4/EFER writes.
    rules: CpuRules,
    /// DR0-DR3 as the guest set them; in the hardware registers too while loaded.
    dr: [u64; 4],
    /// IA32_TSC_AUX, in the hardware register while loaded ([`crate::tsc_aux`]).
    tsc_aux: TscAux,
    /// Whether this vCPU's DR0-DR3 and TSC_AUX are in the hardware ([`ArchVcpu::load`]).
    loaded: bool,
    /// Where the VMCB's ASID goes back when the vCPU ends.
    asids: &'static AsidPool,
    /// The clean bits right after an exit: every group where the CPU has them, else none
    /// (worked out once: this is on the path of every exit).
    clean_after_exit: u32,
    /// This vCPU's CPUID answers, for the exits finished in place ([`vmm_core::in_place`]).
    in_place: InPlace,
    /// The VMCB's virtual-interrupt fields (V_TPR, V_IRQ...) at the last VMRUN.
    v_intr_at_entry: u64,
}

impl SvmVcpu {
    /// A vCPU over the zeroed `vmcb`, filled for a guest starting in `st` (setup.rs);
    /// `host_save` is Janus' own VMSAVE page, `tables.asid` was taken from `asids`. It is
    /// not loaded yet.
    pub fn new(
        mut vmcb: VmcbPage,
        host_save: HostPhys,
        caps: SvmCaps,
        rules: CpuRules,
        tables: &Tables,
        st: &InitialState,
        asids: &'static AsidPool,
    ) -> SvmVcpu {
        setup::fill(&mut vmcb, tables, &caps, st);
        SvmVcpu {
            run: RunState {
                gprs: st.gprs,
                vmcb_pa: vmcb.pa().0,
                host_save_pa: host_save.0,
            },
            vmcb,
            caps,
            retired: false,
            rules,
            dr: [0; 4],
            tsc_aux: TscAux::new(),
            loaded: false,
            asids,
            clean_after_exit: if caps.vmcb_clean {
                clean::ALL
            } else {
                clean::ALL_DIRTY
            },
            in_place: InPlace::default(),
            v_intr_at_entry: 0,
        }
    }

    /// The VMCB's ASID, for the tests of vCPU creation.
    #[cfg(test)]
    pub fn asid(&self) -> u32 {
        self.vmcb.control.guest_asid
    }

    /// Reads the exit VMRUN left in the VMCB: re-queues an interrupted event and decodes
    /// it. Where the instruction ends is looked up only if it is completed
    /// (`reported_next_rip`). Always inlined: it is on the path of every exit, and as a
    /// call (from `run` and each CPUID loop) it cost about 10 instructions of each.
    #[inline(always)]
    fn take_exit(&mut self) -> Result<VmExit, VcpuError> {
        let c = &mut self.vmcb.control;
        let (code, info1, info2) = (c.exit_code, c.exit_info1, c.exit_info2);
        if code == exit_code::INVALID {
            return Err(VcpuError {
                what: "VMRUN failed: invalid guest state (VMEXIT_INVALID)",
                code,
            });
        }
        inject::redeliver_interrupted(c);
        self.retired = false;
        Ok(decode(code, info1, info2, self.caps.decode_assists, |r| {
            self.gpr(r)
        }))
    }

    /// [`ArchVcpu::run`], with `switch` for the world switch's parts (host tests pass one
    /// that plays an exit at each VMRUN).
    #[inline(always)]
    fn run_with(&mut self, mut switch: impl FnMut(&mut Self, Switch)) -> Result<VmExit, VcpuError> {
        // Unloaded, the hardware DR0-DR3 may be another guest's.
        if !self.loaded {
            return Err(NOT_LOADED);
        }
        self.v_intr_at_entry = self.vmcb.control.v_intr;
        self.enter(&mut switch);
        match self.vmcb.control.exit_code {
            // Where CPUID ends: nRIP with NRIP save; without, the exit site the
            // dispatcher kept from the last one it completed.
            exit_code::CPUID if self.caps.nrip_save => {
                // nRIP 0: none given (APM Vol 2 15.7.1), as `reported_next_rip` reads it.
                self.in_place_exits::<{ exit_code::CPUID }>(&mut switch, |v| {
                    Some(v.vmcb.control.next_rip).filter(|&r| r != 0)
                })
            }
            exit_code::CPUID => {
                self.in_place_exits::<{ exit_code::CPUID }>(&mut switch, in_place::end_by_site)
            }
            // IOIO says where the instruction ends (EXITINFO2), NRIP save or not.
            exit_code::IOIO => self.in_place_exits::<{ exit_code::IOIO }>(&mut switch, |_| None),
            _ => {}
        }
        switch(self, Switch::Leave);
        self.take_exit()
    }

    /// The first VMRUN of `run`. The CPU's copy of every clean-bit group is the VMCB's
    /// after it (the setters clear the bit of each group they change before the next
    /// VMRUN), and a TLB flush asked for was done.
    #[inline(always)]
    fn enter(&mut self, switch: &mut impl FnMut(&mut Self, Switch)) {
        switch(self, Switch::Enter);
        let c = &mut self.vmcb.control;
        c.tlb_control = tlb_control::DO_NOTHING;
        c.vmcb_clean = self.clean_after_exit;
    }

    /// After an exit of code `CODE` (CPUID or IOIO): each one [`vmm_core::in_place`] can
    /// finish is finished here and the guest enters again, still in the world switch
    /// ([`Switch::Again`]); the first exit it cannot, of this code or another (or a port
    /// access it made that the dispatcher must follow up), goes to the dispatcher. `end`
    /// says where the CPUID at RIP ends, if it is known. One loop per code (the other's
    /// branch folded away): one for both made CPUID 4 longer. Out of line: inlined into
    /// `run`, the loop made every other exit about 15 instructions longer (registers
    /// kept across it).
    #[inline(never)]
    fn in_place_exits<const CODE: u64>(
        &mut self,
        switch: &mut impl FnMut(&mut Self, Switch),
        end: impl Fn(&mut Self) -> Option<u64>,
    ) {
        while self.vmcb.control.exit_code == CODE && self.finished_in_place::<CODE>(&end) {
            // The clean bits and the TLB control are as `enter` left them: an exit
            // finished in place changes RAX (and the other registers outside the VMCB)
            // and RIP, which VMRUN always loads, and the interrupt shadow, in no
            // clean-bit group (APM Vol 2 15.15.3).
            switch(self, Switch::Again);
        }
    }

    /// Finishes the exit here when [`vmm_core::in_place`] can, with the virtual-interrupt
    /// fields as at VMRUN (a MOV to CR8 that did not exit, V_TPR, is the dispatcher's to
    /// take; so is a virtual interrupt the guest took, V_IRQ; the whole field is
    /// compared, one instruction fewer than V_TPR alone): a CPUID where `end` says it
    /// ends; an IN or OUT where IOIO's EXITINFO2 says (APM Vol 2 15.10.2). Returns whether
    /// the guest enters again.
    #[inline(always)]
    fn finished_in_place<const CODE: u64>(
        &mut self,
        end: &impl Fn(&mut Self) -> Option<u64>,
    ) -> bool {
        let c = &self.vmcb.control;
        if c.v_intr != self.v_intr_at_entry {
            return false;
        }
        match CODE {
            exit_code::CPUID => end(self).is_some_and(|next_rip| in_place::cpuid(self, next_rip)),
            exit_code::IOIO => {
                let io = io_access(c.exit_info1, self.caps.decode_assists);
                let next_rip = c.exit_info2;
                in_place::port_io(self, io, next_rip) == in_place::Finished::Resume
            }
            _ => false,
        }
    }

    /// Where the instruction behind the last exit ends, when the CPU said: IOIO's
    /// EXITINFO2 (APM Vol 2 15.10.2), or nRIP with NRIP save (15.7.1; 0 when the exit
    /// gives none).
    fn reported_next_rip(&self) -> Option<u64> {
        let c = &self.vmcb.control;
        if self.retired {
            None
        } else if c.exit_code == exit_code::IOIO {
            Some(c.exit_info2)
        } else if self.caps.nrip_save && c.next_rip != 0 {
            Some(c.next_rip)
        } else {
            None
        }
    }

    /// A field of clean-bit group `group` changed: the next VMRUN reads the group again
    /// (APM Vol 2 15.15.3).
    fn dirty(&mut self, group: u32) {
        self.vmcb.control.vmcb_clean &= !group;
    }

    fn seg_ref(&self, s: SegReg) -> &VmcbSegment {
        let save = &self.vmcb.save;
        match s {
            SegReg::Es => &save.es,
            SegReg::Cs => &save.cs,
            SegReg::Ss => &save.ss,
            SegReg::Ds => &save.ds,
            SegReg::Fs => &save.fs,
            SegReg::Gs => &save.gs,
        }
    }

    /// The registers the architectural rules look at, as the guest sees them.
    fn cr_state(&self) -> CrState {
        let s = &self.vmcb.save;
        CrState {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer & !efer::SVME,
            cs_long: self.segment(SegReg::Cs).long(),
        }
    }

    /// Writes what the rules allowed; SVME stays set underneath (APM Vol 2 15.5.1).
    fn apply(&mut self, st: CrState) {
        let s = &mut self.vmcb.save;
        (s.cr0, s.cr3, s.cr4, s.efer) = (st.cr0, st.cr3, st.cr4, st.efer | efer::SVME);
        self.dirty(clean::CRX);
    }

    /// Finds where the current instruction ends by decoding it (no NRIP save); the
    /// exit code names the instruction for the common exits, whose unprefixed form
    /// needs no decoder.
    /// Inlined: on a loop's exit the site cache answers in a few compares, and a call
    /// cost a frame of six registers (the fetch behind a miss is out of line).
    #[inline(always)]
    fn decoded_next_rip(&self, mem: &GuestMemory, cache: &mut InsnCache) -> Result<u64, VcpuError> {
        let rip = self.vmcb.save.rip;
        let len = length_at_rip(self, mem, cache, self.exit_opcode()).map_err(|_| VcpuError {
            what: "cannot decode the instruction at RIP to skip it",
            code: rip,
        })?;
        Ok(rip.wrapping_add(len as u64))
    }

    /// The opcode bytes (no prefix) of the instruction the last exit names, where it
    /// names one (APM Vol 3, Appendix A opcode maps).
    fn exit_opcode(&self) -> Option<&'static [u8]> {
        let c = &self.vmcb.control;
        Some(match c.exit_code {
            exit_code::CPUID => &[0x0f, 0xa2],
            exit_code::VMMCALL => &[0x0f, 0x01, 0xd9],
            exit_code::MSR if c.exit_info1 == 0 => &[0x0f, 0x32],
            exit_code::MSR => &[0x0f, 0x30],
            exit_code::HLT => &[0xf4],
            exit_code::INVD => &[0x0f, 0x08],
            exit_code::WBINVD => &[0x0f, 0x09],
            exit_code::XSETBV => &[0x0f, 0x01, 0xd1],
            _ => return None,
        })
    }
}

/// Where DR0-DR3 sit in [`SvmVcpu::dr`]; `None` for DR6 and DR7, which live in the VMCB.
fn address_index(r: DebugReg) -> Option<usize> {
    DebugReg::ADDRESSES.iter().position(|&a| a == r)
}

impl ArchVcpu for SvmVcpu {
    fn run(&mut self) -> Result<VmExit, VcpuError> {
        self.run_with(|v, switch| {
            // SAFETY: this vCPU's VMCB is fully set up, Svm::enable programmed SVME, HSAVE
            // and the host state page, and `run` lives in `self` for the whole call;
            // `run_with` makes the parts in their order (Enter, Again while it finishes
            // exits in place, then Leave), all on this CPU.
            unsafe {
                match switch {
                    Switch::Enter => svm_run(&mut v.run),
                    Switch::Again => svm_run_again(&mut v.run),
                    Switch::Leave => leave(&v.run),
                }
            }
        })
    }

    fn in_place(&mut self) -> &mut InPlace {
        &mut self.in_place
    }

    fn gpr(&self, r: Gpr) -> u64 {
        match r {
            Gpr::Rax => self.vmcb.save.rax,
            Gpr::Rsp => self.vmcb.save.rsp,
            _ => self.run.gprs.r[r as usize],
        }
    }

    fn set_gpr(&mut self, r: Gpr, v: u64) {
        match r {
            Gpr::Rax => self.vmcb.save.rax = v,
            Gpr::Rsp => self.vmcb.save.rsp = v,
            _ => self.run.gprs.r[r as usize] = v,
        }
    }

    fn rip(&self) -> u64 {
        self.vmcb.save.rip
    }
    fn rflags(&self) -> u64 {
        self.vmcb.save.rflags
    }

    fn set_rflags(&mut self, v: u64) {
        self.vmcb.save.rflags = v;
    }

    fn set_pause_exits(&mut self, on: bool) {
        // The pause filter count (APM Vol 2 15.14.4) stays 0: no filtering is asked for.
        let c = &mut self.vmcb.control;
        if on {
            c.intercept_misc1 |= misc1::PAUSE;
        } else {
            c.intercept_misc1 &= !misc1::PAUSE;
        }
        self.dirty(clean::INTERCEPTS);
    }

    fn segment(&self, s: SegReg) -> Segment {
        let v = self.seg_ref(s);
        Segment {
            selector: v.selector,
            base: v.base,
            limit: v.limit,
            attr: v.attrib,
        }
    }

    fn cpl(&self) -> u8 {
        self.vmcb.save.cpl
    }

    fn cr(&self, r: ControlReg) -> u64 {
        let s = &self.vmcb.save;
        match r {
            ControlReg::Cr0 => s.cr0,
            ControlReg::Cr2 => s.cr2,
            ControlReg::Cr3 => s.cr3,
            ControlReg::Cr4 => s.cr4,
        }
    }

    fn set_cr(&mut self, r: ControlReg, v: u64) -> Result<(), Event> {
        let next = match r {
            ControlReg::Cr0 => self.rules.write_cr0(self.cr_state(), v)?,
            ControlReg::Cr4 => self.rules.write_cr4(self.cr_state(), v)?,
            ControlReg::Cr3 => CrState {
                cr3: v,
                ..self.cr_state()
            },
            ControlReg::Cr2 => {
                self.vmcb.save.cr2 = v;
                self.dirty(clean::CR2);
                if self.loaded {
                    cr2::write(v);
                }
                return Ok(());
            }
        };
        self.apply(next);
        Ok(())
    }

    fn state_msr(&self, m: StateMsr) -> u64 {
        let s = &self.vmcb.save;
        match m {
            // SVME is Janus' business: the guest never sees it (APM Vol 2 15.5.1).
            StateMsr::Efer => s.efer & !efer::SVME,
            StateMsr::Pat => s.g_pat,
            StateMsr::FsBase => s.fs.base,
            StateMsr::GsBase => s.gs.base,
            StateMsr::KernelGsBase => s.kernel_gs_base,
            StateMsr::SysenterCs => s.sysenter_cs,
            StateMsr::SysenterEsp => s.sysenter_esp,
            StateMsr::SysenterEip => s.sysenter_eip,
            StateMsr::Star => s.star,
            StateMsr::Lstar => s.lstar,
            StateMsr::Cstar => s.cstar,
            StateMsr::Fmask => s.sfmask,
            StateMsr::TscAux => self.tsc_aux.get(),
        }
    }

    fn set_state_msr(&mut self, m: StateMsr, v: u64) -> Result<(), Event> {
        let s = &mut self.vmcb.save;
        match m {
            StateMsr::Efer => {
                let next = self.rules.write_efer(self.cr_state(), v)?;
                self.apply(next);
                return Ok(());
            }
            StateMsr::Pat => {
                s.g_pat = v;
                self.dirty(clean::NP);
            }
            StateMsr::FsBase => s.fs.base = v,
            StateMsr::GsBase => s.gs.base = v,
            StateMsr::KernelGsBase => s.kernel_gs_base = v,
            StateMsr::SysenterCs => s.sysenter_cs = v,
            StateMsr::SysenterEsp => s.sysenter_esp = v,
            StateMsr::SysenterEip => s.sysenter_eip = v,
            StateMsr::Star => s.star = v,
            StateMsr::Lstar => s.lstar = v,
            StateMsr::Cstar => s.cstar = v,
            StateMsr::Fmask => s.sfmask = v,
            StateMsr::TscAux => self.tsc_aux.set(v, tsc_aux::write),
        }
        Ok(())
    }

    fn interrupts_open(&self) -> bool {
        !inject::pending(&self.vmcb.control)
            && self.vmcb.save.rflags & rflags::IF != 0
            && self.vmcb.control.interrupt_shadow & INTERRUPT_SHADOW == 0
    }

    /// A virtual interrupt request that ignores the TPR (V_IRQ, V_IGN_TPR) makes the CPU
    /// exit with VINTR as soon as the guest could take it (APM Vol 2 15.21.4).
    fn request_interrupt_window(&mut self, on: bool) {
        let c = &mut self.vmcb.control;
        // The VINTR intercept is on exactly while a request is (both change together
        // here), so a request that changes nothing returns at once: the core offers
        // interrupts on most exits.
        if (c.intercept_misc1 & misc1::VINTR != 0) == on {
            return;
        }
        c.v_intr &= !WINDOW_REQUEST;
        if on {
            c.v_intr |= V_IRQ | V_IGN_TPR;
            c.intercept_misc1 |= misc1::VINTR;
        } else {
            c.intercept_misc1 &= !misc1::VINTR;
        }
        self.dirty(clean::TPR | clean::INTERCEPTS);
    }

    fn inject(&mut self, ev: Event) {
        let protected = self.vmcb.save.cr0 & cr0::PE != 0;
        self.vmcb.control.event_inj = inject::encode(ev, protected);
    }

    fn set_tsc_offset(&mut self, offset: u64) {
        self.vmcb.control.tsc_offset = offset;
        self.dirty(clean::INTERCEPTS);
    }

    fn set_exit_deadline(&mut self, _tsc: Option<u64>) -> bool {
        // AMD-V has no timer of its own that makes the guest exit (APM Vol 2 15.21
        // lists none): the intercepted host timer interrupt (INTR, with V_INTR_MASKING so
        // the guest's RFLAGS.IF cannot hold it, 15.21.1) ends the slice.
        false
    }

    fn debug_reg(&self, r: DebugReg) -> u64 {
        match address_index(r) {
            Some(i) => self.dr[i],
            None if r == DebugReg::Dr6 => self.vmcb.save.dr6,
            None => self.vmcb.save.dr7,
        }
    }

    fn set_debug_reg(&mut self, r: DebugReg, v: u64) {
        match address_index(r) {
            Some(i) => {
                self.dr[i] = v;
                if self.loaded {
                    debug_regs::load_addresses(&self.dr);
                }
            }
            None if r == DebugReg::Dr6 => {
                self.vmcb.save.dr6 = v;
                self.dirty(clean::DRX);
            }
            None => {
                self.vmcb.save.dr7 = v;
                self.dirty(clean::DRX);
            }
        }
    }

    /// Nothing to read back: VMRUN and #VMEXIT switch DR6, DR7 and CR2 through the VMCB,
    /// VMLOAD/VMSAVE around VMRUN the syscall MSRs, KERNEL_GS_BASE and FS/GS (APM Vol 2
    /// 15.5.1, 15.5.2), and the guest changes DR0-DR3 and TSC_AUX only by MOVs and WRMSRs
    /// that exit, so `dr` and `tsc_aux` are always current. Unloaded, the vCPU leaves the
    /// hardware alone (TSC_AUX back at the host's value) and cannot run.
    fn put(&mut self) {
        self.tsc_aux.put(tsc_aux::write);
        self.loaded = false;
    }

    /// Every clean bit is cleared: another VMCB may have run on this CPU since, or this
    /// one last ran on another CPU, so the CPU's copy cannot be trusted (APM Vol 2
    /// 15.15.3).
    fn load(&mut self) {
        self.vmcb.control.vmcb_clean = clean::ALL_DIRTY;
        debug_regs::load_addresses(&self.dr);
        cr2::write(self.vmcb.save.cr2);
        self.tsc_aux.load(tsc_aux::write);
        // Another guest may have run with this ASID since (more guests than ASIDs).
        if self.asids.shared(self.vmcb.control.guest_asid) {
            self.vmcb.control.tlb_control = if self.caps.flush_by_asid {
                tlb_control::FLUSH_ASID
            } else {
                tlb_control::FLUSH_ALL
            };
        }
        self.loaded = true;
    }

    /// The VMCB, the permission maps and the nested page tables go back to `frames`, the
    /// ASID to its pool. A later VMCB in the same frame is read whole: its first VMRUN,
    /// and the first after each `load`, has no clean bit set (APM Vol 2 15.15.3).
    fn release<A: FrameAllocator>(self, frames: &mut A) {
        let c = &self.vmcb.control;
        let (n_cr3, iopm, msrpm) = (c.n_cr3, c.iopm_base_pa, c.msrpm_base_pa);
        self.asids.give(c.guest_asid);
        nested::free_tables(HostPhys(n_cr3), &Npt, frames);
        frames.free(HostPhys(iopm), IOPM_PAGES);
        frames.free(HostPhys(msrpm), MSRPM_PAGES);
        frames.free(self.vmcb.pa(), 1);
    }

    fn tpr_shadow(&self) -> Option<u8> {
        Some((self.vmcb.control.v_intr & V_TPR) as u8)
    }

    /// Only a change makes the next VMRUN read V_INTR again (the core syncs the TPR on
    /// most exits, usually changing nothing).
    fn set_tpr_shadow(&mut self, cr8: u8) {
        let c = &mut self.vmcb.control;
        let v_intr = (c.v_intr & !V_TPR) | (cr8 as u64 & V_TPR);
        if v_intr != c.v_intr {
            c.v_intr = v_intr;
            self.dirty(clean::TPR);
        }
    }

    // Inlined: as a call it cost a frame of six registers on every completed exit.
    #[inline(always)]
    fn next_rip(&self, mem: &GuestMemory, cache: &mut InsnCache) -> Result<u64, VcpuError> {
        match self.reported_next_rip() {
            Some(n) => Ok(n),
            None => self.decoded_next_rip(mem, cache),
        }
    }

    fn retire(&mut self, next_rip: u64) {
        self.vmcb.save.rip = next_rip;
        // Completing the instruction ends an STI/MOV SS interrupt shadow.
        self.vmcb.control.interrupt_shadow &= !INTERRUPT_SHADOW;
        self.retired = true;
    }
}

#[cfg(test)]
mod tests;
