//! x86 instruction decoding: prefixes, opcode, ModRM, SIB, displacement, immediate.
//!
//! Two users: the AMD-V backend on CPUs without NRIP save, which must find where the
//! exiting instruction ends to skip it (QEMU never offers NRIP save), and MMIO
//! emulation, which needs the operands of the instruction that touched device memory.
//! Encodings: Intel SDM Vol 2 (rev. 084, 2024), chapter 2 "Instruction format" and
//! appendix A "Opcode map"; AMD APM Vol 3 (rev. 3.35) 1.2 and appendix A agree.
//!
//! The decoder knows the length of every instruction in the one- and two-byte maps, the
//! 0F38/0F3A maps and VEX/EVEX encodings; it does not check whether the CPU implements
//! them.

use crate::recent::Recent;
use core::fmt;

/// The guest's execution mode, which sets default operand and address sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    /// Real mode (and virtual-8086): 16-bit defaults.
    Real,
    /// Protected mode with a 16-bit code segment.
    Prot16,
    /// Protected mode with a 32-bit code segment (also compatibility mode).
    Prot32,
    /// 64-bit mode.
    Long64,
}

impl CpuMode {
    fn default_16(self) -> bool {
        matches!(self, CpuMode::Real | CpuMode::Prot16)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the instruction does.
    Truncated,
    /// Longer than 15 bytes: #GP on hardware.
    TooLong,
    /// Not a valid opcode in this mode.
    Invalid { opcode: u8 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "instruction bytes end too early"),
            DecodeError::TooLong => write!(f, "instruction longer than 15 bytes"),
            DecodeError::Invalid { opcode } => write!(f, "invalid opcode {opcode:#04x}"),
        }
    }
}

/// Which opcode map the opcode byte belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    One,
    /// 0F xx (also VEX/EVEX map 1).
    Two,
    /// 0F 38 xx (VEX/EVEX map 2).
    Three38,
    /// 0F 3A xx (VEX/EVEX map 3).
    Three3A,
}

/// Segment-override prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegOverride {
    Es,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
}

/// Repeat prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rep {
    /// F3: REP / REPE.
    Rep,
    /// F2: REPNE.
    Repne,
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub len: usize,
    pub map: Map,
    pub opcode: u8,
    /// Operand size in bytes (2, 4 or 8) for instructions whose size follows the
    /// prefixes; byte-sized forms are told by the opcode.
    pub op_size: u8,
    /// Address size in bytes (2, 4 or 8).
    pub addr_size: u8,
    /// REX byte (0 when absent). For VEX/EVEX, R/X/B/W are folded in here.
    pub rex: u8,
    pub seg: Option<SegOverride>,
    pub rep: Option<Rep>,
    pub lock: bool,
    /// VEX or EVEX encoded.
    pub vex: bool,
    pub modrm: Option<u8>,
    pub sib: Option<u8>,
    pub disp: i64,
    pub imm: u64,
    /// Immediate size in bytes (0 when none).
    pub imm_size: u8,
}

impl Insn {
    /// ModRM.reg extended by REX.R.
    pub fn reg(&self) -> u8 {
        self.modrm
            .map_or(0, |m| ((m >> 3) & 7) | ((self.rex & 4) << 1))
    }
    /// ModRM.mod.
    pub fn mod_(&self) -> u8 {
        self.modrm.map_or(3, |m| m >> 6)
    }
    /// ModRM.rm extended by REX.B (for register operands).
    pub fn rm(&self) -> u8 {
        self.modrm.map_or(0, |m| (m & 7) | ((self.rex & 1) << 3))
    }
}

