//! GRUB 2 helpers for swapover.
//!
//! - [`env`]: read/write the grubenv block, byte-identical with `grub-editenv`.
//! - [`oneshot`]: grub-reboot / grub-set-default with an undo record.
//! - [`cfg_inspect`]: what a host's grub.cfg supports (next_entry, custom.cfg, ...).
//! - [`menu_entry`]: the menu entry that boots the migrator from the staging fs.
//! - [`bootcode`]: write boot.img + core.img onto an MBR disk.

mod atomic_file;
pub mod bootcode;
pub mod cfg_inspect;
pub mod env;
pub mod menu_entry;
pub mod oneshot;
mod script_lex;

pub use cfg_inspect::{inspect, inspect_file, CfgReport};
pub use env::{EnvError, GrubEnv};
pub use menu_entry::MenuEntry;
pub use oneshot::{OneShot, OneShotError, PermanentDefault, UndoRecord};
