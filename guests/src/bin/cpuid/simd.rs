//! x87, MMX, 3DNow! and SSE-family instructions a CPUID bit announces (SDM Vol 2; APM
//! Vol 3 and Vol 5): each runs and, where the result is simple to state, gives it. The
//! suite enabled SSE first (CR4.OSFXSR, SDM Vol 3A 13.1.3); the guest is built
//! soft-float, so compiled code keeps nothing in these registers.

use super::{e1c, e1d, expect, faults, gives, l1c, l1d, l7b, runs, shows, Feature, Outcome};
use core::arch::asm;
use janus_guests::rt::fpu::{mxcsr, set_mxcsr};

pub const FEATURES: &[Feature] = &[
    shows("cpuid.fpu", l1d(0), fpu),
    shows("cpuid.mmx", l1d(23), mmx),
    shows("cpuid.fxsr", l1d(24), fxsr),
    shows("cpuid.sse", l1d(25), sse),
    shows("cpuid.sse2", l1d(26), sse2),
    shows("cpuid.sse3", l1c(0), sse3),
    shows("cpuid.pclmulqdq", l1c(1), pclmulqdq),
    shows("cpuid.ssse3", l1c(9), ssse3),
    shows("cpuid.sse4_1", l1c(19), sse41),
    shows("cpuid.sse4_2", l1c(20), sse42),
    shows("cpuid.aes", l1c(25), aes),
    shows("cpuid.sha", l7b(29), sha),
    shows("cpuid.sse4a", e1c(6), sse4a),
    shows("cpuid.misalignsse", e1c(7), misalign_sse),
    shows("cpuid.mmxext", e1d(22), mmxext),
    shows("cpuid.3dnowext", e1d(30), amd3dnowext),
    shows("cpuid.3dnow", e1d(31), amd3dnow),
];

/// FNINIT leaves the x87 control word at 0x037F (SDM Vol 1 8.1.5).
fn fpu() -> Outcome {
    let mut cw = 0u16;
    let p = &mut cw as *mut u16;
    // SAFETY: FNINIT resets the x87 unit; FNSTCW writes the local `cw`.
    let r = runs(|| unsafe { asm!("fninit", "fnstcw word ptr [{}]", in(reg) p, options(nostack)) });
    r.and(|| expect(u64::from(cw), 0x37f))
}

/// PADDD on MM0/MM1, then EMMS.
fn mmx() -> Outcome {
    gives(0x0000_0003_0000_0005, || {
        let r: u64;
        // SAFETY: MMX registers only; EMMS leaves the x87 tags empty again.
        unsafe {
            asm!("movq mm0, {a}", "movq mm1, {b}", "paddd mm0, mm1", "movq {r}, mm0", "emms",
                 a = in(reg) 0x0000_0001_0000_0002u64, b = in(reg) 0x0000_0002_0000_0003u64,
                 r = out(reg) r, options(nostack, nomem))
        };
        r
    })
}

#[repr(C, align(16))]
struct FxArea([u8; 512]);

/// FXSAVE stores MXCSR at byte 24 (SDM Vol 1 10.5.1, Table 10-2); FXRSTOR takes the
/// area back.
fn fxsr() -> Outcome {
    let mut area = FxArea([0; 512]);
    let mut mxcsr = 0u32;
    let (p, m) = (&mut area as *mut FxArea, &mut mxcsr as *mut u32);
    // SAFETY: FXSAVE writes the aligned local area, STMXCSR the local `mxcsr`; FXRSTOR
    // reloads what FXSAVE just stored.
    let r = runs(|| unsafe {
        asm!("fxsave64 [{p}]", "stmxcsr dword ptr [{m}]", "fxrstor64 [{p}]", p = in(reg) p,
             m = in(reg) m, options(nostack))
    });
    let saved = u32::from_le_bytes([area.0[24], area.0[25], area.0[26], area.0[27]]);
    r.and(|| expect(u64::from(saved), u64::from(mxcsr)))
}

/// ADDPS of two zeroed registers.
fn sse() -> Outcome {
    // SAFETY: XMM registers only.
    runs(|| unsafe {
        asm!(
            "xorps xmm0, xmm0",
            "xorps xmm1, xmm1",
            "addps xmm0, xmm1",
            options(nostack, nomem)
        )
    })
}

/// PADDQ: 40 + 2.
fn sse2() -> Outcome {
    gives(42, || {
        let r: u64;
        // SAFETY: XMM registers only.
        unsafe {
            asm!("movq xmm0, {a}", "movq xmm1, {b}", "paddq xmm0, xmm1", "movq {r}, xmm0",
                 a = in(reg) 40u64, b = in(reg) 2u64, r = out(reg) r, options(nostack, nomem))
        };
        r
    })
}

/// MOVDDUP copies the low quadword into the high one.
fn sse3() -> Outcome {
    gives(0x1234_5678_9abc_def0, || {
        let r: u64;
        // SAFETY: XMM registers only.
        unsafe {
            asm!("movq xmm1, {a}", "movddup xmm0, xmm1", "movhlps xmm2, xmm0", "movq {r}, xmm2",
                 a = in(reg) 0x1234_5678_9abc_def0u64, r = out(reg) r, options(nostack, nomem))
        };
        r
    })
}

