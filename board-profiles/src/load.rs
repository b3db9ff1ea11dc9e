//! Reading profiles: from the embedded set, a file, or a string. Every error
//! names the file, the key and what is wrong.

use std::path::Path;

use thiserror::Error;

use crate::builtin::BUILTIN;
use crate::schema::Profile;

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: {key}: {problem}")]
    Invalid { file: String, key: String, problem: String },
    #[error("unknown profile '{name}'; built-in profiles: {known} (or pass --profile-file)")]
    Unknown { name: String, known: String },
    #[error("{file}: cannot write the profile as TOML: {problem}")]
    Serialize { file: String, problem: String },
}

impl ProfileError {
    pub(crate) fn invalid(file: &str, key: impl Into<String>, problem: impl Into<String>) -> Self {
        ProfileError::Invalid { file: file.to_string(), key: key.into(), problem: problem.into() }
    }
}

impl Profile {
    /// The embedded profile called `name`, parsed and validated.
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        match BUILTIN.iter().find(|(builtin, _)| *builtin == name) {
            Some((name, text)) => parse(&format!("profiles/{name}.toml (built-in)"), name, text),
            None => Err(ProfileError::Unknown {
                name: name.to_string(),
                known: Profile::list_builtin().join(", "),
            }),
        }
    }

    /// Names of the embedded profiles, sorted.
    pub fn list_builtin() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = BUILTIN.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names
    }

    /// A profile from a TOML file; its name is the file's stem.
    pub fn from_file(path: &Path) -> Result<Profile, ProfileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProfileError::Read { file: file.clone(), source })?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if name.is_empty() {
            return Err(ProfileError::invalid(
                &file,
                "(file name)",
                "the file name must give the profile's name",
            ));
        }
        parse(&file, name, &text)
    }

    /// A profile from TOML text; errors name it as `<name>.toml`.
    pub fn from_toml_str(name: &str, text: &str) -> Result<Profile, ProfileError> {
        parse(&format!("{name}.toml"), name, text)
    }

    /// The profile as TOML (for `stager profiles show`); parses back to an equal profile.
    pub fn to_toml(&self) -> Result<String, ProfileError> {
        toml::to_string(self).map_err(|e| ProfileError::Serialize {
            file: self.origin.clone(),
            problem: e.to_string(),
        })
    }
}

/// Parses and validates; `file` labels errors.
fn parse(file: &str, name: &str, text: &str) -> Result<Profile, ProfileError> {
    let deserializer =
        toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, String::new(), e))?;
    let mut profile: Profile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        toml_error(file, text, path, e.into_inner())
    })?;
    profile.name = name.to_string();
    profile.origin = file.to_string();
    profile.validate()?;
    Ok(profile)
}

/// Turns a TOML/serde error into file + key + one-line problem (with the line number).
fn toml_error(file: &str, text: &str, path: String, error: toml::de::Error) -> ProfileError {
    let message = error.message().trim().to_string();
    // serde reports a missing key at its parent's path; name the key itself.
    let key = match missing_field(&message) {
        Some(field) if path.is_empty() || path == "." => field.to_string(),
        Some(field) => format!("{path}.{field}"),
        None if path.is_empty() || path == "." => "(document)".to_string(),
        None => path,
    };
    let problem = match error.span() {
        Some(span) => format!("{message} (line {})", line_of(text, span.start)),
        None => message,
    };
    ProfileError::invalid(file, key, problem)
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|&&b| b == b'\n').count() + 1
}
