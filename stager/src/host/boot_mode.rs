//! BIOS or UEFI: the kernel exposes `/sys/firmware/efi` only when UEFI booted it.

use super::root::HostRoot;
use board_profiles::BootMode;

/// BIOS or UEFI, never `BoardFirmware` (an ARM board without EFI shows as BIOS here).
pub fn detect(root: &HostRoot) -> BootMode {
    if root.path("/sys/firmware/efi").is_dir() {
        BootMode::Uefi
    } else {
        BootMode::Bios
    }
}
