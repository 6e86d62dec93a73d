//! A few recently used values, the oldest replaced first: the shape of the small caches
//! on the exit path (decoded instructions, code-page translations), where a handful of
//! entries covers a guest's loop and its interrupt handler and a linear search over
//! them is cheaper than any index.

/// Up to `N` values; [`Recent::insert`] replaces the oldest when full.
#[derive(Clone, Copy, Debug)]
pub struct Recent<T, const N: usize> {
    entries: [Option<T>; N],
    /// The slot the next insert takes (round robin).
    next: usize,
}

impl<T, const N: usize> Default for Recent<T, N> {
    fn default() -> Self {
        Recent {
            entries: core::array::from_fn(|_| None),
            next: 0,
        }
    }
}

impl<T, const N: usize> Recent<T, N> {
    /// The first value that satisfies `hit`.
    pub fn find(&self, hit: impl FnMut(&&T) -> bool) -> Option<&T> {
        self.entries.iter().flatten().find(hit)
    }

    /// The first answer `f` gives, asking the newest value first (where a loop's value
    /// usually is).
    #[inline(always)]
    pub fn find_map_newest<R>(&self, mut f: impl FnMut(&T) -> Option<R>) -> Option<R> {
        let mut i = self.next;
        for _ in 0..N {
            i = if i == 0 { N - 1 } else { i - 1 };
            if let Some(r) = self.entries[i].as_ref().and_then(&mut f) {
                return Some(r);
            }
        }
        None
    }

    /// Keeps `v`, in place of the oldest value when all `N` slots are taken.
    pub fn insert(&mut self, v: T) {
        self.entries[self.next] = Some(v);
        self.next = (self.next + 1) % N;
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_newest_first() {
        let mut r: Recent<u32, 3> = Recent::default();
        let order = |r: &Recent<u32, 3>| {
            let mut seen = std::vec::Vec::new();
            let none: Option<()> = r.find_map_newest(|v| {
                seen.push(*v);
                None
            });
            assert_eq!(none, None);
            seen
        };
        assert_eq!(order(&r), []);
        r.insert(1);
        r.insert(2);
        assert_eq!(order(&r), [2, 1]);
        r.insert(3);
        r.insert(4);
        assert_eq!(order(&r), [4, 3, 2]);
        assert_eq!(r.find_map_newest(|v| (*v < 4).then_some(*v)), Some(3));
    }

    #[test]
    fn keeps_the_last_n_and_replaces_the_oldest() {
        let mut r: Recent<u32, 2> = Recent::default();
        assert_eq!(r.find(|_| true), None);
        r.insert(1);
        r.insert(2);
        assert_eq!((r.find(|v| **v == 1), r.len()), (Some(&1), 2));
        r.insert(3);
        assert_eq!(r.find(|v| **v == 1), None, "the oldest went");
        assert_eq!(
            (r.find(|v| **v == 2), r.find(|v| **v == 3)),
            (Some(&2), Some(&3))
        );
    }
}
