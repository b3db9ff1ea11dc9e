//! Back up the plan's volumes from the (read-only mounted) old root into tar
//! archives on staging, and verify them by reading them back.
//!
//! Each volume becomes `backup/<volume>.tar`, written as `.tar.tmp`, fsynced and
//! renamed, so an archive that exists is complete. Entries keep ownership
//! (numeric), modes, mtimes, symlinks (never followed), hard links (one data
//! copy, then link entries), device nodes and fifos, and xattrs (PAX
//! `SCHILY.xattr.*` records, as GNU tar writes them). Sockets are skipped.
//!
//! Archive member names: an item's files go under its `target` (relative to the
//! volume's restore location); an empty `target` keeps the source's absolute
//! path (without the leading `/`). Filters (globs) select non-directory entries
//! by their path relative to the item source or by their file name; directories
//! are always kept so that modes and times survive.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header, HeaderMode};

use plan::{BackupItem, BackupVolume, Plan};

use crate::durable::{rename_durably, sync_parent, write_durably, DurableError};
use crate::sha256::HashingReader;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("backup item {0} does not exist on the old root; remove it from the plan or re-stage")]
    MissingSource(PathBuf),
    #[error("{path} changed size while being archived ({expected} bytes expected, {actual} read); the old root must be mounted read-only")]
    Changed { path: PathBuf, expected: u64, actual: u64 },
    #[error(
        "archive {archive} does not match its sources: {problem}; the staging disk may be failing"
    )]
    Verify { archive: PathBuf, problem: String },
    #[error("the backup archives take {actual} bytes, more than this migration path allows ({limit}); remove paths from the backup set (data is never truncated)")]
    TooLarge { actual: u64, limit: u64 },
    #[error("backup filter '{filter}' is not a valid glob: {message}; fix the plan")]
    BadFilter { filter: String, message: String },
    #[error(transparent)]
    Durable(#[from] DurableError),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::Io { action, path, source }
}

/// What an archive should contain, recorded while writing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Every member name (bytes) with the sha256 of its data for regular files.
    pub members: BTreeMap<Vec<u8>, Option<[u8; 32]>>,
    /// Bytes of regular file data archived.
    pub data_bytes: u64,
    /// Entries skipped (sockets), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Paths of the staging directory's backup area.
pub fn archive_path(backup_dir: &Path, volume: &str) -> PathBuf {
    backup_dir.join(format!("{volume}.tar"))
}

