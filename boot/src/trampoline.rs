//! The real-mode start of an application processor: a startup IPI makes it fetch its
//! first instruction at `vector * 4096` in real mode (SDM Vol 3A 9.4.4.2, 11.6.1), so
//! this code is copied to a page below 1 MiB. It loads a small GDT of its own, enters
//! protected mode (with caching on: INIT leaves CR0.CD and NW set), enables PAE, Janus' page tables, EFER.LME and paging (SDM Vol 3A
//! 10.8.5), far-jumps to 64-bit code and calls `entry(arg)` on the stack it was given.
//!
//! Everything that changes from CPU to CPU is in [`Args`], at [`ARGS`] in the page; the
//! code finds it at fixed offsets, which the assembly takes from `offset_of!`. The code
//! itself is position-independent: real mode addresses through CS, and the protected-mode
//! part through EBX, which holds the page's linear address.

use core::mem::offset_of;

/// Where [`Args`] lies in the trampoline's page; the code must end before it.
pub const ARGS: usize = 0x800;

/// The trampoline's parameters (packed: the code reads them at the offsets below).
#[repr(C, packed)]
pub struct Args {
    /// Null, 64-bit code (0x08), data (0x10), 32-bit code (0x18).
    pub gdt: [u64; 4],
    pub gdtr_limit: u16,
    pub gdtr_base: u32,
    /// Far pointers (offset, selector) to the 32-bit and the 64-bit code.
    pub pm32: u32,
    pub pm32_sel: u16,
    pub lm64: u32,
    pub lm64_sel: u16,
    pub cr3: u32,
    pub stack_top: u64,
    pub entry: u64,
    pub arg: u64,
}

const CODE64: u16 = 0x08;
const CODE32: u16 = 0x18;
const GDT: [u64; 4] = [
    0,
    0x00af_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
    0x00cf_9a00_0000_ffff,
];

core::arch::global_asm!(
    ".pushsection .rodata.janus_trampoline, \"a\"",
    ".global janus_ap_start, janus_ap_pm32, janus_ap_lm64, janus_ap_end",
    ".code16",
    "janus_ap_start:",
    "cli",
    "cld",
    "mov ax, cs",
    "mov ds, ax",
    "xor ebx, ebx",
    "mov bx, ax",
    "shl ebx, 4",
    "lgdt [{gdtr}]",
    "mov eax, cr0",
    "and eax, 0x9fffffff",
    "or eax, 1",
    "mov cr0, eax",
    "jmp fword ptr [{pm32}]",
    ".code32",
    "janus_ap_pm32:",
    "mov ax, 0x10",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov eax, cr4",
    "or eax, 0x20",
    "mov cr4, eax",
    "mov eax, [ebx + {cr3}]",
    "mov cr3, eax",
    "mov ecx, 0xc0000080",
    "rdmsr",
    "or eax, 0x100",
    "wrmsr",
    "mov eax, cr0",
    "or eax, 0x80010000",
    "mov cr0, eax",
    "jmp fword ptr [ebx + {lm64}]",
    ".code64",
    "janus_ap_lm64:",
    "mov ebx, ebx",
    "mov ax, 0x10",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "xor eax, eax",
    "mov fs, ax",
    "mov gs, ax",
    "mov rsp, [rbx + {stack}]",
    "mov rdi, [rbx + {arg}]",
    "mov rax, [rbx + {entry}]",
    "xor ebp, ebp",
    "call rax",
    "2:",
    "cli",
    "hlt",
    "jmp 2b",
    "janus_ap_end:",
    ".popsection",
    gdtr = const ARGS + offset_of!(Args, gdtr_limit),
    pm32 = const ARGS + offset_of!(Args, pm32),
    cr3 = const ARGS + offset_of!(Args, cr3),
    lm64 = const ARGS + offset_of!(Args, lm64),
    stack = const ARGS + offset_of!(Args, stack_top),
    arg = const ARGS + offset_of!(Args, arg),
    entry = const ARGS + offset_of!(Args, entry),
);

extern "C" {
    static janus_ap_start: u8;
    static janus_ap_pm32: u8;
    static janus_ap_lm64: u8;
    static janus_ap_end: u8;
}

/// The code's bytes and the offsets of its 32-bit and 64-bit parts.
fn code() -> (&'static [u8], u32, u32) {
    // SAFETY: only the symbols' addresses are taken; they delimit the assembly above,
    // which is linked into .rodata and never written.
    unsafe {
        let start = &janus_ap_start as *const u8;
        let len = &janus_ap_end as *const u8 as usize - start as usize;
        let at = |p: *const u8| (p as usize - start as usize) as u32;
        (
            core::slice::from_raw_parts(start, len),
            at(&janus_ap_pm32),
            at(&janus_ap_lm64),
        )
    }
}

/// A trampoline installed in its page below 1 MiB.
pub struct Trampoline {
    page: u64,
}

impl Trampoline {
    /// Copies the code to `page` (4 KiB-aligned, below 1 MiB, Janus' own) and fills in
    /// what every CPU shares.
    pub fn install(page: u64) -> Result<Trampoline, &'static str> {
        let (code, pm32, lm64) = code();
        if code.len() > ARGS || !page.is_multiple_of(4096) || page >= 0x10_0000 {
            return Err("the AP trampoline does not fit its page");
        }
        // SAFETY: CR3 holds the physical address of Janus' PML4, below 4 GiB (entry.rs).
        let cr3 = unsafe { x86::controlregs::cr3() } as u32;
        let args = Args {
            gdt: GDT,
            gdtr_limit: (core::mem::size_of_val(&GDT) - 1) as u16,
            gdtr_base: page as u32 + (ARGS + offset_of!(Args, gdt)) as u32,
            pm32: page as u32 + pm32,
            pm32_sel: CODE32,
            lm64: page as u32 + lm64,
            lm64_sel: CODE64,
            cr3,
            stack_top: 0,
            entry: 0,
            arg: 0,
        };
        // SAFETY: the page is identity-mapped, 4 KiB, reserved for the trampoline and not
        // in use by any CPU yet; the code and the arguments fit it (checked above).
        unsafe {
            let p = page as *mut u8;
            core::ptr::copy_nonoverlapping(code.as_ptr(), p, code.len());
            (p.add(ARGS) as *mut Args).write_unaligned(args);
        }
        Ok(Trampoline { page })
    }

    /// The startup IPI's vector: the page number.
    pub fn vector(&self) -> u8 {
        (self.page >> 12) as u8
    }

    /// Sets what the next CPU to start gets: its stack and `entry(arg)`.
    pub fn prepare(&self, stack_top: u64, entry: extern "C" fn(u64) -> !, arg: u64) {
        let args = (self.page as usize + ARGS) as *mut Args;
        // SAFETY: the page holds the Args written by `install`; no CPU runs the trampoline
        // while the boot CPU prepares it (it starts one CPU at a time and waits for it to
        // leave the trampoline).
        unsafe {
            core::ptr::addr_of_mut!((*args).stack_top).write_unaligned(stack_top);
            core::ptr::addr_of_mut!((*args).entry).write_unaligned(entry as usize as u64);
            core::ptr::addr_of_mut!((*args).arg).write_unaligned(arg);
        }
    }
}
