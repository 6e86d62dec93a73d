//! Application processors: starting them as a PC OS does and giving them work.
//!
//! Start-up (SDM Vol 3A 9.4.4 "MP Initialization Example" and 11.6.1 the ICR; Intel
//! MultiProcessor Specification 1.4, B.4 the universal start-up algorithm): the BSP
//! copies a real-mode trampoline to a free page below 1 MiB, sends INIT, waits 10 ms,
//! sends a STARTUP IPI whose vector is that page's number, waits 200 us and sends a
//! second one. The AP wakes in real mode at CS = vector << 8, IP = 0 (SDM Vol 3A
//! 9.4.4.1). The trampoline loads its own GDT (`janus_smp_gdt`: 0x08 64-bit code, 0x10
//! data, 0x18 32-bit code), enters protected mode with a far jump into the image (SDM
//! Vol 3A 10.9.1), and the 32-bit code enters long mode as the boot code does (CR4.PAE,
//! the BSP's CR3, EFER.LME, CR0.PG; SDM Vol 3A 10.8.5), loads the BSP's IDT and calls
//! `ap_main` on the AP's own stack. The 64-bit code segment is 0x08 as in the boot
//! code's GDT, so the IDT's gates work on every CPU. (Chapter numbers of the SDM of
//! 2024; older editions number them one lower.)
//!
//! An AP software-enables its local APIC (SVR), records its LAPIC ID and CPUID initial
//! APIC ID (leaf 1 EBX[31:24]), counts one start and idles with `sti; hlt`. Work is a
//! `fn()` posted in the AP's mailbox followed by a kick IPI at [`KICK_VECTOR`]
//! ([`run_on`]). APs print nothing: output is the BSP's.
//!
//! CPU indices: 0 is the BSP, 1.. the APs, in the order given to [`set_cpus`].

use super::apic::{self, ICR_ASSERT, ICR_FIXED, ICR_INIT, ICR_STARTUP};
use super::cpu::cpuid;
use super::x86::{cli, read_cr3, sti, sti_hlt_cli};
use super::{boot_info::BootInfo, idt, ram, time};
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};

/// The most CPUs the runtime handles.
pub const MAX_CPUS: usize = 8;
/// The vector of the IPI that wakes an idle AP to look at its mailbox.
pub const KICK_VECTOR: u8 = 0xf0;
/// Each AP's stack.
const STACK_SIZE: usize = 16 * 1024;
/// How long a started AP has to report in.
const ONLINE_US: u64 = 2_000_000;
/// An unused slot of [`APIC_IDS`].
const NONE: u32 = u32::MAX;

// The real-mode trampoline (copied to the start-up page; position-independent: it
// addresses its own bytes through DS = CS) and the GDT it loads.
core::arch::global_asm!(
    r#"
    .section .rodata.janus_smp, "a"
    .code16
    .global janus_smp_trampoline
janus_smp_trampoline:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl janus_smp_gdtr - janus_smp_trampoline
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    /* ljmpl $0x18, $janus_smp_entry32 (operand-size prefix: a 32-bit offset). */
    .byte 0x66, 0xea
    .long janus_smp_entry32
    .short 0x18
    .balign 4
janus_smp_gdtr:
    .short janus_smp_gdt_end - janus_smp_gdt - 1
    .long janus_smp_gdt
    .global janus_smp_trampoline_end
janus_smp_trampoline_end:
    .code64

    .section .data.janus_smp, "aw"
    .balign 16
janus_smp_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00cf9a000000ffff
janus_smp_gdt_end:
    .text
"#,
    options(att_syntax)
);

// The AP's way from 32-bit protected mode to `ap_main`.
core::arch::global_asm!(
    r#"
    .section .text.janus_smp, "ax"
    .code32
janus_smp_entry32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    /* The far return below needs a stack: the AP's own (below 4 GiB). */
    mov esp, [{stack}]
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, [{cr3}]
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    /* Paging, WP and PE on; CD and NW (set by INIT) off. */
    mov eax, cr0
    and eax, 0x9fffffff
    or eax, 0x80010001
    mov cr0, eax
    mov eax, offset janus_smp_entry64
    push 0x08
    push eax
    retf

    .code64
janus_smp_entry64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, [{stack}]
    lidt [{idtr}]
    xor ebp, ebp
    call {main}
2:
    cli
    hlt
    jmp 2b

    .section .bss.janus_smp, "aw", @nobits
    .balign 16
    .global janus_smp_stacks
janus_smp_stacks:
    .skip {stacks}
    .text
"#,
    cr3 = sym AP_CR3,
    stack = sym AP_STACK,
    idtr = sym AP_IDTR,
    main = sym ap_main,
    stacks = const MAX_CPUS * STACK_SIZE,
);

