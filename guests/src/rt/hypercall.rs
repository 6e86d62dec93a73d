//! Janus hypercalls (docs/hypercalls.md): VMCALL on Intel and compatibles, VMMCALL on
//! AMD and Hygon, chosen from the CPUID 0 vendor string.

use super::cpu::vendor;
use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

/// `VERSION`: RAX = 0, RBX = ABI version.
pub const VERSION: u64 = 0;
/// `EXIT`: RBX = exit status; does not return.
pub const EXIT: u64 = 1;
/// `CONSOLE_WRITE`: RBX = guest-physical address, RCX = length (at most 4096).
pub const CONSOLE_WRITE: u64 = 2;
/// `EXIT_COUNT`: RAX = 0, RBX = VM exits taken so far.
pub const EXIT_COUNT: u64 = 3;
/// `STEAL_TIME`: RAX = 0, RBX = ns this vCPU waited for the CPU, RCX = how many times.
pub const STEAL_TIME: u64 = 4;

/// Unknown hypercall number.
pub const ENOSYS: i64 = -1;
/// Not made at CPL 0.
pub const EPERM: i64 = -2;
/// An address outside the guest's memory.
pub const EFAULT: i64 = -3;
/// A bad length or argument.
pub const EINVAL: i64 = -4;

/// The instruction a hypercall uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Insn {
    /// `VMCALL` (0F 01 C1): GenuineIntel, CentaurHauls, "  Shanghai  ".
    Vmcall,
    /// `VMMCALL` (0F 01 D9): AuthenticAMD, HygonGenuine.
    Vmmcall,
}

impl Insn {
    /// The mnemonic.
    pub fn name(self) -> &'static str {
        match self {
            Insn::Vmcall => "VMCALL",
            Insn::Vmmcall => "VMMCALL",
        }
    }

    /// The instruction for a CPUID 0 vendor string; unknown vendors get VMCALL.
    pub fn for_vendor(v: &[u8; 12]) -> Insn {
        match v {
            b"AuthenticAMD" | b"HygonGenuine" => Insn::Vmmcall,
            _ => Insn::Vmcall,
        }
    }
}

/// 0: not yet known; 1: VMCALL; 2: VMMCALL.
static INSN: AtomicU8 = AtomicU8::new(0);

/// The hypercall instruction for this CPU (looked up once).
pub fn insn() -> Insn {
    match INSN.load(Ordering::Relaxed) {
        1 => Insn::Vmcall,
        2 => Insn::Vmmcall,
        _ => {
            let i = Insn::for_vendor(&vendor());
            INSN.store(if i == Insn::Vmcall { 1 } else { 2 }, Ordering::Relaxed);
            i
        }
    }
}

/// Makes hypercall `nr` with arguments RBX, RCX, RDX, RSI; returns (RAX, RBX).
///
/// Without a hypervisor the instruction raises #UD, which the runtime reports.
pub fn hypercall(nr: u64, rbx: u64, rcx: u64, rdx: u64, rsi: u64) -> (u64, u64) {
    let (rax, rbx, _) = hypercall3(nr, rbx, rcx, rdx, rsi);
    (rax, rbx)
}

/// [`hypercall`], returning (RAX, RBX, RCX).
pub fn hypercall3(nr: u64, rbx: u64, rcx: u64, rdx: u64, rsi: u64) -> (u64, u64, u64) {
    let rax: u64;
    let mut b = rbx;
    let mut c = rcx;
    // The same sequence for both vendors, only the instruction's bytes differ.
    macro_rules! call {
        ($insn:literal) => {
            // SAFETY: the hypercall may read guest memory named by the arguments (hence
            // no `nomem`); it preserves every register not named as an output. RBX is
            // reserved by LLVM, so the argument travels in a scratch register and is
            // swapped in and out.
            unsafe {
                asm!(
                    "xchg {b}, rbx",
                    $insn,
                    "xchg {b}, rbx",
                    b = inout(reg) b,
                    inout("rax") nr => rax,
                    inout("rcx") c,
                    in("rdx") rdx,
                    in("rsi") rsi,
                    options(nostack),
                )
            }
        };
    }
    match insn() {
        Insn::Vmcall => call!(".byte 0x0f, 0x01, 0xc1"),
        Insn::Vmmcall => call!(".byte 0x0f, 0x01, 0xd9"),
    }
    (rax, b, c)
}

/// `STEAL_TIME`: (ns, times) this vCPU was ready to run while other guests had the CPU.
pub fn steal_time() -> (u64, u64) {
    let (_, ns, count) = hypercall3(STEAL_TIME, 0, 0, 0, 0);
    (ns, count)
}

/// Writes `bytes` to Janus' console with `CONSOLE_WRITE` (the guest is identity-mapped,
/// so the address of `bytes` is its guest-physical address). Returns RAX.
pub fn console_write(bytes: &[u8]) -> i64 {
    hypercall(
        CONSOLE_WRITE,
        bytes.as_ptr() as u64,
        bytes.len() as u64,
        0,
        0,
    )
    .0 as i64
}

/// Ends the guest's VM with `status` through the `EXIT` hypercall.
pub fn exit(status: u32) -> ! {
    hypercall(EXIT, u64::from(status), 0, 0, 0);
    super::cpu::halt()
}
