//! Where the old OS's initramfs looks for a hibernation image to resume from: `RESUME=` in
//! initramfs-tools' `conf.d/resume` (Debian and Ubuntu write the swap's UUID there at
//! install) and `resume=` on the kernel command line. While the device is staged the swap
//! partition holds the staging file system, and an initramfs still looking for the swap
//! UUID waits for it (Debian: ~30 s) before it boots on.

use super::HostRoot;

pub const CONF_FILES: [&str; 2] =
    ["/etc/initramfs-tools/conf.d/resume", "/etc/initramfs-tools/initramfs.conf"];
pub const CMDLINE: &str = "/proc/cmdline";

/// One resume setting: where it was found and what it names (`UUID=…`, `/dev/…`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResumeSetting {
    pub source: String,
    pub value: String,
}

impl ResumeSetting {
    /// Whether this setting names the swap with `uuid` or the device `/dev/<name>`.
    pub fn names_swap(&self, uuid: &str, name: &str) -> bool {
        let value = self.value.trim_matches(|c| c == '"' || c == '\'');
        let by_uuid = value
            .strip_prefix("UUID=")
            .or_else(|| value.strip_prefix("/dev/disk/by-uuid/"))
            .is_some_and(|found| found.eq_ignore_ascii_case(uuid));
        by_uuid || value == format!("/dev/{name}")
    }
}

/// Every RESUME= / resume= setting of the host (missing files are skipped).
pub fn read(root: &HostRoot) -> Vec<ResumeSetting> {
    let mut found = Vec::new();
    for file in CONF_FILES {
        let Ok(text) = std::fs::read_to_string(root.path(file)) else { continue };
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            if let Some(value) = line.strip_prefix("RESUME=") {
                found.push(ResumeSetting { source: file.to_string(), value: value.to_string() });
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(root.path(CMDLINE)) {
        for word in text.split_whitespace() {
            if let Some(value) = word.strip_prefix("resume=") {
                found.push(ResumeSetting { source: CMDLINE.to_string(), value: value.to_string() });
            }
        }
    }
    found
}
