//! Walking the guest's own page tables: guest-virtual to guest-physical, the way the
//! guest's CPU would, for the VMM's accesses on its behalf (string I/O, instruction
//! fetch for decoding, MMIO operands).
//!
//! Manual: Intel SDM Vol 3A (rev. 084, 2024), chapter 4 "Paging": 4.3 32-bit paging,
//! 4.4 PAE paging, 4.5 4-level and 5-level paging, 4.6 access rights, 4.7 page-fault
//! error code. AMD APM Vol 2 (rev. 3.42) 5.2-5.6 agrees.
//!
//! Not done (yet): accessed/dirty bits are not set by these walks, reserved-bit checks
//! are not made, PAE PDPTEs are read from memory on every walk instead of the copy the
//! CPU loaded with CR3, protection keys and SMAP/SMEP are not applied.

use crate::addr::{GuestPhys, GuestVirt};
use crate::memory::{GuestMemory, MemError, Watches};
use arrayvec::ArrayVec;

use crate::cpu_rules::cr0::{PG as CR0_PG, WP as CR0_WP};
use crate::cpu_rules::cr4::{LA57 as CR4_LA57, PAE as CR4_PAE, PSE as CR4_PSE};
use crate::cpu_rules::efer::{LMA as EFER_LMA, NXE as EFER_NXE};

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PS: u64 = 1 << 7;
const XD: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Page-fault error code bits (SDM Vol 3A 4.7).
pub mod pf {
    pub const PRESENT: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const USER: u32 = 1 << 2;
    pub const FETCH: u32 = 1 << 4;
}

/// The registers that decide how the guest translates addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG clear: linear = physical (32 bits wide outside long mode).
    Off,
    /// 2-level 32-bit paging (4 MiB pages with CR4.PSE).
    Bits32,
    /// PAE paging: 3 levels, 64-bit entries.
    Pae,
    /// IA-32e 4-level paging.
    Level4,
    /// IA-32e 5-level paging (CR4.LA57).
    Level5,
}

impl PagingState {
    pub fn mode(&self) -> PagingMode {
        if self.cr0 & CR0_PG == 0 {
            PagingMode::Off
        } else if self.efer & EFER_LMA != 0 {
            if self.cr4 & CR4_LA57 != 0 {
                PagingMode::Level5
            } else {
                PagingMode::Level4
            }
        } else if self.cr4 & CR4_PAE != 0 {
            PagingMode::Pae
        } else {
            PagingMode::Bits32
        }
    }
}

/// The kind of access being translated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    /// Made at CPL 3.
    pub user: bool,
    /// An instruction fetch.
    pub fetch: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The guest's own tables forbid the access: the VMM injects #PF with this error
    /// code and CR2 = `gva`.
    PageFault { gva: GuestVirt, error_code: u32 },
    /// A table or the final address lies outside guest RAM (the guest pointed its page
    /// tables at nothing): not an architectural #PF, an error for the VMM.
    Memory(MemError),
}

impl From<MemError> for WalkError {
    fn from(e: MemError) -> Self {
        WalkError::Memory(e)
    }
}

impl core::fmt::Display for WalkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WalkError::PageFault { gva, error_code } => {
                write!(f, "page fault at {gva} (error code {error_code:#x})")
            }
            WalkError::Memory(e) => write!(f, "{e}"),
        }
    }
}

/// The rights the entries walked so far grant: R/W and U/S are ANDed over the levels,
/// XD ORed (when EFER.NXE makes it a control), as bits so a level costs two operations.
struct Rights {
    all: u64,
    any: u64,
}

impl Rights {
    fn all() -> Self {
        Rights { all: !0, any: 0 }
    }
    fn restrict(&mut self, entry: u64, nxe: bool) {
        self.all &= entry;
        if nxe {
            self.any |= entry;
        }
    }
    fn write(&self) -> bool {
        self.all & RW != 0
    }
    fn user(&self) -> bool {
        self.all & US != 0
    }
    fn exec(&self) -> bool {
        self.any & XD == 0
    }
}

