//! Virtualization attacks: every VMX and SVM instruction (SDM Vol 3C 31-32, APM Vol 2
//! 15), the other vendor's hypercall instruction, the MSRs that control VMX, SVM, SMM
//! and the local APIC's base, and the CR4 bits the guest's CPUID does not offer.
//! Without nested virtualization each instruction must raise #UD and each MSR write
//! #GP; a CR4 bit is accepted only if CPUID advertises it.

use super::{attempt, Ctx, Saw};
use core::arch::asm;
use janus_guests::rdmsr;
use janus_guests::rt::hypercall::{self, Insn};
use janus_guests::rt::x86::{read_cr4, write_cr4, wrmsr, MSR_APIC_BASE, MSR_EFER};

/// A zeroed, page-aligned region the instructions' memory operands point at.
#[repr(C, align(4096))]
struct Region([u8; 4096]);

static mut REGION: Region = Region([0; 4096]);

fn region() -> u64 {
    core::ptr::addr_of!(REGION) as u64
}

/// One instruction with RAX = RCX = the region's address (RDX = 0).
macro_rules! vt {
    ($($name:ident: $insn:literal;)+) => {
        $(
            pub fn $name(_: &Ctx) -> Saw {
                let r = region();
                // SAFETY: the attack: the instruction should raise #UD, which is caught;
                // if it runs, its memory operand is REGION and the registers it may
                // change are declared.
                attempt(|| unsafe {
                    asm!($insn, inout("rax") r => _, inout("rcx") r => _, inout("rdx") 0u64 => _)
                })
            }
        )+
    };
}

vt! {
    vmxon: "vmxon qword ptr [rax]";
    vmxoff: "vmxoff";
    vmclear: "vmclear qword ptr [rax]";
    vmptrld: "vmptrld qword ptr [rax]";
    vmptrst: "vmptrst qword ptr [rax]";
    vmread: "vmread rdx, rcx";
    vmwrite: "vmwrite rcx, rdx";
    vmlaunch: "vmlaunch";
    vmresume: "vmresume";
    invept: "invept rdx, xmmword ptr [rax]";
    invvpid: "invvpid rdx, xmmword ptr [rax]";
    vmrun: "vmrun rax";
    vmload: "vmload rax";
    vmsave: "vmsave rax";
    stgi: "stgi";
    clgi: "clgi";
    skinit: "skinit eax";
    invlpga: "invlpga rax, ecx";
}

/// VMFUNC leaf 0 (EPTP switching) to EPTP index 0.
pub fn vmfunc(_: &Ctx) -> Saw {
    // SAFETY: the attack: VMFUNC should raise #UD (caught); it changes no register.
    attempt(|| unsafe { asm!("vmfunc", in("eax") 0u32, in("ecx") 0u32) })
}

/// VMMCALL on Intel, VMCALL on AMD.
pub fn other_vendor_hypercall(_: &Ctx) -> Saw {
    // SAFETY: the attack: the other vendor's instruction should raise #UD (caught); if
    // the hypervisor takes it as a hypercall, RAX = VERSION changes only RAX and RBX,
    // and RBX is saved around it.
    attempt(|| unsafe {
        match hypercall::insn() {
            Insn::Vmcall => {
                asm!("push rbx", ".byte 0x0f, 0x01, 0xd9", "pop rbx", inout("rax") 0u64 => _)
            }
            Insn::Vmmcall => {
                asm!("push rbx", ".byte 0x0f, 0x01, 0xc1", "pop rbx", inout("rax") 0u64 => _)
            }
        }
    })
}

/// Writes `v` to `msr`; if the write is taken, reads it back and writes the old value.
fn msr_write(msr: u32, v: u64) -> Saw {
    let mut old = 0;
    let mut back = 0;
    match attempt(|| {
        old = rdmsr(msr);
        wrmsr(msr, v);
        back = rdmsr(msr);
    }) {
        Saw::NoFault => {
            let _ = attempt(|| wrmsr(msr, old));
            Saw::Value("accepted, read back", back)
        }
        f => f,
    }
}

