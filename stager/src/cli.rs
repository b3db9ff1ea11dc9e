//! The command line: what a person (or a fleet tool, with `--json`) runs on the device. Only
//! the arguments live here; [`crate::commands`] runs them.

pub mod size;

use board_profiles::BootMode;
use clap::{Args, Parser, Subcommand, ValueEnum};
use plan::Bytes;
use std::path::PathBuf;

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

    /// Add the board profile in this TOML file (named by the file's stem; it replaces a
    /// built-in profile of the same name); usable with `profiles`, `check` and `stage`
    #[arg(long, global = true, value_name = "PATH")]
    pub profile_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check whether this device can be migrated; changes nothing
    #[command(long_about = "Check whether this device can be migrated. Changes nothing.\n\n\
        Prints every check (running as root, OS release, architecture, boot mode, GRUB 2 and \
        its one-shot support, root and swap partitions and their disk, swap signature, sizes \
        and memory), each with what was found, why it passes or fails, and how to fix it. \
        With --profile, --image PATH and --config it also checks the image (table, device \
        type, partitions, size against the old root and the swap partition) and config.json, \
        and makes `stage`'s whole plan, refusing exactly where `stage` would.\n\n\
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
    Status(RootArgs),

    /// Disarm the migration and restore the host exactly as it was
    #[command(long_about = "Disarm the migration and restore the host exactly: the GRUB entry \
        and grubenv as they were, the swap partition recreated with its old UUID and label and \
        turned back on, fstab as it was.")]
    Abort(RootArgs),

    /// Plan a resinOS 1.x -> 2.x migration against a 1.x disk or disk image; changes nothing
    #[command(long_about = "Plan a resinOS 1.x -> 2.x migration against a resinOS 1.x disk (a \
        device or an image of it) and print the plan, changing nothing.\n\n\
        Reads the disk's partitions by label (resin-boot, resin-root, resin-updt, resin-conf, \
        resin-data), the 2.x image's partition table and device type, config.json, the size of \
        the applications' data under --data-root/resin-data, and the sizes of the migration \
        kernel and initramfs; refuses when the data is over the path's backup limit, when \
        resin-updt cannot hold the staging files, or when flashing would reach resin-updt \
        before the migration is done. `stage-1x` stages a UEFI 1.x device.")]
    PlanImage(PlanImageArgs),

    /// Stage a resinOS 1.x device (Intel NUC, BeagleBone Black, Raspberry Pi 2/3) and arm its migration for one boot
    #[command(
        name = "stage-1x",
        long_about = "Stage a resinOS 1.x UEFI device (the 1.x Intel NUC) \
        and arm the migration for one boot, then reboot.\n\n\
        Plans as `plan-image` does and refuses in one line where it would. Then writes swapover/ \
        (plan, config.json, the image) into resin-updt's own file system, the migration kernel \
        and initramfs to swapover/ on the mounted resin-boot, and a firmware boot option for \
        them set as BootNext: the firmware boots it once and deletes BootNext, so the boot after \
        is the 1.x system's again. No file the 1.x system had is changed; any failure rolls \
        back, and `stager abort` undoes a staged run. With --dry-run it prints the plan and \
        the steps and changes nothing. The BeagleBone Black is armed through U-Boot's boot \
        counter instead; the Raspberry Pi 2/3 through a firmware trial from its spare \
        partition, which becomes a FAT32 (its ext3, an old root copy, is given up)."
    )]
    Stage1x(Stage1xArgs),

    /// List the board profiles (built in, plus --profile-file), or show one
    #[command(long_about = "List the board profiles this stager knows: the ones built in, plus \
        one added with --profile-file PATH. `stager profiles show NAME` prints one resolved, \
        as TOML (or JSON with --json).")]
    Profiles {
        /// What to do; without it, the profiles are listed
        #[command(subcommand)]
        command: Option<ProfilesCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// List the board profiles this stager knows
    List,
    /// Show one profile: architecture, boot mode, layout, modules, minimum sizes
    Show {
        /// Profile name, as `stager profiles` lists it
        name: String,
    },
}

// `--expect-boot-mode`: only the two modes a host's firmware can show. It converts to the
// profiles' [`BootMode`], which stays free of clap and also names board firmware.
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
    /// Board profile to check against (see `stager profiles`): sets the boot mode, the
    /// memory and disk minimums and the target layout
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// resinOS image (local path; a URL is not downloaded by check) whose table, device
    /// type and size to check, and with --profile and --config, the whole staging plan
    #[arg(long, value_name = "URL|PATH")]
    pub image: Option<String>,

    /// config.json for the device, to check that it parses and matches the device type
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Boot mode the device must have booted in
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        help_heading = "Requirements (normally from the profile and image)"
    )]
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

    /// Migrator binary to size the initramfs with instead of the one carried in the stager
    #[arg(long, value_name = "FILE", hide = true)]
    pub migrator: Option<PathBuf>,

    /// Kernel release to plan with instead of the running one (tests on fixture trees)
    #[arg(long, value_name = "RELEASE", hide = true)]
    pub kernel_release: Option<String>,

    /// Directory standing for `/` (for tests on fixture trees)
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

#[derive(Debug, Args)]
pub struct StageArgs {
    /// Board profile of this device (see `stager profiles`)
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

