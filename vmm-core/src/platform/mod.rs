//! The PC a guest sees: its devices, the wires between them, and guest time.
//!
//! One `Platform` per VM, with a local APIC per vCPU ([`cpus`]). The devices are the bus-independent models
//! of [`crate::devices`], each a [`bus::Device`]; this module maps ports ([`ports`]) and
//! device memory ([`mmio`]) to them through [`bus::Bus`] tables, acts on what their
//! accesses did ([`bus::DeviceEffect`]), routes interrupt lines (ISA IRQ n to the PIC pair and to IOAPIC
//! pin n, IRQ0 to pin 2 as on PCs and in the MP table), routes interrupt messages (IPIs,
//! IOAPIC deliveries) to the vCPUs they name, and picks the interrupt a vCPU takes next:
//! its local APIC's, or the PIC's while its APIC passes it through (LINT0 in ExtINT
//! mode, or the APIC disabled).
//!
//! Device accesses act for the current vCPU ([`Platform::select`]): its local APIC is the
//! one at the APIC's page and MSRs, and its IPIs come from it.
//!
//! Time: devices compute their state from guest time in nanoseconds, which is host
//! time (the TSC, calibrated at boot); the guest's TSC is the host's.

pub mod bus;
pub mod cpus;
pub mod mmio;
pub mod ports;

use crate::devices::acpi_pm::{AcpiPm, PmTimer};
use crate::devices::fw_cfg::FwCfg;
use crate::devices::ioapic::{Delivery, DeliveryMode, IoApic};
use crate::devices::lapic::{
    ApicEffect, Ipi, IpiMode, LocalApic, Shorthand, MSR_APIC_BASE, MSR_TSC_DEADLINE,
    X2APIC_MSR_BASE, X2APIC_MSR_LAST,
};
use crate::devices::legacy::Legacy;
use crate::devices::pci::PciConfig;
use crate::devices::pic::PicPair;
use crate::devices::pit::Pit;
use crate::devices::rtc::Rtc;
use crate::devices::uart16550::Uart16550;
use crate::vcpu::Event;
use bus::{Bus, Device, DeviceEffect};
use cpus::{CpuMask, Cpus, RunState};
use ports::{DebugExit, PORT_RANGES};

/// Above every vCPU's APIC ID (0 to [`crate::vm::MAX_GUEST_VCPUS`] - 1), as the MP
/// specification asks of an I/O APIC's ID.
pub const IOAPIC_ID: u8 = crate::vm::MAX_GUEST_VCPUS as u8;
/// The APIC timer's input clock: 1 GHz, so one tick is one nanosecond before the divider.
pub const APIC_TIMER_HZ: u64 = 1_000_000_000;
const COM1_IRQ: u8 = 4;

/// A moment of guest time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub ns: u64,
    pub tsc: u64,
}

/// What the guest did through a device that concerns the whole VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformEffect {
    None,
    /// Debug-exit port: the guest ends with this status.
    Exit(u32),
    /// The reset line (i8042, port 0x92, 0xCF9): the guest's machine resets.
    Reset,
    /// ACPI S5 (soft off) through PM1a_CNT.
    PowerOff,
}

/// The devices on the port and memory buses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceId {
    Com1,
    DebugExit,
    Pit,
    Pic,
    Rtc,
    Legacy,
    AcpiPm,
    PmTimer,
    Pci,
    Lapic,
    Ioapic,
    FwCfg,
}

// `DeviceId::ALL[id as usize] == id`: a set of devices is a bit mask by discriminant.
const _: () = {
    let mut i = 0;
    while i < DeviceId::ALL.len() {
        assert!(DeviceId::ALL[i] as usize == i);
        i += 1;
    }
};

impl DeviceId {
    /// Whether a write to it can start or stop a timer or move an interrupt by itself:
    /// the timers and the interrupt controllers. The other devices reach interrupts only
    /// through their IRQ lines ([`Platform::set_isa_irq`] counts those that move).
    fn drives_interrupts(self) -> bool {
        matches!(
            self,
            DeviceId::Pit | DeviceId::Pic | DeviceId::Rtc | DeviceId::Lapic | DeviceId::Ioapic
        )
    }

    pub const ALL: [DeviceId; 12] = [
        DeviceId::Com1,
        DeviceId::DebugExit,
        DeviceId::Pit,
        DeviceId::Pic,
        DeviceId::Rtc,
        DeviceId::Legacy,
        DeviceId::AcpiPm,
        DeviceId::PmTimer,
        DeviceId::Pci,
        DeviceId::Lapic,
        DeviceId::Ioapic,
        DeviceId::FwCfg,
    ];
}

/// Where the current vCPU's next injected interrupt comes from ([`Platform::next_interrupt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// The local APIC's highest deliverable vector.
    Apic(u8),
    /// The PIC, through the local APIC's LINT0 in ExtINT mode.
    Pic,
}

