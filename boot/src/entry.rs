//! The multiboot headers and the 32-bit entry that switches to long mode.
//!
//! The headers are written in assembly because they must sit at fixed places in the
//! image's first 8 KiB (Multiboot 0.6.96 3.1.1, Multiboot2 1.0 3.1.1) and hold link-time
//! symbols; the `multiboot2-header` crate builds headers at run time, which is too late.
//!
//! Both loaders enter here in 32-bit protected mode with paging off, EAX holding the
//! loader's magic and EBX the physical address of its boot information. We identity-map
//! the first 4 GiB with 2 MiB pages (1 GiB pages need CPUID pdpe1gb, which QEMU's qemu64
//! lacks), enable PAE, EFER.LME and paging (SDM Vol 3A 10.8.5), and call
//! `janus_main(magic, info)` in 64-bit mode.

core::arch::global_asm!(
    r#"
    .section .multiboot, "a"
    .balign 8
mb2_header:
    .long 0xe85250d6
    .long 0
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header))
    .short 0
    .short 0
    .long 8
mb2_header_end:

    .balign 4
mb1_header:
    .long 0x1badb002
    .long 0x00010003
    .long 0x100000000 - (0x1badb002 + 0x00010003)
    .long mb1_header
    .long __image_start
    .long __load_end
    .long __image_end
    .long _start

    .section .boot, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    mov edi, eax
    mov esi, ebx
    mov esp, offset boot_stack_top

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3; PDn[i] -> 2 MiB page (n*512+i). */
    mov eax, offset boot_pdpt
    or eax, 3
    mov [boot_pml4], eax
    mov ecx, 0
1:
    mov eax, ecx
    shl eax, 12
    add eax, offset boot_pd
    or eax, 3
    mov [boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jne 1b
    mov ecx, 0
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [boot_pd + ecx * 8], eax
    mov eax, ecx
    shr eax, 11
    mov [boot_pd + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jne 2b

    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80010001
    mov cr0, eax
    lgdt [boot_gdt_ptr]
    mov eax, offset long_mode
    push 0x08
    push eax
    retf

    .code64
long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset boot_stack_top
    xor ebp, ebp
    call janus_main
3:
    cli
    hlt
    jmp 3b

    .section .rodata
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_ptr:
    .short boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt

    .section .bss
    .balign 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
    .global boot_pd
boot_pd: .skip 4 * 4096
    .global boot_stack, boot_stack_top
boot_stack: .skip 8 * 1024 * 1024
boot_stack_top:
    .previous
"#
);
