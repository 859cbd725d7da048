//! Printing results: tables sized to the terminal, or JSON / YAML that
//! scripts can rely on (the API's own wire format, unchanged).

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use serde_json::Value;

use super::{CliError, CliResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

static QUERY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Sets `--query` for this process's output.
pub fn set_query(query: Option<String>) {
    let _ = QUERY.set(query);
}

/// The values at a dot path (`*` for every item of an array).
fn select<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![value];
    for part in path.split('.').filter(|p| !p.is_empty()) {
        current = current
            .into_iter()
            .flat_map(|v| match (part, v) {
                ("*", Value::Array(items)) => items.iter().collect::<Vec<_>>(),
                (_, Value::Array(items)) => part.parse::<usize>().ok().and_then(|i| items.get(i)).into_iter().collect(),
                (_, Value::Object(m)) => m.get(part).into_iter().collect(),
                _ => Vec::new(),
            })
            .collect();
    }
    current
}

/// With `--query`, prints the selected values bare, one per line, and says so.
fn queried(value: &Value) -> CliResult<bool> {
    let Some(Some(path)) = QUERY.get() else { return Ok(false) };
    let found = select(value, path);
    if found.is_empty() {
        return Err(CliError::Usage(format!("--query {path:?} matches nothing in the result")));
    }
    for v in found {
        println!("{}", text(v));
    }
    Ok(true)
}

/// A table column: its header and how to show a row's value.
pub struct Col(pub &'static str, pub fn(&Value) -> String);

/// A field as text: strings bare, null as `-`, the rest as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `k=v,k=v` for a map.
pub fn pairs(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(","),
        _ => "-".into(),
    }
}

/// A time without its fractional seconds.
pub fn time(v: &Value) -> String {
    let t = text(v);
    match t.split_once('.') {
        Some((head, tail)) => format!("{head}{}", tail.trim_start_matches(|c: char| c.is_ascii_digit())),
        None => t,
    }
}

/// Fits tables to the terminal; into a pipe or file, lines are never wrapped.
fn arrange(t: &mut Table) {
    let term = console::Term::stdout();
    match term.is_term().then(|| term.size_checked()).flatten() {
        Some((_, cols)) => {
            t.set_content_arrangement(ContentArrangement::Dynamic).set_width(cols);
        }
        None => {
            t.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
}

fn table(headers: Vec<&str>, rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    arrange(&mut t);
    t.set_header(headers);
    for r in rows {
        t.add_row(r);
    }
    render(&mut t)
}

/// Columns flush left with two spaces between them, as `kubectl get` prints.
fn render(t: &mut Table) -> String {
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t.to_string().lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// Prints a list: a table of `columns` over `items`, or the whole response as JSON/YAML.
pub fn list<T: Serialize>(output: Output, whole: &T, items_key: &str, columns: &[Col]) -> CliResult {
    let value = serde_json::to_value(whole).map_err(|e| CliError::Io(e.to_string()))?;
    if queried(&value)? {
        return Ok(());
    }
    match output {
        Output::Table => {
            let items = value[items_key].as_array().cloned().unwrap_or_default();
            let rows = items.iter().map(|item| columns.iter().map(|c| (c.1)(item)).collect()).collect();
            println!("{}", table(columns.iter().map(|c| c.0).collect(), rows));
            Ok(())
        }
        other => structured(other, &value),
    }
}

/// Prints one resource: `FIELD  value` lines, or JSON/YAML.
pub fn one<T: Serialize>(output: Output, value: &T, fields: &[Col]) -> CliResult {
    let value = serde_json::to_value(value).map_err(|e| CliError::Io(e.to_string()))?;
    if queried(&value)? {
        return Ok(());
    }
    match output {
        Output::Table => {
            let rows: Vec<Vec<String>> = fields.iter().map(|c| vec![c.0.to_owned(), (c.1)(&value)]).collect();
            let mut t = Table::new();
            t.load_style(presets::NOTHING);
            arrange(&mut t);
            for r in rows {
                t.add_row(r);
            }
            println!("{}", render(&mut t));
            Ok(())
        }
        other => structured(other, &value),
    }
}

/// JSON (pretty, stable field order as the API sends it) or YAML.
pub fn structured(output: Output, value: &Value) -> CliResult {
    if queried(value)? {
        return Ok(());
    }
    match output {
        Output::Yaml => {
            print!("{}", serde_yaml_ng::to_string(value).map_err(|e| CliError::Io(e.to_string()))?);
        }
        _ => println!("{}", serde_json::to_string_pretty(value).map_err(|e| CliError::Io(e.to_string()))?),
    }
    Ok(())
}

/// Prints a resource the way `one` does, with nothing for a table but a confirmation line.
pub fn done<T: Serialize>(output: Output, value: &T, message: &str) -> CliResult {
    match output {
        Output::Table if QUERY.get().is_none_or(Option::is_none) => {
            println!("{message}");
            Ok(())
        }
        other => structured(other, &serde_json::to_value(value).map_err(|e| CliError::Io(e.to_string()))?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_paths_select_fields_and_items() {
        let v = serde_json::json!({"tasks": [{"id": "a"}, {"id": "b"}], "n": 2});
        assert_eq!(select(&v, "tasks.1.id"), vec![&serde_json::json!("b")]);
        assert_eq!(select(&v, "tasks.*.id").len(), 2);
        assert!(select(&v, "nope").is_empty());
        assert_eq!(select(&v, "n"), vec![&serde_json::json!(2)]);
    }
}
