//! The staged plan: `Plan::from_json`, and for every plan it accepts,
//! `to_json_pretty` must parse back to an equal plan.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plan::Plan;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(plan) = Plan::from_json(text) else { return };
    let _ = plan.render_text();
    let written = plan.to_json_pretty().expect("an accepted plan must serialise");
    let reread = Plan::from_json(&written).expect("a written plan must read back");
    assert_eq!(reread, plan, "plan changed across to_json_pretty/from_json");
});