extern "C" {
    static janus_smp_trampoline: u8;
    static janus_smp_trampoline_end: u8;
    static janus_smp_stacks: u8;
}

// What the next AP to start picks up (one AP starts at a time).
static AP_CR3: AtomicU64 = AtomicU64::new(0);
static AP_STACK: AtomicU64 = AtomicU64::new(0);
/// The BSP's IDTR as SIDT stores it: limit, then the base (10 bytes).
static AP_IDTR: [AtomicU16; 5] = [const { AtomicU16::new(0) }; 5];
static AP_INDEX: AtomicUsize = AtomicUsize::new(0);

// Per CPU index.
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(NONE) }; MAX_CPUS];
static STARTS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
static LAPIC_SEEN: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(NONE) }; MAX_CPUS];
static CPUID_SEEN: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(NONE) }; MAX_CPUS];
static WORK: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];
static DONE: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// Names the CPUs by APIC ID: index 0 (the BSP, this CPU) first, then the APs. At most
/// [`MAX_CPUS`] are kept. Installs the kick handler.
pub fn set_cpus(ids: &[u32]) {
    for (i, slot) in APIC_IDS.iter().enumerate() {
        slot.store(ids.get(i).copied().unwrap_or(NONE), SeqCst);
    }
    idt::set_handler(KICK_VECTOR, |_| apic::eoi());
}

/// The APIC ID of CPU `index`.
pub fn apic_id(index: usize) -> Option<u32> {
    let id = APIC_IDS.get(index)?.load(SeqCst);
    (id != NONE).then_some(id)
}

/// The index of the CPU running this (by its local APIC ID).
pub fn this_cpu() -> Option<usize> {
    let id = apic::id();
    APIC_IDS.iter().position(|a| a.load(SeqCst) == id)
}

/// How often CPU `index` has reported in (0 until it started).
pub fn starts(index: usize) -> u32 {
    STARTS.get(index).map_or(0, |s| s.load(SeqCst))
}

/// What CPU `index` saw when it last started: its local APIC ID register and CPUID's
/// initial APIC ID.
pub fn seen_ids(index: usize) -> Option<(u32, u32)> {
    let lapic = LAPIC_SEEN.get(index)?.load(SeqCst);
    let cpuid = CPUID_SEEN.get(index)?.load(SeqCst);
    (lapic != NONE).then_some((lapic, cpuid))
}

/// The page whose number is a STARTUP vector: 4 KiB aligned, below 1 MiB, not the
/// VGA/ROM hole 0xA0000-0xBFFFF (SDM Vol 3A 11.6.1: vectors 0xA0-0xBF are reserved).
pub fn sipi_vector(page: u64) -> Option<u8> {
    let v = page >> 12;
    (page.is_multiple_of(4096) && (1..0xa0).contains(&v)).then_some(v as u8)
}

/// The first page below 0xA0000 that the memory map calls available and the loader and
/// image left free ([`ram::free_ranges`]), not holding any address of `avoid`.
pub fn trampoline_page(boot: &BootInfo, avoid: &[u64]) -> Option<u64> {
    ram::free_ranges(boot)
        .flat_map(|r| (r.start..r.end.min(0xa_0000)).step_by(4096))
        .find(|&p| sipi_vector(p).is_some() && !avoid.iter().any(|a| (p..p + 4096).contains(a)))
}

/// The trampoline's length (it must fit its page).
pub fn trampoline_len() -> usize {
    let start = core::ptr::addr_of!(janus_smp_trampoline) as usize;
    core::ptr::addr_of!(janus_smp_trampoline_end) as usize - start
}

fn install_trampoline(page: u64) {
    // SAFETY: `page` is a free page of RAM below 1 MiB (`trampoline_page`), identity
    // mapped; the trampoline is shorter than a page and lives in the image.
    unsafe {
        core::ptr::copy_nonoverlapping(
            core::ptr::addr_of!(janus_smp_trampoline),
            page as usize as *mut u8,
            trampoline_len(),
        );
    }
}