/// Archive `volume` from `old_root` into `out` (atomically: tmp + fsync + rename) and
/// return what went in.
pub fn archive_volume(
    old_root: &Path,
    volume: &BackupVolume,
    out: &Path,
) -> Result<ArchiveSummary, BackupError> {
    let tmp = out.with_extension("tar.tmp");
    let file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    let mut writer = ArchiveWriter::new(BufWriter::new(file));
    for item in &volume.items {
        writer.add_item(old_root, item)?;
    }
    let summary = std::mem::take(&mut writer.summary);
    let buffered = writer.builder.into_inner().map_err(io_err("finish", &tmp))?;
    let file = buffered.into_inner().map_err(|e| BackupError::Io {
        action: "flush",
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(file);
    rename_durably(&tmp, out)?;
    Ok(summary)
}

struct ArchiveWriter<W: Write> {
    builder: tar::Builder<W>,
    summary: ArchiveSummary,
    /// (dev, inode) of multiply linked files → their first member name.
    links: HashMap<(u64, u64), PathBuf>,
    dirs_written: HashSet<PathBuf>,
}

impl<W: Write> ArchiveWriter<W> {
    fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.mode(HeaderMode::Complete);
        builder.follow_symlinks(false);
        ArchiveWriter {
            builder,
            summary: ArchiveSummary::default(),
            links: HashMap::new(),
            dirs_written: HashSet::new(),
        }
    }

    fn add_item(&mut self, old_root: &Path, item: &BackupItem) -> Result<(), BackupError> {
        let relative_source = item.source.trim_start_matches('/');
        let source = old_root.join(relative_source);
        let meta = std::fs::symlink_metadata(&source)
            .map_err(|_| BackupError::MissingSource(PathBuf::from(&item.source)))?;
        let selection = Selection {
            filters: compile_filters(&item.filters)?,
            excludes: compile_filters(&item.excludes)?,
        };
        if item.target == CONTENTS_ONLY {
            // The directory's contents straight into the restore location.
            if !meta.is_dir() {
                return Err(BackupError::MissingSource(PathBuf::from(format!(
                    "{} (a directory, for target \".\")",
                    item.source
                ))));
            }
            return self.add_tree(&source, Path::new(""), Path::new(""), &selection);
        }
        let base = if item.target.is_empty() {
            PathBuf::from(relative_source)
        } else {
            PathBuf::from(&item.target)
        };
        if item.target.is_empty() {
            // Keep the modes and times of the source's parents too.
            let mut parents: Vec<&Path> = Path::new(relative_source)
                .ancestors()
                .skip(1)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            parents.reverse();
            for parent in parents {
                let on_root = old_root.join(parent);
                let parent_meta =
                    std::fs::symlink_metadata(&on_root).map_err(io_err("stat", &on_root))?;
                self.add_entry(&on_root, parent, &parent_meta)?;
            }
        }
        if meta.is_dir() {
            self.add_entry(&source, &base, &meta)?;
            self.add_tree(&source, &base, Path::new(""), &selection)?;
        } else {
            self.add_entry(&source, &base, &meta)?;
        }
        Ok(())
    }

    fn add_tree(
        &mut self,
        dir: &Path,
        base: &Path,
        relative: &Path,
        selection: &Selection,
    ) -> Result<(), BackupError> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(io_err("list", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("list", dir))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = relative.join(&name);
            if excluded(&selection.excludes, &rel) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            if meta.is_dir() {
                self.add_entry(&path, &base.join(&rel), &meta)?;
                self.add_tree(&path, base, &rel, selection)?;
            } else if selected(&selection.filters, &rel) {
                self.add_entry(&path, &base.join(&rel), &meta)?;
            }
        }
        Ok(())
    }

    fn add_entry(&mut self, path: &Path, name: &Path, meta: &Metadata) -> Result<(), BackupError> {
        let file_type = meta.file_type();
        if file_type.is_socket() {
            self.summary.skipped.push((path.to_path_buf(), "sockets cannot be archived".into()));
            return Ok(());
        }
        if meta.is_dir() && !self.dirs_written.insert(name.to_path_buf()) {
            return Ok(());
        }
        if self.summary.members.contains_key(name.as_os_str().as_bytes()) {
            return Ok(());
        }
        self.add_xattrs(path, name)?;
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(meta, HeaderMode::Complete);
        let fail = io_err("archive", path);
        if !meta.is_dir() && meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                header.set_entry_type(EntryType::Link);
                header.set_size(0);
                let first = first.clone();
                self.builder.append_link(&mut header, name, &first).map_err(fail)?;
                self.summary.members.insert(name.as_os_str().as_bytes().to_vec(), None);
                return Ok(());
            }
            self.links.insert((meta.dev(), meta.ino()), name.to_path_buf());
        }
        let digest = if file_type.is_symlink() {
            let target = std::fs::read_link(path).map_err(io_err("read link", path))?;
            header.set_size(0);
            self.builder.append_link(&mut header, name, &target).map_err(fail)?;
            None
        } else if file_type.is_file() {
            let file = File::open(path).map_err(io_err("open", path))?;
            let expected = meta.len();
            let mut reader = HashingReader::new(file.take(expected));
            self.builder.append_data(&mut header, name, &mut reader).map_err(fail)?;
            if reader.bytes_read() != expected {
                return Err(BackupError::Changed {
                    path: path.to_path_buf(),
                    expected,
                    actual: reader.bytes_read(),
                });
            }
            self.summary.data_bytes += expected;
            Some(reader.finish().0 .0)
        } else {
            // Directories, device nodes, fifos: the header says everything.
            header.set_size(0);
            self.builder.append_data(&mut header, name, io::empty()).map_err(fail)?;
            None
        };
        self.summary.members.insert(name.as_os_str().as_bytes().to_vec(), digest);
        Ok(())
    }

    /// A PAX header carrying the entry's xattrs, read without following symlinks.
    fn add_xattrs(&mut self, path: &Path, name: &Path) -> Result<(), BackupError> {
        let Ok(names) = xattr::list(path) else {
            return Ok(()); // no xattr support on this file system: nothing to keep
        };
        let mut records = Vec::new();
        for key in names {
            if let Ok(Some(value)) = xattr::get(path, &key) {
                records.extend(pax_record(&[b"SCHILY.xattr.", key.as_bytes()].concat(), &value));
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::XHeader);
        header.set_size(records.len() as u64);
        header.set_mode(0o644);
        let mut short = b"PaxHeaders/".to_vec();
        let base = name.file_name().map(OsStr::as_bytes).unwrap_or(b"entry");
        short.extend_from_slice(&base[..base.len().min(80)]);
        header
            .set_path(Path::new(OsStr::from_bytes(&short)))
            .map_err(io_err("archive xattrs of", path))?;
        header.set_cksum();
        self.builder.append(&header, records.as_slice()).map_err(io_err("archive xattrs of", path))
    }
}

