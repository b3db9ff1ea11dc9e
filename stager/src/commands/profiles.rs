//! `stager profiles`: the board profiles built into the binary, plus one added with
//! `--profile-file`, listed or shown resolved. [`ProfileCatalog`] is also how `check` and
//! `stage` resolve `--profile NAME`.

use super::Global;
use crate::cli::ProfilesCommand;
use crate::output::{print_error, EXIT_OK, EXIT_REFUSED};
use board_profiles::{Profile, ProfileError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The built-in profiles plus the ones read from files (a file's profile is named by the
/// file's stem and takes the place of a built-in profile of the same name).
#[derive(Debug, Clone, Default)]
pub struct ProfileCatalog {
    from_files: Vec<(PathBuf, Profile)>,
}

impl ProfileCatalog {
    /// Reads and validates every file; the first invalid one is the error (file, key, problem).
    pub fn load(files: &[PathBuf]) -> Result<Self, ProfileError> {
        let mut from_files = Vec::new();
        for path in files {
            from_files.push((path.clone(), Profile::from_file(path)?));
        }
        Ok(ProfileCatalog { from_files })
    }

    /// Every known name, sorted, without duplicates.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            Profile::list_builtin().into_iter().map(str::to_string).collect();
        names.extend(self.from_files.iter().map(|(_, p)| p.name.clone()));
        names.sort();
        names.dedup();
        names
    }

    /// The file a profile of this name was read from, when it came from `--profile-file`.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.from_files.iter().find(|(_, p)| p.name == name).map(|(path, _)| path.as_path())
    }

    /// The profile called `name`; an unknown name lists the known ones.
    pub fn resolve(&self, name: &str) -> Result<Profile, ProfileError> {
        if let Some((_, profile)) = self.from_files.iter().find(|(_, p)| p.name == name) {
            return Ok(profile.clone());
        }
        match Profile::builtin(name) {
            Err(ProfileError::Unknown { .. }) => Err(ProfileError::Unknown {
                name: name.to_string(),
                known: self.names().join(", "),
            }),
            other => other,
        }
    }

    /// Every profile, resolved, in name order.
    pub fn all(&self) -> Result<Vec<Profile>, ProfileError> {
        self.names().iter().map(|name| self.resolve(name)).collect()
    }
}

/// `stager profiles [list | show NAME]`.
pub fn run(command: Option<&ProfilesCommand>, global: &Global) -> i32 {
    let result = match command {
        None | Some(ProfilesCommand::List) => run_list(&global.catalog, global.json),
        Some(ProfilesCommand::Show { name }) => run_show(&global.catalog, name, global.json),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            EXIT_OK
        }
        Err(e) => print_error(&e.to_string(), global.json, EXIT_REFUSED),
    }
}

/// One line of `stager profiles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileSummary {
    pub name: String,
    pub device_type: String,
    pub source_kind: String,
    pub boot_mode: String,
    pub description: String,
    pub origin: String,
}

impl ProfileSummary {
    pub fn of(profile: &Profile) -> Self {
        ProfileSummary {
            name: profile.name.clone(),
            device_type: profile.device_type.clone(),
            source_kind: kebab(&profile.source.kind),
            boot_mode: kebab(&profile.boot_mode),
            description: profile.description.clone(),
            origin: profile.origin.clone(),
        }
    }
}

/// An enum's name as the profile files spell it (`ubuntu-grub-host`, `board-firmware`).
fn kebab(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(e) => format!("({e})"),
    }
}

/// The list as a person reads it: one aligned line per profile.
pub fn render_list(summaries: &[ProfileSummary]) -> String {
    let width = |f: fn(&ProfileSummary) -> &str, title: &str| {
        summaries.iter().map(|s| f(s).len()).chain([title.len()]).max().unwrap_or_default()
    };
    let name_w = width(|s| &s.name, "NAME");
    let type_w = width(|s| &s.device_type, "DEVICE TYPE");
    let kind_w = width(|s| &s.source_kind, "SOURCE");
    let boot_w = width(|s| &s.boot_mode, "BOOT");
    let mut out = format!(
        "{:<name_w$}  {:<type_w$}  {:<kind_w$}  {:<boot_w$}  DESCRIPTION\n",
        "NAME", "DEVICE TYPE", "SOURCE", "BOOT"
    );
    for s in summaries {
        out.push_str(&format!(
            "{:<name_w$}  {:<type_w$}  {:<kind_w$}  {:<boot_w$}  {}\n",
            s.name, s.device_type, s.source_kind, s.boot_mode, s.description
        ));
    }
    out
}

/// `stager profiles [list]`.
pub fn run_list(catalog: &ProfileCatalog, json: bool) -> Result<String, ProfileError> {
    let summaries: Vec<ProfileSummary> = catalog.all()?.iter().map(ProfileSummary::of).collect();
    if json {
        serde_json::to_string_pretty(&summaries).map(|text| format!("{text}\n")).map_err(|e| {
            ProfileError::Serialize { file: "(profile list)".into(), problem: e.to_string() }
        })
    } else {
        Ok(render_list(&summaries))
    }
}

/// `stager profiles show NAME`: the resolved profile as TOML (or JSON), headed by its origin.
pub fn run_show(catalog: &ProfileCatalog, name: &str, json: bool) -> Result<String, ProfileError> {
    let profile = catalog.resolve(name)?;
    if json {
        let mut value = serde_json::to_value(&profile).map_err(|e| ProfileError::Serialize {
            file: profile.origin.clone(),
            problem: e.to_string(),
        })?;
        if let Some(object) = value.as_object_mut() {
            object.insert("name".into(), profile.name.clone().into());
            object.insert("origin".into(), profile.origin.clone().into());
        }
        return serde_json::to_string_pretty(&value).map(|text| format!("{text}\n")).map_err(|e| {
            ProfileError::Serialize { file: profile.origin.clone(), problem: e.to_string() }
        });
    }
    Ok(format!("# profile {} (from {})\n{}", profile.name, profile.origin, profile.to_toml()?))
}
