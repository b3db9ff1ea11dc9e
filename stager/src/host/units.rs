//! The kernel's 512-byte units. Bytes and logical sectors are the plan's [`plan::Bytes`] and
//! [`plan::Sectors`] (one definition for stager, plan and migrator); the unit sysfs counts in
//! is the sysfs reader's [`disk_layout::sysfs::KernelSectors`], named here.

pub use disk_layout::sysfs::KernelSectors;
