//! A 16550A UART as a state machine over its eight registers.
//!
//! Written here because the rust-vmm `vm-superio` serial needs std and an event fd.
//! Transmission takes no time while the host console has room for the guest's lines:
//! the VM takes each byte after the access that wrote it, so the transmitter reads empty
//! (LSR THRE|TEMT) and a guest that polls LSR never waits. When the guest's share of the
//! host console is full the bytes stay in a 16-byte transmit FIFO and the transmitter
//! reads busy until they go out (a flooding guest waits for itself). Received bytes (host input, or the guest's own in
//! loopback mode) queue in a 16-byte FIFO. The interrupt line follows the 16550's
//! priority rules (received data above transmitter empty) and is gated by MCR.OUT2, as
//! on a PC.

use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;
use arrayvec::ArrayVec;

/// Register offsets from the base port.
pub mod reg {
    pub const DATA: u8 = 0; // RBR (read) / THR (write); DLL when DLAB=1
    pub const IER: u8 = 1; // DLM when DLAB=1
    pub const IIR_FCR: u8 = 2;
    pub const LCR: u8 = 3;
    pub const MCR: u8 = 4;
    pub const LSR: u8 = 5;
    pub const MSR: u8 = 6;
    pub const SCR: u8 = 7;
}

pub const LSR_DATA_READY: u8 = 1 << 0;
pub const LSR_OVERRUN: u8 = 1 << 1;
pub const LSR_THR_EMPTY: u8 = 1 << 5;
pub const LSR_TX_EMPTY: u8 = 1 << 6;

pub const IER_RX: u8 = 1 << 0;
pub const IER_THRE: u8 = 1 << 1;

const LCR_DLAB: u8 = 1 << 7;
const MCR_OUT2: u8 = 1 << 3;
const MCR_LOOP: u8 = 1 << 4;

pub const IIR_NONE: u8 = 0x01;
pub const IIR_THRE: u8 = 0x02;
pub const IIR_RX: u8 = 0x04;
const IIR_FIFO: u8 = 0xc0;

const FIFO: usize = 16;

#[derive(Clone, Debug)]
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fcr_enabled: bool,
    dll: u8,
    dlm: u8,
    overrun: bool,
    /// A transmitter-empty interrupt is pending (set by a write to THR or by enabling
    /// IER.THRE, cleared by reading IIR while it reports it or by writing THR).
    thre_pending: bool,
    rx: [u8; FIFO],
    rx_head: u8,
    rx_len: u8,
    /// Transmitted bytes not yet taken by the console ([`Uart16550::take_output`]).
    tx: ArrayVec<u8, FIFO>,
}

impl Default for Uart16550 {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart16550 {
    /// The state after reset: 115200 baud divisor (1), 8N1 left to the guest.
    pub const fn new() -> Self {
        Self {
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            fcr_enabled: false,
            dll: 1,
            dlm: 0,
            overrun: false,
            thre_pending: false,
            rx: [0; FIFO],
            rx_head: 0,
            rx_len: 0,
            tx: ArrayVec::new_const(),
        }
    }

    fn dlab(&self) -> bool {
        self.lcr & LCR_DLAB != 0
    }

    /// Queues a received byte (host input). Returns false, and flags an overrun, when
    /// the FIFO is full.
    pub fn receive(&mut self, byte: u8) -> bool {
        if self.rx_len as usize == FIFO {
            self.overrun = true;
            return false;
        }
        let tail = (self.rx_head as usize + self.rx_len as usize) % FIFO;
        self.rx[tail] = byte;
        self.rx_len += 1;
        true
    }

    fn pop(&mut self) -> u8 {
        if self.rx_len == 0 {
            return 0;
        }
        let b = self.rx[self.rx_head as usize];
        self.rx_head = ((self.rx_head as usize + 1) % FIFO) as u8;
        self.rx_len -= 1;
        b
    }

    fn iir(&self) -> u8 {
        let id = if self.ier & IER_RX != 0 && self.rx_len > 0 {
            IIR_RX
        } else if self.ier & IER_THRE != 0 && self.thre_pending {
            IIR_THRE
        } else {
            IIR_NONE
        };
        id | if self.fcr_enabled { IIR_FIFO } else { 0 }
    }

