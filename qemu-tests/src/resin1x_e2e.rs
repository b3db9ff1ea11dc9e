//! The resinOS 1.x → 2.x takeover of an Intel NUC under UEFI (OVMF), shared by the tests that
//! run it: the 1.x stand-in's payload (report what must be carried, `stager stage-1x`, reboot
//! into the firmware's one-shot), the 2.x stand-in's boot, and the checks of what 2.x ended
//! with against what the 1.x device reported before staging.

use crate::console_lines::{complete_lines, value, with_marker};
use crate::disk::{self, PartitionTable};
use crate::e2e::packaged_stager;
use crate::fixture::{Entry, Manifest};
use crate::payload::Payload;
use crate::qemu::{uefi_vars_copy, Drive, Firmware, Vm, VmConfig};
use crate::resin1x_image::{DataVariant, Resin1xImage, APP_ID};
use crate::resin_image::ResinImage;
use crate::uefi_vars;
use crate::verdict::{self, Verdict, SUMMARY_MARKER};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The 1.x device's last line before it reboots into the firmware's one-shot.
pub const REBOOTING: &str = "SWAPOVER-T rebooting";

/// First boot of the 1.x device: report what the migration must carry (every entry of
/// resin-data with its hash, Docker's storage, config.json, WiFi Connect's network.config),
/// stage with `stage-1x` (the disk found by the stager itself) and reboot into the firmware's
/// one-shot. A later 1.x boot means the migration did not happen: it says so and powers off.
pub const RUN_SH: &str = r#"cd /run/payload
mount -o remount,rw /run/payload
mkdir -p /run/payload/state /var/lib
[ -e /var/lib/swapover ] || ln -s /run/payload/state /var/lib/swapover
if [ -e /run/payload/state/state.json ]; then
    echo "SWAPOVER-T back-in-1x"
    ./stager status 2>&1 | sed 's/^/SWAPOVER-T back-status /'
    exit 0
fi
mountpoint -q /sys/firmware/efi/efivars || mount -t efivarfs efivarfs /sys/firmware/efi/efivars
vars=/sys/firmware/efi/efivars
@SHELL_FUNCTIONS@
report_carried
mount -o remount,rw /mnt/boot
./stager stage-1x --profile resinos1x-intel-nuc --image ./resinos.img.xz \
    --config /mnt/conf/config.json --data-root /mnt/data --kernel /mnt/root/boot/bzImage \
    --modules "/mnt/root/lib/modules/$(uname -r)" --no-reboot >/tmp/out 2>/tmp/err
rc=$?
sed 's/^/SWAPOVER-T stage-out /' /tmp/out
sed 's/^/SWAPOVER-T stage-err /' /tmp/err
for f in $vars/Boot[0-9A-F][0-9A-F][0-9A-F][0-9A-F]-*; do
    tr -d '\000' < "$f" | grep -q 'swapover migration' && echo "SWAPOVER-T armed-option $(basename "$f" | cut -c5-8)"
done
echo "SWAPOVER-T armed-bootnext=$(ls $vars | grep -c '^BootNext-')"
echo "SWAPOVER-T stage-exit=$rc"
[ "$rc" = 0 ] || exit 0
sync
echo "SWAPOVER-T rebooting"
reboot -f
"#;

/// The migrator's steps, each with `SWAPOVER-STEP <name> begin/done` markers.
pub const STEPS: [&str; 6] = ["backup", "arm-resume", "flash", "verify", "restore", "finalize"];

/// Prints the whole console log of every boot when the test fails (an `Err` or a failed
/// assertion), so the migrator's own lines are in the test output, not only in the log files.
pub struct ConsoleOnFailure {
    pub logs: Vec<PathBuf>,
    pub passed: bool,
}

impl Drop for ConsoleOnFailure {
    fn drop(&mut self) {
        if self.passed {
            return;
        }
        for log in &self.logs {
            let text = std::fs::read(log)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| format!("(cannot read {}: {e})", log.display()));
            eprintln!(
                "===== console of the failed run ({}) =====\n{text}\n===== end of console =====",
                log.display()
            );
        }
    }
}

