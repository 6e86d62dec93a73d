//! The command line of a guest module: `module2 /guests/FILE name=NAME mem=SIZE ...`.
//!
//! GRUB hands each module's line over as one string, the file name first (GRUB's shell
//! has already removed one level of quotes). Keys:
//!
//! | key | value |
//! |---|---|
//! | `name=` | the guest's name on the console (1-31 of `A-Za-z0-9_.-`) |
//! | `mem=` | its RAM: bytes, or with a `K`, `M` or `G` suffix (`KiB`/`MiB`/`GiB` too) |
//! | `kind=` | `multiboot1` or `linux` (default: recognised from the image) |
//! | `initrd-of=` | this module is the initrd of guest NAME, not a guest itself |
//! | `cmdline=` | the guest kernel's command line: the REST of the line (so it can hold spaces and `=`), or a `"quoted string"` |
//!
//! Bad input is an [`ArgError`] that says what is wrong, never a panic.

use core::fmt;

/// What a module holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestKind {
    /// A multiboot1 kernel, started the way QEMU's `-kernel` starts it.
    Multiboot1,
    /// A Linux bzImage.
    Linux,
}

impl fmt::Display for GuestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuestKind::Multiboot1 => "multiboot1",
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgError<'a> {
    UnknownKey(&'a str),
    Repeated(&'a str),
    BadName(&'a str),
    BadSize(&'a str),
    BadKind(&'a str),
    /// A word that is not `key=value` after the file name.
    Stray(&'a str),
    UnclosedQuote,
}

impl fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::UnknownKey(k) => {
                write!(
                    f,
                    "unknown key '{k}' (known: name, mem, kind, cmdline, initrd-of)"
                )
            }
            ArgError::Repeated(k) => write!(f, "key '{k}' given twice"),
            ArgError::BadName(n) => write!(f, "bad name '{n}': use 1 to 31 of A-Z a-z 0-9 _ . -"),
            ArgError::BadSize(s) => {
                write!(f, "bad size '{s}': use bytes or a number with K, M or G")
            }
            ArgError::BadKind(k) => write!(f, "bad kind '{k}': use multiboot1 or linux"),
            ArgError::Stray(w) => write!(f, "'{w}' is not key=value"),
            ArgError::UnclosedQuote => write!(f, "a quote is not closed"),
        }
    }
}

/// Parses a size: `4096`, `64K`, `16M`, `1G`, `16MiB`. Overflow is an error.
pub fn parse_size(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let shift = match suffix {
        "" | "B" => 0,
        "K" | "k" | "KiB" | "KB" => 10,
        "M" | "m" | "MiB" | "MB" => 20,
        "G" | "g" | "GiB" | "GB" => 30,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

fn valid_name(n: &str) -> bool {
    (1..=31).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
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
    let mut rest = line.trim();
    let mut first = true;
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
        first = false;
        let value = unquote(value);
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
            "mem" => set(
                &mut a.mem,
                key,
                parse_size(value).ok_or(ArgError::BadSize(value))?,
            )?,
            "kind" => {
                let k = match value {
                    "multiboot1" | "multiboot" | "mb1" => GuestKind::Multiboot1,
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
            _ => return Err(ArgError::UnknownKey(key)),
        }
        rest = after.trim_start();
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("16M"), Some(16 << 20));
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
        assert_eq!(parse_size("17179869184G"), None, "overflow is an error");
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
}
