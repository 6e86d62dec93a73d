//! Fetching the guest instruction at CS:RIP through the guest's own page tables, for
//! the decoder (next-RIP discovery without NRIP save, MMIO emulation).

use crate::addr::GuestVirt;
use crate::decode::{decode, CpuMode, DecodeError, Insn};
use crate::memory::GuestMemory;
use crate::vcpu::{ArchVcpu, ControlReg, SegReg, StateMsr};
use crate::walk::{read_virt, Access};
use arrayvec::ArrayVec;

const EFER_LMA: u64 = 1 << 10;

/// The mode that decides how the instruction at CS:RIP decodes.
pub fn cpu_mode(vcpu: &impl ArchVcpu) -> CpuMode {
    let cs = vcpu.segment(SegReg::Cs);
    if vcpu.state_msr(StateMsr::Efer) & EFER_LMA != 0 && cs.long() {
        CpuMode::Long64
    } else if vcpu.cr(ControlReg::Cr0) & 1 == 0 {
        CpuMode::Real
    } else if cs.default_big() {
        CpuMode::Prot32
    } else {
        CpuMode::Prot16
    }
}

/// Up to 15 bytes at CS:RIP; fewer when the instruction runs into an unmapped page.
pub fn fetch(vcpu: &impl ArchVcpu, mem: &GuestMemory) -> ArrayVec<u8, 15> {
    let la = vcpu.segment(SegReg::Cs).base.wrapping_add(vcpu.rip());
    let paging = vcpu.paging();
    let access = Access { write: false, user: vcpu.cpl() == 3, fetch: true };
    let mut bytes = ArrayVec::new();
    // Byte by byte, so an instruction that ends just before an unmapped page decodes.
    while !bytes.is_full() {
        let mut b = [0u8];
        if read_virt(mem, &paging, GuestVirt(la.wrapping_add(bytes.len() as u64)), &mut b, access).is_err() {
            break;
        }
        bytes.push(b[0]);
    }
    bytes
}

/// Decodes the instruction at CS:RIP.
pub fn decode_at_rip(vcpu: &impl ArchVcpu, mem: &GuestMemory) -> Result<Insn, DecodeError> {
    decode(&fetch(vcpu, mem), cpu_mode(vcpu))
}
