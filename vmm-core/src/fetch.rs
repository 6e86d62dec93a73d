//! Fetching the guest instruction at CS:RIP through the guest's own page tables, for
//! the decoder (next-RIP discovery without NRIP save, MMIO emulation).

use crate::addr::GuestVirt;
use crate::decode::{decode, CpuMode, DecodeCache, DecodeError, Insn};
use crate::memory::GuestMemory;
use crate::vcpu::{ArchVcpu, ControlReg, SegReg, StateMsr};
use crate::walk::{read_virt, translate, Access};
use arrayvec::ArrayVec;

use crate::cpu_rules::{cr0, efer};

/// The mode that decides how the instruction at CS:RIP decodes.
pub fn cpu_mode(vcpu: &impl ArchVcpu) -> CpuMode {
    let cs = vcpu.segment(SegReg::Cs);
    if vcpu.state_msr(StateMsr::Efer) & efer::LMA != 0 && cs.long() {
        CpuMode::Long64
    } else if vcpu.cr(ControlReg::Cr0) & cr0::PE == 0 {
        CpuMode::Real
    } else if cs.default_big() {
        CpuMode::Prot32
    } else {
        CpuMode::Prot16
    }
}

/// Up to 15 bytes at CS:RIP; fewer when the instruction runs into an unmapped page.
/// One page walk per page touched (at most two), not one per byte, and one fixed-size
/// read when the 15 bytes lie in one page: this is on the path of every MMIO exit and of
/// every exit on AMD-V without NRIP save.
pub fn fetch(vcpu: &impl ArchVcpu, mem: &GuestMemory) -> ArrayVec<u8, 15> {
    let la = vcpu.segment(SegReg::Cs).base.wrapping_add(vcpu.rip());
    let paging = vcpu.paging();
    let access = Access {
        write: false,
        user: vcpu.cpl() == 3,
        fetch: true,
    };
    let mut buf = [0u8; 15];
    let first = (0x1000 - (la & 0xfff)).min(15) as usize;
    let mut n = 0;
    if let Ok(gpa) = translate(mem, &paging, GuestVirt(la), access) {
        if first == 15 {
            if let Ok(b) = mem.read_array::<15>(gpa) {
                return ArrayVec::from(b);
            }
        } else if mem.read(gpa, &mut buf[..first]).is_ok() {
            n = first;
            let next = GuestVirt(la.wrapping_add(n as u64));
            if read_virt(mem, &paging, next, &mut buf[n..], access).is_ok() {
                n = 15;
            }
        }
    }
    let mut bytes = ArrayVec::new();
    // `n` is at most 15, the capacity.
    let _ = bytes.try_extend_from_slice(&buf[..n]);
    bytes
}

/// Decodes the instruction at CS:RIP (through the vCPU's `cache`).
pub fn decode_at_rip(
    vcpu: &impl ArchVcpu,
    mem: &GuestMemory,
    cache: &mut DecodeCache,
) -> Result<Insn, DecodeError> {
    cache.decode(&fetch(vcpu, mem), cpu_mode(vcpu))
}

/// The length of the instruction at RIP, when the exit already says which instruction it
/// is: `opcode` (its bytes without any prefix, e.g. CPUID's 0F A2). An instruction that
/// is exactly that at RIP has that length and skips the decoder; a prefixed or other one
/// is decoded. Either way its bytes are fetched through the guest's page tables.
pub fn length_at_rip(
    vcpu: &impl ArchVcpu,
    mem: &GuestMemory,
    opcode: Option<&[u8]>,
) -> Result<usize, DecodeError> {
    let bytes = fetch(vcpu, mem);
    match opcode {
        Some(op) if bytes.starts_with(op) => Ok(op.len()),
        _ => decode(&bytes, cpu_mode(vcpu)).map(|i| i.len),
    }
}
