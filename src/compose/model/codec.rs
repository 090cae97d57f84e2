//! Serde helpers shared by the model: lenient scalar reading (YAML trees carry `1024` where
//! compose-go wants `"1024"`), sorted map printing (Go prints maps sorted by key), extensions,
//! and the JSON/YAML output mode switch.

use std::cell::Cell;
use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_yaml::Value;

thread_local! {
    static YAML_MODE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current serialisation renders `docker compose config`'s YAML rather than its
/// JSON: the two differ (extensions, `command: null`, empty structs, top-level `models`).
pub(crate) fn yaml_mode() -> bool {
    YAML_MODE.with(Cell::get)
}

/// Runs `f` with YAML output mode on, restoring the previous mode afterwards (even on panic).
pub(crate) fn with_yaml_mode<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            YAML_MODE.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(YAML_MODE.with(|m| m.replace(true)));
    f()
}

/// `x-*` keys of an object. Unknown non-extension keys are dropped on read, as compose-go does.
/// Printed inline in YAML mode only: compose-go's JSON tags hide them (`json:"-"`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extensions(pub IndexMap<String, Value>);

impl Extensions {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

impl<'de> Deserialize<'de> for Extensions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Extensions;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Extensions, A::Error> {
                let mut out = IndexMap::new();
                while let Some(key) = map.next_key::<Value>()? {
                    let value: Value = map.next_value()?;
                    if let Value::String(k) = key {
                        if k.starts_with("x-") {
                            out.insert(k, value);
                        }
                    }
                }
                Ok(Extensions(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for Extensions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let show = yaml_mode();
        let mut map = s.serialize_map(None)?;
        if show {
            for (k, v) in &self.0 {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}

/// Go's `omitempty` does not omit structs in JSON, but its YAML encoder does omit zero structs.
pub(crate) fn yaml_skip_default<T: Default + PartialEq>(v: &T) -> bool {
    yaml_mode() && is_default(v)
}

/// `command`/`entrypoint` print `null` when unset in JSON; YAML omits them.
pub(crate) fn yaml_skip_none<T>(v: &Option<T>) -> bool {
    yaml_mode() && v.is_none()
}

/// Prints a map sorted by key, as Go's encoders print maps.
pub(crate) fn sorted<S: Serializer, V: Serialize>(
    m: &IndexMap<String, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut map = s.serialize_map(Some(entries.len()))?;
    for (k, v) in entries {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// A scalar rendered the way compose-go stringifies YAML scalars (`fmt.Sprint`).
fn scalar_string<E: de::Error>(v: Value) -> Result<Option<String>, E> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(crate::compose::yaml::number_text(&n))),
        Value::Tagged(t) => scalar_string(t.value),
        Value::Sequence(_) | Value::Mapping(_) => Err(E::custom("expected a scalar value")),
    }
}

/// A string field that may arrive as a number or bool.
pub(crate) fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(scalar_string(Value::deserialize(d)?)?.unwrap_or_default())
}

/// A list of strings whose items may be numbers; a single scalar is a one-item list.
pub(crate) fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => items
            .into_iter()
            .map(|v| scalar_string(v).map(Option::unwrap_or_default))
            .collect(),
        other => Ok(scalar_string(other)?.into_iter().collect()),
    }
}

/// A `string → string` mapping (labels, options, sysctls); `null` values become `""`.
/// The `KEY=VALUE` list form is accepted too.
pub(crate) fn de_str_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, String>, D::Error> {
    Ok(de_opt_str_map(d)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// A `string → string?` mapping (environment, build args) where `null` means "unset".
pub(crate) fn de_opt_str_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Option<String>>, D::Error> {
    let mut out = IndexMap::new();
    match Value::deserialize(d)? {
        Value::Null => {}
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = scalar_string(k)?.unwrap_or_default();
                out.insert(key, scalar_string(v)?);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                let item = scalar_string(item)?.unwrap_or_default();
                match item.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(item, None),
                };
            }
        }
        _ => {
            return Err(de::Error::custom(
                "expected a mapping or a list of KEY=VALUE",
            ))
        }
    }
    Ok(out)
}

/// A `string → [string]` mapping where a scalar value is a one-item list.
pub(crate) fn de_multi_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Vec<String>>, D::Error> {
    let mut out = IndexMap::new();
    match Value::deserialize(d)? {
        Value::Null => {}
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = scalar_string(k)?.unwrap_or_default();
                let values = match v {
                    Value::Sequence(items) => items
                        .into_iter()
                        .map(|i| scalar_string(i).map(Option::unwrap_or_default))
                        .collect::<Result<Vec<_>, _>>()?,
                    other => scalar_string(other)?.into_iter().collect(),
                };
                out.insert(key, values);
            }
        }
        _ => return Err(de::Error::custom("expected a mapping")),
    }
    Ok(out)
}

/// A map of named objects whose values may be `null` (`volumes: {data: }`), meaning defaults.
pub(crate) fn de_map_default<'de, D, T>(d: D) -> Result<IndexMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let m: Option<IndexMap<String, Option<T>>> = Deserialize::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// A list or `null` (an empty list).
pub(crate) fn de_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A command: a list of strings or `null` (unset). Shell-syntax strings must have been split by
/// the loader (canonical form); guessing a split here would silently change the command.
pub(crate) fn de_command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a command (list of strings) or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<Value>()? {
                out.push(scalar_string(v)?.unwrap_or_default());
            }
            Ok(Some(out))
        }
    }
    d.deserialize_any(V)
}

/// Tells serde's `default` that a boolean is true unless stated.
pub(crate) fn yes() -> bool {
    true
}
