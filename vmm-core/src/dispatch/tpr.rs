//! CR8, the task-priority register as the guest's MOV CR8 sees it. The local APIC owns
//! the priority (its TPR); CR8 is TPR[7:4] (SDM Vol 3A 10.8.6.1, APM Vol 2 16.6.4).
//! Where the hardware keeps a copy the guest moves to and from without an exit (AMD-V's
//! V_TPR, [`ArchVcpu::tpr_shadow`]), the copy is loaded before each entry and read back
//! after each exit. Nothing else in the dispatcher touches the TPR or CR8.

use crate::platform::Platform;
use crate::vcpu::{ArchVcpu, Event};

/// Before an entry: the hardware's copy gets the local APIC's priority class.
pub(super) fn load_shadow(vcpu: &mut impl ArchVcpu, platform: &Platform) {
    vcpu.set_tpr_shadow(cr8(platform));
}

/// After an exit: a MOV to CR8 that did not exit changed the priority class only; the
/// local APIC takes it (its TPR's low nibble is kept when the class did not change).
/// Returns whether the priority moved (an interrupt it held may be deliverable now).
pub(super) fn store_shadow(vcpu: &impl ArchVcpu, platform: &mut Platform) -> bool {
    match vcpu.tpr_shadow() {
        Some(class) if cr8(platform) != class => {
            platform.lapic_mut().set_tpr(class << 4);
            true
        }
        _ => false,
    }
}

/// MOV r, CR8.
pub(super) fn read(platform: &Platform) -> u64 {
    cr8(platform) as u64
}

/// MOV CR8, r: bits 63:4 are reserved, a 1 there is #GP(0) (SDM Vol 3A 2.5).
pub(super) fn write(platform: &mut Platform, value: u64) -> Result<(), Event> {
    if value > 15 {
        return Err(Event::gp(0));
    }
    platform.lapic_mut().set_tpr((value as u8) << 4);
    Ok(())
}

fn cr8(platform: &Platform) -> u8 {
    platform.lapic().tpr() >> 4
}
