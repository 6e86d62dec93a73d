//! The guest-physical memory map of one VM: RAM regions backed by host memory.
//!
//! Every access the VMM makes on the guest's behalf goes through here, and is bounded
//! by the regions: a hostile guest that hands the VMM an address outside its RAM gets
//! an error value, never host memory.

use crate::addr::{GuestPhys, HostPhys};
use arrayvec::ArrayVec;
use core::fmt;
use core::ptr::NonNull;

/// One contiguous piece of guest RAM.
#[derive(Clone, Copy, Debug)]
pub struct RamRegion {
    pub gpa: GuestPhys,
    pub hpa: HostPhys,
    pub len: u64,
    host: NonNull<u8>,
}

impl RamRegion {
    pub fn end(&self) -> u64 {
        self.gpa.0 + self.len
    }
    fn offset_of(&self, gpa: GuestPhys, len: u64) -> Option<usize> {
        let off = gpa.0.checked_sub(self.gpa.0)?;
        (off.checked_add(len)? <= self.len).then_some(off as usize)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// The access `[gpa, gpa+len)` is not inside one RAM region.
    OutOfRange { gpa: GuestPhys, len: u64 },
    /// The region overlaps another or there are too many regions.
    BadRegion,
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemError::OutOfRange { gpa, len } => {
                write!(
                    f,
                    "guest-physical {:#x}+{:#x} is outside guest RAM",
                    gpa.0, len
                )
            }
            MemError::BadRegion => write!(f, "overlapping or too many RAM regions"),
        }
    }
}

pub const MAX_REGIONS: usize = 8;

/// Places in one VM's guest RAM, each expected to hold a value (the low `mask` bits of
/// the 8 bytes there): the exit path's caches check the same few places on every exit,
/// and a check is a load and a compare each, without searching the regions again.
/// Tied to the [`GuestMemory`] that found the places (its `id`): checked against any
/// other memory, they do not hold.
#[derive(Clone, Debug)]
pub struct Watches<const N: usize> {
    memory: u64,
    list: ArrayVec<Watch, N>,
}

#[derive(Clone, Copy, Debug)]
struct Watch {
    host: NonNull<u64>,
    mask: u64,
    value: u64,
}

// SAFETY: a Watch's pointer is only read, through `Watches::hold` and
// `Watches::hold_in_live_memory`, while the memory whose region it points into is
// borrowed or known to live (see there); moving it between CPUs is fine.
unsafe impl Send for Watch {}

impl<const N: usize> Watches<N> {
    /// No places yet, in `mem`.
    pub fn new(mem: &GuestMemory) -> Self {
        Watches {
            memory: mem.id,
            list: ArrayVec::new(),
        }
    }

    /// Watches the low `mask` bits of the 8 bytes at `gpa`, which must hold `value`
    /// now. `None` (and nothing added) when the 8 bytes are not in one region of the
    /// memory, when they hold something else, or when `N` places are watched already.
    pub fn add(&mut self, mem: &GuestMemory, gpa: GuestPhys, mask: u64, value: u64) -> Option<()> {
        if mem.id != self.memory || self.list.is_full() {
            return None;
        }
        let (base, off) = mem.locate(gpa, 8).ok()?;
        // SAFETY: `locate` found [off, off+8) inside a region.
        let host = unsafe { base.add(off) }.cast::<u64>();
        let w = Watch { host, mask, value };
        w.read().then(|| self.list.push(w))
    }

    /// The same places, in a list with room for `M` (more places to come); `None`
    /// when they do not fit.
    pub fn widened<const M: usize>(&self) -> Option<Watches<M>> {
        let mut list = ArrayVec::new();
        for w in &self.list {
            list.try_push(*w).ok()?;
        }
        Some(Watches {
            memory: self.memory,
            list,
        })
    }

    /// Whether every place still holds its value, in `mem`.
    #[inline(always)]
    pub fn hold(&self, mem: &GuestMemory) -> bool {
        // A memory's `id` is new with each region it gets, and regions stay until it
        // goes: the same `id` means the regions the places were found in, still there.
        mem.id == self.memory && self.list.iter().all(|w| w.read())
    }

    /// [`Watches::hold`] without the memory at hand: for a copy kept where the VM is
    /// not (a vCPU's CPUID site, [`crate::in_place`]), checked while the VM runs it.
    ///
    /// # Safety
    /// The memory the places were found in must still live (its regions are then where
    /// they were: a memory's regions stay until it goes).
    #[inline(always)]
    pub unsafe fn hold_in_live_memory(&self) -> bool {
        self.list.iter().all(|w| w.read())
    }
}

impl Watch {
    /// Whether the place holds the value.
    ///
    /// Only called for a watch of a memory that is borrowed now (`Watches::add`,
    /// `Watches::hold`) or known to live (`Watches::hold_in_live_memory`).
    #[inline(always)]
    fn read(&self) -> bool {
        // SAFETY: `host` points at 8 bytes inside a region of the memory the caller
        // borrows (its `id` matched) or knows to live, valid while it lives (the contract of
        // `add_region`); the read is unaligned-safe.
        let now = unsafe { self.host.as_ptr().read_unaligned() };
        now & self.mask == self.value
    }
}

