//! SVM enabling, VMCB set-up and the `ArchVcpu` implementation for AMD-V.

use crate::caps::SvmCaps;
use crate::entry::svm_run;
use crate::exit::{decode, VMEXIT_INVALID, VMEXIT_IOIO};
use crate::npt::Npt;
use crate::vmcb::{misc1, misc2, Vmcb, VmcbSegment};
use vmm_core::addr::HostPhys;
use vmm_core::cpu_rules::{CpuRules, CrState};
use vmm_core::exit::VmExit;
use vmm_core::fetch::decode_at_rip;
use vmm_core::memory::GuestMemory;
use vmm_core::nested::{self, FrameAllocator};
use vmm_core::vcpu::{
    ArchBackend, ArchVcpu, ControlReg, Event, Gpr, GprFile, SegReg, Segment, StartMode, StateMsr,
    VcpuError,
};
use x86::msr::{rdmsr, wrmsr, IA32_EFER};

const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
const EFER_SVME: u64 = 1 << 12;
const V_INTR_MASKING: u64 = 1 << 24;
/// intercept_cr bits 31:16 are CR0-15 writes (APM Vol 2 15.9).
const CR4_WRITE_INTERCEPT: u32 = 1 << (16 + 4);
const V_IRQ: u64 = 1 << 8;
const V_IGN_TPR: u64 = 1 << 20;

/// EVENTINJ layout (APM Vol 2 15.20).
const EVENT_VALID: u64 = 1 << 31;
const EVENT_ERROR_VALID: u64 = 1 << 11;
const EVENT_TYPE_INTR: u64 = 0 << 8;
const EVENT_TYPE_NMI: u64 = 2 << 8;
const EVENT_TYPE_EXCEPTION: u64 = 3 << 8;

/// I/O and MSR permission maps: 12 KiB and 8 KiB (APM Vol 2 15.10.1, 15.11).
const IOPM_PAGES: usize = 3;
const MSRPM_PAGES: usize = 2;

/// AMD-V, switched on: EFER.SVME is set and the host save area is programmed.
pub struct Svm {
    caps: SvmCaps,
    host_save: HostPhys,
    next_asid: u32,
}

impl Svm {
    /// Sets EFER.SVME and VM_HSAVE_PA (APM Vol 2 15.4, 15.30.4), and saves Janus' own
    /// VMLOAD/VMSAVE state for the return from each guest.
    pub fn enable<A: FrameAllocator>(caps: SvmCaps, frames: &mut A) -> Result<Svm, &'static str> {
        let hsave = frames
            .alloc_table()
            .ok_or("no memory for the host save area")?;
        let host_save = frames
            .alloc_table()
            .ok_or("no memory for the host state page")?;
        // SAFETY: the CPU has SVM (probe checked CPUID and VM_CR); setting EFER.SVME only
        // enables the SVM instructions, and both pages are 4 KiB-aligned and ours.
        unsafe {
            wrmsr(IA32_EFER, rdmsr(IA32_EFER) | EFER_SVME);
            wrmsr(MSR_VM_HSAVE_PA, hsave.0);
            core::arch::asm!("vmsave rax", in("rax") host_save.0, options(nostack));
        }
        Ok(Svm {
            caps,
            host_save,
            next_asid: 1,
        })
    }
}

/// One guest CPU on AMD-V.
pub struct SvmVcpu {
    vmcb_pa: HostPhys,
    vmcb: &'static mut Vmcb,
    host_save: HostPhys,
    gprs: GprFile,
    caps: SvmCaps,
    /// Where the instruction behind the last exit ends, when the CPU said.
    next_rip: Option<u64>,
    /// The architectural rules for this guest's CR0/CR4/EFER writes.
    rules: CpuRules,
}

fn seg(s: Segment) -> VmcbSegment {
    VmcbSegment {
        selector: s.selector,
        attrib: s.attr,
        limit: s.limit,
        base: s.base,
    }
}

