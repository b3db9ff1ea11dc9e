//! What the ARM resinOS 1.x → 2.x end-to-end tests share (issue 16: the BeagleBone Black
//! under the real U-Boot, `tests/resinos1x_bbb_migration.rs`, and the Raspberry Pi 3 under the
//! firmware player, `tests/resinos1x_pi_migration.rs`): the shell functions their 1.x
//! stand-ins run (fingerprints of the 1.x system, the report of what the migration must
//! carry), waiting for console markers, the "1.x came back identical" comparison and the
//! check that resin-boot ends as a clean FAT holding no migration leftovers. The x86 UEFI run
//! (`resin1x_e2e::RUN_SH`) reports what the migration must carry with the same shell function.

use crate::console_lines::with_marker;
use crate::disk::{self, TablePartition};
use crate::qemu::Vm;
use crate::tools::run;
use anyhow::{ensure, Context, Result};
use std::path::Path;
use std::time::Duration;

/// Shell functions for the 1.x stand-ins' scripts, which put them in with
/// [`with_shell_functions`]:
/// - `entries`: every entry below `.` (`L <target> <path>`, `D - <path>`,
///   `F <sha256> <path>`), sorted;
/// - `report_carried`: what the migration must carry, as `resin1x_e2e::RUN_SH` reports it
///   (`data …` entries of resin-data, `docker …` paths, `config=…`, `wifi-connect …`), read by
///   [`crate::resin1x_e2e::check_carried_data`].
pub const SHELL_FUNCTIONS: &str = r#"entries() {
    find . | sort | while read -r p; do
        if [ -L "$p" ]; then echo "L $(readlink "$p") $p"
        elif [ -d "$p" ]; then echo "D - $p"
        else echo "F $(sha256sum "$p" | cut -d' ' -f1) $p"
        fi
    done
}
report_carried() {
    (
        cd /mnt/data
        find resin-data | sort | while read -r p; do
            if [ -L "$p" ]; then echo "SWAPOVER-T data L $(readlink "$p") $p"
            elif [ -d "$p" ]; then echo "SWAPOVER-T data D - $p"
            elif [ -f "$p" ]; then echo "SWAPOVER-T data F $(sha256sum "$p" | cut -d' ' -f1) $p"
            fi
        done
        find docker | sort | sed 's/^/SWAPOVER-T docker /'
    )
    printf 'SWAPOVER-T config=%s\n' "$(tr -d '\n' < /mnt/conf/config.json)"
    cat /mnt/data/resin-data/*/network.config | sed 's/^/SWAPOVER-T wifi-connect /'
}
"#;

/// `script` with its `@SHELL_FUNCTIONS@` line replaced by [`SHELL_FUNCTIONS`].
pub fn with_shell_functions(script: &str) -> String {
    script.replace("@SHELL_FUNCTIONS@\n", SHELL_FUNCTIONS)
}

/// Awaits `marker` on `vm`'s console (at most `secs`) and prints when it came, tagged.
pub fn await_marker(vm: &mut Vm, tag: &str, marker: &str, secs: u64) -> Result<String> {
    let line = vm.wait_for(marker, Duration::from_secs(secs))?;
    eprintln!("[{tag} {:>6.1}s] {}", vm.elapsed().as_secs_f64(), line.trim());
    Ok(line)
}

/// The `fp-<when>` fingerprint lines.
pub fn fingerprints(lines: &[String], when: &str) -> Vec<String> {
    with_marker(lines, &format!("fp-{when}"))
}

/// Must-show 2: the `fp-after` fingerprints (after the failed trial and `stager abort`) equal
/// the `fp-before` ones (before staging), and the latter hold a line starting with each of
/// `required`'s keys (`(key, what it is)`), so that an empty report cannot pass.
pub fn check_returned_identical(lines: &[String], required: &[(&str, &str)]) -> Result<()> {
    let before = fingerprints(lines, "before");
    let after = fingerprints(lines, "after");
    for (key, what) in required {
        ensure!(
            before.iter().any(|l| l.starts_with(key)),
            "no {what} in the fingerprints before staging:\n{}",
            before.join("\n")
        );
    }
    let missing: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    let extra: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "1.x after the failed trial and abort differs from 1.x before staging:\nonly before: {missing:#?}\nonly after: {extra:#?}"
    );
    Ok(())
}

/// resin-boot (`boot`) after the migration, read on the host: none of `gone` at its root,
/// nothing waiting as `.swapover-new`, and a clean FAT (`fsck.fat -n` on a copy of the
/// partition's extent in `dir`). The power cuts came while the migrator had resin-boot mounted
/// read-write, so its FAT "dirty" flag is set, and Linux keeps a flag it found at mount
/// (fs/fat/inode.c `fat_set_state`: "do not change state if fs was dirty"). That flag is what a
/// cut leaves by design; anything else fsck.fat finds is a fault. So: report the flag, clear
/// it in the copy, and the copy must be clean.
pub fn check_boot_fat(
    disk: &Path,
    boot: &TablePartition,
    gone: &[&str],
    dir: &Path,
    tag: &str,
) -> Result<()> {
    let spec = format!("{}@@{}", disk.display(), boot.offset_bytes());
    let listing = String::from_utf8(run(
        "mdir",
        ["-b".to_string(), "-i".to_string(), spec, "::/".to_string()],
    )?)?;
    let names: Vec<&str> =
        listing.lines().map(|l| l.trim_start_matches("::/").trim_end_matches('/')).collect();
    for left in gone {
        ensure!(
            !names.iter().any(|n| n.eq_ignore_ascii_case(left)),
            "resin-boot still holds {left}: {names:?}"
        );
    }
    ensure!(
        !names.iter().any(|n| n.to_ascii_lowercase().ends_with(".swapover-new")),
        "resin-boot holds a waiting file: {names:?}"
    );
    let extent = dir.join("resin-boot.fat");
    let mut bytes = disk::read_at(disk, boot.offset_bytes(), usize::try_from(boot.len_bytes())?)?;
    let flag_at = if u16::from_le_bytes([bytes[22], bytes[23]]) == 0 { 65 } else { 37 };
    eprintln!("[{tag}] resin-boot FAT dirty flag after the cuts: {}", bytes[flag_at] & 1);
    bytes[flag_at] &= !1;
    std::fs::write(&extent, bytes)?;
    let out = std::process::Command::new("fsck.fat")
        .arg("-n")
        .arg(&extent)
        .output()
        .context("fsck.fat (dosfstools)")?;
    ensure!(
        out.status.success(),
        "fsck.fat -n on resin-boot: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&extent)?;
    Ok(())
}

/// The migrator's line after which finalize writes nothing more to staging.
pub const SEALED: &str = "sealed read-only";
/// The migrator's line when restore has the boot blobs waiting for the switch.
pub const BLOBS_WAIT: &str = "boot blob(s) wait for the switch";

/// Cut (c) of the ARM runs, in finalize's last write: waits for [`SEALED`], then for the
/// staging file system's identity on the disk (`current()`: the ext superblock's magic and
/// UUID, the FAT boot sector) to differ from `staged`, i.e. for resin-rootB's write to reach
/// it, and cuts the power then. Returns the run's console; an error if the identity did not
/// change within 300 s or the cut came after the switch (nothing left for the relay).
pub fn cut_when_staging_overwritten(
    vm: &mut Vm,
    tag: &str,
    staged: &[u8],
    current: impl Fn() -> Result<Vec<u8>>,
) -> Result<String> {
    await_marker(vm, tag, SEALED, 300)?;
    let sealed_at = std::time::Instant::now();
    while current()? == staged {
        ensure!(
            sealed_at.elapsed() < Duration::from_secs(300),
            "staging's file system still the staged one 300 s after `{SEALED}` (log {})",
            vm.log_path().display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    vm.power_cut()?;
    let text = vm.console_text();
    eprintln!("[cut c] {} ms after `{SEALED}`", sealed_at.elapsed().as_millis());
    ensure!(
        !text.contains("SWAPOVER-STEP finalize done") && !text.contains("is the new system's"),
        "the cut came after the switch; nothing was left for the relay"
    );
    Ok(text)
}
