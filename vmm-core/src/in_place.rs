//! Exits a backend finishes inside its own entry loop, without going back to the
//! dispatcher (issue #9): CPUID whose answer this vCPU has had before, and IN/OUT (not
//! the string forms) while the dispatcher lends the vCPU its VM.
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
//! A port access is the dispatcher's own ([`crate::dispatch::port_access`], the one way an
//! IN or OUT reaches the platform), made here with the VM the dispatcher lent ([`lend`]:
//! a guest whose vCPUs run on one host CPU; a shared guest's VM is behind a lock the
//! loop does not hold, and its accesses go to the dispatcher). When the access changed
//! nothing the dispatcher would have to follow (no interrupt or timer state,
//! `Platform::changes`; no effect on the whole VM; no console line sent or waiting:
//! lines go out in the host's housekeeping between the dispatcher's entries), the
//! instruction completes and the guest enters again, as the dispatcher would have
//! ([`crate::dispatch`]'s settled exits). Otherwise it completes too but the loop ends:
//! the backend returns the exit, and the dispatcher, told it is done ([`InPlace::take_left`],
//! asked by its port-I/O handler), does what follows one (the interrupt offer, the
//! timers, the guest's end) without making it again.
//!
//! Where the instruction ends, a CPU without the means to say (AMD-V without NRIP save)
//! leaves to a fetch through the guest's page tables, the dispatcher's. The dispatcher
//! then keeps the exit site it read (its place, the page-table entries of the walk and
//! the instruction's bytes, [`crate::fetch`]) in the vCPU ([`keep_site`]), and the next
//! CPUID there ends where that site says ([`end_by_site`]) while all of it still holds:
//! a guest's loop asking CPUID. (Port I/O needs no site: AMD-V's IOIO exit always says
//! where the instruction ends, APM Vol 2 15.10.2.)

use crate::cpuid::CpuidCache;
use crate::exit::IoAccess;
use crate::fetch::{InsnCache, Place, Site};
use crate::memory::GuestMemory;
use crate::platform::PlatformEffect;
use crate::vcpu::{ArchVcpu, Gpr};
use crate::vm::Vm;
use core::ptr::NonNull;

/// One vCPU's answers, and how many exits its backend finished with them since the
/// dispatcher last counted ([`InPlace::take_done`]: at the end of each slice, and for
/// the EXIT_COUNT hypercall). Kept in the backend's vCPU
/// ([`ArchVcpu::in_place`]): it is used while a shared guest's VM lock is not held.
#[derive(Clone, Debug)]
pub struct InPlace {
    pub answers: CpuidCache,
    /// The exits finished in place up to the last [`InPlace::tally`].
    done: Done,
    /// How many more exits of each kind may be finished in place before one goes to
    /// the dispatcher ([`InPlace::set_host_waits`]): each exit finished in place takes
    /// one, and is counted by it (what was granted less what is left, [`InPlace::tally`]).
    /// One decrement where a budget and a count took 6 instructions. -1 when the exit
    /// that found none left went to the dispatcher.
    allowance: Allowance,
    /// The allowance as last set.
    granted: Allowance,
    /// The last CPUID the dispatcher completed, where the backend's CPU does not say
    /// where it ends ([`keep_site`]).
    site: Option<Site>,
    /// The VM whose devices this vCPU's port accesses reach in place, while the
    /// dispatcher lends it ([`lend`]).
    vm: Option<NonNull<Vm>>,
    /// A port access finished in place that the dispatcher has to follow up, with what
    /// it did to the whole VM ([`InPlace::take_left`]).
    left: Option<PlatformEffect>,
}

/// Exits of each kind that may still be finished in place ([`InPlace::allowance`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Allowance {
    cpuid: i32,
    io: i32,
    hlt: i32,
}

impl Allowance {
    /// `n` of each kind.
    const fn of(n: i32) -> Self {
        Allowance {
            cpuid: n,
            io: n,
            hlt: n,
        }
    }
}

/// While the host has nothing left to do, at most this many exits of each kind are
/// finished in place between two of the dispatcher's passes, so that a guest whose exits
/// all are (a loop of CPUID or of port accesses) still comes back to it now and then: the
/// dispatcher ends its slice and its time limit. Where the host's timer does not take the
/// CPU back from such a guest, these passes are the only way: Bochs' AMD-V holds the
/// host's timer interrupt while the guest runs with IF clear (seen: `port_spin` alone on
/// ryzen ran for good, Janus never ran again). 1,024 CPUIDs in place take about 100,000
/// instructions (10 ms at Bochs' 10 MIPS); the pass costs about 250, a quarter of an
/// instruction per exit.
pub const WHILE_HOST_IDLE: u32 = 1024;

