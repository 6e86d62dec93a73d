//! Virtual-interrupt delivery (SDM Vol 3C chapter 30, revision 084): the local APIC's
//! IRR, ISR, TMR and TPR live in the vCPU's virtual-APIC page
//! ([`vmm_core::devices::apic_page`]), and the CPU takes the requested interrupts from it
//! when the guest can (SDM Vol 3C 30.2: no injection, no interrupt-window exit) and
//! carries out the guest's EOI there (30.1.4: no exit, but for the vectors of the
//! EOI-exit bitmap, which is the page's TMR: a level-triggered vector's EOI must reach
//! the IOAPIC, `VmExit::ApicEoi`).
//!
//! The guest's other accesses to its APIC page exit as before, but as APIC-access exits
//! (the EPT maps the APIC-access page there, `structures::ApicFrames`), which the exit
//! decoder turns back into the nested page faults they replace; an ICR write that is not
//! a self-IPI comes as an APIC-write exit (30.5) with the value in the page.
//! Where the CPU has APIC-register virtualization too (SDM Vol 3C 30.4.2, 30.4.3), the
//! guest's reads of the APIC page come from the page (the local APIC keeps there a copy
//! of what the guest reads, `LocalApic::attach_page`) and its register writes land there
//! and exit trap-like (`VmExit::ApicWrite`): nothing to decode. Only the timer's current
//! count, the PPR and the CMCI entry are read through an APIC-access exit.
//!
//! Before each entry from the dispatcher, RVI and SVI (the guest interrupt status, SDM
//! Vol 3C 25.4.2) are set from the page (the highest vector of IRR and ISR: the model may
//! have changed either since the last exit), and the EOI-exit bitmap from its TMR when
//! that changed.

use super::VmxVcpu;
use crate::controls::{proc1, proc2};
use crate::structures::ApicFrames;
use crate::vmcs::fields::{control, guest};
use crate::vmcs::{AccessError, VmcsAccess};
use core::ptr::NonNull;
use vmm_core::devices::apic_page::{self, ApicPage, PagePtr};
use vmm_core::devices::lapic;
use vmm_core::nested::FrameAllocator;

/// A vCPU's virtual-interrupt delivery, once on.
#[derive(Debug)]
pub(crate) struct VirtualApic {
    page: PagePtr,
    /// The EOI-exit bitmap as last written (vectors 0-63 first).
    eoi_exits: [u64; 4],
    /// The model changed the page since the last entry (`ArchVcpu::virtual_apic_changed`).
    changed: bool,
}

/// The TMR of `page` as the four EOI-exit bitmap fields.
fn tmr_bitmap(page: &ApicPage) -> [u64; 4] {
    core::array::from_fn(|i| {
        let lo = page.reg(apic_page::TMR + 32 * i as u32);
        let hi = page.reg(apic_page::TMR + 32 * i as u32 + 16);
        u64::from(lo) | u64::from(hi) << 32
    })
}

impl<V: VmcsAccess> VmxVcpu<V> {
    /// `ArchVcpu::virtual_interrupts`: the pages, their VMCS fields and the controls.
    pub(crate) fn turn_on_virtual_apic<A: FrameAllocator>(
        &mut self,
        frames: &mut A,
    ) -> Option<PagePtr> {
        if let Some(v) = &self.virtual_apic {
            return Some(v.page);
        }
        if !self.caps.virtual_interrupts() {
            return None;
        }
        let a = ApicFrames::allocate(self.structures.ept_root, frames)?;
        self.structures.apic = Some(a);
        let table = NonNull::from(frames.table(a.virtual_apic));
        // SAFETY: a zeroed 4 KiB-aligned frame of 4 KiB (512 u64), this vCPU's until
        // `release` gives it back (`Structures::free`).
        let page = unsafe { PagePtr::new(table.cast::<ApicPage>()) };
        if let Err(e) = self.write_virtual_apic(&a) {
            self.record(e);
            return None;
        }
        self.virtual_apic = Some(VirtualApic {
            page,
            eoi_exits: [0; 4],
            changed: true,
        });
        Some(page)
    }

