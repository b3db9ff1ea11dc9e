//! The stager: runs as root on the customer's device, validates it, stages the
//! migration environment on the swap partition and arms a one-shot GRUB entry.

pub mod checks;
pub mod cli;
pub mod fetch;
pub mod host;