/// While the host has housekeeping left, at most this many exits of each kind (CPUID, port
/// access) are finished in place between two of the dispatcher's passes: Janus' 16-byte
/// UART FIFO lasts 1.4 ms at 115,200 baud (4.2 ms at the 38,400 `uart_16550` sets), and
/// 64 port accesses and 64 CPUIDs in place take about 24,000 instructions, 2.4 ms at
/// Bochs' 10 MIPS. A count, not a time: a 1 ms exit timer instead ended the stall on QEMU
/// but not on Bochs ryzen (not traced why).
pub const WHILE_HOST_WAITS: u32 = 64;

impl Default for InPlace {
    fn default() -> Self {
        InPlace {
            answers: CpuidCache::default(),
            done: Done::default(),
            site: None,
            vm: None,
            left: None,
            allowance: Allowance::of(WHILE_HOST_IDLE as i32),
            granted: Allowance::of(WHILE_HOST_IDLE as i32),
        }
    }
}

/// The exits finished in place since the dispatcher last counted, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    pub cpuid: u32,
    pub io: u32,
    pub hlt: u32,
}

impl InPlace {
    /// The exits finished in place since the last call: the dispatcher counts them
    /// ([`crate::stats::ExitStats`]) when the slice ends, and when the guest asks for
    /// its count (`hypercall::EXIT_COUNT`; another vCPU's of a shared guest then join
    /// at the end of that vCPU's slice).
    #[inline(always)]
    pub fn take_done(&mut self) -> Done {
        self.tally();
        core::mem::take(&mut self.done)
    }

    /// Counts into `done` the exits finished in place since the allowance was granted
    /// (or last tallied), and grants what is left. Out of line: it is rare (a slice's
    /// end, a count asked, a grant) and stays off the paths it sits beside.
    #[inline(never)]
    fn tally(&mut self) {
        let used = |granted: i32, left: i32| granted.wrapping_sub(left.max(0)) as u32;
        let (g, a) = (self.granted, self.allowance);
        self.done.cpuid = self.done.cpuid.wrapping_add(used(g.cpuid, a.cpuid));
        self.done.io = self.done.io.wrapping_add(used(g.io, a.io));
        self.done.hlt = self.done.hlt.wrapping_add(used(g.hlt, a.hlt));
        self.allowance = Allowance {
            cpuid: a.cpuid.max(0),
            io: a.io.max(0),
            hlt: a.hlt.max(0),
        };
        self.granted = self.allowance;
    }

    /// Whether the host has housekeeping left after the dispatcher's last call
    /// ([`crate::vm::HostHooks::service`]): then only [`WHILE_HOST_WAITS`] exits of each
    /// kind are finished in place before one goes to the dispatcher, whose loop does it
    /// between entries (else a guest whose exits are all finished in place would keep the
    /// host's console output from going out for as long as it ran); else
    /// [`WHILE_HOST_IDLE`].
    #[inline(always)]
    pub fn set_host_waits(&mut self, waits: bool) {
        // While nothing waits, the idle allowance granted at an earlier pass stays until
        // one kind's runs out (the dispatcher's every exit pays only these checks).
        let a = self.allowance;
        if waits
            || self.granted != Allowance::of(WHILE_HOST_IDLE as i32)
            || (a.cpuid | a.io | a.hlt) < 0
        {
            self.grant(if waits {
                WHILE_HOST_WAITS
            } else {
                WHILE_HOST_IDLE
            } as i32);
        }
    }

    /// Counts what was used and grants `n` exits of each kind.
    fn grant(&mut self, n: i32) {
        self.tally();
        self.allowance = Allowance::of(n);
        self.granted = self.allowance;
    }

    /// Whether the exit the backend returned was a port access already made and
    /// completed in place that changed what the dispatcher follows, and if so what it
    /// did to the whole VM: the dispatcher must not handle that exit again, and does
    /// what follows one.
    #[inline(always)]
    pub fn take_left(&mut self) -> Option<PlatformEffect> {
        self.left.take()
    }
}

/// Lends `vcpu` the VM `vm` it runs in, for its port accesses in place, until
/// [`unlend`].
///
/// # Safety
/// `vm` must be valid until [`unlend`] and used by nothing else while `vcpu` runs
/// (between entries the caller may use it: the loop touches it only inside `run`).
pub unsafe fn lend(vcpu: &mut impl ArchVcpu, vm: *mut Vm) {
    vcpu.in_place().vm = NonNull::new(vm);
}

