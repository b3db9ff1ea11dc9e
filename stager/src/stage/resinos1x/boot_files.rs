//! How the migration environment starts on a 1.x board: its kernel, initramfs and
//! arguments. Each board arms it its own way, none by editing a 1.x boot file in place:
//! UEFI with a firmware boot option ([`super::planner::armed_by_firmware`]), the BeagleBone
//! with its U-Boot trial ([`super::uboot_trial`]), the Raspberry Pi with a firmware trial
//! from the spare partition ([`super::pi_trial`]).

/// Where the migration environment is and how it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationBoot {
    /// Kernel file on the partition the firmware or bootloader loads it from.
    pub kernel: String,
    pub initramfs: String,
    /// The kernel command line's file (Raspberry Pi), empty where none is used.
    pub cmdline_file: String,
    /// Kernel arguments.
    pub args: Vec<String>,
}
