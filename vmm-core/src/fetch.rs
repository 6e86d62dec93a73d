//! Fetching the guest instruction at CS:RIP through the guest's own page tables, for
//! the decoder (next-RIP discovery without NRIP save, MMIO emulation).

use crate::addr::{GuestPhys, GuestVirt};
use crate::decode::{CpuMode, DecodeCache, DecodeError, Insn};
use crate::memory::GuestMemory;
use crate::recent::Recent;
use crate::vcpu::{ArchVcpu, ControlReg, SegReg, StateMsr};
use crate::walk::{read_virt, translate_traced, Access, PagingState, Trail, WalkError};
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

/// What a vCPU remembers about the instructions its exits fetched: where its last code
/// page is (with the page-table entries that say so) and the last instructions decoded.
/// Both are checked before use, never trusted: the entries are read again (four loads
/// instead of a walk) and a decoded instruction must have the same bytes. Per vCPU (held
/// by the VM while a VM has one).
#[derive(Clone, Debug, Default)]
pub struct InsnCache {
    code_pages: Recent<CodePage, CODE_PAGES>,
    pub decoded: DecodeCache,
}

/// Code pages an [`InsnCache`] keeps: a guest's loop and its interrupt handler usually
/// lie in different pages.
pub const CODE_PAGES: usize = 4;

#[derive(Clone, Debug)]
struct CodePage {
    paging: PagingState,
    user: bool,
    /// The linear page number and the guest-physical page it maps to.
    page: u64,
    frame: u64,
    trail: Trail,
}

impl InsnCache {
    /// Translates the fetch address `la` as [`translate`] would, from the last code page
    /// when the paging registers, the privilege and every entry of its walk are the same.
    fn translate_code(
        &mut self,
        mem: &GuestMemory,
        paging: &PagingState,
        la: u64,
        access: Access,
    ) -> Result<GuestPhys, WalkError> {
        let page = la >> 12;
        let hit = self.code_pages.find(|c| {
            c.page == page && c.user == access.user && c.paging == *paging && c.trail.holds(mem)
        });
        if let Some(c) = hit {
            return Ok(GuestPhys(c.frame | (la & 0xfff)));
        }
        let mut trail = Trail::default();
        let gpa = translate_traced(mem, paging, GuestVirt(la), access, &mut trail)?;
        self.code_pages.insert(CodePage {
            paging: *paging,
            user: access.user,
            page,
            frame: gpa.0 & !0xfff,
            trail,
        });
        Ok(gpa)
    }
}

/// Up to 15 bytes at CS:RIP; fewer when the instruction runs into an unmapped page.
/// One page walk per page touched (at most two, the first one usually answered by the
/// cache), and one fixed-size read when the 15 bytes lie in one page: this is on the
/// path of every MMIO exit and of every exit on AMD-V without NRIP save.
pub fn fetch(vcpu: &impl ArchVcpu, mem: &GuestMemory, cache: &mut InsnCache) -> ArrayVec<u8, 15> {
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
    if let Ok(gpa) = cache.translate_code(mem, &paging, la, access) {
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

/// Decodes the instruction at CS:RIP.
pub fn decode_at_rip(
    vcpu: &impl ArchVcpu,
    mem: &GuestMemory,
    cache: &mut InsnCache,
) -> Result<Insn, DecodeError> {
    let bytes = fetch(vcpu, mem, cache);
    cache.decoded.decode(&bytes, cpu_mode(vcpu))
}

/// The length of the instruction at RIP, when the exit already says which instruction it
/// is: `opcode` (its bytes without any prefix, e.g. CPUID's 0F A2). An instruction that
/// is exactly that at RIP has that length and skips the decoder; a prefixed or other one
/// is decoded. Either way its bytes are fetched through the guest's page tables.
pub fn length_at_rip(
    vcpu: &impl ArchVcpu,
    mem: &GuestMemory,
    cache: &mut InsnCache,
    opcode: Option<&[u8]>,
) -> Result<usize, DecodeError> {
    let bytes = fetch(vcpu, mem, cache);
    match opcode {
        // Byte by byte: a slice compare is a `memcmp` call, dearer than these two or three.
        Some(op) if bytes.len() >= op.len() && op.iter().zip(&bytes).all(|(a, b)| a == b) => {
            Ok(op.len())
        }
        _ => cache.decoded.decode(&bytes, cpu_mode(vcpu)).map(|i| i.len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::GuestPhys;
    use crate::cpu_rules::cr4;
    use crate::memory::testing::ram;
    use crate::mock::MockVcpu;

    const PRESENT_RW: u64 = 0b11;

    /// Long mode with 4-level tables at 0x1000-0x4000 mapping VA 0x40_0000 to `frame`;
    /// CPUID (0F A2) at 0x9000, CPUID with an operand-size prefix at 0xa000.
    fn long_mode(frame: u64) -> (GuestMemory, MockVcpu) {
        let mut m = ram(0x10_0000);
        m.write_u64(GuestPhys(0x1000), 0x2000 | PRESENT_RW).unwrap();
        m.write_u64(GuestPhys(0x2000), 0x3000 | PRESENT_RW).unwrap();
        m.write_u64(GuestPhys(0x3000 + 2 * 8), 0x4000 | PRESENT_RW)
            .unwrap();
        m.write_u64(GuestPhys(0x4000), frame | PRESENT_RW).unwrap();
        m.write(GuestPhys(0x9000), &[0x0f, 0xa2]).unwrap();
        m.write(GuestPhys(0xa000), &[0x66, 0x0f, 0xa2]).unwrap();
        let mut v = MockVcpu::new(&[]);
        v.cr0 = cr0::PG | cr0::PE;
        v.cr3 = 0x1000;
        v.cr4 = cr4::PAE;
        v.efer = efer::LME | efer::LMA;
        v.segs[SegReg::Cs as usize].attr = 0xa9b; // 64-bit code
        v.rip = 0x40_0000;
        (m, v)
    }

    #[test]
    fn the_code_page_cache_follows_the_guests_page_tables() {
        let (mut m, v) = long_mode(0x9000);
        let mut c = InsnCache::default();
        let cpuid = Some(&[0x0f, 0xa2][..]);
        assert_eq!(length_at_rip(&v, &m, &mut c, cpuid), Ok(2));
        assert_eq!(
            length_at_rip(&v, &m, &mut c, cpuid),
            Ok(2),
            "from the cache"
        );
        // The guest maps its code page elsewhere without touching CR3: the cached
        // translation no longer holds and the prefixed CPUID there is found.
        m.write_u64(GuestPhys(0x4000), 0xa000 | PRESENT_RW).unwrap();
        assert_eq!(length_at_rip(&v, &m, &mut c, cpuid), Ok(3));
        // A higher level changes (the PD entry now points at another table mapping the
        // page back to 0x9000).
        m.write_u64(GuestPhys(0x5000), 0x9000 | PRESENT_RW).unwrap();
        m.write_u64(GuestPhys(0x3000 + 2 * 8), 0x5000 | PRESENT_RW)
            .unwrap();
        assert_eq!(length_at_rip(&v, &m, &mut c, cpuid), Ok(2));
        // Another CR3 with the same entries elsewhere: walked again, same answer.
        let mut v2 = v;
        v2.cr3 = 0x6000;
        assert!(fetch(&v2, &m, &mut c).is_empty(), "nothing mapped there");
    }
}
