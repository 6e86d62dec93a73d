//! Features Janus hides, checked for consistency when CPUID does not show them: their
//! instructions raise #UD and their CR4/EFER bits and MSRs #GP, as on a CPU without them
//! (SDM Vol 3A 2.5 for CR4, Vol 2 for each instruction's exceptions; APM Vol 2 3.1.7 for
//! EFER).

use super::{e1c, expect, faults, hides, l1c, l1d, l7b, l7c, Feature, Outcome};
use core::arch::asm;
use janus_guests::rdmsr;
use janus_guests::rt::x86::{read_cr4, write_cr4, wrmsr, MSR_EFER};

pub const FEATURES: &[Feature] = &[
    hides("cpuid.no_vmx", l1c(5), no_vmx),
    hides("cpuid.no_svm", e1c(2), no_svm),
    hides("cpuid.no_xsave", l1c(26), no_xsave),
    hides("cpuid.no_avx", l1c(28), no_avx),
    hides("cpuid.no_monitor", l1c(3), no_monitor),
    hides("cpuid.no_monitorx", e1c(29), no_monitorx),
    hides("cpuid.no_pcid", l1c(17), no_pcid),
    hides("cpuid.no_umip", l7c(2), no_umip),
    hides("cpuid.no_mce", l1d(7), no_mce),
    hides("cpuid.no_mca", l1d(14), no_mca),
    hides("cpuid.no_pdcm", l1c(15), no_pdcm),
    hides("cpuid.no_ds", l1d(21), no_ds),
    hides("cpuid.no_invpcid", l7b(10), no_invpcid),
    hides("cpuid.no_tce", e1c(17), no_tce),
    hides("cpuid.no_perfctr_core", e1c(23), no_perfctr_core),
];

/// Setting bit `bit` of CR4 raises #GP and leaves CR4 as it was.
fn cr4_refuses(bit: u32) -> Outcome {
    let before = read_cr4();
    let r = faults(13, || write_cr4(before | 1 << bit));
    let after = read_cr4();
    write_cr4(before);
    r.and(|| expect(after, before))
}

/// Setting bit `bit` of EFER raises #GP and leaves EFER as it was.
fn efer_refuses(bit: u32) -> Outcome {
    let before = rdmsr(MSR_EFER);
    let r = faults(13, || wrmsr(MSR_EFER, before | 1 << bit));
    let after = rdmsr(MSR_EFER);
    r.and(|| expect(after, before))
}

fn no_rdmsr(msr: u32) -> Outcome {
    faults(13, || {
        rdmsr(msr);
    })
}

fn no_vmx() -> Outcome {
    cr4_refuses(13)
}

fn no_svm() -> Outcome {
    efer_refuses(12)
}

/// No CR4.OSXSAVE, XGETBV raises #UD, and leaf 0xD is empty.
fn no_xsave() -> Outcome {
    let leaf_d = if janus_guests::cpuid(0, 0)[0] >= 0xd {
        janus_guests::cpuid(0xd, 0)
    } else {
        [0; 4]
    };
    cr4_refuses(18)
        .and(xgetbv_ud)
        .and(|| expect(u64::from(leaf_d.iter().any(|&r| r != 0)), 0))
}

fn xgetbv_ud() -> Outcome {
    // SAFETY: raises #UD, caught.
    faults(6, || unsafe {
        asm!("xgetbv", in("ecx") 0, out("eax") _, out("edx") _, options(nostack, nomem))
    })
}

/// A VEX-encoded instruction raises #UD with CR4.OSXSAVE clear (SDM Vol 2A 2.8).
fn no_avx() -> Outcome {
    // SAFETY: raises #UD, caught.
    faults(6, || unsafe {
        asm!("vpxor xmm0, xmm0, xmm0", options(nostack, nomem))
    })
}

static LINE: [u8; 64] = [0; 64];

/// MONITOR raises #UD (Janus intercepts it and answers as a CPU without it).
fn no_monitor() -> Outcome {
    // SAFETY: raises #UD, caught.
    faults(6, || unsafe {
        asm!("monitor", in("rax") &LINE, in("ecx") 0, in("edx") 0, options(nostack))
    })
}

/// MONITORX (0F 01 FA) raises #UD.
fn no_monitorx() -> Outcome {
    // SAFETY: raises #UD, caught.
    faults(6, || unsafe {
        asm!(".byte 0x0f, 0x01, 0xfa", in("rax") &LINE, in("ecx") 0, in("edx") 0,
             options(nostack))
    })
}

fn no_pcid() -> Outcome {
    cr4_refuses(17)
}

fn no_umip() -> Outcome {
    cr4_refuses(11)
}

fn no_mce() -> Outcome {
    cr4_refuses(6)
}

/// IA32_MCG_CAP (0x179).
fn no_mca() -> Outcome {
    no_rdmsr(0x179)
}

/// IA32_PERF_CAPABILITIES (0x345).
fn no_pdcm() -> Outcome {
    no_rdmsr(0x345)
}

/// IA32_DS_AREA (0x600).
fn no_ds() -> Outcome {
    no_rdmsr(0x600)
}

#[repr(C, align(16))]
struct Descriptor([u64; 2]);

/// INVPCID raises #UD.
fn no_invpcid() -> Outcome {
    let d = Descriptor([0, 0]);
    // SAFETY: raises #UD, caught (type 2 would flush every non-global translation).
    faults(6, || unsafe {
        asm!("invpcid {t}, xmmword ptr [{d}]", t = in(reg) 2u64, d = in(reg) &d, options(nostack))
    })
}

/// EFER.TCE (bit 15) raises #GP.
fn no_tce() -> Outcome {
    efer_refuses(15)
}

/// AMD's core performance counters (PERF_CTL0 at 0xC001_0200).
fn no_perfctr_core() -> Outcome {
    no_rdmsr(0xc001_0200)
}
