//! The memory-type range registers of a guest whose CPUID shows MTRR (leaf 1 EDX bit 12):
//! IA32_MTRRCAP, IA32_MTRR_DEF_TYPE, the eleven fixed-range MTRRs and eight variable
//! pairs, with the write rules of SDM Vol 3A 11.11 (11.11.1 MTRRCAP, 11.11.2.1 DEF_TYPE,
//! 11.11.2.2 fixed ranges, 11.11.2.3 variable ranges; register layout in SDM Vol 4,
//! Table 2-2).
//!
//! Janus only keeps the values: reads return what was written. It does not apply them to
//! the EPT/NPT memory types: guest RAM is always mapped write-back and device pages are
//! never mapped (every device access exits), so no type a guest chooses changes what it
//! can observe but these registers themselves.

use crate::vcpu::Event;

pub const IA32_MTRRCAP: u32 = 0xfe;
pub const IA32_MTRR_DEF_TYPE: u32 = 0x2ff;
/// IA32_MTRR_PHYSBASE0; PHYSMASKn is PHYSBASEn + 1, pair n at 0x200 + 2n.
pub const IA32_MTRR_PHYSBASE0: u32 = 0x200;
pub const IA32_MTRR_FIX64K_00000: u32 = 0x250;
pub const IA32_MTRR_FIX16K_80000: u32 = 0x258;
pub const IA32_MTRR_FIX16K_A0000: u32 = 0x259;
/// IA32_MTRR_FIX4K_C0000 .. IA32_MTRR_FIX4K_F8000 (0x268-0x26F).
pub const IA32_MTRR_FIX4K_C0000: u32 = 0x268;

/// Variable-range pairs offered.
pub const VCNT: usize = 8;
/// VCNT = 8, fixed ranges (bit 8) and write-combining (bit 10) supported, no SMRR
/// (bit 11) (SDM Vol 3A 11.11.1).
pub const MTRRCAP_VALUE: u64 = VCNT as u64 | (1 << 8) | (1 << 10);

/// Memory types (SDM Vol 3A 11.11.1, Table 11-8).
mod ty {
    pub const UC: u8 = 0;
    pub const WP: u8 = 5;
    pub const WB: u8 = 6;
}

/// DEF_TYPE: E (bit 11) enables the MTRRs, FE (bit 10) the fixed ranges; bits 7:0 are the
/// default type; the rest is reserved.
const DEF_TYPE_E: u64 = 1 << 11;
const DEF_TYPE_FE: u64 = 1 << 10;
const DEF_TYPE_WRITABLE: u64 = DEF_TYPE_E | DEF_TYPE_FE | 0xff;
/// PHYSMASK's valid bit (11); bits 10:0 are reserved.
const MASK_VALID: u64 = 1 << 11;
/// PHYSBASE's type field (7:0); bits 11:8 are reserved.
const BASE_TYPE: u64 = 0xff;

/// Every byte of a fixed-range MTRR set to type `t`.
const fn fill(t: u8) -> u64 {
    u64::from_le_bytes([t; 8])
}

fn valid_type(t: u8) -> bool {
    // UC, WC, WT, WP, WB; 2, 3 and 7 and up are reserved.
    matches!(t, 0 | 1 | 4 | 5 | 6)
}

/// One guest's MTRRs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mtrrs {
    def_type: u64,
    /// 0x250, 0x258, 0x259, 0x268-0x26F in that order.
    fixed: [u64; 11],
    /// (PHYSBASE, PHYSMASK) per pair.
    var: [(u64, u64); VCNT],
    /// The address bits below MAXPHYADDR, 4 KiB aligned: what PHYSBASE/PHYSMASK may hold.
    addr_bits: u64,
}

impl Mtrrs {
    /// What a PC BIOS leaves (SeaBIOS does this): MTRRs and fixed ranges enabled, default
    /// WB; 0-0x9FFFF WB, the VGA window 0xA0000-0xBFFFF UC, the ROM area 0xC0000-0xFFFFF
    /// WP; variable pair 0 makes the 32-bit device hole 0xC000_0000-0xFFFF_FFFF UC.
    /// `max_phys_addr` is the guest's MAXPHYADDR (CPUID 0x8000_0008 EAX 7:0).
    pub fn bios_default(max_phys_addr: u8) -> Mtrrs {
        let bits = u32::from(max_phys_addr.clamp(36, 52));
        let addr_bits = ((1u64 << bits) - 1) & !0xfff;
        let mut var = [(0, 0); VCNT];
        var[0] = (
            0xc000_0000 | u64::from(ty::UC),
            (!0x3fff_ffffu64 & addr_bits) | MASK_VALID,
        );
        let mut fixed = [fill(ty::WP); 11];
        fixed[0] = fill(ty::WB);
        fixed[1] = fill(ty::WB);
        fixed[2] = fill(ty::UC);
        Mtrrs {
            def_type: DEF_TYPE_E | DEF_TYPE_FE | u64::from(ty::WB),
            fixed,
            var,
            addr_bits,
        }
    }

    /// Whether `msr` is one of the MTRR MSRs.
    pub fn owns(msr: u32) -> bool {
        matches!(msr, IA32_MTRRCAP | IA32_MTRR_DEF_TYPE)
            || fixed_index(msr).is_some()
            || var_slot(msr).is_some()
    }

    /// RDMSR of an MTRR MSR ([`Mtrrs::owns`]); 0 for any other.
    pub fn read(&self, msr: u32) -> u64 {
        match msr {
            IA32_MTRRCAP => MTRRCAP_VALUE,
            IA32_MTRR_DEF_TYPE => self.def_type,
            _ => match (fixed_index(msr), var_slot(msr)) {
                (Some(i), _) => self.fixed[i],
                (_, Some((n, false))) => self.var[n].0,
                (_, Some((n, true))) => self.var[n].1,
                _ => 0,
            },
        }
    }

