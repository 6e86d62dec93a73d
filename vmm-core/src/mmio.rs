//! MMIO emulation: carrying out the instruction that touched device memory.
//!
//! Device pages (the local APIC, the IOAPIC) are not mapped in the nested page tables,
//! so a guest access to them exits (EPT violation / NPF) with the guest-physical
//! address. Janus decodes the instruction at RIP ([`crate::decode`]), performs the
//! access against the device, writes the result where the instruction would have put it
//! and moves RIP past it. The forms are the ones drivers use on device memory:
//! MOV (88/89/8A/8B/C6/C7/A0-A3), MOVZX (0F B6/B7), MOVSX (0F BE/BF), MOVSXD (63), TEST
//! (84/85, F6/F7 /0: compilers fold a volatile read and a bit test into one), and the
//! string forms STOS (AA/AB) and MOVS (A4/A5), one element per exit.
//! Encodings: Intel SDM Vol 2 (rev. 084) instruction pages; register semantics
//! (a 32-bit destination zero-extends, 8/16-bit ones merge): SDM Vol 1 3.4.1.1.

use crate::addr::{GuestPhys, GuestVirt};
use crate::cpu_rules::rflags;
use crate::decode::{DecodeError, Insn, Map, SegOverride};
use crate::fetch::{decode_at_rip, InsnCache};
use crate::memory::GuestMemory;
use crate::operand::size_mask;
use crate::vcpu::{ArchVcpu, Gpr, SegReg};
use crate::walk::{translate, Access, WalkError};
use core::fmt;

/// Device memory as the MMIO emulator sees it.
pub trait MmioBus {
    /// A read of `size` bytes at `gpa`; `None` when no device answers there.
    fn read(&mut self, gpa: GuestPhys, size: u8) -> Option<u64>;
    /// A write; `false` when no device answers there.
    fn write(&mut self, gpa: GuestPhys, size: u8, value: u64) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    Decode(DecodeError),
    /// An instruction form the emulator does not carry out on device memory.
    Unsupported {
        opcode: u8,
        map: Map,
    },
    /// No device (and no RAM) at this address.
    NoDevice(GuestPhys),
    /// A string operand's other side lies outside guest RAM.
    Memory(GuestPhys),
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmioError::Decode(e) => write!(f, "cannot decode the instruction: {e}"),
            MmioError::Unsupported { opcode, map } => {
                let prefix = match map {
                    Map::One => "",
                    Map::Two => "0f ",
                    Map::Three38 => "0f 38 ",
                    Map::Three3A => "0f 3a ",
                };
                write!(
                    f,
                    "instruction {prefix}{opcode:02x} is not emulated on device memory"
                )
            }
            MmioError::NoDevice(gpa) => write!(f, "no RAM or device at guest-physical {gpa}"),
            MmioError::Memory(gpa) => write!(
                f,
                "string operand at guest-physical {gpa} is outside guest RAM"
            ),
        }
    }
}

/// What the guest gets after the emulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioOutcome {
    /// The instruction is done; it is `len` bytes long. The caller completes it (moves
    /// RIP past it and ends the interrupt shadow).
    Completed { len: usize },
    /// One element of a REP string instruction is done and RCX is not yet 0: RIP stays,
    /// and the guest re-executes the instruction for the next one.
    Again,
    /// The guest's own page tables fault on a string operand: inject this #PF.
    PageFault { gva: GuestVirt, error_code: u32 },
}

fn sign_extend(v: u64, size: u8) -> u64 {
    let shift = 64 - 8 * size as u32;
    (((v << shift) as i64) >> shift) as u64
}

/// Reads register `r` at `size`, with the legacy high-byte registers (AH, CH, DH, BH)
/// for 4-7 without REX.
fn get_reg(vcpu: &impl ArchVcpu, r: u8, size: u8, rex: bool) -> u64 {
    if size == 1 && !rex && (4..8).contains(&r) {
        return (vcpu.gpr(Gpr::from_index(r - 4).unwrap_or(Gpr::Rax)) >> 8) & 0xff;
    }
    vcpu.gpr(Gpr::from_index(r).unwrap_or(Gpr::Rax)) & size_mask(size)
}

