//! Guest specifications (`--guest FILE[:KEY=VALUE,...]`) and the GRUB rescue ISO that
//! boots Janus with them. `--guest FILE:module-of=NAME[,cmdline=STRING]` is not a guest
//! but a multiboot module of guest NAME: its line is
//! `module2 /guests/BASENAME module-of=NAME STRING`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::Builtin;

/// One `--guest` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestSpec {
    pub file: PathBuf,
    /// `key=value` pairs in the order given; `name` is always present and first.
    pub keys: Vec<(String, String)>,
    /// Whether the module's command line starts with the file's path (as QEMU's
    /// `-initrd` gives it; GRUB passes only what follows the file), so that Janus can
    /// derive a name from it.
    pub path_arg: bool,
}

impl GuestSpec {
    /// Parses `FILE[:KEY=VALUE,...]`. A comma followed by text without `=` continues the
    /// previous value, so `cmdline=a,b` keeps its comma.
    pub fn parse(spec: &str) -> Result<GuestSpec, String> {
        let (file, opts) = if Path::new(spec).exists() {
            (spec, "")
        } else {
            spec.split_once(':').unwrap_or((spec, ""))
        };
        if file.is_empty() {
            return Err(format!("--guest `{spec}`: no file"));
        }
        let mut keys: Vec<(String, String)> = Vec::new();
        for piece in opts.split(',').filter(|p| !p.is_empty()) {
            match piece.split_once('=') {
                Some((k, v)) if is_key(k) => {
                    if keys.iter().any(|(old, _)| old == k) {
                        return Err(format!("--guest `{spec}`: `{k}` given twice"));
                    }
                    keys.push((k.to_string(), v.to_string()));
                }
                _ => match keys.last_mut() {
                    Some((_, v)) => {
                        v.push(',');
                        v.push_str(piece);
                    }
                    None => return Err(format!("--guest `{spec}`: `{piece}` is not KEY=VALUE")),
                },
            }
        }
        let file = PathBuf::from(file);
        if let Some(i) = keys.iter().position(|(k, _)| k == MODULE_OF) {
            if let Some((k, _)) = keys.iter().find(|(k, _)| k != MODULE_OF && k != "cmdline") {
                return Err(format!(
                    "--guest `{spec}`: a {MODULE_OF}= module takes only cmdline=, not `{k}`"
                ));
            }
            let of = keys.remove(i);
            keys.insert(0, of);
        } else if !keys.iter().any(|(k, _)| k == "name") {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if stem.is_empty() {
                return Err(format!(
                    "--guest `{spec}`: cannot derive a name; give name=..."
                ));
            }
            keys.insert(0, ("name".into(), stem));
        } else {
            let i = keys.iter().position(|(k, _)| k == "name").unwrap();
            let name = keys.remove(i);
            keys.insert(0, name);
        }
        for (k, v) in &keys {
            if v.contains('\n') {
                return Err(format!("--guest `{spec}`: `{k}` contains a newline"));
            }
        }
        Ok(GuestSpec {
            file,
            keys,
            path_arg: false,
        })
    }

    /// A spec with exactly these keys, in this order; unlike [`GuestSpec::parse`] no
    /// `name` is added (an `initrd-of=` module has none).
    pub fn with_keys(file: PathBuf, keys: &[(&str, &str)]) -> GuestSpec {
        GuestSpec {
            file,
            keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            path_arg: false,
        }
    }