pub struct Platform {
    pub com1: Uart16550,
    pub pic: PicPair,
    pub pit: Pit,
    pub rtc: Rtc,
    pub legacy: Legacy,
    pub pci: PciConfig,
    /// Each vCPU's local APIC, NMI latch and start-up state.
    pub cpus: Cpus,
    /// The vCPU whose accesses the platform takes now.
    cur: usize,
    /// vCPUs other than the current one that got an interrupt, an NMI, an INIT or a SIPI
    /// since [`Platform::take_kicks`]: the current one should make way for them.
    kicks: CpuMask,
    /// The vCPUs the current host CPU runs (all of them unless the guest's vCPUs are
    /// spread over several host CPUs): kicks for the others are another CPU's business
    /// ([`Platform::take_remote_kicks`]).
    local: CpuMask,
    pub ioapic: IoApic,
    pub acpi_pm: AcpiPm,
    pm_timer: PmTimer,
    debug_exit: DebugExit,
    pub fw_cfg: FwCfg,
    /// Which device answers which port.
    ports: Bus<DeviceId, PORT_RANGES>,
    /// ISA IRQ lines as the devices drive them (bit n = IRQ n).
    lines: u16,
    /// Where the local APIC's and the IOAPIC's pages are ([`mmio::DevicePages`]).
    device_pages: mmio::DevicePages,
    /// Changes to interrupt or timer state so far (wrapping): the dispatcher's test for
    /// "this exit changed nothing it must act on", see [`Platform::changes`].
    changes: u32,
    /// How often timer state may have changed (wrapping), see [`Platform::timer_changes`].
    timer_changes: u32,
}

impl Platform {
    /// A PC with `ram` bytes of memory and `vcpus` CPUs whose TSC runs at `tsc_hz`; the
    /// RTC starts at `epoch_seconds` (Unix time).
    pub fn new(ram: u64, tsc_hz: u64, epoch_seconds: u64, vcpus: u8) -> Self {
        let acpi_pm = AcpiPm::default();
        Platform {
            com1: Uart16550::new(),
            pic: PicPair::new(),
            pit: Pit::new(),
            rtc: Rtc::new(epoch_seconds, ram),
            legacy: Legacy::new(),
            pci: PciConfig::new(),
            cpus: Cpus::new(vcpus, tsc_hz, APIC_TIMER_HZ),
            cur: 0,
            kicks: 0,
            local: CpuMask::MAX,
            ioapic: IoApic::new(IOAPIC_ID),
            ports: ports::pc_ports(&acpi_pm),
            acpi_pm,
            pm_timer: PmTimer,
            debug_exit: DebugExit,
            fw_cfg: FwCfg::new(ram),
            lines: 0,
            device_pages: mmio::DevicePages::default(),
            changes: 0,
            timer_changes: 0,
        }
    }

    /// Drives ISA IRQ line `irq` to `level`, through the PIC pair and the IOAPIC.
    ///
    /// Inlined up to the check that the line moves: every port access follows its
    /// device's line here, and almost always it stays put.
    #[inline(always)]
    pub fn set_isa_irq(&mut self, irq: u8, level: bool) {
        if (self.lines & (1u16 << irq) != 0) != level {
            self.move_isa_irq(irq, level);
        }
    }

    #[inline(never)]
    fn move_isa_irq(&mut self, irq: u8, level: bool) {
        let bit = 1u16 << irq;
        self.lines = (self.lines & !bit) | if level { bit } else { 0 };
        self.changed();
        self.pic.set_irq(irq, level);
        let pin = if irq == 0 { 2 } else { irq };
        if let Some(d) = self.ioapic.set_irq(pin, level) {
            self.deliver(d);
        }
    }

    /// An edge on an ISA IRQ line (the PIT's IRQ0).
    pub fn pulse_isa_irq(&mut self, irq: u8) {
        self.set_isa_irq(irq, true);
        self.set_isa_irq(irq, false);
    }

    /// The device behind `id`.
    fn device(&mut self, id: DeviceId) -> &mut dyn Device {
        match id {
            DeviceId::Com1 => &mut self.com1,
            DeviceId::DebugExit => &mut self.debug_exit,
            DeviceId::Pit => &mut self.pit,
            DeviceId::Pic => &mut self.pic,
            DeviceId::Rtc => &mut self.rtc,
            DeviceId::Legacy => &mut self.legacy,
            DeviceId::AcpiPm => &mut self.acpi_pm,
            DeviceId::PmTimer => &mut self.pm_timer,
            DeviceId::Pci => &mut self.pci,
            DeviceId::Lapic => &mut self.cpus.get_mut(self.cur).lapic,
            DeviceId::Ioapic => &mut self.ioapic,
            DeviceId::FwCfg => &mut self.fw_cfg,
        }
    }

