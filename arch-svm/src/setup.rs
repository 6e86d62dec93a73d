//! What a new vCPU's VMCB holds before its first VMRUN: the intercepts, its permission
//! maps, ASID and nested page tables, and the guest's initial state (APM Vol 2 15.5,
//! 15.9-15.11, 15.25). Pure: it writes a `Vmcb` wherever that lives.

use crate::caps::SvmCaps;
use crate::vmcb::bits::{np_control, tlb_control, v_intr};
use crate::vmcb::intercept::{cr_write, exceptions, misc1, misc2, DR0_7_READ_WRITE};
use crate::vmcb::{ControlArea, SaveArea, Vmcb, VmcbSegment};
use vmm_core::addr::HostPhys;
use vmm_core::cpu_rules::{dr, efer};
use vmm_core::exit::ALWAYS_INTERCEPTED_EXCEPTIONS;
use vmm_core::vcpu::{DescTable, Gpr, InitialState, Segment};

/// I/O and MSR permission maps: 12 KiB and 8 KiB (APM Vol 2 15.10.1, 15.11).
pub const IOPM_PAGES: usize = 3;
pub const MSRPM_PAGES: usize = 2;

/// CR4 writes exit so that the guest cannot set what CPUID hides (OSXSAVE, VMXE, ...).
pub const INTERCEPT_CR: u32 = cr_write(4);
/// Every MOV to or from a debug register exits: the guest's DR0-DR3 are its vCPU's copy
/// and DR6/DR7 keep their rules (the core checks them).
pub const INTERCEPT_DR: u32 = DR0_7_READ_WRITE;
/// #DB and #AC, whose delivery a guest could make loop inside the CPU.
pub const INTERCEPT_EXCEPTIONS: u32 = exceptions(&ALWAYS_INTERCEPTED_EXCEPTIONS);
/// INVLPGA names any ASID, so a guest's would flush other guests' TLB entries: it exits
/// and gets #UD.
pub const INTERCEPT_MISC1: u32 = misc1::INTR
    | misc1::NMI
    | misc1::SMI
    | misc1::INIT
    | misc1::RDPMC
    | misc1::CPUID
    | misc1::INVD
    | misc1::HLT
    | misc1::INVLPGA
    | misc1::IOIO_PROT
    | misc1::MSR_PROT
    | misc1::SHUTDOWN;
/// VMRUN must be intercepted or VMRUN fails (APM Vol 2 15.5.1).
pub const INTERCEPT_MISC2: u32 = misc2::VMRUN
    | misc2::VMMCALL
    | misc2::VMLOAD
    | misc2::VMSAVE
    | misc2::STGI
    | misc2::CLGI
    | misc2::SKINIT
    | misc2::MONITOR
    | misc2::MWAIT
    | misc2::XSETBV;

/// The PAT at reset: WB, WT, UC-, UC, twice (APM Vol 2 7.8.1).
const PAT_RESET: u64 = 0x0007_0406_0007_0406;

/// The host-physical structures a vCPU's VMCB points at, and its ASID.
pub struct Tables {
    pub iopm: HostPhys,
    pub msrpm: HostPhys,
    /// The nested page tables' root.
    pub n_cr3: HostPhys,
    pub asid: u32,
}

/// Fills a zeroed VMCB for a guest that starts in `st`.
pub fn fill(vmcb: &mut Vmcb, t: &Tables, caps: &SvmCaps, st: &InitialState) {
    control(&mut vmcb.control, t, caps);
    save(&mut vmcb.save, st);
}

fn control(c: &mut ControlArea, t: &Tables, caps: &SvmCaps) {
    c.intercept_cr = INTERCEPT_CR;
    c.intercept_dr = INTERCEPT_DR;
    c.intercept_exceptions = INTERCEPT_EXCEPTIONS;
    c.intercept_misc1 = INTERCEPT_MISC1;
    c.intercept_misc2 = INTERCEPT_MISC2;
    c.iopm_base_pa = t.iopm.0;
    c.msrpm_base_pa = t.msrpm.0;
    c.guest_asid = t.asid;
    // The ASID may have run a released guest before: its TLB entries go at the first
    // VMRUN (APM Vol 2 15.16), only this ASID's where the CPU can (FlushByAsid).
    c.tlb_control = if caps.flush_by_asid {
        tlb_control::FLUSH_ASID
    } else {
        tlb_control::FLUSH_ALL
    };
    c.v_intr = v_intr::V_INTR_MASKING;
    c.np_control = np_control::NP_ENABLE;
    c.n_cr3 = t.n_cr3.0;
}

fn save(s: &mut SaveArea, st: &InitialState) {
    s.cs = seg(st.cs);
    for d in [&mut s.es, &mut s.ss, &mut s.ds, &mut s.fs, &mut s.gs] {
        *d = seg(st.data);
    }
    s.ldtr = VmcbSegment::default();
    s.tr = seg(st.tr);
    s.gdtr = table(st.gdt);
    s.idtr = table(st.idt);
    s.cpl = 0;
    // SVME stays set underneath the guest's EFER (APM Vol 2 15.5.1).
    s.efer = st.efer | efer::SVME;
    s.cr0 = st.cr0;
    s.cr3 = st.cr3;
    s.cr4 = st.cr4;
    s.dr6 = dr::DR6_RESET;
    s.dr7 = dr::DR7_RESET;
    s.rflags = st.rflags;
    s.rip = st.rip;
    s.rsp = 0;
    s.rax = st.gprs.r[Gpr::Rax as usize];
    s.g_pat = PAT_RESET;
}

/// The VMCB's segment attributes are the core's neutral format (see `VmcbSegment`).
fn seg(s: Segment) -> VmcbSegment {
    VmcbSegment {
        selector: s.selector,
        attrib: s.attr,
        limit: s.limit,
        base: s.base,
    }
}

fn table(t: DescTable) -> VmcbSegment {
    VmcbSegment {
        limit: t.limit as u32,
        base: t.base,
        ..Default::default()
    }
}

/// Clears the intercept bits of the core's pass-through MSRs in the MSR permission map
/// (APM Vol 2 15.11): two bits per MSR (read, then write); MSRs 0-0x1FFF at byte 0 and
/// 0xC0000000-0xC0001FFF at byte 0x800, both in the first page. IA32_PAT is left
/// intercepted: with nested paging VMRUN loads the guest's from G_PAT and #VMEXIT keeps it
/// there (APM Vol 2 15.25.8), but QEMU 7.2's do not, so a guest's WRMSR of PAT went to
/// the CPU's own, Janus' and the next guest's (the hostile `snoop` attack read `plant`'s).
/// Intercepted, the guest reads and writes G_PAT through the core (`StateMsr::Pat`);
/// Linux writes it once per CPU at boot.
pub fn msrpm_allow(page: &mut [u64; 512]) {
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
        if m != vmm_core::msr::IA32_PAT {
            clear(m, false);
            clear(m, true);
        }
    }
}