    /// The guest's `name=`; None for a module that is not a guest (an initrd).
    pub fn name(&self) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.as_str())
    }

    /// A file name that does not exist but names a built-in guest (`smoke`, `hello`, any
    /// other binary of the guests crate) means that guest.
    pub fn builtin(&self) -> Option<Builtin> {
        if self.file.exists() || self.file.components().count() != 1 {
            return None;
        }
        match self.file.to_str()? {
            "hello" | "hello.elf" | "hello-mb1" => Some(Builtin::Hello),
            name if !name.contains('.') => Some(Builtin::Bin(name.to_string())),
            _ => None,
        }
    }

    pub fn with_file(&self, file: PathBuf) -> GuestSpec {
        GuestSpec {
            file,
            ..self.clone()
        }
    }

    /// The file's name inside the ISO's /guests.
    pub fn basename(&self) -> String {
        self.file
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "guest".into())
    }

    /// Whether this is a multiboot module of a guest (`module-of=`), not a guest.
    pub fn is_module(&self) -> bool {
        self.keys.iter().any(|(k, _)| k == MODULE_OF)
    }

    /// `module2 /guests/BASENAME name=foo mem=32M cmdline="a b"`; with
    /// [`GuestSpec::path_arg`], `module2 /guests/BASENAME /guests/BASENAME mem=32M`. A
    /// module's `cmdline=` is its string, given as plain words after `module-of=NAME`.
    pub fn module_line(&self) -> String {
        let path = format!("/guests/{}", self.basename());
        let mut line = format!("module2 {path}");
        if self.path_arg {
            write!(line, " {}", quote(&path)).unwrap();
        }
        for (k, v) in &self.keys {
            if self.is_module() && k == "cmdline" {
                for word in v.split_whitespace() {
                    write!(line, " {}", quote(word)).unwrap();
                }
            } else {
                write!(line, " {k}={}", quote(v)).unwrap();
            }
        }
        line
    }
}

/// The key that makes a module a multiboot module of a guest.
const MODULE_OF: &str = "module-of";

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Quotes a value for grub.cfg when it has spaces or characters GRUB treats specially.
fn quote(v: &str) -> String {
    let special = |c: char| c.is_whitespace() || "\"'\\$;|&<>{}#".contains(c);
    if !v.is_empty() && !v.chars().any(special) {
        return v.to_string();
    }
    let mut out = String::from("\"");
    for c in v.chars() {
        if matches!(c, '"' | '\\' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The start of every grub.cfg: no menu, the serial console.
pub const CFG_SERIAL: &str = "set timeout=0\n\
    set default=0\n\
    serial --unit=0 --speed=115200\n\
    terminal_input serial\n\
    terminal_output serial\n";

/// The grub.cfg that boots Janus with `guests` over the serial console.
pub fn grub_cfg(guests: &[GuestSpec]) -> String {
    let mut cfg = format!("{CFG_SERIAL}menuentry \"Janus\" {{\n    multiboot2 /boot/janus.elf\n");
    for g in guests {
        writeln!(cfg, "    {}", g.module_line()).unwrap();
    }
    cfg.push_str("    boot\n}\n");
    cfg
}

/// An error of file `p` as one line.
pub fn io(what: &str, p: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", p.display())
}

/// The empty tree build/iso/STEM (STEM: `out`'s file stem) with its boot/grub, for the
/// ISO `out`: returns the tree.
pub fn fresh_tree(root: &Path, out: &Path) -> Result<PathBuf, String> {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "janus".into());
    let dir = root.join("build/iso").join(stem);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io("cannot clear", &dir, e))?;
    }
    let grub = dir.join("boot/grub");
    std::fs::create_dir_all(&grub).map_err(|e| io("cannot create", &grub, e))?;
    Ok(dir)
}

/// Lays out build/iso/ROOT and runs grub-mkrescue into `out`.
pub fn make(root: &Path, janus: &Path, guests: &[GuestSpec], out: &Path) -> Result<(), String> {
    let dir = fresh_tree(root, out)?;
    let grub = dir.join("boot/grub");
    let gdir = dir.join("guests");
    std::fs::create_dir_all(&gdir).map_err(|e| io("cannot create", &gdir, e))?;
    std::fs::copy(janus, dir.join("boot/janus.elf")).map_err(|e| io("cannot copy", janus, e))?;
    for (i, g) in guests.iter().enumerate() {
        if let Some(name) = g.name() {
            if guests[..i].iter().any(|o| o.name() == Some(name)) {
                return Err(format!("two guests are named {name}"));
            }
        }
    }
    let mut seen: Vec<(String, PathBuf)> = Vec::new();
    for g in guests {
        let base = g.basename();
        match seen.iter().find(|(b, _)| *b == base) {
            Some((_, f)) if f == &g.file => continue,
            Some(_) => return Err(format!("two different guest files are both named {base}")),
            None => {}
        }
        std::fs::copy(&g.file, gdir.join(&base)).map_err(|e| io("cannot copy", &g.file, e))?;
        seen.push((base, g.file.clone()));
    }
    let cfg_path = grub.join("grub.cfg");
    std::fs::write(&cfg_path, grub_cfg(guests)).map_err(|e| io("cannot write", &cfg_path, e))?;
    mkrescue(&dir, out)
}

