//! IA32_TSC_AUX (0xC000_0103), the value RDTSCP returns in ECX (SDM Vol 2B, RDTSCP; SDM
//! Vol 4 Table 2-2; APM Vol 3, RDTSCP). The guest's RDTSCP runs without an exit, so the
//! hardware register must hold the guest's value while it runs. Neither VM entry/exit
//! (SDM Vol 3C 26.3.2, 28.5) nor VMRUN/#VMEXIT (APM Vol 2 15.5.1) switch it and the VMCB
//! has no field for it, so both backends keep it resident as [`TscAux`] says: the
//! vCPU's value goes into the CPU when the vCPU is loaded and the host's comes back when
//! it is put, two WRMSRs per switch of vCPU rather than an exit per RDTSCP (Linux's vDSO
//! runs RDTSCP on every `getcpu` and, on some CPUs, every `clock_gettime`).
//!
//! The guest writes it only through an intercepted WRMSR (it is not in
//! [`super::PASSTHROUGH`]), so the vCPU's copy is always current.

pub const IA32_TSC_AUX: u32 = 0xc000_0103;

/// The TSC_AUX of the host between guests: Janus never runs RDTSCP and leaves the
/// register at its reset value.
pub const HOST_TSC_AUX: u64 = 0;

/// One vCPU's TSC_AUX and whether it is in the CPU. Each operation that touches the CPU
/// takes the backend's WRMSR (`hw`), so that host tests can watch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TscAux {
    /// `None` until the guest writes it: the CPU then holds the host's value, which is the
    /// guest's reset value too, and a host without RDTSCP (whose guests have no TSC_AUX,
    /// so the core never sets it) never sees a WRMSR to it.
    value: Option<u64>,
    loaded: bool,
}

impl TscAux {
    pub const fn new() -> TscAux {
        TscAux {
            value: None,
            loaded: false,
        }
    }

    /// The guest's value.
    pub fn get(&self) -> u64 {
        self.value.unwrap_or(HOST_TSC_AUX)
    }

    /// The guest wrote `v` (the core checked it); into the CPU at once when loaded.
    pub fn set(&mut self, v: u64, hw: impl FnOnce(u64)) {
        self.value = Some(v);
        if self.loaded {
            hw(v);
        }
    }

    /// The vCPU takes the CPU.
    pub fn load(&mut self, hw: impl FnOnce(u64)) {
        if let Some(v) = self.value {
            hw(v);
        }
        self.loaded = true;
    }

    /// The vCPU leaves the CPU: the host's value goes back.
    pub fn put(&mut self, hw: impl FnOnce(u64)) {
        if self.loaded && self.value.is_some() {
            hw(HOST_TSC_AUX);
        }
        self.loaded = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::cell::Cell;

    #[test]
    fn the_cpu_holds_the_guest_value_only_while_loaded() {
        let cpu = Cell::new(HOST_TSC_AUX);
        let hw = |v| cpu.set(v);
        let mut a = TscAux::new();
        a.set(7, hw);
        assert_eq!((a.get(), cpu.get()), (7, 0), "not loaded: CPU untouched");
        a.load(hw);
        assert_eq!(cpu.get(), 7);
        a.set(0xdead_beef, hw);
        assert_eq!(cpu.get(), 0xdead_beef, "loaded: at once");
        a.put(hw);
        assert_eq!((a.get(), cpu.get()), (0xdead_beef, HOST_TSC_AUX));
        a.put(|_| panic!("a second put writes nothing"));
    }

    #[test]
    fn a_guest_that_never_wrote_it_costs_no_wrmsr() {
        let mut a = TscAux::new();
        a.load(|_| panic!("no WRMSR"));
        a.put(|_| panic!("no WRMSR"));
        assert_eq!(a.get(), 0, "the reset value");
    }
}
