//! Hypercall attacks (docs/hypercalls.md): CONSOLE_WRITE with addresses outside RAM,
//! wrapping around 2^64 and a 4 GiB length, an unknown number, hypercalls from CPL 3,
//! and console floods of 1 MiB without newlines, then 1 MiB with, through COM1 and
//! through CONSOLE_WRITE.

use super::{Ctx, Saw};
use core::arch::{asm, global_asm};
use janus_guests::rt::hypercall::{self, Insn, CONSOLE_WRITE, EXIT};
use janus_guests::rt::pc::COM1;
use janus_guests::rt::user;

fn console_write(addr: u64, len: u64) -> Saw {
    Saw::Errno(hypercall::hypercall(CONSOLE_WRITE, addr, len, 0, 0).0 as i64)
}

/// 16 bytes straddling the end of RAM.
pub fn console_outside_ram(c: &Ctx) -> Saw {
    console_write(c.ram_end - 8, 16)
}

/// 16 bytes at 1 TiB.
pub fn console_high(_: &Ctx) -> Saw {
    console_write(1 << 40, 16)
}

/// 16 bytes from 2^64 - 8: the end wraps around to 8.
pub fn console_wrap(_: &Ctx) -> Saw {
    console_write(u64::MAX - 7, 16)
}

/// A length of 2^32 from a valid address.
pub fn console_len_4g(c: &Ctx) -> Saw {
    console_write(c.image_end, 1 << 32)
}

/// Hypercall number 2^64 - 1.
pub fn unknown(_: &Ctx) -> Saw {
    Saw::Errno(hypercall::hypercall(u64::MAX, 0, 0, 0, 0).0 as i64)
}

/// RAX, RBX, RCX for the CPL 3 hypercall, and its RAX ([`UNTOUCHED`] until it returns).
static mut USER_ARGS: [u64; 3] = [0; 3];
static mut USER_RESULT: u64 = UNTOUCHED;
const UNTOUCHED: u64 = 0x5555_5555_5555_5555;

// CPL 3 code: loads the arguments, makes the hypercall, stores RAX and raises #UD to
// return to CPL 0 (see `user::run`).
global_asm!(
    r#"
    .section .text.hostile_user, "ax"
    .global hostile_user_vmcall
hostile_user_vmcall:
    mov rax, [rip + {args}]
    mov rbx, [rip + {args} + 8]
    mov rcx, [rip + {args} + 16]
    vmcall
    mov [rip + {result}], rax
    ud2
    .global hostile_user_vmmcall
hostile_user_vmmcall:
    mov rax, [rip + {args}]
    mov rbx, [rip + {args} + 8]
    mov rcx, [rip + {args} + 16]
    vmmcall
    mov [rip + {result}], rax
    ud2
    .text
"#,
    args = sym USER_ARGS,
    result = sym USER_RESULT,
);

extern "C" {
    fn hostile_user_vmcall();
    fn hostile_user_vmmcall();
}

#[repr(C, align(16))]
struct Stack([u8; 8192]);

static mut USER_STACK: Stack = Stack([0; 8192]);

/// Makes hypercall `nr` (RBX, RCX) at CPL 3: its RAX, or the exception it raised.
fn from_cpl3(nr: u64, rbx: u64, rcx: u64) -> Saw {
    let entry = match hypercall::insn() {
        Insn::Vmcall => hostile_user_vmcall as *const () as u64,
        Insn::Vmmcall => hostile_user_vmmcall as *const () as u64,
    };
    // SAFETY: plain stores read by the CPL 3 code; nothing else runs meanwhile.
    unsafe {
        *core::ptr::addr_of_mut!(USER_ARGS) = [nr, rbx, rcx];
        *core::ptr::addr_of_mut!(USER_RESULT) = UNTOUCHED;
    }
    let top = core::ptr::addr_of!(USER_STACK) as u64 + 8192;
    let e = user::run(entry, top, 1 << 1);
    // SAFETY: written by the CPL 3 code, which has ended.
    let rax = unsafe { core::ptr::addr_of!(USER_RESULT).read_volatile() };
    match (rax, e) {
        (UNTOUCHED, Some(e)) => Saw::Fault(e.vector),
        (UNTOUCHED, None) => Saw::Text("the hypercall never returned"),
        (rax, _) => Saw::Errno(rax as i64),
    }
}

pub fn cpl3_console(c: &Ctx) -> Saw {
    from_cpl3(CONSOLE_WRITE, c.image_end, 16)
}

/// EXIT with status 0 at CPL 3: must not end the guest.
pub fn cpl3_exit(_: &Ctx) -> Saw {
    from_cpl3(EXIT, 0, 0)
}

const FLOOD: usize = 1 << 20;
const CHUNK: usize = 4096;
/// A newline every this many bytes in the second half of a flood.
const LINE: usize = 80;

/// One flood chunk: text without newlines, or with one every [`LINE`] bytes.
fn chunk(newlines: bool) -> [u8; CHUNK] {
    core::array::from_fn(|i| {
        if newlines && i % LINE == LINE - 1 {
            b'\n'
        } else {
            b'a' + (i % 26) as u8
        }
    })
}

/// Sends 1 MiB without newlines, then 1 MiB with, one chunk at a time through `send`.
fn flood(mut send: impl FnMut(&[u8; CHUNK])) -> Saw {
    for newlines in [false, true] {
        let c = chunk(newlines);
        for _ in 0..FLOOD / CHUNK {
            send(&c);
        }
    }
    janus_guests::println!();
    Saw::Count(2 * FLOOD as u64, "bytes sent")
}

/// The flood through COM1 (REP OUTSB, a chunk at a time).
pub fn flood_serial(_: &Ctx) -> Saw {
    flood(|c| {
        // SAFETY: reads the chunk and writes it to COM1; DF is clear.
        unsafe {
            asm!("rep outsb", inout("rsi") c.as_ptr() => _, inout("rcx") CHUNK => _,
                 in("dx") COM1, options(nostack, readonly, preserves_flags))
        }
    })
}

/// The flood through CONSOLE_WRITE.
pub fn flood_hypercall(_: &Ctx) -> Saw {
    flood(|c| {
        hypercall::console_write(c);
    })
}
