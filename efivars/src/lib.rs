//! UEFI firmware one-shot boot: a `Boot####` load option that starts a Linux
//! kernel directly through its EFI stub, plus `BootNext = ####`.
//!
//! For UEFI machines whose GRUB cannot honour grubenv `next_entry` (resinOS
//! 1.x on the Intel NUC: poky's grub-efi has neither `loadenv` nor `test`).
//! The firmware deletes `BootNext` before it boots the option it names, so a
//! failed migration environment falls back to `BootOrder` (the old system) on
//! the next boot. `BootOrder` is never touched.
//!
//! Formats (UEFI 2.x spec, 3.1.3 "Load Options" and 10.3 "Device Path
//! Protocol"; Linux `Documentation/filesystems/efivarfs.rst`), all
//! little-endian:
//! - `EFI_LOAD_OPTION`: u32 attributes, u16 FilePathListLength (bytes of the
//!   device path including its end node), description (UCS-2, NUL-terminated),
//!   the device path, then OptionalData. Here OptionalData is the kernel
//!   command line as UCS-2 with a NUL, which the Linux EFI stub reads as its
//!   `LoadOptions`.
//! - Device path: Hard Drive media node (type 4, subtype 1, 42 bytes), File
//!   Path media node (type 4, subtype 4, UCS-2 path with backslashes and NUL),
//!   End of Entire Device Path node (0x7f, 0xff, 4 bytes).
//! - efivarfs: the file `Name-GUID` holds the u32 variable attributes followed
//!   by the variable data; a variable must be written with one `write()`.
//!
//! ```no_run
//! use efivars::{EfiVars, HardDrive, LoadOption, PartitionSignature, UefiOneShot};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let option = LoadOption {
//!     description: "swapover migration".into(),
//!     partition: HardDrive {
//!         number: 1,
//!         start_lba: 8192,
//!         size_lba: 81920,
//!         signature: PartitionSignature::mbr_from_ptuuid("1234abcd")?,
//!     },
//!     file: r"\swapover\vmlinuz".into(),
//!     args: r"initrd=\swapover\initramfs.img console=ttyS0,115200".into(),
//! };
//! let undo = UefiOneShot::arm(&EfiVars::system(), &option)?;
//! let persisted = serde_json::to_string(&undo)?; // on refusal later: undo.undo(&vars)?
//! # let _ = persisted;
//! # Ok(()) }
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Vendor GUID of the UEFI global variables (`Boot####`, `BootNext`, `BootOrder`).
pub const EFI_GLOBAL_VARIABLE_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// Where the kernel mounts efivarfs.
pub const EFIVARS_DIR: &str = "/sys/firmware/efi/efivars";
/// `EFI_LOAD_OPTION.Attributes` bit: the option may be booted.
pub const LOAD_OPTION_ACTIVE: u32 = 0x0000_0001;
/// EFI_VARIABLE_NON_VOLATILE | EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS,
/// the attributes the spec requires for `Boot####` and `BootNext`.
pub const BOOT_VARIABLE_ATTRIBUTES: u32 = 0x1 | 0x2 | 0x4;
/// Lowest `Boot####` number [`EfiVars::free_boot_number`] hands out: firmware and
/// installers number their own options from 0000 upwards.
pub const FIRST_FREE_BOOT_NUMBER: u16 = 0x0100;

const BOOT_NEXT: &str = "BootNext";
const BOOT_ORDER: &str = "BootOrder";
const BOOT_CURRENT: &str = "BootCurrent";

const MEDIA_DEVICE_PATH: u8 = 0x04;
const MEDIA_HARD_DRIVE: u8 = 0x01;
const MEDIA_FILE_PATH: u8 = 0x04;
const END_DEVICE_PATH: u8 = 0x7f;
const END_ENTIRE_DEVICE_PATH: u8 = 0xff;
const NODE_HEADER_LEN: usize = 4;
const HARD_DRIVE_NODE_LEN: usize = 42;
const END_NODE_LEN: usize = 4;
const PARTITION_FORMAT_MBR: u8 = 0x01;
const PARTITION_FORMAT_GPT: u8 = 0x02;
const SIGNATURE_TYPE_MBR: u8 = 0x01;
const SIGNATURE_TYPE_GUID: u8 = 0x02;

#[derive(Debug, thiserror::Error)]
pub enum UefiError {
    #[error("{text:?} cannot be stored as UCS-2 for the firmware: {reason}")]
    Ucs2 { text: String, reason: String },
    #[error("boot option not encodable: {0}")]
    Invalid(String),
    #[error("malformed EFI_LOAD_OPTION: {0}")]
    Malformed(String),
    #[error("{}: not booted in UEFI mode or efivarfs not mounted; mount -t efivarfs efivarfs /sys/firmware/efi/efivars", dir.display())]
    NoEfiVars { dir: PathBuf },
    #[error("EFI variable {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("EFI variable {}: {reason}", path.display())]
    BadVariable { path: PathBuf, reason: String },
    #[error("{} cannot be started by the firmware: {reason}; the kernel must be built with CONFIG_EFI_STUB=y for x86-64", path.display())]
    NotEfiStub { path: PathBuf, reason: String },
    #[error("no free Boot#### number from Boot{FIRST_FREE_BOOT_NUMBER:04X} to BootFFFF; delete stale entries with efibootmgr -b XXXX -B")]
    NoFreeBootNumber,
}