/// The RAM of one VM.
#[derive(Default)]
pub struct GuestMemory {
    regions: ArrayVec<RamRegion, MAX_REGIONS>,
    /// New with every region added (never 0 then): tells [`Watches`] that the regions
    /// they were found in are these.
    id: u64,
}

/// The next [`GuestMemory::id`].
static NEXT_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

// SAFETY: GuestMemory owns its regions exclusively (see `add_region`); the raw pointers
// are only dereferenced through &self/&mut self methods, so moving it between CPUs is fine.
unsafe impl Send for GuestMemory {}

impl GuestMemory {
    pub const fn new() -> Self {
        Self {
            regions: ArrayVec::new_const(),
            id: 0,
        }
    }

    /// Adds `len` bytes of RAM at guest-physical `gpa`, backed by host-physical `hpa`, which
    /// the VMM reaches through `host`.
    ///
    /// # Safety
    /// `host` must point at `len` bytes that stay valid and are used by nothing else for
    /// as long as this `GuestMemory` lives (the guest itself excepted).
    pub unsafe fn add_region(
        &mut self,
        gpa: GuestPhys,
        hpa: HostPhys,
        len: u64,
        host: NonNull<u8>,
    ) -> Result<(), MemError> {
        let end = gpa.0.checked_add(len).ok_or(MemError::BadRegion)?;
        if len == 0
            || self
                .regions
                .iter()
                .any(|r| gpa.0 < r.end() && r.gpa.0 < end)
        {
            return Err(MemError::BadRegion);
        }
        self.regions
            .try_push(RamRegion {
                gpa,
                hpa,
                len,
                host,
            })
            .map_err(|_| MemError::BadRegion)?;
        self.id = NEXT_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub fn regions(&self) -> &[RamRegion] {
        &self.regions
    }

    /// Total RAM in bytes.
    pub fn size(&self) -> u64 {
        self.regions.iter().map(|r| r.len).sum()
    }

    /// The host slice behind `[gpa, gpa+len)`, if it lies in one region.
    fn locate(&self, gpa: GuestPhys, len: u64) -> Result<(NonNull<u8>, usize), MemError> {
        self.regions
            .iter()
            .find_map(|r| r.offset_of(gpa, len).map(|off| (r.host, off)))
            .ok_or(MemError::OutOfRange { gpa, len })
    }

    /// Whether `[gpa, gpa+len)` is guest RAM.
    pub fn contains(&self, gpa: GuestPhys, len: u64) -> bool {
        self.locate(gpa, len).is_ok()
    }

    pub fn slice(&self, gpa: GuestPhys, len: usize) -> Result<&[u8], MemError> {
        let (base, off) = self.locate(gpa, len as u64)?;
        // SAFETY: `locate` checked that [off, off+len) lies inside a region, whose host
        // memory is valid and exclusively ours (the contract of `add_region`).
        Ok(unsafe { core::slice::from_raw_parts(base.as_ptr().add(off), len) })
    }

    pub fn slice_mut(&mut self, gpa: GuestPhys, len: usize) -> Result<&mut [u8], MemError> {
        let (base, off) = self.locate(gpa, len as u64)?;
        // SAFETY: as in `slice`; &mut self makes the borrow unique.
        Ok(unsafe { core::slice::from_raw_parts_mut(base.as_ptr().add(off), len) })
    }

    pub fn read(&self, gpa: GuestPhys, buf: &mut [u8]) -> Result<(), MemError> {
        buf.copy_from_slice(self.slice(gpa, buf.len())?);
        Ok(())
    }

    pub fn write(&mut self, gpa: GuestPhys, data: &[u8]) -> Result<(), MemError> {
        self.slice_mut(gpa, data.len())?.copy_from_slice(data);
        Ok(())
    }

    pub fn fill(&mut self, gpa: GuestPhys, len: usize, byte: u8) -> Result<(), MemError> {
        self.slice_mut(gpa, len)?.fill(byte);
        Ok(())
    }

    /// `N` bytes at `gpa` as an array: one bounds check and one load of known size, no
    /// `memcpy` call (the page walks of every MMIO exit read their entries this way).
    pub fn read_array<const N: usize>(&self, gpa: GuestPhys) -> Result<[u8; N], MemError> {
        let (base, off) = self.locate(gpa, N as u64)?;
        // SAFETY: `locate` checked that [off, off+N) lies inside a region, whose host
        // memory is valid and exclusively ours (the contract of `add_region`); the read
        // is unaligned-safe.
        Ok(unsafe { base.as_ptr().add(off).cast::<[u8; N]>().read_unaligned() })
    }

    pub fn read_u8(&self, gpa: GuestPhys) -> Result<u8, MemError> {
        self.read_array::<1>(gpa).map(|b| b[0])
    }
    pub fn read_u16(&self, gpa: GuestPhys) -> Result<u16, MemError> {
        self.read_array(gpa).map(u16::from_le_bytes)
    }
    pub fn read_u32(&self, gpa: GuestPhys) -> Result<u32, MemError> {
        self.read_array(gpa).map(u32::from_le_bytes)
    }
    pub fn read_u64(&self, gpa: GuestPhys) -> Result<u64, MemError> {
        self.read_array(gpa).map(u64::from_le_bytes)
    }
    pub fn write_u16(&mut self, gpa: GuestPhys, v: u16) -> Result<(), MemError> {
        self.write(gpa, &v.to_le_bytes())
    }
    pub fn write_u32(&mut self, gpa: GuestPhys, v: u32) -> Result<(), MemError> {
        self.write(gpa, &v.to_le_bytes())
    }
    pub fn write_u64(&mut self, gpa: GuestPhys, v: u64) -> Result<(), MemError> {
        self.write(gpa, &v.to_le_bytes())
    }
}

/// Test support: guest RAM backed by a leaked heap buffer.
#[cfg(test)]
pub(crate) mod testing {
    extern crate std;
    use super::*;
    use std::vec;

