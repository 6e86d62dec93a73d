//! A VM: one guest's memory, devices, console and counters.

use crate::fetch::InsnCache;
use crate::memory::GuestMemory;
use crate::msr::GuestMsrs;
use crate::platform::{Now, Platform};
use crate::stats::ExitStats;
use arrayvec::{ArrayString, ArrayVec};
use core::fmt::{self, Write};

/// Where the VMM's console lines go (COM1 on the host; a buffer in tests).
pub type Printer = fn(fmt::Arguments<'_>);
/// Queues a guest's console line (`[NAME] text`) for the host console if the guest
/// `owner` has room there; `false` leaves it to the guest to try again later.
pub type LineSink = fn(owner: u8, name: &str, text: &str) -> bool;
/// The host's CPUID, `(leaf, subleaf) -> [eax, ebx, ecx, edx]`; the policy filters it.
pub type CpuidSource = fn(u32, u32) -> [u32; 4];

/// The host's time-stamp counter.
pub type TscSource = fn() -> u64;

/// What the host lends every VM: its console, its CPUID, its clock and its timer.
#[derive(Clone, Copy)]
pub struct HostHooks {
    pub printer: Printer,
    /// Guest console lines, within each guest's share of the host console: a guest that
    /// floods its UART waits for its own lines to go out, not the others.
    pub guest_line: LineSink,
    pub cpuid: CpuidSource,
    pub tsc: TscSource,
    /// The TSC's frequency (calibrated at boot).
    pub tsc_hz: fn() -> u64,
    /// Arms the host's timer to interrupt (and so make a running guest exit) after
    /// this many nanoseconds, or stops it.
    pub arm_timer: fn(Option<u64>),
    /// Lets a host interrupt that made the guest exit be taken.
    pub take_interrupts: fn(),
    /// Waits for the next host interrupt (the armed timer), or does other host work and
    /// returns early; the caller checks its guest's devices and calls again.
    pub idle: fn(),
    /// Host housekeeping between two entries (Janus sends queued console output);
    /// whether some is left: then at most [`crate::in_place::WHILE_HOST_WAITS`] exits of
    /// each kind are finished in place ([`crate::in_place`]) before one comes back to the dispatcher,
    /// so that the rest goes out between two entries.
    pub service: fn() -> bool,
}

impl HostHooks {
    /// A host that prints nothing, takes every console line, shows no CPUID leaf, keeps
    /// its TSC at 0 (1 GHz) and has no timer: for backends' host tests that lend their
    /// vCPU a VM ([`crate::in_place::lend`]).
    pub const NONE: HostHooks = HostHooks {
        printer: |_| {},
        guest_line: |_, _, _| true,
        cpuid: |_, _| [0; 4],
        tsc: || 0,
        tsc_hz: || 1_000_000_000,
        arm_timer: |_| {},
        take_interrupts: || {},
        idle: || {},
        service: || false,
    };
}

/// The RTC's wall-clock time when a guest starts: 2026-01-01 00:00:00 UTC. Fixed, so
/// that runs are reproducible; guests that need the real time get it from elsewhere.
pub const RTC_EPOCH: u64 = 1_767_225_600;

pub type Name = ArrayString<32>;

/// The most vCPUs a guest can have (`vcpus=`): APIC IDs 0 to 7, below the IOAPIC's.
pub const MAX_GUEST_VCPUS: usize = 8;
pub type Reason = ArrayString<160>;

/// How a guest's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestEnd {
    /// Through the debug-exit port or the EXIT hypercall.
    Exited(u32),
    TripleFault,
    /// HLT with interrupts disabled: nothing can ever wake it.
    Halted,
    /// The guest pulled its machine's reset line (i8042 command 0xFE, port 0x92 or
    /// 0xCF9): as Janus does not restart guests, its run ends here.
    Reset,
    /// The guest powered its machine off (ACPI S5): a clean end.
    PoweredOff,
    /// It lived as long as its `limit=` allows.
    TimeLimit,
    /// Janus could not go on with this guest (entry failure, unsupported exit, ...).
    Error(Reason),
}

impl GuestEnd {
    pub fn error(args: fmt::Arguments<'_>) -> GuestEnd {
        let mut r = Reason::new();
        // A reason longer than the buffer is cut short; the start says what went wrong.
        let _ = r.write_fmt(args);
        GuestEnd::Error(r)
    }
    pub fn succeeded(&self) -> bool {
        matches!(self, GuestEnd::Exited(0) | GuestEnd::PoweredOff)
    }
}

