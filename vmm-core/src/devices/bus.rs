//! The guest's port-I/O space: which device answers which port.
//!
//! Every guest port access exits to the VMM (both backends intercept all of I/O space);
//! this bus routes it. Unclaimed ports read all ones and ignore writes, as on a PC with
//! nothing decoding that address.

use super::uart16550::Uart16550;

pub const COM1: u16 = 0x3f8;
/// QEMU's `isa-debug-exit` port: writing `v` ends the guest with exit status `v`.
pub const DEBUG_EXIT: u16 = 0xf4;

/// What a port write did besides changing device state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortEffect {
    None,
    /// The guest asked to end with this exit status.
    Exit(u32),
}

pub struct PortBus {
    pub com1: Uart16550,
}

impl Default for PortBus {
    fn default() -> Self {
        Self::new()
    }
}

fn all_ones(size: u8) -> u32 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    }
}

impl PortBus {
    pub const fn new() -> Self {
        Self { com1: Uart16550::new() }
    }

    fn read8(&mut self, port: u16) -> u8 {
        match port {
            COM1..=0x3ff => self.com1.read((port - COM1) as u8),
            _ => 0xff,
        }
    }

    /// A guest IN of `size` (1, 2 or 4) bytes. A wide access to byte-wide registers reads
    /// consecutive ports, as the ISA bus splits it.
    pub fn read(&mut self, port: u16, size: u8) -> u32 {
        if port == DEBUG_EXIT {
            return all_ones(size);
        }
        (0..size).fold(0u32, |v, i| v | (self.read8(port.wrapping_add(i as u16)) as u32) << (8 * i))
    }

    /// A guest OUT of `size` bytes. Bytes COM1 transmits go to `out`.
    pub fn write(&mut self, port: u16, size: u8, value: u32, out: &mut impl FnMut(u8)) -> PortEffect {
        if port == DEBUG_EXIT {
            return PortEffect::Exit(value & (all_ones(size)));
        }
        for i in 0..size {
            let p = port.wrapping_add(i as u16);
            let byte = (value >> (8 * i)) as u8;
            if let COM1..=0x3ff = p {
                if let Some(b) = self.com1.write((p - COM1) as u8, byte) {
                    out(b);
                }
            }
        }
        PortEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn unclaimed_ports_read_all_ones_and_ignore_writes() {
        let mut bus = PortBus::new();
        assert_eq!(bus.read(0x510, 1), 0xff);
        assert_eq!(bus.read(0x510, 2), 0xffff);
        assert_eq!(bus.read(0x510, 4), 0xffff_ffff);
        let mut seen = Vec::new();
        assert_eq!(bus.write(0x510, 4, 0x1234_5678, &mut |b| seen.push(b)), PortEffect::None);
        assert!(seen.is_empty());
    }

    #[test]
    fn com1_transmits_and_debug_exit_ends() {
        let mut bus = PortBus::new();
        let mut seen = Vec::new();
        bus.write(COM1, 1, b'J' as u32, &mut |b| seen.push(b));
        assert_eq!(seen, b"J");
        assert_eq!(bus.read(COM1 + 5, 1) & 0x60, 0x60, "LSR shows the transmitter empty");
        assert_eq!(bus.write(DEBUG_EXIT, 1, 0x1ff, &mut |_| {}), PortEffect::Exit(0xff));
        assert_eq!(bus.write(DEBUG_EXIT, 4, 7, &mut |_| {}), PortEffect::Exit(7));
    }
}
