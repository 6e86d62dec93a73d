//! Exception handling for Janus itself: print the vector, error code and registers, then
//! end the machine cleanly. One exception is expected and recovered: a #GP from
//! [`rdmsr_safe`] probing an MSR the CPU lacks (Bochs has no VM_CR, for instance).

use crate::machine::{end, EndCode};
use core::mem::size_of;
use core::ptr::addr_of;
use core::sync::atomic::Ordering;
use spin::Once;
use x86::dtables::{lidt, DescriptorTablePointer};

/// What the stubs leave on the stack: the general registers (pushed by the common stub),
/// the vector and error code (pushed by each stub; 0 where the CPU pushes none), and the
/// CPU's interrupt frame (SDM Vol 3A 7.14.1).
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(size_of::<Frame>() == 22 * 8);

// Vectors that push an error code: #DF 8, #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17,
// #CP 21, #VC 29, #SX 30 (SDM Vol 3A Table 7-1).
macro_rules! stubs {
    ($($n:literal $err:literal),*) => {
        core::arch::global_asm!(
            $(
                concat!(".global exc_stub_", $n),
                concat!("exc_stub_", $n, ":"),
                concat!(".if ", $err, " == 0"),
                "push 0",
                ".endif",
                concat!("push ", $n),
                "jmp exc_common",
            )*
            "exc_common:",
            "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
            "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
            "mov rdi, rsp",
            "call {handler}",
            "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
            "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
            "add rsp, 16",
            "iretq",
            ".section .rodata",
            ".balign 8",
            "exc_stub_table:",
            $( concat!(".quad exc_stub_", $n), )*
            ".previous",
            handler = sym exception_handler,
        );
    };
}
stubs!(0 0, 1 0, 2 0, 3 0, 4 0, 5 0, 6 0, 7 0, 8 1, 9 0, 10 1, 11 1, 12 1, 13 1, 14 1, 15 0,
       16 0, 17 1, 18 0, 19 0, 20 0, 21 1, 22 0, 23 0, 24 0, 25 0, 26 0, 27 0, 28 0, 29 1, 30 1, 31 0);

extern "C" {
    static exc_stub_table: [u64; 32];
    fn janus_rdmsr_insn();
    fn janus_rdmsr_fixup();
}

// RDMSR that survives a #GP: the handler below moves RIP from the RDMSR to the fix-up.
core::arch::global_asm!(
    ".global janus_rdmsr_safe, janus_rdmsr_insn, janus_rdmsr_fixup",
    "janus_rdmsr_safe:",
    "mov ecx, edi",
    "janus_rdmsr_insn:",
    "rdmsr",
    "shl rdx, 32",
    "or rax, rdx",
    "mov [rsi], rax",
    "xor eax, eax",
    "ret",
    "janus_rdmsr_fixup:",
    "mov eax, 1",
    "ret",
);

extern "C" {
    fn janus_rdmsr_safe(msr: u32, out: *mut u64) -> u32;
}

// POPCNT that survives a #UD: some emulated CPUs advertise it without implementing it
// (Bochs' phenom_8650_toliman), and guests must not be told it works then.
core::arch::global_asm!(
    ".global janus_popcnt_probe, janus_popcnt_insn, janus_popcnt_fixup",
    "janus_popcnt_probe:",
    "janus_popcnt_insn:",
    "popcnt rax, rdi",
    "ret",
    "janus_popcnt_fixup:",
    "mov rax, -1",
    "ret",
);

// TBM's BLCFILL (rax = rdi & (rdi + 1)) that survives a #UD: Bochs' trinity_apu shows
// TBM (CPUID 0x8000_0001 ECX bit 21) and raises #UD for it. Written as bytes (XOP map 9,
// opcode 01 /1, W=1: AMD APM Vol 3, BLCFILL) so that no assembler feature is needed.
core::arch::global_asm!(
    ".global janus_tbm_probe, janus_tbm_insn, janus_tbm_fixup",
    "janus_tbm_probe:",
    "janus_tbm_insn:",
    ".byte 0x8f, 0xe9, 0xf8, 0x01, 0xcf",
    "ret",
    "janus_tbm_fixup:",
    "mov rax, -1",
    "ret",
);

extern "C" {
    fn janus_popcnt_insn();
    fn janus_popcnt_fixup();
    fn janus_popcnt_probe(v: u64) -> u64;
    fn janus_tbm_insn();
    fn janus_tbm_fixup();
    fn janus_tbm_probe(v: u64) -> u64;
}

/// The instructions Janus probes, each with where a #UD or #GP on it resumes.
fn probe_fixup(rip: u64) -> Option<u64> {
    let table: [(unsafe extern "C" fn(), unsafe extern "C" fn()); 3] = [
        (janus_rdmsr_insn, janus_rdmsr_fixup),
        (janus_popcnt_insn, janus_popcnt_fixup),
        (janus_tbm_insn, janus_tbm_fixup),
    ];
    table
        .iter()
        .find(|(insn, _)| *insn as *const () as u64 == rip)
        .map(|(_, fixup)| *fixup as *const () as u64)
}

