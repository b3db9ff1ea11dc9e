//! How a disk and its partitions are identified, independent of `/dev/sdX`
//! names (which can differ between the host kernel and the initramfs).
//!
//! A partition is pinned by its disk's identifier, its number, the PARTUUID
//! Linux derives for it, and its exact start and size in sectors.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::units::{Bytes, Extent, SectorSize, Sectors, UnitError};
use crate::RefusalText;

/// Why a disk or partition identity is not valid; [`IdentityError::text`] gives the problem
/// and the fix apart, the one line joins them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", self.text())]
pub enum IdentityError {
    BadGuid(String),
    ZeroPartitionNumber,
    MbrNumberOutOfRange(u32),
    PartuuidMismatch { number: u32, found: String, expected: String },
    ZeroSize(u32),
    WrongDisk { number: u32, found: String, expected: String },
    Units(#[from] UnitError),
}

impl IdentityError {
    /// What is wrong and, where there is one, what to do about it, kept apart.
    pub fn text(&self) -> RefusalText {
        let problem = |text: String| RefusalText::problem_only(text);
        match self {
            IdentityError::BadGuid(text) => {
                problem(format!("'{text}' is not a GUID (expected 8-4-4-4-12 hexadecimal digits)"))
            }
            IdentityError::ZeroPartitionNumber => {
                problem("partition number 0 is not valid: partitions are numbered from 1".into())
            }
            IdentityError::MbrNumberOutOfRange(number) => problem(format!(
                "MBR partition number {number} is out of range (1..=255 as Linux numbers them)"
            )),
            IdentityError::PartuuidMismatch { number, found, expected } => RefusalText::new(
                format!("partition {number} has PARTUUID '{found}' but its disk identifier gives '{expected}'"),
                "re-read the partition table".into(),
            ),
            IdentityError::ZeroSize(number) => problem(format!("partition {number} has a zero size")),
            IdentityError::WrongDisk { number, found, expected } => problem(format!(
                "partition {number} is on disk {found} but the plan's disk is {expected}"
            )),
            IdentityError::Units(e) => e.text(),
        }
    }
}

/// A GUID in its canonical lower-case text form (`8-4-4-4-12` hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Guid(String);

impl Guid {
    /// Parses a GUID text, accepting either case, storing lower case (as Linux prints it).
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let groups: Vec<&str> = text.split('-').collect();
        let lengths = [8, 4, 4, 4, 12];
        let well_formed = groups.len() == lengths.len()
            && groups.iter().zip(lengths).all(|(group, len)| {
                group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit())
            });
        if !well_formed {
            return Err(IdentityError::BadGuid(text.to_string()));
        }
        Ok(Guid(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Guid {
    type Error = IdentityError;
    fn try_from(text: String) -> Result<Self, IdentityError> {
        Guid::parse(&text)
    }
}

impl From<Guid> for String {
    fn from(guid: Guid) -> String {
        guid.0
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identifier of a whole disk, from its partition table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "lowercase")]
pub enum DiskId {
    /// MBR: the 32-bit disk signature at byte 440 (fdisk's "Disk identifier: 0x000ae07e").
    Mbr { signature: u32 },
    /// GPT: the disk GUID from the GPT header.
    Gpt { guid: Guid },
}

impl fmt::Display for DiskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskId::Mbr { signature } => write!(f, "MBR 0x{signature:08x}"),
            DiskId::Gpt { guid } => write!(f, "GPT {guid}"),
        }
    }
}

/// The PARTUUID Linux shows for partition `number` of an MBR disk with this
/// signature: `%08x-%02x`, e.g. `000ae07e-01` for sda1 and `000ae07e-05` for sda5.
pub fn mbr_partuuid(signature: u32, number: u32) -> Result<String, IdentityError> {
    match number {
        0 => Err(IdentityError::ZeroPartitionNumber),
        1..=255 => Ok(format!("{signature:08x}-{number:02x}")),
        other => Err(IdentityError::MbrNumberOutOfRange(other)),
    }
}

