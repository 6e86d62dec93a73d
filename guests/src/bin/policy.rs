//! What Janus shows and hides: CPUID (hypervisor bit, signature, VMX/SVM and XSAVE
//! hidden, TSC frequency leaf), MSR policy (unknown MSRs #GP; the architectural ones
//! round-trip), control registers reading back what was written, INVD/WBINVD, CR8.
#![no_std]
#![no_main]

use core::arch::asm;
use janus_guests::rt::idt::{catch_exception, expect_exception};
use janus_guests::rt::x86::*;
use janus_guests::rt::{apic, pc};
use janus_guests::{cpuid, entry, rdmsr, BootInfo, Suite};

entry!(main);

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("policy");
    pc::pic_disable();
    cpuid_policy(&mut s);
    msr_policy(&mut s);
    vendor_msrs(&mut s);
    cr_policy(&mut s);
    s.finish()
}

fn cpuid_policy(s: &mut Suite) {
    let l1 = cpuid(1, 0);
    s.check(
        "policy.cpuid_hypervisor_bit",
        l1[2] & (1 << 31) != 0,
        format_args!("leaf 1 ecx {:#x}: bit 31 clear", l1[2]),
    );
    let hv = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&hv[1].to_le_bytes());
    sig[4..8].copy_from_slice(&hv[2].to_le_bytes());
    sig[8..12].copy_from_slice(&hv[3].to_le_bytes());
    s.check(
        "policy.cpuid_signature",
        &sig == b"JanusJanusHV",
        format_args!(
            "leaf 0x40000000 signature {:?}, expected \"JanusJanusHV\"",
            core::str::from_utf8(&sig).unwrap_or("(not UTF-8)")
        ),
    );
    s.check(
        "policy.cpuid_no_vmx",
        l1[2] & (1 << 5) == 0,
        format_args!("leaf 1 ecx {:#x}: VMX (bit 5) set", l1[2]),
    );
    let e1 = cpuid(0x8000_0001, 0);
    s.check(
        "policy.cpuid_no_svm",
        e1[2] & (1 << 2) == 0,
        format_args!("leaf 0x80000001 ecx {:#x}: SVM (bit 2) set", e1[2]),
    );
    let khz = if hv[0] >= 0x4000_0010 && hv[0] < 0x4000_0100 {
        cpuid(0x4000_0010, 0)[0]
    } else {
        0
    };
    s.check("policy.cpuid_tsc_khz", khz != 0,
        format_args!("leaf 0x40000000 eax {:#x}; leaf 0x40000010 eax (TSC kHz) {}: want max >= 0x40000010 and nonzero", hv[0], khz));
    s.check(
        "policy.cpuid_no_xsave",
        l1[2] & (1 << 26) == 0,
        format_args!("leaf 1 ecx {:#x}: XSAVE (bit 26) set", l1[2]),
    );

    // What CPUID advertises must work: POPCNT (leaf 1 ECX bit 23), which Linux patches in
    // everywhere once it sees the bit.
    if l1[2] & (1 << 23) != 0 {
        let mut n: u64 = 0;
        // SAFETY: the asm touches only the registers it names; a fault is recovered by catch_exception.
        let e = catch_exception(|| unsafe {
            asm!("popcnt {n}, {v}", n = out(reg) n, v = in(reg) 0xf0f0_0000_0000_0101u64)
        });
        s.check("policy.popcnt_works", e.is_none() && n == 10,
            format_args!("POPCNT is advertised; popcnt of 0xf0f0000000000101 gave {} (exception {:?}), want 10", n, e.map(|e| e.vector)));
    } else {
        s.check_note(
            "policy.popcnt_works",
            true,
            format_args!("not advertised"),
            format_args!(""),
        );
    }

    // CR4.OSXSAVE cannot be set without XSAVE: #GP.
    let cr4 = read_cr4();
    let e = expect_exception(13, || write_cr4(cr4 | (1 << 18)));
    let after = read_cr4();
    if after != cr4 {
        write_cr4(cr4);
    }
    s.check(
        "policy.cr4_osxsave_gp",
        e.is_some() && after & (1 << 18) == 0,
        format_args!(
            "mov cr4 with OSXSAVE: {:?}, CR4 after {:#x}; want #GP and the bit clear",
            e.map(|e| e.vector),
            after
        ),
    );
    // SAFETY: the asm touches only the registers it names; a fault is recovered by catch_exception.
    let e = expect_exception(6, || unsafe {
        asm!("xsetbv", in("ecx") 0u32, in("eax") 1u32, in("edx") 0u32)
    });
    s.check(
        "policy.xsetbv_ud",
        e.is_some(),
        format_args!("xsetbv (XCR0 = 1) did not raise #UD"),
    );
}