/// The device's disk, the payload disk and the VM's OVMF variable store of one run. The
/// variable store holds BootOrder: every boot of the run must use this same file.
pub struct Run {
    pub disk: PathBuf,
    pub payload: PathBuf,
    pub vars: PathBuf,
}

impl Run {
    /// A fresh 1.x stand-in disk (small data), the payload with the packaged stager and the
    /// 2.x stand-in image, and a fresh variable store, all named after `name`.
    pub fn prepare(name: &str) -> anyhow::Result<Run> {
        let disk = Resin1xImage::ensure(DataVariant::Small)?.fresh_copy(name)?;
        let image = ResinImage::ensure()?;
        let payload = Payload::new(name, &crate::arm1x_e2e::with_shell_functions(RUN_SH))?;
        payload.add_file("stager", &packaged_stager()?, 0o755)?;
        payload.add_file("resinos.img.xz", &image.xz, 0o644)?;
        let payload = payload.build()?;
        let vars = uefi_vars_copy(name)?;
        Ok(Run { disk, payload, vars })
    }

    /// The VM of one boot of this run (console log `logs/<log_name>.log`), under OVMF with
    /// the run's variable store.
    pub fn vm_config(&self, log_name: &str) -> VmConfig {
        VmConfig {
            allow_reboot: true,
            firmware: Firmware::Uefi { vars: self.vars.clone() },
            ..VmConfig::new(log_name, vec![Drive::ide(&self.disk), Drive::ide(&self.payload)])
        }
    }
}

/// Awaits `marker` (at most `secs`) and prints when it came.
pub fn stage(vm: &mut Vm, marker: &str, secs: u64) -> anyhow::Result<String> {
    let line = vm.wait_for(marker, Duration::from_secs(secs))?;
    eprintln!("[stage {:>6.1}s] {}", vm.elapsed().as_secs_f64(), line.trim());
    Ok(line)
}

/// resinOS 1.x comes up under UEFI, stages the migration with `stage-1x` and reboots into
/// the firmware's one-shot.
pub fn stage_in_1x(vm: &mut Vm) -> anyhow::Result<()> {
    let up_1x = stage(vm, "SWAPOVER-1X-UP", 300)?;
    assert!(up_1x.contains("efi=yes"), "1.x did not boot under UEFI: {up_1x}");
    let staged = stage(vm, "SWAPOVER-T stage-exit=", 900)?;
    assert!(
        staged.ends_with("stage-exit=0"),
        "stager stage-1x failed: {staged}\n{}",
        with_marker(&complete_lines(&vm.console_text()), "stage-err").join("\n")
    );
    stage(vm, REBOOTING, 120)?;
    Ok(())
}

/// Waits for the 2.x stand-in's GRUB; fails at once when the device boots resinOS 1.x again
/// (after the 1.x reboot into the one-shot, if this VM saw it) or the VM stopped.
pub fn await_resin_grub(vm: &mut Vm, timeout: Duration) -> anyhow::Result<String> {
    const MARKER: &str = "SWAPOVER-RESIN-GRUB";
    let deadline = Instant::now() + timeout;
    loop {
        let asked = Instant::now();
        if let Some(line) = vm.wait_for_opt(MARKER, Duration::from_secs(5))? {
            return Ok(line);
        }
        let text = vm.console_text();
        let since = text.split_once(REBOOTING).map_or(text.as_str(), |(_, rest)| rest);
        if since.contains("SWAPOVER-1X-") {
            anyhow::bail!("the migration did not happen: the device booted resinOS 1.x again");
        }
        // A quick `None` means the VM stopped: the harness's error then shows the last lines.
        if Instant::now() >= deadline || asked.elapsed() < Duration::from_secs(4) {
            return vm.wait_for(MARKER, Duration::from_secs(1));
        }
    }
}

/// Follows the 2.x stand-in's boot to its verdict and power-off: it must have been started
/// by GRUB EFI (from resin-boot) and come up under UEFI.
pub fn follow_2x(vm: &mut Vm, grub_timeout: Duration) -> anyhow::Result<()> {
    let grub = await_resin_grub(vm, grub_timeout)?;
    eprintln!("[stage {:>6.1}s] {}", vm.elapsed().as_secs_f64(), grub.trim());
    let up = stage(vm, "SWAPOVER-RESIN-UP", 300)?;
    stage(vm, SUMMARY_MARKER, 300)?;
    vm.wait_exit(Duration::from_secs(120))?;
    assert!(grub.contains("platform=efi"), "2.x not started by GRUB EFI: {grub:?}");
    assert!(up.contains("efi=yes"), "2.x did not come up under UEFI: {up}");
    Ok(())
}

