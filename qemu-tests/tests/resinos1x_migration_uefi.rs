//! The whole resinOS 1.x → 2.x takeover of an Intel NUC under UEFI firmware (OVMF): the 1.x
//! stand-in runs the real static `stager stage-1x`, which arms the firmware's one-shot
//! (`Boot####` + `BootNext`) and reboots; the firmware boots the migration kernel from
//! resin-boot, the real migrator backs up the applications' data and WiFi, flashes the 2.x
//! stand-in, restores and finalizes, and reboots; OVMF then boots the 2.x stand-in through its
//! `EFI/BOOT/BOOTX64.EFI`, whose verdict must pass. Checked against what the 1.x device itself
//! reported before staging: every entry of its `resin-data` byte-identical on the 2.x
//! resin-data, Docker's storage not carried, the WiFi of config.json's connman section and of
//! WiFi Connect's `network.config` as NetworkManager keyfiles with their secrets, config.json's
//! values carried, the migration log present; and, read from the VM's variable store after it
//! stopped, no boot option of the migration left and no `BootNext`.

use qemu_tests::console_lines::{complete_lines, value, with_marker};
use qemu_tests::uefi_vars;
use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::e2e::packaged_stager;
use qemu_tests::fixture::{Entry, Manifest};
use qemu_tests::paths;
use qemu_tests::payload::Payload;
use qemu_tests::qemu::{uefi_vars_copy, Drive, Firmware, Vm, VmConfig};
use qemu_tests::resin1x_image::{DataVariant, Resin1xImage, APP_ID};
use qemu_tests::resin_image::ResinImage;
use qemu_tests::verdict::{self, Verdict, SUMMARY_MARKER};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NAME: &str = "resinos1x_migration_uefi";
/// The 1.x device's last line before it reboots into the firmware's one-shot.
const REBOOTING: &str = "SWAPOVER-T rebooting";

/// First boot of the 1.x device: report what the migration must carry (every entry of
/// resin-data with its hash, Docker's storage, config.json, WiFi Connect's network.config),
/// stage with `stage-1x` (the disk found by the stager itself) and reboot into the firmware's
/// one-shot. A later 1.x boot means the migration did not happen: it says so and powers off.
const RUN_SH: &str = r#"cd /run/payload
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
cd /mnt/data
find resin-data | sort | while read -r p; do
    if [ -L "$p" ]; then echo "SWAPOVER-T data L $(readlink "$p") $p"
    elif [ -d "$p" ]; then echo "SWAPOVER-T data D - $p"
    elif [ -f "$p" ]; then echo "SWAPOVER-T data F $(sha256sum "$p" | cut -d' ' -f1) $p"
    fi
