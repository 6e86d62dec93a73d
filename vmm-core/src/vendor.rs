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

#[cfg(test)]
mod tests {
    use super::*;

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