/// Writes `v` to `msr` and reads it back, restoring the old value.
fn round_trip(s: &mut Suite, name: &str, msr: u32, v: u64) {
    let mut old = 0;
    let mut back = 0;
    let e = catch_exception(|| {
        old = rdmsr(msr);
        wrmsr(msr, v);
        back = rdmsr(msr);
        wrmsr(msr, old);
    });
    s.check(
        name,
        e.is_none() && back == v,
        format_args!(
            "MSR {:#x}: wrote {:#x}, read {:#x}, exception {:?}",
            msr,
            v,
            back,
            e.map(|e| e.vector)
        ),
    );
}

/// The MSRs every CPU of the guest's vendor has: AMD's legacy performance counters
/// (0xC001_0000-7) read 0 and take writes without a PMU, and so do SYSCFG (0xC001_0010,
/// which Linux reads before the fixed-range MTRRs), NB_CFG (0xC001_001F) and the
/// interrupt-pending message register (0xC001_0055); an Intel CPU has none there.
fn vendor_msrs(s: &mut Suite) {
    let amd = matches!(&janus_guests::vendor(), b"AuthenticAMD" | b"HygonGenuine");
    let mut bad = None;
    for msr in (0xc001_0000u32..=0xc001_0007).chain([0xc001_0010, 0xc001_001f, 0xc001_0055]) {
        let mut v = u64::MAX;
        let e_rd = expect_exception(13, || v = rdmsr(msr));
        let e_wr = expect_exception(13, || wrmsr(msr, 0));
        let ok = if amd {
            e_rd.is_none() && e_wr.is_none() && v == 0
        } else {
            e_rd.is_some() && e_wr.is_some()
        };
        if !ok && bad.is_none() {
            bad = Some((msr, v, e_rd.is_some(), e_wr.is_some()));
        }
    }
    s.check(
        "policy.msr_amd_legacy_pmu",
        bad.is_none(),
        format_args!(
            "{} CPU: (msr, value, rdmsr #GP, wrmsr #GP) = {:x?}; want reads of 0 and no #GP on AMD, #GP on Intel",
            if amd { "AMD" } else { "Intel" },
            bad
        ),
    );
    // HWCR reads with TscFreqSel (bit 24) on AMD: Linux warns of a firmware bug without it.
    let mut hwcr = 0;
    let e = catch_exception(|| hwcr = rdmsr(0xc001_0015));
    let ok = if amd {
        e.is_none() && hwcr == 1 << 24
    } else {
        e.map(|e| e.vector) == Some(13)
    };
    s.check(
        "policy.msr_amd_hwcr",
        ok,
        format_args!(
            "HWCR {:#x}, exception {:?}; want 0x1000000 on AMD, #GP on Intel",
            hwcr,
            e.map(|e| e.vector)
        ),
    );
}