/// One PAX extended header record: `"<len> <key>=<value>\n"`, `len` counting itself.
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    let mut record = format!("{len} ").into_bytes();
    record.extend_from_slice(key);
    record.push(b'=');
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

fn compile_filters(filters: &[String]) -> Result<Vec<glob::Pattern>, BackupError> {
    filters
        .iter()
        .map(|f| {
            glob::Pattern::new(f).map_err(|e| BackupError::BadFilter {
                filter: f.clone(),
                message: e.msg.to_string(),
            })
        })
        .collect()
}

/// An item's include filters and excludes, compiled.
struct Selection {
    filters: Vec<glob::Pattern>,
    excludes: Vec<glob::Pattern>,
}

/// Whether the entry at `relative` (to the item source), a directory with everything under
/// it, is left out by the item's excludes.
pub fn excluded(excludes: &[glob::Pattern], relative: &Path) -> bool {
    excludes.iter().any(|e| e.matches_path(relative))
}

/// Whether a non-directory entry at `relative` (to the item source) is selected.
pub fn selected(filters: &[glob::Pattern], relative: &Path) -> bool {
    if filters.is_empty() {
        return true;
    }
    let name = relative.file_name().map(Path::new).unwrap_or(relative);
    filters.iter().any(|f| f.matches_path(relative) || f.matches_path(name))
}

/// Read `archive` back and compare it with `summary`: same members, same file data.
pub fn verify_archive(archive: &Path, summary: &ArchiveSummary) -> Result<(), BackupError> {
    let problem = |problem: String| BackupError::Verify { archive: archive.to_path_buf(), problem };
    let file = File::open(archive).map_err(io_err("open", archive))?;
    let mut reader = tar::Archive::new(io::BufReader::new(file));
    let mut seen = 0usize;
    for entry in reader.entries().map_err(io_err("read", archive))? {
        let mut entry = entry.map_err(io_err("read", archive))?;
        let name = entry.path_bytes().into_owned();
        let Some(expected) = summary.members.get(&name) else {
            return Err(problem(format!("unexpected member {}", String::from_utf8_lossy(&name))));
        };
        seen += 1;
        if let Some(expected) = expected {
            let mut hasher = HashingReader::new(&mut entry);
            io::copy(&mut hasher, &mut io::sink()).map_err(io_err("read", archive))?;
            if hasher.finish().0 .0 != *expected {
                return Err(problem(format!(
                    "data of {} differs from its source",
                    String::from_utf8_lossy(&name)
                )));
            }
        }
    }
    if seen != summary.members.len() {
        return Err(problem(format!(
            "{seen} members read back, {} written",
            summary.members.len()
        )));
    }
    Ok(())
}

/// What [`backup_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// (volume, members, data bytes)
    pub volumes: Vec<(String, usize, u64)>,
    pub keyfiles: Vec<String>,
    pub network_warnings: Vec<String>,
    pub hostname: Option<String>,
}

/// Directory (under the staging dir) of the backup area.
pub const BACKUP_DIR: &str = "backup";
/// Keyfiles converted from the old system, under the backup area.
pub const CONNECTIONS_DIR: &str = "system-connections";
/// The old system's hostname, under the backup area.
pub const HOSTNAME_FILE: &str = "hostname";