/// PCLMULQDQ: 3 clmul 3 = 5.
fn pclmulqdq() -> Outcome {
    gives(5, || {
        let r: u64;
        // SAFETY: XMM registers only.
        unsafe {
            asm!("movq xmm0, {a}", "movq xmm1, {a}", "pclmulqdq xmm0, xmm1, 0", "movq {r}, xmm0",
                 a = in(reg) 3u64, r = out(reg) r, options(nostack, nomem))
        };
        r
    })
}

/// PABSD: |-5| = 5 in the low doubleword, 7 stays.
fn ssse3() -> Outcome {
    gives(0x0000_0007_0000_0005, || {
        let r: u64;
        // SAFETY: XMM registers only.
        unsafe {
            asm!("movq xmm1, {a}", "pabsd xmm0, xmm1", "movq {r}, xmm0",
                 a = in(reg) 0x0000_0007_ffff_fffbu64, r = out(reg) r, options(nostack, nomem))
        };
        r
    })
}

/// PINSRD then PEXTRD of dword 2.
fn sse41() -> Outcome {
    gives(0xcafe_f00d, || {
        let r: u32;
        // SAFETY: XMM registers only.
        unsafe {
            asm!("pinsrd xmm0, {a:e}, 2", "pextrd {r:e}, xmm0, 2", a = in(reg) 0xcafe_f00du32,
                 r = out(reg) r, options(nostack, nomem))
        };
        u64::from(r)
    })
}

/// CRC32 (Castagnoli, no inversion) of the byte 1 from 0: the table's entry 1.
fn sse42() -> Outcome {
    gives(0xf26b_8303, || {
        let mut c = 0u32;
        // SAFETY: register-only.
        unsafe {
            asm!("crc32 {c:e}, {b}", c = inout(reg) c, b = in(reg_byte) 1u8,
                 options(nostack, nomem))
        };
        u64::from(c)
    })
}

fn aes() -> Outcome {
    // SAFETY: XMM registers only.
    runs(|| unsafe {
        asm!(
            "xorps xmm0, xmm0",
            "xorps xmm1, xmm1",
            "aesenc xmm0, xmm1",
            "aesenclast xmm0, xmm1",
            options(nostack, nomem)
        )
    })
}

fn sha() -> Outcome {
    // SAFETY: XMM registers only.
    runs(|| unsafe {
        asm!(
            "xorps xmm1, xmm1",
            "xorps xmm2, xmm2",
            "sha1msg1 xmm1, xmm2",
            "sha256msg1 xmm1, xmm2",
            options(nostack, nomem)
        )
    })
}

fn sse4a() -> Outcome {
    // SAFETY: XMM registers only.
    runs(|| unsafe {
        asm!(
            "xorps xmm0, xmm0",
            "xorps xmm1, xmm1",
            "extrq xmm0, xmm1",
            options(nostack, nomem)
        )
    })
}

/// PSHUFW (the MMX extensions) reversing the four words.
fn mmxext() -> Outcome {
    gives(0x0004_0003_0002_0001, || {
        let r: u64;
        // SAFETY: MMX registers only; EMMS after.
        unsafe {
            asm!("movq mm1, {a}", "pshufw mm0, mm1, 0x1b", "movq {r}, mm0", "emms",
                 a = in(reg) 0x0001_0002_0003_0004u64, r = out(reg) r, options(nostack, nomem))
        };
        r
    })
}

/// PSWAPD (0F 0F /r BB) swaps the two doublewords.
fn amd3dnowext() -> Outcome {
    gives(0x2222_2222_1111_1111, || {
        let r: u64;
        // SAFETY: MMX registers only; FEMMS after. Encoded by hand: LLVM no longer
        // assembles 3DNow!.
        unsafe {
            asm!("movq mm1, {a}", ".byte 0x0f, 0x0f, 0xc1, 0xbb", "movq {r}, mm0",
                 ".byte 0x0f, 0x0e", a = in(reg) 0x1111_1111_2222_2222u64, r = out(reg) r,
                 options(nostack, nomem))
        };
        r
    })
}

/// FEMMS (0F 0E).
fn amd3dnow() -> Outcome {
    // SAFETY: empties the MMX state, as EMMS does.
    runs(|| unsafe { asm!(".byte 0x0f, 0x0e", options(nostack, nomem)) })
}

#[repr(C, align(16))]
struct Block([u8; 32]);

static BLOCK: Block = Block([0; 32]);

/// ADDPS from a misaligned operand.
fn addps_misaligned() {
    let p = BLOCK.0.as_ptr().wrapping_add(1);
    // SAFETY: reads 16 bytes inside `BLOCK`; XMM0 only.
    unsafe {
        asm!("xorps xmm0, xmm0", "addps xmm0, xmmword ptr [{}]", in(reg) p,
             options(nostack, readonly))
    }
}

/// AMD's misaligned SSE mode: with MXCSR.MM (bit 17) a misaligned 16-byte operand is
/// taken, without it #GP (APM Vol 4, 1.1.4 and MXCSR).
fn misalign_sse() -> Outcome {
    let old = mxcsr();
    let r = runs(|| set_mxcsr(old | 1 << 17)).and(|| runs(addps_misaligned));
    set_mxcsr(old & !(1 << 17));
    let r = r.and(|| faults(13, addps_misaligned));
    set_mxcsr(old);
    r
}
