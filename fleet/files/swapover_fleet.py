#!/usr/bin/env python3
"""Controller-side helper of the swapover fleet playbook (fleet/site.yml).

Runs on the Ansible controller only (delegate_to: localhost, with the venv's Python); the
devices need nothing but a shell, `cat` and `sha256sum`. Subcommands:

  push      copy a file to a device through `ssh … 'cat > FILE'` (no scp/sftp/Python there)
  register  register a device with the resin API and write its config.json
  record    merge one phase's outcome into the device's record (STATE_DIR/HOST.json)
  watch     after a reboot: old OS back (SSH answers, new boot id), resinOS online, or unknown
  report    one row per device from the records: report.csv and report.md

Ansible does the orchestration (inventory, waves, failure threshold, tags); this only keeps
what the report needs. Standard library only.
"""

import argparse
import csv
import datetime
import json
import os
import secrets
import shlex
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request

# What a record's "result" can be, and what the next run does with it.
DONE = "migrated"  # skipped by every later run
RETRY = ("ready", "not_now")  # staged (again) by the next rollout


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def record_path(state_dir, host):
    return os.path.join(state_dir, f"{host}.json")


def load_record(state_dir, host):
    try:
        with open(record_path(state_dir, host)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"host": host}


def save_record(state_dir, host, record):
    os.makedirs(state_dir, exist_ok=True)
    tmp = record_path(state_dir, host) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    os.replace(tmp, record_path(state_dir, host))


def ssh_argv(ssh, command):
    return shlex.split(ssh) + ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", command]


# ---------------------------------------------------------------- push
def cmd_push(a):
    remote = shlex.quote(a.dest)
    script = f"cat > {remote}.partial && chmod {a.mode} {remote}.partial && mv {remote}.partial {remote} && sha256sum {remote}"
    with open(a.src, "rb") as f:
        out = subprocess.run(ssh_argv(a.ssh, script), stdin=f, capture_output=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"push {a.src} -> {a.dest} failed ({out.returncode}): {out.stderr.decode(errors='replace').strip()}")
    print(out.stdout.decode().split()[0])


# ---------------------------------------------------------------- resin API
def api_context(ca):
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()


