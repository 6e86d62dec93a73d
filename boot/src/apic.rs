//! The host's local APIC, as far as SMP needs it: this CPU's APIC ID and the
//! interprocessor interrupts that start the other CPUs, in whichever mode the boot CPU's
//! APIC is (xAPIC MMIO at its base, or x2APIC MSRs).
//!
//! Manual: Intel SDM Vol 3A (rev. 084) 11.4.4 (IA32_APIC_BASE: bit 10 x2APIC enable, bit 11
//! global enable), 11.4.6 (local APIC ID register 0x20, ID in bits 31:24), 11.6.1 (the
//! ICR: low word 0x300, high word 0x310 with the destination in bits 31:24; delivery
//! status bit 12), 11.12.1 and 11.12.9 (x2APIC: ID in MSR 0x802, the whole ICR in MSR
//! 0x830 with a 32-bit destination in bits 63:32).

const IA32_APIC_BASE: u32 = 0x1b;
const X2APIC_ENABLE: u64 = 1 << 10;
const XAPIC_BASE: usize = 0xfee0_0000;
const ID: usize = 0x20;
const ICR_LOW: usize = 0x300;
const ICR_HIGH: usize = 0x310;
const DELIVERY_PENDING: u32 = 1 << 12;
const X2APIC_ID: u32 = 0x802;
const X2APIC_ICR: u32 = 0x830;

/// ICR low words (SDM Vol 3A 11.6.1): INIT with level assert, and the startup IPI whose
/// vector is the page number of the real-mode code.
pub const ICR_INIT: u32 = 0x0000_4500;
pub const ICR_STARTUP: u32 = 0x0000_4600;

fn x2apic() -> bool {
    // SAFETY: reading IA32_APIC_BASE has no side effects; every CPU Janus runs on has it.
    unsafe { x86::msr::rdmsr(IA32_APIC_BASE) & X2APIC_ENABLE != 0 }
}

fn mmio(reg: usize) -> *mut u32 {
    (XAPIC_BASE + reg) as *mut u32
}

/// This CPU's local APIC ID.
pub fn id() -> u32 {
    if x2apic() {
        // SAFETY: in x2APIC mode the ID MSR exists and reading it has no side effects.
        unsafe { x86::msr::rdmsr(X2APIC_ID) as u32 }
    } else {
        // SAFETY: the xAPIC page is identity-mapped; reading the ID has no side effects.
        unsafe { mmio(ID).read_volatile() >> 24 }
    }
}

/// Sends the IPI `low` (delivery mode and vector) to the CPU with APIC ID `dest`, and
/// waits until the xAPIC has sent it.
pub fn send_ipi(dest: u32, low: u32) {
    if x2apic() {
        // SAFETY: a write to the x2APIC ICR sends one IPI; the ones Janus sends (INIT,
        // startup) only start other CPUs.
        unsafe { x86::msr::wrmsr(X2APIC_ICR, (dest as u64) << 32 | low as u64) };
        return;
    }
    // SAFETY: as above, through the identity-mapped xAPIC page; the high word goes first
    // because the write of the low word sends the IPI.
    unsafe {
        mmio(ICR_HIGH).write_volatile(dest << 24);
        mmio(ICR_LOW).write_volatile(low);
        for _ in 0..1_000_000 {
            if mmio(ICR_LOW).read_volatile() & DELIVERY_PENDING == 0 {
                break;
            }
            core::hint::spin_loop();
        }
    }
}
