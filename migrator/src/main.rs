//! `/init` of the migration initramfs: no arguments, the plan at
//! `/etc/swapover/plan.json`. See `migrator::run::pid1_main`.
//!
//! Outside PID 1 it refuses to run: it mounts, writes disks and reboots.

fn main() {
    let pid = std::process::id();
    if pid != 1 {
        eprintln!(
            "migrator: this is /init of the swapover migration initramfs and runs only as PID 1 \
             (it writes the disk and reboots); refusing to run as PID {pid}"
        );
        std::process::exit(2);
    }
    migrator::run::pid1_main()
}
