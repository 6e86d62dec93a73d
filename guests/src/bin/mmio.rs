//! MMIO instruction forms against the local APIC (TPR at 0xFEE00080, the timer's initial
//! count at 0xFEE00380 with the timer masked) and the IOAPIC window: every access below
//! is an inline-asm instruction with explicit registers, so the hypervisor's decoder
//! sees exactly that form. `mmio/sites.rs`: exits at a place whose code changed.
#![no_std]
#![no_main]

#[path = "mmio/sites.rs"]
mod sites;

use core::arch::asm;
use janus_guests::rt::apic::{self, IOAPIC_BASE, LAPIC_BASE, LVT_MASKED, LVT_TIMER};
use janus_guests::rt::pc;
use janus_guests::{entry, println, BootInfo, Suite};

entry!(main);

const TPR: u64 = LAPIC_BASE + 0x80;
const INIT: u64 = LAPIC_BASE + 0x380;

/// `mov dword ptr [rdi], esi`
fn store(addr: u64, v: u32) {
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe { asm!("mov dword ptr [rdi], esi", in("rdi") addr, in("esi") v, options(nostack)) };
}

/// `mov eax, dword ptr [rdi]`
fn load(addr: u64) -> u32 {
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe { asm!("mov eax, dword ptr [rdi]", in("rdi") addr, out("eax") v, options(nostack)) };
    v
}

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("mmio");
    pc::pic_disable();
    apic::enable();
    apic::write(LVT_TIMER, LVT_MASKED);
    println!("lapic version {:#x}", apic::read(apic::VERSION));

    // mov [mem], reg32 / mov reg32, [mem]
    store(INIT, 0x1234_5678);
    let v = apic::mmio_read(0x380);
    s.check(
        "mmio.mov_store_reg32",
        v == 0x1234_5678,
        format_args!(
            "mov [rdi], esi with 0x12345678 to 0xfee00380; read {:#x}",
            v
        ),
    );
    apic::mmio_write(0x380, 0x0765_4321);
    let v = load(INIT);
    s.check(
        "mmio.mov_load_reg32",
        v == 0x0765_4321,
        format_args!(
            "mov eax, [rdi] from 0xfee00380 holding 0x07654321: {:#x}",
            v
        ),
    );
    store(TPR, 0x40);
    let v = load(TPR);
    s.check(
        "mmio.tpr_round_trip",
        v == 0x40,
        format_args!(
            "TPR wrote 0x40 with mov [rdi], esi; mov eax, [rdi] read {:#x}",
            v
        ),
    );

    // mov [mem], imm32
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe { asm!("mov dword ptr [rdi], 0x0badf00d", in("rdi") INIT, options(nostack)) };
    let v = load(INIT);
    s.check(
        "mmio.mov_store_imm32",
        v == 0x0bad_f00d,
        format_args!("mov dword [rdi], 0x0badf00d; read {:#x}", v),
    );

    // movzx / movsx
    store(TPR, 0x5a);
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov eax, 0xffffffff", "movzx eax, byte ptr [rdi]", in("rdi") TPR, out("eax") v, options(nostack))
    };
    s.check(
        "mmio.movzx_byte",
        v == 0x5a,
        format_args!("movzx eax, byte [TPR] with TPR 0x5a: {:#x}", v),
    );
    store(INIT, 0x1234_5678);
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov eax, 0xffffffff", "movzx eax, word ptr [rdi]", in("rdi") INIT, out("eax") v, options(nostack))
    };
    s.check(
        "mmio.movzx_word",
        v == 0x5678,
        format_args!("movzx eax, word [0xfee00380] holding 0x12345678: {:#x}", v),
    );
    store(TPR, 0x9c);
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe { asm!("movsx eax, byte ptr [rdi]", in("rdi") TPR, out("eax") v, options(nostack)) };
    s.check(
        "mmio.movsx_byte",
        v == 0xffff_ff9c,
        format_args!("movsx eax, byte [TPR] with TPR 0x9c: {:#x}", v),
    );
    store(INIT, 0x1234_8765);
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe { asm!("movsx eax, word ptr [rdi]", in("rdi") INIT, out("eax") v, options(nostack)) };
    s.check(
        "mmio.movsx_word",
        v == 0xffff_8765,
        format_args!("movsx eax, word [0xfee00380] holding 0x12348765: {:#x}", v),
    );
    store(INIT, 0x8000_0001);
    let v: u64;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov rax, -1", "movsxd rax, dword ptr [rdi]", in("rdi") INIT, out("rax") v, options(nostack))
    };
    s.check(
        "mmio.movsxd_qword",
        v == 0xffff_ffff_8000_0001,
        format_args!(
            "movsxd rax, dword [0xfee00380] holding 0x80000001: {:#x}",
            v
        ),
    );
    // A 32-bit load into a 64-bit register's low half clears the high half.
    store(INIT, 0xfedc_ba98);
    let v: u64;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov rax, -1", "mov eax, dword ptr [rdi]", in("rdi") INIT, out("rax") v, options(nostack))
    };
    s.check(
        "mmio.load_zero_extends",
        v == 0xfedc_ba98,
        format_args!(
            "mov eax, [mmio] after rax=-1: rax {:#x}, want 0xfedcba98",
            v
        ),
    );

    // REX.R / REX.B / REX.X registers.
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov dword ptr [r11], r9d", "mov r13d, dword ptr [r11]",
             in("r11") INIT, in("r9d") 0x2468_ace0u32, out("r13d") v, options(nostack))
    };
    s.check(
        "mmio.rex_registers",
        v == 0x2468_ace0,
        format_args!("mov [r11], r9d; mov r13d, [r11] with 0x2468ace0: {:#x}", v),
    );
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov dword ptr [r12 + r13*4], r14d", "mov r15d, dword ptr [r12 + r13*4]",
             in("r12") LAPIC_BASE, in("r13") 0xe0u64, in("r14d") 0x1357_9bdfu32, out("r15d") v, options(nostack))
    };
    s.check("mmio.sib_rex_index", v == 0x1357_9bdf && apic::mmio_read(0x380) == 0x1357_9bdf,
        format_args!("[r12 + r13*4] (0xfee00000 + 0xe0*4): read back {:#x}, register {:#x}, wrote 0x13579bdf", v, apic::mmio_read(0x380)));
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov dword ptr [rsi + rcx*2 + 0x40], edx", "mov r8d, dword ptr [rsi + rcx*2 + 0x40]",
             in("rsi") LAPIC_BASE, in("rcx") 0x20u64, in("edx") 0x70u32, out("r8d") v, options(nostack))
    };
    s.check(
        "mmio.sib_disp8",
        v == 0x70 && apic::mmio_read(0x80) == 0x70,
        format_args!(
            "[rsi + rcx*2 + 0x40] = TPR: read {:#x}, TPR {:#x}, wrote 0x70",
            v,
            apic::mmio_read(0x80)
        ),
    );
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("xchg rbx, {b}",
             "mov dword ptr [rbx + 0x1380], eax", "mov r10d, dword ptr [rbx + 0x1380]",
             "xchg rbx, {b}",
             b = inout(reg) LAPIC_BASE - 0x1000 => _, inout("eax") 0x0abc_def0u32 => _, out("r10d") v, options(nostack))
    };
    // (rbx is reserved by LLVM: it is swapped in and out through {b} above)
    let v2 = apic::mmio_read(0x380);
    s.check("mmio.disp32", v == 0x0abc_def0 && v2 == 0x0abc_def0,
        format_args!("mov [rbx + 0x1380] (rbx = 0xfedff000): read back {:#x}, register {:#x}, wrote 0xabcdef0", v, v2));

    // moffs forms (A1 / A3 with a 64-bit absolute address).
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("movabs dword ptr [0xfee00380], eax", "xor eax, eax", "movabs eax, dword ptr [0xfee00380]",
                  inout("eax") 0x5555_aaaau32 => v, options(nostack))
    };
    s.check(
        "mmio.moffs",
        v == 0x5555_aaaa,
        format_args!(
            "movabs [0xfee00380], eax / movabs eax, [0xfee00380] with 0x5555aaaa: {:#x}",
            v
        ),
    );

    // String forms.
    let (rdi, rcx): (u64, u64);
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("rep stosd", inout("rdi") TPR => rdi, inout("rcx") 1u64 => rcx, in("eax") 0x3cu32, options(nostack))
    };
    let v = apic::mmio_read(0x80);
    s.check(
        "mmio.rep_stosd",
        v == 0x3c && rdi == TPR + 4 && rcx == 0,
        format_args!(
            "rep stosd (count 1, eax 0x3c) to TPR: TPR {:#x}, rdi advanced {}, rcx {}",
            v,
            rdi.wrapping_sub(TPR),
            rcx
        ),
    );
    let rdi: u64;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe { asm!("stosd", inout("rdi") INIT => rdi, in("eax") 0x7777_1111u32, options(nostack)) };
    let v = apic::mmio_read(0x380);
    s.check(
        "mmio.stosd",
        v == 0x7777_1111 && rdi == INIT + 4,
        format_args!(
            "stosd (eax 0x77771111) to 0xfee00380: register {:#x}, rdi advanced {}",
            v,
            rdi.wrapping_sub(INIT)
        ),
    );
    let mut buf = [0u32; 2];
    apic::mmio_write(0x80, 0x66);
    let (rsi, rdi): (u64, u64);
    let dst = buf.as_mut_ptr() as u64;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe { asm!("movsd", inout("rsi") TPR => rsi, inout("rdi") dst => rdi, options(nostack)) };
    let buf = core::hint::black_box(buf);
    s.check(
        "mmio.movsd_from_mmio",
        buf[0] == 0x66 && rsi == TPR + 4 && rdi == dst + 4,
        format_args!(
            "movsd TPR (0x66) -> RAM: got {:#x}, rsi/rdi advanced {}/{}",
            buf[0],
            rsi.wrapping_sub(TPR),
            rdi.wrapping_sub(dst)
        ),
    );
    let src = [0x0102_0304u32];
    let sp = src.as_ptr() as u64;
    let (rsi, rdi, rcx): (u64, u64, u64);
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("rep movsd", inout("rsi") sp => rsi, inout("rdi") INIT => rdi, inout("rcx") 1u64 => rcx, options(nostack, readonly))
    };
    let v = apic::mmio_read(0x380);
    s.check("mmio.rep_movsd_to_mmio", v == 0x0102_0304 && rsi == sp + 4 && rdi == INIT + 4 && rcx == 0,
        format_args!("rep movsd (count 1) RAM 0x01020304 -> 0xfee00380: register {:#x}, rsi/rdi advanced {}/{}, rcx {}", v, rsi.wrapping_sub(sp), rdi.wrapping_sub(INIT), rcx));

    // IOAPIC: select the version register, read the window.
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov dword ptr [rdi], 1", "mov eax, dword ptr [rdi + 0x10]", in("rdi") IOAPIC_BASE, out("eax") v, options(nostack))
    };
    s.check(
        "mmio.ioapic_window",
        (v >> 16) & 0xff == 23,
        format_args!(
            "IOREGSEL=1, IOWIN read {:#x}: want max redirection entry 23 in bits 23:16",
            v
        ),
    );
    let v: u32;
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov dword ptr [r8], r9d", "mov r10d, dword ptr [r8 + 0x10]", in("r8") IOAPIC_BASE, in("r9d") 1u32, out("r10d") v, options(nostack))
    };
    s.check(
        "mmio.ioapic_window_rex",
        (v >> 16) & 0xff == 23,
        format_args!("IOREGSEL=1 via [r8], r9d; IOWIN via r10d: {:#x}", v),
    );

    // IOREGSEL is an 8-bit read/write register: byte and word forms.
    let (b, w, sb): (u32, u32, u32);
    // SAFETY: the asm accesses only the local APIC/IOAPIC page (mapped uncached by apic::map_mmio), this test's own buffers and the registers it names.
    unsafe {
        asm!("mov dword ptr [rdi], 0x3f", "movzx {b:e}, byte ptr [rdi]", "movzx {w:e}, word ptr [rdi]",
             "mov dword ptr [rdi], 0x9c", "movsx {sb:e}, byte ptr [rdi]", "mov dword ptr [rdi], 0",
             in("rdi") IOAPIC_BASE, b = out(reg) b, w = out(reg) w, sb = out(reg) sb, options(nostack))
    };
    s.check(
        "mmio.ioregsel_movzx",
        b == 0x3f && w == 0x3f,
        format_args!("IOREGSEL 0x3f: movzx byte {:#x}, movzx word {:#x}", b, w),
    );
    s.check(
        "mmio.ioregsel_movsx",
        sb == 0xffff_ff9c,
        format_args!("IOREGSEL 0x9c: movsx eax, byte {:#x}, want 0xffffff9c", sb),
    );

    apic::mmio_write(0x380, 0);
    apic::mmio_write(0x80, 0);
    sites::run(&mut s);
    s.finish()
}
