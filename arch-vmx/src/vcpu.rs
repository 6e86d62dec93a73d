//! VMX root operation, VMCS set-up and the `ArchVcpu` implementation for VT-x.

use crate::caps::{entry_ctl, ept_cap, exit_ctl, pin, proc1, proc2, VmxCaps};
use crate::entry::{janus_vmx_exit, vmx_run};
use crate::ept::{eptp, Ept};
use crate::exit::{decode, ModeInfo, RawExit};
use crate::vmcs::{self, read, set};
use vmm_core::addr::HostPhys;
use vmm_core::exit::VmExit;
use vmm_core::memory::GuestMemory;
use vmm_core::nested::{self, FrameAllocator};
use vmm_core::vcpu::{
    ArchBackend, ArchVcpu, ControlReg, Event, Gpr, GprFile as Gprs, SegReg, Segment, StartMode,
    StateMsr, VcpuError,
};
use x86::controlregs::{cr0, cr0_write, cr3, cr4, cr4_write, Cr0, Cr4};
use x86::msr::{self, rdmsr, wrmsr};
use x86::vmx::vmcs::{control, guest, host, ro};

use vmm_core::cpu_rules::cr0::{PE as CR0_PE, PG as CR0_PG};
use vmm_core::cpu_rules::efer::LMA as EFER_LMA;
use vmm_core::cpu_rules::{CpuRules, CrState};

/// Primary processor-based control: exit when the guest can take an interrupt.
const INTERRUPT_WINDOW_EXITING: u64 = 1 << 2;

/// Interruption-information field layout (SDM Vol 3C 25.8.3).
const INTR_VALID: u32 = 1 << 31;
const INTR_DELIVER_ERROR: u32 = 1 << 11;
const INTR_TYPE_EXTERNAL: u32 = 0 << 8;
const INTR_TYPE_NMI: u32 = 2 << 8;
const INTR_TYPE_HW_EXCEPTION: u32 = 3 << 8;

/// VT-x, switched on: VMX root operation has been entered with VMXON.
pub struct Vmx {
    caps: VmxCaps,
    next_vpid: u16,
}

impl Vmx {
    /// Sets CR0/CR4 as VMX requires and executes VMXON (SDM Vol 3C 24.7, 24.8).
    pub fn enable<A: FrameAllocator>(caps: VmxCaps, frames: &mut A) -> Result<Vmx, &'static str> {
        let region = frames
            .alloc_table()
            .ok_or("no memory for the VMXON region")?;
        frames.table(region)[0] = caps.revision as u64;
        // SAFETY: setting the bits the FIXED0 MSRs require (NE, and VMXE) and clearing none
        // that Janus relies on; VMXON gets a 4 KiB-aligned page holding the revision ID.
        unsafe {
            let c0 = (cr0().bits() as u64 | caps.cr0_fixed0) & caps.cr0_fixed1;
            cr0_write(Cr0::from_bits_truncate(c0 as usize));
            let c4 = (cr4().bits() as u64 | caps.cr4_fixed0) & caps.cr4_fixed1;
            cr4_write(Cr4::from_bits_truncate(c4 as usize));
            x86::bits64::vmx::vmxon(region.0).map_err(|_| "VMXON failed")?;
        }
        if caps.ept_vpid & (ept_cap::INVEPT | ept_cap::INVEPT_ALL)
            == ept_cap::INVEPT | ept_cap::INVEPT_ALL
        {
            vmcs::invept_all();
        }
        Ok(Vmx { caps, next_vpid: 1 })
    }
}

/// One guest CPU on VT-x.
pub struct VmxVcpu {
    vmcs: HostPhys,
    gprs: Gprs,
    launched: bool,
    caps: VmxCaps,
    cr0_mask: u64,
    cr4_mask: u64,
    cr0_shadow: u64,
    cr4_shadow: u64,
    cr2: u64,
    /// The architectural rules for this guest's CR0/CR4/EFER writes.
    rules: CpuRules,
    /// Event to inject at the next entry: (interruption information, error code).
    pending: Option<(u32, u32)>,
    /// Length of the instruction that caused the last exit (SDM Vol 3C 25.9.4).
    exit_insn_len: u64,
    /// The MSRs VT-x does not switch live in the hardware while this vCPU runs; these are
    /// the values to load when it is (re)loaded.
    swapped: [u64; 5],
    swapped_loaded: bool,
}

