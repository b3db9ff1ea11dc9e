//! The kernel-module closure of a list of wanted modules, read from a
//! module tree (`/lib/modules/<version>`): `modules.dep` gives each
//! loadable module's file and dependencies, `modules.builtin` the modules
//! compiled into the kernel (they need nothing), and the exact (non-glob)
//! aliases of `modules.alias` are accepted as names too. The `pre:` soft
//! dependencies of `modules.softdep` (e.g. `softdep ext4 pre: crypto-crc32c`:
//! ext4 asks the crypto API for crc32c at mount time, and an initramfs has no
//! modprobe to load it then) are loaded before the module; modules that only
//! a soft dependency brought in are reported as optional, because some of
//! them cannot load on every machine (crc32c_intel needs SSE4.2).
//!
//! Module names compare as the kernel compares them: `-` and `_` are the
//! same character. Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`) are
//! decompressed when read, so the init can load every module as a plain
//! `.ko` with `finit_module`, whatever compressions its kernel supports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// How a module file is compressed, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleCompression {
    None,
    Xz,
    Zstd,
    Gzip,
}

impl ModuleCompression {
    const SUFFIXES: [(&'static str, ModuleCompression); 4] = [
        (".ko", ModuleCompression::None),
        (".ko.xz", ModuleCompression::Xz),
        (".ko.zst", ModuleCompression::Zstd),
        (".ko.gz", ModuleCompression::Gzip),
    ];

    /// The compression of `file_name` and its length without the
    /// compression suffix (so that `name[..len]` ends in `.ko`).
    fn of_file_name(file_name: &str) -> Option<(ModuleCompression, usize)> {
        Self::SUFFIXES.iter().find_map(|(suffix, compression)| {
            file_name.strip_suffix(suffix).map(|stem| (*compression, stem.len() + ".ko".len()))
        })
    }
}

/// A loadable module of the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Canonical name (`-` written as `_`), as `lsmod` shows it.
    pub name: String,
    /// Its file in the module tree.
    pub source: PathBuf,
    /// Its path as `modules.dep` spells it, relative to the tree.
    pub tree_path: String,
    /// How `source` is compressed.
    pub compression: ModuleCompression,
    /// Where the decompressed module goes in the archive:
    /// `lib/modules/<version>/<tree_path without compression suffix>`.
    pub archive_path: String,
}

impl Module {
    /// A reader of the module's uncompressed contents.
    pub fn open_decompressed(&self) -> Result<Box<dyn Read>> {
        let file = File::open(&self.source)
            .map_err(|source| Error::Read { path: self.source.clone(), source })?;
        let file = BufReader::new(file);
        Ok(match self.compression {
            ModuleCompression::None => Box::new(file),
            ModuleCompression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(file)),
            ModuleCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            ModuleCompression::Zstd => Box::new(
                zstd::Decoder::with_buffer(file)
                    .map_err(|source| Error::Decompress { path: self.source.clone(), source })?,
            ),
        })
    }

    /// The module's uncompressed contents.
    pub fn read_decompressed(&self) -> Result<Vec<u8>> {
        let mut contents = Vec::new();
        self.open_decompressed()?
            .read_to_end(&mut contents)
            .map_err(|source| Error::Decompress { path: self.source.clone(), source })?;
        Ok(contents)
    }
}

/// The closure of a list of wanted modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSet {
    /// The kernel version (the tree directory's name).
    pub kernel_version: String,
    /// Every module to load, dependencies before dependents, each once.
    pub load_order: Vec<Module>,
    /// Wanted modules that are built into the kernel (canonical names, in
    /// the order asked): nothing to load.
    pub builtin: Vec<String>,
    /// Canonical names of the modules of `load_order` that only soft
    /// dependencies brought in: the init may go on if one fails to load.
    pub optional: Vec<String>,
}

impl ModuleSet {
    /// The load list the init reads: the archive path of each module
    /// (relative to the archive root, no leading `/`), one per line, in
    /// load order.
    pub fn load_list(&self) -> String {
        self.load_order.iter().map(|module| format!("{}\n", module.archive_path)).collect()
    }

    /// Like [`ModuleSet::load_list`], for the optional modules only.
    pub fn optional_list(&self) -> String {
        self.load_order
            .iter()
            .filter(|module| self.optional.contains(&module.name))
            .map(|module| format!("{}\n", module.archive_path))
            .collect()
    }
}

#[derive(Debug)]
struct ModuleRecord {
    tree_path: String,
    /// Dependency file paths, as `modules.dep` lists them (depmod lists the
    /// last to load first).
    dependencies: Vec<String>,
}

/// A parsed `/lib/modules/<version>` tree.
#[derive(Debug)]
pub struct ModuleTree {
    dir: PathBuf,
    kernel_version: String,
    /// Canonical name → record, for every line of `modules.dep`.
    loadable: HashMap<String, ModuleRecord>,
    /// `modules.dep` path → canonical name.
    names_by_path: HashMap<String, String>,
    builtin: BTreeSet<String>,
    /// Canonical exact alias → canonical module names.
    aliases: BTreeMap<String, Vec<String>>,
    /// Canonical module name → its `pre:` soft dependencies (names or
    /// aliases, canonical).
    soft_pre: HashMap<String, Vec<String>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum VisitState {
    InProgress,
    Done,
}

/// Why a module is being visited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Soft,
}