    /// [`Platform::device_write`] as a call, for device memory, whose path it kept
    /// shorter so (`cargo janus bench exits`: an MMIO write of the TPR 9 longer inlined).
    #[inline(never)]
    pub(super) fn device_write_call(
        &mut self,
        id: DeviceId,
        offset: u64,
        size: u8,
        value: u64,
        now: Now,
    ) -> PlatformEffect {
        self.device_write(id, offset, size, value, now)
    }

    /// A write to device `id`'s register at `offset`, and what it did to the machine. Every
    /// device write (ports, device memory) comes through here; one to a timer or an
    /// interrupt controller counts as a change ([`Platform::changes`]). Inlined into its
    /// three callers: a call's frame and argument moves cost more than its own work.
    #[inline(always)]
    fn device_write(
        &mut self,
        id: DeviceId,
        offset: u64,
        size: u8,
        value: u64,
        now: Now,
    ) -> PlatformEffect {
        if id == DeviceId::Pit
            || (id == DeviceId::Lapic && crate::devices::lapic::timer_register(offset))
        {
            self.timers_changed();
        } else if id.drives_interrupts() {
            self.changed();
        }
        let e = self.device(id).write(offset, size, value, now);
        self.apply(e)
    }

    /// Something changed that the dispatcher must follow ([`Platform::changes`]); also
    /// said by the dispatcher for a port access made in place, whose change it takes
    /// after the access ([`crate::in_place::port_io`]).
    pub(crate) fn changed(&mut self) {
        self.changes = self.changes.wrapping_add(1);
    }

    /// A change that may move when a timer next fires (a change of any kind too).
    fn timers_changed(&mut self) {
        self.changed();
        self.timer_changes = self.timer_changes.wrapping_add(1);
    }

    /// How often timer state may have changed (wrapping): a write to the PIT or to a
    /// local APIC's timer registers ([`crate::devices::lapic::timer_register`]), any platform MSR write
    /// (the TSC-deadline timer, the APIC base, x2APIC registers), an INIT. While it stays
    /// as it was and the next timer event is not due, the dispatcher need not poll the
    /// timers or arm its exit timers again after an exit that changed only interrupt
    /// state (an EOI, a TPR write).
    pub fn timer_changes(&self) -> u32 {
        self.timer_changes
    }

    /// How often interrupt or timer state may have changed (wrapping): a write to a timer
    /// or an interrupt controller, an IRQ line that moved, an interrupt delivered, a
    /// platform MSR written. An exit that leaves it as it was (a device read; a byte to a
    /// UART whose interrupt line stays where it was) leaves the timers, the interrupt the
    /// guest may take and the exit timers as they were, and the dispatcher need not bring
    /// them up to date after it.
    pub fn changes(&self) -> u32 {
        self.changes
    }

    /// Inlined for its common case, a write that did nothing beyond its device.
    #[inline(always)]
    fn apply(&mut self, e: DeviceEffect) -> PlatformEffect {
        if e == DeviceEffect::None {
            return PlatformEffect::None;
        }
        self.apply_effect(e)
    }

    /// [`Platform::apply`] for an effect beyond the device.
    fn apply_effect(&mut self, e: DeviceEffect) -> PlatformEffect {
        self.changed();
        match e {
            DeviceEffect::None => PlatformEffect::None,
            DeviceEffect::Exit(status) => PlatformEffect::Exit(status),
            DeviceEffect::Reset => PlatformEffect::Reset,
            DeviceEffect::PowerOff => PlatformEffect::PowerOff,
            DeviceEffect::Apic(e) => {
                self.apic_effect(e);
                PlatformEffect::None
            }
            DeviceEffect::Deliver(d) => {
                self.deliver(d);
                PlatformEffect::None
            }
        }
    }

    /// After an access to device `id`, follows the interrupt lines it drives. Inlined:
    /// usually the line stays put, and the call's frame cost more than that check.
    #[inline(always)]
    fn sync_lines(&mut self, id: DeviceId) {
        match id {
            DeviceId::Com1 => self.sync_com1_irq(),
            DeviceId::Legacy => {
                let (k, m) = (self.legacy.irq1_level(), self.legacy.irq12_level());
                self.set_isa_irq(1, k);
                self.set_isa_irq(12, m);
            }
            _ => {}
        }
    }

