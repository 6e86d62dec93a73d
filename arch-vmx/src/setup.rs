//! A new vCPU's VMCS: controls, host state and the guest's first state, written through
//! the accessor only (no VMX instruction here, so host tests can run it on a fake VMCS).

use crate::caps::VmxCaps;
use crate::controls::{pin, Controls};
use crate::host_state::HostState;
use crate::regs::GuestRegs;
use crate::resident::ResidentRegs;
use crate::segment::{ar, to_vmx_ar};
use crate::structures::Structures;
use crate::vcpu::VmxVcpu;
use crate::vmcs::fields::{control, guest, host};
use crate::vmcs::{AccessError, VmcsAccess};
use core::cell::Cell;
use vmm_core::cpu_rules::dr::{DR6_RESET, DR7_RESET};
use vmm_core::cpu_rules::efer::LMA as EFER_LMA;
use vmm_core::cpu_rules::CpuRules;
use vmm_core::nested::FrameAllocator;
use vmm_core::vcpu::{ArchVcpu, SegReg, StartMode, VcpuError};

/// IA32_PAT's value at reset (SDM Vol 3A 13.12.4).
const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// The VMCS link pointer when there is no shadow VMCS (SDM Vol 3C 26.3.1.5).
const NO_LINK: u64 = u64::MAX;
/// Activity state "active" (SDM Vol 3C 25.4.2).
const ACTIVE: u32 = 0;

impl<V: VmcsAccess> VmxVcpu<V> {
    /// A vCPU on `vmcs` (current and clear, in `s.vmcs`), starting in `start`, not loaded.
    /// On failure the structures go back to `frames`.
    pub fn setup<A: FrameAllocator>(
        vmcs: V,
        caps: VmxCaps,
        rules: CpuRules,
        start: StartMode,
        s: Structures,
        host: &HostState,
        frames: &mut A,
    ) -> Result<Self, VcpuError> {
        let rules = rules.restrict_cr4(caps.cr4_fixed1);
        let ctl = Controls::new(&caps, &rules, s.vpid.is_some());
        let mut v = VmxVcpu {
            vmcs,
            regs: GuestRegs::default(),
            resident: ResidentRegs::new(DR6_RESET),
            launched: false,
            caps,
            cr0_mask: ctl.cr0_mask,
            cr4_mask: ctl.cr4_mask,
            cr0_shadow: 0,
            cr4_shadow: 0,
            rules,
            proc1: ctl.proc1,
            pin: ctl.pin,
            pending: None,
            preemption_timer: (ctl.pin & pin::PREEMPTION_TIMER != 0)
                .then_some(caps.preemption_timer_shift),
            exit_deadline: None,
            exit_insn_len: core::cell::Cell::new(None),
            access_error: Cell::new(None),
            in_place: vmm_core::in_place::InPlace::default(),
            virtual_apic: None,
            structures: s,
        };
        let written = v
            .setup_controls(&ctl)
            .and_then(|()| v.setup_host(host))
            .and_then(|()| v.setup_guest(start));
        match written
            .map_err(VcpuError::from)
            .and_then(|()| v.access_result())
        {
            Ok(()) => Ok(v),
            Err(e) => {
                v.release(frames);
                Err(e)
            }
        }
    }

    fn setup_controls(&mut self, ctl: &Controls) -> Result<(), AccessError> {
        let (eptp, vpid) = (self.structures.eptp(), self.structures.vpid.as_ref());
        let (vpid, msr_bitmap) = (vpid.map(|v| v.get()), self.structures.msr_bitmap.0);
        let m = &mut self.vmcs;
        m.write(control::PIN_BASED, ctl.pin)?;
        m.write(control::PRIMARY_PROC_BASED, ctl.proc1)?;
        m.write(control::SECONDARY_PROC_BASED, ctl.proc2)?;
        m.write(control::EXIT_CONTROLS, ctl.exit)?;
        m.write(control::ENTRY_CONTROLS, ctl.entry)?;
        m.write(control::EXCEPTION_BITMAP, ctl.exceptions)?;
        // A new VMCS's fields hold nothing defined (SDM Vol 3C 25.11.3).
        m.write(control::TSC_OFFSET, 0)?;
        m.write(control::CR3_TARGET_COUNT, 0)?;
        m.write(control::EXIT_MSR_STORE_COUNT, 0)?;
        m.write(control::EXIT_MSR_LOAD_COUNT, 0)?;
        m.write(control::ENTRY_MSR_LOAD_COUNT, 0)?;
        m.write(control::ENTRY_INTERRUPTION_INFO, 0)?;
        m.write(control::EPTP, eptp)?;
        if let Some(vpid) = vpid {
            m.write(control::VPID, vpid)?;
        }
        m.write(control::MSR_BITMAPS, msr_bitmap)?;
        m.write(control::CR0_GUEST_HOST_MASK, ctl.cr0_mask)?;
        m.write(control::CR4_GUEST_HOST_MASK, ctl.cr4_mask)
    }