    fn write_virtual_apic(&mut self, a: &ApicFrames) -> Result<(), AccessError> {
        let m = &mut self.vmcs;
        m.write(control::VIRTUAL_APIC_ADDR, a.virtual_apic.0)?;
        m.write(control::APIC_ACCESS_ADDR, a.access.0)?;
        m.write(control::TPR_THRESHOLD, 0)?;
        for f in control::EOI_EXIT_BITMAPS {
            m.write(f, 0)?;
        }
        m.write(guest::INTERRUPT_STATUS, 0)?;
        let registers = if self.caps.apic_register_virtualization() {
            proc2::APIC_REGISTER_VIRTUALIZATION
        } else {
            0
        };
        let m = &mut self.vmcs;
        let proc2 = m.read(control::SECONDARY_PROC_BASED)?
            | proc2::VIRTUALIZE_APIC_ACCESSES
            | proc2::VIRTUAL_INTERRUPT_DELIVERY
            | registers;
        m.write(control::SECONDARY_PROC_BASED, proc2)?;
        self.set_proc1(proc1::USE_TPR_SHADOW, true);
        Ok(())
    }

    /// `ArchVcpu::virtual_apic_changed`.
    pub(crate) fn note_virtual_apic_change(&mut self) {
        if let Some(v) = &mut self.virtual_apic {
            v.changed = true;
        }
    }

    /// Before an entry from the dispatcher, when the model changed the page: RVI and SVI
    /// from it, the EOI-exit bitmap from its TMR (the module doc).
    #[inline(always)]
    pub(crate) fn sync_virtual_apic(&mut self) -> Result<(), AccessError> {
        match &mut self.virtual_apic {
            Some(v) if v.changed => v.changed = false,
            _ => return Ok(()),
        }
        self.sync_virtual_apic_now()
    }

    /// Whether the CPU delivers a virtual interrupt at the next entry by itself: RVI's
    /// priority class above VPPR's (SDM Vol 3C 30.2.1), VPPR being VTPR or SVI's class,
    /// whichever is higher (30.1.3), from the guest interrupt status and the page's TPR.
    /// Not while the model changed the page since the last entry: RVI and SVI are
    /// brought up to date by the dispatcher's entry first.
    #[inline(always)]
    pub(crate) fn virtual_interrupt_pending(&self) -> Result<bool, AccessError> {
        let Some(v) = &self.virtual_apic else {
            return Ok(false);
        };
        if v.changed {
            return Ok(false);
        }
        let status = self.vmcs.read(guest::INTERRUPT_STATUS)?;
        let (rvi, svi) = (status as u8, (status >> 8) as u8);
        // SAFETY: this vCPU's own page (`turn_on_virtual_apic`); the guest is out.
        let vtpr = unsafe { v.page.get() }.reg(apic_page::TPR) as u8;
        Ok(lapic::above_priority(
            rvi,
            lapic::processor_priority(vtpr, svi),
        ))
    }

