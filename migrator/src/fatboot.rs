//! Writing files onto resin-boot (FAT) with the `fatfs` crate, through a
//! partition-sized window of the disk: no kernel FAT driver, no partition device.

use std::io::{self, Read, Seek, SeekFrom, Write};

use plan::Bytes;

/// A `[start, start + len)` byte window of a disk, as a stream of its own.
#[derive(Debug)]
pub struct PartitionSlice<D> {
    disk: D,
    start: u64,
    len: u64,
    pos: u64,
}

impl<D: Seek> PartitionSlice<D> {
    pub fn new(disk: D, start: Bytes, len: Bytes) -> Self {
        PartitionSlice { disk, start: start.get(), len: len.get(), pos: 0 }
    }

    pub fn into_inner(self) -> D {
        self.disk
    }

    fn room(&self, want: usize) -> usize {
        let left = self.len.saturating_sub(self.pos);
        want.min(usize::try_from(left).unwrap_or(usize::MAX))
    }
}

impl<D: Read + Seek> Read for PartitionSlice<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.disk.seek(SeekFrom::Start(self.start + self.pos))?;
        let got = self.disk.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl<D: Write + Seek> Write for PartitionSlice<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        self.disk.seek(SeekFrom::Start(self.start + self.pos))?;
        let put = self.disk.write(&buf[..n])?;
        self.pos += put as u64;
        Ok(put)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.disk.flush()
    }
}

impl<D: Seek> Seek for PartitionSlice<D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before the partition start")
        })?;
        Ok(self.pos)
    }
}

/// One file to put on the FAT file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatFile {
    /// `/`-separated path from the FAT root, e.g. `system-connections/home-wifi`.
    pub path: String,
    pub contents: Vec<u8>,
}

/// Write `files` (creating directories, replacing existing contents) onto the FAT
/// file system in `volume`, unmount it cleanly (flushes FAT and dirty flag), then
/// repair the `.`/`..` entries of directories fatfs created ([`crate::fatfix`]).
pub fn write_files<V: Read + Write + Seek>(mut volume: V, files: &[FatFile]) -> io::Result<()> {
    let fs = fatfs::FileSystem::new(&mut volume, fatfs::FsOptions::new())?;
    {
        let root = fs.root_dir();
        for file in files {
            let path = file.path.trim_start_matches('/');
            if let Some((dir, _)) = path.rsplit_once('/') {
                let mut at = String::new();
                for part in dir.split('/') {
                    if !at.is_empty() {
                        at.push('/');
                    }
                    at.push_str(part);
                    root.create_dir(&at)?;
                }
            }
            let mut out = root.create_file(path)?;
            out.truncate()?;
            out.write_all(&file.contents)?;
            out.flush()?;
        }
    }
    fs.unmount()?;
    let repaired = crate::fatfix::repair_dot_entries(&mut volume)?;
    if repaired > 0 {
        log::info!("resin-boot: repaired the '.'/'..' entries of {repaired} new director(y/ies)");
    }
    Ok(())
}

/// Read one file back from a FAT volume (for checks after writing).
pub fn read_file<V: Read + Write + Seek>(volume: V, path: &str) -> io::Result<Vec<u8>> {
    let fs = fatfs::FileSystem::new(volume, fatfs::FsOptions::new())?;
    let mut contents = Vec::new();
    fs.root_dir().open_file(path.trim_start_matches('/'))?.read_to_end(&mut contents)?;
    Ok(contents)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigJsonError {
    #[error(
        "staged config.json is not a JSON object ({0}); re-stage with the device's config.json"
    )]
    NotAnObject(String),
}

/// config.json with `hostname` set to `hostname` when it has none (or keeps it as is).
pub fn config_with_hostname(text: &str, hostname: Option<&str>) -> Result<String, ConfigJsonError> {
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ConfigJsonError::NotAnObject(e.to_string()))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ConfigJsonError::NotAnObject("top level is not an object".into()))?;
    let Some(hostname) = hostname else {
        return Ok(text.to_string());
    };
    if object.get("hostname").and_then(|h| h.as_str()).is_some_and(|h| !h.is_empty()) {
        return Ok(text.to_string());
    }
    object.insert("hostname".into(), serde_json::Value::String(hostname.to_string()));
    serde_json::to_string(&value).map_err(|e| ConfigJsonError::NotAnObject(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn slice_reads_and_writes_only_its_window() {
        let disk = Cursor::new(vec![0xaau8; 64]);
        let mut slice = PartitionSlice::new(disk, Bytes(16), Bytes(8));
        slice.write_all(&[1, 2, 3]).unwrap();
        assert_eq!(slice.seek(SeekFrom::End(-2)).unwrap(), 6);
        slice.write_all(&[7, 8]).unwrap();
        assert!(slice.write(&[9]).is_err(), "writing past the end fails");
        slice.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        slice.read_to_end(&mut all).unwrap();
        assert_eq!(all, vec![1, 2, 3, 0xaa, 0xaa, 0xaa, 7, 8]);
        let disk = slice.into_inner().into_inner();
        assert!(disk[..16].iter().all(|b| *b == 0xaa) && disk[24..].iter().all(|b| *b == 0xaa));
    }

    #[test]
    fn hostname_is_added_only_when_missing() {
        let with = config_with_hostname(r#"{"applicationId":1}"#, Some("stem-17")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&with).unwrap();
        assert_eq!(v["hostname"], "stem-17");
        assert_eq!(v["applicationId"], 1);
        let kept = r#"{"hostname":"mine"}"#;
        assert_eq!(config_with_hostname(kept, Some("other")).unwrap(), kept);
        assert_eq!(config_with_hostname(kept, None).unwrap(), kept);
        assert!(config_with_hostname("[1]", Some("x")).is_err());
        assert!(config_with_hostname("{", Some("x")).is_err());
    }
}
