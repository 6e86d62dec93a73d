//! General-purpose instructions a CPUID bit announces (SDM Vol 2, each instruction's
//! "CPUID Feature Flag"; APM Vol 3): each runs and gives the architected result.

use super::{e1c, gives, l1c, l1d, l7b, runs, shows, Feature, Outcome};
use core::arch::asm;

pub const FEATURES: &[Feature] = &[
    shows("cpuid.cx8", l1d(8), cmpxchg8b),
    shows("cpuid.cmov", l1d(15), cmov),
    shows("cpuid.cx16", l1c(13), cmpxchg16b),
    shows("cpuid.movbe", l1c(22), movbe),
    shows("cpuid.popcnt", l1c(23), popcnt),
    shows("cpuid.rdrand", l1c(30), rdrand),
    shows("cpuid.clflush", l1d(19), clflush),
    shows("cpuid.bmi1", l7b(3), bmi1),
    shows("cpuid.bmi2", l7b(8), bmi2),
    shows("cpuid.erms", l7b(9), erms),
    shows("cpuid.rdseed", l7b(18), rdseed),
    shows("cpuid.adx", l7b(19), adx),
    shows("cpuid.clflushopt", l7b(23), clflushopt),
    shows("cpuid.clwb", l7b(24), clwb),
    shows("cpuid.lahf_lm", e1c(0), lahf_sahf),
    shows("cpuid.lzcnt", e1c(5), lzcnt),
    shows("cpuid.prefetchw", e1c(8), prefetchw),
    shows("cpuid.tbm", e1c(21), tbm),
];

fn cmov() -> Outcome {
    gives(7, || {
        let r: u64;
        // SAFETY: register-only arithmetic; a fault is caught by catch_exception.
        unsafe {
            asm!("xor {r:e}, {r:e}", "mov {t:e}, 7", "test {r:e}, {r:e}", "cmovz {r}, {t}",
                 r = out(reg) r, t = out(reg) _, options(nostack, nomem))
        };
        r
    })
}

/// CMPXCHG8B: EDX:EAX matches, so ECX:EBX is stored and ZF set.
fn cmpxchg8b() -> Outcome {
    let mut m = 0x0000_0002_0000_0001u64;
    let p = &mut m as *mut u64;
    let r = gives(1, || {
        let z: u64;
        // SAFETY: CMPXCHG8B on a local; RBX (reserved by LLVM) is swapped in and out.
        unsafe {
            asm!("xchg {b}, rbx", "lock cmpxchg8b qword ptr [{p}]", "xchg {b}, rbx", "setz {z:l}",
                 "movzx {z:e}, {z:l}",
                 p = in(reg) p, b = inout(reg) 0x33u64 => _, z = out(reg) z,
                 inout("eax") 1u32 => _, inout("edx") 2u32 => _, in("ecx") 0x44u32,
                 options(nostack))
        };
        z
    });
    r.and(|| super::expect(m, 0x0000_0044_0000_0033))
}

#[repr(C, align(16))]
struct Pair([u64; 2]);

fn cmpxchg16b() -> Outcome {
    let mut m = Pair([1, 2]);
    let p = &mut m as *mut Pair;
    let r = gives(1, || {
        let lo: u64;
        // SAFETY: CMPXCHG16B on a 16-byte aligned local; RBX (reserved by LLVM) is
        // swapped in and out around it.
        unsafe {
            asm!("xchg {b}, rbx", "lock cmpxchg16b xmmword ptr [{p}]", "xchg {b}, rbx", "setz {z:l}",
                 "movzx {z:e}, {z:l}",
                 p = in(reg) p, b = inout(reg) 0x33u64 => _, z = out(reg) lo,
                 inout("rax") 1u64 => _, inout("rdx") 2u64 => _, in("rcx") 0x44u64,
                 options(nostack))
        };
        lo
    });
    r.and(|| super::expect(m.0[0] << 8 | m.0[1], 0x3344))
}

fn movbe() -> Outcome {
    let v: u32 = 0x1122_3344;
    gives(0x4433_2211, || {
        let r: u32;
        // SAFETY: reads the local `v`.
        unsafe {
            asm!("movbe {r:e}, dword ptr [{p}]", r = out(reg) r, p = in(reg) &v,
                 options(nostack, readonly))
        };
        u64::from(r)
    })
}

fn popcnt() -> Outcome {
    gives(10, || {
        let n: u64;
        // SAFETY: register-only.
        unsafe {
            asm!("popcnt {n}, {v}", n = out(reg) n, v = in(reg) 0xf0f0_0000_0000_0101u64,
                 options(nostack, nomem))
        };
        n
    })
}