const SWAPPED: [u32; 5] = [
    msr::IA32_KERNEL_GSBASE,
    msr::IA32_STAR,
    msr::IA32_LSTAR,
    msr::IA32_CSTAR,
    msr::IA32_FMASK,
];

fn swapped_index(m: StateMsr) -> Option<usize> {
    Some(match m {
        StateMsr::KernelGsBase => 0,
        StateMsr::Star => 1,
        StateMsr::Lstar => 2,
        StateMsr::Cstar => 3,
        StateMsr::Fmask => 4,
        _ => return None,
    })
}

/// Segment field encodings are laid out ES, CS, SS, DS, FS, GS, two apart
/// (SDM Vol 3C Appendix B), the same order as `SegReg`.
fn seg_fields(s: SegReg) -> (u32, u32, u32, u32) {
    let i = s as u32 * 2;
    (
        guest::ES_SELECTOR + i,
        guest::ES_BASE + i,
        guest::ES_LIMIT + i,
        guest::ES_ACCESS_RIGHTS + i,
    )
}

/// VMX access rights (SDM Vol 3C 25.4.1) from the neutral attribute format.
fn to_vmx_ar(attr: u16) -> u64 {
    let ar = (attr as u64 & 0xff) | ((attr as u64 & 0xf00) << 4);
    if attr & 0x80 == 0 {
        ar | (1 << 16)
    } else {
        ar
    }
}

fn from_vmx_ar(ar: u64) -> u16 {
    if ar & (1 << 16) != 0 {
        return 0;
    }
    ((ar & 0xff) | ((ar >> 4) & 0xf00)) as u16
}

/// The MSR bitmap (SDM Vol 3C 25.6.9): four 1 KiB bitmaps, reads of 0-0x1FFF, reads of
/// 0xC0000000-0xC0001FFF, then the same for writes; a set bit makes the access exit.
/// Everything exits except the core's pass-through list.
fn msr_bitmap_fill(page: &mut [u64; 512]) {
    page.fill(u64::MAX);
    let mut clear = |msr: u32, write: bool| {
        let (base, index) = match msr {
            0..=0x1fff => (0, msr),
            0xc000_0000..=0xc000_1fff => (1024, msr - 0xc000_0000),
            _ => return,
        };
        let bit = (base + if write { 2048 } else { 0 }) * 8 + index as usize;
        page[bit / 64] &= !(1 << (bit % 64));
    };
    for &m in vmm_core::msr::PASSTHROUGH {
        clear(m, false);
        clear(m, true);
    }
}

impl ArchBackend for Vmx {
    type Vcpu = VmxVcpu;

    fn create_vcpu<A: FrameAllocator>(
        &mut self,
        mem: &GuestMemory,
        start: StartMode,
        rules: CpuRules,
        frames: &mut A,
    ) -> Result<VmxVcpu, VcpuError> {
        let oom = VcpuError {
            what: "out of memory for the VMCS",
            code: 0,
        };
        let vmcs = frames.alloc_table().ok_or(oom)?;
        frames.table(vmcs)[0] = self.caps.revision as u64;
        let (root, _) = nested::build(mem, &Ept, frames).map_err(|_| VcpuError {
            what: "cannot build the EPT",
            code: 0,
        })?;
        let msr_bitmap = frames.alloc_table().ok_or(oom)?;
        msr_bitmap_fill(frames.table(msr_bitmap));
        vmcs::load_fresh(vmcs)?;
        let vpid = if self.caps.vpid() {
            let v = self.next_vpid;
            self.next_vpid = self.next_vpid.wrapping_add(1).max(1);
            Some(v)
        } else {
            None
        };
        let mut v = VmxVcpu {
            vmcs,
            gprs: Gprs::default(),
            launched: false,
            caps: self.caps,
            cr0_mask: 0,
            cr4_mask: 0,
            cr0_shadow: 0,
            cr4_shadow: 0,
            cr2: 0,
            rules: rules.restrict_cr4(self.caps.cr4_fixed1),
            pending: None,
            exit_insn_len: 0,
            swapped: [0; 5],
            swapped_loaded: false,
        };
        v.setup_controls(eptp(root), vpid)?;
        vmcs::write(control::MSR_BITMAPS_ADDR_FULL, msr_bitmap.0)?;
        v.setup_host()?;
        v.setup_guest(start)?;
        Ok(v)
    }
}

