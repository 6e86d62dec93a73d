//! IPIs a single-vCPU guest has no business sending: INIT, SIPI, NMI and SMI, to itself
//! (physical destination = its own APIC ID) and to all excluding self (shorthand 11b),
//! through the xAPIC ICR (MMIO) and the x2APIC ICR MSR 0x830 (SDM Vol 3A 10.6.1,
//! 10.12.9). INIT to itself, the boot CPU, resets its machine (it would start over in the
//! firmware); the others leave it running.

use super::{Ctx, Saw};
use janus_guests::rt::idt::{self, Frame};
use janus_guests::rt::{apic, irq, pc, time, x86};

/// ICR delivery modes (bits 10:8).
const SMI: u32 = 0b010 << 8;
const NMI: u32 = 0b100 << 8;
const INIT: u32 = 0b101 << 8;
const SIPI: u32 = 0b110 << 8;
/// ICR level "assert" (bit 14) and shorthand "all excluding self" (bits 19:18).
const ASSERT: u32 = 1 << 14;
const ALL_BUT_SELF: u32 = 0b11 << 18;
/// A SIPI's vector: start at 0x10000 (nothing is there).
const SIPI_VECTOR: u32 = 0x10;
/// How long interrupts stay enabled after the IPI, for an NMI or anything else to land.
const SETTLE_US: u64 = 10_000;

fn count_nmi(_: &mut Frame) {
    irq::bump(2);
}

/// Sends one IPI with delivery `mode` to self or to the others, in x2APIC mode or not.
fn send(mode: u32, others: bool, x2apic: bool) -> Saw {
    pc::pic_disable();
    idt::set_handler(2, count_nmi);
    irq::reset(2);
    let low = mode
        | ASSERT
        | if others { ALL_BUT_SELF } else { 0 }
        | if mode == SIPI { SIPI_VECTOR } else { 0 };
    let fault = idt::catch_exception(|| {
        if x2apic {
            apic::enable_x2apic();
        }
        apic::enable();
        let dest = if others { 0 } else { apic::id() };
        apic::send_ipi(low, dest);
    });
    if let Some(e) = fault {
        return Saw::Fault(e.vector);
    }
    x86::sti();
    time::delay_us(SETTLE_US);
    x86::cli();
    Saw::Count(irq::count(2).into(), "NMIs")
}

macro_rules! ipis {
    ($($name:ident: $mode:expr, $others:expr, $x2:expr;)+) => {
        $(
            pub fn $name(_: &Ctx) -> Saw {
                send($mode, $others, $x2)
            }
        )+
    };
}

ipis! {
    init_self_xapic: INIT, false, false;
    init_others_xapic: INIT, true, false;
    sipi_self_xapic: SIPI, false, false;
    sipi_others_xapic: SIPI, true, false;
    nmi_self_xapic: NMI, false, false;
    nmi_others_xapic: NMI, true, false;
    smi_self_xapic: SMI, false, false;
    smi_others_xapic: SMI, true, false;
    init_self_x2apic: INIT, false, true;
    init_others_x2apic: INIT, true, true;
    sipi_self_x2apic: SIPI, false, true;
    sipi_others_x2apic: SIPI, true, true;
    nmi_self_x2apic: NMI, false, true;
    nmi_others_x2apic: NMI, true, true;
    smi_self_x2apic: SMI, false, true;
    smi_others_x2apic: SMI, true, true;
}
