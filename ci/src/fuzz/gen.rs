//! Structured inputs from random bytes: an infallible wrapper around `arbitrary`'s
//! `Unstructured` (which turns a byte string into choices, integers in ranges and
//! slices), plus the "interesting values" that reach the edges of header arithmetic.

use arbitrary::Unstructured;

pub struct Gen<'a>(Unstructured<'a>);

impl<'a> Gen<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Gen(Unstructured::new(data))
    }

    /// An integer in `range`; its start when the bytes run out.
    pub fn int<T>(&mut self, range: std::ops::RangeInclusive<T>) -> T
    where
        T: arbitrary::unstructured::Int,
    {
        let lo = *range.start();
        self.0.int_in_range(range).unwrap_or(lo)
    }

    /// True with probability `n / d`; false when the bytes run out.
    pub fn ratio(&mut self, n: u8, d: u8) -> bool {
        !self.0.is_empty() && self.0.ratio(n, d).unwrap_or(false)
    }

    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.int(0..=choices.len() - 1)]
    }

    pub fn u32(&mut self) -> u32 {
        self.0.arbitrary().unwrap_or(0)
    }

    pub fn u64(&mut self) -> u64 {
        self.0.arbitrary().unwrap_or(0)
    }

    /// Up to `max` bytes.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.int(0..=max.min(self.0.len()));
        self.0.bytes(n).unwrap_or(&[])
    }

    /// A value near `base` (`base` itself when the bytes run out), or one of the edges
    /// of the integer types.
    pub fn near(&mut self, base: u64) -> u64 {
        match self.int(0..=11u8) {
            0..=4 => base.wrapping_add(self.int(0..=4096u64)),
            5 => base.wrapping_sub(self.int(0..=4096u64)),
            6 => 0,
            7 => u32::MAX as u64,
            8 => u64::MAX,
            9 => self.u64(),
            10 => self.u32() as u64,
            _ => 1u64 << self.int(0..=63u32),
        }
    }

    /// Mostly `base` itself (7 in 8), else [`Gen::near`] it: each of a header's fields
    /// is then usually valid, so that the checks after the first are reached too.
    pub fn mostly(&mut self, base: u64) -> u64 {
        if self.ratio(1, 8) {
            self.near(base)
        } else {
            base
        }
    }

    /// `good` 7 times in 8, else one of `odd`.
    pub fn mostly_of<T: Copy>(&mut self, good: T, odd: &[T]) -> T {
        if self.ratio(1, 8) {
            self.pick(odd)
        } else {
            good
        }
    }
}
