//! A scripted vCPU for testing the dispatcher and policies on the host.
extern crate std;

use crate::cpu_rules::{dr, CpuRules, CrState};
use crate::exit::VmExit;
use crate::fetch::InsnCache;
use crate::in_place::{self, InPlace};
use crate::memory::GuestMemory;
use crate::vcpu::{
    ArchVcpu, ControlReg, DebugReg, Event, Gpr, SegReg, Segment, StateMsr, VcpuError,
};
use crate::vm::{HostHooks, Vm};
use core::cell::RefCell;
use core::fmt;
use std::collections::VecDeque;
use std::string::String;
use std::vec::Vec;

/// A host CPU with every CPUID feature on (the policy hides what it hides).
pub fn host_cpuid(leaf: u32, _sub: u32) -> [u32; 4] {
    match leaf {
        0 => [0xd, 0, 0, 0],
        1 => [0, 0, u32::MAX, u32::MAX],
        7 => [0, u32::MAX, u32::MAX, 0],
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        0x8000_0001 => [0, 0, 0, u32::MAX],
        _ => [0; 4],
    }
}

fn dr_slot(r: DebugReg) -> usize {
    match r {
        DebugReg::Dr0 => 0,
        DebugReg::Dr1 => 1,
        DebugReg::Dr2 => 2,
        DebugReg::Dr3 => 3,
        DebugReg::Dr6 => 4,
        DebugReg::Dr7 => 5,
    }
}

pub struct MockVcpu {
    pub regs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub cpl: u8,
    pub segs: [Segment; 6],
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub pat: u64,
    pub other_msrs: [u64; 16],
    pub injected: Vec<Event>,
    pub exits: VecDeque<VmExit>,
    /// Length of every exiting instruction.
    pub insn_len: u64,
    pub window: bool,
    /// How often the dispatcher offered interrupts (set the window either way).
    pub offers: u32,
    /// An STI/MOV-SS interrupt shadow is in effect.
    pub shadow: bool,
    pub tsc_offset: u64,
    /// What the core last passed to `set_exit_deadline`.
    pub exit_deadline: Option<u64>,
    /// Whether it has an exit timer of its own (`set_exit_deadline` returns it).
    pub exit_timer: bool,
    /// The hardware's copy of CR8 (AMD-V's V_TPR); `None` for a vCPU whose CR8
    /// accesses always exit.
    pub tpr_shadow: Option<u8>,
    /// The copy of CR8 at the last entry.
    pub tpr_at_entry: Option<u8>,
    /// A MOV to CR8 the guest makes without an exit during the next run.
    pub guest_cr8: Option<u8>,
    /// The architectural rules, applied as a backend applies them.
    pub rules: CpuRules,
    /// DR0-DR3, DR6, DR7 in [`DebugReg`] order.
    pub dr: [u64; 6],
    /// Whether the vCPU is loaded on the (pretend) host CPU, and how often `put` ran.
    pub loaded: bool,
    pub puts: u32,
    /// Guest time each `run` takes (the mock host's TSC moves on by this much).
    pub ns_per_run: u64,
    /// Runs so far; at run number `room_at_run` the host console gets room ([`ROOM`]).
    pub runs: u32,
    pub room_at_run: Option<u32>,
    /// This vCPU's CPUID answers ([`ArchVcpu::in_place`]).
    pub in_place: InPlace,
    /// Finishes CPUID exits and port accesses it can in place, as a backend with their
    /// next RIP does.
    pub finish_in_place: bool,
    /// The leaf and subleaf the guest asks at each scripted CPUID (its `mov eax, leaf`
    /// and `mov ecx, subleaf` before it).
    pub cpuid_leaf: Option<(u32, u32)>,
    /// The CPU does not say where an instruction ends, as AMD-V without NRIP save: its
    /// length is read from guest memory (`next_rip`), and a CPUID finished in place ends
    /// where the kept exit site says (`in_place::end_by_site`). Each scripted CPUID
    /// exits at this RIP (the guest's loop around it).
    pub cpuid_loop_at: Option<u64>,
    /// The CPU delivers an interrupt itself at the next entry (VT-x's pending virtual
    /// interrupt): a HLT is finished in place when it can be.
    pub cpu_delivers: bool,
}

impl MockVcpu {
    pub fn new(exits: &[VmExit]) -> Self {
        MockVcpu {
            regs: [0; 16],
            rip: 0x10_0000,
            rflags: 2,
            cpl: 0,
            segs: [Segment {
                selector: 0x10,
                base: 0,
                limit: 0xffff_ffff,
                attr: 0xc93,
            }; 6],
            cr0: 0x11,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            efer: 0,
            pat: 0x0007_0406_0007_0406,
            other_msrs: [0; 16],
            injected: Vec::new(),
            exits: exits.iter().copied().collect(),
            insn_len: 2,
            window: false,
            offers: 0,
            shadow: false,
            tsc_offset: 0,
            exit_deadline: None,
            exit_timer: false,
            tpr_shadow: None,
            tpr_at_entry: None,
            guest_cr8: None,
            rules: CpuRules::for_guest(host_cpuid),
            dr: [0, 0, 0, 0, dr::DR6_RESET, dr::DR7_RESET],
            loaded: false,
            puts: 0,
            ns_per_run: 0,
            runs: 0,
            room_at_run: None,
            in_place: InPlace::default(),
            finish_in_place: false,
            cpuid_leaf: None,
            cpuid_loop_at: None,
            cpu_delivers: false,
        }
    }
    fn cr_state(&self) -> CrState {
        let cs_long = self.segs[SegReg::Cs as usize].long();
        CrState {
            cr0: self.cr0,
            cr3: self.cr3,
            cr4: self.cr4,
            efer: self.efer,
            cs_long,
        }
    }
    pub fn reg(&self, r: Gpr) -> u64 {
        self.regs[r as usize]
    }
}

