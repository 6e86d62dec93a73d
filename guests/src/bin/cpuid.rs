//! The CPUID-consistency suite: a CPU that keeps its word. For every feature the guest's
//! CPUID shows (leaf 1 ECX/EDX, leaf 7.0 EBX, leaf 0x8000_0001 ECX/EDX, leaf 0xD) it runs
//! the instructions, control-register bits and MSRs that feature defines (SDM Vol 2A,
//! CPUID, Tables 3-8 to 3-11; APM Vol 3, Appendix E) and checks their results; for a few
//! features Janus hides it checks they are hidden consistently (the instruction #UDs, the
//! CR4/EFER bit #GPs); the topology leaves are checked against each other and the local
//! APIC (`cpuid/topology.rs`). One check per feature: `ok` when exercised and right, `ok (not
//! shown)` when CPUID does not show it; bits shown that no check covers are listed in a
//! `note:` line. It follows the guest's CPUID, not the host's: an emulator may lack what
//! its host CPU has.
#![no_std]
#![no_main]

#[path = "cpuid/hidden.rs"]
mod hidden;
#[path = "cpuid/isa.rs"]
mod isa;
#[path = "cpuid/msrs.rs"]
mod msrs;
#[path = "cpuid/repeat.rs"]
mod repeat;
#[path = "cpuid/simd.rs"]
mod simd;
#[path = "cpuid/system.rs"]
mod system;
#[path = "cpuid/topology.rs"]
mod topology;

use core::fmt;
use janus_guests::rt::fpu::enable_sse;
use janus_guests::rt::idt::{catch_exception, mnemonic, ErrorInfo};
use janus_guests::rt::pc;
use janus_guests::{cpuid, entry, println, BootInfo, Suite};

entry!(main);

/// One CPUID bit: leaf, subleaf, register (0 = EAX .. 3 = EDX), bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bit {
    leaf: u32,
    reg: usize,
    bit: u32,
}

/// Leaf 1 ECX bit `b`.
pub const fn l1c(bit: u32) -> Bit {
    Bit {
        leaf: 1,
        reg: 2,
        bit,
    }
}
/// Leaf 1 EDX bit `b`.
pub const fn l1d(bit: u32) -> Bit {
    Bit {
        leaf: 1,
        reg: 3,
        bit,
    }
}
/// Leaf 7 subleaf 0 EBX bit `b`.
pub const fn l7b(bit: u32) -> Bit {
    Bit {
        leaf: 7,
        reg: 1,
        bit,
    }
}
/// Leaf 7 subleaf 0 ECX bit `b`.
pub const fn l7c(bit: u32) -> Bit {
    Bit {
        leaf: 7,
        reg: 2,
        bit,
    }
}
/// Leaf 0x8000_0001 ECX bit `b`.
pub const fn e1c(bit: u32) -> Bit {
    Bit {
        leaf: 0x8000_0001,
        reg: 2,
        bit,
    }
}
/// Leaf 0x8000_0001 EDX bit `b`.
pub const fn e1d(bit: u32) -> Bit {
    Bit {
        leaf: 0x8000_0001,
        reg: 3,
        bit,
    }
}

/// The register of `b`'s leaf, 0 when the leaf is past the highest one CPUID reports.
fn reg_of(b: Bit) -> u32 {
    let max = cpuid(b.leaf & 0x8000_0000, 0)[0];
    if b.leaf > max {
        0
    } else {
        cpuid(b.leaf, 0)[b.reg]
    }
}

/// Whether the guest's CPUID shows `b`.
pub fn shown(b: Bit) -> bool {
    reg_of(b) & (1 << b.bit) != 0
}

/// How exercising a feature went.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    Ok,
    /// An exception where none was due.
    Fault(ErrorInfo),
    /// A wrong result.
    Wrong {
        got: u64,
        want: u64,
    },
    /// No exception where vector `want` was due.
    NoFault {
        want: u8,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Fault(e) => write!(
                f,
                "{} (vector {}) error {:#x} at rip {:#x}",
                mnemonic(u64::from(e.vector)),
                e.vector,
                e.error,
                e.rip
            ),
            Outcome::Wrong { got, want } => write!(f, "got {got:#x}, want {want:#x}"),
            Outcome::NoFault { want } => {
                write!(f, "no {} (vector {want})", mnemonic(u64::from(want)))
            }
        }
    }
}

impl Outcome {
    /// The first outcome that is not `Ok`, else `Ok`.
    pub fn and(self, next: impl FnOnce() -> Outcome) -> Outcome {
        match self {
            Outcome::Ok => next(),
            bad => bad,
        }
    }
}

