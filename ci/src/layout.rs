//! Checks of the workspace's shape that the design depends on.

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The core stays vendor-neutral: it depends on neither backend and names neither.
    #[test]
    fn vmm_core_depends_on_no_backend() {
        let manifest = std::fs::read_to_string(root().join("vmm-core/Cargo.toml")).unwrap();
        for backend in ["arch-vmx", "arch-svm"] {
            assert!(
                !manifest.contains(backend),
                "vmm-core/Cargo.toml names {backend}"
            );
        }
        let mut stack = vec![root().join("vmm-core/src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for name in ["arch_vmx", "arch_svm"] {
                    assert!(!text.contains(name), "{} names {name}", path.display());
                }
            }
        }
    }
}
