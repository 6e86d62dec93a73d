//! A 64-bit IDT with a stub for every vector.
//!
//! Vectors 0-31 (exceptions) print `EXCEPTION vector N error E rip R` over serial and end
//! the guest with status 0xFE, unless a suite installed a handler for the vector with
//! [`set_handler`] or is inside [`expect_exception`] / [`catch_exception`], which return
//! the exception's details instead. Vectors 32-255 call the handler installed with
//! [`set_handler`]; without one the interrupt is counted (see [`unexpected`]) and
//! printed, and the stub returns.
//!
//! Every stub builds the same [`Frame`]: the general registers, the vector, the error
//! code (0 for vectors without one) and the CPU's interrupt frame. A handler may change
//! the frame (for example RIP); the stub restores the registers from it and IRETQs.

use super::{cpu, suite};
use crate::println;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The exit status of a guest that took an exception.
pub const EXCEPTION_EXIT_STATUS: u32 = 0xfe;

/// The boot code's kernel code and data selectors, which `catch_exception` resumes with.
const KERNEL_CS: u64 = 0x08;
const KERNEL_SS: u64 = 0x10;

/// The saved state of an interrupted context, as the stubs push it.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
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
    /// The vector (0-255).
    pub vector: u64,
    /// The error code the CPU pushed, or 0 for vectors without one.
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// A handler for one vector. It runs with interrupts off (interrupt gates).
pub type Handler = fn(&mut Frame);

// One 16-byte stub per vector: stub N lives at guest_isr_stubs + 16 * N. Vectors 8,
// 10-14, 17, 21, 29 and 30 get an error code from the CPU; the others push a zero so
// the frame always looks the same. (Software `int N` for those vectors pushes no error
// code; the frame is then off by one slot, as on any OS.)
core::arch::global_asm!(
    r#"
    .section .text.guest_isr, "ax"
    .code64
    .balign 16
    .global guest_isr_stubs
guest_isr_stubs:
    .set guest_isr_vec, 0
    .rept 256
    .balign 16
    .if (guest_isr_vec == 8) || ((guest_isr_vec >= 10) && (guest_isr_vec <= 14)) || (guest_isr_vec == 17) || (guest_isr_vec == 21) || (guest_isr_vec == 29) || (guest_isr_vec == 30)
    .else
    push 0
    .endif
    push guest_isr_vec
    jmp guest_isr_common
    .set guest_isr_vec, guest_isr_vec + 1
    .endr

guest_isr_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    cld
    mov rdi, rsp
    mov rbx, rsp
    and rsp, -16
    call janus_guest_interrupt
    mov rsp, rbx
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq

    /* u64 guest_catch_call(JmpBuf *buf, void (*f)(void *), void *data):
       saves the callee-saved registers and RSP in buf, calls f(data) and returns 0.
       An exception caught while buf is armed resumes at guest_catch_resume with the
       saved registers and RSP, which returns 1 to guest_catch_call's caller. */
    .global guest_catch_call
guest_catch_call:
    mov [rdi], rbx
    mov [rdi + 8], rbp
    mov [rdi + 16], r12
    mov [rdi + 24], r13
    mov [rdi + 32], r14
    mov [rdi + 40], r15
    mov [rdi + 48], rsp
    sub rsp, 8
    mov rdi, rdx
    call rsi
    add rsp, 8
    xor eax, eax
    ret
    .global guest_catch_resume
guest_catch_resume:
    mov eax, 1
    ret
    .text
"#
);

extern "C" {
    static guest_isr_stubs: [u8; 16 * 256];
    fn guest_catch_call(buf: *mut JmpBuf, f: extern "C" fn(*mut u8), data: *mut u8) -> u64;
    fn guest_catch_resume();
}

/// A 64-bit interrupt gate (SDM Vol 3A 6.14.1).
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt(handler: u64) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: 0x08,
            ist: 0,
            type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static mut IDT: Idt = Idt([Gate::MISSING; 256]);

#[repr(C, packed)]
struct IdtPtr {
    limit: u16,
    base: u64,
}

/// Installed handlers: 0 = none, else a `Handler` cast to usize.
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
/// Interrupts at vectors 32-255 that arrived without a handler.
static UNEXPECTED: AtomicU32 = AtomicU32::new(0);
static LAST_UNEXPECTED: AtomicU32 = AtomicU32::new(0);

/// Fills and loads the IDT. Called once by the entry code, before the guest's `main`.
pub fn install() {
    // SAFETY: runs once on the only CPU before anything else can see the IDT.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        let base = core::ptr::addr_of!(guest_isr_stubs) as u64;
        for (i, gate) in idt.0.iter_mut().enumerate() {
            *gate = Gate::interrupt(base + 16 * i as u64);
        }
        let ptr = IdtPtr {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: idt as *const Idt as u64,
        };
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(nostack, readonly, preserves_flags));
    }
}

/// Installs `handler` for `vector` (replacing the default behaviour, also for 0-31).
pub fn set_handler(vector: u8, handler: Handler) {
    HANDLERS[vector as usize].store(handler as usize, Ordering::SeqCst);
}

/// Removes the handler for `vector`: back to the default behaviour.
pub fn clear_handler(vector: u8) {
    HANDLERS[vector as usize].store(0, Ordering::SeqCst);
}

/// How many interrupts at vectors 32-255 arrived without a handler, and the last vector.
pub fn unexpected() -> (u32, u32) {
    (
        UNEXPECTED.load(Ordering::SeqCst),
        LAST_UNEXPECTED.load(Ordering::SeqCst),
    )
}

/// What a caught exception looked like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    pub vector: u8,
    /// The error code (0 for vectors without one).
    pub error: u64,
    /// RIP in the exception frame (the faulting instruction for faults).
    pub rip: u64,
    /// CR2 when the exception arrived (meaningful for #PF).
    pub cr2: u64,
}