impl fmt::Display for GuestEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestEnd::Exited(s) => write!(f, "exit status {s}"),
            GuestEnd::TripleFault => write!(f, "triple fault"),
            GuestEnd::Halted => write!(f, "halted with interrupts off"),
            GuestEnd::Reset => write!(f, "reset"),
            GuestEnd::PoweredOff => write!(f, "powered off"),
            GuestEnd::TimeLimit => write!(f, "time limit reached"),
            GuestEnd::Error(r) => write!(f, "error: {r}"),
        }
    }
}

const LINE: usize = 200;

/// Nanoseconds per TSC tick at `tsc_hz`, in 32.32 fixed point: guest time is a multiply
/// away from the TSC, with no division on the path of an exit.
pub fn ns_per_tick(tsc_hz: u64) -> u64 {
    ((1_000_000_000u128 << 32) / tsc_hz.max(1) as u128) as u64
}

/// `ns` nanoseconds in TSC ticks: the inverse of [`ticks_to_ns`] (rounded up, so a
/// deadline in ticks is never before the one in ns).
pub fn ns_to_ticks(ns: u64, ns_per_tick: u64) -> u64 {
    ((ns as u128) << 32)
        .div_ceil(ns_per_tick.max(1) as u128)
        .min(u64::MAX as u128) as u64
}

/// `tsc` ticks in nanoseconds, with [`ns_per_tick`]'s factor: the one conversion guest
/// time and the scheduler share.
pub fn ticks_to_ns(tsc: u64, ns_per_tick: u64) -> u64 {
    ((tsc as u128 * ns_per_tick as u128) >> 32) as u64
}

/// [`Vm::armed`] for exit timers that are off: no device event and no slice end.
pub const NEVER_NS: u64 = u64::MAX;

pub struct Vm {
    pub name: Name,
    pub memory: GuestMemory,
    pub platform: Platform,
    /// The deadline the exit timers are armed for (guest ns), to avoid re-arming them:
    /// `Some(NEVER_NS)` when they are off; `None` when not known (a new slice, a host
    /// interrupt), which makes the next check arm them whatever is due.
    pub armed: Option<u64>,
    /// The vCPU executed HLT and waits for an interrupt (set by the HLT exit, taken by
    /// [`crate::dispatch::run_slice`]).
    pub halted: bool,
    /// The vCPU spins (a PAUSE exit) and gives its turn away (taken by `run_slice`).
    pub yielded: bool,
    /// Whether the guest was told about its first access where nothing answers.
    pub said_open_bus: bool,
    /// Nanoseconds per TSC tick, in 32.32 fixed point.
    ns_per_tick: u64,
    pub stats: ExitStats,
    /// Time this vCPU was ready to run while other guests had the CPU (the scheduler
    /// adds it; the `STEAL_TIME` hypercall reports it).
    pub steal: Steal,
    /// The guest's MSR values that live in no VMCS/VMCB field.
    pub msrs: GuestMsrs,
    /// The vCPU's last code page and decoded instructions (MMIO, CR and DR moves, next RIP
    /// without NRIP save).
    pub insn: InsnCache,
    pub host: HostHooks,
    /// Who this guest is to the host console ([`HostHooks::guest_line`]).
    pub console_owner: u8,
    line: ArrayVec<u8, LINE>,
    /// `line` is a whole line the host console had no room for yet: the guest's UART
    /// holds what follows (its transmitter reads busy) until it goes out.
    line_waits: bool,
    /// Lines handed to the host console so far (wrapping): [`Vm::lines_sent`].
    lines_sent: u32,
}

/// Steal time: how long, and how often, a vCPU that was ready to run waited while the
/// CPU ran other guests. A guest that times a device can tell from it whether its
/// measurement was disturbed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Steal {
    pub ns: u64,
    pub count: u64,
}

impl Steal {
    /// The vCPU waited `ns` for its turn.
    pub fn add(&mut self, ns: u64) {
        self.ns = self.ns.saturating_add(ns);
        self.count += 1;
    }
}

impl Vm {
    /// A VM with `vcpus` vCPUs (1 to [`MAX_GUEST_VCPUS`]).
    pub fn new(name: &str, memory: GuestMemory, host: HostHooks, vcpus: u8) -> Self {
        let mut n = Name::new();
        for c in name.chars() {
            if n.try_push(c).is_err() {
                break;
            }
        }
        let platform = Platform::new(memory.size(), (host.tsc_hz)(), RTC_EPOCH, vcpus);
        let ns_per_tick = ns_per_tick((host.tsc_hz)());
        Vm {
            name: n,
            memory,
            platform,
            armed: None,
            halted: false,
            yielded: false,
            said_open_bus: false,
            ns_per_tick,
            stats: ExitStats::default(),
            steal: Steal::default(),
            msrs: GuestMsrs::for_guest(host.cpuid),
            insn: InsnCache::default(),
            host,
            console_owner: 0,
            line: ArrayVec::new(),
            line_waits: false,
            lines_sent: 0,
        }
    }