/// `text` as UCS-2 code units (no terminating NUL). Refuses characters outside
/// the Basic Multilingual Plane (UCS-2 has no surrogate pairs) and control
/// characters (including NUL, which would end the string early).
pub fn to_ucs2(text: &str) -> Result<Vec<u16>, UefiError> {
    text.chars()
        .map(|c| {
            let refuse = |reason: String| UefiError::Ucs2 { text: text.to_owned(), reason };
            if c.is_control() {
                Err(refuse(format!("control character U+{:04X}", c as u32)))
            } else {
                u16::try_from(c as u32).map_err(|_| {
                    refuse(format!("U+{:04X} is outside the Basic Multilingual Plane", c as u32))
                })
            }
        })
        .collect()
}

/// `text` as UCS-2 little-endian bytes followed by a NUL code unit.
fn ucs2_z_bytes(text: &str) -> Result<Vec<u8>, UefiError> {
    let mut out: Vec<u8> = to_ucs2(text)?.into_iter().flat_map(u16::to_le_bytes).collect();
    out.extend_from_slice(&[0, 0]);
    Ok(out)
}

/// Decode UCS-2 LE code units (without the NUL) back to a string, refusing
/// what [`to_ucs2`] refuses (so decoding and encoding are exact inverses).
fn from_ucs2(units: &[u16], what: &str) -> Result<String, UefiError> {
    let text: String = units
        .iter()
        .map(|&u| {
            char::from_u32(u32::from(u)).ok_or_else(|| {
                UefiError::Malformed(format!("{what}: unpaired surrogate 0x{u:04x}"))
            })
        })
        .collect::<Result<_, _>>()?;
    to_ucs2(&text).map_err(|e| UefiError::Malformed(format!("{what}: {e}")))?;
    Ok(text)
}

/// The Hard Drive media node's partition signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionSignature {
    /// MBR disk: the 32-bit disk signature at byte 440 of the MBR (what blkid
    /// prints as the disk's PTUUID, 8 hex digits).
    Mbr(u32),
    /// GPT disk: the partition's unique GUID in its on-disk byte order (first
    /// three fields little-endian), as in the GPT partition entry.
    Gpt([u8; 16]),
}

impl PartitionSignature {
    /// From blkid's PTUUID of a DOS disk, e.g. `"1234abcd"`.
    pub fn mbr_from_ptuuid(ptuuid: &str) -> Result<Self, UefiError> {
        if ptuuid.len() != 8 || !ptuuid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UefiError::Invalid(format!(
                "MBR disk signature {ptuuid:?} is not 8 hex digits (blkid -s PTUUID)"
            )));
        }
        u32::from_str_radix(ptuuid, 16)
            .map(Self::Mbr)
            .map_err(|e| UefiError::Invalid(format!("MBR disk signature {ptuuid:?}: {e}")))
    }

    /// From blkid's PARTUUID of a GPT partition, e.g.
    /// `"c12a7328-f81f-11d2-ba4b-00a0c93ec93b"` (converted to on-disk order).
    pub fn gpt_from_partuuid(partuuid: &str) -> Result<Self, UefiError> {
        let bad = || {
            UefiError::Invalid(format!(
                "GPT partition GUID {partuuid:?} is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
            ))
        };
        let groups: Vec<&str> = partuuid.split('-').collect();
        let widths = [8, 4, 4, 4, 12];
        if groups.len() != widths.len()
            || groups
                .iter()
                .zip(widths)
                .any(|(g, w)| g.len() != w || !g.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let mut text_order = [0u8; 16];
        for (i, byte) in text_order.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let mut disk = text_order;
        disk[0..4].reverse();
        disk[4..6].reverse();
        disk[6..8].reverse();
        Ok(Self::Gpt(disk))
    }
}

/// Hard Drive media device path node: the partition holding the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardDrive {
    /// Partition number, 1-based (0 would mean the whole disk).
    pub number: u32,
    /// First sector of the partition, in logical blocks of the disk.
    pub start_lba: u64,
    /// Size of the partition, in logical blocks of the disk.
    pub size_lba: u64,
    pub signature: PartitionSignature,
}

