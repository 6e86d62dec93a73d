//! Which host CPU runs each guest (issue #11): a guest's `cpus=` key pins it to a CPU or
//! a range of them (`cpus=1`, `cpus=0-3`, host CPU numbers as Janus prints them, the boot
//! CPU being 0); a guest with `after=NAME` runs on NAME's CPU, so that it can wait for it;
//! the others are spread over the online CPUs round robin, in module order. Pure: the
//! boot code hands over what the modules ask for and the number of CPUs online.

use arrayvec::ArrayVec;
use core::fmt;

/// Host CPUs a guest may run on: `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuSet {
    pub first: u8,
    pub last: u8,
}

impl CpuSet {
    /// `N` or `A-B` (A <= B), CPU numbers below 256.
    pub fn parse(v: &str) -> Option<CpuSet> {
        let (a, b) = v.split_once('-').unwrap_or((v, v));
        let num = |s: &str| {
            (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                .then(|| s.parse::<u8>().ok())
                .flatten()
        };
        let (first, last) = (num(a)?, num(b)?);
        (first <= last).then_some(CpuSet { first, last })
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// What one guest asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    pub cpus: Option<CpuSet>,
    /// The index (in the same list) of the guest it starts after.
    pub after: Option<usize>,
}

/// A guest pinned to CPUs none of which is online.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSuchCpu {
    pub cpus: CpuSet,
    pub online: usize,
}

impl fmt::Display for NoSuchCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpus={}: no such host CPU online ({} online)",
            self.cpus, self.online
        )
    }
}

/// Each guest's CPU, in the order given; `online` lists the CPU numbers that are online
/// (the boot CPU 0 always is). A pinned guest goes to the least loaded online CPU of its
/// set (the lower number on a tie); one whose set has none online is refused.
pub fn place<const N: usize>(
    online: &[usize],
    wants: &[Want],
) -> ArrayVec<Result<usize, NoSuchCpu>, N> {
    let online = if online.is_empty() { &[0][..] } else { online };
    let mut load = [0usize; 256];
    let mut next = 0;
    let mut out: ArrayVec<Result<usize, NoSuchCpu>, N> = ArrayVec::new();
    for w in wants.iter().take(N) {
        let earlier = w
            .after
            .and_then(|i| out.get(i).copied())
            .and_then(Result::ok);
        let placed = match (w.cpus, earlier) {
            (Some(set), _) => online
                .iter()
                .copied()
                .filter(|&c| (set.first as usize..=set.last as usize).contains(&c))
                .min_by_key(|&c| (load[c.min(255)], c))
                .ok_or(NoSuchCpu {
                    cpus: set,
                    online: online.len(),
                }),
            (None, Some(cpu)) => Ok(cpu),
            (None, None) => {
                let cpu = online[next % online.len()];
                next += 1;
                Ok(cpu)
            }
        };
        if let Ok(cpu) = placed {
            load[cpu.min(255)] += 1;
        }
        out.push(placed);
    }
    out
}

