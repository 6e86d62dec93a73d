//! Event injection: the VM-entry interruption-information field (SDM Vol 3C 25.8.3,
//! Table 25-17), whose layout the exit's interruption and IDT-vectoring information share
//! (SDM Vol 3C 25.9.2, 25.9.3).

use vmm_core::vcpu::Event;

/// Interruption-information bits.
pub mod info {
    /// Bits 7:0: the vector.
    pub const VECTOR: u32 = 0xff;
    /// Bits 10:8: the interruption type.
    pub const TYPE_SHIFT: u32 = 8;
    pub const TYPE_MASK: u32 = 7 << TYPE_SHIFT;
    pub const TYPE_EXTERNAL: u32 = 0 << TYPE_SHIFT;
    pub const TYPE_NMI: u32 = 2 << TYPE_SHIFT;
    pub const TYPE_HW_EXCEPTION: u32 = 3 << TYPE_SHIFT;
    /// INT1 (ICEBP).
    pub const TYPE_PRIV_SW_EXCEPTION: u32 = 5 << TYPE_SHIFT;
    /// Bit 11: an error code is delivered (entry) or was pushed (exit).
    pub const DELIVER_ERROR: u32 = 1 << 11;
    /// Bit 12: "NMI unblocking due to IRET" in exit interruption information, undefined in
    /// IDT-vectoring information and reserved in the entry field.
    pub const BIT12: u32 = 1 << 12;
    pub const VALID: u32 = 1 << 31;
}

/// The NMI's vector.
const NMI_VECTOR: u32 = 2;

/// What the next VM entry injects: the interruption-information field and the exception
/// error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    pub info: u32,
    pub error_code: u32,
}

impl Injection {
    /// `ev` as VM entry injects it; `protected` is CR0.PE, without which no error code
    /// is delivered (SDM Vol 3C 26.2.1.3).
    pub fn of(ev: Event, protected: bool) -> Injection {
        let (info, error_code) = match ev {
            Event::Exception {
                vector,
                error_code: Some(code),
            } if protected => (
                info::TYPE_HW_EXCEPTION | info::DELIVER_ERROR | vector as u32,
                code,
            ),
            Event::Exception { vector, .. } => (info::TYPE_HW_EXCEPTION | vector as u32, 0),
            Event::Interrupt(vector) => (info::TYPE_EXTERNAL | vector as u32, 0),
            Event::Nmi => (info::TYPE_NMI | NMI_VECTOR, 0),
        };
        Injection {
            info: info::VALID | info,
            error_code,
        }
    }

    /// The event whose delivery a VM exit interrupted, from the (valid) IDT-vectoring
    /// information and error code (SDM Vol 3C 28.2.4), to deliver again.
    pub fn redeliver(vectoring: u32, error_code: u32) -> Injection {
        Injection {
            info: vectoring & !info::BIT12,
            error_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid (bit 31), error code delivered (bit 11), type in bits 10:8 (0 external
    /// interrupt, 2 NMI, 3 hardware exception), vector in bits 7:0 (SDM Vol 3C Table 25-17).
    #[test]
    fn events_encode_as_the_entry_interruption_information() {
        let inj = |ev, protected| {
            let i = Injection::of(ev, protected);
            (i.info, i.error_code)
        };
        assert_eq!(inj(Event::gp(0x18), true), (0x8000_0b0d, 0x18));
        assert_eq!(inj(Event::page_fault(2), true), (0x8000_0b0e, 2));
        assert_eq!(inj(Event::UD, true), (0x8000_0306, 0));
        assert_eq!(inj(Event::Interrupt(0x20), true), (0x8000_0020, 0));
        assert_eq!(inj(Event::Interrupt(0xff), false), (0x8000_00ff, 0));
        assert_eq!(inj(Event::Nmi, true), (0x8000_0202, 0));
    }

    #[test]
    fn real_mode_drops_the_error_code() {
        let i = Injection::of(Event::gp(0x18), false);
        assert_eq!((i.info, i.error_code), (0x8000_030d, 0));
    }

    #[test]
    fn a_redelivered_event_loses_bit_12() {
        let i = Injection::redeliver(0x8000_1b0e, 4);
        assert_eq!((i.info, i.error_code), (0x8000_0b0e, 4));
    }
}