impl HardDrive {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), UefiError> {
        if self.number == 0 {
            return Err(UefiError::Invalid(
                "partition number 0 means the whole disk; give the boot partition's number (1-based)"
                    .into(),
            ));
        }
        if self.size_lba == 0 {
            return Err(UefiError::Invalid("partition size is 0 blocks".into()));
        }
        let (signature, format, signature_type) = match self.signature {
            PartitionSignature::Mbr(disk) => {
                let mut s = [0u8; 16];
                s[..4].copy_from_slice(&disk.to_le_bytes());
                (s, PARTITION_FORMAT_MBR, SIGNATURE_TYPE_MBR)
            }
            PartitionSignature::Gpt(guid) => (guid, PARTITION_FORMAT_GPT, SIGNATURE_TYPE_GUID),
        };
        out.extend_from_slice(&[MEDIA_DEVICE_PATH, MEDIA_HARD_DRIVE]);
        out.extend_from_slice(&(HARD_DRIVE_NODE_LEN as u16).to_le_bytes());
        out.extend_from_slice(&self.number.to_le_bytes());
        out.extend_from_slice(&self.start_lba.to_le_bytes());
        out.extend_from_slice(&self.size_lba.to_le_bytes());
        out.extend_from_slice(&signature);
        out.extend_from_slice(&[format, signature_type]);
        Ok(())
    }

    /// `node` is the whole 42-byte node, header included.
    fn decode(node: &[u8]) -> Result<Self, UefiError> {
        let mut r = Reader::new(&node[NODE_HEADER_LEN..], "Hard Drive node");
        let number = r.u32()?;
        let start_lba = r.u64()?;
        let size_lba = r.u64()?;
        let signature: [u8; 16] = r.array()?;
        let format = r.u8()?;
        let signature_type = r.u8()?;
        let signature = match (format, signature_type) {
            (PARTITION_FORMAT_MBR, SIGNATURE_TYPE_MBR) => {
                if signature[4..].iter().any(|&b| b != 0) {
                    return Err(UefiError::Malformed(
                        "MBR signature with non-zero bytes after the first 4".into(),
                    ));
                }
                let mut disk = [0u8; 4];
                disk.copy_from_slice(&signature[..4]);
                PartitionSignature::Mbr(u32::from_le_bytes(disk))
            }
            (PARTITION_FORMAT_GPT, SIGNATURE_TYPE_GUID) => PartitionSignature::Gpt(signature),
            _ => {
                return Err(UefiError::Malformed(format!(
                    "partition format 0x{format:02x} with signature type 0x{signature_type:02x} \
                     (only MBR/0x01 and GPT/0x02 are supported)"
                )))
            }
        };
        Ok(Self { number, start_lba, size_lba, signature })
    }
}

/// A `Boot####` load option that boots `file` on `partition` with `args`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadOption {
    /// Shown by the firmware's boot menu and `efibootmgr`.
    pub description: String,
    /// The FAT partition holding `file`.
    pub partition: HardDrive,
    /// Path of the EFI executable (the kernel's EFI stub) on `partition`, with
    /// backslashes: `\swapover\vmlinuz`.
    pub file: String,
    /// Kernel command line, including `initrd=\path\on\same\partition`. Empty:
    /// no OptionalData at all.
    pub args: String,
}

impl LoadOption {
    /// The `EFI_LOAD_OPTION` bytes (the variable data, without efivarfs' attribute prefix).
    pub fn encode(&self) -> Result<Vec<u8>, UefiError> {
        if !self.file.starts_with('\\') || self.file.contains('/') || self.file.len() < 2 {
            return Err(UefiError::Invalid(format!(
                "file {:?} must be an absolute path with backslashes, e.g. \\swapover\\vmlinuz",
                self.file
            )));
        }
        let mut path = Vec::new();
        self.partition.encode(&mut path)?;
        let file = ucs2_z_bytes(&self.file)?;
        let file_node_len = u16::try_from(NODE_HEADER_LEN + file.len())
            .map_err(|_| UefiError::Invalid(format!("file path {:?} is too long", self.file)))?;
        path.extend_from_slice(&[MEDIA_DEVICE_PATH, MEDIA_FILE_PATH]);
        path.extend_from_slice(&file_node_len.to_le_bytes());
        path.extend_from_slice(&file);
        path.extend_from_slice(&[END_DEVICE_PATH, END_ENTIRE_DEVICE_PATH]);
        path.extend_from_slice(&(END_NODE_LEN as u16).to_le_bytes());
        let path_len = u16::try_from(path.len())
            .map_err(|_| UefiError::Invalid("device path longer than 65535 bytes".into()))?;

        let mut out = Vec::new();
        out.extend_from_slice(&LOAD_OPTION_ACTIVE.to_le_bytes());
        out.extend_from_slice(&path_len.to_le_bytes());
        out.extend_from_slice(&ucs2_z_bytes(&self.description)?);
        out.extend_from_slice(&path);
        if !self.args.is_empty() {
            out.extend_from_slice(&ucs2_z_bytes(&self.args)?);
        }
        Ok(out)
    }

