//! The command line of a guest module: `module2 /guests/FILE name=NAME mem=SIZE ...`.
//!
//! GRUB hands each module's line over as one string, the file name first (GRUB's shell
//! has already removed one level of quotes). Keys:
//!
//! | key | value |
//! |---|---|
//! | `name=` | the guest's name on the console (1-31 of `A-Za-z0-9_.-`) |
//! | `mem=` | its RAM: bytes, or with a `K`, `M` or `G` suffix (`KiB`/`MiB`/`GiB` too) |
//! | `kind=` | `multiboot1`, `multiboot2` or `linux` (default: recognised from the image) |
//! | `initrd-of=` | this module is the initrd of guest NAME, not a guest itself |
//! | `module-of=` | this module is a multiboot module of guest NAME; the rest of the line is free text |
//! | `cmdline=` | the guest kernel's command line: the REST of the line (so it can hold spaces and `=`), or a `"quoted string"` |
//! | `vcpus=` | its virtual CPUs, 1 to [`crate::vm::MAX_GUEST_VCPUS`] |
//!
//! A module line `[FILE] module-of=NAME ARGS...` (`module-of=` the first key) is a
//! multiboot module of guest NAME: ARGS are not keys, and the module's string (Multiboot
//! 0.6.96 3.3 `string`, Multiboot2 spec 2.0 3.6.6) is the line without the `module-of=`
//! word ([`ModuleString`]). GRUB passes only what follows the file name, so
//! `module2 /guests/cfg module-of=k a b` gives the string `a b`; a line that repeats the
//! path (`module2 /guests/cfg /guests/cfg module-of=k a b`, QEMU's `-initrd "FILE ARGS"`
//! form) gives `/guests/cfg a b`.
//!
//! Bad input is an [`ArgError`] that says what is wrong, never a panic.

use crate::smp::CpuSet;
use core::fmt;

/// What a module holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestKind {
    /// A multiboot1 kernel, started the way QEMU's `-kernel` starts it.
    Multiboot1,
    /// A multiboot2 kernel, started the way GRUB's `multiboot2` starts it.
    Multiboot2,
    /// A Linux bzImage.
    Linux,
}

impl fmt::Display for GuestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuestKind::Multiboot1 => "multiboot1",
            GuestKind::Multiboot2 => "multiboot2",
            GuestKind::Linux => "linux",
        })
    }
}

/// The parsed command line of one module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModuleArgs<'a> {
    /// The module's file name as GRUB gave it (the first word, when it is not `key=value`).
    pub path: Option<&'a str>,
    pub name: Option<&'a str>,
    pub mem: Option<u64>,
    pub kind: Option<GuestKind>,
    pub cmdline: Option<&'a str>,
    pub initrd_of: Option<&'a str>,
    /// `weight=`: the guest's share of the CPU against the others (1 to 1000).
    pub weight: Option<u32>,
    /// `on-reset=`: what a reset of the guest's machine does.
    pub on_reset: Option<OnReset>,
    /// `limit=`: the longest the guest may live (`500ms`, `30s`, `2m`), in nanoseconds.
    pub limit_ns: Option<u64>,
    /// `after=NAME`: the guest starts when guest NAME (an earlier module) has ended.
    pub after: Option<&'a str>,
    /// `cpus=N` or `cpus=A-B`: the host CPUs the guest may run on (`crate::smp`).
    pub cpus: Option<CpuSet>,
    /// `vcpus=N`: the guest's virtual CPUs (1 to [`MAX_VCPUS`]).
    pub vcpus: Option<u8>,
    /// `module-of=NAME`: a multiboot module of guest NAME, with its string.
    pub module_of: Option<(&'a str, ModuleString<'a>)>,
}

/// A multiboot module's string: its line without the `module-of=NAME` word, that is the
/// text before the word and the text after it, joined by one space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModuleString<'a> {
    pub head: &'a str,
    pub tail: &'a str,
}

impl<'a> ModuleString<'a> {
    /// The pieces to write one after the other: head, a space when both are there, tail.
    pub fn parts(&self) -> [&'a str; 3] {
        let sep = if self.head.is_empty() || self.tail.is_empty() {
            ""
        } else {
            " "
        };
        [self.head, sep, self.tail]
    }