/// Clears the intercept bits of the core's pass-through MSRs in the MSR permission map
/// (APM Vol 2 15.11): two bits per MSR (read, then write); MSRs 0-0x1FFF at byte 0 and
/// 0xC0000000-0xC0001FFF at byte 0x800, both in the first page.
fn msrpm_allow(page: &mut [u64; 512]) {
    let mut clear = |msr: u32, write: bool| {
        let (base, index) = match msr {
            0..=0x1fff => (0, msr),
            0xc000_0000..=0xc000_1fff => (0x800, msr - 0xc000_0000),
            _ => return,
        };
        let bit = base * 8 + index as usize * 2 + write as usize;
        page[bit / 64] &= !(1 << (bit % 64));
    };
    for &m in vmm_core::msr::PASSTHROUGH {
        clear(m, false);
        clear(m, true);
    }
}

impl ArchBackend for Svm {
    type Vcpu = SvmVcpu;

    fn create_vcpu<A: FrameAllocator>(
        &mut self,
        mem: &GuestMemory,
        start: StartMode,
        rules: CpuRules,
        frames: &mut A,
    ) -> Result<SvmVcpu, VcpuError> {
        let oom = VcpuError {
            what: "out of memory for the VMCB",
            code: 0,
        };
        let vmcb_pa = frames.alloc_table().ok_or(oom)?;
        let iopm = frames.alloc_contiguous(IOPM_PAGES).ok_or(oom)?;
        let msrpm = frames.alloc_contiguous(MSRPM_PAGES).ok_or(oom)?;
        // Every port and every MSR is intercepted.
        for p in 0..IOPM_PAGES as u64 {
            frames.table(HostPhys(iopm.0 + p * 4096)).fill(u64::MAX);
        }
        for p in 0..MSRPM_PAGES as u64 {
            frames.table(HostPhys(msrpm.0 + p * 4096)).fill(u64::MAX);
        }
        msrpm_allow(frames.table(msrpm));
        let (root, _) = nested::build(mem, &Npt, frames).map_err(|_| VcpuError {
            what: "cannot build the nested page tables",
            code: 0,
        })?;
        let asid = self.next_asid;
        self.next_asid = if self.next_asid + 1 >= self.caps.asids {
            1
        } else {
            self.next_asid + 1
        };
        // SAFETY: the page is a zeroed, 4 KiB-aligned frame that belongs to this vCPU from
        // now on; `Vmcb` is exactly 4 KiB with the hardware layout (vmcb.rs asserts).
        let vmcb = unsafe { &mut *(frames.table(vmcb_pa) as *mut [u64; 512] as *mut Vmcb) };
        let c = &mut vmcb.control;
        // CR4 writes exit so that the guest cannot set what CPUID hides (OSXSAVE, VMXE, ...).
        c.intercept_cr = CR4_WRITE_INTERCEPT;
        c.intercept_misc1 = misc1::INTR
            | misc1::NMI
            | misc1::SMI
            | misc1::INIT
            | misc1::RDPMC
            | misc1::CPUID
            | misc1::INVD
            | misc1::HLT
            | misc1::IOIO_PROT
            | misc1::MSR_PROT
            | misc1::SHUTDOWN;
        // VMRUN must be intercepted or VMRUN fails (APM Vol 2 15.5.1).
        c.intercept_misc2 = misc2::VMRUN
            | misc2::VMMCALL
            | misc2::VMLOAD
            | misc2::VMSAVE
            | misc2::STGI
            | misc2::CLGI
            | misc2::SKINIT
            | misc2::MONITOR
            | misc2::MWAIT
            | misc2::XSETBV;
        c.iopm_base_pa = iopm.0;
        c.msrpm_base_pa = msrpm.0;
        c.guest_asid = asid;
        c.tlb_control = 1;
        // The guest's IF and TPR then govern only virtual interrupts (APM Vol 2 15.21.1).
        c.v_intr = V_INTR_MASKING;
        c.np_control = 1;
        c.n_cr3 = root.0;
        let st = start.initial_state();
        let s = &mut vmcb.save;
        s.cs = seg(st.cs);
        for d in [&mut s.es, &mut s.ss, &mut s.ds, &mut s.fs, &mut s.gs] {
            *d = seg(st.data);
        }
        s.ldtr = VmcbSegment::default();
        s.tr = seg(st.tr);
        s.gdtr = VmcbSegment {
            limit: st.gdt.limit as u32,
            base: st.gdt.base,
            ..Default::default()
        };
        s.idtr = VmcbSegment {
            limit: st.idt.limit as u32,
            base: st.idt.base,
            ..Default::default()
        };
        s.cpl = 0;
        s.efer = st.efer | EFER_SVME;
        s.cr0 = st.cr0;
        s.cr3 = st.cr3;
        s.cr4 = st.cr4;
        s.dr6 = 0xffff_0ff0;
        s.dr7 = 0x400;
        s.rflags = st.rflags;
        s.rip = st.rip;
        s.rsp = 0;
        s.rax = st.gprs.r[Gpr::Rax as usize];
        s.g_pat = 0x0007_0406_0007_0406;
        let gprs = st.gprs;
        Ok(SvmVcpu {
            vmcb_pa,
            vmcb,
            host_save: self.host_save,
            gprs,
            caps: self.caps,
            next_rip: None,
            rules,
        })
    }
}