impl ArchVcpu for MockVcpu {
    fn run(&mut self) -> Result<VmExit, VcpuError> {
        TSC.with(|t| t.set(t.get() + self.ns_per_run));
        self.runs += 1;
        if self.room_at_run == Some(self.runs) {
            ROOM.with(|r| r.set(true));
        }
        self.tpr_at_entry = self.tpr_shadow;
        if let Some(cr8) = self.guest_cr8.take() {
            self.tpr_shadow = Some(cr8);
        }
        loop {
            let exit = self.exits.pop_front().ok_or(VcpuError {
                what: "script ended",
                code: 0,
            })?;
            if let (VmExit::Cpuid, Some((leaf, sub))) = (exit, self.cpuid_leaf) {
                self.regs[Gpr::Rax as usize] = leaf.into();
                self.regs[Gpr::Rcx as usize] = sub.into();
            }
            let mut next = Some(self.rip + self.insn_len);
            if let (VmExit::Cpuid, Some(at)) = (exit, self.cpuid_loop_at) {
                self.rip = at;
                next = in_place::end_by_site(self);
            }
            let finished = match exit {
                _ if !self.finish_in_place => false,
                VmExit::Cpuid => next.is_some_and(|next| in_place::cpuid(self, next)),
                VmExit::Hlt => in_place::hlt(self, self.rip + self.insn_len, self.cpu_delivers),
                VmExit::Io(io) => match in_place::port_io(self, io, self.rip + self.insn_len) {
                    in_place::Finished::No => false,
                    in_place::Finished::Resume => true,
                    in_place::Finished::Leave => return Ok(exit),
                },
                _ => false,
            };
            if !finished {
                return Ok(exit);
            }
        }
    }
    fn in_place(&mut self) -> &mut InPlace {
        &mut self.in_place
    }
    fn gpr(&self, r: Gpr) -> u64 {
        self.regs[r as usize]
    }
    fn set_gpr(&mut self, r: Gpr, v: u64) {
        self.regs[r as usize] = v
    }
    fn rip(&self) -> u64 {
        self.rip
    }
    fn rflags(&self) -> u64 {
        self.rflags
    }
    fn set_rflags(&mut self, v: u64) {
        self.rflags = v;
    }
    fn set_pause_exits(&mut self, _on: bool) {}
    fn segment(&self, s: SegReg) -> Segment {
        self.segs[s as usize]
    }
    fn cpl(&self) -> u8 {
        self.cpl
    }
    fn cr(&self, r: ControlReg) -> u64 {
        match r {
            ControlReg::Cr0 => self.cr0,
            ControlReg::Cr2 => self.cr2,
            ControlReg::Cr3 => self.cr3,
            ControlReg::Cr4 => self.cr4,
        }
    }
    fn set_cr(&mut self, r: ControlReg, v: u64) -> Result<(), Event> {
        let next = match r {
            ControlReg::Cr0 => self.rules.write_cr0(self.cr_state(), v)?,
            ControlReg::Cr4 => self.rules.write_cr4(self.cr_state(), v)?,
            ControlReg::Cr2 => {
                self.cr2 = v;
                return Ok(());
            }
            ControlReg::Cr3 => CrState {
                cr3: v,
                ..self.cr_state()
            },
        };
        (self.cr0, self.cr3, self.cr4, self.efer) = (next.cr0, next.cr3, next.cr4, next.efer);
        Ok(())
    }
    fn state_msr(&self, m: StateMsr) -> u64 {
        match m {
            StateMsr::Efer => self.efer,
            StateMsr::Pat => self.pat,
            other => self.other_msrs[other as usize],
        }
    }
    fn set_state_msr(&mut self, m: StateMsr, v: u64) -> Result<(), Event> {
        match m {
            StateMsr::Efer => self.efer = self.rules.write_efer(self.cr_state(), v)?.efer,
            StateMsr::Pat => self.pat = v,
            other => self.other_msrs[other as usize] = v,
        }
        Ok(())
    }
    fn inject(&mut self, ev: Event) {
        self.injected.push(ev)
    }
    fn interrupts_open(&self) -> bool {
        self.rflags & (1 << 9) != 0 && !self.shadow
    }
    fn request_interrupt_window(&mut self, on: bool) {
        self.window = on;
        self.offers += 1;
    }
    /// So that the dispatcher's look at a register page is compiled in: a test that
    /// wants one attaches it to the platform's local APIC itself (a constant, it cannot
    /// differ between mock vCPUs; without a page it finds nothing).
    const VIRTUAL_INTERRUPTS: bool = true;
    fn set_tsc_offset(&mut self, offset: u64) {
        self.tsc_offset = offset
    }
    fn set_exit_deadline(&mut self, tsc: Option<u64>) -> bool {
        self.exit_deadline = tsc;
        self.exit_timer
    }
    fn debug_reg(&self, r: DebugReg) -> u64 {
        self.dr[dr_slot(r)]
    }
    fn set_debug_reg(&mut self, r: DebugReg, v: u64) {
        self.dr[dr_slot(r)] = v
    }
    fn put(&mut self) {
        self.loaded = false;
        self.puts += 1;
    }
    fn load(&mut self) {
        self.loaded = true
    }
    fn release<A: crate::nested::FrameAllocator>(self, _frames: &mut A) {}
    fn next_rip(&self, mem: &GuestMemory, cache: &mut InsnCache) -> Result<u64, VcpuError> {
        if self.cpuid_loop_at.is_none() {
            return Ok(self.rip + self.insn_len);
        }
        let len =
            crate::fetch::length_at_rip(self, mem, cache, Some(&[0x0f, 0xa2])).map_err(|_| {
                VcpuError {
                    what: "cannot decode",
                    code: self.rip,
                }
            })?;
        Ok(self.rip + len as u64)
    }
    fn tpr_shadow(&self) -> Option<u8> {
        self.tpr_shadow
    }
    fn set_tpr_shadow(&mut self, cr8: u8) {
        if self.tpr_shadow.is_some() {
            self.tpr_shadow = Some(cr8);
        }
    }
    fn retire(&mut self, next_rip: u64) {
        self.rip = next_rip;
        self.shadow = false;
    }
}

