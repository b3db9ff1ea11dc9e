//! The Ubuntu/Debian GRUB route of `stager stage`: gather what planning needs ([`gather`]),
//! plan staging on the swap partition ([`planning`]), the journalled steps that carry the plan
//! out ([`steps`]), the files written to staging ([`staging_files`]) and the fstab edit
//! ([`fstab_edit`]). The resinOS 1.x route is
//! [`crate::stage::resinos1x`]; a route for the ARM boards goes beside them.

pub mod fstab_edit;
pub mod gather;
pub mod planning;
pub mod staging_files;
pub mod steps;