/// Immediate kinds of an opcode.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Imm {
    Nil,
    B,
    W,
    /// 2 or 4 bytes by operand size.
    Z,
    /// 2, 4 or 8 bytes by operand size (MOV r, imm with REX.W).
    V,
    /// ENTER: iw + ib.
    Enter,
    /// Far pointer: z + 2.
    Far,
    /// Memory offset: address size.
    Moffs,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        if self.pos >= 15 {
            return Err(DecodeError::TooLong);
        }
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated)
    }
    fn next(&mut self) -> Result<u8, DecodeError> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }
    fn le(&mut self, n: usize) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..n {
            v |= (self.next()? as u64) << (8 * i);
        }
        Ok(v)
    }
}

fn sign_extend(v: u64, bytes: usize) -> i64 {
    let shift = 64 - 8 * bytes as u32;
    ((v << shift) as i64) >> shift
}

/// ModRM presence and immediate kind of a one-byte-map opcode; `None` when invalid.
fn one_byte(op: u8, long: bool, modrm_reg: impl Fn() -> Option<u8>) -> Option<(bool, Imm)> {
    use Imm::*;
    let invalid64 = |r: (bool, Imm)| if long { None } else { Some(r) };
    Some(match op {
        0x00..=0x3f => match op & 7 {
            0..=3 => (true, Nil),
            4 => (false, B),
            5 => (false, Z),
            // push/pop segment, DAA/DAS/AAA/AAS: invalid in 64-bit mode.
            _ => return invalid64((false, Nil)),
        },
        0x40..=0x5f => (false, Nil),
        0x60 | 0x61 => return invalid64((false, Nil)),
        0x62 => return invalid64((true, Nil)),
        0x63 => (true, Nil),
        0x68 => (false, Z),
        0x69 => (true, Z),
        0x6a => (false, B),
        0x6b => (true, B),
        0x6c..=0x6f => (false, Nil),
        0x70..=0x7f => (false, B),
        0x80 | 0x83 => (true, B),
        0x81 => (true, Z),
        0x82 => return invalid64((true, B)),
        0x84..=0x8f => (true, Nil),
        0x9a => return invalid64((false, Far)),
        0x90..=0x9f => (false, Nil),
        0xa0..=0xa3 => (false, Moffs),
        0xa8 => (false, B),
        0xa9 => (false, Z),
        0xa4..=0xaf => (false, Nil),
        0xb0..=0xb7 => (false, B),
        0xb8..=0xbf => (false, V),
        0xc0 | 0xc1 => (true, B),
        0xc2 => (false, W),
        0xc3 => (false, Nil),
        0xc4 | 0xc5 => return invalid64((true, Nil)),
        0xc6 => (true, B),
        0xc7 => (true, Z),
        0xc8 => (false, Enter),
        0xc9 => (false, Nil),
        0xca => (false, W),
        0xcb | 0xcc => (false, Nil),
        0xcd => (false, B),
        0xce => return invalid64((false, Nil)),
        0xcf => (false, Nil),
        0xd0..=0xd3 => (true, Nil),
        0xd4 | 0xd5 => return invalid64((false, B)),
        0xd6 => return invalid64((false, Nil)),
        0xd7 => (false, Nil),
        0xd8..=0xdf => (true, Nil),
        0xe0..=0xe7 => (false, B),
        0xe8 | 0xe9 => (false, Z),
        0xea => return invalid64((false, Far)),
        0xeb => (false, B),
        0xec..=0xef => (false, Nil),
        0xf1 | 0xf4 | 0xf5 => (false, Nil),
        // TEST r/m, imm is /0 and /1 of the group-3 opcodes.
        0xf6 => (
            true,
            if matches!(modrm_reg(), Some(0 | 1)) {
                B
            } else {
                Nil
            },
        ),
        0xf7 => (
            true,
            if matches!(modrm_reg(), Some(0 | 1)) {
                Z
            } else {
                Nil
            },
        ),
        0xf8..=0xfd => (false, Nil),
        0xfe | 0xff => (true, Nil),
        // Prefixes and 0F are handled before this table.
        _ => return None,
    })
}

