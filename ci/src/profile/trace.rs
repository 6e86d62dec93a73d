//! Reading a Bochs instruction trace: its lines (`parse_line`), the exits in it, cut at
//! the world switch (`split_exits`), the functions of Janus' ELF its addresses fall in
//! (`Symbols`), and the instructions per exit each function takes (`Profile`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// One executed instruction of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insn {
    /// Its address (CS:RIP's offset; CS' base is 0 in long mode and in Janus' guests);
    /// None where the debugger cannot translate it (the guest's code under AMD-V's nested
    /// paging: `??? (physical address not available)`).
    pub addr: Option<u64>,
    /// Its length in bytes (0 without an address).
    pub len: u64,
    /// The first word of its disassembly (`vmrun`, `mov`, ...; empty without an address).
    pub mnemonic: String,
}

/// One line of Bochs 2.7's instruction trace:
/// `(0).[TICK] [0xPHYS] CS:ADDR (SYMBOL): DISASSEMBLY ; BYTES`, or
/// `(0).[TICK] ??? (physical address not available)`, possibly behind the debugger's
/// prompt. Only lines with the tick stamp `.[TICK]` are traced instructions: where it
/// stops, the debugger shows the next one without it (`(0) [0x...] ...`; but a guest's
/// `???` has it: [`parse_trace`] drops that one).
pub fn parse_line(line: &str) -> Option<Insn> {
    let (_, rest) = line.split_once(").[")?;
    let (tick, rest) = rest.split_once("] ")?;
    tick.parse::<u64>().ok()?;
    if rest.starts_with("??? (physical address not available)") {
        return Some(Insn {
            addr: None,
            len: 0,
            mnemonic: String::new(),
        });
    }
    let rest = rest.strip_prefix("[0x")?;
    let (_phys, rest) = rest.split_once("] ")?;
    let (at, rest) = rest.split_once(' ')?;
    let (_selector, addr) = at.split_once(':')?;
    let addr = u64::from_str_radix(addr, 16).ok()?;
    let (_symbol, rest) = rest.split_once("): ")?;
    let (disassembly, bytes) = rest.rsplit_once(" ; ")?;
    let bytes = bytes.trim();
    if bytes.is_empty() || bytes.len() % 2 != 0 || !bytes.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(Insn {
        addr: Some(addr),
        len: bytes.len() as u64 / 2,
        mnemonic: disassembly.split_whitespace().next()?.to_string(),
    })
}

/// The executed instructions of a debugger log, and how many lines had a tick stamp
/// but did not parse (an instruction the profile would silently miss otherwise). Each
/// stop prints `Next at t=...` and then the instruction the CPU stopped at, which has
/// not run yet (a guest's is stamped: `(0).[T] ??? ...`): that line is left out. The log
/// ends with the step's stop, then `q`, at which the debugger prints that instruction
/// once more: what follows the last `Next at` is left out.
pub fn parse_trace(text: &str) -> (Vec<Insn>, usize) {
    const STOP: &str = "Next at t=";
    let end = text.rfind(STOP).unwrap_or(text.len());
    let mut insns = Vec::new();
    let mut unread = 0;
    let mut after_stop = false;
    for line in text[..end].lines() {
        if std::mem::replace(&mut after_stop, line.starts_with(STOP)) {
            continue;
        }
        match parse_line(line) {
            Some(i) => insns.push(i),
            None if line.contains(").[") => unread += 1,
            None => {}
        }
    }
    (insns, unread)
}

/// How host and guest trade places on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// VT-x: an exit starts at the VMCS' host RIP, Janus' `janus_vmx_exit`, and ends at
    /// VMRESUME or VMLAUNCH.
    Vmx { exit_handler: u64 },
    /// AMD-V: an exit resumes at the instruction after VMRUN and ends at the next VMRUN.
    Svm,
}

/// The symbol of Janus' VT-x exit handler (arch-vmx/src/entry.rs).
pub const VMX_EXIT_SYMBOL: &str = "janus_vmx_exit";

