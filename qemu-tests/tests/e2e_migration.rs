//! The whole takeover in QEMU: legacy STEM host → `stager stage` → migrator → resinOS
//! stand-in, whose verdict must find every backed-up file byte-identical, the WiFi networks
//! as NetworkManager keyfiles with their secrets, config.json and the migration log.

use qemu_tests::e2e;
use qemu_tests::fixture::{NM_WIFI_PSK, NM_WIFI_SSID, WPA_WIFI_PSK, WPA_WIFI_SSID};

#[test]
fn legacy_host_becomes_resinos_with_its_data_and_wifi() -> anyhow::Result<()> {
    let outcome = e2e::run("e2e_migration")?;
    let v = &outcome.verdict;
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
    assert!(v.summary.ok, "{:?}", v.summary);
    // The final table: resinOS's layout from the old root's start, resin-data grown over the
    // old swap area to the end of the disk.
    let table = qemu_tests::disk::PartitionTable::read(&outcome.disk)?;
    let image = qemu_tests::disk::PartitionTable::read(
        &qemu_tests::resin_image::ResinImage::ensure()?.raw,
    )?;
    let disk_sectors = std::fs::metadata(&outcome.disk)?.len() / qemu_tests::disk::SECTOR_BYTES;
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

    e2e::print_timings(&outcome.vm);
    let migrator = qemu_tests::paths::workspace_root()
        .join("target/x86_64-unknown-linux-musl/release/migrator");
    eprintln!("[size] migrator binary: {} bytes", std::fs::metadata(&migrator)?.len());
    Ok(())
}