    /// Parse what [`LoadOption::encode`] produces. Refuses (never panics on)
    /// anything else: other attributes, other device path shapes, truncated
    /// or inconsistent lengths.
    pub fn decode(bytes: &[u8]) -> Result<Self, UefiError> {
        let mut r = Reader::new(bytes, "EFI_LOAD_OPTION");
        let attributes = r.u32()?;
        if attributes != LOAD_OPTION_ACTIVE {
            return Err(UefiError::Malformed(format!(
                "attributes 0x{attributes:08x}, expected LOAD_OPTION_ACTIVE only"
            )));
        }
        let path_len = usize::from(r.u16()?);
        let description = r.ucs2_z("description")?;
        let path = r.take(path_len).map_err(|_| {
            UefiError::Malformed(format!(
                "FilePathListLength {path_len} runs past the end of the option"
            ))
        })?;
        let optional = r.rest();

        let mut nodes = Reader::new(path, "device path");
        let hd = nodes.node(MEDIA_DEVICE_PATH, MEDIA_HARD_DRIVE, "Hard Drive")?;
        if hd.len() != HARD_DRIVE_NODE_LEN {
            return Err(UefiError::Malformed(format!(
                "Hard Drive node is {} bytes, expected {HARD_DRIVE_NODE_LEN}",
                hd.len()
            )));
        }
        let partition = HardDrive::decode(hd)?;
        let file_node = nodes.node(MEDIA_DEVICE_PATH, MEDIA_FILE_PATH, "File Path")?;
        let mut file_reader = Reader::new(&file_node[NODE_HEADER_LEN..], "File Path node");
        let file = file_reader.ucs2_z("file path")?;
        if !file_reader.rest().is_empty() {
            return Err(UefiError::Malformed(
                "File Path node has bytes after the path's NUL".into(),
            ));
        }
        let end = nodes.node(END_DEVICE_PATH, END_ENTIRE_DEVICE_PATH, "End of Entire Path")?;
        if end.len() != END_NODE_LEN || !nodes.rest().is_empty() {
            return Err(UefiError::Malformed(
                "device path does not end with exactly one 4-byte end node".into(),
            ));
        }

        let args = if optional.is_empty() {
            String::new()
        } else {
            let mut o = Reader::new(optional, "OptionalData");
            let args = o.ucs2_z("kernel command line")?;
            if !o.rest().is_empty() || args.is_empty() {
                return Err(UefiError::Malformed(
                    "OptionalData is not exactly one non-empty NUL-terminated UCS-2 string".into(),
                ));
            }
            args
        };
        Ok(Self { description, partition, file, args })
    }
}

/// Bounds-checked little-endian reader; every method errors instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], UefiError> {
        if self.bytes.len() < n {
            return Err(UefiError::Malformed(format!(
                "{} truncated: needs {n} more bytes, has {}",
                self.what,
                self.bytes.len()
            )));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], UefiError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, UefiError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, UefiError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, UefiError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, UefiError> {
        self.array().map(u64::from_le_bytes)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    /// A NUL-terminated UCS-2 LE string; the NUL is consumed.
    fn ucs2_z(&mut self, what: &str) -> Result<String, UefiError> {
        let mut units = Vec::new();
        loop {
            let unit = self.u16().map_err(|_| {
                UefiError::Malformed(format!("{what}: no NUL terminator before the end"))
            })?;
            if unit == 0 {
                return from_ucs2(&units, what);
            }
            units.push(unit);
        }
    }

    /// The next device path node (header included), which must have this type.
    fn node(&mut self, node_type: u8, subtype: u8, name: &str) -> Result<&'a [u8], UefiError> {
        let mut header = Reader::new(self.bytes, "device path node header");
        let (t, s, len) = (header.u8()?, header.u8()?, usize::from(header.u16()?));
        if (t, s) != (node_type, subtype) {
            return Err(UefiError::Malformed(format!(
                "expected a {name} node (type 0x{node_type:02x} subtype 0x{subtype:02x}), \
                 found type 0x{t:02x} subtype 0x{s:02x}"
            )));
        }
        if len < NODE_HEADER_LEN {
            return Err(UefiError::Malformed(format!(
                "{name} node length {len} is shorter than its header"
            )));
        }
        self.take(len)
    }
}

/// PE/COFF machine type of x86-64 executables (`IMAGE_FILE_MACHINE_AMD64`).
pub const PE_MACHINE_X86_64: u16 = 0x8664;

/// Refuse a kernel the firmware could not start from a `Boot####` entry: it
/// must be a PE/COFF image for x86-64 (what `CONFIG_EFI_STUB` makes of a
/// bzImage: an `MZ` DOS header whose `e_lfanew` at 0x3c points at `PE\0\0`
/// followed by the COFF machine type). Reads only the first 4 KiB.
pub fn check_efi_stub(kernel: &Path) -> Result<(), UefiError> {
    use std::io::Read;
    let refuse = |reason: String| UefiError::NotEfiStub { path: kernel.to_owned(), reason };
    let mut head = Vec::new();
    File::open(kernel)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|source| UefiError::Io { path: kernel.to_owned(), source })?;
    if !head.starts_with(b"MZ") {
        return Err(refuse("no MZ header".into()));
    }
    let mut r = Reader::new(head.get(0x3c..).unwrap_or_default(), "DOS header");
    let pe_offset = r.u32().map_err(|_| refuse("truncated DOS header".into()))?;
    let pe = usize::try_from(pe_offset).ok().and_then(|at| head.get(at..)).unwrap_or_default();
    let mut r = Reader::new(pe, "PE header");
    let signature: [u8; 4] = r.array().map_err(|_| {
        refuse(format!("PE header offset 0x{pe_offset:x} is outside the first 4 KiB"))
    })?;
    if &signature != b"PE\0\0" {
        return Err(refuse(format!("no PE signature at 0x{pe_offset:x}")));
    }
    let machine = r.u16().map_err(|_| refuse("truncated PE header".into()))?;
    if machine != PE_MACHINE_X86_64 {
        return Err(refuse(format!("PE machine type 0x{machine:04x}, not x86-64 (0x8664)")));
    }
    Ok(())
}

