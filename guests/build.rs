//! Links every guest binary with its link script: `link.ld` (a multiboot1 kernel at
//! 1 MiB) unless [`SCRIPTS`] names another. image.ld, which they all INCLUDE, is found
//! through `-L` on this directory.
use std::path::Path;

/// Binaries with a link script of their own.
const SCRIPTS: [(&str, &str); 2] = [("qemukernel", "link-low.ld"), ("mb2", "link-mb2.ld")];

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-L{dir}");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    for bin in bins(Path::new(&dir).join("src/bin").as_path()) {
        let script = SCRIPTS
            .iter()
            .find(|(b, _)| *b == bin)
            .map_or("link.ld", |(_, s)| s);
        println!("cargo:rustc-link-arg-bin={bin}=-T{dir}/{script}");
    }
    for f in [
        "link.ld",
        "link-low.ld",
        "link-mb2.ld",
        "image.ld",
        "src/bin",
        "build.rs",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
}

/// The binaries: src/bin/NAME.rs and src/bin/NAME/main.rs.
fn bins(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir).expect("guests/src/bin").flatten() {
        let path = entry.path();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let is_bin = path.extension().is_some_and(|e| e == "rs") || path.join("main.rs").is_file();
        if let Some(stem) = stem.filter(|_| is_bin) {
            v.push(stem);
        }
    }
    v
}
