//! Fetching the guest instruction at CS:RIP through the guest's own page tables, for
//! the decoder (next-RIP discovery without NRIP save, MMIO emulation).

use crate::addr::{GuestPhys, GuestVirt};
use crate::decode::{CpuMode, DecodeCache, DecodeError, Insn};
use crate::memory::{GuestMemory, Watches};
use crate::recent::Recent;
use crate::vcpu::{ArchVcpu, ControlReg, SegReg, StateMsr};
use crate::walk::{read_virt, translate_traced, Access, PagingState, Trail, WalkError};
use arrayvec::ArrayVec;

use crate::cpu_rules::{cr0, efer};

#[cfg(test)]
mod differential;
mod site;
use site::Known;
pub(crate) use site::Site;

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
    /// The instructions of the last few exits that needed their length
    /// ([`length_at_rip`]) or the whole instruction ([`decode_at_rip`]).
    sites: Recent<Site, SITES>,
}

/// Exit sites an [`InsnCache`] keeps: a guest's loop, or an interrupt handler's EOI and
/// the timer write that armed it.
pub const SITES: usize = 4;

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
    /// The entries of the walk that found it, watched for what the walk read.
    walk: Watches<5>,
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
            c.page == page && c.user == access.user && c.paging == *paging && c.walk.hold(mem)
        });
        if let Some(c) = hit {
            return Ok(GuestPhys(c.frame | (la & 0xfff)));
        }
        let mut trail = Trail::default();
        let gpa = translate_traced(mem, paging, GuestVirt(la), access, &mut trail)?;
        // A walk with an entry no watch can hold (a 32-bit entry in a region's last 4
        // bytes) is not kept: the next fetch walks again.
        let mut walk = Watches::new(mem);
        if trail.watch(mem, &mut walk).is_some() {
            self.code_pages.insert(CodePage {
                paging: *paging,
                user: access.user,
                page,
                frame: gpa.0 & !0xfff,
                walk,
            });
        }
        Ok(gpa)
    }

    /// Keeps what the instruction at `place` is, fetched as `bytes` from `gpa`, as a
    /// site (when a site can watch it).
    fn remember(
        &mut self,
        mem: &GuestMemory,
        place: &Place,
        known: Known,
        gpa: Option<GuestPhys>,
        bytes: &[u8],
    ) {
        let Some(gpa) = gpa else { return };
        let site = self
            .walk_of(place, gpa)
            .and_then(|walk| Site::new(mem, place, known, (gpa, bytes), walk));
        if let Some(site) = site {
            self.sites.insert(site);
        }
    }

    /// A copy of the site that knows the length of the instruction at `place` as it is
    /// now in `mem`: the one the last [`length_at_rip`] there found or made, if a site
    /// could watch it.
    pub(crate) fn length_site(&self, mem: &GuestMemory, place: &Place) -> Option<Site> {
        self.sites
            .find_map_newest(|s| s.knows_length_at(mem, place).then(|| s.clone()))
    }

    /// The watched walk that found code page `gpa` for `place` (the one `translate_code`
    /// just used or made).
    fn walk_of(&self, place: &Place, gpa: GuestPhys) -> Option<&Watches<5>> {
        let (page, frame) = (place.la >> 12, gpa.0 & !0xfff);
        let c = self.code_pages.find(|c| {
            c.page == page && c.frame == frame && c.user == place.user && c.paging == place.paging
        })?;
        Some(&c.walk)
    }
}

/// Where the instruction at CS:RIP is, and what decides how it is found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place {
    /// Its linear address: CS base plus RIP.
    pub(super) la: u64,
    paging: PagingState,
    /// Fetched at CPL 3.
    user: bool,
    cs_attr: u16,
}

impl Place {
    /// The same place: every field equal. One OR of differences rather than `==` on
    /// each field: LLVM merges a chain of field compares into a `memcmp` call of the
    /// whole struct (seen on the hypercall's exit path: about 60 instructions).
    #[inline(always)]
    fn same(&self, o: &Place) -> bool {
        let (p, q) = (&self.paging, &o.paging);
        (self.la ^ o.la)
            | (p.cr0 ^ q.cr0)
            | (p.cr3 ^ q.cr3)
            | (p.cr4 ^ q.cr4)
            | (p.efer ^ q.efer)
            | u64::from(self.user ^ o.user)
            | u64::from(self.cs_attr ^ o.cs_attr)
            == 0
    }

    #[inline(always)]
    pub(crate) fn of(vcpu: &impl ArchVcpu) -> Place {
        let cs = vcpu.segment(SegReg::Cs);
        Place {
            la: cs.base.wrapping_add(vcpu.rip()),
            paging: vcpu.paging(),
            user: vcpu.cpl() == 3,
            cs_attr: cs.attr,
        }
    }
}

