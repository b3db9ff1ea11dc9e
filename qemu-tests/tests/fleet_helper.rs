//! The fleet playbook's controller-side helper (fleet/files/swapover_fleet.py) against the
//! real HTTPS resin API stand-in, without VMs: registration writes a config.json the API
//! knows (and a wrong key registers nothing and is not echoed), the resinOS check-in client
//! makes the device `migrated`, a device that never answers is `unknown` (never success),
//! and each `stage` outcome is recorded as the report says.

use qemu_tests::fleet::{self, ApiStandin, Pki};
use qemu_tests::paths;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KEY: &str = "helper-test-provisioning-key";

fn helper(args: &[&str], key: &str, stdin: Option<&str>) -> Output {
    let script = paths::workspace_root().join("fleet/files/swapover_fleet.py");
    let mut command = Command::new("python3");
    command.arg(script).args(args).env("SWAPOVER_PROVISIONING_KEY", key);
    if let Some(text) = stdin {
        use std::io::Write;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        return child.wait_with_output().unwrap();
    }
    command.output().unwrap()
}

fn record(state: &Path, host: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(state.join(format!("{host}.json"))).unwrap()).unwrap()
}

fn b64(text: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut out = out;
    out.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
}

#[test]
fn register_watch_record_and_report() -> anyhow::Result<()> {
    let dir: PathBuf = paths::artifacts_dir().join("runs").join("fleet_helper");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let pki = Pki::create(&paths::images_dir().join("fleet-pki"))?;
    let api = ApiStandin::start(&pki, KEY, &dir)?;
    let state = dir.join("state");
    let s = state.to_string_lossy().into_owned();
    let (url, ca) = (api.url(), pki.ca.to_string_lossy().into_owned());
    let register = |host: &str, key: &str| {
        helper(
            &[
                "register",
                "--state-dir",
                &s,
                "--host",
                host,
                "--api",
                &url,
                "--ca",
                &ca,
                "--app-id",
                "7",
                "--user-id",
                "3",
                "--device-type",
                "intel-nuc",
                "--device-api",
                &api.url_from_guest(),
            ],
            key,
            None,
        )
    };

    // A wrong provisioning key: refused by the API, nothing registered, the key not echoed.
    let wrong = register("dev-wrong", "not-the-key");
    assert!(!wrong.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&wrong.stdout),
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert!(!said.contains("not-the-key") && !said.contains(KEY), "{said}");
    assert!(api.state()?["devices"].as_object().is_some_and(|d| d.is_empty()));

    // Registration: config.json with the uuid and device key the API stand-in recorded.
    let ok = register("dev-1", KEY);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let config_path = state.join("config/dev-1.json");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    let uuid = config["uuid"].as_str().unwrap_or_default().to_string();
    let device = &api.state()?["devices"][&uuid];
    assert_eq!(device["api_key"], config["deviceApiKey"]);
    assert_eq!(
        (device["application"].as_i64(), config["applicationId"].as_i64()),
        (Some(7), Some(7))
    );
    assert_eq!(config["apiEndpoint"], api.url_from_guest().as_str());
    assert_eq!(record(&state, "dev-1")["uuid"], uuid.as_str());
    // A re-run keeps the registration.
    assert!(register("dev-1", KEY).status.success());
    assert_eq!(api.state()?["devices"].as_object().map(|d| d.len()), Some(1));

    // Watch: nothing answers (a closed port, not online in the API) -> unknown, not success.
    let closed = fleet::free_port()?;
    let ssh = format!("ssh -p {closed} -o StrictHostKeyChecking=no root@127.0.0.1");
    let watch = |host: &str, uuid: &str| {
        helper(
            &[
                "watch",
                "--state-dir",
                &s,
                "--host",
                host,
                "--api",
                &url,
                "--ca",
                &ca,
                "--ssh",
                &ssh,
                "--stager",
                "/x/stager",
                "--uuid",
                uuid,
                "--boot-id",
                "b0",
                "--timeout",
                "4",
                "--interval",
                "1",
            ],
            KEY,
            None,
        )
    };
    assert!(watch("dev-1", &uuid).status.success());
    let r = record(&state, "dev-1");
    assert_eq!(
        (r["phase"].as_str(), r["result"].as_str()),
        (Some("watch"), Some("unknown")),
        "{r}"
    );

    // The resinOS stand-in's check-in client (the real one, run here) -> migrated.
    let mut host_config = config.clone();
    host_config["apiEndpoint"] = url.clone().into();
    let host_config_path = dir.join("dev-1-config.json");
    std::fs::write(&host_config_path, host_config.to_string())?;
    let checkin = Command::new(fleet::checkin_binary()?)
        .arg(&host_config_path)
        .arg(&pki.ca)
        .arg(fleet::os_version())
        .output()?;
    assert_eq!(String::from_utf8_lossy(&checkin.stdout).trim(), "SWAPOVER-CHECKIN status=200");
    assert!(watch("dev-1", &uuid).status.success());
    let r = record(&state, "dev-1");
    assert_eq!(r["result"], "migrated", "{r}");

    // Each stage document is recorded as what the rollout does next.
    let cases = [
        (
            r#"{"schema":"swapover.stage/1","result":"staged","exit_code":0,"staged":[]}"#,
            "rebooting",
        ),
        (
            r#"{"schema":"swapover.stage/1","result":"not_now","exit_code":3,"not_now":"later"}"#,
            "not_now",
        ),
        (
            r#"{"schema":"swapover.stage/1","result":"refused","exit_code":1,"error":"refused: x"}"#,
            "refused",
        ),
        (
            r#"{"schema":"swapover.stage/1","result":"failed","exit_code":2,"error":"rolled back"}"#,
            "failed",
        ),
        ("", "unknown"),
    ];
    for (i, (document, want)) in cases.iter().enumerate() {
        let host = format!("stage-{i}");
        let out = helper(
            &["record-stage", "--state-dir", &s, "--host", &host, "--phase", "rollout"],
            KEY,
            Some(&b64(document)),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(record(&state, &host)["result"], *want, "{document}");
    }
    let out = helper(&["report", "--state-dir", &s, "--out-dir", &s], KEY, None);
    assert!(out.status.success());
    let rows = fleet::read_report(&state.join("report.csv"))?;
    assert_eq!(rows.len(), 1 + cases.len(), "{rows:?}");
    assert!(rows.iter().any(|r| r.host == "dev-1" && r.result == "migrated" && r.uuid == uuid));
    Ok(())
}
