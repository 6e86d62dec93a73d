//! Segment access rights in the VMCS (SDM Vol 3C 25.4.1, Table 25-2) and the core's
//! neutral attribute format (`Segment::attr`: descriptor bytes 5 and 6).

/// Access-rights bits.
pub mod ar {
    /// Bits 7:0: type, S, DPL, P, as in the descriptor's byte 5.
    pub const ACCESS_BYTE: u32 = 0xff;
    /// DPL in bits 6:5.
    pub const DPL_SHIFT: u32 = 5;
    pub const DPL_MASK: u32 = 3;
    /// Bits 15:12: AVL, L, D/B, G (the descriptor's byte 6 high nibble).
    pub const FLAGS: u32 = 0xf000;
    /// Bit 13: L, 64-bit code segment.
    pub const LONG: u32 = 1 << 13;
    /// Bit 14: D/B, default operation size 32 bits.
    pub const DEFAULT_BIG: u32 = 1 << 14;
    /// Bit 16: segment unusable (for a null or not-present segment).
    pub const UNUSABLE: u32 = 1 << 16;
}

/// The neutral format's present bit and its flags nibble (bits 11:8).
const ATTR_PRESENT: u16 = 0x80;
const ATTR_FLAGS_SHIFT: u32 = 4;

/// VMX access rights from the neutral attributes; a not-present segment is unusable.
pub fn to_vmx_ar(attr: u16) -> u32 {
    let attr32 = attr as u32;
    let ar = (attr32 & ar::ACCESS_BYTE) | ((attr32 << ATTR_FLAGS_SHIFT) & ar::FLAGS);
    if attr & ATTR_PRESENT == 0 {
        ar | ar::UNUSABLE
    } else {
        ar
    }
}

/// The neutral attributes of VMX access rights; an unusable segment reads as all zero.
pub fn from_vmx_ar(access_rights: u32) -> u16 {
    if access_rights & ar::UNUSABLE != 0 {
        return 0;
    }
    ((access_rights & ar::ACCESS_BYTE) | ((access_rights & ar::FLAGS) >> ATTR_FLAGS_SHIFT)) as u16
}

/// The DPL in access rights (for SS: the CPL, SDM Vol 3C 26.3.1.2).
pub fn dpl(access_rights: u32) -> u8 {
    ((access_rights >> ar::DPL_SHIFT) & ar::DPL_MASK) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_data_and_tss_segments_convert_both_ways() {
        // 64-bit code (L), 32-bit flat code and data (G, D/B), a busy TSS.
        for (attr, vmx) in [
            (0xa9b, 0xa09b),
            (0xc9b, 0xc09b),
            (0xc93, 0xc093),
            (0x8b, 0x8b),
        ] {
            assert_eq!(to_vmx_ar(attr), vmx, "{attr:#x}");
            assert_eq!(from_vmx_ar(vmx), attr, "{vmx:#x}");
        }
        assert_ne!(to_vmx_ar(0xa9b) & ar::LONG, 0);
        assert_ne!(to_vmx_ar(0xc9b) & ar::DEFAULT_BIG, 0);
    }

    #[test]
    fn a_not_present_segment_is_unusable_and_reads_back_as_zero() {
        assert_eq!(to_vmx_ar(0), ar::UNUSABLE);
        assert_eq!(to_vmx_ar(0xc13), 0xc013 | ar::UNUSABLE, "P clear");
        assert_eq!(from_vmx_ar(ar::UNUSABLE | 0xc093), 0);
    }

    #[test]
    fn dpl_is_bits_6_to_5() {
        assert_eq!(dpl(0xc0f3), 3);
        assert_eq!(dpl(0xc093), 0);
    }
}
