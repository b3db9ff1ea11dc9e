//! `/init` of the migration initramfs: no arguments, the plan at
//! `/etc/swapover/plan.json`. See `migrator::run::pid1_main`.

fn main() {
    migrator::run::pid1_main()
}
