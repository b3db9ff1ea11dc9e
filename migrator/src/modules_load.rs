//! Loading the kernel modules the initramfs carries, in the order the
//! initramfs builder wrote (`/etc/swapover/modules.load`, dependencies first),
//! with `finit_module`. Modules in `/etc/swapover/modules.optional` may fail.

use std::collections::HashSet;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The load list, relative to the archive root.
pub const LOAD_LIST: &str = "etc/swapover/modules.load";
/// The modules allowed to fail (soft dependencies), same format.
pub const OPTIONAL_LIST: &str = "etc/swapover/modules.optional";

/// One module to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleEntry {
    /// Path relative to the archive root.
    pub path: String,
    pub optional: bool,
}

/// Parse the two lists (one archive path per line; blank lines and `#` comments ignored).
pub fn parse_lists(load: &str, optional: &str) -> Vec<ModuleEntry> {
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.trim_start_matches('/').to_string())
            .collect()
    };
    let optional: HashSet<String> = lines(optional).into_iter().collect();
    lines(load)
        .into_iter()
        .map(|path| {
            let optional = optional.contains(&path);
            ModuleEntry { path, optional }
        })
        .collect()
}

/// What happened to one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded,
    /// Already in the kernel (EEXIST).
    AlreadyLoaded,
    Failed(String),
}

/// The result of loading every module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub loaded: usize,
    pub already: usize,
    /// Optional modules that failed (fine).
    pub optional_failures: Vec<(PathBuf, String)>,
    /// Required modules that failed: the disk or file systems may be missing.
    pub failures: Vec<(PathBuf, String)>,
}

/// Load every listed module under `root` (`/` in the initramfs). A missing list is
/// no modules (a kernel with everything built in).
pub fn load_all(root: &Path) -> LoadReport {
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap_or_default();
    let entries = parse_lists(&read(LOAD_LIST), &read(OPTIONAL_LIST));
    let mut report = LoadReport::default();
    for entry in entries {
        let path = root.join(&entry.path);
        match load_one(&path) {
            LoadOutcome::Loaded => report.loaded += 1,
            LoadOutcome::AlreadyLoaded => report.already += 1,
            LoadOutcome::Failed(why) if entry.optional => {
                log::info!("optional module {} not loaded: {why}", path.display());
                report.optional_failures.push((path, why));
            }
            LoadOutcome::Failed(why) => {
                log::error!("module {} failed to load: {why}", path.display());
                report.failures.push((path, why));
            }
        }
    }
    log::info!(
        "modules: {} loaded, {} already present, {} optional failed, {} failed",
        report.loaded,
        report.already,
        report.optional_failures.len(),
        report.failures.len()
    );
    report
}

/// Load one `.ko` file.
pub fn load_one(path: &Path) -> LoadOutcome {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) => return LoadOutcome::Failed(format!("cannot open: {e}")),
    };
    let no_params = CString::default();
    match nix::kmod::finit_module(&file, &no_params, nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) => LoadOutcome::Loaded,
        Err(nix::errno::Errno::EEXIST) => LoadOutcome::AlreadyLoaded,
        Err(e) => LoadOutcome::Failed(e.desc().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_order_is_kept_and_optional_ones_are_marked() {
        let load = "lib/modules/6.1.0/kernel/lib/crc16.ko\n\
                    lib/modules/6.1.0/kernel/arch/x86/crypto/crc32c-intel.ko\n\
                    \n# comment\n\
                    /lib/modules/6.1.0/kernel/fs/ext4/ext4.ko\n";
        let optional = "lib/modules/6.1.0/kernel/arch/x86/crypto/crc32c-intel.ko\n";
        let entries = parse_lists(load, optional);
        let got: Vec<(&str, bool)> =
            entries.iter().map(|e| (e.path.as_str(), e.optional)).collect();
        assert_eq!(
            got,
            vec![
                ("lib/modules/6.1.0/kernel/lib/crc16.ko", false),
                ("lib/modules/6.1.0/kernel/arch/x86/crypto/crc32c-intel.ko", true),
                ("lib/modules/6.1.0/kernel/fs/ext4/ext4.ko", false),
            ]
        );
    }

    #[test]
    fn a_module_that_is_not_a_module_fails_without_stopping() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/swapover")).unwrap();
        std::fs::write(dir.path().join("bad.ko"), b"not an ELF module").unwrap();
        std::fs::write(dir.path().join(LOAD_LIST), "bad.ko\nmissing.ko\n").unwrap();
        std::fs::write(dir.path().join(OPTIONAL_LIST), "missing.ko\n").unwrap();
        let report = load_all(dir.path());
        assert_eq!(report.loaded, 0);
        assert_eq!(report.failures.len(), 1, "{report:?}");
        assert!(report.failures[0].0.ends_with("bad.ko"));
        assert_eq!(report.optional_failures.len(), 1);
        assert!(report.optional_failures[0].1.contains("cannot open"));
    }
}
