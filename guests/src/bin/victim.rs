//! The victim of the hostile-guest suite: it runs beside an attacking guest and checks
//! that nothing of its state changes. It plants a secret (a pattern derived from its
//! `secret=` argument) in all its free RAM, in XMM0-15 and MXCSR, in DR0-DR3 and in the
//! callee-saved GPRs, then for `duration=MS` (default 3000) of TSC time re-checks all of
//! it between HLTs woken by its periodic LAPIC timer (so it yields the CPU), and checks
//! that the timer kept interrupting it.
#![no_std]
#![no_main]

use core::arch::asm;
use core::ops::Range;
use janus_guests::rt::time::{self, Deadline, Stopwatch};
use janus_guests::rt::{apic, args, dr, fpu, irq, pc, ram};
use janus_guests::{entry, println, BootInfo, Suite};

entry!(main);

const TIMER_VEC: u8 = 0x40;
const TIMER_PERIOD_MS: u64 = 10;
const DEFAULT_DURATION_MS: u64 = 3000;
const DEFAULT_SECRET: &str = "janus-victim";
/// Pages re-checked per round (the whole of RAM is checked once more at the end).
const PAGES_PER_ROUND: u64 = 64;
/// Timer interrupts the callee-saved GPRs are held across per round.
const HLTS_PER_ROUND: u32 = 2;
const MAX_RANGES: usize = 8;

/// FNV-1a of the secret: the pattern's seed.
fn seed_of(secret: &str) -> u64 {
    secret.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The pattern word for `index` (the splitmix64 finalizer): every address and register
/// gets its own value, so swapped pages show as well as foreign ones.
fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Register indices of the pattern, away from any RAM address.
const XMM_INDEX: u64 = 1 << 60;
const DR_INDEX: u64 = 2 << 60;
const GPR_INDEX: u64 = 3 << 60;
const MXCSR_INDEX: u64 = 4 << 60;

struct Secret {
    seed: u64,
    xmm: [u128; 16],
    mxcsr: u32,
    dr: [u64; 4],
    gpr: [u64; 6],
}

impl Secret {
    fn new(seed: u64) -> Secret {
        let xmm = core::array::from_fn(|i| {
            let i = i as u64;
            (u128::from(word(seed, XMM_INDEX + 2 * i)) << 64)
                | u128::from(word(seed, XMM_INDEX + 2 * i + 1))
        });
        // All exceptions masked; rounding control (bits 14:13) and FTZ (bit 15) from the
        // seed, never all zero so the value differs from the reset value 0x1F80.
        let mxcsr = fpu::MXCSR_RESET | (((word(seed, MXCSR_INDEX) as u32 % 7) + 1) << 13);
        // Canonical, 8-byte aligned addresses; DR7 leaves them disabled.
        let dr = core::array::from_fn(|i| word(seed, DR_INDEX + i as u64) & 0x7fff_ffff_fff8);
        let gpr = core::array::from_fn(|i| word(seed, GPR_INDEX + i as u64));
        Secret {
            seed,
            xmm,
            mxcsr,
            dr,
            gpr,
        }
    }
}

/// The free RAM as found at boot, and a cursor for checking it a slice at a time.
struct Ram {
    ranges: [Range<u64>; MAX_RANGES],
    count: usize,
    /// (range index, next address) of the incremental check.
    cursor: (usize, u64),
    bad: u64,
    first_bad: Option<(u64, u64)>,
}

impl Ram {
    fn new(boot: &BootInfo) -> Ram {
        let mut r = Ram {
            ranges: core::array::from_fn(|_| 0..0),
            count: 0,
            cursor: (0, 0),
            bad: 0,
            first_bad: None,
        };
        for range in ram::free_ranges(boot).take(MAX_RANGES) {
            r.ranges[r.count] = range;
            r.count += 1;
        }
        r.cursor = (0, r.ranges[0].start);
        r
    }

    fn ranges(&self) -> &[Range<u64>] {
        &self.ranges[..self.count]
    }

    fn bytes(&self) -> u64 {
        self.ranges().iter().map(|r| r.end - r.start).sum()
    }

    fn plant(&self, seed: u64) {
        for r in self.ranges() {
            for a in (r.start..r.end).step_by(8) {
                // SAFETY: free RAM in the identity map: nothing else uses it.
                unsafe { (a as *mut u64).write_volatile(word(seed, a)) };
            }
        }
    }

    fn check(&mut self, seed: u64, span: Range<u64>) {
        for a in span.step_by(8) {
            // SAFETY: as for `plant`.
            let v = unsafe { (a as *const u64).read_volatile() };
            if v != word(seed, a) {
                self.bad += 1;
                self.first_bad.get_or_insert((a, v));
            }
        }
    }

    /// Checks the next `pages` pages, wrapping around.
    fn check_some(&mut self, seed: u64, pages: u64) {
        if self.count == 0 {
            return;
        }
        let (i, a) = self.cursor;
        let end = (a + pages * 4096).min(self.ranges[i].end);
        self.check(seed, a..end);
        self.cursor = if end < self.ranges[i].end {
            (i, end)
        } else {
            let next = (i + 1) % self.count;
            (next, self.ranges[next].start)
        };
    }

    fn check_all(&mut self, seed: u64) {
        for i in 0..self.count {
            let r = self.ranges[i].clone();
            self.check(seed, r);
        }
    }
}

/// Loads RBX, RBP and R12-R15 from `gpr`, holds them across `hlts` interrupts (STI;
/// HLT), and returns a bit mask of the registers that changed meanwhile.
fn hold_gprs(gpr: &[u64; 6], hlts: u32) -> u32 {
    let mask: u32;
    // SAFETY: RBX and RBP (reserved by LLVM) are saved and restored on the stack, R12-R15
    // are declared clobbered; the timer handler is installed before the first call.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "mov rbx, [rdi]",
            "mov rbp, [rdi + 8]",
            "mov r12, [rdi + 16]",
            "mov r13, [rdi + 24]",
            "mov r14, [rdi + 32]",
            "mov r15, [rdi + 40]",
            "2:",
            "sti",
            "hlt",
            "cli",
            "dec ecx",
            "jnz 2b",
            "xor eax, eax",
            "cmp rbx, [rdi]", "je 3f", "or eax, 1", "3:",
            "cmp rbp, [rdi + 8]", "je 3f", "or eax, 2", "3:",
            "cmp r12, [rdi + 16]", "je 3f", "or eax, 4", "3:",
            "cmp r13, [rdi + 24]", "je 3f", "or eax, 8", "3:",
            "cmp r14, [rdi + 32]", "je 3f", "or eax, 16", "3:",
            "cmp r15, [rdi + 40]", "je 3f", "or eax, 32", "3:",
            "pop rbp",
            "pop rbx",
            in("rdi") gpr.as_ptr(),
            inout("ecx") hlts.max(1) => _,
            out("eax") mask,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        )
    };
    mask
}