/// Writes register `r` as an instruction with a `size`-byte destination would.
fn set_reg(vcpu: &mut impl ArchVcpu, r: u8, size: u8, rex: bool, v: u64) {
    if size == 1 && !rex && (4..8).contains(&r) {
        let g = Gpr::from_index(r - 4).unwrap_or(Gpr::Rax);
        let old = vcpu.gpr(g);
        vcpu.set_gpr(g, (old & !0xff00) | ((v & 0xff) << 8));
        return;
    }
    let g = Gpr::from_index(r).unwrap_or(Gpr::Rax);
    let new = match size {
        4 => v & 0xffff_ffff,
        8 => v,
        _ => (vcpu.gpr(g) & !size_mask(size)) | (v & size_mask(size)),
    };
    vcpu.set_gpr(g, new);
}

fn seg_of(o: Option<SegOverride>) -> SegReg {
    match o {
        Some(SegOverride::Es) => SegReg::Es,
        Some(SegOverride::Cs) => SegReg::Cs,
        Some(SegOverride::Ss) => SegReg::Ss,
        Some(SegOverride::Fs) => SegReg::Fs,
        Some(SegOverride::Gs) => SegReg::Gs,
        Some(SegOverride::Ds) | None => SegReg::Ds,
    }
}

/// One side of a string instruction: device or RAM.
fn string_read(
    bus: &mut impl MmioBus,
    mem: &GuestMemory,
    gpa: GuestPhys,
    size: u8,
) -> Result<u64, MmioError> {
    if mem.contains(gpa, size as u64) {
        let mut b = [0u8; 8];
        mem.read(gpa, &mut b[..size as usize])
            .map_err(|_| MmioError::Memory(gpa))?;
        return Ok(u64::from_le_bytes(b));
    }
    bus.read(gpa, size).ok_or(MmioError::NoDevice(gpa))
}

fn string_write(
    bus: &mut impl MmioBus,
    mem: &mut GuestMemory,
    gpa: GuestPhys,
    size: u8,
    v: u64,
) -> Result<(), MmioError> {
    if mem.contains(gpa, size as u64) {
        return mem
            .write(gpa, &v.to_le_bytes()[..size as usize])
            .map_err(|_| MmioError::Memory(gpa));
    }
    if bus.write(gpa, size, v) {
        Ok(())
    } else {
        Err(MmioError::NoDevice(gpa))
    }
}

/// Emulates the instruction at RIP, which accessed device memory at `gpa`. It does not
/// move RIP: the caller completes the instruction on [`MmioOutcome::Completed`].
pub fn emulate(
    vcpu: &mut impl ArchVcpu,
    mem: &mut GuestMemory,
    gpa: GuestPhys,
    bus: &mut impl MmioBus,
    cache: &mut InsnCache,
) -> Result<MmioOutcome, MmioError> {
    let insn = decode_at_rip(vcpu, mem, cache).map_err(MmioError::Decode)?;
    execute(vcpu, mem, gpa, bus, &insn)
}