/// One EFI variable: attributes and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiVariable {
    pub attributes: u32,
    pub data: Vec<u8>,
}

/// `Boot####` with four uppercase hex digits, as the spec names boot options.
pub fn boot_variable_name(number: u16) -> String {
    format!("Boot{number:04X}")
}

/// EFI global variables in an efivarfs directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiVars {
    dir: PathBuf,
}

impl EfiVars {
    /// `/sys/firmware/efi/efivars`.
    pub fn system() -> Self {
        Self::at(EFIVARS_DIR)
    }

    /// Another directory laid out like efivarfs (tests, a chroot).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The efivarfs file of global variable `name`: `name-8be4df61-...`.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-{EFI_GLOBAL_VARIABLE_GUID}"))
    }

    /// Refuse when the directory is missing or empty: an unmounted efivarfs
    /// mount point is an empty directory, a BIOS boot has none at all.
    pub fn check_available(&self) -> Result<(), UefiError> {
        let not_there = || UefiError::NoEfiVars { dir: self.dir.clone() };
        let mut entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_there()),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => return Err(not_there()),
            Err(source) => return Err(self.io(&self.dir, source)),
        };
        match entries.next() {
            None => Err(not_there()),
            Some(Ok(_)) => Ok(()),
            Some(Err(source)) => Err(self.io(&self.dir, source)),
        }
    }

    fn io(&self, path: &Path, source: io::Error) -> UefiError {
        UefiError::Io { path: path.to_owned(), source }
    }

    /// The whole efivarfs file (attributes + data), `None` if the variable does not exist.
    pub fn read_raw(&self, name: &str) -> Result<Option<Vec<u8>>, UefiError> {
        let path = self.path_of(name);
        match fs::read(&path) {
            Ok(bytes) if bytes.len() < 4 => Err(UefiError::BadVariable {
                path,
                reason: format!("{} bytes, shorter than the 4-byte attributes", bytes.len()),
            }),
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(self.io(&path, source)),
        }
    }

    pub fn read(&self, name: &str) -> Result<Option<EfiVariable>, UefiError> {
        Ok(self.read_raw(name)?.map(|bytes| {
            let (attributes, data) = bytes.split_at(4);
            let mut a = [0u8; 4];
            a.copy_from_slice(attributes);
            EfiVariable { attributes: u32::from_le_bytes(a), data: data.to_vec() }
        }))
    }

    /// Set `name` to `attributes` + `data`.
    pub fn write(&self, name: &str, attributes: u32, data: &[u8]) -> Result<(), UefiError> {
        let mut bytes = attributes.to_le_bytes().to_vec();
        bytes.extend_from_slice(data);
        self.write_raw(name, &bytes)
    }

    /// Replace the whole efivarfs file (attributes + data) in a single
    /// `write()`, as efivarfs requires. An existing variable is deleted first
    /// (what libefivar does), so a shorter value never leaves a tail behind.
    pub fn write_raw(&self, name: &str, bytes: &[u8]) -> Result<(), UefiError> {
        let path = self.path_of(name);
        if bytes.len() < 4 {
            return Err(UefiError::BadVariable {
                path,
                reason: "refusing to write fewer than the 4 attribute bytes".into(),
            });
        }
        self.remove(name)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            // Just deleted, so nothing to truncate; and efivarfs has no
            // truncate semantics (libefivar opens O_WRONLY|O_CREAT too).
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| self.io(&path, e))?;
        // efivarfs creates variables that are not well-known as immutable.
        if let Err(e) = clear_immutable(&file) {
            log::debug!("{}: cannot clear the immutable flag: {e}", path.display());
        }
        let written = file.write(bytes).map_err(|e| self.io(&path, e))?;
        if written != bytes.len() {
            return Err(UefiError::BadVariable {
                path,
                reason: format!(
                    "short write: {written} of {} bytes (efivarfs needs the whole variable in one write)",
                    bytes.len()
                ),
            });
        }
        Ok(())
    }

    /// Delete `name`; `Ok(false)` if it did not exist. Clears the immutable
    /// flag when the unlink is refused with EPERM, then retries.
    pub fn remove(&self, name: &str) -> Result<bool, UefiError> {
        let path = self.path_of(name);
        match fs::remove_file(&path) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => {}
            Err(source) => return Err(self.io(&path, source)),
        }
        let file = File::open(&path).map_err(|e| self.io(&path, e))?;
        let cleared = clear_immutable(&file).map_err(|e| self.io(&path, e))?;
        drop(file);
        log::info!(
            "{}: unlink refused; immutable flag {}, retrying",
            path.display(),
            if cleared { "cleared" } else { "was not set" }
        );
        fs::remove_file(&path).map_err(|e| self.io(&path, e))?;
        Ok(true)
    }

    /// `BootNext`, `None` when unset.
    pub fn boot_next(&self) -> Result<Option<u16>, UefiError> {
        self.read_u16(BOOT_NEXT)
    }

    /// `BootCurrent`: the option the firmware started this boot from, `None` when unset.
    pub fn boot_current(&self) -> Result<Option<u16>, UefiError> {
        self.read_u16(BOOT_CURRENT)
    }

    fn read_u16(&self, name: &str) -> Result<Option<u16>, UefiError> {
        match self.read(name)? {
            None => Ok(None),
            Some(var) => match <[u8; 2]>::try_from(var.data.as_slice()) {
                Ok(b) => Ok(Some(u16::from_le_bytes(b))),
                Err(_) => Err(UefiError::BadVariable {
                    path: self.path_of(name),
                    reason: format!("{} data bytes, expected 2", var.data.len()),
                }),
            },
        }
    }

    /// Set `BootOrder` (non-volatile) and read it back.
    pub fn write_boot_order(&self, order: &[u16]) -> Result<(), UefiError> {
        let mut bytes = BOOT_VARIABLE_ATTRIBUTES.to_le_bytes().to_vec();
        for number in order {
            bytes.extend_from_slice(&number.to_le_bytes());
        }
        write_verified(self, BOOT_ORDER, &bytes)
    }

    /// `BootOrder`, empty when unset.
    pub fn boot_order(&self) -> Result<Vec<u16>, UefiError> {
        match self.read(BOOT_ORDER)? {
            None => Ok(Vec::new()),
            Some(var) if var.data.len() % 2 != 0 => Err(UefiError::BadVariable {
                path: self.path_of(BOOT_ORDER),
                reason: format!("odd length {}", var.data.len()),
            }),
            Some(var) => {
                Ok(var.data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
            }
        }
    }

    /// `Boot####` (raw; [`LoadOption::decode`] parses options of our shape).
    pub fn boot_option(&self, number: u16) -> Result<Option<EfiVariable>, UefiError> {
        self.read(&boot_variable_name(number))
    }

    /// Numbers of the `Boot####` variables present, sorted.
    pub fn boot_numbers(&self) -> Result<Vec<u16>, UefiError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = parse_boot_file_name(name) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// The lowest number from [`FIRST_FREE_BOOT_NUMBER`] that neither names a
    /// `Boot####` variable nor appears in `BootOrder`.
    pub fn free_boot_number(&self) -> Result<u16, UefiError> {
        let mut taken = self.boot_numbers()?;
        taken.extend(self.boot_order()?);
        (FIRST_FREE_BOOT_NUMBER..=u16::MAX)
            .find(|n| !taken.contains(n))
            .ok_or(UefiError::NoFreeBootNumber)
    }
}