fn start_timer() {
    pc::pic_disable();
    apic::enable();
    let per_ms = apic::timer_ticks_per_ms(2);
    irq::count_on(TIMER_VEC, irq::Eoi::Lapic);
    apic::write(apic::TIMER_DIVIDE, apic::DIVIDE_16);
    apic::write(apic::LVT_TIMER, apic::TIMER_PERIODIC | u32::from(TIMER_VEC));
    apic::write(
        apic::TIMER_INITIAL,
        (per_ms * TIMER_PERIOD_MS).min(0xffff_ffff) as u32,
    );
}

/// What the run saw.
#[derive(Default)]
struct Seen {
    xmm: Option<(usize, u128)>,
    mxcsr: Option<u32>,
    dr: Option<[u64; 4]>,
    gpr: u32,
    rounds: u64,
    /// Timer interrupts in the first and second half of the run.
    halves: (u32, u32),
}

fn run(secret: &Secret, ram: &mut Ram, duration_ms: u64) -> Seen {
    let mut seen = Seen::default();
    let sw = Stopwatch::start();
    let half = Deadline::after_us(duration_ms * 500);
    let end = Deadline::after_us(duration_ms * 1000);
    let mut at_half = None;
    while !end.expired() {
        seen.gpr |= hold_gprs(&secret.gpr, HLTS_PER_ROUND);
        let xmm = fpu::read_xmm();
        if let Some(i) = (0..16).find(|&i| xmm[i] != secret.xmm[i]) {
            seen.xmm.get_or_insert((i, xmm[i]));
        }
        let mxcsr = fpu::mxcsr();
        if mxcsr != secret.mxcsr {
            seen.mxcsr.get_or_insert(mxcsr);
        }
        let drs = dr::read_addr_regs();
        if drs != secret.dr {
            seen.dr.get_or_insert(drs);
        }
        ram.check_some(secret.seed, PAGES_PER_ROUND);
        if at_half.is_none() && half.expired() {
            at_half = Some(irq::count(TIMER_VEC));
        }
        seen.rounds += 1;
    }
    apic::timer_stop();
    ram.check_all(secret.seed);
    let total = irq::count(TIMER_VEC);
    let first = at_half.unwrap_or(total);
    seen.halves = (first, total - first);
    println!(
        "victim: {} rounds, {} timer interrupts ({} + {}) in {} ms",
        seen.rounds,
        total,
        seen.halves.0,
        seen.halves.1,
        sw.us() / 1000
    );
    seen
}