/// The walk's state while resolving.
#[derive(Default)]
struct Walk {
    states: HashMap<String, VisitState>,
    load_order: Vec<Module>,
    soft_only: BTreeSet<String>,
}

impl ModuleTree {
    /// Reads `modules.dep` (required), `modules.builtin` and `modules.alias`
    /// (optional) of the tree `dir`; the kernel version is `dir`'s name.
    pub fn open(dir: &Path) -> Result<Self> {
        let tree_error = |source| Error::ModuleTree { tree: dir.to_path_buf(), source };
        let kernel_version = dir
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| {
                tree_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the directory's name is not a kernel version",
                ))
            })?
            .to_string();
        let modules_dep = fs::read_to_string(dir.join("modules.dep")).map_err(tree_error)?;
        let builtin_list = read_optional(&dir.join("modules.builtin")).map_err(tree_error)?;
        let alias_list = read_optional(&dir.join("modules.alias")).map_err(tree_error)?;
        let softdep_list = read_optional(&dir.join("modules.softdep")).map_err(tree_error)?;

        let mut loadable = HashMap::new();
        let mut names_by_path = HashMap::new();
        for (index, line) in modules_dep.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax_error = |reason| Error::ModulesDepSyntax {
                tree: dir.to_path_buf(),
                line: index + 1,
                reason,
            };
            let (tree_path, dependencies) =
                line.split_once(':').ok_or_else(|| syntax_error("no ':' after the module path"))?;
            let tree_path = tree_path.trim().to_string();
            let name = module_name_of_path(&tree_path)
                .ok_or_else(|| syntax_error("the module path does not end in .ko[.xz|.zst|.gz]"))?;
            names_by_path.insert(tree_path.clone(), name.clone());
            loadable.insert(
                name,
                ModuleRecord {
                    tree_path,
                    dependencies: dependencies.split_whitespace().map(String::from).collect(),
                },
            );
        }
        let builtin: BTreeSet<String> =
            builtin_list.lines().filter_map(|line| module_name_of_path(line.trim())).collect();
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in alias_list.lines() {
            let mut fields = line.split_whitespace();
            if let (Some("alias"), Some(alias), Some(module)) =
                (fields.next(), fields.next(), fields.next())
            {
                if !alias.contains(['*', '?', '[']) {
                    aliases.entry(canonical_name(alias)).or_default().push(canonical_name(module));
                }
            }
        }
        let soft_pre = parse_soft_pre(&softdep_list);
        log::debug!(
            "module tree {}: {} loadable, {} builtin, {} exact aliases",
            dir.display(),
            loadable.len(),
            builtin.len(),
            aliases.len()
        );
        Ok(Self {
            dir: dir.to_path_buf(),
            kernel_version,
            loadable,
            names_by_path,
            builtin,
            aliases,
            soft_pre,
        })
    }

    /// The tree's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The kernel version (the tree directory's name).
    pub fn kernel_version(&self) -> &str {
        &self.kernel_version
    }

    /// Whether `name` is built into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&canonical_name(name))
    }

    /// The modules to load for `wanted` (names or exact aliases), with their
    /// dependencies, dependencies first.
    pub fn resolve<S: AsRef<str>>(&self, wanted: &[S]) -> Result<ModuleSet> {
        let mut walk = Walk::default();
        let mut builtin = Vec::new();
        for requested in wanted {
            let requested = canonical_name(requested.as_ref());
            let targets = self.targets_of(&requested).ok_or_else(|| Error::ModuleNotFound {
                name: requested.clone(),
                tree: self.dir.clone(),
            })?;
            for target in targets {
                if self.loadable.contains_key(&target) {
                    self.visit(&target, Need::Required, &mut walk)?;
                } else if !builtin.contains(&target) {
                    builtin.push(target);
                }
            }
        }
        let optional = walk
            .load_order
            .iter()
            .filter(|module| walk.soft_only.contains(&module.name))
            .map(|module| module.name.clone())
            .collect();
        Ok(ModuleSet {
            kernel_version: self.kernel_version.clone(),
            load_order: walk.load_order,
            builtin,
            optional,
        })
    }

    /// The loadable or builtin modules a canonical name or exact alias
    /// stands for, or `None` if it is neither.
    fn targets_of(&self, name: &str) -> Option<Vec<String>> {
        if self.loadable.contains_key(name) || self.builtin.contains(name) {
            return Some(vec![name.to_string()]);
        }
        let targets = self.aliases.get(name)?;
        let known = targets
            .iter()
            .filter(|target| self.loadable.contains_key(*target) || self.builtin.contains(*target))
            .cloned()
            .collect::<Vec<_>>();
        (!known.is_empty()).then_some(known)
    }

    /// Depth-first: soft `pre:` dependencies, then every dependency, are
    /// placed before `name`.
    fn visit(&self, name: &str, need: Need, walk: &mut Walk) -> Result<()> {
        if need == Need::Required {
            walk.soft_only.remove(name);
        }
        match walk.states.get(name) {
            Some(VisitState::Done) => return Ok(()),
            Some(VisitState::InProgress) if need == Need::Soft => return Ok(()),
            Some(VisitState::InProgress) => {
                return Err(Error::DependencyCycle {
                    module: name.to_string(),
                    tree: self.dir.clone(),
                })
            }
            None => {}
        }
        let record = self.loadable.get(name).ok_or_else(|| Error::ModuleNotFound {
            name: name.to_string(),
            tree: self.dir.clone(),
        })?;
        walk.states.insert(name.to_string(), VisitState::InProgress);
        for soft in self.soft_pre.get(name).into_iter().flatten() {
            match self.targets_of(soft) {
                Some(targets) => {
                    for target in targets.iter().filter(|t| self.loadable.contains_key(*t)) {
                        self.visit(target, Need::Soft, walk)?;
                    }
                }
                None => log::warn!(
                    "{}: soft dependency {soft:?} of {name:?} is not in the tree; skipped",
                    self.dir.display()
                ),
            }
        }
        // depmod lists the dependency to load last first; walking the list
        // backwards keeps modprobe's order among independent dependencies.
        for dependency_path in record.dependencies.iter().rev() {
            let dependency = self.names_by_path.get(dependency_path).ok_or_else(|| {
                Error::MissingDependency {
                    module: name.to_string(),
                    dependency: dependency_path.clone(),
                    tree: self.dir.clone(),
                }
            })?;
            self.visit(dependency, need, walk)?;
        }
        walk.states.insert(name.to_string(), VisitState::Done);
        if need == Need::Soft {
            walk.soft_only.insert(name.to_string());
        }
        walk.load_order.push(self.module(name, record)?);
        Ok(())
    }

    fn module(&self, name: &str, record: &ModuleRecord) -> Result<Module> {
        let source = self.dir.join(&record.tree_path);
        if !source.is_file() {
            return Err(Error::ModuleFileMissing { path: source });
        }
        let (compression, uncompressed_len) = ModuleCompression::of_file_name(&record.tree_path)
            .ok_or_else(|| Error::UnsupportedModuleCompression { path: source.clone() })?;
        let uncompressed_tree_path = record.tree_path[..uncompressed_len].trim_start_matches('/');
        Ok(Module {
            name: name.to_string(),
            archive_path: format!("lib/modules/{}/{}", self.kernel_version, uncompressed_tree_path),
            source,
            tree_path: record.tree_path.clone(),
            compression,
        })
    }
}