impl VmxVcpu {
    fn setup_controls(&mut self, eptp: u64, vpid: Option<u16>) -> Result<(), VcpuError> {
        let c = &self.caps;
        vmcs::write(
            control::PINBASED_EXEC_CONTROLS,
            c.pin.adjust(pin::EXT_INT_EXITING | pin::NMI_EXITING) as u64,
        )?;
        // Every port and MSR access exits (no bitmaps), and so do HLT, MWAIT/MONITOR,
        // RDPMC and CR8 accesses; CR3 accesses do not (EPT, SDM Vol 3C 26.6.2).
        let want1 = proc1::HLT_EXITING
            | proc1::UNCOND_IO_EXITING
            | proc1::MWAIT_EXITING
            | proc1::MONITOR_EXITING
            | proc1::RDPMC_EXITING
            | proc1::USE_TSC_OFFSETTING
            | (1 << 19)
            | (1 << 20)
            | proc1::SECONDARY;
        let p1 = c.proc1.adjust(want1 | proc1::USE_MSR_BITMAPS)
            & !(proc1::CR3_LOAD_EXITING | proc1::CR3_STORE_EXITING)
            | (c.proc1.must1 & (proc1::CR3_LOAD_EXITING | proc1::CR3_STORE_EXITING));
        vmcs::write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, p1 as u64)?;
        let mut want2 = proc2::EPT | proc2::UNRESTRICTED | proc2::RDTSCP;
        if vpid.is_some() {
            want2 |= proc2::VPID;
        }
        vmcs::write(
            control::SECONDARY_PROCBASED_EXEC_CONTROLS,
            c.proc2.adjust(want2) as u64,
        )?;
        let exit = c.exit.adjust(
            exit_ctl::HOST_64
                | exit_ctl::SAVE_EFER
                | exit_ctl::LOAD_EFER
                | exit_ctl::SAVE_PAT
                | exit_ctl::LOAD_PAT,
        );
        vmcs::write(control::VMEXIT_CONTROLS, exit as u64)?;
        let entry =
            c.entry.adjust(entry_ctl::LOAD_EFER | entry_ctl::LOAD_PAT) & !entry_ctl::IA32E_GUEST;
        vmcs::write(control::VMENTRY_CONTROLS, entry as u64)?;
        vmcs::write(control::EXCEPTION_BITMAP, 0)?;
        vmcs::write(control::CR3_TARGET_COUNT, 0)?;
        vmcs::write(control::VMEXIT_MSR_STORE_COUNT, 0)?;
        vmcs::write(control::VMEXIT_MSR_LOAD_COUNT, 0)?;
        vmcs::write(control::VMENTRY_MSR_LOAD_COUNT, 0)?;
        vmcs::write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0)?;
        vmcs::write(control::EPTP_FULL, eptp)?;
        if let Some(vpid) = vpid {
            vmcs::write(control::VPID, vpid as u64)?;
        }
        // With unrestricted guest, PE and PG are the guest's own (SDM Vol 3C 26.3.1.1);
        // the other bits FIXED0 forces (NE) and those FIXED1 forbids are host-owned and
        // the guest sees its own value of them through the read shadow.
        let low = 0xffff_ffffu64;
        self.cr0_mask = ((c.cr0_fixed0 & !(CR0_PE | CR0_PG)) | (!c.cr0_fixed1 & low)) & low;
        // Bits the guest may not set exit too, so that the rules can refuse them.
        self.cr4_mask = (c.cr4_fixed0 | (!c.cr4_fixed1 & low) | !self.rules.cr4_allowed()) & low;
        vmcs::write(control::CR0_GUEST_HOST_MASK, self.cr0_mask)?;
        vmcs::write(control::CR4_GUEST_HOST_MASK, self.cr4_mask)?;
        Ok(())
    }

    /// The state the CPU loads on every VM exit: Janus' own (SDM Vol 3C 26.2.2, 28.5).
    fn setup_host(&mut self) -> Result<(), VcpuError> {
        let mut gdtr = x86::dtables::DescriptorTablePointer::<u64>::default();
        let mut idtr = x86::dtables::DescriptorTablePointer::<u64>::default();
        // SAFETY: SGDT/SIDT/STR and reading control registers and MSRs have no side
        // effects; the TSS descriptor read lies inside the GDT the CPU is using.
        unsafe {
            x86::dtables::sgdt(&mut gdtr);
            x86::dtables::sidt(&mut idtr);
            let tr = x86::task::tr().bits() & !7;
            let desc = (gdtr.base as *const u8).add(tr as usize) as *const u64;
            let (lo, hi) = (desc.read_unaligned(), desc.add(1).read_unaligned());
            let tr_base =
                ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | ((hi & 0xffff_ffff) << 32);
            vmcs::write(host::CR0, cr0().bits() as u64)?;
            vmcs::write(host::CR3, cr3())?;
            vmcs::write(host::CR4, cr4().bits() as u64)?;
            vmcs::write(
                host::CS_SELECTOR,
                (x86::segmentation::cs().bits() & !7) as u64,
            )?;
            vmcs::write(
                host::SS_SELECTOR,
                (x86::segmentation::ss().bits() & !7) as u64,
            )?;
            vmcs::write(
                host::DS_SELECTOR,
                (x86::segmentation::ds().bits() & !7) as u64,
            )?;
            vmcs::write(
                host::ES_SELECTOR,
                (x86::segmentation::es().bits() & !7) as u64,
            )?;
            vmcs::write(host::FS_SELECTOR, 0)?;
            vmcs::write(host::GS_SELECTOR, 0)?;
            vmcs::write(host::TR_SELECTOR, tr as u64)?;
            vmcs::write(host::FS_BASE, rdmsr(msr::IA32_FS_BASE))?;
            vmcs::write(host::GS_BASE, rdmsr(msr::IA32_GS_BASE))?;
            vmcs::write(host::TR_BASE, tr_base)?;
            vmcs::write(host::GDTR_BASE, gdtr.base as u64)?;
            vmcs::write(host::IDTR_BASE, idtr.base as u64)?;
            vmcs::write(host::IA32_SYSENTER_CS, 0)?;
            vmcs::write(host::IA32_SYSENTER_ESP, 0)?;
            vmcs::write(host::IA32_SYSENTER_EIP, 0)?;
            vmcs::write(host::IA32_EFER_FULL, rdmsr(msr::IA32_EFER))?;
            vmcs::write(host::IA32_PAT_FULL, rdmsr(msr::IA32_PAT))?;
        }
        vmcs::write(host::RIP, janus_vmx_exit as *const () as u64)?;
        Ok(())
    }

    /// The guest's first state (SDM Vol 3C 26.3.1 lists what VM entry checks).
    fn setup_guest(&mut self, start: StartMode) -> Result<(), VcpuError> {
        let st = start.initial_state();
        self.cr0_shadow = st.cr0;
        self.cr4_shadow = st.cr4;
        vmcs::write(control::CR0_READ_SHADOW, self.cr0_shadow)?;
        vmcs::write(control::CR4_READ_SHADOW, self.cr4_shadow)?;
        vmcs::write(guest::CR0, self.real_cr0(st.cr0))?;
        vmcs::write(guest::CR3, st.cr3)?;
        vmcs::write(guest::CR4, self.real_cr4(st.cr4))?;
        vmcs::write(guest::DR7, 0x400)?;
        vmcs::write(guest::RSP, 0)?;
        vmcs::write(guest::RIP, st.rip)?;
        vmcs::write(guest::RFLAGS, st.rflags)?;
        for s in [
            SegReg::Es,
            SegReg::Cs,
            SegReg::Ss,
            SegReg::Ds,
            SegReg::Fs,
            SegReg::Gs,
        ] {
            let seg = if s == SegReg::Cs { st.cs } else { st.data };
            let (sel, base, limit, ar) = seg_fields(s);
            vmcs::write(sel, seg.selector as u64)?;
            vmcs::write(base, seg.base)?;
            vmcs::write(limit, seg.limit as u64)?;
            vmcs::write(ar, to_vmx_ar(seg.attr))?;
        }
        vmcs::write(guest::LDTR_SELECTOR, 0)?;
        vmcs::write(guest::LDTR_BASE, 0)?;
        vmcs::write(guest::LDTR_LIMIT, 0)?;
        vmcs::write(guest::LDTR_ACCESS_RIGHTS, 1 << 16)?;
        vmcs::write(guest::TR_SELECTOR, st.tr.selector as u64)?;
        vmcs::write(guest::TR_BASE, st.tr.base)?;
        vmcs::write(guest::TR_LIMIT, st.tr.limit as u64)?;
        vmcs::write(guest::TR_ACCESS_RIGHTS, to_vmx_ar(st.tr.attr))?;
        vmcs::write(guest::GDTR_BASE, st.gdt.base)?;
        vmcs::write(guest::GDTR_LIMIT, st.gdt.limit as u64)?;
        vmcs::write(guest::IDTR_BASE, st.idt.base)?;
        vmcs::write(guest::IDTR_LIMIT, st.idt.limit as u64)?;
        vmcs::write(guest::IA32_DEBUGCTL_FULL, 0)?;
        vmcs::write(guest::IA32_SYSENTER_CS, 0)?;
        vmcs::write(guest::IA32_SYSENTER_ESP, 0)?;
        vmcs::write(guest::IA32_SYSENTER_EIP, 0)?;
        vmcs::write(guest::IA32_EFER_FULL, st.efer)?;
        vmcs::write(guest::IA32_PAT_FULL, 0x0007_0406_0007_0406)?;
        vmcs::write(guest::ACTIVITY_STATE, 0)?;
        vmcs::write(guest::INTERRUPTIBILITY_STATE, 0)?;
        vmcs::write(guest::PENDING_DBG_EXCEPTIONS, 0)?;
        vmcs::write(guest::LINK_PTR_FULL, u64::MAX)?;
        self.gprs = st.gprs;
        if st.efer & EFER_LMA != 0 {
            self.set_long_mode_active(true);
        }
        Ok(())
    }

    /// The registers the architectural rules look at, as the guest sees them.
    fn cr_state(&self) -> CrState {
        CrState {
            cr0: self.cr(ControlReg::Cr0),
            cr3: read(guest::CR3),
            cr4: self.cr(ControlReg::Cr4),
            efer: self.efer(),
            cs_long: read(guest::CS_ACCESS_RIGHTS) & (1 << 13) != 0,
        }
    }

    fn real_cr0(&self, guest_value: u64) -> u64 {
        let c = &self.caps;
        (guest_value | (c.cr0_fixed0 & !(CR0_PE | CR0_PG))) & c.cr0_fixed1
    }

    fn real_cr4(&self, guest_value: u64) -> u64 {
        (guest_value | self.caps.cr4_fixed0) & self.caps.cr4_fixed1
    }

    fn efer(&self) -> u64 {
        read(guest::IA32_EFER_FULL)
    }

    /// Sets EFER.LMA and the "IA-32e mode guest" entry control together, as VM entry
    /// requires them equal (SDM Vol 3C 26.3.1.1).
    fn set_long_mode_active(&mut self, active: bool) {
        let efer = self.efer();
        set(
            guest::IA32_EFER_FULL,
            if active {
                efer | EFER_LMA
            } else {
                efer & !EFER_LMA
            },
        );
        let entry = read(control::VMENTRY_CONTROLS) as u32;
        let entry = if active {
            entry | entry_ctl::IA32E_GUEST
        } else {
            entry & !entry_ctl::IA32E_GUEST
        };
        set(control::VMENTRY_CONTROLS, entry as u64);
    }

    fn raw_exit(&self) -> RawExit {
        RawExit {
            reason: read(ro::EXIT_REASON) as u32,
            qualification: read(ro::EXIT_QUALIFICATION),
            instruction_info: read(ro::VMEXIT_INSTRUCTION_INFO) as u32,
            interruption_info: read(ro::VMEXIT_INTERRUPTION_INFO) as u32,
            interruption_error: read(ro::VMEXIT_INTERRUPTION_ERR_CODE) as u32,
            guest_physical: read(ro::GUEST_PHYSICAL_ADDR_FULL),
        }
    }

    fn load_swapped_msrs(&mut self) {
        if self.swapped_loaded {
            return;
        }
        for (m, v) in SWAPPED.iter().zip(self.swapped) {
            // SAFETY: these MSRs exist on every x86-64 CPU and Janus itself does not use
            // SYSCALL or SWAPGS, so the guest's values can stay loaded.
            unsafe { wrmsr(*m, v) };
        }
        self.swapped_loaded = true;
    }
}

