//! One handler per subcommand, each taking its clap arguments ([`crate::cli`]) and returning
//! the process exit code; [`run`] dispatches to them. What they print goes through
//! [`crate::output`].

pub mod abort;
pub mod check;
pub mod plan_image;
pub mod profiles;
pub mod stage;
pub mod stage_1x;
pub mod status;

use crate::cli::{Cli, Command};
use crate::output::{print_error, EXIT_FAILED, EXIT_REFUSED};
use crate::run_session::SessionError;
use profiles::ProfileCatalog;
use std::path::PathBuf;

/// What every subcommand gets besides its own arguments.
#[derive(Debug)]
pub struct Global {
    /// `--json`: one JSON document on stdout instead of text.
    pub json: bool,
    /// The built-in profiles plus `--profile-file`.
    pub catalog: ProfileCatalog,
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let files: Vec<PathBuf> = cli.profile_file.iter().cloned().collect();
    let catalog = match ProfileCatalog::load(&files) {
        Ok(catalog) => catalog,
        Err(e) => return print_error(&e.to_string(), cli.json, EXIT_REFUSED),
    };
    let global = Global { json: cli.json, catalog };
    match &cli.command {
        Command::Check(args) => check::run(args, &global),
        Command::Stage(args) => stage::run(args, &global),
        Command::Status(args) => status::run(args, &global),
        Command::Abort(args) => abort::run(args, &global),
        Command::Profiles { command } => profiles::run(command.as_ref(), &global),
        Command::PlanImage(args) => plan_image::run(args, &global),
        Command::Stage1x(args) => stage_1x::run(args, &global),
    }
}

/// The exit code of a run that could not start its session: refused while another run holds
/// the lock, failed otherwise.
fn session_exit_code(error: &SessionError) -> i32 {
    match error {
        SessionError::Lock(crate::run_lock::LockError::Busy { .. }) => EXIT_REFUSED,
        _ => EXIT_FAILED,
    }
}