/// `Boot####-<global GUID>` -> ####, for efivarfs file names.
fn parse_boot_file_name(name: &str) -> Option<u16> {
    let hex = name.strip_prefix("Boot")?.get(..4)?;
    let guid = name.get(8..)?.strip_prefix('-')?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit())
        || !guid.eq_ignore_ascii_case(EFI_GLOBAL_VARIABLE_GUID)
    {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

const FS_IMMUTABLE_FL: nix::libc::c_int = 0x10;
// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS are numbered with sizeof(long) but the
// kernel reads and writes an int (as chattr and libefivar pass).
nix::ioctl_read_bad!(
    fs_ioc_getflags,
    nix::request_code_read!(b'f', 1, std::mem::size_of::<nix::libc::c_long>()),
    nix::libc::c_int
);
nix::ioctl_write_ptr_bad!(
    fs_ioc_setflags,
    nix::request_code_write!(b'f', 2, std::mem::size_of::<nix::libc::c_long>()),
    nix::libc::c_int
);

/// Clear FS_IMMUTABLE_FL on `file`; `Ok(true)` if it was set.
fn clear_immutable(file: &File) -> io::Result<bool> {
    let fd = file.as_raw_fd();
    let mut flags: nix::libc::c_int = 0;
    // SAFETY: `fd` is open for the duration of the call and `flags` is a live
    // c_int the kernel writes into.
    unsafe { fs_ioc_getflags(fd, &mut flags) }.map_err(io::Error::from)?;
    if flags & FS_IMMUTABLE_FL == 0 {
        return Ok(false);
    }
    flags &= !FS_IMMUTABLE_FL;
    // SAFETY: as above; the kernel only reads `flags`.
    unsafe { fs_ioc_setflags(fd, &flags) }.map_err(io::Error::from)?;
    Ok(true)
}

/// What [`UefiOneShot::arm`] changed; persist it (serde) and call
/// [`UefiUndo::undo`] to put the firmware variables back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UefiUndo {
    /// The `Boot####` number we created.
    pub boot_number: u16,
    /// The efivarfs bytes (attributes + `EFI_LOAD_OPTION`) we wrote to `Boot####`.
    pub boot_option: Vec<u8>,
    /// The efivarfs bytes of `BootNext` before arming; `None` when it was unset.
    pub previous_boot_next: Option<Vec<u8>>,
}

