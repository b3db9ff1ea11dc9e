//! `stage-1x` marks a resinOS 1.x device for a supervisor update in the resin API when the
//! 2.x image ships a newer supervisor than the device runs, as balenahup's 1.x -> 2.x script
//! did. The API is a real HTTPS server on loopback (its certificate from a test CA passed as
//! the API CA); the image's supervisor is read from its real ext4 resin-rootA; the device is
//! the real 1.x disk tree of `resinos1x_support::device`. Shown: the mark and its undo by
//! `abort`, its rollback when a later step fails, no mark when not newer or not provisioned
//! or asked not to, and refusals before any change when the API cannot answer.

#[path = "stage_support/mod.rs"]
mod stage_support;

#[path = "resinos1x_support/mod.rs"]
mod resinos1x_support;

#[path = "support/mod.rs"]
mod support;

use resinos1x_support::device::Device;
use resinos1x_support::IMAGE_SUPERVISOR;
use stager::stage::engine::system::FixtureSystem;
use stager::stage::resinos1x::stage_1x::{self, Outcome1x, Stage1xError, SupervisorRequest};
use stager::stage::resinos1x::supervisor_version::SupervisorVersion;
use support::api_server::{ApiServer, ApiState};
use support::test_ca::TestCa;

const KEY: &str = "device-key-Zq8";
const DEVICE_ID: u64 = 4711;
const OLD_RELEASE: u64 = 11;
const NEW_RELEASE: u64 = 42;

struct Setup {
    device: Device,
    api: ApiServer,
    _ca_dir: tempfile::TempDir,
}

/// A provisioned NUC whose API says it runs `runs` with release 11 set; the API knows
/// release 42 = the image's supervisor for intel-nuc.
fn setup(runs: Option<&str>) -> Setup {
    setup_with(runs, Device::new)
}

/// [`setup`] on a device whose boot partition is mounted (for runs that change it).
fn mounted_setup(runs: Option<&str>) -> Setup {
    setup_with(runs, Device::with_mounted_boot)
}

fn setup_with(runs: Option<&str>, make: fn(&str) -> Device) -> Setup {
    let ca = TestCa::new("swapover test CA");
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_pem = ca.write_pem(ca_dir.path());
    let api = ApiServer::start(
        ca.issue_server(&["127.0.0.1"]),
        ApiState {
            api_key: KEY.into(),
            device_id: DEVICE_ID,
            supervisor_version: runs.map(str::to_string),
            supervisor_release: Some(OLD_RELEASE),
            releases: vec![
                ("intel-nuc".into(), "v2.8.3".into(), 7),
                ("intel-nuc".into(), IMAGE_SUPERVISOR.into(), NEW_RELEASE),
            ],
            fail_with: None,
        },
    );
    let mut device = make("resinos1x-intel-nuc");
    let config_path = device.request.plan.config.clone();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["apiEndpoint"] = api.endpoint().into();
    config["deviceId"] = DEVICE_ID.into();
    config["apiKey"] = KEY.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    device.request.supervisor = SupervisorRequest::Mark { version: None, ca_cert: Some(ca_pem) };
    Setup { device, api, _ca_dir: ca_dir }
}

fn dry_run_text(device: &mut Device) -> String {
    device.request.dry_run = true;
    let before = device.snapshot();
    let text = match stage_1x::run(&device.request, &mut FixtureSystem::default()) {
        Ok(Outcome1x::DryRun(text)) => text,
        other => panic!("not a dry run: {other:?}"),
    };
    assert_eq!(device.snapshot(), before, "a dry run changed the device");
    device.request.dry_run = false;
    text
}

#[test]
fn a_newer_supervisor_in_the_image_is_marked_and_abort_puts_the_old_release_back() {
    let mut s = mounted_setup(Some("1.7.0"));
    let text = dry_run_text(&mut s.device);
    assert!(
        text.contains(&format!("mark device {DEVICE_ID} in {} for supervisor {IMAGE_SUPERVISOR} (release {NEW_RELEASE}; it runs 1.7.0)", s.api.endpoint())),
        "{text}"
    );
    assert!(s.api.patches().is_empty(), "a dry run changed the API");

    let before = s.device.snapshot().0;
    match stage_1x::run(&s.device.request, &mut FixtureSystem::default()) {
        Ok(Outcome1x::Staged { rebooting: false, .. }) => {}
        other => panic!("not staged: {other:?}"),
    }
    assert_eq!(s.api.state().supervisor_release, Some(NEW_RELEASE));
    assert_eq!(s.api.patches(), vec![format!("{{\"supervisor_release\":{NEW_RELEASE}}}")]);
    // The release was asked for with the script's filter, spaces sent as %20.
    let asked = s.api.requests().into_iter().find(|r| r.path == "/v2/supervisor_release").unwrap();
    assert_eq!(
        asked.query["$filter"],
        format!("((device_type eq 'intel-nuc') and (supervisor_version eq '{IMAGE_SUPERVISOR}'))")
    );
    assert!(
        asked.raw_query.contains("%20eq%20") && !asked.raw_query.contains('+'),
        "{}",
        asked.raw_query
    );
    // The key went as the `apikey` parameter, never anywhere else.
    for request in s.api.requests() {
        assert_eq!(request.query.get("apikey").map(String::as_str), Some(KEY), "{request:?}");
        assert!(!request.body.contains(KEY));
    }
    let journal =
        std::fs::read_to_string(s.device.host.path("/var/lib/swapover/state.json")).unwrap();
    assert!(journal.contains("mark-supervisor-update") && !journal.contains(KEY), "{journal}");

    stager::abort::abort(&s.device.request.root, &mut FixtureSystem::default()).unwrap();
    assert_eq!(s.api.state().supervisor_release, Some(OLD_RELEASE));
    assert_eq!(
        s.api.patches().last().unwrap(),
        &format!("{{\"supervisor_release\":{OLD_RELEASE}}}")
    );
    // The tree as it was (the disk's resin-updt held and lost our directory: its bytes differ).
    assert_eq!(s.device.snapshot().0, before, "abort left the device changed");
}