fn fault(gva: GuestVirt, access: Access, present: bool) -> WalkError {
    let mut code = 0;
    if present {
        code |= pf::PRESENT;
    }
    if access.write {
        code |= pf::WRITE;
    }
    if access.user {
        code |= pf::USER;
    }
    if access.fetch {
        code |= pf::FETCH;
    }
    WalkError::PageFault {
        gva,
        error_code: code,
    }
}

/// Translates `gva` for `access`, checking the rights the guest's tables grant.
pub fn translate(
    mem: &GuestMemory,
    paging: &PagingState,
    gva: GuestVirt,
    access: Access,
) -> Result<GuestPhys, WalkError> {
    translate_traced(mem, paging, gva, access, &mut Trail::default())
}

/// The page-table entries one walk read, where and what: the same paging registers and
/// the same entries give the same translation, which a [`Trail::watch`] on them checks
/// for a cached translation at a fraction of a walk's cost.
#[derive(Clone, Debug, Default)]
pub struct Trail {
    entries: ArrayVec<Entry, 5>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    gpa: GuestPhys,
    value: u64,
    /// A 64-bit entry (PAE, 4- and 5-level paging); else a 32-bit one.
    wide: bool,
}

impl Trail {
    fn read64(&mut self, mem: &GuestMemory, gpa: u64) -> Result<u64, MemError> {
        let value = mem.read_u64(GuestPhys(gpa))?;
        self.record(gpa, value, true);
        Ok(value)
    }
    fn read32(&mut self, mem: &GuestMemory, gpa: u64) -> Result<u64, MemError> {
        let value = u64::from(mem.read_u32(GuestPhys(gpa))?);
        self.record(gpa, value, false);
        Ok(value)
    }
    fn record(&mut self, gpa: u64, value: u64, wide: bool) {
        // At most five levels: the push cannot fail.
        let _ = self.entries.try_push(Entry {
            gpa: GuestPhys(gpa),
            value,
            wide,
        });
    }
    /// Watches each entry for what the walk read (`None` when one cannot be watched:
    /// a 32-bit entry in the last 4 bytes of a region, or more than `w` takes).
    pub fn watch<const N: usize>(&self, mem: &GuestMemory, w: &mut Watches<N>) -> Option<()> {
        for e in &self.entries {
            let mask = if e.wide { u64::MAX } else { 0xffff_ffff };
            w.add(mem, e.gpa, mask, e.value)?;
        }
        Some(())
    }
}

/// [`translate`], recording the entries it reads in `trail`.
pub fn translate_traced(
    mem: &GuestMemory,
    paging: &PagingState,
    gva: GuestVirt,
    access: Access,
    trail: &mut Trail,
) -> Result<GuestPhys, WalkError> {
    let nxe = paging.efer & EFER_NXE != 0;
    let mut rights = Rights::all();
    let va = gva.0;
    let (gpa, _) = match paging.mode() {
        PagingMode::Off => {
            let pa = if paging.efer & EFER_LMA != 0 {
                va
            } else {
                va & 0xffff_ffff
            };
            return Ok(GuestPhys(pa));
        }
        PagingMode::Bits32 => {
            let va = va & 0xffff_ffff;
            let pde_addr = (paging.cr3 & 0xffff_f000) + ((va >> 22) & 0x3ff) * 4;
            let pde = trail.read32(mem, pde_addr)?;
            if pde & P == 0 {
                return Err(fault(gva, access, false));
            }
            rights.restrict(pde, false);
            if pde & PS != 0 && paging.cr4 & CR4_PSE != 0 {
                // 4 MiB page: bits 20:13 hold physical address bits 39:32.
                let base = (pde & 0xffc0_0000) | ((pde >> 13) & 0xff) << 32;
                (base | (va & 0x3f_ffff), ())
            } else {
                let pte_addr = (pde & 0xffff_f000) + ((va >> 12) & 0x3ff) * 4;
                let pte = trail.read32(mem, pte_addr)?;
                if pte & P == 0 {
                    return Err(fault(gva, access, false));
                }
                rights.restrict(pte, false);
                ((pte & 0xffff_f000) | (va & 0xfff), ())
            }
        }
        PagingMode::Pae => {
            let va = va & 0xffff_ffff;
            let pdpte_addr = (paging.cr3 & 0xffff_ffe0) + ((va >> 30) & 3) * 8;
            let pdpte = trail.read64(mem, pdpte_addr)?;
            if pdpte & P == 0 {
                return Err(fault(gva, access, false));
            }
            // PDPTEs carry no access rights in PAE mode (SDM 4.4.1).
            (
                walk_levels(
                    mem,
                    trail,
                    pdpte & ADDR_MASK,
                    va,
                    2,
                    (access, gva),
                    nxe,
                    &mut rights,
                )?,
                (),
            )
        }
        PagingMode::Level4 => (
            walk_levels(
                mem,
                trail,
                paging.cr3 & ADDR_MASK,
                va,
                4,
                (access, gva),
                nxe,
                &mut rights,
            )?,
            (),
        ),
        PagingMode::Level5 => (
            walk_levels(
                mem,
                trail,
                paging.cr3 & ADDR_MASK,
                va,
                5,
                (access, gva),
                nxe,
                &mut rights,
            )?,
            (),
        ),
    };
    // Access rights (SDM 4.6): user accesses need U/S everywhere; writes need R/W
    // everywhere, for supervisor writes only when CR0.WP is set.
    let denied = (access.user && !rights.user())
        || (access.write && !rights.write() && (access.user || paging.cr0 & CR0_WP != 0))
        || (access.fetch && !rights.exec());
    if denied {
        return Err(fault(gva, access, true));
    }
    Ok(GuestPhys(gpa))
}

