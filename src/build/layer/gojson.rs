//! JSON bytes as Go's `encoding/json` writes them, so that configs and manifests have the
//! digests BuildKit gives them: `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`…, the
//! rest as serde_json writes it (same control-character escapes, lower-case hex).

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};
use std::io::{self, Write};

fn write_go_fragment<W: ?Sized + Write>(w: &mut W, fragment: &str) -> io::Result<()> {
    let mut start = 0;
    for (i, c) in fragment.char_indices() {
        let esc = match c {
            '<' => "\\u003c",
            '>' => "\\u003e",
            '&' => "\\u0026",
            '\u{2028}' => "\\u2028",
            '\u{2029}' => "\\u2029",
            _ => continue,
        };
        w.write_all(&fragment.as_bytes()[start..i])?;
        w.write_all(esc.as_bytes())?;
        start = i + c.len_utf8();
    }
    w.write_all(&fragment.as_bytes()[start..])
}

struct GoCompact;

impl Formatter for GoCompact {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_go_fragment(writer, fragment)
    }
}

/// `json.MarshalIndent(v, "", indent)`.
struct GoPretty<'a>(PrettyFormatter<'a>);

macro_rules! delegate {
    ($($name:ident),*) => {$(
        fn $name<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
            self.0.$name(w)
        }
    )*};
}

impl Formatter for GoPretty<'_> {
    delegate!(
        begin_array,
        end_array,
        begin_object,
        end_object,
        end_object_key,
        begin_object_value,
        end_array_value,
        end_object_value
    );
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_go_fragment(writer, fragment)
    }
}

/// `json.Marshal(v)`.
pub fn to_go_json<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoCompact);
    v.serialize(&mut ser)?;
    Ok(out)
}

/// `json.MarshalIndent(v, "", indent)`.
pub fn to_go_json_indent<T: Serialize + ?Sized>(
    v: &T,
    indent: &str,
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let fmt = GoPretty(PrettyFormatter::with_indent(indent.as_bytes()));
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_as_go_does() {
        let v = json!({"Cmd": ["sh", "-c", "a && b > c < d\u{2028}"], "x": "tab\there\u{1}"});
        let s = String::from_utf8(to_go_json(&v).unwrap()).unwrap();
        assert_eq!(
            s,
            r#"{"Cmd":["sh","-c","a \u0026\u0026 b \u003e c \u003c d\u2028"],"x":"tab\there\u0001"}"#
        );
    }

    #[test]
    fn indents_as_marshal_indent() {
        let v = json!({"a": [1, 2], "b": {}, "c": []});
        let s = String::from_utf8(to_go_json_indent(&v, "   ").unwrap()).unwrap();
        assert_eq!(
            s,
            "{\n   \"a\": [\n      1,\n      2\n   ],\n   \"b\": {},\n   \"c\": []\n}"
        );
    }
}
