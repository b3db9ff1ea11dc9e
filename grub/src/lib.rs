//! GRUB 2 helpers for swapover.
//!
//! - [`env`](mod@env): read/write the grubenv block, byte-identical with `grub-editenv`.
//! - [`oneshot`]: grub-reboot / grub-set-default with an undo record.
//! - [`cfg_inspect`]: what a host's grub.cfg supports (next_entry, custom.cfg, ...).
//! - [`menu_entry`]: the menu entry that boots the migrator from the staging fs.
//! - [`bootcode`]: write boot.img + core.img onto an MBR disk.
//!
//! The stager's path, in order (each step refusing with a reason):
//!
//! ```no_run
//! use std::path::Path;
//! use grub::cfg_inspect::{StagingFs, StagingFsType};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let report = grub::inspect_file(Path::new("/boot/grub/grub.cfg"))?;
//! if !report.next_entry.yes {
//!     return Err(report.next_entry.reason.into());
//! }
//! let staging = StagingFs { uuid: "0a1b2c3d-1111-2222-3333-444455556666".into(), fs: StagingFsType::Ext4, table: None };
//! let entry = grub::MenuEntry {
//!     title: "swapover migration".into(),
//!     id: "swapover-migrate".into(),
//!     needs: report.staging_entry_needs(&staging)?,
//!     kernel: "/swapover/vmlinuz".into(),
//!     initrd: "/swapover/initramfs.cpio.xz".into(),
//!     args: vec!["console=ttyS0,115200".into(), "panic=10".into()],
//! };
//! let custom_cfg = grub::menu_entry::custom_cfg(&[entry])?; // write to /boot/grub/custom.cfg
//! # let _ = custom_cfg;
//! let undo = grub::OneShot::arm(Path::new("/boot/grub/grubenv"), "swapover-migrate")?;
//! let persisted = serde_json::to_string(&undo)?; // keep it; on refusal: undo.restore()?
//! # let _ = persisted;
//! # Ok(()) }
//! ```

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
