//! System features a CPUID bit announces: the CR4 and EFER bits they define take a write
//! and read back (SDM Vol 3A 2.5, 2.2.1; APM Vol 2 3.1), and what they enable works:
//! RDFSBASE/WRFSBASE after CR4.FSGSBASE, SYSCALL after EFER.SCE, an instruction fetch
//! from a no-execute page faults after EFER.NXE, a 1 GiB page maps, STAC/CLAC.

use super::{e1c, e1d, expect, faults, gives, l1c, l1d, l7b, l7c, runs, shows, Feature, Outcome};
use core::arch::{asm, global_asm};
use janus_guests::rdmsr;
use janus_guests::rt::x86::{
    rdtsc, read_cr3, read_cr4, read_cr8, write_cr4, write_cr8, wrmsr, MSR_EFER, MSR_FMASK,
    MSR_FS_BASE, MSR_LSTAR, MSR_STAR, MSR_SYSENTER_CS,
};

pub const FEATURES: &[Feature] = &[
    shows("cpuid.vme", l1d(1), vme),
    shows("cpuid.de", l1d(2), de),
    shows("cpuid.pse", l1d(3), pse),
    shows("cpuid.tsc", l1d(4), tsc),
    shows("cpuid.msr", l1d(5), msr),
    shows("cpuid.pae", l1d(6), pae),
    shows("cpuid.sep", l1d(11), sep),
    shows("cpuid.pge", l1d(13), pge),
    shows("cpuid.pcid", l1c(17), pcid),
    shows("cpuid.fsgsbase", l7b(0), fsgsbase),
    shows("cpuid.fsgsbase_needs_cr4", l7b(0), fsgsbase_off),
    shows("cpuid.smep", l7b(7), smep),
    shows("cpuid.smap", l7b(20), smap),
    shows("cpuid.umip", l7c(2), umip),
    shows("cpuid.syscall", e1d(11), syscall),
    shows("cpuid.nx", e1d(20), nx),
    shows("cpuid.ffxsr", e1d(25), ffxsr),
    shows("cpuid.page1gb", e1d(26), page1gb),
    shows("cpuid.lm", e1d(29), lm),
    shows("cpuid.hypervisor", l1c(31), hypervisor),
    shows("cpuid.alt_mov_cr8", e1c(4), alt_mov_cr8),
];

/// Sets bit `bit` of CR4 and clears it: `Ok` when CR4 read it back both times.
pub fn cr4_toggle(bit: u32) -> Outcome {
    let before = read_cr4();
    let (mut on, mut off) = (0, 0);
    let r = runs(|| {
        write_cr4(before | 1 << bit);
        on = read_cr4();
        write_cr4(before & !(1 << bit));
        off = read_cr4();
    });
    write_cr4(before);
    r.and(|| expect(on & 1 << bit, 1 << bit))
        .and(|| expect(off & 1 << bit, 0))
}

/// The same for EFER.
pub fn efer_toggle(bit: u32) -> Outcome {
    let before = rdmsr(MSR_EFER);
    let (mut on, mut off) = (0, 0);
    let r = runs(|| {
        wrmsr(MSR_EFER, before | 1 << bit);
        on = rdmsr(MSR_EFER);
        wrmsr(MSR_EFER, before & !(1 << bit));
        off = rdmsr(MSR_EFER);
    });
    wrmsr(MSR_EFER, before);
    r.and(|| expect(on & 1 << bit, 1 << bit))
        .and(|| expect(off & 1 << bit, 0))
}

/// CR4.VME and CR4.PVI (SDM Vol 3A 2.5).
fn vme() -> Outcome {
    cr4_toggle(0).and(|| cr4_toggle(1))
}

fn de() -> Outcome {
    cr4_toggle(3)
}

fn pse() -> Outcome {
    cr4_toggle(4)
}

/// RDTSC counts up, and CR4.TSD takes a write.
fn tsc() -> Outcome {
    let (a, b) = (rdtsc(), rdtsc());
    expect(u64::from(b > a), 1).and(|| cr4_toggle(2))
}

fn msr() -> Outcome {
    // The boot code set EFER.LME: RDMSR shows it.
    gives(1 << 8, || rdmsr(MSR_EFER) & 1 << 8)
}

/// Long mode runs with CR4.PAE.
fn pae() -> Outcome {
    expect(read_cr4() & 1 << 5, 1 << 5)
}

