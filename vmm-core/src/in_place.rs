//! Exits a backend finishes inside its own entry loop, without going back to the
//! dispatcher (issue #9): CPUID whose answer this vCPU has had before.
//!
//! A CPUID exit changes nothing but RAX, RBX, RCX, RDX and RIP: no device, no time, no
//! interrupt to offer (the dispatcher counts it quiet, `dispatch::is_quiet`). Through the
//! dispatcher it still paid for the loop around every exit (the time check, the host's
//! housekeeping, the exit's decoding, its counting, the TPR sync); about 250 host
//! instructions on ryzen, of which the world switch is 57. Here it pays for the look-up,
//! the four registers and RIP.
//!
//! The rules of when stay in the core, here; the backend only says what its CPU told it
//! (the exit is CPUID, where it ends, that nothing else moved) and calls [`cpuid`]. The
//! answer is the policy's own, remembered by the dispatcher the first time
//! ([`crate::cpuid::CpuidCache`]; the policy's answers never change while the VM lives);
//! the instruction completes the one way ([`ArchVcpu::retire`]). Anything else returns to
//! the dispatcher: every other exit, a leaf not answered yet, a single-step (RFLAGS.TF:
//! its #DB after the instruction is `dispatch::complete`'s).
//! Time still reaches the guest: the exit timer the dispatcher armed for the next device
//! event or the end of the slice makes an exit that is not CPUID.
//!
//! Where the instruction ends, a CPU without the means to say (AMD-V without NRIP save)
//! leaves to a fetch through the guest's page tables, the dispatcher's. The dispatcher
//! then keeps the exit site it read (its place, the page-table entries of the walk and
//! the instruction's bytes, [`crate::fetch`]) in the vCPU ([`keep_site`]), and the next
//! CPUID there ends where that site says ([`end_by_site`]) while all of it still holds:
//! a guest's loop asking CPUID.

use crate::cpuid::CpuidCache;
use crate::fetch::{InsnCache, Place, Site};
use crate::memory::GuestMemory;
use crate::vcpu::{ArchVcpu, Gpr};

/// One vCPU's answers, and how many exits its backend finished with them since the
/// dispatcher last counted ([`InPlace::take_done`]: at the end of each slice, and for
/// the EXIT_COUNT hypercall). Kept in the backend's vCPU
/// ([`ArchVcpu::in_place`]): it is used while a shared guest's VM lock is not held.
#[derive(Clone, Debug, Default)]
pub struct InPlace {
    pub answers: CpuidCache,
    done: u32,
    /// The last CPUID the dispatcher completed, where the backend's CPU does not say
    /// where it ends ([`keep_site`]).
    site: Option<Site>,
}

impl InPlace {
    /// The exits finished in place since the last call: the dispatcher counts them as
    /// CPUID exits ([`crate::stats::ExitStats`]) when the slice ends, and when the
    /// guest asks for its count (`hypercall::EXIT_COUNT`; another vCPU's of a shared
    /// guest then join at the end of that vCPU's slice).
    #[inline(always)]
    pub fn take_done(&mut self) -> u32 {
        core::mem::take(&mut self.done)
    }
}

/// Finishes the CPUID exit of `vcpu`, whose instruction ends at `next_rip`, when this
/// vCPU has had the answer for its leaf and subleaf and the guest is not single-stepping;
/// returns whether it did (if not, nothing changed and the exit goes to the dispatcher).
#[inline(always)]
pub fn cpuid<V: ArchVcpu>(vcpu: &mut V, next_rip: u64) -> bool {
    let (leaf, sub) = (vcpu.gpr(Gpr::Rax) as u32, vcpu.gpr(Gpr::Rcx) as u32);
    let Some(answer) = vcpu.in_place().answers.get(leaf, sub) else {
        return false;
    };
    if vcpu.rflags() & crate::cpu_rules::rflags::TF != 0 {
        return false;
    }
    write_answer(vcpu, answer);
    vcpu.retire(next_rip);
    let n = &mut vcpu.in_place().done;
    *n = n.wrapping_add(1);
    true
}

/// Keeps, for [`end_by_site`], the exit site of the CPUID at RIP of `vcpu` that the
/// dispatcher completes now: the one `cache` found or made when the backend asked for
/// its length, if it did (none when the CPU said where it ends). Called by the
/// dispatcher, with the VM's memory `mem` (the one `vcpu` runs in) and its `cache`.
///
/// # Safety
/// `mem` must live as long as `vcpu` runs: [`end_by_site`] reads the kept site's places
/// in it without it at hand.
pub unsafe fn keep_site(vcpu: &mut impl ArchVcpu, mem: &GuestMemory, cache: &InsnCache) {
    let site = cache.length_site(mem, &Place::of(vcpu));
    vcpu.in_place().site = site;
}