fn msr_policy(s: &mut Suite) {
    let e = expect_exception(13, || {
        rdmsr(0x1_2345);
    });
    s.check(
        "policy.msr_unknown_rdmsr_gp",
        e.map(|e| e.error) == Some(0),
        format_args!("rdmsr 0x12345: {:?}, want #GP(0)", e),
    );
    let e = expect_exception(13, || wrmsr(0x1_2345, 0));
    s.check(
        "policy.msr_unknown_wrmsr_gp",
        e.map(|e| e.error) == Some(0),
        format_args!("wrmsr 0x12345: {:?}, want #GP(0)", e),
    );

    let pat = rdmsr(MSR_PAT);
    s.check(
        "policy.pat_reset_value",
        pat == 0x0007_0406_0007_0406,
        format_args!(
            "IA32_PAT {:#x}, want the reset value 0x0007040600070406",
            pat
        ),
    );
    round_trip(s, "policy.pat_round_trip", MSR_PAT, 0x0007_0106_0007_0406);
    round_trip(s, "policy.sysenter_cs", MSR_SYSENTER_CS, 0x10);
    round_trip(
        s,
        "policy.sysenter_esp",
        MSR_SYSENTER_ESP,
        0xffff_8000_1234_5670,
    );
    round_trip(
        s,
        "policy.sysenter_eip",
        MSR_SYSENTER_EIP,
        0xffff_8000_0bad_c0de,
    );
    round_trip(s, "policy.star", MSR_STAR, 0x0023_0010_0000_0000);
    round_trip(s, "policy.lstar", MSR_LSTAR, 0xffff_8000_0010_0000);
    round_trip(s, "policy.cstar", MSR_CSTAR, 0xffff_8000_0020_0000);
    round_trip(s, "policy.fmask", MSR_FMASK, 0x4_7700);
    round_trip(s, "policy.fs_base", MSR_FS_BASE, 0x1234_5000);

    // KERNEL_GS_BASE round trip, then SWAPGS exchanges it with GS base.
    round_trip(
        s,
        "policy.kernel_gs_base",
        MSR_KERNEL_GS_BASE,
        0xffff_8000_dead_b000,
    );
    let gs = gs_base();
    wrmsr(MSR_GS_BASE, 0x1111_0000);
    wrmsr(MSR_KERNEL_GS_BASE, 0x2222_0000);
    // SAFETY: the asm touches only the registers it names; a fault is recovered by catch_exception.
    unsafe { asm!("swapgs", options(nostack, nomem, preserves_flags)) };
    let (g, k) = (rdmsr(MSR_GS_BASE), rdmsr(MSR_KERNEL_GS_BASE));
    // SAFETY: the asm touches only the registers it names; a fault is recovered by catch_exception.
    unsafe { asm!("swapgs", options(nostack, nomem, preserves_flags)) };
    let (g2, k2) = (rdmsr(MSR_GS_BASE), rdmsr(MSR_KERNEL_GS_BASE));
    wrmsr(MSR_GS_BASE, gs);
    wrmsr(MSR_KERNEL_GS_BASE, 0);
    s.check("policy.swapgs", g == 0x2222_0000 && k == 0x1111_0000 && g2 == 0x1111_0000 && k2 == 0x2222_0000,
        format_args!("GS 0x11110000 / KERNEL_GS 0x22220000; after swapgs {:#x}/{:#x}, after the second {:#x}/{:#x}", g, k, g2, k2));

    let efer = rdmsr(MSR_EFER);
    let nx = cpuid(0x8000_0001, 0)[3] & (1 << 20) != 0;
    if nx {
        round_trip(s, "policy.efer_nxe", MSR_EFER, efer ^ (1 << 11));
    }

    let mut prev = rdtsc();
    let mut mono = true;
    for _ in 0..1000 {
        let t = rdtsc();
        mono &= t > prev;
        prev = t;
    }
    s.check(
        "policy.tsc_monotonic",
        mono,
        format_args!("1000 back-to-back RDTSCs were not strictly increasing"),
    );
    let m = rdmsr(MSR_TSC);
    let t = rdtsc();
    s.check(
        "policy.tsc_msr_read",
        m >= prev && t >= m,
        format_args!(
            "IA32_TSC {:#x}, want between RDTSC {:#x} and {:#x}",
            m, prev, t
        ),
    );
    // Writing IA32_TSC moves the counter.
    let target = rdtsc().wrapping_add(1 << 36);
    wrmsr(MSR_TSC, target);
    let t = rdtsc();
    s.check(
        "policy.tsc_write",
        t >= target && t - target < 1 << 34,
        format_args!("wrote IA32_TSC {:#x}, RDTSC then read {:#x}", target, t),
    );

    let base = rdmsr(MSR_APIC_BASE);
    s.check(
        "policy.apic_base",
        base == 0xfee0_0900,
        format_args!(
            "IA32_APIC_BASE {:#x}, want 0xfee00900 (BSP, enabled, xAPIC)",
            base
        ),
    );
    // Linux's microcode-revision probe: WRMSR 0 to IA32_BIOS_SIGN_ID, CPUID, RDMSR.
    let mut rev = u64::MAX;
    let e = catch_exception(|| {
        wrmsr(0x8b, 0);
        cpuid(1, 0);
        rev = rdmsr(0x8b);
    });
    s.check(
        "policy.bios_sign_id_probe",
        e.is_none() && rev == 0,
        format_args!(
            "wrmsr/cpuid/rdmsr of IA32_BIOS_SIGN_ID: {:?}, read {:#x}; want no fault, 0",
            e.map(|e| e.vector),
            rev
        ),
    );
    let mut fc = 0;
    let e = catch_exception(|| fc = rdmsr(MSR_FEATURE_CONTROL));
    s.check("policy.feature_control_locked", e.is_none() && fc & 0x7 == 0x1,
        format_args!("IA32_FEATURE_CONTROL {:#x} exception {:?}: want locked (bit 0) with VMX off (bits 1, 2 clear)", fc, e.map(|e| e.vector)));
}