impl ArchVcpu for VmxVcpu {
    fn run(&mut self) -> Result<VmExit, VcpuError> {
        vmcs::make_current(self.vmcs)?;
        self.load_swapped_msrs();
        if let Some((info, code)) = self.pending.take() {
            vmcs::write(control::VMENTRY_INTERRUPTION_INFO_FIELD, info as u64)?;
            vmcs::write(control::VMENTRY_EXCEPTION_ERR_CODE, code as u64)?;
        }
        // SAFETY: CR2 is not part of the VMCS (SDM Vol 3C 27.3): Janus keeps the guest's
        // and loads it here; Janus itself takes no page faults that would need it.
        unsafe { x86::controlregs::cr2_write(self.cr2) };
        // SAFETY: this vCPU's VMCS is current and its host state lands at janus_vmx_exit;
        // `gprs` lives in `self` for the whole call.
        let failed = unsafe { vmx_run(&mut self.gprs, self.launched as u64) };
        // SAFETY: reading CR2 has no side effects.
        self.cr2 = unsafe { x86::controlregs::cr2() } as u64;
        if failed != 0 {
            return Err(VcpuError {
                what: if self.launched {
                    "VMRESUME failed"
                } else {
                    "VMLAUNCH failed"
                },
                code: read(ro::VM_INSTRUCTION_ERROR),
            });
        }
        self.launched = true;
        let raw = self.raw_exit();
        if raw.reason & (1 << 31) != 0 {
            let what = match raw.reason & 0xffff {
                33 => "VM entry failed: invalid guest state",
                34 => "VM entry failed: MSR loading",
                41 => "VM entry failed: machine-check event",
                _ => "VM entry failed",
            };
            return Err(VcpuError {
                what,
                code: raw.qualification,
            });
        }
        self.exit_insn_len = read(ro::VMEXIT_INSTRUCTION_LEN);
        // An event whose delivery the exit interrupted is delivered again (SDM Vol 3C 28.2.4).
        let vectoring = read(ro::IDT_VECTORING_INFO) as u32;
        if vectoring & INTR_VALID != 0 && self.pending.is_none() {
            self.pending = Some((
                vectoring & !(1 << 12),
                read(ro::IDT_VECTORING_ERR_CODE) as u32,
            ));
        }
        let cs_ar = read(guest::CS_ACCESS_RIGHTS);
        let mode = ModeInfo {
            long64: self.efer() & EFER_LMA != 0 && cs_ar & (1 << 13) != 0,
            cs_big: cs_ar & (1 << 14) != 0,
            ins_outs_info: self.caps.ins_outs_info,
        };
        let cr0 = self.cr(ControlReg::Cr0);
        Ok(decode(&raw, mode, |r| self.gpr(r), cr0))
    }

