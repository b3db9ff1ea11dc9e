//! What being PID 1 takes: the early mounts, the panic hook, and the two ways
//! out (reboot, or halt with a message). PID 1 must never exit: the kernel
//! panics when it does, so both ways out end in calls that do not return.

use crate::logging;
use nix::mount::{mount, MsFlags};
use std::time::Duration;

/// Where the kernel's pseudo file systems go.
const EARLY_MOUNTS: [(&str, &str, &str); 3] =
    [("proc", "/proc", "proc"), ("sysfs", "/sys", "sysfs"), ("devtmpfs", "/dev", "devtmpfs")];

/// An early mount that failed (the migrator logs it and goes on: the console still works).
#[derive(Debug, thiserror::Error)]
#[error("cannot mount {fstype} at {target}: {source}")]
pub struct EarlyMountError {
    pub fstype: &'static str,
    pub target: &'static str,
    pub source: nix::Error,
}

/// Mount proc, sysfs and devtmpfs. A mount that is already there (EBUSY) is fine.
pub fn mount_early() -> Result<(), EarlyMountError> {
    for (source, target, fstype) in EARLY_MOUNTS {
        let _ = std::fs::create_dir_all(target);
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
        match mount(Some(source), target, Some(fstype), flags, None::<&str>) {
            Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
            Err(source) => return Err(EarlyMountError { fstype, target, source }),
        }
    }
    Ok(())
}

/// Mount efivarfs when the kernel came up through UEFI (after module loading: it may be a
/// module). Without it a UEFI-route plan cannot arm its resume entry, which that step reports.
pub fn mount_efivarfs() {
    let target = efivars::EFIVARS_DIR;
    if !std::path::Path::new("/sys/firmware/efi").exists() {
        return;
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    match mount(Some("efivarfs"), target, Some("efivarfs"), flags, None::<&str>) {
        Ok(()) | Err(nix::errno::Errno::EBUSY) => log::info!("efivarfs mounted at {target}"),
        Err(e) => log::warn!(
            "cannot mount efivarfs at {target}: {e}; check that efivarfs is in the initramfs"
        ),
    }
}

/// Log a panic, then reboot: with `panic = "abort"` the hook still runs first.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::error!(
            "migrator panicked: {info}; rebooting (the journal resumes from the last durable step)"
        );
        reboot_now("panic");
    }));
}

/// How the migrator leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootTarget {
    Resinos,
    OldOs,
    /// Back into the migration environment (a retry after an error).
    Migrator,
}

impl RebootTarget {
    pub fn marker_name(self) -> &'static str {
        match self {
            RebootTarget::Resinos => "resinos",
            RebootTarget::OldOs => "old-os",
            RebootTarget::Migrator => "migrator",
        }
    }
}

/// Print the reboot marker, make everything durable, reboot. Never returns.
pub fn reboot_into(target: RebootTarget) -> ! {
    logging::marker(&format!("SWAPOVER-MIGRATOR-REBOOT target={}", target.marker_name()));
    reboot_now(target.marker_name())
}

fn reboot_now(why: &str) -> ! {
    logging::flush();
    nix::unistd::sync();
    let Err(e) = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    log::error!("reboot ({why}) failed: {e}; power-cycle the device");
    sleep_forever()
}

/// How long a halt shows its message before the migrator reboots to try again.
pub const HALT_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// How often a halt repeats its message on the console.
const HALT_REPEAT_EVERY: Duration = Duration::from_secs(60);

/// Print the halt marker and the reason, repeat it now and then so a person at the
/// console can read it, and after [`HALT_RETRY_AFTER`] reboot: once destruction began the
/// disk boots only the migration environment, so the next boot tries again (with a fresh
/// budget for the step that stopped) rather than leaving a remote device dead for good.
pub fn halt(reason: &str) -> ! {
    logging::marker(&format!("SWAPOVER-MIGRATOR-HALT {reason}"));
    log::error!(
        "the migrator stopped; it reboots to try again in {} min",
        HALT_RETRY_AFTER.as_secs() / 60
    );
    logging::flush();
    nix::unistd::sync();
    let mut waited = Duration::ZERO;
    while waited < HALT_RETRY_AFTER {
        std::thread::sleep(HALT_REPEAT_EVERY);
        waited += HALT_REPEAT_EVERY;
        logging::marker(&format!("SWAPOVER-MIGRATOR-HALT {reason}"));
    }
    reboot_into(RebootTarget::Migrator)
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