/// Takes back the VM [`lend`] lent.
pub fn unlend(vcpu: &mut impl ArchVcpu) {
    vcpu.in_place().vm = None;
}

/// What [`port_io`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Nothing: the exit goes to the dispatcher.
    No,
    /// Made and completed, and nothing follows: the guest enters again.
    Resume,
    /// Made and completed (unless it ended the guest), but the dispatcher has to
    /// follow it up ([`InPlace::take_left`]): the backend returns the exit.
    Leave,
}

/// The port access just made goes to the dispatcher to be followed up, with `effect`:
/// counted there (as an exit of its own), not here.
fn leave(vcpu: &mut impl ArchVcpu, effect: PlatformEffect) -> Finished {
    let p = vcpu.in_place();
    p.left = Some(effect);
    p.allowance.io += 1;
    Finished::Leave
}

/// Takes one exit from `allowance` (of one kind); whether there was one. The exit that
/// finds none takes one all the same (below 0: [`InPlace::tally`] counts none for it,
/// and the dispatcher's next pass grants again), so that one decrement and one branch
/// are all an exit finished in place pays.
#[inline(always)]
fn spend(allowance: &mut i32) -> bool {
    *allowance -= 1;
    *allowance >= 0
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
    if vcpu.rflags() & crate::cpu_rules::rflags::TF != 0
        || !spend(&mut vcpu.in_place().allowance.cpuid)
    {
        return false;
    }
    write_answer(vcpu, answer);
    vcpu.retire(next_rip);
    true
}

/// Finishes the HLT exit of `vcpu`, whose instruction ends at `next_rip`, when its CPU
/// delivers an interrupt to it at the next entry itself (`cpu_delivers`: the backend
/// read it from the hardware, VT-x's pending virtual interrupt) and the guest takes
/// interrupts (RFLAGS.IF; not single-stepping): the HLT wakes at once, as
/// the dispatcher's HLT would, and the guest enters again to take it. Returns
/// whether it did (if not, nothing changed and the exit goes to the dispatcher).
/// Anything Janus has to inject instead was offered before this entry: injected, or an
/// interrupt or NMI window asked for, which makes the guest exit at once now that the
/// HLT is done.
#[inline(always)]
pub fn hlt<V: ArchVcpu>(vcpu: &mut V, next_rip: u64, cpu_delivers: bool) -> bool {
    let rflags = vcpu.rflags();
    if !cpu_delivers
        || !crate::cpu_rules::rflags::interrupts_on(rflags)
        || rflags & crate::cpu_rules::rflags::TF != 0
        || !spend(&mut vcpu.in_place().allowance.hlt)
    {
        return false;
    }
    vcpu.retire(next_rip);
    true
}

