//! The command line: what a person (or a fleet tool, with `--json`) runs on the device.

mod check_command;
pub mod size;

use crate::host::boot_mode::BootMode;
use crate::host::units::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit code when every required check passed / the command succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code when a check failed: staging may not proceed.
pub const EXIT_CHECK_FAILED: i32 = 1;
/// Exit code when the command could not run at all.
pub const EXIT_ERROR: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "stager",
    version,
    about = "Migrate this Ubuntu device to resinOS in place, staging on its swap partition",
    long_about = "Migrate this Ubuntu device to resinOS in place.\n\n\
        The stager checks the host, downloads and verifies the resinOS image, turns the swap \
        partition into a staging area holding a small migration environment, and arms a \
        one-shot GRUB entry for it. On the next boot the migration environment backs up your \
        data, writes resinOS over the old root's space and restores the data. Until that \
        environment starts writing, the old OS is untouched: a failed or refused run leaves \
        the host as it was.\n\n\
        Start with `sudo stager check --profile <board>`; it changes nothing."
)]
pub struct Cli {
    /// Print one JSON document on stdout instead of text (for fleet tools)
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check whether this device can be migrated; changes nothing
    #[command(long_about = "Check whether this device can be migrated. Changes nothing.\n\n\
        Prints every check (running as root, OS release, architecture, boot mode, GRUB 2 and \
        its one-shot support, root and swap partitions and their disk, swap signature, sizes \
        and memory), each with what was found, why it passes or fails, and how to fix it.\n\n\
        Exit code: 0 when staging may proceed (warnings do not block), 1 when a check failed, \
        2 when the checks could not run.")]
    Check(CheckArgs),

    /// Validate, download, stage on swap, arm a one-shot boot and reboot into the migration
    #[command(long_about = "Validate, download, stage and arm the migration, then reboot.\n\n\
        Changes: turns swap off and makes a filesystem on the swap partition (the staging \
        area), writes the kernel, initramfs, image, config.json and plan to it, adds a GRUB \
        entry and arms it for one boot, then reboots (unless --no-reboot). Any failure rolls \
        all of it back. With --dry-run it prints the complete plan and changes nothing.")]
    Stage(StageArgs),

    /// Show what is staged or armed, and why a past attempt stopped
    #[command(long_about = "Show what is staged or armed. After an attempt that came back to \
        the old OS, shows what the migration environment logged and why it stopped. \
        Changes nothing.")]
    Status,

    /// Disarm the migration and restore the host exactly as it was
    #[command(long_about = "Disarm the migration and restore the host exactly: the GRUB entry \
        and grubenv as they were, the swap partition recreated with its old UUID and label and \
        turned back on, fstab as it was.")]
    Abort,

    /// List the board profiles built in, or show one
    Profiles {
        #[command(subcommand)]
        command: ProfilesCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// List the board profiles this stager knows
    List,
    /// Show one profile: architecture, boot mode, layout, modules, minimum sizes
    Show {
        /// Profile name, as `stager profiles list` prints it
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BootModeArg {
    Bios,
    Uefi,
}

impl From<BootModeArg> for BootMode {
    fn from(arg: BootModeArg) -> Self {
        match arg {
            BootModeArg::Bios => BootMode::Bios,
            BootModeArg::Uefi => BootMode::Uefi,
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Board profile to check against (see `stager profiles list`)
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// resinOS image (HTTPS URL or local path) whose size and device type to check
    #[arg(long, value_name = "URL|PATH")]
    pub image: Option<String>,

    /// config.json for the device, to check that it parses and matches the device type
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Boot mode the device must have booted in
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Requirements (normally from the profile and image)")]
    pub expect_boot_mode: Option<BootModeArg>,

    /// Room the staging area needs, e.g. 1536MiB
    #[arg(long, value_name = "SIZE", value_parser = size::parse, help_heading = "Requirements (normally from the profile and image)")]
    pub swap_needed: Option<Bytes>,

    /// Memory that must stay available with swap off, e.g. 256MiB
    #[arg(long, value_name = "SIZE", value_parser = size::parse, help_heading = "Requirements (normally from the profile and image)")]
    pub min_memory: Option<Bytes>,

    /// Size of the new partition layout, from the start of the disk, e.g. 4GiB
    #[arg(long, value_name = "SIZE", value_parser = size::parse, help_heading = "Requirements (normally from the profile and image)")]
    pub target_size: Option<Bytes>,

    /// Directory standing for `/` (for tests on fixture trees)
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

#[derive(Debug, Args)]
pub struct StageArgs {
    /// Board profile of this device (see `stager profiles list`)
    #[arg(long, value_name = "NAME")]
    pub profile: String,

    /// resinOS image: an HTTPS URL (resumed if interrupted) or a local path
    #[arg(long, value_name = "URL|PATH")]
    pub image: String,

    /// Expected sha256 of the image; without it, URL.sha256 is fetched
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,

    /// config.json for the device (from the dashboard or the CLI)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// A file or directory to carry over to resinOS's data partition; repeat for more
    #[arg(long = "backup", value_name = "PATH")]
    pub backups: Vec<PathBuf>,

    /// Command run before staging (stop services, dump a database): exit 0 = go,
    /// 3 = not now (retry later), anything else = abort
    #[arg(long, value_name = "CMD")]
    pub backup_hook: Option<String>,

    /// Print the complete plan (partitions, sizes, backup set, GRUB changes) and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Stage and arm, but do not reboot; the migration starts at the next reboot
    #[arg(long)]
    pub no_reboot: bool,

    /// Extra CA certificate (PEM) to trust for a private image server
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match &cli.command {
        Command::Check(args) => check_command::run(args, cli.json),
        Command::Stage(_) => not_implemented("stage", cli.json),
        Command::Status => not_implemented("status", cli.json),
        Command::Abort => not_implemented("abort", cli.json),
        Command::Profiles { .. } => not_implemented("profiles", cli.json),
    }
}

fn not_implemented(command: &str, json: bool) -> i32 {
    let message = format!("`stager {command}` is not implemented yet in this build; nothing was changed");
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    }
    eprintln!("error: {message}");
    EXIT_ERROR
}