impl SvmVcpu {
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
            efer: s.efer & !EFER_SVME,
            cs_long: s.cs.attrib & 0x200 != 0,
        }
    }

    /// Writes what the rules allowed; SVME stays set underneath (APM Vol 2 15.5.1).
    fn apply(&mut self, st: CrState) {
        let s = &mut self.vmcb.save;
        (s.cr0, s.cr3, s.cr4, s.efer) = (st.cr0, st.cr3, st.cr4, st.efer | EFER_SVME);
    }

    /// Finds where the current instruction ends by decoding it (no NRIP save).
    fn decoded_next_rip(&self, mem: &GuestMemory) -> Result<u64, VcpuError> {
        let rip = self.vmcb.save.rip;
        let insn = decode_at_rip(self, mem).map_err(|_| VcpuError {
            what: "cannot decode the instruction at RIP to skip it",
            code: rip,
        })?;
        Ok(rip.wrapping_add(insn.len as u64))
    }
}

impl ArchVcpu for SvmVcpu {
    fn run(&mut self) -> Result<VmExit, VcpuError> {
        // SAFETY: this vCPU's VMCB is fully set up, Svm::enable programmed SVME, HSAVE and
        // the host state page, and `gprs` lives in `self` for the whole call.
        unsafe { svm_run(&mut self.gprs, self.vmcb_pa.0, self.host_save.0) };
        let c = &mut self.vmcb.control;
        c.tlb_control = 0;
        c.vmcb_clean = 0;
        let (code, info1, info2) = (c.exit_code, c.exit_info1, c.exit_info2);
        if code == VMEXIT_INVALID {
            return Err(VcpuError {
                what: "VMRUN failed: invalid guest state (VMEXIT_INVALID)",
                code,
            });
        }
        // An event whose delivery the exit interrupted is delivered again (APM Vol 2 15.7.2).
        let int_info = c.exit_int_info;
        if int_info & EVENT_VALID != 0 && c.event_inj & EVENT_VALID == 0 {
            c.event_inj = int_info;
        }
        self.next_rip = if code == VMEXIT_IOIO {
            Some(info2)
        } else if self.caps.nrip_save && c.next_rip != 0 {
            Some(c.next_rip)
        } else {
            None
        };
        Ok(decode(code, info1, info2, |r| self.gpr(r)))
    }

    fn gpr(&self, r: Gpr) -> u64 {
        match r {
            Gpr::Rax => self.vmcb.save.rax,
            Gpr::Rsp => self.vmcb.save.rsp,
            _ => self.gprs.r[r as usize],
        }
    }

    fn set_gpr(&mut self, r: Gpr, v: u64) {
        match r {
            Gpr::Rax => self.vmcb.save.rax = v,
            Gpr::Rsp => self.vmcb.save.rsp = v,
            _ => self.gprs.r[r as usize] = v,
        }
    }

