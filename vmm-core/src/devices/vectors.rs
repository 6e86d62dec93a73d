//! A local APIC's 256-bit vector registers (IRR, ISR, TMR: Intel SDM Vol 3A 11.8.4,
//! revision 084), with a summary of the non-empty words so that the highest set vector
//! is found without scanning: the APIC looks for it on every exit that may offer an
//! interrupt (the PPR from the ISR, the pending vector from the IRR), and the scan of
//! eight empty words cost about 40 instructions each time.

/// 256 bits, one per vector, read by the guest as eight 32-bit registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vectors {
    words: [u32; 8],
    /// Bit i: `words[i]` is not zero.
    summary: u8,
}

impl Vectors {
    pub const fn new() -> Self {
        Vectors {
            words: [0; 8],
            summary: 0,
        }
    }

    /// The highest vector set, if any.
    pub fn highest(&self) -> Option<u8> {
        if self.summary == 0 {
            return None;
        }
        let i = 7 - self.summary.leading_zeros() as usize;
        Some((i as u32 * 32 + 31 - self.words[i].leading_zeros()) as u8)
    }

    pub fn test(&self, v: u8) -> bool {
        self.words[v as usize / 32] & (1 << (v % 32)) != 0
    }

    pub fn set(&mut self, v: u8, on: bool) {
        let i = v as usize / 32;
        if on {
            self.words[i] |= 1 << (v % 32);
        } else {
            self.words[i] &= !(1 << (v % 32));
        }
        if self.words[i] != 0 {
            self.summary |= 1 << i;
        } else {
            self.summary &= !(1 << i);
        }
    }

    /// Register `i` (vectors 32i to 32i+31), as the guest reads it.
    pub fn word(&self, i: usize) -> u32 {
        self.words[i]
    }

    /// Sets register `i` whole.
    pub fn set_word(&mut self, i: usize, w: u32) {
        self.words[i] = w;
        if w != 0 {
            self.summary |= 1 << i;
        } else {
            self.summary &= !(1 << i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The highest vector by scanning every bit: what the summary must agree with.
    fn scan(v: &Vectors) -> Option<u8> {
        (0..=255u8).rev().find(|&x| v.test(x))
    }

    #[test]
    fn the_summary_finds_what_a_scan_finds() {
        let mut v = Vectors::new();
        assert_eq!(v.highest(), None);
        // A fixed pseudo-random walk of sets and clears over all 256 vectors.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let vector = (x >> 8) as u8;
            v.set(vector, x & 1 == 0);
            assert_eq!(v.highest(), scan(&v), "after {vector} {}", x & 1 == 0);
        }
    }

    #[test]
    fn clearing_the_last_bit_of_a_word_empties_it() {
        let mut v = Vectors::new();
        v.set(0x31, true);
        v.set(0xef, true);
        assert_eq!(v.highest(), Some(0xef));
        assert_eq!(v.word(7), 1 << 15);
        v.set(0xef, false);
        assert_eq!(v.highest(), Some(0x31));
        v.set(0x31, false);
        assert_eq!(v.highest(), None);
        assert_eq!(v, Vectors::new());
    }
}