    /// Whether the UART drives its interrupt line (an interrupt is pending and OUT2,
    /// which gates the line on a PC, is set).
    pub fn irq_pending(&self) -> bool {
        self.mcr & MCR_OUT2 != 0 && self.iir() & IIR_NONE == 0
    }

    /// A guest read of register `offset` (0-7).
    pub fn read(&mut self, offset: u8) -> u8 {
        match offset & 7 {
            reg::DATA if self.dlab() => self.dll,
            reg::DATA => self.pop(),
            reg::IER if self.dlab() => self.dlm,
            reg::IER => self.ier,
            reg::IIR_FCR => {
                let v = self.iir();
                if v & 0x0f == IIR_THRE {
                    self.thre_pending = false;
                }
                v
            }
            reg::LCR => self.lcr,
            reg::MCR => self.mcr,
            reg::LSR => {
                let mut v = if self.tx.is_empty() {
                    LSR_THR_EMPTY | LSR_TX_EMPTY
                } else {
                    0
                };
                if self.rx_len > 0 {
                    v |= LSR_DATA_READY;
                }
                if self.overrun {
                    v |= LSR_OVERRUN;
                    self.overrun = false;
                }
                v
            }
            reg::MSR => {
                if self.mcr & MCR_LOOP != 0 {
                    // Loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
                    let m = self.mcr;
                    ((m & 2) << 3) | ((m & 1) << 5) | ((m & 4) << 4) | ((m & 8) << 4)
                } else {
                    // CTS, DSR and DCD asserted: a terminal is always there.
                    0xb0
                }
            }
            _ => self.scr,
        }
    }

    /// A guest write of `value` to register `offset`. A byte written to THR is
    /// transmitted: it joins the output queue (in loopback mode it is received instead).
    pub fn write(&mut self, offset: u8, value: u8) {
        match offset & 7 {
            reg::DATA if self.dlab() => self.dll = value,
            reg::DATA => {
                if self.mcr & MCR_LOOP != 0 {
                    self.thre_pending = true;
                    self.receive(value);
                } else {
                    // The owner takes the queue after every guest access while the host
                    // console has room; until then the transmitter reads busy (LSR), and
                    // a byte written into a full FIFO is lost, as on a 16550.
                    let _ = self.tx.try_push(value);
                }
            }
            reg::IER if self.dlab() => self.dlm = value,
            reg::IER => {
                if value & IER_THRE != 0 && self.ier & IER_THRE == 0 {
                    // The transmitter is empty, so enabling its interrupt raises it.
                    self.thre_pending = true;
                }
                self.ier = value & 0x0f;
            }
            reg::IIR_FCR => {
                self.fcr_enabled = value & 1 != 0;
                if value & 2 != 0 {
                    self.rx_len = 0;
                    self.rx_head = 0;
                }
            }
            reg::LCR => self.lcr = value,
            reg::MCR => self.mcr = value & 0x1f,
            reg::LSR | reg::MSR => {}
            _ => self.scr = value,
        }
    }

    /// The bytes transmitted since the last call, oldest first.
    pub fn take_output(&mut self) -> ArrayVec<u8, FIFO> {
        let out = core::mem::take(&mut self.tx);
        self.transmitted(!out.is_empty());
        out
    }

    /// Whether transmitted bytes wait for the console.
    pub fn has_output(&self) -> bool {
        !self.tx.is_empty()
    }

    /// The oldest transmitted byte not yet taken by the console.
    pub fn pop_output(&mut self) -> Option<u8> {
        if self.tx.is_empty() {
            return None;
        }
        let b = self.tx.remove(0);
        self.transmitted(true);
        Some(b)
    }

    /// Bytes left the transmitter: once it is empty, THRE interrupts again.
    fn transmitted(&mut self, took: bool) {
        if took && self.tx.is_empty() {
            self.thre_pending = true;
        }
    }

