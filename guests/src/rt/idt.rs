//! A minimal 64-bit IDT: the 32 exception vectors print
//! `EXCEPTION vector N error E rip R` over serial and end the guest with status 0xFE.

use super::{cpu, suite};
use crate::println;

/// The exit status of a guest that took an exception.
pub const EXCEPTION_EXIT_STATUS: u32 = 0xfe;

// One stub per vector. Vectors 8, 10-14, 17, 21, 29 and 30 get an error code from the
// CPU; the others push a zero so the frame always looks the same:
// [rsp] = vector, [rsp+8] = error code, [rsp+16] = RIP, then CS, RFLAGS, RSP, SS.
core::arch::global_asm!(
    r#"
    .macro guest_isr_noerr n
guest_isr_\n:
    push 0
    push \n
    jmp guest_isr_common
    .endm
    .macro guest_isr_err n
guest_isr_\n:
    push \n
    jmp guest_isr_common
    .endm

    .section .text.guest_isr, "ax"
    .code64
    guest_isr_noerr 0
    guest_isr_noerr 1
    guest_isr_noerr 2
    guest_isr_noerr 3
    guest_isr_noerr 4
    guest_isr_noerr 5
    guest_isr_noerr 6
    guest_isr_noerr 7
    guest_isr_err 8
    guest_isr_noerr 9
    guest_isr_err 10
    guest_isr_err 11
    guest_isr_err 12
    guest_isr_err 13
    guest_isr_err 14
    guest_isr_noerr 15
    guest_isr_noerr 16
    guest_isr_err 17
    guest_isr_noerr 18
    guest_isr_noerr 19
    guest_isr_noerr 20
    guest_isr_err 21
    guest_isr_noerr 22
    guest_isr_noerr 23
    guest_isr_noerr 24
    guest_isr_noerr 25
    guest_isr_noerr 26
    guest_isr_noerr 27
    guest_isr_noerr 28
    guest_isr_err 29
    guest_isr_err 30
    guest_isr_noerr 31

guest_isr_common:
    cld
    mov rdi, [rsp]
    mov rsi, [rsp + 8]
    mov rdx, [rsp + 16]
    and rsp, -16
    call janus_guest_exception
1:
    cli
    hlt
    jmp 1b

    .section .rodata.guest_isr, "a"
    .balign 8
    .global guest_isr_table
guest_isr_table:
    .quad guest_isr_0, guest_isr_1, guest_isr_2, guest_isr_3
    .quad guest_isr_4, guest_isr_5, guest_isr_6, guest_isr_7
    .quad guest_isr_8, guest_isr_9, guest_isr_10, guest_isr_11
    .quad guest_isr_12, guest_isr_13, guest_isr_14, guest_isr_15
    .quad guest_isr_16, guest_isr_17, guest_isr_18, guest_isr_19
    .quad guest_isr_20, guest_isr_21, guest_isr_22, guest_isr_23
    .quad guest_isr_24, guest_isr_25, guest_isr_26, guest_isr_27
    .quad guest_isr_28, guest_isr_29, guest_isr_30, guest_isr_31
    .text
"#
);

extern "C" {
    static guest_isr_table: [u64; 32];
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
struct Idt([Gate; 32]);

static mut IDT: Idt = Idt([Gate::MISSING; 32]);

#[repr(C, packed)]
struct IdtPtr {
    limit: u16,
    base: u64,
}

/// Fills and loads the IDT. Called once by the entry code, before the guest's `main`.
pub fn install() {
    // SAFETY: runs once on the only CPU before anything else can see the IDT.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        let table = &*core::ptr::addr_of!(guest_isr_table);
        for (gate, &handler) in idt.0.iter_mut().zip(table.iter()) {
            *gate = Gate::interrupt(handler);
        }
        let ptr = IdtPtr {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: idt as *const Idt as u64,
        };
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(nostack, readonly, preserves_flags));
    }
}

fn mnemonic(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?", "#TS", "#NP", "#SS",
        "#GP", "#PF", "?", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "?", "?", "?", "?", "?", "?",
        "#HV", "#VC", "#SX", "?",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("?")
}

#[no_mangle]
extern "C" fn janus_guest_exception(vector: u64, error: u64, rip: u64) -> ! {
    println!(
        "EXCEPTION vector {} error {:#x} rip {:#x} ({})",
        vector,
        error,
        rip,
        mnemonic(vector)
    );
    suite::report_abort(format_args!(
        "exception vector {} at rip {:#x}",
        vector, rip
    ));
    cpu::exit(EXCEPTION_EXIT_STATUS)
}