fn execute<B: MmioBus>(
    vcpu: &mut impl ArchVcpu,
    mem: &mut GuestMemory,
    gpa: GuestPhys,
    bus: &mut B,
    i: &Insn,
) -> Result<MmioOutcome, MmioError> {
    let rex = i.rex != 0;
    let unsupported = MmioError::Unsupported {
        opcode: i.opcode,
        map: i.map,
    };
    let dev_read = |bus: &mut B, size: u8| bus.read(gpa, size).ok_or(MmioError::NoDevice(gpa));
    match (i.map, i.opcode) {
        // MOV r/m, r
        (Map::One, 0x88 | 0x89) => {
            let size = if i.opcode == 0x88 { 1 } else { i.op_size };
            let v = get_reg(vcpu, i.reg(), size, rex);
            if !bus.write(gpa, size, v) {
                return Err(MmioError::NoDevice(gpa));
            }
        }
        // MOV r, r/m
        (Map::One, 0x8a | 0x8b) => {
            let size = if i.opcode == 0x8a { 1 } else { i.op_size };
            let v = dev_read(bus, size)?;
            set_reg(vcpu, i.reg(), size, rex, v);
        }
        // MOV r/m, imm (the /0 form only)
        (Map::One, 0xc6 | 0xc7) if i.reg() & 7 == 0 => {
            let size = if i.opcode == 0xc6 { 1 } else { i.op_size };
            let v = if size == 8 {
                sign_extend(i.imm, 4)
            } else {
                i.imm & size_mask(size)
            };
            if !bus.write(gpa, size, v) {
                return Err(MmioError::NoDevice(gpa));
            }
        }
        // MOV AL/eAX, moffs and back
        (Map::One, 0xa0..=0xa3) => {
            let size = if i.opcode & 1 == 0 { 1 } else { i.op_size };
            if i.opcode < 0xa2 {
                let v = dev_read(bus, size)?;
                set_reg(vcpu, 0, size, rex, v);
            } else if !bus.write(gpa, size, get_reg(vcpu, 0, size, rex)) {
                return Err(MmioError::NoDevice(gpa));
            }
        }
        // MOVZX / MOVSX
        (Map::Two, 0xb6 | 0xb7 | 0xbe | 0xbf) => {
            let src = if i.opcode & 1 == 0 { 1 } else { 2 };
            let v = dev_read(bus, src)?;
            let v = if i.opcode >= 0xbe {
                sign_extend(v, src)
            } else {
                v
            };
            set_reg(vcpu, i.reg(), i.op_size, rex, v & size_mask(i.op_size));
        }
        // MOVSXD r, r/m32 (64-bit mode; ARPL elsewhere, which never touches device memory).
        (Map::One, 0x63) => {
            let v = dev_read(bus, 4)?;
            let v = if i.op_size == 8 { sign_extend(v, 4) } else { v };
            set_reg(vcpu, i.reg(), i.op_size, rex, v);
        }
        // TEST r/m, r and TEST r/m, imm: the flags of the AND, CF = OF = 0 (SDM Vol 2B TEST;
        // AF is undefined and cleared here).
        (Map::One, 0x84 | 0x85) | (Map::One, 0xf6 | 0xf7)
            if i.opcode < 0xf6 || i.reg() & 7 == 0 =>
        {
            let size = if i.opcode & 1 == 0 { 1 } else { i.op_size };
            let other = if i.opcode < 0xf6 {
                get_reg(vcpu, i.reg(), size, rex)
            } else if size == 8 {
                sign_extend(i.imm, 4)
            } else {
                i.imm & size_mask(size)
            };
            let v = dev_read(bus, size)? & other;
            let flags = vcpu.rflags() & !rflags::STATUS | logic_flags(v, size);
            vcpu.set_rflags(flags);
        }
        // STOS, MOVS: one element per exit.
        (Map::One, 0xaa | 0xab | 0xa4 | 0xa5) => {
            return string_op(vcpu, mem, bus, i);
        }
        _ => return Err(unsupported),
    }
    Ok(MmioOutcome::Completed { len: i.len })
}

/// SF, ZF and PF of a logical instruction's `size`-byte result (CF, OF, AF clear).
fn logic_flags(v: u64, size: u8) -> u64 {
    let mut f = 0;
    if v >> (size as u32 * 8 - 1) & 1 != 0 {
        f |= rflags::SF;
    }
    if v & size_mask(size) == 0 {
        f |= rflags::ZF;
    }
    if (v as u8).count_ones().is_multiple_of(2) {
        f |= rflags::PF;
    }
    f
}