/// `(Name, Passphrase)` of each connman service section in `text`.
fn connman_wifi(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name = None;
    for line in text.lines() {
        let Some((key, val)) = line.split_once('=') else {
            continue;
        };
        match key.trim() {
            "Name" => name = Some(val.trim().to_string()),
            "Passphrase" => {
                if let Some(n) = name.take() {
                    out.push((n, val.trim().to_string()));
                }
            }
            _ => {}
        }
    }
    out
}

/// What 2.x ended with, checked against what the 1.x device reported before staging
/// (`lines_1x`, the console lines of its boot): [`check_carried_data`] on the run's disk and,
/// read from the variable store after the VM stopped, the option stage-1x armed gone from the
/// options and BootOrder, and no BootNext.
pub fn check_carried(lines_1x: &[String], text_2x: &str, run: &Run) -> anyhow::Result<()> {
    check_carried_data(lines_1x, text_2x, &run.disk)?;

    // The firmware's boot variables: the migration's option armed by stage-1x is gone, from
    // the options and BootOrder, and BootNext is unset.
    let ours = armed_option(lines_1x)?;
    let store = uefi_vars::read(&run.vars)?;
    let options = uefi_vars::boot_options(&store);
    let order = uefi_vars::numbers(&store, "BootOrder");
    assert!(
        !options.is_empty() && order.is_some(),
        "the variable store holds no boot options or no BootOrder: {store:?}"
    );
    let left: Vec<&(u16, String)> =
        options.iter().filter(|(n, d)| *n == ours || d.contains("swapover")).collect();
    assert!(left.is_empty(), "migration boot option left: {left:?}");
    let order = order.unwrap_or_default();
    assert!(!order.contains(&ours), "Boot{ours:04X} left in BootOrder {order:04X?}");
    assert_eq!(uefi_vars::numbers(&store, "BootNext"), None, "BootNext left set");
    Ok(())
}

