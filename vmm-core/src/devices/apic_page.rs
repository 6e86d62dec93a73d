//! Where a local APIC keeps the state the CPU may handle itself: the interrupt request,
//! in-service and trigger-mode registers (IRR, ISR, TMR), the task priority (TPR) and
//! the ICR (where VT-x stores a self-IPI it carries out, SDM Vol 3C 30.5, and the
//! destination the guest writes before it).
//! In the model ([`Vectors`]), or in a register page in the architectural layout (Intel
//! SDM Vol 3A 11.4.1 Table 11-1, revision 084: each 32-bit register at a 16-byte-aligned
//! offset of a 4 KiB page) that a backend attached ([`IrqState::attach`]): VT-x's
//! virtual-APIC page (SDM Vol 3C 30.1, revision 084) has that layout, and with
//! virtual-interrupt delivery the CPU itself moves a vector from IRR to ISR when the
//! guest takes it and clears it from the ISR at the guest's EOI, without an exit (SDM
//! Vol 3C 30.2, 30.1.4); AMD's AVIC backing page has it too (APM Vol 2 15.29.3). While
//! a page is attached it is the only copy: the CPU and the model read and write the
//! same words, one after the other on the one host CPU that runs the vCPU (a guest whose
//! vCPUs run on several gets no page: another CPU's IPI would write it while the guest
//! runs).

use super::vectors::Vectors;
use core::ptr::NonNull;

/// A local APIC's register page (4 KiB, 4 KiB-aligned, as VT-x requires of the
/// virtual-APIC page, SDM Vol 3C 25.6.8).
#[repr(C, align(4096))]
pub struct ApicPage {
    regs: [u32; 1024],
}

const _: () = assert!(core::mem::size_of::<ApicPage>() == 4096);
const _: () = assert!(core::mem::align_of::<ApicPage>() == 4096);

/// Register offsets in the page (Table 11-1).
pub const TPR: u32 = 0x080;
pub const ISR: u32 = 0x100;
pub const TMR: u32 = 0x180;
pub const IRR: u32 = 0x200;
pub const ICR_LOW: u32 = 0x300;
pub const ICR_HIGH: u32 = 0x310;

impl ApicPage {
    /// The 32-bit register at `offset` (its low 4 bits are ignored).
    pub fn reg(&self, offset: u32) -> u32 {
        self.regs[(offset as usize & 0xff0) / 4]
    }

    pub fn set_reg(&mut self, offset: u32, v: u32) {
        self.regs[(offset as usize & 0xff0) / 4] = v;
    }

    /// The highest vector set in the 256-bit register at `base` (IRR, ISR or TMR).
    pub fn highest(&self, base: u32) -> Option<u8> {
        (0..8u32).rev().find_map(|i| {
            let w = self.reg(base + 16 * i);
            (w != 0).then(|| (i * 32 + 31 - w.leading_zeros()) as u8)
        })
    }

    fn vectors(&self, base: u32) -> Vectors {
        let mut v = Vectors::new();
        for i in 0..8 {
            v.set_word(i, self.reg(base + 16 * i as u32));
        }
        v
    }

    fn set_vectors(&mut self, base: u32, v: &Vectors) {
        for i in 0..8 {
            self.set_reg(base + 16 * i as u32, v.word(i));
        }
    }

    fn set_bit(&mut self, base: u32, vector: u8, on: bool) {
        let at = base + 16 * (vector as u32 / 32);
        let bit = 1 << (vector % 32);
        let w = self.reg(at);
        self.set_reg(at, if on { w | bit } else { w & !bit });
    }
}

/// Where a backend's register page is: the backend keeps it (and gives it back with its
/// vCPU), the local APIC it is attached to and the CPU use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagePtr(NonNull<ApicPage>);

// SAFETY: a page is used only on the host CPU that runs its vCPU (the module doc); the
// VM its APIC is part of moves between CPUs only before its vCPUs exist.
unsafe impl Send for PagePtr {}

impl PagePtr {
    /// # Safety
    /// `page` must point at a zeroed or otherwise valid `ApicPage` that stays valid as
    /// long as this pointer (or a copy) is used.
    pub unsafe fn new(page: NonNull<ApicPage>) -> Self {
        PagePtr(page)
    }