    /// Its length in bytes (without a NUL).
    pub fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for ModuleString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parts().iter().try_for_each(|p| f.write_str(p))
    }
}

/// What happens when a guest pulls its machine's reset line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnReset {
    /// The guest ends (`reset`).
    #[default]
    End,
    /// It starts again from its image, a few times at most.
    Restart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgError<'a> {
    UnknownKey(&'a str),
    Repeated(&'a str),
    BadName(&'a str),
    BadSize(&'a str),
    /// A size that overflows or exceeds [`MAX_MEM`].
    TooLarge(&'a str),
    BadKind(&'a str),
    BadWeight(&'a str),
    BadOnReset(&'a str),
    BadDuration(&'a str),
    BadCpus(&'a str),
    BadVcpus(&'a str),
    /// A word that is not `key=value` after the file name.
    Stray(&'a str),
    UnclosedQuote,
    /// Two keys that cannot go together (`initrd-of=` with a guest's keys, or
    /// `module-of=` after another key).
    Conflict(&'static str, &'static str),
}

impl fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::UnknownKey(k) => {
                write!(
                    f,
                    "unknown key '{}' (known: name, mem, kind, cmdline, initrd-of, module-of, weight, on-reset, limit, after, cpus, vcpus)",
                    Clip(k)
                )
            }
            ArgError::Repeated(k) => write!(f, "key '{}' given twice", Clip(k)),
            ArgError::BadName(n) => write!(
                f,
                "bad name '{}': use 1 to 31 of A-Z a-z 0-9 _ . -",
                Clip(n)
            ),
            ArgError::BadSize(s) => {
                write!(
                    f,
                    "bad size '{}': use bytes or a number with K, M or G",
                    Clip(s)
                )
            }
            ArgError::TooLarge(s) => write!(
                f,
                "mem={}: too large (at most {} TiB: guest-physical addresses have 48 bits)",
                Clip(s),
                MAX_MEM >> 40
            ),
            ArgError::BadKind(k) => write!(
                f,
                "bad kind '{}': use multiboot1, multiboot2 or linux",
                Clip(k)
            ),
            ArgError::BadWeight(w) => write!(f, "bad weight '{}': use 1 to {MAX_WEIGHT}", Clip(w)),
            ArgError::BadOnReset(v) => {
                write!(f, "bad on-reset '{}': use end or restart", Clip(v))
            }
            ArgError::BadDuration(v) => write!(
                f,
                "bad limit '{}': use a number with ms, s or m, at most a day",
                Clip(v)
            ),
            ArgError::BadCpus(v) => write!(
                f,
                "bad cpus '{}': use a host CPU number N or a range A-B",
                Clip(v)
            ),
            ArgError::BadVcpus(v) => write!(
                f,
                "bad vcpus '{}': use a number of virtual CPUs, 1 to {MAX_VCPUS}",
                Clip(v)
            ),
            ArgError::Stray(w) => write!(f, "'{}' is not key=value", Clip(w)),
            ArgError::UnclosedQuote => write!(f, "a quote is not closed"),
            ArgError::Conflict(a, b) => write!(f, "keys '{a}' and '{b}' do not go together"),
        }
    }
}

/// Largest `weight=`: the scheduler's limit.
pub const MAX_WEIGHT: u32 = crate::sched::MAX_WEIGHT;

fn parse_weight(v: &str) -> Result<u32, ArgError<'_>> {
    match v.parse::<u32>() {
        Ok(w) if (1..=MAX_WEIGHT).contains(&w) => Ok(w),
        _ => Err(ArgError::BadWeight(v)),
    }
}

/// Largest `vcpus=`: the virtual CPUs a guest can have.
pub const MAX_VCPUS: u8 = crate::vm::MAX_GUEST_VCPUS as u8;

fn parse_vcpus(v: &str) -> Result<u8, ArgError<'_>> {
    match v.parse::<u8>() {
        Ok(n) if (1..=MAX_VCPUS).contains(&n) => Ok(n),
        _ => Err(ArgError::BadVcpus(v)),
    }
}

/// `500ms`, `30s`, `2m` in nanoseconds; at most a day.
fn parse_duration(v: &str) -> Result<u64, ArgError<'_>> {
    const DAY_NS: u64 = 86_400 * 1_000_000_000;
    let bad = ArgError::BadDuration(v);
    let (digits, unit_ns) = if let Some(d) = v.strip_suffix("ms") {
        (d, 1_000_000)
    } else if let Some(d) = v.strip_suffix('s') {
        (d, 1_000_000_000)
    } else if let Some(d) = v.strip_suffix('m') {
        (d, 60_000_000_000)
    } else {
        return Err(bad);
    };
    let n: u64 = digits.parse().map_err(|_| bad)?;
    match n.checked_mul(unit_ns) {
        Some(ns) if ns > 0 && ns <= DAY_NS => Ok(ns),
        _ => Err(bad),
    }
}

/// The most RAM a guest can have: 4-level EPT/NPT tables translate 48-bit
/// guest-physical addresses (SDM Vol 3C 29.3.2, APM Vol 2 15.25.5).
pub const MAX_MEM: u64 = 1 << 48;

/// Longest piece of user text a message repeats.
const CLIP: usize = 48;

/// User text in a one-line message: at most [`CLIP`] characters (cut at a character,
/// never inside one), control characters escaped, `...` when cut.
pub struct Clip<'a>(pub &'a str);

impl fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars().take(CLIP) {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        if self.0.chars().nth(CLIP).is_some() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// Parses a RAM size: `4096`, `64K`, `16M`, `1G`, `16MiB`. Sizes over [`MAX_MEM`]
/// (overflowing ones too) are [`ArgError::TooLarge`].
pub fn parse_size(s: &str) -> Result<u64, ArgError<'_>> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let shift = match suffix {
        "" | "B" => 0,
        "K" | "k" | "KiB" | "KB" => 10,
        "M" | "m" | "MiB" | "MB" => 20,
        "G" | "g" | "GiB" | "GB" => 30,
        _ => return Err(ArgError::BadSize(s)),
    };
    if digits.is_empty() {
        return Err(ArgError::BadSize(s));
    }
    // Only digits: parsing fails on overflow alone.
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .filter(|&n| n <= MAX_MEM)
        .ok_or(ArgError::TooLarge(s))
}

/// Whether `c` may appear in a guest name.
pub fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-".contains(c)
}

fn valid_name(n: &str) -> bool {
    (1..=31).contains(&n.len()) && n.chars().all(valid_name_char)
}

/// The keys of a parsed line other than `initrd-of=`, and whether each is given.
fn guest_keys(a: &ModuleArgs<'_>) -> [(&'static str, bool); 10] {
    [
        ("name", a.name.is_some()),
        ("mem", a.mem.is_some()),
        ("kind", a.kind.is_some()),
        ("cmdline", a.cmdline.is_some()),
        ("weight", a.weight.is_some()),
        ("on-reset", a.on_reset.is_some()),
        ("limit", a.limit_ns.is_some()),
        ("after", a.after.is_some()),
        ("cpus", a.cpus.is_some()),
        ("vcpus", a.vcpus.is_some()),
    ]
}

/// The first key a parsed line has, for [`ArgError::Conflict`].
fn first_key_name(a: &ModuleArgs<'_>) -> &'static str {
    if a.initrd_of.is_some() {
        return "initrd-of";
    }
    let keys = guest_keys(a);
    keys.iter()
        .find(|(_, given)| *given)
        .map_or("name", |(k, _)| k)
}

fn set<'a, T>(slot: &mut Option<T>, key: &'a str, v: T) -> Result<(), ArgError<'a>> {
    if slot.is_some() {
        return Err(ArgError::Repeated(key));
    }
    *slot = Some(v);
    Ok(())
}

