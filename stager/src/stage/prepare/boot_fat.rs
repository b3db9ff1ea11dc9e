//! resin-boot of the image being prepared, edited in place inside a temporary file (never
//! held in memory): what it holds (flag files, grub.cfg, its label) and the grub.cfg the
//! flasher would have copied onto it.
//!
//! Facts (../shared/background/resinos-images-facts.md): a normal image carries the flag
//! file `/resin-image` (later `/balena-image`), a flasher `/resin-image-flasher`
//! (`/balena-image-flasher`) and the `flash-boot` label (meta-resin v2.12.5
//! `resin-image-flasher.bb`, `resin-os.inc`); `resin-init-flasher` copies the flasher's
//! `grub.cfg_internal` to `/EFI/BOOT/grub.cfg` and `/grub/grub.cfg` of the new boot
//! partition whatever is there (v2.12.5 `resin-init-flasher`, lines 171, 196–205).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// Where the flasher puts grub.cfg on the new resin-boot.
pub const GRUB_CFG_PATHS: [&str; 2] = ["EFI/BOOT/grub.cfg", "grub/grub.cfg"];
const NORMAL_FLAGS: [&str; 2] = ["resin-image", "balena-image"];
const FLASHER_FLAGS: [&str; 2] = ["resin-image-flasher", "balena-image-flasher"];

/// A window of a file, as fatfs wants a whole device: positional reads and writes.
pub struct FileRegion<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> FileRegion<'a> {
    pub fn new(file: &'a File, start: u64, len: u64) -> Self {
        FileRegion { file, start, len, pos: 0 }
    }

    fn room(&self, want: usize) -> usize {
        usize::try_from(self.len.saturating_sub(self.pos)).unwrap_or(usize::MAX).min(want)
    }
}

impl Read for FileRegion<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        let n = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for FileRegion<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "past the end of resin-boot"));
        }
        let n = self.file.write_at(&buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for FileRegion<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::other("seek before resin-boot's start"))?;
        Ok(self.pos)
    }
}

/// What resin-boot holds, as far as preparing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootContents {
    /// `/resin-image` or `/balena-image` is there.
    pub normal_flag: bool,
    /// `/resin-image-flasher` or `/balena-image-flasher`, when there.
    pub flasher_flag: Option<&'static str>,
    /// The FAT volume label (trimmed).
    pub label: String,
    /// grub.cfg at each of [`GRUB_CFG_PATHS`].
    pub grub_cfg: [bool; 2],
}

fn exists<T: Read + Write + Seek>(root: &fatfs::Dir<'_, T>, path: &str) -> bool {
    root.open_file(path).is_ok()
}

/// A reader that fatfs may hold as a device but never write through.
pub struct ReadOnly<R>(pub R);

impl<R: Read> Read for ReadOnly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Write for ReadOnly<R> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "read only"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<R: Seek> Seek for ReadOnly<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.0.seek(to)
    }
}

/// Reads what a boot partition holds (`disk`: its bytes, e.g. a [`FileRegion`], or
/// [`ReadOnly`] over bytes in memory).
pub fn inspect<T: Read + Write + Seek>(disk: T) -> io::Result<BootContents> {
    let fs = fatfs::FileSystem::new(disk, fatfs::FsOptions::new())?;
    let label = fs.volume_label().trim().to_string();
    let root = fs.root_dir();
    let contents = BootContents {
        normal_flag: NORMAL_FLAGS.iter().any(|f| exists(&root, f)),
        flasher_flag: FLASHER_FLAGS.iter().copied().find(|f| exists(&root, f)),
        label,
        grub_cfg: GRUB_CFG_PATHS.map(|p| exists(&root, p)),
    };
    Ok(contents)
}

/// Writes `grub_cfg` at both [`GRUB_CFG_PATHS`] (directories created, files replaced).
pub fn write_grub_cfg(region: FileRegion<'_>, grub_cfg: &[u8]) -> io::Result<()> {
    let fs = fatfs::FileSystem::new(region, fatfs::FsOptions::new())?;
    {
        let root = fs.root_dir();
        for path in GRUB_CFG_PATHS {
            let mut dir = root.clone();
            let mut parts: Vec<&str> = path.split('/').collect();
            let name = parts.pop().unwrap_or(path);
            for part in parts {
                dir = match dir.open_dir(part) {
                    Ok(found) => found,
                    Err(_) => dir.create_dir(part)?,
                };
            }
            let mut file = dir.create_file(name)?;
            file.truncate()?;
            file.write_all(grub_cfg)?;
            file.flush()?;
        }
    }
    fs.unmount()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn mkfs(path: &std::path::Path, label: &str) {
        let status = Command::new("mkfs.vfat")
            .args(["-n", label, "-C"])
            .arg(path)
            .arg("8192")
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn grub_cfg_lands_at_both_paths_inside_the_region_only() {
        let dir = tempfile::tempdir().unwrap();
        let fat = dir.path().join("boot.fat");
        mkfs(&fat, "resin-boot");
        // The FAT sits 1 MiB into a larger file, between bytes that must not change.
        let fat_bytes = std::fs::read(&fat).unwrap();
        let whole = dir.path().join("whole");
        let mut bytes = vec![0x5a; 1 << 20];
        bytes.extend_from_slice(&fat_bytes);
        bytes.extend_from_slice(&[0xa5; 4096]);
        std::fs::write(&whole, &bytes).unwrap();
        let file = File::options().read(true).write(true).open(&whole).unwrap();
        let region = || FileRegion::new(&file, 1 << 20, fat_bytes.len() as u64);
        let before = inspect(region()).unwrap();
        assert_eq!(before.grub_cfg, [false, false]);
        assert!(!before.normal_flag && before.flasher_flag.is_none());
        assert_eq!(before.label, "resin-boot");
        write_grub_cfg(region(), b"set timeout=0\n").unwrap();
        assert_eq!(inspect(region()).unwrap().grub_cfg, [true, true]);
        let after = std::fs::read(&whole).unwrap();
        assert!(after[..1 << 20].iter().all(|&b| b == 0x5a));
        assert!(after[(1 << 20) + fat_bytes.len()..].iter().all(|&b| b == 0xa5));
        // mtools reads both back.
        std::fs::write(&fat, &after[1 << 20..(1 << 20) + fat_bytes.len()]).unwrap();
        for path in GRUB_CFG_PATHS {
            let out = Command::new("mtype")
                .arg("-i")
                .arg(&fat)
                .arg(format!("::{path}"))
                .output()
                .unwrap();
            assert_eq!(out.stdout, b"set timeout=0\n", "{path}");
        }
    }
}
