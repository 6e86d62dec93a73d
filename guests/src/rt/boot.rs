//! The multiboot1 and multiboot2 headers and the 32-bit entry that switches to long mode.
//!
//! Each binary's link script keeps one header (guests/build.rs picks the script): the
//! multiboot1 header (section `.multiboot`; flags from the script's `__guest_mb1_flags`)
//! or the multiboot2 header (section `.multiboot2`, with the entry stub
//! `.multiboot2.text`). The other is discarded, so a loader sees one protocol.
//!
//! Multiboot1 (Multiboot 0.6.96, 3.1-3.2): the loader (Janus or QEMU's -kernel) honours
//! header flag bit 16 and loads the image through the address fields, then enters
//! `_start` with EAX = 0x2BADB002 and EBX = the multiboot info.
//!
//! Multiboot2 (Multiboot2 Specification version 2.0, 3.1.1-3.1.6, 3.1.11, 3.3): the
//! header asks for the command line, loader name, modules, basic memory, memory map and
//! old RSDP (information request tag, required), gives the load addresses (address tag),
//! the entry `_start_mb2` (entry address tag; the ELF entry stays `_start`, so the suite
//! can tell which one the loader used) and asks for page-aligned modules (module
//! alignment tag). EAX = 0x36D76289, EBX = the boot information.
//!
//! Either way the CPU is in 32-bit protected mode with paging off and ESP undefined, so
//! nothing touches the stack until we set our own. We clear .bss, identity-map the first
//! 1 GiB with 2 MiB pages, enable PAE, EFER.LME and paging, load a 64-bit GDT,
//! far-return into 64-bit code and call `janus_guest_start(magic, info, entry)`.

use super::{
    boot_info::{BootInfo, Entry},
    idt,
};

core::arch::global_asm!(
    r#"
    .section .multiboot, "a"
    .balign 4
guest_mb1_header:
    .long 0x1badb002
    .long __guest_mb1_flags
    .long __guest_mb1_checksum
    .long guest_mb1_header
    .long __guest_load_start
    .long __guest_load_end
    .long __guest_bss_end
    .long _start

    .section .multiboot2, "a"
    .balign 8
guest_mb2_header:
    .long 0xe85250d6
    .long 0
    .long guest_mb2_header_end - guest_mb2_header
    .long 0x100000000 - (0xe85250d6 + (guest_mb2_header_end - guest_mb2_header))
    /* Information request (type 1, required): 1 cmdline, 2 loader name, 3 modules,
       4 basic meminfo, 6 mmap, 14 old RSDP. */
    .balign 8
    .short 1, 0
    .long 8 + 6 * 4
    .long 1, 2, 3, 4, 6, 14
    /* Address (type 2): header, load start, load end, bss end. */
    .balign 8
    .short 2, 0
    .long 24
    .long guest_mb2_header
    .long __guest_load_start
    .long __guest_load_end
    .long __guest_bss_end
    /* Entry address (type 3). */
    .balign 8
    .short 3, 0
    .long 12
    .long _start_mb2
    /* Module alignment (type 6): modules page-aligned. */
    .balign 8
    .short 6, 0
    .long 8
    /* End. */
    .balign 8
    .short 0, 0
    .long 8
guest_mb2_header_end:

    .section .multiboot2.text, "ax"
    .code32
    .global _start_mb2
_start_mb2:
    /* ESI says which entry ran until the call (1: the entry tag's). */
    mov esi, 1
    jmp guest_entry

    .section .boot, "ax"
    .code32
    .global _start
_start:
    xor esi, esi
guest_entry:
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
    mov edx, esi
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

/// Called by the 64-bit entry code with the loader's EAX and EBX and which entry ran
/// (0: `_start`, 1: `_start_mb2`).
#[no_mangle]
extern "C" fn janus_guest_start(magic: u32, info: u32, entry: u32) -> ! {
    idt::install();
    let entry = if entry == 1 {
        Entry::Multiboot2Tag
    } else {
        Entry::Start
    };
    let boot = BootInfo::new(magic, info, entry);
    // SAFETY: `janus_guest_main` is defined by the binary's `entry!` with this signature.
    unsafe { janus_guest_main(&boot) }
}
