//! `resin-checkin CONFIG_JSON CA_PEM OS_VERSION`: what the resinOS stand-in of the fleet test
//! runs on boot, standing for the supervisor telling the resin API the device is online. It
//! reads the uuid, the device API key and the API endpoint from config.json and PATCHes the
//! device resource (`/v6/device?$filter=uuid eq '<uuid>'`, `Authorization: Bearer <device
//! API key>`, `{"is_online": true, "os_version": …}`) over HTTPS, trusting only `CA_PEM`.
//! Prints one `SWAPOVER-CHECKIN` line on the console either way. Built static (musl).

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(status) => {
            println!("SWAPOVER-CHECKIN status={status}");
            if status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!("SWAPOVER-CHECKIN error={e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<u16, String> {
    let [_, config, ca, os_version] = args else {
        return Err("usage: resin-checkin CONFIG_JSON CA_PEM OS_VERSION".into());
    };
    let text = std::fs::read(config).map_err(|e| format!("reading {config}: {e}"))?;
    let config: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("config.json: {e}"))?;
    let field = |name: &str| {
        config[name].as_str().map(str::to_string).ok_or(format!("config.json has no {name}"))
    };
    let (endpoint, uuid, key) = (field("apiEndpoint")?, field("uuid")?, field("deviceApiKey")?);
    let pem = std::fs::read(ca).map_err(|e| format!("reading {ca}: {e}"))?;
    let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("CA: {e}"))?;
    let client = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("client: {e}"))?;
    let body = serde_json::json!({ "is_online": true, "os_version": os_version }).to_string();
    let url = format!("{}/v6/device?$filter=uuid%20eq%20'{uuid}'", endpoint.trim_end_matches('/'));
    let mut last = String::new();
    // The network may need a moment after the link comes up.
    for _ in 0..10 {
        match client
            .patch(&url)
            .bearer_auth(&key)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
        {
            Ok(response) => return Ok(response.status().as_u16()),
            Err(e) => last = format!("{e:?}"),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    Err(last)
}