fn main(boot: &BootInfo) -> ! {
    let mut s = Suite::new("victim");
    let line = boot.cmdline();
    let secret_arg = args::arg(line, "secret").unwrap_or(DEFAULT_SECRET);
    let duration = args::arg(line, "duration")
        .and_then(args::parse_u64)
        .unwrap_or(DEFAULT_DURATION_MS);
    let secret = Secret::new(seed_of(secret_arg));
    println!("victim: secret {:?}, duration {} ms", secret_arg, duration);
    println!("tsc: {} kHz ({:?})", time::tsc_khz(), time::tsc_source());

    let mut ram = Ram::new(boot);
    for r in ram.ranges() {
        println!("victim: free RAM {:#x}-{:#x}", r.start, r.end);
    }
    ram.plant(secret.seed);
    fpu::enable_sse();
    fpu::write_xmm(&secret.xmm);
    fpu::set_mxcsr(secret.mxcsr);
    dr::write_addr_regs(&secret.dr);
    start_timer();
    let seen = run(&secret, &mut ram, duration);
    report(&mut s, &secret, &ram, &seen, duration);
    s.finish()
}

fn report(s: &mut Suite, secret: &Secret, ram: &Ram, seen: &Seen, duration: u64) {
    let (addr, val) = ram.first_bad.unwrap_or((0, 0));
    s.check(
        "victim.ram",
        ram.bytes() > 0 && ram.bad == 0,
        format_args!(
            "{} bytes checked, {} qwords changed; first at {:#x}: {:#x}, planted {:#x}",
            ram.bytes(),
            ram.bad,
            addr,
            val,
            word(secret.seed, addr)
        ),
    );
    let (i, v) = seen.xmm.unwrap_or((0, 0));
    s.check(
        "victim.xmm",
        seen.xmm.is_none() && seen.mxcsr.is_none(),
        format_args!(
            "xmm{} = {:#034x} (planted {:#034x}); MXCSR {:#x?} (planted {:#x})",
            i, v, secret.xmm[i], seen.mxcsr, secret.mxcsr
        ),
    );
    s.check(
        "victim.dr",
        seen.dr.is_none(),
        format_args!("DR0-3 = {:#x?}, planted {:#x?}", seen.dr, secret.dr),
    );
    s.check(
        "victim.gpr",
        seen.gpr == 0,
        format_args!(
            "changed across HLT (bit 0 RBX, 1 RBP, 2-5 R12-R15): {:#x}",
            seen.gpr
        ),
    );
    // Every HLT is woken by the timer (nothing else interrupts the victim), in both
    // halves of the run. How many rounds fit in the run depends on the CPU share the
    // attackers leave it, so the count is checked against its own HLTs, not the clock.
    let hlts = seen.rounds * u64::from(HLTS_PER_ROUND);
    let timer = u64::from(seen.halves.0 + seen.halves.1);
    s.check(
        "victim.timer",
        seen.halves.0 > 0 && seen.halves.1 > 0 && timer >= hlts,
        format_args!(
            "{} + {} timer interrupts in the two halves for {} HLTs (want one at least per HLT, in both halves; {} ms at {} ms periods)",
            seen.halves.0, seen.halves.1, hlts, duration, TIMER_PERIOD_MS
        ),
    );
}
