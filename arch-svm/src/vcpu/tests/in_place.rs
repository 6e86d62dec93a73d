//! CPUID exits finished without the dispatcher (`vmm_core::in_place`): where the CPU
//! says the instruction ends (NRIP save, APM Vol 2 15.7.1) or, without NRIP save, where
//! the exit site the dispatcher kept says; and with V_TPR as it was at VMRUN. Port
//! accesses too, with the VM the dispatcher lent, ending where IOIO says.

use super::next_rip::ram_with;
use super::{playing, vcpu_with, CAPS, ENTRY, NRIP_CAPS, PROTECTED};
use crate::vcpu::SvmVcpu;
use crate::vcpu::Switch;
use vmm_core::exit::VmExit;
use vmm_core::fetch::InsnCache;
use vmm_core::vcpu::{ArchVcpu, Gpr};

const CPUID: u64 = 0x72;
const VMMCALL: u64 = 0x81;
const HLT: u64 = 0x78;
/// Leaf 6's answer, remembered: its EAX asks leaf 6 again at the next CPUID.
const ANSWER: [u32; 4] = [6, 0x22, 0, 0x44];

/// A vCPU whose first VMRUN ends in a CPUID exit for leaf 6 (in an STI shadow, nRIP
/// 0x1002), with the answer for leaf 6 remembered.
fn after_cpuid() -> SvmVcpu {
    let mut v = vcpu_with(PROTECTED, NRIP_CAPS);
    v.in_place().answers.get_or(6, 0, || ANSWER);
    let c = &mut v.vmcb.control;
    (c.exit_code, c.next_rip, c.interrupt_shadow) = (CPUID, 0x1002, 1);
    v.vmcb.save.rip = 0x1000;
    v.vmcb.save.rax = 6;
    v.set_gpr(Gpr::Rcx, 0);
    v
}

/// EAX to EDX and RIP.
fn registers(v: &SvmVcpu) -> [u64; 5] {
    let r = |g| v.gpr(g);
    [r(Gpr::Rax), r(Gpr::Rbx), r(Gpr::Rcx), r(Gpr::Rdx), v.rip()]
}

/// Runs `v`: its first VMRUN leaves the exit the test wrote, the ones after it exit with
/// `codes` in turn (nRIP 2 bytes on). The exit the dispatcher gets, and the VMRUNs.
fn run_through(v: &mut SvmVcpu, codes: &[u64]) -> (VmExit, usize) {
    let mut next = codes.iter();
    let mut vmruns = 0;
    v.loaded = true;
    let exit = v.run_with(playing(|v| {
        vmruns += 1;
        if vmruns > 1 {
            let rip = v.vmcb.save.rip;
            let c = &mut v.vmcb.control;
            c.exit_code = *next.next().expect("a VMRUN more than scripted");
            c.next_rip = rip + 2;
        }
    }));
    (exit.unwrap(), vmruns)
}

#[test]
fn a_cpuid_answered_before_is_finished_without_the_dispatcher() {
    let mut v = after_cpuid();
    v.vmcb.control.vmcb_clean = 0;
    let (exit, vmruns) = run_through(&mut v, &[CPUID, CPUID, HLT]);
    assert_eq!(
        (exit, vmruns),
        (VmExit::Hlt, 4),
        "entered again after each CPUID"
    );
    assert_eq!(registers(&v), [6, 0x22, 0, 0x44, 0x1006]);
    assert_eq!(
        v.vmcb.control.interrupt_shadow & 1,
        0,
        "the STI shadow ended"
    );
    assert_eq!(
        v.in_place().take_done().cpuid,
        3,
        "counted for the dispatcher"
    );
    assert_eq!(v.vmcb.control.tlb_control, 0, "as after any exit");
    assert_eq!(
        v.vmcb.control.vmcb_clean, v.clean_after_exit,
        "as after any exit"
    );
}

