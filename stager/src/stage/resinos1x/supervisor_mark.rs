//! Marking a resinOS 1.x device for a supervisor update in the resin API, as balenahup's
//! `upgrade-1.x-to-2.x.sh` does before its reboot (cited in the resinos1x-* profiles): when
//! the supervisor the 2.x image ships is newer than the one the API says the device runs,
//! the device's `supervisor_release` is set to that release, so the 2.x system's supervisor
//! updater fetches it (and does not fall back to an older release the API still names).
//!
//! Only the stager can do this: the migration environment has no network. The check (two
//! GETs) runs before the first change and can refuse; the mark (a PATCH) is a change in the
//! undo journal whose undo PATCHes back the release the device had, so a rolled-back or
//! aborted staging leaves the API as it was. Requests follow the script: API v2 with the
//! key from config.json as the `apikey` parameter. The key is never logged or shown.

use super::supervisor_version::SupervisorVersion;
use crate::fetch::client::{build_client, error_chain};
use crate::fetch::FetchOptions;
use reqwest::blocking::{Client, Response};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Attempts per request (transport errors and 5xx answers are retried).
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Where the device's API is and how it proves who it is (from config.json).
#[derive(Clone)]
pub struct ApiAccess {
    pub endpoint: String,
    pub device_id: String,
    pub device_type: String,
    api_key: String,
}

impl std::fmt::Debug for ApiAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAccess")
            .field("endpoint", &self.endpoint)
            .field("device_id", &self.device_id)
            .field("device_type", &self.device_type)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkError {
    #[error("cannot ask the resin API at {endpoint} for {what}: {detail}; check the device's network and config.json's apiEndpoint, or pass --no-supervisor-update to migrate without marking the device")]
    Api { endpoint: String, what: String, detail: String },
    #[error("the resin API reports no supervisor version for device {device_id}, so whether {target} is newer cannot be told; pass --no-supervisor-update to migrate without marking the device")]
    NoCurrentVersion { device_id: String, target: String },
    #[error("the resin API has no supervisor release {target} for device type {device_type}; pass --supervisor-version with a released version, or --no-supervisor-update")]
    NoRelease { target: String, device_type: String },
    #[error("config.json {path} cannot be read for the API key ({detail}); it is needed to put the device's supervisor release back: restore the file, then run `stager abort` again")]
    Config { path: String, detail: String },
}

/// What the check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkPlan {
    /// Nothing to ask or change (`reason` says why: not provisioned, or asked not to).
    Skip {
        reason: String,
    },
    /// The device already runs the target's supervisor or a newer one.
    NotNewer {
        current: String,
        target: SupervisorVersion,
    },
    Mark(Mark),
}

/// The change the stager makes (and its undo record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub endpoint: String,
    pub device_id: String,
    /// The supervisor the device runs, as the API reported it.
    pub current: String,
    pub target: String,
    /// The API's id of the target's supervisor release for this device type.
    pub release_id: u64,
    /// The device's `supervisor_release` before the mark (`None`: unset), put back by undo.
    pub previous_release: Option<u64>,
}

impl MarkPlan {
    /// One line for the plan printout.
    pub fn describe(&self) -> String {
        match self {
            MarkPlan::Skip { reason } => format!("supervisor update: not marked ({reason})"),
            MarkPlan::NotNewer { current, target } => {
                format!("supervisor update: not needed (the device runs {current}, the image ships {target})")
            }
            MarkPlan::Mark(m) => format!(
                "supervisor update: mark device {} in {} for supervisor {} (release {}; it runs {}), undone on rollback or abort",
                m.device_id, m.endpoint, m.target, m.release_id, m.current
            ),
        }
    }
}