/// ModRM presence and immediate kind of a 0F-map opcode; `None` when invalid.
fn two_byte(op: u8) -> Option<(bool, Imm)> {
    use Imm::*;
    Some(match op {
        0x04
        | 0x0a
        | 0x0c
        | 0x24..=0x27
        | 0x36
        | 0x39
        | 0x3b..=0x3f
        | 0x7a
        | 0x7b
        | 0xa6
        | 0xa7 => return None,
        0x05..=0x09 | 0x0b | 0x0e => (false, Nil),
        0x0f => (true, B),
        0x30..=0x35 | 0x37 => (false, Nil),
        0x70..=0x73 => (true, B),
        0x77 => (false, Nil),
        0x80..=0x8f => (false, Z),
        0xa0..=0xa2 | 0xa8..=0xaa => (false, Nil),
        0xa4 | 0xac | 0xba | 0xc2 | 0xc4..=0xc6 => (true, B),
        0xc8..=0xcf => (false, Nil),
        _ => (true, Nil),
    })
}

/// The last few instructions decoded on a vCPU, kept with their bytes and mode.
/// Decoding depends on nothing else, so bytes and a mode that match are that instruction
/// again: a guest that touches device memory in a loop (a driver polling a register; the
/// timer's re-arm and the EOI of every interrupt) has each instruction decoded once.
/// Per vCPU (held by the VM while a VM has one).
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeCache {
    entries: Recent<Cached, DECODE_CACHE_SIZE>,
}

/// Instructions a [`DecodeCache`] keeps: an interrupt handler's EOI and the code it
/// interrupted (a timer re-arm, a polled status register) fit.
pub const DECODE_CACHE_SIZE: usize = 4;

#[derive(Clone, Copy, Debug)]
struct Cached {
    mode: CpuMode,
    /// The instruction's bytes, little-endian, and a mask of its `len` bytes: one
    /// compare answers "same bytes" for any length.
    bytes: u128,
    mask: u128,
    insn: Insn,
}

/// The first 16 bytes of `bytes` as a little-endian number (missing bytes read 0).
fn bytes_u128(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = bytes.len().min(16);
    b[..n].copy_from_slice(&bytes[..n]);
    u128::from_le_bytes(b)
}

impl DecodeCache {
    /// [`decode`], answered from the cache when an entry's mode and its instruction's
    /// bytes are those at the start of `bytes`.
    pub fn decode(&mut self, bytes: &[u8], mode: CpuMode) -> Result<Insn, DecodeError> {
        let value = bytes_u128(bytes);
        let hit = self.entries.find(|c| {
            c.mode == mode && c.insn.len <= bytes.len() && (value ^ c.bytes) & c.mask == 0
        });
        if let Some(c) = hit {
            return Ok(c.insn);
        }
        let insn = decode(bytes, mode)?;
        // `insn.len` is 1 to 15: the mask keeps its bytes.
        let mask = (1u128 << (8 * insn.len)) - 1;
        self.entries.insert(Cached {
            mode,
            bytes: value & mask,
            mask,
            insn,
        });
        Ok(insn)
    }
}

