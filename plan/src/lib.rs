//! The swapover plan: the one contract between the stager (which writes it)
//! and the migrator (which reads it), plus the shared size and identity types.
//!
//! - [`units`]: `Bytes`, `Sectors`, `SectorSize`, `Extent` — typed, checked sizes.
//! - [`identity`]: disk identifiers, PARTUUIDs, `PartitionIdentity`.
//! - [`kinds`]: partition table, file system, role, compression, source kind.
//! - `plan` (re-exported at the root): the versioned `Plan`, its JSON form and `validate()`.
//! - [`RefusalText`]: an error's problem and fix apart (every crate's errors give them).
//! - `Plan::render_text()` for `--dry-run`; `Plan::stem_example()` for tests.

mod example;
pub mod identity;
pub mod kinds;
mod plan;
mod refusal_text;
mod render;
pub mod units;

pub use identity::{mbr_partuuid, DiskId, Guid, IdentityError, PartitionIdentity};
pub use kinds::{Compression, FsType, PartitionRole, SourceKind, TableKind};
pub use plan::*;
pub use refusal_text::RefusalText;
pub use uboot_env::UbootInterface;
pub use units::{Bytes, Extent, RoundedBytes, SectorSize, Sectors, UnitError};