/// The API access config.json gives, or why there is none (a device never provisioned has
/// no API to mark it in).
pub fn api_access(config: &serde_json::Value) -> Result<ApiAccess, String> {
    let text = |key: &str| match config.get(key) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let endpoint = text("apiEndpoint")
        .ok_or("config.json has no apiEndpoint: the device is not provisioned")?;
    let device_id =
        text("deviceId").ok_or("config.json has no deviceId: the device is not provisioned")?;
    let api_key = text("deviceApiKey")
        .or_else(|| text("apiKey"))
        .ok_or("config.json has no deviceApiKey or apiKey")?;
    let device_type = text("deviceType").ok_or("config.json has no deviceType")?;
    Ok(ApiAccess {
        endpoint: endpoint.trim_end_matches('/').to_string(),
        device_id,
        device_type,
        api_key,
    })
}

/// Reads config.json at `path` for [`api_access`].
pub fn api_access_from_file(path: &Path) -> Result<ApiAccess, MarkError> {
    let fail = |detail: String| MarkError::Config { path: path.display().to_string(), detail };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
    api_access(&value).map_err(fail)
}

/// The API client: rustls, bundled roots plus `ca_cert`.
pub struct Api {
    client: Client,
    access: ApiAccess,
}

impl Api {
    pub fn new(access: ApiAccess, ca_cert: Option<&Path>) -> Result<Api, MarkError> {
        let options = FetchOptions {
            ca_certs: ca_cert.map(Path::to_path_buf).into_iter().collect::<Vec<PathBuf>>(),
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            ..FetchOptions::default()
        };
        let client = build_client(&options).map_err(|e| MarkError::Api {
            endpoint: access.endpoint.clone(),
            what: "a connection".into(),
            detail: e.to_string(),
        })?;
        Ok(Api { client, access })
    }

    fn url(&self, path: &str, query: &[(&str, String)], what: &str) -> Result<Url, MarkError> {
        let mut url = Url::parse(&format!("{}/{path}", self.access.endpoint))
            .map_err(|e| self.error(what, e.to_string()))?;
        {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
            pairs.append_pair("apikey", &self.access.api_key);
        }
        // Spaces as %20, as the script sends them (form encoding's '+' is not decoded as a
        // space by every OData parser; a literal '+' is already %2B).
        let query = url.query().map(|q| q.replace('+', "%20"));
        url.set_query(query.as_deref());
        Ok(url)
    }

    fn error(&self, what: &str, detail: String) -> MarkError {
        MarkError::Api { endpoint: self.access.endpoint.clone(), what: what.to_string(), detail }
    }

    /// Sends with retries; any answer but 2xx is an error naming the status.
    fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<Response, MarkError> {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut request = self.client.request(method.clone(), url.clone());
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            match request.send() {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if response.status().is_server_error() => {
                    last = format!("HTTP {}", response.status())
                }
                Ok(response) => return Err(self.error(what, format!("HTTP {}", response.status()))),
                // The request's URL holds the key: never show it.
                Err(e) => last = error_chain(&e.without_url()),
            }
            log::warn!(
                "resin API {} for {what}: {last} (attempt {attempt} of {ATTEMPTS})",
                self.access.endpoint
            );
            if attempt < ATTEMPTS {
                std::thread::sleep(RETRY_PAUSE);
            }
        }
        Err(self.error(what, last))
    }

    fn get_json(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<serde_json::Value, MarkError> {
        let url = self.url(path, query, what)?;
        let response = self.send(Method::GET, url, None, what)?;
        let bytes =
            response.bytes().map_err(|e| self.error(what, error_chain(&e.without_url())))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.error(what, format!("the answer is not JSON: {e}")))
    }

    /// The supervisor the device runs and the release the API has set for it.
    pub fn device(&self) -> Result<(Option<String>, Option<u64>), MarkError> {
        let what = format!("device {}'s supervisor", self.access.device_id);
        let answer = self.get_json(
            &format!("v2/device({})", self.access.device_id),
            &[("$select", "supervisor_version,supervisor_release".into())],
            &what,
        )?;
        let Some(device) = answer.pointer("/d/0") else {
            return Err(self.error(
                &what,
                "no such device (empty answer); check config.json's deviceId".into(),
            ));
        };
        let version = device
            .get("supervisor_version")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .filter(|v| !v.is_empty());
        Ok((version, release_id(device.get("supervisor_release"))))
    }

    /// The id of supervisor release `version` for the device's type, if the API has it.
    pub fn release(&self, version: SupervisorVersion) -> Result<Option<u64>, MarkError> {
        let filter = format!(
            "((device_type eq '{}') and (supervisor_version eq '{version}'))",
            self.access.device_type
        );
        let answer = self.get_json(
            "v2/supervisor_release",
            &[("$select", "id,image_name".into()), ("$filter", filter)],
            &format!("supervisor release {version}"),
        )?;
        Ok(answer.pointer("/d/0/id").and_then(|id| id.as_u64()))
    }

    /// Sets the device's `supervisor_release` (`None`: unset).
    pub fn set_release(&self, release: Option<u64>) -> Result<(), MarkError> {
        let what = format!("setting device {}'s supervisor release", self.access.device_id);
        let url = self.url(&format!("v2/device({})", self.access.device_id), &[], &what)?;
        self.send(
            Method::PATCH,
            url,
            Some(&serde_json::json!({ "supervisor_release": release })),
            &what,
        )
        .map(|_| ())
    }
}