    /// Guest time now.
    pub fn now(&self) -> Now {
        let tsc = (self.host.tsc)();
        // Fixed-point ns per tick, 32 fractional bits: a multiply, no division, on the
        // path of every exit.
        Now {
            ns: ticks_to_ns(tsc, self.ns_per_tick),
            tsc,
        }
    }

    /// The host TSC at guest time `ns` (which may be past).
    pub fn tsc_at(&self, now: Now, ns: u64) -> u64 {
        let ahead = ns.saturating_sub(now.ns);
        now.tsc.saturating_add(ns_to_ticks(ahead, self.ns_per_tick))
    }

    /// A line from the VMM about this guest: `janus: guest NAME: ...`.
    pub fn say(&self, args: fmt::Arguments<'_>) {
        (self.host.printer)(format_args!("janus: guest {}: {}\n", self.name, args));
    }

    /// A byte of guest console output; whole lines are printed as `[NAME] line`.
    /// Returns `false` when it was not taken: a line waits for room on the host console.
    pub fn console_byte(&mut self, b: u8) -> bool {
        if !self.send_line() {
            return false;
        }
        if self.add_byte(b) {
            self.line_waits = true;
            self.send_line();
        }
        true
    }

    /// Adds a byte to the line; whether the line is whole (a newline, or full).
    fn add_byte(&mut self, b: u8) -> bool {
        match b {
            b'\n' => true,
            b'\r' => false,
            _ => {
                // Control characters other than tab would garble the host console.
                let shown = if b == b'\t' || (0x20..0x7f).contains(&b) {
                    b
                } else {
                    b'?'
                };
                self.line.push(shown);
                self.line.is_full()
            }
        }
    }

    /// Takes what COM1 transmitted into the console, byte by byte while the host
    /// console has room for this guest's lines (the rest stays in the UART, whose
    /// transmitter then reads busy). Also sends a line that waited.
    ///
    /// Inlined up to the check that there is anything to do: it follows every OUT.
    #[inline(always)]
    pub fn drain_console(&mut self) {
        if self.line_waits || self.platform.com1.has_output() {
            self.drain_console_now();
        }
    }

    /// Whether a line of the guest's waits for room on the host console: the dispatcher
    /// tries it again after every exit until it goes (the guest polls its UART meanwhile,
    /// with nothing else due, maybe for ever).
    #[inline(always)]
    pub fn console_waits(&self) -> bool {
        self.line_waits
    }

    /// How many lines this guest has handed to the host console (wrapping): one handed
    /// over goes out when the host's housekeeping runs ([`HostHooks::service`], between
    /// the dispatcher's entries), so a port access made in place that sent one returns
    /// to the dispatcher ([`crate::in_place::port_io`]).
    #[inline(always)]
    pub fn lines_sent(&self) -> u32 {
        self.lines_sent
    }

    #[inline(never)]
    fn drain_console_now(&mut self) {
        let mut sent = false;
        while self.send_line() {
            match self.platform.com1.pop_output() {
                Some(b) => {
                    self.console_byte(b);
                    sent = true;
                }
                None => break,
            }
        }
        if sent {
            // The transmitter emptied: its interrupt rises now, not at the next access.
            self.platform.sync_com1_irq();
        }
    }

    /// Sends a whole line that waits; whether none waits any more.
    fn send_line(&mut self) -> bool {
        if !self.line_waits {
            return true;
        }
        if !self.line.is_empty() {
            // Only printable ASCII was pushed, so this cannot fail.
            let text = core::str::from_utf8(&self.line).unwrap_or("?");
            if !(self.host.guest_line)(self.console_owner, &self.name, text) {
                return false;
            }
            self.lines_sent = self.lines_sent.wrapping_add(1);
        }
        self.line.clear();
        self.line_waits = false;
        true
    }

    /// Prints what is left of the console (a line that waited, a partial line, what the
    /// UART still holds) when the guest ends, room or not: nothing is lost.
    pub fn flush_console(&mut self) {
        self.print_line();
        for b in self.platform.com1.take_output() {
            if self.add_byte(b) {
                self.print_line();
            }
        }
        self.print_line();
    }

    fn print_line(&mut self) {
        if !self.line.is_empty() {
            let text = core::str::from_utf8(&self.line).unwrap_or("?");
            (self.host.printer)(format_args!("[{}] {}\n", self.name, text));
        }
        self.line.clear();
        self.line_waits = false;
    }
}
