//! A block device number `major:minor`, as mountinfo and sysfs `dev` files write it.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceNumber {
    pub major: u32,
    pub minor: u32,
}

impl DeviceNumber {
    /// Anonymous devices (major 0) are what btrfs, tmpfs, overlayfs report: not a disk.
    pub fn is_anonymous(self) -> bool {
        self.major == 0
    }
}

impl fmt::Display for DeviceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl Serialize for DeviceNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for DeviceNumber {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not a major:minor device number"))?;
        let parse = |n: &str| {
            n.parse::<u32>().map_err(|_| format!("`{s}` is not a major:minor device number"))
        };
        Ok(DeviceNumber { major: parse(major)?, minor: parse(minor)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_major_minor() {
        let dev: DeviceNumber = "253:0\n".parse().unwrap();
        assert_eq!(dev, DeviceNumber { major: 253, minor: 0 });
        assert_eq!(dev.to_string(), "253:0");
        assert!("8".parse::<DeviceNumber>().is_err());
        assert!("0:27".parse::<DeviceNumber>().unwrap().is_anonymous());
    }
}
