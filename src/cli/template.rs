//! The part of Go's `text/template` that `--format` strings use with docker compose:
//! `{{.Field}}`, `{{json .}}`, `{{json .Field}}`, `\t` for tabs, and a `table` prefix that
//! prints a header and aligns the columns.

use anyhow::{bail, Result};

/// Renders `rows` (JSON objects) with `format`. `headers` names the columns of a `table`
/// format (`Name` -> `NAME`); fields missing there get their name in upper case.
pub fn render(
    format: &str,
    rows: &[serde_json::Value],
    headers: &[(&str, &str)],
) -> Result<String> {
    let (table, format) = match format.strip_prefix("table") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
            (true, rest.trim_start())
        }
        _ => (false, format),
    };
    let format = format.replace("\\t", "\t").replace("\\n", "\n");
    let parts = parse(&format)?;
    let mut lines: Vec<String> = Vec::new();
    if table {
        let header: String = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Field(f) => headers
                    .iter()
                    .find(|(k, _)| k == f)
                    .map_or_else(|| f.to_ascii_uppercase(), |(_, h)| h.to_string()),
                Part::Json(_) => String::new(),
            })
            .collect();
        lines.push(header);
    }
    for row in rows {
        let mut line = String::new();
        for p in &parts {
            match p {
                Part::Text(t) => line.push_str(t),
                Part::Field(f) => line.push_str(&text(field(row, f)?)),
                Part::Json(None) => line.push_str(&row.to_string()),
                Part::Json(Some(f)) => line.push_str(&field(row, f)?.to_string()),
            }
        }
        lines.push(line);
    }
    if table {
        let cells: Vec<Vec<String>> = lines
            .iter()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        return Ok(super::table(&cells));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

#[derive(Debug, PartialEq)]
enum Part {
    Text(String),
    Field(String),
    /// `{{json .}}` (None) or `{{json .Field}}`.
    Json(Option<String>),
}

fn parse(format: &str) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = format;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let Some(end) = rest[start..].find("}}") else {
            bail!("invalid format {format:?}: unclosed action");
        };
        let action = rest[start + 2..start + end].trim();
        let part = if let Some(arg) = action.strip_prefix("json") {
            match arg.trim() {
                "." => Part::Json(None),
                f if f.starts_with('.') && f.len() > 1 => Part::Json(Some(f[1..].to_string())),
                _ => bail!("invalid format {format:?}: unsupported action {{{{{action}}}}}"),
            }
        } else if let Some(f) = action
            .strip_prefix('.')
            .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            Part::Field(f.to_string())
        } else {
            bail!("invalid format {format:?}: unsupported action {{{{{action}}}}}");
        };
        parts.push(part);
        rest = &rest[start + end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

fn field<'a>(row: &'a serde_json::Value, name: &str) -> Result<&'a serde_json::Value> {
    match row.get(name) {
        Some(v) => Ok(v),
        None => bail!("template: can't evaluate field {name}"),
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_json_and_tabs() {
        let rows = [json!({"Name": "p-web-1", "ExitCode": 3, "Labels": {"a": "b"}})];
        assert_eq!(
            render("{{.Name}}\\t{{ .ExitCode }}", &rows, &[]).unwrap(),
            "p-web-1\t3\n"
        );
        assert_eq!(
            render("{{json .Labels}}", &rows, &[]).unwrap(),
            "{\"a\":\"b\"}\n"
        );
        assert!(render("{{json .}}", &rows, &[]).unwrap().starts_with('{'));
    }

    #[test]
    fn table_prints_a_header() {
        let rows = [
            json!({"Name": "a", "Service": "web"}),
            json!({"Name": "bb", "Service": "db"}),
        ];
        let out = render("table {{.Name}}\\t{{.Service}}", &rows, &[("Name", "NAME")]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("NAME") && lines[0].contains("SERVICE"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("a ") && lines[2].starts_with("bb"),
            "{out}"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let rows = [json!({"Name": "a"})];
        let e = render("{{.Nope}}", &rows, &[]).unwrap_err().to_string();
        assert!(e.contains("Nope"), "{e}");
        assert!(render("{{.Name", &rows, &[]).is_err());
        assert!(render("{{range .}}", &rows, &[]).is_err());
    }
}