/// One partition, pinned down so that the migrator can find it again by
/// identity rather than by device name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionIdentity {
    pub disk: DiskId,
    /// Partition number as Linux numbers it (MBR logicals start at 5).
    pub number: u32,
    /// As in `/dev/disk/by-partuuid/` and `blkid`: `xxxxxxxx-NN` for MBR, the partition GUID for GPT.
    pub partuuid: String,
    pub start: Sectors,
    pub size: Sectors,
    pub sector_size: SectorSize,
}

impl PartitionIdentity {
    /// A partition of an MBR disk; the PARTUUID is derived from the signature.
    pub fn mbr(
        signature: u32,
        number: u32,
        start: Sectors,
        size: Sectors,
        sector_size: SectorSize,
    ) -> Result<Self, IdentityError> {
        let partuuid = mbr_partuuid(signature, number)?;
        Ok(PartitionIdentity {
            disk: DiskId::Mbr { signature },
            number,
            partuuid,
            start,
            size,
            sector_size,
        })
    }

    /// A partition of a GPT disk; the PARTUUID is the partition's own GUID.
    pub fn gpt(
        disk_guid: Guid,
        number: u32,
        partition_guid: Guid,
        start: Sectors,
        size: Sectors,
        sector_size: SectorSize,
    ) -> Result<Self, IdentityError> {
        if number == 0 {
            return Err(IdentityError::ZeroPartitionNumber);
        }
        Ok(PartitionIdentity {
            disk: DiskId::Gpt { guid: disk_guid },
            number,
            partuuid: partition_guid.to_string(),
            start,
            size,
            sector_size,
        })
    }

    pub fn extent(&self) -> Extent {
        Extent::new(self.start, self.size)
    }

    pub fn start_bytes(&self) -> Result<Bytes, UnitError> {
        self.start.to_bytes(self.sector_size)
    }

    pub fn size_bytes(&self) -> Result<Bytes, UnitError> {
        self.size.to_bytes(self.sector_size)
    }