fn sidt() -> [u16; 5] {
    let mut idtr = [0u16; 5];
    // SAFETY: SIDT writes 10 bytes to the buffer.
    unsafe {
        core::arch::asm!("sidt [{}]", in(reg) idtr.as_mut_ptr(), options(nostack, preserves_flags))
    };
    idtr
}

/// Prepares what the next AP picks up: the BSP's CR3 and IDT, its index and stack.
fn hand_over(index: usize) {
    for (slot, v) in AP_IDTR.iter().zip(sidt()) {
        slot.store(v, SeqCst);
    }
    AP_CR3.store(read_cr3(), SeqCst);
    let stacks = core::ptr::addr_of!(janus_smp_stacks) as u64;
    AP_STACK.store(stacks + ((index + 1) * STACK_SIZE) as u64, SeqCst);
    AP_INDEX.store(index, SeqCst);
}

/// Sends one ICR command to `dest` and waits until it was sent.
fn send(low: u32, dest: u32) -> Result<(), &'static str> {
    apic::send_ipi(low, dest);
    if apic::wait_icr_idle(10_000) {
        Ok(())
    } else {
        Err("the ICR's delivery status stayed pending for 10 ms")
    }
}

/// Starts (or restarts: INIT stops a running AP) AP `index` with INIT, 10 ms, STARTUP,
/// 200 us, STARTUP through the trampoline at `page`, and waits for it to report in.
/// Runs on the BSP in xAPIC mode, one AP at a time. Returns the microseconds from INIT
/// until it reported.
pub fn start_ap(index: usize, page: u64) -> Result<u64, &'static str> {
    let id = apic_id(index).filter(|_| index > 0).ok_or("no such AP")?;
    let vector = sipi_vector(page).ok_or("not a start-up page")?;
    apic::map_mmio();
    install_trampoline(page);
    hand_over(index);
    let before = starts(index);
    let sw = time::Stopwatch::start();
    send(ICR_INIT | ICR_ASSERT, id)?;
    time::delay_us(10_000);
    for _ in 0..2 {
        send(ICR_STARTUP | ICR_ASSERT | u32::from(vector), id)?;
        time::delay_us(200);
    }
    if time::wait_until(ONLINE_US, || starts(index) > before) {
        Ok(sw.us())
    } else {
        Err("it did not report in within 2 s")
    }
}

/// The AP's first Rust code: enable the local APIC, report, idle.
extern "C" fn ap_main() -> ! {
    let index = AP_INDEX.load(SeqCst);
    apic::enable();
    LAPIC_SEEN[index].store(apic::id(), SeqCst);
    CPUID_SEEN[index].store(cpuid(1, 0)[1] >> 24, SeqCst);
    STARTS[index].fetch_add(1, SeqCst);
    idle(index)
}

/// Runs posted work; halts (interrupts on) in between.
fn idle(index: usize) -> ! {
    loop {
        cli();
        let w = WORK[index].swap(0, SeqCst);
        if w == 0 {
            sti_hlt_cli();
            continue;
        }
        // SAFETY: only `post` stores non-zero values, and they are `fn()`s.
        let f = unsafe { core::mem::transmute::<usize, fn()>(w) };
        sti();
        f();
        cli();
        DONE[index].fetch_add(1, SeqCst);
    }
}

/// Completed work items of CPU `index`.
pub fn done(index: usize) -> u32 {
    DONE.get(index).map_or(0, |d| d.load(SeqCst))
}

/// Posts `f` to AP `index` and kicks it; [`done`] grows when `f` returned.
pub fn post(index: usize, f: fn()) {
    let (Some(slot), Some(id)) = (WORK.get(index), apic_id(index)) else {
        return;
    };
    slot.store(f as usize, SeqCst);
    apic::send_ipi(ICR_FIXED | u32::from(KICK_VECTOR), id);
}

/// Runs `f` on AP `index` and waits up to `us` microseconds for it to return.
pub fn run_on(index: usize, f: fn(), us: u64) -> bool {
    let before = done(index);
    post(index, f);
    time::wait_until(us, || done(index) > before)
}