    /// The divisor latch the guest programmed (115200 / divisor = baud).
    pub fn divisor(&self) -> u16 {
        u16::from_le_bytes([self.dll, self.dlm])
    }
}

/// The UART's eight registers at offsets 0-7 from its base port.
impl Device for Uart16550 {
    fn read(&mut self, offset: u64, _size: u8, _now: Now) -> u64 {
        self.read(offset as u8) as u64
    }
    fn write(&mut self, offset: u64, _size: u8, value: u64, _now: Now) -> DeviceEffect {
        self.write(offset as u8, value as u8);
        DeviceEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmits_and_is_always_ready() {
        let mut u = Uart16550::new();
        assert_eq!(
            u.read(reg::LSR) & (LSR_THR_EMPTY | LSR_TX_EMPTY),
            LSR_THR_EMPTY | LSR_TX_EMPTY
        );
        u.write(reg::DATA, b'A');
        assert_eq!(u.take_output().as_slice(), b"A");
        assert_eq!(u.read(reg::LSR) & LSR_DATA_READY, 0);
    }

    #[test]
    fn divisor_latch_hides_data_and_ier() {
        let mut u = Uart16550::new();
        u.write(reg::LCR, 0x80);
        u.write(reg::DATA, 3);
        assert!(u.take_output().is_empty(), "DLL write transmits nothing");
        u.write(reg::IER, 0);
        assert_eq!(u.divisor(), 3);
        u.write(reg::LCR, 0x03);
        assert_eq!(u.read(reg::LCR), 0x03);
        assert_eq!(u.read(reg::IER), 0);
        u.write(reg::DATA, b'x');
        assert_eq!(u.take_output().as_slice(), b"x");
    }

    #[test]
    fn loopback_receives_what_it_sends() {
        let mut u = Uart16550::new();
        u.write(reg::MCR, MCR_LOOP | 0x0b);
        u.write(reg::DATA, 0xae);
        assert!(u.take_output().is_empty(), "loopback receives instead");
        assert_ne!(u.read(reg::LSR) & LSR_DATA_READY, 0);
        assert_eq!(u.read(reg::DATA), 0xae);
        assert_eq!(u.read(reg::LSR) & LSR_DATA_READY, 0);
        // DTR|RTS|OUT2 looped to DSR|CTS|DCD.
        assert_eq!(u.read(reg::MSR), 0x10 | 0x20 | 0x80);
    }

    #[test]
    fn scratch_register_holds_a_value() {
        let mut u = Uart16550::new();
        u.write(reg::SCR, 0x5a);
        assert_eq!(u.read(reg::SCR), 0x5a);
    }

    #[test]
    fn interrupt_priorities_and_out2_gate() {
        let mut u = Uart16550::new();
        assert_eq!(u.read(reg::IIR_FCR), IIR_NONE);
        u.write(reg::IER, IER_THRE | IER_RX);
        assert!(!u.irq_pending(), "OUT2 clear gates the line");
        u.write(reg::MCR, MCR_OUT2);
        assert!(u.irq_pending());
        u.receive(b'k');
        assert_eq!(u.read(reg::IIR_FCR), IIR_RX, "received data outranks THRE");
        assert_eq!(u.read(reg::DATA), b'k');
        assert_eq!(u.read(reg::IIR_FCR), IIR_THRE);
        assert_eq!(u.read(reg::IIR_FCR), IIR_NONE, "reading IIR cleared THRE");
        assert!(!u.irq_pending());
        u.write(reg::DATA, b'z');
        assert!(!u.irq_pending(), "not sent yet");
        assert_eq!(u.read(reg::LSR) & (LSR_THR_EMPTY | LSR_TX_EMPTY), 0, "busy");
        assert_eq!(u.pop_output(), Some(b'z'));
        assert!(u.irq_pending(), "a transmitted byte empties THR again");
        assert_eq!(
            u.read(reg::LSR) & (LSR_THR_EMPTY | LSR_TX_EMPTY),
            LSR_THR_EMPTY | LSR_TX_EMPTY
        );
        assert_eq!(u.pop_output(), None);
    }

    #[test]
    fn fifo_overrun_and_reset() {
        let mut u = Uart16550::new();
        for i in 0..16 {
            assert!(u.receive(i));
        }
        assert!(!u.receive(99));
        assert_ne!(u.read(reg::LSR) & LSR_OVERRUN, 0);
        assert_eq!(u.read(reg::LSR) & LSR_OVERRUN, 0, "overrun clears on read");
        assert_eq!(u.read(reg::DATA), 0);
        u.write(reg::IIR_FCR, 0x07);
        assert_eq!(u.read(reg::LSR) & LSR_DATA_READY, 0);
        assert_eq!(
            u.read(reg::IIR_FCR) & 0xc0,
            0xc0,
            "FIFOs enabled shows in IIR"
        );
    }
}
