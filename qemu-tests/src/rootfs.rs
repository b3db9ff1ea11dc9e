//! Building a root file system tree in a directory: busybox with its applet links, files
//! from the harness's assets, kernel module subsets.

use anyhow::{Context, Result};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// The static busybox from Debian's busybox-static package.
pub const BUSYBOX: &str = "/bin/busybox";

/// A directory being filled as a root file system.
pub struct RootTree {
    pub root: PathBuf,
}

impl RootTree {
    /// An empty directory (an old one at `root` is removed).
    pub fn fresh_empty(root: &Path) -> Result<RootTree> {
        if root.exists() {
            std::fs::remove_dir_all(root)
                .with_context(|| format!("removing {}", root.display()))?;
        }
        std::fs::create_dir_all(root)?;
        Ok(RootTree { root: root.to_path_buf() })
    }

    /// Starts from an empty directory (an old one at `root` is removed) with the usual
    /// top-level directories.
    pub fn fresh(root: &Path) -> Result<RootTree> {
        Self::fresh_empty(root)?;
        for dir in [
            "bin", "sbin", "etc", "dev", "proc", "sys", "run", "tmp", "root", "mnt", "usr/bin",
            "usr/sbin", "var/log",
        ] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
        Ok(RootTree { root: root.to_path_buf() })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Writes a file (parents created) with `mode`.
    pub fn file(&self, rel: &str, data: &[u8], mode: u32) -> Result<()> {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Never write through a link: busybox applet links point at absolute paths that
        // would resolve on the build machine, not in the tree.
        if path.symlink_metadata().is_ok() {
            std::fs::remove_file(&path)?;
        }
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    /// Copies a host file into the tree.
    pub fn copy(&self, rel: &str, src: &Path, mode: u32) -> Result<()> {
        let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        self.file(rel, &data, mode)
    }

    /// Installs busybox as `/bin/busybox` with a symlink for every applet it has.
    pub fn busybox(&self) -> Result<()> {
        self.busybox_from(Path::new(BUSYBOX))
    }

    /// Installs `binary` (a busybox of another architecture, of the same Debian version as
    /// the host's, whose applet list is used) as `/bin/busybox` with its applet links.
    pub fn busybox_from(&self, binary: &Path) -> Result<()> {
        self.copy("bin/busybox", binary, 0o755)?;
        for applet in busybox_applets()? {
            let link = self.path(&applet);
            if link.exists() || link.symlink_metadata().is_ok() {
                continue;
            }
            if let Some(dir) = link.parent() {
                std::fs::create_dir_all(dir)?;
            }
            symlink("/bin/busybox", &link)?;
        }
        Ok(())
    }

    /// Copies directory `src` recursively to `rel`.
    pub fn copy_dir(&self, rel: &str, src: &Path) -> Result<()> {
        copy_dir(src, &self.path(rel))
    }
}

/// Applet paths relative to `/` (`bin/sh`, `sbin/switch_root` ...).
pub fn busybox_applets() -> Result<Vec<String>> {
    let out = crate::tools::run(BUSYBOX, ["--list-full"])?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.is_empty() && *l != "bin/busybox")
        .map(str::to_string)
        .collect())
}

pub fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let to = dst.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else if kind.is_symlink() {
            symlink(std::fs::read_link(entry.path())?, &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

impl RootTree {
    /// Copies a dynamically linked host program and the shared libraries `ldd` names for it
    /// (the loader included) to the same paths in the tree, so it runs there as on the host.
    pub fn dynamic_program(&self, program: &Path) -> Result<()> {
        self.copy(&program.to_string_lossy(), program, 0o755)?;
        let out = crate::tools::run("ldd", [program.as_os_str()])?;
        for line in String::from_utf8_lossy(&out).lines() {
            // "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
            };
            let Some(path) = path.filter(|p| p.starts_with('/')) else { continue };
            let lib = Path::new(path);
            if !self.path(path).exists() {
                self.copy(path, &std::fs::canonicalize(lib)?, 0o755)?;
            }
        }
        Ok(())
    }
}
