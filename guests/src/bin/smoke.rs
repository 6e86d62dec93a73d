//! The first guest test suite: boot information, CPUID, port and string I/O, MSRs and
//! the Janus hypercalls. Run bare under QEMU the Janus-specific checks fail and the
//! first hypercall raises #UD (reported by the runtime); under Janus everything passes.
#![no_std]
#![no_main]

use core::arch::asm;
use janus_guests::rt::fw_cfg;
use janus_guests::rt::hypercall::{self, EFAULT, EINVAL, ENOSYS};
use janus_guests::rt::multiboot::{BOOTLOADER_MAGIC, FLAG_MEM, FLAG_MMAP};
use janus_guests::{
    cpuid, entry, inb, inl, inw, outb, outl, outw, println, rdmsr, vendor, BootInfo, Suite,
};

entry!(main);

/// A port nothing claims under Janus: reads return all ones.
const UNCLAIMED_PORT: u16 = 0x300;
const COM1: u16 = 0x3f8;
const COM1_LSR: u16 = COM1 + 5;
const COM1_SCRATCH: u16 = COM1 + 7;
const MSR_EFER: u32 = 0xc000_0080;

fn main(boot: &BootInfo) -> ! {
    let mut s = Suite::new("smoke");
    multiboot(&mut s, boot);
    cpuid_leaves(&mut s);
    msrs(&mut s);
    ports(&mut s);
    fw_cfg::check_basics(&mut s, boot);
    string_io(&mut s);
    hypercalls(&mut s);
    s.finish()
}

fn multiboot(s: &mut Suite, boot: &BootInfo) {
    s.check(
        "multiboot.magic",
        boot.magic == BOOTLOADER_MAGIC,
        format_args!("eax={:#x}, expected {:#x}", boot.magic, BOOTLOADER_MAGIC),
    );
    let Some(info) = boot.info() else {
        s.check(
            "multiboot.info",
            false,
            format_args!("no multiboot information (ebx={:#x})", boot.mbi_addr),
        );
        return;
    };
    s.check(
        "multiboot.flags",
        info.has(FLAG_MEM | FLAG_MMAP),
        format_args!("flags={:#x}, want bits 0 (mem) and 6 (mmap)", info.flags),
    );
    println!(
        "memory: mem_lower={} KiB mem_upper={} KiB",
        info.mem_lower, info.mem_upper
    );
    s.check(
        "multiboot.mem_upper",
        info.mem_upper > 0,
        format_args!("mem_upper={}", info.mem_upper),
    );
    let mut entries = 0;
    let mut covered = false;
    for e in info.mmap() {
        println!("mmap: base={:#x} len={:#x} type={}", e.base, e.len, e.kind);
        entries += 1;
        covered |= e.available_at(0x10_0000);
    }
    s.check(
        "multiboot.mmap_1mib",
        covered,
        format_args!(
            "no available (type 1) region covers 1 MiB among {} entries",
            entries
        ),
    );
}

/// Prints the 12 bytes as text, replacing what is not printable ASCII.
struct Sig([u8; 12]);

impl core::fmt::Display for Sig {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            };
            core::fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

fn cpuid_leaves(s: &mut Suite) {
    let l1 = cpuid(1, 0);
    s.check(
        "cpuid.hypervisor_bit",
        l1[2] & (1 << 31) != 0,
        format_args!("leaf 1 ecx={:#x}, bit 31 clear", l1[2]),
    );
    s.check(
        "cpuid.no_vmx",
        l1[2] & (1 << 5) == 0,
        format_args!("leaf 1 ecx={:#x}, bit 5 (VMX) set", l1[2]),
    );
    let ext = cpuid(0x8000_0001, 0);
    s.check(
        "cpuid.no_svm",
        ext[2] & (1 << 2) == 0,
        format_args!("leaf 0x80000001 ecx={:#x}, bit 2 (SVM) set", ext[2]),
    );

    let hv = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&hv[1].to_le_bytes());
    sig[4..8].copy_from_slice(&hv[2].to_le_bytes());
    sig[8..12].copy_from_slice(&hv[3].to_le_bytes());
    s.check(
        "cpuid.signature",
        &sig == b"JanusJanusHV",
        format_args!(
            "leaf 0x40000000 ebx/ecx/edx spell \"{}\", expected \"JanusJanusHV\"",
            Sig(sig)
        ),
    );
    s.check(
        "cpuid.max_leaf",
        hv[0] >= 0x4000_0001,
        format_args!("leaf 0x40000000 eax={:#x}, expected >= 0x40000001", hv[0]),
    );
    let abi = cpuid(0x4000_0001, 0);
    s.check(
        "cpuid.abi_version",
        abi[0] == 1,
        format_args!("leaf 0x40000001 eax={:#x}, expected 1", abi[0]),
    );
}

fn msrs(s: &mut Suite) {
    let efer = rdmsr(MSR_EFER);
    let lme_lma = (1 << 8) | (1 << 10);
    s.check(
        "msr.efer_long_mode",
        efer & lme_lma == lme_lma,
        format_args!("EFER={:#x}, want LME (bit 8) and LMA (bit 10)", efer),
    );
    s.check(
        "msr.efer_no_svme",
        efer & (1 << 12) == 0,
        format_args!("EFER={:#x}, SVME (bit 12) set", efer),
    );
}