#[test]
fn a_failure_after_the_mark_rolls_it_back() {
    let mut s = mounted_setup(Some("1.7.0"));
    let before = s.device.snapshot().0;
    s.device.request.execute.fail_after = Some("mark-supervisor-update".into());
    let err = stage_1x::run(&s.device.request, &mut FixtureSystem::default())
        .expect_err("injected failure");
    assert!(matches!(err, Stage1xError::Execute(_)), "{err}");
    assert_eq!(s.api.patches().len(), 2, "{:?}", s.api.patches());
    assert_eq!(s.api.state().supervisor_release, Some(OLD_RELEASE));
    assert!(!err.to_string().contains("INCOMPLETE"), "{err}");
    assert_eq!(s.device.snapshot().0, before, "rollback left the device changed: {err}");
}

#[test]
fn no_mark_when_the_device_runs_the_same_or_a_newer_supervisor() {
    for runs in ["6.1.2", "v7.0.0"] {
        let mut s = setup(Some(runs));
        let text = dry_run_text(&mut s.device);
        assert!(text.contains(&format!("supervisor update: not needed (the device runs {runs}, the image ships {IMAGE_SUPERVISOR})")), "{text}");
        assert!(
            s.api.requests().iter().all(|r| r.method == "GET" && r.path.starts_with("/v2/device(")),
            "{:?}",
            s.api.requests()
        );
    }
}

#[test]
fn no_mark_for_an_unprovisioned_device_or_when_asked_not_to() {
    let mut device = Device::new("resinos1x-intel-nuc");
    let text = dry_run_text(&mut device);
    assert!(text.contains("supervisor update: not marked (config.json has no apiEndpoint: the device is not provisioned)"), "{text}");

    let mut s = setup(Some("1.7.0"));
    s.device.request.supervisor = SupervisorRequest::Skip;
    let text = dry_run_text(&mut s.device);
    assert!(text.contains("supervisor update: not marked (--no-supervisor-update)"), "{text}");
    assert!(s.api.requests().is_empty());
}

#[test]
fn a_given_version_is_used_instead_of_the_images() {
    let mut s = setup(Some("1.7.0"));
    s.device.request.supervisor = match s.device.request.supervisor.clone() {
        SupervisorRequest::Mark { ca_cert, .. } => SupervisorRequest::Mark {
            version: Some(SupervisorVersion::parse("v2.8.3").unwrap()),
            ca_cert,
        },
        other => other,
    };
    let text = dry_run_text(&mut s.device);
    assert!(text.contains("for supervisor v2.8.3 (release 7; it runs 1.7.0)"), "{text}");
}

#[test]
fn refusals_when_the_api_cannot_say_change_nothing() {
    // The API answers 503 (three attempts), then no release for the target, then no version.
    let s = setup(Some("1.7.0"));
    s.api.set_failing(Some(503));
    s.device.refused(&[
        &format!("supervisor update: cannot ask the resin API at {} for device {DEVICE_ID}'s supervisor: HTTP 503", s.api.endpoint()),
        "or pass --no-supervisor-update",
    ]);
    assert_eq!(s.api.requests().len(), 3);

    let mut s = setup(Some("1.7.0"));
    s.device.request.supervisor = match s.device.request.supervisor.clone() {
        SupervisorRequest::Mark { ca_cert, .. } => SupervisorRequest::Mark {
            version: Some(SupervisorVersion::parse("v9.9.9").unwrap()),
            ca_cert,
        },
        other => other,
    };
    s.device.refused(&[
        "the resin API has no supervisor release v9.9.9 for device type intel-nuc",
        "pass --supervisor-version",
    ]);

    let s = setup(None);
    s.device
        .refused(&[&format!("the resin API reports no supervisor version for device {DEVICE_ID}")]);

    // A server whose certificate is not trusted: no CA given.
    let mut s = setup(Some("1.7.0"));
    s.device.request.supervisor = SupervisorRequest::Mark { version: None, ca_cert: None };
    s.device.refused(&["cannot ask the resin API", "check the device's network"]);
    assert!(s.api.patches().is_empty());
}
