//! Host-physical memory bookkeeping: the free ranges left once the firmware's reserved
//! areas, Janus itself, the boot information and the modules are taken out.
//!
//! Pure logic, so it is tested here on the host; `boot` feeds it the multiboot memory map.

use crate::addr::HostPhys;
use arrayvec::ArrayVec;
use core::ops::Range;

pub const MAX_RANGES: usize = 256;

/// Free host-physical ranges. Allocation carves pieces out; memory a guest no longer
/// needs comes back through [`FreeRanges::add`], which merges it with its neighbours.
#[derive(Clone, Debug, Default)]
pub struct FreeRanges {
    free: ArrayVec<Range<u64>, MAX_RANGES>,
}

impl FreeRanges {
    pub const fn new() -> Self {
        Self {
            free: ArrayVec::new_const(),
        }
    }

    /// Adds an available range (from the firmware's memory map). Ranges that overlap one
    /// already added are merged away by [`FreeRanges::reserve`]-ing the overlap first.
    pub fn add(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let (mut start, mut end) = (r.start, r.end);
        self.reserve(start..end);
        // Neighbours join the new range, so that freed frames do not fragment the map.
        self.free.retain(|f| {
            if f.end == start {
                start = f.start;
                false
            } else if f.start == end {
                end = f.end;
                false
            } else {
                true
            }
        });
        // A map with more pieces than we can track loses the smallest extra pieces.
        let _ = self.free.try_push(start..end);
    }

    /// Takes `r` out of the free ranges (Janus' image, boot info, a module).
    pub fn reserve(&mut self, r: Range<u64>) {
        let mut out: ArrayVec<Range<u64>, MAX_RANGES> = ArrayVec::new();
        for f in self.free.drain(..) {
            if r.end <= f.start || f.end <= r.start {
                let _ = out.try_push(f);
                continue;
            }
            if f.start < r.start {
                let _ = out.try_push(f.start..r.start);
            }
            if r.end < f.end {
                let _ = out.try_push(r.end..f.end);
            }
        }
        self.free = out;
    }

    /// `size` bytes aligned to `align` (a power of two), from the lowest range that fits.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<HostPhys> {
        let mut best: Option<(usize, u64)> = None;
        for (i, f) in self.free.iter().enumerate() {
            let start = f.start.checked_add(align - 1)? & !(align - 1);
            if start.checked_add(size).is_some_and(|e| e <= f.end)
                && best.is_none_or(|(_, b)| start < b)
            {
                best = Some((i, start));
            }
        }
        let (_, start) = best?;
        self.reserve(start..start + size);
        Some(HostPhys(start))
    }

    /// Bytes still free.
    pub fn total(&self) -> u64 {
        self.free.iter().map(|r| r.end - r.start).sum()
    }

    /// The largest block of `align`-aligned memory that could still be allocated.
    pub fn largest(&self, align: u64) -> u64 {
        self.free
            .iter()
            .map(|f| {
                let s = (f.start + align - 1) & !(align - 1);
                f.end.saturating_sub(s)
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::MIB;

    #[test]
    fn reserved_areas_are_never_handed_out() {
        let mut f = FreeRanges::new();
        f.add(0x10_0000..0x800_0000);
        f.reserve(0x10_0000..0x14_0000); // the image
        f.reserve(0x20_0000..0x21_0000); // a module
        let a = f.alloc(4096, 4096).unwrap();
        assert_eq!(a, HostPhys(0x14_0000));
        let big = f.alloc(2 * MIB, 2 * MIB).unwrap();
        assert_eq!(
            big,
            HostPhys(0x40_0000),
            "0x200000 is partly reserved, so the next 2 MiB boundary"
        );
        for _ in 0..100 {
            let p = f.alloc(4096, 4096).unwrap().0;
            assert!(!(0x20_0000..0x21_0000).contains(&p));
            assert!(!(big.0..big.0 + 2 * MIB).contains(&p));
        }
    }

    #[test]
    fn freed_frames_merge_back_into_one_range() {
        let mut f = FreeRanges::new();
        f.add(0x10_0000..0x30_0000);
        let before = f.total();
        let frames: std::vec::Vec<_> = (0..400).map(|_| f.alloc(4096, 4096).unwrap()).collect();
        // Every other frame first (up to 200 separate pieces), then the ones between.
        for hpa in frames
            .iter()
            .rev()
            .step_by(2)
            .chain(frames.iter().rev().skip(1).step_by(2))
        {
            f.add(hpa.0..hpa.0 + 4096);
        }
        assert_eq!(f.total(), before, "nothing lost");
        assert_eq!(f.largest(4096), before, "one range again");
    }

    #[test]
    fn too_large_requests_fail() {
        let mut f = FreeRanges::new();
        f.add(0x10_0000..0x30_0000);
        assert_eq!(f.alloc(4 * MIB, 4096), None);
        assert_eq!(f.largest(2 * MIB), 0x10_0000);
        assert_eq!(f.total(), 0x20_0000);
    }

    #[test]
    fn overlapping_map_entries_do_not_double_count() {
        let mut f = FreeRanges::new();
        f.add(0x10_0000..0x20_0000);
        f.add(0x18_0000..0x28_0000);
        assert_eq!(f.total(), 0x18_0000);
    }
}
