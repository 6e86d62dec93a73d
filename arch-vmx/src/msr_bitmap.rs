//! The MSR bitmap (SDM Vol 3C 25.6.9): four 1 KiB bitmaps, reads of 0-0x1FFF, reads of
//! 0xC0000000-0xC0001FFF, then the same for writes; a set bit makes the access exit.

/// Fills `page` so that every MSR access exits except the core's pass-through list.
pub fn fill(page: &mut [u64; 512]) {
    page.fill(u64::MAX);
    let mut clear = |msr: u32, write: bool| {
        let (base, index) = match msr {
            0..=0x1fff => (0, msr),
            0xc000_0000..=0xc000_1fff => (1024, msr - 0xc000_0000),
            _ => return,
        };
        let bit = (base + if write { 2048 } else { 0 }) * 8 + index as usize;
        page[bit / 64] &= !(1 << (bit % 64));
    };
    for &m in vmm_core::msr::PASSTHROUGH {
        clear(m, false);
        clear(m, true);
    }
}

#[cfg(test)]
mod tests {
    use super::fill;

    fn exits(page: &[u64; 512], msr: u32, write: bool) -> bool {
        let (base, index) = if msr >= 0xc000_0000 {
            (1024, msr - 0xc000_0000)
        } else {
            (0, msr)
        };
        let bit = (base + if write { 2048 } else { 0 }) * 8 + index as usize;
        page[bit / 64] & (1 << (bit % 64)) != 0
    }

    #[test]
    fn only_the_pass_through_msrs_skip_the_exit() {
        let mut page = [0u64; 512];
        fill(&mut page);
        assert!(
            !exits(&page, 0xc000_0082, false) && !exits(&page, 0xc000_0082, true),
            "LSTAR"
        );
        assert!(
            exits(&page, 0x10, false) && exits(&page, 0x10, true),
            "TSC exits"
        );
        assert!(
            exits(&page, 0xc000_0080, false) && exits(&page, 0xc000_0080, true),
            "EFER exits"
        );
        assert!(exits(&page, 0x1b, false), "APIC base exits");
        assert!(exits(&page, 0x6e0, true), "TSC deadline exits");
    }
}