/// `grub-mkrescue -o OUT DIR`: the ISO of the tree `dir` (with its boot/grub/grub.cfg).
pub fn mkrescue(dir: &Path, out: &Path) -> Result<(), String> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "grub-mkrescue failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_defaults_to_stem() {
        let g = GuestSpec::parse("out/my-kernel.elf").unwrap();
        assert_eq!(g.name(), Some("my-kernel"));
        assert_eq!(
            g.module_line(),
            "module2 /guests/my-kernel.elf name=my-kernel"
        );
    }

    #[test]
    fn keys_pass_through_and_quote() {
        let g = GuestSpec::parse("k.elf:mem=32M,name=foo,cmdline=a b,c").unwrap();
        assert_eq!(g.name(), Some("foo"));
        assert_eq!(
            g.module_line(),
            "module2 /guests/k.elf name=foo mem=32M cmdline=\"a b,c\""
        );
        let g = GuestSpec::parse("k.elf:cmdline=say \"hi\"").unwrap();
        assert_eq!(
            g.module_line(),
            "module2 /guests/k.elf name=k cmdline=\"say \\\"hi\\\"\""
        );
    }

    #[test]
    fn path_as_first_argument() {
        let mut g = GuestSpec::with_keys(PathBuf::from("d/résumé.bin"), &[("mem", "8M")]);
        g.path_arg = true;
        assert_eq!(
            g.module_line(),
            "module2 /guests/résumé.bin /guests/résumé.bin mem=8M"
        );
        assert!(g.with_file(PathBuf::from("x")).path_arg);
    }

    #[test]
    fn module_of_a_guest() {
        let g = GuestSpec::parse("cfg.txt:module-of=hello").unwrap();
        assert!(g.is_module() && g.name().is_none());
        assert_eq!(g.module_line(), "module2 /guests/cfg.txt module-of=hello");
        let g = GuestSpec::parse("d/cfg.txt:cmdline=a=1  b \"c\",module-of=k").unwrap();
        assert_eq!(
            g.module_line(),
            "module2 /guests/cfg.txt module-of=k a=1 b \"\\\"c\\\"\""
        );
        let err = GuestSpec::parse("cfg.txt:module-of=k,mem=2M").unwrap_err();
        assert!(err.contains("takes only cmdline="), "{err}");
    }

    #[test]
    fn bad_specs() {
        assert!(GuestSpec::parse(":name=x").is_err());
        assert!(GuestSpec::parse("k.elf:oops").is_err());
        assert!(GuestSpec::parse("k.elf:mem=1M,mem=2M").is_err());
    }

    #[test]
    fn builtins() {
        assert_eq!(
            GuestSpec::parse("smoke").unwrap().builtin(),
            Some(Builtin::Bin("smoke".into()))
        );
        assert_eq!(
            GuestSpec::parse("hello:mem=8M").unwrap().builtin(),
            Some(Builtin::Hello)
        );
        assert_eq!(GuestSpec::parse("dir/x.elf").unwrap().builtin(), None);
    }

    #[test]
    fn cfg_layout() {
        let cfg = grub_cfg(&[GuestSpec::parse("smoke:name=smoke,mem=16M").unwrap()]);
        assert_eq!(
            cfg,
            "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_input serial\n\
             terminal_output serial\nmenuentry \"Janus\" {\n    multiboot2 /boot/janus.elf\n    \
             module2 /guests/smoke name=smoke mem=16M\n    boot\n}\n"
        );
    }
}
