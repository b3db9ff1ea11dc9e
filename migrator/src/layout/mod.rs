//! Where resinOS partitions land in the old root space.

pub mod units;
