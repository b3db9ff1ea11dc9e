//! How much application data a resinOS 1.x device carries over: the `resin-data` directory
//! of its data partition (each application's `/data`), measured as a tar archive would hold
//! it. Container storage (`docker/` and the like at the data partition's root) is not
//! carried: 2.x uses another storage driver and the supervisor downloads the images again
//! (balenahup `upgrade-1.x-to-2.x.sh`, cited in the resinos1x-* profiles).

use super::refusal::Refusal1x;
use crate::stage::backup_estimate;
use board_profiles::Profile;
use plan::Bytes;
use std::path::Path;

/// Where resinOS 1.x mounts its data partition (the plan's backup source lies under it).
pub const DATA_MOUNT: &str = "/mnt/data";

/// The application data to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppData {
    /// Absolute path on the 1.x device, e.g. `/mnt/data/resin-data`.
    pub source: String,
    /// Tar-sized estimate; `None` when the directory does not exist (nothing to carry).
    pub size: Option<Bytes>,
    /// Entries left out (the profile's `app_data_excludes`, relative globs).
    pub excludes: Vec<String>,
}

/// Measures `<data_root>/<app_data_dir>`, `data_root` being where the 1.x data partition is
/// mounted on the machine running the stager (the device's `/mnt/data`, or a test tree).
pub fn measure(data_root: &Path, profile: &Profile) -> Result<AppData, Refusal1x> {
    let Some(specifics) = &profile.resinos1x else {
        return Err(Refusal1x::AppData {
            dir: data_root.display().to_string(),
            problem: format!("profile {} has no [resinos1x] table", profile.name),
        });
    };
    let relative = specifics.app_data_dir.trim_start_matches('/');
    let source = format!("{DATA_MOUNT}/{relative}");
    let on_disk = data_root.join(relative);
    let excludes = specifics.app_data_excludes.clone();
    if std::fs::symlink_metadata(&on_disk).is_err() {
        return Ok(AppData { source, size: None, excludes });
    }
    let refusal = |e: backup_estimate::EstimateError| Refusal1x::AppData {
        dir: on_disk.display().to_string(),
        problem: e.to_string(),
    };
    let whole = backup_estimate::estimate(&on_disk, Path::new(&source)).map_err(refusal)?;
    // Excluded top-level entries are not counted; an exclude that matches deeper down is
    // still counted (the estimate only errs high, as a budget must).
    let mut left_out = 0;
    for pattern in &excludes {
        let entry = on_disk.join(pattern);
        if pattern.contains(['*', '?', '[', '/']) || std::fs::symlink_metadata(&entry).is_err() {
            continue;
        }
        left_out += backup_estimate::estimate(&entry, &Path::new(&source).join(pattern))
            .map_err(refusal)?
            .get();
    }
    Ok(AppData { source, size: Some(Bytes(whole.get().saturating_sub(left_out))), excludes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_storage_beside_resin_data_is_not_counted() {
        let profile = Profile::builtin("resinos1x-raspberrypi3").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("resin-data/1234")).unwrap();
        std::fs::write(root.path().join("resin-data/1234/db"), vec![1u8; 1000]).unwrap();
        std::fs::create_dir_all(root.path().join("docker/aufs")).unwrap();
        std::fs::write(root.path().join("docker/aufs/layer"), vec![2u8; 100_000]).unwrap();
        let data = measure(root.path(), &profile).unwrap();
        assert_eq!(data.source, "/mnt/data/resin-data");
        // resin-data + 1234 + db (1024 content): the docker layer is not in it.
        assert_eq!(data.size, Some(Bytes(3 * 512 + 1024)));

        // The 1.x supervisor's database is not carried (the profile excludes it).
        std::fs::create_dir_all(root.path().join("resin-data/resin-supervisor")).unwrap();
        std::fs::write(
            root.path().join("resin-data/resin-supervisor/database.sqlite"),
            vec![3u8; 50_000],
        )
        .unwrap();
        let data = measure(root.path(), &profile).unwrap();
        assert_eq!(data.size, Some(Bytes(3 * 512 + 1024)));
        assert_eq!(data.excludes, vec!["resin-supervisor".to_string()]);

        let empty = tempfile::tempdir().unwrap();
        assert_eq!(measure(empty.path(), &profile).unwrap().size, None);
    }
}
