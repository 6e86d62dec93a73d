//! The multiboot1 header and the 32-bit entry that switches to long mode.
//!
//! The loader (Janus or QEMU's -kernel) honours header flag bit 16 and loads the image
//! through the address fields below, then enters `_start` in 32-bit protected mode with
//! paging off, EAX = 0x2BADB002 and EBX = the physical address of the multiboot info
//! (Multiboot 0.6.96, 3.2). ESP is undefined, so nothing touches the stack until we set
//! our own. We clear .bss, identity-map the first 1 GiB with 2 MiB pages, enable PAE,
//! EFER.LME and paging, load a 64-bit GDT, far-return into 64-bit code and call
//! `janus_guest_start(magic, mbi)`.

use super::{idt, multiboot::BootInfo};

core::arch::global_asm!(
    r#"
    .section .multiboot, "a"
    .balign 4
guest_mb1_header:
    .long 0x1badb002
    .long 0x00010002
    .long 0x100000000 - (0x1badb002 + 0x00010002)
    .long guest_mb1_header
    .long __guest_load_start
    .long __guest_load_end
    .long __guest_bss_end
    .long _start

    .section .boot, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    /* Keep the loader's magic in EBP and the info address in EBX until the call. */
    mov ebp, eax

    /* Clear .bss ourselves as well: the page tables and the stack live there. */
    mov edi, offset __guest_bss_start
    mov ecx, offset __guest_bss_end
    sub ecx, edi
    shr ecx, 2
    xor eax, eax
    rep stosd

    mov esp, offset guest_stack_top

    /* PML4[0] -> PDPT; PDPT[0] -> PD; PD[i] -> 2 MiB page i (present, writable, PS). */
    mov eax, offset guest_pdpt
    or eax, 3
    mov [guest_pml4], eax
    mov eax, offset guest_pd
    or eax, 3
    mov [guest_pdpt], eax
    xor ecx, ecx
1:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [guest_pd + ecx * 8], eax
    inc ecx
    cmp ecx, 512
    jne 1b

    /* CR4.PAE, CR3, EFER.LME, then CR0.PG (with PE and WP). */
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, offset guest_pml4
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80010001
    mov cr0, eax
    lgdt [guest_gdt_ptr]
    mov eax, offset guest_long_mode
    push 0x08
    push eax
    retf

    .code64
guest_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset guest_stack_top
    mov edi, ebp
    mov esi, ebx
    xor ebp, ebp
    call janus_guest_start
2:
    cli
    hlt
    jmp 2b

    .section .rodata
    .balign 8
guest_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
guest_gdt_ptr:
    .short guest_gdt_ptr - guest_gdt - 1
    .long guest_gdt

    .section .bss
    .balign 4096
guest_pml4: .skip 4096
guest_pdpt: .skip 4096
guest_pd: .skip 4096
    .balign 16
guest_stack: .skip 64 * 1024
guest_stack_top:
    .previous
"#
);

extern "Rust" {
    /// Defined by each guest binary through [`crate::entry!`].
    fn janus_guest_main(boot: &BootInfo) -> !;
}

/// Called by the 64-bit entry code with the loader's EAX and EBX.
#[no_mangle]
extern "C" fn janus_guest_start(magic: u32, mbi: u32) -> ! {
    idt::install();
    let boot = BootInfo::new(magic, mbi);
    // SAFETY: `janus_guest_main` is defined by the binary's `entry!` with this signature.
    unsafe { janus_guest_main(&boot) }
}