/// Decodes the instruction at the start of `bytes`.
pub fn decode(bytes: &[u8], mode: CpuMode) -> Result<Insn, DecodeError> {
    let long = mode == CpuMode::Long64;
    let mut c = Cursor { bytes, pos: 0 };
    let mut opsize_prefix = false;
    let mut addrsize_prefix = false;
    let mut seg = None;
    let mut rep = None;
    let mut lock = false;
    let mut rex = 0u8;
    // Legacy prefixes, then (64-bit mode) REX, which must come last.
    loop {
        let b = c.peek()?;
        match b {
            0x66 => opsize_prefix = true,
            0x67 => addrsize_prefix = true,
            0xf0 => lock = true,
            0xf2 => rep = Some(Rep::Repne),
            0xf3 => rep = Some(Rep::Rep),
            0x26 => seg = Some(SegOverride::Es),
            0x2e => seg = Some(SegOverride::Cs),
            0x36 => seg = Some(SegOverride::Ss),
            0x3e => seg = Some(SegOverride::Ds),
            0x64 => seg = Some(SegOverride::Fs),
            0x65 => seg = Some(SegOverride::Gs),
            0x40..=0x4f if long => {
                rex = b;
                c.pos += 1;
                // A legacy prefix after REX makes the REX ignored (SDM 2.2.1).
                if matches!(
                    c.peek()?,
                    0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65
                ) {
                    rex = 0;
                    continue;
                }
                break;
            }
            _ => break,
        }
        rex = 0;
        c.pos += 1;
    }

    let mut vex = false;
    let first = c.next()?;
    let (map, opcode) = match first {
        0x0f => match c.next()? {
            0x38 => (Map::Three38, c.next()?),
            0x3a => (Map::Three3A, c.next()?),
            op => (Map::Two, op),
        },
        // VEX (C4/C5) and EVEX (62): always in 64-bit mode; elsewhere only when the next
        // byte's top bits are 11 (otherwise LES/LDS/BOUND with a memory operand).
        0xc4 | 0xc5 | 0x62 if rex == 0 && (long || c.peek()? >> 6 == 3) => {
            vex = true;
            let p1 = c.next()?;
            let (map_sel, w) = match first {
                0xc5 => {
                    rex = 0x40 | if p1 & 0x80 == 0 { 4 } else { 0 };
                    (1, false)
                }
                0xc4 => {
                    let p2 = c.next()?;
                    rex = 0x40 | ((!p1 >> 5) & 7);
                    (p1 & 0x1f, p2 & 0x80 != 0)
                }
                _ => {
                    let p2 = c.next()?;
                    let _p3 = c.next()?;
                    rex = 0x40 | ((!p1 >> 5) & 7);
                    (p1 & 0x07, p2 & 0x80 != 0)
                }
            };
            if w {
                rex |= 8;
            }
            let map = match map_sel {
                1 => Map::Two,
                2 => Map::Three38,
                3 => Map::Three3A,
                _ => return Err(DecodeError::Invalid { opcode: first }),
            };
            (map, c.next()?)
        }
        op => (Map::One, op),
    };

    let op_size = if long && rex & 8 != 0 {
        8
    } else if mode.default_16() != opsize_prefix {
        2
    } else {
        4
    };
    let addr_size = match (mode, addrsize_prefix) {
        (CpuMode::Long64, false) => 8,
        (CpuMode::Long64, true) => 4,
        (m, p) if m.default_16() != p => 2,
        _ => 4,
    };

    let modrm_byte = c.peek().ok();
    let (has_modrm, imm) = match map {
        Map::One => one_byte(opcode, long, || modrm_byte.map(|m| (m >> 3) & 7)),
        Map::Two if vex => Some((
            true,
            if matches!(opcode, 0x70..=0x73 | 0xc2 | 0xc4..=0xc6) {
                Imm::B
            } else {
                Imm::Nil
            },
        )),
        Map::Two => two_byte(opcode),
        Map::Three38 => Some((true, Imm::Nil)),
        Map::Three3A => Some((true, Imm::B)),
    }
    .ok_or(DecodeError::Invalid { opcode })?;

    let mut modrm = None;
    let mut sib = None;
    let mut disp = 0i64;
    if has_modrm {
        let m = c.next()?;
        modrm = Some(m);
        let (mod_, rm) = (m >> 6, m & 7);
        if mod_ != 3 {
            let disp_size = if addr_size == 2 {
                match (mod_, rm) {
                    (0, 6) | (2, _) => 2,
                    (1, _) => 1,
                    _ => 0,
                }
            } else {
                let mut base = rm;
                if rm == 4 {
                    let s = c.next()?;
                    sib = Some(s);
                    base = s & 7;
                }
                match (mod_, base) {
                    (0, 5) => 4,
                    (1, _) => 1,
                    (2, _) => 4,
                    _ => 0,
                }
            };
            if disp_size > 0 {
                disp = sign_extend(c.le(disp_size)?, disp_size);
            }
        }
    }

    let imm_size = match imm {
        Imm::Nil => 0,
        Imm::B => 1,
        Imm::W => 2,
        Imm::Z => {
            if op_size == 2 {
                2
            } else {
                4
            }
        }
        Imm::V => op_size as usize,
        Imm::Enter => 3,
        Imm::Far => {
            if op_size == 2 {
                4
            } else {
                6
            }
        }
        Imm::Moffs => addr_size as usize,
    };
    let imm_val = c.le(imm_size)?;
    Ok(Insn {
        len: c.pos,
        map,
        opcode,
        op_size,
        addr_size,
        rex,
        seg,
        rep,
        lock,
        vex,
        modrm,
        sib,
        disp,
        imm: imm_val,
        imm_size: imm_size as u8,
    })
}

