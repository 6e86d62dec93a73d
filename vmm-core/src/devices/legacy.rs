//! The small fixed-function ports of a PC: the POST code port 0x80, the Intel 8042
//! keyboard controller (0x60/0x64), System Control Port A (0x92) and the reset control
//! register (0xCF9).
//!
//! Written here because the rust-vmm device crates need std, which a bare-metal VMM does
//! not have.
//!
//! Sources: the IBM PC/AT Technical Reference and the Intel 8042/"Universal Peripheral
//! Interface" keyboard-controller conventions (status register bits, controller commands
//! 0x20-0x3F/0x60-0x7F RAM read/write, 0xA7-0xAB, 0xAD/0xAE, 0xD0-0xD4, 0xF0-0xFF pulse
//! output port); the Intel 82371 PIIX datasheets for port 0x92 (bit 0 ALT_RST, bit 1
//! ALT_A20) and the reset control register at 0xCF9 (bit 1 system reset, bit 2 reset CPU,
//! bit 3 full reset).
//!
//! The 8042 here has no keyboard and no mouse behind it: it passes its self-tests and
//! answers controller commands (enough for Linux's i8042 driver to probe it), and a byte
//! sent to either device is answered with 0xFE (resend), which a PS/2 driver reads as "no
//! device". Bytes queue in a small output buffer; a byte for the keyboard channel raises
//! IRQ1 and one for the auxiliary channel IRQ12 when the command byte enables them
//! ([`Legacy::irq1_level`], [`Legacy::irq12_level`]).
//!
//! Port 0xCF9 shares the dword of the PCI configuration address register (0xCF8); on a
//! PIIX only a byte access at 0xCF9 reaches the reset control register, so the port bus
//! routes byte accesses of 0xCF9 here and dword accesses of 0xCF8 to [`super::pci`].
//!
//! A20: the state the guest selects (8042 output port bit 1 or port 0x92 bit 1) is kept
//! and readable ([`Legacy::a20`]), but guest memory never wraps at 1 MiB.

use crate::platform::bus::{Device, DeviceEffect};
use crate::platform::Now;

use arrayvec::ArrayVec;

pub const KBD_DATA: u16 = 0x60;
pub const KBD_STATUS: u16 = 0x64;
pub const POST: u16 = 0x80;
pub const SYSTEM_CONTROL_A: u16 = 0x92;
pub const RESET_CONTROL: u16 = 0xcf9;

/// 8042 status register bits.
pub const STATUS_OBF: u8 = 1 << 0;
pub const STATUS_IBF: u8 = 1 << 1;
pub const STATUS_SYS: u8 = 1 << 2;
pub const STATUS_CMD: u8 = 1 << 3;
pub const STATUS_UNLOCKED: u8 = 1 << 4;
pub const STATUS_AUX: u8 = 1 << 5;

/// 8042 command byte bits.
const CB_KBD_INT: u8 = 1 << 0;
const CB_AUX_INT: u8 = 1 << 1;
const CB_SYS: u8 = 1 << 2;
const CB_KBD_DISABLE: u8 = 1 << 4;
const CB_AUX_DISABLE: u8 = 1 << 5;
const CB_TRANSLATE: u8 = 1 << 6;

/// 8042 output port: bit 0 is the CPU reset line (active low), bit 1 A20.
const OP_RESET_N: u8 = 1 << 0;
const OP_A20: u8 = 1 << 1;

const PORT92_RESET: u8 = 1 << 0;
const PORT92_A20: u8 = 1 << 1;
const RCR_RESET_CPU: u8 = 1 << 2;
const RCR_BITS: u8 = 0x0e;

/// A PS/2 device's "resend" answer: what a driver gets when no device is attached.
const PS2_RESEND: u8 = 0xfe;

/// What a port write did besides changing device state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyEffect {
    None,
    /// The guest reset the machine.
    Reset,
}

#[derive(Clone, Debug)]
pub struct Legacy {
    post: u8,
    port92: u8,
    rcr: u8,
    command_byte: u8,
    output_port: u8,
    /// Output buffer: (byte, from the auxiliary device).
    out: ArrayVec<(u8, bool), 16>,
    /// The byte 0x60 reads when the buffer is empty (the last one read).
    last_out: u8,
    /// A controller command waiting for its data byte on 0x60.
    expecting: Option<u8>,
    /// The last write went to 0x64 (status bit 3).
    last_was_command: bool,
}

impl Default for Legacy {
    fn default() -> Self {
        Self::new()
    }
}

