#![no_std]
#![no_main]
use janus_guests::{entry, BootInfo};
entry!(main);
fn main(_b: &BootInfo) -> ! {
    janus_guests::exit(0)
}
