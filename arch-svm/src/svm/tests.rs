//! vCPU creation and release over a pretend frame allocator: every frame a vCPU takes
//! goes back exactly once, and no two live vCPUs share an ASID. Nothing here executes an
//! SVM instruction (`Svm` is built without `enable`).

use super::Svm;
use crate::asid::AsidPool;
use crate::caps::SvmCaps;
use crate::vcpu::SvmVcpu;
use core::ptr::NonNull;
use std::boxed::Box;
use std::vec::Vec;
use vmm_core::addr::{GuestPhys, HostPhys};
use vmm_core::cpu_rules::CpuRules;
use vmm_core::memory::GuestMemory;
use vmm_core::nested::FrameAllocator;
use vmm_core::vcpu::{ArchBackend, ArchVcpu, StartMode, VcpuError};

const BASE: u64 = 0x7000_0000;

#[repr(C, align(4096))]
struct Frame([u64; 512]);

/// Frames on the heap at made-up addresses from `BASE`, with what was allocated and how
/// often each frame came back.
#[derive(Default)]
struct Frames {
    frames: Vec<Box<Frame>>,
    allocations: Vec<(HostPhys, usize)>,
    freed: Vec<u32>,
}

impl Frames {
    fn index(hpa: HostPhys) -> usize {
        ((hpa.0 - BASE) / 4096) as usize
    }
}

impl FrameAllocator for Frames {
    fn alloc_table(&mut self) -> Option<HostPhys> {
        self.alloc_contiguous(1)
    }
    fn alloc_contiguous(&mut self, pages: usize) -> Option<HostPhys> {
        let first = HostPhys(BASE + self.frames.len() as u64 * 4096);
        for _ in 0..pages {
            self.frames.push(Box::new(Frame([0; 512])));
            self.freed.push(0);
        }
        self.allocations.push((first, pages));
        Some(first)
    }
    fn table(&mut self, hpa: HostPhys) -> &mut [u64; 512] {
        &mut self.frames[Self::index(hpa)].0
    }
    fn free(&mut self, hpa: HostPhys, pages: usize) {
        assert!(
            self.allocations.contains(&(hpa, pages)),
            "{pages} frames at {hpa:?} are not one allocation"
        );
        let first = Self::index(hpa);
        for n in &mut self.freed[first..first + pages] {
            *n += 1;
        }
    }
}

fn host_cpuid(_leaf: u32, _sub: u32) -> [u32; 4] {
    [0; 4]
}

/// AMD-V with `asids` ASIDs and a pool of its own.
fn svm(asids: u32) -> Svm {
    Svm {
        caps: SvmCaps {
            npt: true,
            nrip_save: true,
            asids,
            decode_assists: true,
            flush_by_asid: true,
            vmcb_clean: true,
        },
        host_save: HostPhys(0x6000_0000),
        asids: Box::leak(Box::new(AsidPool::new())),
    }
}

/// 16 MiB of guest RAM plus a small piece higher up: NPT tables at every level.
fn memory() -> GuestMemory {
    let mut m = GuestMemory::new();
    for (gpa, hpa, len) in [
        (0, 0x4000_0000, 16 << 20),
        (0x7ff0_0000, 0x5000_0000, 0x1_0000),
    ] {
        // SAFETY: creating a vCPU never touches guest RAM through this pointer; a
        // dangling but non-null pointer is enough for the region bookkeeping.
        unsafe {
            m.add_region(GuestPhys(gpa), HostPhys(hpa), len, NonNull::dangling())
                .unwrap()
        };
    }
    m
}

fn create(svm: &mut Svm, frames: &mut Frames) -> Result<SvmVcpu, VcpuError> {
    let start = StartMode::Protected32 {
        entry: 0x1000,
        eax: 0,
        ebx: 0,
    };
    svm.create_vcpu(&memory(), start, CpuRules::for_guest(host_cpuid), frames)
}

#[test]
fn release_returns_every_frame_exactly_once() {
    let mut svm = svm(16);
    let mut frames = Frames::default();
    let v = create(&mut svm, &mut frames).unwrap();
    // VMCB, 3 IOPM pages, 2 MSRPM pages, and nested tables down to 4 KiB pages.
    assert!(frames.frames.len() >= 1 + 3 + 2 + 4);
    v.release(&mut frames);
    assert!(
        frames.freed.iter().all(|&n| n == 1),
        "times each frame was freed: {:?}",
        frames.freed
    );
}

#[test]
fn pause_exits_toggle_the_pause_intercept() {
    use crate::vmcb::intercept::misc1;
    let mut svm = svm(16);
    let mut frames = Frames::default();
    let mut v = create(&mut svm, &mut frames).unwrap();
    let before = v.vmcb.control.intercept_misc1;
    assert_eq!(before & misc1::PAUSE, 0, "off unless asked");
    v.vmcb.control.vmcb_clean = u32::MAX;
    v.set_pause_exits(true);
    assert_eq!(v.vmcb.control.intercept_misc1, before | misc1::PAUSE);
    assert_eq!(v.vmcb.control.vmcb_clean & 1, 0, "the intercepts are dirty");
    v.set_pause_exits(false);
    assert_eq!(v.vmcb.control.intercept_misc1, before);
    v.release(&mut frames);
}

#[test]
fn asids_are_shared_only_when_all_are_taken_and_sharers_flush_when_loaded() {
    let mut svm = svm(4);
    let mut frames = Frames::default();
    let mut live: Vec<SvmVcpu> = (0..3)
        .map(|_| create(&mut svm, &mut frames).unwrap())
        .collect();
    let asids: Vec<u32> = live.iter().map(|v| v.asid()).collect();
    assert_eq!(
        asids,
        [1, 2, 3],
        "ASID 0 is the host's; distinct while they last"
    );
    for v in live.iter_mut() {
        v.vmcb.control.tlb_control = 0;
        v.load();
        assert_eq!(
            v.vmcb.control.tlb_control, 0,
            "an ASID of its own: no flush"
        );
        v.put();
    }
    // A fourth guest shares an ASID; both holders now flush theirs when loaded.
    let mut fourth = create(&mut svm, &mut frames).unwrap();
    let shared = fourth.asid();
    for v in live.iter_mut().chain([&mut fourth]) {
        v.vmcb.control.tlb_control = 0;
        v.load();
        let flushes = v.vmcb.control.tlb_control == 3;
        assert_eq!(flushes, v.asid() == shared, "ASID {}", v.asid());
        v.put();
    }
    fourth.release(&mut frames);
    for v in live.iter_mut() {
        v.vmcb.control.tlb_control = 0;
        v.load();
        assert_eq!(v.vmcb.control.tlb_control, 0, "alone again: no flush");
        v.put();
    }
    let first = live.remove(0);
    first.release(&mut frames);
    let again = create(&mut svm, &mut frames).unwrap();
    assert_eq!(again.asid(), 1, "the released ASID, the only free one");
    for v in live.into_iter().chain([again]) {
        v.release(&mut frames);
    }
    assert!(frames.freed.iter().all(|&n| n == 1));
}