/// `supervisor_release` as OData v2 answers it: null, an id, or `{"__id": id, ...}`.
fn release_id(value: Option<&serde_json::Value>) -> Option<u64> {
    match value? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Object(o) => release_id(o.get("__id")),
        _ => None,
    }
}

/// The check: asks the API (reads only) and decides.
pub fn decide(api: &Api, target: SupervisorVersion) -> Result<MarkPlan, MarkError> {
    let (current, previous_release) = api.device()?;
    let Some(current) = current else {
        return Err(MarkError::NoCurrentVersion {
            device_id: api.access.device_id.clone(),
            target: target.to_string(),
        });
    };
    // A version the API reports but that does not read as one is treated as older: the
    // target's is then marked, as the script's `sort -V` comparison would.
    let newer = SupervisorVersion::parse(&current).map(|c| target > c).unwrap_or(true);
    if !newer {
        return Ok(MarkPlan::NotNewer { current, target });
    }
    let Some(release_id) = api.release(target)? else {
        return Err(MarkError::NoRelease {
            target: target.to_string(),
            device_type: api.access.device_type.clone(),
        });
    };
    Ok(MarkPlan::Mark(Mark {
        endpoint: api.access.endpoint.clone(),
        device_id: api.access.device_id.clone(),
        current,
        target: target.to_string(),
        release_id,
        previous_release,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_comes_from_config_json_and_hides_the_key() {
        let config = serde_json::json!({"apiEndpoint": "https://api.resin.io/", "deviceId": 1234, "apiKey": "k1", "deviceType": "intel-nuc"});
        let access = api_access(&config).unwrap();
        assert_eq!(
            (access.endpoint.as_str(), access.device_id.as_str(), access.api_key.as_str()),
            ("https://api.resin.io", "1234", "k1")
        );
        assert!(!format!("{access:?}").contains("k1"));
        let with_device_key = serde_json::json!({"apiEndpoint": "https://a", "deviceId": "7", "apiKey": "user", "deviceApiKey": "dev", "deviceType": "x"});
        assert_eq!(api_access(&with_device_key).unwrap().api_key, "dev");
        let unprovisioned = serde_json::json!({"deviceType": "intel-nuc", "applicationId": 1});
        assert!(api_access(&unprovisioned).unwrap_err().contains("not provisioned"));
    }

    #[test]
    fn release_ids_in_every_odata_form() {
        assert_eq!(release_id(Some(&serde_json::json!(null))), None);
        assert_eq!(release_id(None), None);
        assert_eq!(release_id(Some(&serde_json::json!(42))), Some(42));
        assert_eq!(release_id(Some(&serde_json::json!("42"))), Some(42));
        assert_eq!(
            release_id(Some(&serde_json::json!({"__deferred": {"uri": "/x"}, "__id": 9}))),
            Some(9)
        );
    }
}