    pub fn ram(size: usize) -> GuestMemory {
        let buf = vec![0u8; size].leak();
        let mut m = GuestMemory::new();
        // SAFETY: the leaked buffer lives forever and nothing else uses it.
        unsafe {
            m.add_region(
                GuestPhys(0),
                HostPhys(0x1000_0000),
                size as u64,
                NonNull::new(buf.as_mut_ptr()).unwrap(),
            )
            .unwrap()
        };
        m
    }
}

#[cfg(test)]
mod tests {
    use super::testing::ram;
    use super::*;

    #[test]
    fn reads_and_writes_inside_ram() {
        let mut m = ram(0x2000);
        m.write_u32(GuestPhys(0x1ffc), 0xdead_beef).unwrap();
        assert_eq!(m.read_u32(GuestPhys(0x1ffc)).unwrap(), 0xdead_beef);
        assert_eq!(m.read_u8(GuestPhys(0x1fff)).unwrap(), 0xde);
    }

    #[test]
    fn refuses_accesses_past_the_end_or_wrapping() {
        let mut m = ram(0x2000);
        assert_eq!(
            m.read_u32(GuestPhys(0x1ffd)),
            Err(MemError::OutOfRange {
                gpa: GuestPhys(0x1ffd),
                len: 4
            })
        );
        assert!(m.write_u64(GuestPhys(u64::MAX - 3), 1).is_err());
        assert!(m.slice(GuestPhys(0x2000), 1).is_err());
        assert!(m.contains(GuestPhys(0), 0x2000));
        assert!(!m.contains(GuestPhys(0), 0x2001));
    }

    #[test]
    fn overlapping_regions_are_refused() {
        let mut m = ram(0x2000);
        let mut b = [0u8; 16];
        // SAFETY: `b` outlives `m` in this test and is not otherwise used.
        let r = unsafe {
            m.add_region(
                GuestPhys(0x1000),
                HostPhys(0),
                16,
                NonNull::new(b.as_mut_ptr()).unwrap(),
            )
        };
        assert_eq!(r, Err(MemError::BadRegion));
    }

    #[test]
    fn watches_see_a_change_and_hold_only_in_their_memory() {
        let mut m = ram(0x2000);
        m.write_u64(GuestPhys(0x100), 0x1122_3344_5566_7788)
            .unwrap();
        let mut w: Watches<2> = Watches::new(&m);
        assert_eq!(
            w.add(&m, GuestPhys(0x100), 0xffff_ffff, 0),
            None,
            "not what it holds"
        );
        assert_eq!(
            w.add(&m, GuestPhys(0x1ffc), 0xffff_ffff, 0),
            None,
            "8 bytes past the end"
        );
        w.add(&m, GuestPhys(0x100), 0xffff_ffff, 0x5566_7788)
            .unwrap();
        w.add(&m, GuestPhys(0x1ff8), u64::MAX, 0).unwrap();
        assert_eq!(w.add(&m, GuestPhys(0), 0, 0), None, "full");
        assert!(w.hold(&m));
        m.write_u32(GuestPhys(0x104), 0).unwrap();
        assert!(w.hold(&m), "bits outside the mask may change");
        m.write_u32(GuestPhys(0x100), 0).unwrap();
        assert!(!w.hold(&m));
        // Another memory, even one that reads the same: never.
        let other = ram(0x2000);
        let empty: Watches<2> = Watches::new(&other);
        assert!(empty.hold(&other) && !empty.hold(&m));
        assert!(!Watches::<2>::new(&m).hold(&other));
        // A region added: the memory's regions changed, its old watches do not hold.
        let mut b = [0u8; 0x1000];
        let mut w: Watches<1> = Watches::new(&m);
        w.add(&m, GuestPhys(0x200), u64::MAX, 0).unwrap();
        // SAFETY: `b` outlives `m`'s use in this test and is not otherwise used.
        unsafe {
            m.add_region(
                GuestPhys(0x10_0000),
                HostPhys(0),
                0x1000,
                NonNull::new(b.as_mut_ptr()).unwrap(),
            )
        }
        .unwrap();
        assert!(!w.hold(&m));
    }
}