fn sep() -> Outcome {
    runs(|| {
        rdmsr(MSR_SYSENTER_CS);
    })
}

fn pge() -> Outcome {
    cr4_toggle(7)
}

/// CR4.PCIDE, with CR3[11:0] = 0 in long mode (SDM Vol 3A 4.10.1).
fn pcid() -> Outcome {
    expect(read_cr3() & 0xfff, 0).and(|| cr4_toggle(17))
}

const CR4_FSGSBASE: u64 = 1 << 16;

/// WRFSBASE then RDFSBASE, and RDMSR of IA32_FS_BASE agrees.
fn fsgsbase() -> Outcome {
    let (cr4, old) = (read_cr4(), rdmsr(MSR_FS_BASE));
    let r = runs(|| write_cr4(cr4 | CR4_FSGSBASE)).and(|| {
        gives(0x1234_5000, || {
            let v: u64;
            // SAFETY: changes the FS base only; the guest uses no FS-relative memory.
            unsafe {
                asm!("wrfsbase {n}", "rdfsbase {r}", n = in(reg) 0x1234_5000u64, r = out(reg) v,
                     options(nostack, nomem))
            };
            v
        })
    });
    let msr = rdmsr(MSR_FS_BASE);
    wrmsr(MSR_FS_BASE, old);
    write_cr4(cr4);
    r.and(|| expect(msr, 0x1234_5000))
}

/// Without CR4.FSGSBASE, RDFSBASE raises #UD (SDM Vol 2C, RDFSBASE).
fn fsgsbase_off() -> Outcome {
    let cr4 = read_cr4();
    write_cr4(cr4 & !CR4_FSGSBASE);
    // SAFETY: raises #UD, caught.
    let r = faults(6, || unsafe {
        asm!("rdfsbase {}", out(reg) _, options(nostack, nomem))
    });
    write_cr4(cr4);
    r
}

/// CR4.SMEP: the runtime's pages are supervisor pages, so nothing faults.
fn smep() -> Outcome {
    cr4_toggle(20)
}

/// CR4.SMAP, and STAC/CLAC run (SDM Vol 2B, STAC).
fn smap() -> Outcome {
    // SAFETY: STAC/CLAC only change RFLAGS.AC.
    cr4_toggle(21).and(|| runs(|| unsafe { asm!("stac", "clac", options(nostack, nomem)) }))
}

fn umip() -> Outcome {
    cr4_toggle(11)
}

// The SYSCALL target: back to the caller at RCX with the flags it had (R11), still at
// CPL 0 with the runtime's selectors (STAR below: CS 0x08, SS 0x10).
global_asm!(
    ".global cpuid_syscall_target",
    "cpuid_syscall_target:",
    "push r11",
    "popfq",
    "jmp rcx",
);

extern "C" {
    fn cpuid_syscall_target();
}

fn syscall_once() {
    // SAFETY: SYSCALL goes to `cpuid_syscall_target`, which returns here; it clobbers
    // RCX and R11 only.
    unsafe { asm!("syscall", out("rcx") _, out("r11") _) };
}

/// SYSCALL raises #UD with EFER.SCE clear and reaches LSTAR with it set (SDM Vol 2B,
/// SYSCALL).
fn syscall() -> Outcome {
    let saved = [MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_FMASK].map(rdmsr);
    wrmsr(MSR_STAR, 0x08 << 32);
    wrmsr(MSR_LSTAR, cpuid_syscall_target as *const () as u64);
    wrmsr(MSR_FMASK, 0);
    wrmsr(MSR_EFER, saved[0] & !1);
    let r = faults(6, syscall_once).and(|| {
        wrmsr(MSR_EFER, saved[0] | 1);
        runs(syscall_once)
    });
    for (m, v) in [MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_FMASK]
        .into_iter()
        .zip(saved)
    {
        wrmsr(m, v);
    }
    r
}

const PAGE_2M: u64 = 1 << 21;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Present, writable, page size (a 2 MiB or 1 GiB leaf).
const LEAF: u64 = 0x83;
const NX_BIT: u64 = 1 << 63;

/// The runtime's page directory for the first GiB, and its PDPT.
fn tables() -> (*mut u64, *mut u64) {
    // SAFETY: the boot code's tables are identity-mapped in the first GiB.
    unsafe {
        let pml4 = (read_cr3() & ADDR) as *const u64;
        let pdpt = (pml4.read_volatile() & ADDR) as *mut u64;
        let pd = (pdpt.read_volatile() & ADDR) as *mut u64;
        (pd, pdpt)
    }
}