/// Whether POPCNT really works on this CPU (CPUID may say so when it does not).
pub fn popcnt_works() -> bool {
    // SAFETY: the routine only executes POPCNT; a #UD is recovered by the exception
    // handler (IDT installed by `init` before any caller runs).
    unsafe { janus_popcnt_probe(0xf0f0_0000_0000_0101) == 10 }
}

/// Whether TBM really works on this CPU (CPUID may say so when it does not).
pub fn tbm_works() -> bool {
    // SAFETY: the routine only executes BLCFILL; a #UD is recovered by the exception
    // handler (IDT installed by `init` before any caller runs).
    unsafe { janus_tbm_probe(0x17) == 0x10 }
}

/// Reads an MSR, or `None` if the CPU raises #GP for it.
pub fn rdmsr_safe(msr: u32) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: the routine only executes RDMSR and writes `v`; a #GP is recovered by the
    // exception handler (IDT installed by `init` before any caller runs).
    (unsafe { janus_rdmsr_safe(msr, &mut v) } == 0).then_some(v)
}

#[repr(C, align(16))]
struct Idt([[u64; 2]; 256]);
/// Built once, then only read (by the CPU); every host CPU can load the same table.
static IDT: Once<Idt> = Once::new();

/// A 64-bit interrupt gate (type 0xE, present, DPL 0) to `handler` (SDM Vol 3A 7.14.1).
fn gate(handler: u64, ist: u8) -> [u64; 2] {
    let low = (handler & 0xffff)
        | ((crate::gdt::CODE as u64) << 16)
        | ((ist as u64) << 32)
        | (0x8e << 40)
        | (((handler >> 16) & 0xffff) << 48);
    [low, handler >> 32]
}

pub fn init() {
    let idt = IDT.call_once(|| {
        // SAFETY: the stub table is linked in and never written.
        let table = unsafe { &*addr_of!(exc_stub_table) };
        let mut idt = Idt([[0; 2]; 256]);
        for (v, &stub) in table.iter().enumerate() {
            idt.0[v] = gate(stub, if v == 8 { 1 } else { 0 });
        }
        for (v, handler) in crate::hosttimer::handlers() {
            idt.0[v as usize] = gate(handler, 0);
        }
        idt
    });
    // SAFETY: the IDT lives forever in a static that is no longer written; its gates
    // point at Janus' handlers.
    unsafe { lidt(&DescriptorTablePointer::new(&idt.0)) };
}

/// Whether a #DB at `rip` is a guest's single-step trap that the CPU delivered to Janus
/// right after #VMEXIT. Bochs 2.7's AMD-V does so when the guest ran an intercepted
/// instruction with RFLAGS.TF set (seen on ryzen and phenom_8650_toliman with the
/// exceptions suite's `single_step_*` checks: the host's first instruction after VMRUN
/// took the #DB); a CPU intercepts the instruction before it runs and has no trap
/// pending. The guest still gets its #DB: Janus raises it when it completes the
/// instruction (`vmm_core::dispatch::complete`). Dropped here so that a guest cannot stop
/// Janus with it.
fn guest_single_step_leaked(rip: u64) -> bool {
    // Only the symbols' addresses are taken: labels in the world switch's code.
    rip == addr_of!(janus_svm_after_vmrun) as u64
        || rip == addr_of!(janus_svm_after_vmrun_again) as u64
}

unsafe extern "C" {
    /// The instruction after VMRUN in `arch_svm::entry::svm_run`.
    static janus_svm_after_vmrun: u8;
    /// The instruction after VMRUN in `arch_svm::entry::svm_run_again`.
    static janus_svm_after_vmrun_again: u8;
}

const NAMES: [&str; 32] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
    "#GP", "#PF", "15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "22", "23", "24", "25", "26",
    "27", "28", "#HV", "#VC", "#SX",
];

extern "C" fn exception_handler(f: &mut Frame) {
    if f.vector == 1 && guest_single_step_leaked(f.rip) {
        return;
    }
    if matches!(f.vector, 6 | 13) {
        if let Some(fixup) = probe_fixup(f.rip) {
            f.rip = fixup;
            return;
        }
    }
    let p = crate::console::print_emergency;
    let cpu = crate::percpu::current().map_or(0, |c| c.index.load(Ordering::Relaxed));
    p(format_args!(
        "janus: EXCEPTION {} (vector {}) error code {:#x} at rip {:#x} cs {:#x} rflags {:#x} rsp {:#x} on cpu {}\n",
        NAMES[(f.vector & 31) as usize], f.vector, f.error_code, f.rip, f.cs, f.rflags, f.rsp, cpu
    ));
    // SAFETY: reading CR2 has no side effects.
    let cr2 = unsafe { x86::controlregs::cr2() };
    p(format_args!(
        "janus:   rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x} cr2 {:#x}\n",
        f.rax, f.rbx, f.rcx, f.rdx, cr2
    ));
    p(format_args!(
        "janus:   rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\n",
        f.rsi, f.rdi, f.rbp, f.r8
    ));
    p(format_args!(
        "janus:   r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\n",
        f.r9, f.r10, f.r11, f.r12
    ));
    p(format_args!(
        "janus:   r13 {:#018x} r14 {:#018x} r15 {:#018x}\n",
        f.r13, f.r14, f.r15
    ));
    end(EndCode::Fatal)
}