impl Legacy {
    /// The state a PC BIOS leaves: keyboard interrupt and translation on, system flag set,
    /// A20 enabled.
    pub const fn new() -> Self {
        Self {
            post: 0,
            port92: PORT92_A20,
            rcr: 0,
            command_byte: CB_KBD_INT | CB_SYS | CB_TRANSLATE,
            output_port: OP_RESET_N | OP_A20,
            out: ArrayVec::new_const(),
            last_out: 0,
            expecting: None,
            last_was_command: false,
        }
    }

    /// Whether `port` is one of these (0xCF9 only for byte accesses; see the module doc).
    pub fn claims(port: u16) -> bool {
        matches!(
            port,
            KBD_DATA | KBD_STATUS | POST | SYSTEM_CONTROL_A | RESET_CONTROL
        )
    }

    /// The last POST code the guest wrote to port 0x80.
    pub fn post_code(&self) -> u8 {
        self.post
    }

    /// Whether the guest has the A20 gate enabled.
    pub fn a20(&self) -> bool {
        self.output_port & OP_A20 != 0 || self.port92 & PORT92_A20 != 0
    }

    /// The keyboard's IRQ1 line: keyboard data waits and its interrupt is enabled.
    pub fn irq1_level(&self) -> bool {
        matches!(self.out.first(), Some(&(_, false))) && self.command_byte & CB_KBD_INT != 0
    }

    /// The mouse's IRQ12 line: auxiliary data waits and its interrupt is enabled.
    pub fn irq12_level(&self) -> bool {
        matches!(self.out.first(), Some(&(_, true))) && self.command_byte & CB_AUX_INT != 0
    }

    fn push(&mut self, byte: u8, aux: bool) {
        let _ = self.out.try_push((byte, aux));
    }

    fn status(&self) -> u8 {
        let mut s = STATUS_SYS | STATUS_UNLOCKED;
        if let Some(&(_, aux)) = self.out.first() {
            s |= STATUS_OBF | if aux { STATUS_AUX } else { 0 };
        }
        if self.last_was_command {
            s |= STATUS_CMD;
        }
        s
    }

    /// A guest IN of one byte.
    pub fn read(&mut self, port: u16) -> u8 {
        match port {
            KBD_DATA => {
                if !self.out.is_empty() {
                    self.last_out = self.out.remove(0).0;
                }
                self.last_out
            }
            KBD_STATUS => self.status(),
            POST => self.post,
            SYSTEM_CONTROL_A => self.port92,
            RESET_CONTROL => self.rcr,
            _ => 0xff,
        }
    }

    /// A guest OUT of one byte.
    pub fn write(&mut self, port: u16, value: u8) -> LegacyEffect {
        match port {
            KBD_DATA => {
                self.last_was_command = false;
                return self.write_data(value);
            }
            KBD_STATUS => {
                self.last_was_command = true;
                return self.command(value);
            }
            POST => self.post = value,
            SYSTEM_CONTROL_A => {
                // Bit 0 is a strobe: writing 1 resets and it reads back 0.
                self.port92 = value & !PORT92_RESET;
                if value & PORT92_RESET != 0 {
                    return LegacyEffect::Reset;
                }
            }
            RESET_CONTROL => {
                self.rcr = value & RCR_BITS;
                if value & RCR_RESET_CPU != 0 {
                    self.rcr &= !RCR_RESET_CPU;
                    return LegacyEffect::Reset;
                }
            }
            _ => {}
        }
        LegacyEffect::None
    }

    fn write_output_port(&mut self, value: u8) -> LegacyEffect {
        self.output_port = value | OP_RESET_N;
        if value & OP_RESET_N == 0 {
            LegacyEffect::Reset
        } else {
            LegacyEffect::None
        }
    }

    fn write_data(&mut self, value: u8) -> LegacyEffect {
        match self.expecting.take() {
            Some(0x60) => self.command_byte = value,
            Some(0x61..=0x7f) => {} // the rest of the controller RAM: not kept
            Some(0xd1) => return self.write_output_port(value),
            Some(0xd2) => self.push(value, false),
            Some(0xd3) => self.push(value, true),
            Some(_) => self.push(PS2_RESEND, true), // 0xD4: to the (absent) mouse
            None => self.push(PS2_RESEND, false),   // to the (absent) keyboard
        }
        LegacyEffect::None
    }