/// Where the CPUID at RIP of `vcpu` ends, when it is the one whose site the dispatcher
/// kept ([`keep_site`]) and nothing it was read from changed: the same place (linear
/// address, paging registers, privilege, CS), every page-table entry of the walk to it
/// and its bytes as they were. For a backend whose CPU does not say.
#[inline(always)]
pub fn end_by_site<V: ArchVcpu>(vcpu: &mut V) -> Option<u64> {
    let (place, rip) = (Place::of(vcpu), vcpu.rip());
    let site = vcpu.in_place().site.as_ref()?;
    // SAFETY: the site was kept from a memory that lives while `vcpu` runs (the
    // contract of `keep_site`).
    let len = unsafe { site.length_in_live_memory(&place) }?;
    Some(rip.wrapping_add(len as u64))
}

/// CPUID's results: EAX, EBX, ECX and EDX, zero-extended to 64 bits (SDM Vol 2A, CPUID).
/// The one place a CPUID answer reaches the guest, in place or through the dispatcher.
#[inline(always)]
pub fn write_answer(vcpu: &mut impl ArchVcpu, answer: [u32; 4]) {
    for (reg, v) in [Gpr::Rax, Gpr::Rbx, Gpr::Rcx, Gpr::Rdx]
        .into_iter()
        .zip(answer)
    {
        vcpu.set_gpr(reg, v as u64);
    }
}

#[cfg(test)]
mod tests {
    use crate::addr::GuestPhys;
    use crate::dispatch::{run, run_slice, Stop};
    use crate::exit::{ExitKind, IoAccess, IoDir, VmExit};
    use crate::memory::testing::ram;
    use crate::mock::{vm, MockVcpu};
    use crate::vcpu::{ArchVcpu, Gpr};
    use crate::vm::GuestEnd;

    /// The debug-exit port: the guest ends.
    const END: VmExit = VmExit::Io(IoAccess {
        port: 0xf4,
        size: 4,
        dir: IoDir::Out,
        string: None,
    });

    /// A vCPU that asks leaf `leaf` (subleaf 0) at each of `n` CPUIDs, then ends, its
    /// backend finishing what it can in place.
    fn asking(leaf: u32, n: usize) -> MockVcpu {
        let mut script = std::vec![VmExit::Cpuid; n];
        script.push(END);
        let mut v = MockVcpu::new(&script);
        v.finish_in_place = true;
        v.cpuid_leaf = Some((leaf, 0));
        v
    }

    #[test]
    fn a_leaf_answered_once_is_answered_in_place_and_still_counted() {
        let mut m = vm(ram(1 << 20));
        let mut v = asking(crate::cpuid::HV_BASE, 3);
        let start = v.rip;
        assert!(matches!(run(&mut v, &mut m), GuestEnd::Exited(_)));
        assert_eq!(
            v.runs, 2,
            "the dispatcher saw the first CPUID and the end only"
        );
        assert_eq!(m.stats.get(ExitKind::Cpuid), 3, "all three counted");
        assert_eq!(v.rip, start + 3 * v.insn_len, "each one completed");
        assert_eq!(v.reg(Gpr::Rbx), u32::from_le_bytes(*b"Janu").into());
        assert_eq!(v.in_place.take_done(), 0, "the dispatcher took the count");
    }

    #[test]
    fn the_guest_asking_for_its_exit_count_gets_those_finished_in_place() {
        let mut m = vm(ram(1 << 20));
        let mut v = asking(crate::cpuid::HV_BASE, 3);
        v.exits[3] = VmExit::Hypercall;
        let first = v.run().unwrap();
        assert_eq!(crate::dispatch::handle_exit(&mut v, &mut m, first), None);
        assert_eq!(
            v.run(),
            Ok(VmExit::Hypercall),
            "two CPUIDs in place before it"
        );
        v.regs[Gpr::Rax as usize] = crate::hypercall::EXIT_COUNT;
        assert_eq!(
            crate::dispatch::handle_exit(&mut v, &mut m, VmExit::Hypercall),
            None
        );
        assert_eq!(
            v.reg(Gpr::Rbx),
            2,
            "the two in place (the dispatcher counted none)"
        );
    }

    /// Where the guest's CPUID loop lies (2 MiB of RAM: the mock starts at 1 MiB).
    const LOOP: u64 = 0x10_0000;

    /// A vCPU whose CPU does not say where CPUID ends, asking the hypervisor leaf `n`
    /// times at `LOOP`, where `code` is; its VM.
    fn looping(code: &[u8], n: usize) -> (MockVcpu, crate::vm::Vm) {
        let mut m = vm(ram(2 << 20));
        m.memory.write(GuestPhys(LOOP), code).unwrap();
        let mut v = asking(crate::cpuid::HV_BASE, n);
        v.cpuid_loop_at = Some(LOOP);
        (v, m)
    }

    #[test]
    fn without_the_cpus_length_a_cpuid_at_the_same_site_is_answered_in_place() {
        let (mut v, mut m) = looping(&[0x0f, 0xa2], 4);
        assert!(matches!(run(&mut v, &mut m), GuestEnd::Exited(_)));
        assert_eq!(v.runs, 2, "the dispatcher saw the first CPUID and the end");
        assert_eq!(m.stats.get(ExitKind::Cpuid), 4);
        assert_eq!(v.rip, LOOP + 2, "each one completed after its 2 bytes");
        assert_eq!(v.reg(Gpr::Rbx), u32::from_le_bytes(*b"Janu").into());
    }

