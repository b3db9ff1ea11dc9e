//! Human-readable rendering of a plan, for `stager stage --dry-run` and logs.

use std::fmt::{self, Write};

use crate::plan::{FileChangeKind, GrubRoute, Plan, TargetPartition};
use crate::units::Bytes;

impl Plan {
    /// The plan as text: disk, partitions by start and size, bytes to write
    /// where, backup set and its size, network sources, GRUB changes, policies.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> fmt::Result {
        let disk = &self.source_disk;
        writeln!(
            out,
            "swapover plan (format {}, stager {})",
            self.format_version, self.stager_version
        )?;
        writeln!(
            out,
            "Profile:  {} (device type {}, source {})",
            self.profile.name, self.profile.device_type, self.profile.source_kind
        )?;
        writeln!(
            out,
            "Disk:     {}, {} table, {} ({} sectors of {} bytes)",
            disk.id,
            disk.table,
            show(disk.size_bytes()),
            disk.size.get(),
            disk.sector_size.get()
        )?;
        let root = &self.old_root;
        writeln!(out, "Old root: {}", root.partition)?;
        writeln!(
            out,
            "          {} UUID {} (backed up read-only, then overwritten)",
            root.fs_type, root.fs_uuid
        )?;
        let staging = &self.staging;
        writeln!(out, "Staging:  {}", staging.partition)?;
        writeln!(
            out,
            "          {} UUID {}, files in {}{}",
            staging.fs_type,
            staging.fs_uuid,
            staging.dir,
            match &staging.original_swap_uuid {
                Some(uuid) => format!(" (was swap UUID {uuid})"),
                None => String::new(),
            }
        )?;

        let image = &self.image;
        writeln!(out)?;
        writeln!(
            out,
            "Image:    {}/{} ({}, {} stored, {} raw)",
            staging.dir, image.file, image.compression, image.compressed_size, image.raw_size
        )?;
        writeln!(out, "          sha256 stored {}", image.compressed_sha256.0)?;
        writeln!(out, "          sha256 raw    {}", image.raw_sha256.0)?;

        let layout = &self.layout;
        writeln!(out)?;
        writeln!(
            out,
            "Target layout ({} table), written only inside {} = {}:",
            layout.table,
            layout.region,
            show(layout.region.len.to_bytes(disk.sector_size))
        )?;
        writeln!(
            out,
            "  {:<14} {:<7} {:<6} {:>12} {:>12} {:>12}",
            "NAME", "ROLE", "FS", "DISK START", "DISK END", "SIZE"
        )?;
        for part in &layout.partitions {
            let end = part
                .disk_extent(layout, disk.sector_size)
                .ok()
                .and_then(|e| e.last())
                .map(|s| s.get().to_string())
                .unwrap_or_else(|| "?".into());
            writeln!(
                out,
                "  {:<14} {:<7} {:<6} {:>12} {:>12} {:>12}",
                part.name,
                part.role.to_string(),
                part.fs.to_string(),
                part.disk_start.get(),
                end,
                show(part.size_bytes(layout))
            )?;
        }
        writeln!(out, "Bytes to write:")?;
        for part in &layout.partitions {
            writeln!(out, "  {}", self.write_line(part))?;
        }
        if !layout.written_last.is_empty() {
            writeln!(
                out,
                "  {} written last, after restore, once the staging area inside it is no longer needed",
                layout.written_last.join(", ")
            )?;
        }
        writeln!(
            out,
            "  partition table and boot code last, after every partition is written and verified"
        )?;

        writeln!(out)?;
        let limit = match self.backup.limit {
            Some(limit) => format!(", limit {limit}"),
            None => String::new(),
        };
        writeln!(out, "Backup:   estimated {}{}", show(self.backup.estimated_size()), limit)?;
        if self.backup.volumes.is_empty() {
            writeln!(out, "  (nothing)")?;
        }
        for volume in &self.backup.volumes {
            writeln!(
                out,
                "  volume '{}' -> {} partition, {}",
                volume.name, volume.restore_to.partition, volume.restore_to.path
            )?;
            for item in &volume.items {
                let filters = if item.filters.is_empty() {
                    String::new()
                } else {
                    format!(" [only {}]", item.filters.join(", "))
                };
                let target = if item.target.is_empty() { "." } else { item.target.as_str() };
                writeln!(
                    out,
                    "    {} -> {} ({}){}",
                    item.source, target, item.estimated_size, filters
                )?;
            }
        }

