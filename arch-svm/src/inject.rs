//! Event injection through EVENTINJ (APM Vol 2 15.20), and re-injection of an event
//! whose delivery an exit interrupted (APM Vol 2 15.7.2).

use crate::vmcb::bits::event_inj::{
    ERROR_CODE_SHIFT, EV, TYPE_EXCEPTION, TYPE_INTR, TYPE_NMI, VALID,
};
use crate::vmcb::ControlArea;
use vmm_core::vcpu::Event;

/// The NMI's vector, which EVENTINJ wants even though the type says it all.
const NMI_VECTOR: u64 = 2;

/// The EVENTINJ value that delivers `ev`. In real mode (`protected` false) exceptions
/// push no error code (APM Vol 2 8.2), so it is dropped.
pub fn encode(ev: Event, protected: bool) -> u64 {
    match ev {
        Event::Exception { vector, error_code } => match error_code {
            Some(code) if protected => {
                VALID | TYPE_EXCEPTION | EV | vector as u64 | ((code as u64) << ERROR_CODE_SHIFT)
            }
            _ => VALID | TYPE_EXCEPTION | vector as u64,
        },
        Event::Interrupt(v) => VALID | TYPE_INTR | v as u64,
        Event::Nmi => VALID | TYPE_NMI | NMI_VECTOR,
    }
}

/// Whether an event is queued for the next VMRUN.
pub fn pending(c: &ControlArea) -> bool {
    c.event_inj & VALID != 0
}

/// Queues again the event whose delivery the last exit interrupted (EXITINTINFO has
/// EVENTINJ's format), unless another event is queued already.
pub fn redeliver_interrupted(c: &mut ControlArea) {
    if c.exit_int_info & VALID != 0 && !pending(c) {
        c.event_inj = c.exit_int_info;
    }
}