impl UefiUndo {
    pub fn boot_variable(&self) -> String {
        boot_variable_name(self.boot_number)
    }

    /// Put `BootNext` back byte for byte (or delete it if it was unset), then
    /// delete our `Boot####`. Succeeds when the firmware already consumed
    /// `BootNext`; a `Boot####` someone else rewrote since is left alone (with a
    /// warning). Idempotent.
    pub fn undo(&self, vars: &EfiVars) -> Result<(), UefiError> {
        vars.check_available()?;
        // BootNext is only touched while it is ours (or gone): one set by someone else since
        // the firmware consumed ours is theirs to keep.
        let current = vars.boot_next()?;
        if current.is_none() || current == Some(self.boot_number) {
            match &self.previous_boot_next {
                Some(previous) => {
                    if vars.read_raw(BOOT_NEXT)?.as_ref() != Some(previous) {
                        vars.write_raw(BOOT_NEXT, previous)?;
                    }
                }
                None => {
                    vars.remove(BOOT_NEXT)?;
                }
            }
        } else {
            log::warn!(
                "BootNext names Boot{:04X}, not ours: left in place",
                current.unwrap_or_default()
            );
        }
        let name = self.boot_variable();
        match vars.read_raw(&name)? {
            None => {}
            Some(bytes) if bytes == self.boot_option => {
                vars.remove(&name)?;
            }
            Some(_) => log::warn!(
                "{}: changed since swapover wrote it; left in place",
                vars.path_of(&name).display()
            ),
        }
        log::info!("UEFI one-shot {name} undone");
        Ok(())
    }

    /// Whether `BootNext` still names our option (false once the firmware has
    /// consumed it, i.e. the one-shot boot was attempted).
    pub fn is_pending(&self, vars: &EfiVars) -> Result<bool, UefiError> {
        Ok(vars.boot_next()? == Some(self.boot_number))
    }
}

/// Firmware one-shot boot via `Boot####` + `BootNext`.
pub struct UefiOneShot;

impl UefiOneShot {
    /// Create a new `Boot####` for `option` (lowest free number from
    /// [`FIRST_FREE_BOOT_NUMBER`]) and point `BootNext` at it. Both are read back;
    /// on any failure what was written is taken back before the error returns.
    pub fn arm(vars: &EfiVars, option: &LoadOption) -> Result<UefiUndo, UefiError> {
        vars.check_available()?;
        let mut boot_option = BOOT_VARIABLE_ATTRIBUTES.to_le_bytes().to_vec();
        boot_option.extend_from_slice(&option.encode()?);
        let boot_number = vars.free_boot_number()?;
        let undo =
            UefiUndo { boot_number, boot_option, previous_boot_next: vars.read_raw(BOOT_NEXT)? };
        let name = undo.boot_variable();
        let mut boot_next = BOOT_VARIABLE_ATTRIBUTES.to_le_bytes().to_vec();
        boot_next.extend_from_slice(&boot_number.to_le_bytes());
        let result = write_verified(vars, &name, &undo.boot_option)
            .and_then(|()| write_verified(vars, BOOT_NEXT, &boot_next));
        if let Err(e) = result {
            if let Err(rollback) = undo.undo(vars) {
                log::warn!("taking back the half-armed UEFI one-shot failed: {rollback}");
            }
            return Err(e);
        }
        log::info!(
            "UEFI one-shot armed: {name} ({:?}, {}) and BootNext={boot_number:04X}",
            option.description,
            option.file
        );
        Ok(undo)
    }
}

fn write_verified(vars: &EfiVars, name: &str, bytes: &[u8]) -> Result<(), UefiError> {
    vars.write_raw(name, bytes)?;
    match vars.read_raw(name)? {
        Some(back) if back == bytes => Ok(()),
        back => Err(UefiError::BadVariable {
            path: vars.path_of(name),
            reason: format!(
                "read back {} bytes that differ from the {} written (firmware refused the value?)",
                back.map_or(0, |b| b.len()),
                bytes.len()
            ),
        }),
    }
}

/// A boot option made the first entry of `BootOrder`, so that every boot starts it until it
/// is removed: the migration environment's resume entry once the migration has begun to
/// destroy the old system (a power cut must bring the migrator back, not the firmware's
/// next choice). Persist it (serde) before [`PermanentBoot::apply`]; it remembers the order
/// to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermanentBoot {
    pub boot_number: u16,
    /// `BootOrder` before, without `boot_number`.
    pub previous_order: Vec<u16>,
}

impl PermanentBoot {
    /// The record for making `boot_number` first, from the current `BootOrder`.
    pub fn record(vars: &EfiVars, boot_number: u16) -> Result<PermanentBoot, UefiError> {
        vars.check_available()?;
        let previous_order = vars.boot_order()?.into_iter().filter(|n| *n != boot_number).collect();
        Ok(PermanentBoot { boot_number, previous_order })
    }

