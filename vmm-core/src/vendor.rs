//! Which backend a CPU vendor string (CPUID leaf 0) calls for.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// Intel VT-x (VMX): Intel and the VIA/Zhaoxin CPUs that implement it.
    IntelCompatible,
    /// AMD-V (SVM): AMD and Hygon.
    AmdCompatible,
}

pub fn classify(vendor: &str) -> Option<Vendor> {
    match vendor {
        "GenuineIntel" | "CentaurHauls" | "  Shanghai  " => Some(Vendor::IntelCompatible),
        "AuthenticAMD" | "HygonGenuine" => Some(Vendor::AmdCompatible),
        _ => None,
    }
}

/// The vendor of CPUID leaf 0's answer (`[eax, ebx, ecx, edx]`; the string is EBX, EDX,
/// ECX).
pub fn of_leaf0(leaf0: [u32; 4]) -> Option<Vendor> {
    let [_, b, c, d] = leaf0;
    let mut v = [0u8; 12];
    for (i, r) in [b, d, c].into_iter().enumerate() {
        v[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
    }
    classify(core::str::from_utf8(&v).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_vendor_string_of_leaf_0() {
        let leaf0 = |s: &[u8; 12]| {
            let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
            [0xd, w(0), w(8), w(4)]
        };
        assert_eq!(
            of_leaf0(leaf0(b"AuthenticAMD")),
            Some(Vendor::AmdCompatible)
        );
        assert_eq!(
            of_leaf0(leaf0(b"GenuineIntel")),
            Some(Vendor::IntelCompatible)
        );
        assert_eq!(of_leaf0([0; 4]), None);
    }

    #[test]
    fn maps_each_known_vendor() {
        assert_eq!(classify("GenuineIntel"), Some(Vendor::IntelCompatible));
        assert_eq!(classify("CentaurHauls"), Some(Vendor::IntelCompatible));
        assert_eq!(classify("  Shanghai  "), Some(Vendor::IntelCompatible));
        assert_eq!(classify("AuthenticAMD"), Some(Vendor::AmdCompatible));
        assert_eq!(classify("HygonGenuine"), Some(Vendor::AmdCompatible));
        assert_eq!(classify("GenuineIotel"), None);
        assert_eq!(
            classify("Shanghai"),
            None,
            "the real string has two spaces each side"
        );
    }
}