impl Vendor {
    /// The vendor whose world switch the trace shows; `vmx_exit_handler` gives the VT-x
    /// exit handler's address when one is needed.
    pub fn of_trace(
        trace: &[Insn],
        vmx_exit_handler: impl FnOnce() -> Option<u64>,
    ) -> Result<Vendor, String> {
        let has = |names: &[&str]| trace.iter().any(|i| names.contains(&i.mnemonic.as_str()));
        match (has(&["vmresume", "vmlaunch"]), has(&["vmrun"])) {
            (true, false) => vmx_exit_handler()
                .map(|exit_handler| Vendor::Vmx { exit_handler })
                .ok_or_else(|| format!("Janus' ELF has no symbol {VMX_EXIT_SYMBOL}")),
            (false, true) => Ok(Vendor::Svm),
            (true, true) => Err("the trace has both VMRUN and VMRESUME/VMLAUNCH".into()),
            (false, false) => Err(
                "no VMRUN, VMRESUME or VMLAUNCH in the trace: no exit ended in it (more --steps?)"
                    .into(),
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Vendor::Vmx { .. } => "VT-x",
            Vendor::Svm => "AMD-V",
        }
    }

    /// Whether `i` hands the CPU back to the guest: the last host instruction of an exit.
    fn enters_guest(self, i: &Insn) -> bool {
        match self {
            Vendor::Vmx { .. } => i.mnemonic == "vmresume" || i.mnemonic == "vmlaunch",
            Vendor::Svm => i.mnemonic == "vmrun",
        }
    }

    /// The addresses where host code resumes after an exit: the exit handler (VT-x), or
    /// the instruction after each VMRUN of the trace (AMD-V: #VMEXIT continues there).
    fn resume_points(self, trace: &[Insn]) -> Vec<u64> {
        match self {
            Vendor::Vmx { exit_handler } => vec![exit_handler],
            Vendor::Svm => {
                let mut points: Vec<u64> = trace
                    .iter()
                    .filter(|i| self.enters_guest(i))
                    .filter_map(|i| Some(i.addr? + i.len))
                    .collect();
                points.sort_unstable();
                points.dedup();
                points
            }
        }
    }
}

/// The host instructions' addresses of each complete exit of `trace`, in order: from a
/// resume point to the instruction that enters the guest, both included. The exit the
/// trace starts in and the one it ends in are partial and left out. A resume point starts
/// the exit afresh: the guest's own code may sit at the same address (Janus and the
/// guest are both linked at 1 MiB), but host code reaches it only after a world switch,
/// so whatever was gathered before it was not host code of this exit. Likewise an
/// instruction without an address: Janus' code is mapped one to one and always has one.
pub fn split_exits(trace: &[Insn], vendor: Vendor) -> Vec<Vec<u64>> {
    let resume = vendor.resume_points(trace);
    let mut exits = Vec::new();
    let mut current: Option<Vec<u64>> = None;
    for i in trace {
        let Some(addr) = i.addr else {
            current = None;
            continue;
        };
        if resume.contains(&addr) {
            current = Some(Vec::new());
        }
        if let Some(c) = current.as_mut() {
            c.push(addr);
        }
        if vendor.enters_guest(i) {
            if let Some(c) = current.take() {
                exits.push(c);
            }
        }
    }
    exits
}

/// Janus' functions by address, from `nm -C -S --defined-only`.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    /// Code symbols sorted by address: (address, size if nm knows it, name).
    list: Vec<(u64, Option<u64>, String)>,
}

impl Symbols {
    /// Reads `nm -C -S --defined-only` output: `ADDR [SIZE] TYPE NAME`, names with
    /// blanks (`<T as Trait>::f`). Only code symbols (types t, T, w, W) are kept.
    pub fn parse_nm(text: &str) -> Symbols {
        let mut list = Vec::new();
        for line in text.lines() {
            let Some((addr, rest)) = line.split_once(' ') else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let (size, rest) = match rest.split_once(' ') {
                Some((s, r)) if s.len() > 1 => (u64::from_str_radix(s, 16).ok(), r),
                _ => (None, rest),
            };
            let Some((kind, name)) = rest.split_once(' ') else {
                continue;
            };
            if matches!(kind, "t" | "T" | "w" | "W") && !name.is_empty() {
                list.push((addr, size, name.to_string()));
            }
        }
        list.sort_by_key(|(a, _, _)| *a);
        Symbols { list }
    }