    fn gpr(&self, r: Gpr) -> u64 {
        if r == Gpr::Rsp {
            read(guest::RSP)
        } else {
            self.gprs.r[r as usize]
        }
    }

    fn set_gpr(&mut self, r: Gpr, v: u64) {
        if r == Gpr::Rsp {
            set(guest::RSP, v)
        } else {
            self.gprs.r[r as usize] = v
        }
    }

    fn rip(&self) -> u64 {
        read(guest::RIP)
    }
    fn rflags(&self) -> u64 {
        read(guest::RFLAGS)
    }

    fn segment(&self, s: SegReg) -> Segment {
        let (sel, base, limit, ar) = seg_fields(s);
        Segment {
            selector: read(sel) as u16,
            base: read(base),
            limit: read(limit) as u32,
            attr: from_vmx_ar(read(ar)),
        }
    }

    fn cpl(&self) -> u8 {
        // CPL is SS.DPL (SDM Vol 3C 26.3.1.2).
        ((read(guest::SS_ACCESS_RIGHTS) >> 5) & 3) as u8
    }

    fn cr(&self, r: ControlReg) -> u64 {
        match r {
            ControlReg::Cr0 => {
                (read(guest::CR0) & !self.cr0_mask) | (self.cr0_shadow & self.cr0_mask)
            }
            ControlReg::Cr2 => self.cr2,
            ControlReg::Cr3 => read(guest::CR3),
            ControlReg::Cr4 => {
                (read(guest::CR4) & !self.cr4_mask) | (self.cr4_shadow & self.cr4_mask)
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
                set(control::CR0_READ_SHADOW, v);
                set(guest::CR0, self.real_cr0(v));
            }
            ControlReg::Cr4 => {
                self.rules.write_cr4(self.cr_state(), v)?;
                self.cr4_shadow = v;
                set(control::CR4_READ_SHADOW, v);
                set(guest::CR4, self.real_cr4(v));
            }
            ControlReg::Cr3 => set(guest::CR3, v),
            ControlReg::Cr2 => self.cr2 = v,
        }
        Ok(())
    }

