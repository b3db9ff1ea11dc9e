//! The device's resin `config.json`: it must parse and be made for the profile's device type.

use super::refusal::RefusalText;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigJsonFacts {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub device_type: String,
    /// `applicationId` as text (a number in config.json), when present.
    pub application_id: Option<String>,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{}", self.text())]
pub enum ConfigJsonError {
    Missing { path: PathBuf, problem: String },
    Invalid { path: PathBuf, problem: String },
    NoDeviceType { path: PathBuf },
    OtherDeviceType { path: PathBuf, found: String, expected: String },
}

impl ConfigJsonError {
    /// What is wrong with config.json and what to do about it, kept apart.
    pub fn text(&self) -> RefusalText {
        match self {
            ConfigJsonError::Missing { path, problem } => RefusalText::new(
                format!("config.json {} cannot be read ({problem})", path.display()),
                "download the device's config.json from the dashboard and pass it with --config"
                    .into(),
            ),
            ConfigJsonError::Invalid { path, problem } => RefusalText::new(
                format!("config.json {} is not valid JSON ({problem})", path.display()),
                "download it again from the dashboard".into(),
            ),
            ConfigJsonError::NoDeviceType { path } => RefusalText::new(
                format!("config.json {} has no \"deviceType\"", path.display()),
                "download the device's config.json from the dashboard".into(),
            ),
            ConfigJsonError::OtherDeviceType { path, found, expected } => RefusalText::new(
                format!(
                    "config.json {} is for device type {found}, the profile is for {expected}",
                    path.display()
                ),
                format!("download config.json for a {expected} application"),
            ),
        }
    }
}

/// Reads and parses config.json (a path on the machine running the stager).
pub fn read(path: &Path) -> Result<ConfigJsonFacts, ConfigJsonError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigJsonError::Missing {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    parse(path, bytes)
}

pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<ConfigJsonFacts, ConfigJsonError> {
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        ConfigJsonError::Invalid { path: path.to_path_buf(), problem: e.to_string() }
    })?;
    if !value.is_object() {
        return Err(ConfigJsonError::Invalid {
            path: path.to_path_buf(),
            problem: "not a JSON object".into(),
        });
    }
    let text = |key: &str| match value.get(key) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let device_type = text("deviceType")
        .ok_or_else(|| ConfigJsonError::NoDeviceType { path: path.to_path_buf() })?;
    Ok(ConfigJsonFacts {
        path: path.to_path_buf(),
        device_type,
        application_id: text("applicationId"),
        hostname: text("hostname"),
        bytes,
    })
}

impl ConfigJsonFacts {
    /// Refuses a config.json made for another device type.
    pub fn require_device_type(&self, expected: &str) -> Result<(), ConfigJsonError> {
        if self.device_type == expected {
            Ok(())
        } else {
            Err(ConfigJsonError::OtherDeviceType {
                path: self.path.clone(),
                found: self.device_type.clone(),
                expected: expected.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_device_type_and_application() {
        let facts = parse(
            Path::new("c.json"),
            br#"{"deviceType":"intel-nuc","applicationId":1234}"#.to_vec(),
        )
        .unwrap();
        assert_eq!(
            (facts.device_type.as_str(), facts.application_id.as_deref()),
            ("intel-nuc", Some("1234"))
        );
        assert!(facts.require_device_type("intel-nuc").is_ok());
        let err = facts.require_device_type("raspberrypi3").unwrap_err().to_string();
        assert!(
            err.contains("is for device type intel-nuc, the profile is for raspberrypi3"),
            "{err}"
        );
    }

    #[test]
    fn refuses_garbage_and_missing_device_type() {
        assert!(matches!(
            parse(Path::new("c"), b"{".to_vec()),
            Err(ConfigJsonError::Invalid { .. })
        ));
        assert!(matches!(
            parse(Path::new("c"), b"[1]".to_vec()),
            Err(ConfigJsonError::Invalid { .. })
        ));
        assert!(matches!(
            parse(Path::new("c"), b"{}".to_vec()),
            Err(ConfigJsonError::NoDeviceType { .. })
        ));
    }
}