    fn command(&mut self, cmd: u8) -> LegacyEffect {
        self.expecting = None;
        match cmd {
            0x20 => self.push(self.command_byte, false),
            0x21..=0x3f => self.push(0, false),
            0x60..=0x7f | 0xd1..=0xd4 => self.expecting = Some(cmd),
            0xa7 => self.command_byte |= CB_AUX_DISABLE,
            0xa8 => self.command_byte &= !CB_AUX_DISABLE,
            // Auxiliary and keyboard interface tests: no error.
            0xa9 | 0xab => self.push(0x00, false),
            0xaa => {
                self.command_byte |= CB_SYS;
                self.push(0x55, false);
            }
            0xad => self.command_byte |= CB_KBD_DISABLE,
            0xae => self.command_byte &= !CB_KBD_DISABLE,
            // Input port: keyboard not inhibited.
            0xc0 => self.push(0x80, false),
            0xd0 => self.push(self.output_port, false),
            0xdd => self.output_port &= !OP_A20,
            0xdf => self.output_port |= OP_A20,
            0xe0 => self.push(0x00, false),
            // Pulse output port bits 3-0 low for those clear in the command; bit 0 is reset.
            0xf0..=0xff if cmd & 1 == 0 => return LegacyEffect::Reset,
            _ => {}
        }
        LegacyEffect::None
    }
}

