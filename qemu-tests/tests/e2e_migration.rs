//! The whole takeover in QEMU, from what a customer downloads: the legacy STEM host's stager
//! is handed the dashboard `.zip` of a resinOS *flasher* whose inner image has neither
//! grub.cfg nor BIOS boot code (as v2.9.7–v2.14.x images; the flasher supplies both) →
//! `stager stage` → migrator → resinOS stand-in, whose verdict must find every backed-up file
//! byte-identical, the WiFi networks as NetworkManager keyfiles with their secrets,
//! config.json, the migration log and the image's preloaded supervisor intact; the flasher
//! itself is never booted.

use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::e2e::{self, Download};
use qemu_tests::fixture::{NM_WIFI_PSK, NM_WIFI_SSID, WPA_WIFI_PSK, WPA_WIFI_SSID};
use qemu_tests::flasher_image::{self, FlasherVariant, FLASHER_RAN_MARKER};
use qemu_tests::resin_image;

#[test]
fn legacy_host_becomes_resinos_with_its_data_and_wifi() -> anyhow::Result<()> {
    let download = Download::FlasherZip(FlasherVariant::InnerWithoutGrub);
    let outcome = e2e::run_download("e2e_migration", download)?;
    let v = &outcome.verdict;
    assert!(
        outcome.flasher_ran_in.is_empty(),
        "{FLASHER_RAN_MARKER} on the console: the flasher was booted ({:?})",
        outcome.flasher_ran_in
    );
    // check and --dry-run say that the flasher's inner image is what will be written.
    let console = outcome.vm.console_text();
    let inner_name =
        flasher_image::inner_image_path().rsplit('/').next().unwrap_or_default().to_string();
    assert!(
        console
            .lines()
            .any(|l| l.to_lowercase().contains("flasher image") && l.contains(&inner_name)),
        "the stager never said it writes the flasher's inner image {inner_name} (see {})",
        outcome.vm.log_path().display()
    );
    assert!(
        outcome.data_differences.is_empty(),
        "customer data differs:\n{}",
        outcome.data_differences.join("\n")
    );
    assert!(
        outcome.expected.len() >= 10,
        "the fixture lost its data: {:?}",
        outcome.expected.keys()
    );
    for (ssid, psk) in [(NM_WIFI_SSID, NM_WIFI_PSK), (WPA_WIFI_SSID, WPA_WIFI_PSK)] {
        assert!(
            v.connections.iter().any(|(_, s, p)| s == ssid && p == psk),
            "no keyfile for {ssid} with its secret: {:?}",
            v.connections
        );
    }
    let config_sha = qemu_tests::stamp::hex(&<sha2::Sha256 as sha2::Digest>::digest(
        e2e::demo_config_json().as_bytes(),
    ));
    assert!(v.summary.config_json, "config.json missing on resin-boot");
    assert_ne!(v.config_sha256.as_deref(), None);
    let _ = config_sha; // config.json gains the hostname, so its hash differs from the input by design
    assert!(v.summary.migration_log, "migration log missing in resinOS");
    assert!(
        v.summary.preloaded_supervisor,
        "the image's preloaded supervisor on resin-data is gone or changed: customer data must \
         be restored into resin-data, never over it"
    );
    assert!(v.summary.ok, "{:?}", v.summary);

    // The inner image was written, not the flasher, and it got what resin-init-flasher would
    // have added: grub.cfg_internal at both places of resin-boot and the flasher's BIOS boot
    // code (the verdict booting through BIOS GRUB proves the latter works).
    let table = PartitionTable::read(&outcome.disk)?;
    let boot = table.number(1)?;
    let flag = |name: &str| disk::read_fat_file(&outcome.disk, boot, &format!("/{name}")).is_ok();
    assert!(flag(resin_image::IMAGE_FLAG_FILE), "no /resin-image on resin-boot");
    assert!(!flag(flasher_image::FLASHER_FLAG_FILE), "the flasher's boot partition was written");
    let internal = std::fs::read(
        qemu_tests::paths::workspace_root().join("qemu-tests/assets/resin/grub.cfg"),
    )?;
    for cfg in ["/grub/grub.cfg", "/EFI/BOOT/grub.cfg"] {
        assert_eq!(
            disk::read_fat_file(&outcome.disk, boot, cfg)?,
            internal,
            "{cfg} is not the flasher's grub.cfg_internal"
        );
    }
    assert!(
        disk::read_at(&outcome.disk, 0, 440)?.iter().any(|b| *b != 0),
        "no BIOS boot code in the MBR"
    );
    assert!(
        console.lines().any(|l| l.contains("SWAPOVER-RESIN-GRUB") && l.contains("platform=pc")),
        "resinOS did not come up through BIOS GRUB"
    );

    // The final table: resinOS's layout from the old root's start, resin-data grown over the
    // old swap area to the end of the disk: the data partition is the last, and the extended
    // partition and it end at the disk's end, leaving resindataexpander nothing wrong to do.
    let image = PartitionTable::read(&download.target_raw()?)?;
    let disk_sectors = std::fs::metadata(&outcome.disk)?.len() / disk::SECTOR_BYTES;
    for n in [1, 2, 3, 5] {
        let (now, planned) = (table.number(n)?, image.number(n)?);
        assert_eq!(
            (now.start, now.size, &now.kind),
            (planned.start, planned.size, &planned.kind),
            "partition {n}"
        );
    }
    for n in [4, 6] {
        // The extended partition and resin-data inside it grow to the end of the disk.
        let (now, planned) = (table.number(n)?, image.number(n)?);
        assert_eq!(now.start, planned.start, "partition {n} moved");
        assert_eq!(
            now.start + now.size,
            disk_sectors,
            "partition {n} does not reach the end of the disk"
        );
    }
    assert_eq!(table.partitions.len(), 6, "{:?}", table.partitions);
    let last = table.partitions.iter().filter(|p| p.kind != "5").max_by_key(|p| p.start);
    assert_eq!(last.map(|p| p.number()).transpose()?, Some(6), "resin-data is not the last");

    e2e::print_timings(&outcome.vm);
    let migrator = qemu_tests::paths::workspace_root()
        .join("target/x86_64-unknown-linux-musl/release/migrator");
    eprintln!("[size] migrator binary: {} bytes", std::fs::metadata(&migrator)?.len());
    Ok(())
}
