//! resinOS 1.x → 2.x staging, as planning: read the 1.x disk (by partition label), measure
//! the application data, and plan staging on the spare root `resin-updt` with the 2.x image
//! placed over the disk and `resin-rootB` written last. `stager plan-image` prints that plan
//! for a disk (or disk image). `stager stage-1x` ([`stage_1x`]) stages a UEFI board (Intel NUC)
//! and arms it for one boot through the firmware; the ARM boards' boot file edits are planned
//! but not staged (their firmware has no one-shot).

pub mod app_data;
pub mod boot_counter;
pub mod boot_files;
pub mod fat_dirs;
pub mod fs_probe;
pub mod pi_trial;
pub mod plan_image;
pub mod planner;
pub mod refusal;
pub mod source_disk;
pub mod stage_1x;
pub mod supervisor_mark;
pub mod supervisor_version;
pub mod target_supervisor;
pub mod uboot_trial;

pub use planner::{make_plan, Inputs, Plan1x};
pub use refusal::Refusal1x;
