//! Validation of a compose YAML tree with the rules of the compose-spec JSON schema.
//!
//! The spec's objects are described below in Rust (known keys, value kinds, enums, patterns,
//! required keys, `oneOf` short/long forms, `^x-` extensions) and one walker checks a tree
//! against them. Errors are worded like docker compose's (`services.web.ports must be a array`).
//!
//! Like docker compose, when a tree has several problems the one at the deepest path is
//! reported; among equally deep ones docker compose picks at random, we pick the first in
//! document order. For a `oneOf` that no branch satisfies, the errors of every branch compete
//! the same way, which is why `depends_on: {db: 5}` reports `depends_on.db must be a mapping`
//! rather than `depends_on must be a array`.

use std::fmt;
use std::sync::OnceLock;

use serde_yaml::Value;

use super::path::{Seg, TreePath};

/// A value that breaks one of the schema's rules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SchemaError {
    /// The offending value (for unknown keys: the mapping that holds them).
    pub path: TreePath,
    pub kind: SchemaErrorKind,
}

/// Which rule was broken.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaErrorKind {
    /// The value has none of the allowed kinds.
    Type {
        expected: Vec<Kind>,
    },
    /// A string outside the allowed set.
    Enum {
        allowed: Vec<&'static str>,
    },
    /// A string that does not match the spec's pattern.
    Pattern {
        value: String,
        pattern: &'static str,
    },
    Minimum {
        limit: i64,
    },
    Maximum {
        limit: i64,
    },
    /// Mandatory keys absent from a mapping.
    Required {
        missing: Vec<&'static str>,
    },
    /// Keys the spec does not know at this place (in document order), each with the known key
    /// it is probably a typo of, if one is close.
    AdditionalProperties {
        keys: Vec<String>,
        suggestions: Vec<Option<&'static str>>,
    },
    /// Two equal items in a list the spec declares unique (strict mode only).
    Duplicate {
        first: usize,
        second: usize,
    },
}

/// The value kinds of JSON schema, as the compose-spec uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    // Declared in the alphabetical order of the schema names: messages list kinds sorted.
    Array,
    Boolean,
    Integer,
    Null,
    Number,
    Object,
    String,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Array => "array",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
            Kind::Null => "null",
            Kind::Number => "number",
            Kind::Object => "mapping",
            Kind::String => "string",
        }
    }
}

impl SchemaError {
    /// Where the problem sits, down to the key: for unknown keys the first such key, so the
    /// loader can point at its line and column.
    pub fn location(&self) -> TreePath {
        match &self.kind {
            SchemaErrorKind::AdditionalProperties { keys, .. } if !keys.is_empty() => {
                self.path.key(keys[0].clone())
            }
            SchemaErrorKind::Duplicate { second, .. } => self.path.index(*second),
            _ => self.path.clone(),
        }
    }

    /// How deep the problem sits. Unknown keys count one level below the mapping holding them,
    /// as docker compose counts them.
    fn specificity(&self) -> usize {
        let depth = self.path.segments().len();
        match self.kind {
            SchemaErrorKind::AdditionalProperties { .. } => depth + 1,
            _ => depth,
        }
    }

    /// The path as docker compose prints it: sequence indices as plain segments
    /// (`services.web.ports.0`).
    pub fn docker_path(&self) -> String {
        docker_path(&self.path)
    }

    fn describe(&self) -> String {
        let path = self.docker_path();
        if path.is_empty() {
            self.kind.to_string()
        } else {
            format!("{path} {}", self.kind)
        }
    }
}

impl fmt::Display for SchemaErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaErrorKind::Type { expected } => {
                let mut names: Vec<&str> = expected.iter().map(|k| k.name()).collect();
                names.sort_unstable();
                names.dedup();
                let text = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} or {last}", rest.join(", "))
                    }
                    Some((last, _)) => (*last).to_string(),
                    None => "value".to_string(),
                };
                write!(f, "must be a {text}")
            }
            SchemaErrorKind::Enum { allowed } => match allowed.as_slice() {
                [only] => write!(f, "value must be '{only}'"),
                _ => write!(f, "value must be one of {}", quoted(allowed.iter())),
            },
            SchemaErrorKind::Pattern { value, pattern } => {
                write!(f, "'{value}' does not match pattern '{pattern}'")
            }
            SchemaErrorKind::Minimum { limit } => {
                write!(f, "must be greater than or equal to {limit}")
            }
            SchemaErrorKind::Maximum { limit } => {
                write!(f, "must be less than or equal to {limit}")
            }
            SchemaErrorKind::Required { missing } => {
                let noun = if missing.len() == 1 {
                    "property"
                } else {
                    "properties"
                };
                write!(f, "missing {noun} {}", quoted(missing.iter()))
            }
            SchemaErrorKind::AdditionalProperties { keys, suggestions } => {
                write!(
                    f,
                    "additional properties {} not allowed",
                    quoted(keys.iter())
                )?;
                let hints: Vec<(&String, &str)> = keys
                    .iter()
                    .zip(suggestions)
                    .filter_map(|(k, s)| Some((k, (*s)?)))
                    .collect();
                match hints.as_slice() {
                    [] => Ok(()),
                    [(_, only)] if keys.len() == 1 => write!(f, " (did you mean `{only}`?)"),
                    _ => {
                        let each: Vec<String> = hints
                            .iter()
                            .map(|(k, s)| format!("`{s}` for '{k}'"))
                            .collect();
                        write!(f, " (did you mean {}?)", each.join(", "))
                    }
                }
            }
            SchemaErrorKind::Duplicate { first, second } => {
                write!(f, "items at index {first} and {second} are equal")
            }
        }
    }
}

