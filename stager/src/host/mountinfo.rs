//! `/proc/self/mountinfo`: which device and filesystem hold `/` and `/boot`, and how.

use super::device_number::{BadDeviceNumber, DeviceNumber};
use super::error::{HostError, ParseError};
use super::escape::unescape_octal;
use super::root::HostRoot;
use serde::Serialize;

pub const PATH: &str = "/proc/self/mountinfo";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountInfoEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    /// `st_dev` of the filesystem; anonymous (`0:N`) for btrfs, tmpfs, overlay.
    pub device: DeviceNumber,
    /// The directory of the filesystem that is mounted here (`/@` for a btrfs subvolume).
    pub root: String,
    pub mount_point: String,
    pub mount_options: Vec<String>,
    pub optional_fields: Vec<String>,
    pub fs_type: String,
    /// What was mounted, e.g. `/dev/sda1`, `/dev/mapper/vg-root`, `/dev/root`.
    pub source: String,
    pub super_options: Vec<String>,
}

impl MountInfoEntry {
    /// Read-only either at this mount point or for the whole filesystem.
    pub fn is_read_only(&self) -> bool {
        self.mount_options.iter().any(|o| o == "ro") || self.super_options.iter().any(|o| o == "ro")
    }

    /// The btrfs subvolume mounted here, when it is not the top-level one.
    pub fn btrfs_subvolume(&self) -> Option<String> {
        if self.fs_type != "btrfs" {
            return None;
        }
        let from_options =
            self.super_options.iter().find_map(|o| o.strip_prefix("subvol=")).map(str::to_string);
        let subvolume = from_options.unwrap_or_else(|| self.root.clone());
        (subvolume != "/" && !subvolume.is_empty()).then_some(subvolume)
    }
}

/// Parses mountinfo text, one entry per line:
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
pub fn parse(text: &str) -> Result<Vec<MountInfoEntry>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| parse_line(index + 1, line))
        .collect()
}

/// One line (`line_number` counts from 1), or the parser's complaint about it.
fn parse_line(line_number: usize, line: &str) -> Result<MountInfoEntry, ParseError> {
    let problem = |text: String| ParseError::new(line_number, text);
    let fields: Vec<&str> = line.split_whitespace().collect();
    let separator = fields
        .iter()
        .position(|f| *f == "-")
        .ok_or_else(|| problem("no ` - ` separator before the filesystem type".to_string()))?;
    if separator < 6 || fields.len() < separator + 3 {
        return Err(problem(format!("too few fields in `{line}`")));
    }
    let number = |i: usize| {
        fields[i]
            .parse::<u32>()
            .map_err(|_| problem(format!("field {} `{}` is not a number", i + 1, fields[i])))
    };
    let options = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    Ok(MountInfoEntry {
        mount_id: number(0)?,
        parent_id: number(1)?,
        device: fields[2].parse().map_err(|e: BadDeviceNumber| problem(e.to_string()))?,
        root: unescape_octal(fields[3]),
        mount_point: unescape_octal(fields[4]),
        mount_options: options(fields[5]),
        optional_fields: fields[6..separator].iter().map(|f| f.to_string()).collect(),
        fs_type: fields[separator + 1].to_string(),
        source: unescape_octal(fields[separator + 2]),
        super_options: fields.get(separator + 3).map(|s| options(s)).unwrap_or_default(),
    })
}

/// The mount visible at exactly `mount_point`: the last one listed wins, as later mounts
/// hide earlier ones.
pub fn mounted_at<'a>(
    entries: &'a [MountInfoEntry],
    mount_point: &str,
) -> Option<&'a MountInfoEntry> {
    entries.iter().rev().find(|e| e.mount_point == mount_point)
}

/// The mount that holds `path`: the longest mount point that is `path` or one of its parents.
pub fn holding<'a>(entries: &'a [MountInfoEntry], path: &str) -> Option<&'a MountInfoEntry> {
    let contains = |mount_point: &str| {
        mount_point == "/"
            || path == mount_point
            || path.strip_prefix(mount_point).is_some_and(|rest| rest.starts_with('/'))
    };
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| contains(&e.mount_point))
        .max_by_key(|(index, e)| (e.mount_point.len(), *index))
        .map(|(_, e)| e)
}

pub fn read(root: &HostRoot) -> Result<Vec<MountInfoEntry>, HostError> {
    let text = root.read_to_string(PATH)?;
    parse(&text).map_err(|source| HostError::Parse { path: root.path(PATH), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_documentation_example() {
        let entries = parse(
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
        )
        .unwrap();
        let e = &entries[0];
        assert_eq!((e.mount_id, e.parent_id), (36, 35));
        assert_eq!(e.device, DeviceNumber { major: 98, minor: 0 });
        assert_eq!(e.root, "/mnt1");
        assert_eq!(e.optional_fields, vec!["master:1"]);
        assert_eq!(e.fs_type, "ext3");
        assert_eq!(e.source, "/dev/root");
        assert!(!e.is_read_only());
    }

    #[test]
    fn rejects_lines_without_separator() {
        let err = parse("1 2 8:1 / / rw shared:1 ext4 /dev/sda1 rw\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert_eq!(err.to_string(), "line 1: no ` - ` separator before the filesystem type");
        let err =
            parse("1 0 8:1 / / rw - ext4 /dev/sda1 rw\nx 1 8:2 / /boot rw - ext4 /dev/sda2 rw\n")
                .unwrap_err();
        assert_eq!(err.to_string(), "line 2: field 1 `x` is not a number");
    }

    #[test]
    fn holding_prefers_the_longest_mount_point() {
        let entries = parse(
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 8:2 / /boot rw - ext4 /dev/sda2 rw\n3 1 8:3 / /bootx rw - ext4 /dev/sda3 rw\n",
        )
        .unwrap();
        assert_eq!(holding(&entries, "/boot/grub").unwrap().source, "/dev/sda2");
        assert_eq!(holding(&entries, "/etc").unwrap().source, "/dev/sda1");
        assert_eq!(holding(&entries, "/boot").unwrap().source, "/dev/sda2");
    }
}
