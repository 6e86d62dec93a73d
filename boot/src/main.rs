//! The Janus ELF: multiboot entry, host set-up, backend choice, and the guests' runs.
#![no_std]
#![no_main]

mod apic;
mod apstack;
mod bootinfo;
mod console;
mod entry;
mod fpu;
mod frames;
mod gdt;
mod guests;
mod handoff;
mod hosttimer;
mod idt;
mod machine;
mod percpu;
mod run;
mod sched;
mod shared;
mod smp;
mod stack;
mod time;
mod trampoline;

use machine::{end, EndCode};

/// Called by the entry code in 64-bit mode with the loader's magic and info address.
#[no_mangle]
extern "C" fn janus_main(magic: u32, info: u32) -> ! {
    stack::arm();
    console::init();
    gdt::init();
    idt::init();
    mask_legacy_pic();
    let boot = match bootinfo::parse(magic, info) {
        Ok(b) => b,
        Err(e) => {
            say!("Janus {} (unknown loader)", env!("CARGO_PKG_VERSION"));
            say!("PANIC: {}", e);
            end(EndCode::Fatal)
        }
    };
    say!("Janus {} ({})", env!("CARGO_PKG_VERSION"), boot.protocol);
    let tsc_hz = time::calibrate();
    log::info!(
        "TSC {}.{:03} MHz (calibrated against the PIT)",
        tsc_hz / 1_000_000,
        tsc_hz / 1000 % 1000
    );
    hosttimer::init();
    let fpu = fpu::init();
    log::info!("guest x87/SSE/AVX state saved with {:?}", fpu);
    let mut frames = frames::HostFrames::new(&boot);
    log::info!(
        "{} MiB of host memory free, {} modules",
        frames.free_bytes() >> 20,
        boot.modules.len()
    );
    end(run::run(&boot, &mut frames, fpu))
}

/// Janus takes no device interrupts: mask both 8259s so none can arrive (a guest's
/// interrupts are virtual).
fn mask_legacy_pic() {
    // SAFETY: writing the interrupt-mask registers of the PC's PICs only masks IRQs.
    unsafe {
        x86::io::outb(0x21, 0xff);
        x86::io::outb(0xa1, 0xff);
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::print_emergency(format_args!("janus: PANIC: {}\n", info));
    end(EndCode::Fatal)
}
