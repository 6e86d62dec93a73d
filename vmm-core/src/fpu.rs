//! A guest's x87/SSE/AVX state while another guest has the CPU.
//!
//! Janus itself never touches these registers (its target has no SSE), so a guest's
//! values stay live in the CPU across its exits; they are saved and restored only when
//! the host CPU switches to another guest. Where the CPU has XSAVE, Janus enables it for
//! itself (CR4.OSXSAVE, XCR0 = every user state component the CPU has) and saves with
//! XSAVE into an area of the size CPUID 0xD reports; elsewhere with FXSAVE (512 bytes:
//! x87 and SSE). Manual: Intel SDM 325462-083US Vol 1 13 (XSAVE, the legacy region and
//! the XSAVE header) and Vol 2A FXSAVE/FXRSTOR; APM Vol 2 rev 3.42, 11.5.
//!
//! A new guest starts from the architectural reset state (SDM Vol 3A 10.1.1 / Table
//! 10-1): x87 FCW 0x37F and empty stack, XMM registers zero, MXCSR 0x1F80.

/// The largest save area Janus offers; CPUs that need more get FXSAVE.
pub const AREA_SIZE: usize = 4096;

/// The x87 control word after FNINIT / reset.
pub const FCW_RESET: u16 = 0x37f;
/// MXCSR after reset: every exception masked.
pub const MXCSR_RESET: u32 = 0x1f80;

/// Offsets in the legacy (FXSAVE) region (SDM Vol 1 Table 10-2).
const FCW_OFFSET: usize = 0;
const MXCSR_OFFSET: usize = 24;
/// XMM0 in the legacy region; each register takes 16 bytes.
pub const XMM_OFFSET: usize = 160;

/// How the host CPU saves extended state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveMode {
    /// FXSAVE64/FXRSTOR64: x87 and SSE.
    Fxsave,
    /// XSAVE64/XRSTOR64 of the components in `xcr0`, into `size` bytes.
    Xsave { xcr0: u64, size: usize },
}

impl SaveMode {
    /// The mode for a CPU whose CPUID is `cpuid`, once the host has enabled XSAVE with
    /// XCR0 = `xcr0` (or has not: `None`).
    pub fn choose(cpuid: impl Fn(u32, u32) -> [u32; 4], xcr0: Option<u64>) -> SaveMode {
        match xcr0 {
            Some(xcr0) => {
                // CPUID 0xD.0 EBX: the size XSAVE needs for the components XCR0 enables now.
                let size = cpuid(0xd, 0)[1] as usize;
                if size == 0 || size > AREA_SIZE {
                    SaveMode::Fxsave
                } else {
                    SaveMode::Xsave { xcr0, size }
                }
            }
            None => SaveMode::Fxsave,
        }
    }
}

/// One guest's saved x87/SSE/AVX state, 64-byte aligned as XSAVE requires.
#[repr(C, align(64))]
#[derive(Clone)]
pub struct FpuState {
    area: [u8; AREA_SIZE],
}

const _: () = assert!(core::mem::align_of::<FpuState>() == 64);
const _: () = assert!(core::mem::size_of::<FpuState>() == AREA_SIZE);

impl Default for FpuState {
    fn default() -> Self {
        Self::reset()
    }
}

impl FpuState {
    /// The architectural reset state. An all-zero XSAVE header (XSTATE_BV = 0) makes
    /// XRSTOR put every component in its initial configuration; MXCSR and FCW are read
    /// from the legacy region by both XRSTOR and FXRSTOR, so they are set explicitly.
    pub fn reset() -> FpuState {
        let mut s = FpuState {
            area: [0; AREA_SIZE],
        };
        s.area[FCW_OFFSET..FCW_OFFSET + 2].copy_from_slice(&FCW_RESET.to_le_bytes());
        s.area[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&MXCSR_RESET.to_le_bytes());
        s
    }

    /// The saved x87 control word.
    pub fn fcw(&self) -> u16 {
        u16::from_le_bytes([self.area[FCW_OFFSET], self.area[FCW_OFFSET + 1]])
    }

    /// The saved MXCSR.
    pub fn mxcsr(&self) -> u32 {
        let b = &self.area[MXCSR_OFFSET..MXCSR_OFFSET + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The saved XMM register `n` (0..16), as two 64-bit halves (low first).
    pub fn xmm(&self, n: usize) -> [u64; 2] {
        let o = XMM_OFFSET + 16 * n;
        let half = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.area[at..at + 8]);
            u64::from_le_bytes(b)
        };
        [half(o), half(o + 8)]
    }

    /// Saves the CPU's current state here.
    pub fn save(&mut self, mode: SaveMode) {
        let p = self.area.as_mut_ptr();
        match mode {
            // SAFETY: `p` is a 64-byte aligned, AREA_SIZE-byte buffer we own, larger than
            // the 512 bytes FXSAVE writes; FXSAVE64 has no other effect.
            SaveMode::Fxsave => unsafe {
                core::arch::asm!("fxsave64 [{}]", in(reg) p, options(nostack));
            },
            SaveMode::Xsave { xcr0, .. } => {
                let (lo, hi) = (xcr0 as u32, (xcr0 >> 32) as u32);
                // SAFETY: as above; `choose` checked that XSAVE needs at most AREA_SIZE
                // bytes for XCR0's components, and the host enabled CR4.OSXSAVE.
                unsafe {
                    core::arch::asm!("xsave64 [{}]", in(reg) p, in("eax") lo, in("edx") hi,
                        options(nostack));
                }
            }
        }
    }

