//! Enables the host CPU's x87/SSE/AVX state saving, so that guests' extended state can be
//! switched (vmm_core::fpu). Janus itself uses none of these registers.
//!
//! CR4.OSFXSR and OSXMMEXCPT make FXSAVE save the XMM registers (SDM Vol 3A 2.5).
//! A guest can change only the state its CPUID lets it enable: while the policy hides
//! XSAVE (vmm_core::cpuid), CR4.OSXSAVE stays clear in every guest, AVX and later state
//! are out of its reach, and FXSAVE (x87 and SSE) saves all it can touch. Once guests see
//! XSAVE, Janus enables it for itself too: CR4.OSXSAVE and XCR0 = the user state
//! components the CPU supports among x87, SSE, AVX and AVX-512 (CPUID 0xD.0 EAX; SDM Vol 1
//! 13.3), saved with XSAVE. (Not before: QEMU 7.2's TCG hangs on MOV to CR4 with OSXSAVE
//! under `-cpu Opteron_G5`, seen in the matrix.)

use crate::frames::HostFrames;
use vmm_core::addr::{HostPhys, PAGE_4K};
use vmm_core::cpu_rules::{cr4, xcr0};
use vmm_core::fpu::{FpuState, SaveMode};
use vmm_core::nested::FrameAllocator;

/// The components Janus saves at most: x87, SSE, AVX, and AVX-512's opmask, ZMM_Hi256 and
/// Hi16_ZMM (bits 5-7). Others (MPX, PT, AMX, ...) need supervisor state or permissions.
const WANTED: u64 = xcr0::X87 | xcr0::SSE | xcr0::AVX | (0b111 << 5);

/// Sets CR4 (and XCR0) and says how to save guest state on this CPU.
pub fn init() -> SaveMode {
    let has_xsave = vmm_core::cpuid::guest_cpuid(1, 0, 0, host_cpuid)[2] & (1 << 26) != 0;
    let mut bits = cr4::OSFXSR | cr4::OSXMMEXCPT;
    if has_xsave {
        bits |= cr4::OSXSAVE;
    }
    // SAFETY: setting OSFXSR/OSXMMEXCPT (and OSXSAVE where CPUID shows XSAVE) only enables
    // instructions; Janus runs no SSE code whose behaviour they change.
    unsafe {
        let c4 = x86::controlregs::cr4();
        x86::controlregs::cr4_write(c4 | x86::controlregs::Cr4::from_bits_truncate(bits as usize));
    }
    if !has_xsave {
        return SaveMode::choose(host_cpuid, None);
    }
    let supported = {
        let r = core::arch::x86_64::__cpuid_count(0xd, 0);
        r.eax as u64 | (r.edx as u64) << 32
    };
    let mut enabled = supported & WANTED;
    // AVX-512's three components go together or not at all (SDM Vol 1 13.3).
    if enabled & (0b111 << 5) != 0b111 << 5 {
        enabled &= !(0b111 << 5);
    }
    // SAFETY: CR4.OSXSAVE is set; XCR0 gets x87 plus components CPUID says exist, in the
    // combinations XSETBV accepts (SSE with AVX, AVX-512 complete).
    unsafe { x86::controlregs::xcr0_write(x86::controlregs::Xcr0::from_bits_truncate(enabled)) };
    SaveMode::choose(host_cpuid, Some(enabled))
}

fn host_cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// A vCPU's saved x87/SSE/AVX state in a 4 KiB frame of its own (`FpuState` is one page):
/// a guest may have up to 8 vCPUs and a CPU up to 32 guests, too many pages for the
/// scheduler's stack.
pub struct FpuFrame {
    hpa: HostPhys,
}

impl FpuFrame {
    /// A frame holding the state after reset; `None` when memory ran out.
    pub fn new(frames: &mut HostFrames) -> Option<FpuFrame> {
        let (hpa, _) = frames.alloc_ram(PAGE_4K, PAGE_4K)?;
        let mut f = FpuFrame { hpa };
        *f.state() = FpuState::reset();
        Some(f)
    }

    pub fn state(&mut self) -> &mut FpuState {
        // SAFETY: the frame is 4 KiB, page-aligned (FpuState needs 64), identity-mapped
        // (alloc_ram's memory), and this FpuFrame owns it until `free`.
        unsafe { &mut *(self.hpa.0 as *mut FpuState) }
    }

    /// Gives the frame back.
    pub fn free(self, frames: &mut HostFrames) {
        frames.free(self.hpa, 1);
    }
}

const _: () = assert!(core::mem::size_of::<FpuState>() == PAGE_4K as usize);
