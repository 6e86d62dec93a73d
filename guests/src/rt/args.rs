//! The words of the command line ([`crate::BootInfo::cmdline`]): `key=value` words and
//! numbers (pure code: the host tests of `janus-ci` compile it too). Janus passes a guest its module's `cmdline=` (or the rest of the module line).

/// The value of the first whitespace-separated `key=value` word, if any.
pub fn arg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// A decimal or `0x` hexadecimal number.
pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Whether `line` is `words`, or a path (a word ending in `/` + `file`, or `file`
/// itself; any first word when `file` is empty) then `words`: loaders differ in whether
/// a command line or module string starts with the file's path (QEMU: always; GRUB 2:
/// never; Janus: modules yes, kernels no).
pub fn is_words_after_path(line: &str, file: &str, words: &str) -> bool {
    if line == words {
        return true;
    }
    let Some((path, rest)) = line.split_once(' ') else {
        return false;
    };
    let path_ok = if file.is_empty() {
        !path.is_empty() && !path.contains('=')
    } else {
        path.strip_suffix(file)
            .is_some_and(|p| p.is_empty() || p.ends_with('/'))
    };
    path_ok && rest == words
}