/// A module name as the kernel compares it: `-` is `_`.
pub fn canonical_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The canonical module name of a module file path such as
/// `kernel/fs/nls/nls_iso8859-1.ko.xz`, or `None` if it is no module.
fn module_name_of_path(path: &str) -> Option<String> {
    let file_name = path.rsplit('/').next()?;
    let (stem, _) = file_name.split_once(".ko")?;
    (!stem.is_empty()).then(|| canonical_name(stem))
}

/// The `pre:` soft dependencies of each module from `modules.softdep`
/// (`softdep <module> pre: <a> <b> post: <c>`); `post:` ones are not needed
/// before the module is used and are left out.
fn parse_soft_pre(softdep_list: &str) -> HashMap<String, Vec<String>> {
    let mut soft_pre: HashMap<String, Vec<String>> = HashMap::new();
    for line in softdep_list.lines() {
        let mut fields = line.split_whitespace();
        let (Some("softdep"), Some(module)) = (fields.next(), fields.next()) else {
            continue;
        };
        let mut in_pre = false;
        for field in fields {
            match field {
                "pre:" => in_pre = true,
                "post:" => in_pre = false,
                dependency if in_pre => soft_pre
                    .entry(canonical_name(module))
                    .or_default()
                    .push(canonical_name(dependency)),
                _ => {}
            }
        }
    }
    soft_pre
}

fn read_optional(path: &Path) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_come_from_the_file_name_with_dashes_as_underscores() {
        assert_eq!(
            module_name_of_path("kernel/fs/nls/nls_iso8859-1.ko.xz").as_deref(),
            Some("nls_iso8859_1")
        );
        assert_eq!(module_name_of_path("ext4.ko").as_deref(), Some("ext4"));
        assert_eq!(module_name_of_path("kernel/fs/readme.txt"), None);
    }

    #[test]
    fn compression_follows_the_suffix() {
        assert_eq!(
            ModuleCompression::of_file_name("a/b.ko.zst"),
            Some((ModuleCompression::Zstd, "a/b.ko".len()))
        );
        assert_eq!(
            ModuleCompression::of_file_name("b.ko"),
            Some((ModuleCompression::None, "b.ko".len()))
        );
        assert_eq!(ModuleCompression::of_file_name("b.ko.bz2"), None);
    }
}
