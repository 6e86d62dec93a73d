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
