//! The migrator: PID 1 of the migration initramfs.

pub mod flash;
pub mod journal;
pub mod layout;
pub mod net;