fn ports(s: &mut Suite) {
    let b = inb(UNCLAIMED_PORT);
    s.check(
        "ports.unclaimed_inb",
        b == 0xff,
        format_args!("inb({:#x})={:#x}, expected 0xff", UNCLAIMED_PORT, b),
    );
    let w = inw(UNCLAIMED_PORT);
    s.check(
        "ports.unclaimed_inw",
        w == 0xffff,
        format_args!("inw({:#x})={:#x}, expected 0xffff", UNCLAIMED_PORT, w),
    );
    let l = inl(UNCLAIMED_PORT);
    s.check(
        "ports.unclaimed_inl",
        l == 0xffff_ffff,
        format_args!("inl({:#x})={:#x}, expected 0xffffffff", UNCLAIMED_PORT, l),
    );
    outb(UNCLAIMED_PORT, 0x12);
    outw(UNCLAIMED_PORT, 0x1234);
    outl(UNCLAIMED_PORT, 0x1234_5678);
    s.check("ports.unclaimed_out", true, format_args!("unreachable"));

    let lsr = inb(COM1_LSR);
    s.check(
        "ports.com1_lsr",
        lsr & 0x60 == 0x60,
        format_args!("LSR={:#x}, want bits 5 (THRE) and 6 (TEMT)", lsr),
    );
    outb(COM1_SCRATCH, 0x5a);
    let scr = inb(COM1_SCRATCH);
    s.check(
        "ports.com1_scratch",
        scr == 0x5a,
        format_args!("wrote 0x5a, read back {:#x}", scr),
    );
}

fn string_io(s: &mut Suite) {
    static MSG: &[u8] = b"string I/O via rep outsb\n";
    let start = MSG.as_ptr() as u64;
    let (rsi, rcx): (u64, u64);
    // SAFETY: reads MSG.len() bytes from MSG and writes them to COM1; DF is clear.
    unsafe {
        asm!(
            "rep outsb",
            inout("rsi") start => rsi,
            inout("rcx") MSG.len() as u64 => rcx,
            in("dx") COM1,
            options(nostack, readonly, preserves_flags),
        );
    }
    s.check(
        "stringio.outsb",
        rsi == start + MSG.len() as u64 && rcx == 0,
        format_args!(
            "rsi advanced by {}, rcx={}; expected {} and 0",
            rsi.wrapping_sub(start),
            rcx,
            MSG.len()
        ),
    );

    let mut buf = [0u8; 4];
    let dst = buf.as_mut_ptr() as u64;
    let (rdi, rcx): (u64, u64);
    // SAFETY: writes 4 bytes from the port into `buf`; DF is clear.
    unsafe {
        asm!(
            "rep insb",
            inout("rdi") dst => rdi,
            inout("rcx") 4u64 => rcx,
            in("dx") UNCLAIMED_PORT,
            options(nostack, preserves_flags),
        );
    }
    let buf = core::hint::black_box(buf);
    s.check(
        "stringio.insb_regs",
        rdi == dst + 4 && rcx == 0,
        format_args!(
            "rdi advanced by {}, rcx={}; expected 4 and 0",
            rdi.wrapping_sub(dst),
            rcx
        ),
    );
    s.check(
        "stringio.insb_data",
        buf == [0xff; 4],
        format_args!("read {:02x?}, expected ff x4", buf),
    );
}

fn hypercalls(s: &mut Suite) {
    let v = vendor();
    let insn = hypercall::insn();
    println!(
        "vendor: {}, hypercall via {}",
        core::str::from_utf8(&v).unwrap_or("?"),
        insn.name()
    );

    let (rax, rbx) = hypercall::hypercall(hypercall::VERSION, 0, 0, 0, 0);
    s.check(
        "hypercall.version",
        rax == 0 && rbx == 1,
        format_args!("rax={:#x} rbx={:#x}, expected 0 and 1", rax, rbx),
    );

    let (rax, _) = hypercall::hypercall(0x7777, 0, 0, 0, 0);
    s.check(
        "hypercall.enosys",
        rax as i64 == ENOSYS,
        format_args!("rax={}, expected -1", rax as i64),
    );

    static HELLO: &[u8] = b"hello via CONSOLE_WRITE\n";
    let r = hypercall::console_write(HELLO);
    s.check(
        "hypercall.console_write",
        r == HELLO.len() as i64,
        format_args!("rax={}, expected {}", r, HELLO.len()),
    );

    let (rax, _) = hypercall::hypercall(hypercall::CONSOLE_WRITE, 0xffff_ffff_0000, 8, 0, 0);
    s.check(
        "hypercall.console_write_efault",
        rax as i64 == EFAULT,
        format_args!("rax={}, expected -3", rax as i64),
    );

    let (rax, _) =
        hypercall::hypercall(hypercall::CONSOLE_WRITE, HELLO.as_ptr() as u64, 5000, 0, 0);
    s.check(
        "hypercall.console_write_einval",
        rax as i64 == EINVAL,
        format_args!("rax={}, expected -4", rax as i64),
    );

    let (rax1, n1) = hypercall::hypercall(hypercall::EXIT_COUNT, 0, 0, 0, 0);
    s.check(
        "hypercall.exit_count",
        rax1 == 0 && n1 > 0,
        format_args!("rax={:#x} rbx={}, expected 0 and > 0", rax1, n1),
    );
    let (rax2, n2) = hypercall::hypercall(hypercall::EXIT_COUNT, 0, 0, 0, 0);
    s.check(
        "hypercall.exit_count_grows",
        rax2 == 0 && n2 > n1,
        format_args!("first rbx={}, second rax={:#x} rbx={}", n1, rax2, n2),
    );
}