    fn setup_host(&mut self, h: &HostState) -> Result<(), AccessError> {
        let m = &mut self.vmcs;
        m.write(host::CR0, h.cr0)?;
        m.write(host::CR3, h.cr3)?;
        m.write(host::CR4, h.cr4)?;
        m.write(host::CS_SELECTOR, h.cs)?;
        m.write(host::SS_SELECTOR, h.ss)?;
        m.write(host::DS_SELECTOR, h.ds)?;
        m.write(host::ES_SELECTOR, h.es)?;
        m.write(host::FS_SELECTOR, 0)?;
        m.write(host::GS_SELECTOR, 0)?;
        m.write(host::TR_SELECTOR, h.tr)?;
        m.write(host::FS_BASE, h.fs_base)?;
        m.write(host::GS_BASE, h.gs_base)?;
        m.write(host::TR_BASE, h.tr_base)?;
        m.write(host::GDTR_BASE, h.gdtr_base)?;
        m.write(host::IDTR_BASE, h.idtr_base)?;
        m.write(host::IA32_SYSENTER_CS, 0)?;
        m.write(host::IA32_SYSENTER_ESP, 0)?;
        m.write(host::IA32_SYSENTER_EIP, 0)?;
        m.write(host::IA32_EFER, h.efer)?;
        m.write(host::IA32_PAT, h.pat)?;
        m.write(host::RIP, h.rip)
    }

    /// The guest's first state (SDM Vol 3C 26.3.1 lists what VM entry checks).
    fn setup_guest(&mut self, start: StartMode) -> Result<(), AccessError> {
        let st = start.initial_state();
        self.cr0_shadow = st.cr0;
        self.cr4_shadow = st.cr4;
        let (real_cr0, real_cr4) = (self.real_cr0(st.cr0), self.real_cr4(st.cr4));
        let m = &mut self.vmcs;
        m.write(control::CR0_READ_SHADOW, st.cr0)?;
        m.write(control::CR4_READ_SHADOW, st.cr4)?;
        m.write(guest::CR0, real_cr0)?;
        m.write(guest::CR3, st.cr3)?;
        m.write(guest::CR4, real_cr4)?;
        m.write(guest::DR7, DR7_RESET)?;
        m.write(guest::RSP, 0)?;
        m.write(guest::RIP, st.rip)?;
        m.write(guest::RFLAGS, st.rflags)?;
        for s in [
            SegReg::Es,
            SegReg::Cs,
            SegReg::Ss,
            SegReg::Ds,
            SegReg::Fs,
            SegReg::Gs,
        ] {
            let seg = if s == SegReg::Cs { st.cs } else { st.data };
            let f = guest::segment(s);
            m.write(f.selector, seg.selector)?;
            m.write(f.base, seg.base)?;
            m.write(f.limit, seg.limit)?;
            m.write(f.access_rights, to_vmx_ar(seg.attr))?;
        }
        m.write(guest::LDTR.selector, 0)?;
        m.write(guest::LDTR.base, 0)?;
        m.write(guest::LDTR.limit, 0)?;
        m.write(guest::LDTR.access_rights, ar::UNUSABLE)?;
        m.write(guest::TR.selector, st.tr.selector)?;
        m.write(guest::TR.base, st.tr.base)?;
        m.write(guest::TR.limit, st.tr.limit)?;
        m.write(guest::TR.access_rights, to_vmx_ar(st.tr.attr))?;
        m.write(guest::GDTR_BASE, st.gdt.base)?;
        m.write(guest::GDTR_LIMIT, st.gdt.limit as u32)?;
        m.write(guest::IDTR_BASE, st.idt.base)?;
        m.write(guest::IDTR_LIMIT, st.idt.limit as u32)?;
        m.write(guest::IA32_DEBUGCTL, 0)?;
        m.write(guest::IA32_SYSENTER_CS, 0)?;
        m.write(guest::IA32_SYSENTER_ESP, 0)?;
        m.write(guest::IA32_SYSENTER_EIP, 0)?;
        m.write(guest::IA32_EFER, st.efer)?;
        m.write(guest::IA32_PAT, PAT_RESET)?;
        m.write(guest::ACTIVITY_STATE, ACTIVE)?;
        m.write(guest::INTERRUPTIBILITY, 0)?;
        m.write(guest::PENDING_DEBUG_EXCEPTIONS, 0)?;
        m.write(guest::LINK_POINTER, NO_LINK)?;
        self.regs.gprs = st.gprs;
        if st.efer & EFER_LMA != 0 {
            self.set_long_mode_active(true);
        }
        Ok(())
    }
}