/// Walks `levels` levels of 64-bit entries starting with the table at `table`.
#[allow(clippy::too_many_arguments)]
fn walk_levels(
    mem: &GuestMemory,
    trail: &mut Trail,
    mut table: u64,
    va: u64,
    levels: u32,
    (access, gva): (Access, GuestVirt),
    nxe: bool,
    rights: &mut Rights,
) -> Result<u64, WalkError> {
    for level in (1..=levels).rev() {
        let shift = 12 + 9 * (level - 1);
        let entry = trail.read64(mem, table + ((va >> shift) & 0x1ff) * 8)?;
        if entry & P == 0 {
            return Err(fault(gva, access, false));
        }
        rights.restrict(entry, nxe);
        // Large pages: PS in a PDE (2 MiB) or a PDPTE (1 GiB).
        if level == 1 || ((level == 2 || level == 3) && entry & PS != 0) {
            let page_mask = (1u64 << shift) - 1;
            return Ok((entry & ADDR_MASK & !page_mask) | (va & page_mask));
        }
        table = entry & ADDR_MASK;
    }
    unreachable!("the loop returns at level 1")
}

/// Splits `[gva, gva+len)` into pieces that do not cross a 4 KiB page.
fn pieces(gva: GuestVirt, len: usize) -> impl Iterator<Item = (GuestVirt, usize, usize)> {
    let mut done = 0usize;
    core::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let va = gva.0.wrapping_add(done as u64);
        let in_page = (0x1000 - (va & 0xfff)) as usize;
        let n = in_page.min(len - done);
        let piece = (GuestVirt(va), done, n);
        done += n;
        Some(piece)
    })
}

/// Reads `buf.len()` bytes at guest-virtual `gva` as the guest would with `access`.
pub fn read_virt(
    mem: &GuestMemory,
    paging: &PagingState,
    gva: GuestVirt,
    buf: &mut [u8],
    access: Access,
) -> Result<(), WalkError> {
    let access = Access {
        write: false,
        ..access
    };
    for (va, off, n) in pieces(gva, buf.len()) {
        let gpa = translate(mem, paging, va, access)?;
        mem.read(gpa, &mut buf[off..off + n])?;
    }
    Ok(())
}

