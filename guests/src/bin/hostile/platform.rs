//! Attacks on the emulated platform: the reset lines, ACPI S5, PCI configuration space,
//! the CMOS NVRAM and an IOAPIC interrupt storm.

use super::{Ctx, Saw};
use janus_guests::rt::{apic, irq, pc, x86};
use janus_guests::{inb, inl, outb, outl, outw};

/// The PIIX/ICH reset control register: 6 = system reset, full (CPU reset + hard reset).
pub fn cf9_reset(_: &Ctx) -> Saw {
    outb(0xcf9, 0x06);
    Saw::NoFault
}

/// i8042 command 0xFE: pulse the CPU reset line.
pub fn kbc_reset(_: &Ctx) -> Saw {
    outb(0x64, 0xfe);
    Saw::NoFault
}

/// System control port A (0x92) bit 0: a 0-to-1 edge is a fast reset.
pub fn port92_reset(_: &Ctx) -> Saw {
    let v = inb(0x92);
    outb(0x92, v & !1);
    outb(0x92, v | 1);
    Saw::Value("port 0x92 was", v.into())
}

/// ACPI PM1a_CNT (0x604 on Janus and QEMU): SLP_TYP 5 (S5) | SLP_EN (ACPI 6.5, 4.8.3.2.1).
pub fn acpi_s5(_: &Ctx) -> Saw {
    outw(0x604, (5 << 10) | (1 << 13));
    Saw::NoFault
}

/// Writes all ones to every dword of configuration space of every bus 0 function
/// (mechanism #1: 0xCF8 address, 0xCFC data).
pub fn pci_config(_: &Ctx) -> Saw {
    let mut present = 0;
    for dev in 0..32u32 {
        for func in 0..8u32 {
            let addr = 0x8000_0000 | (dev << 11) | (func << 8);
            outl(0xcf8, addr);
            if inl(0xcfc) & 0xffff != 0xffff {
                present += 1;
            }
            for reg in 0..64u32 {
                outl(0xcf8, addr | (reg << 2));
                outl(0xcfc, 0xffff_ffff);
            }
        }
    }
    Saw::Count(present, "functions answered")
}

/// Writes all 128 CMOS bytes (index port 0x70 with NMI disable, data port 0x71).
pub fn cmos_nvram(_: &Ctx) -> Saw {
    for i in 0..128u8 {
        outb(0x70, 0x80 | i);
        outb(0x71, 0xa5 ^ i);
    }
    outb(0x70, 0x80 | 0x40);
    Saw::Value("byte 0x40 reads", inb(0x71).into())
}

/// The shutdown status byte 0x0F = 0x0A: "jump through 40:67 without EOI" after the
/// next reset, the classic way back from protected mode.
pub fn cmos_shutdown(_: &Ctx) -> Saw {
    outb(0x70, 0x8f);
    outb(0x71, 0x0a);
    outb(0x70, 0x8f);
    Saw::Value("byte 0x0f reads", inb(0x71).into())
}

const STORM_VEC: u8 = 0x50;
const STORM_PINS: u8 = 24;
const STORM_ROUNDS: u32 = 200;

/// All 24 IOAPIC pins routed to fixed vectors, level-triggered, unmasked, reprogrammed
/// over and over (alternating polarity) with interrupts let in between.
pub fn ioapic_storm(_: &Ctx) -> Saw {
    pc::pic_disable();
    apic::enable();
    for pin in 0..STORM_PINS {
        irq::count_on(STORM_VEC + pin, irq::Eoi::Lapic);
    }
    let dest = apic::id();
    for round in 0..STORM_ROUNDS {
        let polarity = if round % 2 == 0 {
            0
        } else {
            apic::REDIR_ACTIVE_LOW
        };
        for pin in 0..STORM_PINS {
            apic::ioapic_route(pin, STORM_VEC + pin, dest, apic::REDIR_LEVEL | polarity);
        }
        x86::open_window();
    }
    for pin in 0..STORM_PINS {
        apic::ioapic_mask(pin);
    }
    let n: u32 = (0..STORM_PINS).map(|p| irq::count(STORM_VEC + p)).sum();
    Saw::Count(n.into(), "interrupts")
}