    /// An IOAPIC message: to the vCPUs its destination names.
    fn deliver(&mut self, d: Delivery) {
        let to = self
            .cpus
            .targets(self.cur, Shorthand::Destination, d.dest as u32, d.logical);
        let mode = match d.mode {
            DeliveryMode::Fixed => IpiMode::Fixed,
            DeliveryMode::LowestPriority => IpiMode::LowestPriority,
            DeliveryMode::Nmi => IpiMode::Nmi,
            DeliveryMode::Init => IpiMode::Init,
            // ExtINT: the PIC's own output reaches the CPU through LINT0 / pass-through.
            DeliveryMode::ExtInt | DeliveryMode::Smi => return,
        };
        self.signal(to, mode, d.vector, d.level);
    }

    /// Acts on what a local APIC access did.
    pub fn apic_effect(&mut self, e: ApicEffect) {
        match e {
            ApicEffect::None => {}
            ApicEffect::Eoi { vector, level } => {
                if level {
                    if let Some(d) = self.ioapic.eoi(vector) {
                        self.deliver(d);
                    }
                }
            }
            ApicEffect::Ipi(ipi) => self.ipi(ipi),
        }
    }

    /// The current vCPU's EOI of level-triggered `vector`, which its CPU carried out in
    /// the local APIC's register page (virtual-interrupt delivery, [`VmExit::ApicEoi`]):
    /// the IOAPIC hears of it as of any EOI of a level-triggered vector.
    ///
    /// [`VmExit::ApicEoi`]: crate::exit::VmExit::ApicEoi
    pub fn virtual_eoi(&mut self, vector: u8) {
        self.apic_effect(ApicEffect::Eoi {
            vector,
            level: true,
        });
    }

    /// An IPI from the current vCPU (SDM Vol 3A 11.6.1, the ICR).
    fn ipi(&mut self, ipi: Ipi) {
        let to = self
            .cpus
            .targets(self.cur, ipi.shorthand, ipi.dest, ipi.logical);
        self.signal(to, ipi.mode, ipi.vector, ipi.level);
    }

    /// Delivers an interrupt message in `mode` to the vCPUs of `to`.
    fn signal(&mut self, to: CpuMask, mode: IpiMode, vector: u8, level: bool) {
        let to = match mode {
            IpiMode::LowestPriority => self.cpus.lowest_priority(to),
            _ => to,
        };
        for i in (0..self.cpus.len()).filter(|i| to & (1 << i) != 0) {
            let cpu = self.cpus.get_mut(i);
            match mode {
                IpiMode::Fixed | IpiMode::LowestPriority => cpu.lapic.accept(vector, level),
                IpiMode::Nmi => cpu.nmi_pending = true,
                IpiMode::Init => {
                    cpu.lapic.init();
                    cpu.run = cpu.run.init();
                }
                IpiMode::Startup => cpu.run = cpu.run.sipi(vector),
                // No SMM in a guest: an SMI has nowhere to go.
                IpiMode::Smi => {}
            }
        }
        // An INIT stops its target at once, the sender too when it is one of them; it
        // reset the targets' timers.
        let me = if mode == IpiMode::Init {
            self.timers_changed();
            0
        } else {
            1 << self.cur
        };
        self.kicks |= to & !me;
    }

    /// Makes vCPU `i` the one whose accesses the platform takes.
    pub fn select(&mut self, i: usize) {
        self.cur = i.min(self.cpus.len() - 1);
    }

    /// The vCPU whose accesses the platform takes.
    pub fn current(&self) -> usize {
        self.cur
    }

    /// The current vCPU's local APIC.
    pub fn lapic(&self) -> &LocalApic {
        &self.cpus.get(self.cur).lapic
    }

    pub fn lapic_mut(&mut self) -> &mut LocalApic {
        &mut self.cpus.get_mut(self.cur).lapic
    }

    /// Whether an NMI waits for the current vCPU.
    pub fn nmi_pending(&self) -> bool {
        self.cpus.get(self.cur).nmi_pending
    }

    /// Takes the NMI waiting for the current vCPU, if one is.
    pub fn take_nmi(&mut self) -> bool {
        core::mem::take(&mut self.cpus.get_mut(self.cur).nmi_pending)
    }

    /// The vCPUs of this host CPU (other than the current one) that got something to act
    /// on since the last call: an interrupt, an NMI, an INIT or a SIPI.
    pub fn take_kicks(&mut self) -> CpuMask {
        let k = self.kicks & self.local;
        self.kicks &= !self.local;
        k
    }

    /// The kicked vCPUs that other host CPUs run: each needs its CPU interrupted.
    pub fn take_remote_kicks(&mut self) -> CpuMask {
        let k = self.kicks & !self.local;
        self.kicks &= self.local;
        k
    }

    /// Says which vCPUs the host CPU now using the platform runs (`CpuMask::MAX`: all).
    pub fn set_local(&mut self, local: CpuMask) {
        self.local = local;
    }

    /// How many vCPUs the host CPU now using the platform runs.
    pub fn local_vcpus(&self) -> usize {
        (0..self.cpus.len())
            .filter(|&i| self.local & 1 << i != 0)
            .count()
    }