fn string_op(
    vcpu: &mut impl ArchVcpu,
    mem: &mut GuestMemory,
    bus: &mut impl MmioBus,
    i: &Insn,
) -> Result<MmioOutcome, MmioError> {
    let size = if i.opcode & 1 == 0 { 1 } else { i.op_size };
    let amask = size_mask(i.addr_size);
    let rep = i.rep.is_some();
    // REP with RCX = 0 does nothing.
    if rep && vcpu.gpr(Gpr::Rcx) & amask == 0 {
        return Ok(MmioOutcome::Completed { len: i.len });
    }
    let paging = vcpu.paging();
    let user = vcpu.cpl() == 3;
    let di = vcpu.gpr(Gpr::Rdi) & amask;
    let dst_va = GuestVirt(vcpu.segment(SegReg::Es).base.wrapping_add(di));
    let dst = match translate(
        mem,
        &paging,
        dst_va,
        Access {
            write: true,
            user,
            fetch: false,
        },
    ) {
        Ok(g) => g,
        Err(WalkError::PageFault { gva, error_code }) => {
            return Ok(MmioOutcome::PageFault { gva, error_code })
        }
        Err(WalkError::Memory(_)) => return Err(MmioError::Memory(GuestPhys(dst_va.0))),
    };
    let value = if i.opcode >= 0xaa {
        get_reg(vcpu, 0, size, true)
    } else {
        let si = vcpu.gpr(Gpr::Rsi) & amask;
        let src_va = GuestVirt(vcpu.segment(seg_of(i.seg)).base.wrapping_add(si));
        let src = match translate(
            mem,
            &paging,
            src_va,
            Access {
                write: false,
                user,
                fetch: false,
            },
        ) {
            Ok(g) => g,
            Err(WalkError::PageFault { gva, error_code }) => {
                return Ok(MmioOutcome::PageFault { gva, error_code })
            }
            Err(WalkError::Memory(_)) => return Err(MmioError::Memory(GuestPhys(src_va.0))),
        };
        string_read(bus, mem, src, size)?
    };
    string_write(bus, mem, dst, size, value)?;
    let step = if vcpu.rflags() & rflags::DF != 0 {
        (size as u64).wrapping_neg()
    } else {
        size as u64
    };
    let bump = |v: u64| (v & !amask) | (v.wrapping_add(step) & amask);
    let rdi = vcpu.gpr(Gpr::Rdi);
    vcpu.set_gpr(Gpr::Rdi, bump(rdi));
    if i.opcode < 0xaa {
        let rsi = vcpu.gpr(Gpr::Rsi);
        vcpu.set_gpr(Gpr::Rsi, bump(rsi));
    }
    if rep {
        let rcx = vcpu.gpr(Gpr::Rcx);
        let left = (rcx & amask).wrapping_sub(1) & amask;
        vcpu.set_gpr(Gpr::Rcx, (rcx & !amask) | left);
        if left != 0 {
            // Re-execute for the next element (it exits again if it touches a device).
            return Ok(MmioOutcome::Again);
        }
    }
    Ok(MmioOutcome::Completed { len: i.len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::testing::ram;
    use crate::mock::MockVcpu;
    extern crate std;
    use std::vec::Vec;

    const DEV: u64 = 0xfee0_0000;

    /// A device page at DEV that records accesses and reads back `0x80 + offset` bytes.
    #[derive(Default)]
    struct Dev {
        writes: Vec<(u64, u8, u64)>,
        reads: Vec<(u64, u8)>,
    }
    impl MmioBus for Dev {
        fn read(&mut self, gpa: GuestPhys, size: u8) -> Option<u64> {
            (gpa.0 >> 12 == DEV >> 12).then(|| {
                self.reads.push((gpa.0 - DEV, size));
                0x8899_aabb_ccdd_eef0u64 & size_mask(size)
            })
        }
        fn write(&mut self, gpa: GuestPhys, size: u8, value: u64) -> bool {
            if gpa.0 >> 12 != DEV >> 12 {
                return false;
            }
            self.writes.push((gpa.0 - DEV, size, value));
            true
        }
    }

    /// A vCPU in 64-bit mode (paging off is fine for the walker with LMA set) at 0x1000
    /// whose instruction bytes are `code`.
    /// [`emulate`] at guest-physical `gpa` with a fresh instruction cache.
    fn emu(
        v: &mut MockVcpu,
        mem: &mut GuestMemory,
        gpa: u64,
        d: &mut Dev,
    ) -> Result<MmioOutcome, MmioError> {
        emulate(v, mem, GuestPhys(gpa), d, &mut InsnCache::default())
    }

    fn setup(code: &[u8], long: bool) -> (MockVcpu, GuestMemory) {
        let mut v = MockVcpu::new(&[]);
        let mut mem = ram(0x10_0000);
        mem.write(GuestPhys(0x1000), code).unwrap();
        v.rip = 0x1000;
        if long {
            v.efer = 1 << 10;
            v.segs[SegReg::Cs as usize].attr = 0xa9b; // L=1
        }
        (v, mem)
    }

    #[test]
    fn test_sets_the_flags_of_the_and_and_writes_nothing() {
        use crate::cpu_rules::rflags::{CF, OF, PF, SF, ZF};
        let mut d = Dev::default();
        // test dword [rax], 0x2000: the device reads 0xccdd_eef0 (bit 13 set). CF and OF
        // were set before: TEST clears them.
        let (mut v, mut mem) = setup(&[0xf7, 0x00, 0x00, 0x20, 0, 0], true);
        v.rflags = 2 | CF | OF | ZF;
        assert_eq!(
            emu(&mut v, &mut mem, DEV + 0x300, &mut d),
            Ok(MmioOutcome::Completed { len: 6 })
        );
        assert_eq!(
            v.rflags,
            2 | PF,
            "non-zero, positive, low byte 0: even parity"
        );
        assert!(d.writes.is_empty());
        // test [rax], ecx with ecx = 0x0f: zero result.
        let (mut v, mut mem) = setup(&[0x85, 0x08], true);
        v.regs[1] = 0x0f;
        emu(&mut v, &mut mem, DEV + 0x300, &mut d).unwrap();
        assert_eq!(v.rflags & (ZF | SF), ZF);
        // test byte [rax], 0x80: the device's 0xf0 has the sign bit.
        let (mut v, mut mem) = setup(&[0xf6, 0x00, 0x80], true);
        emu(&mut v, &mut mem, DEV + 0x300, &mut d).unwrap();
        assert_eq!(v.rflags & (ZF | SF | PF), SF);
        // F7 /2 (NOT) is not TEST.
        let (mut v, mut mem) = setup(&[0xf7, 0x10], true);
        assert!(emu(&mut v, &mut mem, DEV + 0x300, &mut d).is_err());
    }

    #[test]
    fn mov_store_and_load_forms() {
        // mov [rbx+0x80], r9d  (44 89 8b 80 00 00 00)
        let (mut v, mut mem) = setup(&[0x44, 0x89, 0x8b, 0x80, 0, 0, 0], true);
        v.regs[9] = 0xffff_ffff_1234_5678;
        let mut d = Dev::default();
        assert_eq!(
            emu(&mut v, &mut mem, DEV + 0x80, &mut d),
            Ok(MmioOutcome::Completed { len: 7 })
        );
        assert_eq!(d.writes, [(0x80, 4, 0x1234_5678)]);
        assert_eq!(v.rip, 0x1000, "the caller completes the instruction");

        // mov eax, [rdi] zero-extends into RAX.
        let (mut v, mut mem) = setup(&[0x8b, 0x07], true);
        v.regs[0] = u64::MAX;
        assert_eq!(
            emu(&mut v, &mut mem, DEV + 0x30, &mut d),
            Ok(MmioOutcome::Completed { len: 2 })
        );
        assert_eq!(v.reg(Gpr::Rax), 0xccdd_eef0);

        // mov ah, [rsi] (no REX: high byte) merges.
        let (mut v, mut mem) = setup(&[0x8a, 0x26], true);
        v.regs[0] = 0x1111_1111;
        emu(&mut v, &mut mem, DEV, &mut d).unwrap();
        assert_eq!(v.reg(Gpr::Rax), 0x1111_f011);

        // mov dword [rax], 0x11223344
        let (mut v, mut mem) = setup(&[0xc7, 0x00, 0x44, 0x33, 0x22, 0x11], true);
        let mut d = Dev::default();
        emu(&mut v, &mut mem, DEV + 0xb0, &mut d).unwrap();
        assert_eq!(d.writes, [(0xb0, 4, 0x1122_3344)]);

        // mov qword [rax], -1 (imm32 sign-extended)
        let (mut v, mut mem) = setup(&[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff], true);
        let mut d = Dev::default();
        emu(&mut v, &mut mem, DEV, &mut d).unwrap();
        assert_eq!(d.writes, [(0, 8, u64::MAX)]);

        // 32-bit code: mov eax, [0xfee00020] via moffs (a1 + 4 bytes)
        let (mut v, mut mem) = setup(&[0xa1, 0x20, 0, 0xe0, 0xfe], false);
        let mut d = Dev::default();
        assert_eq!(
            emu(&mut v, &mut mem, DEV + 0x20, &mut d),
            Ok(MmioOutcome::Completed { len: 5 })
        );
        assert_eq!(v.reg(Gpr::Rax), 0xccdd_eef0);
    }

    #[test]
    fn movzx_and_movsx() {
        let mut d = Dev::default();
        // movzx ecx, byte [rax]
        let (mut v, mut mem) = setup(&[0x0f, 0xb6, 0x08], true);
        v.regs[1] = u64::MAX;
        emu(&mut v, &mut mem, DEV, &mut d).unwrap();
        assert_eq!(v.reg(Gpr::Rcx), 0xf0);
        // movsx rdx, word [rax]  (48 0f bf 10)
        let (mut v, mut mem) = setup(&[0x48, 0x0f, 0xbf, 0x10], true);
        emu(&mut v, &mut mem, DEV, &mut d).unwrap();
        assert_eq!(v.reg(Gpr::Rdx), 0xffff_ffff_ffff_eef0);
        // movsxd rbx, dword [rax]  (48 63 18)
        let (mut v, mut mem) = setup(&[0x48, 0x63, 0x18], true);
        emu(&mut v, &mut mem, DEV, &mut d).unwrap();
        assert_eq!(v.reg(Gpr::Rbx), 0xffff_ffff_ccdd_eef0);
        assert_eq!(d.reads, [(0, 1), (0, 2), (0, 4)]);
    }

    #[test]
    fn string_forms_one_element_per_exit() {
        // rep stosd with RCX=2 to the device at RDI.
        let (mut v, mut mem) = setup(&[0xf3, 0xab], true);
        v.regs[Gpr::Rdi as usize] = DEV + 0x80;
        v.regs[Gpr::Rcx as usize] = 2;
        v.regs[0] = 0x42;
        let mut d = Dev::default();
        assert_eq!(
            emu(&mut v, &mut mem, DEV + 0x80, &mut d),
            Ok(MmioOutcome::Again),
            "re-executes for the rest"
        );
        assert_eq!((v.reg(Gpr::Rcx), v.reg(Gpr::Rdi)), (1, DEV + 0x84));
        assert_eq!(
            emu(&mut v, &mut mem, DEV + 0x84, &mut d),
            Ok(MmioOutcome::Completed { len: 2 })
        );
        assert_eq!(v.reg(Gpr::Rcx), 0);
        assert_eq!(d.writes, [(0x80, 4, 0x42), (0x84, 4, 0x42)]);

        // movsd from the device to RAM.
        let (mut v, mut mem) = setup(&[0xa5], true);
        v.regs[Gpr::Rsi as usize] = DEV + 0x30;
        v.regs[Gpr::Rdi as usize] = 0x2000;
        assert_eq!(
            emu(&mut v, &mut mem, DEV + 0x30, &mut d),
            Ok(MmioOutcome::Completed { len: 1 })
        );
        assert_eq!(mem.read_u32(GuestPhys(0x2000)).unwrap(), 0xccdd_eef0);
        assert_eq!((v.reg(Gpr::Rsi), v.reg(Gpr::Rdi)), (DEV + 0x34, 0x2004));
    }

    #[test]
    fn what_cannot_be_done_says_why() {
        let mut d = Dev::default();
        // add [rax], ecx: not emulated on device memory.
        let (mut v, mut mem) = setup(&[0x01, 0x08], true);
        let e = emu(&mut v, &mut mem, DEV, &mut d).unwrap_err();
        assert_eq!(
            e,
            MmioError::Unsupported {
                opcode: 0x01,
                map: Map::One
            }
        );
        assert!(std::format!("{e}").contains("01"));
        assert_eq!(v.rip, 0x1000, "RIP unchanged");
        // A load from where nothing is.
        let (mut v, mut mem) = setup(&[0x8b, 0x07], true);
        assert_eq!(
            emu(&mut v, &mut mem, 0xd000_0000, &mut d),
            Err(MmioError::NoDevice(GuestPhys(0xd000_0000)))
        );
        // Truncated bytes (code at the end of RAM).
        let (mut v, mut mem) = setup(&[], true);
        v.rip = 0xf_ffff;
        mem.write(GuestPhys(0xf_ffff), &[0x8b]).unwrap();
        assert!(matches!(
            emu(&mut v, &mut mem, DEV, &mut d),
            Err(MmioError::Decode(_))
        ));
    }
}
