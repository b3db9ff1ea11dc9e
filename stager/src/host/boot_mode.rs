//! BIOS or UEFI: the kernel exposes `/sys/firmware/efi` only when UEFI booted it.

use super::root::HostRoot;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    Bios,
    Uefi,
}

impl std::fmt::Display for BootMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BootMode::Bios => "BIOS",
            BootMode::Uefi => "UEFI",
        })
    }
}

pub fn detect(root: &HostRoot) -> BootMode {
    if root.path("/sys/firmware/efi").is_dir() {
        BootMode::Uefi
    } else {
        BootMode::Bios
    }
}