std::thread_local! {
    static OUT: RefCell<String> = const { RefCell::new(String::new()) };
}

fn capture(args: fmt::Arguments<'_>) {
    OUT.with(|o| fmt::Write::write_fmt(&mut *o.borrow_mut(), args).unwrap());
}

std::thread_local! {
    /// Whether the mock host console has room for guest lines.
    pub static ROOM: core::cell::Cell<bool> = const { core::cell::Cell::new(true) };
    /// Whether the mock host has housekeeping left after each `service`.
    pub static HOST_WAITS: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

fn capture_line(_owner: u8, name: &str, text: &str) -> bool {
    if !ROOM.with(|r| r.get()) {
        return false;
    }
    capture(format_args!("[{name}] {text}\n"));
    true
}

/// Everything printed on this thread since the last call.
pub fn take_output() -> String {
    OUT.with(|o| core::mem::take(&mut *o.borrow_mut()))
}

fn fake_cpuid(leaf: u32, _sub: u32) -> [u32; 4] {
    match leaf {
        0 => [
            0xd,
            u32::from_le_bytes(*b"Auth"),
            u32::from_le_bytes(*b"cAMD"),
            u32::from_le_bytes(*b"enti"),
        ],
        1 => [
            0x00a2_0f10,
            0x0001_0800,
            0x7ed8_320b | (1 << 5),
            0x178b_fbff,
        ],
        _ => [0; 4],
    }
}

std::thread_local! {
    /// The mock host's TSC (1 GHz, so ticks are nanoseconds); tests move it.
    pub static TSC: core::cell::Cell<u64> = const { core::cell::Cell::new(123_456) };
    /// What the dispatcher asked of the host timer, last first.
    pub static ARMED: RefCell<Vec<Option<u64>>> = const { RefCell::new(Vec::new()) };
}

fn mock_tsc() -> u64 {
    TSC.with(|t| t.get())
}

/// Idling advances time to the armed deadline, as the host timer would.
fn mock_idle() {
    let next = ARMED
        .with(|a| a.borrow().last().copied().flatten())
        .unwrap_or(1_000_000);
    TSC.with(|t| t.set(t.get() + next));
}

pub const HOOKS: HostHooks = HostHooks {
    printer: capture,
    guest_line: capture_line,
    cpuid: fake_cpuid,
    tsc: mock_tsc,
    tsc_hz: || 1_000_000_000,
    arm_timer: |d| ARMED.with(|a| a.borrow_mut().push(d)),
    take_interrupts: || {},
    idle: mock_idle,
    service: || HOST_WAITS.with(|w| w.get()),
};

/// A VM named `t` with `mem` of RAM at 0.
pub fn vm(mem: GuestMemory) -> Vm {
    vm_smp(mem, 1)
}

/// A VM named `t` with `mem` of RAM at 0 and `vcpus` vCPUs.
pub fn vm_smp(mem: GuestMemory, vcpus: u8) -> Vm {
    take_output();
    ROOM.with(|r| r.set(true));
    HOST_WAITS.with(|w| w.set(false));
    Vm::new("t", mem, HOOKS, vcpus)
}