    /// # Safety
    /// The page must still be valid and nothing may write it meanwhile (on this host CPU
    /// only Janus runs while it reads it: the guest is out).
    pub unsafe fn get(&self) -> &ApicPage {
        // SAFETY: the caller's contract.
        unsafe { self.0.as_ref() }
    }

    /// # Safety
    /// As [`PagePtr::get`], and no other reference to the page is live.
    #[allow(clippy::mut_from_ref)] // The page is the CPU's and Janus' in turn, not Rust's.
    pub unsafe fn get_mut(&self) -> &mut ApicPage {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.0.as_ptr() }
    }
}

/// One of the three 256-bit registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VecReg {
    Irr,
    Isr,
    Tmr,
}

impl VecReg {
    fn base(self) -> u32 {
        match self {
            VecReg::Irr => IRR,
            VecReg::Isr => ISR,
            VecReg::Tmr => TMR,
        }
    }
}

/// IRR, ISR, TMR and TPR, in the model or in an attached page (the module doc).
#[derive(Clone, Debug, Default)]
pub struct IrqState {
    tpr: u8,
    irr: Vectors,
    isr: Vectors,
    tmr: Vectors,
    icr_low: u32,
    icr_high: u32,
    page: Option<PagePtr>,
    /// The model wrote the attached page since [`IrqState::take_changes`].
    changed: bool,
}

impl IrqState {
    #[inline]
    fn own(&self, r: VecReg) -> &Vectors {
        match r {
            VecReg::Irr => &self.irr,
            VecReg::Isr => &self.isr,
            VecReg::Tmr => &self.tmr,
        }
    }

    #[inline]
    fn own_mut(&mut self, r: VecReg) -> &mut Vectors {
        match r {
            VecReg::Irr => &mut self.irr,
            VecReg::Isr => &mut self.isr,
            VecReg::Tmr => &mut self.tmr,
        }
    }

    #[inline]
    fn page(&self) -> Option<&ApicPage> {
        // SAFETY: attached pages outlive their attachment (`attach`'s contract) and are
        // touched by nothing else while Janus runs on this CPU.
        self.page.as_ref().map(|p| unsafe { p.get() })
    }

    /// The attached page, to write: the change is noted ([`IrqState::take_changes`]).
    #[inline]
    fn page_mut(&mut self) -> Option<&mut ApicPage> {
        let p = self.page.as_ref()?;
        self.changed = true;
        // SAFETY: as in `page`; `&mut self` is the only way to this attachment.
        Some(unsafe { p.get_mut() })
    }

    /// Whether the model wrote the attached page since the last call.
    #[inline]
    pub fn take_changes(&mut self) -> bool {
        core::mem::take(&mut self.changed)
    }

    #[inline]
    pub fn icr_low(&self) -> u32 {
        match self.page() {
            Some(p) => p.reg(ICR_LOW),
            None => self.icr_low,
        }
    }

    #[inline]
    pub fn set_icr_low(&mut self, v: u32) {
        match self.page_mut() {
            Some(p) => p.set_reg(ICR_LOW, v),
            None => self.icr_low = v,
        }
    }

    #[inline]
    pub fn icr_high(&self) -> u32 {
        match self.page() {
            Some(p) => p.reg(ICR_HIGH),
            None => self.icr_high,
        }
    }

    #[inline]
    pub fn set_icr_high(&mut self, v: u32) {
        match self.page_mut() {
            Some(p) => p.set_reg(ICR_HIGH, v),
            None => self.icr_high = v,
        }
    }

    /// The highest vector set in `r`.
    #[inline]
    pub fn highest(&self, r: VecReg) -> Option<u8> {
        match self.page() {
            Some(p) => p.highest(r.base()),
            None => self.own(r).highest(),
        }
    }

    #[inline]
    pub fn test(&self, r: VecReg, vector: u8) -> bool {
        self.word(r, vector as usize / 32) & (1 << (vector % 32)) != 0
    }

    #[inline]
    pub fn set(&mut self, r: VecReg, vector: u8, on: bool) {
        match self.page_mut() {
            Some(p) => p.set_bit(r.base(), vector, on),
            None => self.own_mut(r).set(vector, on),
        }
    }