    /// Checks that the fields agree with each other: a non-zero number and
    /// size, an end that fits in 64 bits, and a PARTUUID that matches the disk
    /// identifier (MBR) or is a GUID (GPT).
    pub fn validate(&self) -> Result<(), IdentityError> {
        if self.number == 0 {
            return Err(IdentityError::ZeroPartitionNumber);
        }
        if self.size.is_zero() {
            return Err(IdentityError::ZeroSize(self.number));
        }
        self.extent().end()?;
        self.size_bytes()?;
        match &self.disk {
            DiskId::Mbr { signature } => {
                let expected = mbr_partuuid(*signature, self.number)?;
                if !self.partuuid.eq_ignore_ascii_case(&expected) {
                    return Err(IdentityError::PartuuidMismatch {
                        number: self.number,
                        found: self.partuuid.clone(),
                        expected,
                    });
                }
            }
            DiskId::Gpt { .. } => {
                Guid::parse(&self.partuuid)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for PartitionIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = self
            .size_bytes()
            .map(|b| b.to_string())
            .unwrap_or_else(|_| "size overflows".to_string());
        write!(
            f,
            "partition {} (PARTUUID {}) on {}, {}, {}, {}",
            self.number,
            self.partuuid,
            self.disk,
            self.extent(),
            size,
            self.sector_size
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Project STEM example disk: `Disk identifier: 0x000ae07e`.
    const STEM_SIGNATURE: u32 = 0x000a_e07e;

    #[test]
    fn mbr_partuuid_matches_linux_format() {
        assert_eq!(mbr_partuuid(STEM_SIGNATURE, 1).unwrap(), "000ae07e-01");
        assert_eq!(mbr_partuuid(STEM_SIGNATURE, 5).unwrap(), "000ae07e-05");
        assert_eq!(mbr_partuuid(0xdeadbeef, 16).unwrap(), "deadbeef-10");
        assert_eq!(mbr_partuuid(1, 0), Err(IdentityError::ZeroPartitionNumber));
        assert_eq!(mbr_partuuid(1, 256), Err(IdentityError::MbrNumberOutOfRange(256)));
    }

    /// Compares against what libblkid (via `partx`) reports for a real MBR
    /// image built with sfdisk, including a logical partition.
    #[test]
    fn mbr_partuuid_matches_libblkid_on_a_real_image() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let dir = std::env::temp_dir().join(format!("plan-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("disk.img");
        std::fs::File::create(&image).unwrap().set_len(64 * 1024 * 1024).unwrap();
        let mut sfdisk = Command::new("/usr/sbin/sfdisk")
            .arg("--quiet")
            .arg(&image)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("sfdisk is installed");
        sfdisk
            .stdin
            .take()
            .unwrap()
            .write_all(
                b"label: dos\nlabel-id: 0x000ae07e\nstart=2048, size=65536, type=83\n\
                  start=67584, type=5\nstart=69632, type=82\n",
            )
            .unwrap();
        assert!(sfdisk.wait().unwrap().success());
        let out = Command::new("/usr/bin/partx")
            .args(["-g", "-o", "NR,UUID"])
            .arg(&image)
            .output()
            .expect("partx is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listing = String::from_utf8(out.stdout).unwrap();
        let mut seen = 0;
        for line in listing.lines() {
            let mut fields = line.split_whitespace();
            let number: u32 = fields.next().unwrap().parse().unwrap();
            let shown = fields.next().unwrap();
            assert_eq!(mbr_partuuid(STEM_SIGNATURE, number).unwrap(), shown, "partition {number}");
            seen += 1;
        }
        assert_eq!(seen, 3, "partx listed: {listing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn guid_parsing_normalises_case_and_rejects_junk() {
        let guid = Guid::parse("0FC63DAF-8483-4772-8E79-3D69D8477DE4").unwrap();
        assert_eq!(guid.as_str(), "0fc63daf-8483-4772-8e79-3d69d8477de4");
        for bad in [
            "",
            "0fc63daf84834772",
            "0fc63daf-8483-4772-8e79-3d69d8477de",
            "zfc63daf-8483-4772-8e79-3d69d8477de4",
        ] {
            assert!(matches!(Guid::parse(bad), Err(IdentityError::BadGuid(_))), "{bad}");
        }
    }

    #[test]
    fn mbr_identity_validates_and_catches_a_wrong_partuuid() {
        let root = PartitionIdentity::mbr(
            STEM_SIGNATURE,
            1,
            Sectors(2048),
            Sectors(29_358_080),
            SectorSize::S512,
        )
        .unwrap();
        root.validate().unwrap();
        assert_eq!(root.partuuid, "000ae07e-01");
        let mut forged = root.clone();
        forged.partuuid = "000ae07e-02".to_string();
        assert_eq!(
            forged.validate(),
            Err(IdentityError::PartuuidMismatch {
                number: 1,
                found: "000ae07e-02".into(),
                expected: "000ae07e-01".into()
            })
        );
        let mut empty = root.clone();
        empty.size = Sectors(0);
        assert_eq!(empty.validate(), Err(IdentityError::ZeroSize(1)));
    }

    #[test]
    fn gpt_identity_uses_the_partition_guid() {
        let disk = Guid::parse("11111111-2222-3333-4444-555555555555").unwrap();
        let part = Guid::parse("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE").unwrap();
        let id =
            PartitionIdentity::gpt(disk, 2, part, Sectors(2048), Sectors(8), SectorSize::S4096)
                .unwrap();
        id.validate().unwrap();
        assert_eq!(id.partuuid, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
        assert_eq!(id.size_bytes().unwrap(), Bytes(32768));
        let mut broken = id.clone();
        broken.partuuid = "not-a-guid".into();
        assert!(matches!(broken.validate(), Err(IdentityError::BadGuid(_))));
    }

    #[test]
    fn disk_id_serialises_with_a_table_tag() {
        let json = serde_json::to_string(&DiskId::Mbr { signature: STEM_SIGNATURE }).unwrap();
        assert_eq!(json, r#"{"table":"mbr","signature":712830}"#);
        let back: DiskId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, DiskId::Mbr { signature: STEM_SIGNATURE });
        let bad = serde_json::from_str::<DiskId>(r#"{"table":"gpt","guid":"nope"}"#).unwrap_err();
        assert!(bad.to_string().contains("is not a GUID"), "{bad}");
    }
}
