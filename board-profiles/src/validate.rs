//! Consistency checks beyond what the types enforce. Each failure names the
//! profile file, the key, and what is wrong.

use std::collections::HashSet;

use plan::{PartitionRole, SourceKind};

use crate::load::ProfileError;
use crate::schema::{
    Architecture, BootMode, Bootloader, ExpectedPartition, Location, Profile, StagingSource,
    APP_ID_PLACEHOLDER,
};

impl Profile {
    /// Checks that the profile is coherent: slugs, boot chain, layouts, paths, 1.x section.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let check = Checker { file: &self.origin };
        check.non_empty("description", &self.description)?;
        check.slug("device_type", &self.device_type)?;
        self.check_boot_chain(&check)?;
        for (i, path) in self.bootloader_config_files.iter().enumerate() {
            check.relative(&format!("bootloader_config_files[{i}]"), path)?;
        }
        self.check_source(&check)?;
        check.layout("target.partitions", &self.target.partitions)?;
        for role in [PartitionRole::Boot, PartitionRole::RootA, PartitionRole::Data] {
            if self.target_partition(role).is_none() {
                return Err(check.fail(
                    "target.partitions",
                    format!("a resinOS layout needs a partition with role \"{role}\""),
                ));
            }
        }
        check.positive("target.alignment_kib", self.target.alignment_kib)?;
        check.positive("requirements.min_ram_mib", self.requirements.min_ram_mib)?;
        check.positive("requirements.min_disk_mib", self.requirements.min_disk_mib)?;
        if self.initramfs.modules.is_empty() {
            return Err(check.fail(
                "initramfs.modules",
                "list at least the file system modules the migrator needs",
            ));
        }
        for (i, module) in self.initramfs.modules.iter().enumerate() {
            check.module_name(&format!("initramfs.modules[{i}]"), module)?;
        }
        let restore = &self.restore;
        for (key, location) in [
            ("restore.data", &restore.data),
            ("restore.config_json", &restore.config_json),
            ("restore.network_connections", &restore.network_connections),
        ] {
            self.check_location(&check, key, location)?;
        }
        if self.target_partition(self.finalize.grow_partition).is_none() {
            return Err(check.fail(
                "finalize.grow_partition",
                format!("no target partition has role \"{}\"", self.finalize.grow_partition),
            ));
        }
        check.non_empty("finalize.reason", &self.finalize.reason)?;
        self.check_resinos1x(&check)?;
        self.check_uboot_trial(&check)?;
        self.check_pi_trial(&check)
    }

    fn check_pi_trial(&self, check: &Checker) -> Result<(), ProfileError> {
        let wanted = self.bootloader == Bootloader::RaspberrypiFirmware
            && self.source.kind == SourceKind::Resinos1x;
        match (&self.pi_trial, wanted) {
            (None, false) => Ok(()),
            (Some(_), false) => Err(check.fail(
                "pi_trial",
                "only resinOS 1.x profiles with bootloader = \"raspberrypi-firmware\" have this table",
            )),
            (None, true) => Err(check.fail(
                "pi_trial",
                "missing: a resinOS 1.x Raspberry Pi needs it to arm its one trial boot",
            )),
            (Some(trial), true) => {
                check.absolute("pi_trial.reboot_part", &trial.reboot_part)?;
                if trial.firmware_files.is_empty() {
                    return Err(check.fail(
                        "pi_trial.firmware_files",
                        "list the GPU firmware files the trial boots with (start.elf, fixup.dat)",
                    ));
                }
                let files = std::iter::once(("pi_trial.kernel", &trial.kernel))
                    .chain(trial.firmware_files.iter().map(|f| ("pi_trial.firmware_files", f)))
                    .chain(
                        trial
                            .optional_firmware_files
                            .iter()
                            .map(|f| ("pi_trial.optional_firmware_files", f)),
                    )
                    .chain(trial.blobs_last.iter().map(|f| ("pi_trial.blobs_last", f)));
                for (key, file) in files {
                    check.relative(key, file)?;
                }
                Ok(())
            }
        }
    }

    fn check_uboot_trial(&self, check: &Checker) -> Result<(), ProfileError> {
        let wanted =
            self.bootloader == Bootloader::UBoot && self.source.kind == SourceKind::Resinos1x;
        match (&self.uboot_trial, wanted) {
            (None, false) => Ok(()),
            (Some(_), false) => Err(check.fail(
                "uboot_trial",
                "only resinOS 1.x profiles with bootloader = \"u-boot\" have this table",
            )),
            (None, true) => Err(check.fail(
                "uboot_trial",
                "missing: a resinOS 1.x U-Boot board needs it to arm its one trial boot",
            )),
            (Some(trial), true) => {
                check.absolute("uboot_trial.kernel", &trial.kernel)?;
                check.absolute("uboot_trial.dtb", &trial.dtb)?;
                if let Some(watchdog) = &trial.watchdog {
                    check.absolute("uboot_trial.watchdog", watchdog)?;
                }
                if trial.bootcount.address % 4 != 0 {
                    return Err(check.fail(
                        "uboot_trial.bootcount.address",
                        "the boot counter is a 32-bit word: give a 4-byte aligned address",
                    ));
                }
                Ok(())
            }
        }
    }

    fn check_boot_chain(&self, check: &Checker) -> Result<(), ProfileError> {
        let x86 = self.architecture == Architecture::X86_64;
        match (self.bootloader, self.boot_mode) {
            (Bootloader::Grub2, BootMode::Bios | BootMode::Uefi) if x86 => Ok(()),
            (Bootloader::Grub2, _) => Err(check
                .fail("bootloader", "grub2 profiles must be x86_64 with boot_mode bios or uefi")),
            (Bootloader::UBoot | Bootloader::RaspberrypiFirmware, BootMode::BoardFirmware)
                if !x86 =>
            {
                Ok(())
            }
            (_, _) => Err(check.fail(
                "boot_mode",
                "u-boot and raspberrypi-firmware boards are ARM with boot_mode \"board-firmware\"",
            )),
        }
    }

    fn check_source(&self, check: &Checker) -> Result<(), ProfileError> {
        let source = &self.source;
        match (source.kind, source.staging) {
            (SourceKind::UbuntuGrubHost, StagingSource::SwapPartition) => {
                if !source.partitions.is_empty() {
                    return Err(check.fail(
                        "source.partitions",
                        "an Ubuntu host's partitions are discovered, not listed",
                    ));
                }
                if self.bootloader != Bootloader::Grub2 {
                    return Err(
                        check.fail("bootloader", "an ubuntu-grub-host source boots with grub2")
                    );
                }
            }
            (SourceKind::Resinos1x, StagingSource::SpareRootPartition) => {
                if source.partition_table.is_none() {
                    return Err(check.fail(
                        "source.partition_table",
                        "a resinOS 1.x source must state its table (mbr)",
                    ));
                }
                check.layout("source.partitions", &source.partitions)?;
                if self.source_partition(PartitionRole::RootB).is_none() {
                    return Err(check.fail(
                        "source.partitions",
                        "staging on the spare root needs a partition with role \"root-b\" (resin-updt)",
                    ));
                }
            }
            (SourceKind::UbuntuGrubHost, _) => {
                return Err(check
                    .fail("source.staging", "an ubuntu-grub-host stages on \"swap-partition\""))
            }
            (SourceKind::Resinos1x, _) => {
                return Err(check.fail(
                    "source.staging",
                    "a resinOS 1.x device stages on \"spare-root-partition\"",
                ))
            }
        }
        Ok(())
    }

    fn check_location(
        &self,
        check: &Checker,
        key: &str,
        location: &Location,
    ) -> Result<(), ProfileError> {
        if self.target_partition(location.partition).is_none() {
            return Err(check.fail(
                &format!("{key}.partition"),
                format!("no target partition has role \"{}\"", location.partition),
            ));
        }
        check.absolute(&format!("{key}.path"), &location.path)?;
        check.placeholders(&format!("{key}.path"), &location.path)
    }

    fn check_resinos1x(&self, check: &Checker) -> Result<(), ProfileError> {
        match (&self.resinos1x, self.source.kind) {
            (None, SourceKind::UbuntuGrubHost) => Ok(()),
            (Some(_), SourceKind::UbuntuGrubHost) => Err(check.fail(
                "resinos1x",
                "only profiles with source.kind = \"resinos-1x\" have this table",
            )),
            (None, SourceKind::Resinos1x) => {
                Err(check.fail("resinos1x", "missing: a resinOS 1.x profile needs this table"))
            }
            (Some(legacy), SourceKind::Resinos1x) => {
                if legacy.config_json_locations.is_empty() {
                    return Err(check.fail(
                        "resinos1x.config_json_locations",
                        "list where 1.x keeps config.json",
                    ));
                }
                for (i, path) in legacy.config_json_locations.iter().enumerate() {
                    check.absolute(&format!("resinos1x.config_json_locations[{i}]"), path)?;
                }
                check.absolute("resinos1x.app_data_dir", &legacy.app_data_dir)?;
                for (i, pattern) in legacy.app_data_excludes.iter().enumerate() {
                    if pattern.is_empty()
                        || pattern.starts_with('/')
                        || pattern.split('/').any(|c| c == "..")
                    {
                        return Err(check.fail(
                            &format!("resinos1x.app_data_excludes[{i}]"),
                            "must be a path relative to app_data_dir, without \"..\"",
                        ));
                    }
                }
                check.absolute("resinos1x.connman_dir", &legacy.connman_dir)?;
                check.absolute("resinos1x.wifi_connect_config", &legacy.wifi_connect_config)?;
                check.placeholders("resinos1x.wifi_connect_config", &legacy.wifi_connect_config)?;
                check.non_empty("resinos1x.min_source_version", &legacy.min_source_version)?;
                check.non_empty("resinos1x.min_target_version", &legacy.min_target_version)?;
                check.positive(
                    "resinos1x.backup_limit_compressed_mb",
                    legacy.backup_limit_compressed_mb,
                )
            }
        }
    }
}

struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    fn fail(&self, key: &str, problem: impl Into<String>) -> ProfileError {
        ProfileError::invalid(self.file, key, problem)
    }

    fn non_empty(&self, key: &str, value: &str) -> Result<(), ProfileError> {
        if value.trim().is_empty() {
            return Err(self.fail(key, "must not be empty"));
        }
        Ok(())
    }

    fn positive(&self, key: &str, value: u64) -> Result<(), ProfileError> {
        if value == 0 {
            return Err(self.fail(key, "must be greater than zero"));
        }
        Ok(())
    }

    fn slug(&self, key: &str, value: &str) -> Result<(), ProfileError> {
        let ok = !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-');
        if !ok {
            return Err(self.fail(
                key,
                format!("'{value}' is not a device-type slug (lower-case letters, digits, '-')"),
            ));
        }
        Ok(())
    }

    fn absolute(&self, key: &str, path: &str) -> Result<(), ProfileError> {
        if !path.starts_with('/') {
            return Err(self.fail(key, format!("'{path}' must be an absolute path")));
        }
        self.no_parent(key, path)
    }

    fn relative(&self, key: &str, path: &str) -> Result<(), ProfileError> {
        if path.is_empty() || path.starts_with('/') {
            return Err(
                self.fail(key, format!("'{path}' must be a path relative to the boot partition"))
            );
        }
        self.no_parent(key, path)
    }

    fn no_parent(&self, key: &str, path: &str) -> Result<(), ProfileError> {
        if path.split('/').any(|c| c == "..") {
            return Err(self.fail(key, format!("'{path}' must not contain '..'")));
        }
        Ok(())
    }

    fn placeholders(&self, key: &str, path: &str) -> Result<(), ProfileError> {
        let rest = path.replace(APP_ID_PLACEHOLDER, "");
        if rest.contains('{') || rest.contains('}') {
            return Err(
                self.fail(key, format!("'{path}': the only placeholder is {APP_ID_PLACEHOLDER}"))
            );
        }
        Ok(())
    }

    fn module_name(&self, key: &str, name: &str) -> Result<(), ProfileError> {
        let ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(
                self.fail(key, format!("'{name}' is not a module name (no path, no .ko suffix)"))
            );
        }
        Ok(())
    }

    /// Names and roles unique, orders exactly 1..=N, sizes non-zero, only the last may fill the rest.
    fn layout(&self, key: &str, partitions: &[ExpectedPartition]) -> Result<(), ProfileError> {
        if partitions.is_empty() {
            return Err(self.fail(key, "list the layout's partitions"));
        }
        let mut names = HashSet::new();
        let mut roles = HashSet::new();
        let mut orders = HashSet::new();
        for (i, part) in partitions.iter().enumerate() {
            let at = |field: &str| format!("{key}[{i}].{field}");
            self.non_empty(&at("name"), &part.name)?;
            if !names.insert(part.name.as_str()) {
                return Err(self.fail(&at("name"), format!("'{}' appears twice", part.name)));
            }
            if !roles.insert(part.role) {
                return Err(self.fail(&at("role"), format!("role \"{}\" appears twice", part.role)));
            }
            if part.order == 0
                || part.order as usize > partitions.len()
                || !orders.insert(part.order)
            {
                return Err(self.fail(
                    &at("order"),
                    format!(
                        "orders must be 1..={} with each used once; got {}",
                        partitions.len(),
                        part.order
                    ),
                ));
            }
            self.positive(&at("typical_size_mib"), part.typical_size_mib)?;
            if part.fills_rest && part.order as usize != partitions.len() {
                return Err(self.fail(
                    &at("fills_rest"),
                    "only the last partition can fill the rest of the disk",
                ));
            }
        }
        Ok(())
    }
}
