//! A range of addresses minus the ranges in use: how the runtime finds free RAM around
//! the image and whatever the loader left (pure code: the host tests of `janus-ci`
//! compile it too). No allocator: at most [`MAX_USED`] ranges are remembered.

use core::ops::Range;

/// The most ranges a [`Used`] holds: the image, the boot information and its pieces, and
/// a string and the contents of each of up to 32 modules.
pub const MAX_USED: usize = 80;

/// Ranges in use, sorted by start. One that did not fit makes every gap empty: better
/// no free RAM than free RAM that is not.
#[derive(Clone, Copy, Debug)]
pub struct Used {
    ranges: [(u64, u64); MAX_USED],
    len: usize,
    overflow: bool,
}

impl Default for Used {
    fn default() -> Used {
        Used {
            ranges: [(0, 0); MAX_USED],
            len: 0,
            overflow: false,
        }
    }
}

impl Used {
    /// Adds `r` (nothing when it is empty).
    pub fn add(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        if self.len == MAX_USED {
            self.overflow = true;
            return;
        }
        let at = self.ranges[..self.len].partition_point(|&(s, _)| s <= r.start);
        self.ranges.copy_within(at..self.len, at + 1);
        self.ranges[at] = (r.start, r.end);
        self.len += 1;
    }

    /// Whether any range in use overlaps `r`.
    pub fn overlaps(&self, r: &Range<u64>) -> bool {
        self.ranges[..self.len]
            .iter()
            .any(|&(s, e)| s < r.end && r.start < e)
    }

    /// The parts of `within` that no range in use covers, in order.
    pub fn gaps(&self, within: Range<u64>) -> Gaps {
        Gaps {
            used: *self,
            next: 0,
            cursor: within.start,
            end: if self.overflow {
                within.start
            } else {
                within.end
            },
        }
    }
}

/// The iterator of [`Used::gaps`].
#[derive(Clone, Debug)]
pub struct Gaps {
    used: Used,
    next: usize,
    cursor: u64,
    end: u64,
}

impl Iterator for Gaps {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        while self.cursor < self.end {
            let Some(&(s, e)) = self.used.ranges[..self.used.len].get(self.next) else {
                let gap = self.cursor..self.end;
                self.cursor = self.end;
                return Some(gap);
            };
            self.next += 1;
            let gap = self.cursor..s.min(self.end);
            self.cursor = self.cursor.max(e);
            if gap.start < gap.end {
                return Some(gap);
            }
        }
        None
    }
}
