//! `check` warns (and does not refuse) when the old OS's initramfs resumes from the swap
//! partition, by `RESUME=` in initramfs-tools' conf.d/resume or `resume=` on the kernel
//! command line: while staged, the old OS would wait for the swap UUID at boot.

#[path = "stage_support/mod.rs"]
mod stage_support;

use stage_support::*;
use stager::checks::{self, CheckId, CheckInputs, Status};

fn resume_check(host: &StageHost) -> checks::Check {
    checks::run(CheckId::SwapResume, &host.facts(), &CheckInputs::default())
}

#[test]
fn resume_naming_the_swap_is_a_warning_and_anything_else_passes() {
    let host = StageHost::new();
    assert_eq!(resume_check(&host).status, Status::Pass, "{:?}", resume_check(&host));

    host.host.write(
        "/etc/initramfs-tools/conf.d/resume",
        "RESUME=UUID=0a2f4e6c-0000-4f3a-9c5e-7d8b6a4f2e10\n",
    );
    assert_eq!(resume_check(&host).status, Status::Pass, "another UUID: {:?}", resume_check(&host));

    // Debian's installer writes the swap's UUID (upper case here: compared without case).
    host.host.write(
        "/etc/initramfs-tools/conf.d/resume",
        &format!("# from the installer\nRESUME=UUID={}\n", SWAP_UUID.to_uppercase()),
    );
    let check = resume_check(&host);
    assert_eq!(check.status, Status::Warn, "{check:?}");
    assert!(check.found.contains("/etc/initramfs-tools/conf.d/resume"), "{check:?}");
    assert!(
        check.reason.contains("~30 s")
            && check.reason.contains("`stager abort` writes the UUID back"),
        "{check:?}"
    );
    assert!(check.fix.as_deref().unwrap_or("").contains("RESUME=none"), "{check:?}");

    host.host.write("/etc/initramfs-tools/conf.d/resume", "RESUME=none\n");
    assert_eq!(resume_check(&host).status, Status::Pass);
    host.host.write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=UUID=x ro resume=/dev/sda5 quiet\n");
    let check = resume_check(&host);
    assert_eq!(check.status, Status::Warn, "{check:?}");
    assert!(check.found.contains("resume /dev/sda5 in /proc/cmdline"), "{check:?}");
}