done
find docker | sort | sed 's/^/SWAPOVER-T docker /'
cd /run/payload
printf 'SWAPOVER-T config=%s\n' "$(tr -d '\n' < /mnt/conf/config.json)"
cat /mnt/data/resin-data/*/network.config | sed 's/^/SWAPOVER-T wifi-connect /'
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
const STEPS: [&str; 6] = [
    "backup",
    "arm-resume",
    "flash",
    "verify",
    "restore",
    "finalize",
];

/// Prints the whole console log when the test fails (an `Err` or a failed assertion), so the
/// migrator's own lines are in the test output, not only in the log file.
struct ConsoleOnFailure {
    log: PathBuf,
    passed: bool,
}

impl Drop for ConsoleOnFailure {
    fn drop(&mut self) {
        if !self.passed {
            let text = std::fs::read(&self.log)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()));
            eprintln!(
                "===== console of the failed run ({}) =====\n{text}\n===== end of console =====",
                self.log.display()
            );
        }
    }
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

/// Waits, after the 1.x device rebooted into the one-shot, for the 2.x stand-in's GRUB; fails
/// at once when the device boots resinOS 1.x again or the VM stopped.
fn await_resin_grub(vm: &mut Vm, timeout: Duration) -> anyhow::Result<String> {
    const MARKER: &str = "SWAPOVER-RESIN-GRUB";
    let deadline = Instant::now() + timeout;
    loop {
        let asked = Instant::now();
        if let Some(line) = vm.wait_for_opt(MARKER, Duration::from_secs(5))? {
            return Ok(line);
        }
        let text = vm.console_text();
        let since = text.split_once(REBOOTING).map_or("", |(_, rest)| rest);
        if since.contains("SWAPOVER-1X-") {
            anyhow::bail!("the migration did not happen: the device booted resinOS 1.x again");
        }
        // A quick `None` means the VM stopped: the harness's error then shows the last lines.
        if Instant::now() >= deadline || asked.elapsed() < Duration::from_secs(4) {
            return vm.wait_for(MARKER, Duration::from_secs(1));
        }
    }
}

#[test]
fn resinos_1x_nuc_becomes_resinos_2x_under_uefi_with_its_data_and_wifi() -> anyhow::Result<()> {
    let mut guard = ConsoleOnFailure {
        log: paths::logs_dir().join(format!("{NAME}.log")),
        passed: false,
    };
    let disk = Resin1xImage::ensure(DataVariant::Small)?.fresh_copy(NAME)?;
    let image = ResinImage::ensure()?;
    let payload = Payload::new(NAME, RUN_SH)?;
    payload.add_file("stager", &packaged_stager()?, 0o755)?;
    payload.add_file("resinos.img.xz", &image.xz, 0o644)?;
    let payload = payload.build()?;
    let vars = uefi_vars_copy(NAME)?;
    let config = VmConfig {
        allow_reboot: true,
        firmware: Firmware::Uefi { vars: vars.clone() },
        ..VmConfig::new(NAME, vec![Drive::ide(&disk), Drive::ide(&payload)])
    };
    let mut vm = Vm::start(&config)?;
    let stage = |vm: &mut Vm, marker: &str, secs: u64| -> anyhow::Result<String> {
        let line = vm.wait_for(marker, Duration::from_secs(secs))?;
        eprintln!(
            "[stage {:>6.1}s] {}",
            vm.elapsed().as_secs_f64(),
            line.trim()
        );
        Ok(line)
    };

    // resinOS 1.x under UEFI stages the migration and reboots into the firmware's one-shot.
    let up_1x = stage(&mut vm, "SWAPOVER-1X-UP", 300)?;
    assert!(
        up_1x.contains("efi=yes"),
        "1.x did not boot under UEFI: {up_1x}"
    );
    let staged = stage(&mut vm, "SWAPOVER-T stage-exit=", 900)?;
    assert!(
        staged.ends_with("stage-exit=0"),
        "stager stage-1x failed: {staged}\n{}",
        with_marker(&complete_lines(&vm.console_text()), "stage-err").join("\n")
    );
    stage(&mut vm, REBOOTING, 120)?;

    // The migrator, started once by the firmware, carries the device over to 2.x.
    stage(&mut vm, "swapover migrator", 300)?;
    let grub = await_resin_grub(&mut vm, Duration::from_secs(2400))?;
    eprintln!(
        "[stage {:>6.1}s] {}",
        vm.elapsed().as_secs_f64(),
        grub.trim()
    );
    let up = stage(&mut vm, "SWAPOVER-RESIN-UP", 300)?;
    stage(&mut vm, SUMMARY_MARKER, 300)?;
    vm.wait_exit(Duration::from_secs(120))?;

    let text = vm.console_text();
    let lines = complete_lines(&text);
    let migration = text.split_once(REBOOTING).map_or("", |(_, rest)| rest);

    // The one-shot ran the migrator once; it went through every step and rebooted into 2.x,
    // which came up under UEFI (GRUB EFI from resin-boot), never 1.x again.
    for step in STEPS {
        for edge in ["begin", "done"] {
            let marker = format!("SWAPOVER-STEP {step} {edge}");
            assert!(migration.contains(&marker), "no `{marker}` on the console");
        }
    }
    assert!(
        migration.contains("SWAPOVER-MIGRATOR-REBOOT target=resinos"),
        "the migrator did not reboot into resinOS"
    );
    assert_eq!(
        text.matches("SWAPOVER-1X-UP").count(),
        1,
        "resinOS 1.x booted again"
    );
    assert!(
        grub.contains("platform=efi"),
        "2.x not started by GRUB EFI: {grub:?}"
    );
    assert!(
        up.contains("efi=yes"),
        "2.x did not come up under UEFI: {up}"
    );
    let v = Verdict::parse(&text)?;
    assert!(v.summary.ok, "the 2.x verdict failed: {:?}", v.summary);
    assert!(v.summary.migration_log, "no migration log in 2.x");

    // The applications' data: every entry the 1.x device had in resin-data, byte-identical,
    // at the same place of the 2.x resin-data.
    let mut expected = Manifest::new();
    for entry in with_marker(&lines, "data") {
        let mut parts = entry.splitn(3, ' ');
        let (Some(kind), Some(detail), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("bad data line: {entry}");
        };
        let e = match kind {
            "D" => Entry::Dir,
            "L" => Entry::Symlink {
                target: detail.to_string(),
            },
            _ => Entry::File {
                sha256: detail.to_string(),
                size: 0,
            },
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
    let differences = verdict::differences(&expected, &v.data, "");
    assert!(
        differences.is_empty(),
        "application data differs:\n{}\nfound: {:?}",
        differences.join("\n"),
        v.data.keys().collect::<Vec<_>>()
    );

    // Docker's storage (the 1.x engine's images and containers) was not carried.
    let docker = with_marker(&lines, "docker");
    assert!(
        docker.iter().any(|p| p.ends_with("layer.tar")),
        "the 1.x device had no Docker storage to leave behind: {docker:?}"
    );
    let carried: Vec<&String> = v
        .data
        .keys()
        .filter(|p| p.starts_with("docker") || p.ends_with("layer.tar"))
        .collect();
    assert!(
        carried.is_empty(),
        "Docker storage carried to 2.x: {carried:?}"
    );

    // WiFi: config.json's connman network and WiFi Connect's, as keyfiles with their secrets.
    let config_1x: serde_json::Value = serde_json::from_str(value(&lines, "config"))?;
    let mut wifi = connman_wifi(
        config_1x["files"]["network/network.config"]
            .as_str()
            .unwrap_or_default(),
    );
    let from_config = wifi.len();
    wifi.extend(connman_wifi(
        &with_marker(&lines, "wifi-connect").join("\n"),
    ));
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
    let table = PartitionTable::read(&disk)?;
    let config_2x = disk::read_fat_file(&disk, table.number(1)?, "/config.json")?;
    assert_eq!(
        v.config_sha256.as_deref(),
        Some(qemu_tests::stamp::hex(&<sha2::Sha256 as sha2::Digest>::digest(&config_2x)).as_str()),
        "the verdict read another config.json"
    );
    let config_2x: serde_json::Value = serde_json::from_slice(&config_2x)?;
    let serde_json::Value::Object(fields) = &config_1x else {
        panic!("1.x config.json is not an object: {config_1x}");
    };
    for (key, want) in fields.iter().filter(|(k, _)| k.as_str() != "files") {
        assert_eq!(
            &config_2x[key], want,
            "config.json {key} not carried: {config_2x}"
        );
    }
    let data_root = disk::list_ext4_dir(&disk, table.number(6)?, "/")?;
    assert!(
        !data_root.iter().any(|n| n == "docker"),
        "Docker storage on the 2.x resin-data: {data_root:?}"
    );

    // The firmware's boot variables: the migration's option armed by stage-1x is gone, from
    // the options and BootOrder, and BootNext is unset.
    let armed = with_marker(&lines, "armed-option");
    assert_eq!(armed.len(), 1, "stage-1x did not arm one option: {armed:?}");
    assert_eq!(value(&lines, "armed-bootnext"), "1");
    let ours = u16::from_str_radix(&armed[0], 16)?;
    let store = uefi_vars::read(&vars)?;
    let options = uefi_vars::boot_options(&store);
    let order = uefi_vars::numbers(&store, "BootOrder");
    assert!(
        !options.is_empty() && order.is_some(),
        "the variable store holds no boot options or no BootOrder: {store:?}"
    );
    let left: Vec<&(u16, String)> = options
        .iter()
        .filter(|(n, d)| *n == ours || d.contains("swapover"))
        .collect();
    assert!(left.is_empty(), "migration boot option left: {left:?}");
    let order = order.unwrap_or_default();
    assert!(
        !order.contains(&ours),
        "Boot{ours:04X} left in BootOrder {order:04X?}"
    );
    assert_eq!(
        uefi_vars::numbers(&store, "BootNext"),
        None,
        "BootNext left set"
    );

    guard.passed = true;
    Ok(())
}