    fn state_msr(&self, m: StateMsr) -> u64 {
        if let Some(i) = swapped_index(m) {
            // SAFETY: the MSR exists on every x86-64 CPU; while this vCPU is loaded the
            // hardware holds the guest's value (SWAPGS may have changed it).
            return if self.swapped_loaded {
                // SAFETY: as above.
                unsafe { rdmsr(SWAPPED[i]) }
            } else {
                self.swapped[i]
            };
        }
        match m {
            StateMsr::Efer => self.efer(),
            StateMsr::Pat => read(guest::IA32_PAT_FULL),
            StateMsr::FsBase => read(guest::FS_BASE),
            StateMsr::GsBase => read(guest::GS_BASE),
            StateMsr::SysenterCs => read(guest::IA32_SYSENTER_CS),
            StateMsr::SysenterEsp => read(guest::IA32_SYSENTER_ESP),
            StateMsr::SysenterEip => read(guest::IA32_SYSENTER_EIP),
            _ => 0,
        }
    }

    fn set_state_msr(&mut self, m: StateMsr, v: u64) -> Result<(), Event> {
        if let Some(i) = swapped_index(m) {
            self.swapped[i] = v;
            if self.swapped_loaded {
                // SAFETY: as in `state_msr`; the core checked the value is canonical.
                unsafe { wrmsr(SWAPPED[i], v) };
            }
            return Ok(());
        }
        match m {
            StateMsr::Efer => {
                let next = self.rules.write_efer(self.cr_state(), v)?;
                set(guest::IA32_EFER_FULL, next.efer);
            }
            StateMsr::Pat => set(guest::IA32_PAT_FULL, v),
            StateMsr::FsBase => set(guest::FS_BASE, v),
            StateMsr::GsBase => set(guest::GS_BASE, v),
            StateMsr::SysenterCs => set(guest::IA32_SYSENTER_CS, v),
            StateMsr::SysenterEsp => set(guest::IA32_SYSENTER_ESP, v),
            StateMsr::SysenterEip => set(guest::IA32_SYSENTER_EIP, v),
            _ => {}
        }
        Ok(())
    }

