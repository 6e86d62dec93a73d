//! The guest's device memory: the local APIC page (xAPIC mode, at the address in
//! IA32_APIC_BASE) and the IOAPIC page at 0xFEC00000, on a [`Bus`] like the ports.
//! Neither is mapped in the nested page tables, so every access exits and
//! [`crate::mmio::emulate`] brings it here. Registers are 32 bits wide: a narrower read
//! takes the bytes from the register, a wider access is split into dwords.

use super::bus::{Bus, Range, Width};
use super::{DeviceId, Now, Platform};
use crate::addr::GuestPhys;
use crate::devices::ioapic::DEFAULT_BASE as IOAPIC_BASE;
use crate::devices::lapic::ApicMode;
use crate::mmio::MmioBus;
use crate::operand::size_mask;

const PAGE: u64 = 0x1000;

/// The device pages as the local APIC's mode and base last put them: rebuilt only when
/// those change, not on every access.
#[derive(Clone, Debug, Default)]
pub struct DevicePages {
    key: Option<(ApicMode, u64)>,
    bus: Bus<DeviceId, 2>,
}

impl Platform {
    /// The device pages where they are now: the guest moves the local APIC's (or turns
    /// it into x2APIC mode, which has none) with IA32_APIC_BASE. Where the guest puts it
    /// over the IOAPIC's, the local APIC answers.
    fn mmio_map(&mut self) -> &Bus<DeviceId, 2> {
        let key = (self.lapic().mode(), self.lapic().base_address());
        if self.device_pages.key != Some(key) {
            let mut bus = Bus::new();
            if key.0 == ApicMode::XApic {
                let _ = bus.insert(Range::new(key.1, PAGE, DeviceId::Lapic, Width::Any));
            }
            // Refused only when the local APIC's page covers it.
            let _ = bus.insert(Range::new(IOAPIC_BASE, PAGE, DeviceId::Ioapic, Width::Any));
            self.device_pages = DevicePages {
                key: Some(key),
                bus,
            };
        }
        &self.device_pages.bus
    }
}

/// The platform's device memory at one moment of guest time.
pub struct DeviceMemory<'a> {
    pub platform: &'a mut Platform,
    pub now: Now,
}

impl DeviceMemory<'_> {
    /// The device and register offset of the dword at `gpa`.
    fn register(&mut self, gpa: u64) -> Option<(DeviceId, u64)> {
        let hit = self.platform.mmio_map().find(gpa & !3, 4)?;
        Some((hit.id, hit.offset))
    }

    fn read32(&mut self, gpa: u64) -> Option<u32> {
        let (id, offset) = self.register(gpa)?;
        Some(self.platform.device(id).read(offset, 4, self.now) as u32)
    }

    /// A dword the guest wrote to register `offset` of its local APIC's page, in xAPIC
    /// mode (the page is the APIC's there, whatever else it covers: [`Platform::mmio_map`]
    /// puts it first); elsewhere nothing takes it, as the map would not. Straight to the
    /// device: the map's search cost about 45 instructions of every APIC-write exit.
    pub(crate) fn write_apic32(&mut self, offset: u32, v: u32) {
        if self.platform.lapic().mode() == ApicMode::XApic {
            self.platform.device_write_call(
                DeviceId::Lapic,
                u64::from(offset & 0xffc),
                4,
                v.into(),
                self.now,
            );
        }
    }

    /// The dword at `gpa` written whole: whether a device took it.
    pub(crate) fn write32(&mut self, gpa: u64, v: u32) -> bool {
        let Some((id, offset)) = self.register(gpa) else {
            return false;
        };
        self.platform
            .device_write_call(id, offset, 4, v as u64, self.now);
        true
    }
}

impl MmioBus for DeviceMemory<'_> {
    fn read(&mut self, gpa: GuestPhys, size: u8) -> Option<u64> {
        let a = gpa.0;
        if size == 8 {
            let lo = self.read32(a)? as u64;
            let hi = self.read32(a + 4)? as u64;
            return Some(lo | hi << 32);
        }
        let v = self.read32(a)? as u64 >> (8 * (a & 3));
        Some(v & size_mask(size.min(4)))
    }

    fn write(&mut self, gpa: GuestPhys, size: u8, value: u64) -> bool {
        let a = gpa.0;
        match size {
            8 => self.write32(a, value as u32) && self.write32(a + 4, (value >> 32) as u32),
            4 => self.write32(a, value as u32),
            // Sub-dword writes to APIC registers are undefined on hardware; merge them
            // into the register's current value.
            _ => {
                let Some(old) = self.read32(a) else {
                    return false;
                };
                let shift = 8 * (a & 3);
                let m = size_mask(size) << shift;
                let new = ((old as u64 & !m) | ((value << shift) & m)) as u32;
                self.write32(a, new)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apic_and_ioapic_pages_answer_others_do_not() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 1);
        let mut m = DeviceMemory {
            platform: &mut p,
            now: Now { ns: 0, tsc: 0 },
        };
        // LAPIC version register (0x30): version 0x14 in the low byte.
        assert_eq!(
            m.read(GuestPhys(0xfee0_0030), 4).map(|v| v & 0xff),
            Some(0x14)
        );
        assert_eq!(m.read(GuestPhys(0xfee0_0030), 1), Some(0x14));
        // TPR write and read back.
        assert!(m.write(GuestPhys(0xfee0_0080), 4, 0x50));
        assert_eq!(m.read(GuestPhys(0xfee0_0080), 4), Some(0x50));
        // IOAPIC version through IOREGSEL/IOWIN: 24 entries (max index 23).
        assert!(m.write(GuestPhys(0xfec0_0000), 4, 1));
        assert_eq!(
            m.read(GuestPhys(0xfec0_0010), 4).map(|v| (v >> 16) & 0xff),
            Some(23)
        );
        assert_eq!(m.read(GuestPhys(0xfed0_0000), 4), None, "no HPET");
        assert!(!m.write(GuestPhys(0xfed0_0000), 4, 0));
    }

    #[test]
    fn the_device_pages_follow_the_apic_base_and_mode() {
        use crate::devices::lapic::{BASE_ENABLE, BASE_EXTD};
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 1);
        let now = Now { ns: 0, tsc: 0 };
        let version = |p: &mut Platform, at: u64| {
            let mut m = DeviceMemory { platform: p, now };
            m.read(GuestPhys(at + 0x30), 4).map(|v| v & 0xff)
        };
        assert_eq!(version(&mut p, 0xfee0_0000), Some(0x14));
        // The guest moves its local APIC: the old page goes quiet, the new one answers.
        p.lapic_mut()
            .set_apic_base(0xfed0_0000 | BASE_ENABLE)
            .unwrap();
        assert_eq!(version(&mut p, 0xfee0_0000), None);
        assert_eq!(version(&mut p, 0xfed0_0000), Some(0x14));
        // x2APIC mode has no page at all.
        p.lapic_mut()
            .set_apic_base(0xfed0_0000 | BASE_ENABLE | BASE_EXTD)
            .unwrap();
        assert_eq!(version(&mut p, 0xfed0_0000), None);
    }
}