/// Where the vCPUs of a guest with `vcpus` vCPUs and `cpus=set` run when they run on
/// several host CPUs at once: vCPU i on the i-th online CPU of the set, round robin.
/// `None` (the guest keeps one host CPU, [`place`]'s) unless it has several vCPUs and
/// its set holds several online CPUs.
pub fn spread(online: &[usize], set: CpuSet, vcpus: u8) -> Option<ArrayVec<usize, 8>> {
    let mine: ArrayVec<usize, 256> = online
        .iter()
        .copied()
        .filter(|&c| (set.first as usize..=set.last as usize).contains(&c))
        .take(256)
        .collect();
    if vcpus < 2 || mine.len() < 2 {
        return None;
    }
    Some(
        (0..vcpus.min(8) as usize)
            .map(|i| mine[i % mine.len()])
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_of_several_vcpus_pinned_to_several_cpus_spreads_over_them() {
        let set = |a, b| CpuSet { first: a, last: b };
        assert_eq!(
            spread(&[0, 1, 2, 3], set(0, 1), 2).unwrap().as_slice(),
            [0, 1]
        );
        assert_eq!(
            spread(&[0, 1, 3], set(1, 3), 4).unwrap().as_slice(),
            [1, 3, 1, 3],
            "only online CPUs of the set, round robin"
        );
        assert_eq!(spread(&[0, 1], set(0, 1), 1), None, "one vCPU");
        assert_eq!(spread(&[0, 1], set(1, 1), 4), None, "one CPU");
        assert_eq!(spread(&[0, 2], set(1, 1), 2), None, "none online");
    }
    extern crate std;

    fn set(first: u8, last: u8) -> Option<CpuSet> {
        Some(CpuSet { first, last })
    }

    fn cpus(online: usize, wants: &[Want]) -> ArrayVec<Result<usize, NoSuchCpu>, 8> {
        let list: std::vec::Vec<usize> = (0..online).collect();
        place(&list, wants)
    }

    #[test]
    fn parses_one_cpu_and_ranges() {
        assert_eq!(CpuSet::parse("1"), set(1, 1));
        assert_eq!(CpuSet::parse("0-3"), set(0, 3));
        assert_eq!(CpuSet::parse("2-2"), set(2, 2));
        for bad in ["", "-", "3-1", "a", "1-", "-1", "256", "+1", "1-2-3", " 1"] {
            assert_eq!(CpuSet::parse(bad), None, "{bad:?}");
        }
        assert_eq!(std::format!("{}", set(0, 3).unwrap()), "0-3");
    }

    #[test]
    fn spreads_round_robin_in_order() {
        let w = [Want::default(); 5];
        let got: std::vec::Vec<_> = cpus(2, &w).into_iter().map(Result::unwrap).collect();
        assert_eq!(got, [0, 1, 0, 1, 0]);
        let one: std::vec::Vec<_> = cpus(1, &w).into_iter().map(Result::unwrap).collect();
        assert_eq!(one, [0; 5]);
    }

    #[test]
    fn after_follows_its_guest_and_pins_win() {
        let w = [
            Want::default(),
            Want::default(),
            Want {
                cpus: None,
                after: Some(1),
            },
            Want {
                cpus: set(1, 1),
                after: None,
            },
            Want {
                cpus: set(0, 1),
                after: None,
            },
            Want::default(),
            Want {
                cpus: set(0, 1),
                after: None,
            },
        ];
        let got = cpus(2, &w);
        // The third waits for the second, on its CPU; the round robin goes on after it.
        assert_eq!(got[..4], [Ok(0), Ok(1), Ok(1), Ok(1)]);
        // CPU 0 has one guest and CPU 1 three: the least loaded.
        assert_eq!(got[4], Ok(0));
        assert_eq!(got[5], Ok(0));
        // Three each: the tie goes to the lower number.
        assert_eq!(got[6], Ok(0));
    }

    #[test]
    fn a_pin_beyond_the_online_cpus_is_refused_and_a_range_is_cut() {
        let w = [
            Want {
                cpus: set(2, 3),
                after: None,
            },
            Want {
                cpus: set(1, 7),
                after: None,
            },
        ];
        let got = cpus(2, &w);
        let e = got[0].unwrap_err();
        assert_eq!(e.online, 2);
        assert_eq!(
            std::format!("{e}"),
            "cpus=2-3: no such host CPU online (2 online)"
        );
        assert_eq!(got[1], Ok(1));
    }

    #[test]
    fn cpus_left_out_get_nothing() {
        // CPU 1 was left out: 0 and 2 are online.
        let w = [
            Want::default(),
            Want::default(),
            Want::default(),
            Want {
                cpus: set(1, 1),
                after: None,
            },
            Want {
                cpus: set(1, 2),
                after: None,
            },
        ];
        let got = place::<8>(&[0, 2], &w);
        assert_eq!(got[..3], [Ok(0), Ok(2), Ok(0)]);
        assert!(got[3].is_err());
        assert_eq!(got[4], Ok(2));
    }

    #[test]
    fn a_guest_after_a_refused_one_is_spread() {
        let w = [
            Want {
                cpus: set(5, 5),
                after: None,
            },
            Want {
                cpus: None,
                after: Some(0),
            },
        ];
        assert_eq!(cpus(2, &w)[1], Ok(0));
    }
}