    fn interrupts_open(&self) -> bool {
        // RFLAGS.IF, and no blocking by STI or MOV SS (SDM Vol 3C 25.4.2, Table 25-3).
        self.pending.is_none()
            && self.rflags() & (1 << 9) != 0
            && read(guest::INTERRUPTIBILITY_STATE) & 3 == 0
    }

    fn request_interrupt_window(&mut self, on: bool) {
        let p1 = read(control::PRIMARY_PROCBASED_EXEC_CONTROLS);
        let want = if on {
            p1 | INTERRUPT_WINDOW_EXITING
        } else {
            p1 & !INTERRUPT_WINDOW_EXITING
        };
        if want != p1 {
            set(control::PRIMARY_PROCBASED_EXEC_CONTROLS, want);
        }
    }

    fn inject(&mut self, ev: Event) {
        let protected = self.cr(ControlReg::Cr0) & CR0_PE != 0;
        self.pending = Some(match ev {
            Event::Exception { vector, error_code } => match error_code {
                // Real mode delivers no error codes (SDM Vol 3C 26.2.1.3).
                Some(code) if protected => (
                    INTR_VALID | INTR_TYPE_HW_EXCEPTION | INTR_DELIVER_ERROR | vector as u32,
                    code,
                ),
                _ => (INTR_VALID | INTR_TYPE_HW_EXCEPTION | vector as u32, 0),
            },
            Event::Interrupt(vector) => (INTR_VALID | INTR_TYPE_EXTERNAL | vector as u32, 0),
            Event::Nmi => (INTR_VALID | INTR_TYPE_NMI | 2, 0),
        });
    }