/// Up to 15 bytes at CS:RIP; fewer when the instruction runs into an unmapped page.
/// One page walk per page touched (at most two, the first one usually answered by the
/// cache), and one fixed-size read when the 15 bytes lie in one page: this is on the
/// path of every MMIO exit and of every exit on AMD-V without NRIP save.
pub fn fetch(vcpu: &impl ArchVcpu, mem: &GuestMemory, cache: &mut InsnCache) -> ArrayVec<u8, 15> {
    fetch_at(&Place::of(vcpu), mem, cache).0
}

/// [`fetch`] at `place`, with the guest-physical address of the first byte.
fn fetch_at(
    place: &Place,
    mem: &GuestMemory,
    cache: &mut InsnCache,
) -> (ArrayVec<u8, 15>, Option<GuestPhys>) {
    let (la, paging) = (place.la, place.paging);
    let access = Access {
        write: false,
        user: place.user,
        fetch: true,
    };
    let mut buf = [0u8; 15];
    let first = (0x1000 - (la & 0xfff)).min(15) as usize;
    let mut n = 0;
    let gpa = cache.translate_code(mem, &paging, la, access).ok();
    if let Some(gpa) = gpa {
        if first == 15 {
            if let Ok(b) = mem.read_array::<15>(gpa) {
                return (ArrayVec::from(b), Some(gpa));
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
    (bytes, gpa)
}

/// Decodes the instruction at CS:RIP, unless one of the last exits was at the same
/// place and nothing there changed (the site cache).
pub fn decode_at_rip(
    vcpu: &impl ArchVcpu,
    mem: &GuestMemory,
    cache: &mut InsnCache,
) -> Result<Insn, DecodeError> {
    let place = Place::of(vcpu);
    let known = cache.sites.find_map_newest(|s| s.decoded(mem, &place));
    match known {
        Some(insn) => Ok(insn),
        None => decode_by_fetch(vcpu, mem, cache, &place),
    }
}

/// [`decode_at_rip`] of an instruction the site cache does not know: fetched and
/// decoded, then remembered as a site. Out of line, as [`length_by_fetch`].
#[inline(never)]
fn decode_by_fetch(
    vcpu: &impl ArchVcpu,
    mem: &GuestMemory,
    cache: &mut InsnCache,
    place: &Place,
) -> Result<Insn, DecodeError> {
    let (bytes, gpa) = fetch_at(place, mem, cache);
    let insn = cache.decoded.decode(&bytes, cpu_mode(vcpu))?;
    cache.remember(mem, place, Known::Decoded(insn), gpa, &bytes);
    Ok(insn)
}

/// The length of the instruction at RIP, when the exit already says which instruction it
/// is: `opcode` (its bytes without any prefix, e.g. CPUID's 0F A2). An instruction that
/// is exactly that at RIP has that length and skips the decoder; a prefixed or other one
/// is decoded. Either way its bytes are fetched through the guest's page tables, unless
/// the last such exit was at the same place and nothing there changed (the site cache).
#[inline(always)]
pub fn length_at_rip(
    vcpu: &impl ArchVcpu,
    mem: &GuestMemory,
    cache: &mut InsnCache,
    opcode: Option<&'static [u8]>,
) -> Result<usize, DecodeError> {
    let Some(op) = opcode else {
        return decode_at_rip(vcpu, mem, cache).map(|i| i.len);
    };
    let place = Place::of(vcpu);
    let known = cache.sites.find_map_newest(|s| s.length(mem, &place, op));
    match known {
        Some(len) => Ok(len),
        None => length_by_fetch(vcpu, mem, cache, &place, op),
    }
}

/// [`length_at_rip`] of an instruction the site cache does not know: fetched (and the
/// decoder asked when it is not exactly `op`), then remembered as the last site. Out of
/// line: the site's hit is the path of every exit in a guest's loop.
#[inline(never)]
fn length_by_fetch(
    vcpu: &impl ArchVcpu,
    mem: &GuestMemory,
    cache: &mut InsnCache,
    place: &Place,
    op: &'static [u8],
) -> Result<usize, DecodeError> {
    let (bytes, gpa) = fetch_at(place, mem, cache);
    // Byte by byte: a slice compare is a `memcmp` call, dearer than these two or three.
    let len = if bytes.len() >= op.len() && op.iter().zip(&bytes).all(|(a, b)| a == b) {
        op.len()
    } else {
        cache.decoded.decode(&bytes, cpu_mode(vcpu))?.len
    };
    cache.remember(mem, place, Known::Length { opcode: op, len }, gpa, &bytes);
    Ok(len)
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

    const CPUID: Option<&[u8]> = Some(&[0x0f, 0xa2]);

    /// `length_at_rip` with the code-page cache emptied first, and whether the site
    /// cache answered (nothing was fetched, so no code page came back).
    fn length_and_hit(
        v: &MockVcpu,
        m: &GuestMemory,
        c: &mut InsnCache,
        op: Option<&'static [u8]>,
    ) -> (Result<usize, DecodeError>, bool) {
        c.code_pages = Recent::default();
        let len = length_at_rip(v, m, c, op);
        (len, c.code_pages.is_empty())
    }

    #[test]
    fn an_exit_at_the_last_site_is_answered_without_a_fetch() {
        let (m, v) = long_mode(0x9000);
        let mut c = InsnCache::default();
        assert_eq!(length_and_hit(&v, &m, &mut c, CPUID), (Ok(2), false));
        assert_eq!(length_and_hit(&v, &m, &mut c, CPUID), (Ok(2), true));
        // A prefixed one, found by the decoder, is remembered the same way.
        let (m, v) = long_mode(0xa000);
        assert_eq!(length_and_hit(&v, &m, &mut c, CPUID), (Ok(3), false));
        assert_eq!(length_and_hit(&v, &m, &mut c, CPUID), (Ok(3), true));
    }

    #[test]
    fn a_site_answers_only_for_its_place_and_instruction() {
        let (mut m, v) = long_mode(0x9000);
        m.write(GuestPhys(0x9010), &[0x0f, 0xa2]).unwrap();
        let vmmcall = Some(&[0x0f, 0x01, 0xd9][..]);
        let changes: [fn(&mut MockVcpu); 3] = [
            |v| v.rip += 0x10,
            |v| v.cr4 |= cr4::PGE,
            |v| v.segs[SegReg::Cs as usize].attr = 0xc9b, // 32-bit code
        ];
        for change in changes {
            let (_, mut other) = long_mode(0x9000);
            change(&mut other);
            let mut c = InsnCache::default();
            assert_eq!(length_and_hit(&v, &m, &mut c, CPUID), (Ok(2), false));
            assert_eq!(length_and_hit(&other, &m, &mut c, CPUID), (Ok(2), false));
        }
        let mut c = InsnCache::default();
        assert!(!length_and_hit(&v, &m, &mut c, CPUID).1);
        let (len, hit) = length_and_hit(&v, &m, &mut c, vmmcall);
        assert!(!hit, "another exit: {len:?}");
    }

    #[test]
    fn a_site_whose_bytes_or_page_tables_changed_is_not_trusted() {
        let (mut m, v) = long_mode(0x9000);
        let mut c = InsnCache::default();
        assert_eq!(length_and_hit(&v, &m, &mut c, CPUID), (Ok(2), false));
        // The guest rewrites its code in place: a prefixed CPUID now.
        m.write(GuestPhys(0x9000), &[0x66, 0x0f, 0xa2]).unwrap();
        assert_eq!(length_and_hit(&v, &m, &mut c, CPUID), (Ok(3), false));
        // A byte after the instruction changes: still the same instruction.
        m.write(GuestPhys(0x9003), &[0x90]).unwrap();
        assert_eq!(length_and_hit(&v, &m, &mut c, CPUID), (Ok(3), true));
        // The page-table root points elsewhere (a table mapping the page to 0x9000
        // through another PDPT): same translation, but the entry it was read from moved.
        m.write_u64(GuestPhys(0x6000), 0x3000 | PRESENT_RW).unwrap();
        m.write_u64(GuestPhys(0x1000), 0x6000 | PRESENT_RW).unwrap();
        assert_eq!(length_and_hit(&v, &m, &mut c, CPUID), (Ok(3), false));
    }

    /// `decode_at_rip` with the code-page cache emptied first, and whether the site
    /// cache answered.
    fn decoded_and_hit(v: &MockVcpu, m: &GuestMemory, c: &mut InsnCache) -> (Insn, bool) {
        c.code_pages = Recent::default();
        let insn = decode_at_rip(v, m, c).unwrap();
        (insn, c.code_pages.is_empty())
    }

    #[test]
    fn a_device_access_is_decoded_once_per_site_while_its_bytes_hold() {
        let (mut m, v) = long_mode(0x9000);
        // MOV QWORD [RAX+0xF0], 0x11223344: 11 bytes, watched as two loads.
        let mov = [0x48, 0xc7, 0x80, 0xf0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11];
        m.write(GuestPhys(0x9000), &mov).unwrap();
        let mut c = InsnCache::default();
        let (first, hit) = decoded_and_hit(&v, &m, &mut c);
        assert_eq!((first.len, first.imm, hit), (11, 0x1122_3344, false));
        let (again, hit) = decoded_and_hit(&v, &m, &mut c);
        assert_eq!((again.imm, hit), (0x1122_3344, true));
        // The last byte of the immediate changes (in the second load): decoded again.
        m.write(GuestPhys(0x900a), &[0x55]).unwrap();
        let (changed, hit) = decoded_and_hit(&v, &m, &mut c);
        assert_eq!((changed.imm, hit), (0x5522_3344, false));
        // What follows the instruction may change.
        m.write(GuestPhys(0x900b), &[0xcc]).unwrap();
        assert!(decoded_and_hit(&v, &m, &mut c).1);
        // A length site and a decoded one at the same place do not answer for each other.
        let (_, hit) = length_and_hit(&v, &m, &mut c, CPUID);
        assert!(!hit);
    }
}
