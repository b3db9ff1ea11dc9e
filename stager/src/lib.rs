//! The stager: runs as root on the customer's device, validates it, stages the
//! migration environment on the swap partition and arms a one-shot GRUB entry.

pub mod abort;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod console_log;
pub mod fetch;
pub mod host;
pub mod input_checks;
pub mod interrupt;
pub mod migrator_payload;
pub mod output;
pub mod run_lock;
pub mod run_log;
pub mod run_session;
pub mod stage;
pub mod state;
pub mod status;