/// Makes the IN or OUT `io` of `vcpu`, whose instruction ends at `next_rip`, with the
/// VM the dispatcher lent ([`lend`]), and completes it; not a string form, not under
/// RFLAGS.TF (its #DB is `dispatch::complete`'s), and only while a VM is lent.
#[inline(always)]
pub fn port_io<V: ArchVcpu>(vcpu: &mut V, io: IoAccess, next_rip: u64) -> Finished {
    let Some(mut vm) = vcpu.in_place().vm else {
        return Finished::No;
    };
    if io.string.is_some()
        || vcpu.rflags() & crate::cpu_rules::rflags::TF != 0
        || !spend(&mut vcpu.in_place().allowance.io)
    {
        return Finished::No;
    }
    // SAFETY: lent by the dispatcher for as long as the vCPU runs, and used by nothing
    // else meanwhile (the contract of `lend`).
    let vm = unsafe { vm.as_mut() };
    let (changes, lines) = (vm.platform.changes(), vm.lines_sent());
    let effect = crate::dispatch::port_access(vcpu, vm, io);
    if effect != PlatformEffect::None {
        // The guest ends (or its machine resets): the instruction does not complete.
        return leave(vcpu, effect);
    }
    vcpu.retire(next_rip);
    // A line for the host console goes out from the dispatcher's loop (the host's
    // housekeeping between entries): a guest that only writes its UART would else keep
    // it in for good.
    if vm.platform.changes() != changes || vm.console_waits() || vm.lines_sent() != lines {
        return leave(vcpu, effect);
    }
    Finished::Resume
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
    use crate::in_place::{Done, WHILE_HOST_WAITS};
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
        assert_eq!(
            v.in_place.take_done().cpuid,
            0,
            "the dispatcher took the count"
        );
    }

    #[test]
    fn a_hlt_the_cpu_wakes_from_itself_is_finished_in_place_and_counted() {
        let script = [VmExit::Hlt, VmExit::Hlt, END];
        let guest = |delivers: bool, interrupts_on: bool| {
            let mut m = vm(ram(1 << 20));
            let mut v = MockVcpu::new(&script);
            v.finish_in_place = true;
            v.cpu_delivers = delivers;
            if interrupts_on {
                v.rflags |= crate::cpu_rules::rflags::IF;
            }
            let start = v.rip;
            let end = run(&mut v, &mut m);
            (end, v.runs, m.stats.get(ExitKind::Hlt), v.rip - start)
        };
        let (end, runs, hlts, moved) = guest(true, true);
        assert!(matches!(end, GuestEnd::Exited(_)), "{end:?}");
        assert_eq!(
            runs, 1,
            "both HLTs in place, the end through the dispatcher"
        );
        assert_eq!(hlts, 2, "counted");
        assert_eq!(moved, 2 * MockVcpu::new(&[]).insn_len, "each one completed");
        // Interrupts off: the dispatcher's (the guest's only vCPU halts for good).
        let (end, runs, hlts, _) = guest(true, false);
        assert_eq!((end, runs, hlts), (GuestEnd::Halted, 1, 1));
        // Nothing the CPU delivers: the dispatcher's, which finds nothing to wake it.
        let (end, runs, _, _) = guest(false, true);
        assert!(matches!(end, GuestEnd::Error(_)), "{end:?}");
        assert_eq!(runs, 1);
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
        assert_eq!(v.in_place.take_done().cpuid, 1);
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

    /// An IN or OUT of a byte at `port`.
    fn byte(port: u16, dir: IoDir) -> VmExit {
        VmExit::Io(IoAccess {
            port,
            size: 1,
            dir,
            string: None,
        })
    }

    /// COM1's scratch, interrupt-enable and modem-control registers.
    const SCR: u16 = 0x3ff;
    const IER: u16 = 0x3f9;
    const MCR: u16 = 0x3fc;

    /// A vCPU whose backend finishes what it can in place, running `script`.
    fn in_place_vcpu(script: &[VmExit]) -> MockVcpu {
        let mut v = MockVcpu::new(script);
        v.finish_in_place = true;
        v
    }

    #[test]
    fn port_accesses_are_made_in_place_completed_once_and_counted() {
        let mut m = vm(ram(1 << 20));
        let mut v = in_place_vcpu(&[byte(SCR, IoDir::Out), byte(SCR, IoDir::In), END]);
        let start = v.rip;
        v.regs[Gpr::Rax as usize] = 0x5a;
        let end = run(&mut v, &mut m);
        // The scratch register took the byte and gave it back (into RAX, which the
        // debug-exit port then ended the guest with).
        assert_eq!(end, GuestEnd::Exited(0x5a));
        assert_eq!(v.runs, 1, "the dispatcher saw none of them but the end's");
        assert_eq!(
            v.rip,
            start + 2 * v.insn_len,
            "each completed once; the end not"
        );
        assert_eq!(m.stats.get(ExitKind::Io), 3, "all three counted");
        assert_eq!(v.in_place.take_done(), Done::default(), "taken at the end");
    }

    #[test]
    fn an_access_that_moves_an_interrupt_line_leaves_for_the_dispatcher() {
        // 0x0a: to MCR, OUT2 (the PC's gate of the UART's line) and RTS, no line yet;
        // to IER, THRE's interrupt (and modem status) with the transmitter empty:
        // COM1's line rises, which the dispatcher must offer. Then the scratch register
        // in place again.
        let mut m = vm(ram(1 << 20));
        let script = [
            byte(MCR, IoDir::Out),
            byte(IER, IoDir::Out),
            byte(SCR, IoDir::Out),
            END,
        ];
        let mut v = in_place_vcpu(&script);
        let start = v.rip;
        v.regs[Gpr::Rax as usize] = 0x0a;
        assert_eq!(run(&mut v, &mut m), GuestEnd::Exited(0x0a));
        assert_eq!(v.runs, 2, "the IER write left the loop; the others did not");
        assert_eq!(
            v.rip,
            start + 3 * v.insn_len,
            "the one that left completed once"
        );
        assert_eq!(v.offers, 2, "at the first entry, and after the line rose");
        assert_eq!(m.stats.get(ExitKind::Io), 4);
        assert!(m.platform.com1.irq_pending(), "the write reached COM1");
    }

    #[test]
    fn without_a_lent_vm_a_string_form_or_a_single_step_goes_to_the_dispatcher() {
        let mut m = vm(ram(1 << 20));
        // Run outside a slice: no VM lent.
        let mut v = in_place_vcpu(&[byte(SCR, IoDir::Out)]);
        assert_eq!(v.run(), Ok(byte(SCR, IoDir::Out)), "no VM: not in place");
        // A REP OUTSB and a single-stepped OUT, in a slice.
        let outs = VmExit::Io(IoAccess {
            string: Some(crate::exit::StringIo {
                rep: false,
                addr_size: 4,
                seg: crate::vcpu::SegReg::Ds,
            }),
            ..IoAccess {
                port: SCR,
                size: 1,
                dir: IoDir::Out,
                string: None,
            }
        });
        let mut v = in_place_vcpu(&[outs, byte(SCR, IoDir::Out), END]);
        v.rflags |= crate::cpu_rules::rflags::TF;
        let now = crate::mock::TSC.with(|t| t.get());
        assert!(matches!(
            run_slice(&mut v, &mut m, now + 1_000_000_000),
            Stop::Ended(_)
        ));
        assert_eq!(v.runs, 3, "every access went to the dispatcher");
        assert_eq!(v.in_place.vm, None, "taken back at the end of the slice");
    }

    #[test]
    fn an_access_that_sends_a_console_line_leaves_for_the_dispatcher() {
        // 250 bytes to COM1's transmitter: the 200th fills a line, handed to the host
        // console, which sends it in its housekeeping between the dispatcher's entries.
        let mut m = vm(ram(1 << 20));
        let mut script = std::vec![byte(0x3f8, IoDir::Out); 250];
        script.push(END);
        let mut v = in_place_vcpu(&script);
        v.regs[Gpr::Rax as usize] = u64::from(b'x');
        assert_eq!(run(&mut v, &mut m), GuestEnd::Exited(u32::from(b'x')));
        assert_eq!(v.runs, 2, "left after the line, then the end");
        let out = crate::mock::take_output();
        assert!(
            out.starts_with(&std::format!("[t] {}\n", "x".repeat(200))),
            "{out}"
        );
    }

    #[test]
    fn while_the_host_has_housekeeping_left_the_dispatcher_sees_an_exit_after_64_of_a_kind() {
        // A guest whose exits could all be finished in place (the first CPUID aside),
        // port accesses and CPUIDs in turn: while the host's console output waits (sent
        // between the dispatcher's entries), 64 of each kind are finished in place, then
        // the next goes to the dispatcher.
        let mut m = vm(ram(1 << 20));
        crate::mock::HOST_WAITS.with(|w| w.set(true));
        let n = 4 * WHILE_HOST_WAITS as usize + 4;
        let mut script = std::vec![VmExit::Cpuid];
        for i in 0..n {
            script.push(if i % 2 == 0 {
                byte(SCR, IoDir::Out)
            } else {
                VmExit::Cpuid
            });
        }
        script.push(END);
        let mut v = in_place_vcpu(&script);
        v.cpuid_leaf = Some((crate::cpuid::HV_BASE, 0));
        assert!(matches!(run(&mut v, &mut m), GuestEnd::Exited(_)));
        // The first CPUID; 128 in place then an OUT, twice; 2 in place; the end.
        assert_eq!(v.runs, 4, "the dispatcher saw the 129th exit, twice");
        assert_eq!(
            m.stats.get(ExitKind::Cpuid) + m.stats.get(ExitKind::Io),
            n as u64 + 2
        );
        crate::mock::HOST_WAITS.with(|w| w.set(false));
    }

    #[test]
    fn while_the_host_is_idle_the_dispatcher_still_sees_an_exit_after_1024_of_a_kind() {
        // A guest spinning on CPUID with the host's console quiet: where the host's timer
        // does not take the CPU back from it (Bochs' AMD-V with the guest's IF clear),
        // these passes are how the dispatcher ends its slice and its time limit.
        let mut m = vm(ram(1 << 20));
        let n = 2 * crate::in_place::WHILE_HOST_IDLE as usize + 4;
        let mut v = asking(crate::cpuid::HV_BASE, n);
        assert!(matches!(run(&mut v, &mut m), GuestEnd::Exited(_)));
        // The first CPUID; 1,024 in place then one, twice; 2 in place; the end.
        assert_eq!(v.runs, 4, "the dispatcher saw the 1,025th exit, twice");
        assert_eq!(m.stats.get(ExitKind::Cpuid), n as u64);
    }
}
