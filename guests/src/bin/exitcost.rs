//! The exit-cost benchmark, run as a suite: how many TSC ticks one round trip through
//! Janus costs for the common exits (CPUID, port I/O, an unclaimed port, MMIO to the
//! local APIC, a hypercall). Under Bochs (`clock: sync=none`) and QEMU with `-icount`
//! the TSC counts instructions, so the figures are the exit path's length in
//! instructions, reproducible run to run. The checks prove each loop really exited
//! (the EXIT_COUNT hypercall grew by at least one exit per iteration); the figures are
//! printed, not judged.
#![no_std]
#![no_main]

use janus_guests::rt::apic;
use janus_guests::rt::hypercall::{self, hypercall};
use janus_guests::rt::x86::rdtsc;
use janus_guests::{cpuid, entry, inb, println, BootInfo, Suite};

entry!(main);

const N: u64 = 200;

fn exits() -> u64 {
    hypercall(hypercall::EXIT_COUNT, 0, 0, 0, 0).1
}

fn measure(s: &mut Suite, name: &str, mut op: impl FnMut()) {
    op(); // warm up
    let before = exits();
    let t0 = rdtsc();
    for _ in 0..N {
        op();
    }
    let ticks = rdtsc() - t0;
    let taken = exits() - before;
    println!(
        "exit cost {}: {} TSC ticks per round trip ({} exits for {} iterations)",
        name,
        ticks / N,
        taken,
        N
    );
    s.check(
        &name_of(name),
        taken > N,
        format_args!(
            "{} iterations of {} took {} exits; each should exit",
            N, name, taken
        ),
    );
}

fn name_of(name: &str) -> arrayvec_name::Name {
    arrayvec_name::Name::new(name)
}

mod arrayvec_name {
    /// "exitcost.NAME" without an allocator.
    pub struct Name {
        buf: [u8; 48],
        len: usize,
    }
    impl Name {
        pub fn new(n: &str) -> Self {
            let mut buf = [0u8; 48];
            let prefix = b"exitcost.";
            buf[..prefix.len()].copy_from_slice(prefix);
            let m = n.len().min(48 - prefix.len());
            buf[prefix.len()..prefix.len() + m].copy_from_slice(&n.as_bytes()[..m]);
            Name {
                buf,
                len: prefix.len() + m,
            }
        }
    }
    impl core::ops::Deref for Name {
        type Target = str;
        fn deref(&self) -> &str {
            core::str::from_utf8(&self.buf[..self.len]).unwrap_or("exitcost")
        }
    }
}

fn main(_boot: &BootInfo) -> ! {
    let mut s = Suite::new("exitcost");
    apic::map_mmio();
    measure(&mut s, "cpuid", || {
        cpuid(0, 0);
    });
    measure(&mut s, "in_com1_lsr", || {
        inb(0x3fd);
    });
    measure(&mut s, "in_unclaimed", || {
        inb(0x510);
    });
    measure(&mut s, "mmio_apic_read", || {
        apic::mmio_read(0x80);
    });
    measure(&mut s, "hypercall", || {
        hypercall(hypercall::VERSION, 0, 0, 0, 0);
    });
    s.finish()
}