    /// The first CPUID at LOOP (2 bytes) goes to the dispatcher, which keeps its site;
    /// `change` then puts a 3-byte CPUID at LOOP: the next CPUID there must go to the
    /// dispatcher too and complete after 3 bytes.
    fn after_a_change_the_dispatcher_completes(
        (mut v, mut m): (MockVcpu, crate::vm::Vm),
        change: impl FnOnce(&mut crate::memory::GuestMemory),
        what: &str,
    ) -> MockVcpu {
        let first = v.run().unwrap();
        assert_eq!(crate::dispatch::handle_exit(&mut v, &mut m, first), None);
        assert_eq!(v.rip, LOOP + 2);
        change(&mut m.memory);
        let exit = v.run().unwrap();
        assert_eq!(exit, VmExit::Cpuid, "not answered in place: {what}");
        assert_eq!(crate::dispatch::handle_exit(&mut v, &mut m, exit), None);
        assert_eq!(v.rip, LOOP + 3, "completed after its 3 bytes: {what}");
        v
    }

    #[test]
    fn a_cpuid_site_whose_bytes_changed_goes_to_the_dispatcher() {
        // The guest rewrites its loop: a CPUID with a DS prefix, 3 bytes.
        let rewrite = |mem: &mut crate::memory::GuestMemory| {
            mem.write(GuestPhys(LOOP), &[0x3e, 0x0f, 0xa2]).unwrap()
        };
        let looping = looping(&[0x0f, 0xa2], 3);
        let mut v = after_a_change_the_dispatcher_completes(looping, rewrite, "bytes");
        // Kept again, with its new length.
        assert_eq!(v.run(), Ok(END));
        assert_eq!(v.in_place.take_done(), 1);
    }

    #[test]
    fn a_cpuid_site_mapped_to_another_frame_goes_to_the_dispatcher() {
        use crate::cpu_rules::{cr0, cr4, efer};
        use crate::vcpu::SegReg;
        // Long mode: tables at 0x1000-0x4000 map LOOP (PT entry 256) to the frame of a
        // CPUID at 0x9000; a CPUID with an operand-size prefix waits at 0xa000.
        let (mut v, mut m) = looping(&[], 3);
        let mem = &mut m.memory;
        for (table, entry) in [(0x1000, 0x2000), (0x2000, 0x3000), (0x3000, 0x4000)] {
            mem.write_u64(GuestPhys(table), entry | 3).unwrap();
        }
        let pte = GuestPhys(0x4000 + 256 * 8);
        mem.write_u64(pte, 0x9000 | 3).unwrap();
        mem.write(GuestPhys(0x9000), &[0x0f, 0xa2]).unwrap();
        mem.write(GuestPhys(0xa000), &[0x66, 0x0f, 0xa2]).unwrap();
        (v.cr0, v.cr3, v.cr4) = (cr0::PG | cr0::PE, 0x1000, cr4::PAE);
        v.efer = efer::LME | efer::LMA;
        v.segs[SegReg::Cs as usize].attr = 0xa9b; // 64-bit code
                                                  // The guest maps another frame at LOOP, CR3 unchanged.
        let remap = |mem: &mut crate::memory::GuestMemory| mem.write_u64(pte, 0xa000 | 3).unwrap();
        after_a_change_the_dispatcher_completes((v, m), remap, "the walk");
    }

    #[test]
    fn a_new_leaf_or_a_single_step_goes_to_the_dispatcher() {
        // Each CPUID asks another leaf: none was answered before.
        let mut m = vm(ram(1 << 20));
        let mut v = asking(0, 3);
        v.cpuid_leaf = None;
        for leaf in [0u64, 1, 0x8000_0000] {
            v.regs[Gpr::Rax as usize] = leaf;
            v.regs[Gpr::Rcx as usize] = 0;
            let exit = v.run().unwrap();
            assert_eq!(exit, VmExit::Cpuid, "leaf {leaf:#x} not answered yet");
            assert_eq!(crate::dispatch::handle_exit(&mut v, &mut m, exit), None);
        }
        // Leaf 0 again but another subleaf in ECX: a key of its own.
        v.exits.push_front(VmExit::Cpuid);
        (v.regs[Gpr::Rax as usize], v.regs[Gpr::Rcx as usize]) = (0, 1);
        assert_eq!(v.run().unwrap(), VmExit::Cpuid);
        // RFLAGS.TF: the instruction ends with a single-step trap, not in place.
        let mut v = asking(crate::cpuid::HV_BASE, 3);
        v.rflags |= crate::cpu_rules::rflags::TF;
        let now = crate::mock::TSC.with(|t| t.get());
        assert!(matches!(
            run_slice(&mut v, &mut m, now + 1_000_000_000),
            Stop::Ended(_)
        ));
        assert_eq!(v.runs, 4, "every CPUID went to the dispatcher");
    }
}
