//! What this CPU's SVM offers (CPUID 0x8000_000A, APM Vol 2 15.4) and whether it is
//! enough for Janus.

use core::fmt;

pub const MSR_VM_CR: u32 = 0xc001_0114;
const VM_CR_SVMDIS: u64 = 1 << 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvmCaps {
    pub npt: bool,
    pub nrip_save: bool,
    pub asids: u32,
    pub decode_assists: bool,
    /// TLB_CONTROL can flush one ASID's entries (FlushByAsid, APM Vol 2 15.16).
    pub flush_by_asid: bool,
    /// The CPU keeps VMCB state across VMRUNs as the clean bits allow (VmcbClean, CPUID
    /// 0x8000_000A EDX[5], APM Vol 2 15.15.3).
    pub vmcb_clean: bool,
}

/// Why AMD-V cannot run guests here: one line for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal(pub &'static str);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// `npt=yes nrip=no asids=16`, the features part of the `janus: cpu:` line.
impl fmt::Display for SvmCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "npt={} nrip={} asids={} decode-assists={}",
            yn(self.npt),
            yn(self.nrip_save),
            self.asids,
            yn(self.decode_assists)
        )
    }
}

/// Decides from the raw facts: CPUID 0x8000_0001 ECX, the highest extended leaf,
/// 0x8000_000A EBX/EDX, and VM_CR (`None` when reading it faulted, as in Bochs).
pub fn evaluate(
    ext1_ecx: u32,
    max_ext: u32,
    leaf_a: Option<(u32, u32)>,
    vm_cr: Option<u64>,
) -> Result<SvmCaps, Refusal> {
    if ext1_ecx & (1 << 2) == 0 {
        return Err(Refusal(
            "no hardware virtualization: CPUID reports no SVM (AMD-V)",
        ));
    }
    if vm_cr.is_some_and(|v| v & VM_CR_SVMDIS != 0) {
        return Err(Refusal(
            "AMD-V disabled by firmware: VM_CR.SVMDIS is set (enable SVM in the firmware setup)",
        ));
    }
    let (ebx, edx) = match leaf_a {
        Some(l) if max_ext >= 0x8000_000a => l,
        _ => {
            return Err(Refusal(
                "AMD-V without CPUID leaf 0x8000000A: cannot tell its features",
            ))
        }
    };
    let caps = SvmCaps {
        npt: edx & 1 != 0,
        nrip_save: edx & (1 << 3) != 0,
        asids: ebx,
        decode_assists: edx & (1 << 7) != 0,
        flush_by_asid: edx & (1 << 6) != 0,
        vmcb_clean: edx & (1 << 5) != 0,
    };
    if !caps.npt {
        return Err(Refusal(
            "AMD-V without nested paging (NPT): Janus needs nested paging",
        ));
    }
    if caps.asids < 2 {
        return Err(Refusal("AMD-V with no ASID for guests"));
    }
    Ok(caps)
}

/// Reads the CPU's SVM facts. `rdmsr_safe` must survive a #GP (VM_CR is missing on some
/// emulated CPUs).
pub fn probe(rdmsr_safe: fn(u32) -> Option<u64>) -> Result<SvmCaps, Refusal> {
    use core::arch::x86_64::__cpuid;
    let max_ext = __cpuid(0x8000_0000).eax;
    let ecx = if max_ext >= 0x8000_0001 {
        __cpuid(0x8000_0001).ecx
    } else {
        0
    };
    let leaf_a = __cpuid(0x8000_000a);
    let a = (leaf_a.ebx, leaf_a.edx);
    let vm_cr = if ecx & (1 << 2) != 0 {
        rdmsr_safe(MSR_VM_CR)
    } else {
        None
    };
    evaluate(ecx, max_ext, Some(a), vm_cr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epyc_under_qemu_has_npt_but_no_nrip_save() {
        let c = evaluate(1 << 2, 0x8000_001f, Some((16, 0x1)), Some(0)).unwrap();
        assert!(c.npt && !c.nrip_save && !c.flush_by_asid);
        assert_eq!(c.asids, 16);
        let flush = evaluate(1 << 2, 0x8000_001f, Some((16, 0x41)), Some(0)).unwrap();
        assert!(flush.flush_by_asid && !flush.vmcb_clean, "EDX bit 6");
        let clean = evaluate(1 << 2, 0x8000_001f, Some((16, 0x21)), Some(0)).unwrap();
        assert!(clean.vmcb_clean && !clean.flush_by_asid, "EDX bit 5");
    }

    #[test]
    fn refusals_name_what_is_missing() {
        assert!(evaluate(0, 0x8000_001f, Some((16, 1)), None)
            .unwrap_err()
            .0
            .contains("no hardware virtualization"));
        assert!(evaluate(4, 0x8000_001f, Some((16, 0)), None)
            .unwrap_err()
            .0
            .contains("nested paging"));
        assert!(evaluate(4, 0x8000_001f, Some((16, 1)), Some(1 << 4))
            .unwrap_err()
            .0
            .contains("disabled by firmware"));
        assert!(evaluate(4, 0x8000_0008, Some((16, 1)), None).is_err());
        // VM_CR missing (Bochs): not a reason to refuse.
        assert!(
            evaluate(4, 0x8000_001f, Some((16, 9)), None)
                .unwrap()
                .nrip_save
        );
    }
}