    /// Where vCPU `i` stands in the start-up protocol.
    pub fn run_state(&self, i: usize) -> RunState {
        self.cpus.get(i).run
    }

    /// Records what the scheduler made of vCPU `i`'s INIT or SIPI.
    pub fn set_run_state(&mut self, i: usize, run: RunState) {
        self.cpus.get_mut(i).run = run;
    }

    /// RDMSR of an MSR the platform owns (APIC base, x2APIC registers, TSC deadline):
    /// `None` when it is not one of them.
    pub fn read_msr(&mut self, msr: u32, now: Now) -> Option<Result<u64, Event>> {
        Some(match msr {
            MSR_APIC_BASE => Ok(self.lapic().apic_base()),
            MSR_TSC_DEADLINE => Ok(self.lapic().read_tsc_deadline()),
            X2APIC_MSR_BASE..=X2APIC_MSR_LAST => {
                self.lapic_mut().read_msr(msr, now.ns).ok_or(Event::gp(0))
            }
            _ => return None,
        })
    }

    /// WRMSR of an MSR the platform owns; `None` when it is not one of them.
    pub fn write_msr(&mut self, msr: u32, value: u64, now: Now) -> Option<Result<(), Event>> {
        self.timers_changed();
        Some(match msr {
            MSR_APIC_BASE => self
                .lapic_mut()
                .set_apic_base(value)
                .map_err(|()| Event::gp(0)),
            MSR_TSC_DEADLINE => {
                self.lapic_mut().write_tsc_deadline(value, now.tsc);
                Ok(())
            }
            X2APIC_MSR_BASE..=X2APIC_MSR_LAST => {
                match self.lapic_mut().write_msr(msr, value, now.ns) {
                    Ok(e) => {
                        self.apic_effect(e);
                        Ok(())
                    }
                    Err(()) => Err(Event::gp(0)),
                }
            }
            _ => return None,
        })
    }

    /// Follows COM1's interrupt output onto IRQ 4.
    pub fn sync_com1_irq(&mut self) {
        let level = self.com1.irq_pending();
        self.set_isa_irq(COM1_IRQ, level);
    }

    /// Brings the timers up to `now`: PIT ticks become IRQ0 edges, the APIC timers fire
    /// (another vCPU's timer interrupt kicks it, as an IPI would).
    pub fn update(&mut self, now: Now) {
        if self.pit.irq0_edges(now.ns) > 0 {
            self.pulse_isa_irq(0);
        }
        let cur = self.cur;
        for (i, cpu) in self.cpus.iter_mut().enumerate() {
            if cpu.lapic.poll_timer(now.ns, now.tsc) && i != cur {
                self.kicks |= 1 << i;
            }
        }
    }