        let net = &self.network;
        writeln!(out, "Network:  settings converted to NetworkManager keyfiles from:")?;
        let groups = [
            ("NetworkManager", &net.networkmanager),
            ("wpa_supplicant", &net.wpa_supplicant),
            ("ifupdown", &net.ifupdown),
            ("connman", &net.connman),
        ];
        let mut any = false;
        for (name, paths) in groups {
            if !paths.is_empty() {
                any = true;
                writeln!(out, "  {name}: {}", paths.join(", "))?;
            }
        }
        if net.config_json_network {
            any = true;
            writeln!(out, "  config.json files.\"network/network.config\" (resinOS 1.x)")?;
        }
        if !any {
            writeln!(out, "  (none found)")?;
        }
        writeln!(
            out,
            "config.json: {} -> {} partition, {}",
            self.config_json.staged_at,
            self.config_json.restore_to.partition,
            self.config_json.restore_to.path
        )?;
        writeln!(out, "Hostname: {}", self.hostname.as_deref().unwrap_or("(resinOS default)"))?;
        writeln!(
            out,
            "Modules:  {} (order in {})",
            self.modules.modules.join(" "),
            self.modules.order_file
        )?;

        let grub = &self.grub;
        writeln!(out)?;
        let route = match grub.route {
            GrubRoute::CustomCfg => "custom.cfg (sourced by grub.cfg)",
            GrubRoute::UpdateGrub => "40_custom + update-grub",
            GrubRoute::BootFiles if grub.files.is_empty() => {
                "boot partition files, none of which can be edited yet (the migration environment cannot be armed)"
            }
            GrubRoute::BootFiles => "edited boot partition files",
            GrubRoute::UefiBootNext => "a UEFI boot option armed for one boot with BootNext (no GRUB file is changed)",
            GrubRoute::UbootTrial => "uEnv.txt replaced by a trial that U-Boot runs for one boot, while ${bootcount} matches",
            GrubRoute::PiFirmwareTrial => "the spare partition as a FAT32 trial boot set that the GPU firmware boots once (reboot_part); resin-boot unchanged",
        };
        writeln!(
            out,
            "GRUB:     entry '{}' (id {}) via {}",
            grub.entry_title, grub.entry_id, route
        )?;
        for change in &grub.files {
            match &change.change {
                FileChangeKind::Created => writeln!(out, "  create {}", change.path)?,
                FileChangeKind::Modified { backup, .. } => {
                    writeln!(out, "  modify {} (original kept at {})", change.path, backup)?
                }
            }
        }
        for env in &grub.env {
            writeln!(
                out,
                "  set {}={} in {} (was {})",
                env.key,
                env.value,
                env.file,
                env.previous.as_deref().unwrap_or("unset")
            )?;
        }

        writeln!(out)?;
        let finalize = &self.finalize;
        writeln!(
            out,
            "Finalize: {} {} partition over the staging area: {}",
            if finalize.grow_over_staging { "grow" } else { "do not grow" },
            finalize.partition,
            finalize.reason
        )?;
        let failure = &self.failure;
        writeln!(
            out,
            "Failure:  {} attempts per step, {} s apart; wait up to {} s for the disk",
            failure.step_retries, failure.retry_delay_secs, failure.disk_wait_secs
        )?;
        Ok(())
    }

    fn write_line(&self, part: &TargetPartition) -> String {
        let layout = &self.layout;
        let size = show(part.size_bytes(layout));
        let from = show_exact(part.image_offset(layout));
        let to = show_exact(part.disk_offset(self.source_disk.sector_size));
        format!("{:<14} {} from image offset {} to disk offset {}", part.name, size, from, to)
    }
}

fn show<E>(value: Result<Bytes, E>) -> String {
    value.map(|b| b.to_string()).unwrap_or_else(|_| "(overflows)".into())
}

fn show_exact<E>(value: Result<Bytes, E>) -> String {
    value.map(|b| b.get().to_string()).unwrap_or_else(|_| "(overflows)".into())
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_text())
    }
}