fn cr_policy(s: &mut Suite) {
    let cr0 = read_cr0();
    write_cr0(cr0 | (1 << 18));
    let am = read_cr0();
    write_cr0(cr0 & !(1 << 16));
    let nowp = read_cr0();
    write_cr0(cr0);
    let back = read_cr0();
    s.check(
        "policy.cr0_round_trip",
        am == cr0 | (1 << 18) && nowp == cr0 & !(1 << 16) && back == cr0,
        format_args!(
            "CR0 {:#x}: with AM {:#x}, without WP {:#x}, restored {:#x}",
            cr0, am, nowp, back
        ),
    );

    let cr4 = read_cr4();
    let mut bad = None;
    for bit in [7u32, 9, 10, 2] {
        let want = cr4 | (1 << bit);
        write_cr4(want);
        let r = read_cr4();
        write_cr4(cr4);
        let r0 = read_cr4();
        if r != want || r0 != cr4 {
            bad = Some((bit, want, r, r0));
        }
    }
    s.check(
        "policy.cr4_round_trip",
        bad.is_none(),
        format_args!(
            "CR4 {:#x}: (bit, wrote, read, restored) = {:x?}; bits PGE, OSFXSR, OSXMMEXCPT, TSD",
            cr4, bad
        ),
    );

    let e = catch_exception(|| {
        wbinvd();
        invd();
    });
    s.check(
        "policy.invd_wbinvd",
        e.is_none(),
        format_args!("WBINVD/INVD raised {:?}", e),
    );

    apic::enable();
    write_cr8(5);
    let c8 = read_cr8();
    let tpr = apic::read(apic::TPR);
    write_cr8(0);
    let c0 = read_cr8();
    s.check(
        "policy.cr8_round_trip",
        c8 == 5 && c0 == 0,
        format_args!("CR8 wrote 5 read {}, wrote 0 read {}", c8, c0),
    );
    s.check(
        "policy.cr8_is_tpr",
        tpr & 0xf0 == 0x50,
        format_args!("CR8 = 5 but TPR reads {:#x}, want 0x5_", tpr),
    );
}