    /// Program run before anything changes (stop services, dump a database), without a
    /// shell: exit 0 = go, 3 = not now (stager exits 3, retry later), anything else = abort
    #[arg(long, value_name = "PROGRAM")]
    pub backup_hook: Option<PathBuf>,

    /// An argument for the backup hook; repeat for more (passed as argv, never via a shell)
    #[arg(long = "backup-hook-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub backup_hook_args: Vec<String>,

    /// Seconds the backup hook may run before it is killed and staging is aborted
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub backup_hook_timeout: u64,

    /// Print the complete plan (partitions, sizes, backup set, GRUB changes) and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Stage and arm, but do not reboot; the migration starts at the next reboot
    #[arg(long)]
    pub no_reboot: bool,

    /// Extra CA certificate (PEM) to trust for a private image server
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Stage even when the image's device-type.json cannot be read (only if you are sure
    /// the image is for this board)
    #[arg(long)]
    pub allow_unknown_device_type: bool,

    /// Migrator binary to use instead of the one carried in the stager (development, tests)
    #[arg(long, value_name = "FILE", hide = true)]
    pub migrator: Option<PathBuf>,

    /// Kernel release to boot instead of the running one (`uname -r`; tests on fixture trees)
    #[arg(long, value_name = "RELEASE", hide = true)]
    pub kernel_release: Option<String>,

    /// Directory standing for `/` (for tests on fixture trees)
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanImageArgs {
    #[command(flatten)]
    pub inputs: Plan1xInputs,

    /// The migration environment's initramfs
    #[arg(long, value_name = "FILE")]
    pub initramfs: PathBuf,
}

#[derive(Debug, Args)]
pub struct Stage1xArgs {
    #[command(flatten)]
    pub plan: Plan1xInputs,

    /// The migration kernel's modules directory (resinOS 1.x: /lib/modules/$(uname -r))
    #[arg(long, value_name = "DIR")]
    pub modules: PathBuf,

    /// Where resin-boot is mounted read-write (resinOS 1.x: /mnt/boot)
    #[arg(long, value_name = "DIR", default_value = "/mnt/boot")]
    pub boot_mount: PathBuf,

    /// efivarfs mount point
    #[arg(long, value_name = "DIR", default_value = "/sys/firmware/efi/efivars", hide = true)]
    pub efivars: PathBuf,

    /// The supervisor version the 2.x image ships (vX.Y.Z), instead of reading it from the
    /// image's /etc/resin-supervisor/supervisor.conf
    #[arg(long, value_name = "VERSION", value_parser = parse_supervisor_version)]
    pub supervisor_version: Option<crate::stage::resinos1x::supervisor_version::SupervisorVersion>,

    /// Do not mark the device for a supervisor update in the resin API (by default it is
    /// marked when the image's supervisor is newer than the one the device runs)
    #[arg(long, conflicts_with = "supervisor_version")]
    pub no_supervisor_update: bool,

    /// Extra CA certificate (PEM) to trust for the resin API
    #[arg(long, value_name = "FILE")]
    pub api_ca_cert: Option<PathBuf>,

    /// Print the plan and the steps, change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Stage and arm, but do not reboot; the migration starts at the next reboot
    #[arg(long)]
    pub no_reboot: bool,

    /// Migrator binary to use instead of the one carried in the stager (development, tests)
    #[arg(long, value_name = "FILE", hide = true)]
    pub migrator: Option<PathBuf>,

    /// Directory standing for `/` (for tests on fixture trees)
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

/// What `plan-image` and `stage-1x` both read.
#[derive(Debug, Args)]
pub struct Plan1xInputs {
    /// resinOS 1.x board profile (see `stager profiles`: resinos1x-*)
    #[arg(long, value_name = "NAME")]
    pub profile: String,

    /// The resinOS 1.x disk: its block device, or an image of it; without it, the disk of
    /// this device holding the profile's boot partition (found by its label, e.g. resin-boot)
    #[arg(long, value_name = "PATH")]
    pub disk: Option<PathBuf>,

    /// The resinOS 2.x image (.img or .img.xz)
    #[arg(long, value_name = "PATH")]
    pub image: PathBuf,

    /// config.json for the device
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Where the 1.x data partition is mounted (resinOS 1.x: /mnt/data)
    #[arg(long, value_name = "DIR", default_value = "/mnt/data")]
    pub data_root: PathBuf,

    /// The migration environment's kernel (U-Boot trial boards: by default the running 1.x
    /// kernel the profile names, e.g. /boot/zImage; Raspberry Pi: resin-boot's, e.g.
    /// /mnt/boot/kernel7.img)
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,

    /// Plan even when the image's device-type.json cannot be read
    #[arg(long)]
    pub allow_unknown_device_type: bool,

    /// Physical memory, where U-Boot's boot counter is read (BeagleBone; tests give a file)
    #[arg(long, value_name = "PATH", default_value = "/dev/mem", hide = true)]
    pub phys_mem: PathBuf,
}

#[derive(Debug, Args)]
pub struct RootArgs {
    /// Directory standing for `/` (for tests on fixture trees)
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

fn parse_supervisor_version(
    text: &str,
) -> Result<crate::stage::resinos1x::supervisor_version::SupervisorVersion, String> {
    crate::stage::resinos1x::supervisor_version::SupervisorVersion::parse(text)
        .map_err(|e| e.to_string())
}
