//! A streaming writer of cpio "newc" (`070701`) archives, the format the
//! Linux kernel unpacks into its initial rootfs.
//!
//! Every entry is owned by root (uid/gid 0), carries the same modification
//! time and gets the next inode number in writing order, so the same calls
//! produce the same bytes. Parent directories are written (mode 0755) before
//! any entry below them unless the caller wrote them first: the kernel does
//! not create missing parents. Hard links are not supported; every regular
//! file has one link.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::counting::CountingWriter;
use crate::{Error, Result};

/// Magic of the newc format (no checksum).
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Name of the entry that ends every archive.
pub const TRAILER_NAME: &str = "TRAILER!!!";
/// Fixed size of a newc header: the magic and 13 eight-digit hex fields.
pub const HEADER_LEN: usize = 110;
/// Largest file a newc entry can describe (its size field is 32 bits).
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const PERMISSION_BITS: u32 = 0o7777;
const DEFAULT_DIRECTORY_MODE: u32 = 0o755;
const ALIGNMENT: u64 = 4;

/// Major and minor number of a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceNumber {
    pub major: u32,
    pub minor: u32,
}

impl DeviceNumber {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }
}

/// The fields of one newc header that vary between entries.
struct Header<'a> {
    name: &'a str,
    inode: u32,
    mode: u32,
    link_count: u32,
    file_size: u32,
    device: DeviceNumber,
}

/// Writes a newc archive to `W` as entries are added; call
/// [`CpioWriter::finish`] to write the trailer.
pub struct CpioWriter<W: Write> {
    out: CountingWriter<W>,
    mtime: u32,
    next_inode: u32,
    written_paths: HashSet<String>,
    directories: HashSet<String>,
}

impl<W: Write> CpioWriter<W> {
    /// A writer whose entries all have modification time 0 (the epoch).
    pub fn new(out: W) -> Self {
        Self::with_mtime(out, 0)
    }

    /// A writer whose entries all have modification time `mtime` (seconds
    /// since the epoch).
    pub fn with_mtime(out: W, mtime: u32) -> Self {
        Self {
            out: CountingWriter::new(out),
            mtime,
            next_inode: 1,
            written_paths: HashSet::new(),
            directories: HashSet::new(),
        }
    }

    /// Bytes written so far, headers and padding included.
    pub fn bytes_written(&self) -> u64 {
        self.out.bytes_written()
    }

    /// Whether `path` (in any accepted spelling) was already written,
    /// explicitly or as an implied parent directory.
    pub fn contains(&self, path: &str) -> bool {
        normalize_path(path).is_ok_and(|name| self.written_paths.contains(&name))
    }

    /// Adds a directory with permission bits `mode`.
    pub fn directory(&mut self, path: &str, mode: u32) -> Result<()> {
        let name = self.prepare_entry(path, mode)?;
        self.write_directory(&name, mode)
    }

    /// Adds a regular file holding `data`.
    pub fn file_from_bytes(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.file_from_reader(path, mode, data.len() as u64, data)
    }

    /// Adds a regular file of exactly `size` bytes read from `reader`; fails
    /// if the reader ends early (extra bytes are not read).
    pub fn file_from_reader(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        reader: impl Read,
    ) -> Result<()> {
        let name = self.prepare_entry(path, mode)?;
        let file_size =
            u32::try_from(size).map_err(|_| Error::FileTooLarge { path: name.clone(), size })?;
        let inode = self.allocate_inode();
        self.write_header(&Header {
            name: &name,
            inode,
            mode: S_IFREG | mode,
            link_count: 1,
            file_size,
            device: DeviceNumber::new(0, 0),
        })?;
        let copied = io::copy(&mut reader.take(size), &mut self.out).map_err(Error::Write)?;
        if copied != size {
            return Err(Error::ShortRead { path: name, expected: size, actual: copied });
        }
        self.pad()?;
        self.record(name);
        Ok(())
    }

    /// Adds a regular file with the contents of the host file `source`.
    pub fn file_from_path(&mut self, path: &str, mode: u32, source: &Path) -> Result<()> {
        let read_error =
            |source_error| Error::Read { path: source.to_path_buf(), source: source_error };
        let file = File::open(source).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        self.file_from_reader(path, mode, size, io::BufReader::new(file))
    }