    /// Register `i` of `r` (vectors 32i to 32i+31), as the guest reads it.
    #[inline]
    pub fn word(&self, r: VecReg, i: usize) -> u32 {
        match self.page() {
            Some(p) => p.reg(r.base() + 16 * i as u32),
            None => self.own(r).word(i),
        }
    }

    /// The ISR, TMR or IRR word at page offset `offset` (100H to 270H), as the guest
    /// reads it.
    pub fn vector_word(&self, offset: u32) -> u32 {
        let (r, base) = match offset {
            ISR..=0x170 => (VecReg::Isr, ISR),
            TMR..=0x1f0 => (VecReg::Tmr, TMR),
            _ => (VecReg::Irr, IRR),
        };
        self.word(r, ((offset - base) >> 4) as usize)
    }

    #[inline]
    pub fn tpr(&self) -> u8 {
        match self.page() {
            Some(p) => p.reg(TPR) as u8,
            None => self.tpr,
        }
    }

    #[inline]
    pub fn set_tpr(&mut self, v: u8) {
        match self.page_mut() {
            Some(p) => p.set_reg(TPR, v as u32),
            None => self.tpr = v,
        }
    }

    /// Everything clear (RESET, INIT), where it lives.
    pub fn clear(&mut self) {
        self.set_tpr(0);
        self.set_icr_low(0);
        self.set_icr_high(0);
        let none = Vectors::new();
        match self.page_mut() {
            Some(p) => [IRR, ISR, TMR].map(|b| p.set_vectors(b, &none)),
            None => [VecReg::Irr, VecReg::Isr, VecReg::Tmr].map(|r| *self.own_mut(r) = none),
        };
    }

    /// From now on the state lives in `page`, which gets it (the rest of the page is left
    /// as it is). Replaces a page attached before, whose state it takes first.
    ///
    /// # Safety
    /// `page` must stay valid, and be written by nothing but this state and the CPU
    /// running its vCPU on this host CPU, until [`IrqState::detach`].
    pub unsafe fn attach(&mut self, page: PagePtr) {
        self.detach();
        // SAFETY: the caller's contract.
        let p = unsafe { page.get_mut() };
        p.set_reg(TPR, self.tpr as u32);
        p.set_reg(ICR_LOW, self.icr_low);
        p.set_reg(ICR_HIGH, self.icr_high);
        p.set_vectors(IRR, &self.irr);
        p.set_vectors(ISR, &self.isr);
        p.set_vectors(TMR, &self.tmr);
        self.page = Some(page);
        self.changed = true;
    }

    /// The state comes back from the attached page, if any, which is no longer used.
    pub fn detach(&mut self) {
        let Some(p) = self.page() else { return };
        let (tpr, icr, irr, isr, tmr) = (
            p.reg(TPR) as u8,
            (p.reg(ICR_LOW), p.reg(ICR_HIGH)),
            p.vectors(IRR),
            p.vectors(ISR),
            p.vectors(TMR),
        );
        (self.tpr, (self.icr_low, self.icr_high)) = (tpr, icr);
        (self.irr, self.isr, self.tmr) = (irr, isr, tmr);
        self.page = None;
        self.changed = false;
    }

    /// Writes register `offset` of the attached page, if any, without noting a change:
    /// for registers the CPU only reads (the page's copy of the model's others).
    pub fn mirror_reg(&mut self, offset: u32, v: u32) {
        if let Some(p) = &self.page {
            // SAFETY: as in `page_mut`.
            unsafe { p.get_mut() }.set_reg(offset, v);
        }
    }

    /// Whether a page is attached.
    pub fn attached(&self) -> bool {
        self.page.is_some()
    }