    /// Loads this state into the CPU.
    pub fn restore(&self, mode: SaveMode) {
        let p = self.area.as_ptr();
        match mode {
            // SAFETY: the area holds an image FXSAVE wrote or `reset` made (MXCSR's
            // reserved bits clear), so FXRSTOR64 cannot fault; it only loads x87/SSE state.
            SaveMode::Fxsave => unsafe {
                core::arch::asm!("fxrstor64 [{}]", in(reg) p, options(nostack, readonly));
            },
            SaveMode::Xsave { xcr0, .. } => {
                let (lo, hi) = (xcr0 as u32, (xcr0 >> 32) as u32);
                // SAFETY: as above, with a valid XSAVE header (zero, or what XSAVE wrote).
                unsafe {
                    core::arch::asm!("xrstor64 [{}]", in(reg) p, in("eax") lo, in("edx") hi,
                        options(nostack, readonly));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_cpuid(leaf: u32, sub: u32) -> [u32; 4] {
        let r = core::arch::x86_64::__cpuid_count(leaf, sub);
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    fn host_xcr0() -> Option<u64> {
        let osxsave = host_cpuid(1, 0)[2] & (1 << 27) != 0;
        // SAFETY: XGETBV(0) is valid once the OS has set CR4.OSXSAVE (CPUID.1:ECX.OSXSAVE).
        osxsave.then(|| unsafe { core::arch::x86_64::_xgetbv(0) })
    }

    /// Loads `state`, reads XMM0 and MXCSR back, puts a pattern in XMM0, saves into
    /// `out`. Nothing between `restore` and `save` may leave compiler-generated SSE
    /// code: XMM0 comes back in two general registers and MXCSR into memory not
    /// initialised first (a zeroed `[u64; 2]` read back through memory was zeroed with
    /// XORPS XMM0 right after `restore`, by rustc 1.95 on an AMD EPYC host, and the test
    /// failed for the compiler's sake).
    fn round_trip(mode: SaveMode, state: &FpuState, out: &mut FpuState) -> ([u64; 2], u32) {
        let mut mxcsr = core::mem::MaybeUninit::<u32>::uninit();
        let (lo, hi): (u64, u64);
        state.restore(mode);
        // SAFETY: writes MXCSR to a local we own and reads XMM0 into general registers;
        // XMM0 is declared clobbered.
        unsafe {
            core::arch::asm!(
                "movq {lo}, xmm0",
                "movhlps xmm0, xmm0",
                "movq {hi}, xmm0",
                "stmxcsr [{m}]",
                "mov {t}, 0x1122334455667788",
                "movq xmm0, {t}",
                lo = out(reg) lo,
                hi = out(reg) hi,
                m = in(reg) mxcsr.as_mut_ptr(),
                t = out(reg) _,
                out("xmm0") _,
                options(nostack),
            );
        }
        out.save(mode);
        // SAFETY: STMXCSR above wrote it.
        ([lo, hi], unsafe { mxcsr.assume_init() })
    }

    fn modes() -> [SaveMode; 2] {
        [SaveMode::Fxsave, SaveMode::choose(host_cpuid, host_xcr0())]
    }

    #[test]
    fn the_reset_state_is_architectural() {
        let r = FpuState::reset();
        assert_eq!((r.fcw(), r.mxcsr()), (FCW_RESET, MXCSR_RESET));
        for mode in modes() {
            let mut saved = FpuState::reset();
            let (xmm0, mxcsr) = round_trip(mode, &FpuState::reset(), &mut saved);
            assert_eq!((xmm0, mxcsr), ([0, 0], MXCSR_RESET), "{mode:?}");
            // What this guest left behind is in its own area, not in the next one's.
            assert_eq!(saved.xmm(0), [0x1122_3344_5566_7788, 0], "{mode:?}");
            let (xmm0, _) = round_trip(mode, &FpuState::reset(), &mut FpuState::reset());
            assert_eq!(xmm0, [0, 0], "{mode:?}: the next guest starts clean");
            let (xmm0, _) = round_trip(mode, &saved, &mut FpuState::reset());
            assert_eq!(
                xmm0,
                [0x1122_3344_5566_7788, 0],
                "{mode:?}: and gets its own back"
            );
        }
    }

    #[test]
    fn xsave_is_chosen_only_when_enabled_and_small_enough() {
        let cpuid = |leaf: u32, _| if leaf == 0xd { [0, 832, 0, 0] } else { [0; 4] };
        assert_eq!(
            SaveMode::choose(cpuid, Some(7)),
            SaveMode::Xsave { xcr0: 7, size: 832 }
        );
        assert_eq!(SaveMode::choose(cpuid, None), SaveMode::Fxsave);
        let huge = |leaf: u32, _| if leaf == 0xd { [0, 9000, 0, 0] } else { [0; 4] };
        assert_eq!(SaveMode::choose(huge, Some(0xe7)), SaveMode::Fxsave);
    }
}