def api_call(a, method, path, key, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(a.api.rstrip("/") + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, context=api_context(a.ca), timeout=15) as resp:
        text = resp.read().decode()
        return json.loads(text) if text.strip().startswith(("{", "[")) else text


def provisioning_key(a):
    key = os.environ.get(a.key_env, "")
    if not key:
        sys.exit(f"register: no provisioning API key in ${a.key_env} (set it, or use a vaulted swapover_provisioning_key)")
    return key


def cmd_register(a):
    """Registers the device the way `balena device register` / balena-register-device do
    (POST {apiEndpoint}/device/register, `Authorization: Bearer <provisioning key>`, body
    {user, application, device_type, uuid, api_key}; answer {id, uuid, api_key}: see
    https://github.com/resin-io/resin-register-device and https://www.npmjs.com/package/balena-register-device,
    options userId, applicationId, uuid, deviceType, deviceApiKey, provisioningApiKey,
    apiEndpoint), then writes the config.json `balena os configure` would: the uuid and the
    device API key generated here, the application, device type and endpoints.
    A device that already has a config.json in the state directory keeps it (re-runs)."""
    record = load_record(a.state_dir, a.host)
    config_path = os.path.join(a.state_dir, "config", f"{a.host}.json")
    if os.path.exists(config_path) and record.get("uuid"):
        print(json.dumps({"uuid": record["uuid"], "config": config_path, "registered": "before"}))
        return
    uuid = secrets.token_hex(16)  # 32 hex digits, as generateUniqueKey() makes them
    device_key = secrets.token_hex(16)
    answer = api_call(a, "POST", "/device/register", provisioning_key(a), {
        "user": a.user_id,
        "application": a.app_id,
        "device_type": a.device_type,
        "uuid": uuid,
        "api_key": device_key,
    })
    config = {
        "applicationId": a.app_id,
        "userId": a.user_id,
        "deviceType": a.device_type,
        "uuid": uuid,
        "deviceApiKey": device_key,
        "registered_at": int(time.time()),
        "deviceId": answer.get("id") if isinstance(answer, dict) else None,
        "apiEndpoint": a.device_api or a.api,
        "registryEndpoint": a.registry,
        "vpnEndpoint": a.vpn,
        "listenPort": 48484,
        "hostname": a.host,
    }
    os.makedirs(os.path.dirname(config_path), mode=0o700, exist_ok=True)
    fd = os.open(config_path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    os.replace(config_path + ".tmp", config_path)
    record["uuid"] = uuid
    save_record(a.state_dir, a.host, record)
    print(json.dumps({"uuid": uuid, "config": config_path, "registered": "now"}))


def device_online(a, uuid):
    """(online on 2.x?, what the API says) for the device with this uuid."""
    flt = urllib.parse.quote(f"uuid eq '{uuid}'")
    answer = api_call(a, "GET", f"/v6/device?$filter={flt}", provisioning_key(a))
    rows = answer.get("d", []) if isinstance(answer, dict) else []
    if not rows:
        return False, "not known to the API"
    row = rows[0]
    version = str(row.get("os_version") or "")
    online = bool(row.get("is_online"))
    digits = version.split()[-1] if version else ""
    return online and digits.startswith("2."), f"is_online={online} os_version={version or 'none'}"


# ---------------------------------------------------------------- records
def cmd_record(a):
    record = load_record(a.state_dir, a.host)
    stamp = now()
    record.setdefault("first_seen", stamp)
    record["phase"] = a.phase
    record["result"] = a.result
    record["reason"] = a.reason or ""
    record["fix"] = a.fix or ""
    record.setdefault("timings", {})[a.phase] = {"at": stamp, "seconds": a.seconds}
    if a.uuid:
        record["uuid"] = a.uuid
    if getattr(a, "boot_id", ""):
        record["boot_id"] = a.boot_id
    if a.extra:
        record.setdefault("details", {})[a.phase] = json.loads(a.extra)
    save_record(a.state_dir, a.host, record)
    print(json.dumps({"host": a.host, "phase": a.phase, "result": a.result}))


def parse_document(text):
    """The one JSON document a `stager --json` run printed (tolerates a tty's \\r and noise
    before it)."""
    text = text.replace("\r", "")
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON document in the stager's output")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def read_stdin():
    """What the playbook passes on stdin: base64 (Ansible's templating would otherwise turn a
    JSON document into a Python dict's repr)."""
    import base64

    return base64.b64decode(sys.stdin.read()).decode(errors="replace")


def cmd_record_check(a):
    raw = read_stdin()
    try:
        doc = parse_document(raw)
    except ValueError as e:
        a.result, a.reason, a.fix = "error", f"stager check printed no report: {e}: {raw.strip()[:300]}", ""
        return cmd_record(a)
    if doc.get("schema") != "swapover.check/1":
        a.result, a.reason, a.fix = "error", f"unknown check schema {doc.get('schema')!r} (stager too old or too new)", "use the stager this playbook was written for"
        return cmd_record(a)
    failed = [c for c in doc["report"]["checks"] if c.get("status") == "fail"]
    if doc["report"].get("may_proceed"):
        a.result, a.reason, a.fix = "ready", "all required checks passed", ""
    else:
        a.result = "refused"
        a.reason = "; ".join(f"{c['id']}: {c.get('found', '')} ({c.get('reason', '')})" for c in failed)
        a.fix = "; ".join(f"{c['id']}: {c['fix']}" for c in failed if c.get("fix"))
    a.extra = json.dumps({"failed_checks": [c["id"] for c in failed]})
    cmd_record(a)


def cmd_record_stage(a):
    raw = read_stdin()
    try:
        doc = parse_document(raw)
    except ValueError:
        doc = {"result": "unknown", "error": f"no stage document (timed out or lost): {raw.strip()[:300]}"}
    result = doc.get("result", "unknown")
    a.result = {"staged": "rebooting"}.get(result, result)
    a.reason = doc.get("error") or doc.get("not_now") or ("staged and armed; rebooting" if result == "staged" else "")
    a.fix = {
        "not_now": "the backup hook said not now: run the rollout again later",
        "refused": "see the reason; run the preflight again after fixing it",
        "failed": "staging was rolled back; see the reason and the stager log on the device",
    }.get(result, "")
    cmd_record(a)


# ---------------------------------------------------------------- watch
def cmd_watch(a):
    """Polls until the device is either back on the old OS (SSH answers with another boot id:
    its `stager status --json` says why), or online on resinOS 2.x in the API, or the time is
    up (unknown: never counted as success)."""
    started = time.monotonic()
    last_api = "not asked yet"
    while time.monotonic() - started < a.timeout:
        try:
            online, last_api = device_online(a, a.uuid)
            if online:
                return finish_watch(a, "migrated", f"online in the resin API ({last_api})", "", started)
        except Exception as e:  # the API stand-in may be restarting: keep polling
            last_api = f"API error: {e}"
        probe = f"cat /proc/sys/kernel/random/boot_id; {shlex.quote(a.stager)} --json status 2>/dev/null"
        try:
            out = subprocess.run(ssh_argv(a.ssh, probe), capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            out = None
        if out is not None and out.returncode == 0:
            text = out.stdout.decode(errors="replace").replace("\r", "")
            boot_id = text.split("\n", 1)[0].strip()
            if boot_id and boot_id != a.boot_id:
                try:
                    status = parse_document(text.split("\n", 1)[1])
                except (ValueError, IndexError):
                    status = {}
                return finish_watch(a, "came_back", why_back(status), FIX_CAME_BACK, started, status)
        time.sleep(a.interval)
    return finish_watch(a, "unknown", f"neither back on the old OS nor online in the API after {a.timeout}s (API: {last_api})",
                        "look at the device's console; it may be migrating still, or hung", started)


FIX_CAME_BACK = "the old OS is intact; read `stager status` on the device, fix the cause, run `stager abort`, then the rollout again"


def why_back(status):
    if not status:
        return "back on the old OS; stager status printed nothing readable"
    parts = [f"back on the old OS (armed={status.get('armed')})"]
    if status.get("journal_step") not in (None, "NotStarted"):
        parts.append(f"migration stopped at {status['journal_step']}")
    elif status.get("armed") == "Consumed":
        parts.append("the migration environment was booted but recorded nothing (it did not start)")
    tail = [l for l in (status.get("log_tail") or []) if l.strip()]
    if tail:
        parts.append("last log: " + tail[-1].strip())
    if status.get("staging_problem"):
        parts.append(status["staging_problem"])
    return "; ".join(parts)


def finish_watch(a, result, reason, fix, started, status=None):
    a.phase, a.result, a.reason, a.fix = "watch", result, reason, fix
    a.seconds = round(time.monotonic() - started, 1)
    a.uuid = a.uuid
    a.extra = json.dumps({"status": status} if status else {})
    cmd_record(a)
    return 0


# ---------------------------------------------------------------- report
COLUMNS = ["host", "uuid", "phase", "result", "reason", "fix", "preflight_s", "rollout_s", "watch_s", "first_seen", "last_change"]


def cmd_report(a):
    rows = []
    for name in sorted(os.listdir(a.state_dir)) if os.path.isdir(a.state_dir) else []:
        if not name.endswith(".json"):
            continue
        with open(os.path.join(a.state_dir, name)) as f:
            r = json.load(f)
        t = r.get("timings", {})
        seconds = lambda p: "" if t.get(p, {}).get("seconds") is None else str(t[p]["seconds"])
        last = max((v.get("at", "") for v in t.values()), default="")
        rows.append({
            "host": r.get("host", name[:-5]), "uuid": r.get("uuid", ""), "phase": r.get("phase", ""),
            "result": r.get("result", ""), "reason": r.get("reason", ""), "fix": r.get("fix", ""),
            "preflight_s": seconds("preflight"), "rollout_s": seconds("rollout"), "watch_s": seconds("watch"),
            "first_seen": r.get("first_seen", ""), "last_change": last,
        })
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "report.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["# swapover fleet report", "", f"Generated {now()}; {len(rows)} devices: "
             + ", ".join(f"{n} {res}" for res, n in sorted(count(rows).items())) + ".", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    with open(os.path.join(a.out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(json.dumps(count(rows)))


def count(rows):
    out = {}
    for r in rows:
        out[r["result"]] = out.get(r["result"], 0) + 1
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("push")
    s.add_argument("--ssh", required=True, help="the ssh command line that reaches the device")
    s.add_argument("--mode", default="0755")
    s.add_argument("src")
    s.add_argument("dest")

    def common(s, api=False):
        s.add_argument("--state-dir", required=True)
        s.add_argument("--host", required=True)
        if api:
            s.add_argument("--api", required=True)
            s.add_argument("--ca", default="")
            s.add_argument("--key-env", default="SWAPOVER_PROVISIONING_KEY")

    s = sub.add_parser("register")
    common(s, api=True)
    s.add_argument("--app-id", type=int, required=True)
    s.add_argument("--user-id", type=int, required=True)
    s.add_argument("--device-type", required=True)
    s.add_argument("--registry", default="registry2.resin.io")
    s.add_argument("--vpn", default="vpn.resin.io")
    s.add_argument("--device-api", default="", help="the API endpoint as the device reaches it (default: --api)")

    for name in ("record", "record-check", "record-stage"):
        s = sub.add_parser(name)
        common(s)
        s.add_argument("--phase", required=True)
        s.add_argument("--result", default="")
        s.add_argument("--reason", default="")
        s.add_argument("--fix", default="")
        s.add_argument("--seconds", type=float, default=None)
        s.add_argument("--uuid", default="")
        s.add_argument("--extra", default="")
        s.add_argument("--boot-id", default="", help="the boot before the reboot the rollout causes")

    s = sub.add_parser("watch")
    common(s, api=True)
    s.add_argument("--ssh", required=True)
    s.add_argument("--stager", required=True)
    s.add_argument("--uuid", required=True)
    s.add_argument("--boot-id", required=True)
    s.add_argument("--timeout", type=int, default=900)
    s.add_argument("--interval", type=int, default=5)

    s = sub.add_parser("report")
    s.add_argument("--state-dir", required=True)
    s.add_argument("--out-dir", required=True)

    a = p.parse_args()
    return {
        "push": cmd_push, "register": cmd_register, "record": cmd_record, "record-check": cmd_record_check,
        "record-stage": cmd_record_stage, "watch": cmd_watch, "report": cmd_report,
    }[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