/// The legacy ports decode their own numbers.
impl Device for Legacy {
    fn read(&mut self, offset: u64, _size: u8, _now: Now) -> u64 {
        self.read(offset as u16) as u64
    }
    fn write(&mut self, offset: u64, _size: u8, value: u64, _now: Now) -> DeviceEffect {
        match self.write(offset as u16, value as u8) {
            LegacyEffect::Reset => DeviceEffect::Reset,
            _ => DeviceEffect::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_port_keeps_the_last_value() {
        let mut l = Legacy::new();
        assert_eq!(l.write(POST, 0x42), LegacyEffect::None);
        assert_eq!(l.read(POST), 0x42);
        assert_eq!(l.post_code(), 0x42);
    }

    #[test]
    fn status_register_idle() {
        let mut l = Legacy::new();
        let s = l.read(KBD_STATUS);
        assert_eq!(s & (STATUS_OBF | STATUS_IBF), 0, "both buffers empty");
        assert_ne!(s & STATUS_SYS, 0, "system flag");
        l.write(KBD_STATUS, 0xad);
        assert_ne!(
            l.read(KBD_STATUS) & STATUS_CMD,
            0,
            "last write was a command"
        );
    }

    #[test]
    fn command_byte_read_and_write() {
        let mut l = Legacy::new();
        l.write(KBD_STATUS, 0x20);
        assert_ne!(l.read(KBD_STATUS) & STATUS_OBF, 0);
        assert_eq!(l.read(KBD_DATA), 0x45);
        assert_eq!(l.read(KBD_STATUS) & STATUS_OBF, 0);
        l.write(KBD_STATUS, 0x60);
        assert_eq!(l.write(KBD_DATA, 0x47), LegacyEffect::None);
        l.write(KBD_STATUS, 0x20);
        assert_eq!(l.read(KBD_DATA), 0x47);
    }

    #[test]
    fn self_test_and_interface_tests() {
        let mut l = Legacy::new();
        l.write(KBD_STATUS, 0xaa);
        assert_eq!(l.read(KBD_DATA), 0x55);
        l.write(KBD_STATUS, 0xab);
        assert_eq!(l.read(KBD_DATA), 0x00);
        l.write(KBD_STATUS, 0xa9);
        assert_eq!(l.read(KBD_DATA), 0x00);
    }

    #[test]
    fn port_enables_show_in_the_command_byte() {
        // Linux's i8042_toggle_aux checks this.
        let mut l = Legacy::new();
        let cb = |l: &mut Legacy| {
            l.write(KBD_STATUS, 0x20);
            l.read(KBD_DATA)
        };
        l.write(KBD_STATUS, 0xa7);
        assert_ne!(cb(&mut l) & CB_AUX_DISABLE, 0);
        l.write(KBD_STATUS, 0xa8);
        assert_eq!(cb(&mut l) & CB_AUX_DISABLE, 0);
        l.write(KBD_STATUS, 0xad);
        assert_ne!(cb(&mut l) & CB_KBD_DISABLE, 0);
        l.write(KBD_STATUS, 0xae);
        assert_eq!(cb(&mut l) & CB_KBD_DISABLE, 0);
    }

    #[test]
    fn loopback_and_absent_devices() {
        let mut l = Legacy::new();
        l.write(KBD_STATUS, 0xd3);
        l.write(KBD_DATA, 0x5a);
        assert_eq!(
            l.read(KBD_STATUS) & (STATUS_OBF | STATUS_AUX),
            STATUS_OBF | STATUS_AUX
        );
        assert!(
            !l.irq12_level(),
            "aux interrupt disabled in the command byte"
        );
        assert_eq!(l.read(KBD_DATA), 0x5a);
        // A byte to the keyboard: no keyboard answers resend, on IRQ1.
        l.write(KBD_DATA, 0xff);
        assert!(l.irq1_level());
        assert_eq!(l.read(KBD_STATUS) & STATUS_AUX, 0);
        assert_eq!(l.read(KBD_DATA), PS2_RESEND);
        assert!(!l.irq1_level());
        // To the mouse through 0xD4.
        l.write(KBD_STATUS, 0x60);
        l.write(KBD_DATA, CB_AUX_INT);
        l.write(KBD_STATUS, 0xd4);
        l.write(KBD_DATA, 0xf2);
        assert!(l.irq12_level());
        assert_eq!(l.read(KBD_DATA), PS2_RESEND);
        assert_eq!(
            l.read(KBD_DATA),
            PS2_RESEND,
            "empty buffer rereads the last byte"
        );
    }

    #[test]
    fn keyboard_controller_resets() {
        let mut l = Legacy::new();
        assert_eq!(l.write(KBD_STATUS, 0xfe), LegacyEffect::Reset);
        assert_eq!(
            l.write(KBD_STATUS, 0xff),
            LegacyEffect::None,
            "pulses nothing"
        );
        l.write(KBD_STATUS, 0xd1);
        assert_eq!(l.write(KBD_DATA, 0x03), LegacyEffect::None);
        l.write(KBD_STATUS, 0xd1);
        assert_eq!(
            l.write(KBD_DATA, 0x01),
            LegacyEffect::None,
            "A20 off, no reset"
        );
        assert!(!l.a20() || l.read(SYSTEM_CONTROL_A) & PORT92_A20 != 0);
        l.write(KBD_STATUS, 0xd1);
        assert_eq!(
            l.write(KBD_DATA, 0x02),
            LegacyEffect::Reset,
            "bit 0 clear resets"
        );
    }

    #[test]
    fn output_port_reads_back_and_drives_a20() {
        let mut l = Legacy::new();
        l.write(SYSTEM_CONTROL_A, 0);
        l.write(KBD_STATUS, 0xd1);
        l.write(KBD_DATA, 0x01);
        assert!(!l.a20());
        l.write(KBD_STATUS, 0xd0);
        assert_eq!(l.read(KBD_DATA), 0x01);
        l.write(KBD_STATUS, 0xdf);
        assert!(l.a20());
    }

    #[test]
    fn port92_a20_and_fast_reset() {
        let mut l = Legacy::new();
        assert_eq!(l.write(SYSTEM_CONTROL_A, 0x00), LegacyEffect::None);
        l.write(KBD_STATUS, 0xdd);
        assert!(!l.a20());
        assert_eq!(l.write(SYSTEM_CONTROL_A, 0x02), LegacyEffect::None);
        assert!(l.a20());
        assert_eq!(l.read(SYSTEM_CONTROL_A), 0x02);
        assert_eq!(l.write(SYSTEM_CONTROL_A, 0x03), LegacyEffect::Reset);
        assert_eq!(l.read(SYSTEM_CONTROL_A), 0x02, "reset bit reads back 0");
    }

    #[test]
    fn reset_control_register() {
        let mut l = Legacy::new();
        // Linux's reboot=pci: 0x02, then 0x06.
        assert_eq!(l.write(RESET_CONTROL, 0x02), LegacyEffect::None);
        assert_eq!(l.read(RESET_CONTROL), 0x02);
        assert_eq!(l.write(RESET_CONTROL, 0x06), LegacyEffect::Reset);
        assert_eq!(l.write(RESET_CONTROL, 0x0e), LegacyEffect::Reset);
        assert_eq!(l.write(RESET_CONTROL, 0x08), LegacyEffect::None);
    }

    #[test]
    fn claimed_ports() {
        for p in [0x60, 0x64, 0x80, 0x92, 0xcf9] {
            assert!(Legacy::claims(p), "{p:#x}");
        }
        for p in [0x61, 0x70, 0xcf8, 0xcfc] {
            assert!(!Legacy::claims(p), "{p:#x}");
        }
    }
}
