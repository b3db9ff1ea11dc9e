//! The small shared vocabulary of the plan and the board profiles: partition
//! tables, file systems, partition roles, compression, where a device comes from.
//! Each serialises in kebab-case (`mbr`, `ext4`, `root-a`, `ubuntu-grub-host`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Partition table kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableKind {
    Mbr,
    Gpt,
}

/// File system (or swap signature) on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsType {
    Vfat,
    Ext2,
    Ext3,
    Ext4,
    Btrfs,
    Swap,
}

/// What a partition is for, independent of its name (which differs between
/// resinOS 1.x and 2.x: `resin-root`/`resin-updt` vs `resin-rootA`/`resin-rootB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionRole {
    /// The boot partition (`resin-boot`, vfat): bootloader files, config.json in 2.x.
    Boot,
    /// The active root file system (`resin-rootA` in 2.x, `resin-root` in 1.x).
    RootA,
    /// The spare root file system (`resin-rootB` in 2.x, `resin-updt` in 1.x).
    RootB,
    /// `resin-state` (2.x): persistent /etc overlay and machine state.
    State,
    /// `resin-conf` (1.x only): vfat partition holding config.json on older 1.x releases.
    Config,
    /// `resin-data`: container storage and the applications' `/data`.
    Data,
}

/// How the target image file is compressed on the staging file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Xz,
    Gzip,
}

/// What runs on the device before the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A general-purpose Linux host (Ubuntu/Debian) booted by GRUB 2.
    UbuntuGrubHost,
    /// A resinOS 1.x device (connman, btrfs data partition).
    #[serde(rename = "resinos-1x")]
    Resinos1x,
}

macro_rules! display_as_serde_name {
    ($($ty:ty => { $($variant:path => $name:literal),* $(,)? })*) => {
        $(impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($variant => $name),* })
            }
        })*
    };
}

display_as_serde_name! {
    TableKind => { TableKind::Mbr => "mbr", TableKind::Gpt => "gpt" }
    FsType => {
        FsType::Vfat => "vfat", FsType::Ext2 => "ext2", FsType::Ext3 => "ext3",
        FsType::Ext4 => "ext4", FsType::Btrfs => "btrfs", FsType::Swap => "swap",
    }
    PartitionRole => {
        PartitionRole::Boot => "boot", PartitionRole::RootA => "root-a", PartitionRole::RootB => "root-b",
        PartitionRole::State => "state", PartitionRole::Config => "config", PartitionRole::Data => "data",
    }
    Compression => { Compression::None => "none", Compression::Xz => "xz", Compression::Gzip => "gzip" }
    SourceKind => { SourceKind::UbuntuGrubHost => "ubuntu-grub-host", SourceKind::Resinos1x => "resinos-1x" }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Display must print exactly the serde name, so messages and files agree.
    #[test]
    fn display_matches_serde_names() {
        fn check<T: Serialize + fmt::Display>(value: T) {
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json.trim_matches('"'), value.to_string());
        }
        for v in [TableKind::Mbr, TableKind::Gpt] {
            check(v);
        }
        for v in
            [FsType::Vfat, FsType::Ext2, FsType::Ext3, FsType::Ext4, FsType::Btrfs, FsType::Swap]
        {
            check(v);
        }
        for v in [
            PartitionRole::Boot,
            PartitionRole::RootA,
            PartitionRole::RootB,
            PartitionRole::State,
            PartitionRole::Config,
            PartitionRole::Data,
        ] {
            check(v);
        }
        for v in [Compression::None, Compression::Xz, Compression::Gzip] {
            check(v);
        }
        for v in [SourceKind::UbuntuGrubHost, SourceKind::Resinos1x] {
            check(v);
        }
    }
}