    /// Adds a symbolic link at `path` pointing to `target` (stored as is).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let name = self.prepare_entry(path, 0o777)?;
        let inode = self.allocate_inode();
        let file_size = u32::try_from(target.len())
            .map_err(|_| Error::FileTooLarge { path: name.clone(), size: target.len() as u64 })?;
        self.write_header(&Header {
            name: &name,
            inode,
            mode: S_IFLNK | 0o777,
            link_count: 1,
            file_size,
            device: DeviceNumber::new(0, 0),
        })?;
        self.out.write_all(target.as_bytes()).map_err(Error::Write)?;
        self.pad()?;
        self.record(name);
        Ok(())
    }

    /// Adds a character device node.
    pub fn char_device(&mut self, path: &str, mode: u32, device: DeviceNumber) -> Result<()> {
        self.device_node(path, S_IFCHR, mode, device)
    }

    /// Adds a block device node.
    pub fn block_device(&mut self, path: &str, mode: u32, device: DeviceNumber) -> Result<()> {
        self.device_node(path, S_IFBLK, mode, device)
    }

    /// Writes the trailer, flushes and returns the underlying writer.
    pub fn finish(mut self) -> Result<W> {
        self.write_header(&Header {
            name: TRAILER_NAME,
            inode: 0,
            mode: 0,
            link_count: 1,
            file_size: 0,
            device: DeviceNumber::new(0, 0),
        })?;
        self.out.flush().map_err(Error::Write)?;
        Ok(self.out.into_inner())
    }

    fn device_node(
        &mut self,
        path: &str,
        file_type: u32,
        mode: u32,
        device: DeviceNumber,
    ) -> Result<()> {
        let name = self.prepare_entry(path, mode)?;
        let inode = self.allocate_inode();
        self.write_header(&Header {
            name: &name,
            inode,
            mode: file_type | mode,
            link_count: 1,
            file_size: 0,
            device,
        })?;
        self.record(name);
        Ok(())
    }

    /// Validates path and mode, refuses duplicates and writes any missing
    /// parent directories; returns the path as stored in the archive.
    fn prepare_entry(&mut self, path: &str, mode: u32) -> Result<String> {
        let name = normalize_path(path)?;
        if mode & !PERMISSION_BITS != 0 {
            return Err(Error::InvalidMode { path: name, mode });
        }
        if self.written_paths.contains(&name) {
            return Err(Error::DuplicatePath { path: name });
        }
        self.write_missing_parents(&name)?;
        Ok(name)
    }

    fn write_missing_parents(&mut self, name: &str) -> Result<()> {
        let parents = name.match_indices('/').map(|(index, _)| &name[..index]).collect::<Vec<_>>();
        for parent in parents {
            if self.directories.contains(parent) {
                continue;
            }
            if self.written_paths.contains(parent) {
                return Err(Error::ParentNotDirectory {
                    path: name.to_string(),
                    parent: parent.to_string(),
                });
            }
            self.write_directory(parent, DEFAULT_DIRECTORY_MODE)?;
        }
        Ok(())
    }

    fn write_directory(&mut self, name: &str, mode: u32) -> Result<()> {
        let inode = self.allocate_inode();
        self.write_header(&Header {
            name,
            inode,
            mode: S_IFDIR | mode,
            link_count: 2,
            file_size: 0,
            device: DeviceNumber::new(0, 0),
        })?;
        self.directories.insert(name.to_string());
        self.record(name.to_string());
        Ok(())
    }

    fn record(&mut self, name: String) {
        self.written_paths.insert(name);
    }

    fn allocate_inode(&mut self) -> u32 {
        let inode = self.next_inode;
        self.next_inode += 1;
        inode
    }

    /// Writes the header and the NUL-terminated name, padded so that what
    /// follows starts on a 4-byte boundary.
    fn write_header(&mut self, header: &Header<'_>) -> Result<()> {
        let name_size = header.name.len() + 1;
        let fields = [
            header.inode,
            header.mode,
            0, // uid
            0, // gid
            header.link_count,
            self.mtime,
            header.file_size,
            0, // devmajor: the device holding the file, meaningless here
            0, // devminor
            header.device.major,
            header.device.minor,
            name_size as u32,
            0, // check: always 0 in newc
        ];
        let mut encoded = Vec::with_capacity(HEADER_LEN + name_size + 3);
        encoded.extend_from_slice(NEWC_MAGIC);
        for field in fields {
            encoded.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        encoded.extend_from_slice(header.name.as_bytes());
        encoded.push(0);
        self.out.write_all(&encoded).map_err(Error::Write)?;
        self.pad()
    }

    /// Zero bytes up to the next 4-byte boundary of the archive.
    fn pad(&mut self) -> Result<()> {
        let misalignment = self.out.bytes_written() % ALIGNMENT;
        if misalignment == 0 {
            return Ok(());
        }
        let padding = [0u8; ALIGNMENT as usize];
        let padding_len = (ALIGNMENT - misalignment) as usize;
        self.out.write_all(&padding[..padding_len]).map_err(Error::Write)
    }
}

/// The archive spelling of `path`: relative, `/`-separated, without empty or
/// `.` components. `..` and NUL are refused, and so is the root itself.
pub fn normalize_path(path: &str) -> Result<String> {
    let invalid = |reason| Error::InvalidPath { path: path.to_string(), reason };
    if path.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(invalid("it contains \"..\"")),
            other => components.push(other),
        }
    }
    if components.is_empty() {
        return Err(invalid("it names the archive root"));
    }
    Ok(components.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_leading_slash_dot_and_repeated_separators() {
        assert_eq!(normalize_path("/bin//./sh").unwrap(), "bin/sh");
        assert_eq!(normalize_path("etc/").unwrap(), "etc");
    }

    #[test]
    fn refuses_parent_components_root_and_nul() {
        for bad in ["../etc", "a/../b", "/", "", ".", "a\0b"] {
            assert!(
                matches!(normalize_path(bad), Err(Error::InvalidPath { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn duplicate_paths_and_files_as_parents_are_refused() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.file_from_bytes("a", 0o644, b"x").unwrap();
        assert!(matches!(
            writer.file_from_bytes("/a", 0o644, b"y"),
            Err(Error::DuplicatePath { .. })
        ));
        assert!(matches!(
            writer.file_from_bytes("a/b", 0o644, b"y"),
            Err(Error::ParentNotDirectory { .. })
        ));
    }

    #[test]
    fn mode_with_type_bits_is_refused() {
        let mut writer = CpioWriter::new(Vec::new());
        assert!(matches!(
            writer.file_from_bytes("a", 0o100_644, b"x"),
            Err(Error::InvalidMode { .. })
        ));
    }

    #[test]
    fn short_reader_is_an_error() {
        let mut writer = CpioWriter::new(Vec::new());
        let result = writer.file_from_reader("a", 0o644, 10, &b"12345"[..]);
        assert!(matches!(result, Err(Error::ShortRead { expected: 10, actual: 5, .. })));
    }
}