    fn set_tsc_offset(&mut self, offset: u64) {
        set(control::TSC_OFFSET_FULL, offset);
    }

    fn next_rip(&self, _mem: &GuestMemory) -> Result<u64, VcpuError> {
        if self.exit_insn_len == 0 || self.exit_insn_len > 15 {
            return Err(VcpuError {
                what: "no VM-exit instruction length for this exit",
                code: self.exit_insn_len,
            });
        }
        Ok(self.rip().wrapping_add(self.exit_insn_len))
    }

    fn retire(&mut self, next_rip: u64) {
        set(guest::RIP, next_rip);
        // Completing the instruction ends any STI or MOV-SS interrupt shadow (SDM Vol 3C
        // 25.4.2).
        let intr = read(guest::INTERRUPTIBILITY_STATE);
        if intr & 3 != 0 {
            set(guest::INTERRUPTIBILITY_STATE, intr & !3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::msr_bitmap_fill;

    fn exits(page: &[u64; 512], msr: u32, write: bool) -> bool {
        let (base, index) = if msr >= 0xc000_0000 {
            (1024, msr - 0xc000_0000)
        } else {
            (0, msr)
        };
        let bit = (base + if write { 2048 } else { 0 }) * 8 + index as usize;
        page[bit / 64] & (1 << (bit % 64)) != 0
    }

    #[test]
    fn only_the_pass_through_msrs_skip_the_exit() {
        let mut page = [0u64; 512];
        msr_bitmap_fill(&mut page);
        assert!(
            !exits(&page, 0xc000_0082, false) && !exits(&page, 0xc000_0082, true),
            "LSTAR"
        );
        assert!(
            exits(&page, 0x10, false) && exits(&page, 0x10, true),
            "TSC exits"
        );
        assert!(
            exits(&page, 0xc000_0080, false) && exits(&page, 0xc000_0080, true),
            "EFER exits"
        );
        assert!(exits(&page, 0x1b, false), "APIC base exits");
        assert!(exits(&page, 0x6e0, true), "TSC deadline exits");
    }
}