#[test]
fn exits_finished_in_place_stay_inside_the_world_switch_and_each_run_leaves_it_once() {
    // CPUID, CPUID in place, then HLT for the dispatcher: the guest's VMLOAD state is
    // not saved and loaded again around the exits finished in place (crate::entry).
    let mut v = after_cpuid();
    let mut parts = Vec::new();
    let mut codes = [CPUID, HLT].into_iter();
    v.loaded = true;
    let exit = v.run_with(|v, part| {
        parts.push(part);
        if part != Switch::Leave && parts.len() > 1 {
            let rip = v.vmcb.save.rip;
            let c = &mut v.vmcb.control;
            c.exit_code = codes.next().expect("a VMRUN more than scripted");
            c.next_rip = rip + 2;
        }
    });
    assert_eq!(exit, Ok(VmExit::Hlt));
    use Switch::{Again, Enter, Leave};
    assert_eq!(parts, [Enter, Again, Again, Leave]);
    // An exit for the dispatcher at once: in and out.
    let mut v = after_cpuid();
    v.vmcb.control.exit_code = HLT;
    v.loaded = true;
    let mut parts = Vec::new();
    let exit = v.run_with(|_, part| parts.push(part));
    assert_eq!((exit, parts), (Ok(VmExit::Hlt), vec![Enter, Leave]));
}

/// What a case changes in the vCPU of [`after_cpuid`].
type Change = fn(&mut SvmVcpu);

#[test]
fn anything_else_goes_to_the_dispatcher_untouched() {
    let cases: [(&str, Change); 7] = [
        ("no NRIP save", |v| v.caps = CAPS),
        ("no nRIP", |v| v.vmcb.control.next_rip = 0),
        ("V_TPR moved", |v| v.vmcb.control.v_intr |= 3),
        // A window request (V_IRQ, bit 8: APM Vol 2 15.21.4) the guest took.
        ("V_IRQ taken", |v| v.vmcb.control.v_intr &= !(1 << 8)),
        ("single-step", |v| v.vmcb.save.rflags |= 1 << 8),
        ("another leaf", |v| v.vmcb.save.rax = 7),
        ("another exit", |v| v.vmcb.control.exit_code = VMMCALL),
    ];
    for (what, change) in cases {
        let mut v = after_cpuid();
        // The guest's own doing while it runs: a MOV to CR8, a virtual interrupt taken.
        let during_run = what == "V_TPR moved" || what == "V_IRQ taken";
        if what == "V_IRQ taken" {
            v.vmcb.control.v_intr |= 1 << 8;
        }
        if !during_run {
            change(&mut v);
        }
        let before = registers(&v);
        let mut vmruns = 0;
        v.loaded = true;
        let exit = v.run_with(playing(|v| {
            vmruns += 1;
            assert_eq!(vmruns, 1, "{what}: entered again");
            if during_run {
                change(v); // the guest's MOV to CR8, without an exit
            }
        }));
        let want = match what {
            "another exit" => VmExit::Hypercall,
            _ => VmExit::Cpuid,
        };
        assert_eq!((exit, vmruns), (Ok(want), 1), "{what}");
        assert_eq!(registers(&v), before, "{what}");
        assert_eq!(v.vmcb.control.interrupt_shadow & 1, 1, "{what}");
        assert_eq!(v.in_place().take_done().cpuid, 0, "{what}");
    }
}

#[test]
fn without_nrip_save_a_cpuid_at_the_kept_site_is_finished_without_the_dispatcher() {
    let mem = ram_with(&[0x0f, 0xa2]); // CPUID at ENTRY
    let entry = u64::from(ENTRY);
    let mut v = vcpu_with(PROTECTED, CAPS);
    v.in_place().answers.get_or(6, 0, || ANSWER);
    v.vmcb.control.exit_code = CPUID;
    v.vmcb.save.rax = 6;
    v.set_gpr(Gpr::Rcx, 0);
    // The dispatcher's first CPUID there: its length read, the site kept.
    super::exit(&mut v).unwrap();
    let mut cache = InsnCache::default();
    assert_eq!(v.next_rip(&mem, &mut cache), Ok(entry + 2));
    // SAFETY: `ram_with` leaks its buffer: the memory lives for good.
    unsafe { vmm_core::in_place::keep_site(&mut v, &mem, &cache) };
    // The guest loops back to it: two CPUIDs there in place, then HLT.
    let mut codes = [CPUID, CPUID, HLT].into_iter();
    let mut vmruns = 0;
    v.loaded = true;
    let exit = v.run_with(playing(|v| {
        vmruns += 1;
        v.vmcb.save.rip = entry;
        v.vmcb.control.exit_code = codes.next().expect("a VMRUN more than scripted");
    }));
    assert_eq!((exit, vmruns), (Ok(VmExit::Hlt), 3));
    assert_eq!(v.in_place().take_done().cpuid, 2);
    // Elsewhere, the site says nothing: the dispatcher's.
    let mut codes = [CPUID].into_iter();
    let exit = v.run_with(playing(|v| {
        v.vmcb.save.rip = entry + 0x10;
        v.vmcb.control.exit_code = codes.next().expect("entered again");
    }));
    assert_eq!(exit, Ok(VmExit::Cpuid));
}