    /// WRMSR of an MTRR MSR: #GP(0) for MTRRCAP (read-only), a reserved bit, an address
    /// bit at or above MAXPHYADDR, or an invalid memory type.
    pub fn write(&mut self, msr: u32, v: u64) -> Result<(), Event> {
        let gp = Err(Event::gp(0));
        if msr == IA32_MTRR_DEF_TYPE {
            if v & !DEF_TYPE_WRITABLE != 0 || !valid_type(v as u8) {
                return gp;
            }
            self.def_type = v;
        } else if let Some(i) = fixed_index(msr) {
            if !v.to_le_bytes().iter().all(|&t| valid_type(t)) {
                return gp;
            }
            self.fixed[i] = v;
        } else if let Some((n, is_mask)) = var_slot(msr) {
            let allowed = self.addr_bits | if is_mask { MASK_VALID } else { BASE_TYPE };
            if v & !allowed != 0 || (!is_mask && !valid_type(v as u8)) {
                return gp;
            }
            if is_mask {
                self.var[n].1 = v;
            } else {
                self.var[n].0 = v;
            }
        } else {
            return gp;
        }
        Ok(())
    }
}

/// Where a fixed-range MTRR sits in [`Mtrrs::fixed`].
fn fixed_index(msr: u32) -> Option<usize> {
    match msr {
        IA32_MTRR_FIX64K_00000 => Some(0),
        IA32_MTRR_FIX16K_80000 => Some(1),
        IA32_MTRR_FIX16K_A0000 => Some(2),
        m @ IA32_MTRR_FIX4K_C0000..=0x26f => Some(3 + (m - IA32_MTRR_FIX4K_C0000) as usize),
        _ => None,
    }
}

/// The variable pair of `msr` and whether it is the PHYSMASK half.
fn var_slot(msr: u32) -> Option<(usize, bool)> {
    let off = msr.checked_sub(IA32_MTRR_PHYSBASE0)? as usize;
    (off < 2 * VCNT).then_some((off / 2, off % 2 == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_as_a_bios_leaves_them() {
        let m = Mtrrs::bios_default(40);
        assert_eq!(m.read(IA32_MTRRCAP), 0x508);
        assert_eq!(m.read(IA32_MTRR_DEF_TYPE), 0xc06);
        assert_eq!(m.read(0x250), 0x0606_0606_0606_0606);
        assert_eq!(m.read(0x259), 0);
        assert_eq!(m.read(0x26f), 0x0505_0505_0505_0505);
        assert_eq!(m.read(0x200), 0xc000_0000);
        assert_eq!(
            m.read(0x201),
            0xff_c000_0800,
            "1 GiB below MAXPHYADDR 40, valid"
        );
        assert_eq!(m.read(0x20f), 0);
    }

    #[test]
    fn names_exactly_the_mtrr_msrs() {
        for msr in [0xfe, 0x2ff, 0x200, 0x20f, 0x250, 0x258, 0x259, 0x268, 0x26f] {
            assert!(Mtrrs::owns(msr), "{msr:#x}");
        }
        for msr in [0xff, 0x1ff, 0x210, 0x251, 0x257, 0x25a, 0x267, 0x270, 0x277] {
            assert!(!Mtrrs::owns(msr), "{msr:#x}");
        }
    }

    #[test]
    fn reads_return_what_was_written() {
        let mut m = Mtrrs::bios_default(36);
        let writes = [
            (0x2ff, 0x800),
            (0x250, 0x0001_0405_0606_0000),
            (0x26b, 0x0404_0404_0101_0101),
            (0x20e, 0x0_8000_0001),
            (0x20f, 0xf_f000_0800),
        ];
        for (msr, v) in writes {
            assert_eq!(m.write(msr, v), Ok(()), "{msr:#x}");
            assert_eq!(m.read(msr), v, "{msr:#x}");
        }
        assert_eq!(m.read(0x20c), 0, "other pairs untouched");
    }

    #[test]
    fn refuses_what_the_sdm_reserves() {
        let mut m = Mtrrs::bios_default(36);
        let before = m;
        let gp = Err(Event::gp(0));
        // Read-only capability register.
        assert_eq!(m.write(IA32_MTRRCAP, MTRRCAP_VALUE), gp);
        // DEF_TYPE: type 2, reserved bits 8-9 and 12.
        assert_eq!(m.write(0x2ff, 0xc02), gp);
        assert_eq!(m.write(0x2ff, 0xd06), gp);
        assert_eq!(m.write(0x2ff, 0x1c06), gp);
        // A fixed range with type 7 in its top byte.
        assert_eq!(m.write(0x259, 0x0700_0000_0000_0000), gp);
        // PHYSBASE: type 3, bit 8, an address bit at MAXPHYADDR (36).
        assert_eq!(m.write(0x202, 0x1000_0003), gp);
        assert_eq!(m.write(0x202, 0x1000_0106), gp);
        assert_eq!(m.write(0x202, 0x10_0000_0006), gp);
        // PHYSMASK: bit 0 reserved, an address bit at MAXPHYADDR.
        assert_eq!(m.write(0x203, 0xf_f000_0801), gp);
        assert_eq!(m.write(0x203, 0x1f_f000_0800), gp);
        assert_eq!(m, before, "nothing changed");
        // A wider MAXPHYADDR takes the same mask.
        assert_eq!(Mtrrs::bios_default(48).write(0x203, 0x1f_f000_0800), Ok(()));
    }
}
