//! The plan's file formats (see `crate::format`): a saved plan is read back by later releases — a daemon
//! upgraded under running instances relaunches, extends and tears them down from it.
//!
//! Format 0 (before versions were recorded) differs from 1 in the container: binds named the clone's path
//! on the host (now: a mount point in the instance directory, the data resolved inside the clone, and
//! `clone` saying where from), and there was no confinement (now: dropped capabilities, no new privileges,
//! masked host secrets). A format-0 plan gets the same, so a relaunch after an upgrade is as confined as a
//! new instance.

use serde_json::{json, Value};

use super::{InitSpec, Plan};
use crate::format::Persisted;
use crate::hostpaths::DEFAULT_MASKS;
use crate::nspawn::{BOOT_MODE_DROPPED, HOST_MODE_DROPPED};

impl Persisted for Plan {
    const KIND: &'static str = "plan";
    fn migrate(from: u32, value: Value) -> Result<Value, String> {
        match from {
            0 => plan_v0_to_v1(value),
            _ => Ok(value),
        }
    }
}

impl Persisted for InitSpec {
    const KIND: &'static str = "init spec";
}

fn plan_v0_to_v1(mut v: Value) -> Result<Value, String> {
    let clones: Vec<String> = std::iter::once(v["clone"].as_str().map(str::to_string))
        .chain(
            v["extra"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["clone"].as_str().map(str::to_string)),
        )
        .flatten()
        .collect();
    let c = v
        .get_mut("container")
        .and_then(Value::as_object_mut)
        .ok_or("no container")?;
    let instance_dir = c["spec_file"]
        .as_str()
        .and_then(|s| s.rsplit_once('/'))
        .map(|(d, _)| d.to_string())
        .ok_or("no spec_file")?;
    let boot = !c.get("boot_root").is_none_or(Value::is_null);
    for (i, b) in c
        .get_mut("binds")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .enumerate()
    {
        bind_v0_to_v1(b, i, &clones, &instance_dir)?;
    }
    let dropped = if boot {
        BOOT_MODE_DROPPED
    } else {
        HOST_MODE_DROPPED
    };
    c.insert("drop_capabilities".into(), json!(dropped));
    c.insert("no_new_privileges".into(), json!(!boot));
    let masks: Vec<&str> = if boot {
        Vec::new()
    } else {
        DEFAULT_MASKS
            .iter()
            .filter(|m| !m.contains('*'))
            .copied()
            .collect()
    };
    c.insert("inaccessible".into(), json!(masks));
    Ok(v)
}

/// A format-0 bind named the clone's path on the host: say which clone and where in it, and bind the
/// instance's own mount point instead.
fn bind_v0_to_v1(b: &mut Value, i: usize, clones: &[String], dir: &str) -> Result<(), String> {
    let o = b.as_object_mut().ok_or("a bind is not an object")?;
    if o.contains_key("clone") {
        return Ok(());
    }
    let source = o["source"]
        .as_str()
        .ok_or("a bind without source")?
        .to_string();
    let Some(root) = clones
        .iter()
        .filter(|c| source == **c || source.starts_with(&format!("{c}/")))
        .max_by_key(|c| c.len())
    else {
        return Ok(()); // not the clone's (a host file): kept as it is
    };
    let path = format!("/{}", source[root.len()..].trim_start_matches('/'));
    o.insert(
        "clone".into(),
        json!({"root": root, "path": path, "resolved": path}),
    );
    o.insert("source".into(), json!(format!("{dir}/binds/{i}")));
    Ok(())
}