/// The known key closest to `key` by edit distance, when it is close enough to be a typo: at
/// most one edit for short keys, two from six characters on (`comand` → `command`,
/// `enviroment` → `environment`, `port` → `ports`). Case is ignored (`Image` → `image`).
pub fn did_you_mean(key: &str, known: &[&'static str]) -> Option<&'static str> {
    let key = key.to_lowercase();
    let allowed = if key.chars().count() >= 6 { 2 } else { 1 };
    known
        .iter()
        .map(|k| (edit_distance(&key, k), *k))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters, with adjacent transpositions counting as one edit
/// (`imgae` → `image`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![(0..=b.len()).collect::<Vec<usize>>()];
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (rows[i - 1][j] + 1)
                .min(row[j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(rows[i - 2][j - 2] + 1);
            }
        }
        rows.push(row);
    }
    rows[a.len()][b.len()]
}

fn quoted<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    items
        .map(|s| format!("'{}'", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn docker_path(path: &TreePath) -> String {
    path.segments()
        .iter()
        .map(|seg| match seg {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Check a compose tree (one file as parsed, or the merged model) as docker compose does.
///
/// `uniqueItems` is not enforced: docker compose removes duplicate list entries before it
/// validates, so files with duplicates load fine there.
pub fn validate(root: &Value) -> Result<(), SchemaError> {
    run(root, false)
}

/// Like [`validate`], and also rejects duplicate items in lists the spec declares unique.
pub fn validate_strict(root: &Value) -> Result<(), SchemaError> {
    run(root, true)
}

fn run(root: &Value, unique_items: bool) -> Result<(), SchemaError> {
    let mut errors = Vec::new();
    let walker = Walker { unique_items };
    walker.check(spec(), root, &TreePath::root(), &mut errors);
    // The deepest problem is the most specific one; the first wins ties.
    let mut best: Option<SchemaError> = None;
    for e in errors {
        let deeper = match &best {
            Some(b) => e.specificity() > b.specificity(),
            None => true,
        };
        if deeper {
            best = Some(e);
        }
    }
    best.map_or(Ok(()), Err)
}

// ---------------------------------------------------------------------------------------------
// The schema model: one node per JSON schema object, with the keywords the compose-spec uses.

/// A key or string pattern of the spec, kept with its source text for messages.
#[derive(Clone, Copy)]
struct Pattern {
    text: &'static str,
    matches: fn(&str) -> bool,
}

#[derive(Clone, Default)]
struct Schema {
    /// Allowed kinds; empty means any.
    kinds: Vec<Kind>,
    enumeration: Vec<&'static str>,
    pattern: Option<Pattern>,
    minimum: Option<i64>,
    maximum: Option<i64>,
    properties: Vec<(&'static str, Schema)>,
    pattern_properties: Vec<(Pattern, Schema)>,
    /// `additionalProperties: false`.
    closed: bool,
    required: Vec<&'static str>,
    items: Option<Box<Schema>>,
    unique_items: bool,
    one_of: Vec<Schema>,
}

impl Schema {
    fn props(mut self, props: Vec<(&'static str, Schema)>) -> Self {
        self.properties = props;
        self
    }
    fn pattern_prop(mut self, pattern: Pattern, schema: Schema) -> Self {
        self.pattern_properties.push((pattern, schema));
        self
    }
    /// `additionalProperties: false`.
    fn closed(mut self) -> Self {
        self.closed = true;
        self
    }
    /// `additionalProperties: false` with `^x-` extension keys allowed.
    fn closed_ext(self) -> Self {
        self.closed().pattern_prop(X_EXT, any())
    }
    fn required(mut self, keys: &[&'static str]) -> Self {
        self.required = keys.to_vec();
        self
    }
    fn items(mut self, items: Schema) -> Self {
        self.items = Some(Box::new(items));
        self
    }
    fn unique(mut self) -> Self {
        self.unique_items = true;
        self
    }
    fn enumeration(mut self, values: &[&'static str]) -> Self {
        self.enumeration = values.to_vec();
        self
    }
    fn pattern(mut self, pattern: Pattern) -> Self {
        self.pattern = Some(pattern);
        self
    }
    fn range(mut self, min: Option<i64>, max: Option<i64>) -> Self {
        self.minimum = min;
        self.maximum = max;
        self
    }
}

fn any() -> Schema {
    Schema::default()
}
fn kinds(kinds: &[Kind]) -> Schema {
    Schema {
        kinds: kinds.to_vec(),
        ..Schema::default()
    }
}
fn string() -> Schema {
    kinds(&[Kind::String])
}
fn boolean() -> Schema {
    kinds(&[Kind::Boolean])
}
fn integer() -> Schema {
    kinds(&[Kind::Integer])
}
fn number() -> Schema {
    kinds(&[Kind::Number])
}
fn null() -> Schema {
    kinds(&[Kind::Null])
}
/// `["boolean", "string"]`: flags, which interpolation may leave as strings.
fn bool_or_string() -> Schema {
    kinds(&[Kind::Boolean, Kind::String])
}
fn number_or_string() -> Schema {
    kinds(&[Kind::Number, Kind::String])
}
fn integer_or_string() -> Schema {
    kinds(&[Kind::Integer, Kind::String])
}
fn object() -> Schema {
    kinds(&[Kind::Object])
}
fn array(items: Schema) -> Schema {
    kinds(&[Kind::Array]).items(items)
}
fn one_of(branches: Vec<Schema>) -> Schema {
    Schema {
        one_of: branches,
        ..Schema::default()
    }
}

// Patterns of the spec, hand-written (the spec's regexes are simple).

const X_EXT: Pattern = Pattern {
    text: "^x-",
    matches: |s| s.starts_with("x-"),
};
const NAME_KEY: Pattern = Pattern {
    text: "^[a-zA-Z0-9._-]+$",
    matches: |s| !s.is_empty() && s.bytes().all(is_name_byte),
};
/// `^.+$` and `.+`: Go's `.` does not match a newline.
const NON_EMPTY_ANCHORED: Pattern = Pattern {
    text: "^.+$",
    matches: |s| !s.is_empty() && !s.contains('\n'),
};
const NON_EMPTY: Pattern = Pattern {
    text: ".+",
    matches: |s| s.chars().any(|c| c != '\n'),
};
const LOWER_ALPHA: Pattern = Pattern {
    text: "^[a-z]+$",
    matches: |s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase()),
};
/// Unanchored: somewhere an alphanumeric followed by a name character.
const CONTAINER_NAME: Pattern = Pattern {
    text: "[a-zA-Z0-9][a-zA-Z0-9_.-]+",
    matches: |s| {
        s.as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_alphanumeric() && is_name_byte(w[1]))
    },
};
/// Unanchored alternation, so any value containing one of the words matches.
const PULL_POLICY: Pattern = Pattern {
    text: "always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+",
    matches: pull_policy_matches,
};

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn pull_policy_matches(s: &str) -> bool {
    const WORDS: [&str; 8] = [
        "always",
        "never",
        "build",
        "if_not_present",
        "missing",
        "refresh",
        "daily",
        "weekly",
    ];
    if WORDS.iter().any(|w| s.contains(w)) {
        return true;
    }
    // `every_` then at least one group of digits followed by a unit letter.
    s.match_indices("every_").any(|(i, m)| {
        let rest = &s.as_bytes()[i + m.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        digits > 0 && rest.get(digits).is_some_and(|b| b"wdhms".contains(b))
    })
}

// ---------------------------------------------------------------------------------------------
// The compose-spec, object by object (definitions first, the root last).

fn spec() -> &'static Schema {
    static SPEC: OnceLock<Schema> = OnceLock::new();
    SPEC.get_or_init(root)
}

fn root() -> Schema {
    let named = |def: Schema| object().pattern_prop(NAME_KEY, def);
    object()
        .props(vec![
            ("version", string()),
            ("name", string()),
            ("include", array(include())),
            ("services", named(service()).closed()),
            ("models", named(model())),
            ("networks", named(network())),
            ("volumes", named(volume()).closed()),
            ("secrets", named(secret()).closed()),
            ("configs", named(config()).closed()),
        ])
        .closed_ext()
}

fn list_of_strings() -> Schema {
    array(string()).unique()
}

fn string_or_list() -> Schema {
    one_of(vec![string(), list_of_strings()])
}

fn list_or_dict() -> Schema {
    let scalar = kinds(&[Kind::String, Kind::Number, Kind::Boolean, Kind::Null]);
    one_of(vec![
        object().pattern_prop(NON_EMPTY, scalar).closed(),
        array(string()).unique(),
    ])
}

fn command() -> Schema {
    one_of(vec![null(), string(), array(string())])
}

fn extra_hosts() -> Schema {
    one_of(vec![
        object()
            .pattern_prop(NON_EMPTY, one_of(vec![string(), array(string())]))
            .closed(),
        array(string()).unique(),
    ])
}

fn ulimits() -> Schema {
    let pair = object()
        .props(vec![
            ("hard", integer_or_string()),
            ("soft", integer_or_string()),
        ])
        .required(&["soft", "hard"])
        .closed_ext();
    object().pattern_prop(LOWER_ALPHA, one_of(vec![integer_or_string(), pair]))
}

fn service_config_or_secret() -> Schema {
    array(one_of(vec![
        string(),
        object()
            .props(vec![
                ("source", string()),
                ("target", string()),
                ("uid", string()),
                ("gid", string()),
                ("mode", number_or_string()),
            ])
            .closed_ext(),
    ]))
}

fn service_hook() -> Schema {
    object()
        .props(vec![
            ("command", command()),
            ("user", string()),
            ("privileged", bool_or_string()),
            ("working_dir", string()),
            ("environment", list_or_dict()),
        ])
        .closed_ext()
        .required(&["command"])
}

fn env_file() -> Schema {
    let long = object()
        .props(vec![
            ("path", string()),
            ("format", string()),
            ("required", bool_or_string()),
        ])
        .closed()
        .required(&["path"]);
    one_of(vec![string(), array(one_of(vec![string(), long]))])
}

fn label_file() -> Schema {
    one_of(vec![string(), array(string())])
}

fn blkio_limit() -> Schema {
    object()
        .props(vec![("path", string()), ("rate", integer_or_string())])
        .closed()
}

fn blkio_weight() -> Schema {
    object()
        .props(vec![("path", string()), ("weight", integer_or_string())])
        .closed()
}

fn build() -> Schema {
    let long = object()
        .props(vec![
            ("context", string()),
            ("dockerfile", string()),
            ("dockerfile_inline", string()),
            ("entitlements", array(string())),
            ("args", list_or_dict()),
            ("ssh", list_or_dict()),
            ("labels", list_or_dict()),
            ("cache_from", array(string())),
            ("cache_to", array(string())),
            ("no_cache", bool_or_string()),
            ("additional_contexts", list_or_dict()),
            ("network", string()),
            ("provenance", bool_or_string()),
            ("sbom", bool_or_string()),
            ("pull", bool_or_string()),
            ("target", string()),
            ("shm_size", integer_or_string()),
            ("extra_hosts", extra_hosts()),
            ("isolation", string()),
            ("privileged", bool_or_string()),
            ("secrets", service_config_or_secret()),
            ("tags", array(string())),
            ("ulimits", ulimits()),
            ("platforms", array(string())),
        ])
        .closed_ext();
    one_of(vec![string(), long])
}

fn blkio_config() -> Schema {
    object()
        .props(vec![
            ("device_read_bps", array(blkio_limit())),
            ("device_read_iops", array(blkio_limit())),
            ("device_write_bps", array(blkio_limit())),
            ("device_write_iops", array(blkio_limit())),
            ("weight", integer_or_string()),
            ("weight_device", array(blkio_weight())),
        ])
        .closed()
}

fn depends_on() -> Schema {
    let entry = object()
        .props(vec![
            ("restart", bool_or_string()),
            ("required", boolean()),
            (
                "condition",
                string().enumeration(&[
                    "service_started",
                    "service_healthy",
                    "service_completed_successfully",
                ]),
            ),
        ])
        .closed_ext()
        .required(&["condition"]);
    one_of(vec![
        list_of_strings(),
        object().pattern_prop(NAME_KEY, entry).closed(),
    ])
}

fn devices_mapping() -> Schema {
    array(one_of(vec![
        string(),
        object()
            .props(vec![
                ("source", string()),
                ("target", string()),
                ("permissions", string()),
            ])
            .required(&["source"])
            .closed_ext(),
    ]))
}

fn extends() -> Schema {
    one_of(vec![
        string(),
        object()
            .props(vec![("service", string()), ("file", string())])
            .required(&["service"])
            .closed(),
    ])
}

fn provider() -> Schema {
    let scalar = || kinds(&[Kind::String, Kind::Number, Kind::Boolean]);
    object()
        .props(vec![
            ("type", string()),
            (
                "options",
                object().pattern_prop(NON_EMPTY_ANCHORED, one_of(vec![scalar(), array(scalar())])),
            ),
        ])
        .required(&["type"])
        .closed_ext()
}

fn logging() -> Schema {
    object()
        .props(vec![
            ("driver", string()),
            (
                "options",
                object().pattern_prop(
                    NON_EMPTY_ANCHORED,
                    kinds(&[Kind::String, Kind::Number, Kind::Null]),
                ),
            ),
        ])
        .closed_ext()
}

fn driver_opts() -> Schema {
    object().pattern_prop(NON_EMPTY_ANCHORED, number_or_string())
}

fn service_models() -> Schema {
    let entry = object()
        .props(vec![("endpoint_var", string()), ("model_var", string())])
        .closed_ext();
    // Docker compose accepts `models: {m: }` (the canonical form of `models: [m]`).
    one_of(vec![
        list_of_strings(),
        object().pattern_prop(NAME_KEY, one_of(vec![entry, null()])),
    ])
}

fn service_networks() -> Schema {
    let entry = object()
        .props(vec![
            ("aliases", list_of_strings()),
            ("interface_name", string()),
            ("ipv4_address", string()),
            ("ipv6_address", string()),
            ("link_local_ips", list_of_strings()),
            ("mac_address", string()),
            ("driver_opts", driver_opts()),
            ("priority", number()),
            ("gw_priority", number()),
        ])
        .closed_ext();
    one_of(vec![
        list_of_strings(),
        object()
            .pattern_prop(NAME_KEY, one_of(vec![entry, null()]))
            .closed(),
    ])
}

fn ports() -> Schema {
    let long = object()
        .props(vec![
            ("name", string()),
            ("mode", string()),
            ("host_ip", string()),
            ("target", integer_or_string()),
            ("published", integer_or_string()),
            ("protocol", string()),
            ("app_protocol", string()),
        ])
        .closed_ext();
    array(one_of(vec![number(), string(), long])).unique()
}

fn service_volumes() -> Schema {
    let bind = object()
        .props(vec![
            ("propagation", string()),
            ("create_host_path", bool_or_string()),
            (
                "recursive",
                string().enumeration(&["enabled", "disabled", "writable", "readonly"]),
            ),
            ("selinux", string().enumeration(&["z", "Z"])),
        ])
        .closed_ext();
    let volume = object()
        .props(vec![
            ("labels", list_or_dict()),
            ("nocopy", bool_or_string()),
            ("subpath", string()),
        ])
        .closed_ext();
    let tmpfs = object()
        .props(vec![
            (
                "size",
                one_of(vec![integer().range(Some(0), None), string()]),
            ),
            ("mode", number_or_string()),
        ])
        .closed_ext();
    let image = object().props(vec![("subpath", string())]).closed_ext();
    let long = object()
        .required(&["type"])
        .props(vec![
            (
                "type",
                string().enumeration(&["bind", "volume", "tmpfs", "cluster", "npipe", "image"]),
            ),
            ("source", string()),
            ("target", string()),
            ("read_only", bool_or_string()),
            ("consistency", string()),
            ("bind", bind),
            ("volume", volume),
            ("tmpfs", tmpfs),
            ("image", image),
        ])
        .closed_ext();
    array(one_of(vec![string(), long])).unique()
}

fn healthcheck() -> Schema {
    object()
        .props(vec![
            ("disable", bool_or_string()),
            ("interval", string()),
            ("retries", number_or_string()),
            ("test", one_of(vec![string(), array(string())])),
            ("timeout", string()),
            ("start_period", string()),
            ("start_interval", string()),
        ])
        .closed_ext()
}

fn development() -> Schema {
    let watch = object()
        .required(&["path", "action"])
        .props(vec![
            ("ignore", string_or_list()),
            ("include", string_or_list()),
            ("path", string()),
            (
                "action",
                string().enumeration(&["rebuild", "sync", "restart", "sync+restart", "sync+exec"]),
            ),
            ("target", string()),
            ("exec", service_hook()),
            ("initial_sync", boolean()),
        ])
        .closed_ext();
    kinds(&[Kind::Object, Kind::Null])
        .props(vec![("watch", array(watch))])
        .closed_ext()
}

fn deployment() -> Schema {
    let update = || {
        object()
            .props(vec![
                ("parallelism", integer_or_string()),
                ("delay", string()),
                ("failure_action", string()),
                ("monitor", string()),
                ("max_failure_ratio", number_or_string()),
                (
                    "order",
                    string().enumeration(&["start-first", "stop-first"]),
                ),
            ])
            .closed_ext()
    };
    let limits = object()
        .props(vec![
            ("cpus", number_or_string()),
            ("memory", string()),
            ("pids", integer_or_string()),
        ])
        .closed_ext();
    let reservations = object()
        .props(vec![
            ("cpus", number_or_string()),
            ("memory", string()),
            ("generic_resources", generic_resources()),
            ("devices", devices()),
        ])
        .closed_ext();
    let resources = object()
        .props(vec![("limits", limits), ("reservations", reservations)])
        .closed_ext();
    let restart_policy = object()
        .props(vec![
            ("condition", string()),
            ("delay", string()),
            ("max_attempts", integer_or_string()),
            ("window", string()),
        ])
        .closed_ext();
    let preference = object().props(vec![("spread", string())]).closed_ext();
    let placement = object()
        .props(vec![
            ("constraints", array(string())),
            ("preferences", array(preference)),
            ("max_replicas_per_node", integer_or_string()),
        ])
        .closed_ext();
    kinds(&[Kind::Object, Kind::Null])
        .props(vec![
            ("mode", string()),
            ("endpoint_mode", string()),
            ("replicas", integer_or_string()),
            ("labels", list_or_dict()),
            ("rollback_config", update()),
            ("update_config", update()),
            ("resources", resources),
            ("restart_policy", restart_policy),
            ("placement", placement),
        ])
        .closed_ext()
}

fn generic_resources() -> Schema {
    let discrete = object()
        .props(vec![("kind", string()), ("value", number_or_string())])
        .closed_ext();
    array(
        object()
            .props(vec![("discrete_resource_spec", discrete)])
            .closed_ext(),
    )
}

fn device_request_props() -> Vec<(&'static str, Schema)> {
    vec![
        ("capabilities", list_of_strings()),
        ("count", integer_or_string()),
        ("device_ids", list_of_strings()),
        ("driver", string()),
        ("options", list_or_dict()),
    ]
}

fn devices() -> Schema {
    // The spec's oneOf here is satisfied by either key; docker compose accepts both together,
    // so it is checked as "at least one of".
    let mut device = object().props(device_request_props()).closed_ext();
    device.one_of = vec![
        any().required(&["capabilities"]),
        any().required(&["driver"]),
    ];
    array(device)
}

fn gpus() -> Schema {
    // The spec puts additionalProperties beside the array, where it has no effect: items are open.
    one_of(vec![
        string().enumeration(&["all"]),
        array(object().props(device_request_props())),
    ])
}

fn service() -> Schema {
    let credential_spec = object()
        .props(vec![
            ("config", string()),
            ("file", string()),
            ("registry", string()),
        ])
        .closed_ext();
    let unique_strings = || array(string()).unique();
    let unique_str_or_num = || array(kinds(&[Kind::String, Kind::Number])).unique();
    object()
        .props(vec![
            ("develop", development()),
            ("deploy", deployment()),
            ("annotations", list_or_dict()),
            ("attach", bool_or_string()),
            ("build", build()),
            ("blkio_config", blkio_config()),
            ("cap_add", unique_strings()),
            ("cap_drop", unique_strings()),
            ("cgroup", string().enumeration(&["host", "private"])),
            ("cgroup_parent", string()),
            ("command", command()),
            ("configs", service_config_or_secret()),
            ("container_name", string().pattern(CONTAINER_NAME)),
            (
                "cpu_count",
                one_of(vec![string(), integer().range(Some(0), None)]),
            ),
            (
                "cpu_percent",
                one_of(vec![string(), integer().range(Some(0), Some(100))]),
            ),
            ("cpu_shares", number_or_string()),
            ("cpu_quota", number_or_string()),
            ("cpu_period", number_or_string()),
            ("cpu_rt_period", number_or_string()),
            ("cpu_rt_runtime", number_or_string()),
            ("cpus", number_or_string()),
            ("cpuset", string()),
            ("credential_spec", credential_spec),
            ("depends_on", depends_on()),
            ("device_cgroup_rules", list_of_strings()),
            ("devices", devices_mapping()),
            ("dns", string_or_list()),
            ("dns_opt", unique_strings()),
            ("dns_search", string_or_list()),
            ("domainname", string()),
            ("entrypoint", command()),
            ("env_file", env_file()),
            ("label_file", label_file()),
            ("environment", list_or_dict()),
            ("expose", unique_str_or_num()),
            ("extends", extends()),
            ("provider", provider()),
            ("external_links", unique_strings()),
            ("extra_hosts", extra_hosts()),
            ("gpus", gpus()),
            ("group_add", unique_str_or_num()),
            ("healthcheck", healthcheck()),
            ("hostname", string()),
            ("image", string()),
            ("init", bool_or_string()),
            ("ipc", string()),
            ("isolation", string()),
            ("labels", list_or_dict()),
            ("links", unique_strings()),
            ("logging", logging()),
            ("mac_address", string()),
            ("mem_limit", number_or_string()),
            ("mem_reservation", integer_or_string()),
            ("mem_swappiness", integer_or_string()),
            ("memswap_limit", number_or_string()),
            ("network_mode", string()),
            ("models", service_models()),
            ("networks", service_networks()),
            ("oom_kill_disable", bool_or_string()),
            (
                "oom_score_adj",
                one_of(vec![string(), integer().range(Some(-1000), Some(1000))]),
            ),
            ("pid", kinds(&[Kind::String, Kind::Null])),
            ("pids_limit", number_or_string()),
            ("platform", string()),
            ("ports", ports()),
            ("post_start", array(service_hook())),
            ("pre_stop", array(service_hook())),
            ("privileged", bool_or_string()),
            ("profiles", list_of_strings()),
            ("pull_policy", string().pattern(PULL_POLICY)),
            ("pull_refresh_after", string()),
            ("read_only", bool_or_string()),
            ("restart", string()),
            ("runtime", string()),
            ("scale", integer_or_string()),
            ("security_opt", unique_strings()),
            ("shm_size", number_or_string()),
            ("secrets", service_config_or_secret()),
            ("sysctls", list_or_dict()),
            ("stdin_open", bool_or_string()),
            ("stop_grace_period", string()),
            ("stop_signal", string()),
            ("storage_opt", object()),
            ("tmpfs", string_or_list()),
            ("tty", bool_or_string()),
            ("ulimits", ulimits()),
            ("use_api_socket", boolean()),
            ("user", string()),
            ("uts", string()),
            ("userns_mode", string()),
            ("volumes", service_volumes()),
            ("volumes_from", unique_strings()),
            ("working_dir", string()),
        ])
        .closed_ext()
}

fn include() -> Schema {
    one_of(vec![
        string(),
        object()
            .props(vec![
                ("path", string_or_list()),
                ("env_file", string_or_list()),
                ("project_directory", string()),
            ])
            .closed(),
    ])
}

/// `external` of networks, volumes and configs: a flag, or the deprecated `{name: ...}` form.
fn external(closed: bool) -> Schema {
    let s = kinds(&[Kind::Boolean, Kind::String, Kind::Object]).props(vec![("name", string())]);
    if closed {
        s.closed_ext()
    } else {
        s
    }
}

fn network() -> Schema {
    let ipam_config = object()
        .props(vec![
            ("subnet", string()),
            ("ip_range", string()),
            ("gateway", string()),
            (
                "aux_addresses",
                object().pattern_prop(NON_EMPTY_ANCHORED, string()).closed(),
            ),
        ])
        .closed_ext();
    let ipam = object()
        .props(vec![
            ("driver", string()),
            ("config", array(ipam_config)),
            (
                "options",
                object().pattern_prop(NON_EMPTY_ANCHORED, string()).closed(),
            ),
        ])
        .closed_ext();
    kinds(&[Kind::Object, Kind::Null])
        .props(vec![
            ("name", string()),
            ("driver", string()),
            ("driver_opts", driver_opts()),
            ("ipam", ipam),
            ("external", external(true)),
            ("internal", bool_or_string()),
            ("enable_ipv4", bool_or_string()),
            ("enable_ipv6", bool_or_string()),
            ("attachable", bool_or_string()),
            ("labels", list_or_dict()),
        ])
        .closed_ext()
}

fn volume() -> Schema {
    kinds(&[Kind::Object, Kind::Null])
        .props(vec![
            ("name", string()),
            ("driver", string()),
            ("driver_opts", driver_opts()),
            ("external", external(true)),
            ("labels", list_or_dict()),
        ])
        .closed_ext()
}

fn secret() -> Schema {
    object()
        .props(vec![
            ("name", string()),
            ("environment", string()),
            ("file", string()),
            ("external", external(false)),
            ("labels", list_or_dict()),
            ("driver", string()),
            ("driver_opts", driver_opts()),
            ("template_driver", string()),
        ])
        .closed_ext()
}

fn config() -> Schema {
    object()
        .props(vec![
            ("name", string()),
            ("content", string()),
            ("environment", string()),
            ("file", string()),
            ("external", external(false)),
            ("labels", list_or_dict()),
            ("template_driver", string()),
        ])
        .closed_ext()
}

fn model() -> Schema {
    object()
        .props(vec![
            ("name", string()),
            ("model", string()),
            ("context_size", integer()),
            ("runtime_flags", array(string())),
        ])
        .required(&["model"])
        .closed_ext()
}

// ---------------------------------------------------------------------------------------------
// The walker.

struct Walker {
    unique_items: bool,
}

/// The kind of a YAML value; `Integer` for whole numbers (which are also numbers).
fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Boolean,
        Value::Number(n) => {
            let whole = n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0);
            if whole {
                Kind::Integer
            } else {
                Kind::Number
            }
        }
        Value::String(_) => Kind::String,
        Value::Sequence(_) => Kind::Array,
        Value::Mapping(_) => Kind::Object,
        Value::Tagged(t) => kind_of(&t.value),
    }
}

fn kind_allowed(actual: Kind, allowed: &[Kind]) -> bool {
    allowed.is_empty()
        || allowed.contains(&actual)
        || (actual == Kind::Integer && allowed.contains(&Kind::Number))
}

/// Mapping keys as the schema sees them: YAML scalars turned into their text.
fn key_text(k: &Value) -> Option<String> {
    match k {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".to_string()),
        _ => None,
    }
}

impl Walker {
    fn check(&self, s: &Schema, v: &Value, path: &TreePath, errs: &mut Vec<SchemaError>) {
        let v = match v {
            // `!reset` removes what it tags before merging, whatever its content.
            Value::Tagged(t) if t.tag == "!reset" => return,
            Value::Tagged(t) => &t.value,
            other => other,
        };
        let err = |kind| SchemaError {
            path: path.clone(),
            kind,
        };
        let kind = kind_of(v);
        if !kind_allowed(kind, &s.kinds) {
            errs.push(err(SchemaErrorKind::Type {
                expected: s.kinds.clone(),
            }));
            return;
        }
        if !s.enumeration.is_empty() && !v.as_str().is_some_and(|x| s.enumeration.contains(&x)) {
            errs.push(err(SchemaErrorKind::Enum {
                allowed: s.enumeration.clone(),
            }));
        }
        if let (Some(p), Some(text)) = (s.pattern, v.as_str()) {
            if !(p.matches)(text) {
                errs.push(err(SchemaErrorKind::Pattern {
                    value: text.to_string(),
                    pattern: p.text,
                }));
            }
        }
        if let Some(n) = v.as_f64() {
            if let Some(min) = s.minimum.filter(|m| n < *m as f64) {
                errs.push(err(SchemaErrorKind::Minimum { limit: min }));
            }
            if let Some(max) = s.maximum.filter(|m| n > *m as f64) {
                errs.push(err(SchemaErrorKind::Maximum { limit: max }));
            }
        }
        match v {
            Value::Mapping(m) => self.check_mapping(s, m, path, errs),
            Value::Sequence(items) => self.check_sequence(s, items, path, errs),
            _ => {}
        }
        if !s.one_of.is_empty() {
            let mut branch_errors = Vec::new();
            for branch in &s.one_of {
                let before = branch_errors.len();
                self.check(branch, v, path, &mut branch_errors);
                if branch_errors.len() == before {
                    // One satisfied branch is enough (docker compose does not reject a value
                    // that satisfies several).
                    return;
                }
            }
            errs.extend(branch_errors);
        }
    }

    fn check_mapping(
        &self,
        s: &Schema,
        m: &serde_yaml::Mapping,
        path: &TreePath,
        errs: &mut Vec<SchemaError>,
    ) {
        let missing: Vec<&'static str> = s
            .required
            .iter()
            .copied()
            .filter(|r| !m.contains_key(*r))
            .collect();
        if !missing.is_empty() {
            errs.push(SchemaError {
                path: path.clone(),
                kind: SchemaErrorKind::Required { missing },
            });
        }
        let mut unknown = Vec::new();
        for (k, value) in m {
            let Some(key) = key_text(k) else {
                // Non-scalar keys cannot be named by the schema; compose rejects them earlier.
                continue;
            };
            let child = path.key(key.clone());
            let mut known = false;
            if let Some((_, ps)) = s.properties.iter().find(|(name, _)| *name == key) {
                known = true;
                self.check(ps, value, &child, errs);
            }
            for (pattern, ps) in &s.pattern_properties {
                if (pattern.matches)(&key) {
                    known = true;
                    self.check(ps, value, &child, errs);
                }
            }
            if !known && s.closed {
                unknown.push(key);
            }
        }
        if !unknown.is_empty() {
            let known: Vec<&'static str> = s.properties.iter().map(|(name, _)| *name).collect();
            let suggestions = unknown.iter().map(|k| did_you_mean(k, &known)).collect();
            errs.push(SchemaError {
                path: path.clone(),
                kind: SchemaErrorKind::AdditionalProperties {
                    keys: unknown,
                    suggestions,
                },
            });
        }
    }

    fn check_sequence(
        &self,
        s: &Schema,
        items: &[Value],
        path: &TreePath,
        errs: &mut Vec<SchemaError>,
    ) {
        if let Some(item_schema) = &s.items {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &path.index(i), errs);
            }
        }
        if s.unique_items && self.unique_items {
            for (j, b) in items.iter().enumerate() {
                if let Some(i) = items[..j].iter().position(|a| a == b) {
                    errs.push(SchemaError {
                        path: path.clone(),
                        kind: SchemaErrorKind::Duplicate {
                            first: i,
                            second: j,
                        },
                    });
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Value {
        let mut v: Value = serde_yaml::from_str(yaml).expect("test yaml parses");
        v.apply_merge().expect("merge keys apply");
        v
    }

    /// The error message for a service body, as docker compose prints it.
    fn service_err(body: &str) -> String {
        let yaml = format!("services:\n  web:\n    image: x\n{body}\n");
        match validate(&parse(&yaml)) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        }
    }

    fn err(yaml: &str) -> String {
        match validate(&parse(yaml)) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_a_typical_file() {
        let yaml = r#"
name: demo
x-common: &common
  restart: unless-stopped
services:
  web:
    <<: *common
    image: nginx:1.27
    build: {context: ., args: [A=1], x-note: hi}
    ports: ["8080:80", 443, {target: 80, published: "8081", protocol: tcp}]
    environment: {A: 1, B: null, C: true, D: text}
    depends_on:
      db: {condition: service_healthy, restart: true}
    volumes: [data:/data, {type: bind, source: ., target: /src, bind: {selinux: z}}]
    healthcheck: {test: [CMD, "true"], interval: 5s, retries: 3}
    deploy: {resources: {limits: {cpus: 0.5, memory: 50M}}}
    ulimits: {nofile: {soft: 1, hard: 2}, nproc: 65535}
    networks: {front: {aliases: [a]}, back: null}
    x-custom: [1, 2]
  db:
    image: postgres
    command: null
networks: {front: {}, back: null}
volumes: {data: null}
secrets: {s: {file: ./s.txt}}
configs: {c: {content: hello}}
"#;
        assert_eq!(validate(&parse(yaml)), Ok(()));
    }

    /// Every key the spec knows, with a valid value; docker compose v2.40.3 validates it.
    const KITCHEN_SINK: &str = r#"
version: "3.9"
name: kitchen
include:
  - other.yaml
  - {path: [other.yaml], env_file: .env, project_directory: .}
x-top: 1
services:
  all:
    develop:
      watch:
        - {path: ., action: sync+exec, target: /app, ignore: [a], include: b, initial_sync: true, exec: {command: [ls], user: root, privileged: false, working_dir: /, environment: {A: 1}}, x-w: 1}
    deploy:
      mode: replicated
      endpoint_mode: vip
      replicas: 2
      labels: [a=b]
      rollback_config: {parallelism: 1, delay: 1s, failure_action: pause, monitor: 1s, max_failure_ratio: 0.1, order: start-first}
      update_config: {parallelism: "1", delay: 1s, failure_action: rollback, monitor: 1s, max_failure_ratio: "0", order: stop-first}
      resources:
        limits: {cpus: 0.5, memory: 50M, pids: 10}
        reservations:
          cpus: "0.1"
          memory: 10M
          generic_resources: [{discrete_resource_spec: {kind: gpu, value: 1}}]
          devices: [{capabilities: [gpu], count: all, device_ids: ["0"], driver: nvidia, options: {a: b}}]
      restart_policy: {condition: on-failure, delay: 1s, max_attempts: 3, window: 1m}
      placement: {constraints: [a==b], preferences: [{spread: x}], max_replicas_per_node: 1}
    annotations: {a: b}
    attach: false
    build:
      context: .
      dockerfile: Dockerfile
      entitlements: [network.host]
      args: {A: 1}
      ssh: [default]
      labels: [a=b]
      cache_from: [a]
      cache_to: [b]
      no_cache: true
      additional_contexts: {x: .}
      network: host
      provenance: true
      sbom: "true"
      pull: true
      target: t
      shm_size: 1g
      extra_hosts: ["a:1.1.1.1"]
      isolation: default
      privileged: true
      secrets: [s]
      tags: [t]
      ulimits: {nofile: 1}
      platforms: [linux/amd64]
    blkio_config:
      device_read_bps: [{path: /dev/sda, rate: 1}]
      device_read_iops: [{path: /dev/sda, rate: "1"}]
      device_write_bps: [{path: /dev/sda, rate: 1}]
      device_write_iops: [{path: /dev/sda, rate: 1}]
      weight: 10
      weight_device: [{path: /dev/sda, weight: 10}]
    cap_add: [ALL]
    cap_drop: [NET_ADMIN]
    cgroup: host
    cgroup_parent: p
    command: [a, b]
    configs: [c, {source: c, target: /c, uid: "0", gid: "0", mode: 0444}]
    container_name: kitchen_all
    cpu_count: 1
    cpu_percent: 10
    cpu_shares: 1
    cpu_quota: 1
    cpu_period: 1
    cpu_rt_period: 1
    cpu_rt_runtime: 1
    cpus: 1.5
    cpuset: "0"
    credential_spec: {config: c}
    depends_on: {other: {condition: service_started, required: false, restart: true}}
    device_cgroup_rules: ["c 1:3 mr"]
    devices: ["/dev/null:/dev/null", {source: /dev/zero, target: /dev/zero, permissions: rwm}]
    dns: 8.8.8.8
    dns_opt: [a]
    dns_search: [a]
    domainname: d
    entrypoint: sh
    env_file: [{path: .env, required: false, format: raw}]
    environment: [A=1]
    expose: [80, "81"]
    external_links: [a]
    extra_hosts: {a: 1.1.1.1, b: [2.2.2.2]}
    gpus: [{driver: nvidia, count: 1}]
    group_add: [1, a]
    healthcheck: {disable: false, interval: 1s, retries: 1, test: "true", timeout: 1s, start_period: 1s, start_interval: 1s}
    hostname: h
    image: alpine
    init: true
    ipc: shareable
    isolation: default
    labels: {a: b}
    links: [other]
    logging: {driver: json-file, options: {max-size: 1m, n: 1, z: null}}
    mac_address: 02:42:ac:11:00:02
    mem_limit: 1g
    mem_reservation: 1m
    mem_swappiness: 1
    memswap_limit: 2g
    network_mode: bridge
    models: {m: {endpoint_var: E, model_var: M}}
    oom_kill_disable: true
    oom_score_adj: 1
    pid: host
    pids_limit: 1
    platform: linux/amd64
    ports: [80, "81:81", {name: p, mode: host, host_ip: 0.0.0.0, target: 82, published: "82", protocol: tcp, app_protocol: http}]
    post_start: [{command: ls}]
    pre_stop: [{command: ls}]
    privileged: false
    profiles: [p]
    pull_policy: missing
    pull_refresh_after: 1h
    read_only: false
    restart: "no"
    runtime: runc
    scale: 1
    security_opt: [a]
    shm_size: 1m
    secrets: [s]
    sysctls: {a: 1}
    stdin_open: true
    stop_grace_period: 1s
    stop_signal: SIGTERM
    storage_opt: {size: 1G}
    tmpfs: /tmp
    tty: true
    ulimits: {nofile: {soft: 1, hard: 2}}
    use_api_socket: false
    user: root
    uts: host
    userns_mode: host
    volumes:
      - ./a:/a
      - {type: bind, source: ., target: /b, read_only: true, consistency: cached, bind: {propagation: rprivate, create_host_path: true, recursive: enabled, selinux: Z}}
      - {type: volume, source: v, target: /c, volume: {labels: {a: b}, nocopy: true, subpath: s}}
      - {type: tmpfs, target: /d, tmpfs: {size: 1, mode: 0755}}
      - {type: image, source: alpine, target: /e, image: {subpath: s}}
    volumes_from: [other]
    working_dir: /
    label_file: ./labels
    provider: {type: p, options: {a: [1, b], c: true}}
    x-ext: 1
  other:
    image: alpine
    extends: {service: all, file: kitchen.yaml}
    networks:
      n: {aliases: [a], interface_name: eth1, ipv4_address: 10.0.0.2, ipv6_address: "::2", link_local_ips: [a], mac_address: m, driver_opts: {a: 1}, priority: 1, gw_priority: 1}
models: {m: {name: n, model: ai/x, context_size: 1, runtime_flags: [a]}}
networks:
  n:
    name: n
    driver: bridge
    driver_opts: {a: 1}
    ipam: {driver: default, config: [{subnet: 10.0.0.0/24, ip_range: 10.0.0.0/25, gateway: 10.0.0.1, aux_addresses: {a: 10.0.0.3}}], options: {a: b}}
    external: false
    internal: false
    enable_ipv4: true
    enable_ipv6: false
    attachable: true
    labels: [a=b]
  e: {external: {name: x}}
volumes:
  v: {name: v, driver: local, driver_opts: {a: 1}, external: false, labels: {a: b}}
secrets:
  s: {name: s, environment: E, file: ./s, external: false, labels: {a: b}, driver: d, driver_opts: {a: 1}, template_driver: t}
configs:
  c: {name: c, content: x, environment: E, file: ./c, external: false, labels: {a: b}, template_driver: t}
"#;

    #[test]
    fn accepts_every_known_key() {
        assert_eq!(validate(&parse(KITCHEN_SINK)), Ok(()));
    }

    #[test]
    fn unknown_keys_suggest_a_close_known_key_at_any_level() {
        let msg = |src: &str| validate(&parse(src)).expect_err(src).to_string();
        assert_eq!(
            msg("services:\n  app:\n    image: x\n    comand: y\n"),
            "services.app additional properties 'comand' not allowed (did you mean `command`?)"
        );
        assert!(msg("service:\n  a: {image: x}\n").ends_with("(did you mean `services`?)"));
        assert!(msg("services:\n  a: {image: x, deploy: {resurces: {}}}\n")
            .ends_with("(did you mean `resources`?)"));
        assert!(msg("services:\n  a: {image: x, ports: [{targt: 80}]}\n")
            .ends_with("(did you mean `target`?)"));
        assert!(
            msg("services:\n  a: {image: x, healthcheck: {intervl: 1s}}\n")
                .ends_with("(did you mean `interval`?)")
        );
        assert!(msg("networks:\n  n: {drivr: x}\n").ends_with("(did you mean `driver`?)"));
        let two = msg("services:\n  a: {image: x, imgae: y, enviroment: {}}\n");
        assert!(
            two.ends_with("(did you mean `image` for 'imgae', `environment` for 'enviroment'?)"),
            "{two}"
        );
        // Nothing close: no guess.
        assert!(!msg("services:\n  a: {image: x, wrongField: 1}\n").contains("did you mean"));
        assert_eq!(did_you_mean("Image", &["image", "init"]), Some("image"));
        assert_eq!(did_you_mean("xyz", &["image", "init"]), None);
    }

    #[test]
    fn unknown_keys_name_the_holder_and_point_at_the_key() {
        let e = validate(&parse(
            "services:\n  simple:\n    image: x\n    wrongField: 1\n",
        ))
        .expect_err("unknown key rejected");
        assert_eq!(
            e.to_string(),
            "services.simple additional properties 'wrongField' not allowed"
        );
        assert_eq!(e.location(), TreePath::parse("services.simple.wrongField"));
        assert_eq!(
            err("foo: 1\nbar: 2\n"),
            "additional properties 'foo', 'bar' not allowed"
        );
        assert_eq!(
            err("services:\n  'a b': {image: x}\n"),
            "services additional properties 'a b' not allowed"
        );
        assert_eq!(
            service_err("    ports: [{target: 80, foo: 1}]"),
            "services.web.ports.0 additional properties 'foo' not allowed"
        );
    }

    #[test]
    fn extensions_are_allowed_only_where_the_spec_says() {
        assert_eq!(err("services: {}\nx-anything: [1]\n"), "ok");
        assert_eq!(service_err("    x-foo: 1"), "ok");
        assert_eq!(service_err("    healthcheck: {x-foo: 1}"), "ok");
        // `extends` (long form) takes no extensions in the spec.
        assert_eq!(
            service_err("    extends: {service: a, x-foo: 1}"),
            "services.web.extends additional properties 'x-foo' not allowed"
        );
        // Under `services`, `x-web` is simply a service name (it matches the name pattern).
        assert_eq!(err("services:\n  x-web: {image: x}\n"), "ok");
    }

    #[test]
    fn wrong_kinds_use_docker_wording() {
        assert_eq!(
            service_err("    ports: 80"),
            "services.web.ports must be a array"
        );
        assert_eq!(
            service_err("    restart: 5"),
            "services.web.restart must be a string"
        );
        assert_eq!(
            service_err("    attach: 5"),
            "services.web.attach must be a boolean or string"
        );
        assert_eq!(
            service_err("    pid: 5"),
            "services.web.pid must be a null or string"
        );
        assert_eq!(
            service_err("    scale: 1.5"),
            "services.web.scale must be a integer or string"
        );
        assert_eq!(
            service_err("    environment: {A: [1]}"),
            "services.web.environment.A must be a boolean, null, number or string"
        );
        assert_eq!(
            service_err("    healthcheck:"),
            "services.web.healthcheck must be a mapping"
        );
        assert_eq!(
            err("services: {}\nvolumes: {s: {external: 5}}\n"),
            "volumes.s.external must be a boolean, mapping or string"
        );
        assert_eq!(err("services:\n  nil:\n"), "services.nil must be a mapping");
        assert_eq!(
            err("services: {}\nversion: 3\n"),
            "version must be a string"
        );
    }

    #[test]
    fn numbers_accept_whole_floats_as_integers() {
        assert_eq!(service_err("    cpu_count: 2.0"), "ok");
        assert_eq!(service_err("    mem_reservation: 1024"), "ok");
        assert_eq!(service_err("    cpus: 1.5"), "ok");
        assert_eq!(
            service_err("    networks: {n: {priority: x}}"),
            "services.web.networks.n.priority must be a number"
        );
    }

    #[test]
    fn interpolation_friendly_fields_take_strings() {
        assert_eq!(service_err("    cpu_count: '${N}'"), "ok");
        assert_eq!(service_err("    privileged: 'true'"), "ok");
        assert_eq!(service_err("    ports: [{target: '${P}'}]"), "ok");
    }

    #[test]
    fn enums_list_the_allowed_values() {
        assert_eq!(
            service_err("    depends_on: {db: {condition: bogus}}"),
            "services.web.depends_on.db.condition value must be one of 'service_started', \
             'service_healthy', 'service_completed_successfully'"
        );
        assert_eq!(
            service_err("    volumes: [{type: foo, target: /x}]"),
            "services.web.volumes.0.type value must be one of 'bind', 'volume', 'tmpfs', \
             'cluster', 'npipe', 'image'"
        );
        assert_eq!(
            service_err("    cgroup: shared"),
            "services.web.cgroup value must be one of 'host', 'private'"
        );
    }

    #[test]
    fn patterns_are_unanchored_where_the_spec_is() {
        assert_eq!(
            service_err("    pull_policy: sometimes"),
            "services.web.pull_policy 'sometimes' does not match pattern \
             'always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+'"
        );
        assert_eq!(service_err("    pull_policy: every_12h"), "ok");
        assert_eq!(service_err("    pull_policy: missing"), "ok");
        assert_eq!(
            service_err("    pull_policy: every_h"),
            "services.web.pull_policy 'every_h' does not match pattern \
             'always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+'"
        );
        assert_eq!(
            service_err("    container_name: ''"),
            "services.web.container_name '' does not match pattern '[a-zA-Z0-9][a-zA-Z0-9_.-]+'"
        );
        assert_eq!(service_err("    container_name: /my_app-1"), "ok");
        // ulimits keys outside `^[a-z]+$` are not checked at all (no additionalProperties).
        assert_eq!(service_err("    ulimits: {NOFILE: [1]}"), "ok");
    }

    #[test]
    fn required_keys() {
        assert_eq!(
            service_err("    depends_on: {db: {required: true}}"),
            "services.web.depends_on.db missing property 'condition'"
        );
        assert_eq!(
            service_err("    develop: {watch: [{}]}"),
            "services.web.develop.watch.0 missing properties 'path', 'action'"
        );
        assert_eq!(
            service_err("    deploy: {resources: {reservations: {devices: [{count: 1}]}}}"),
            "services.web.deploy.resources.reservations.devices.0 missing property 'capabilities'"
        );
        assert_eq!(
            service_err(
                "    deploy: {resources: {reservations: {devices: [{capabilities: [gpu], driver: n}]}}}"
            ),
            "ok"
        );
        assert_eq!(
            service_err("    models: {m: }\nmodels: {m: {model: ai/x}}"),
            "ok"
        );
        assert_eq!(
            service_err("    models: {m: 5}"),
            "services.web.models.m must be a mapping"
        );
        assert_eq!(
            err("services: {}\nmodels: {m: {context_size: 1}}\n"),
            "models.m missing property 'model'"
        );
    }

    #[test]
    fn one_of_reports_the_deepest_branch_error_or_the_first_branch() {
        // Same depth: the first branch's complaint.
        assert_eq!(
            service_err("    command: 5"),
            "services.web.command must be a null"
        );
        assert_eq!(
            service_err("    ports: [true]"),
            "services.web.ports.0 must be a number"
        );
        assert_eq!(
            service_err("    volumes: [{target: /x}]"),
            "services.web.volumes.0 must be a string"
        );
        assert_eq!(
            service_err("    cpu_count: -1"),
            "services.web.cpu_count must be a string"
        );
        assert_eq!(
            service_err("    ulimits: {nofile: {soft: 1}}"),
            "services.web.ulimits.nofile must be a integer or string"
        );
        // A deeper complaint from a later branch wins.
        assert_eq!(
            service_err("    depends_on: {db: 5}"),
            "services.web.depends_on.db must be a mapping"
        );
        assert_eq!(
            service_err("    ulimits: {nofile: {a: 1}}"),
            "services.web.ulimits.nofile additional properties 'a' not allowed"
        );
    }

    /// Service snippets and docker compose v2.40.3's verdict on them.
    #[test]
    fn nested_rules_match_docker_compose() {
        let cases = [
            (
                "    networks: {n: {aliases: 5}}",
                "services.web.networks.n.aliases must be a array",
            ),
            (
                "    extra_hosts: {a: 5}",
                "services.web.extra_hosts.a must be a string",
            ),
            ("    gpus: some", "services.web.gpus value must be 'all'"),
            (
                "    gpus: [{count: true}]",
                "services.web.gpus.0.count must be a integer or string",
            ),
            (
                "    logging: {options: {a: [1]}}",
                "services.web.logging.options.a must be a null, number or string",
            ),
            (
                "    deploy: {resources: {reservations: {devices: [{driver: x, foo: 1}]}}}",
                "services.web.deploy.resources.reservations.devices.0 additional properties \
                 'foo' not allowed",
            ),
            (
                "    build: {context: ., ulimits: {nofile: {soft: a}}}",
                "services.web.build.ulimits.nofile must be a integer or string",
            ),
            (
                "    healthcheck: {test: [1]}",
                "services.web.healthcheck.test.0 must be a string",
            ),
            (
                "    volumes: [{type: bind, target: /x, bind: {selinux: q}}]",
                "services.web.volumes.0.bind.selinux value must be one of 'z', 'Z'",
            ),
            (
                "    configs: [{source: c, uid: 0}]",
                "services.web.configs.0.uid must be a string",
            ),
            (
                "    storage_opt: [1]",
                "services.web.storage_opt must be a mapping",
            ),
            (
                "    blkio_config: {weight_device: [{path: a, weight: 1.5}]}",
                "services.web.blkio_config.weight_device.0.weight must be a integer or string",
            ),
            (
                "    provider: {options: {a: 1}}",
                "services.web.provider missing property 'type'",
            ),
            (
                "    develop: {watch: [{path: ., action: sync, exec: {}}]}",
                "services.web.develop.watch.0.exec missing property 'command'",
            ),
            (
                "    develop: {watch: [{path: ., action: sync, initial_sync: 'true'}]}",
                "services.web.develop.watch.0.initial_sync must be a boolean",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(service_err(body), want, "for {body}");
        }
    }

    #[test]
    fn deepest_error_wins_then_document_order() {
        assert_eq!(
            service_err("    foo: 1\n    ports: 5"),
            "services.web.ports must be a array"
        );
        assert_eq!(
            service_err("    restart: 5\n    ports: 5"),
            "services.web.restart must be a string"
        );
    }

    #[test]
    fn minimum_and_maximum_apply_to_integers() {
        let s = one_of(vec![string(), integer().range(Some(0), Some(100))]);
        let w = Walker {
            unique_items: false,
        };
        let mut errs = Vec::new();
        w.check(
            &integer().range(Some(0), Some(100)),
            &Value::from(101),
            &TreePath::root(),
            &mut errs,
        );
        assert_eq!(errs[0].kind, SchemaErrorKind::Maximum { limit: 100 });
        assert_eq!(
            errs[0].kind.to_string(),
            "must be less than or equal to 100"
        );
        errs.clear();
        w.check(&s, &Value::from(50), &TreePath::root(), &mut errs);
        assert!(errs.is_empty());
        assert_eq!(service_err("    cpu_percent: 50"), "ok");
    }

    #[test]
    fn unique_items_only_in_strict_mode() {
        let tree = parse("services:\n  web:\n    image: x\n    cap_add: [A, B, A]\n");
        assert_eq!(validate(&tree), Ok(()));
        let e = validate_strict(&tree).expect_err("duplicate rejected");
        assert_eq!(
            e.to_string(),
            "services.web.cap_add items at index 0 and 2 are equal"
        );
        assert_eq!(e.location(), TreePath::parse("services.web.cap_add[2]"));
        // extra_hosts values may repeat (the spec says uniqueItems: false there).
        let hosts = parse("services:\n  web:\n    extra_hosts: {h: [1.1.1.1, 1.1.1.1]}\n");
        assert_eq!(validate_strict(&hosts), Ok(()));
    }

    #[test]
    fn tags_reset_and_override() {
        assert_eq!(service_err("    ports: !reset 5"), "ok");
        assert_eq!(service_err("    ports: !override [80]"), "ok");
        assert_eq!(
            service_err("    ports: !override 80"),
            "services.web.ports must be a array"
        );
    }

    #[test]
    fn error_location_is_the_value_for_non_key_errors() {
        let e = validate(&parse("services:\n  web:\n    ports: [80, {foo: 1}]\n"))
            .expect_err("invalid port");
        assert_eq!(e.location(), TreePath::parse("services.web.ports[1].foo"));
        assert_eq!(e.docker_path(), "services.web.ports.1");
    }

    // -----------------------------------------------------------------------------------------
    // Acceptance against docker compose's verdicts on the conformance files.

    const CONFORMANCE: &str = "/work/shared/conformance";
    const ORACLE: &str = "/tmp/oracle";

    /// Files docker compose validates after interpolation, which a raw tree cannot reproduce.
    const INTERPOLATION_DEPENDENT: &[&str] =
        &["docker-compose-e2e/testdata/TestUpContainerNameConflict/compose.yaml"];

    fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                yaml_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }

    /// The path docker compose named in a schema error (`validating FILE: PATH message`).
    fn oracle_path(err: &str) -> Option<String> {
        let line = err.lines().find(|l| l.starts_with("validating "))?;
        let (_, rest) = line.split_once(": ")?;
        let markers = [
            " additional properties",
            " must be",
            " value must be one of",
            " missing propert",
            " does not match pattern",
        ];
        let cut = markers.iter().filter_map(|m| rest.find(m)).min()?;
        let head = &rest[..cut];
        // A pattern error reads `PATH 'value' does not match ...`: drop the quoted value.
        let head = match head.find(" '") {
            Some(i) if rest[cut..].starts_with(" does not match") => &head[..i],
            _ => head,
        };
        Some(head.to_string())
    }

    /// Docker compose's own output is a merged, normalised model: it must validate too.
    #[test]
    fn docker_compose_models_validate() {
        let Ok(entries) = std::fs::read_dir(ORACLE) else {
            eprintln!("skipping: {ORACLE} absent");
            return;
        };
        let mut checked = 0;
        let mut failures = Vec::new();
        for entry in entries.flatten() {
            let p = entry.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            // JSON is YAML; empty outputs belong to rejected files.
            let Ok(model) = serde_yaml::from_str::<Value>(&text) else {
                continue;
            };
            if model.is_null() {
                continue;
            }
            checked += 1;
            if let Err(e) = validate(&model) {
                failures.push(format!("{}: {e}", p.display()));
            }
        }
        eprintln!("schema: {checked} docker compose models checked");
        assert!(
            failures.is_empty(),
            "rejected models:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn conformance_files_match_docker_compose() {
        let root = std::path::Path::new(CONFORMANCE);
        if !root.is_dir() || !std::path::Path::new(ORACLE).is_dir() {
            eprintln!("skipping: {CONFORMANCE} or {ORACLE} absent");
            return;
        }
        let mut files = Vec::new();
        yaml_files(root, &mut files);
        files.sort();
        let (mut accepted, mut rejected, mut skipped) = (0, 0, 0);
        let mut failures = Vec::new();
        for file in &files {
            let rel = file
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let key = rel.replace('/', "__");
            let rc = std::fs::read_to_string(format!("{ORACLE}/{key}.rc")).unwrap_or_default();
            let oracle_err =
                std::fs::read_to_string(format!("{ORACLE}/{key}.err")).unwrap_or_default();
            let Ok(text) = std::fs::read_to_string(file) else {
                skipped += 1;
                continue;
            };
            let Ok(mut tree) = serde_yaml::from_str::<Value>(&text) else {
                // Multi-document or invalid YAML: the loader's concern, not the schema's.
                eprintln!("schema conformance: not one YAML document: {rel}");
                skipped += 1;
                continue;
            };
            if tree.apply_merge().is_err() || INTERPOLATION_DEPENDENT.contains(&rel.as_str()) {
                skipped += 1;
                continue;
            }
            let ours = validate(&tree);
            if rc.trim() == "0" {
                accepted += 1;
                if let Err(e) = ours {
                    failures.push(format!("{rel}: docker accepts, we say: {e}"));
                }
            } else if oracle_err.contains("validating")
                || oracle_err.contains("additional properties")
            {
                rejected += 1;
                let want = oracle_path(&oracle_err);
                match ours {
                    Ok(()) => failures.push(format!("{rel}: docker rejects, we accept")),
                    Err(e) if want.as_deref() != Some(e.docker_path().as_str()) => {
                        failures.push(format!("{rel}: docker: {oracle_err:?}, we say: {e}"))
                    }
                    Err(_) => {}
                }
            } else {
                skipped += 1;
            }
        }
        eprintln!(
            "schema conformance: {accepted} accepted and {rejected} schema-rejected files \
             checked, {skipped} skipped, {} mismatches",
            failures.len()
        );
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    }
}
