//! Memory attacks: writes outside RAM (just above its end, at 4 GiB - 1, on the page
//! after the local APIC, at 1 TiB and at the top of the physical address space), over
//! its own RAM in 1 MiB-16 MiB (where Janus itself lives on the host), and CR3 pointing outside RAM.

use super::{attempt, Ctx, Saw};
use janus_guests::cpuid;
use janus_guests::rt::apic;
use janus_guests::rt::x86::{read_cr3, write_cr3};

const PATTERN: u64 = 0x484f_5354_494c_4521; // "HOSTILE!"
/// The virtual 2 MiB window of [`map_high`]: PDPT entry 2 (1-2 GiB) is unused.
const WINDOW: u64 = 0x8000_0000;
const LARGE_PAGE: u64 = 2 << 20;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut WINDOW_PD: Table = Table([0; 512]);

/// Maps the 2 MiB page holding physical `phys` (uncached) at [`WINDOW`] and returns the
/// virtual address of `phys`. An address above MAXPHYADDR sets reserved bits: the access
/// then raises #PF, as on hardware.
fn map_high(phys: u64) -> u64 {
    // SAFETY: the boot code's PML4 and PDPT are identity-mapped; PDPT entry 2 is unused
    // by the runtime; WINDOW_PD lives in .bss (identity-mapped, 4 KiB aligned).
    unsafe {
        let pd = &mut *core::ptr::addr_of_mut!(WINDOW_PD);
        pd.0[0] = (phys & !(LARGE_PAGE - 1)) | 0x9b; // P, W, PWT, PCD, PS
        let pml4 = (read_cr3() & ADDR_MASK) as *const u64;
        let pdpt = (pml4.read_volatile() & ADDR_MASK) as *mut u64;
        pdpt.add(2).write_volatile(pd as *mut Table as u64 | 3);
    }
    write_cr3(read_cr3());
    WINDOW + (phys & (LARGE_PAGE - 1))
}

/// Writes `PATTERN` at virtual `va` and reads it back.
fn poke(va: u64) -> Saw {
    let mut back = 0;
    let fault = attempt(|| {
        // SAFETY: the attack: `va` is mapped to a guest-physical address outside RAM;
        // the hypervisor decides what happens, exceptions are caught.
        unsafe {
            (va as *mut u64).write_volatile(PATTERN);
            back = (va as *const u64).read_volatile();
        }
    });
    match fault {
        Saw::NoFault => Saw::Value("read back", back),
        f => f,
    }
}

pub fn above_ram(c: &Ctx) -> Saw {
    poke(map_high(c.ram_end))
}

pub fn four_gib_minus_1(_: &Ctx) -> Saw {
    apic::map_mmio();
    let mut back = 0;
    let fault = attempt(|| {
        // SAFETY: the attack: the last byte below 4 GiB, mapped by `map_mmio`.
        unsafe {
            (0xffff_ffff as *mut u8).write_volatile(0x5a);
            back = (0xffff_ffff as *const u8).read_volatile();
        }
    });
    match fault {
        Saw::NoFault => Saw::Value("read back", back.into()),
        f => f,
    }
}

pub fn after_lapic(_: &Ctx) -> Saw {
    apic::map_mmio();
    poke(apic::LAPIC_BASE + 0x1000)
}

pub fn one_tib(_: &Ctx) -> Saw {
    poke(map_high(1 << 40))
}

/// The last qword below 2^MAXPHYADDR (CPUID 0x80000008 EAX[7:0]).
pub fn top_of_phys(_: &Ctx) -> Saw {
    let bits = cpuid(0x8000_0008, 0)[0] & 0xff;
    poke(map_high((1u64 << bits.clamp(32, 52)) - 8))
}

/// Every byte of its own free RAM in 1 MiB-16 MiB (boot the attacker with 16 MiB to
/// cover all of it): on the host, Janus' own image lives at those addresses.
pub fn host_image(c: &Ctx) -> Saw {
    const END: u64 = 0x100_0000;
    let ram = c.image_end.next_multiple_of(8)..c.ram_end.min(END);
    for a in ram.clone().step_by(8) {
        // SAFETY: free RAM of this guest, after its image: nothing else uses it.
        unsafe { (a as *mut u64).write_volatile(PATTERN) };
    }
    Saw::Count(ram.end - ram.start, "bytes of its own RAM written")
}

/// CR3 at 2 GiB (no RAM): the next page walk reads paging structures from nowhere.
pub fn cr3_outside_ram(_: &Ctx) -> Saw {
    attempt(|| write_cr3(0x8000_0000))
}
