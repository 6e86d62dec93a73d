/* hello.S: a tiny multiboot1 kernel for QEMU's -kernel, 32-bit GNU assembler (AT&T).
 * Plain multiboot1 header (flags 0x3: page-aligned modules, memory info; no address
 * fields): the loader places it at 1 MiB from its ELF32 program headers. It greets on
 * COM1 after checking EAX for the loader magic, writes "Hello" to VGA text memory,
 * then ends through the debug-exit port 0xf4: 0 when the magic was right, 1 otherwise.
 *
 * Build: as --32 -o hello.o hello.S && ld -m elf_i386 -T link.ld -o hello.elf hello.o
 */
    .set MB_MAGIC, 0x1badb002
    .set MB_FLAGS, 0x00000003
    .set MB_CHECKSUM, -(MB_MAGIC + MB_FLAGS)
    .set BOOT_MAGIC, 0x2badb002
    .set COM1, 0x3f8
    .set COM1_LSR, 0x3fd
    .set DEBUG_EXIT, 0xf4
    .set VGA_TEXT, 0xb8000

    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long MB_CHECKSUM

    .text
    .code32
    .globl _start
_start:
    cli
    cld
    movl $stack_top, %esp
    cmpl $BOOT_MAGIC, %eax
    jne bad_magic
    movl $msg_ok, %esi
    call puts
    xorl %ebx, %ebx                 /* exit status 0 */
    jmp vga
bad_magic:
    movl $msg_bad, %esi
    call puts
    movl $1, %ebx                   /* exit status 1 */

vga:
    movl $VGA_TEXT, %edi
    movl $vga_text, %esi
1:
    lodsb
    testb %al, %al
    jz 2f
    movb %al, (%edi)
    movb $0x0f, 1(%edi)             /* white on black */
    addl $2, %edi
    jmp 1b
2:
    movl %ebx, %eax
    movw $DEBUG_EXIT, %dx
    outl %eax, %dx
3:
    cli
    hlt
    jmp 3b

/* puts: writes the NUL-terminated string at %esi to COM1, waiting for LSR bit 5. */
puts:
    lodsb
    testb %al, %al
    jz 5f
    movb %al, %cl
    movw $COM1_LSR, %dx
4:
    inb %dx, %al
    testb $0x20, %al
    jz 4b
    movw $COM1, %dx
    movb %cl, %al
    outb %al, %dx
    jmp puts
5:
    ret

    .section .rodata
msg_ok:
    .asciz "Hello from a multiboot1 kernel (eax=0x2badb002 ok)\r\n"
msg_bad:
    .asciz "Hello from a multiboot1 kernel: bad magic\r\n"
vga_text:
    .asciz "Hello"

    .section .bss
    .balign 16
stack:
    .skip 4096
stack_top:

    .section .note.GNU-stack, "", @progbits
