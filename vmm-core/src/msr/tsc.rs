//! The guest's time-stamp counter: IA32_TSC and IA32_TSC_ADJUST (Intel SDM revision 086,
//! Vol 3B 18.17 "Time-Stamp Counter", 18.17.3 "Time-Stamp Counter Adjustment"; CPUID
//! 7.0 EBX bit 1 shows the MSR on either vendor).
//!
//! A guest's TSC is the host's plus an offset, one for all of its vCPUs: the vCPUs of one
//! guest always read one TSC, as Linux expects of CPUs that show an invariant TSC. That is
//! where Janus differs from a PC, whose IA32_TSC_ADJUST is per logical processor: a write
//! on one vCPU moves the TSC of all (a guest that wants its CPUs' TSCs apart cannot have
//! it; Linux only ever writes the value the boot CPU has).
//!
//! Janus offers IA32_TSC_ADJUST on every host (CPUID 7.0 EBX bit 1), emulated here. With it
//! and an invariant TSC (CONSTANT_TSC and NONSTOP_TSC), Linux trusts the TSC and does not
//! check it against its clocksource watchdog. Without it, on an emulated CPU whose timer
//! ticks come late, the watchdog's check against jiffies marked the TSC unstable at boot,
//! and once while an AP was checking its TSC against the boot CPU's: both then waited for
//! each other for ever (Linux 6.1, `check_tsc_sync_source`).

/// IA32_TSC_ADJUST (SDM Vol 4, Table 2-2).
pub const IA32_TSC_ADJUST: u32 = 0x3b;

/// The guest's TSC, relative to the host's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestTsc {
    /// Guest TSC minus host TSC (what the VMCS or VMCB holds as the TSC offset).
    offset: u64,
    /// IA32_TSC_ADJUST: what writes of it and of IA32_TSC have added to the TSC.
    adjust: u64,
}

impl GuestTsc {
    /// Guest TSC minus host TSC.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The guest's TSC when the host's reads `host_tsc`.
    pub fn read(&self, host_tsc: u64) -> u64 {
        host_tsc.wrapping_add(self.offset)
    }

    /// RDMSR IA32_TSC_ADJUST.
    pub fn adjust(&self) -> u64 {
        self.adjust
    }

    /// WRMSR IA32_TSC: the TSC reads `v` now (the host's reads `host_tsc`), and
    /// IA32_TSC_ADJUST moves by as much as the TSC did (SDM Vol 3B 18.17.3).
    pub fn write(&mut self, host_tsc: u64, v: u64) {
        let delta = v.wrapping_sub(self.read(host_tsc));
        self.offset = self.offset.wrapping_add(delta);
        self.adjust = self.adjust.wrapping_add(delta);
    }

    /// A TSC deadline the guest wrote (`v`, in its TSC) in the host's TSC, which the
    /// platform's timers count in: 0 stays 0 (disarmed), a deadline already passed is
    /// `host_tsc`, due now (SDM Vol 3A 11.5.4.1).
    pub fn deadline_to_host(&self, v: u64, host_tsc: u64) -> u64 {
        let now = self.read(host_tsc);
        match v {
            0 => 0,
            v if v <= now => host_tsc.max(1),
            v => host_tsc.saturating_add(v - now),
        }
    }

    /// A TSC deadline the platform holds (host TSC) as the guest reads it back.
    pub fn deadline_to_guest(&self, host_deadline: u64) -> u64 {
        match host_deadline {
            0 => 0,
            h => self.read(h),
        }
    }

    /// WRMSR IA32_TSC_ADJUST: the TSC moves by the difference between `v` and the old
    /// value (SDM Vol 3B 18.17.3).
    pub fn write_adjust(&mut self, v: u64) {
        self.offset = self.offset.wrapping_add(v.wrapping_sub(self.adjust));
        self.adjust = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_the_hosts_tsc_and_nothing_adjusted() {
        let t = GuestTsc::default();
        assert_eq!((t.read(1234), t.adjust(), t.offset()), (1234, 0, 0));
    }

    #[test]
    fn writing_the_adjust_moves_the_tsc_by_the_difference() {
        let mut t = GuestTsc::default();
        t.write_adjust(1000);
        assert_eq!((t.read(50), t.adjust()), (1050, 1000));
        t.write_adjust(400);
        assert_eq!((t.read(50), t.adjust()), (450, 400));
        // Negative adjustments wrap as two's complement.
        t.write_adjust(-30i64 as u64);
        assert_eq!(t.read(50), 20);
        t.write_adjust(0);
        assert_eq!((t.read(50), t.offset()), (50, 0));
    }

    #[test]
    fn deadlines_go_between_the_guests_tsc_and_the_hosts() {
        let mut t = GuestTsc::default();
        t.write_adjust(1 << 40);
        let host = 5_000;
        let guest = t.read(host);
        assert_eq!(t.deadline_to_host(guest + 700, host), host + 700);
        assert_eq!(t.deadline_to_guest(host + 700), guest + 700);
        // Disarmed stays disarmed; a deadline in the past (even below the offset) is due.
        assert_eq!(
            (t.deadline_to_host(0, host), t.deadline_to_guest(0)),
            (0, 0)
        );
        assert_eq!(t.deadline_to_host(guest - 1, host), host);
        assert_eq!(t.deadline_to_host(3, host), host);
        assert_eq!(t.deadline_to_host(3, 0), 1, "due, not disarmed");
    }

    #[test]
    fn writing_the_tsc_moves_the_adjust_by_as_much() {
        let mut t = GuestTsc::default();
        t.write(100, 1_100);
        assert_eq!(
            (t.read(100), t.read(200), t.adjust()),
            (1_100, 1_200, 1_000)
        );
        // Back to where it was: the adjustment is undone too.
        t.write(200, 200);
        assert_eq!((t.read(300), t.adjust()), (300, 0));
        t.write(300, 0);
        assert_eq!((t.read(300), t.adjust()), (0, -300i64 as u64));
    }
}