    /// `BootOrder` = ours, then the previous order. Idempotent; read back.
    pub fn apply(&self, vars: &EfiVars) -> Result<(), UefiError> {
        vars.check_available()?;
        if vars.boot_option(self.boot_number)?.is_none() {
            return Err(UefiError::BadVariable {
                path: vars.path_of(&boot_variable_name(self.boot_number)),
                reason: "the option to make permanent does not exist".into(),
            });
        }
        let mut order = vec![self.boot_number];
        order.extend(&self.previous_order);
        if vars.boot_order()? != order {
            vars.write_boot_order(&order)?;
        }
        log::info!(
            "{} is first in BootOrder: every boot starts it until it is removed",
            boot_variable_name(self.boot_number)
        );
        Ok(())
    }

    /// Put `BootOrder` back as it was (the option itself stays). Idempotent.
    pub fn put_back(&self, vars: &EfiVars) -> Result<(), UefiError> {
        vars.check_available()?;
        let order = vars.boot_order()?;
        if order.contains(&self.boot_number) {
            vars.write_boot_order(&self.previous_order)?;
        }
        Ok(())
    }

    /// Take our option out of `BootOrder` (whatever else changed there stays) and delete
    /// it. Idempotent.
    pub fn remove(&self, vars: &EfiVars) -> Result<(), UefiError> {
        vars.check_available()?;
        let order = vars.boot_order()?;
        if order.contains(&self.boot_number) {
            let rest: Vec<u16> = order.into_iter().filter(|n| *n != self.boot_number).collect();
            vars.write_boot_order(&rest)?;
        }
        if vars.boot_next()? == Some(self.boot_number) {
            vars.remove(BOOT_NEXT)?;
        }
        vars.remove(&boot_variable_name(self.boot_number))?;
        log::info!("{} removed from the firmware", boot_variable_name(self.boot_number));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucs2_refuses_non_bmp_and_control_characters() {
        assert_eq!(to_ucs2("a\\é€").unwrap(), vec![0x61, 0x5c, 0xe9, 0x20ac]);
        for bad in ["tab\there", "nul\0", "new\nline", "del\u{7f}", "c1\u{85}", "😀"] {
            let err = to_ucs2(bad).unwrap_err().to_string();
            assert!(err.contains("UCS-2"), "{bad:?}: {err}");
        }
        assert!(to_ucs2("😀").unwrap_err().to_string().contains("U+1F600"));
    }

    #[test]
    fn from_ucs2_refuses_lone_surrogates() {
        assert!(from_ucs2(&[0xd800], "x").is_err());
        assert_eq!(from_ucs2(&[0x41, 0x20ac], "x").unwrap(), "A€");
    }

    #[test]
    fn gpt_partuuid_to_disk_order() {
        // The EFI System Partition type GUID and its on-disk bytes (UEFI spec, GPT chapter).
        let sig =
            PartitionSignature::gpt_from_partuuid("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(
            sig,
            PartitionSignature::Gpt([
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ])
        );
        for bad in ["", "c12a7328f81f11d2ba4b00a0c93ec93b", "g12a7328-f81f-11d2-ba4b-00a0c93ec93b"]
        {
            assert!(PartitionSignature::gpt_from_partuuid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mbr_ptuuid() {
        assert_eq!(
            PartitionSignature::mbr_from_ptuuid("1234abcd").unwrap(),
            PartitionSignature::Mbr(0x1234_abcd)
        );
        for bad in ["1234abc", "1234abcde", "+234abcd", "1234abcd-01"] {
            assert!(PartitionSignature::mbr_from_ptuuid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn boot_file_names() {
        let g = EFI_GLOBAL_VARIABLE_GUID;
        assert_eq!(boot_variable_name(0x1a), "Boot001A");
        assert_eq!(parse_boot_file_name(&format!("Boot001A-{g}")), Some(0x1a));
        assert_eq!(parse_boot_file_name(&format!("Boot001a-{}", g.to_uppercase())), Some(0x1a));
        assert_eq!(parse_boot_file_name(&format!("BootNext-{g}")), None);
        assert_eq!(parse_boot_file_name(&format!("BootOrder-{g}")), None);
        assert_eq!(parse_boot_file_name("Boot0001-12345678-1234-1234-1234-123456789abc"), None);
        assert_eq!(parse_boot_file_name("Boot0001"), None);
        assert_eq!(parse_boot_file_name("Bootééé"), None);
    }

    #[test]
    fn file_path_must_use_backslashes() {
        let mut option = LoadOption {
            description: "x".into(),
            partition: HardDrive {
                number: 1,
                start_lba: 2048,
                size_lba: 2048,
                signature: PartitionSignature::Mbr(1),
            },
            file: "/swapover/vmlinuz".into(),
            args: String::new(),
        };
        assert!(option.encode().unwrap_err().to_string().contains("backslashes"));
        option.file = r"\swapover\vmlinuz".into();
        option.partition.number = 0;
        assert!(option.encode().unwrap_err().to_string().contains("whole disk"));
    }
}