/// Writes `data` at guest-virtual `gva` as the guest would (a data write at CPL 0 unless
/// `access.user`). Every page is translated before any byte is written, so a fault
/// leaves memory unchanged.
pub fn write_virt(
    mem: &mut GuestMemory,
    paging: &PagingState,
    gva: GuestVirt,
    data: &[u8],
    access: Access,
) -> Result<(), WalkError> {
    let access = Access {
        write: true,
        fetch: false,
        ..access
    };
    for (va, _, n) in pieces(gva, data.len()) {
        let gpa = translate(mem, paging, va, access)?;
        if !mem.contains(gpa, n as u64) {
            return Err(WalkError::Memory(MemError::OutOfRange {
                gpa,
                len: n as u64,
            }));
        }
    }
    for (va, off, n) in pieces(gva, data.len()) {
        let gpa = translate(mem, paging, va, access)?;
        mem.write(gpa, &data[off..off + n])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::testing::ram;

    const PG: u64 = CR0_PG | 1;
    const RO_KERNEL: u64 = P;
    const RW_USER: u64 = P | RW | US;

    /// 4-level tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD), 0x4000 (PT):
    /// VA 0x40_0000 -> 4K page 0x9000 (RW user), VA 0x40_1000 -> 0xa000 (read-only kernel),
    /// VA 0x60_0000 -> 2 MiB page at 0x20_0000, VA 0x40_2000 not present.
    fn long_mode() -> (GuestMemory, PagingState) {
        let mut m = ram(0x40_0000);
        m.write_u64(GuestPhys(0x1000), 0x2000 | RW_USER).unwrap();
        m.write_u64(GuestPhys(0x2000), 0x3000 | RW_USER).unwrap();
        m.write_u64(GuestPhys(0x3000 + 2 * 8), 0x4000 | RW_USER)
            .unwrap();
        m.write_u64(GuestPhys(0x3000 + 3 * 8), 0x20_0000 | RW_USER | PS)
            .unwrap();
        m.write_u64(GuestPhys(0x4000), 0x9000 | RW_USER).unwrap();
        m.write_u64(GuestPhys(0x4000 + 8), 0xa000 | RO_KERNEL | XD)
            .unwrap();
        let p = PagingState {
            cr0: PG | CR0_WP,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA | EFER_NXE | (1 << 8),
        };
        (m, p)
    }

    #[test]
    fn paging_off_is_identity_and_32_bits_outside_long_mode() {
        let m = ram(0x1000);
        let p = PagingState::default();
        assert_eq!(p.mode(), PagingMode::Off);
        assert_eq!(
            translate(&m, &p, GuestVirt(0x1_0000_0123), Access::default()),
            Ok(GuestPhys(0x123))
        );
    }

    #[test]
    fn four_level_4k_and_2m_pages() {
        let (m, p) = long_mode();
        assert_eq!(p.mode(), PagingMode::Level4);
        let a = Access::default();
        assert_eq!(
            translate(&m, &p, GuestVirt(0x40_0123), a),
            Ok(GuestPhys(0x9123))
        );
        assert_eq!(
            translate(&m, &p, GuestVirt(0x61_2345), a),
            Ok(GuestPhys(0x21_2345))
        );
    }

    #[test]
    fn faults_carry_the_error_code() {
        let (m, p) = long_mode();
        let not_present = translate(
            &m,
            &p,
            GuestVirt(0x40_2000),
            Access {
                write: true,
                ..Default::default()
            },
        );
        assert_eq!(
            not_present,
            Err(WalkError::PageFault {
                gva: GuestVirt(0x40_2000),
                error_code: pf::WRITE
            })
        );
        let user_on_kernel = translate(
            &m,
            &p,
            GuestVirt(0x40_1000),
            Access {
                user: true,
                ..Default::default()
            },
        );
        assert_eq!(
            user_on_kernel,
            Err(WalkError::PageFault {
                gva: GuestVirt(0x40_1000),
                error_code: pf::PRESENT | pf::USER
            })
        );
        let wp = translate(
            &m,
            &p,
            GuestVirt(0x40_1008),
            Access {
                write: true,
                ..Default::default()
            },
        );
        assert_eq!(
            wp,
            Err(WalkError::PageFault {
                gva: GuestVirt(0x40_1008),
                error_code: pf::PRESENT | pf::WRITE
            })
        );
        let nx = translate(
            &m,
            &p,
            GuestVirt(0x40_1000),
            Access {
                fetch: true,
                ..Default::default()
            },
        );
        assert_eq!(
            nx,
            Err(WalkError::PageFault {
                gva: GuestVirt(0x40_1000),
                error_code: pf::PRESENT | pf::FETCH
            })
        );
        // Without CR0.WP a supervisor write to a read-only page succeeds.
        let p2 = PagingState { cr0: PG, ..p };
        assert_eq!(
            translate(
                &m,
                &p2,
                GuestVirt(0x40_1008),
                Access {
                    write: true,
                    ..Default::default()
                }
            ),
            Ok(GuestPhys(0xa008))
        );
    }

    #[test]
    fn tables_outside_ram_are_a_memory_error() {
        let (m, mut p) = long_mode();
        p.cr3 = 0x1_0000_0000;
        assert!(matches!(
            translate(&m, &p, GuestVirt(0), Access::default()),
            Err(WalkError::Memory(_))
        ));
    }

    #[test]
    fn thirty_two_bit_paging_with_4m_pages() {
        let mut m = ram(0x80_0000);
        m.write_u32(GuestPhys(0x1000 + 4), 0x2000 | 7).unwrap(); // VA 4M..8M -> PT at 0x2000
        m.write_u32(GuestPhys(0x2000 + 5 * 4), 0x7000 | 7).unwrap();
        m.write_u32(GuestPhys(0x1000 + 0x300 * 4), 0x40_0000 | 0x83)
            .unwrap(); // VA 0xC000_0000 -> 4 MiB page at 4M
        let p = PagingState {
            cr0: PG,
            cr3: 0x1000,
            cr4: CR4_PSE,
            efer: 0,
        };
        assert_eq!(p.mode(), PagingMode::Bits32);
        let a = Access::default();
        assert_eq!(
            translate(&m, &p, GuestVirt(0x40_5abc), a),
            Ok(GuestPhys(0x7abc))
        );
        assert_eq!(
            translate(&m, &p, GuestVirt(0xc012_3456), a),
            Ok(GuestPhys(0x52_3456))
        );
        assert!(matches!(
            translate(&m, &p, GuestVirt(0x80_0000), a),
            Err(WalkError::PageFault { .. })
        ));
    }

    #[test]
    fn pae_paging() {
        let mut m = ram(0x40_0000);
        m.write_u64(GuestPhys(0x1000 + 3 * 8), 0x2000 | P).unwrap(); // VA 3G..4G
        m.write_u64(GuestPhys(0x2000), 0x3000 | 7).unwrap();
        m.write_u64(GuestPhys(0x3000 + 8), 0x8000 | 7).unwrap();
        m.write_u64(GuestPhys(0x2000 + 8), 0x20_0000 | 0x87)
            .unwrap(); // 2 MiB page
        let p = PagingState {
            cr0: PG,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: 0,
        };
        assert_eq!(p.mode(), PagingMode::Pae);
        let a = Access::default();
        assert_eq!(
            translate(&m, &p, GuestVirt(0xc000_1010), a),
            Ok(GuestPhys(0x8010))
        );
        assert_eq!(
            translate(&m, &p, GuestVirt(0xc020_0010), a),
            Ok(GuestPhys(0x20_0010))
        );
    }

    #[test]
    fn reads_and_writes_across_pages() {
        let (mut m, p) = long_mode();
        // VA 0x40_0ffe..0x40_1002 spans the user page and the read-only kernel page.
        m.write(GuestPhys(0x9ffe), &[1, 2]).unwrap();
        m.write(GuestPhys(0xa000), &[3, 4]).unwrap();
        let mut buf = [0u8; 4];
        read_virt(&m, &p, GuestVirt(0x40_0ffe), &mut buf, Access::default()).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        // The write faults on the second page and leaves the first unchanged.
        let r = write_virt(
            &mut m,
            &p,
            GuestVirt(0x40_0ffe),
            &[9, 9, 9, 9],
            Access::default(),
        );
        assert!(matches!(
            r,
            Err(WalkError::PageFault {
                gva: GuestVirt(0x40_1000),
                ..
            })
        ));
        assert_eq!(m.read_u16(GuestPhys(0x9ffe)).unwrap(), 0x0201);
        write_virt(&mut m, &p, GuestVirt(0x40_0100), &[7, 7], Access::default()).unwrap();
        assert_eq!(m.read_u16(GuestPhys(0x9100)).unwrap(), 0x0707);
    }
}