const IOIO: u64 = 0x7b;
/// COM1's scratch register, and QEMU's debug-exit port (a write ends the guest).
const SCR: u64 = 0x3ff;
const DEBUG_EXIT: u64 = 0xf4;

/// EXITINFO1 of a byte IN or OUT at `port` (APM Vol 2 15.10.2).
fn ioio_byte(port: u64, input: bool) -> u64 {
    use crate::vmcb::exit_code::ioio;
    port << ioio::PORT_SHIFT | ioio::SZ8 | if input { ioio::TYPE_IN } else { 0 }
}

/// A VM with 64 KiB of RAM on a host that does nothing.
fn quiet_vm() -> vmm_core::vm::Vm {
    vmm_core::vm::Vm::new("t", ram_with(&[]), vmm_core::vm::HostHooks::NONE, 1)
}

/// A vCPU without NRIP save (IOIO says where the instruction ends all the same) whose
/// first VMRUN ends in an OUT of AL (0x5a) at `port`, 1 byte, at 0x1000.
fn after_out(port: u64) -> SvmVcpu {
    let mut v = vcpu_with(PROTECTED, CAPS);
    let c = &mut v.vmcb.control;
    (c.exit_code, c.exit_info1, c.exit_info2) = (IOIO, ioio_byte(port, false), 0x1001);
    v.vmcb.save.rip = 0x1000;
    v.vmcb.save.rax = 0x5a;
    v.loaded = true;
    v
}

#[test]
fn port_accesses_are_finished_without_the_dispatcher_while_a_vm_is_lent() {
    let mut vm = quiet_vm();
    let mut v = after_out(SCR);
    // SAFETY: `vm` outlives the runs below and nothing else uses it meanwhile.
    unsafe { vmm_core::in_place::lend(&mut v, &mut vm) };
    // The OUT, then an IN from the scratch register, then HLT.
    let mut vmruns = 0;
    let exit = v.run_with(playing(|v| {
        vmruns += 1;
        let rip = v.vmcb.save.rip;
        let c = &mut v.vmcb.control;
        match vmruns {
            1 => {}
            2 => {
                (c.exit_code, c.exit_info1, c.exit_info2) = (IOIO, ioio_byte(SCR, true), rip + 1);
                v.vmcb.save.rax = 0x1100;
            }
            _ => c.exit_code = HLT,
        }
    }));
    assert_eq!((exit, vmruns), (Ok(VmExit::Hlt), 3), "entered after each");
    assert_eq!(
        v.vmcb.save.rax, 0x115a,
        "the IN read what the OUT wrote, into AL"
    );
    assert_eq!(v.rip(), 0x1002, "each completed where IOIO said");
    assert_eq!(v.in_place().take_done().io, 2, "counted for the dispatcher");
    // The debug-exit port ends the guest: made, not completed, and left to the
    // dispatcher with its effect.
    let mut v = after_out(DEBUG_EXIT);
    // SAFETY: as above.
    unsafe { vmm_core::in_place::lend(&mut v, &mut vm) };
    let exit = v.run_with(playing(|_| {}));
    assert!(matches!(exit, Ok(VmExit::Io(_))), "{exit:?}");
    assert_eq!(v.rip(), 0x1000, "not completed");
    assert_eq!(
        v.in_place().take_left(),
        Some(vmm_core::platform::PlatformEffect::Exit(0x5a))
    );
    // Without a VM lent: the dispatcher's, untouched.
    let mut v = after_out(SCR);
    let exit = v.run_with(playing(|_| {}));
    assert!(matches!(exit, Ok(VmExit::Io(_))), "{exit:?}");
    assert_eq!((v.rip(), v.in_place().take_done().io), (0x1000, 0));
    assert_eq!(v.in_place().take_left(), None);
}