    #[inline(never)]
    fn sync_virtual_apic_now(&mut self) -> Result<(), AccessError> {
        let Some(v) = &self.virtual_apic else {
            return Ok(());
        };
        let (page, was) = (v.page, v.eoi_exits);
        // SAFETY: this vCPU's own page (`turn_on_virtual_apic`); the guest is out.
        let p = unsafe { page.get() };
        let rvi = u16::from(p.highest(apic_page::IRR).unwrap_or(0));
        let svi = u16::from(p.highest(apic_page::ISR).unwrap_or(0));
        let tmr = tmr_bitmap(p);
        self.vmcs.write(guest::INTERRUPT_STATUS, svi << 8 | rvi)?;
        // Word by word: `tmr != was` compiled to a call of memcmp, about 70 instructions
        // of every sync (a Bochs trace of the timer interrupt's round trip).
        if tmr.iter().zip(was).fold(0, |d, (a, b)| d | (a ^ b)) != 0 {
            for (f, bits) in control::EOI_EXIT_BITMAPS.into_iter().zip(tmr) {
                self.vmcs.write(f, bits)?;
            }
            if let Some(v) = &mut self.virtual_apic {
                v.eoi_exits = tmr;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{raw, PRIMARY_PROC_BASED, PROT};
    use super::*;
    use crate::caps::tests::bochs_like;
    use crate::host_state::HostState;
    use crate::structures::{Structures, APIC_ACCESS_GPA};
    use crate::test_frames::{memory, Frames};
    use crate::vmcs::fake::FakeVmcs;
    use vmm_core::addr::GuestPhys;
    use vmm_core::cpu_rules::CpuRules;
    use vmm_core::exit::VmExit;
    use vmm_core::vcpu::ArchVcpu;

    const SECONDARY_PROC_BASED: u32 = 0x401e;
    const VIRTUAL_APIC_ADDR: u32 = 0x2012;
    const APIC_ACCESS_ADDR: u32 = 0x2014;
    const EOI_EXIT0: u32 = 0x201c;
    const EOI_EXIT3: u32 = 0x2022;
    const INTERRUPT_STATUS: u32 = 0x0810;

    /// A loaded vCPU on a fake VMCS whose CPU allows the secondary controls `proc2`.
    fn vcpu(proc2: u32, frames: &mut Frames) -> VmxVcpu<FakeVmcs> {
        let s = Structures::allocate(&memory(), 0x2b, None, frames).unwrap();
        let caps = bochs_like(proc2);
        let rules = CpuRules::for_guest(crate::vcpu::tests::full);
        let mut v = VmxVcpu::setup(
            FakeVmcs::default(),
            caps,
            rules,
            PROT,
            s,
            &HostState::default(),
            frames,
        )
        .unwrap();
        v.load();
        v
    }

    #[test]
    fn virtual_interrupts_turns_on_its_controls_pages_and_mapping_where_the_cpu_has_them() {
        let mut frames = Frames::new(64);
        let mut v = vcpu(0xff | 1 << 9, &mut frames);
        let page = v.virtual_interrupts(&mut frames).expect("VID is there");
        assert_ne!(raw(&v, PRIMARY_PROC_BASED) & 1 << 21, 0, "use TPR shadow");
        let p2 = raw(&v, SECONDARY_PROC_BASED);
        assert_eq!(
            p2 & (1 | 1 << 9),
            1 | 1 << 9,
            "virtualize APIC accesses, VID"
        );
        let a = v.structures.apic.expect("its frames");
        assert_eq!(raw(&v, VIRTUAL_APIC_ADDR), a.virtual_apic.0);
        assert_eq!(raw(&v, APIC_ACCESS_ADDR), a.access.0);
        let root = v.structures.ept_root;
        let gpa = GuestPhys(APIC_ACCESS_GPA);
        assert_eq!(
            vmm_core::nested::translate(root, gpa, &crate::ept::Ept, &mut frames),
            Some(a.access),
            "the EPT maps the APIC-access page at the APIC"
        );
        assert_eq!(v.virtual_interrupts(&mut frames), Some(page), "once");
        assert_eq!(v.access_result(), Ok(()));
        v.release(&mut frames);
        assert_eq!(frames.live(), 0, "every frame given back");
    }

    #[test]
    fn apic_register_virtualization_goes_on_with_it_where_the_cpu_has_it() {
        let mut frames = Frames::new(64);
        let mut v = vcpu(0xff | 1 << 9, &mut frames);
        v.virtual_interrupts(&mut frames).unwrap();
        assert_eq!(raw(&v, SECONDARY_PROC_BASED) & 1 << 8, 0, "not offered");
        v.release(&mut frames);
        let mut v = vcpu(0x3ff, &mut frames);
        v.virtual_interrupts(&mut frames).unwrap();
        assert_ne!(raw(&v, SECONDARY_PROC_BASED) & 1 << 8, 0);
        v.release(&mut frames);
    }

    #[test]
    fn without_it_interrupts_are_injected_as_before() {
        let mut frames = Frames::new(64);
        let mut v = vcpu(0xff, &mut frames);
        let p1 = raw(&v, PRIMARY_PROC_BASED);
        assert_eq!(v.virtual_interrupts(&mut frames), None);
        assert_eq!(raw(&v, PRIMARY_PROC_BASED), p1);
        assert!(v.structures.apic.is_none());
        v.release(&mut frames);
        assert_eq!(frames.live(), 0);
    }

    #[test]
    fn each_entry_takes_rvi_svi_and_the_eoi_exits_from_the_page() {
        let mut frames = Frames::new(64);
        let mut v = vcpu(0xff | 1 << 9, &mut frames);
        let page = v.virtual_interrupts(&mut frames).unwrap();
        {
            // SAFETY: the vCPU's page; nothing runs.
            let p = unsafe { page.get_mut() };
            p.set_reg(apic_page::IRR + 0x20, 1 << 1); // 0x41
            p.set_reg(apic_page::IRR + 0x70, 1 << 31); // 0xff
            p.set_reg(apic_page::ISR + 0x10, 1 << 16); // 0x30
            p.set_reg(apic_page::TMR + 0x10, 1 << 25); // 0x39
            p.set_reg(apic_page::TMR + 0x70, 1 << 31); // 0xff
        }
        v.sync_virtual_apic().unwrap();
        assert_eq!(raw(&v, INTERRUPT_STATUS), 0x30ff, "SVI 0x30, RVI 0xff");
        crate::vcpu::tests::set_raw(&mut v, INTERRUPT_STATUS, 0x1234);
        v.sync_virtual_apic().unwrap();
        assert_eq!(
            raw(&v, INTERRUPT_STATUS),
            0x1234,
            "the CPU's own, with nothing changed by the model"
        );
        assert_eq!(raw(&v, EOI_EXIT0), 1 << 0x39);
        assert_eq!(raw(&v, EOI_EXIT3), 1 << 63);
        // SAFETY: as above.
        unsafe { page.get_mut() }.set_reg(apic_page::IRR + 0x70, 0);
        v.virtual_apic_changed();
        v.sync_virtual_apic().unwrap();
        assert_eq!(raw(&v, INTERRUPT_STATUS), 0x3041);
        v.release(&mut frames);
    }

    #[test]
    fn a_virtual_interrupt_is_pending_when_rvis_class_is_above_vpprs() {
        let mut frames = Frames::new(64);
        let mut v = vcpu(0xff | 1 << 9, &mut frames);
        assert_eq!(v.virtual_interrupt_pending(), Ok(false), "no VID: never");
        let page = v.virtual_interrupts(&mut frames).unwrap();
        v.sync_virtual_apic().unwrap();
        let pending = |v: &mut VmxVcpu<FakeVmcs>, status: u64, tpr: u32| {
            crate::vcpu::tests::set_raw(v, INTERRUPT_STATUS, status);
            // SAFETY: the vCPU's page; nothing runs.
            unsafe { page.get_mut() }.set_reg(apic_page::TPR, tpr);
            v.virtual_interrupt_pending().unwrap()
        };
        assert!(pending(&mut v, 0x0041, 0), "RVI 0x41, nothing in service");
        assert!(!pending(&mut v, 0x0000, 0), "nothing requested");
        assert!(!pending(&mut v, 0x4041, 0), "0x40 in service: same class");
        assert!(pending(&mut v, 0x3041, 0), "0x30 in service: lower class");
        assert!(!pending(&mut v, 0x0041, 0x40), "TPR 0x40 holds it back");
        assert!(pending(&mut v, 0x0051, 0x4f));
        v.virtual_apic_changed();
        assert!(
            !pending(&mut v, 0x0041, 0),
            "the model changed the page: the dispatcher syncs first"
        );
        v.release(&mut frames);
    }

    #[test]
    fn a_hlt_with_a_virtual_interrupt_pending_is_finished_without_the_dispatcher() {
        const HLT: u32 = 12;
        const GUEST_RIP: u32 = 0x681e;
        const GUEST_RFLAGS: u32 = 0x6820;
        let mut frames = Frames::new(64);
        let mut v = vcpu(0xff | 1 << 9, &mut frames);
        let page = v.virtual_interrupts(&mut frames).unwrap();
        // SAFETY: the vCPU's page; nothing runs.
        unsafe { page.get_mut() }.set_reg(apic_page::IRR + 0x20, 1 << 1); // 0x41
        crate::vcpu::tests::exit_with(&mut v, HLT, 0, 1);
        crate::vcpu::tests::set_raw(&mut v, GUEST_RFLAGS, 2 | 1 << 9);
        v.vmcs.reasons = [HLT, HLT, 10].into_iter().collect();
        let rip = raw(&v, GUEST_RIP);
        // The entry syncs RVI 0x41 from the page; each HLT then wakes at once.
        assert_eq!(v.run(), Ok(VmExit::Cpuid));
        assert_eq!(raw(&v, GUEST_RIP), rip + 2, "both completed");
        assert_eq!(
            v.in_place().take_done().hlt,
            2,
            "counted for the dispatcher"
        );
        // Interrupts off: the dispatcher's.
        crate::vcpu::tests::set_raw(&mut v, GUEST_RFLAGS, 2);
        v.vmcs.reasons = [HLT, 10].into_iter().collect();
        assert_eq!(v.run(), Ok(VmExit::Hlt));
        v.release(&mut frames);
    }
}