    /// The guest time at which a device next needs [`Platform::update`], if any.
    pub fn next_event_ns(&self, now: Now) -> Option<u64> {
        let pit = self.pit.next_irq0_ns(now.ns);
        let apic = self
            .cpus
            .iter()
            .filter_map(|c| c.lapic.next_timer_ns(now.ns))
            .min();
        match (pit, apic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether an external interrupt is waiting for the current vCPU that Janus must
    /// inject: the local APIC's, unless a register page is attached (its CPU then takes
    /// them itself, [`LocalApic::attach_page`]), or the PIC's through LINT0.
    pub fn interrupt_pending(&self) -> bool {
        self.next_interrupt().is_some()
    }

    /// The current vCPU's next interrupt for Janus to inject ([`Platform::interrupt_pending`]),
    /// for [`Platform::acknowledge`]: found once where an offer needs it twice.
    #[inline]
    pub fn next_interrupt(&self) -> Option<Pending> {
        let lapic = self.lapic();
        if !lapic.page_attached() {
            if let Some(v) = lapic.pending_vector() {
                return Some(Pending::Apic(v));
            }
        }
        (lapic.pic_passthrough() && self.pic.pending()).then_some(Pending::Pic)
    }

    /// Takes `p` ([`Platform::next_interrupt`]) for delivery (the INTA cycle): its vector.
    pub fn acknowledge(&mut self, p: Pending) -> Option<u8> {
        match p {
            Pending::Apic(v) => {
                self.lapic_mut().acknowledge(v);
                Some(v)
            }
            Pending::Pic => self.pic.acknowledge(),
        }
    }

    /// Whether vCPU `i`, halted, wakes: an NMI waits for it, or an external interrupt
    /// and its interrupts are on (`interrupts_on`, RFLAGS.IF: with IF clear only an NMI,
    /// an INIT or a SIPI ends HLT, SDM Vol 2A HLT).
    pub fn wakes(&self, i: usize, interrupts_on: bool) -> bool {
        self.cpus.get(i).nmi_pending || (interrupts_on && self.interrupt_pending_on(i))
    }

    fn interrupt_pending_on(&self, i: usize) -> bool {
        let lapic = &self.cpus.get(i).lapic;
        lapic.pending_vector().is_some() || (lapic.pic_passthrough() && self.pic.pending())
    }

    /// Takes the current vCPU's next external interrupt for Janus to inject (the INTA
    /// cycle; not the local APIC's while a register page is attached): its vector.
    pub fn acknowledge_interrupt(&mut self) -> Option<u8> {
        let p = self.next_interrupt()?;
        self.acknowledge(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Now = Now {
        ns: 1_000_000,
        tsc: 1_000_000,
    };

    fn linux_like_pic(p: &mut Platform) {
        for (port, v) in [
            (0x20, 0x11),
            (0x21, 0x30),
            (0x21, 4),
            (0x21, 1),
            (0xa0, 0x11),
            (0xa1, 0x38),
            (0xa1, 2),
            (0xa1, 1),
        ] {
            p.pic.write(port, v);
        }
        p.pic.write(0x21, 0xfe); // only IRQ0
        p.pic.write(0xa1, 0xff);
    }

    #[test]
    fn only_what_can_move_a_timer_counts_as_a_timer_change() {
        use crate::addr::GuestPhys;
        use crate::mmio::MmioBus;
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 1);
        let lapic = |p: &mut Platform, reg: u64, v: u32| {
            let mut m = mmio::DeviceMemory {
                platform: p,
                now: T0,
            };
            assert!(m.write(GuestPhys(0xfee0_0000 + reg), 4, u64::from(v)));
        };
        lapic(&mut p, 0xf0, 0x1ff); // software-enabled
                                    // (register, value, a timer change)
        for (reg, v, timer) in [
            (0x080, 0x20, false),  // TPR
            (0x0b0, 0, false),     // EOI
            (0x350, 0x700, false), // LINT0
            (0x0f0, 0x1ff, true),  // SVR
            (0x320, 0x40, true),   // LVT timer
            (0x380, 1000, true),   // initial count
            (0x3e0, 0xb, true),    // divide configuration
        ] {
            let (any, timers) = (p.changes(), p.timer_changes());
            lapic(&mut p, reg, v);
            assert_ne!(p.changes(), any, "{reg:#x} is a change");
            assert_eq!(p.timer_changes() != timers, timer, "{reg:#x}");
        }
        let timers = p.timer_changes();
        p.port_write(0x43, 1, 0x34, T0);
        assert_ne!(p.timer_changes(), timers, "the PIT");
        let timers = p.timer_changes();
        let _ = p.write_msr(0x6e0, 5, T0);
        assert_ne!(p.timer_changes(), timers, "an MSR (the TSC deadline)");
        let timers = p.timer_changes();
        p.signal(1, IpiMode::Init, 0, false);
        assert_ne!(p.timer_changes(), timers, "an INIT resets the local APIC");
    }

    #[test]
    fn pit_ticks_reach_the_cpu_through_the_pic_while_the_apic_is_off() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 1);
        linux_like_pic(&mut p);
        // PIT channel 0, mode 2, 1193 ticks (1 ms).
        p.pit.write(0x43, 0x34, T0.ns);
        p.pit.write(0x40, 0xa9, T0.ns);
        p.pit.write(0x40, 0x04, T0.ns);
        assert!(!p.interrupt_pending());
        let next = p.next_event_ns(T0).expect("the PIT schedules IRQ0");
        assert!(
            (next - T0.ns).abs_diff(1_000_000) < 2_000,
            "about 1 ms: {}",
            next - T0.ns
        );
        let later = Now {
            ns: next,
            tsc: next,
        };
        p.update(later);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), Some(0x30));
        assert!(!p.interrupt_pending(), "in service until EOI");
    }

    #[test]
    fn ioapic_routes_irq0_to_pin_2_and_the_apic_delivers() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 1);
        // APIC software-enabled, LINT0 masked (so the PIC is not passed through).
        p.lapic_mut().write_mmio(0xf0, 0x1ff, T0.ns);
        p.lapic_mut().write_mmio(0x350, 1 << 16, T0.ns);
        // IOAPIC pin 2 -> vector 0x31, edge, unmasked.
        p.ioapic.write_mmio(0x00, 0x10 + 2 * 2);
        p.ioapic.write_mmio(0x10, 0x31);
        p.ioapic.write_mmio(0x00, 0x10 + 2 * 2 + 1);
        p.ioapic.write_mmio(0x10, 0);
        p.pulse_isa_irq(0);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), Some(0x31));
        // EOI clears the in-service bit; nothing else pending.
        let e = p.lapic_mut().write_mmio(0xb0, 0, T0.ns);
        p.apic_effect(e);
        assert!(!p.interrupt_pending());
    }

    #[test]
    fn with_a_register_page_attached_the_cpu_takes_the_apics_interrupts_and_its_eoi_reaches_the_ioapic(
    ) {
        use crate::devices::apic_page::{ApicPage, PagePtr, IRR, ISR};
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 1);
        p.lapic_mut().write_mmio(0xf0, 0x1ff, T0.ns);
        p.lapic_mut().write_mmio(0x350, 1 << 16, T0.ns);
        // IOAPIC pin 9 -> vector 0x39, level-triggered, active high, unmasked.
        p.ioapic.write_mmio(0x00, 0x10 + 2 * 9);
        p.ioapic.write_mmio(0x10, 0x39 | 1 << 15);
        p.ioapic.write_mmio(0x00, 0x10 + 2 * 9 + 1);
        p.ioapic.write_mmio(0x10, 0);
        // SAFETY: zeroed memory is a valid page; it outlives its attachment (detached at
        // the end).
        let mut page: std::boxed::Box<ApicPage> =
            unsafe { std::boxed::Box::new_zeroed().assume_init() };
        // SAFETY: as above.
        let at = unsafe { PagePtr::new(core::ptr::NonNull::from(&mut *page)) };
        // SAFETY: as above; nothing else uses the page but the test's CPU below.
        unsafe { p.lapic_mut().attach_page(at) };
        p.set_isa_irq(9, true);
        // SAFETY: the guest is out: the model and the test's CPU take turns.
        let cpu = unsafe { at.get_mut() };
        assert_eq!(cpu.highest(IRR), Some(0x39), "requested in the page");
        assert!(
            !p.interrupt_pending(),
            "the CPU takes it: nothing to inject"
        );
        assert_eq!(p.acknowledge_interrupt(), None);
        assert!(p.wakes(0, true), "a halted vCPU wakes for it");
        // The CPU delivers it and the guest's EOI is carried out in the page.
        cpu.set_reg(IRR + 16, 0);
        cpu.set_reg(ISR + 16, 1 << (0x39 - 32));
        assert_eq!(p.lapic().ppr(), 0x30, "in service: the model sees the page");
        cpu.set_reg(ISR + 16, 0);
        let remote_irr = |p: &mut Platform| {
            p.ioapic.write_mmio(0x00, 0x10 + 2 * 9);
            u64::from(p.ioapic.read_mmio(0x10)) & crate::devices::ioapic::ENTRY_REMOTE_IRR != 0
        };
        assert!(remote_irr(&mut p), "the IOAPIC waits for the EOI");
        p.set_isa_irq(9, false);
        p.virtual_eoi(0x39);
        assert!(!remote_irr(&mut p), "the EOI reached it");
        p.lapic_mut().detach_page();
        assert_eq!(p.lapic().ppr(), 0, "the page's state came back");
    }

    #[test]
    fn uart_interrupt_follows_its_line() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 1);
        p.ioapic.write_mmio(0x00, 0x10 + 2 * 4);
        p.ioapic.write_mmio(0x10, 0x44);
        p.lapic_mut().write_mmio(0xf0, 0x1ff, T0.ns);
        p.lapic_mut().write_mmio(0x350, 1 << 16, T0.ns);
        p.com1.write(4, 0x08); // OUT2
        p.com1.write(1, 0x02); // THRE interrupt: the transmitter is empty
        p.sync_com1_irq();
        assert_eq!(p.acknowledge_interrupt(), Some(0x44));
        p.com1.read(2); // reading IIR clears THRE
        p.sync_com1_irq();
        assert_eq!(p.lines & (1 << 4), 0);
    }

    #[test]
    fn self_ipi_is_accepted() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 1);
        p.lapic_mut().write_mmio(0xf0, 0x1ff, T0.ns);
        let e = p.lapic_mut().write_mmio(0x300, (1 << 18) | 0x55, T0.ns);
        p.apic_effect(e);
        assert_eq!(p.acknowledge_interrupt(), Some(0x55));
    }

    fn enabled(p: &mut Platform) {
        for i in 0..p.cpus.len() {
            p.select(i);
            p.lapic_mut().write_mmio(0xf0, 0x1ff, T0.ns);
        }
        p.select(0);
    }

    /// ICR high then low, from the current vCPU.
    fn send(p: &mut Platform, dest: u32, low: u32) {
        p.lapic_mut().write_mmio(0x310, dest << 24, T0.ns);
        let e = p.lapic_mut().write_mmio(0x300, low, T0.ns);
        p.apic_effect(e);
    }

    #[test]
    fn a_fixed_ipi_reaches_the_other_vcpu_and_kicks_it() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 2);
        enabled(&mut p);
        send(&mut p, 1, 0x41);
        assert!(!p.interrupt_pending(), "not for the sender");
        assert_eq!(p.take_kicks(), 0b10);
        assert_eq!(p.take_kicks(), 0, "taken");
        assert!(p.wakes(1, true));
        p.select(1);
        assert_eq!(p.acknowledge_interrupt(), Some(0x41));
        // The answer goes back to CPU 0.
        send(&mut p, 0, 0x42);
        assert_eq!(p.take_kicks(), 0b01);
        p.select(0);
        assert_eq!(p.acknowledge_interrupt(), Some(0x42));
    }

    #[test]
    fn a_kick_for_a_vcpu_another_host_cpu_runs_is_that_cpus_business() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 3);
        enabled(&mut p);
        // This host CPU runs vCPUs 0 and 2; vCPU 1 runs elsewhere.
        p.set_local(0b101);
        send(&mut p, 1, 0x41);
        send(&mut p, 2, 0x42);
        assert_eq!(p.take_kicks(), 0b100, "only the local one makes way here");
        assert_eq!(
            p.take_remote_kicks(),
            0b010,
            "the remote one needs its CPU kicked"
        );
        assert_eq!((p.take_kicks(), p.take_remote_kicks()), (0, 0), "taken");
        // A remote kick left untaken stays for the next look, and vice versa.
        send(&mut p, 1, 0x43);
        assert_eq!(p.take_kicks(), 0);
        assert_eq!(p.take_remote_kicks(), 0b010);
    }

    #[test]
    fn init_and_sipi_through_the_icr_start_an_ap() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 3);
        enabled(&mut p);
        p.select(2);
        p.lapic_mut().write_mmio(0x80, 0x30, T0.ns); // a TPR that INIT must clear
        p.select(0);
        send(&mut p, 2, (1 << 14) | (5 << 8)); // INIT, assert
        send(&mut p, 2, 6 << 8 | 0x9a); // SIPI
        send(&mut p, 2, 6 << 8 | 0x10); // the second SIPI is ignored
        assert_eq!(p.run_state(2), RunState::Startup(0x9a));
        assert_eq!(p.run_state(1), RunState::WaitForSipi, "not addressed");
        assert_eq!(p.cpus.get(2).lapic.tpr(), 0, "INIT reset the APIC");
        assert_eq!(p.take_kicks(), 0b100);
        // An INIT to itself stops the sender's turn too.
        send(&mut p, 0, (1 << 14) | (5 << 8));
        assert_eq!(p.take_kicks(), 0b001);
        assert_eq!(p.run_state(0), RunState::Init);
    }

    #[test]
    fn an_nmi_ipi_waits_for_its_vcpu_only() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 2);
        enabled(&mut p);
        send(&mut p, 1, 4 << 8);
        assert!(!p.nmi_pending());
        p.select(1);
        assert!(p.nmi_pending());
        assert!(p.take_nmi() && !p.nmi_pending());
    }

    #[test]
    fn the_ioapic_routes_to_the_vcpu_its_entry_names() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 2);
        enabled(&mut p);
        for i in 0..2 {
            p.select(i);
            p.lapic_mut().write_mmio(0x350, 1 << 16, T0.ns); // LINT0 masked
        }
        p.select(0);
        // Pin 4 -> vector 0x44, physical destination APIC 1.
        p.ioapic.write_mmio(0x00, 0x10 + 2 * 4);
        p.ioapic.write_mmio(0x10, 0x44);
        p.ioapic.write_mmio(0x00, 0x10 + 2 * 4 + 1);
        p.ioapic.write_mmio(0x10, 1 << 24);
        p.set_isa_irq(4, true);
        assert!(!p.interrupt_pending());
        assert_eq!(p.take_kicks(), 0b10);
        p.select(1);
        assert_eq!(p.acknowledge_interrupt(), Some(0x44));
    }

    #[test]
    fn another_vcpus_timer_kicks_it() {
        let mut p = Platform::new(16 << 20, 1_000_000_000, 0, 2);
        enabled(&mut p);
        p.select(1);
        p.lapic_mut().write_mmio(0x3e0, 0xb, T0.ns); // divide by 1
        p.lapic_mut().write_mmio(0x320, 0x50, T0.ns); // one-shot, vector 0x50
        p.lapic_mut().write_mmio(0x380, 1000, T0.ns);
        p.select(0);
        assert_eq!(p.next_event_ns(T0), Some(T0.ns + 1000));
        let later = Now {
            ns: T0.ns + 1000,
            tsc: T0.tsc + 1000,
        };
        p.update(later);
        assert_eq!(p.take_kicks(), 0b10);
        assert!(p.wakes(1, true) && !p.wakes(0, true));
        assert!(!p.wakes(1, false), "with IF clear, only an NMI wakes it");
    }
}