/// The next word of `rest`: up to whitespace outside double quotes. Returns the word and
/// what follows it.
fn next_word(rest: &str) -> Result<(&str, &str), ArgError<'_>> {
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok((&rest[..i], &rest[i..])),
            _ => {}
        }
    }
    if quoted {
        return Err(ArgError::UnclosedQuote);
    }
    Ok((rest, ""))
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// Parses a module command line. Both `key="a b"` (as written in grub.cfg) and
/// `"key=a b"` (as GRUB passes it on) are accepted.
pub fn parse_module_args(line: &str) -> Result<ModuleArgs<'_>, ArgError<'_>> {
    let mut a = ModuleArgs::default();
    let line = line.trim();
    let mut rest = line;
    let mut first = true;
    let mut first_key = true;
    while !rest.is_empty() {
        let (raw, after) = next_word(rest)?;
        let word = unquote(raw);
        let Some((key, value)) = word.split_once('=') else {
            if first {
                a.path = Some(word);
                rest = after.trim_start();
                first = false;
                continue;
            }
            return Err(ArgError::Stray(word));
        };
        let value = unquote(value);
        if matches!(key, "module-of" | "module_of") {
            if !first_key {
                return Err(ArgError::Conflict("module-of", first_key_name(&a)));
            }
            if !valid_name(value) {
                return Err(ArgError::BadName(value));
            }
            let word_start = line.len() - rest.len();
            let string = ModuleString {
                head: line[..word_start].trim(),
                tail: after.trim(),
            };
            a.module_of = Some((value, string));
            break;
        }
        first = false;
        first_key = false;
        if key == "cmdline" && !raw.contains('"') {
            // Unquoted: the command line is the rest of the module line.
            set(&mut a.cmdline, key, rest[key.len() + 1..].trim_end())?;
            break;
        }
        match key {
            "cmdline" => set(&mut a.cmdline, key, value)?,
            "name" => {
                if !valid_name(value) {
                    return Err(ArgError::BadName(value));
                }
                set(&mut a.name, key, value)?
            }
            "mem" => set(&mut a.mem, key, parse_size(value)?)?,
            "kind" => {
                let k = match value {
                    "multiboot1" | "multiboot" | "mb1" => GuestKind::Multiboot1,
                    "multiboot2" | "mb2" => GuestKind::Multiboot2,
                    "linux" => GuestKind::Linux,
                    _ => return Err(ArgError::BadKind(value)),
                };
                set(&mut a.kind, key, k)?
            }
            "initrd-of" | "initrd_of" => {
                if !valid_name(value) {
                    return Err(ArgError::BadName(value));
                }
                set(&mut a.initrd_of, key, value)?
            }
            "weight" => set(&mut a.weight, key, parse_weight(value)?)?,
            "on-reset" | "on_reset" => {
                let r = match value {
                    "end" => OnReset::End,
                    "restart" => OnReset::Restart,
                    _ => return Err(ArgError::BadOnReset(value)),
                };
                set(&mut a.on_reset, key, r)?
            }
            "limit" => set(&mut a.limit_ns, key, parse_duration(value)?)?,
            "cpus" => set(
                &mut a.cpus,
                key,
                CpuSet::parse(value).ok_or(ArgError::BadCpus(value))?,
            )?,
            "vcpus" => set(&mut a.vcpus, key, parse_vcpus(value)?)?,
            "after" => {
                if !valid_name(value) {
                    return Err(ArgError::BadName(value));
                }
                set(&mut a.after, key, value)?
            }
            _ => return Err(ArgError::UnknownKey(key)),
        }
        rest = after.trim_start();
    }
    if a.initrd_of.is_some() {
        if let Some((k, _)) = guest_keys(&a).iter().find(|(_, given)| *given) {
            return Err(ArgError::Conflict("initrd-of", k));
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn scheduling_keys() {
        let a = parse_module_args("/g/spin weight=3 on-reset=restart limit=1500ms").unwrap();
        assert_eq!(
            (a.weight, a.on_reset, a.limit_ns),
            (Some(3), Some(OnReset::Restart), Some(1_500_000_000))
        );
        assert_eq!(
            parse_module_args("limit=2m").unwrap().limit_ns,
            Some(120_000_000_000)
        );
        assert_eq!(
            parse_module_args("limit=7s").unwrap().limit_ns,
            Some(7_000_000_000)
        );
        for bad in ["weight=0", "weight=1001", "weight=x", "weight=-1"] {
            assert!(
                matches!(parse_module_args(bad), Err(ArgError::BadWeight(_))),
                "{bad}"
            );
        }
        for bad in [
            "limit=5",
            "limit=0s",
            "limit=99999999999999999999ms",
            "limit=2d",
            "limit=25h",
        ] {
            assert!(
                matches!(parse_module_args(bad), Err(ArgError::BadDuration(_))),
                "{bad}"
            );
        }
        assert!(
            matches!(
                parse_module_args("limit=1441m"),
                Err(ArgError::BadDuration(_))
            ),
            "over a day"
        );
        assert!(matches!(
            parse_module_args("on-reset=reboot"),
            Err(ArgError::BadOnReset(_))
        ));
        assert_eq!(
            parse_module_args("initrd-of=l weight=2").err(),
            Some(ArgError::Conflict("initrd-of", "weight"))
        );
    }

    #[test]
    fn cpus_key() {
        let a = parse_module_args("/g/spin cpus=1").unwrap();
        assert_eq!(a.cpus, Some(CpuSet { first: 1, last: 1 }));
        let a = parse_module_args("cpus=0-3 name=x").unwrap();
        assert_eq!(a.cpus, Some(CpuSet { first: 0, last: 3 }));
        for bad in ["cpus=", "cpus=3-1", "cpus=x", "cpus=1,2", "cpus=999"] {
            let e = parse_module_args(bad).unwrap_err();
            assert!(matches!(e, ArgError::BadCpus(_)), "{bad}: {e:?}");
        }
        assert!(std::format!("{}", ArgError::BadCpus("3-1")).contains("range A-B"));
        assert_eq!(
            parse_module_args("cpus=1 cpus=1").err(),
            Some(ArgError::Repeated("cpus"))
        );
        assert_eq!(
            parse_module_args("initrd-of=l cpus=1").err(),
            Some(ArgError::Conflict("initrd-of", "cpus"))
        );
    }

    #[test]
    fn vcpus_key() {
        assert_eq!(parse_module_args("/g/k vcpus=1").unwrap().vcpus, Some(1));
        let a = parse_module_args("/g/k name=x vcpus=8 mem=8M").unwrap();
        assert_eq!((a.vcpus, a.mem), (Some(MAX_VCPUS), Some(8 << 20)));
        assert_eq!(parse_module_args("/g/k").unwrap().vcpus, None);
        for bad in [
            "vcpus=0",
            "vcpus=9",
            "vcpus=256",
            "vcpus=",
            "vcpus=two",
            "vcpus=-1",
            "vcpus=2x",
        ] {
            let e = parse_module_args(bad).unwrap_err();
            assert!(matches!(e, ArgError::BadVcpus(_)), "{bad}: {e:?}");
        }
        let msg = std::format!("{}", ArgError::BadVcpus("9"));
        assert_eq!(msg, "bad vcpus '9': use a number of virtual CPUs, 1 to 8");
        assert_eq!(
            parse_module_args("vcpus=2 vcpus=2").err(),
            Some(ArgError::Repeated("vcpus"))
        );
        assert_eq!(
            parse_module_args("initrd-of=l vcpus=2").err(),
            Some(ArgError::Conflict("initrd-of", "vcpus"))
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("262144G"), Ok(MAX_MEM));
        assert_eq!(parse_size("M"), Err(ArgError::BadSize("M")));
        assert_eq!(parse_size("12Q"), Err(ArgError::BadSize("12Q")));
        assert_eq!(parse_size("-1"), Err(ArgError::BadSize("-1")));
        for big in [
            "99999999999999999999G",
            "17179869184G",
            "262145G",
            "18446744073709551615",
        ] {
            assert_eq!(parse_size(big), Err(ArgError::TooLarge(big)), "{big}");
        }
    }

    #[test]
    fn a_full_line() {
        let a = parse_module_args("/guests/smoke name=smoke mem=16M").unwrap();
        assert_eq!(a.path, Some("/guests/smoke"));
        assert_eq!(a.name, Some("smoke"));
        assert_eq!(a.mem, Some(16 << 20));
        assert_eq!(a.kind, None);
        assert_eq!(a.cmdline, None);
    }

    #[test]
    fn cmdline_takes_the_rest_or_a_quoted_string() {
        let a = parse_module_args(
            "/guests/vmlinuz name=linux kind=linux cmdline=console=ttyS0 quiet  ",
        )
        .unwrap();
        assert_eq!(a.kind, Some(GuestKind::Linux));
        assert_eq!(a.cmdline, Some("console=ttyS0 quiet"));
        let a = parse_module_args("/k cmdline=\"a=b c\" mem=8M").unwrap();
        assert_eq!(a.cmdline, Some("a=b c"));
        assert_eq!(a.mem, Some(8 << 20));
        assert_eq!(
            parse_module_args("/k cmdline=\"a b"),
            Err(ArgError::UnclosedQuote)
        );
        // GRUB quotes a whole argument that holds a space.
        let a = parse_module_args("/k \"cmdline=console=ttyS0 quiet\" name=x").unwrap();
        assert_eq!(a.cmdline, Some("console=ttyS0 quiet"));
        assert_eq!(a.name, Some("x"));
    }

    #[test]
    fn initrd_and_no_path() {
        let a = parse_module_args("initrd-of=linux").unwrap();
        assert_eq!(a.path, None);
        assert_eq!(a.initrd_of, Some("linux"));
        assert_eq!(parse_module_args("").unwrap(), ModuleArgs::default());
    }

    #[test]
    fn bad_input_says_what() {
        assert_eq!(
            parse_module_args("/g colour=blue"),
            Err(ArgError::UnknownKey("colour"))
        );
        assert_eq!(
            parse_module_args("/g mem=lots"),
            Err(ArgError::BadSize("lots"))
        );
        assert_eq!(
            parse_module_args("/g name=a name=b"),
            Err(ArgError::Repeated("name"))
        );
        assert_eq!(
            parse_module_args("/g name=has/slash"),
            Err(ArgError::BadName("has/slash"))
        );
        assert_eq!(
            parse_module_args("/g kind=windows"),
            Err(ArgError::BadKind("windows"))
        );
        assert_eq!(parse_module_args("/g stray"), Err(ArgError::Stray("stray")));
        let msg = format!("{}", ArgError::UnknownKey("colour"));
        assert!(msg.contains("colour") && msg.contains("known"), "{msg}");
    }

    #[test]
    fn module_of_takes_the_rest_as_the_string() {
        // As GRUB passes `module2 /guests/cfg module-of=k a=1  b`: what follows the file.
        let a = parse_module_args("module-of=k a=1  b").unwrap();
        let (of, s) = a.module_of.unwrap();
        assert_eq!(of, "k");
        assert_eq!(s.to_string(), "a=1  b");
        assert_eq!((a.path, a.name, a.cmdline), (None, None, None));
        // With the path first (QEMU's `-initrd "FILE ARGS"` form): "FILE ARGS".
        let a = parse_module_args("/guests/cfg module-of=k x y").unwrap();
        let s = a.module_of.unwrap().1;
        assert_eq!((s.to_string(), s.len()), ("/guests/cfg x y".into(), 15));
        assert_eq!(a.path, Some("/guests/cfg"));
        // No arguments: the string is the path alone, or empty.
        let s = parse_module_args("/g/f module-of=k")
            .unwrap()
            .module_of
            .unwrap()
            .1;
        assert_eq!(s.parts(), ["/g/f", "", ""]);
        let s = parse_module_args(" module-of=k ")
            .unwrap()
            .module_of
            .unwrap()
            .1;
        assert!(s.is_empty());
        // Keys after module-of= are the module's text, not Janus' keys.
        let a = parse_module_args("module-of=k name=x mem=lots").unwrap();
        assert_eq!(a.module_of.unwrap().1.to_string(), "name=x mem=lots");
        assert_eq!(a.name, None);
    }

    #[test]
    fn module_of_must_come_first_and_name_a_guest() {
        assert_eq!(
            parse_module_args("/g name=a module-of=k"),
            Err(ArgError::Conflict("module-of", "name"))
        );
        assert_eq!(
            parse_module_args("/g initrd-of=a module-of=k"),
            Err(ArgError::Conflict("module-of", "initrd-of"))
        );
        assert_eq!(
            parse_module_args("/g module-of=a/b"),
            Err(ArgError::BadName("a/b"))
        );
        assert_eq!(
            parse_module_args("kind=multiboot2").unwrap().kind,
            Some(GuestKind::Multiboot2)
        );
        assert_eq!(GuestKind::Multiboot2.to_string(), "multiboot2");
    }
}