/// The saved context of `guest_catch_call`: RBX, RBP, R12-R15, RSP.
#[repr(C)]
struct JmpBuf([u64; 7]);

static mut CATCH_BUF: JmpBuf = JmpBuf([0; 7]);
/// Whether an exception (0-31) should resume at `guest_catch_resume`.
static CATCH_ARMED: AtomicUsize = AtomicUsize::new(0);
static CAUGHT_VECTOR: AtomicU64 = AtomicU64::new(0);
static CAUGHT_ERROR: AtomicU64 = AtomicU64::new(0);
static CAUGHT_RIP: AtomicU64 = AtomicU64::new(0);
static CAUGHT_CR2: AtomicU64 = AtomicU64::new(0);

extern "C" fn trampoline<F: FnOnce()>(data: *mut u8) {
    // SAFETY: `data` points at the `Option<F>` in `catch_exception`'s frame.
    let f = unsafe { &mut *(data as *mut Option<F>) };
    if let Some(f) = f.take() {
        f();
    }
}

/// Runs `f`; if it raises an exception (vectors 0-31 without an installed handler),
/// abandons `f` at that point and returns the exception's details. Returns `None` when
/// `f` returned normally. `f` should be small (typically one inline-asm block): what it
/// had on the stack is not dropped when it is abandoned. Not reentrant.
pub fn catch_exception<F: FnOnce()>(f: F) -> Option<ErrorInfo> {
    let mut f = Some(f);
    // SAFETY: the buffer is used by one catch at a time (not reentrant) and only by the
    // exception path below, which restores the registers it saved; `guest_catch_call`
    // follows the C ABI.
    let caught = unsafe {
        CATCH_ARMED.store(1, Ordering::SeqCst);
        let r = guest_catch_call(
            core::ptr::addr_of_mut!(CATCH_BUF),
            trampoline::<F>,
            &mut f as *mut Option<F> as *mut u8,
        );
        CATCH_ARMED.store(0, Ordering::SeqCst);
        r != 0
    };
    caught.then(|| ErrorInfo {
        vector: CAUGHT_VECTOR.load(Ordering::SeqCst) as u8,
        error: CAUGHT_ERROR.load(Ordering::SeqCst),
        rip: CAUGHT_RIP.load(Ordering::SeqCst),
        cr2: CAUGHT_CR2.load(Ordering::SeqCst),
    })
}

/// Runs `f` expecting exception `vector`: returns its details if `f` raised it, `None`
/// if `f` completed or raised another exception (which is printed).
pub fn expect_exception<F: FnOnce()>(vector: u8, f: F) -> Option<ErrorInfo> {
    match catch_exception(f) {
        Some(e) if e.vector == vector => Some(e),
        Some(e) => {
            println!(
                "note: expected {} (vector {}), got {} (vector {}) error {:#x} rip {:#x}",
                mnemonic(u64::from(vector)),
                vector,
                mnemonic(u64::from(e.vector)),
                e.vector,
                e.error,
                e.rip
            );
            None
        }
        None => None,
    }
}

/// The mnemonic of an exception vector ("#GP"), "?" for others.
pub fn mnemonic(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?", "#TS", "#NP", "#SS",
        "#GP", "#PF", "?", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "?", "?", "?", "?", "?", "?",
        "#HV", "#VC", "#SX", "?",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("?")
}

fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe {
        core::arch::asm!("mov {}, cr2", out(reg) v, options(nostack, nomem, preserves_flags))
    };
    v
}

#[no_mangle]
extern "C" fn janus_guest_interrupt(frame: &mut Frame) {
    let vector = frame.vector & 0xff;
    frame.vector = vector;
    let h = HANDLERS[vector as usize].load(Ordering::SeqCst);
    if h != 0 {
        // SAFETY: only `set_handler` stores non-zero values, and they are `Handler`s.
        let h: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        h(frame);
        return;
    }
    if vector >= 32 {
        UNEXPECTED.fetch_add(1, Ordering::SeqCst);
        LAST_UNEXPECTED.store(vector as u32, Ordering::SeqCst);
        println!("note: interrupt at vector {:#x} without a handler", vector);
        return;
    }
    if CATCH_ARMED.swap(0, Ordering::SeqCst) != 0 {
        CAUGHT_VECTOR.store(vector, Ordering::SeqCst);
        CAUGHT_ERROR.store(frame.error, Ordering::SeqCst);
        CAUGHT_RIP.store(frame.rip, Ordering::SeqCst);
        CAUGHT_CR2.store(read_cr2(), Ordering::SeqCst);
        // SAFETY: the buffer was filled by `guest_catch_call`, whose frame is still live.
        let b = unsafe { &*core::ptr::addr_of!(CATCH_BUF) };
        frame.rbx = b.0[0];
        frame.rbp = b.0[1];
        frame.r12 = b.0[2];
        frame.r13 = b.0[3];
        frame.r14 = b.0[4];
        frame.r15 = b.0[5];
        frame.rsp = b.0[6];
        // Back to CPL 0 even when the exception came from CPL 3 code (see `user::run`).
        frame.cs = KERNEL_CS;
        frame.ss = KERNEL_SS;
        frame.rip = guest_catch_resume as unsafe extern "C" fn() as usize as u64;
        frame.rflags &= !(1 << 8); // TF
        return;
    }
    println!(
        "EXCEPTION vector {} error {:#x} rip {:#x} ({})",
        vector,
        frame.error,
        frame.rip,
        mnemonic(vector)
    );
    suite::report_abort(format_args!(
        "exception vector {} at rip {:#x}",
        vector, frame.rip
    ));
    cpu::exit(EXCEPTION_EXIT_STATUS)
}
