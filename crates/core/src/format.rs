//! Format versions of the files wayback keeps (plans, init specs, owners, phases, expiries, route files, the
//! journal's header, the records of failed starts), so that any release reads what an earlier one wrote —
//! a daemon upgraded under running instances adopts, serves, extends and tears them down — and refuses,
//! touching nothing, what a later one wrote.
//!
//! Every JSON file is written with `"format": N` at its top (a scalar is wrapped: `{"format": N, "value":
//! …}`); a file without it is format 0, the release before versions were recorded. Reading takes the JSON,
//! checks the version, applies the type's migrations one step at a time (pure functions of the JSON,
//! golden-tested), and only then deserializes. Pure.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// The format this release writes. Every earlier one is read through migrations.
pub const CURRENT: u32 = 1;

/// A file type wayback persists.
pub trait Persisted: Serialize + DeserializeOwned {
    /// What the file is, for messages ("plan", "route file").
    const KIND: &'static str;

    /// Bring the JSON of format `from` to format `from + 1`. The default: nothing changed in that step.
    fn migrate(from: u32, value: Value) -> Result<Value, String> {
        let _ = from;
        Ok(value)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("{file} is a {kind} in format {found}, written by a newer wayback; this one reads formats 0 to {CURRENT}: upgrade wayback (nothing was changed)")]
    Newer {
        file: String,
        kind: &'static str,
        found: u32,
    },
    #[error("{file} is not a valid {kind} (format {format}): {message}")]
    Invalid {
        file: String,
        kind: &'static str,
        format: u32,
        message: String,
    },
}

/// Unix times (`expires.json`, `activity.json`): unchanged since format 0.
impl Persisted for u64 {
    const KIND: &'static str = "timestamp";
}

/// The JSON to write for `value`: its own, with `"format": CURRENT` added (a non-object is wrapped).
pub fn encode<T: Persisted>(value: &T) -> Result<Value, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    Ok(stamp(v, CURRENT))
}

fn stamp(v: Value, format: u32) -> Value {
    match v {
        Value::Object(mut m) => {
            m.insert("format".into(), format.into());
            Value::Object(m)
        }
        other => {
            let mut m = Map::new();
            m.insert("format".into(), format.into());
            m.insert("value".into(), other);
            Value::Object(m)
        }
    }
}

/// The version of a file's JSON and its body without the version (a wrapped scalar unwrapped).
pub fn split(v: Value) -> (u32, Value) {
    let Value::Object(mut m) = v else {
        return (0, v);
    };
    let Some(format) = m.remove("format") else {
        return (0, Value::Object(m));
    };
    let format = format
        .as_u64()
        .map_or(u32::MAX, |f| u32::try_from(f).unwrap_or(u32::MAX));
    if m.len() == 1 {
        if let Some(inner) = m.remove("value") {
            return (format, inner);
        }
    }
    (format, Value::Object(m))
}

/// Read `v` (the JSON of `file`) as a `T`, migrating it from whatever earlier format it is in.
pub fn decode<T: Persisted>(v: Value, file: &Path) -> Result<T, FormatError> {
    let (found, mut body) = split(v);
    let file = file.display().to_string();
    if found > CURRENT {
        return Err(FormatError::Newer {
            file,
            kind: T::KIND,
            found,
        });
    }
    let invalid = |format, message| FormatError::Invalid {
        file: file.clone(),
        kind: T::KIND,
        format,
        message,
    };
    for from in found..CURRENT {
        body = T::migrate(from, body).map_err(|m| invalid(from, m))?;
    }
    serde_json::from_value(body).map_err(|e| invalid(found, e.to_string()))
}

/// The version of a journal's first line, if it is the header `{"format": N}` (format 0 journals have none).
pub fn journal_header(line: &str) -> Option<u32> {
    let v: Value = serde_json::from_str(line).ok()?;
    let m = v.as_object()?;
    (m.len() == 1)
        .then(|| m.get("format")?.as_u64())??
        .try_into()
        .ok()
}

/// The header line a journal starts with.
pub fn journal_header_line() -> String {
    format!("{{\"format\":{CURRENT}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Thing {
        a: u32,
        #[serde(default)]
        b: u32,
    }
    impl Persisted for Thing {
        const KIND: &'static str = "thing";
        fn migrate(from: u32, mut v: Value) -> Result<Value, String> {
            // Format 0 called `a` `old_a`.
            if from == 0 {
                let o = v.as_object_mut().ok_or("not an object")?;
                if let Some(x) = o.remove("old_a") {
                    o.insert("a".into(), x);
                }
            }
            Ok(v)
        }
    }

    #[test]
    fn round_trip_and_migration() {
        let v = encode(&Thing { a: 1, b: 2 }).unwrap();
        assert_eq!(v["format"], CURRENT);
        assert_eq!(
            decode::<Thing>(v, Path::new("t")).unwrap(),
            Thing { a: 1, b: 2 }
        );
        let old = serde_json::json!({"old_a": 7});
        assert_eq!(
            decode::<Thing>(old, Path::new("t")).unwrap(),
            Thing { a: 7, b: 0 }
        );
        let scalar = encode(&42u64).unwrap();
        assert_eq!(scalar, serde_json::json!({"format": CURRENT, "value": 42}));
        assert_eq!(decode::<u64>(scalar, Path::new("x")).unwrap(), 42);
        assert_eq!(
            decode::<u64>(serde_json::json!(5), Path::new("x")).unwrap(),
            5
        );
    }

    #[test]
    fn newer_formats_are_refused_naming_both() {
        let future = serde_json::json!({"format": CURRENT + 1, "a": 1});
        let e = decode::<Thing>(future, Path::new("/state/plan.json")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("/state/plan.json") && text.contains(&format!("format {}", CURRENT + 1)),
            "{text}"
        );
        assert!(text.contains(&format!("0 to {CURRENT}")), "{text}");
    }

    #[test]
    fn journal_headers() {
        assert_eq!(journal_header(&journal_header_line()), Some(CURRENT));
        assert_eq!(journal_header(r#"{"kind":"dir","path":"/x"}"#), None);
        assert_eq!(journal_header(r#"{"format":7}"#), Some(7));
    }
}
