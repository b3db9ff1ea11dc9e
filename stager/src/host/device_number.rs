//! A block device number `major:minor`, as mountinfo and sysfs `dev` files write it: the
//! sysfs reader's type ([`disk_layout::sysfs::DeviceNumber`]), named here for the host readers.

pub use disk_layout::sysfs::{BadDeviceNumber, DeviceNumber};