    fn rip(&self) -> u64 {
        self.vmcb.save.rip
    }
    fn rflags(&self) -> u64 {
        self.vmcb.save.rflags
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
            StateMsr::Efer => s.efer & !EFER_SVME,
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
            StateMsr::Pat => s.g_pat = v,
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
        }
        Ok(())
    }

    fn interrupts_open(&self) -> bool {
        self.vmcb.control.event_inj & EVENT_VALID == 0
            && self.vmcb.save.rflags & (1 << 9) != 0
            && self.vmcb.control.interrupt_shadow & 1 == 0
    }

    /// A virtual interrupt request that ignores the TPR (V_IRQ, V_IGN_TPR) makes the CPU
    /// exit with VINTR as soon as the guest could take it (APM Vol 2 15.21.4).
    fn request_interrupt_window(&mut self, on: bool) {
        let c = &mut self.vmcb.control;
        if on {
            c.v_intr |= V_IRQ | V_IGN_TPR;
            c.intercept_misc1 |= misc1::VINTR;
        } else {
            c.v_intr &= !(V_IRQ | V_IGN_TPR);
            c.intercept_misc1 &= !misc1::VINTR;
        }
    }

    fn inject(&mut self, ev: Event) {
        let protected = self.vmcb.save.cr0 & 1 != 0;
        self.vmcb.control.event_inj = match ev {
            Event::Exception { vector, error_code } => match error_code {
                Some(code) if protected => {
                    EVENT_VALID
                        | EVENT_TYPE_EXCEPTION
                        | EVENT_ERROR_VALID
                        | vector as u64
                        | ((code as u64) << 32)
                }
                _ => EVENT_VALID | EVENT_TYPE_EXCEPTION | vector as u64,
            },
            Event::Interrupt(v) => EVENT_VALID | EVENT_TYPE_INTR | v as u64,
            Event::Nmi => EVENT_VALID | EVENT_TYPE_NMI | 2,
        };
    }

    fn set_tsc_offset(&mut self, offset: u64) {
        self.vmcb.control.tsc_offset = offset;
    }

    fn tpr_shadow(&self) -> Option<u8> {
        Some((self.vmcb.control.v_intr & 0xf) as u8)
    }

    fn set_tpr_shadow(&mut self, cr8: u8) {
        self.vmcb.control.v_intr = (self.vmcb.control.v_intr & !0xf) | (cr8 & 0xf) as u64;
    }

    fn next_rip(&self, mem: &GuestMemory) -> Result<u64, VcpuError> {
        match self.next_rip {
            Some(n) => Ok(n),
            None => self.decoded_next_rip(mem),
        }
    }

    fn retire(&mut self, next_rip: u64) {
        self.vmcb.save.rip = next_rip;
        // Completing the instruction ends an STI/MOV SS interrupt shadow.
        self.vmcb.control.interrupt_shadow &= !1;
        self.next_rip = None;
    }
}

#[cfg(test)]
mod tests {
    use super::msrpm_allow;

    fn exits(page: &[u64; 512], msr: u32, write: bool) -> bool {
        let (base, index) = if msr >= 0xc000_0000 {
            (0x800, msr - 0xc000_0000)
        } else {
            (0, msr)
        };
        let bit = base * 8 + index as usize * 2 + write as usize;
        page[bit / 64] & (1 << (bit % 64)) != 0
    }

    #[test]
    fn only_the_pass_through_msrs_skip_the_exit() {
        let mut page = [u64::MAX; 512];
        msrpm_allow(&mut page);
        assert!(
            !exits(&page, 0xc000_0101, false) && !exits(&page, 0xc000_0101, true),
            "GS base"
        );
        assert!(
            exits(&page, 0x10, false) && exits(&page, 0x10, true),
            "TSC exits"
        );
        assert!(
            exits(&page, 0xc000_0080, false) && exits(&page, 0xc000_0080, true),
            "EFER exits"
        );
        assert!(exits(&page, 0x1b, true), "APIC base exits");
        assert!(exits(&page, 0x1a0, false), "MISC_ENABLE exits");
    }
}