fn invlpg(va: u64) {
    // SAFETY: drops one translation.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack)) };
}

global_asm!(".global cpuid_ret", "cpuid_ret:", "ret");

extern "C" {
    fn cpuid_ret();
}

fn call(va: u64) {
    // SAFETY: `va` maps a RET (an alias of `cpuid_ret`).
    unsafe { asm!("call {}", in(reg) va, clobber_abi("C")) };
}

/// With EFER.NXE, a fetch from a page whose entry has bit 63 set raises #PF with the
/// instruction-fetch bit (4) in the error code (SDM Vol 3A 4.6, 4.7). The page is an alias
/// of the code in the last 2 MiB of the first GiB.
fn nx() -> Outcome {
    let (pd, _) = tables();
    let ret = cpuid_ret as *const () as u64;
    let va = 511 * PAGE_2M + (ret & (PAGE_2M - 1));
    let efer = rdmsr(MSR_EFER);
    // SAFETY: PD entry 511 maps nothing the guest uses (above its RAM); it is restored.
    let old = unsafe { pd.add(511).read_volatile() };
    let set = |e: u64| {
        // SAFETY: as above.
        unsafe { pd.add(511).write_volatile(e) };
        invlpg(va);
    };
    wrmsr(MSR_EFER, efer | 1 << 11);
    set((ret & !(PAGE_2M - 1)) | LEAF);
    let r = runs(|| call(va)).and(|| {
        set((ret & !(PAGE_2M - 1)) | LEAF | NX_BIT);
        match janus_guests::rt::idt::catch_exception(|| call(va)) {
            Some(e) if e.vector == 14 => expect(e.error & 0x11, 0x11),
            Some(e) => Outcome::Fault(e),
            None => Outcome::NoFault { want: 14 },
        }
    });
    set(old);
    wrmsr(MSR_EFER, efer);
    r
}

fn ffxsr() -> Outcome {
    efer_toggle(14)
}

static WORD: u64 = 0x6b65_6570_7320_776f;

/// A 1 GiB page (PDPT entry 1, PS) maps the first GiB again at 1 GiB (SDM Vol 3A 4.5).
fn page1gb() -> Outcome {
    let (_, pdpt) = tables();
    // SAFETY: PDPT entry 1 maps nothing the guest uses; it is restored.
    let old = unsafe { pdpt.add(1).read_volatile() };
    let alias = (1u64 << 30) + (&WORD as *const u64 as u64);
    // SAFETY: as above.
    unsafe { pdpt.add(1).write_volatile(LEAF) };
    invlpg(alias);
    // SAFETY: `alias` maps `WORD`.
    let r = gives(WORD, || unsafe { (alias as *const u64).read_volatile() });
    // SAFETY: as above.
    unsafe { pdpt.add(1).write_volatile(old) };
    invlpg(alias);
    r
}

/// EFER.LMA: the guest runs in long mode.
fn lm() -> Outcome {
    expect(rdmsr(MSR_EFER) & 1 << 10, 1 << 10)
}

/// The hypervisor leaves (SDM Vol 2A, CPUID: leaf 1 ECX bit 31 is reserved for them):
/// leaf 0x4000_0000 names Janus.
fn hypervisor() -> Outcome {
    let r = janus_guests::cpuid(0x4000_0000, 0);
    expect(u64::from(r[1..] == cpuid_signature()), 1)
}

fn cpuid_signature() -> [u32; 3] {
    [b"Janu", b"sJan", b"usHV"].map(|w| u32::from_le_bytes(*w))
}

/// AMD's alternative CR8 encoding: LOCK MOV from CR0 reads CR8 (APM Vol 3, MOV CRn).
fn alt_mov_cr8() -> Outcome {
    let old = read_cr8();
    write_cr8(3);
    let r = gives(3, || {
        let v: u64;
        // SAFETY: reads CR8 (F0 0F 20 C0: lock mov eax, cr0); encoded by hand since the
        // assembler refuses LOCK on MOV.
        unsafe { asm!(".byte 0xf0, 0x0f, 0x20, 0xc0", out("rax") v, options(nostack, nomem)) };
        v
    });
    write_cr8(old);
    r
}