/// The length of the instruction at the start of `bytes`.
pub fn insn_length(bytes: &[u8], mode: CpuMode) -> Result<usize, DecodeError> {
    decode(bytes, mode).map(|i| i.len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CpuMode::*;

    #[test]
    fn the_decode_cache_answers_only_for_the_same_bytes_and_mode() {
        let mut c = DecodeCache::default();
        // mov eax, [rdi+0x10], then what follows it changes: the same instruction.
        let a = c.decode(&[0x8b, 0x47, 0x10, 0x90], Long64).unwrap();
        assert_eq!((a.len, a.disp, a.op_size), (3, 0x10, 4));
        assert_eq!(c.decode(&[0x8b, 0x47, 0x10, 0xcc], Long64), Ok(a));
        // One byte of the instruction differs: decoded again.
        let b = c.decode(&[0x8b, 0x47, 0x20], Long64).unwrap();
        assert_eq!(b.disp, 0x20);
        // A prefix in front: another instruction.
        let p = c.decode(&[0x66, 0x8b, 0x47, 0x20], Long64).unwrap();
        assert_eq!((p.len, p.op_size), (4, 2));
        // The same bytes in another mode: 16-bit operands, [bx+disp8].
        let r = c.decode(&[0x66, 0x8b, 0x47, 0x20], Real).unwrap();
        assert_eq!(r.op_size, 4, "66 in real mode makes the operand 32-bit");
        // Fewer bytes than the cached instruction: not answered from the cache.
        assert_eq!(c.decode(&[0x66, 0x8b], Real), Err(DecodeError::Truncated));
        // Two instructions taking turns (a timer re-arm and an EOI) both stay cached,
        // and each answer is its own instruction.
        let mut c = DecodeCache::default();
        let arm = [0x89, 0x87, 0x80, 0x03, 0, 0]; // mov [rdi+0x380], eax
        let eoi = [0x89, 0x0c, 0x25, 0xb0, 0, 0xe0, 0xfe]; // mov [0xfee000b0], ecx
        for _ in 0..3 {
            assert_eq!(c.decode(&arm, Long64).unwrap().disp, 0x380);
            assert_eq!(c.decode(&eoi, Long64).unwrap().disp as u32, 0xfee0_00b0);
        }
        assert_eq!(c.entries.len(), 2, "one entry each");
    }

    fn len(bytes: &[u8], mode: CpuMode) -> usize {
        insn_length(bytes, mode).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"))
    }

    #[test]
    fn instructions_that_exit() {
        // Each with trailing junk: the decoder must stop at the instruction's end.
        let junk = [0x90u8; 16];
        let cases: &[(&[u8], CpuMode, usize)] = &[
            (&[0x0f, 0x01, 0xd9], Long64, 3),       // vmmcall
            (&[0x0f, 0x01, 0xc1], Prot32, 3),       // vmcall
            (&[0x0f, 0xa2], Long64, 2),             // cpuid
            (&[0x0f, 0x32], Prot32, 2),             // rdmsr
            (&[0x0f, 0x30], Long64, 2),             // wrmsr
            (&[0xf4], Real, 1),                     // hlt
            (&[0xe6, 0xf4], Prot32, 2),             // out 0xf4, al
            (&[0xee], Long64, 1),                   // out dx, al
            (&[0xf3, 0x6e], Long64, 2),             // rep outsb
            (&[0x66, 0xef], Prot32, 2),             // out dx, ax
            (&[0x0f, 0x22, 0xd8], Long64, 3),       // mov cr3, rax
            (&[0x44, 0x0f, 0x20, 0xc0], Long64, 4), // mov rax, cr8
            (&[0x0f, 0x01, 0xd0], Long64, 3),       // xgetbv
            (&[0x0f, 0x09], Long64, 2),             // wbinvd
            (&[0x0f, 0x01, 0xf9], Long64, 3),       // rdtscp
        ];
        for &(b, mode, want) in cases {
            let mut buf = [0u8; 32];
            buf[..b.len()].copy_from_slice(b);
            buf[b.len()..b.len() + 16].copy_from_slice(&junk);
            assert_eq!(len(&buf, mode), want, "{b:02x?}");
        }
    }

    #[test]
    fn modrm_sib_and_displacements() {
        // mov eax, [rip+0x12345678]
        assert_eq!(len(&[0x8b, 0x05, 0x78, 0x56, 0x34, 0x12], Long64), 6);
        // mov [rax+rcx*4+0x10], edx
        assert_eq!(len(&[0x89, 0x54, 0x88, 0x10], Long64), 4);
        // mov eax, [rbp+0] (SIB, base 5, mod 1)
        assert_eq!(len(&[0x8b, 0x44, 0x25, 0x00], Long64), 4);
        // mov eax, [disp32] via SIB with base 5 and mod 0
        assert_eq!(len(&[0x8b, 0x04, 0x25, 0, 0, 0xe0, 0xfe], Long64), 7);
        // mov dword [rdi+0x100], 0x11223344
        assert_eq!(
            len(&[0xc7, 0x87, 0, 1, 0, 0, 0x44, 0x33, 0x22, 0x11], Long64),
            10
        );
        // 16-bit addressing: mov ax, [0x1234] (mod 0 rm 6 -> disp16); mov ax, [bx+si+0x12]
        assert_eq!(len(&[0x8b, 0x06, 0x34, 0x12], Real), 4);
        assert_eq!(len(&[0x8b, 0x40, 0x12], Real), 3);
        // 67 in real mode switches to 32-bit addressing: mov ax, [eax*2+disp32]
        assert_eq!(len(&[0x67, 0x8b, 0x04, 0x45, 1, 2, 3, 4], Real), 8);
    }

    #[test]
    fn immediates_follow_operand_size() {
        assert_eq!(len(&[0xb8, 1, 2, 3, 4], Prot32), 5); // mov eax, imm32
        assert_eq!(len(&[0xb8, 1, 2], Real), 3); // mov ax, imm16
        assert_eq!(len(&[0x66, 0xb8, 1, 2], Prot32), 4);
        assert_eq!(len(&[0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8], Long64), 10); // movabs
        assert_eq!(len(&[0x48, 0x81, 0xc4, 1, 2, 3, 4], Long64), 7); // add rsp, imm32
        assert_eq!(len(&[0xf6, 0xc0, 0x01], Long64), 3); // test al, 1
        assert_eq!(len(&[0xf6, 0xd0], Long64), 2); // not al
        assert_eq!(len(&[0xf7, 0xc0, 1, 0, 0, 0], Prot32), 6); // test eax, 1
        assert_eq!(len(&[0xf7, 0xd8], Prot32), 2); // neg eax
        assert_eq!(len(&[0xc8, 0x10, 0x00, 0x01], Prot32), 4); // enter
        assert_eq!(len(&[0xea, 1, 2, 3, 4, 0x08, 0], Prot32), 7); // jmp far ptr16:32
        assert_eq!(len(&[0xa1, 1, 2, 3, 4, 5, 6, 7, 8], Long64), 9); // mov eax, [moffs64]
        assert_eq!(len(&[0xa1, 1, 2], Real), 3);
        assert_eq!(len(&[0x0f, 0x84, 1, 2, 3, 4], Long64), 6); // je rel32
        assert_eq!(len(&[0x0f, 0xba, 0xe0, 0x05], Long64), 4); // bt eax, 5
        assert_eq!(len(&[0x66, 0x0f, 0x3a, 0x0f, 0xc1, 0x08], Long64), 6); // palignr
        assert_eq!(len(&[0x66, 0x0f, 0x38, 0x00, 0xc1], Long64), 5); // pshufb
    }

    #[test]
    fn vex_and_evex() {
        // vmovdqu ymm0, [rax]   C5 FE 6F 00
        assert_eq!(len(&[0xc5, 0xfe, 0x6f, 0x00], Long64), 4);
        // vpshufd xmm0, xmm1, 0x1b   C5 F9 70 C1 1B
        assert_eq!(len(&[0xc5, 0xf9, 0x70, 0xc1, 0x1b], Long64), 5);
        // vpermq ymm0, ymm1, 0x4e   C4 E3 FD 00 C1 4E
        assert_eq!(len(&[0xc4, 0xe3, 0xfd, 0x00, 0xc1, 0x4e], Long64), 6);
        // vmovdqu32 zmm0, [rax+0x40]  62 F1 7E 48 6F 40 01
        assert_eq!(len(&[0x62, 0xf1, 0x7e, 0x48, 0x6f, 0x40, 0x01], Long64), 7);
        // In 32-bit mode C4 with a memory ModRM is LES.
        assert_eq!(len(&[0xc4, 0x05, 0x34, 0x12, 0, 0], Prot32), 6);
    }

    #[test]
    fn operand_fields() {
        // mov [rbx+0x10], r9d  (44 89 4b 10)
        let i = decode(&[0x44, 0x89, 0x4b, 0x10], Long64).unwrap();
        assert_eq!(
            (i.len, i.opcode, i.reg(), i.mod_(), i.disp, i.op_size),
            (4, 0x89, 9, 1, 0x10, 4)
        );
        // movzx eax, word [rdi-8]
        let i = decode(&[0x0f, 0xb7, 0x47, 0xf8], Long64).unwrap();
        assert_eq!((i.map, i.opcode, i.disp), (Map::Two, 0xb7, -8));
        // mov byte [rax], 0x7f with fs override
        let i = decode(&[0x64, 0xc6, 0x00, 0x7f], Long64).unwrap();
        assert_eq!((i.seg, i.imm, i.imm_size), (Some(SegOverride::Fs), 0x7f, 1));
        // REX followed by a legacy prefix is ignored: 48 66 89 c0 -> mov ax, ax
        let i = decode(&[0x48, 0x66, 0x89, 0xc0], Long64).unwrap();
        assert_eq!((i.len, i.op_size, i.rex), (4, 2, 0));
        // 40-4F outside long mode are INC/DEC.
        assert_eq!(len(&[0x48, 0x90], Prot32), 1);
    }

    #[test]
    fn errors() {
        assert_eq!(insn_length(&[0x0f], Long64), Err(DecodeError::Truncated));
        assert_eq!(
            insn_length(&[0xb8, 1, 2], Prot32),
            Err(DecodeError::Truncated)
        );
        assert_eq!(insn_length(&[], Long64), Err(DecodeError::Truncated));
        assert_eq!(insn_length(&[0x66; 20], Long64), Err(DecodeError::TooLong));
        assert_eq!(
            insn_length(&[0x06], Long64),
            Err(DecodeError::Invalid { opcode: 0x06 })
        );
        assert_eq!(insn_length(&[0x06], Prot32), Ok(1));
        assert_eq!(
            insn_length(&[0x0f, 0x0a], Long64),
            Err(DecodeError::Invalid { opcode: 0x0a })
        );
    }
}
