//! Board profiles as data: one TOML file per supported board and source
//! layout, embedded in the binary, loaded with serde (unknown keys refused)
//! and validated with errors that name the file, the key and the problem.
//!
//! ```
//! let profile = board_profiles::Profile::builtin("intel-nuc").unwrap();
//! assert_eq!(profile.device_type, "intel-nuc");
//! ```

mod builtin;
mod load;
mod schema;
mod to_plan;
mod validate;

pub use load::ProfileError;
pub use schema::*;