/// RDRAND or RDSEED (`seed`) sets CF within a few tries (SDM Vol 1 7.3.17).
fn random(seed: bool) -> Outcome {
    gives(1, || {
        let mut ok = 0u64;
        for _ in 0..100 {
            let c: u8;
            // SAFETY: register-only.
            unsafe {
                if seed {
                    asm!("rdseed {v}", "setc {c}", v = out(reg) _, c = out(reg_byte) c,
                         options(nostack, nomem))
                } else {
                    asm!("rdrand {v}", "setc {c}", v = out(reg) _, c = out(reg_byte) c,
                         options(nostack, nomem))
                }
            };
            if c != 0 {
                ok = 1;
                break;
            }
        }
        ok
    })
}

fn rdrand() -> Outcome {
    random(false)
}

fn rdseed() -> Outcome {
    random(true)
}

static LINE: [u8; 64] = [0; 64];

fn clflush() -> Outcome {
    // SAFETY: flushes a line of a static; memory is unchanged.
    runs(|| unsafe { asm!("clflush byte ptr [{}]", in(reg) &LINE, options(nostack)) })
}

fn clflushopt() -> Outcome {
    // SAFETY: as for clflush.
    runs(|| unsafe { asm!("clflushopt byte ptr [{}]", in(reg) &LINE, options(nostack)) })
}

fn clwb() -> Outcome {
    // SAFETY: writes a line back; memory is unchanged.
    runs(|| unsafe { asm!("clwb byte ptr [{}]", in(reg) &LINE, options(nostack)) })
}

fn prefetchw() -> Outcome {
    // SAFETY: a hint; memory is unchanged.
    runs(|| unsafe { asm!("prefetchw byte ptr [{}]", in(reg) &LINE, options(nostack)) })
}

/// TZCNT(8) = 3 and ANDN(0xF0, 0xFF) = 0x0F, packed.
fn bmi1() -> Outcome {
    gives(0x30f, || {
        let (t, a): (u64, u64);
        // SAFETY: register-only.
        unsafe {
            asm!("tzcnt {t}, {v}", "andn {a}, {x}, {y}", t = out(reg) t, a = out(reg) a,
                 v = in(reg) 8u64, x = in(reg) 0xf0u64, y = in(reg) 0xffu64,
                 options(nostack, nomem))
        };
        t << 8 | a
    })
}

/// PEXT(0xB0, 0xF0) = 0xB and BZHI(0xFF, 4) = 0xF, packed.
fn bmi2() -> Outcome {
    gives(0xb0f, || {
        let (p, z): (u64, u64);
        // SAFETY: register-only.
        unsafe {
            asm!("pext {p}, {v}, {m}", "bzhi {z}, {w}, {n}", p = out(reg) p, z = out(reg) z,
                 v = in(reg) 0xb0u64, m = in(reg) 0xf0u64, w = in(reg) 0xffu64,
                 n = in(reg) 4u64, options(nostack, nomem))
        };
        p << 8 | z
    })
}

/// REP MOVSB copies (ERMS only makes it fast; SDM Vol 1 7.3.9.3).
fn erms() -> Outcome {
    let src = *b"keeps its word!!";
    let mut dst = [0u8; 16];
    let r = runs(|| {
        // SAFETY: copies 16 bytes between two locals.
        unsafe {
            asm!("rep movsb", inout("rsi") src.as_ptr() => _, inout("rdi") dst.as_mut_ptr() => _,
                 inout("rcx") 16usize => _, options(nostack))
        }
    });
    r.and(|| super::expect(u64::from(dst == src), 1))
}

/// ADCX with CF set: 1 + 2 + 1 = 4; ADOX with OF clear: 4 + 2 = 6.
fn adx() -> Outcome {
    gives(6, || {
        let mut a = 1u64;
        // SAFETY: register-only.
        unsafe {
            asm!("stc", "adcx {a}, {b}", "xor {t:e}, {t:e}", "adox {a}, {b}", a = inout(reg) a,
                 b = in(reg) 2u64, t = out(reg) _, options(nostack, nomem))
        };
        a
    })
}

/// LAHF/SAHF in 64-bit mode: AH takes the flags (CF set: bit 0; bit 1 always set).
fn lahf_sahf() -> Outcome {
    gives(0x3, || {
        let ah: u64;
        // SAFETY: register-only.
        unsafe {
            asm!("stc", "lahf", "sahf", "movzx ecx, ah", out("rcx") ah, out("rax") _,
                 options(nostack, nomem))
        };
        ah & 0x3
    })
}

fn lzcnt() -> Outcome {
    gives(63, || {
        let n: u64;
        // SAFETY: register-only.
        unsafe {
            asm!("lzcnt {n}, {v}", n = out(reg) n, v = in(reg) 1u64, options(nostack, nomem))
        };
        n
    })
}

/// AMD's trailing bit manipulation: BLSFILL(0b1000) = 0b1111.
fn tbm() -> Outcome {
    gives(0xf, || {
        let n: u64;
        // SAFETY: register-only.
        unsafe {
            asm!("blsfill {n}, {v}", n = out(reg) n, v = in(reg) 8u64, options(nostack, nomem))
        };
        n
    })
}