    /// The attached page's register at `offset`, if a page is attached.
    pub fn page_reg(&self, offset: u32) -> Option<u32> {
        self.page().map(|p| p.reg(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    fn page() -> Box<ApicPage> {
        Box::new(ApicPage { regs: [0; 1024] })
    }

    fn some_state() -> IrqState {
        let mut s = IrqState::default();
        s.set(VecReg::Irr, 0x41, true);
        s.set(VecReg::Irr, 0xfe, true);
        s.set(VecReg::Isr, 0x30, true);
        s.set(VecReg::Tmr, 0xfe, true);
        s.set_tpr(0x25);
        s
    }

    #[test]
    fn an_attached_page_holds_the_state_at_the_architectural_offsets() {
        let mut s = some_state();
        let mut p = page();
        // SAFETY: the box outlives the attachment (detached below).
        unsafe { s.attach(PagePtr::new(NonNull::from(&mut *p))) };
        let regs = &p.regs;
        assert_eq!(regs[0x80 / 4], 0x25, "TPR at 080H");
        assert_eq!(
            regs[0x200 / 4 + 4 * 2],
            1 << 1,
            "IRR word 2 (vectors 64-95) at 220H"
        );
        assert_eq!(regs[0x200 / 4 + 4 * 7], 1 << 30, "IRR word 7 at 270H");
        assert_eq!(regs[0x110 / 4], 1 << 16, "ISR word 1 at 110H");
        assert_eq!(regs[0x180 / 4 + 4 * 7], 1 << 30, "TMR word 7 at 1F0H");
        s.detach();
    }

    #[test]
    fn what_the_cpu_does_in_the_page_is_the_models_state_and_comes_back_at_detach() {
        let mut s = some_state();
        let mut p = page();
        let at = NonNull::from(&mut *p);
        // SAFETY: the box outlives the attachment.
        unsafe { s.attach(PagePtr::new(at)) };
        // The CPU delivers 0xfe (IRR to ISR) and the guest raises its TPR, without an exit.
        // SAFETY: nothing else touches the page meanwhile (the CPU's part, in a test).
        let cpu = unsafe { &mut *at.as_ptr() };
        cpu.set_bit(IRR, 0xfe, false);
        cpu.set_bit(ISR, 0xfe, true);
        cpu.set_reg(TPR, 0x40);
        assert_eq!(s.highest(VecReg::Irr), Some(0x41));
        assert_eq!(s.highest(VecReg::Isr), Some(0xfe));
        assert_eq!(s.tpr(), 0x40);
        s.set(VecReg::Irr, 0x50, true);
        assert_eq!(cpu.highest(IRR), Some(0x50), "the model writes the page");
        s.detach();
        cpu.set_reg(TPR, 0);
        assert_eq!(
            (s.tpr(), s.highest(VecReg::Irr), s.highest(VecReg::Isr)),
            (0x40, Some(0x50), Some(0xfe)),
            "detached, the model has what the page had"
        );
        assert!(s.test(VecReg::Tmr, 0xfe) && !s.test(VecReg::Tmr, 0x41));
    }

    #[test]
    fn the_models_writes_to_the_page_are_noted_and_the_cpus_are_not() {
        let mut s = some_state();
        let mut p = page();
        let at = NonNull::from(&mut *p);
        // SAFETY: the box outlives the attachment.
        unsafe { s.attach(PagePtr::new(at)) };
        assert!(s.take_changes(), "attached: the CPU has a new page");
        assert!(!s.take_changes(), "taken");
        let _ = (s.highest(VecReg::Irr), s.tpr(), s.icr_low());
        assert!(!s.take_changes(), "reads change nothing");
        // SAFETY: the CPU's part, in a test.
        unsafe { &mut *at.as_ptr() }.set_bit(IRR, 0x60, true);
        assert!(!s.take_changes(), "the CPU's own writes are its business");
        s.set(VecReg::Isr, 0x30, false);
        assert!(s.take_changes());
        s.set_icr_low(0x4_0045);
        assert_eq!((s.take_changes(), p_reg(at, ICR_LOW)), (true, 0x4_0045));
        s.detach();
        assert_eq!(s.icr_low(), 0x4_0045);
        s.set_tpr(1);
        assert!(!s.take_changes(), "detached: no page to change");
    }

    fn p_reg(at: NonNull<ApicPage>, offset: u32) -> u32 {
        // SAFETY: the test's page, alive.
        unsafe { at.as_ref() }.reg(offset)
    }

    #[test]
    fn clear_clears_where_the_state_lives() {
        let mut s = some_state();
        let mut p = page();
        // SAFETY: the box outlives the attachment.
        unsafe { s.attach(PagePtr::new(NonNull::from(&mut *p))) };
        s.clear();
        assert_eq!(p.highest(IRR), None);
        assert_eq!(
            (p.highest(ISR), p.highest(TMR), p.reg(TPR)),
            (None, None, 0)
        );
        s.detach();
        assert_eq!(s.highest(VecReg::Irr), None);
    }
}