    /// Runs `nm` on `elf` once.
    pub fn load(elf: &Path) -> Result<Symbols, String> {
        let out = Command::new("nm")
            .args(["-C", "-S", "--defined-only"])
            .arg(elf)
            .output()
            .map_err(|e| format!("cannot run nm: {e}"))?;
        if !out.status.success() {
            return Err(format!("nm {} failed ({})", elf.display(), out.status));
        }
        Ok(Symbols::parse_nm(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The address of symbol `name`.
    pub fn address(&self, name: &str) -> Option<u64> {
        self.list
            .iter()
            .find(|(_, _, n)| n == name)
            .map(|(a, _, _)| *a)
    }

    /// The function holding `addr`: the sized symbol (a compiled function) that covers
    /// it, else the nearest label at or below it (assembly without a size: `_start`,
    /// the exception stubs); `?` when there is neither. Labels inside a sized function
    /// (`janus_vmx_exit` in `vmx_run`) name no function of their own: the function does.
    pub fn function_of(&self, addr: u64) -> &str {
        let below = self.list.partition_point(|(a, _, _)| *a <= addr);
        let mut label: Option<(u64, &str)> = None;
        for (start, size, name) in self.list[..below].iter().rev() {
            match size {
                Some(size) if addr < start + size => return name,
                Some(size) => {
                    label = label.filter(|(at, _)| *at >= start + size);
                    break;
                }
                None => {
                    label.get_or_insert((*start, name.as_str()));
                }
            }
        }
        label.map_or("?", |(_, name)| name)
    }
}

/// What a trace's complete exits cost, function by function.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Host instructions of each complete exit, in order.
    pub lengths: Vec<u64>,
    /// (function, instructions in it over all exits), the most first (ties by name).
    pub functions: Vec<(String, u64)>,
}

impl Profile {
    /// Counts the instructions of `exits` by the function `function_of` gives each
    /// address.
    pub fn count<'a>(exits: &[Vec<u64>], function_of: impl Fn(u64) -> &'a str) -> Profile {
        let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
        for addr in exits.iter().flatten() {
            *by_name.entry(function_of(*addr)).or_default() += 1;
        }
        let mut functions: Vec<(String, u64)> = by_name
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect();
        functions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Profile {
            lengths: exits.iter().map(|e| e.len() as u64).collect(),
            functions,
        }
    }

    /// Instructions of all exits together.
    pub fn total(&self) -> u64 {
        self.lengths.iter().sum()
    }

    /// The report: exits seen, instructions per exit (min/avg/max, then each in order),
    /// and one line per function with its instructions per exit (averaged) and share.
    pub fn render(&self, title: &str) -> String {
        let exits = self.lengths.len() as u64;
        let total = self.total();
        let mut s = format!("{title}\ncomplete exits: {exits}\n");
        let (Some(min), Some(max)) = (self.lengths.iter().min(), self.lengths.iter().max()) else {
            return s;
        };
        let avg = total as f64 / exits as f64;
        let _ = writeln!(
            s,
            "host instructions per exit: min {min}, avg {avg:.1}, max {max}"
        );
        let each: Vec<String> = self.lengths.iter().map(u64::to_string).collect();
        let _ = writeln!(s, "each exit, in order: {}", each.join(" "));
        let _ = writeln!(s, "\n{:>10}  {:>6}  function", "per exit", "share");
        for (name, count) in &self.functions {
            let per_exit = *count as f64 / exits as f64;
            let share = 100.0 * *count as f64 / total as f64;
            let _ = writeln!(s, "{per_exit:>10.1}  {share:>5.1}%  {name}");
        }
        let _ = writeln!(s, "{avg:>10.1}  {:>5.1}%  total", 100.0);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line as Bochs 2.7's debugger prints it (build/profile/ryzen-out_com1_scr.trace).
    const LINE: &str = "(0).[155415512] [0x00000010027a] 0008:000000000010027a (unk. ctxt): vmrun                     ; 0f01d8";

    fn insn(addr: u64, len: u64, mnemonic: &str) -> Insn {
        Insn {
            addr: Some(addr),
            len,
            mnemonic: mnemonic.into(),
        }
    }

    /// The guest's instruction under nested paging, without an address.
    fn unaddressed() -> Insn {
        Insn {
            addr: None,
            len: 0,
            mnemonic: String::new(),
        }
    }

    #[test]
    fn trace_lines() {
        assert_eq!(parse_line(LINE), Some(insn(0x10027a, 3, "vmrun")));
        // Behind a prompt, with operands (corei7_skylake_x-irq_oneshot_hlt.trace).
        assert_eq!(
            parse_line("<bochs:4> (0).[156700351] [0x00000012d5f1] 0008:000000000012d5f1 (unk. ctxt): mov rdx, qword ptr ss:[rsp+1184] ; 488b9424a0040000"),
            Some(insn(0x12d5f1, 8, "mov"))
        );
        assert_eq!(
            parse_line("(0).[155415513] ??? (physical address not available)"),
            Some(unaddressed())
        );
        // The next instruction after a step, without the tick stamp: not executed here.
        assert_eq!(
            parse_line("(0) [0x000000100394] 0008:0000000000100394 (unk. ctxt): mov rcx, qword ptr ds:[rdi+8] ; 488b4f08"),
            None
        );
        for junk in [
            "Next at t=156704331",
            "CPU 0: Interrupt 0x41 occurred (error_code=0x0000)",
            "(0).[5] [0x000000001234] 0010:zz (unk. ctxt): nop ; 90",
            "(0).[5] [0x000000001234] 0010:0000000000101abc (unk. ctxt): nop ; 9",
            "(0).[x] [0x000000001234] 0010:0000000000101abc (unk. ctxt): nop ; 90",
            "s 4000",
        ] {
            assert_eq!(parse_line(junk), None, "{junk}");
        }
        // The log of `c`, `trace on`, `s 3`, `q`, stopped in the guest (whose next
        // instruction is stamped though it did not run): after `q` the debugger prints
        // the instruction it stopped at again, which did not run either. A stamped line
        // that does not parse is counted.
        let unknown = "(0).[155415511] ??? (physical address not available)";
        let stop = "(0) [0x00000010027d] 0008:000000000010027d (unk. ctxt): vmsave ; 0f01db";
        let (insns, unread) = parse_trace(&format!(
            "Next at t=0\nc\nNext at t=155415511\n{unknown}\ntrace on\ns 3\n{unknown}\n\
             {LINE}\n(0).[155415513] junk\nNext at t=155415514\n{stop}\nq\n\
             (0).[155415514]{}\n",
            &stop[3..]
        ));
        assert_eq!(insns, vec![unaddressed(), insn(0x10027a, 3, "vmrun")]);
        assert_eq!(unread, 1);
    }

    const VMX_EXIT: u64 = 0x1003dd;

    /// A trace from `ADDR LEN MNEMONIC` lines (ADDR in hex; `???`: no address).
    fn trace(text: &str) -> Vec<Insn> {
        let line = |l: &str| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [addr, len, m] => insn(
                u64::from_str_radix(addr, 16).unwrap(),
                len.parse().unwrap(),
                m,
            ),
            _ => unaddressed(),
        };
        text.lines().map(line).collect()
    }

    #[test]
    fn vmx_exits_run_from_the_handler_to_vmresume() {
        // The end of an exit, the guest's CPUID, two whole exits, the start of one. One
        // of the guest's instructions sits at the handler's address (both are linked at
        // 1 MiB): what it starts is dropped when the real exit comes.
        let trace = trace(
            "100420 3 mov\n100425 3 vmresume\n1003dd 2 cpuid\n1003dd 1 push\n120000 5 call\n\
             100425 3 vmresume\n100200 2 cpuid\n1003dd 1 push\n100425 3 vmresume\n\
             100200 2 cpuid\n1003dd 1 push\n120000 5 call",
        );
        let vendor = Vendor::of_trace(&trace, || Some(VMX_EXIT)).unwrap();
        assert_eq!(
            vendor,
            Vendor::Vmx {
                exit_handler: VMX_EXIT
            }
        );
        assert_eq!(
            split_exits(&trace, vendor),
            vec![vec![VMX_EXIT, 0x120000, 0x100425], vec![VMX_EXIT, 0x100425]]
        );
        assert!(Vendor::of_trace(&trace, || None).is_err());
    }

    #[test]
    fn svm_exits_run_from_after_vmrun_to_vmrun() {
        // The second exit ends at the other VMRUN site, after which the third resumes.
        // The guest's instructions have no address under nested paging; one that has
        // one, at a resume point, starts nothing that counts (at the start, the trace's
        // first instruction is followed by unaddressed ones: it was no host code).
        let trace = trace(
            "100324 1 push\n???\n100400 3 mov\n100321 3 vmrun\n???\n100324 3 vmsave\n130000 1 ret\n\
             100321 3 vmrun\n100324 1 out\n???\n100324 3 vmsave\n10027a 3 vmrun\n???\n\
             10027d 3 vmsave\n130000 1 ret",
        );
        let vendor = Vendor::of_trace(&trace, || None).unwrap();
        assert_eq!(vendor, Vendor::Svm);
        assert_eq!(
            split_exits(&trace, vendor),
            vec![vec![0x100324, 0x130000, 0x100321], vec![0x100324, 0x10027a]]
        );
    }

    #[test]
    fn a_trace_without_a_world_switch_has_no_vendor() {
        let plain = vec![insn(1, 1, "nop")];
        assert!(Vendor::of_trace(&plain, || Some(1)).is_err());
        let both = vec![insn(1, 3, "vmrun"), insn(4, 3, "vmresume")];
        assert!(Vendor::of_trace(&both, || Some(1)).is_err());
    }

    const NM: &str = "\
0000000000100038 T _start
00000000001001c1 t exc_common
0000000000100378 00000000000000b8 t arch_vmx::entry::vmx_run
00000000001003dd T janus_vmx_exit
0000000000100470 00000000000000ad t <u64 as core::fmt::Debug>::fmt
0000000000180420 0000000000000010 d arch_svm::svm::ASIDS
";

    #[test]
    fn addresses_map_to_functions() {
        let s = Symbols::parse_nm(NM);
        assert_eq!(s.address(VMX_EXIT_SYMBOL), Some(0x1003dd));
        assert_eq!(s.address("arch_svm::svm::ASIDS"), None, "data is left out");
        assert_eq!(s.function_of(0x100378), "arch_vmx::entry::vmx_run");
        // The label inside vmx_run does not take its instructions.
        assert_eq!(s.function_of(0x1003e0), "arch_vmx::entry::vmx_run");
        assert_eq!(s.function_of(0x100471), "<u64 as core::fmt::Debug>::fmt");
        // Past a function's end, before the next: nothing.
        assert_eq!(s.function_of(0x100430), "?");
        // Assembly without a size: the nearest label.
        assert_eq!(s.function_of(0x100200), "exc_common");
        assert_eq!(s.function_of(0x100100), "_start");
        assert_eq!(s.function_of(0x10), "?");
    }

    #[test]
    fn functions_are_counted_per_exit() {
        let s = Symbols::parse_nm(NM);
        let exits = vec![
            vec![0x1003dd, 0x100470, 0x100478, 0x1003f0],
            vec![0x1003dd, 0x1003f0],
        ];
        let p = Profile::count(&exits, |a| s.function_of(a));
        assert_eq!(p.lengths, vec![4, 2]);
        assert_eq!(p.total(), 6);
        assert_eq!(
            p.functions,
            vec![
                ("arch_vmx::entry::vmx_run".to_string(), 4),
                ("<u64 as core::fmt::Debug>::fmt".to_string(), 2)
            ]
        );
        let text = p.render("profile of cpuid on corei7_skylake_x");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "complete exits: 2");
        assert_eq!(
            lines[2],
            "host instructions per exit: min 2, avg 3.0, max 4"
        );
        assert_eq!(lines[3], "each exit, in order: 4 2");
        assert_eq!(lines[6], "       2.0   66.7%  arch_vmx::entry::vmx_run");
        assert_eq!(
            lines[7],
            "       1.0   33.3%  <u64 as core::fmt::Debug>::fmt"
        );
        assert_eq!(lines[8], "       3.0  100.0%  total");
    }
}