/// The whole backup step: every volume archived and verified, network settings
/// converted to keyfiles, the hostname kept. `old_root` is the old root's mount point.
pub fn backup_all(
    plan: &Plan,
    old_root: &Path,
    staging_dir: &Path,
) -> Result<BackupReport, BackupError> {
    let backup_dir = staging_dir.join(BACKUP_DIR);
    std::fs::create_dir_all(&backup_dir).map_err(io_err("create", &backup_dir))?;
    let mut report = BackupReport::default();
    let mut archived = 0u64;
    for volume in &plan.backup.volumes {
        let out = archive_path(&backup_dir, &volume.name);
        let summary = archive_volume(old_root, volume, &out)?;
        archived += std::fs::metadata(&out).map_err(io_err("stat", &out))?.len();
        if let Some(limit) = plan.backup.limit.filter(|limit| archived > limit.get()) {
            let _ = std::fs::remove_file(&out);
            return Err(BackupError::TooLarge { actual: archived, limit: limit.get() });
        }
        verify_archive(&out, &summary)?;
        for (path, why) in &summary.skipped {
            log::warn!("backup: skipped {} ({why})", path.display());
        }
        log::info!(
            "backup: volume {} has {} members, {} bytes of data, verified",
            volume.name,
            summary.members.len(),
            summary.data_bytes
        );
        report.volumes.push((volume.name.clone(), summary.members.len(), summary.data_bytes));
    }
    let conversion = crate::net::collect(&network_sources(plan, old_root, staging_dir));
    let connections = backup_dir.join(CONNECTIONS_DIR);
    if connections.exists() {
        std::fs::remove_dir_all(&connections).map_err(io_err("clear", &connections))?;
    }
    crate::net::write_keyfiles(&connections, &conversion.keyfiles)
        .map_err(io_err("write keyfiles into", &connections))?;
    for warning in &conversion.warnings {
        log::warn!("network: {warning}");
        report.network_warnings.push(warning.to_string());
    }
    report.keyfiles = conversion.keyfiles.iter().map(|k| k.file_name.clone()).collect();
    log::info!("network: {} keyfile(s): {}", report.keyfiles.len(), report.keyfiles.join(", "));
    report.hostname = read_hostname(old_root);
    if let Some(hostname) = &report.hostname {
        write_durably(&backup_dir.join(HOSTNAME_FILE), hostname.as_bytes())?;
    }
    sync_parent(&connections)?;
    Ok(report)
}

/// `/etc/hostname` of the old root, trimmed; `None` when absent or empty.
pub fn read_hostname(old_root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(old_root.join("etc/hostname")).ok()?;
    let name = text.lines().next()?.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// `BackupItem::target` that puts a directory's contents straight into the restore
/// location (resinOS 1.x `/mnt/data/resin-data` → 2.x resin-data's `/resin-data`).
pub const CONTENTS_ONLY: &str = ".";

/// Network sources: the usual places on the old root plus those the plan names, and (with
/// `config_json_network`) the staged config.json, where resinOS 1.x keeps its WiFi.
pub fn network_sources(plan: &Plan, old_root: &Path, staging_dir: &Path) -> crate::net::Sources {
    let mut sources = crate::net::Sources::for_root(old_root);
    if plan.network.config_json_network {
        let depth = Path::new(&plan.staging.dir)
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .count();
        if let Some(staging_root) = staging_dir.ancestors().nth(depth) {
            sources
                .config_json
                .push(staging_root.join(plan.config_json.staged_at.trim_start_matches('/')));
        }
    }
    let on_root = |p: &String| old_root.join(p.trim_start_matches('/'));
    let push = |list: &mut Vec<PathBuf>, path: PathBuf| {
        if !list.contains(&path) {
            list.push(path);
        }
    };
    for p in &plan.network.networkmanager {
        push(&mut sources.nm_dirs, on_root(p));
    }
    for p in &plan.network.wpa_supplicant {
        push(&mut sources.wpa_supplicant, on_root(p));
    }
    for p in &plan.network.ifupdown {
        push(&mut sources.interfaces, on_root(p));
    }
    for p in &plan.network.connman {
        let path = on_root(p);
        if path.is_dir() {
            push(&mut sources.connman_dirs, path);
        } else {
            push(&mut sources.connman_configs, path);
        }
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_record(b"SCHILY.xattr.user.a", b"1");
        assert_eq!(r, b"25 SCHILY.xattr.user.a=1\n".to_vec());
        assert_eq!(r.len(), 25);
        let long = pax_record(b"k", &[b'v'; 95]);
        assert_eq!(long.len(), 102);
        assert!(long.starts_with(b"102 k="));
    }

    #[test]
    fn filters_match_relative_paths_or_file_names() {
        let f = compile_filters(&["*.conf".into(), "keep/*".into()]).unwrap();
        assert!(selected(&f, Path::new("app.conf")));
        assert!(selected(&f, Path::new("sub/dir/app.conf")));
        assert!(selected(&f, Path::new("keep/x.bin")));
        assert!(!selected(&f, Path::new("other/x.bin")));
        assert!(selected(&[], Path::new("anything")));
        assert!(compile_filters(&["[".into()]).is_err());
    }
}