/// What 2.x ended with on `disk` (after the VM stopped), checked against what the 1.x device
/// reported before staging (`lines_1x`: its `SWAPOVER-T data|docker|wifi-connect` and
/// `config=` lines, as [`RUN_SH`] prints them): the 2.x verdict (printed in `text_2x`) passed
/// with the migration log present; every entry of its resin-data byte-identical on the 2.x
/// resin-data; Docker's storage not carried; config.json's and WiFi Connect's WiFi as keyfiles
/// with their secrets; config.json's values on the 2.x resin-boot (partition 1). Shared by the
/// UEFI and the BeagleBone (U-Boot) runs.
pub fn check_carried_data(lines_1x: &[String], text_2x: &str, disk: &Path) -> anyhow::Result<()> {
    let v = Verdict::parse(text_2x)?;
    assert!(v.summary.ok, "the 2.x verdict failed: {:?}", v.summary);
    assert!(v.summary.migration_log, "no migration log in 2.x");

    // The applications' data: every entry the 1.x device had in resin-data, byte-identical,
    // at the same place of the 2.x resin-data.
    let mut expected = Manifest::new();
    for entry in with_marker(lines_1x, "data") {
        let mut parts = entry.splitn(3, ' ');
        let (Some(kind), Some(detail), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("bad data line: {entry}");
        };
        let e = match kind {
            "D" => Entry::Dir,
            "L" => Entry::Symlink { target: detail.to_string() },
            _ => Entry::File { sha256: detail.to_string(), size: 0 },
        };
        expected.insert(path.to_string(), e);
    }
    for file in ["app.db", "network.config"] {
        let path = format!("resin-data/{APP_ID}/{file}");
        assert!(
            matches!(expected.get(&path), Some(Entry::File { .. })),
            "the 1.x device reported no {path}: {expected:?}"
        );
    }
    // The 1.x supervisor's database stays behind (the profile's app_data_excludes): 2.x's
    // supervisor starts with a fresh one.
    let supervisor_db = "resin-data/resin-supervisor/database.sqlite";
    assert!(
        expected.contains_key(supervisor_db),
        "the 1.x device reported no {supervisor_db}: {expected:?}"
    );
    expected.retain(|path, _| !path.starts_with("resin-data/resin-supervisor"));
    let leaked: Vec<&String> =
        v.data.keys().filter(|p| p.starts_with("resin-data/resin-supervisor")).collect();
    assert!(leaked.is_empty(), "the 1.x supervisor's database was carried: {leaked:?}");
    let differences = verdict::differences(&expected, &v.data, "");
    assert!(
        differences.is_empty(),
        "application data differs:\n{}\nfound: {:?}",
        differences.join("\n"),
        v.data.keys().collect::<Vec<_>>()
    );

    // Docker's storage (the 1.x engine's images and containers) was not carried.
    let docker = with_marker(lines_1x, "docker");
    assert!(
        docker.iter().any(|p| p.ends_with("layer.tar")),
        "the 1.x device had no Docker storage to leave behind: {docker:?}"
    );
    // The 2.x image's own resin-data holds its preloaded supervisor under docker/: that, and
    // nothing else, may be there.
    let preloaded = crate::resin_image::preloaded_supervisor();
    let is_preloaded =
        |p: &str| preloaded.iter().any(|(f, _)| f == p || f.starts_with(&format!("{p}/")));
    let carried: Vec<&String> = v
        .data
        .keys()
        .filter(|p| (p.starts_with("docker") && !is_preloaded(p)) || p.ends_with("layer.tar"))
        .collect();
    assert!(carried.is_empty(), "Docker storage carried to 2.x: {carried:?}");
    assert!(v.summary.preloaded_supervisor, "the 2.x image's preloaded supervisor is gone");

    // WiFi: config.json's connman network and WiFi Connect's, as keyfiles with their secrets.
    let config_1x: serde_json::Value = serde_json::from_str(value(lines_1x, "config"))?;
    let mut wifi =
        connman_wifi(config_1x["files"]["network/network.config"].as_str().unwrap_or_default());
    let from_config = wifi.len();
    wifi.extend(connman_wifi(&with_marker(lines_1x, "wifi-connect").join("\n")));
    assert!(
        from_config == 1 && wifi.len() == 2,
        "the 1.x device did not report its two WiFi networks: {wifi:?}"
    );
    for (ssid, psk) in &wifi {
        assert!(
            v.connections.iter().any(|(_, s, p)| s == ssid && p == psk),
            "no keyfile for {ssid} with its secret: {:?}",
            v.connections
        );
    }

    // config.json on the 2.x resin-boot: the one the verdict read, with the 1.x values.
    let table = PartitionTable::read(disk)?;
    let config_2x = disk::read_fat_file(disk, table.number(1)?, "/config.json")?;
    assert_eq!(
        v.config_sha256.as_deref(),
        Some(crate::stamp::hex(&<sha2::Sha256 as sha2::Digest>::digest(&config_2x)).as_str()),
        "the verdict read another config.json"
    );
    let config_2x: serde_json::Value = serde_json::from_slice(&config_2x)?;
    let serde_json::Value::Object(fields) = &config_1x else {
        panic!("1.x config.json is not an object: {config_1x}");
    };
    for (key, want) in fields.iter().filter(|(k, _)| k.as_str() != "files") {
        assert_eq!(&config_2x[key], want, "config.json {key} not carried: {config_2x}");
    }
    let mut data_docker = disk::list_ext4_dir(disk, table.number(6)?, "/docker")?;
    data_docker.sort();
    assert_eq!(
        data_docker,
        ["image", "overlay2"],
        "resin-data/docker holds more than the 2.x image's preloaded supervisor"
    );
    Ok(())
}

/// The number of the one boot option stage-1x armed (with BootNext set), as the 1.x device
/// reported it from its efivars.
pub fn armed_option(lines_1x: &[String]) -> anyhow::Result<u16> {
    let armed = with_marker(lines_1x, "armed-option");
    assert_eq!(armed.len(), 1, "stage-1x did not arm one option: {armed:?}");
    assert_eq!(value(lines_1x, "armed-bootnext"), "1");
    Ok(u16::from_str_radix(&armed[0], 16)?)
}