/// Runs `f` (a small asm block): `Ok` unless it raised an exception.
pub fn runs(f: impl FnOnce()) -> Outcome {
    match catch_exception(f) {
        Some(e) => Outcome::Fault(e),
        None => Outcome::Ok,
    }
}

/// Runs `f`: `Ok` if it returned `want` without an exception.
pub fn gives(want: u64, f: impl FnOnce() -> u64) -> Outcome {
    let mut got = 0;
    match catch_exception(|| got = f()) {
        Some(e) => Outcome::Fault(e),
        None if got == want => Outcome::Ok,
        None => Outcome::Wrong { got, want },
    }
}

/// Runs `f`: `Ok` if it raised exception `vector`.
pub fn faults(vector: u8, f: impl FnOnce()) -> Outcome {
    match catch_exception(f) {
        Some(e) if e.vector == vector => Outcome::Ok,
        Some(e) => Outcome::Fault(e),
        None => Outcome::NoFault { want: vector },
    }
}

/// `Ok` if `cond`, else a wrong result `got`/`want`.
pub fn expect(got: u64, want: u64) -> Outcome {
    if got == want {
        Outcome::Ok
    } else {
        Outcome::Wrong { got, want }
    }
}

/// A feature and how to exercise it. `hidden` features are checked when CPUID does not
/// show them (that they are hidden consistently) and noted when it does.
pub struct Feature {
    pub name: &'static str,
    pub bit: Bit,
    pub hidden: bool,
    pub exercise: fn() -> Outcome,
}

/// A feature CPUID shows, exercised when shown.
pub const fn shows(name: &'static str, bit: Bit, exercise: fn() -> Outcome) -> Feature {
    Feature {
        name,
        bit,
        hidden: false,
        exercise,
    }
}

/// A feature Janus hides, checked when not shown.
pub const fn hides(name: &'static str, bit: Bit, exercise: fn() -> Outcome) -> Feature {
    Feature {
        name,
        bit,
        hidden: true,
        exercise,
    }
}

/// Every table, in the order they run (the x2APIC switch, in `msrs`, last).
const TABLES: [&[Feature]; 7] = [
    isa::FEATURES,
    repeat::FEATURES,
    simd::FEATURES,
    system::FEATURES,
    topology::FEATURES,
    hidden::FEATURES,
    msrs::FEATURES,
];

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("cpuid");
    pc::pic_disable();
    // SSE, x87 and MMX need CR0.EM clear and CR4.OSFXSR (SDM Vol 3A 13.1.3); the CPUID
    // shows FXSR and SSE on every model Janus runs on.
    enable_sse();
    for f in TABLES.iter().flat_map(|t| t.iter()) {
        run(&mut s, f);
    }
    note_uncovered();
    s.finish()
}

fn run(s: &mut Suite, f: &Feature) {
    if shown(f.bit) == f.hidden {
        let why = if f.hidden { "shown" } else { "not shown" };
        s.check_note(f.name, true, format_args!("{why}"), format_args!(""));
        return;
    }
    let r = (f.exercise)();
    s.check(f.name, matches!(r, Outcome::Ok), format_args!("{r}"));
}

/// The bits of leaf 0x8000_0001 EDX that repeat leaf 1 EDX on AMD CPUs (APM Vol 3,
/// Appendix E.4.2: FPU-PGE, MCA-PSE36, MMX, FXSR), covered by their leaf 1 checks.
fn mirrored(r: Bit) -> u32 {
    if r == e1d(0) {
        0x0183_f3ff
    } else {
        0
    }
}

/// Prints the bits CPUID shows in the walked registers that no check covers.
fn note_uncovered() {
    let regs = [l1c(0), l1d(0), l7b(0), l7c(0), e1c(0), e1d(0)];
    let names = [
        "1.ecx",
        "1.edx",
        "7.ebx",
        "7.ecx",
        "80000001.ecx",
        "80000001.edx",
    ];
    for (r, n) in regs.iter().zip(names) {
        let covered = TABLES
            .iter()
            .flat_map(|t| t.iter())
            .filter(|f| f.bit.leaf == r.leaf && f.bit.reg == r.reg)
            .fold(0u32, |m, f| m | 1 << f.bit.bit);
        let left = reg_of(*r) & !covered & !mirrored(*r);
        if left != 0 {
            println!("note: leaf {n} shows bits {left:#010x} that no check exercises");
        }
    }
}