/// EFER.SVME (bit 12): the guest's CPUID has no SVM.
pub fn efer_svme(_: &Ctx) -> Saw {
    msr_write(MSR_EFER, rdmsr(MSR_EFER) | (1 << 12))
}

/// VM_HSAVE_PA (APM Vol 2 15.30.4): where VMRUN would save the host.
pub fn vm_hsave_pa(_: &Ctx) -> Saw {
    msr_write(0xc001_0117, region())
}

/// IA32_FEATURE_CONTROL: lock | VMX outside SMX.
pub fn feature_control(_: &Ctx) -> Saw {
    msr_write(0x3a, 0x5)
}

/// VM_CR (APM Vol 2 15.30.1): clear SVMDIS and LOCK.
pub fn vm_cr(_: &Ctx) -> Saw {
    msr_write(0xc001_0114, 0)
}

/// Moves the APIC base to `base`, reads the version register there, moves it back.
fn apic_base_to(base: u64) -> Saw {
    let old = rdmsr(MSR_APIC_BASE);
    let mut version = 0u32;
    match attempt(|| {
        wrmsr(MSR_APIC_BASE, base | (old & 0xfff));
        janus_guests::rt::apic::map_mmio();
        // SAFETY: the attack: `base` is identity-mapped (RAM below 1 GiB, or the
        // uncached top GiB); whatever answers there is read.
        version = unsafe { ((base + 0x30) as *const u32).read_volatile() };
    }) {
        Saw::NoFault => {
            let _ = attempt(|| wrmsr(MSR_APIC_BASE, old));
            Saw::Value("accepted, version register reads", version.into())
        }
        f => f,
    }
}

/// APIC base at 2 MiB: inside the guest's RAM.
pub fn apic_base_in_ram(_: &Ctx) -> Saw {
    apic_base_to(0x20_0000)
}

/// APIC base at 0xF000_0000: outside RAM, below the IOAPIC.
pub fn apic_base_outside_ram(_: &Ctx) -> Saw {
    apic_base_to(0xf000_0000)
}

/// IA32_SMBASE (0x9E, Intel), SMM_BASE, SMM_ADDR and SMM_MASK (0xC0010111-3, AMD).
pub fn smm_msrs(_: &Ctx) -> Saw {
    const MSRS: [u32; 4] = [0x9e, 0xc001_0111, 0xc001_0112, 0xc001_0113];
    let faulted = MSRS
        .iter()
        .filter(|&&m| !matches!(msr_write(m, 0x3000_0000), Saw::Value(..)))
        .count();
    Saw::Count(faulted as u64, "of 4 SMM MSR writes faulted")
}

/// Sets CR4 bit `bit`; if taken, reads CR4 back and restores it.
fn cr4_bit(bit: u32) -> Saw {
    let old = read_cr4();
    let mut back = 0;
    match attempt(|| {
        write_cr4(old | (1 << bit));
        back = read_cr4();
    }) {
        Saw::NoFault => {
            write_cr4(old);
            Saw::Value("accepted, CR4", back)
        }
        f => f,
    }
}

macro_rules! cr4 {
    ($($name:ident: $bit:literal;)+) => {
        $(
            pub fn $name(_: &Ctx) -> Saw {
                cr4_bit($bit)
            }
        )+
    };
}

// SDM Vol 3A 2.5: LA57 12, VMXE 13, SMXE 14, PCIDE 17, OSXSAVE 18, PKE 22, CET 23.
cr4! {
    cr4_la57: 12;
    cr4_vmxe: 13;
    cr4_smxe: 14;
    cr4_pcide: 17;
    cr4_osxsave: 18;
    cr4_pke: 22;
    cr4_cet: 23;
}
